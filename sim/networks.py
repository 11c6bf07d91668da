"""Docker networks on the compiled graph: IPAM and the drivers for every network on every host
that has members, published ports, ``--link`` aliases and the overlay's tunnels.

Step 3 of :mod:`simnet.compile`. Per (network, host) pair with members,
:func:`build_networks` allocates subnets and addresses as Docker's IPAM does
(models.docker.ipam), assigns VXLAN IDs to overlays from 4096 up, checks that a macvlan or
ipvlan parent is not shared by two networks of another driver, calls the driver
(models.docker.DRIVERS, pure functions) and merges the fragment it returns into the graph;
then the overlays' VXLAN devices are joined to their peers on other hosts.
:func:`publish_ports` records the DNAT/MASQUERADE rules and docker-proxy listeners of
``ports:`` and :func:`etc_hosts` the sandbox's /etc/hosts entries (``links:``).

Scope and limitations: IPv4 only; Docker's default address pools (172.17.0.0/16 then
172.18-31.0.0/16, 192.168.0.0/20…) as ipam.py states.
Validation: tests/models/docker (every driver through the registry, graph invariants),
tests/test_compile.py.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import defaultdict
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import networkx as nx

from simnet.models.docker import DRIVERS, Endpoint, NetworkPlan, Peer, driver_for
from simnet.models.docker.bridge import bridge_ifname
from simnet.models.docker.graph import dev_id
from simnet.models.docker.ipam import DEFAULT_BRIDGE_SUBNET, IpamError, allocate, pick_global_subnet, pick_subnet
from simnet.models.docker.overlay import VXLAN_ID_START, overlay_mtu

from .scenario.loader import ScenarioError
from .scenario.spec import Scenario

__all__ = ["build_networks", "publish_ports", "etc_hosts", "host_of"]


def host_of(sc: Scenario, cname: str) -> str:
    c = sc.containers[cname]
    return c.host if c.host is not None else next(iter(sc.hosts))


# Drivers whose network is one address space across hosts (bridge networks are per host).
_MULTI_HOST = ("overlay", "macvlan", "ipvlan")


def _driver_of(sc: Scenario, net: str) -> str:
    if net in ("bridge", "host", "none"):
        return net
    return sc.networks[net].driver


def _vtep(g: nx.MultiDiGraph, host: str) -> IPv4Address | None:
    """A host's VXLAN tunnel endpoint: the address of its first NIC (its swarm advertise address)."""
    for _u, v, k in g.out_edges(host, data="kind"):
        d = g.nodes[v]
        if k == "member" and d["kind"] == "nic" and d["addrs"]:
            return ipaddress.IPv4Interface(d["addrs"][0]).ip
    return None


