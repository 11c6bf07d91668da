"""TCP timers and the RTT estimator: net/ipv4/tcp_timer.c, tcp_input.c (``tcp_rtt_estimator``,
``tcp_set_rto``), tcp_output.c (``tcp_send_delayed_ack``).

* RTT estimator (RFC 6298 as Linux does it, in integer microseconds with the kernel's scaling:
  ``srtt_us`` is 8 × srtt, ``mdev_us`` 4 × mean deviation): the first sample sets
  srtt = m, rttvar = max(2m, rto_min); later samples move srtt by 1/8 and mdev by 1/4 (1/32
  when the RTT falls: the Eifel-like damping), and ``rttvar`` follows the largest mdev of
  each window of data, never below ``tcp_rto_min``. **RTO = srtt + rttvar**, rounded *up* to
  jiffies (``usecs_to_jiffies``; HZ = 250, so a LAN RTO is 204 ms, as ``ss`` shows), bounded
  by ``tcp_rto_max``; 1 s (``TCP_TIMEOUT_INIT``) before the first sample.
* :class:`LazyTimer`: a kernel timer (``sk_reset_timer``) that costs one simulator event per
  *expiry* rather than per re-arm. TCP re-arms its retransmission timer on every ACK; moving
  the deadline later only records it, and the pending event re-schedules itself when it
  comes due early.

Scope and limitations: timers fire at exact times (no jiffy phase, no timer-wheel slack:
Linux's delayed-ACK timer of 40 ms fires 40–48 ms after it is armed on an HZ=250 kernel);
the windowed min-RTT filter keeps the minimum of the whole connection (runs are far shorter
than its 300 s window).
Validation: tests/models/linux/tcp/test_timer.py (estimator against hand-computed kernel
arithmetic; the 204 ms LAN RTO), the loss-recovery scenario (RTO time of a tail loss).
"""

from __future__ import annotations

from typing import Any, Callable

from simnet.kernel import Call

__all__ = ["LazyTimer", "rtt_estimator", "usecs_to_jiffies", "rto_from"]


def usecs_to_jiffies(us: int, hz: int) -> int:
    """include/linux/jiffies.h: rounds up."""
    return -(-us * hz // 1000000)


def rtt_estimator(tp: Any, mrtt_us: int) -> None:
    """tcp_input.c: tcp_rtt_estimator() on ``tp.srtt_us`` (×8), ``mdev_us`` (×4), ``rttvar_us``."""
    m = mrtt_us
    srtt = tp.srtt_us
    rto_min_us = tp.rto_min_us
    if srtt != 0:
        m -= srtt >> 3
        srtt += m
        if m < 0:
            m = -m
            m -= tp.mdev_us >> 2
            if m > 0:
                m >>= 3
        else:
            m -= tp.mdev_us >> 2
        tp.mdev_us += m
        if tp.mdev_us > tp.mdev_max_us:
            tp.mdev_max_us = tp.mdev_us
            if tp.mdev_max_us > tp.rttvar_us:
                tp.rttvar_us = tp.mdev_max_us
        if tp.snd_una > tp.rtt_seq:
            if tp.mdev_max_us < tp.rttvar_us:
                tp.rttvar_us -= (tp.rttvar_us - tp.mdev_max_us) >> 2
            tp.rtt_seq = tp.snd_nxt
            tp.mdev_max_us = rto_min_us
    else:
        srtt = m << 3
        tp.mdev_us = m << 1
        tp.rttvar_us = max(tp.mdev_us, rto_min_us)
        tp.mdev_max_us = tp.rttvar_us
        tp.rtt_seq = tp.snd_nxt
    tp.srtt_us = max(1, srtt)


def rto_from(tp: Any, hz: int, rto_max_s: float) -> float:
    """__tcp_set_rto() + tcp_bound_rto(): srtt + rttvar in whole jiffies, in seconds."""
    j = usecs_to_jiffies((tp.srtt_us >> 3) + tp.rttvar_us, hz)
    return min(j / hz, rto_max_s)


class LazyTimer:
    """A re-armable timer with at most one live simulator event (see the module docstring)."""

    __slots__ = ("ctx", "fn", "expires_s", "_event_at", "_tok")

    def __init__(self, ctx: Any, fn: Callable[[], None]) -> None:
        self.ctx = ctx
        self.fn = fn
        self.expires_s: float | None = None     # the deadline, None when not armed
        self._event_at = -1.0                   # when the live event comes due (-1: none)
        self._tok = 0

    @property
    def pending(self) -> bool:
        return self.expires_s is not None

    def mod(self, t_s: float) -> None:
        """sk_reset_timer(): (re)arm for absolute time ``t_s``."""
        self.expires_s = t_s
        if self._event_at < 0.0 or self._event_at > t_s:
            self._schedule(t_s)

    def _schedule(self, t_s: float) -> None:
        self._tok += 1
        self._event_at = t_s
        env = self.ctx.env
        d = t_s - env._now
        env.schedule(Call(env, self._due, self._tok), 0, d if d > 0.0 else 0.0)

    def cancel(self) -> None:
        self.expires_s = None

    def _due(self, tok: int) -> None:
        if tok != self._tok:              # superseded by an earlier event
            return
        self._event_at = -1.0
        exp = self.expires_s
        if exp is None:
            return
        if exp > self.ctx.env._now:
            self._schedule(exp)
            return
        self.expires_s = None
        self.fn()
