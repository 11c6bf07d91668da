"""Instantiate the Linux model from a compiled graph, and install the workloads' processes."""

from __future__ import annotations

import dataclasses
import ipaddress
import zlib
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
from simnet.models.apps.docker_proxy import PROXIES
from simnet.models.linux.netfilter import DnatRule, MasqRule, Netfilter
from simnet.models.linux.skb import IPPROTO_ESP, IPPROTO_TCP, IPPROTO_UDP, Skb, ip_to_int, mac_to_int
from simnet.models.linux.ipvlan import Ipvlan, IpvlanPort
from simnet.models.linux.macvlan import Dummy, Macvlan, MacvlanPort
from simnet.models.linux.switch import Switch
from simnet.models.linux.veth import veth_pair
from simnet.models.linux.vxlan import Vxlan, esp_input
from simnet.ports import WiringError

__all__ = ["Network", "build_network", "install_workloads"]


@dataclass
class Network:
    """The instantiated model of one run."""

    ctx: SimContext
    hosts: dict[str, Host]
    netns: dict[str, Netns]
    devices: dict[str, NetDevice]          # graph node id -> device
    switches: dict[str, Switch] = field(default_factory=dict)
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
        for sw in self.switches.values():
            out.extend(sw.in_flight())
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


def _vxlan(ns: Netns, sock_ns: Netns, d: dict[str, Any], mac: int) -> Vxlan:
    """A VXLAN device with Docker's static FDB and neighbour entries (see models.linux.vxlan)."""
    spi = None
    if d.get("encrypted"):
        spi = zlib.crc32(f"{d['vni']}".encode()) | 0x100
        if IPPROTO_ESP not in sock_ns.ip_protos:
            def esp(skb: Skb, ns: Netns = sock_ns) -> None:
                inner = esp_input(ns, skb)
                if inner is not None:
                    ns.ip_local_deliver(inner, None, 0)
            sock_ns.ip_protos[IPPROTO_ESP] = esp
    vx = Vxlan(ns, d["ifname"], mac, d["mtu"], vni=d["vni"], local=ip_to_int(d["local"]), sock_ns=sock_ns,
               dstport=d["dstport"], proxy=d["proxy"], esp_spi=spi)
    vx.fdb = {mac_to_int(m): ip_to_int(ip) for m, ip in d["fdb"].items()}
    vx.proxy_neigh = {ip_to_int(ip): mac_to_int(m) for ip, m in d["neigh"].items()}
    return vx


def _netfilter(ns: Netns, nat: dict[str, Any]) -> None:
    """Docker's nat rules in a host namespace (models.linux.netfilter) and its docker-proxy processes."""
    proxy = nat["userland_proxy"]
    nf = ns.nf = Netfilter(ns, output_loopback=not proxy)
    for r in nat["dnat"]:
        nf.dnat.append(DnatRule(proto=IPPROTO_UDP if r["proto"] == "udp" else IPPROTO_TCP, host_port=r["host_port"],
                                to_addr=ip_to_int(r["to_addr"]), to_port=r["to_port"],
                                not_in_if=r["bridge"] if proxy else "",
                                host_ip=ip_to_int(r["host_ip"]) if r["host_ip"] else 0,
                                name=f"DNAT {r['proto']} dpt:{r['host_port']} to:{r['to_addr']}:{r['to_port']}"))
    for m in nat["masquerade"]:
        net = ipaddress.IPv4Network(m["subnet"])
        nf.masq.append(MasqRule(int(net.network_address), net.prefixlen, m["bridge"],
                                name=f"MASQUERADE {m['subnet']} !{m['bridge']}"))
        if not proxy:
            nf.masq.append(MasqRule(0, 0, m["bridge"], local_src_to_bridge=True,
                                    name=f"MASQUERADE src-type LOCAL {m['bridge']}"))
    if proxy:
        ns.proxies = []
        for r in nat["dnat"]:
            cls = PROXIES.get(r["proto"])
            if cls is not None:
                ns.proxies.append(cls(ns, ns.host.app_cpu(), host_port=r["host_port"],
                                      backend_addr=ip_to_int(r["to_addr"]), backend_port=r["to_port"],
                                      label=f"{r['to_addr']}:{r['to_port']}/{r['proto']}"))


