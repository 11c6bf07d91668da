"""``simnet calibrate``, TCP part: the TCP stages' costs fitted to real streams, and the stream check.

Method: the C probes tools/costs/tcp_snd.c (a ``send()`` loop of ``write``-byte writes, CUBIC,
Nagle on, as the model's ``tcp_stream`` by default) and tcp_rcv.c (``read()`` of 128 KiB, as
the model's sink) stream for ``seconds`` per point between two namespaces built by the netns
engine's own plan, each pinned to the CPU the DES gives that application
(sim/engines/des/build.py), with the offloads the model's graph has by default (TSO/GSO on,
GRO off on virtual devices). Each reports its thread's CPU time; the kernel here has no
IRQ_TIME_ACCOUNTING, so the softirq work a CPU does while the thread runs is in it — and on
veth and loopback paths every packet's receive runs in the softirq of the CPU that sent it,
so each CPU works only in its thread's context: the writer's CPU time per byte is its CPU's
load, the sink's likewise. Paths: ``loopback`` and ``veth`` (calibrate.py's graphs) at the
``writes`` sizes (default 32 KiB and 128 KiB: per-call and per-byte costs apart); the median
of ``repeat`` runs.

Fit: the DES runs the same ``tcp_stream`` with the current profile, its CPUs' segments
replaced by :class:`TallySegment`, which counts, per CPU and stage, how often the stage was
charged and for how many bytes. Per byte delivered, the writer's and the sink's CPU then each
give one linear equation in the stages' costs (plus the time the CPU waited for a socket the
other CPU held, which is no stage: taken from the run as it is); the TCP stages
(:data:`FIT_STAGES`: the per-call and per-byte costs of ``tcp_sendmsg`` and ``tcp_recvmsg``,
``tcp_transmit`` per skb sent, ``tcp_rcv`` per skb received, ``tcp_send_ack``) are the
unknowns, the others (system call entry, copy_from_user, IP, devices) keep the costs the UDP
measurements gave them. Least squares on relative errors with a ridge towards the current
profile (calibrate.RIDGE), as for UDP. How often each stage runs depends on timing (how many
skbs a write makes, how many ACKs a read sends), so the DES is rerun with the fitted profile
and the fit repeated a few times; the profile kept is the one whose own DES runs match the
measurements best (:func:`fit_tcp`).

Check: the DES with the new profile predicts a ``tcp_stream`` of 128 KiB writes on the veth,
bridge (docker0) and vxlan (Docker's overlay between two one-CPU hosts on a veth underlay)
paths; the netns engine then runs the same scenario ``repeat`` times for ``seconds`` each with
its real agents; the median counts (other load on the machine makes single runs noisy). Both
throughputs are bytes delivered × 8 over the time from connect() returning to the last read.
The C probes then stream on the same path as many times (the median): the kernel's throughput
without the agents' interpreter, which the model does not charge. Every real run (probes and the check's agents) is started at nice −10 (:func:`foreground`).

Scope and limitations: stages are shared by every path (no per-path factor); the real agents
of the check are Python (a few µs per write() the model does not charge); the probes' CPU
time also holds softirq work for other traffic on the machine that lands on their CPU while
they run, so a busy machine inflates it. The model charges per-skb costs as constants, so
how the real cost per write bends between write sizes (cache effects, batching) is only
matched on average (the fit's residual is printed).
Validation: tests/engines/netns/test_calibrate_tcp.py (the tallies add up to each CPU's busy
time; the fit recovers made-up measurements from known costs, with fixed loads and through
the DES loop), tests/engines/netns/test_calibrate.py (root: a shortened ``simnet calibrate``
writes a profile ``simnet run --cost-profile`` loads).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

import simnet
from simnet.compile import Compiled
from simnet.models.linux.cpu import NS, CostProfile, Segment, Stage

from .calibrate import RIDGE, CalibrationError, _direct_veth, _underlay_as_veth
from .lab import Lab

__all__ = ["FIT_PATHS", "CHECK_PATHS", "FIT_STAGES", "WRITES", "tcp_scenario", "TallySegment", "tcp_loads", "des_app_cpus", "cpu_ns_per_byte",
           "load_ns_per_byte", "fit_tcp_once", "fit_tcp", "residual", "measure_tcp", "check_tcp", "stream_gbps"]

FIT_PATHS = ("loopback", "veth")
CHECK_PATHS = ("veth", "bridge", "vxlan")
WRITES = (32768, 131072)
CHECK_WRITE = 131072
PORT = 5201
NICE = -10                       # the real runs' niceness (see foreground)
DES_SECONDS = 0.03               # simulated seconds of a DES stream (thousands of writes at these rates)
# (stage, "pp" per call/skb or "pb" per byte): the unknowns of the TCP fit
FIT_STAGES: tuple[tuple[str, str], ...] = (("tcp_sendmsg", "pp"), ("tcp_sendmsg", "pb"), ("tcp_transmit", "pp"),
                                           ("tcp_send_ack", "pp"), ("tcp_rcv", "pp"), ("tcp_recvmsg", "pp"),
                                           ("tcp_recvmsg", "pb"))
_HOSTS = {"vxlan": "{h1: {cpus: 1}, h2: {cpus: 1}}"}
_SCEN = {
    "loopback": "containers: {a: {networks: [host]}, b: {networks: [host]}}",
    "bridge": "containers: {a: {}, b: {}}",
    "vxlan": """links: [{endpoints: [h1, h2], subnet: 10.73.0.0/24}]
