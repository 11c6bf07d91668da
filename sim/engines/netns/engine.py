"""The netns engine: replay a compiled scenario on real Linux network namespaces.

``run_netns`` checks the host (root, tools), asks the kernel what it can build, builds the
plan (plan.py) and applies it (apply.py) inside a :class:`Lab` that owns and removes
everything, waits for the links, starts one namespace agent per namespace (ARP frame counts,
counters; an external switch's namespace too), a docker-proxy agent per published UDP or TCP
port of a host that runs the userland proxy, and two workload agents per workload (agents/), pinned to
CPUs as the model pins its applications (the proxies first, as the model starts them), and
gives them one time zero. It then waits for the clients, for the
network to go quiet (no neighbour INCOMPLETE, no fragment in reassembly), for ``run.until``
if the scenario has one, stops the receivers (which read what is still queued: the kernel
counts ``InDatagrams`` when the application reads), then the proxies, and reads the counters —
with the NICs' promiscuity and unicast lists, the switches' FDBs and the iptables rules' packet
counters (state.py). The result has
the DES's schema (counters.json, flows.csv, latency.csv; summary.json with engine
``netns``), plus netns.json: the replay's notes (what was not reproduced), the machine-wide
ARP statistics, the kernel's full counters and anything the agents saw before time zero.

Scope and limitations: timing is the machine's (CPU speed, scheduling, other load), not the
model's; link propagation delay needs netem; counters are deltas over the run (taken when
the namespace agents are ready, before time zero).
Validation: tests/engines/netns/test_netns.py (as root: every bundled scenario the kernel
can build, compared with the DES counter by counter).
"""

from __future__ import annotations

import json
import os
import platform
import selectors
import time
from collections.abc import Callable
from typing import Any

from simnet.compile import Compiled
from simnet.results.results import Results

from . import workloads as wl
from .apply import ApplyError, apply_plan, ip_json, run, wait_carrier
from .counters import delta, read_arp_cache
from .lab import Lab
from .plan import Plan, PlanError, build_plan
from .preflight import Unavailable, check_host, check_plan, probe_kernel
from .state import read_l2_state, read_rule_counters
from .tcpflows import tcp_exactness
from .translate import kernel_counters

__all__ = ["run_netns", "plan_for", "Unavailable", "ReplayError"]

AGENTS_MODULE = "simnet.engines.netns.agents"
START_MARGIN_S = 0.15         # time zero this long after the last agent is ready


class ReplayError(Exception):
    """The replay failed after it started (an agent error, a failed plan step): the message says where."""


def plan_for(comp: Compiled, prefix: str = "sn00000", features: Any = None) -> Plan:
    """The plan of ``comp`` (for ``--dry-run``: no root needed); PlanError → Unavailable."""
    try:
        return build_plan(comp.graph, prefix, features)
    except PlanError as e:
        raise Unavailable(str(e)) from None


class _Agent:
    """The engine's end of one agent process."""

    def __init__(self, lab: Lab, kns: str, role: str, cfg: dict[str, Any], label: str) -> None:
        self.role, self.label = role, label
        self.proc = lab.python(kns, AGENTS_MODULE, role)
        self.send(cfg)
        self.ready: dict[str, Any] | None = None
        self.done: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()

    def read(self, timeout_s: float) -> dict[str, Any]:
        """The next message, within ``timeout_s``; an agent's error becomes ReplayError."""
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout_s):
                raise ReplayError(f"agent {self.label} did not answer within {timeout_s:.1f} s")
        finally:
            sel.close()
        line = self.proc.stdout.readline()
        if not line:
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()
            raise ReplayError(f"agent {self.label} exited: {err[-1] if err else 'no message'}")
        msg = json.loads(line)
        if "error" in msg:
            raise ReplayError(f"agent {self.label} failed: {msg['error']}")
        return msg


def _l3_devices(comp: Compiled, ns: str) -> list[str]:
    """Devices where the namespace's own stack sends and receives (not lo, not bridge ports)."""
    g = comp.graph
    return [g.nodes[d]["ifname"] for d in comp.devices(ns)
            if g.nodes[d]["kind"] != "loopback" and not g.nodes[d].get("master")]


def _nics(comp: Compiled, ns: str) -> list[str]:
    """Devices that stand in for physical NICs (veth ends: they do not pad short frames)."""
    g = comp.graph
    return [g.nodes[d]["ifname"] for d in comp.devices(ns) if g.nodes[d]["kind"] == "nic"]


