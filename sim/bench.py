"""``simnet bench``: fixed benchmark scenarios, timed.

``packets`` counts the packets the workloads put on the network, the unit other simulators
report: UDP datagrams (and requests) as the applications sent them, and TCP segments as the
kernel counts them (``Tcp: OutSegs + RetransSegs`` over all namespaces: data segments and
ACKs, a TSO super-segment counting its segments); ``events`` the simpy events scheduled.
``wall_s`` is the engine's own time (building the model and running it); ``run_s`` is what
``simnet run`` spends after its imports: loading and compiling the scenario, the engine, and
writing every result file and plot (to a temporary directory).

| benchmark      | what it is |
|----------------|------------|
| udp-tandem     | 200,000 constant-rate 1500-byte IP packets through three NIC links (1 Gbit/s, 1 Gbit/s, 100 Mbit/s at load 0.9) |
| quickstart     | UDP request/response between two containers on docker0 (1000 transactions) |
| tcp-bottleneck | one CUBIC flow for 10 s through a 100 Mbit/s, 10 ms RTT bottleneck (≈ 83,000 data segments and 41,000 ACKs) |
"""

from __future__ import annotations

from typing import Any

__all__ = ["BENCHMARKS", "run_benchmark"]

BENCHMARKS: dict[str, str] = {"udp-tandem": "udp-tandem", "quickstart": "quickstart",
                              "tcp-bottleneck": "tcp-bottleneck"}


def network_packets(res: Any) -> int:
    """UDP datagrams the applications sent plus TCP segments the kernels sent."""
    udp = sum(f.packets_sent for f in res.flows if f.proto != "tcp")
    tcp = 0
    for c in res.counters.values():
        t = c.get("snmp", {}).get("Tcp")
        if t:
            tcp += t["OutSegs"] + t["RetransSegs"]
    return udp + tcp


def run_benchmark(name: str, engine: str = "des") -> dict[str, Any]:
    import tempfile
    import time

    from . import bundled_scenario
    from .compile import compile_scenario
    from .engines.des.engine import run_des
    from .scenario.loader import load

    path = bundled_scenario(BENCHMARKS[name])
    if path is None:  # pragma: no cover - broken install
        raise FileNotFoundError(f"bundled scenario {BENCHMARKS[name]} is missing")
    t0 = time.perf_counter()
    comp = compile_scenario(load(path))
    res = run_des(comp)
    with tempfile.TemporaryDirectory(prefix="simnet-bench-") as tmp:
        res.write(tmp)
    run_s = time.perf_counter() - t0
    packets = network_packets(res)
    return {"scenario": name, "engine": engine, "packets": packets, "events": res.events,
            "wall_s": round(res.wall_s, 4), "packets_per_s": round(packets / res.wall_s, 1),
            "events_per_s": round(res.events / res.wall_s, 1), "run_s": round(run_s, 3)}