networks: {ov: {driver: overlay}}
containers: {a: {host: h1, networks: [ov]}, b: {host: h2, networks: [ov]}}""",
}


def tcp_scenario(path: str, write: int, duration_s: float) -> Compiled:
    """The compiled ``tcp_stream`` from a to b on ``path`` (the UDP calibration's graphs)."""
    body = _SCEN["bridge" if path in ("veth", "bridge") else path]
    text = (f"name: cal-tcp-{path}\nhosts: {_HOSTS.get(path, '{host: {cpus: 2}}')}\n{body}\n"
            f"workloads: [{{name: f, app: tcp_stream, from: a, to: b, port: {PORT}, duration: {duration_s!r}, "
            f"write: {write}}}]\n")
    comp = simnet.compile_scenario(simnet.loads(text, f"<calibrate:tcp-{path}>"))
    if path == "veth":
        comp = _direct_veth(comp)
    elif path == "vxlan":
        comp = _underlay_as_veth(comp)
    return comp


class TallySegment(Segment):
    """A CPU's segment that also counts, per stage, the charges and the bytes charged."""

    __slots__ = ("tally",)

    def __init__(self, cpu: Any) -> None:
        super().__init__(cpu)
        self.tally: dict[str, list[int]] = {}

    def _count(self, stage: str, calls: int, nbytes: int) -> None:
        t = self.tally.get(stage)
        if t is None:
            t = self.tally[stage] = [0, 0]
        t[0] += calls
        t[1] += nbytes

    def charge(self, skb: Any, stage: str, nbytes: int = 0) -> None:
        self._count(stage, 1, nbytes)
        Segment.charge(self, skb, stage, nbytes)

    def charge2(self, skb: Any, stage1: str, stage2: str) -> None:
        self._count(stage1, 1, 0)
        self._count(stage2, 1, 0)
        Segment.charge2(self, skb, stage1, stage2)

    def spend(self, stage: str, nbytes: int = 0) -> None:
        self._count(stage, 1, nbytes)
        Segment.spend(self, stage, nbytes)

    def spend_bytes(self, stage: str, nbytes: int) -> None:
        self._count(stage, 0, nbytes)
        Segment.spend_bytes(self, stage, nbytes)


def stream_gbps(flow: Any) -> float:
    """A stream's throughput: bytes delivered × 8 from connect() returning to the last read."""
    t0 = (flow.tcp or {}).get("established_s")
    if t0 is None or flow.end_s is None or flow.end_s <= t0:
        return 0.0
    return flow.bytes_delivered * 8 / (flow.end_s - t0) / 1e9


def _app_cpus(net: Any) -> tuple[int, int]:
    """(writer, sink): the CPUs the DES's network gave the stream's two ends, numbered across
    hosts in order (host 1's CPUs first), as the netns engine lays the model's CPUs on the machine."""
    from simnet.models.apps.tcp import TcpSink, TcpStreamClient

    index = {id(cpu): k for k, cpu in enumerate(c for h in net.hosts.values() for c in h.cpus)}
    writer = next(a for a in net.apps if isinstance(a, TcpStreamClient))
    sink = next(a for a in net.apps if isinstance(a, TcpSink))
    return index[id(writer.cpu)], index[id(sink.cpu)]


def des_app_cpus(comp: Compiled) -> tuple[int, int]:
    """:func:`_app_cpus` of ``comp``'s DES network (built, not run)."""
    from simnet.engines.des.build import build_network, install_workloads
    from simnet.kernel import SimContext
    from simnet.models.linux.cpu import DEFAULT_COSTS

    net = build_network(comp, SimContext(comp.scenario.seed), DEFAULT_COSTS)
    install_workloads(comp, net, lambda _f: None)
    return _app_cpus(net)


def tcp_loads(comp: Compiled, costs: CostProfile) -> dict[str, Any]:
    """Run ``comp`` on the DES under ``costs``; per byte delivered, for the writer's (``send``)
    and the sink's (``recv``) CPU: ``{stage: (charges, bytes charged)}``, their busy time (and
    the part of it outside any stage), and the stream's throughput."""
    from simnet.engines.des.engine import run_des

    segs: list[TallySegment] = []
    cpus: list[Any] = []
    ends: list[Any] = []

    def install(net: Any) -> None:
        for host in net.hosts.values():
            for cpu in host.cpus:
                cpu.seg = TallySegment(cpu)
                segs.append(cpu.seg)
                cpus.append(cpu)
        ends.append(net)

    res = run_des(comp, costs=costs, setup=install)
    f = res.flows[0]
    nbytes = max(f.bytes_delivered, 1)
    w, s = _app_cpus(ends[0])
    out: dict[str, Any] = {"bytes": f.bytes_delivered, "gbps": stream_gbps(f)}
    for side, k in (("send", w), ("recv", s)):
        out[side] = {st: (c / nbytes, b / nbytes) for st, (c, b) in segs[k].tally.items()}
        out[f"{side}_busy_ns_per_byte"] = busy = cpus[k].busy_s / nbytes / NS
        # what the CPU spent outside any stage: waiting for a socket another CPU holds (TcpSock.sync)
        out[f"{side}_other_ns_per_byte"] = max(busy - load_ns_per_byte(out[side], costs), 0.0)
    return out


def cpu_ns_per_byte(loads: dict[str, Any], side: str, costs: CostProfile) -> float:
    """The writer's (``send``) or sink's (``recv``) CPU time per byte under ``costs``: its stages
    priced with ``costs``, plus the time it spent outside any stage in the run that gave ``loads``."""
    return load_ns_per_byte(loads[side], costs) + loads.get(f"{side}_other_ns_per_byte", 0.0)


def load_ns_per_byte(side_loads: dict[str, tuple[float, float]], costs: CostProfile,
                     only: set[tuple[str, str]] | None = None, skip: set[tuple[str, str]] | None = None) -> float:
    """A CPU's time per byte delivered (ns) under ``costs``, from its tallies (``only``/``skip``:
    restricted to, or without, some (stage, "pp"/"pb") terms)."""
    t = 0.0
    for st, (calls, nb) in side_loads.items():
        for kind, n, unit in (("pp", calls, costs.stages[st].per_packet_s), ("pb", nb, costs.stages[st].per_byte_s)):
            if (only is not None and (st, kind) not in only) or (skip is not None and (st, kind) in skip):
                continue
            t += n * unit
    return t / NS


def _x(costs: CostProfile, st: str, kind: str) -> float:
    s = costs.stages[st]
    return s.per_packet_s if kind == "pp" else s.per_byte_s


def fit_tcp_once(points: list[dict[str, Any]], base: CostProfile, note: str) -> CostProfile:
    """One least-squares step: each point's ``loads`` (tcp_loads) and measured
    ``send_ns_per_byte``/``recv_ns_per_byte`` → :data:`FIT_STAGES` costs; other stages as ``base``."""
    fit = set(FIT_STAGES)
    x0 = np.array([max(_x(base, st, k), 0.05e-6 if k == "pp" else 0.005e-9) for st, k in FIT_STAGES])
    rows, rhs = [], []
    for p in points:
        for side in ("send", "recv"):
            y = p[f"{side}_ns_per_byte"] * NS
            loads = p["loads"][side]
            known = (load_ns_per_byte(loads, base, skip=fit) + p["loads"].get(f"{side}_other_ns_per_byte", 0.0)) * NS
            a = np.array([loads.get(st, (0.0, 0.0))[0 if k == "pp" else 1] for st, k in FIT_STAGES])
            rows.append(a * x0 / y)
            rhs.append((y - known) / y)
    n = len(FIT_STAGES)
    A = np.vstack([np.array(rows), np.sqrt(RIDGE) * np.eye(n)])
    b = np.concatenate([np.array(rhs), np.sqrt(RIDGE) * np.ones(n)])
    z, *_ = np.linalg.lstsq(A, b, rcond=None)
    x = np.maximum(z, 0.02) * x0
    stages = dict(base.stages)
    for (st, k), v in zip(FIT_STAGES, x):
        old = stages[st]
        stages[st] = Stage(v, old.per_byte_s, note) if k == "pp" else Stage(stages[st].per_packet_s, v, note)
    return CostProfile(base.name, stages)


def _blend(a: CostProfile, b: CostProfile, w: float, note: str) -> CostProfile:
    """:data:`FIT_STAGES` of ``a`` moved the fraction ``w`` of the way to ``b``'s."""
    stages = dict(a.stages)
    for st, k in FIT_STAGES:
        v = (1 - w) * _x(a, st, k) + w * _x(b, st, k)
        old = stages[st]
        stages[st] = Stage(v, old.per_byte_s, note) if k == "pp" else Stage(old.per_packet_s, v, note)
    return CostProfile(a.name, stages)


def residual(points: list[dict[str, Any]], costs: CostProfile) -> float:
    """Root mean square of the relative errors of ``costs`` on the points' CPUs (their ``loads``)."""
    errs = [cpu_ns_per_byte(p["loads"], side, costs) / p[f"{side}_ns_per_byte"] - 1
            for p in points for side in ("send", "recv")]
    return float(np.sqrt(np.mean(np.square(errs))))


def fit_tcp(points: list[dict[str, Any]], base: CostProfile, *, iterations: int = 5,
            loads_of: Callable[[dict[str, Any], CostProfile], dict[str, Any]] | None = None,
            say: Callable[[str], None] = lambda _m: None) -> CostProfile:
    """Fit :data:`FIT_STAGES` to ``points`` (path, write, measured ns per byte on each CPU).

    Each pass runs the DES (``loads_of(point, profile)``; default: :func:`tcp_loads` on the
    point's scenario) under the current profile, scores it against the measurements with the
    loads that profile itself produces (:func:`residual`), and fits the next from those loads
    (half a step after the first: the loads move with the costs, and a full step can
    oscillate). The profile with the lowest self-consistent residual is returned, with each
    point's ``loads`` under it."""
    loads_of = loads_of or (lambda p, c: tcp_loads(tcp_scenario(p["path"], p["write"], DES_SECONDS), c))
    host = platform.node() or "this machine"
    note = f"fitted to TCP streams by simnet calibrate on {host} (Linux {platform.release()})"
    prof = base
    best: tuple[float, CostProfile, list[dict[str, Any]]] | None = None
    for i in range(iterations + 1):
        loads = [loads_of(p, prof) for p in points]
        for p, ld in zip(points, loads):
            p["loads"] = ld
        if i:
            r = residual(points, prof)
            say(f"TCP fit, pass {i}: RMS error {r:.1%}")
            if best is None or r < best[0]:
                best = (r, prof, loads)
            if i == iterations or r < 0.01:
                break
        new = fit_tcp_once(points, prof, note)
        prof = _blend(prof, new, 0.5, note) if i else new
    assert best is not None
    for p, ld in zip(points, best[2]):
        p["loads"] = ld
    return best[1]


_TSND = re.compile(r"size=(\d+) writes=(\d+) bytes=(\d+) wall=([\d.]+) cpu=([\d.]+)")
_TRCV = re.compile(r"reads=(\d+) bytes=(\d+) cpu=([\d.]+)")


@contextlib.contextmanager
def foreground(nice: int = NICE) -> Iterator[None]:
    """This process (and so every process it starts: the probes, the netns engine's agents) at
    ``nice``, so that other jobs on the machine do not take the CPUs the model gives the
    applications (the model's applications own their CPU); the old niceness afterwards."""
    old = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        pass
    try:
        yield
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, old)
        except OSError:
            pass