def build_networks(sc: Scenario, g: nx.MultiDiGraph, container_netns: dict[str, str],
                    subnets_in_use: list[IPv4Network]) -> dict[tuple[str, str], NetworkPlan]:
    """IPAM and the driver of every network on every host that has members."""
    net_order = ["bridge"] + [n for n in sc.networks]
    members: dict[tuple[str, str], list[tuple[str, Any, int]]] = defaultdict(list)
    for cname, c in sc.containers.items():
        hname = host_of(sc, cname)
        for k, (net, attach) in enumerate(c.attachments()):
            members[(net, hname)].append((cname, attach, k))
    plans: dict[tuple[str, str], NetworkPlan] = {}
    auto_subnets: dict[str, IPv4Network] = {}
    parent_use: dict[tuple[str, str], tuple[str, str, str]] = {}
    next_vni = VXLAN_ID_START
    used_vnis: set[int] = set()
    for spec in sc.networks.values():
        vl = spec.options.get("com.docker.network.driver.overlay.vxlanid_list")
        if spec.driver == "overlay" and vl:
            used_vnis.add(int(vl))
    for net in net_order:
        spec = sc.networks.get(net)
        driver = _driver_of(sc, net)
        reg = driver_for(driver)
        path = ("networks", net) if spec is not None else ("containers",)
        options: dict[str, str] = dict(spec.options) if spec is not None else {}
        multi = reg in _MULTI_HOST
        subnet = gateway = None
        addr_of: dict[str, IPv4Address] = {}
        vni = None
        if net == "bridge" or (reg in ("bridge",) + _MULTI_HOST and any(members.get((net, h)) for h in sc.hosts)):
            if net == "bridge":
                subnet = DEFAULT_BRIDGE_SUBNET
            elif spec.subnet is not None:
                subnet = spec.subnet
            else:
                try:
                    if reg == "overlay":
                        subnet = pick_global_subnet(subnets_in_use)
                    else:
                        subnet = pick_subnet(subnets_in_use + [DEFAULT_BRIDGE_SUBNET])
                except IpamError as e:
                    raise ScenarioError(str(e), path) from None
                subnets_in_use.append(subnet)
                auto_subnets[net] = subnet
            gateway = spec.gateway if spec is not None else None
            if multi:
                # one allocation across hosts, in the order containers are declared (as if each
                # host's network had been given a disjoint ip_range)
                eps = [(cname, a) for cname, c in sc.containers.items() for (n, a) in c.attachments() if n == net]
                hosts_on_it = [ipaddress.IPv4Interface(a).ip for _n, d in g.nodes(data=True) if d["kind"] == "nic"
                               for a in d["addrs"] if ipaddress.IPv4Interface(a).ip in subnet]
                try:
                    gateway, addrs = allocate(subnet, gateway, [a.ipv4_address for _c, a in eps], hosts_on_it)
                except IpamError as e:
                    raise ScenarioError(str(e), path) from None
                addr_of = {cname: addr for (cname, _a), addr in zip(eps, addrs)}
            if reg == "overlay":
                vl = options.get("com.docker.network.driver.overlay.vxlanid_list")
                if vl:
                    vni = int(vl)
                else:
                    while next_vni in used_vnis:
                        next_vni += 1
                    vni = next_vni
                    used_vnis.add(vni)
        mtu_opt = options.get("com.docker.network.driver.mtu")
        mtu_given = (spec.mtu if spec is not None and spec.mtu else None) or (int(mtu_opt) if mtu_opt else None)
        for hname in sc.hosts:
            eps_h = members.get((net, hname), [])
            # docker0 exists on every host that runs containers; other networks where they have members
            if not eps_h and not (net == "bridge" and any(h == hname for (_n, h) in members)):
                continue
            plan_kw: dict[str, Any] = {}
            if reg == "overlay":
                vtep = _vtep(g, hname)
                if vtep is None:
                    raise ScenarioError(f"overlay network {net!r} needs an underlay: host {hname} has no NIC "
                                        "(join it to the other hosts with links:)", path)
                peers = []
                for cname, c in sc.containers.items():
                    ph = host_of(sc, cname)
                    if ph == hname:
                        continue
                    for k, (n, _a) in enumerate(c.attachments()):
                        if n == net:
                            peers.append(Peer(container=cname, sandbox=container_netns[cname], ifname=f"eth{k}",
                                              address=addr_of[cname], host=ph, vtep=_vtep(g, ph)))
                mtu = overlay_mtu(mtu_given, "encrypted" in options)
                plan_kw.update(vni=vni, vtep=vtep, peers=tuple(peers))
            elif reg in ("macvlan", "ipvlan"):
                parent = options.get("parent")
                if parent:
                    pid = dev_id(hname, parent)
                    if pid not in g or g.nodes[pid]["kind"] != "nic":
                        nics = sorted(g.nodes[v]["ifname"] for _u, v, k in g.out_edges(hname, data="kind")
                                      if k == "member" and g.nodes[v]["kind"] == "nic")
                        raise ScenarioError(f"parent {parent} is not a NIC of host {hname} (its NICs: "
                                            f"{', '.join(nics) or 'none'})", path + ("options", "parent"))
                    key = (hname, parent)
                    mode = options.get("macvlan_mode", "bridge") if reg == "macvlan" else options.get(
                        "ipvlan_mode", "l2")
                    prev = parent_use.setdefault(key, (reg, mode, net))
                    if prev[2] != net:
                        raise ScenarioError(f"{parent} of {hname} is already the parent of {prev[0]} network "
                                            f"{prev[2]!r} (Docker: one macvlan/ipvlan network per parent interface)",
                                            path + ("options", "parent"))
                    if reg == "macvlan" and mode == "passthru" and len(eps_h) > 1:
                        raise ScenarioError(f"macvlan passthru takes {parent} of {hname} over: only one container "
                                            "per parent (the kernel refuses a second device with EINVAL)",
                                            path + ("options", "macvlan_mode"))
                    mtu = mtu_given or g.nodes[pid]["mtu"]
                else:
                    mtu = mtu_given or 1500
                plan_kw.update(parent=parent)
            else:
                mtu = mtu_given or 1500
            plan = NetworkPlan(name=net, driver=reg, host=hname, subnet=subnet, gateway=gateway, mtu=mtu,
                               options=options, internal=bool(spec.internal) if spec else False,
                               default=(net == "bridge"), **plan_kw)
            endpoints: list[Endpoint] = []
            if reg == "bridge":
                try:
                    gw, addrs = allocate(subnet, gateway, [a.ipv4_address for (_c, a, _k) in eps_h])
                except IpamError as e:
                    raise ScenarioError(str(e), path) from None
                plan = dataclasses.replace(plan, gateway=gw)
                prefix = options.get("com.docker.network.container_iface_prefix", "eth")
                for (cname, _a, k), addr in zip(eps_h, addrs):
                    endpoints.append(Endpoint(container=cname, sandbox=container_netns[cname], ifname=f"{prefix}{k}",
                                              address=addr, gateway=(k == 0)))
            elif multi:
                for cname, _a, k in eps_h:
                    endpoints.append(Endpoint(container=cname, sandbox=container_netns[cname], ifname=f"eth{k}",
                                              address=addr_of[cname], gateway=(k == 0 and not plan.internal)))
            else:
                for cname, _a, k in eps_h:
                    endpoints.append(Endpoint(container=cname, sandbox=container_netns[cname], ifname="",
                                              address=None, gateway=False))
            plans[(net, hname)] = plan
            frag = DRIVERS[reg](plan, endpoints)
            _merge(g, frag, path)
    _connect_tunnels(g)
    return plans


