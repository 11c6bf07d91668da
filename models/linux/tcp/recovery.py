"""Loss recovery and the connection's timers: net/ipv4/tcp_recovery.c (RACK),
tcp_input.c (``tcp_fastretrans_alert``, ``tcp_enter_recovery``, ``tcp_enter_loss``,
``tcp_cwnd_reduction``), tcp_output.c (``tcp_xmit_retransmit_queue``, ``tcp_rearm_rto``),
tcp_timer.c (``tcp_retransmit_timer``, ``tcp_delack_timer_handler``, ``tcp_probe_timer``,
``tcp_write_timeout``) and the state changes of tcp.c (``tcp_set_state``, ``tcp_done``).

Loss detection is SACK-based RACK, Linux's default (``tcp_recovery`` = 1): a sent segment is
lost when a segment sent after it has been (S)ACKed and it is older than the latest RTT plus
a reordering window; the window is 0 once ``tcp_reordering`` (3) segments are SACKed or in
recovery (the classic three-duplicate-ACK rule), else min_rtt/4 with a timer
(``tcp_rack_reo_timeout``). Lost segments are retransmitted in Recovery with Proportional
Rate Reduction (RFC 6937, ``tcp_cwnd_reduction``) towards ``ssthresh`` from the congestion
control (CUBIC: 0.7 × cwnd); Recovery ends when everything sent before it is ACKed, and
cwnd is set to ssthresh. A retransmission timeout enters Loss: every unSACKed segment is
marked lost, cwnd = 1 + in flight, ``ssthresh`` reduced, the head retransmitted, the RTO
doubled (``icsk_backoff``), and slow start retransmits the rest; Loss ends when everything
sent before the timeout is ACKed.

SYN: the RTO starts at 1 s; ``tcp_syn_linear_timeouts`` (4) retransmissions keep it at 1 s,
then it doubles; ``connect()`` fails after ``tcp_syn_retries`` + 4 retransmissions (≈131 s).
SYN-ACK: doubling from 1 s, ``tcp_synack_retries`` (5).

Scope and limitations: no Tail Loss Probe (a tail loss waits for the RTO), no F-RTO and no
undo of spurious recoveries (DSACK, timestamps), no NewReno fallback for peers without SACK
(simnet's peers always negotiate it), reordering is never learnt (``tcp_reordering`` stays 3),
no ``tcp_retries1`` route refresh, ``tcp_retries2`` counts retransmissions rather than the
kernel's computed time budget.
Validation: tests/models/linux/tcp/test_recovery.py (one loss mid-stream: one fast
retransmission, no RTO; a tail loss: RTO at the computed time; SYN retransmission times),
the loss-recovery scenario.
"""

from __future__ import annotations

from typing import Any

from .const import (CA_CWR, CA_DISORDER, CA_LOSS, CA_OPEN, CA_RECOVERY, EVER_RETRANS, LOST, SACKED_ACKED,
                    SACKED_RETRANS, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_RECV,
                    TCP_SYN_SENT, TCP_TIMEOUT_MIN_J, TCP_TIMEWAIT_LEN, TCP_TIME_WAIT)

__all__ = ["TcpRecovery"]

FLAG_SND_UNA_ADVANCED = 0x400
FLAG_LOST_RETRANS = 0x80
FLAG_SET_XMIT_TIMER = 0x1000
FLAG_DATA_ACKED = 0x04

T_RTO, T_REO, T_PROBE0 = 1, 2, 3


