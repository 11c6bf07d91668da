"""Plan builders for the devices of Docker's other drivers: vxlan, macvlan, ipvlan, dummy, and
the scenario's external switches (plan.py's :data:`DEVICE_BUILDERS` takes them from :data:`BUILDERS`).

* **vxlan** (Docker's overlay, moby ``ov_utils.go`` ``createVxlan`` and ``peerdb.go``): the
  device is created from the host's namespace directly into the overlay namespace (``ip -n
  HOST link add vxlan0 netns OVERLAY type vxlan id VNI dstport 4789 local VTEP learning proxy
  l2miss l3miss``), so its UDP socket stays in the host's namespace as Docker's does
  (``ip -d link`` shows ``link-netns``); the graph's ``learning``/``proxy``/``l2miss``/``l3miss``
  decide the flags (Docker sets all four). Docker's peer entries become ``bridge fdb add MAC
  dev vxlan0 dst VTEP self permanent`` (the graph's ``fdb``) and ``ip neigh add ADDR lladdr
  MAC dev vxlan0 nud permanent`` (``neigh``), written once the device is up. With learning on,
  a received frame can only confirm what a static entry says (permanent entries are never
  replaced by ``vxlan_snoop``).
* **macvlan** / **ipvlan**: ``ip -n HOST link add link PARENT name eth0 netns CONTAINER type
  macvlan mode MODE`` (ipvlan: ``type ipvlan mode l2|l3``, no address: it has the parent's),
  after every other link exists and brought up after its parent. No ethtool is run on it: a
  macvlan refuses to turn TSO/GSO off (ALWAYS_ON_OFFLOADS, Linux 6.18), its lower device segments. macvlan_open then
  puts the child's MAC on the parent's unicast list (``bridge fdb show dev PARENT``); a veth
  has no unicast filter, so the parent goes promiscuous (counters: translate.py).
* **dummy** (Docker's parent of a macvlan/ipvlan network given no ``parent``):
  ``type dummy``. Not built into every kernel: the preflight refuses it (exit 3).
* **switch** (a ``switches:`` node, not part of Linux): a namespace of its own holding a Linux
  bridge ``sw`` (no STP, no multicast snooping, FDB ageing ``ageing_time`` = the switch's
  ``ageing_s``) whose ports ``p1``, ``p2``, … (the model's names, in the order of the switch's
  ``port`` edges) are the veth peers of the hosts' NICs, with ``hairpin on`` when the switch
  has ``hairpin: true`` (reflective relay: a frame may leave through the port it came in by).
  Each port sends towards its host at the host NIC's rate (HTB, as the NIC) from a FIFO of the
  switch's ``queue_pkts``; the NIC end is shaped as any NIC.

Scope and limitations: the switch is store-and-forward in the model; the bridge forwards a
frame as soon as it is handed over (no serialisation time, as for every NIC stand-in); a port
queue's drops count in its qdisc, not in the port's ``tx_dropped``.
Validation: tests/engines/netns/test_plan_drivers.py (operations, without root),
test_replay_drivers.py (as root: overlay, macvlan and NAT scenarios replayed and compared with the DES).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from simnet.rng import mac_for

from .ops import FdbAdd, LinkAdd, LinkSet, LinkUp, NeighAdd, SetMaster, SetTxqlen

if TYPE_CHECKING:
    from .plan import _Ctx

__all__ = ["BUILDERS", "SWITCH_BRIDGE"]

SWITCH_BRIDGE = "sw"


def _vxlan(c: "_Ctx", nid: str, d: dict[str, Any]) -> None:
    flags = ["learning" if d.get("learning") else "nolearning"]
    flags += [f for f in ("proxy", "l2miss", "l3miss") if d.get(f)]
    if d.get("encrypted"):
        c.plan.notes.append(f"{d['netns']}:{d['ifname']} is encrypted in the model (ESP between the VTEPs, 26 "
                            "bytes more per packet): the replay's VXLAN is not")
    args = ("id", str(d["vni"]), "dstport", str(d["dstport"]), "local", d["local"], *flags)
    ns = c.ns(d["netns"])
    c.children.append(LinkAdd(c.ns(d["link_netns"]), d["ifname"], "vxlan", mac=d["mac"], mtu=d["mtu"],
                              type_args=args, into_ns=ns))
    c.plan.needs_link_kinds.add("vxlan")
    c.plan.needs_tools.add("bridge")
    c.fact(nid)
    from .plan import _offloads

    _offloads(c, ns, d["ifname"], d)
    c.child_ups.append(LinkUp(ns, d["ifname"]))
    for mac, vtep in sorted(d.get("fdb", {}).items()):
        c.late.append(FdbAdd(ns, d["ifname"], mac, vtep))
    for addr, mac in sorted(d.get("neigh", {}).items()):
        c.late.append(NeighAdd(ns, d["ifname"], addr, mac))


def _child(c: "_Ctx", nid: str, d: dict[str, Any]) -> None:
    """A macvlan or ipvlan child of ``d["lower"]``, created from the lower's namespace into its own."""
    ld = c.g.nodes[d["lower"]]
    kind = d["kind"]
    mode = d["mode"]
    ns = c.ns(d["netns"])
    home = c.ns(ld["netns"])
    own_mac = kind == "macvlan" and mode != "passthru"
    c.children.append(LinkAdd(home, d["ifname"], kind, mac=d["mac"] if own_mac else None, mtu=d["mtu"],
                              type_args=("mode", mode), link=ld["ifname"], into_ns=ns if ns != home else None))
    c.plan.needs_link_kinds.add(kind)
    c.fact(nid, lower=ld["ifname"], mode=mode)
    c.child_ups.append(LinkUp(ns, d["ifname"]))
    if ld["kind"] != "dummy":
        c.plan.carrier.append((d["netns"], d["ifname"]))
    if not d.get("tso", True):
        c.plan.notes.append(f"{d['netns']}:{d['ifname']} has TSO off in the model; a {kind} keeps TSO/GSO on "
                            "(ALWAYS_ON_OFFLOADS): the replay's counts it super-packets, its lower device "
                            "segments them")


