"""Workloads on the netns engine: each ``app`` becomes a client and a server agent, and a flow.

:data:`APPS` maps a workload's ``app`` to its replay: the agents' configurations (the
scenario's timing and socket options), a bound on how long it may take, and how the agents'
results become the flow's row in flows.csv (the DES's schema). ``udp`` and ``udp_rr`` are
here, ``tcp_bulk``, ``tcp_stream`` and ``tcp_rr`` in tcpflows.py (agents in agents/tcp.py).

Applications are pinned to CPUs as the model pins them: in workload order, the server (sink)
then the client take the next CPU of their host (for TCP the client, then the server), round-robin (``Host.app_cpu``); the hosts'
CPUs are laid on the machine's in turn (host 1's CPUs first, then host 2's, …) and the
agent takes its CPU modulo the machine's. They run SCHED_FIFO (servers above clients, so that a
receiver sharing its CPU with a sender that never pauses still reads, as the model's FIFO CPU
lets it): the model's applications own their CPU, and under the default scheduler a receiver
woken on a CPU that something else uses waits milliseconds while its socket overflows. TCP's
agents run under the default scheduler: flow control keeps a slow reader from losing data,
and a real-time writer that never sleeps would starve its CPU's softirq work.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from simnet.compile import Compiled, WorkloadPlan
from simnet.models.linux.params import StackParams, apply_sysctls
from simnet.results.results import FlowResult
from simnet.rng import stream

from .tcpflows import tcp_bound, tcp_client, tcp_flow_result, tcp_server

RTPRIO_SERVER = 20
RTPRIO_CLIENT = 10
PROXY_ROLES = {"udp": "docker_proxy.udp", "tcp": "docker_proxy.tcp"}     # agent role per published protocol

__all__ = ["AgentPair", "agent_configs", "proxy_configs", "proxy_rules", "bound_s", "quiesce_bound_s", "flow_result",
           "APPS"]


@dataclass
class AgentPair:
    """The two agents of one workload."""

    index: int
    name: str
    app: str
    plan: WorkloadPlan
    client_ns: str
    client: dict[str, Any]
    server_ns: str | None
    server: dict[str, Any] | None


def _udp_client(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    w = wp.spec
    cfg: dict[str, Any] = {"daddr": wp.daddr, "dport": wp.dport, "count": w.count, "payload": w.payload,
                           "interval_s": w.interval_s(), "start_s": w.start, "sndbuf": w.sndbuf, "sport": w.sport}
    if w.arrival == "poisson" and w.count > 0:
        # the model's draws (models/apps/udp.py UdpSender): the same stream, the same times
        gaps = stream(comp.scenario.seed, f"flow:{wp.name}").exponential(w.interval_s(), size=w.count)
        gaps[0] = 0.0
        cfg["times"] = np.cumsum(gaps).tolist()
    return cfg


def _udp_server(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    return {"port": wp.listen_port or wp.dport, "rcvbuf": wp.spec.rcvbuf}


def _udp_bound(wp: WorkloadPlan) -> float:
    w = wp.spec
    return w.start + w.count * (w.interval_s() + 300e-6)


def _rr_client(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    w = wp.spec
    return {"daddr": wp.daddr, "dport": wp.dport, "count": w.count, "request": w.request, "response": w.response,
            "interval_s": w.interval, "timeout_s": w.timeout, "start_s": w.start, "sport": w.sport}


def _rr_server(comp: Compiled, wp: WorkloadPlan) -> dict[str, Any]:
    return {"port": wp.listen_port or wp.dport, "response": wp.spec.response}


def _rr_bound(wp: WorkloadPlan) -> float:
    w = wp.spec
    answered = wp.dst_netns is not None and w.listen
    per = w.interval + (2e-3 if answered else w.timeout)
    return w.start + w.count * per + (20 * w.timeout if answered else 0.0)


@dataclass(frozen=True)
class AppReplay:
    client: Any
    server: Any
    bound: Any
    realtime: bool = True          # run the agents SCHED_FIFO (see the module docstring)
    result: Any = None             # (pair, client, server, t0) -> FlowResult; None: the UDP one
    client_first: bool = False     # the model takes the client's CPU before the server's (its TCP apps)


APPS: dict[str, AppReplay] = {
    "udp": AppReplay(_udp_client, _udp_server, _udp_bound),
    "udp_rr": AppReplay(_rr_client, _rr_server, _rr_bound),
    **{app: AppReplay(tcp_client, tcp_server, tcp_bound, realtime=False, result=tcp_flow_result, client_first=True)
       for app in ("tcp_bulk", "tcp_stream", "tcp_rr")},
}


def agent_configs(comp: Compiled, deadline_t: float) -> list[AgentPair]:
    """Agent configurations for every workload, with CPUs assigned as the model assigns them."""
    g = comp.graph
    next_cpu: dict[str, int] = defaultdict(int)
    until = comp.scenario.run.until

    first_cpu: dict[str, int] = {}            # each host's CPUs take the machine's CPUs in turn
    k = 0
    for h, spec in comp.hosts.items():
        first_cpu[h] = k
        k += spec["cpus"]

    def cpu_of(ns: str) -> int:
        host = g.nodes[ns]["host"]
        i = next_cpu[host] % comp.hosts[host]["cpus"]
        next_cpu[host] += 1
        return first_cpu[host] + i

    for ns, _r in proxy_rules(comp):          # the model starts docker-proxy processes first
        next_cpu[g.nodes[ns]["host"]] += 1
    out = []
    for wp in comp.workloads:
        app = APPS.get(wp.app)
        if app is None:
            raise ValueError(f"the netns engine cannot replay {wp.app} workloads yet ({wp.name})")
        server = server_ns = None
        # the model's TCP workloads take the client's CPU first, the UDP ones the server's (des/build.py)
        ccpu = cpu_of(wp.src_netns) if app.client_first else None
        if wp.dst_netns is not None and wp.spec.listen:
            server_ns = wp.dst_netns
            server = {**app.server(comp, wp), "cpu": cpu_of(server_ns), "deadline": deadline_t,
                      "rtprio": RTPRIO_SERVER if app.realtime else None}
        client = {**app.client(comp, wp), "cpu": cpu_of(wp.src_netns) if ccpu is None else ccpu,
                  "deadline": deadline_t, "until_s": until, "rtprio": RTPRIO_CLIENT if app.realtime else None}
        out.append(AgentPair(wp.index, wp.name, wp.app, wp, wp.src_netns, client, server_ns, server))
    return out


def proxy_rules(comp: Compiled) -> list[tuple[str, dict[str, Any]]]:
    """The published ports a docker-proxy process serves, in the model's order (sim/engines/des/build.py
    starts one per rule of models/apps/docker_proxy.py ``PROXIES``): (host namespace, rule) for every
    UDP and TCP rule of a host whose daemon runs the userland proxy."""
    out = []
    for n, d in comp.graph.nodes(data=True):
        nat = d.get("nat") if d["kind"] == "netns" else None
        if nat and nat["userland_proxy"]:
            out += [(n, r) for r in nat["dnat"] if r["proto"] in PROXY_ROLES]
    return out


def proxy_configs(comp: Compiled, deadline_t: float) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, agent role, configuration) of every docker-proxy, on the CPUs the model gives them:
    each host's next application CPUs, before the workloads' (see :func:`agent_configs`)."""
    g = comp.graph
    first = 0
    first_cpu: dict[str, int] = {}
    for h, spec in comp.hosts.items():
        first_cpu[h] = first
        first += spec["cpus"]
    used: dict[str, int] = defaultdict(int)
    out = []
    for ns, r in proxy_rules(comp):
        host = g.nodes[ns]["host"]
        cpu = first_cpu[host] + used[host] % comp.hosts[host]["cpus"]
        used[host] += 1
        cfg = {"host_port": r["host_port"], "backend_addr": r["to_addr"], "backend_port": r["to_port"], "cpu": cpu,
               "deadline": deadline_t}
        if r["proto"] == "tcp":
            # under the default scheduler, as the TCP agents; the model's proxy sockets take the
            # namespace's congestion control (TcpSock), which the agent sets per socket
            cfg.update(rtprio=None, cc=_ns_cc(comp, ns))
        else:
            cfg.update(rtprio=RTPRIO_SERVER)
        out.append((ns, PROXY_ROLES[r["proto"]], cfg))
    return out


