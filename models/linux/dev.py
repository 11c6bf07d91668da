"""Network devices: the common part (``struct net_device`` and its statistics) and loopback.

Every device belongs to exactly one namespace, has a MAC, an MTU, addresses, its neighbour
entries and the six counters of ``/sys/class/net/<dev>/statistics`` that simnet reports:
``rx_packets``, ``rx_bytes``, ``tx_packets``, ``tx_bytes``, ``rx_dropped``, ``tx_dropped``.
Byte counters count what the kernel counts: the 14-byte Ethernet header plus the L3 packet,
no FCS, no preamble (the bridge device's ``rx_bytes`` is the exception the kernel makes: it
counts after the Ethernet header is pulled, see bridge.py).

``queue_xmit`` is ``dev_queue_xmit``: devices without a qdisc (``noqueue``: veth, bridge,
loopback) call their ``xmit`` (``ndo_start_xmit``) directly; a physical NIC enqueues into its
qdisc (nic.py). ``rx`` is the frame arriving on the device (``netif_rx``/``napi_gro_receive``);
it goes to the device's master (a bridge port's rx_handler) or up the namespace's stack.

Captures: when the engine sets ``capture``, frames are handed to it as tcpdump would see them
on that device, at transmit (``dev_queue_xmit_nit``) and at receive.

Scope and limitations: no multicast filtering, no VLANs, no carrier changes during a run;
the per-CPU backlog of ``netif_rx`` is drained inline (so ``netdev_max_backlog`` never fills).
Validation: tests/test_counts.py (byte and packet counts against the kernel's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .skb import BROADCAST_MAC, Skb
from .tcp.offload import gso_segment

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["NetDevice", "Loopback", "netif_rx", "PACKET_HOST", "PACKET_BROADCAST", "PACKET_MULTICAST", "PACKET_OTHERHOST",
           "pkt_type", "STAT_FIELDS"]

PACKET_HOST = 0
PACKET_BROADCAST = 1
PACKET_MULTICAST = 2
PACKET_OTHERHOST = 3

STAT_FIELDS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "tx_dropped")

_MCAST_BIT = 1 << 40


def pkt_type(dst_mac: int, dev_mac: int) -> int:
    """eth_type_trans(): how a received frame relates to this device."""
    if dst_mac == dev_mac:
        return PACKET_HOST
    if dst_mac == BROADCAST_MAC:
        return PACKET_BROADCAST
    if dst_mac & _MCAST_BIT:
        return PACKET_MULTICAST
    return PACKET_OTHERHOST


class NetDevice:
    """``struct net_device``: identity, addresses, counters and the xmit/rx entry points."""

    kind = "dev"
    qdisc_kind = "noqueue"

    def __init__(self, ns: "Netns", ifname: str, mac: int, mtu: int) -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.ifname = ifname
        self.mac = mac
        self.mtu = mtu
        self.addrs: list[tuple[int, int]] = []      # (address, prefix length)
        self.master: Any = None                     # the bridge this device is a port of
        self.neigh: dict[int, Any] = {}             # next-hop IP -> Neighbour
        self.noarp = False
        self.promisc = False
        # offload features (ethtool -k): TSO takes TCP super-segments whole; GRO merges
        # received segments (physical NICs only)
        self.tso = True
        self.gro = False
        self.capture: Callable[[float, Skb, "NetDevice", bool], None] | None = None
        self.rx_packets = 0
        self.rx_bytes = 0
        self.tx_packets = 0
        self.tx_bytes = 0
        self.rx_dropped = 0
        self.tx_dropped = 0
        ns.add_device(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ns.name}:{self.ifname}>"

    @property
    def features(self) -> dict[str, bool]:
        return {"tso": self.tso, "gro": self.gro}

    def gso_segment(self, skb: Skb) -> list[Skb]:
        """validate_xmit_skb() → skb_gso_segment() for a device without TSO (CPU per segment)."""

        segs = gso_segment(skb, self.ctx)
        seg = self.ctx.seg
        if seg is not None:
            for s in segs:
                seg.charge(s, "gso_segment")
        return segs

    def stats(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in STAT_FIELDS}

    # -- transmit ------------------------------------------------------------------
    def queue_xmit(self, skb: Skb) -> None:
        """dev_queue_xmit() on a noqueue device: straight to the driver."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "dev_queue_xmit")
        if skb.gso_segs > 1 and not self.tso:
            for s in self.gso_segment(skb):
                self.xmit(s)
            return
        self.xmit(skb)

    def xmit(self, skb: Skb) -> None:  # pragma: no cover - every device type overrides it
        raise NotImplementedError

    def count_tx(self, skb: Skb) -> None:
        self.tx_packets += 1
        self.tx_bytes += 14 + skb.l3_len
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, True)

    # -- receive -------------------------------------------------------------------
    def rx(self, skb: Skb) -> None:
        """A frame arrived on this device: count it, then rx_handler or the stack."""
        self.rx_packets += 1
        self.rx_bytes += 14 + skb.l3_len
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, False)
        self.receive(skb)

    def receive(self, skb: Skb) -> None:
        """__netif_receive_skb_core(): to the master's rx_handler, else up the stack."""
        master = self.master
        if master is not None:
            seg = self.ctx.seg
            if seg is not None:
                seg.charge(skb, "netif_receive")
            master.handle_frame(skb, self)
        else:
            self.ns.netif_receive(skb, self)


def netif_rx(dev: NetDevice, skb: Skb) -> None:
    """netif_rx(): queue ``skb`` for ``dev`` on this CPU's backlog; ``process_backlog`` drains it.

    As on Linux, the backlog is drained when the transmit path re-enables bottom halves
    (``local_bh_enable`` at the end of ``dev_queue_xmit``): at once, in the same segment, on
    the same CPU, before the sender goes on. A packet queued while the backlog is being drained
    (a TCP ACK sent while processing a data segment, say) waits its turn in the loop instead of
    being processed recursively.
    """
    ctx = dev.ctx
    seg = ctx.seg
    if seg is None:
        dev.ns.host.cpus[0].submit_softirq(dev.rx, skb, skb)
        return
    cpu = seg.cpu
    q = cpu.backlog
    q.append((dev, skb))
    if cpu.draining:
        return
    cpu.draining = True
    try:
        while q:
            d, s = q.popleft()
            d.rx(s)
    finally:
        cpu.draining = False


class Loopback(NetDevice):
    """``lo``: loopback_xmit() hands the packet to netif_rx() on the same device."""

    kind = "loopback"

    def __init__(self, ns: "Netns") -> None:
        super().__init__(ns, "lo", 0, 65536)
        self.noarp = True

    def xmit(self, skb: Skb) -> None:
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "loopback_xmit")
        self.tx_packets += 1
        self.tx_bytes += 14 + skb.l3_len
        self.ns.skb_orphan(skb)
        skb.eth_dst = skb.eth_src = 0
        # libpcap drops the outgoing copy on lo, so the capture sees each packet once (rx).
        netif_rx(self, skb)
