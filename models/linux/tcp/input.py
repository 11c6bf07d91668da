"""TCP input: net/ipv4/tcp_input.c for one socket (the demultiplexing is in table.py).

* Connection setup: ``tcp_rcv_synsent_state_process`` (the SYN-ACK's options: MSS, window
  scale, SACK-permitted, timestamps; an RTT sample; ``tcp_finish_connect`` and an immediate
  ACK) and ``tcp_rcv_state_process`` for SYN_RECV, FIN_WAIT1/2, CLOSING, LAST_ACK; resets
  (``tcp_reset``).
* ``tcp_rcv_established``: ``tcp_validate_incoming`` (window check, duplicate ACK for
  out-of-window data, RST), timestamps (``ts_recent``, the receiver RTT for DRS),
  ``tcp_ack``, ``tcp_data_queue``, ``tcp_data_snd_check``, ``__tcp_ack_snd_check``.
* ``tcp_ack``: window update (``tcp_ack_update_window``), SACK scoreboard
  (``tcp_sacktag_write_queue``), ``tcp_clean_rtx_queue`` (memory freed, RTT from the oldest
  newly ACKed never-retransmitted segment, Karn's rule with the timestamp fallback, RACK
  advance), then loss recovery (recovery.py) and ``tcp_cong_control`` (PRR during
  recovery, else the congestion control's ``cong_avoid``).
* Receiving data, the ACK policy and the receive window are in rcv.py.

Scope and limitations: no PAWS, no urgent data, no challenge ACKs, no DSACK generation or
undo (spurious retransmissions are not detected), no ECN; a SYN-ACK retransmitted by the
server is answered but not counted as a duplicate.
Validation: tests/models/linux/tcp/test_handshake.py (setup, teardown, resets),
tests/models/linux/tcp/test_recovery.py (cwnd per ACK in slow start, recovery),
tests/models/linux/tcp/test_info.py (counts and RTT fields).
"""

from __future__ import annotations

from typing import Any

from simnet.trace import Drop

from .const import (ACK, CA_OPEN, EVER_RETRANS, FIN, LOST, RST, SACKED_ACKED, SACKED_RETRANS, SYN,
                    TCPOLEN_TSTAMP_ALIGNED, TCP_CLOSE, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
                    TCP_LAST_ACK, TCP_MIN_MSS, TCP_MIN_RCVMSS, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT)
from .timer import rto_from, rtt_estimator

__all__ = ["TcpInput", "FLAG_DATA", "FLAG_WIN_UPDATE", "FLAG_DATA_ACKED", "FLAG_RETRANS_DATA_ACKED",
           "FLAG_SYN_ACKED", "FLAG_DATA_SACKED", "FLAG_SND_UNA_ADVANCED", "FLAG_SET_XMIT_TIMER", "FLAG_ACKED",
           "FLAG_NOT_DUP", "FLAG_CA_ALERT", "FLAG_FORWARD_PROGRESS", "FLAG_LOST_RETRANS"]

FLAG_DATA = 0x01
FLAG_WIN_UPDATE = 0x02
FLAG_DATA_ACKED = 0x04
FLAG_RETRANS_DATA_ACKED = 0x08
FLAG_SYN_ACKED = 0x10
FLAG_DATA_SACKED = 0x20
FLAG_ECE = 0x40
FLAG_LOST_RETRANS = 0x80
FLAG_SLOWPATH = 0x100
FLAG_ORIG_SACK_ACKED = 0x200
FLAG_SND_UNA_ADVANCED = 0x400
FLAG_DSACKING_ACK = 0x800
FLAG_SET_XMIT_TIMER = 0x1000
FLAG_ACKED = FLAG_DATA_ACKED | FLAG_SYN_ACKED
FLAG_NOT_DUP = FLAG_DATA | FLAG_WIN_UPDATE | FLAG_ACKED
FLAG_CA_ALERT = FLAG_DATA_SACKED | FLAG_ECE | FLAG_DSACKING_ACK
FLAG_FORWARD_PROGRESS = FLAG_ACKED | FLAG_DATA_SACKED

_TCP_NAGLE_OFF = 1