def nic_filters(comp: Compiled, ns: str) -> dict[str, dict[str, Any]]:
    """Per NIC of ``ns`` with macvlan children: the children's MACs (its unicast list), those of
    bridge-mode children (their frames to each other pass the parent uncounted), those of private
    and passthru children (their broadcasts coming back from the wire are handed to them alone,
    never to the parent's stack) and whether the model's NIC filters (it is not promiscuous: no
    passthru child, no more children than slots)."""
    from simnet.models.linux.params import NicParams

    g = comp.graph
    out: dict[str, dict[str, Any]] = {}
    slots = NicParams().uc_filter_slots
    for nic in comp.devices(ns):
        if g.nodes[nic]["kind"] != "nic":
            continue
        kids = [g.nodes[v] for _u, v, k in g.out_edges(nic, data="kind")
                if k == "lower" and g.nodes[v]["kind"] == "macvlan"]
        if not kids:
            continue
        uc = sorted({k["mac"].lower() for k in kids if k["mode"] != "passthru"})
        out[g.nodes[nic]["ifname"]] = {
            "uc": uc, "internal": sorted({k["mac"].lower() for k in kids if k["mode"] == "bridge"}),
            "consumed": sorted({k["mac"].lower() for k in kids if k["mode"] not in ("bridge", "vepa")}),
            "filter": not any(k["mode"] == "passthru" for k in kids) and len(uc) <= slots}
    return out


def run_netns(comp: Compiled, *, progress: Callable[[str], None] | None = None, prefix: str | None = None,
              setup: Callable[[Lab, Plan], None] | None = None) -> Results:
    """Replay ``comp`` on real namespaces and return the kernel's view in the DES's schema.

    Raises Unavailable (nothing created) when the machine cannot run it, ReplayError or
    ApplyError when the replay fails (everything created removed), and Interrupted (a
    KeyboardInterrupt) on SIGINT/SIGTERM after removing everything.
    """
    say = progress or (lambda _m: None)
    wall0 = time.perf_counter()
    plan0 = plan_for(comp)
    check_host(plan0.needs_tools)
    with Lab(prefix) as lab:
        features = probe_kernel(lab, set(plan0.needs_link_kinds), set(plan0.needs_qdiscs),
                                iptables="iptables" in plan0.needs_tools)
        plan = plan_for(comp, lab.prefix, features)
        check_plan(plan, features)
        arp0 = read_arp_cache()
        say(f"building {len(plan.netns)} namespaces ({len(plan.ops)} steps)")
        apply_plan(plan, created=lab.netns, guard=lab.critical)
        try:
            wait_carrier(plan)
        except ApplyError as e:
            raise ReplayError(str(e)) from None
        if setup is not None:
            setup(lab, plan)
        res = _replay(comp, lab, plan, say)
        arp1 = read_arp_cache()
        res.extra["files"]["netns.json"]["arp_cache_machine_wide"] = delta(arp1, arp0)
    res.wall_s = time.perf_counter() - wall0
    return res


