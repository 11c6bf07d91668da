"""Compile a validated scenario into the topology graph and the workload plans.

Pure: no simulation, no I/O, no randomness. The result, :class:`Compiled`, is what every
engine consumes (engines never read the YAML). Steps:

1. hosts: a root namespace per host (with ``lo``), a NIC per declared interface and per link
   end (``eth0``, ``eth1``… in order of appearance), addresses on the links' subnets
   (``10.0.<n>.0/24`` by default), and routes between hosts' underlay subnets along the
   shortest path of links (like ns-3's global routing), plus the scenario's static routes;
2. containers: a sandbox namespace each, except ``--network host`` containers, which share
   their host's namespace;
3. networks: per host that has members, IPAM (models.docker.ipam) and the driver
   (models.docker.DRIVERS) build the devices; the container's first network gives its default
   route; ``dockerd`` sets ``ip_forward=1`` in the host namespace and, with iptables on,
   isolates its bridge networks from each other (DOCKER-ISOLATION);
4. workloads: endpoints resolved to namespaces and addresses, and each path traced through
   the routing tables of the graph, so an unreachable target is a load-time error.

Step 3 lives in :mod:`simnet.networks`, the static routing of step 4 in :mod:`simnet.routing`.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict, deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import networkx as nx

from simnet.models.docker import NetworkPlan
from simnet.models.docker.bridge import bridge_ifname
from simnet.models.docker.graph import add_device, add_netns, dev_id
from simnet.rng import hex_id
from simnet.models.linux.fib import RTN_LOCAL, Fib
from simnet.models.linux.params import NicParams, canonical_sysctl

from .networks import build_networks, etc_hosts, host_of, publish_ports
from .routing import PathTrace, build_fibs, l2_domains, trace_path
from .scenario.loader import ScenarioError
from .scenario.spec import Scenario

__all__ = ["Compiled", "WorkloadPlan", "compile_scenario", "trace_path", "PathTrace"]


@dataclass(frozen=True)
class WorkloadPlan:
    """One workload with its ends resolved."""

    index: int
    name: str
    app: str
    spec: Any                      # the scenario's workload model
    src_netns: str
    dst_netns: str | None          # None: no namespace owns the address (nobody answers)
    daddr: str
    dport: int
    path: tuple[str, ...] = ()     # namespaces the request crosses, in order
    listen_netns: str | None = None   # where the server listens (a published port's container), if not dst
    listen_port: int | None = None
    via: str = ""                  # "dnat" (the kernel's NAT) or "proxy" (docker-proxy) for a published port


@dataclass
class Compiled:
    """The compiled scenario: topology graph, host settings and workload plans."""

    scenario: Scenario
    graph: nx.MultiDiGraph
    hosts: dict[str, dict[str, Any]]
    container_netns: dict[str, str]
    networks: dict[tuple[str, str], NetworkPlan]
    workloads: list[WorkloadPlan] = field(default_factory=list)

    def netns_names(self) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == "netns"]

    def devices(self, netns: str) -> list[str]:
        return [v for _u, v, k in self.graph.out_edges(netns, data="kind") if k == "member"]


def _nic_params(sc: Scenario, host: str, ifname: str) -> NicParams:
    h = sc.hosts[host]
    per = h.nics.get(ifname)
    base = NicParams()

    def pick(attr: str, default: Any) -> Any:
        for spec in (per, h.nic):
            if spec is not None and getattr(spec, attr) is not None:
                return getattr(spec, attr)
        return default

    return NicParams(rate_bps=pick("rate", base.rate_bps), mtu_bytes=pick("mtu", base.mtu_bytes),
                     txqueuelen_pkts=pick("txqueuelen", base.txqueuelen_pkts),
                     tx_ring_pkts=pick("tx_ring", base.tx_ring_pkts))


def compile_scenario(sc: Scenario) -> Compiled:
    """Build the graph and plans of ``sc``; raises ScenarioError (with a key path) on problems."""
    g = nx.MultiDiGraph(name=sc.name, seed=sc.seed)
    hosts: dict[str, dict[str, Any]] = {}
    for hname, h in sc.hosts.items():
        add_netns(g, hname, host=hname, role="host", hostname=h.hostname or hname)
        hosts[hname] = {"cpus": h.cpus, "daemon": h.daemon.model_dump()}

    # -- links and NICs -------------------------------------------------------------------
    next_if: dict[str, int] = defaultdict(int)
    used_if: dict[str, set[str]] = defaultdict(set)
    subnets_in_use: list[IPv4Network] = []
    link_subnets: list[tuple[int, IPv4Network]] = []
    for i, link in enumerate(sc.links):
        if link.subnet is not None:
            subnets_in_use.append(link.subnet)

    def new_nic(hname: str, ifname: str, path: tuple) -> str:
        if ifname in used_if[hname]:
            raise ScenarioError(f"interface {ifname} of {hname} is used twice", path)
        used_if[hname].add(ifname)
        p = _nic_params(sc, hname, ifname)
        spec = sc.hosts[hname].nics.get(ifname) or sc.hosts[hname].nic
        addrs = [str(spec.address)] if spec.address is not None else []
        try:
            return add_device(g, hname, ifname, "nic", mtu=p.mtu_bytes, addrs=addrs, rate_bps=p.rate_bps,
                              txqueuelen=p.txqueuelen_pkts, tx_ring=p.tx_ring_pkts)
        except ValueError as e:
            raise ScenarioError(str(e), path) from None

    host_links: list[tuple[str, str, str, str, int]] = []   # (hostA, nicA, hostB, nicB, link index)
    k_auto = [0]
    for sspec in sc.switches.values():
        if sspec.subnet is not None:
            subnets_in_use.append(sspec.subnet)

    def auto_subnet() -> IPv4Network:
        while True:
            cand = IPv4Network(f"10.0.{k_auto[0]}.0/24")
            k_auto[0] += 1
            if not any(cand.overlaps(u) for u in subnets_in_use):
                subnets_in_use.append(cand)
                return cand

    switch_subnet: dict[str, Any] = {}
    switch_nics: dict[str, list[str]] = defaultdict(list)
    for sw, sspec in sc.switches.items():
        g.add_node(sw, kind="switch", hairpin=sspec.hairpin, ageing_s=sspec.ageing, queue_pkts=sspec.queue)
    for i, link in enumerate(sc.links):
        ends = []
        for j, ep in enumerate(link.endpoints):
            if ep in sc.switches:
                ends.append(ep)
                continue
            hname, _, ifname = ep.partition(":")
            if not ifname:
                while f"eth{next_if[hname]}" in used_if[hname]:
                    next_if[hname] += 1
                ifname = f"eth{next_if[hname]}"
            ends.append(new_nic(hname, ifname, ("links", i, "endpoints", j)))
        a, b = ends
        if a in sc.switches or b in sc.switches:
            sw, nic = (a, b) if a in sc.switches else (b, a)
            g.add_edge(nic, sw, kind="port", delay_s=link.delay)
            g.add_edge(sw, nic, kind="port", delay_s=link.delay)
            if sw not in switch_subnet:
                sub = sc.switches[sw].subnet or auto_subnet()
                switch_subnet[sw] = (sub, sub.hosts())
            sub, it = switch_subnet[sw]
            if not g.nodes[nic]["addrs"]:
                g.nodes[nic]["addrs"] = [f"{next(it)}/{sub.prefixlen}"]
            switch_nics[sw].append(nic)
            continue
        imp = {"rate_bps": link.rate, "queue": link.queue, "loss": link.loss, "jitter_s": link.jitter}
        g.add_edge(a, b, kind="wire", delay_s=link.delay, drop=list(link.drop), **imp)
        g.add_edge(b, a, kind="wire", delay_s=link.delay, drop=list(link.drop_back), **imp)
        subnet = link.subnet if link.subnet is not None else auto_subnet()
        link_subnets.append((i, subnet))
        hosts_iter = subnet.hosts()
        for end in (a, b):
            node = g.nodes[end]
            if not node["addrs"]:
                node["addrs"] = [f"{next(hosts_iter)}/{subnet.prefixlen}"]
        host_links.append((g.nodes[a]["netns"], a, g.nodes[b]["netns"], b, i))
    for sw, nics in switch_nics.items():      # hosts on one switch reach each other directly
        for x in range(len(nics)):
            for y in range(x + 1, len(nics)):
                host_links.append((g.nodes[nics[x]]["netns"], nics[x], g.nodes[nics[y]]["netns"], nics[y], -1))
    for hname, h in sc.hosts.items():
        for ifname in h.nics:
            if ifname not in used_if[hname]:
                new_nic(hname, ifname, ("hosts", hname, "nics", ifname))

    # -- container sandboxes ----------------------------------------------------------------
    container_netns: dict[str, str] = {}
    for cname, c in sc.containers.items():
        hname = host_of(sc, cname)
        nets = [n for n, _a in c.attachments()]
        if nets == ["host"] or (nets and sc.networks.get(nets[0]) is not None and sc.networks[nets[0]].driver == "host"):
            container_netns[cname] = hname
            g.nodes[hname]["containers"].append(cname)
            # its own UTS namespace, with the host's hostname unless given (moby container_operations.go)
            g.nodes[hname].setdefault("uts", {})[cname] = c.hostname or g.nodes[hname]["hostname"]
        else:
            container_netns[cname] = cname
            # Docker's default hostname is the container ID's first 12 hex digits (simnet derives the ID)
            add_netns(g, cname, host=hname, role="container", hostname=c.hostname or hex_id(f"container:{cname}", 12),
                      containers=[cname])

    # -- networks: IPAM and drivers, per host -------------------------------------------------
    for ns_spec in sc.networks.values():
        if ns_spec.subnet is not None:
            subnets_in_use.append(ns_spec.subnet)
    plans = build_networks(sc, g, container_netns, subnets_in_use)
    publish_ports(sc, g, plans, container_netns)
    etc_hosts(sc, g, container_netns)

    # -- daemon settings: forwarding, isolation ---------------------------------------------
    for hname, h in sc.hosts.items():
        node = g.nodes[hname]
        if h.daemon.ip_forward or len(sc.hosts) > 1:
            node["sysctls"]["net.ipv4.ip_forward"] = 1
        if h.daemon.iptables:
            node["isolation"] = sorted(bridge_ifname(p) for (n, hh), p in plans.items()
                                       if hh == hname and p.driver == "bridge")
        for k, v in sc.sysctls.items():
            node["sysctls"][canonical_sysctl(k)] = v
        for k, v in h.sysctls.items():
            node["sysctls"][canonical_sysctl(k)] = v
    for cname, c in sc.containers.items():
        ns = container_netns[cname]
        if ns == cname:
            for k, v in c.sysctls.items():
                g.nodes[ns]["sysctls"][canonical_sysctl(k)] = v

    # -- offloads (ethtool -K), per device ---------------------------------------------------------
    _offloads(g, sc)

    # -- routes ---------------------------------------------------------------------------------
    _underlay_routes(g, sc, host_links)
    for hname, h in sc.hosts.items():
        for j, r in enumerate(h.routes):
            g.nodes[hname]["routes"].append({"dst": r.dst, "via": str(r.via) if r.via else None, "dev": r.dev,
                                             "_path": ("hosts", hname, "routes", j)})
    fibs = build_fibs(g)

    comp = Compiled(scenario=sc, graph=g, hosts=hosts, container_netns=container_netns, networks=plans)
    comp.workloads = [_plan_workload(comp, fibs, i, w) for i, w in enumerate(sc.workloads)]
    servers: dict[tuple[str, int], int] = {}
    for wp in comp.workloads:
        if wp.listen_netns is not None and wp.spec.listen:
            key = (wp.listen_netns, wp.listen_port)
            if key in servers:
                raise ScenarioError(f"{wp.listen_netns}:{wp.listen_port}/udp (behind the published port) is already "
                                    f"served by workloads[{servers[key]}]; publish another port",
                                    ("workloads", wp.index, "port"))
            servers[key] = wp.index
    for hname in sc.hosts:
        for r in g.nodes[hname]["routes"]:
            r.pop("_path", None)
    return comp


def _offloads(g: nx.MultiDiGraph, sc: Scenario) -> None:
    """``tso``/``gro`` attributes of every device: Linux's defaults (TSO on everywhere, GRO on
    physical NICs), overridden by the host's offloads for its own namespace, bridges and
    host-side veths, and by a container's offloads for its interfaces."""
    for n, d in g.nodes(data=True):
        if d["kind"] == "netns" or "netns" not in d:      # namespaces; external switches
            continue
        ns = g.nodes[d["netns"]]
        if ns["role"] == "host":
            spec = sc.hosts[ns["host"]].offloads
        else:
            spec = sc.containers[n.split(":")[0]].offloads if n.split(":")[0] in sc.containers else None
        tso = True
        gro = d["kind"] == "nic"
        if spec is not None:
            if spec.tso is not None:
                tso = spec.tso
            if spec.gro is not None and d["kind"] == "nic":
                gro = spec.gro
        d["tso"] = tso
        d["gro"] = gro


