"""A TCP socket: its state, its buffers and the calls an application makes.

Models net/ipv4/tcp.c (``tcp_init_sock``, ``tcp_sendmsg_locked``, ``tcp_push``,
``tcp_recvmsg``, ``__tcp_cleanup_rbuf``, ``tcp_close``, ``tcp_shutdown``), the socket
memory rules of include/net/sock.h and net/core/stream.c, and the buffer tuning of
net/ipv4/tcp_input.c (``tcp_init_buffer_space``, ``tcp_sndbuf_expand``, ``tcp_new_space``,
``tcp_rcv_space_adjust``).

**Send buffer.** ``write()`` copies into the tail skb of the write queue until it holds
``size_goal`` bytes (one MSS without GSO; up to 64 KiB − ``MAX_TCP_HEADER`` − 1, bounded by
half the peer's largest window, with it), otherwise it starts a new skb, which is allowed
only while ``sk_wmem_queued < sk_sndbuf``; appending to the unsent tail skb is not checked, so
the queue overshoots (by the tail, and by the remainders ``tso_fragment`` leaves there). Each
skb costs its truesize: ``SKB_TRUESIZE(MAX_TCP_HEADER)`` = 256 + 256 + 320 = **832 bytes plus
its payload** (measured on Linux 6.18: ``ss -m`` shows ``w`` = 832 × skbs + bytes queued).
Memory is released when data is *acknowledged*, not when it is sent. ``sk_sndbuf`` starts at
``tcp_wmem[1]`` and at ESTABLISHED becomes ``2 × max(10, cwnd) × per_mss`` with
``per_mss = roundup_pow_of_two(mss + MAX_TCP_HEADER + 320) + 256`` = 2304 (46080 for CUBIC,
observed), then grows the same way whenever ACKs free space for a writer that ran out
(``tcp_new_space``), up to ``tcp_wmem[2]``. ``SO_SNDBUF`` sets 2 × the request (clamped to
``wmem_max``, floor 4608) and stops autotuning. A blocked writer is woken when free space is
at least half of what is queued (``sk_stream_write_space``: queue ≤ 2/3 of the buffer).

**Receive buffer.** ``sk_rcvbuf`` starts at ``tcp_rmem[1]``; window = ``rcvbuf ×
scaling_ratio / 256`` (``tcp_win_from_space``; the ratio starts at 50 % and is learnt from
the payload/truesize of received skbs). The window scale is fixed at the handshake from
``max(tcp_rmem[2], rmem_max)`` (10 for 32 MiB). ``rcv_ssthresh`` grows with in-order data
(``tcp_grow_window``); DRS (``tcp_rcv_space_adjust``) raises ``sk_rcvbuf`` once per receiver
RTT to fit twice what the application read plus 16 segments (more in slow start), up to
``tcp_rmem[2]``; ``SO_RCVBUF`` (doubled, clamped to ``rmem_max``) stops it.

**Application records.** A write may carry a :class:`Mark` (as iperf carries a timestamp in
its payload): it travels with its last byte through every queue and segment, so the reader
learns where that byte's time went (send-buffer wait, why it waited in the write queue —
cwnd, rwnd, Nagle, cork —, first transmission, retransmission, the wire, reassembly, the
receive queue).

**Ownership** (``lock_sock``/``release_sock``, the backlog, time order across CPUs): own.py.

Scope and limitations: blocking sockets only (no EAGAIN), no MSG_MORE/MSG_ZEROCOPY/urgent
data, no TCP_NOTSENT_LOWAT per socket (the sysctl works), no ``SO_LINGER``, no memory
pressure (``tcp_mem``); page-fragment granularity of truesize is ignored.
Validation: tests/models/linux/tcp/test_buffers.py (sndbuf values against Linux 6.18,
truesize accounting, blocking and wake-up), the sndbuf-what-if scenario.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from simnet.kernel import Timer

from .cong import CONG_OPS
from .const import (CA_OPEN, FIN, PSH, SKB_OVERHEAD, TCPOLEN_TSTAMP_ALIGNED, TCP_CLOSE, TCP_CLOSE_WAIT,
                    TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_INFINITE_SSTHRESH, TCP_LAST_ACK, TCP_LISTEN, TCP_MIN_MSS,
                    TCP_MIN_RCVMSS, TCP_MSS_DEFAULT, TCP_SYN_SENT, SOCK_RCVBUF_LOCK, SOCK_SNDBUF_LOCK)
from .input import TcpInput
from .output import TcpOutput
from .own import TcpOwner
from .queue import Mark, RtxSeg, SendSkb
from .rcv import TcpRcv
from .recovery import TcpRecovery
from .timer import LazyTimer

if TYPE_CHECKING:
    from ..cpu import Cpu
    from ..netns import Netns

__all__ = ["TcpSock", "SendSkb", "RtxSeg", "Mark", "TCP_NAGLE_OFF", "TCP_NAGLE_CORK", "TCP_NAGLE_PUSH",
           "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET"]

TCP_NAGLE_OFF = 1
TCP_NAGLE_CORK = 2
TCP_NAGLE_PUSH = 4

ETIMEDOUT = 110
ECONNREFUSED = 111
ECONNRESET = 104

EOR = 0x100                    # TCP_SKB_CB(skb)->eor: do not append to this skb


def roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


class TcpSock(TcpOutput, TcpInput, TcpRcv, TcpRecovery, TcpOwner):
    """One TCP socket (``struct tcp_sock``) owned by an application pinned to ``cpu``."""

    lazy_tx = True                      # NIC TX completions are applied when read (tx_complete_at)

    def __init__(self, ns: "Netns", cpu: "Cpu", *, cc: str | None = None, name: str = "") -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.cpu = cpu
        self.name = name
        p = ns.params.tcp
        self.p = p
        self.hz = 250                          # CONFIG_HZ of the reference kernel (jiffy-granular values)
        self.state = TCP_CLOSE
        self.laddr = self.lport = self.raddr = self.rport = 0
        self.route: Any = None
        self.parent: TcpSock | None = None      # the listener of an accepted socket
        self.accept_queue: deque[TcpSock] = deque()
        self.on_accept: Callable[[TcpSock], None] | None = None
        self.on_connect: Callable[[int], None] | None = None
        self.on_readable: Callable[[], None] | None = None
        self.on_writable: Callable[[], None] | None = None
        self.on_closed: Callable[[int], None] | None = None
        self.err = 0
        self.flow = -1
        # options
        self.nonagle = 0
        self.userlocks = 0
        self.ca_name = cc or p.congestion_control
        self.ca = CONG_OPS[self.ca_name]()
        self.tstamp_ok = p.timestamps
        self.wscale_ok = p.window_scaling
        self.sack_ok = True
        # send side (sequence numbers are unbounded ints; the wire carries them mod 2^32)
        self.iss = 0
        self.snd_una = self.snd_nxt = self.write_seq = self.pushed_seq = self.snd_sml = 0
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.max_window = 0
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.mss_clamp = 536
        self.mss_cache = TCP_MSS_DEFAULT
        self.advmss = 1460
        self.tcp_header_len = 20
        self.gso_ok = False
        self.gso_max_size = p.gso_max_size_bytes - (p.max_tcp_header_bytes + 1)
        self.gso_segs_goal = 0
        self.size_goal = TCP_MSS_DEFAULT
        self.send_queue: deque[SendSkb] = deque()
        self.rtx_queue: deque[RtxSeg] = deque()
        self.wmem_queued = 0
        self.wmem_alloc = 0                    # truesize of our skbs below TCP (qdisc, driver)
        self.tx_done: deque = deque()          # (time, truesize) of NIC TX completions to apply
        self.tx_event = False
        self.sndbuf = p.wmem_bytes[1]
        self.nospace = False                   # SOCK_NOSPACE: a writer ran out of buffer
        self.tsq_throttled = False
        self.fin_queued = False
        # congestion state
        self.snd_cwnd = p.init_cwnd_segs
        self.snd_ssthresh = TCP_INFINITE_SSTHRESH
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = 0xFFFFFFFF
        self.snd_cwnd_stamp_j = 0
        self.snd_cwnd_used = 0
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        self.is_cwnd_limited = False
        self.max_packets_out = 0
        self.cwnd_usage_seq = 0
        self.ca_state = CA_OPEN
        self.high_seq = 0
        self.prr_delivered = 0
        self.prr_out = 0
        self.packets_out = 0
        self.sacked_out = 0
        self.lost_out = 0
        self.retrans_out = 0
        self.delivered = 0
        self.lost = 0
        self.reordering = p.reordering
        self.retrans_stamp = 0.0
        self.pacing_rate_Bps = 0                # ~0U until the first RTT sample: no TSO limit
        self.paced = False
        self.lsndtime_j = 0
        self.lsndtime = 0.0
        # RACK
        self.rack_mstamp = 0.0
        self.rack_end_seq = 0
        self.rack_rtt_us = 0
        self.rack_advanced = False
        # RTT/RTO
        self.srtt_us = 0
        self.mdev_us = 0
        self.mdev_max_us = 0
        self.rttvar_us = 0
        self.rtt_seq = 0
        self.min_rtt_us = 0xFFFFFFFF
        self.rto_min_us = int(p.rto_min_s * 1e6)
        self.rto = p.rto_initial_s
        self.backoff = 0
        self.retransmits = 0                    # icsk_retransmits
        self.total_rto = 0
        self.total_retrans = 0
        self.pending_timer = 0                  # 0 none, 1 RTO, 2 RACK reordering, 3 probe0
        self.rtx_timer = LazyTimer(self.ctx, self._on_rtx_timer)
        self.delack_timer = LazyTimer(self.ctx, self._on_delack_timer)
        self.sack_timer = LazyTimer(self.ctx, self._on_sack_timer)
        self.tw_timer = Timer(self.ctx, self._on_timewait)
        # receive side
        self.irs = 0
        self.rcv_nxt = self.rcv_wup = self.copied_seq = 0
        self.rcv_wnd = 0
        self.rcvbuf = p.rmem_bytes[1]
        self.rmem_alloc = 0
        self.scaling_ratio = 128                # TCP_DEFAULT_SCALING_RATIO (6.10+)
        self.window_clamp = 0
        self.rcv_ssthresh = 0
        self.rcvq_space = 0
        self.rcvq_seq = 0
        self.rcvq_time = 0.0
        self.rcv_rtt_us = 0                     # rcv_rtt_est.rtt_us (×8)
        self.rcv_rtt_last_tsecr = -1
        self.rcv_queue: deque[list] = deque()   # [seq, end_seq, truesize, fin]
        self.ooo: list[list] = []               # sorted [seq, end_seq, truesize, fin, t_arrive]
        self.rx_marks: dict[int, Mark] = {}     # end_seq -> mark, not yet read
        self.sacks: list[list[int]] = []        # selective_acks, most recent first
        self.fin_received = False
        self.fin_time = 0.0
        self.ts_recent = 0
        self.ts_recent_t = 0.0
        self.ts_offset = 0
        self.rcv_tsecr = 0
        # the delayed-ACK engine (icsk_ack)
        self.ack_pending = 0
        self.ack_quick = 0
        self.ack_pingpong = 0
        self.ack_ato = 0.0
        self.ack_lrcvtime = 0.0
        self.rcv_mss = TCP_MIN_RCVMSS
        self.last_seg_size = 0
        self.ack_timeout = 0.0
        self.compressed_ack = 0
        self.compressed_ack_rcv_nxt = 0
        self.dup_ack_counter = 0
        # statistics (tcp_info and MIB)
        self.segs_out = self.segs_in = self.data_segs_out = self.data_segs_in = 0
        self.bytes_sent = self.bytes_retrans = self.bytes_acked = self.bytes_received = 0
        self.delivered_bytes = 0
        self.dsack_dups = 0
        self.reord_seen = 0
        self.rcv_ooopack = 0
        self.busy_s = 0.0
        self.rwnd_limited_s = 0.0
        self.sndbuf_limited_s = 0.0
        self.t_established: float | None = None
        self.t_connect: float | None = None
        self.syn_sent_s = 0.0
        self.syn_retrans = 0
        # where unsent data waits, and why (see Mark): current reason, since, cumulative
        self.blk_reason: str | None = None
        self.blk_since = 0.0
        self.blk_cum: dict[str, float] = {}
        # socket ownership (lock_sock/release_sock): until when the owner's system call runs;
        # vtime: the latest virtual time any CPU worked on the socket (see sync())
        self.owned_until = 0.0
        self.owned = False                      # inside the owner's system call right now
        self.vtime = 0.0
        # the owning program makes no call on the socket until the socket wakes it (blocked in
        # recv() or on a full send buffer, or done): its CPU cannot reach the socket first
        self.user_idle = False
        self.backlog: deque = deque()
        self.backlog_pending = False
        ns.tcp.register(self)

    def pmtu(self) -> int:
        return self.ns.path_mtu(self.route, self.raddr) if self.route is not None else 1500

    def __repr__(self) -> str:
        from .const import STATE_NAMES
        from ..skb import int_to_ip
        return (f"<TcpSock {self.ns.name} {int_to_ip(self.laddr)}:{self.lport} > {int_to_ip(self.raddr)}:"
                f"{self.rport} {STATE_NAMES[self.state]}>")

    # -- clocks ---------------------------------------------------------------------------
    def jiffies(self, t: float) -> int:
        return int(t * self.hz)

    # -- options (setsockopt) -------------------------------------------------------------
    def set_sndbuf(self, nbytes: int) -> None:
        """SO_SNDBUF: clamp to wmem_max, double, floor SOCK_MIN_SNDBUF; locks autotuning."""
        self.userlocks |= SOCK_SNDBUF_LOCK
        self.sndbuf = max(4608, 2 * min(nbytes, self.ns.params.core.wmem_max_bytes))

    def set_rcvbuf(self, nbytes: int) -> None:
        """SO_RCVBUF: clamp to rmem_max, double, floor SOCK_MIN_RCVBUF; locks DRS."""
        self.userlocks |= SOCK_RCVBUF_LOCK
        self.rcvbuf = max(2304, 2 * min(nbytes, self.ns.params.core.rmem_max_bytes))

    def set_nodelay(self, on: bool) -> None:
        """TCP_NODELAY: Nagle off, and push what is pending."""
        if on:
            self.nonagle |= TCP_NAGLE_OFF | TCP_NAGLE_PUSH
            if self.state == TCP_ESTABLISHED:
                self.push_pending_frames(self.nonagle)
        else:
            self.nonagle &= ~TCP_NAGLE_OFF

    def set_cork(self, on: bool) -> None:
        """TCP_CORK: hold partial segments; uncorking pushes them."""
        if on:
            self.nonagle |= TCP_NAGLE_CORK
        else:
            self.nonagle &= ~TCP_NAGLE_CORK
            if self.nonagle & TCP_NAGLE_OFF:
                self.nonagle |= TCP_NAGLE_PUSH
            if self.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
                self.push_pending_frames(self.nonagle | TCP_NAGLE_PUSH)

    # -- MSS and size goal ------------------------------------------------------------------
    def sync_mss(self, pmtu: int) -> int:
        """tcp_sync_mss() + tcp_current_mss(): the payload of a full segment."""
        mss = pmtu - 40
        if mss > self.mss_clamp:
            mss = self.mss_clamp
        mss = max(mss, 48)
        mss -= self.tcp_header_len - 20                                   # tcp_mtu_to_mss(): options out first
        if self.max_window and mss > self.max_window // 2 and self.max_window > TCP_MSS_DEFAULT:
            mss = max(self.max_window // 2, 68 - self.tcp_header_len)   # then tcp_bound_to_half_wnd
        self.mss_cache = max(mss, 1)
        self._size_goal()
        return self.mss_cache

    def _size_goal(self) -> None:
        """tcp_xmit_size_goal(): whole segments up to gso_max_size, at most half the peer's window."""
        mss = self.mss_cache
        if not self.gso_ok:
            self.size_goal = mss
            return
        goal = self.gso_max_size
        mw = self.max_window
        if mw:
            cutoff = mw >> 1 if mw > TCP_MSS_DEFAULT else mw
            if cutoff and goal > cutoff:
                goal = max(cutoff, 68 - self.tcp_header_len)
        self.size_goal = max((goal // mss) * mss, mss)

    # -- buffers --------------------------------------------------------------------------------
    def skb_head(self) -> int:
        """SKB_TRUESIZE(skb_end_offset) of a fresh TCP skb: a MAX_TCP_HEADER head from the
        small-head cache (SKB_HEAD_ALIGN) plus sk_buff and skb_shared_info."""
        return self.p.max_tcp_header_bytes + SKB_OVERHEAD

    def sndbuf_expand(self) -> None:
        """tcp_sndbuf_expand()."""
        per_mss = max(self.mss_clamp, self.mss_cache) + self.p.max_tcp_header_bytes + 320
        per_mss = roundup_pow_of_two(per_mss) + 256
        nr_segs = max(self.p.init_cwnd_segs, self.snd_cwnd, self.reordering + 1)
        sndmem = self.ca.sndbuf_expand * nr_segs * per_mss
        if self.sndbuf < sndmem:
            self.sndbuf = min(sndmem, self.p.wmem_bytes[2])

    def memory_free(self) -> bool:
        """sk_stream_memory_free(): a new skb may be allocated."""
        if self.wmem_queued >= self.sndbuf:
            return False
        return self.write_seq - self.snd_nxt < self.p.notsent_lowat_bytes

    def new_space(self) -> None:
        """tcp_check_space() → tcp_new_space() → sk_stream_write_space()."""
        if not self.nospace:
            return
        if (not self.userlocks & SOCK_SNDBUF_LOCK
                and self.packets_out - self.sacked_out - self.lost_out + self.retrans_out < self.snd_cwnd):
            self.sndbuf_expand()
        # __sk_stream_is_writeable(): free space at least half of what is queued
        if self.sndbuf - self.wmem_queued >= self.wmem_queued >> 1 and \
                2 * (self.write_seq - self.snd_nxt) < 2 * self.p.notsent_lowat_bytes:
            self.nospace = False
            cb = self.on_writable
            if cb is not None:
                self.wake_user(cb)

    def init_buffer_space(self) -> None:
        """tcp_init_buffer_space(), at ESTABLISHED."""
        if not self.userlocks & SOCK_SNDBUF_LOCK:
            self.sndbuf_expand()
        now = self.ctx.vnow()
        self.rcvq_time = now
        self.rcvq_seq = self.copied_seq
        maxwin = self.full_space()
        app_win = self.p.app_win
        if self.window_clamp >= maxwin:
            self.window_clamp = maxwin
            if app_win and maxwin > 4 * self.advmss:
                self.window_clamp = max(maxwin - (maxwin >> app_win), 4 * self.advmss)
        if app_win and self.window_clamp > 2 * self.advmss and self.window_clamp + self.advmss > maxwin:
            self.window_clamp = max(2 * self.advmss, maxwin - self.advmss)
        self.rcv_ssthresh = min(self.rcv_ssthresh, self.window_clamp)
        self.snd_cwnd_stamp_j = self.jiffies(now)
        self.rcvq_space = min(self.rcv_ssthresh, self.rcv_wnd, self.p.init_cwnd_segs * self.advmss)

    # -- blocked-reason bookkeeping (for Mark) -----------------------------------------------
    def block(self, reason: str | None, t: float) -> None:
        cur = self.blk_reason
        if cur == reason:
            return
        if t < self.blk_since:          # another CPU's segment, behind in virtual time
            t = self.blk_since
        if cur is not None:
            self.blk_cum[cur] = self.blk_cum.get(cur, 0.0) + (t - self.blk_since)
        self.blk_reason = reason
        self.blk_since = t

    def snapshot(self, t: float) -> dict[str, float]:
        d = dict(self.blk_cum)
        cur = self.blk_reason
        if cur is not None and t > self.blk_since:
            d[cur] = d.get(cur, 0.0) + (t - self.blk_since)
        return d

    # -- the application's calls (run inside a CPU segment of the owner's CPU) -------------------
    def connect(self, daddr: int, dport: int) -> int:
        """tcp_v4_connect(): route, source address and port, then the SYN. 0 or -errno."""
        return self.ns.tcp.connect(self, daddr, dport)

    def listen(self, port: int, backlog: int = 4096) -> None:
        """inet_listen()."""
        self.ns.tcp.listen(self, port)

    def accept(self) -> "TcpSock | None":
        return self.accept_queue.popleft() if self.accept_queue else None

    def sendmsg(self, nbytes: int, mark: Mark | None = None, *, marks: list[tuple[int, Mark]] | None = None) -> int:
        """tcp_sendmsg_locked(): copy up to ``nbytes``; returns the bytes copied (< nbytes: the
        buffer is full and the caller must wait for ``on_writable``), or -errno.

        ``mark`` rides with the last byte once the whole write is copied; ``marks`` are records at
        byte offsets of this write (``(end offset, Mark)``, ascending), each attached when the
        byte at its offset is copied (a relay passes on the records of what it read): the caller
        passes those beyond the bytes copied again with the rest."""
        self.lock()
        st = self.state
        if self.err:
            self.own()
            return -self.err
        if st not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT) or self.fin_queued:
            self.own()
            return -32                                         # EPIPE
        seg = self.ctx.seg
        copied = 0
        goal = self.size_goal
        sq = self.send_queue
        p_backlog = 0
        now = seg.start + seg.cost if seg is not None else self.ctx.env._now
        mk = 0
        while copied < nbytes:
            skb = sq[-1] if sq else None
            room = goal - (skb.end_seq - skb.seq) if skb is not None else 0
            if room <= 0 or skb.flags & (EOR | FIN):
                if not self.memory_free():
                    self.nospace = True
                    if copied:
                        self.push(self.nonagle | TCP_NAGLE_PUSH, goal, copied_all=False)
                    break
                skb = SendSkb(self.write_seq)
                skb.truesize = self.skb_head()
                if not sq and not self.rtx_queue:
                    self.slow_start_after_idle_check()
                sq.append(skb)
                self.wmem_queued += skb.truesize
                p_backlog += 1
                room = goal
            n = min(room, nbytes - copied)
            if seg is not None:                       # copy_from_user, into the skb's page frags
                seg.spend_bytes("syscall", n)
                seg.spend_bytes("tcp_sendmsg", n)
                now = seg.start + seg.cost
            skb.end_seq += n
            skb.truesize += n
            skb.t_ready = now
            self.wmem_queued += n
            self.write_seq += n
            copied += n
            if marks and mk < len(marks) and marks[mk][0] <= copied:
                mk = self._attach_marks(marks, mk, copied, skb, now)
            if copied == nbytes:
                break
            if skb.end_seq - skb.seq < goal:
                continue
            if self.write_seq - self.pushed_seq > self.max_window >> 1:          # forced_push()
                skb.flags |= PSH
                self.pushed_seq = self.write_seq
                self.push_pending_frames(TCP_NAGLE_PUSH)
            elif skb is sq[0]:
                self.write_xmit(TCP_NAGLE_PUSH, push_one=True)
        if mark is not None and copied == nbytes:
            tail = sq[-1]
            mark.end_seq = self.write_seq
            mark.t_copied = seg.start + seg.cost if seg is not None else self.ctx.env._now
            mark.snap = self.snapshot(mark.t_copied)
            if tail.marks is None:
                tail.marks = [mark]
            else:
                tail.marks.append(mark)
        if copied == nbytes and copied:
            self.push(self.nonagle, goal, copied_all=True)
        self.own()
        return copied

    def _attach_marks(self, marks: list[tuple[int, Mark]], k: int, copied: int, skb: SendSkb, now: float) -> int:
        """Attach the records of ``marks[k:]`` whose byte (offset ≤ ``copied``) was just copied
        into ``skb``; returns the index of the first one left."""
        while k < len(marks) and marks[k][0] <= copied:
            off, m = marks[k]
            m.end_seq = self.write_seq - (copied - off)
            m.t_copied = now
            m.snap = self.snapshot(now)
            if skb.marks is None:
                skb.marks = [m]
            else:
                skb.marks.append(m)
            k += 1
        return k

    def recvmsg(self, maxbytes: int) -> tuple[int, list[Mark]]:
        """tcp_recvmsg(): copy up to ``maxbytes`` in order; returns (bytes, marks passed).

        0 bytes with ``fin_received`` and nothing queued is end of file. Data that became
        readable after the caller's (virtual) time is left for the next call: its wake-up
        comes at that time."""
        self.lock()
        rq = self.rcv_queue
        got = 0
        now = self.ctx.vnow()
        while rq and got < maxbytes:
            ent = rq[0]
            if ent[3] > now:
                break
            avail = ent[1] - self.copied_seq
            take = min(avail, maxbytes - got)
            self.copied_seq += take
            got += take
            if self.copied_seq >= ent[1]:
                rq.popleft()
                self.rmem_alloc -= ent[2]
        marks: list[Mark] = []
        if self.rx_marks:
            cs = self.copied_seq
            for k in [k for k in self.rx_marks if k <= cs]:
                marks.append(self.rx_marks.pop(k))
            marks.sort(key=lambda m: m.end_seq)
        if got:
            self.rcv_space_adjust()
            self.cleanup_rbuf(got)
        self.own()
        return got, marks

    def readable(self) -> bool:
        """Some data can be read now (in order, arrived by the caller's time)."""
        rq = self.rcv_queue
        return bool(rq) and rq[0][3] <= self.ctx.vnow()

    def at_eof(self) -> bool:
        return self.fin_received and not self.rcv_queue and self.fin_time <= self.ctx.vnow()

    def close(self) -> None:
        """tcp_close()/shutdown(SHUT_WR): queue a FIN after the data (tcp_send_fin)."""
        self.lock()
        st = self.state
        if st == TCP_LISTEN:
            self.ns.tcp.unlisten(self)
            self.set_state(TCP_CLOSE)
            self.own()
            return
        if st == TCP_SYN_SENT:
            self.done()
            self.own()
            return
        if self.fin_queued or st not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            self.own()
            return
        self.fin_queued = True
        self.set_state(TCP_FIN_WAIT1 if st == TCP_ESTABLISHED else TCP_LAST_ACK)
        sq = self.send_queue
        if sq and not sq[-1].flags & FIN:
            tail = sq[-1]
            tail.flags |= FIN
        else:
            skb = SendSkb(self.write_seq)
            skb.truesize = self.skb_head()
            skb.flags |= FIN
            sq.append(skb)
            self.wmem_queued += skb.truesize
        sq[-1].end_seq += 1
        sq[-1].t_ready = max(sq[-1].t_ready, self.ctx.vnow())
        self.write_seq += 1
        self.push_pending_frames(TCP_NAGLE_OFF)
        self.own()


# re-exported for the table
__all__ += ["SOCK_SNDBUF_LOCK", "SOCK_RCVBUF_LOCK", "EOR", "TCPOLEN_TSTAMP_ALIGNED", "TCP_MIN_MSS"]