def _stream_point(lab: Lab, plan: Any, comp: Compiled, write: int, seconds: float, tsnd: Any, trcv: Any) -> dict:
    """One run of tcp_snd → tcp_rcv, each pinned to its application's CPU."""
    wp = comp.workloads[0]
    ncpu = os.cpu_count() or 1
    w_cpu, s_cpu = (c % ncpu for c in des_app_cpus(comp))
    r = lab.spawn(plan.netns[wp.dst_netns], [str(trcv), str(PORT), str(s_cpu)])
    time.sleep(0.2)
    s = lab.spawn(plan.netns[wp.src_netns], [str(tsnd), wp.daddr, str(PORT), str(write), f"{seconds:g}", str(w_cpu),
                                             "0"])
    try:
        s_out, s_err = s.communicate(timeout=seconds + 30)
        r_out, r_err = r.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        for p in (s, r):
            p.kill()
            p.communicate()
        raise CalibrationError(f"a TCP probe did not finish (write {write})") from None
    ms, mr = _TSND.search(s_out or ""), _TRCV.search(r_out or "")
    if not ms or not mr or int(ms.group(3)) == 0:
        raise CalibrationError(f"no TCP measurement ({(s_err or r_err or s_out or '').strip()[:200]})")
    nbytes = int(mr.group(2))
    return {"write": write, "bytes": nbytes, "wall_s": float(ms.group(4)),
            "gbps": int(ms.group(3)) * 8 / float(ms.group(4)) / 1e9,
            "send_ns_per_byte": float(ms.group(5)) / int(ms.group(3)) / NS,
            "recv_ns_per_byte": float(mr.group(3)) / max(nbytes, 1) / NS, "reads": int(mr.group(1))}