def _masquerades(plan: NetworkPlan) -> bool:
    """Docker's ``com.docker.network.bridge.enable_ip_masquerade`` (default true): whether the
    network's subnet gets ``POSTROUTING -s SUBNET ! -o BRIDGE -j MASQUERADE``
    (moby libnetwork/drivers/bridge setupIPTables, ``EnableIPMasquerade``)."""
    v = plan.options.get("com.docker.network.bridge.enable_ip_masquerade", "true")
    return str(v).strip().lower() != "false"


def publish_ports(sc: Scenario, g: nx.MultiDiGraph, plans: dict[tuple[str, str], NetworkPlan],
                   container_netns: dict[str, str]) -> None:
    """Docker's nat rules and docker-proxy processes for the published ports of each host."""
    from .scenario.check import parse_port

    for hname, h in sc.hosts.items():
        rules, seen = [], {}
        for cname, c in sc.containers.items():
            if host_of(sc, cname) != hname or not c.ports:
                continue
            net = c.attachments()[0][0]
            plan = plans[(net, hname)]
            caddr = ipaddress.IPv4Interface(g.nodes[dev_id(container_netns[cname], "eth0")]["addrs"][0]).ip
            for j, text in enumerate(c.ports):
                host_ip, hp, cp, proto = parse_port(text)
                key = (proto, hp)
                if key in seen:
                    raise ScenarioError(f"host port {hp}/{proto} of {hname} is already published by {seen[key]}",
                                        ("containers", cname, "ports", j))
                seen[key] = cname
                rules.append({"proto": proto, "host_ip": host_ip, "host_port": hp, "to_addr": str(caddr),
                              "to_port": cp, "bridge": bridge_ifname(plan), "container": cname})
        masq = [{"subnet": str(p.subnet), "bridge": bridge_ifname(p)} for (n, hh), p in plans.items()
                if hh == hname and p.driver == "bridge" and _masquerades(p) and any(
                    host_of(sc, c) == hname and n in [m for m, _a in sc.containers[c].attachments()]
                    for c in sc.containers)]
        if not rules:
            # MASQUERADE for bridge networks whose containers can reach other machines
            if masq and len(sc.hosts) > 1 and h.daemon.iptables:
                g.nodes[hname]["nat"] = {"userland_proxy": h.daemon.userland_proxy, "dnat": [], "masquerade": masq}
            continue
        if not h.daemon.iptables:
            raise ScenarioError("published ports need Docker's iptables rules (daemon.iptables: true)",
                                ("hosts", hname, "daemon", "iptables"))
        g.nodes[hname]["nat"] = {"userland_proxy": h.daemon.userland_proxy, "dnat": rules, "masquerade": masq}


def etc_hosts(sc: Scenario, g: nx.MultiDiGraph, container_netns: dict[str, str]) -> None:
    """Each sandbox's /etc/hosts: its own hostname and the legacy --link entries (alias, name, hostname)."""
    for cname, c in sc.containers.items():
        ns = container_netns[cname]
        node = g.nodes[ns]
        hosts = node.setdefault("etc_hosts", {})
        for link in c.links:
            target, _, alias = link.partition(":")
            tns = container_netns[target]
            shared = [n for n, _a in c.attachments() if n in {m for m, _b in sc.containers[target].attachments()}]
            addr = None
            for k, (n, _a) in enumerate(sc.containers[target].attachments()):
                if n == shared[0]:
                    d = g.nodes.get(dev_id(tns, f"eth{k}"))
                    addr = d["addrs"][0].split("/")[0] if d and d["addrs"] else None
            if addr is None:
                continue
            for name in {alias or target, target, g.nodes[tns]["hostname"]}:
                hosts[name] = addr


def _connect_tunnels(g: nx.MultiDiGraph) -> None:
    """``tunnel`` edges between the VXLAN devices of one overlay network on different hosts."""
    by_net: dict[str, list[str]] = defaultdict(list)
    for n, d in g.nodes(data=True):
        if d["kind"] == "vxlan":
            by_net[d["network"]].append(n)
    for devs in by_net.values():
        for a in devs:
            for b in devs:
                if a != b:
                    g.add_edge(a, b, kind="tunnel")


def _merge(g: nx.MultiDiGraph, frag: nx.MultiDiGraph, path: tuple) -> None:
    for n, d in frag.nodes(data=True):
        if n in g:
            if not d or (d.get("kind", "netns") == "netns" and g.nodes[n]["kind"] == "netns"):
                continue          # a namespace or device the fragment only refers to
            raise ScenarioError(f"the driver created {n!r}, which already exists", path)
        if "kind" not in d:
            raise ScenarioError(f"the driver refers to {n!r}, which does not exist", path)
        g.add_node(n, **d)
    for u, v, d in frag.edges(data=True):
        g.add_edge(u, v, **d)
    for netns, route in frag.graph.get("routes", []):
        g.nodes[netns]["routes"].append(route)