def build_network(comp: Compiled, ctx: SimContext, costs: CostProfile) -> Network:
    g = comp.graph
    hosts = {h: Host(ctx, h, spec["cpus"], costs) for h, spec in comp.hosts.items()}
    netns: dict[str, Netns] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] != "netns":
            continue
        params = apply_sysctls(StackParams(), d["sysctls"])
        netns[n] = Netns(ctx, n, hosts[d["host"]], params, hostname=d["hostname"], role=d["role"])
        if d["role"] == "host":
            hosts[n].max_backlog = params.core.netdev_max_backlog_pkts
    devices: dict[str, NetDevice] = {}
    for nid, d in g.nodes(data=True):
        kind = d["kind"]
        if kind in ("netns", "switch") or nid in devices:
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
        elif kind == "vxlan":
            devices[nid] = _vxlan(ns, netns[d["link_netns"]], d, mac)
        elif kind == "dummy":
            devices[nid] = Dummy(ns, d["ifname"], mac, d["mtu"])
        elif kind == "macvlan":
            lower = devices[d["lower"]]
            port = lower.master if isinstance(lower.master, MacvlanPort) else MacvlanPort(lower)
            devices[nid] = Macvlan(ns, d["ifname"], mac, d["mtu"], port=port, mode=d["mode"])
        elif kind == "ipvlan":
            lower = devices[d["lower"]]
            port = lower.master if isinstance(lower.master, IpvlanPort) else IpvlanPort(lower, d["mode"])
            devices[nid] = Ipvlan(ns, d["ifname"], d["mtu"], port=port)
        else:
            raise WiringError(f"unknown device kind {kind!r} for {nid}")
    for nid, d in g.nodes(data=True):
        if d["kind"] != "netns" and d["kind"] != "nic" and nid in devices:
            devices[nid].tso = d.get("tso", True)
    # addresses, masters, wires
    for nid, d in g.nodes(data=True):
        if d["kind"] in ("netns", "switch"):
            continue
        dev = devices[nid]
        for a in d["addrs"]:
            addr, plen = _iface(a)
            dev.ns.add_address(dev, addr, plen)
            if isinstance(dev, Ipvlan):
                dev.port.add_addr(dev, addr)
    switches: dict[str, Switch] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "switch":
            sw = switches[n] = Switch(ctx, n, hairpin=d["hairpin"], ageing_s=d["ageing_s"], queue_pkts=d["queue_pkts"])
            for _u, v, e in g.out_edges(n, data=True):
                if e["kind"] == "port":
                    sw.add_port(devices[v], e["delay_s"])
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
        if d.get("nat"):
            _netfilter(ns, d["nat"])
    return Network(ctx=ctx, hosts=hosts, netns=netns, devices=devices, switches=switches)


def install_workloads(comp: Compiled, net: Network, on_done: Callable[[Any], None]) -> None:
    """Start one client (and its server or sink) per workload."""
    for wp in comp.workloads:
        _install(net, wp, on_done)


def _install(net: Network, wp: WorkloadPlan, on_done: Callable[[Any], None]) -> None:
    w = wp.spec
    src = net.netns[wp.src_netns]
    dst = net.netns[wp.dst_netns] if wp.dst_netns is not None else None
    port = wp.listen_port or wp.dport
    daddr = ip_to_int(wp.daddr)
    if not w.listen:
        dst = None
    if wp.app.startswith("tcp"):
        _install_tcp(net, wp, src, dst, daddr, port, on_done)
        return
    stats = FlowStats(flow=wp.index, name=wp.name, app=wp.app, src=w.from_, dst=w.to, proto="udp", dport=wp.dport)
    net.flows.append(stats)
    if wp.app == "udp":
        if dst is not None:
            net.apps.append(UdpSink(dst, dst.host.app_cpu(), stats, port=port, rcvbuf=w.rcvbuf, flows=net.flows))
        net.apps.append(UdpSender(src, src.host.app_cpu(), stats, daddr=daddr, dport=wp.dport, count=w.count,
                                  payload=w.payload, interval_s=w.interval_s(), start_s=w.start, arrival=w.arrival,
                                  sport=w.sport or 0, sndbuf=w.sndbuf, on_done=on_done))
    elif wp.app == "udp_rr":
        if dst is not None:
            net.apps.append(UdpRrServer(dst, dst.host.app_cpu(), stats, port=port, response=w.response))
        net.apps.append(UdpRrClient(src, src.host.app_cpu(), stats, daddr=daddr, dport=wp.dport, count=w.count,
                                    request=w.request, response=w.response, interval_s=w.interval,
                                    start_s=w.start, timeout_s=w.timeout, sport=w.sport or 0, on_done=on_done))
    else:  # pragma: no cover - the loader refuses unknown apps
        raise ValueError(f"unknown app {wp.app!r}")


def _install_tcp(net: Network, wp: WorkloadPlan, src: Any, dst: Any, daddr: int, port: int,
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
            net.apps.append(TcpSink(dst, dst.host.app_cpu(), stats, port=port, opts=sopts, read=w.read))
        net.apps.append(TcpBulkClient(src, ccpu, stats, size=w.size, write=w.write, daddr=daddr, dport=wp.dport,
                                      start_s=w.start, opts=copts, on_done=on_done))
    elif wp.app == "tcp_stream":
        if dst is not None:
            net.apps.append(TcpSink(dst, dst.host.app_cpu(), stats, port=port, opts=sopts, read=w.read,
                                    report_s=w.report))
        net.apps.append(TcpStreamClient(src, ccpu, stats, duration_s=w.duration, write=w.write, daddr=daddr,
                                        dport=wp.dport, start_s=w.start, opts=copts, on_done=on_done))
    elif wp.app == "tcp_rr":
        if dst is not None:
            net.apps.append(TcpRrServer(dst, dst.host.app_cpu(), stats, port=port, request=w.request,
                                        response=w.response, opts=sopts))
        net.apps.append(TcpRrClient(src, ccpu, stats, count=w.count, request=w.request, response=w.response,
                                    writes=w.writes, interval_s=w.interval, daddr=daddr, dport=wp.dport,
                                    start_s=w.start, opts=copts, on_done=on_done))
    else:  # pragma: no cover - the loader refuses unknown apps
        raise ValueError(f"unknown app {wp.app!r}")
