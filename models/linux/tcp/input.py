"""TCP input: net/ipv4/tcp_input.c for one socket (the demultiplexing is in table.py).

* Connection setup: ``tcp_rcv_synsent_state_process`` (the SYN-ACK's options: MSS, window
  scale, SACK-permitted, timestamps; an RTT sample; ``tcp_finish_connect`` and an immediate
  ACK) and ``tcp_rcv_state_process`` for SYN_RECV, FIN_WAIT1/2, CLOSING, LAST_ACK;
  ``tcp_fin``; resets (``tcp_reset``).
* ``tcp_rcv_established``: ``tcp_validate_incoming`` (window check, duplicate ACK for
  out-of-window data, RST), timestamps (``ts_recent``, the receiver RTT for DRS),
  ``tcp_ack``, ``tcp_data_queue``, ``tcp_data_snd_check``, ``__tcp_ack_snd_check``.
* ``tcp_ack``: window update (``tcp_ack_update_window``), SACK scoreboard
  (``tcp_sacktag_write_queue``), ``tcp_clean_rtx_queue`` (memory freed, RTT from the oldest
  newly ACKed never-retransmitted segment, Karn's rule with the timestamp fallback, RACK
  advance), then loss recovery (recovery.py) and ``tcp_cong_control`` (PRR during
  recovery, else the congestion control's ``cong_avoid``).
* Receiving data: in-order data to the receive queue by truesize, out-of-order data to the
  reassembly queue with SACK blocks (``tcp_sack_new_ofo_skb``, at most 3 with timestamps),
  duplicates answered with an immediate ACK (quick-ACK mode), ``tcp_event_data_recv`` (the
  ato estimator, the initial 16 quick ACKs, ``tcp_grow_window``), ``tcp_measure_rcv_mss``
  (rcv_mss, ICSK_ACK_PUSHED for small segments, the payload/truesize ``scaling_ratio``).
* ``__tcp_ack_snd_check``: ACK at once when more than one full segment (rcv_mss) is
  unacknowledged and the window can move, in quick-ACK mode, or when ICSK_ACK_NOW is set
  (a hole filled); with out-of-order data the first 3 duplicate ACKs go at once, later ones
  are compressed (≤ ``tcp_comp_sack_nr``, delay min(1 ms, RTT/20)); otherwise the delayed
  ACK (``tcp_send_delayed_ack``).

Scope and limitations: no PAWS, no urgent data, no challenge ACKs, no DSACK generation or
undo (spurious retransmissions are not detected), no ECN; a SYN-ACK retransmitted by the
server is answered but not counted as a duplicate.
Validation: tests/models/linux/tcp/test_input.py (ACK policy: quick ACKs, every second
segment, 40 ms delayed ACK, SACK blocks), tests/models/linux/tcp/test_handshake.py.
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from simnet.trace import Drop

from .const import (ACK, ACK_NOW, ACK_PUSHED, ACK_PUSHED2, ACK_SCHED, ACK_TIMER, CA_OPEN, EVER_RETRANS, FIN,
                    LOST, RST, SACKED_ACKED, SACKED_RETRANS, SYN, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING,
                    TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_MIN_MSS, TCP_MIN_RCVMSS,
                    TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT, TCPOLEN_TSTAMP_ALIGNED)
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
            self.tcp_ack(skb, FLAG_SLOWPATH, now, from_synrecv=True)
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

    # -- data ---------------------------------------------------------------------------------
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

    # -- after input ------------------------------------------------------------------------------
    def data_snd_check(self: Any) -> None:
        """tcp_data_snd_check(): push pending data, wake a writer."""
        if self.send_queue:
            self.push_pending_frames(self.nonagle)
        self.new_space()

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


def _call(fn: Any) -> None:
    fn()