def measure_tcp(lab: Lab, features: Any, paths: tuple[str, ...], writes: list[int], seconds: float, repeat: int,
                say: Callable[[str], None]) -> list[dict[str, Any]]:
    """The fit's measurements: each (path, write) ``repeat`` times; the median of each figure."""
    from .apply import apply_plan, wait_carrier
    from .calibrate import _cost_tools
    from .plan import build_plan
    from .preflight import check_plan

    tsnd, trcv = _cost_tools(("tcp_snd", "tcp_rcv"))
    out = []
    for path in paths:
        say(f"measuring TCP on {path} ({len(writes)} write sizes × {repeat} × {seconds:g} s)")
        comp = tcp_scenario(path, writes[0], seconds)
        plan = build_plan(comp.graph, lab.prefix, features)
        check_plan(plan, features)
        apply_plan(plan, created=lab.netns, guard=lab.critical)
        wait_carrier(plan)
        try:
            for write in writes:
                with foreground():
                    runs = [_stream_point(lab, plan, comp, write, seconds, tsnd, trcv) for _ in range(repeat)]
                row: dict[str, Any] = {"path": path, "write": write}
                for k in ("gbps", "send_ns_per_byte", "recv_ns_per_byte"):
                    row[k] = statistics.median(r[k] for r in runs)
                row["runs"] = len(runs)
                out.append(row)
        finally:
            lab.cleanup()
    return out