class TcpRecovery:
    """Recovery, timers and state changes of TcpSock."""

    # -- state -------------------------------------------------------------------------------------
    def set_state(self: Any, new: int) -> None:
        """tcp_set_state(): CurrEstab and EstabResets as the kernel counts them."""
        old = self.state
        mib = self.mib_tcp
        if new == TCP_ESTABLISHED:
            if old != TCP_ESTABLISHED:
                mib["CurrEstab"] += 1
        elif new == TCP_CLOSE_WAIT:
            if old == TCP_SYN_RECV:
                mib["CurrEstab"] += 1
        else:
            if new == TCP_CLOSE and old in (TCP_CLOSE_WAIT, TCP_ESTABLISHED):
                mib["EstabResets"] += 1
            if old in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
                mib["CurrEstab"] -= 1
        self.state = new
        if new == TCP_CLOSE:
            self.ns.tcp.unhash(self)

    def done(self: Any) -> None:
        """tcp_done()."""
        if self.state in (TCP_SYN_SENT, TCP_SYN_RECV):
            self.mib_tcp["AttemptFails"] += 1
        self.set_state(TCP_CLOSE)
        self.pending_timer = 0
        self.rtx_timer.cancel()
        self.delack_timer.cancel()
        self.sack_timer.cancel()
        cb = self.on_closed
        if cb is not None:
            self.ctx.defer(cb, self.err)
        if self.on_connect is not None and self.t_established is None:
            self.ctx.defer(self.on_connect, -(self.err or 110))

    def reset(self: Any, errno: int) -> None:
        """tcp_reset(): the peer reset the connection."""
        st = self.state
        self.err = 111 if st == TCP_SYN_SENT else (32 if st == TCP_CLOSE_WAIT else errno)
        self.done()
        self.data_ready()

    def time_wait(self: Any) -> None:
        """tcp_time_wait(): TIME_WAIT for TCP_TIMEWAIT_LEN (60 s), answering FINs."""
        self.set_state(TCP_TIME_WAIT)
        self.pending_timer = 0
        self.rtx_timer.cancel()
        self.delack_timer.cancel()
        self.tw_timer.mod(self.ctx.vnow() + TCP_TIMEWAIT_LEN)
        cb = self.on_closed
        if cb is not None:
            self.ctx.defer(cb, 0)

    def _on_timewait(self: Any) -> None:
        self.set_state(TCP_CLOSE)

    def set_ca_state(self: Any, new: int) -> None:
        """tcp_set_ca_state()."""
        self.ca.set_state(self, new, int(self.ctx.vnow() * 1e6))
        self.ca_state = new

    # -- RACK -----------------------------------------------------------------------------------------
    def rack_reo_wnd_us(self: Any) -> int:
        """tcp_rack_reo_wnd()."""
        if not self.reord_seen:
            if self.ca_state >= CA_RECOVERY:
                return 0
            if self.sacked_out >= self.reordering:
                return 0
        return min(self.min_rtt_us >> 2, self.srtt_us >> 3)

    def rack_detect_loss(self: Any, now: float) -> int:
        """tcp_rack_detect_loss(): mark lost, return the longest wait still needed (µs)."""
        reo_wnd = self.rack_reo_wnd_us()
        timeout = 0
        mst = self.rack_mstamp
        mseq = self.rack_end_seq
        rtt = self.rack_rtt_us
        for ent in self.rtx_queue:
            sacked = ent.sacked
            if sacked & SACKED_ACKED:
                continue
            if sacked & LOST and not sacked & SACKED_RETRANS:
                continue
            t = ent.tx_s
            if not (mst > t or (mst == t and mseq > ent.end_seq)):
                if not sacked & EVER_RETRANS and ent.seq >= mseq:
                    break
                continue
            remaining = rtt + reo_wnd - int((now - t) * 1e6)
            if remaining <= 0:
                self.mark_skb_lost(ent)
            elif remaining > timeout:
                timeout = remaining
        return timeout

    def rack_mark_lost(self: Any, now: float) -> bool:
        """tcp_rack_mark_lost(): arm the reordering timer when some segment may yet be lost."""
        if not self.rack_advanced:
            return False
        self.rack_advanced = False
        timeout = self.rack_detect_loss(now)
        if timeout:
            j = -(-timeout * self.hz // 1000000) + TCP_TIMEOUT_MIN_J
            self.pending_timer = T_REO
            self.rtx_timer.mod(now + min(j / self.hz, self.rto))
        return bool(timeout)

    def mark_skb_lost(self: Any, ent: Any) -> None:
        """tcp_mark_skb_lost()."""
        sacked = ent.sacked
        if sacked & SACKED_ACKED:
            return
        if sacked & LOST:
            if sacked & SACKED_RETRANS:
                ent.sacked = sacked & ~SACKED_RETRANS
                self.retrans_out -= 1
                self.mib_ext["TCPLostRetransmit"] += 1
                self.lost += 1
        else:
            self.lost_out += 1
            ent.sacked = sacked | LOST
            self.lost += 1

    # -- fast retransmit and recovery ---------------------------------------------------------------
    def fastretrans_alert(self: Any, prior_snd_una: int, num_dupack: int, flag: int, now: float) -> tuple[int, int]:
        """tcp_fastretrans_alert() with RACK: returns (flag, rexmit)."""
        if not self.packets_out and self.sacked_out:
            self.sacked_out = 0
        ca = self.ca_state
        if ca == CA_OPEN:
            self.retrans_stamp = 0.0
        elif self.snd_una >= self.high_seq:
            if ca == CA_CWR:
                if self.snd_una != self.high_seq:
                    self.end_cwnd_reduction()
                    self.set_ca_state(CA_OPEN)
            elif ca == CA_RECOVERY:
                self.set_ca_state(CA_OPEN)
                self.end_cwnd_reduction()
        ca = self.ca_state
        if ca == CA_RECOVERY:
            prior_retrans = self.retrans_out
            self.rack_mark_lost(now)
            if prior_retrans > self.retrans_out:
                flag |= FLAG_LOST_RETRANS
            return flag, 1
        if ca == CA_LOSS:
            if self.snd_una >= self.high_seq:
                self.set_ca_state(CA_OPEN)
                self.retrans_stamp = 0.0
            else:
                prior_retrans = self.retrans_out
                self.rack_mark_lost(now)
                if prior_retrans > self.retrans_out:
                    flag |= FLAG_LOST_RETRANS
                if not (self.ca_state == CA_OPEN or flag & FLAG_LOST_RETRANS):
                    return flag, 1
        prior_retrans = self.retrans_out
        if self.rtx_queue:
            self.rack_mark_lost(now)
        if prior_retrans > self.retrans_out:
            flag |= FLAG_LOST_RETRANS
        if not self.lost_out:                   # tcp_time_to_recover()
            self.try_to_open()
            return flag, 0
        self.enter_recovery()
        return flag, 1

    def try_to_open(self: Any) -> None:
        """tcp_try_to_open() → tcp_try_keep_open()."""
        if not self.retrans_out:
            self.retrans_stamp = 0.0
        if self.ca_state != CA_CWR:
            state = CA_DISORDER if (self.sacked_out + self.lost_out or self.retrans_out) else CA_OPEN
            if self.ca_state != state:
                self.set_ca_state(state)
                self.high_seq = self.snd_nxt

    def enter_recovery(self: Any) -> None:
        """tcp_enter_recovery()."""
        self.retrans_stamp = 0.0
        self.mib_ext["TCPSackRecovery"] += 1
        self.prior_ssthresh = 0
        if self.ca_state not in (CA_CWR, CA_RECOVERY):
            self.prior_ssthresh = max(self.snd_ssthresh, (3 * self.snd_cwnd) >> 2)
            self.init_cwnd_reduction()
        self.set_ca_state(CA_RECOVERY)

    def init_cwnd_reduction(self: Any) -> None:
        """tcp_init_cwnd_reduction()."""
        self.high_seq = self.snd_nxt
        self.snd_cwnd_cnt = 0
        self.prior_cwnd = self.snd_cwnd
        self.prr_delivered = 0
        self.prr_out = 0
        self.snd_ssthresh = self.ca.ssthresh(self)

    def end_cwnd_reduction(self: Any) -> None:
        """tcp_end_cwnd_reduction()."""
        if self.snd_ssthresh < 0x7FFFFFFF and self.ca_state in (CA_CWR, CA_RECOVERY, CA_OPEN):
            self.snd_cwnd = self.snd_ssthresh
            self.snd_cwnd_stamp_j = self.jiffies(self.ctx.vnow())

    def cwnd_reduction(self: Any, newly_acked_sacked: int, flag: int) -> None:
        """tcp_cwnd_reduction(): Proportional Rate Reduction."""
        if newly_acked_sacked <= 0 or not self.prior_cwnd:
            return
        in_flight = self.packets_out - self.sacked_out - self.lost_out + self.retrans_out
        delta = self.snd_ssthresh - in_flight
        self.prr_delivered += newly_acked_sacked
        if delta < 0:
            dividend = self.snd_ssthresh * self.prr_delivered + self.prior_cwnd - 1
            sndcnt = dividend // self.prior_cwnd - self.prr_out
        else:
            sndcnt = max(self.prr_delivered - self.prr_out, newly_acked_sacked)
            if flag & FLAG_SND_UNA_ADVANCED:
                sndcnt += 1
            sndcnt = min(delta, sndcnt)
        sndcnt = max(sndcnt, 0 if self.prr_out else 1)
        self.snd_cwnd = in_flight + sndcnt

    def xmit_retransmit_queue(self: Any) -> None:
        """tcp_xmit_retransmit_queue(): lost segments first, as cwnd allows."""
        now = self.ctx.vnow()
        head = self.rtx_queue[0] if self.rtx_queue else None
        rearm = False
        mib = "TCPFastRetrans" if self.ca_state != CA_LOSS else "TCPSlowStartRetrans"
        for ent in self.rtx_queue:
            if self.snd_cwnd - (self.packets_out - self.sacked_out - self.lost_out + self.retrans_out) <= 0:
                break
            if self.retrans_out >= self.lost_out:
                break
            sacked = ent.sacked
            if not sacked & LOST or sacked & (SACKED_ACKED | SACKED_RETRANS):
                continue
            if self.small_queue_check(ent.end_seq - ent.seq, 1):
                break
            self.transmit_rtx(ent, now)
            self.mib_ext[mib] += 1
            if self.ca_state in (CA_CWR, CA_RECOVERY):
                self.prr_out += 1
            if ent is head and self.pending_timer != T_REO:
                rearm = True
        if rearm:
            self.pending_timer = T_RTO
            self.rtx_timer.mod(now + self.rto)

    # -- the retransmission timer -----------------------------------------------------------------------
    def rearm_rto(self: Any, now: float) -> None:
        """tcp_rearm_rto()."""
        if not self.packets_out:
            if self.pending_timer in (T_RTO, T_REO):
                self.pending_timer = 0
                self.rtx_timer.cancel()
            return
        rto = self.rto
        if self.pending_timer == T_REO and self.rtx_queue:
            delta = rto - (now - self.rtx_queue[0].tx_s)
            rto = max(delta, 1e-6)
        self.pending_timer = T_RTO
        self.rtx_timer.mod(now + rto)

    def _on_rtx_timer(self: Any) -> None:
        self.cpu.submit_softirq(self._rtx_timer_handler, None)

    def _rtx_timer_handler(self: Any, _arg: Any) -> None:
        """tcp_write_timer_handler()."""
        self.sync()
        try:
            self._rtx_timer(_arg)
        finally:
            self.release()

    def _rtx_timer(self: Any, _arg: Any) -> None:
        which = self.pending_timer
        if self.state in (TCP_CLOSE, TCP_LISTEN, TCP_TIME_WAIT) or not which:
            return
        now = self.ctx.vnow()
        self.pending_timer = 0
        if which == T_REO:
            self.rack_reo_timeout(now)
        elif which == T_RTO:
            self.retransmit_timer(now)
        elif which == T_PROBE0:
            self.probe_timer(now)

    def rack_reo_timeout(self: Any, now: float) -> None:
        """tcp_rack_reo_timeout()."""
        prior_in_flight = self.packets_out - self.sacked_out - self.lost_out + self.retrans_out
        self.rack_advanced = True
        self.rack_mark_lost(now)
        if prior_in_flight != self.packets_out - self.sacked_out - self.lost_out + self.retrans_out:
            if self.ca_state != CA_RECOVERY:
                self.enter_recovery()
                self.cwnd_reduction(1, 0)
            self.xmit_retransmit_queue()
        if self.pending_timer != T_REO:
            self.rearm_rto(now)

    def retransmit_timer(self: Any, now: float) -> None:
        """tcp_retransmit_timer()."""
        if not self.packets_out:
            return
        st = self.state
        p = self.p
        if st == TCP_SYN_SENT:
            limit = p.syn_retries + p.syn_linear_timeouts
        elif st == TCP_SYN_RECV:
            limit = p.synack_retries
        else:
            limit = p.retries2
        if self.retransmits >= limit:                       # tcp_write_timeout() → tcp_write_err()
            self.err = 110
            self.done()
            self.data_ready()
            return
        if st in (TCP_SYN_SENT, TCP_SYN_RECV):
            self.mib_ext["TCPTimeouts"] += 1
            self.mib_ext["TCPSynRetrans"] += 1
            self.send_syn(retrans=True)
            self.retransmits += 1
            self.total_rto += 1
            if st == TCP_SYN_SENT and self.retransmits <= p.syn_linear_timeouts:
                self.backoff = 0
                self.rto = p.rto_initial_s
            else:
                self.backoff += 1
                self.rto = min(self.rto * 2, p.rto_max_s)
            self.pending_timer = T_RTO
            self.rtx_timer.mod(now + self.rto)
            return
        self.mib_ext["TCPTimeouts"] += 1
        self.enter_loss(now)
        self.retransmits += 1
        self.total_rto += 1
        head = self.rtx_queue[0]
        if not head.sacked & SACKED_ACKED:
            self.transmit_rtx(head, now)
            self.mib_ext["TCPSlowStartRetrans"] += 0
        self.backoff += 1
        self.rto = min(self.rto * 2, p.rto_max_s)
        self.pending_timer = T_RTO
        self.rtx_timer.mod(now + self.rto)

    def enter_loss(self: Any, now: float) -> None:
        """tcp_enter_loss() with tcp_timeout_mark_lost()."""
        q = self.rtx_queue
        head = q[0]
        for ent in q:
            if ent is not head and self.rack_rtt_us and \
                    self.rack_rtt_us - int((now - ent.tx_s) * 1e6) > 0:
                continue
            self.mark_skb_lost(ent)
        ca = self.ca_state
        if ca <= CA_DISORDER or self.high_seq <= self.snd_una or (ca == CA_LOSS and not self.retransmits):
            self.prior_ssthresh = max(self.snd_ssthresh, (3 * self.snd_cwnd) >> 2)
            self.prior_cwnd = self.snd_cwnd
            self.snd_ssthresh = self.ca.ssthresh(self)
        self.snd_cwnd = self.packets_out - self.sacked_out - self.lost_out + self.retrans_out + 1
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_stamp_j = self.jiffies(now)
        self.set_ca_state(CA_LOSS)
        self.high_seq = self.snd_nxt

    def probe_timer(self: Any, now: float) -> None:
        """tcp_probe_timer(): a zero-window probe, backing off."""
        if self.packets_out or not self.send_queue:
            return
        self.send_probe0()
        self.backoff += 1
        self.pending_timer = T_PROBE0
        self.rtx_timer.mod(now + min(max(self.rto, self.p.rto_min_s) * (1 << min(self.backoff, 10)),
                                     self.p.rto_max_s))

    # -- the delayed-ACK and compressed-SACK timers ----------------------------------------------------
    def _on_delack_timer(self: Any) -> None:
        self.cpu.submit_softirq(self._delack_handler, None)

    def _delack_handler(self: Any, _arg: Any) -> None:
        """tcp_delack_timer_handler()."""
        self.sync()
        self._delack(_arg)
        self.release()

    def _delack(self: Any, _arg: Any) -> None:
        if self.state in (TCP_CLOSE, TCP_LISTEN) or not self.ack_pending & 2:
            return
        self.ack_pending &= ~2
        if self.ack_pending & 1:
            if not self.in_pingpong():
                self.ack_ato = min(self.ack_ato * 2, self.rto)
            else:
                self.ack_pingpong = 0
                self.ack_ato = self.p.delack_min_s
            self.send_ack()
            self.mib_ext["DelayedACKs"] += 1

    def _on_sack_timer(self: Any) -> None:
        self.cpu.submit_softirq(self._sack_handler, None)

    def _sack_handler(self: Any, _arg: Any) -> None:
        """tcp_compressed_ack_kick()."""
        self.sync()
        if self.compressed_ack and self.state != TCP_CLOSE:
            self.compressed_ack -= 1
            self.send_ack()
        self.release()
