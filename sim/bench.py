"""``simnet bench``: fixed benchmark scenarios, timed.

``packets`` counts the application packets the workloads sent (datagrams, requests), the
unit other simulators report; ``events`` the simpy events scheduled. Wall time is the
engine's own (building the model and running it), not loading or compiling the scenario.

| benchmark   | what it is |
|-------------|------------|
| udp-tandem  | 200,000 constant-rate 1500-byte IP packets through three NIC links (1 Gbit/s, 1 Gbit/s, 100 Mbit/s at load 0.9) |
| quickstart  | UDP request/response between two containers on docker0 (1000 transactions) |
"""

from __future__ import annotations

from typing import Any

__all__ = ["BENCHMARKS", "run_benchmark"]

BENCHMARKS: dict[str, str] = {"udp-tandem": "udp-tandem", "quickstart": "quickstart"}


def run_benchmark(name: str, engine: str = "des") -> dict[str, Any]:
    from . import bundled_scenario
    from .compile import compile_scenario
    from .engines.des.engine import run_des
    from .scenario.loader import load

    path = bundled_scenario(BENCHMARKS[name])
    if path is None:  # pragma: no cover - broken install
        raise FileNotFoundError(f"bundled scenario {BENCHMARKS[name]} is missing")
    comp = compile_scenario(load(path))
    res = run_des(comp)
    packets = res.packets
    return {"scenario": name, "engine": engine, "packets": packets, "events": res.events,
            "wall_s": round(res.wall_s, 4), "packets_per_s": round(packets / res.wall_s, 1),
            "events_per_s": round(res.events / res.wall_s, 1)}
