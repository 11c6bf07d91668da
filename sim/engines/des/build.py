"""Instantiate the Linux model from a compiled graph, and install the workloads' processes."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Callable

from simnet.compile import Compiled, WorkloadPlan
from simnet.kernel import SimContext
from simnet.models.apps.tcp import (SockOpts, TcpBulkClient, TcpFlowStats, TcpRrClient, TcpRrServer, TcpSink,
                                    TcpStreamClient)
from simnet.models.apps.udp import FlowStats, UdpRrClient, UdpRrServer, UdpSender, UdpSink
from simnet.models.linux.bridge import Bridge
from simnet.models.linux.cpu import CostProfile
from simnet.models.linux.dev import Loopback, NetDevice
from simnet.models.linux.fib import Route
from simnet.models.linux.netns import Host, Netns
from simnet.models.linux.nic import Nic, connect_wire
from simnet.models.linux.params import NicParams, StackParams, apply_sysctls
from simnet.models.linux.skb import Skb, ip_to_int, mac_to_int
from simnet.models.linux.veth import veth_pair
from simnet.ports import WiringError

__all__ = ["Network", "build_network", "install_workloads"]


@dataclass
class Network:
    """The instantiated model of one run."""

    ctx: SimContext
    hosts: dict[str, Host]
    netns: dict[str, Netns]
    devices: dict[str, NetDevice]          # graph node id -> device
    apps: list[Any] = field(default_factory=list)
    flows: list[FlowStats] = field(default_factory=list)
    timeseries: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> None:
        """Wiring checks before t = 0."""
        for nid, dev in self.devices.items():
            if dev.kind == "veth" and getattr(dev, "peer", None) is None:
                raise WiringError(f"veth {nid} has no peer")
            if dev.master is not None and dev not in dev.master.ports:
                raise WiringError(f"{nid} names a master that does not list it")
            if dev.ns.devices.get(dev.ifname) is not dev:
                raise WiringError(f"{nid} is not registered in its namespace")

    def skbs_in_flight(self) -> list[Skb]:
        """Every packet held anywhere: queues, rings, pending events (an independent census)."""
        out: list[Skb] = []
        for dev in self.devices.values():
            if isinstance(dev, Nic):
                out.extend(dev.in_flight())
            for n in dev.neigh.values():
                out.extend(n.arp_queue)
        for ns in self.netns.values():
            out.extend(ns.reasm.in_flight())
            for sk in ns.tcp.socks:
                out.extend(sk.backlog)
        for host in self.hosts.values():
            for cpu in host.cpus:
                for _fn, arg, skb in (*cpu.queue, *cpu.softq):
                    if isinstance(skb, Skb):
                        out.append(skb)
                    elif isinstance(arg, Skb):
                        out.append(arg)
        for _t, _p, _id, ev in self.ctx.env._queue:
            v = getattr(ev, "_value", None)
            if isinstance(v, Skb):
                out.append(v)
        return out


def _iface(text: str) -> tuple[int, int]:
    i = ipaddress.IPv4Interface(text)
    return int(i.ip), i.network.prefixlen


def _make_forward_filter(bridges: set[str]) -> Callable[[Skb, NetDevice, NetDevice], str | None]:
    """DOCKER-ISOLATION-STAGE-1/2: drop forwarding from one Docker bridge to another."""

    def filt(skb: Skb, in_dev: NetDevice, out_dev: NetDevice) -> str | None:
        i = in_dev.ifname
        o = out_dev.ifname
        if i != o and i in bridges and o in bridges:
            return "DOCKER-ISOLATION-STAGE-2"
        return None

    return filt


def build_network(comp: Compiled, ctx: SimContext, costs: CostProfile) -> Network:
    g = comp.graph
    hosts = {h: Host(ctx, h, spec["cpus"], costs) for h, spec in comp.hosts.items()}
    netns: dict[str, Netns] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] != "netns":
            continue
        params = apply_sysctls(StackParams(), d["sysctls"])
        netns[n] = Netns(ctx, n, hosts[d["host"]], params, hostname=d["hostname"], role=d["role"])
    devices: dict[str, NetDevice] = {}
    for nid, d in g.nodes(data=True):
        kind = d["kind"]
        if kind == "netns" or nid in devices:
            continue
        ns = netns[d["netns"]]
        mac = mac_to_int(d["mac"])
        if kind == "loopback":
            devices[nid] = Loopback(ns)
        elif kind == "nic":
            p = NicParams(rate_bps=d["rate_bps"], mtu_bytes=d["mtu"], txqueuelen_pkts=d["txqueuelen"],
                          tx_ring_pkts=d["tx_ring"], tso=d.get("tso", True), gro=d.get("gro", True))
            wire = next((e for _u, _v, e in g.out_edges(nid, data=True) if e["kind"] == "wire"), None)
            if wire is not None:
                p = dataclasses.replace(
                    p, rate_bps=min(p.rate_bps, wire["rate_bps"] or p.rate_bps), loss=wire["loss"],
                    queue_pkts=wire["queue"] or 0)
            devices[nid] = nic = Nic(ns, d["ifname"], mac, p)
            if wire is not None:
                nic.drop_frames = frozenset(wire["drop"])
                nic.impaired = bool(nic.drop_frames or wire["loss"] or wire.get("jitter_s"))
                if wire["loss"]:
                    nic.loss_rng = ctx.rng(f"link-loss:{nid}")
                if wire.get("jitter_s"):
                    nic.jitter_s = wire["jitter_s"]
                    nic.jitter_rng = ctx.rng(f"link-jitter:{nid}")
        elif kind == "bridge":
            devices[nid] = Bridge(ns, d["ifname"], mac, d["mtu"], ageing_s=ns.params.bridge.ageing_time_s,
                                  nf_call_iptables=ns.params.bridge.nf_call_iptables)
        elif kind == "veth":
            pid = d["peer"]
            pd = g.nodes[pid]
            a, b = veth_pair(ns, d["ifname"], mac, netns[pd["netns"]], pd["ifname"], mac_to_int(pd["mac"]),
                             mtu=d["mtu"])
            b.mtu = pd["mtu"]
            devices[nid], devices[pid] = a, b
        else:
            raise WiringError(f"unknown device kind {kind!r} for {nid}")
    for nid, d in g.nodes(data=True):
        if d["kind"] != "netns" and d["kind"] != "nic" and nid in devices:
            devices[nid].tso = d.get("tso", True)
    # addresses, masters, wires
    for nid, d in g.nodes(data=True):
        if d["kind"] == "netns":
            continue
        dev = devices[nid]
        for a in d["addrs"]:
            addr, plen = _iface(a)
            dev.ns.add_address(dev, addr, plen)
    for u, v, k in g.edges(data="kind"):
        if k == "master":
            devices[v].add_port(devices[u])
    seen = set()
    for u, v, d in g.edges(data=True):
        if d["kind"] == "wire" and (v, u) not in seen:
            seen.add((u, v))
            connect_wire(devices[u], devices[v], d["delay_s"])
    # routes and filters
    for n, d in g.nodes(data=True):
        if d["kind"] != "netns":
            continue
        ns = netns[n]
        for r in d["routes"]:
            dst = "0.0.0.0/0" if r["dst"] == "default" else r["dst"]
            net = ipaddress.IPv4Network(dst)
            via = ip_to_int(r["via"]) if r.get("via") else None
            if r.get("dev"):
                dev = ns.devices[r["dev"]]
            else:
                dev = next(rt.dev for rt in ns.fib.main if rt.gateway is None and rt.matches(via))
            ns.add_route(Route(int(net.network_address), net.prefixlen, dev, gateway=via, proto="static"))
        if d["isolation"]:
            ns.forward_filter = _make_forward_filter(set(d["isolation"]))
    return Network(ctx=ctx, hosts=hosts, netns=netns, devices=devices)


def install_workloads(comp: Compiled, net: Network, on_done: Callable[[Any], None]) -> None:
    """Start one client (and its server or sink) per workload."""
    for wp in comp.workloads:
        _install(net, wp, on_done)


def _install(net: Network, wp: WorkloadPlan, on_done: Callable[[Any], None]) -> None:
    w = wp.spec
    src = net.netns[wp.src_netns]
    dst = net.netns[wp.dst_netns] if wp.dst_netns is not None else None
    daddr = ip_to_int(wp.daddr)
    if not w.listen:
        dst = None
    if wp.app.startswith("tcp"):
        _install_tcp(net, wp, src, dst, daddr, on_done)
        return
    stats = FlowStats(flow=wp.index, name=wp.name, app=wp.app, src=w.from_, dst=w.to, proto="udp", dport=wp.dport)
    net.flows.append(stats)
    if wp.app == "udp":
        if dst is not None:
            net.apps.append(UdpSink(dst, dst.host.app_cpu(), stats, port=wp.dport, rcvbuf=w.rcvbuf))
        net.apps.append(UdpSender(src, src.host.app_cpu(), stats, daddr=daddr, dport=wp.dport, count=w.count,
                                  payload=w.payload, interval_s=w.interval_s(), start_s=w.start, arrival=w.arrival,
                                  sport=w.sport or 0, sndbuf=w.sndbuf, on_done=on_done))
    elif wp.app == "udp_rr":
        if dst is not None:
            net.apps.append(UdpRrServer(dst, dst.host.app_cpu(), stats, port=wp.dport, response=w.response))
        net.apps.append(UdpRrClient(src, src.host.app_cpu(), stats, daddr=daddr, dport=wp.dport, count=w.count,
                                    request=w.request, response=w.response, interval_s=w.interval,
                                    start_s=w.start, timeout_s=w.timeout, sport=w.sport or 0, on_done=on_done))
    else:  # pragma: no cover - the loader refuses unknown apps
        raise ValueError(f"unknown app {wp.app!r}")


def _install_tcp(net: Network, wp: WorkloadPlan, src: Any, dst: Any, daddr: int,
                 on_done: Callable[[Any], None]) -> None:
    w = wp.spec
    stats = TcpFlowStats(flow=wp.index, name=wp.name, app=wp.app, src=w.from_, dst=w.to, proto="tcp",
                         dport=wp.dport)
    net.flows.append(stats)
    both = dict(nodelay=w.nodelay, cc=w.congestion)
    if wp.app == "tcp_rr":
        copts = SockOpts(sndbuf=w.sndbuf, rcvbuf=w.rcvbuf, **both)
        sopts = copts
    else:
        copts = SockOpts(sndbuf=w.sndbuf, cork=w.cork, **both)
        sopts = SockOpts(rcvbuf=w.rcvbuf, **both)
    ccpu = src.host.app_cpu()
    if wp.app == "tcp_bulk":
        if dst is not None:
            net.apps.append(TcpSink(dst, dst.host.app_cpu(), stats, port=wp.dport, opts=sopts, read=w.read))
        net.apps.append(TcpBulkClient(src, ccpu, stats, size=w.size, write=w.write, daddr=daddr, dport=wp.dport,
                                      start_s=w.start, opts=copts, on_done=on_done))
    elif wp.app == "tcp_stream":
        if dst is not None:
            net.apps.append(TcpSink(dst, dst.host.app_cpu(), stats, port=wp.dport, opts=sopts, read=w.read,
                                    report_s=w.report))
        net.apps.append(TcpStreamClient(src, ccpu, stats, duration_s=w.duration, write=w.write, daddr=daddr,
                                        dport=wp.dport, start_s=w.start, opts=copts, on_done=on_done))
    elif wp.app == "tcp_rr":
        if dst is not None:
            net.apps.append(TcpRrServer(dst, dst.host.app_cpu(), stats, port=wp.dport, request=w.request,
                                        response=w.response, opts=sopts))
        net.apps.append(TcpRrClient(src, ccpu, stats, count=w.count, request=w.request, response=w.response,
                                    writes=w.writes, interval_s=w.interval, daddr=daddr, dport=wp.dport,
                                    start_s=w.start, opts=copts, on_done=on_done))
    else:  # pragma: no cover - the loader refuses unknown apps
        raise ValueError(f"unknown app {wp.app!r}")
