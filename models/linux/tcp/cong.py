"""Congestion control as pure policy: net/ipv4/tcp_cong.c (Reno) and net/ipv4/tcp_cubic.c.

A policy object holds only its own private state (``struct bictcp`` for CUBIC) and acts on
the few socket fields the kernel's ``tcp_congestion_ops`` touch, read and written by name on
the object it is given (``snd_cwnd``, ``snd_ssthresh``, ``snd_cwnd_cnt``, ``snd_cwnd_clamp``,
``snd_una``, ``snd_nxt``, ``is_cwnd_limited``, ``max_packets_out``). No simulation time source:
callers pass the clock (``now_us`` in microseconds, ``jiffies`` at the kernel's HZ), so a
policy can be driven from a unit test in microseconds.

* :class:`Reno`: ``tcp_reno_cong_avoid`` (slow start per ACKed segment up to ssthresh, then
  +1 segment per cwnd ACKed, ``tcp_cong_avoid_ai``) and ``tcp_reno_ssthresh`` (cwnd/2, ≥ 2).
* :class:`Cubic`: Linux 6.x ``cubictcp_*`` with its integer arithmetic: β = 717/1024,
  C = bic_scale·10/1024 = 410/1024, fast convergence, the TCP-friendly region, at most one
  cwnd recomputation per jiffy, growth capped at 1 segment per 2 ACKed, 5 %/RTT floor in the
  first epoch, the idle shift of ``epoch_start`` (``CA_EVENT_TX_START``), HyStart (ACK train
  and delay detection, from cwnd 16, 8 samples, delay threshold clamp(delay_min/8, 4, 16 ms)).

Scope and limitations: no ``cong_control`` (BBR) and no ECN; the cube root is computed with
the kernel's table-and-Newton routine. ``hystart_ack_delay`` uses the socket's pacing rate
and gso_max_size, as the kernel does.
Validation: tests/models/linux/tcp/test_cong.py (slow start, AI, CUBIC's K and W(t) against
the closed form of RFC 8312 with Linux's constants, HyStart triggers).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Reno", "Cubic", "CONG_OPS", "tcp_slow_start", "tcp_cong_avoid_ai", "tcp_is_cwnd_limited"]

BICTCP_BETA_SCALE = 1024
BICTCP_HZ = 10
HYSTART_ACK_TRAIN = 0x1
HYSTART_DELAY = 0x2
HYSTART_MIN_SAMPLES = 8
HYSTART_DELAY_MIN = 4000
HYSTART_DELAY_MAX = 16000


def tcp_is_cwnd_limited(tp: Any) -> bool:
    """include/net/tcp.h: tcp_is_cwnd_limited()."""
    if tp.is_cwnd_limited:
        return True
    if tp.snd_cwnd < tp.snd_ssthresh:
        return tp.snd_cwnd < 2 * tp.max_packets_out
    return False


def tcp_slow_start(tp: Any, acked: int) -> int:
    """tcp_cong.c: tcp_slow_start(); returns the ACKed segments left over for CA."""
    cwnd = min(tp.snd_cwnd + acked, tp.snd_ssthresh)
    acked -= cwnd - tp.snd_cwnd
    tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
    return acked


def tcp_cong_avoid_ai(tp: Any, w: int, acked: int) -> None:
    """tcp_cong.c: tcp_cong_avoid_ai(): +1 segment per ``w`` segments ACKed."""
    if tp.snd_cwnd_cnt >= w:
        tp.snd_cwnd_cnt = 0
        tp.snd_cwnd += 1
    tp.snd_cwnd_cnt += acked
    if tp.snd_cwnd_cnt >= w:
        delta = tp.snd_cwnd_cnt // w
        tp.snd_cwnd_cnt -= delta * w
        tp.snd_cwnd += delta
    tp.snd_cwnd = min(tp.snd_cwnd, tp.snd_cwnd_clamp)


class Reno:
    """``tcp_reno_congestion_ops``."""

    name = "reno"
    sndbuf_expand = 2

    def init(self, tp: Any, now_us: int) -> None:
        pass

    def ssthresh(self, tp: Any) -> int:
        return max(tp.snd_cwnd >> 1, 2)

    def cong_avoid(self, tp: Any, ack: int, acked: int, jiffies: int, hz: int) -> None:
        if not tcp_is_cwnd_limited(tp):
            return
        if tp.snd_cwnd < tp.snd_ssthresh:
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        tcp_cong_avoid_ai(tp, tp.snd_cwnd, acked)

    def set_state(self, tp: Any, new_state: int, now_us: int) -> None:
        pass

    def cwnd_event_tx_start(self, tp: Any, jiffies: int) -> None:
        pass

    def pkts_acked(self, tp: Any, rtt_us: int, now_us: int, jiffies: int, hz: int) -> None:
        pass

    def undo_cwnd(self, tp: Any) -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)


_CBRT_V = (0, 54, 54, 54, 118, 118, 118, 118, 123, 129, 134, 138, 143, 147, 151, 156,
           157, 161, 164, 168, 170, 173, 176, 179, 181, 185, 187, 190, 192, 194, 197, 199,
           200, 202, 204, 206, 209, 211, 213, 215, 217, 219, 221, 222, 224, 225, 227, 229,
           231, 232, 234, 236, 237, 239, 240, 242, 244, 245, 246, 248, 250, 251, 252, 254)


def cubic_root(a: int) -> int:
    """tcp_cubic.c: cubic_root(): table lookup and one Newton-Raphson step (≈0.2 % error)."""
    b = a.bit_length()
    if b < 7:
        return (_CBRT_V[a] + 35) >> 6
    b = ((b * 84) >> 8) - 1
    shift = a >> (b * 3)
    x = (((_CBRT_V[shift] + 10) << b) & 0xFFFFFFFF) >> 6
    x = 2 * x + a // (x * (x - 1))
    return (x * 341) >> 10


class Cubic:
    """``cubictcp``: CUBIC with HyStart, module parameters at their defaults."""

    name = "cubic"
    sndbuf_expand = 2
    beta = 717
    bic_scale = 41
    fast_convergence = True
    tcp_friendliness = True
    hystart = True
    hystart_detect = HYSTART_ACK_TRAIN | HYSTART_DELAY
    hystart_low_window = 16
    hystart_ack_delta_us = 2000

    # cubictcp_register()
    BETA_SCALE = 8 * (BICTCP_BETA_SCALE + 717) // 3 // (BICTCP_BETA_SCALE - 717)
    CUBE_RTT_SCALE = 41 * 10
    CUBE_FACTOR = (1 << (10 + 3 * BICTCP_HZ)) // (41 * 10)

    def __init__(self) -> None:
        self._reset()
        self.hystart_exits: list[tuple[str, int]] = []

    def _reset(self) -> None:
        self.cnt = 0
        self.last_max_cwnd = 0
        self.last_cwnd = 0
        self.last_time = 0
        self.bic_origin_point = 0
        self.bic_K = 0
        self.delay_min = 0
        self.epoch_start = 0
        self.ack_cnt = 0
        self.tcp_cwnd = 0
        self.sample_cnt = 0
        self.found = 0
        self.round_start = 0
        self.end_seq = 0
        self.last_ack = 0
        self.curr_rtt = 0

    def _hystart_reset(self, tp: Any, now_us: int) -> None:
        self.round_start = self.last_ack = now_us
        self.end_seq = tp.snd_nxt
        self.curr_rtt = 0xFFFFFFFF
        self.sample_cnt = 0

    def init(self, tp: Any, now_us: int) -> None:
        self._reset()
        if self.hystart:
            self._hystart_reset(tp, now_us)

    def cwnd_event_tx_start(self, tp: Any, jiffies: int) -> None:
        """CA_EVENT_TX_START: shift the epoch by the idle time so cwnd stays on the curve."""
        delta = jiffies - tp.lsndtime_j
        if self.epoch_start and delta > 0:
            self.epoch_start += delta
            if self.epoch_start > jiffies:
                self.epoch_start = jiffies

    def _update(self, cwnd: int, acked: int, jiffies: int, hz: int) -> None:
        """bictcp_update()."""
        self.ack_cnt += acked
        if not (self.last_cwnd == cwnd and jiffies - self.last_time <= hz // 32):
            if not (self.epoch_start and jiffies == self.last_time):
                self.last_cwnd = cwnd
                self.last_time = jiffies
                if self.epoch_start == 0:
                    self.epoch_start = jiffies
                    self.ack_cnt = acked
                    self.tcp_cwnd = cwnd
                    if self.last_max_cwnd <= cwnd:
                        self.bic_K = 0
                        self.bic_origin_point = cwnd
                    else:
                        self.bic_K = cubic_root(self.CUBE_FACTOR * (self.last_max_cwnd - cwnd))
                        self.bic_origin_point = self.last_max_cwnd
                # t = jiffies since the epoch + delay_min, in units of 2^-10 s
                t = jiffies - self.epoch_start
                t += -(-self.delay_min * hz // 1000000)          # usecs_to_jiffies() rounds up
                t = (t << BICTCP_HZ) // hz
                offs = self.bic_K - t if t < self.bic_K else t - self.bic_K
                delta = (self.CUBE_RTT_SCALE * offs * offs * offs) >> (10 + 3 * BICTCP_HZ)
                delta &= 0xFFFFFFFF
                if t < self.bic_K:
                    bic_target = (self.bic_origin_point - delta) & 0xFFFFFFFF     # u32, as in C
                else:
                    bic_target = (self.bic_origin_point + delta) & 0xFFFFFFFF
                if bic_target > cwnd:
                    self.cnt = cwnd // (bic_target - cwnd)
                else:
                    self.cnt = 100 * cwnd
                if self.last_max_cwnd == 0 and self.cnt > 20:
                    self.cnt = 20
        else:
            return
        if self.tcp_friendliness:
            delta = (cwnd * self.BETA_SCALE) >> 3
            if delta > 0:
                while self.ack_cnt > delta:
                    self.ack_cnt -= delta
                    self.tcp_cwnd += 1
            if self.tcp_cwnd > cwnd:
                delta = self.tcp_cwnd - cwnd
                max_cnt = cwnd // delta
                if self.cnt > max_cnt:
                    self.cnt = max_cnt
        self.cnt = max(self.cnt, 2)

    def cong_avoid(self, tp: Any, ack: int, acked: int, jiffies: int, hz: int) -> None:
        """cubictcp_cong_avoid()."""
        if not tcp_is_cwnd_limited(tp):
            return
        if tp.snd_cwnd < tp.snd_ssthresh:
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        self._update(tp.snd_cwnd, acked, jiffies, hz)
        tcp_cong_avoid_ai(tp, self.cnt, acked)

    def ssthresh(self, tp: Any) -> int:
        """cubictcp_recalc_ssthresh(): β = 717/1024 with fast convergence."""
        self.epoch_start = 0
        cwnd = tp.snd_cwnd
        if cwnd < self.last_max_cwnd and self.fast_convergence:
            self.last_max_cwnd = (cwnd * (BICTCP_BETA_SCALE + self.beta)) // (2 * BICTCP_BETA_SCALE)
        else:
            self.last_max_cwnd = cwnd
        return max((cwnd * self.beta) // BICTCP_BETA_SCALE, 2)

    def set_state(self, tp: Any, new_state: int, now_us: int) -> None:
        """cubictcp_state(): a timeout (Loss) forgets everything and restarts HyStart."""
        if new_state == 4:
            self._reset()
            self._hystart_reset(tp, now_us)

    def undo_cwnd(self, tp: Any) -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)

    def _hystart_update(self, tp: Any, delay: int, now_us: int) -> None:
        if tp.snd_una > self.end_seq:
            self._hystart_reset(tp, now_us)
        if self.hystart_detect & HYSTART_ACK_TRAIN:
            if now_us - self.last_ack <= self.hystart_ack_delta_us:
                self.last_ack = now_us
                threshold = self.delay_min + self._ack_delay(tp)
                if not tp.paced:
                    threshold >>= 1
                if now_us - self.round_start > threshold:
                    self.found = 1
                    self.hystart_exits.append(("train", tp.snd_cwnd))
                    tp.snd_ssthresh = tp.snd_cwnd
        if self.hystart_detect & HYSTART_DELAY:
            if self.curr_rtt > delay:
                self.curr_rtt = delay
            if self.sample_cnt < HYSTART_MIN_SAMPLES:
                self.sample_cnt += 1
            else:
                thresh = min(max(self.delay_min >> 3, HYSTART_DELAY_MIN), HYSTART_DELAY_MAX)
                if self.curr_rtt > self.delay_min + thresh:
                    self.found = 1
                    self.hystart_exits.append(("delay", tp.snd_cwnd))
                    tp.snd_ssthresh = tp.snd_cwnd

    @staticmethod
    def _ack_delay(tp: Any) -> int:
        """hystart_ack_delay(): min(1 ms, 4 × gso_max_size at the pacing rate)."""
        rate = tp.pacing_rate_Bps
        if not rate:
            return 0
        return min(1000, int(tp.gso_max_size * 4 * 1000000 // rate))

    def pkts_acked(self, tp: Any, rtt_us: int, now_us: int, jiffies: int, hz: int) -> None:
        """cubictcp_acked(): delay_min, then HyStart while in slow start from cwnd 16."""
        if rtt_us < 0:
            return
        if self.epoch_start and jiffies - self.epoch_start < hz:
            return
        delay = rtt_us or 1
        if self.delay_min == 0 or self.delay_min > delay:
            self.delay_min = delay
        if (not self.found and tp.snd_cwnd < tp.snd_ssthresh and self.hystart
                and tp.snd_cwnd >= self.hystart_low_window):
            self._hystart_update(tp, delay, now_us)


CONG_OPS = {"reno": Reno, "cubic": Cubic}
