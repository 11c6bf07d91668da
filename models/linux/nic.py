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

The qdisc and the ring are served in order (simnet's traffic is all TOS 0, pfifo_fast band
1), so when a frame enters the ring, starts and ends follow at enqueue time from the frames
ahead of it: the NIC schedules them then, with no event per dequeue; ``qlen``/``backlog`` in
the qdisc statistics are the frames whose ring entry is still ahead of the clock.

TSO: a TCP super-segment occupies one qdisc and ring slot and is cut into frames as it is
serialised (``tx_packets`` counts frames, as hardware drivers do); the capture sees the
super-segment, as tcpdump does. Link impairments (the scenario's ``links[]``): ``rate`` (the
NIC serialises at the lower of its rate and the link's), ``queue`` (the qdisc limit, with a
one-frame ring), ``loss`` (each frame is lost with that probability, drawn from a seeded
stream per link end) and ``drop`` (frame numbers to lose); a lost frame occupies the wire and
is dropped (``LINK_LOSS``) when its serialisation ends; ``jitter`` (each frame's delay drawn
uniformly from delay ± jitter, in order: netem with a pfifo child).

Receive: the peer NIC filters on its MAC and its secondary unicast addresses (macvlan
children's MACs, up to ``uc_filter_slots`` in the hardware filter, beyond which the kernel
sets the NIC promiscuous; refused frames count in ``mac_filter_drops``), unless promiscuous,
and the NAPI poll runs on the
CPU that the flow's RSS hash selects; the driver counts the frame there (a padded 42-byte ARP
frame counts 60 bytes), which is also where a capture sees it.

