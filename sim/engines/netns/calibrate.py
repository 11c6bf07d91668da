"""``simnet calibrate``: this machine's stack costs, measured on real namespaces, as a cost profile.

Method (the one the default profile's numbers come from; models/linux/cpu.py): a C
``send()`` loop (tools/costs/snd.c, built with the machine's ``cc``) pinned to one CPU sends
UDP datagrams as fast as it can for ``seconds`` per point, a C receiver (tools/costs/rcv.c)
pinned to another reads them; each reports its thread's CPU time per datagram. veth and
loopback deliver in the sender's softirq, so the sender's CPU time per datagram is the whole
path up to the receiving socket, the receiver's is ``recvfrom()``. Paths, each built by the
netns engine's own plan from a scenario graph: ``loopback`` (two host-networked
containers), ``veth`` (two namespaces joined by one veth pair), ``bridge`` (two containers on
docker0), ``router`` (two bridge networks routed through the host), ``vxlan`` (Docker's overlay
between two hosts whose underlay is a veth pair: container veth, br0, vxlan0, the hosts'
stacks, vxlan0, br0, veth — all in the sender's softirq, as on the model's veths; payloads
above the overlay's 1422 bytes are sent as 1422), ``macvlan`` (two bridge-mode macvlan
children of one parent: macvlan_xmit, dev_forward_skb, macvlan_handle_frame) and ``nat``
(a published port reached from a container on the same bridge without the userland proxy:
PREROUTING DNAT and conntrack on every packet, forwarded back out of docker0; needs
iptables); payloads of several sizes.

Fit: the DES, run on the same graphs with a unit cost per stage, says which stages each
path charges per datagram and for how many bytes (its ledger), so every measurement is one
linear equation in the stages' per-packet and per-byte costs. They are solved by least
squares in relative terms, pulled towards the current profile (ridge, weight 0.05) so that
stages the measurements cannot tell apart keep their ratio; stages no path exercises
(physical NICs, ARP, ICMP) keep their current cost. The profile is written as JSON for
``simnet run --cost-profile FILE``.

Check (``--check``): right after, the DES with the new profile predicts the throughput of a
CPU-bound UDP sender (1472-byte datagrams) on each path, and the real sender is measured
again: the table of predicted vs measured is the calibration's figure of merit. Each point is
run ``repeat`` times (``--repeat``) and the least disturbed run counts (the lowest CPU time
per datagram; for the check, the highest rate): other load on the machine only ever slows a
run down.

Stages that always occur together on the measured paths (``vxlan_xmit`` and ``vxlan_rcv``,
``macvlan_xmit`` and ``macvlan_rcv``, ``nf_conntrack`` and ``nf_nat``) cannot be told apart by
the measurements: the fit moves their sum and keeps the current profile's ratio.

TCP: calibrate_tcp.py fits the TCP stages to real streams on the loopback and veth paths, on
top of the UDP fit, and checks ``tcp_stream`` throughput on the veth, bridge and vxlan paths.

Scope and limitations: CPU time is the kernel's tick-based accounting of the sender thread; the machine's
other load disturbs the numbers (run it on a quiet machine).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import simnet
from simnet.compile import Compiled, WorkloadPlan
from simnet.models.docker.graph import add_veth_pair
from simnet.models.linux.cpu import DEFAULT_COSTS, NS, US, CostProfile, Stage

from .apply import apply_plan, wait_carrier
from .lab import Lab
from .plan import build_plan
from .preflight import Unavailable, check_host, check_plan, probe_kernel

__all__ = ["calibrate", "CalibrationError", "PATHS", "path_scenario", "stage_loads", "path_cost_us", "predict_pps"]

RIDGE = 0.05
PATHS = ("loopback", "veth", "bridge", "router", "vxlan", "macvlan", "nat")
VXLAN_MAX_PAYLOAD = 1422       # the overlay's MTU 1450 - 28: larger datagrams would be fragmented inside
_SCEN = {
    "loopback": """
