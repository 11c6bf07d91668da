"""macvlan devices: drivers/net/macvlan.c (``macvlan_queue_xmit``, ``macvlan_handle_frame``,
``macvlan_broadcast``, ``macvlan_multicast_rx``, ``macvlan_open``) and the parent's unicast
filter (net/core/dev.c ``__dev_set_rx_mode``, net/core/dev_addr_lists.c ``dev_uc_add``).

Each :class:`Macvlan` child has its own MAC and sits in a container's namespace; its parent
(the host's NIC, or a dummy device when Docker is given no ``parent``) carries a
:class:`MacvlanPort`, the rx_handler that hands received frames to the children.

Transmit (``macvlan_queue_xmit``):

* ``bridge`` (Docker's default): a frame to a sibling's MAC that is also in bridge mode is
  handed to the parent's receive path (``dev_forward_skb``: taps on the parent see it) and
  from there to the sibling; it never reaches the parent's qdisc or the wire. A broadcast goes
  to every bridge-mode sibling directly and out of the parent.
* ``vepa``, ``private``, ``passthru``: every frame leaves through the parent's qdisc and wire.
  Siblings then hear each other only if the switch on the other end of the wire reflects
  frames back out of the port they came in on (reflective relay, "hairpin": a ``switches:``
  node with ``hairpin: true``).

Receive (``macvlan_handle_frame`` on the parent): a unicast frame goes to the child owning the
destination MAC (in passthru to the only child), else up the parent's own stack. A broadcast
from outside goes to every child (via the broadcast work queue) and up the parent; a broadcast
that came back from the switch with a sibling's source MAC goes to the vepa siblings (from a
vepa child: also bridge ones), except from a ``private`` child, whose broadcasts are returned
to that child only — which is how private mode keeps siblings apart: they never see its ARP
requests, even through a hairpin switch.

The parent accepts the children's MACs: ``macvlan_open`` adds each to the parent's unicast
address list (``dev_uc_add``); a NIC with a hardware unicast filter of ``uc_filter_slots``
entries takes them there, and beyond that (or without a filter) the kernel puts it in
promiscuous mode (``uc_promisc``). passthru takes the parent's MAC and sets it promiscuous.
The NIC counts frames its filter refused (``mac_filter_drops``; see nic.py).

The host cannot reach its own macvlan children through the parent: what the host sends
leaves on the wire, and the children only hear what the parent *receives*.

Counters: the children count what they send and receive as any device (Ethernet header
included), with two quirks of ``macvlan_count_rx``'s lengths seen on Linux 6.18 by the netns
replay: a bridge-mode child's broadcast counts 14 bytes more on each sibling that receives it
(``macvlan_broadcast`` adds ``ETH_HLEN`` to a length that, on the transmit path, already
includes it), and a private child's broadcast returned to it by a hairpin switch counts as a
packet of 0 bytes (``macvlan_handle_frame``'s "forward to original port" path never sets
``len``).

Scope and limitations: no ``source`` mode, no VLAN sub-interfaces (``parent: eth0.50``), the
broadcast work queue runs inline (its cost is charged as ``macvlan_bc``) and never overflows
(``bc_queue_len`` 1000), no multicast filters (every broadcast is wanted).
Validation: tests/models/linux/test_macvlan.py; scenarios macvlan-bridge.yaml,
macvlan-modes.yaml. Checked on Linux 6.18 (two namespaces joined by a veth as the "wire", two
bridge-mode macvlan children of one end): the children answer each other (3 of 3), a capture
on the parent shows their frames but one on the other end of the wire none; the parent's
host gets no answer from its own child (its ARP requests leave on the wire) while the other
host does (3 of 3); the veth parent, which has no unicast filter, went promiscuous
(``promiscuity 1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import NetDevice, backlog_full, netif_rx
from .skb import Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Macvlan", "MacvlanPort", "Dummy", "MACVLAN_MODES"]

MACVLAN_MODES = ("private", "vepa", "bridge", "passthru")
_MCAST_BIT = 1 << 40


class MacvlanPort:
    """``struct macvlan_port``: the children of one parent, by MAC."""

    def __init__(self, parent: NetDevice) -> None:
        self.parent = parent
        self.ports = [parent]              # what Network.validate expects of a master
        self.vlans: list[Macvlan] = []
        self.by_mac: dict[int, Macvlan] = {}
        self.passthru = False
        parent.master = self

    def add(self, vlan: "Macvlan") -> None:
        """macvlan_open(): the child's MAC into the parent's unicast list (passthru: promiscuous)."""
        if self.passthru or (vlan.mode == "passthru" and self.vlans):
            raise ValueError(f"{self.parent!r}: passthru allows only one macvlan device (EINVAL)")
        if vlan.mac in self.by_mac:
            raise ValueError(f"{self.parent!r}: MAC of {vlan!r} is already in use (EADDRINUSE)")
        self.vlans.append(vlan)
        self.by_mac[vlan.mac] = vlan
        parent = self.parent
        if vlan.mode == "passthru":
            self.passthru = True
            parent.set_promisc(True)
        elif hasattr(parent, "uc_add"):
            parent.uc_add(vlan.mac)

    # -- the parent's rx_handler -----------------------------------------------------------
    def handle_frame(self, skb: Skb, parent: NetDevice) -> None:
        """macvlan_handle_frame()."""
        ctx = parent.ctx
        dst = skb.eth_dst
        if dst & _MCAST_BIT:
            src = self.by_mac.get(skb.eth_src)
            if src is not None and src.mode not in ("vepa", "bridge"):
                # "forward to original port" only: RX_HANDLER_CONSUMED, counted with len = 0
                src.deliver(skb, 0)
                return
            if src is None:
                modes = MACVLAN_MODES
            elif src.mode == "vepa":
                modes = ("vepa", "bridge")
            else:
                modes = ("vepa",)
            self.broadcast(skb, exclude=src, modes=modes, local=False)
            parent.ns.netif_receive(skb, parent)       # RX_HANDLER_PASS
            return
        vlan = self.vlans[0] if self.passthru and self.vlans else self.by_mac.get(dst)
        if vlan is None:
            parent.ns.netif_receive(skb, parent)       # for the parent itself (or OTHERHOST)
            return
        seg = ctx.seg
        if seg is not None:
            seg.charge(skb, "macvlan_rcv")
        vlan.deliver(skb)

    def broadcast(self, skb: Skb, *, exclude: "Macvlan | None", modes: tuple[str, ...], local: bool) -> None:
        """macvlan_broadcast(): a copy to every child in ``modes`` but ``exclude``."""
        targets = [v for v in self.vlans if v is not exclude and v.mode in modes]
        if not targets:
            return
        ctx = self.parent.ctx
        seg = ctx.seg
        if seg is not None and not local:
            seg.charge(skb, "macvlan_bc")     # the broadcast work queue (macvlan_process_broadcast)
        ctx.tracer.clone(skb.origin, len(targets))
        ns = self.parent.ns
        # macvlan_broadcast() counts skb->len + ETH_HLEN on each receiver; from the transmit path (a
        # bridge-mode child's broadcast) skb->len still includes the Ethernet header, so the receiving
        # siblings count it twice (Linux 6.18, netns replay of macvlan-bridge: 56 bytes per ARP request)
        for v in targets:
            c = skb.copy(ns.next_skb_id())
            v.deliver(c, 28 + c.l3_len if local else None)


class Macvlan(NetDevice):
    """A macvlan child device."""

    kind = "macvlan"

    def __init__(self, ns: "Netns", ifname: str, mac: int, mtu: int, *, port: MacvlanPort, mode: str) -> None:
        super().__init__(ns, ifname, mac, mtu)
        if mode not in MACVLAN_MODES:
            raise ValueError(f"unknown macvlan mode {mode!r}")
        self.port = port
        self.lower = port.parent
        self.mode = mode
        port.add(self)

    def xmit(self, skb: Skb) -> None:
        """macvlan_start_xmit() → macvlan_queue_xmit()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "macvlan_xmit")
        self.count_tx(skb)
        port = self.port
        if self.mode == "bridge":
            dst = skb.eth_dst
            if dst & _MCAST_BIT:
                port.broadcast(skb, exclude=self, modes=("bridge",), local=True)
            else:
                dest = port.by_mac.get(dst)
                if dest is not None and dest.mode == "bridge":
                    self.ns.skb_orphan(skb)
                    if backlog_full(self.lower):
                        self.ns.kfree_skb(skb, Drop.CPU_BACKLOG, "dev_forward_skb")
                    else:
                        netif_rx(self.lower, skb, self._forward_to_lower)
                    return
        self.lower.queue_xmit(skb)

    def _forward_to_lower(self, skb: Skb) -> None:
        """dev_forward_skb(lowerdev) → netif_rx: from the backlog into the parent's receive
        path (its taps see the frame)."""
        lower = self.lower
        if lower.capture is not None:
            lower.capture(self.ctx.vnow(), skb, lower, False)
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "netif_receive")
        self.port.handle_frame(skb, lower)

    def deliver(self, skb: Skb, rx_len: int | None = None) -> None:
        """The frame enters the child (``skb->dev = vlan->dev``): counted — as ``rx_len`` bytes when
        given (macvlan's own ``macvlan_count_rx`` lengths, see the module docstring), else the
        frame's length — then its namespace's stack."""
        if skb.sk is not None:
            self.ns.skb_orphan(skb)
        if rx_len is not None:
            self.rx_bytes += rx_len - (14 + skb.l3_len)
        self.rx(skb)


class Dummy(NetDevice):
    """drivers/net/dummy.c: ``dummy_xmit`` counts the frame and frees it; nothing is ever received."""

    kind = "dummy"

    def xmit(self, skb: Skb) -> None:
        self.count_tx(skb)
        self.ns.skb_orphan(skb)
        self.ctx.tracer.consume(skb)

    def set_promisc(self, on: bool) -> None:
        self.promisc = on
