"""Where a TCP flow's packets go once they are encapsulated: the underlay of the VXLAN tunnels it crosses.

A flow between two overlay containers crosses its namespaces and the overlay namespaces'
bridges (netns/tcpflows.py ``tcp_exactness``), and between those it rides inside VXLAN: the
vxlan device hands each frame to a UDP socket of its *link* namespace (the host's, where
Docker creates the device before moving it: ``vxlan_xmit`` → ``udp_tunnel_xmit_skb``), which
routes it to the peer's ``local`` address out of the host's NIC, across any switch and
router between, into the peer host's NIC and its UDP socket on port 4789 (``vxlan_rcv``).
Those outer packets carry the TCP flow's segments and ACKs, so what the underlay counts for
them depends on timing as the TCP path's own counters do — and more: the veth that stands in
for a NIC in the replay does GRO and GSO, merging and splitting what a NIC would count.

:func:`encap_paths` traces each such tunnel with the static routing tables
(sim/routing.py): per underlay namespace the devices the outer packets leave and enter by
(the route to the peer's address and the route back; the external switches' ports they
cross), the namespaces that route them (``Ip`` counters), the tunnels' end namespaces
(``Udp InDatagrams``/``OutDatagrams``: the encapsulation socket counts every outer packet)
and the conntrack keys of the outer flows (``udp LOCAL > PEER:PORT``, as ``simnet compare``
keys entries). Everything else of those namespaces — their other devices, their UDP
workloads' datagrams — stays exact.

Scope and limitations: routes are followed as the static tracer does (main table, IPv4,
symmetric return path); a tunnel is taken as crossed when the vxlan devices at both of its
ends are in namespaces of the TCP path.
Validation: tests/engines/netns/test_tcp_paths.py, tests/engines/netns/test_replay_drivers.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from simnet.compile import Compiled
from simnet.routing import build_fibs, trace_path

__all__ = ["encap_paths"]


def encap_paths(comp: Compiled, on_path: set[str]) -> dict[str, Any]:
    """The underlay of the tunnels a TCP flow crossing namespaces ``on_path`` uses (see the module docstring):
    ``devices`` {namespace: [ifname]}, ``netns`` (routing namespaces), ``udp_netns`` (tunnel ends),
    ``conntrack`` (the outer flows' entry keys)."""
    g = comp.graph
    fibs: Any = None
    devices: dict[str, set[str]] = {}
    netns: set[str] = set()
    ends: set[str] = set()
    keys: set[str] = set()
    for x, d in g.nodes(data=True):
        if d["kind"] != "vxlan" or d["netns"] not in on_path:
            continue
        for _u, y, kind in g.out_edges(x, data="kind"):
            if kind != "tunnel" or g.nodes[y]["netns"] not in on_path:
                continue
            fibs = fibs if fibs is not None else build_fibs(g)
            peer = g.nodes[y]
            src, dst = d["local"], peer["local"]
            tr = trace_path(g, fibs, d["link_netns"], int(ipaddress.IPv4Address(dst)))
            hops = [h for h in tr.hops if h in fibs]
            netns.update(hops)
            ends.update((d["link_netns"], peer["link_netns"]))
            keys.add(f"udp {src} > {dst}:{d['dstport']}")
            for i, h in enumerate(hops):
                ways = ([dst] if i < len(hops) - 1 else []) + ([src] if i > 0 else [])
                for addr in ways:                  # out towards the peer, in from the source (the route back)
                    rt = fibs[h].lookup(int(ipaddress.IPv4Address(addr)))
                    if rt is None or rt.dev is None:
                        continue
                    dev = rt.dev.nid
                    devices.setdefault(h, set()).add(g.nodes[dev]["ifname"])
                    for _a, w, k in g.out_edges(dev, data="kind"):       # an external switch's port on the cable
                        sw = g.nodes[w].get("netns")
                        if k == "wire" and sw in g and g.nodes[sw]["kind"] == "switch":
                            devices.setdefault(sw, set()).add(g.nodes[w]["ifname"])
    return {"devices": {n: sorted(v) for n, v in sorted(devices.items())}, "netns": sorted(netns),
            "udp_netns": sorted(ends), "conntrack": sorted(keys)}
