"""ipvlan devices: drivers/net/ipvlan/ipvlan_core.c (``ipvlan_xmit_mode_l2``, ``ipvlan_xmit_mode_l3``,
``ipvlan_process_v4_outbound``, ``ipvlan_handle_frame``, ``ipvlan_handle_mode_l2/l3``,
``ipvlan_process_multicast``) and ipvlan_main.c (``ipvlan_link_new``, ``ipvlan_set_port_mode``).
This kernel is not built with ipvlan (``CONFIG_IPVLAN`` unset), so the model follows the source.

Every child (a "slave" in the source) takes its parent's MAC (``eth_hw_addr_set(dev,
phy_dev->dev_addr)``); the :class:`IpvlanPort` on the parent demultiplexes by IP address
(``ipvlan_addr_lookup``: the IPv4 destination, or the ARP target address).

* ``l2`` (Docker's default): the child does ARP itself. A frame whose destination MAC is the
  parent's (= its own) goes to the sibling owning the destination address, or, failing that,
  up the parent's own stack (``dev_forward_skb`` to the parent); a broadcast goes to every
  sibling (the multicast work queue) and out of the parent; anything else out of the
  parent. Received unicast frames go to the child owning the destination address, broadcasts
  to every child and up the parent. An ARP request from the wire for a child's address is
  answered by that child — with its MAC, which is the parent's.
* ``l3`` (the kernel's default): children are ``IFF_NOARP`` and never send or receive broadcast
  or multicast. A packet to a sibling's address is handed to it; any other is routed by the
  parent's namespace (``ipvlan_process_v4_outbound``: a route through the parent, then
  ``ip_local_out`` there — the host's ``OutRequests`` counts it and the host resolves the next
  hop with *its* ARP). Received unicast frames for a child's address are handed to it with no
  routing in the host. Other machines reach the children only through routes via the host.

Scope and limitations: no ``l3s`` (netfilter in the host namespace), no ``private``/``vepa``
flags (Docker's default ``bridge`` only), no IPv6, the multicast work queue runs inline
(charged as ``ipvlan_rcv``).
Validation: tests/models/linux/test_ipvlan.py; scenarios ipvlan-l2.yaml, ipvlan-l3.yaml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import NetDevice
from .fib import RTN_LOCAL
from .skb import ETH_P_ARP, ETH_P_IP, Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Ipvlan", "IpvlanPort", "IPVLAN_MODES"]

IPVLAN_MODES = ("l2", "l3")
_MCAST_BIT = 1 << 40


def _l3_addr(skb: Skb) -> int:
    """ipvlan_get_L3_hdr() + the address ipvlan_addr_lookup() matches: daddr, or the ARP target."""
    if skb.eth_type == ETH_P_ARP:
        return skb.arp_tpa
    return skb.daddr


class IpvlanPort:
    """``struct ipvl_port``: the children of one parent and their addresses."""

    def __init__(self, parent: NetDevice, mode: str) -> None:
        if mode not in IPVLAN_MODES:
            raise ValueError(f"unknown ipvlan mode {mode!r}")
        self.parent = parent
        self.ports = [parent]
        self.mode = mode
        self.slaves: list[Ipvlan] = []
        self.addrs: dict[int, Ipvlan] = {}
        parent.master = self

    def add(self, dev: "Ipvlan") -> None:
        self.slaves.append(dev)

    def add_addr(self, dev: "Ipvlan", addr: int) -> None:
        """ipvlan_addr4_event(NETDEV_UP): addresses are unique across the port."""
        if addr in self.addrs:
            raise ValueError(f"address already used on {self.parent!r} (EADDRINUSE)")
        self.addrs[addr] = dev

    # -- the parent's rx_handler -----------------------------------------------------------
    def handle_frame(self, skb: Skb, parent: NetDevice) -> None:
        """ipvlan_handle_frame() → ipvlan_handle_mode_l2()/l3()."""
        if skb.eth_dst & _MCAST_BIT:
            if self.mode == "l2":
                self.multicast(skb, exclude=None)
            parent.ns.netif_receive(skb, parent)        # RX_HANDLER_PASS
            return
        if self.mode == "l3" and skb.eth_type != ETH_P_IP:
            parent.ns.netif_receive(skb, parent)
            return
        dev = self.addrs.get(_l3_addr(skb))
        if dev is None:
            parent.ns.netif_receive(skb, parent)
            return
        seg = parent.ctx.seg
        if seg is not None:
            seg.charge(skb, "ipvlan_rcv")
        dev.deliver(skb)

    def multicast(self, skb: Skb, exclude: "Ipvlan | None") -> None:
        """ipvlan_process_multicast(): a copy to every child but the sender."""
        targets = [d for d in self.slaves if d is not exclude]
        if not targets:
            return
        ctx = self.parent.ctx
        seg = ctx.seg
        if seg is not None:
            seg.charge(skb, "ipvlan_rcv")
        ctx.tracer.clone(skb.origin, len(targets))
        ns = self.parent.ns
        for d in targets:
            d.deliver(skb.copy(ns.next_skb_id()))


class Ipvlan(NetDevice):
    """An ipvlan child device (its MAC is its parent's)."""

    kind = "ipvlan"

    def __init__(self, ns: "Netns", ifname: str, mtu: int, *, port: IpvlanPort) -> None:
        super().__init__(ns, ifname, port.parent.mac, mtu)
        self.port = port
        self.lower = port.parent
        self.mode = port.mode
        self.noarp = port.mode == "l3"          # ipvlan_set_port_mode(): IFF_NOARP in l3
        port.add(self)

    def xmit(self, skb: Skb) -> None:
        """ipvlan_start_xmit() → ipvlan_xmit_mode_l2()/l3()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "ipvlan_xmit")
        port = self.port
        if self.mode == "l3":
            self._xmit_l3(skb)
            return
        self.count_tx(skb)
        dst = skb.eth_dst
        if dst == skb.eth_src:
            dev = port.addrs.get(_l3_addr(skb))
            self.ns.skb_orphan(skb)
            if dev is not None:
                dev.deliver(skb)
            else:                        # dev_forward_skb(phy_dev): up the parent's stack
                lower = self.lower
                if lower.capture is not None:
                    lower.capture(self.ctx.vnow(), skb, lower, False)
                lower.ns.netif_receive(skb, lower)
            return
        if dst & _MCAST_BIT:
            port.multicast(skb, exclude=self)
        self.lower.queue_xmit(skb)

    def _xmit_l3(self, skb: Skb) -> None:
        ns = self.ns
        if skb.eth_dst & _MCAST_BIT or skb.eth_type != ETH_P_IP:
            self.tx_dropped += 1
            ns.kfree_skb(skb, Drop.IPVLAN_DROP, "ipvlan_process_outbound")
            return
        self.count_tx(skb)
        dev = self.port.addrs.get(skb.daddr)
        if dev is not None:
            ns.skb_orphan(skb)
            dev.deliver(skb)
            return
        # ipvlan_process_v4_outbound(): route in the parent's namespace, through the parent
        host = self.lower.ns
        rt = host.route_output(skb.daddr)
        if rt is None or (rt.rtype != RTN_LOCAL and rt.dev is not self.lower):
            self.tx_dropped += 1
            ns.kfree_skb(skb, Drop.NO_ROUTE, "ipvlan_process_v4_outbound")
            return
        host.ip_local_out(skb, rt)

    def deliver(self, skb: Skb) -> None:
        """ipvlan_rcv_frame(): the frame enters the child, counted, then its namespace's stack."""
        if skb.sk is not None:
            self.ns.skb_orphan(skb)
        self.rx(skb)