def _ns_cc(comp: Compiled, ns: str) -> str:
    """``net.ipv4.tcp_congestion_control`` of ``ns`` (the model's default: cubic)."""
    v = comp.graph.nodes[ns]["sysctls"].get("net.ipv4.tcp_congestion_control")
    return str(v) if v else StackParams().tcp.congestion_control


def bound_s(comp: Compiled) -> float:
    """How long the workloads may take at most (then the replay is abandoned)."""
    longest = max((APPS[wp.app].bound(wp) for wp in comp.workloads if wp.app in APPS), default=0.0)
    until = comp.scenario.run.until
    if until is not None:
        longest = min(longest, until)
    return max(longest, until or 0.0) + 10.0


def quiesce_bound_s(comp: Compiled) -> float:
    """Longest the kernel may keep a packet after the workloads: ARP retries, fragment reassembly."""
    worst = 1.0
    for n, d in comp.graph.nodes(data=True):
        if d["kind"] != "netns":
            continue
        p = apply_sysctls(StackParams(), d["sysctls"])
        worst = max(worst, p.neigh.mcast_solicit * p.neigh.retrans_time_s + p.ip.ipfrag_time_s + 1.0)
    return worst


def flow_result(pair: AgentPair, client: Any, server: Any, t0: float) -> FlowResult:
    """One flows.csv row from the agents' reports (times relative to time zero)."""
    custom = APPS[pair.app].result
    if custom is not None:
        return custom(pair, client, server, t0)
    wp, w = pair.plan, pair.plan.spec
    c = {**(client.done or {}), **(client.result or {})}
    s = (server.result or {}) if server is not None else {}
    if pair.app == "udp":
        got, lat, sent_at = s, s.get("latencies_s", []), s.get("sent_at", [])
        delivered, dbytes, last = s.get("delivered", 0), s.get("bytes_delivered", 0), s.get("last_recv")
    else:
        got, lat, sent_at = c, c.get("latencies_s", []), c.get("sent_at", [])
        delivered, dbytes, last = c.get("delivered", 0), c.get("bytes_delivered", 0), c.get("last_recv")
    del got

    def rel(t: float | None) -> float | None:
        return None if t is None else t - t0

    return FlowResult(name=wp.name, app=wp.app, src=w.from_, dst=w.to, proto="udp", sport=c.get("sport", 0),
                      dport=wp.dport, packets_sent=c.get("sent", 0), packets_delivered=delivered,
                      bytes_sent=c.get("bytes_sent", 0), bytes_delivered=dbytes,
                      send_errors=c.get("send_errors", 0), timeouts=c.get("timeouts", 0),
                      start_s=rel(c.get("first_send")), end_s=rel(last),
                      latencies_s=np.asarray(lat, dtype=float), sent_s=np.asarray(sent_at, dtype=float) - t0)