class TcpInput:
    """Input methods of TcpSock (state lives in sock.py)."""

    # -- entry --------------------------------------------------------------------------------
    def rcv(self: Any, skb: Any) -> None:
        """tcp_v4_do_rcv() for this socket: by state."""
        st = self.state
        segs = skb.gso_segs or 1                       # tcp_segs_in()
        self.segs_in += segs
        if skb.l3_len - 20 > skb.tcp_hlen:
            self.data_segs_in += segs
        if st == TCP_ESTABLISHED:
            self.rcv_established(skb)
        elif st == TCP_SYN_SENT:
            self.rcv_synsent(skb)
        elif st == TCP_TIME_WAIT:
            self.rcv_timewait(skb)
        elif st == TCP_CLOSE:
            self.ns.kfree_skb(skb, Drop.NO_SOCKET, "tcp_v4_rcv")
        else:
            self.rcv_state_process(skb)

    def _payload(self, skb: Any) -> int:
        return skb.l3_len - 20 - skb.tcp_hlen

    # -- SYN_SENT --------------------------------------------------------------------------------
    def rcv_synsent(self: Any, skb: Any) -> None:
        """tcp_rcv_synsent_state_process()."""
        ns = self.ns
        fl = skb.tcp_flags
        now = self.ctx.vnow()
        if fl & ACK and skb.ack_seq != self.iss + 1:
            ns.tcp.send_reset(skb)
            ns.kfree_skb(skb, Drop.TCP_INVALID_ACK, "tcp_rcv_synsent_state_process")
            return
        if fl & RST:
            if fl & ACK:
                self.reset(111)                   # ECONNREFUSED
            ns.kfree_skb(skb, Drop.TCP_RESET, "tcp_rcv_synsent_state_process")
            return
        if not (fl & SYN and fl & ACK):
            ns.kfree_skb(skb, Drop.TCP_FLAGS, "tcp_rcv_synsent_state_process")
            return
        self.ctx.tracer.deliver(skb)
        mss, sack_ok, ts_ok, wscale, _n = skb.syn_opts
        self.apply_peer_syn_options(mss, sack_ok, ts_ok, wscale, skb)
        self.irs = skb.seq
        self.rcv_nxt = self.rcv_wup = self.copied_seq = skb.seq + 1
        self.rcvq_seq = self.copied_seq
        self.snd_wnd = skb.window                  # a SYN's window is never scaled
        self.snd_wl1 = skb.seq
        self.max_window = self.snd_wnd
        self.tcp_ack(skb, FLAG_SLOWPATH, now)
        self.sync_mss(self.pmtu())
        self.initialize_rcv_mss()
        self.rcv_ssthresh = min(self.rcv_ssthresh, self.rcv_wnd) if self.rcv_ssthresh else self.rcv_wnd
        self.finish_connect(now)
        self.send_ack()

    def apply_peer_syn_options(self: Any, mss: int, sack_ok: bool, ts_ok: bool, wscale: int, skb: Any) -> None:
        """tcp_parse_options() on a SYN: what both ends agreed on."""
        if mss:
            self.mss_clamp = min(self.mss_clamp, mss) if self.mss_clamp_user else mss
        self.sack_ok = self.sack_ok and sack_ok
        self.tstamp_ok = self.tstamp_ok and ts_ok
        if self.wscale_ok and wscale >= 0:
            self.snd_wscale = min(wscale, 14)
        else:
            self.wscale_ok = False
            self.snd_wscale = 0
            self.rcv_wscale = 0
        if self.tstamp_ok:
            self.tcp_header_len = 20 + TCPOLEN_TSTAMP_ALIGNED
            self.advmss -= TCPOLEN_TSTAMP_ALIGNED
            self.ts_recent = skb.tsval
            self.ts_recent_t = self.ctx.vnow()
            self.rcv_tsecr = skb.tsecr
        else:
            self.tcp_header_len = 20

    def initialize_rcv_mss(self: Any) -> None:
        """tcp_initialize_rcv_mss()."""
        hint = min(self.advmss, self.mss_cache, self.rcv_wnd // 2, TCP_MIN_RCVMSS)
        self.rcv_mss = max(hint, TCP_MIN_MSS)

    def finish_connect(self: Any, now: float) -> None:
        """tcp_finish_connect() → tcp_init_transfer()."""
        self.set_state(TCP_ESTABLISHED)
        self.init_transfer(now)
        self.lsndtime = now
        self.lsndtime_j = self.jiffies(now)
        cb = self.on_connect
        if cb is not None:
            self.ctx.defer(cb, 0)

    def init_transfer(self: Any, now: float) -> None:
        """tcp_init_transfer(): initial cwnd, buffer space, congestion control."""
        if self.syn_retrans > 1:
            self.snd_cwnd = 1
        else:
            self.snd_cwnd = self.p.init_cwnd_segs
        self.snd_cwnd_stamp_j = self.jiffies(now)
        self.init_buffer_space()
        self.ca.init(self, int(now * 1e6))
        self.t_established = now
        self.update_pacing_rate()

    # -- SYN_RECV and the closing states ------------------------------------------------------------
    def rcv_state_process(self: Any, skb: Any) -> None:
        """tcp_rcv_state_process() for SYN_RECV, FIN_WAIT1/2, CLOSING, LAST_ACK, CLOSE_WAIT."""
        ns = self.ns
        now = self.ctx.vnow()
        fl = skb.tcp_flags
        st = self.state
        if fl & RST:
            self.reset(104)
            ns.kfree_skb(skb, Drop.TCP_RESET, "tcp_validate_incoming")
            return
        if st == TCP_SYN_RECV:
            if fl & SYN and not fl & ACK:                 # the peer retransmitted its SYN
                self.send_syn(retrans=True)
                ns.kfree_skb(skb, Drop.TCP_OLD_DATA, "tcp_check_req")
                return
            if not fl & ACK or skb.ack_seq != self.iss + 1 and not (self.iss + 1 < skb.ack_seq <= self.snd_nxt):
                ns.tcp.send_reset(skb)
                ns.kfree_skb(skb, Drop.TCP_INVALID_ACK, "tcp_check_req")
                return
            # tcp_check_req() → the child is created and established
            self.snd_wnd = skb.window << self.snd_wscale
            self.snd_wl1 = skb.seq
            self.max_window = max(self.max_window, self.snd_wnd)
            # tcp_create_openreq_child: the child starts with snd_una = isn + 1, so its SYN is never
            # counted in tcpi_bytes_acked (a passive socket's counts the data and the FIN only)
            bytes_acked = self.bytes_acked
            self.tcp_ack(skb, FLAG_SLOWPATH, now, from_synrecv=True)
            self.bytes_acked = bytes_acked + max(0, skb.ack_seq - (self.iss + 1))
            self.set_state(TCP_ESTABLISHED)
            self.mib_tcp["PassiveOpens"] += 1
            self.sync_mss(self.pmtu())
            self.init_transfer(now)
            self.initialize_rcv_mss()
            lst = self.parent
            if lst is not None:
                lst.accept_queue.append(self)
                cb = lst.on_accept
                if cb is not None:
                    self.ctx.defer(cb, self)
            self.rcv_established(skb, acked=True)
            return
        self.rcv_established(skb)

    def rcv_timewait(self: Any, skb: Any) -> None:
        """tcp_timewait_state_process(): a retransmitted FIN is ACKed again."""
        if skb.tcp_flags & FIN:
            self.send_ack()
        self.ns.kfree_skb(skb, Drop.TCP_OLD_DATA, "tcp_timewait_state_process")

    # -- ESTABLISHED and later ---------------------------------------------------------------------
    def rcv_established(self: Any, skb: Any, acked: bool = False) -> None:
        """tcp_rcv_established() (the slow path; the fast path does the same work)."""
        ns = self.ns
        now = self.ctx.vnow()
        fl = skb.tcp_flags
        seq = skb.seq
        payload = skb.l3_len - 20 - skb.tcp_hlen
        end_seq = seq + payload + (1 if fl & FIN else 0)
        # tcp_validate_incoming(): tcp_sequence()
        rwin = self.rcv_wup + self.rcv_wnd - self.rcv_nxt
        if rwin < 0:
            rwin = 0
        if end_seq < self.rcv_wup or seq > self.rcv_nxt + rwin:
            if not fl & RST:
                self.send_dupack(seq, end_seq)
            reason = Drop.TCP_OLD_SEQUENCE if end_seq < self.rcv_wup else Drop.TCP_INVALID_SEQUENCE
            ns.kfree_skb(skb, reason, "tcp_validate_incoming")
            return
        if fl & RST:
            self.reset(104)
            ns.kfree_skb(skb, Drop.TCP_RESET, "tcp_validate_incoming")
            return
        if fl & SYN:
            self.send_dupack(seq, end_seq)
            ns.kfree_skb(skb, Drop.TCP_INVALID_SYN, "tcp_validate_incoming")
            return
        if self.tstamp_ok:
            self.rcv_tsecr = skb.tsecr
            if seq <= self.rcv_wup:                            # tcp_replace_ts_recent()
                self.ts_recent = skb.tsval
                self.ts_recent_t = now
        if fl & ACK and not acked:
            st = self.state
            r = self.tcp_ack(skb, FLAG_SLOWPATH, now)
            if r < 0:
                ns.kfree_skb(skb, Drop.TCP_INVALID_ACK, "tcp_ack")
                return
            if st in (TCP_FIN_WAIT1, TCP_CLOSING, TCP_LAST_ACK) and self.snd_una == self.write_seq:
                if self.ack_of_fin(st, now):
                    if payload == 0 and not fl & FIN:
                        self.ctx.tracer.deliver(skb)
                        return
        if self.tstamp_ok and payload and payload >= self.rcv_mss:
            self.rcv_rtt_measure_ts(skb, now)
        if payload or fl & FIN:
            self.data_queue(skb, seq, end_seq, payload, now)
        else:
            self.mib_ext["TCPPureAcks"] += 1
            self.ctx.tracer.deliver(skb)
        if self.state != TCP_CLOSE:
            self.data_snd_check()
            self.ack_snd_check()

    def ack_of_fin(self: Any, st: int, now: float) -> bool:
        """Our FIN was ACKed: FIN_WAIT1 → FIN_WAIT2, CLOSING → TIME_WAIT, LAST_ACK → CLOSE."""
        if st == TCP_FIN_WAIT1:
            self.set_state(TCP_FIN_WAIT2)
            return False
        if st == TCP_CLOSING:
            self.time_wait()
            return True
        if st == TCP_LAST_ACK:
            self.done()
            return True
        return False

    def send_dupack(self: Any, seq: int, end_seq: int) -> None:
        """tcp_send_dupack(): out-of-window data is answered at once (quick-ACK mode)."""
        if end_seq != seq and seq < self.rcv_nxt:
            self.mib_ext["DelayedACKLost"] += 1
            self.enter_quickack_mode(self.p.max_quickacks)
        self.send_ack()

    def rcv_rtt_measure_ts(self: Any, skb: Any, now: float) -> None:
        """tcp_rcv_rtt_measure_ts(): the receiver's RTT from the echoed timestamp (1 ms units)."""
        tsecr = skb.tsecr
        if tsecr == self.rcv_rtt_last_tsecr or not tsecr:
            return
        self.rcv_rtt_last_tsecr = tsecr
        delta = ((int(now * 1000) + self.ts_offset) - tsecr) & 0xFFFFFFFF
        if delta >= 0x7FFFFFFF:
            return
        if not delta:
            delta = 1
        sample = delta * 1000
        old = self.rcv_rtt_us
        if old:
            m = sample - (old >> 3)
            self.rcv_rtt_us = old + m
        else:
            self.rcv_rtt_us = sample << 3

    # -- ACK processing ---------------------------------------------------------------------------
    def tcp_ack(self: Any, skb: Any, flag: int, now: float, from_synrecv: bool = False) -> int:
        """tcp_ack(). Returns 1, 0 (an old ACK) or -1 (an ACK of data never sent)."""
        ack = skb.ack_seq
        prior_snd_una = self.snd_una
        if ack < prior_snd_una:
            if skb.sack:
                self.sacktag(skb.sack, now, [0, 0.0, 0.0, 0])
            return 0
        if ack > self.snd_nxt:
            return -1
        if ack > prior_snd_una:
            flag |= FLAG_SND_UNA_ADVANCED
            self.retransmits = 0
        prior_packets = self.packets_out
        prior_delivered = self.delivered
        # tcp_ack_update_window()
        if not skb.tcp_flags & SYN:
            nwin = skb.window << self.snd_wscale
            aseq = skb.seq
            if ack > prior_snd_una or aseq > self.snd_wl1 or (aseq == self.snd_wl1 and (nwin > self.snd_wnd or not nwin)):
                flag |= FLAG_WIN_UPDATE
                self.snd_wl1 = aseq
                if self.snd_wnd != nwin:
                    self.snd_wnd = nwin
                    if nwin > self.max_window:
                        self.max_window = nwin
                        self.sync_mss(self.pmtu())
        self.bytes_acked += ack - prior_snd_una
        self.snd_una = ack
        state = [0, 0.0, 0.0, 0]                 # [flag, first_sackt, last_sackt, reord]
        if skb.sack:
            self.sacktag(skb.sack, now, state)
            flag |= state[0]
        self.rcv_tstamp = now
        if not prior_packets:
            if self.pending_timer == 3 and self.snd_wnd:
                self.ack_probe(now)
            return 1
        flag = self.clean_rtx_queue(ack, prior_snd_una, flag, state, now)
        rexmit = 0
        if (not flag & FLAG_NOT_DUP) or flag & FLAG_CA_ALERT or self.ca_state != CA_OPEN:
            num_dupack = 1 if not flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP) else 0
            flag, rexmit = self.fastretrans_alert(prior_snd_una, num_dupack, flag, now)
        if flag & FLAG_SET_XMIT_TIMER:
            self.rearm_rto(now)
        delivered = self.delivered - prior_delivered
        self.mib_ext["TCPDelivered"] += delivered
        self.cong_control(ack, delivered, flag, now)
        if rexmit:
            self.xmit_retransmit_queue()
        if self.pending_timer == 3 and self.snd_wnd:
            self.ack_probe(now)
        return 1

    def ack_probe(self: Any, now: float) -> None:
        """tcp_ack_probe(): the window opened; stop probing."""
        sq = self.send_queue
        if sq and self.snd_una + self.snd_wnd >= sq[0].seq + min(self.mss_cache, sq[0].end_seq - sq[0].seq):
            self.backoff = 0
            self.pending_timer = 0
            self.rtx_timer.cancel()

    def sacktag(self: Any, blocks: tuple, now: float, state: list) -> None:
        """tcp_sacktag_write_queue(): mark (S)ACKed entries; RACK advances."""
        q = self.rtx_queue
        if not q:
            return
        una = self.snd_una
        for start, end in sorted(blocks):
            if end <= una:
                state[0] |= FLAG_DSACKING_ACK
                self.dsack_dups += 1
                continue
            for ent in q:
                if ent.end_seq <= start:
                    continue
                if ent.seq >= end:
                    break
                if ent.seq < start or ent.end_seq > end:
                    continue
                sacked = ent.sacked
                if sacked & SACKED_ACKED:
                    continue
                self.rack_advance(sacked, ent.end_seq, ent.tx_s, now)
                if sacked & SACKED_RETRANS:
                    if sacked & LOST:
                        sacked &= ~(LOST | SACKED_RETRANS)
                        self.lost_out -= 1
                        self.retrans_out -= 1
                else:
                    if not sacked & EVER_RETRANS:
                        if not state[1]:
                            state[1] = ent.tx_s
                        state[2] = ent.tx_s
                    if sacked & LOST:
                        sacked &= ~LOST
                        self.lost_out -= 1
                ent.sacked = sacked | SACKED_ACKED
                state[0] |= FLAG_DATA_SACKED
                self.sacked_out += 1
                self.delivered += 1
                self.delivered_bytes += ent.end_seq - ent.seq

    def clean_rtx_queue(self: Any, ack: int, prior_snd_una: int, flag: int, state: list, now: float) -> int:
        """tcp_clean_rtx_queue(): free ACKed entries, RTT sample, CC's pkts_acked."""
        q = self.rtx_queue
        first_ackt = last_ackt = 0.0
        pkts_acked = 0
        freed = 0
        while q:
            ent = q[0]
            if ent.end_seq > ack:
                if ent.seq < ack:                       # tcp_tso_acked(): trim the head
                    n = ack - ent.seq
                    ent.seq = ack
                    ent.truesize -= n
                    freed += n
                break
            q.popleft()
            sacked = ent.sacked
            if sacked & EVER_RETRANS:
                if sacked & SACKED_RETRANS:
                    self.retrans_out -= 1
                flag |= FLAG_RETRANS_DATA_ACKED
            elif not sacked & SACKED_ACKED:
                last_ackt = ent.tx_s
                if not first_ackt:
                    first_ackt = last_ackt
            if sacked & SACKED_ACKED:
                self.sacked_out -= 1
            else:
                self.delivered += 1
                self.delivered_bytes += ent.end_seq - ent.seq
                self.rack_advance(sacked, ent.end_seq, ent.tx_s, now)
            if sacked & LOST:
                self.lost_out -= 1
            self.packets_out -= 1
            pkts_acked += 1
            freed += ent.truesize
            if ent.flags & SYN:
                flag |= FLAG_SYN_ACKED
                self.retrans_stamp = 0.0
            else:
                flag |= FLAG_DATA_ACKED
        if freed:
            self.wmem_queued -= freed
        seq_rtt = sack_rtt = ca_rtt = -1
        if first_ackt and not flag & FLAG_RETRANS_DATA_ACKED:
            seq_rtt = int((now - first_ackt) * 1e6)
            ca_rtt = int((now - last_ackt) * 1e6)
        if state[1]:
            sack_rtt = int((now - state[1]) * 1e6)
            ca_rtt = int((now - state[2]) * 1e6)
        rtt_update = self.ack_update_rtt(flag, seq_rtt, sack_rtt, ca_rtt, now)
        if flag & FLAG_ACKED:
            flag |= FLAG_SET_XMIT_TIMER
        elif q and rtt_update and sack_rtt >= 0 and sack_rtt > (now - q[0].tx_s) * 1e6:
            flag |= FLAG_SET_XMIT_TIMER
        if pkts_acked or ca_rtt >= 0:
            found = self.ca_found()
            self.ca.pkts_acked(self, self.rs_rtt_us, int(now * 1e6), self.jiffies(now), self.hz)
            if self.ca_found() != found:
                kind, cwnd = self.ca.hystart_exits[-1]
                k = "Train" if kind == "train" else "Delay"
                self.mib_ext[f"TCPHystart{k}Detect"] += 1
                self.mib_ext[f"TCPHystart{k}Cwnd"] += cwnd
        return flag

    def ca_found(self: Any) -> int:
        return len(getattr(self.ca, "hystart_exits", ()))

    def ack_update_rtt(self: Any, flag: int, seq_rtt: int, sack_rtt: int, ca_rtt: int, now: float) -> bool:
        """tcp_ack_update_rtt()."""
        if seq_rtt < 0:
            seq_rtt = sack_rtt
        if seq_rtt < 0 and self.tstamp_ok and self.rcv_tsecr and flag & FLAG_ACKED:
            delta = ((int(now * 1000) + self.ts_offset) - self.rcv_tsecr) & 0xFFFFFFFF
            if delta < 0x7FFFFFFF:
                seq_rtt = ca_rtt = max(delta, 1) * 1000
        self.rs_rtt_us = ca_rtt
        if seq_rtt < 0:
            return False
        if ca_rtt < self.min_rtt_us:
            self.min_rtt_us = max(ca_rtt, 1)
        rtt_estimator(self, seq_rtt)
        self.rto = rto_from(self, self.hz, self.p.rto_max_s)
        self.backoff = 0
        return True

    def rack_advance(self: Any, sacked: int, end_seq: int, xmit_time: float, now: float) -> None:
        """tcp_rack_advance()."""
        rtt_us = int((now - xmit_time) * 1e6)
        if rtt_us < self.min_rtt_us and sacked & EVER_RETRANS:
            return
        self.rack_advanced = True
        self.rack_rtt_us = rtt_us
        if xmit_time > self.rack_mstamp or (xmit_time == self.rack_mstamp and end_seq > self.rack_end_seq):
            self.rack_mstamp = xmit_time
            self.rack_end_seq = end_seq

    def cong_control(self: Any, ack: int, acked_sacked: int, flag: int, now: float) -> None:
        """tcp_cong_control(): PRR in recovery, else grow cwnd if in-order data was ACKed."""
        if self.ca_state in (2, 3):
            self.cwnd_reduction(acked_sacked, flag)
        elif flag & FLAG_DATA_ACKED:
            self.ca.cong_avoid(self, ack, acked_sacked, self.jiffies(now), self.hz)
        self.update_pacing_rate()
        tr = self.ctx.tracer
        if tr.subs:
            tr.emit("tcp.ack", sock=self, flow=self.flow, ack=ack - self.iss, acked=acked_sacked, cwnd=self.snd_cwnd,
                    ssthresh=self.snd_ssthresh, ca_state=self.ca_state, in_flight=self.in_flight())

    # -- after input ------------------------------------------------------------------------------
    def data_snd_check(self: Any) -> None:
        """tcp_data_snd_check(): push pending data, wake a writer."""
        if self.send_queue:
            self.push_pending_frames(self.nonagle)
        self.new_space()