def _underlay_routes(g: nx.MultiDiGraph, sc: Scenario, host_links: list[tuple[str, str, str, str, int]]) -> None:
    """Routes to every underlay subnet along the fewest links (breadth-first, deterministic)."""
    if len(sc.hosts) < 2:
        return
    adj: dict[str, list[tuple[str, str, str]]] = defaultdict(list)   # host -> (neighbour, my nic, their nic)
    subnet_of: dict[str, IPv4Network] = {}
    for ha, a, hb, b, _i in host_links:
        adj[ha].append((hb, a, b))
        adj[hb].append((ha, b, a))
        for nic in (a, b):
            for addr in g.nodes[nic]["addrs"]:
                subnet_of[nic] = ipaddress.IPv4Interface(addr).network
    all_subnets = sorted(set(subnet_of.values()), key=lambda n: (int(n.network_address), n.prefixlen))
    for h in sc.hosts:
        # first hop towards every host
        first: dict[str, tuple[str, str]] = {}
        seen = {h}
        q = deque()
        for nb, mine, theirs in adj[h]:
            if nb not in seen:
                seen.add(nb)
                first[nb] = (mine, theirs)
                q.append(nb)
        while q:
            cur = q.popleft()
            for nb, _m, _t in adj[cur]:
                if nb not in seen:
                    seen.add(nb)
                    first[nb] = first[cur]
                    q.append(nb)
        connected = {subnet_of[n] for n in subnet_of if g.nodes[n]["netns"] == h}
        for net in all_subnets:
            if net in connected:
                continue
            owners = {g.nodes[n]["netns"] for n, s in subnet_of.items() if s == net}
            cands = sorted(o for o in owners if o in first)
            if not cands:
                continue
            mine, theirs = first[cands[0]]
            via = ipaddress.IPv4Interface(g.nodes[theirs]["addrs"][0]).ip
            g.nodes[h]["routes"].append({"dst": str(net), "via": str(via), "dev": g.nodes[mine]["ifname"]})


