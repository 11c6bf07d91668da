"""The discrete-event engine: one simpy run of a compiled scenario.

``run_des`` builds the Linux model from the graph (build.py), starts the workloads, and runs
simpy in slices of simulated time so that a progress callback can report and Ctrl-C can
stop the run between two events with everything simulated so far kept (``partial``). Slice
boundaries depend only on simulated time, so a run's results do not depend on how fast the
machine is.

Without ``run.until`` the run stops at the first slice boundary after every workload has
finished and no packet is in flight (a lost fragment keeps its reassembly queue, and so the
run, alive for ``ipfrag_time``), or after an hour of simulated time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from simnet.compile import Compiled
from simnet.kernel import SimContext
from simnet.models.linux.cpu import DEFAULT_COSTS, CostProfile
from simnet.results.pcap import PcapWriter
from simnet.results.results import Results, collect

from .build import Network, build_network, install_workloads
from .sampler import TcpSampler

__all__ = ["run_des", "SLICE_S", "MAX_SIM_S"]

SLICE_S = 0.01          # simulated seconds per slice
MAX_SIM_S = 3600.0      # stop an open-ended run here


def _events_scheduled(env: Any) -> int:
    """simpy numbers every scheduled event; read the counter without advancing it."""
    r = repr(env._eid)          # 'count(N)'
    return int(r[r.index("(") + 1: r.index(")")]) if "(" in r else 0


def run_des(comp: Compiled, *, pcap_dir: Path | None = None, costs: CostProfile = DEFAULT_COSTS,
            progress: Callable[[float, float], None] | None = None,
            setup: Callable[[Network], None] | None = None) -> Results:
    """Run ``comp`` on the discrete-event engine.

    Parameters
    ----------
    pcap_dir:
        Write ``<netns>-<dev>.pcap`` for every device into this directory.
    costs:
        The CPU cost profile.
    progress:
        Called as ``progress(simulated_s, end_s)`` after each slice.
    setup:
        Called with the built network before t = 0 (tests subscribe to trace points here).
    """
    sc = comp.scenario
    wall0 = time.perf_counter()
    ctx = SimContext(sc.seed)
    net = build_network(comp, ctx, costs)
    net.validate()
    writers: list[PcapWriter] = []
    if pcap_dir is not None:
        pcap_dir.mkdir(parents=True, exist_ok=True)
        for nid, dev in sorted(net.devices.items()):
            w = PcapWriter(pcap_dir / f"{dev.ns.name}-{dev.ifname}.pcap")
            dev.capture = w
            writers.append(w)
    remaining = [len(comp.workloads)]

    def on_done(_app: Any) -> None:
        remaining[0] -= 1

    install_workloads(comp, net, on_done)
    TcpSampler(net, sc.run.sample)
    if setup is not None:
        setup(net)
    until = sc.run.until
    end = until if until is not None else MAX_SIM_S
    env = ctx.env
    partial = False
    t = 0.0
    k = 0
    try:
        while t < end:
            k += 1
            t = min(end, k * SLICE_S)
            env.run(until=t)
            if progress is not None:
                progress(t, end)
            if until is None and remaining[0] <= 0 and ctx.tracer.in_flight() == 0:
                break
    except KeyboardInterrupt:
        partial = True
        t = env.now
    finally:
        for w in writers:
            w.close()
    wall = time.perf_counter() - wall0
    return collect(comp, net, sim_time_s=t, wall_s=wall, events=_events_scheduled(env), partial=partial,
                   engine="des", costs=costs)