name: cal-loopback
containers: {a: {networks: [host]}, b: {networks: [host]}}
workloads: [{name: f, app: udp, from: a, to: b, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
    "bridge": """
name: cal-bridge
containers: {a: {}, b: {}}
workloads: [{name: f, app: udp, from: a, to: b, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
    "router": """
name: cal-router
hosts: {host: {daemon: {iptables: false}}}
networks: {n1: {subnet: 10.71.0.0/24}, n2: {subnet: 10.72.0.0/24}}
containers: {a: {networks: [n1]}, b: {networks: [n2]}}
workloads: [{name: f, app: udp, from: a, to: b, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
    "vxlan": """
name: cal-vxlan
hosts: {h1: {cpus: 2}, h2: {cpus: 2}}
links: [{endpoints: [h1, h2], subnet: 10.73.0.0/24}]
networks: {ov: {driver: overlay}}
containers: {a: {host: h1, networks: [ov]}, b: {host: h2, networks: [ov]}}
workloads: [{name: f, app: udp, from: a, to: b, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
    "macvlan": """
name: cal-macvlan
hosts: {h1: {cpus: 2}, h2: {cpus: 2}}
links: [{endpoints: [h1, h2], subnet: 10.74.0.0/24}]
networks: {mv: {driver: macvlan, subnet: 10.74.0.0/24, gateway: 10.74.0.254, options: {parent: eth0}}}
containers: {a: {host: h1, networks: [mv]}, b: {host: h1, networks: [mv]}}
workloads: [{name: f, app: udp, from: a, to: b, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
    "nat": """
name: cal-nat
hosts: {host: {daemon: {userland_proxy: false}}}
containers: {a: {}, b: {ports: ["9000:9000/udp"]}}
workloads: [{name: f, app: udp, from: a, to: host, port: 9000, count: COUNT, payload: SIZE, interval: INTERVAL}]
""",
}


class CalibrationError(Exception):
    """A measurement failed (the message says which)."""


def path_payload(path: str, size: int) -> int:
    """The payload a point of ``path`` sends for a requested ``size`` (vxlan: at most one inner packet)."""
    return min(size, VXLAN_MAX_PAYLOAD) if path == "vxlan" else size


def path_scenario(path: str, size: int, count: int = 200, interval: str = "20us") -> Compiled:
    """The compiled scenario of one calibration path: a UDP flow from a to b."""
    text = _SCEN["bridge" if path == "veth" else path]
    text = text.replace("COUNT", str(count)).replace("SIZE", str(path_payload(path, size)))
    text = text.replace("INTERVAL", interval)
    comp = simnet.compile_scenario(simnet.loads(text, f"<calibrate:{path}>"))
    if path == "veth":
        comp = _direct_veth(comp)
    elif path == "vxlan":
        comp = _underlay_as_veth(comp)
    return comp


def _underlay_as_veth(comp: Compiled) -> Compiled:
    """The hosts' NICs rewired as the two ends of a plain veth pair: the replay's NIC stand-in is a
    veth, whose receive runs in the sender's softirq, and so does the model's veth (a NIC's receive
    would run on its RSS CPU and charge a physical NIC's driver stages)."""
    g = comp.graph.copy()
    for u, v, k in list(g.edges(keys=True)):
        if g.edges[u, v, k]["kind"] == "wire":
            g.remove_edge(u, v, k)
            g.add_edge(u, v, kind="veth")
            g.nodes[u]["kind"] = "veth"
            g.nodes[u]["peer"] = v
    return Compiled(scenario=comp.scenario, graph=g, hosts=comp.hosts, container_netns=comp.container_netns,
                    networks=comp.networks, workloads=comp.workloads)


def _direct_veth(comp: Compiled) -> Compiled:
    """The bridge scenario rewired: a's and b's eth0 are the two ends of one veth pair."""
    g = comp.graph.copy()
    addrs = {c: g.nodes[f"{c}:eth0"]["addrs"] for c in ("a", "b")}
    drop = [n for n, d in g.nodes(data=True) if d.get("kind") in ("veth", "bridge")]
    g.remove_nodes_from(drop)
    for c in ("a", "b"):
        g.nodes[c]["routes"] = []
    add_veth_pair(g, "a", "eth0", "b", "eth0", addrs_a=addrs["a"], addrs_b=addrs["b"])
    wp = comp.workloads[0]
    w = WorkloadPlan(index=0, name=wp.name, app=wp.app, spec=wp.spec, src_netns="a", dst_netns="b", daddr=wp.daddr,
                     dport=wp.dport, path=("a", "b"))
    return Compiled(scenario=comp.scenario, graph=g, hosts=comp.hosts, container_netns=comp.container_netns,
                    networks=comp.networks, workloads=[w])


def stage_loads(comp: Compiled) -> dict[str, dict[str, float]]:
    """Per datagram, for the sender's and the receiver's CPU: how often each stage is charged
    (``send_pp``, ``recv_pp``) and for how many bytes (``send_pb``, ``recv_pb``), from the DES's
    ledger. The receiver's ``recvfrom()`` charges one ``syscall`` (no bytes) and ``udp_recvmsg``;
    everything else runs on the sender's CPU (veth and loopback receive in its softirq)."""
    from simnet.engines.des.engine import run_des

    unit_pp = CostProfile("unit-packet", {k: Stage(1e-9, 0.0, "") for k in DEFAULT_COSTS.stages})
    unit_pb = CostProfile("unit-byte", {k: Stage(0.0, 1e-12, "") for k in DEFAULT_COSTS.stages})
    out = []
    for prof, scale in ((unit_pp, 1e-9), (unit_pb, 1e-12)):
        res = run_des(comp, costs=prof)
        f = res.flows[0]
        n = max(f.layer_packets, 1)
        out.append({k[4:]: v / scale / n for k, v in f.layers_s.items() if k.startswith("cpu:") and k != "cpu:siblings"})
    pp, pb = out
    send_pp = {k: v - (1.0 if k == "syscall" else 0.0) for k, v in pp.items() if k != "udp_recvmsg"}
    send_pb = {k: v for k, v in pb.items() if k != "udp_recvmsg" and v}
    return {"send_pp": send_pp, "send_pb": send_pb, "recv_pp": {"syscall": 1.0, "udp_recvmsg": pp.get("udp_recvmsg", 0)},
            "recv_pb": {"udp_recvmsg": pb.get("udp_recvmsg", 0.0)}}


def _cost_tools(names: tuple[str, ...] = ("snd", "rcv")) -> list[Path]:
    """The C programs ``names`` of simnet's source tree (tools/costs/NAME.c), built into a cache directory."""
    src = Path(__file__).resolve().parents[3] / "tools" / "costs"
    if not all((src / f"{n}.c").exists() for n in names):
        raise Unavailable(f"simnet calibrate needs the C programs of tools/costs (not found at {src}): install "
                          "simnet from its source tree (pip install -e .)")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise Unavailable(f"simnet calibrate needs a C compiler (cc) to build tools/costs/{', '.join(names)}")
    out = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "simnet" / "costs"
    out.mkdir(parents=True, exist_ok=True)
    bins = []
    for name in names:
        b = out / name
        if not b.exists() or b.stat().st_mtime < (src / f"{name}.c").stat().st_mtime:
            cp = subprocess.run([cc, "-O2", "-o", str(b), str(src / f"{name}.c")], capture_output=True, text=True)
            if cp.returncode != 0:
                raise CalibrationError(f"cc {name}.c: {cp.stderr.strip()}")
        bins.append(b)
    return bins


_SND = re.compile(r"size=(\d+) pkts=(\d+) wall=([\d.]+) cpu=([\d.]+) us_per_pkt_cpu=([\d.]+)")
_RCV = re.compile(r"recv pkts=(\d+) cpu=([\d.]+) us_per_pkt=([\d.]+)")


def _measure_path(lab: Lab, path: str, comp: Compiled, features: Any, sizes: list[int], seconds: float,
                  snd: Path, rcv: Path, repeat: int = 1, best: str = "cpu") -> list[dict[str, Any]]:
    """Each size ``repeat`` times; the least disturbed run counts (``best``: the lowest sender CPU
    time per datagram, or the highest rate with ``"pps"``)."""
    plan = build_plan(comp.graph, lab.prefix, features)
    check_plan(plan, features)
    apply_plan(plan, created=lab.netns, guard=lab.critical)
    wait_carrier(plan)
    wp = comp.workloads[0]
    ncpu = os.cpu_count() or 1
    rows = []
    try:
        for size in sizes:
            runs = [_point(lab, plan, wp.src_netns, wp.dst_netns, wp.daddr, path_payload(path, size), seconds,
                           snd, rcv, ncpu) for _ in range(repeat)]
            rows.append(min(runs, key=lambda x: x["us_per_packet"]) if best == "cpu"
                        else max(runs, key=lambda x: x["packets"] / x["wall_s"]))
    finally:
        lab.cleanup()
    return rows


def _point(lab: Lab, plan: Any, src: str, dst: str, daddr: str, size: int, seconds: float, snd: Path, rcv: Path,
           ncpu: int) -> dict[str, Any]:
    """One run of the C probes: the receiver on CPU 1, the sender on CPU 0 for ``seconds``."""
    r = lab.spawn(plan.netns[dst], ["taskset", "-c", str(1 % ncpu), str(rcv), f"{seconds + 2:g}"])
    time.sleep(0.2)
    s = lab.spawn(plan.netns[src], ["taskset", "-c", "0", str(snd), daddr, str(size), f"{seconds:g}"])
    s_out, s_err = s.communicate(timeout=seconds + 30)
    r_out, r_err = r.communicate(timeout=seconds + 30)
    ms, mr = _SND.search(s_out or ""), _RCV.search(r_out or "")
    if not ms or not mr:
        raise CalibrationError(f"no measurement ({(s_err or r_err or s_out).strip()[:200]})")
    return {"payload": size, "packets": int(ms.group(2)), "wall_s": float(ms.group(3)),
            "us_per_packet": float(ms.group(5)), "received": int(mr.group(1)), "recv_us_per_packet": float(mr.group(3))}


def _fit(points: list[dict[str, Any]], base: CostProfile) -> CostProfile:
    """Least squares on relative errors, with a ridge towards ``base`` (see the module docstring)."""
    cols: list[tuple[str, str]] = []
    for p in points:
        loads = p["loads"]
        for t, key in (("pp", "send_pp"), ("pp", "recv_pp"), ("pb", "send_pb"), ("pb", "recv_pb")):
            for k, v in loads[key].items():
                if v and (t, k) not in cols:
                    cols.append((t, k))
    x0 = np.array([base.stages[k].per_packet_s / US if t == "pp" else base.stages[k].per_byte_s / US
                   for t, k in cols])            # µs per packet, µs per byte
    x0 = np.maximum(x0, 1e-5)
    rows, rhs = [], []
    for p in points:
        for side, y in (("send", p["us_per_packet"]), ("recv", p["recv_us_per_packet"])):
            a = np.array([p["loads"][f"{side}_{t}"].get(k, 0.0) for t, k in cols])
            rows.append(a * x0 / y)
            rhs.append(1.0)
    A = np.vstack([np.array(rows), np.sqrt(RIDGE) * np.eye(len(cols))])
    b = np.concatenate([np.array(rhs), np.sqrt(RIDGE) * np.ones(len(cols))])
    z, *_ = np.linalg.lstsq(A, b, rcond=None)
    x = np.maximum(z, 0.05) * x0
    stages = dict(base.stages)
    host = platform.node() or "this machine"
    note = f"fitted by simnet calibrate on {host} (Linux {platform.release()})"
    for (t, k), v in zip(cols, x):
        st = stages[k]
        stages[k] = Stage(v * US, st.per_byte_s, note) if t == "pp" else Stage(stages[k].per_packet_s, v * US, note)
    day = datetime.date.today().isoformat()
    return CostProfile(f"calibrated-{host}-{day}", stages)


def _cannot(path: str, features: Any) -> str:
    """Why ``path`` cannot be measured here ("" when it can)."""
    kind = {"vxlan": "vxlan", "macvlan": "macvlan"}.get(path)
    if kind and kind not in features.link_kinds:
        return f"the kernel cannot create {kind} devices"
    if path == "nat" and features.iptables_error is None:
        return "iptables is not installed"
    if path == "nat" and features.iptables_error:
        return f"iptables cannot program a nat table here ({features.iptables_error})"
    return ""


def path_cost_us(loads: dict[str, dict[str, float]], costs: CostProfile, side: str = "send") -> float:
    """A path's CPU time per datagram on the sender's (or receiver's) CPU under ``costs``."""
    return (sum(costs.stages[k].per_packet_s * v for k, v in loads[f"{side}_pp"].items())
            + sum(costs.stages[k].per_byte_s * v for k, v in loads[f"{side}_pb"].items())) / US


def predict_pps(path: str, size: int, costs: CostProfile, count: int = 3000) -> float:
    """The DES's throughput (datagrams per second) of a CPU-bound UDP sender on ``path``."""
    from simnet.engines.des.engine import run_des

    comp = path_scenario(path, size, count=count, interval="0s")
    f = run_des(comp, costs=costs).flows[0]
    # the sender's pace: from the first send to the last send
    return (f.packets_sent - 1) / max(float(f.sent_s[-1] - f.sent_s[0]), 1e-12) if len(f.sent_s) > 1 else 0.0


def calibrate(output: Path, *, seconds_per_point: float = 1.0, sizes: list[int] | None = None, check: bool = True,
              say: Callable[[str], None] = lambda _m: None, paths: tuple[str, ...] = PATHS,
              repeat: int = 1, writes: list[int] | None = None, check_seconds: float = 3.0) -> dict[str, Any]:
    """Measure, fit, write ``output``; returns the measurements and the check.

    UDP first (every path of ``paths``, ``sizes``), then TCP (calibrate_tcp.py: the TCP stages
    fitted on the loopback and veth paths among ``paths`` at ``writes``, [] for none, on top of
    the UDP fit); the check runs the UDP one, then ``tcp_stream`` on veth, bridge and vxlan among
    ``paths`` (``check_seconds`` per real run, the median of ``max(repeat, 3)``)."""
    from . import calibrate_tcp as ct

    sizes = sizes or [64, 512, 1472]
    writes = list(ct.WRITES) if writes is None else writes
    check_host({"ethtool", "taskset"})
    snd, rcv = _cost_tools()
    points: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    with Lab() as lab:
        features = probe_kernel(lab, {"veth", "bridge", "vxlan", "macvlan"}, set(),
                                iptables=shutil.which("iptables") is not None)
        for path in list(paths):
            why = _cannot(path, features)
            if why:
                skipped[path] = why
                say(f"skipping {path}: {why}")
        paths = tuple(p for p in paths if p not in skipped)
        for path in paths:
            say(f"measuring {path} ({len(sizes)} sizes × {seconds_per_point:g} s)")
            rows = _measure_path(lab, path, path_scenario(path, sizes[0]), features, sizes, seconds_per_point, snd,
                                 rcv, repeat)
            for row in rows:
                points.append({"path": path, **row, "loads": stage_loads(path_scenario(path, row["payload"]))})
        profile = _fit(points, DEFAULT_COSTS)
        tcp_points: list[dict[str, Any]] = []
        tcp_paths = tuple(p for p in ct.FIT_PATHS if p in paths)
        if writes and tcp_paths:
            tcp_points = ct.measure_tcp(lab, features, tcp_paths, writes, max(seconds_per_point, 1.0), repeat, say)
            profile = ct.fit_tcp(tcp_points, profile, say=say)
            for p in tcp_points:
                for side in ("send", "recv"):
                    p[f"fit_{side}_ns_per_byte"] = ct.cpu_ns_per_byte(p["loads"], side, profile)
                p["des_gbps"] = p["loads"]["gbps"]
        for p in points:
            p["fit_us_per_packet"] = path_cost_us(p["loads"], profile)
            p["default_us_per_packet"] = path_cost_us(p["loads"], DEFAULT_COSTS)
            p["fit_recv_us_per_packet"] = path_cost_us(p["loads"], profile, "recv")
        report: dict[str, Any] = {"points": [{k: v for k, v in p.items() if k != "loads"} for p in points],
                                  "tcp_points": [{k: v for k, v in p.items() if k != "loads"} for p in tcp_points],
                                  "skipped": skipped}
        data = profile.to_dict()
        data["source"] = {"command": "simnet calibrate", "kernel": platform.release(), "host": platform.node(),
                          "seconds_per_point": seconds_per_point, "sizes": sizes, "points": report["points"],
                          "tcp_writes": writes, "tcp_points": report["tcp_points"]}
        output.write_text(json.dumps(data, indent=2) + "\n")
        if check:
            report["check"] = []
            for path in paths:
                say(f"checking {path}")
                real = _measure_path(lab, path, path_scenario(path, 1472), features, [1472], seconds_per_point, snd,
                                     rcv, repeat, best="pps")[0]
                measured = real["packets"] / real["wall_s"]
                predicted = predict_pps(path, 1472, profile)
                report["check"].append({"path": path, "payload": real["payload"], "predicted_pps": predicted,
                                        "measured_pps": measured, "error": predicted / measured - 1.0})
    check_paths = tuple(p for p in ct.CHECK_PATHS if p in paths)
    if check and check_paths:
        report["tcp_check"] = ct.check_tcp(profile, check_paths, seconds=check_seconds, repeat=max(repeat, 3),
                                           say=say)
    return report
