"""TCP receive side: data, the ACK policy and the receive window (net/ipv4/tcp_input.c,
tcp_output.c and tcp.c).

* Receiving data (``tcp_data_queue``): in-order data to the receive queue by truesize,
  out-of-order data to the reassembly queue with SACK blocks (``tcp_sack_new_ofo_skb``, at
  most 3 with timestamps), duplicates answered with an immediate ACK (quick-ACK mode),
  ``tcp_fin``; ``tcp_event_data_recv`` (the ato estimator, the initial 16 quick ACKs,
  ``tcp_grow_window``, which also asks for a quick ACK while it raises ``rcv_ssthresh``),
  ``tcp_measure_rcv_mss`` (rcv_mss, ICSK_ACK_PUSHED for small segments, the payload/truesize
  ``scaling_ratio``).
* The ACK policy (``__tcp_ack_snd_check``): ACK at once when more than one full segment
  (rcv_mss) is unacknowledged and the window can move, in quick-ACK mode, or when
  ICSK_ACK_NOW is set (a hole filled); with out-of-order data the first 3 duplicate ACKs go at
  once, later ones are compressed (≤ ``tcp_comp_sack_nr``, delay min(1 ms, RTT/20));
  otherwise the delayed ACK (``tcp_send_delayed_ack``: ato bounded by srtt and 40–200 ms).
  After a read, ``__tcp_cleanup_rbuf`` ACKs if the read freed a lot or a pushed small segment
  waits (not in interactive mode, unless two came in a row).
* The receive window: ``__tcp_select_window``/``tcp_select_window`` (never shrinking, scaled,
  zero-window counters), ``tcp_win_from_space``, ``tcp_select_initial_window`` (window scale
  from ``max(tcp_rmem[2], rmem_max)``), DRS (``tcp_rcv_space_adjust``: once per receiver RTT,
  ``sk_rcvbuf`` to fit twice what the application read plus 16 segments, more while it grows,
  up to ``tcp_rmem[2]``; not with ``SO_RCVBUF``).

Scope and limitations: no DSACK generation, no urgent data, no ``SO_RCVLOWAT``, no memory
pressure (``tcp_rmem[0]``), receive-queue collapsing and pruning are not modelled (the
window keeps the queue within the buffer).
Validation: tests/models/linux/tcp/test_input.py (quick ACKs, every second segment, 40 ms
delayed ACK, ACKs after reads, SACK blocks), tests/models/linux/tcp/test_buffers.py (windows
and DRS against the buffer rules).
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from simnet.trace import Drop

from .const import (ACK, ACK_NOW, ACK_PUSHED, ACK_PUSHED2, ACK_SCHED, ACK_TIMER, FIN, RST, SOCK_RCVBUF_LOCK, SYN,
                    TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
                    TCP_MIN_MSS, TCP_MIN_RCVMSS, TCP_SYN_RECV)

__all__ = ["TcpRcv"]


class TcpRcv:
    """Receive-side methods of TcpSock (state lives in sock.py)."""

    # -- receiving data (tcp_data_queue and its helpers) ------------------------------------

    def data_queue(self: Any, skb: Any, seq: int, end_seq: int, payload: int, now: float) -> None:
        """tcp_data_queue()."""
        ns = self.ns
        fin = skb.tcp_flags & FIN
        app = skb.app
        marks = None
        if app is not None:
            marks = app[1]
            t_tx = app[0]
            for m in marks:
                if m.t_arrive is None:
                    m.t_arrive = now
                    m.t_tx = t_tx
                    m.rx_acct = skb.acct
            if len(app) > 2:                     # segments GRO merged into this skb
                marks = list(marks)
                for t_tx2, marks2, acct2, t_gro in app[2]:
                    rx = dict(acct2) if acct2 is not None else {}
                    if now > t_gro:
                        rx["cpu:gro"] = rx.get("cpu:gro", 0.0) + (now - t_gro)
                    for m in marks2:
                        if m.t_arrive is None:
                            m.t_arrive = now
                            m.t_tx = t_tx2
                            m.rx_acct = rx
                    marks.extend(marks2)
        rcv_nxt = self.rcv_nxt
        if seq == rcv_nxt:
            if self.receive_window() == 0 and payload:
                self.mib_ext["TCPZeroWindowDrop"] += 1
                self.enter_quickack_mode(self.p.max_quickacks)
                self.ack_pending |= ACK_SCHED
                ns.kfree_skb(skb, Drop.TCP_ZEROWINDOW, "tcp_data_queue")
                return
            self.queue_rcv(seq, end_seq, payload, skb.truesize, fin, marks, now)
            if payload:
                self.event_data_recv(skb, payload, now)
            if self.ooo:
                self.ofo_queue(now)
                if not self.ooo:
                    self.ack_pending |= ACK_NOW
            if self.sacks:
                self.sack_remove()
            self.ctx.tracer.deliver(skb)
            if fin:
                self.tcp_fin(now)
            self.data_ready()
            return
        if end_seq <= rcv_nxt:
            # a retransmission of data we have: DSACK-worthy, ACK at once
            self.mib_ext["DelayedACKLost"] += 1
            self.enter_quickack_mode(self.p.max_quickacks)
            self.ack_pending |= ACK_SCHED
            ns.kfree_skb(skb, Drop.TCP_OLD_DATA, "tcp_data_queue")
            return
        if seq >= rcv_nxt + self.receive_window():
            self.enter_quickack_mode(self.p.max_quickacks)
            self.ack_pending |= ACK_SCHED
            ns.kfree_skb(skb, Drop.TCP_OVERWINDOW, "tcp_data_queue")
            return
        if seq < rcv_nxt:
            # partial: the head is old; queue the new tail in order
            self.queue_rcv(rcv_nxt, end_seq, end_seq - rcv_nxt - (1 if fin else 0), skb.truesize, fin, marks, now)
            if payload:
                self.event_data_recv(skb, payload, now)
            self.ctx.tracer.deliver(skb)
            if self.ooo:
                self.ofo_queue(now)
            if fin:
                self.tcp_fin(now)
            self.data_ready()
            return
        self.data_queue_ofo(skb, seq, end_seq, payload, fin, marks, now)

    def queue_rcv(self: Any, seq: int, end_seq: int, payload: int, truesize: int, fin: int, marks: Any,
                  now: float) -> None:
        """tcp_queue_rcv(): in-order data to the receive queue (charged by truesize)."""
        if payload > 0:
            self.rcv_queue.append([seq, seq + payload, truesize, now])
            self.rmem_alloc += truesize
            self.bytes_received += payload
        self.bytes_received += end_seq - seq - payload     # the FIN (tcp_rcv_nxt_update counts end_seq)
        self.rcv_nxt = end_seq
        if marks:
            rxm = self.rx_marks
            for m in marks:
                if m.t_arrive is not None and m.end_seq > self.copied_seq and m.end_seq <= end_seq:
                    if m.t_inorder == 0.0:
                        m.t_inorder = now
                        rxm[m.end_seq] = m

    def data_queue_ofo(self: Any, skb: Any, seq: int, end_seq: int, payload: int, fin: int, marks: Any,
                       now: float) -> None:
        """tcp_data_queue_ofo(): keep it for reassembly, SACK it."""
        self.mib_ext["TCPOFOQueue"] += 1
        self.rcv_ooopack += 1
        self.ack_pending |= ACK_SCHED
        ooo = self.ooo
        for e in ooo:
            if e[0] <= seq and end_seq <= e[1]:
                self.mib_ext["TCPOFODrop"] += 0
                self.ns.kfree_skb(skb, Drop.TCP_OFOMERGE, "tcp_data_queue_ofo")
                self.sack_new_ofo(seq, end_seq)
                return
        insort(ooo, [seq, end_seq, skb.truesize, fin, marks, now])
        self.rmem_alloc += skb.truesize
        self.sack_new_ofo(seq, end_seq)
        if payload >= 128:
            self.grow_window(skb, payload, now)
        self.ctx.tracer.deliver(skb)

    def ofo_queue(self: Any, now: float) -> None:
        """tcp_ofo_queue(): move what became in-order to the receive queue."""
        ooo = self.ooo
        while ooo and ooo[0][0] <= self.rcv_nxt:
            seq, end_seq, truesize, fin, marks, _t = ooo.pop(0)
            self.rmem_alloc -= truesize
            if end_seq <= self.rcv_nxt:
                continue
            payload = end_seq - self.rcv_nxt - (1 if fin else 0)
            self.queue_rcv(self.rcv_nxt, end_seq, payload, truesize, fin, marks, now)
            if fin:
                self.tcp_fin(now)

    def sack_new_ofo(self: Any, seq: int, end_seq: int) -> None:
        """tcp_sack_new_ofo_skb(): extend a block or put a new one first (4 kept)."""
        sp = self.sacks
        for i, b in enumerate(sp):
            if seq <= b[1] and b[0] <= end_seq:
                b[0] = min(b[0], seq)
                b[1] = max(b[1], end_seq)
                if i:
                    sp.insert(0, sp.pop(i))
                # tcp_sack_maybe_coalesce()
                j = 1
                while j < len(sp):
                    o = sp[j]
                    if o[0] <= sp[0][1] and sp[0][0] <= o[1]:
                        sp[0][0] = min(sp[0][0], o[0])
                        sp[0][1] = max(sp[0][1], o[1])
                        del sp[j]
                    else:
                        j += 1
                return
        if len(sp) >= 4:
            sp.pop()
        sp.insert(0, [seq, end_seq])

    def sack_remove(self: Any) -> None:
        """tcp_sack_remove(): blocks below rcv_nxt are gone."""
        rn = self.rcv_nxt
        self.sacks = [b for b in self.sacks if b[1] > rn]
        if not self.ooo:
            self.sacks = []

    def tcp_fin(self: Any, now: float) -> None:
        """tcp_fin()."""
        self.fin_received = True
        self.fin_time = now
        self.ack_pending |= ACK_SCHED
        st = self.state
        if st in (TCP_SYN_RECV, TCP_ESTABLISHED):
            self.set_state(TCP_CLOSE_WAIT)
            self.ack_pingpong = max(self.ack_pingpong, self.p.pingpong_thresh)
        elif st == TCP_FIN_WAIT1:
            self.send_ack()
            self.set_state(TCP_CLOSING)
        elif st == TCP_FIN_WAIT2:
            self.send_ack()
            self.time_wait()
        self.ooo.clear()
        self.sacks = []

    def data_ready(self: Any) -> None:
        cb = self.on_readable
        if cb is not None:
            self.wake_user(cb)

    def event_data_recv(self: Any, skb: Any, payload: int, now: float) -> None:
        """tcp_event_data_recv(): schedule an ACK, learn rcv_mss, update ato, grow the window."""
        self.ack_pending |= ACK_SCHED
        self.measure_rcv_mss(skb, payload)
        p = self.p
        if not self.ack_ato:
            self.incr_quickack(p.max_quickacks)
            self.ack_ato = p.delack_min_s
        else:
            m = now - self.ack_lrcvtime
            if m <= p.delack_min_s / 2:
                self.ack_ato = self.ack_ato / 2 + p.delack_min_s / 2
            elif m < self.ack_ato:
                self.ack_ato = min(self.ack_ato / 2 + m, self.rto)
            elif m > self.rto:
                self.incr_quickack(p.max_quickacks)
        self.ack_lrcvtime = now
        if payload >= 128:
            self.grow_window(skb, payload, now)

    def measure_rcv_mss(self: Any, skb: Any, payload: int) -> None:
        """tcp_measure_rcv_mss()."""
        lss = self.last_seg_size
        self.last_seg_size = 0
        ln = skb.gso_size or payload
        if ln >= self.rcv_mss:
            if ln != self.rcv_mss:
                ratio = (payload << 8) // skb.truesize if skb.truesize else 128
                ratio = max(1, min(ratio, 255))
                if ratio != self.scaling_ratio:
                    self.scaling_ratio = ratio
                    self.set_window_clamp(self.win_from_space(self.rcvbuf))
                    if self.window_clamp < self.rcvq_space:
                        self.rcvq_space = self.window_clamp
            self.rcv_mss = min(ln, self.advmss)
        else:
            ln += skb.tcp_hlen
            if ln >= TCP_MIN_RCVMSS + 20 or (ln >= TCP_MIN_MSS + 20 and not skb.tcp_flags & (FIN | SYN | RST | 0x08)):
                ln -= self.tcp_header_len
                self.last_seg_size = ln
                if ln == lss:
                    self.rcv_mss = ln
                    return
            if self.ack_pending & ACK_PUSHED:
                self.ack_pending |= ACK_PUSHED2
            self.ack_pending |= ACK_PUSHED

    def set_window_clamp(self: Any, val: int) -> None:
        """tcp_set_window_clamp()."""
        old = self.window_clamp
        new = max(2304 // 2, val)
        self.window_clamp = new
        if new < old:
            self.rcv_ssthresh = min(self.rcv_ssthresh, new)
        else:
            self.rcv_ssthresh = max(min(self.rcv_wnd, new), self.rcv_ssthresh)

    def grow_window(self: Any, skb: Any, payload: int, now: float) -> None:
        """tcp_grow_window(): raise rcv_ssthresh while segments' truesize fits the buffer."""
        room = min(self.window_clamp, self.space()) - self.rcv_ssthresh
        if room <= 0:
            return
        truesize = skb.truesize
        if self.win_from_space(truesize) <= payload:
            incr = 2 * self.advmss
        else:
            incr = 0
            ts = self.win_from_space(truesize) >> 1
            window = self.win_from_space(self.p.rmem_bytes[2]) >> 1
            while self.rcv_ssthresh <= window:
                if ts <= payload:
                    incr = 2 * self.rcv_mss
                    break
                ts >>= 1
                window >>= 1
        if incr:
            incr = max(incr, 2 * payload)
            self.rcv_ssthresh += min(room, incr)
            self.ack_quick |= 1

    def incr_quickack(self: Any, max_quickacks: int) -> None:
        """tcp_incr_quickack()."""
        q = self.rcv_wnd // (2 * self.rcv_mss)
        if q == 0:
            q = 2
        q = min(q, max_quickacks)
        if q > self.ack_quick:
            self.ack_quick = q

    def enter_quickack_mode(self: Any, max_quickacks: int) -> None:
        """tcp_enter_quickack_mode()."""
        self.incr_quickack(max_quickacks)
        self.ack_pingpong = 0
        self.ack_ato = self.p.delack_min_s

    # -- the ACK policy --------------------------------------------------------------------------

    def ack_snd_check(self: Any) -> None:
        """tcp_ack_snd_check() → __tcp_ack_snd_check()."""
        pend = self.ack_pending
        if not pend & ACK_SCHED:
            return
        if ((self.rcv_nxt - self.rcv_wup > self.rcv_mss
             and (self.rcv_nxt - self.copied_seq < 1 or self.raw_select_window() >= self.rcv_wnd))
                or (self.ack_quick and not self.in_pingpong())
                or pend & ACK_NOW):
            self.send_ack()
            return
        if not self.ooo:
            self.send_delayed_ack()
            return
        p = self.p
        if self.compressed_ack >= p.comp_sack_nr:
            self.send_ack()
            return
        if self.compressed_ack_rcv_nxt != self.rcv_nxt:
            self.compressed_ack_rcv_nxt = self.rcv_nxt
            self.dup_ack_counter = 0
        if self.dup_ack_counter < 3:
            self.dup_ack_counter += 1
            self.send_ack()
            return
        self.compressed_ack += 1
        if self.sack_timer.pending:
            return
        rtt_us = self.rcv_rtt_us >> 3
        if self.srtt_us and (self.srtt_us >> 3) < rtt_us:
            rtt_us = self.srtt_us >> 3
        delay = min(p.comp_sack_delay_s, rtt_us * 1e-6 / 20)
        self.sack_timer.mod(self.ctx.vnow() + delay)

    def send_ack(self: Any) -> None:
        """__tcp_send_ack(): a pure ACK now."""
        if self.state == TCP_CLOSE:
            return
        now = self.ctx.vnow()
        self.xmit(self.snd_nxt, self.snd_nxt, ACK, 0, 1, None, 2, now, pure_ack=True)
        self.mib_tcp["OutSegs"] += 1

    def send_delayed_ack(self: Any) -> None:
        """tcp_send_delayed_ack(): arm the delayed-ACK timer for ato (40–200 ms)."""
        p = self.p
        ato = self.ack_ato
        now = self.ctx.vnow()
        if ato > p.delack_min_s:
            max_ato = 0.5
            if self.in_pingpong() or self.ack_pending & ACK_PUSHED:
                max_ato = p.delack_max_s
            if self.srtt_us:
                rtt = max(self.srtt_us / 8e6, p.delack_min_s)
                if rtt < max_ato:
                    max_ato = rtt
            ato = min(ato, max_ato)
        ato = min(ato, p.delack_max_s)
        timeout = now + ato
        if self.ack_pending & ACK_TIMER:
            if self.ack_timeout <= now + ato / 4:
                self.send_ack()
                return
            if timeout >= self.ack_timeout:
                timeout = self.ack_timeout
        self.ack_pending |= ACK_SCHED | ACK_TIMER
        self.ack_timeout = timeout
        self.delack_timer.mod(timeout)

    # -- the receive window and buffer -----------------------------------------------------------

    def receive_window(self: Any) -> int:
        w = self.rcv_wup + self.rcv_wnd - self.rcv_nxt
        return w if w > 0 else 0

    def raw_select_window(self: Any) -> int:
        """__tcp_select_window()."""
        mss = self.rcv_mss
        free_space = self.win_from_space(self.rcvbuf - self.rmem_alloc)
        allowed = self.win_from_space(self.rcvbuf)
        full = min(self.window_clamp, allowed)
        if mss > full:
            mss = full
            if mss <= 0:
                return 0
        ws = self.rcv_wscale
        if free_space < full >> 1:
            self.ack_quick = 0
            free_space = (free_space >> ws) << ws
            if free_space < allowed >> 4 or free_space < mss:
                return 0
        if free_space > self.rcv_ssthresh:
            free_space = self.rcv_ssthresh
        if ws:
            unit = 1 << ws
            return (free_space + unit - 1) // unit * unit
        window = self.rcv_wnd
        if window <= free_space - mss or window > free_space:
            window = (free_space // mss) * mss
        elif mss == full and free_space > window + (full >> 1):
            window = free_space
        return window

    def select_window(self: Any) -> int:
        """tcp_select_window(): the 16-bit window field; the offered window never shrinks."""
        old = self.rcv_wnd
        cur = self.receive_window()
        new = self.raw_select_window()
        ws = self.rcv_wscale
        if new < cur:
            unit = 1 << ws
            new = (cur + unit - 1) // unit * unit
        self.rcv_wnd = new
        self.rcv_wup = self.rcv_nxt
        new = min(new, 65535 << ws) >> ws
        if new == 0 and old:
            self.mib_ext["TCPToZeroWindowAdv"] += 1
        elif old == 0 and new:
            self.mib_ext["TCPFromZeroWindowAdv"] += 1
        return new

    def win_from_space(self, space: int) -> int:
        """tcp_win_from_space()."""
        return (space * self.scaling_ratio) >> 8

    def space(self) -> int:
        """tcp_space(): window the free receive buffer allows."""
        return self.win_from_space(self.rcvbuf - self.rmem_alloc)

    def full_space(self) -> int:
        return self.win_from_space(self.rcvbuf)

    def select_initial_window(self, space: int, mss: int) -> None:
        """tcp_select_initial_window(): rcv_wnd, window_clamp, rcv_wscale."""
        clamp = self.window_clamp or (65535 << 14)
        space = min(clamp, space)
        if space > mss:
            space = (space // mss) * mss
        self.rcv_wnd = space
        self.rcv_wscale = 0
        if self.wscale_ok:
            sp = max(space, self.p.rmem_bytes[2], self.ns.params.core.rmem_max_bytes)
            sp = min(sp, clamp)
            self.rcv_wscale = min(max(sp.bit_length() - 1 - 15, 0), 14)
        self.window_clamp = min(65535 << self.rcv_wscale, clamp)

    def rcv_space_adjust(self) -> None:
        """tcp_rcv_space_adjust(): DRS, once per receiver RTT."""
        now = self.ctx.vnow()
        rtt8 = self.rcv_rtt_us
        if rtt8 == 0 or (now - self.rcvq_time) * 1e6 < (rtt8 >> 3):
            return
        copied = self.copied_seq - self.rcvq_seq
        if copied > self.rcvq_space:
            if self.p.moderate_rcvbuf and not self.userlocks & SOCK_RCVBUF_LOCK:
                rcvwin = (copied << 1) + 16 * self.advmss
                grow = rcvwin * (copied - self.rcvq_space) // self.rcvq_space
                rcvwin += grow << 1
                rcvbuf = min((rcvwin << 8) // self.scaling_ratio, self.p.rmem_bytes[2])   # tcp_space_from_win
                if rcvbuf > self.rcvbuf:
                    self.rcvbuf = rcvbuf
                    self.window_clamp = self.win_from_space(rcvbuf)
            self.rcvq_space = copied
        self.rcvq_seq = self.copied_seq
        self.rcvq_time = now

    def cleanup_rbuf(self, copied: int) -> None:
        """__tcp_cleanup_rbuf(): ACK now if the read freed a lot, or a pushed small segment waits."""
        time_to_ack = False
        if self.ack_pending & ACK_SCHED:
            if (self.rcv_nxt - self.rcv_wup > self.rcv_mss
                    or (copied > 0 and (self.ack_pending & ACK_PUSHED2
                                        or (self.ack_pending & ACK_PUSHED and not self.in_pingpong()))
                        and not self.rmem_alloc)):
                time_to_ack = True
        if copied > 0 and not time_to_ack and not self.fin_received:
            now_win = self.receive_window()
            if 2 * now_win <= self.window_clamp:
                new_win = self.raw_select_window()
                if new_win and new_win >= 2 * now_win:
                    time_to_ack = True
        if time_to_ack:
            self.send_ack()
