"""Docker's bridge driver: moby ``libnetwork/drivers/bridge``.

Builds, in the host's namespace, a Linux bridge — ``docker0`` for the default network
(172.17.0.0/16, gateway 172.17.0.1), ``br-<name>`` for a user-defined one (Docker uses
``br-`` + 12 hex digits of the network ID; simnet uses the name when it fits in 15
characters, or ``com.docker.network.bridge.name``) — holding the gateway address, and per
container a veth pair: the host end ``veth`` + 7 hex digits enslaved to the bridge, the
container end renamed ``eth0`` (``eth1``… for further networks) with the container's address,
and in the container a default route via the gateway when this network provides it. MTU:
``com.docker.network.driver.mtu`` (or ``mtu:``) on the bridge and both veth ends, else 1500.

The daemon-wide effects of bridge networks (``ip_forward=1``, the DOCKER-ISOLATION chains
between bridges) are applied by the compiler from the host's ``daemon:`` settings.

Scope and limitations: no NAT (masquerade and published ports come with the port-publishing
model), no ICC=false, no internal-network filtering.
Validation: tests/models/docker/test_drivers.py (graph invariants, names, addresses).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from simnet.rng import hex_id

from .graph import add_device, add_veth_pair, dev_id, enslave, new_graph
from .types import Endpoint, NetworkPlan

__all__ = ["bridge", "bridge_ifname", "BRIDGE_OPTIONS"]

BRIDGE_OPTIONS = {
    "com.docker.network.bridge.name": "name of the Linux bridge",
    "com.docker.network.driver.mtu": "MTU of the bridge and the containers' interfaces",
    "com.docker.network.bridge.enable_icc": "inter-container connectivity (only 'true' is modelled)",
    "com.docker.network.bridge.enable_ip_masquerade": "masquerade traffic leaving the subnet (default true; false: no MASQUERADE rule)",
    "com.docker.network.container_iface_prefix": "prefix of the container's interface names (default eth)",
}


def bridge_ifname(plan: NetworkPlan) -> str:
    name = plan.options.get("com.docker.network.bridge.name")
    if name:
        return name
    if plan.default:
        return "docker0"
    cand = f"br-{plan.name}"
    return cand if len(cand) <= 15 else "br-" + hex_id(plan.name, 12)


def bridge(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """Bridge network ``plan`` on one host with ``endpoints`` attached."""
    g = new_graph(driver="bridge", network=plan.name)
    br = bridge_ifname(plan)
    plen = plan.subnet.prefixlen
    br_id = add_device(g, plan.host, br, "bridge", mtu=plan.mtu, addrs=[f"{plan.gateway}/{plen}"],
                       network=plan.name)
    for ep in endpoints:
        host_if = "veth" + hex_id(f"{plan.host}:{plan.name}:{ep.container}", 7)
        _c, h = add_veth_pair(g, ep.sandbox, ep.ifname, plan.host, host_if, mtu=plan.mtu,
                              addrs_a=[f"{ep.address}/{plen}"], network=plan.name)
        g.nodes[dev_id(ep.sandbox, ep.ifname)]["container"] = ep.container
        enslave(g, h, br_id)
        if ep.gateway:
            g.graph["routes"].append((ep.sandbox, {"dst": "default", "via": str(plan.gateway), "dev": ep.ifname}))
    return g
