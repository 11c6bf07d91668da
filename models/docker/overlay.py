"""Docker's overlay driver: moby ``libnetwork/drivers/overlay`` (``ov_network.go``, ``ov_utils.go``,
``joinleave.go``, ``peerdb.go``, ``encryption.go``).

Per host with members, Docker builds a network sandbox (the overlay namespace, named
``<epoch>-<network id>`` under /var/run/docker/netns; simnet names it ``1-<network>@<host>``)
holding:

* ``br0``, a Linux bridge with the network's gateway address (the same address on every
  host; nothing routes through it, north-south traffic uses ``docker_gwbridge``);
* ``vxlan0``, a VXLAN device with the network's VNI (Docker's ``ovmanager`` hands out VNIs from
  4096 upward; ``com.docker.network.driver.overlay.vxlanid_list`` names one), UDP port 4789,
  ``learning``, ``proxy``, ``l2miss`` and ``l3miss`` (``createVxlan``), created in the host's
  namespace — where its UDP socket stays — and moved into the sandbox as a port of ``br0``;
* per container a veth pair: ``vethN`` on ``br0``, ``eth0`` (``eth1``…) in the container with its
  address from the swarm-scope pool (10.0.0.0/8 in /24s, ``globalScopeDefaultNetworks``).

The MTU of ``vxlan0``, ``br0`` and every veth is ``maxMTU()``: 1500 (or the
``com.docker.network.driver.mtu`` option, which Docker reads as the *underlay* MTU) minus 50
for VXLAN, and for ``encrypted`` minus a further 26 for ESP, rounded down to a multiple of 4:
1450 by default, 1424 encrypted.

Peers: Docker's gossip (peerdb) gives every host each remote endpoint's address, MAC and
host; ``peerAdd`` programs them as a permanent neighbour entry on ``vxlan0`` (answered locally
by the ``proxy`` flag) and a static FDB entry ``<mac> dst <remote VTEP>``. The VTEP address
of a host is its advertise address: simnet takes the address of the host's first NIC.

Scope and limitations: one subnet per network; no ``docker_gwbridge`` (overlay containers have
no default route unless another network gives one), no ingress network or routing mesh, no
service VIPs/IPVS, no ``--attachable`` distinction (every container may join).
Validation: tests/models/docker/test_drivers.py (graph invariants, names, entries),
tests/models/linux/test_vxlan.py, scenarios overlay-two-hosts.yaml and overlay-mtu.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from simnet.rng import mac_for

from .graph import add_device, add_netns, add_veth_pair, dev_id, enslave, new_graph
from .types import Endpoint, NetworkPlan

__all__ = ["overlay", "overlay_netns", "overlay_mtu", "OVERLAY_OPTIONS", "VXLAN_ID_START", "VXLAN_ENCAP",
           "ESP_EXPANSION"]

VXLAN_ID_START = 4096          # moby ovmanager vxlanIDStart
VXLAN_ENCAP = 50               # moby overlay.go vxlanEncap
ESP_EXPANSION = 26             # moby encryption.go pktExpansion

OVERLAY_OPTIONS = {
    "encrypted": "IPsec (ESP, AES-GCM) between the hosts' VTEPs; 26 more bytes per packet",
    "com.docker.network.driver.mtu": "the MTU from which Docker subtracts the encapsulation (default 1500)",
    "com.docker.network.driver.overlay.vxlanid_list": "the network's VNI (default: 4096 upward)",
}


def overlay_netns(network: str, host: str) -> str:
    """Name of the overlay namespace of ``network`` on ``host``."""
    return f"1-{network}@{host}"


def overlay_mtu(mtu_option: int | None, encrypted: bool) -> int:
    """moby ``(*network).maxMTU()``: the containers' (and vxlan0's) MTU."""
    mtu = (mtu_option or 1500) - VXLAN_ENCAP
    if encrypted:
        mtu -= ESP_EXPANSION
        mtu -= mtu % 4
    return mtu


def overlay(plan: NetworkPlan, endpoints: Sequence[Endpoint]) -> nx.MultiDiGraph:
    """The overlay network ``plan`` as built on ``plan.host`` for the local ``endpoints``."""
    g = new_graph(driver="overlay", network=plan.name)
    ns = overlay_netns(plan.name, plan.host)
    add_netns(g, ns, host=plan.host, role="overlay", hostname=ns)
    plen = plan.subnet.prefixlen
    encrypted = "encrypted" in plan.options
    br = add_device(g, ns, "br0", "bridge", mtu=plan.mtu, addrs=[f"{plan.gateway}/{plen}"], network=plan.name)
    fdb = {mac_for(dev_id(p.sandbox, p.ifname)): str(p.vtep) for p in plan.peers}
    neigh = {str(p.address): mac_for(dev_id(p.sandbox, p.ifname)) for p in plan.peers}
    vx = add_device(g, ns, "vxlan0", "vxlan", mtu=plan.mtu, network=plan.name, vni=plan.vni, dstport=4789,
                    local=str(plan.vtep), link_netns=plan.host, learning=True, proxy=True, l2miss=True, l3miss=True,
                    encrypted=encrypted, fdb=fdb, neigh=neigh)
    enslave(g, vx, br)
    for i, ep in enumerate(endpoints):
        c, o = add_veth_pair(g, ep.sandbox, ep.ifname, ns, f"veth{i}", mtu=plan.mtu,
                             addrs_a=[f"{ep.address}/{plen}"], network=plan.name, scope="global")
        g.nodes[c]["container"] = ep.container
        enslave(g, o, br)
    return g
