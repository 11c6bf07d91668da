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

Scope and limitations: no multicast filtering, no VLANs, no carrier changes during a run.
Validation: tests/test_counts.py (byte and packet counts against the kernel's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from simnet.trace import Drop

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


def backlog_full(dev: NetDevice) -> bool:
    """enqueue_to_backlog() would refuse: this CPU's backlog holds ``netdev_max_backlog`` frames."""
    seg = dev.ctx.seg
    return seg is not None and len(seg.cpu.backlog) >= dev.ns.host.max_backlog


def netif_rx(dev: NetDevice, skb: Skb, receive: Callable[[Skb], None] | None = None) -> None:
    """netif_rx(): queue ``skb`` on this CPU's backlog; ``process_backlog`` hands it to
    ``receive`` (``dev.rx`` unless given).

    As on Linux, the backlog is drained when the transmit path re-enables bottom halves
    (``local_bh_enable`` at the end of ``dev_queue_xmit``): at once, in the same segment, on
    the same CPU, before the sender goes on. (Checked on Linux 6.18: a first datagram of three
    fragments to an unresolved neighbour, with ``unres_qlen_bytes`` room for one, arrives whole,
    because the ARP exchange over the veth completes inside the first fragment's transmission.)
    A packet queued while the backlog is being drained (a TCP ACK sent while processing a data
    segment, say) waits its turn in the loop instead of being processed recursively. Callers
    check :func:`backlog_full` first (``netdev_max_backlog``, global, the host's).
    """
    receive = receive or dev.rx
    ctx = dev.ctx
    seg = ctx.seg
    if seg is None:
        dev.ns.host.cpus[0].submit_softirq(receive, skb, skb)
        return
    cpu = seg.cpu
    q = cpu.backlog
    q.append((receive, skb))
    if cpu.draining:
        return
    cpu.draining = True
    try:
        while q:
            r, s = q.popleft()
            r(s)
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
        self.ns.skb_orphan(skb)
        skb.eth_dst = skb.eth_src = 0
        if backlog_full(self):
            self.rx_dropped += 1          # enqueue_to_backlog(): dev_core_stats_rx_dropped_inc
            self.ns.kfree_skb(skb, Drop.CPU_BACKLOG, "loopback_xmit")
            return
        # loopback_xmit() takes skb->len after eth_type_trans() pulled the Ethernet header, and lo's
        # rx statistics are its tx statistics: both count the IP packet without the 14-byte header
        # (checked on Linux 6.18 with the netns engine).
        self.tx_packets += 1
        self.tx_bytes += skb.l3_len
        self.rx_packets += 1
        self.rx_bytes += skb.l3_len
        netif_rx(self, skb, self._process)

    def _process(self, skb: Skb) -> None:
        """process_backlog() for lo: the capture sees the packet once (libpcap drops the
        outgoing copy on lo), then up the stack."""
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, False)
        self.receive(skb)
