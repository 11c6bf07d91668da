"""The compiled topology graph: node and edge conventions shared by drivers and engines.

One ``networkx.MultiDiGraph`` describes a scenario's topology; every engine builds from it.

* a **netns** node per namespace, keyed by its name (the host's name for a host's root
  namespace, the container's name for its sandbox): ``kind="netns"``, ``host``, ``role``
  (``host``/``container``), ``hostname`` (UTS), ``containers`` (those sharing it),
  ``sysctls``, ``routes`` (besides the connected ones, which follow from addresses),
  ``isolation`` (Docker bridges between which forwarding is dropped);
* a **device** node per interface, keyed ``"<netns>:<ifname>"``: ``kind`` (``loopback``,
  ``veth``, ``bridge``, ``nic``, ``vxlan``, ``macvlan``, ``ipvlan``, ``dummy``), ``netns``, ``ifname``,
  ``mac``, ``mtu``, ``addrs`` (``"a.b.c.d/len"``), ``network`` (the Docker network it serves, if
  any) and ``scope`` (``global`` for the endpoints of a multi-host network, whose addresses are
  unique across hosts), plus ``peer`` for a veth, ``master`` for a bridge port, NIC parameters
  for a NIC; a ``vxlan`` has ``vni``, ``dstport``, ``local`` (its VTEP address), ``link_netns``
  (where its UDP socket lives), ``fdb`` (MAC → remote VTEP) and ``neigh`` (address → MAC); a
  ``macvlan``/``ipvlan`` has ``lower`` (its parent device) and ``mode``;
* an overlay namespace (``role="overlay"``) per overlay network and host;
* edges: ``member`` (netns → device), ``veth`` (both directions between the ends of a pair),
  ``master`` (port → bridge), ``wire`` (both directions between two NICs, with ``delay_s``),
  ``tunnel`` (between the VXLAN devices of one overlay network), ``lower`` (both directions
  between a macvlan/ipvlan child and its parent), ``port`` (a NIC and the switch port it is
  cabled to, both directions, with ``delay_s``).
"""

from __future__ import annotations

from typing import Any

import networkx as nx

from simnet.rng import mac_for

__all__ = ["dev_id", "add_netns", "add_device", "add_veth_pair", "enslave", "new_graph"]


def dev_id(netns: str, ifname: str) -> str:
    return f"{netns}:{ifname}"


def new_graph(**attrs: Any) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph(**attrs)
    g.graph.setdefault("routes", [])
    return g


def add_netns(g: nx.MultiDiGraph, name: str, *, host: str, role: str, hostname: str,
              containers: list[str] | None = None) -> None:
    g.add_node(name, kind="netns", host=host, role=role, hostname=hostname, containers=list(containers or []),
               sysctls={}, routes=[], isolation=[])
    add_device(g, name, "lo", "loopback", mac="00:00:00:00:00:00", mtu=65536, addrs=["127.0.0.1/8"])


def add_device(g: nx.MultiDiGraph, netns: str, ifname: str, kind: str, *, mac: str | None = None, mtu: int = 1500,
               addrs: list[str] | None = None, **attrs: Any) -> str:
    nid = dev_id(netns, ifname)
    if nid in g:
        raise ValueError(f"device {ifname} already exists in {netns}")
    g.add_node(nid, kind=kind, netns=netns, ifname=ifname, mac=mac or mac_for(nid), mtu=mtu,
               addrs=list(addrs or []), **attrs)
    g.add_edge(netns, nid, kind="member")
    return nid


def add_veth_pair(g: nx.MultiDiGraph, netns_a: str, if_a: str, netns_b: str, if_b: str, *, mtu: int = 1500,
                  addrs_a: list[str] | None = None, addrs_b: list[str] | None = None, **attrs: Any) -> tuple[str, str]:
    a = add_device(g, netns_a, if_a, "veth", mtu=mtu, addrs=addrs_a, peer=dev_id(netns_b, if_b), **attrs)
    b = add_device(g, netns_b, if_b, "veth", mtu=mtu, addrs=addrs_b, peer=a, **attrs)
    g.add_edge(a, b, kind="veth")
    g.add_edge(b, a, kind="veth")
    return a, b


def enslave(g: nx.MultiDiGraph, port: str, bridge: str) -> None:
    g.nodes[port]["master"] = bridge
    g.add_edge(port, bridge, kind="master")