def check_tcp(profile: CostProfile, paths: tuple[str, ...], *, seconds: float, repeat: int,
              say: Callable[[str], None], write: int = CHECK_WRITE, probes: bool = True) -> list[dict[str, Any]]:
    """The DES's predicted ``tcp_stream`` throughput under ``profile`` against the netns engine's
    (its agents), the median of ``repeat`` real runs of ``seconds`` each; with ``probes``, also
    against the C probes on the same path (the kernel's throughput without the agents' Python)."""
    from simnet.engines.des.engine import run_des

    from .engine import run_netns
    from .preflight import probe_kernel

    rows = []
    for path in paths:
        predicted = stream_gbps(run_des(tcp_scenario(path, write, DES_SECONDS * 3), costs=profile).flows[0])
        real = []
        for i in range(repeat):
            say(f"checking tcp_stream on {path} (run {i + 1} of {repeat}, {seconds:g} s)")
            with foreground():
                real.append(stream_gbps(run_netns(tcp_scenario(path, write, seconds)).flows[0]))
        measured = statistics.median(real)
        row = {"path": path, "write": write, "predicted_gbps": predicted, "measured_gbps": measured,
               "runs_gbps": real, "error": predicted / measured - 1.0 if measured else float("inf"),
               "when": datetime.datetime.now().isoformat(timespec="seconds")}
        if probes:
            with Lab() as lab:
                features = probe_kernel(lab, {"veth", "bridge", "vxlan"}, set(), iptables=False)
                (pt,) = measure_tcp(lab, features, (path,), [write], seconds, repeat, say)
            row["probe_gbps"] = pt["gbps"]
            row["probe_error"] = predicted / pt["gbps"] - 1.0 if pt["gbps"] else float("inf")
        rows.append(row)
    return rows
