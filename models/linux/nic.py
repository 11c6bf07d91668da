"""A physical NIC, its qdisc and TX ring, and the wire to its peer.

Transmit (``dev_queue_xmit`` → ``pfifo_fast`` → ``dev_hard_start_xmit`` → ``ndo_start_xmit``):
the stack's CPU work ends when the frame is handed to the qdisc. An empty qdisc is bypassed
(``TCQ_F_CAN_BYPASS``) while the driver's TX ring has room; otherwise the frame waits in one
of pfifo_fast's three bands (``txqueuelen`` packets each, tail drop, priomap by TOS) until a
ring slot frees. A frame on the ring is counted (``tx_packets``/``tx_bytes``) and captured
when the driver takes it, as Linux does; it then waits for the frames ahead of it on the ring
and is serialised at line rate. A frame occupies the wire for
``8 × (max(14 + L3, 60) + 24) / rate`` seconds: the 60-byte minimum frame (``ETH_ZLEN``) and
24 bytes of preamble, SFD, FCS and inter-frame gap. It reaches the peer's NIC after the
link's propagation delay. TX completion (end of serialisation) frees the socket's send-buffer
charge.

Receive: the peer NIC filters on its MAC and its secondary unicast addresses (macvlan
children's MACs, up to ``uc_filter_slots`` in the hardware filter, beyond which the kernel
sets the NIC promiscuous; refused frames count in ``mac_filter_drops``), unless promiscuous,
and the NAPI poll runs on the
CPU that the flow's RSS hash selects; the driver counts the frame there (a padded 42-byte ARP
frame counts 60 bytes), which is also where a capture sees it.

Scope and limitations: no BQL (the ring holds up to ``tx_ring`` frames whatever their
size), no interrupt coalescing or GRO, full duplex point-to-point links only; the driver's
transmit cost is charged when the stack hands the frame over.
Validation: tests/models/linux/test_nic.py (serialisation and queueing against the Lindley
recursion), the udp-tandem scenario test.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import PACKET_OTHERHOST, NetDevice, pkt_type
from .skb import ETH_P_IP, Skb

if TYPE_CHECKING:
    from .netns import Netns
    from .params import NicParams

__all__ = ["Nic", "PfifoFast", "connect_wire", "PRIOMAP"]

# pfifo_fast priomap: TC_PRIO (from the IP TOS) -> band; sch_generic.c prio2band
PRIOMAP = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
# rt_tos2priority(): IPTOS_TOS(tos) >> 1 -> TC_PRIO_*
_TOS2PRIO = (0, 1, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4)


def _band(skb: Skb) -> int:
    if skb.eth_type != ETH_P_IP:
        return 1
    return PRIOMAP[_TOS2PRIO[(skb.tos & 0x1E) >> 1]]


class PfifoFast:
    """pfifo_fast: three FIFO bands of ``limit`` packets, band 0 served first."""

    kind = "pfifo_fast"

    def __init__(self, limit_pkts: int) -> None:
        self.limit = limit_pkts
        self.bands: tuple[deque[Skb], deque[Skb], deque[Skb]] = (deque(), deque(), deque())
        self.qlen = 0
        self.backlog_bytes = 0
        self.drops = 0
        self.requeues = 0
        self.sent_pkts = 0
        self.sent_bytes = 0

    def enqueue(self, skb: Skb) -> bool:
        q = self.bands[_band(skb)]
        if len(q) >= self.limit:
            self.drops += 1
            return False
        q.append(skb)
        self.qlen += 1
        self.backlog_bytes += 14 + skb.l3_len
        return True

    def peek(self) -> Skb | None:
        for q in self.bands:
            if q:
                return q[0]
        return None

    def dequeue(self) -> Skb | None:
        for q in self.bands:
            if q:
                skb = q.popleft()
                self.qlen -= 1
                self.backlog_bytes -= 14 + skb.l3_len
                return skb
        return None

    def __iter__(self):
        for q in self.bands:
            yield from q

    def stats(self) -> dict[str, int]:
        return {"qlen": self.qlen, "backlog": self.backlog_bytes, "drops": self.drops,
                "sent_pkts": self.sent_pkts, "sent_bytes": self.sent_bytes}


class Nic(NetDevice):
    """A physical Ethernet NIC with a pfifo_fast qdisc, a TX ring and a point-to-point wire."""

    kind = "nic"
    qdisc_kind = "pfifo_fast"

    def __init__(self, ns: "Netns", ifname: str, mac: int, params: "NicParams") -> None:
        super().__init__(ns, ifname, mac, params.mtu_bytes)
        self.params = params
        self.rate_bps = params.rate_bps
        self.qdisc = PfifoFast(params.txqueuelen_pkts)
        self.tx_ring = params.tx_ring_pkts
        self.ring_ends: deque[float] = deque()   # serialisation end times of frames on the ring
        self.last_end = 0.0
        self.peer: Nic | None = None      # the other end of the cable: a NIC or a switch port
        self.delay_s = 0.0
        self.wake_pending = False
        self._wire_extra = params.l1_overhead_bytes
        self._min_frame = params.min_frame_bytes
        self.busy_s = 0.0
        # secondary unicast addresses (macvlan children): the hardware filter, then promiscuous
        self.uc_addrs: set[int] = set()
        self.uc_filter_slots = params.uc_filter_slots
        self.uc_promisc = False
        self.promiscuity = 0
        self.mac_filter_drops = 0

    def uc_add(self, mac: int) -> None:
        """dev_uc_add() + __dev_set_rx_mode(): into the filter, or promiscuous when it is full."""
        self.uc_addrs.add(mac)
        if len(self.uc_addrs) > self.uc_filter_slots and not self.uc_promisc:
            self.uc_promisc = True
            self.set_promisc(True)

    def set_promisc(self, on: bool) -> None:
        """dev_set_promiscuity(±1)."""
        self.promiscuity += 1 if on else -1
        self.promisc = self.promiscuity > 0

    def filter_stats(self) -> dict[str, int | bool]:
        return {"promisc": self.promisc, "promiscuity": self.promiscuity, "uc_promisc": self.uc_promisc,
                "uc_addresses": len(self.uc_addrs), "uc_filter_slots": self.uc_filter_slots,
                "mac_filter_drops": self.mac_filter_drops}

    @property
    def carrier(self) -> bool:
        return self.peer is not None

    def wire_time_s(self, skb: Skb) -> float:
        frame = 14 + skb.l3_len
        if frame < self._min_frame:
            frame = self._min_frame
        return (frame + self._wire_extra) * 8.0 / self.rate_bps

    # -- transmit --------------------------------------------------------------------
    def queue_xmit(self, skb: Skb) -> None:
        """dev_queue_xmit(): CPU work ends here; the frame leaves the CPU for the qdisc.

        The hand-over happens at the segment's virtual time. On a host with one CPU, segments
        run one after the other, so hand-overs arrive in time order and the frame can be
        enqueued at once with that timestamp; with several CPUs an event at the virtual time
        keeps frames from different CPUs in the order of their times.
        """
        ctx = self.ctx
        seg = ctx.seg
        if seg is None:
            self._enqueue_at(skb, ctx.env._now)
            return
        seg.charge2(skb, "dev_queue_xmit", "driver_xmit")
        if self.ns.host.serial:
            self._enqueue_at(skb, seg.start + seg.cost)
        else:
            ctx.defer(self._enqueue, skb)

    def _enqueue(self, skb: Skb) -> None:
        self._enqueue_at(skb, self.ctx.env._now)

    def _enqueue_at(self, skb: Skb, now: float) -> None:
        if self.peer is None:
            self.ns.kfree_skb(skb, Drop.NO_CARRIER, "noop_enqueue")
            return
        ends = self.ring_ends
        while ends and ends[0] <= now:
            ends.popleft()
        if self.qdisc.qlen == 0 and len(ends) < self.tx_ring:
            self._start(skb, now)
            return
        skb.t_mark = now
        if not self.qdisc.enqueue(skb):
            self.ns.kfree_skb(skb, Drop.QDISC_DROP, "pfifo_fast_enqueue")
            return
        if not self.wake_pending:
            self.wake_pending = True
            self.ctx.call_at(ends[0] if len(ends) >= self.tx_ring else now, self._wake)

    def _wake(self, _arg: object) -> None:
        """A ring slot freed (or a frame became due): move frames from the qdisc to the ring."""
        self.wake_pending = False
        now = self.ctx.env._now
        ends = self.ring_ends
        while ends and ends[0] <= now:
            ends.popleft()
        q = self.qdisc
        while q.qlen and len(ends) < self.tx_ring:
            head = q.peek()
            if head.t_mark > now:       # enqueued ahead of time by a one-CPU host: not due yet
                self.wake_pending = True
                self.ctx.call_at(head.t_mark, self._wake)
                return
            self._start(q.dequeue(), now)
        if q.qlen:
            self.wake_pending = True
            self.ctx.call_at(ends[0], self._wake)

    def _start(self, skb: Skb, now: float) -> None:
        """dev_hard_start_xmit(): the driver takes the frame onto its ring."""
        self.tx_packets += 1
        self.tx_bytes += 14 + skb.l3_len
        self.qdisc.sent_pkts += 1
        self.qdisc.sent_bytes += 14 + skb.l3_len
        if self.capture is not None:
            self.capture(now, skb, self, True)
        if skb.t_mark < now:           # waited in the qdisc
            acct = skb.acct
            if acct is not None:
                acct["qdisc"] = acct.get("qdisc", 0.0) + (now - skb.t_mark)
            skb.t_mark = now
        start = self.last_end if self.last_end > now else now
        ser = self.wire_time_s(skb)
        end = start + ser
        self.last_end = end
        self.busy_s += ser
        self.ring_ends.append(end)
        delay = self.delay_s
        acct = skb.acct
        if acct is not None:
            wait = start - skb.t_mark
            if wait > 0.0:
                acct["qdisc"] = acct.get("qdisc", 0.0) + wait
            acct["serialisation"] = acct.get("serialisation", 0.0) + ser
            if delay > 0.0:
                acct["propagation"] = acct.get("propagation", 0.0) + delay
        skb.t_mark = end + delay
        sk = skb.sk
        if sk is not None:
            sk.tx_completes_at(end, skb)    # TX completion frees the socket's charge
        self.ctx.call_at(end + delay, self.peer._arrive, skb)

    def in_flight(self) -> list[Skb]:
        return list(self.qdisc)

    # -- receive ---------------------------------------------------------------------
    def _arrive(self, skb: Skb) -> None:
        """The last bit arrived: the MAC filter, then NAPI on the RSS CPU."""
        dst = skb.eth_dst
        if (not self.promisc and dst != self.mac and pkt_type(dst, self.mac) == PACKET_OTHERHOST
                and dst not in self.uc_addrs):
            self.mac_filter_drops += 1
            self.ns.kfree_skb(skb, Drop.OTHERHOST, "nic_mac_filter")
            return
        self.ns.host.rss_cpu(skb).submit(self._napi, skb, skb)

    def _napi(self, skb: Skb) -> None:
        """NAPI poll → __netif_receive_skb_core → the master's rx_handler or the IP/ARP handler.

        The driver counts the frame here, and here tcpdump's tap sees (and timestamps) it:
        when a CPU gets to it, not when its last bit arrived."""
        seg = self.ctx.seg
        frame = 14 + skb.l3_len
        self.rx_packets += 1
        self.rx_bytes += frame if frame >= self._min_frame else self._min_frame
        if self.capture is not None:
            self.capture(seg.start, skb, self, False)
        if self.master is not None:
            seg.charge2(skb, "napi_rx", "netif_receive")
            self.master.handle_frame(skb, self)
        else:
            seg.charge(skb, "napi_rx")
            self.ns.netif_receive(skb, self)


def connect_wire(a: Nic, b: Nic, delay_s: float) -> None:
    """A full-duplex point-to-point link between two NICs."""
    a.peer, b.peer = b, a
    a.delay_s = b.delay_s = delay_s


def rss_hash(skb: Skb) -> int:
    """A stable stand-in for the NIC's Toeplitz hash.

    Hashes the IPv4 source, destination and protocol (the default RSS input for UDP on
    common NICs, and the only one fragments have), so a flow's fragments stay on one CPU.
    Non-IP frames (ARP) go to queue 0.
    """
    if skb.eth_type != ETH_P_IP:
        return 0
    return zlib.crc32(b"%d,%d,%d" % (skb.saddr, skb.daddr, skb.proto))
