"""Static routing over the compiled graph: the routing tables each namespace would have, and
paths traced through them without packets.

:func:`build_fibs` builds, per namespace, the tables the kernel fills (local and connected
routes from the devices' addresses, then the scenario's and the drivers' static routes);
:func:`trace_path` follows them hop by hop (at most 64, Linux's default TTL) from a namespace
towards an address, across forwarding namespaces, so that compile time can refuse a workload
whose target is unreachable (no route, a missing gateway, ``ip_forward=0``, Docker's isolation
rules) with a located message, before any engine runs.

Scope and limitations: only the main table and IPv4; no policy routing; neighbour resolution
is not attempted (an on-link address nobody owns is reported as reachable with an unknown
final hop, as the kernel would send ARP for it).
Validation: tests/test_compile.py (routes, unreachable targets, isolation), every scenario.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import networkx as nx

from simnet.models.docker.graph import dev_id
from simnet.models.linux.fib import RTN_LOCAL, Fib, Route

from .scenario.loader import ScenarioError

__all__ = ["build_fibs", "trace_path", "PathTrace", "l2_domains"]


class _Dev:
    """A stand-in device for static route lookups."""

    def __init__(self, nid: str, mtu: int) -> None:
        self.nid = nid
        self.mtu = mtu
        self.kind = ""


def build_fibs(g: nx.MultiDiGraph) -> dict[str, Fib]:
    """Per namespace: the routing tables the kernel would have (local, connected, static)."""
    fibs: dict[str, Fib] = {}
    devs: dict[str, _Dev] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "netns":
            fibs[n] = Fib()
    for n, d in g.nodes(data=True):
        if d["kind"] in ("netns", "switch"):
            continue
        dv = devs[n] = _Dev(n, d["mtu"])
        fib = fibs[d["netns"]]
        for a in d["addrs"]:
            iface = ipaddress.IPv4Interface(a)
            fib.add_local(int(iface.ip), dv)
            if d["kind"] != "loopback":
                net = iface.network
                if not any(r.prefix == int(net.network_address) and r.plen == net.prefixlen and r.dev is dv
                           for r in fib.main):
                    fib.add(Route(int(net.network_address), net.prefixlen, dv, src=int(iface.ip)))
    for n, d in g.nodes(data=True):
        if d["kind"] != "netns":
            continue
        for r in d["routes"]:
            _add_static(fibs[n], g, n, r, devs)
    return fibs


def _add_static(fib: Fib, g: nx.MultiDiGraph, netns: str, r: dict[str, Any], devs: dict[str, _Dev]) -> None:
    path = r.get("_path", ())
    dst = "0.0.0.0/0" if r["dst"] == "default" else r["dst"]
    try:
        net = IPv4Network(dst, strict=True)
    except ValueError:
        try:
            hint = f"host bits set (did you mean {IPv4Network(dst, strict=False)}?)"
        except ValueError:
            hint = "expected a prefix such as 10.1.0.0/16, or 'default'"
        raise ScenarioError(f"bad route destination {r['dst']!r}: {hint}", path + ("dst",)) from None
    via = int(IPv4Address(r["via"])) if r.get("via") else None
    dev = None
    if r.get("dev"):
        dev = devs.get(dev_id(netns, r["dev"]))
        if dev is None:
            raise ScenarioError(f"no device {r['dev']} in {netns}", path + ("dev",))
    elif via is not None:
        on_link = next((rt for rt in fib.main if rt.gateway is None and rt.matches(via)), None)
        if on_link is None:
            raise ScenarioError(f"gateway {r['via']} is not on a connected subnet of {netns}", path + ("via",))
        dev = on_link.dev
    if dev is None:
        raise ScenarioError("a route needs 'via' or 'dev'", path)
    try:
        fib.add(Route(int(net.network_address), net.prefixlen, dev, gateway=via, proto="static"))
    except ValueError:
        raise ScenarioError(f"route to {dst} exists already in {netns}", path) from None


@dataclass
class PathTrace:
    ok: bool
    hops: list[str]
    reason: str = ""
    dst_netns: str | None = None


def l2_domains(g: nx.MultiDiGraph) -> dict[str, int]:
    """Devices that reach each other at layer 2 share a domain number."""
    und = nx.Graph()
    for n, d in g.nodes(data=True):
        if d["kind"] != "netns":
            und.add_node(n)
    for u, v, k in g.edges(data="kind"):
        if k in ("veth", "master", "wire", "tunnel", "lower", "port"):
            und.add_edge(u, v)
    dom = {}
    for i, comp in enumerate(sorted(nx.connected_components(und), key=lambda c: min(c))):
        for n in comp:
            dom[n] = i
    return dom


def trace_path(g: nx.MultiDiGraph, fibs: dict[str, Fib], src: str, daddr: int) -> PathTrace:
    """Follow routing tables from namespace ``src`` towards ``daddr`` (no packets, no ARP)."""
    dom = l2_domains(g)
    owners: dict[tuple[int, int], str] = {}          # (l2 domain, address) -> netns
    for n, d in g.nodes(data=True):
        if d["kind"] in ("netns", "loopback", "switch"):
            continue
        for a in d["addrs"]:
            owners[(dom[n], int(ipaddress.IPv4Interface(a).ip))] = d["netns"]
    cur = src
    hops = [src]
    for _ in range(64):
        fib = fibs[cur]
        rt = fib.lookup(daddr)
        if rt is None:
            return PathTrace(False, hops, f"no route from {cur} to {ipaddress.IPv4Address(daddr)}")
        if rt.rtype == RTN_LOCAL or (rt.rtype != 1):
            return PathTrace(True, hops, dst_netns=cur)
        nh = rt.gateway if rt.gateway is not None else daddr
        nxt = owners.get((dom[rt.dev.nid], nh))
        if nxt is None:
            if rt.gateway is None:
                return PathTrace(True, hops + [f"?{ipaddress.IPv4Address(daddr)}"], dst_netns=None)
            return PathTrace(False, hops, f"gateway {ipaddress.IPv4Address(nh)} of {cur} does not exist")
        nfib = fibs[nxt]
        if daddr in nfib.local:
            return PathTrace(True, hops + [nxt], dst_netns=nxt)
        node = g.nodes[nxt]
        if str(node["sysctls"].get("net.ipv4.ip_forward", 0)) != "1":
            return PathTrace(False, hops + [nxt], f"{nxt} does not forward (net.ipv4.ip_forward=0)")
        out = nfib.lookup(daddr)
        iso = node.get("isolation") or []
        in_if = None
        for nid in (m for m in g.successors(nxt) if g.nodes[m].get("netns") == nxt):
            if dom.get(nid) == dom[rt.dev.nid]:
                in_if = g.nodes[nid]
                break
        if out is not None and in_if is not None:
            oname = g.nodes[out.dev.nid]["ifname"]
            iname = in_if["ifname"] if in_if.get("kind") == "bridge" else g.nodes.get(in_if.get("master"), {}).get(
                "ifname", in_if["ifname"])
            if iname in iso and oname in iso and iname != oname:
                return PathTrace(False, hops + [nxt], f"Docker's isolation rules on {nxt} drop traffic from "
                                 f"{iname} to {oname} (DOCKER-ISOLATION; set hosts.{node['host']}.daemon.iptables: "
                                 "false to route between bridge networks)")
        cur = nxt
        hops.append(cur)
    return PathTrace(False, hops, "routing loop")
