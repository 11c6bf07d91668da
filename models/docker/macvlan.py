"""Docker's macvlan and ipvlan drivers: moby ``libnetwork/drivers/macvlan`` and ``drivers/ipvlan``.

Per container, Docker creates a child device of the network's ``parent`` interface in the
host's namespace (``ip link add link eth0 type macvlan mode bridge`` / ``type ipvlan mode l2``),
moves it into the container's namespace as ``eth0`` (``eth1``…) with the container's address
and, when the network has a gateway, a default route through it (ipvlan ``l3``: ``default dev
eth0``, there is no gateway to resolve). Without a ``parent`` Docker creates a dummy device
``dm-<network id>`` and the network is internal (children of a dummy talk only to each other).

* macvlan: ``macvlan_mode`` ``bridge`` (Docker's default; the kernel's is vepa), ``vepa``,
  ``private``, ``passthru``. Each child has its own MAC; passthru takes the parent's, and the
  kernel allows only one passthru child per parent.
* ipvlan: ``ipvlan_mode`` ``l2`` (Docker's default; the kernel's is l3) or ``l3``; every child
  has the parent's MAC. (``l3s`` and ``ipvlan_flag`` private/vepa are not modelled.)

The MTU is the ``mtu`` option, else the parent's. The macvlan/ipvlan networks of several
hosts with the same name are one subnet on the hosts' shared segment; simnet gives every
container a distinct address from it (as if each host's network had its own ``ip_range``).

Scope and limitations: no 802.1Q sub-interfaces (``parent: eth0.50``), no ``aux_addresses``.
Validation: tests/models/docker/test_drivers.py, tests/models/linux/test_macvlan.py,
tests/models/linux/test_ipvlan.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from simnet.rng import hex_id, mac_for

from .graph import add_device, dev_id, new_graph
from .types import Endpoint, NetworkPlan

__all__ = ["macvlan", "ipvlan", "MACVLAN_OPTIONS", "IPVLAN_OPTIONS", "parent_of"]

MACVLAN_OPTIONS = {
    "parent": "the host interface the containers' devices hang off (none: a dummy, internal network)",
    "macvlan_mode": "bridge (default), vepa, private or passthru",
    "com.docker.network.driver.mtu": "MTU of the containers' interfaces (default: the parent's)",
}
IPVLAN_OPTIONS = {
    "parent": "the host interface the containers' devices hang off (none: a dummy, internal network)",
    "ipvlan_mode": "l2 (default) or l3",
    "ipvlan_flag": "bridge (default; private and vepa are not modelled)",
    "com.docker.network.driver.mtu": "MTU of the containers' interfaces (default: the parent's)",
}


def parent_of(plan: NetworkPlan) -> str:
    """The parent's interface name: the ``parent`` option, or Docker's dummy ``dm-<id>``."""
    return plan.parent or plan.options.get("parent") or "dm-" + hex_id(plan.name, 12)


def _children(plan: NetworkPlan, endpoints: Sequence[Endpoint], kind: str, mode: str) -> nx.MultiDiGraph:
    g = new_graph(driver=kind, network=plan.name)
    pname = parent_of(plan)
    parent = dev_id(plan.host, pname)
    if not (plan.parent or plan.options.get("parent")):
        add_device(g, plan.host, pname, "dummy", mtu=plan.mtu)
    else:
        g.add_node(parent)          # a reference to the host's NIC
    plen = plan.subnet.prefixlen
    for ep in endpoints:
        mac = mac_for(parent) if (kind == "ipvlan" or mode == "passthru") else None
        c = add_device(g, ep.sandbox, ep.ifname, kind, mac=mac, mtu=plan.mtu, addrs=[f"{ep.address}/{plen}"],
                       network=plan.name, scope="global", lower=parent, mode=mode, container=ep.container)
        g.add_edge(c, parent, kind="lower")
        g.add_edge(parent, c, kind="lower")
        if ep.gateway:
            if kind == "ipvlan" and mode == "l3":
                g.graph["routes"].append((ep.sandbox, {"dst": "default", "via": None, "dev": ep.ifname}))
            elif plan.gateway is not None:
                g.graph["routes"].append((ep.sandbox, {"dst": "default", "via": str(plan.gateway), "dev": ep.ifname}))
    return g


def macvlan(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """A macvlan child per container on ``plan``'s parent."""
    return _children(plan, endpoints, "macvlan", plan.options.get("macvlan_mode", "bridge"))


def ipvlan(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """An ipvlan child per container on ``plan``'s parent."""
    return _children(plan, endpoints, "ipvlan", plan.options.get("ipvlan_mode", "l2"))