Scope and limitations: no BQL (the ring holds up to ``tx_ring`` frames whatever their
size), no interrupt coalescing, GRO only for TCP addressed to the host itself (a forwarding
host does not merge), one FIFO for pfifo_fast's bands (all simnet
traffic maps to band 1), full duplex point-to-point links only; the driver's transmit cost
is charged when the stack hands the frame over; netem's reordering, duplication and
non-uniform jitter distributions are not modelled.
Validation: tests/models/linux/test_link.py (link rate, queue limit, delay and jitter, random
and listed losses), tests/test_tandem.py (serialisation and queueing against the Lindley
recursion), tests/models/linux/tcp/test_info.py (GRO).
"""

from __future__ import annotations

import zlib
from collections import deque
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from simnet.trace import Drop

from .dev import PACKET_OTHERHOST, NetDevice, pkt_type
from .skb import ETH_P_IP, IPPROTO_TCP, Skb, truesize
from .tcp.offload import gso_segment

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
        self.view: Any = None
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
        view = getattr(self, "view", None)
        if view is not None:            # a NIC's schedule: what still waits at the current time
            now = view.ctx.env.now
            waiting = [b for t, b in view.waiting if t > now]
            self.qlen, self.backlog_bytes = len(waiting), sum(waiting)
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
        self.ring_ends: deque[float] = deque(maxlen=params.tx_ring_pkts)   # ends of the last tx_ring frames
        self.waiting: deque[tuple[float, int]] = deque()     # (ring entry, bytes) of frames in the qdisc
        self.last_end = 0.0
        self.peer: Nic | None = None      # the other end of the cable: a NIC or a switch port
        self.delay_s = 0.0
        self.wake_pending = False
        self.last_enq = 0.0
        self.gro_q: dict[Any, deque[Skb]] = {}
        self._gro_short = False
        self._wire_extra = params.l1_overhead_bytes
        self._min_frame = params.min_frame_bytes
        self.busy_s = 0.0
        # secondary unicast addresses (macvlan children): the hardware filter, then promiscuous
        self.uc_addrs: set[int] = set()
        self.uc_filter_slots = params.uc_filter_slots
        self.uc_promisc = False
        self.promiscuity = 0
        self.mac_filter_drops = 0
        self.tso = params.tso
        self.gro = params.gro
        # link impairments (scenario links[]): random loss, an explicit list of frames to drop
        self.loss_p = params.loss
        self.loss_rng: Any = None
        self.drop_frames: frozenset[int] = frozenset()
        self.frames_out = 0
        self.link_lost = 0
        self.jitter_s = 0.0             # delay ± jitter per frame, order kept (netem + pfifo child)
        self.jitter_rng: Any = None
        self.last_arrive = 0.0
        self.impaired = bool(self.loss_p)   # any of loss, drop, jitter (set by the builder)
        if params.queue_pkts:
            self.qdisc = PfifoFast(params.queue_pkts)
            self.tx_ring = 1
            self.ring_ends = deque(maxlen=1)
        self.qdisc.view = self

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

        The hand-over happens at the segment's virtual time, and the frame is scheduled at
        once (see ``_enqueue_at``): hand-overs reach a NIC in time order, except that two CPUs'
        segments may overlap in time; a frame handed over at an earlier time than one already
        scheduled is queued behind it.
        """
        ctx = self.ctx
        seg = ctx.seg
        if seg is None:
            self._enqueue_at(skb, ctx.env._now)
            return
        seg.charge2(skb, "dev_queue_xmit", "driver_xmit")
        if skb.gso_segs > 1 and not self.tso:
            segs = self.gso_segment(skb)
        else:
            segs = (skb,)
        t = seg.start + seg.cost
        if t < self.last_enq:
            # another CPU already handed over a frame at a later virtual time: this one
            # queues behind it (CPUs run a segment at once, so their clocks overlap by at most
            # one segment, microseconds)
            t = self.last_enq
        self.last_enq = t
        for s in segs:
            self._enqueue_at(s, t)

    def _enqueue(self, skb: Skb) -> None:
        self._enqueue_at(skb, self.ctx.env._now)

    def _enqueue_at(self, skb: Skb, now: float) -> None:
        """The qdisc and the ring as one FIFO schedule (see the module docstring): when the
        frame enters the ring (a slot frees: the frame ``tx_ring`` places ahead has left),
        when it starts (the wire is free) and when it ends are known at enqueue time."""
        if self.peer is None:
            self.ns.kfree_skb(skb, Drop.NO_CARRIER, "noop_enqueue")
            return
        waiting = self.waiting
        while waiting and waiting[0][0] <= now:
            waiting.popleft()
        q = self.qdisc
        if len(waiting) >= q.limit:
            q.drops += 1
            self.ns.kfree_skb(skb, Drop.QDISC_DROP, "pfifo_fast_enqueue")
            return
        ends = self.ring_ends
        entry = now if len(ends) < self.tx_ring or ends[0] <= now else ends[0]
        if entry > now:
            waiting.append((entry, 14 + skb.l3_len))
        self._start(skb, entry, now)

    def _start(self, skb: Skb, now: float, t_enq: float) -> None:
        """dev_hard_start_xmit(): the driver takes the frame (or TSO super-segment) onto its ring
        at ``now`` (possibly ahead of the clock: captures and ledgers use that time)."""
        if self.capture is not None:
            self.capture(now, skb, self, True)
        if skb.t_mark < now:           # waited in the qdisc
            acct = skb.acct
            if acct is not None:
                acct["qdisc"] = acct.get("qdisc", 0.0) + (now - skb.t_mark)
            skb.t_mark = now
        q = self.qdisc
        q.sent_pkts += 1
        l2 = 14 + skb.l3_len
        q.sent_bytes += l2
        if skb.gso_segs <= 1 and not self.impaired:
            # the common case, one frame on a clean link: the loop below, unrolled
            start = self.last_end if self.last_end > now else now
            ser = ((l2 if l2 >= self._min_frame else self._min_frame) + self._wire_extra) * 8.0 / self.rate_bps
            end = start + ser
            delay = self.delay_s
            self.tx_packets += 1
            self.tx_bytes += l2
            self.busy_s += ser
            acct = skb.acct
            if acct is not None:
                wait = start - skb.t_mark
                if wait > 0.0:
                    acct["qdisc"] = acct.get("qdisc", 0.0) + wait
                acct["serialisation"] = acct.get("serialisation", 0.0) + ser
                if delay > 0.0:
                    acct["propagation"] = acct.get("propagation", 0.0) + delay
            skb.t_mark = end + delay
            self.frames_out += 1
            sk = skb.sk
            if sk is not None:                            # TX completion
                if sk.lazy_tx:
                    skb.sk = None
                    sk.tx_complete_at(end, skb.truesize)
                else:
                    self.ctx.call_at(end, self.ns.skb_orphan, skb)
            self.ctx.call_at(end + delay, self.peer._arrive, skb)
            self.last_end = end
            self.ring_ends.append(end)
            return
        if skb.gso_segs > 1:           # TSO: the NIC cuts it into frames on the wire
            frames = gso_segment(skb, self.ctx)
            sk = skb.sk
            if sk is not None:         # the super-segment is freed when its last frame has left
                total = 0
                for f in frames:
                    total += f.truesize
                    f.sk = None
                frames[-1].sk = sk
                frames[-1].truesize = total
        else:
            frames = (skb,)
        start = self.last_end if self.last_end > now else now
        delay = self.delay_s
        ctx = self.ctx
        peer_arrive = self.peer._arrive
        for f in frames:
            self.tx_packets += 1
            self.tx_bytes += 14 + f.l3_len
            ser = self.wire_time_s(f)
            end = start + ser
            self.busy_s += ser
            acct = f.acct
            if acct is not None:
                wait = start - f.t_mark
                if wait > 0.0:
                    acct["qdisc"] = acct.get("qdisc", 0.0) + wait
                acct["serialisation"] = acct.get("serialisation", 0.0) + ser
                if delay > 0.0:
                    acct["propagation"] = acct.get("propagation", 0.0) + delay
            f.t_mark = end + delay
            self.frames_out += 1
            if (self.loss_p and self.loss_rng.random() < self.loss_p) or self.frames_out in self.drop_frames:
                self.link_lost += 1
                ctx.call_at(end, self._lost, f)
            else:
                sk = f.sk
                if sk is not None:                            # TX completion
                    if sk.lazy_tx:
                        f.sk = None
                        sk.tx_complete_at(end, f.truesize)
                    else:
                        ctx.call_at(end, self.ns.skb_orphan, f)
                if self.jitter_s:
                    arrive = self._jittered(end, f)
                else:
                    arrive = end + delay
                ctx.call_at(arrive, peer_arrive, f)
            start = end
        self.last_end = start
        self.ring_ends.append(start)

    def _jittered(self, end: float, f: Skb) -> float:
        """netem's ``delay D jitter J`` (uniform) with a pfifo child: each frame draws its delay
        from D ± J (not below 0) and may not overtake the frame ahead of it."""
        d = self.delay_s + self.jitter_s * (2.0 * self.jitter_rng.random() - 1.0)
        t = end + (d if d > 0.0 else 0.0)
        if t < self.last_arrive:
            t = self.last_arrive
        self.last_arrive = t
        extra = t - (end + self.delay_s)
        if extra:
            acct = f.acct
            if acct is not None:
                acct["propagation"] = acct.get("propagation", 0.0) + extra
            f.t_mark = t
        return t

    def _lost(self, skb: Skb) -> None:
        """The link impairment lost the frame (netem loss): it left, it never arrives."""
        self.ns.kfree_skb(skb, Drop.LINK_LOSS, "link")

    def in_flight(self) -> list[Skb]:
        """Frames waiting for a NAPI poll (GRO queues). Frames in the qdisc or on the ring wait in
        their scheduled events, where the census finds them."""
        return [skb for q in self.gro_q.values() for skb in q]

    # -- receive ---------------------------------------------------------------------
    def _arrive(self, skb: Skb) -> None:
        """The last bit arrived: the MAC filter, then NAPI on the RSS CPU."""
        dst = skb.eth_dst
        if (not self.promisc and dst != self.mac and pkt_type(dst, self.mac) == PACKET_OTHERHOST
                and dst not in self.uc_addrs):
            self.mac_filter_drops += 1
            self.ns.kfree_skb(skb, Drop.OTHERHOST, "nic_mac_filter")
            return
        skb.truesize = truesize(skb.l3_len)          # the driver's receive buffer
        cpu = self.ns.host.rss_cpu(skb)
        if (self.gro and skb.proto == IPPROTO_TCP and self.master is None and not skb.mf and not skb.frag_off
                and skb.daddr in self.ns.local_addrs):
            q = self.gro_q.get(cpu)
            if q is None:
                q = self.gro_q[cpu] = deque()
            q.append(skb)
            if len(q) == 1:
                cpu.submit_softirq(self._gro_poll, cpu, skb)
            return
        cpu.submit_softirq(self._napi, skb, skb)

    def _gro_poll(self, cpu: Any) -> None:
        """A NAPI poll of this NIC's receive queue on ``cpu`` with GRO (``napi_gro_receive``).

        Up to ``dev_weight`` (64) frames that have arrived are taken; consecutive in-order TCP
        segments of one flow with the same ACK number and options (timestamps) are merged into
        one skb of up to 64 KiB (``tcp_gro_receive``); a short segment or PSH ends a merge.
        Each merged skb goes up the stack as one packet (one TCP receive, one ACK decision, one
        ``InSegs``), which is how a Linux receiver keeps up with a fast link. The capture sees
        the merged skbs, as tcpdump does."""
        q = self.gro_q[cpu]
        seg = self.ctx.seg
        table = seg.table
        napi_pp, _pb, napi_key = table["napi_rx"]
        head = None
        n = 0
        tracer = self.ctx.tracer
        while q and n < 64:
            f = q.popleft()
            n += 1
            frame = 14 + f.l3_len
            self.rx_packets += 1
            self.rx_bytes += frame if frame >= self._min_frame else self._min_frame
            t = seg.start + seg.cost
            acct = f.acct
            if acct is not None:
                if t > f.t_mark:
                    acct["cpu_wait"] = acct.get("cpu_wait", 0.0) + (t - f.t_mark)
                acct[napi_key] = acct.get(napi_key, 0.0) + napi_pp
            seg.cost += napi_pp
            f.t_mark = t + napi_pp
            if head is not None:
                hlen = head.tcp_hlen
                payload = f.l3_len - 20 - f.tcp_hlen
                hp = head.l3_len - 20 - hlen
                if (f.saddr == head.saddr and f.sport == head.sport and f.dport == head.dport
                        and f.seq == head.seq + hp and f.ack_seq == head.ack_seq and f.tcp_hlen == hlen
                        and f.tsval == head.tsval and f.tsecr == head.tsecr and not f.sack and not head.sack
                        and payload > 0 and payload <= head.gso_size and not head.tcp_flags & 0x08
                        and not f.tcp_flags & 0x07 and head.l3_len + payload <= 65535 - 20
                        and not self._gro_short):
                    head.l3_len += payload
                    head.gso_segs += 1
                    head.truesize += f.truesize
                    head.tcp_flags |= f.tcp_flags & 0x08
                    self._gro_short = payload < head.gso_size
                    if f.app is not None:
                        ha = head.app
                        extra = (f.app[0], f.app[1], f.acct, f.t_mark)
                        head.app = (ha[0], ha[1], (ha[2] if len(ha) > 2 else ()) + (extra,)) if ha is not None \
                            else (0.0, (), (extra,))
                    tracer.deliver(f)
                    continue
                self._gro_flush(head)
                head = None
            if (f.tcp_flags & 0x07) == 0 and f.l3_len - 20 - f.tcp_hlen > 0 and not f.gso_size:
                head = f
                head.gso_size = f.l3_len - 20 - f.tcp_hlen
                self._gro_short = False
            else:
                self._gro_flush(f)
        if head is not None:
            self._gro_flush(head)
        if q:
            cpu.submit_softirq(self._gro_poll, cpu, q[0])

    def _gro_flush(self, skb: Skb) -> None:
        """napi_gro_complete() → netif_receive_skb(): the (merged) skb goes up."""
        if skb.gso_segs == 1:
            skb.gso_size = 0
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, False)
        self.ns.netif_receive(skb, self)

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


@lru_cache(maxsize=65536)
def _toeplitz_standin(saddr: int, daddr: int, proto: int) -> int:
    return zlib.crc32(b"%d,%d,%d" % (saddr, daddr, proto))


def rss_hash(skb: Skb) -> int:
    """A stable stand-in for the NIC's Toeplitz hash.

    Hashes the IPv4 source, destination and protocol (the default RSS input for UDP on
    common NICs, and the only one fragments have), so a flow's fragments stay on one CPU.
    Non-IP frames (ARP) go to queue 0.
    """
    if skb.eth_type != ETH_P_IP:
        return 0
    return _toeplitz_standin(skb.saddr, skb.daddr, skb.proto)