def _address_of(comp: Compiled, netns: str, peer_netns: str | None = None) -> str | None:
    """An address of ``netns`` that ``peer_netns`` would use: on a shared network first."""
    g = comp.graph
    devs = [g.nodes[d] for d in comp.devices(netns) if g.nodes[d]["kind"] != "loopback" and g.nodes[d]["addrs"]]
    if peer_netns is not None:
        if peer_netns == netns:
            return "127.0.0.1"
        dom = l2_domains(g)
        peer_doms = {dom[d] for d in comp.devices(peer_netns) if g.nodes[d]["kind"] != "loopback"}
        for d in devs:
            if dom[dev_id(netns, d["ifname"])] in peer_doms:
                return str(ipaddress.IPv4Interface(d["addrs"][0]).ip)
    for d in sorted(devs, key=lambda d: (d["kind"] != "nic", d["kind"] != "veth")):
        return str(ipaddress.IPv4Interface(d["addrs"][0]).ip)
    return None


def _plan_workload(comp: Compiled, fibs: dict[str, Fib], i: int, w: Any) -> WorkloadPlan:
    sc = comp.scenario
    src_name = w.from_
    if src_name in comp.container_netns:
        src = comp.container_netns[src_name]
    elif src_name in sc.hosts:
        src = src_name
    else:
        raise ScenarioError(f"unknown container or host {src_name!r}", ("workloads", i, "from"))
    to = w.to
    dst_ns: str | None
    try:
        daddr = str(IPv4Address(to))
        dst_ns = None
    except ValueError:
        alias = comp.graph.nodes[src].get("etc_hosts", {}).get(to) if src in comp.graph else None
        if alias is not None and to not in comp.container_netns:
            to = alias                  # a --link alias, resolved through the sandbox's /etc/hosts
        if alias is not None and to not in comp.container_netns:
            dst_ns = None
            daddr = alias
        elif to in comp.container_netns:
            dst_ns = comp.container_netns[to]
        elif to in sc.hosts:
            dst_ns = to
        else:
            raise ScenarioError(f"unknown container, host or address {to!r}", ("workloads", i, "to")) from None
        if dst_ns is not None:
            a = _address_of(comp, dst_ns, src)
            if a is None:
                raise ScenarioError(f"{to} has no address (its only interface is lo)", ("workloads", i, "to"))
            daddr = a
    tr = trace_path(comp.graph, fibs, src, int(IPv4Address(daddr)))
    if not tr.ok:
        raise ScenarioError(f"unreachable: {tr.reason}{_cross_host_hint(comp, w, src, dst_ns)}",
                            ("workloads", i, "to"))
    if dst_ns is None:
        dst_ns = tr.dst_netns
    elif tr.dst_netns != dst_ns:
        where = (f"is also {src_name}'s own address" if tr.dst_netns == src else
                 f"leads from {src_name} to {tr.dst_netns}" if tr.dst_netns is not None else
                 f"is on a network of {src_name} where nobody has it")
        raise ScenarioError(f"unreachable: {to}'s address {daddr} {where}"
                            f"{_cross_host_hint(comp, w, src, dst_ns)}", ("workloads", i, "to"))
    listen_ns, listen_port, via, hops = None, None, "", list(tr.hops)
    nat = comp.graph.nodes[dst_ns].get("nat") if dst_ns is not None else None
    if nat is not None:
        proto = "tcp" if w.app.startswith("tcp") else "udp"
        rule = next((r for r in nat["dnat"] if r["proto"] == proto and r["host_port"] == w.port and
                     (r["host_ip"] in (None, daddr) or daddr.startswith("127."))), None)
        if rule is not None:
            loop = daddr.startswith("127.")
            from_bridge = src != dst_ns and comp.graph.nodes[src].get("host") == dst_ns and any(
                g_d.get("master", "").endswith(":" + rule["bridge"]) for g_d in
                (comp.graph.nodes[comp.graph.nodes[d].get("peer", d)] for d in comp.devices(src)))
            via = "proxy" if nat["userland_proxy"] and (loop or from_bridge) else "dnat"
            listen_ns = comp.container_netns[rule["container"]]
            listen_port = rule["to_port"]
            hops.append(listen_ns)
            dst_ns = listen_ns
    if w.app in ("udp_rr", "tcp_bulk", "tcp_stream", "tcp_rr") and dst_ns is not None and not via:
        src_addr = _source_addr(fibs, src, int(IPv4Address(daddr)))
        back = trace_path(comp.graph, fibs, dst_ns, src_addr)
        if not back.ok:
            raise ScenarioError(f"the response cannot come back: {back.reason}", ("workloads", i, "to"))
    name = w.name or f"{w.app}{i}"
    return WorkloadPlan(index=i, name=name, app=w.app, spec=w, src_netns=src, dst_netns=dst_ns, daddr=daddr,
                        dport=w.port, path=tuple(hops), listen_netns=listen_ns, listen_port=listen_port, via=via)


def _cross_host_hint(comp: Compiled, w: Any, src: str, dst_ns: str | None) -> str:
    """Why a target is out of reach: no interface but lo, or its networks are local to another host."""
    g = comp.graph
    if src in g and not [d for d in comp.devices(src) if g.nodes[d]["kind"] != "loopback"]:
        return f" ({w.from_} has no interface but lo)"
    if dst_ns is None or dst_ns not in g or src not in g:
        return ""
    hs, hd = g.nodes[src].get("host"), g.nodes[dst_ns].get("host")
    if hs == hd or g.nodes[dst_ns].get("role") != "container":
        return ""
    return (f" ({w.to} runs on host {hd} and {w.from_} on host {hs}; a bridge network exists only on its own "
            "host)")


def _source_addr(fibs: dict[str, Fib], netns: str, daddr: int) -> int:
    rt = fibs[netns].lookup(daddr)
    if rt is None:
        return 0
    if rt.rtype == RTN_LOCAL:
        return daddr
    return rt.src if rt.src is not None else next(
        (r.src for r in fibs[netns].main if r.dev is rt.dev and r.src is not None), 0)