def _dummy(c: "_Ctx", nid: str, d: dict[str, Any]) -> None:
    ns = c.ns(d["netns"])
    c.links.append(LinkAdd(ns, d["ifname"], "dummy", mac=d["mac"], mtu=d["mtu"]))
    c.plan.needs_link_kinds.add("dummy")
    c.fact(nid)
    c.ups.append(LinkUp(ns, d["ifname"]))


def _switch(c: "_Ctx", sw: str, d: dict[str, Any]) -> None:
    """An external switch: a bridge in its own namespace, a port per cabled NIC."""
    from .plan import _offloads, delay_note, shape

    sns = c.ns(sw)
    c.links.insert(0, LinkAdd(sns, SWITCH_BRIDGE, "bridge", mac=mac_for(f"{sw}:{SWITCH_BRIDGE}"),
                              type_args=("mcast_snooping", "0", "stp_state", "0",
                                         "ageing_time", str(int(round(d["ageing_s"] * 100))))))
    c.plan.needs_link_kinds.update({"bridge", "veth"})
    c.plan.devices[sw][SWITCH_BRIDGE] = {"kind": "bridge", "mtu": 1500, "mac": mac_for(f"{sw}:{SWITCH_BRIDGE}"),
                                         "master": None, "addrs": [], "up": True}
    c.ups.insert(0, LinkUp(sns, SWITCH_BRIDGE))
    ports: dict[str, tuple[str, str]] = {}
    mtus = []
    for _u, nic, e in c.g.out_edges(sw, data=True):
        if e["kind"] != "port":
            continue
        nd = c.g.nodes[nic]
        port = f"p{len(ports) + 1}"
        ports[port] = (nd["netns"], nd["ifname"])
        pmac = mac_for(f"{sw}:{port}")
        hns = c.ns(nd["netns"])
        c.links.append(LinkAdd(hns, nd["ifname"], "veth", mac=nd["mac"], mtu=nd["mtu"], peer_ns=sns,
                               peer_ifname=port, peer_mac=pmac, peer_mtu=nd["mtu"]))
        mtus.append(nd["mtu"])
        # the NIC end, as any NIC
        c.done.add(nic)
        c.fact(nic, kind="nic", txqueuelen=nd["txqueuelen"])
        _offloads(c, hns, nd["ifname"], nd)
        c.shaping.append(SetTxqlen(hns, nd["ifname"], nd["txqueuelen"]))
        shape(c, hns, nd["ifname"], nd["rate_bps"], nd["txqueuelen"] + nd["tx_ring"], e["delay_s"])
        c.ups.append(LinkUp(hns, nd["ifname"]))
        c.plan.carrier.append((nd["netns"], nd["ifname"]))
        # the switch's port: towards the host at the NIC's rate, from a FIFO of the switch's queue
        c.masters.append(SetMaster(sns, port, SWITCH_BRIDGE))
        if d.get("hairpin"):
            c.ports.append(LinkSet(sns, port, ("type", "bridge_slave", "hairpin", "on")))
        _offloads(c, sns, port, {})
        shape(c, sns, port, nd["rate_bps"], d["queue_pkts"], 0.0)
        c.ups.append(LinkUp(sns, port))
        c.plan.carrier.append((sw, port))
        c.plan.devices[sw][port] = {"kind": "veth", "mtu": nd["mtu"], "mac": pmac, "master": SWITCH_BRIDGE,
                                    "addrs": [], "up": True, "hairpin": bool(d.get("hairpin"))}
        if e["delay_s"] > 0:
            delay_note(c, e["delay_s"], f"the cable {nd['netns']}:{nd['ifname']} — {sw}:{port}")
    if mtus:
        c.plan.devices[sw][SWITCH_BRIDGE]["mtu"] = min(mtus)
    c.plan.carrier.append((sw, SWITCH_BRIDGE))
    c.plan.switches[sw] = {"bridge": SWITCH_BRIDGE, "ports": ports}


BUILDERS = {
    "vxlan": _vxlan,
    "macvlan": _child,
    "ipvlan": _child,
    "dummy": _dummy,
    "switch": _switch,
}
