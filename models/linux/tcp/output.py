"""TCP output: net/ipv4/tcp_output.c and the push logic of net/ipv4/tcp.c.

* ``tcp_push`` (autocorking: a small tail skb is held while the socket still has bytes below
  TCP — ``sk_wmem_alloc`` > its truesize — and the retransmit queue is not empty; TX
  completion pushes it), ``__tcp_push_pending_frames``, ``tcp_push_one``.
* ``tcp_write_xmit``: for the skb at the send head, the cwnd test (``tcp_cwnd_test``:
  in flight < cwnd, at most half the cwnd per TSO skb), ``tcp_grow_skb`` (6.10+: later small
  skbs are merged into it), the receive-window test (``tcp_snd_wnd_test``), Nagle with
  Minshall's modification (``tcp_nagle_test``: a sub-MSS segment waits while an earlier small
  segment is unacknowledged; TCP_NODELAY, TCP_CORK), ``tcp_mss_split_point`` and
  ``tso_fragment``, TCP Small Queues (``tcp_small_queue_check``: bytes below TCP at most
  max(2 skbs, 1 ms at the pacing rate), capped by ``tcp_limit_output_bytes``; resumed at TX
  completion), then ``tcp_transmit_skb``. The send is cut into one retransmit-queue entry per
  MSS (the kernel keeps the TSO skb whole and splits it on SACK; the wire sees the same).
* TSO sizing: ``tcp_tso_autosize`` (1 ms at the pacing rate plus a bonus that halves every
  2^tcp_tso_rtt_log µs of min RTT, between tcp_min_tso_segs and gso_max_size) and
  ``tcp_update_pacing_rate`` (200 % of cwnd·mss/srtt in slow start, 120 % after). The pacing
  rate only sizes TSO skbs and TSQ (CUBIC over pfifo_fast is not paced).
* ``tcp_transmit_skb``: the header (seq, ack, flags, the window from ``tcp_select_window``,
  timestamps, SACK blocks, SYN options MSS/SACK-permitted/TS/window scale), DF set, ``OutSegs`` for all but retransmissions; ``tcp_event_ack_sent``
  (clears the delayed ACK, spends a quick ACK), ``tcp_event_data_sent`` (pingpong count,
  ``CA_EVENT_TX_START`` after idle).
* ``tcp_retransmit_skb``, zero-window probes (``tcp_send_probe0``), SYN and RST segments;
  ACKs and the window they carry are in rcv.py.

Scope and limitations: no TSO deferral (``tcp_tso_should_defer``), no MTU probing, no
internal pacing (BBR is not modelled), no TCP Fast Open, no ``MSG_MORE``.
Validation: tests/models/linux/tcp/test_output.py (segment sizes and counts with Nagle,
NODELAY, CORK, autocork; TSO sizes), tests/results/test_pcap_tcp.py (headers read back).
"""

from __future__ import annotations

from typing import Any

from ..skb import IPPROTO_TCP, Skb
from .cong import tcp_is_cwnd_limited
from .const import (ACK, ACK_SCHED, CA_CWR, CA_RECOVERY, EVER_RETRANS, FIN, PSH, RST, SACKED_RETRANS, SYN,
                    TCPOLEN_TSTAMP_ALIGNED, TCP_CLOSE, TCP_SYN_RECV, TCP_SYN_SENT)
from .queue import RtxSeg, SendSkb

__all__ = ["TcpOutput"]

TCP_NAGLE_OFF = 1
TCP_NAGLE_CORK = 2
TCP_NAGLE_PUSH = 4
_EOR = 0x100