def _replay(comp: Compiled, lab: Lab, plan: Plan, say: Callable[[str], None]) -> Results:
    sc = comp.scenario
    hard_s = wl.bound_s(comp)
    deadline_t = time.monotonic() + hard_s + 30.0
    ns_agents = {ns: _Agent(lab, kns, "ns", {"devices": _l3_devices(comp, ns), "nics": _nics(comp, ns),
                                             "nic_filter": nic_filters(comp, ns), "deadline": deadline_t},
                            f"ns:{ns}")
                 for ns, kns in plan.netns.items()}
    pairs = wl.agent_configs(comp, deadline_t)
    proxy_agents = [(ns, _Agent(lab, plan.netns[ns], role, cfg, f"docker-proxy:{ns}:{cfg['host_port']}"))
                    for ns, role, cfg in wl.proxy_configs(comp, deadline_t)]
    clients: dict[int, _Agent] = {}
    servers: dict[int, _Agent] = {}
    for p in pairs:
        if p.server is not None:
            servers[p.index] = _Agent(lab, plan.netns[p.server_ns], f"{p.app}.server", p.server,
                                      f"{p.name}.server")
        clients[p.index] = _Agent(lab, plan.netns[p.client_ns], f"{p.app}.client", p.client, f"{p.name}.client")
    every = [*ns_agents.values(), *(a for _ns, a in proxy_agents), *servers.values(), *clients.values()]
    for a in every:
        a.ready = a.read(30.0)
    t0 = time.monotonic() + START_MARGIN_S
    for a in every:
        a.send({"go": t0})
    say(f"replaying {len(clients)} workload(s)")
    pending = dict(clients)
    while pending:
        left = deadline_t - time.monotonic()
        sel = selectors.DefaultSelector()
        for i, a in pending.items():
            sel.register(a.proc.stdout, selectors.EVENT_READ, i)
        ready = sel.select(max(0.0, min(left, 1.0)))
        sel.close()
        for key, _ev in ready:
            a = pending.pop(key.data)
            a.done = a.read(1.0)["done"]
        if not ready and left <= 0:
            raise ReplayError(f"workloads {', '.join(clients[i].label for i in pending)} did not finish within "
                              f"{hard_s:.0f} s")
    time.sleep(0.02)                 # what is on its way reaches the receiving sockets
    quiet_s = _quiesce(plan, ns_agents, wl.quiesce_bound_s(comp))
    if sc.run.until is not None:
        rest = t0 + sc.run.until - time.monotonic()
        if rest > 0:
            say(f"waiting {rest:.1f} s for run.until")
            time.sleep(rest)
    t_end = time.monotonic()
    for a in [*servers.values(), *clients.values()]:
        a.send({"stop": True})
    for a in [*servers.values(), *clients.values()]:
        a.result = a.read(30.0)["result"]
    for _ns, a in proxy_agents:       # after the applications: what they sent last is relayed
        a.send({"stop": True})
    for _ns, a in proxy_agents:
        a.result = a.read(30.0)["result"]
    for a in ns_agents.values():
        a.send({"stop": True})
    ns_results = {}
    for ns, a in ns_agents.items():
        msg = a.read(30.0)
        while "result" not in msg:            # a late status answer
            msg = a.read(30.0)
        ns_results[ns] = msg["result"]
    qdiscs = _qdisc_stats(comp, plan)
    extra = read_l2_state(plan)
    extra["rules"] = read_rule_counters(plan)
    extra["proxies"] = {}
    for ns, a in proxy_agents:
        extra["proxies"].setdefault(ns, []).append(a.result)
    counters, raw, pre = kernel_counters(comp, ns_results, qdiscs, extra, plan)
    flows = [wl.flow_result(p, clients[p.index], servers.get(p.index), t0) for p in pairs]
    notes = list(plan.notes)
    if pre:
        notes.append("frames seen before time zero (excluded from the counters): " + "; ".join(pre))
    if any(a.ready and a.ready.get("realtime") is False for a in [*servers.values(), *clients.values()]):
        notes.append("the workload agents could not run SCHED_FIFO (no CAP_SYS_NICE?): other load on the machine "
                     "may delay them, and a receiver that falls behind drops datagrams the model does not")
    if quiet_s is None:
        notes.append("the network was not quiet when the counters were read (neighbour resolution or "
                     "reassembly still pending)")
    info = {"prefix": lab.prefix, "kernel": platform.release(), "machine_cpus": os.cpu_count(),
            "notes": notes, "plan_steps": len(plan.ops), "t_end_s": t_end - t0,
            # where each flow's packets are received (sink; request/response: both ends)
            "flow_netns": {p.name: [x for x in (p.server_ns, p.client_ns if p.app == "udp_rr" else None) if x]
                           for p in pairs},
            "tcp": tcp_exactness(comp),
            "agents": {a.label: {k: v for k, v in (a.result or {}).items() if k not in ("latencies_s", "sent_at")}
                       for a in [*servers.values(), *clients.values()]},
            "kernel_counters": raw}
    res = Results(scenario=sc.name, engine="netns", seed=sc.seed, sim_time_s=t_end - t0, wall_s=0.0, events=0,
                  partial=False, flows=flows, counters=counters, drops={}, ledger={}, cost_profile="",
                  graph=comp.graph, extra={"files": {"netns.json": info}, "notes": notes})
    return res


def _quiesce(plan: Plan, ns_agents: dict[str, _Agent], bound_s: float) -> float | None:
    """Wait until no neighbour is INCOMPLETE and no fragment waits for reassembly; seconds waited."""
    t_start = time.monotonic()
    while True:
        busy = False
        for ns, a in ns_agents.items():
            a.send({"status": True})
            st = a.read(10.0)["status"]
            if st["frag_inuse"]:
                busy = True
        if not busy:
            for kns in plan.netns.values():
                for e in ip_json("-n", kns, "neigh", "show"):
                    if "INCOMPLETE" in e.get("state", []):
                        busy = True
        waited = time.monotonic() - t_start
        if not busy:
            return waited
        if waited > bound_s:
            return None
        time.sleep(0.05)


def _qdisc_stats(comp: Compiled, plan: Plan) -> dict[str, dict[str, dict[str, int]]]:
    """The NICs' queue (the pfifo under the rate limiter) as the model's pfifo_fast stats."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for ns, devs in plan.devices.items():
        for ifname, d in devs.items():
            if d["kind"] != "nic":
                continue
            cp = run(["tc", "-n", plan.netns[ns], "-s", "-json", "qdisc", "show", "dev", ifname], check=False)
            try:
                qs = json.loads(cp.stdout or "[]")
            except json.JSONDecodeError:
                qs = []
            leaf = next((q for q in qs if q.get("handle") == "10:"), None)
            if leaf is None:
                continue
            out.setdefault(ns, {})[ifname] = {"qlen": leaf.get("qlen", 0), "backlog": leaf.get("backlog", 0),
                                              "drops": leaf.get("drops", 0), "sent_pkts": leaf.get("packets", 0),
                                              "sent_bytes": leaf.get("bytes", 0)}
    return out