class TcpOutput:
    """Output methods of TcpSock (state lives in sock.py)."""

    # -- push ------------------------------------------------------------------------------
    def push(self: Any, nonagle: int, size_goal: int, copied_all: bool) -> None:
        """tcp_push(): mark PSH, autocork a small tail, then push pending frames."""
        sq = self.send_queue
        if not sq:
            return
        tail = sq[-1]
        tail.flags |= PSH
        self.pushed_seq = self.write_seq
        if self.tx_done:
            self.reap_tx(self.ctx.vnow())
        if (tail.end_seq - tail.seq < size_goal and self.p.autocorking and self.rtx_queue
                and self.wmem_alloc > tail.truesize and not tail.flags & (_EOR | FIN)):
            self.throttle()
            self.mib_ext["TCPAutoCorking"] += 1
            if self.wmem_alloc > tail.truesize:
                self.block("tcp:autocork", self.ctx.vnow())
                return
        self.push_pending_frames(nonagle)

    def push_pending_frames(self: Any, nonagle: int) -> None:
        """__tcp_push_pending_frames()."""
        if self.state == TCP_CLOSE or not self.send_queue:
            return
        if self.write_xmit(nonagle):
            self.check_probe_timer()

    # -- tcp_write_xmit --------------------------------------------------------------------------
    def tso_segs(self: Any) -> int:
        """tcp_tso_segs() → tcp_tso_autosize()."""
        mss = self.mss_cache
        gmax = self.gso_max_size
        rate = self.pacing_rate_Bps
        nbytes = (rate >> 10) if rate else gmax
        r = self.min_rtt_us >> self.p.tso_rtt_log if self.min_rtt_us != 0xFFFFFFFF else 0
        if r < 32:
            nbytes += gmax >> r
        if nbytes > gmax:
            nbytes = gmax
        return max(nbytes // mss, self.p.min_tso_segs)

    def write_xmit(self: Any, nonagle: int, push_one: bool = False) -> bool:
        """tcp_write_xmit(). Returns True when nothing is in flight and data still waits
        (the caller arms the zero-window probe timer)."""
        sq = self.send_queue
        now = self.ctx.vnow()
        if self.blk_reason is not None:
            self.block(None, now)
        mss = self.mss_cache
        max_segs = self.tso_segs() if self.gso_ok else 1
        sent = 0
        is_cwnd_limited = False
        is_rwnd_limited = False
        reason = None
        while sq:
            skb = sq[0]
            if skb.t_ready > now:            # copied later in virtual time: its writer pushes it
                break
            in_flight = self.packets_out - self.sacked_out - self.lost_out + self.retrans_out
            cwnd = self.snd_cwnd
            if in_flight >= cwnd:
                reason = "tcp:cwnd"
                break
            quota = min(max(cwnd >> 1, 1), cwnd - in_flight)
            if quota > max_segs:
                quota = max_segs
            fin = skb.flags & FIN
            length = skb.end_seq - skb.seq - (1 if fin else 0)
            missing = quota * mss - length
            if missing > 0 and len(sq) > 1 and not fin:
                self.grow_skb(skb, missing)
                fin = skb.flags & FIN
                length = skb.end_seq - skb.seq - (1 if fin else 0)
            tso_segs = -(-length // mss) if length > 0 else 1
            # tcp_snd_wnd_test
            end = skb.end_seq if length <= mss else skb.seq + mss
            wnd_end = self.snd_una + self.snd_wnd
            if end > wnd_end:
                is_rwnd_limited = True
                reason = "tcp:rwnd"
                break
            if tso_segs == 1:
                nl = nonagle if skb is sq[-1] else TCP_NAGLE_PUSH
                if not (nl & TCP_NAGLE_PUSH or fin) and length < mss and (
                        nl & TCP_NAGLE_CORK or (not nl and self.packets_out and self.snd_sml > self.snd_una)):
                    reason = "tcp:cork" if nl & TCP_NAGLE_CORK else "tcp:nagle"
                    break
                limit = mss
            else:
                limit = self.mss_split_point(skb, length, quota, nonagle)
            if length > limit:
                self.tso_fragment(skb, limit)
                fin = 0
                length = limit
            if self.small_queue_check(length, 0):
                reason = "tcp:tsq"
                break
            if length == 0 and not fin:
                break
            sq.popleft()
            self.transmit_new(skb, length, fin, now)
            sent += -(-length // mss) if length else 1
            if length < mss * (-(-length // mss) if length else 1):
                self.snd_sml = skb.end_seq
            if push_one:
                break
        if sq and reason is not None:
            self.block(reason, now)
        if is_rwnd_limited:
            pass
        in_flight = self.packets_out - self.sacked_out - self.lost_out + self.retrans_out
        is_cwnd_limited |= in_flight >= self.snd_cwnd
        if sent or is_cwnd_limited:
            self.cwnd_validate(is_cwnd_limited, now)
        if sent:
            if self.ca_state in (CA_CWR, CA_RECOVERY):
                self.prr_out += sent
            return False
        return not self.packets_out and bool(sq)

    def grow_skb(self: Any, skb: Any, missing: int) -> None:
        """tcp_grow_skb(): pull bytes of the following unsent skbs into ``skb``."""
        sq = self.send_queue
        while missing > 0 and len(sq) > 1:
            nxt = sq[1]
            if nxt.flags & (FIN | _EOR) or skb.flags & _EOR or nxt.t_ready > skb.t_ready and \
                    nxt.t_ready > self.ctx.vnow():
                break
            n = nxt.end_seq - nxt.seq
            take = min(n, missing)
            skb.end_seq += take
            skb.truesize += take
            nxt.seq += take
            nxt.truesize -= take
            missing -= take
            if nxt.t_ready > skb.t_ready:
                skb.t_ready = nxt.t_ready
            if nxt.marks:
                moved = [m for m in nxt.marks if m.end_seq <= skb.end_seq]
                if moved:
                    skb.marks = (skb.marks or []) + moved
                    nxt.marks = [m for m in nxt.marks if m.end_seq > skb.end_seq] or None
            if nxt.seq >= nxt.end_seq:
                skb.flags |= nxt.flags & PSH
                self.wmem_queued -= nxt.truesize
                del sq[1]

    def mss_split_point(self: Any, skb: Any, length: int, max_segs: int, nonagle: int) -> int:
        """tcp_mss_split_point()."""
        mss = self.mss_cache
        window = self.snd_una + self.snd_wnd - skb.seq
        max_len = mss * max_segs
        if max_len <= window and skb is not self.send_queue[-1]:
            return max_len
        needed = min(length, window)
        if max_len <= needed:
            return max_len
        partial = needed % mss
        if partial and (nonagle & TCP_NAGLE_CORK or (not nonagle and self.packets_out
                                                     and self.snd_sml > self.snd_una)):
            return needed - partial
        return needed

    def tso_fragment(self: Any, skb: Any, limit: int) -> None:
        """tso_fragment(): the first ``limit`` bytes stay in ``skb``, the rest is a new skb."""
        rest = SendSkb(skb.seq + limit)
        rest.end_seq = skb.end_seq
        rest.flags = skb.flags
        rest.t_ready = skb.t_ready
        moved = (skb.end_seq - skb.seq) - limit
        rest.truesize = self.skb_head() + moved
        skb.truesize -= moved
        skb.end_seq = skb.seq + limit
        skb.flags &= ~(FIN | PSH)
        if skb.marks:
            rest.marks = [m for m in skb.marks if m.end_seq > skb.end_seq] or None
            skb.marks = [m for m in skb.marks if m.end_seq <= skb.end_seq] or None
        self.wmem_queued += self.skb_head()
        self.send_queue.insert(1, rest)

    def small_queue_check(self: Any, length: int, factor: int) -> bool:
        """tcp_small_queue_check(): too many of our bytes below TCP already."""
        limit = max(2 * (length + self.skb_head()), self.pacing_rate_Bps >> 10)
        limit = min(limit, self.p.limit_output_bytes) << factor
        if self.tx_done:
            self.reap_tx(self.ctx.vnow())
        if self.wmem_alloc > limit:
            if len(self.rtx_queue) <= 1 or self.rtx_single_skb():
                return False
            self.throttle()
            return True
        return False

    def throttle(self: Any) -> None:
        """TSQ_THROTTLED: the next TX completion pushes the socket again."""
        self.tsq_throttled = True
        if self.tx_done and not self.tx_event:
            self.tx_event = True
            self.ctx.call_at(self.tx_done[0][0], self._tx_event, None)

    def rtx_single_skb(self: Any) -> bool:
        """The retransmit queue holds what the kernel would keep as one skb (one transmission)."""
        q = self.rtx_queue
        return q[0].first_tx_s == q[-1].first_tx_s and not q[0].sacked

    def transmit_new(self: Any, skb: Any, length: int, fin: int, now: float) -> None:
        """tcp_transmit_skb() for new data + tcp_event_new_data_sent()."""
        seq = skb.seq
        mss = self.mss_cache
        marks = skb.marks
        if marks:
            for m in marks:
                if m.t_tx1 is None:
                    m.t_tx1 = now
                    snap = self.snapshot(now)
                    w = {}
                    old = m.snap or {}
                    tot = 0.0
                    for k, v in snap.items():
                        d = v - old.get(k, 0.0)
                        if d > 1e-15:
                            w[k] = d
                            tot += d
                    rest = now - m.t_copied - tot
                    if rest > 1e-15:
                        w["tcp:send_queue"] = rest
                    m.waits = w
        flags = skb.flags & (PSH | FIN) | ACK
        payload = length
        segs = -(-payload // mss) if payload else 1
        self.mib_ext["TCPOrigDataSent"] += segs        # tcp_event_new_data_sent: tcp_skb_pcount (a FIN alone: 1)
        prior_packets = self.packets_out
        # retransmit-queue entries, one per MSS; the skb's fixed overhead goes with the last
        rq = self.rtx_queue
        pos = seq
        end_data = seq + payload
        per_marks = marks
        for i in range(segs):
            e = min(pos + mss, end_data)
            last = i == segs - 1
            ts = (e - pos) + (skb.truesize - payload if last else 0)
            seg_end = e + (1 if (last and fin) else 0)
            mk = None
            if per_marks:
                mk = [m for m in per_marks if pos < m.end_seq <= seg_end] or None
            ent = RtxSeg(pos, seg_end, ts, (FIN if (last and fin) else 0) | (skb.flags & PSH if last else 0),
                         now, mk)
            rq.append(ent)
            pos = e
        self.snd_nxt = skb.end_seq
        self.mib_tcp["OutSegs"] += segs
        self.xmit(seq, skb.end_seq, flags, payload, segs, marks, skb.truesize, now)
        self.packets_out += segs
        if not prior_packets:
            self.rearm_rto(now)

    def transmit_rtx(self: Any, ent: Any, now: float) -> None:
        """tcp_retransmit_skb() of one retransmit-queue entry."""
        fin = ent.flags & FIN
        syn = ent.flags & SYN
        if syn:
            self.send_syn(retrans=True)
            return
        payload = ent.end_seq - ent.seq - (1 if fin else 0)
        if not ent.sacked & EVER_RETRANS:
            pass
        ent.sacked |= SACKED_RETRANS | EVER_RETRANS
        ent.tx_s = now
        ent.rack_done = False
        self.retrans_out += 1
        self.total_retrans += 1
        self.bytes_retrans += payload
        self.mib_tcp["RetransSegs"] += 1
        if not self.retrans_stamp:
            self.retrans_stamp = now
        self.xmit(ent.seq, ent.end_seq, ACK | (ent.flags & (PSH | FIN)), payload, 1, ent.marks,
                  payload + self.skb_head(), now, retrans=True)

    # -- the segment itself -------------------------------------------------------------------
    def options_len(self: Any, nsacks: int) -> int:
        n = TCPOLEN_TSTAMP_ALIGNED if self.tstamp_ok else 0
        if nsacks:
            n += 4 + 8 * nsacks
        return n

    def xmit(self: Any, seq: int, end_seq: int, flags: int, payload: int, segs: int, marks: Any,
             truesize: int, now: float, retrans: bool = False, syn_opts: tuple | None = None,
             pure_ack: bool = False) -> None:
        """__tcp_transmit_skb() → ip_queue_xmit()."""
        ns = self.ns
        ctx = self.ctx
        seg = ctx.seg
        rt = self.route
        skb = Skb()
        skb.id = ctx.next_skb_id()
        skb.origin = ctx.tracer.originate("tcp", self.flow)
        if marks is not None and self.flow >= 0:
            skb.acct = {}
            skb.app = (now, marks)
        skb.t_mark = now
        skb.proto = IPPROTO_TCP
        skb.saddr = self.laddr
        skb.daddr = self.raddr
        skb.sport = self.lport
        skb.dport = self.rport
        skb.ttl = ns.ttl
        skb.df = True
        skb.ip_id = self.next_ip_id(segs)
        skb.seq = seq
        skb.tcp_flags = flags
        if flags & ACK:
            skb.ack_seq = self.rcv_nxt
        if syn_opts is not None:
            skb.syn_opts = syn_opts
            hlen = 20 + syn_opts[4]
            skb.window = min(self.rcv_wnd, 65535)
        else:
            sacks = None
            if self.sacks and self.sack_ok:
                sacks = tuple((a, b) for a, b in self.sacks[:3 if self.tstamp_ok else 4])
                skb.sack = sacks
            hlen = 20 + self.options_len(len(sacks) if sacks else 0)
            skb.window = self.select_window()
        if self.tstamp_ok:
            skb.tsval = (int(now * 1000) + self.ts_offset) & 0xFFFFFFFF
            skb.tsecr = self.ts_recent if flags & ACK else 0
        skb.tcp_hlen = hlen
        mss = self.mss_cache
        skb.l3_len = 20 + hlen + payload
        if segs > 1:
            skb.gso_segs = segs
            skb.gso_size = mss
        skb.truesize = truesize
        if seg is not None:
            seg.charge(skb, "tcp_send_ack" if pure_ack else "tcp_transmit")
        self.segs_out += segs                          # __tcp_transmit_skb: tcp_skb_pcount
        if flags & ACK:
            self.event_ack_sent(now)
        if payload:
            self.data_segs_out += segs
            self.bytes_sent += payload                 # retransmissions included, as in Linux
            self.event_data_sent(now)
        if not pure_ack:
            self.wmem_alloc += truesize
            skb.sk = self
        ns.ip_local_out(skb, rt)

    def next_ip_id(self: Any, segs: int) -> int:
        """ip_select_ident_segs(): a per-socket counter for DF packets, advanced per segment."""
        v = self.ip_id
        self.ip_id = (v + segs) & 0xFFFF
        return v

    def tx_complete_at(self: Any, end: float, truesize: int) -> None:
        """A NIC will complete one of our skbs at ``end``. Applied lazily (``reap_tx``) when
        ``sk_wmem_alloc`` is read, with an event only for a socket that TSQ or autocork holds
        back and that the completion would release (``tcp_wfree``)."""
        self.tx_done.append((end, truesize))
        if self.tsq_throttled and not self.tx_event:
            self.tx_event = True
            self.ctx.call_at(self.tx_done[0][0], self._tx_event, None)

    def reap_tx(self: Any, now: float) -> None:
        """Apply the TX completions due by ``now`` (``tcp_wfree`` for each)."""
        q = self.tx_done
        freed = False
        while q and q[0][0] <= now:
            self.wmem_alloc -= q.popleft()[1]
            freed = True
        if freed and self.tsq_throttled:
            self.tsq_throttled = False
            if self.send_queue or self.lost_out:
                self.ctx.defer(self._tsq_kick, None)

    def _tx_event(self: Any, _arg: Any) -> None:
        self.tx_event = False
        self.reap_tx(self.ctx.env._now)
        if self.tsq_throttled and self.tx_done:       # applied earlier by a read: the next one
            self.tx_event = True
            self.ctx.call_at(self.tx_done[0][0], self._tx_event, None)

    def wfree(self: Any, skb: Skb) -> None:
        """tcp_wfree(): TX completion (or orphaning at a veth) releases sk_wmem_alloc; a socket
        throttled by TSQ or autocork is pushed again from the TSQ tasklet."""
        self.wmem_alloc -= skb.truesize
        if self.tsq_throttled:
            self.tsq_throttled = False
            if self.send_queue or self.lost_out:
                self.ctx.defer(self._tsq_kick, None)

    def _tsq_kick(self: Any, _arg: Any) -> None:
        self.cpu.submit_softirq(self._tsq_handler, None)

    def _tsq_handler(self: Any, _arg: Any) -> None:
        """tcp_tsq_handler() → tcp_tsq_write()."""
        if self.state in (TCP_CLOSE,) or self.state == TCP_SYN_SENT:
            return
        self.sync()
        if self.lost_out > self.retrans_out and self.snd_cwnd > self.in_flight():
            self.xmit_retransmit_queue()
        self.write_xmit(self.nonagle)
        self.release()

    def in_flight(self: Any) -> int:
        return self.packets_out - self.sacked_out - self.lost_out + self.retrans_out

    # -- events -----------------------------------------------------------------------------------
    def event_ack_sent(self: Any, now: float) -> None:
        """tcp_event_ack_sent(): the ACK went out; clear the delayed ACK, spend a quick ACK."""
        if self.compressed_ack:
            self.compressed_ack = 0
            self.sack_timer.cancel()
        if self.ack_quick:
            pkts = 1 if self.ack_pending & ACK_SCHED else 0
            if pkts >= self.ack_quick:
                self.ack_quick = 0
                self.ack_ato = self.p.delack_min_s
            else:
                self.ack_quick -= pkts
        self.ack_pending = 0
        self.delack_timer.cancel()

    def event_data_sent(self: Any, now: float) -> None:
        """tcp_event_data_sent()."""
        if self.in_flight() == 0:
            self.ca.cwnd_event_tx_start(self, self.jiffies(now))
        self.lsndtime = now
        self.lsndtime_j = self.jiffies(now)
        if now - self.ack_lrcvtime < self.ack_ato:
            self.ack_pingpong = min(self.ack_pingpong + 1, 255)

    def in_pingpong(self: Any) -> bool:
        return self.ack_pingpong >= self.p.pingpong_thresh

    def cwnd_validate(self: Any, is_cwnd_limited: bool, now: float) -> None:
        """tcp_cwnd_validate()."""
        if (self.snd_una >= self.cwnd_usage_seq or is_cwnd_limited
                or (not self.is_cwnd_limited and self.packets_out > self.max_packets_out)):
            self.is_cwnd_limited = is_cwnd_limited
            self.max_packets_out = self.packets_out
            self.cwnd_usage_seq = self.snd_nxt
        j = self.jiffies(now)
        if tcp_is_cwnd_limited(self):
            self.snd_cwnd_used = 0
            self.snd_cwnd_stamp_j = j
        else:
            if self.packets_out > self.snd_cwnd_used:
                self.snd_cwnd_used = self.packets_out
            if self.p.slow_start_after_idle and j - self.snd_cwnd_stamp_j >= round(self.rto * self.hz) \
                    and self.ca_state == 0:
                self.cwnd_application_limited(j)

    def cwnd_application_limited(self: Any, j: int) -> None:
        """tcp_cwnd_application_limited(): shrink an unused cwnd to what was used."""
        if self.ca_state == 0 and not self.send_queue:
            init_win = self.p.init_cwnd_segs
            win_used = max(self.snd_cwnd_used, init_win)
            if win_used < self.snd_cwnd:
                self.snd_ssthresh = max(self.snd_ssthresh, (3 * self.snd_cwnd) >> 2)
                self.snd_cwnd = (self.snd_cwnd + win_used) >> 1
            self.snd_cwnd_used = 0
        self.snd_cwnd_stamp_j = j

    def slow_start_after_idle_check(self: Any) -> None:
        """tcp_slow_start_after_idle_check() → tcp_cwnd_restart()."""
        if not self.p.slow_start_after_idle or self.packets_out or not self.lsndtime:
            return
        now = self.ctx.vnow()
        delta = now - self.lsndtime
        if delta > self.rto:
            restart = self.p.init_cwnd_segs
            cwnd = self.snd_cwnd
            self.snd_ssthresh = max(self.snd_ssthresh, (3 * cwnd) >> 2) if self.ca_state == 0 else self.snd_ssthresh
            while True:
                delta -= self.rto
                if delta <= 0 or cwnd <= restart:
                    break
                cwnd >>= 1
            self.snd_cwnd = max(cwnd, restart)
            self.snd_cwnd_stamp_j = self.jiffies(now)
            self.snd_cwnd_used = 0

    def update_pacing_rate(self: Any) -> None:
        """tcp_update_pacing_rate(), in bytes per second."""
        rate = self.mss_cache * ((1000000 // 100) << 3)
        if self.snd_cwnd < self.snd_ssthresh // 2:
            rate *= self.p.pacing_ss_ratio
        else:
            rate *= self.p.pacing_ca_ratio
        rate *= max(self.snd_cwnd, self.packets_out)
        if self.srtt_us:
            rate //= self.srtt_us
        self.pacing_rate_Bps = rate

    # -- connection control segments -------------------------------------------------------------------
    def syn_options(self: Any) -> tuple:
        """(mss, sack_ok, tstamp_ok, wscale or -1, options length): tcp_syn_options() lays them
        out as MSS(4), SACK_PERM+TS (12; NOP NOP SACK_PERM without TS), NOP WSCALE (4)."""
        n = 4 + (12 if self.tstamp_ok else (4 if self.sack_ok else 0)) + (4 if self.wscale_ok else 0)
        return (self.advmss_syn, self.sack_ok, self.tstamp_ok, self.rcv_wscale if self.wscale_ok else -1, n)

    def send_syn(self: Any, retrans: bool = False) -> None:
        """tcp_connect()/tcp_transmit_skb() of the SYN (or tcp_make_synack's SYN-ACK in SYN_RECV)."""
        now = self.ctx.vnow()
        synack = self.state == TCP_SYN_RECV
        flags = SYN | (ACK if synack else 0)
        if retrans:
            self.mib_tcp["RetransSegs"] += 1
            self.total_retrans += 1
            self.syn_retrans += 1
            if not self.retrans_stamp:
                self.retrans_stamp = now
        else:
            self.mib_tcp["OutSegs"] += 1
            self.syn_sent_s = now
        self.xmit(self.iss, self.iss + 1, flags, 0, 1, None, self.skb_head(), now, syn_opts=self.syn_options(),
                  retrans=retrans)
        if synack:
            # the request sock sends SYN-ACKs in Linux: not in the child's segs_out, which
            # starts with segs_in = 1 for the SYN (tcp_create_openreq_child)
            self.segs_out -= 1

    def send_rst_ack(self: Any) -> None:
        """tcp_send_active_reset()."""
        now = self.ctx.vnow()
        self.mib_tcp["OutRsts"] += 1
        self.mib_tcp["OutSegs"] += 1
        self.xmit(self.snd_nxt, self.snd_nxt, RST | ACK, 0, 1, None, 2, now, pure_ack=True)

    def send_probe0(self: Any) -> None:
        """tcp_write_wakeup()/tcp_xmit_probe_skb(): send what the window allows, else a probe
        with an old sequence number that the peer must answer."""
        if self.send_queue and self.snd_una + self.snd_wnd > self.send_queue[0].seq:
            self.write_xmit(TCP_NAGLE_PUSH, push_one=True)
            return
        now = self.ctx.vnow()
        self.mib_tcp["OutSegs"] += 1
        self.xmit(self.snd_una - 1, self.snd_una - 1, ACK, 0, 1, None, 2, now, pure_ack=True)

    def check_probe_timer(self: Any) -> None:
        """tcp_check_probe_timer(): nothing in flight, data waiting on a zero window."""
        if not self.packets_out and self.pending_timer == 0:
            self.pending_timer = 3
            self.rtx_timer.mod(self.ctx.vnow() + max(self.rto, self.p.rto_min_s) * (1 << min(self.backoff, 10)))
