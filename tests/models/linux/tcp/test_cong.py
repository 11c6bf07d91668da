"""Congestion control as pure policy (models/linux/tcp/cong.py), driven without a simulator.

Expectations come from the algorithms' definitions, computed here: Reno's slow start and
+1-per-window growth (RFC 5681 with Linux's ACKed-segment counting), CUBIC's window after a
loss, W(t) = C·(t − K)³ + W_max with K = ∛(W_max·(1 − β)/C) (RFC 8312) using Linux's
constants β = 717/1024 and C = 410/1024, and HyStart's delay threshold.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from simnet.models.linux.tcp.cong import CONG_OPS, Cubic, Reno, cubic_root, tcp_cong_avoid_ai, tcp_slow_start

INF = 0x7FFFFFFF
HZ = 250


def tp(cwnd=10, ssthresh=INF, **kw):
    d = dict(snd_cwnd=cwnd, snd_ssthresh=ssthresh, snd_cwnd_cnt=0, snd_cwnd_clamp=0xFFFFFFFF, is_cwnd_limited=True,
             max_packets_out=cwnd, snd_una=0, snd_nxt=0, prior_cwnd=cwnd, lsndtime_j=0, paced=False,
             pacing_rate_Bps=0, gso_max_size=65279)
    d.update(kw)
    return SimpleNamespace(**d)


def test_registry_has_linux_names():
    assert set(CONG_OPS) == {"reno", "cubic"}


def test_slow_start_adds_acked_segments_and_caps_at_ssthresh():
    t = tp(10, ssthresh=15)
    left = tcp_slow_start(t, 8)
    assert t.snd_cwnd == 15 and left == 3


def test_reno_doubles_per_window_in_slow_start_then_one_per_window():
    t = tp(10, ssthresh=40)
    r = Reno()
    for _ in range(10):                       # one window of ACKs, one segment each
        r.cong_avoid(t, 0, 1, 0, HZ)
    assert t.snd_cwnd == 20
    t = tp(40, ssthresh=40)
    for _ in range(40):                       # congestion avoidance: +1 per cwnd ACKed
        r.cong_avoid(t, 0, 1, 0, HZ)
    assert t.snd_cwnd == 41
    assert r.ssthresh(tp(41)) == 20 and r.ssthresh(tp(3)) == 2


def test_no_growth_when_not_cwnd_limited():
    t = tp(20, is_cwnd_limited=False, max_packets_out=5)
    Reno().cong_avoid(t, 0, 5, 0, HZ)
    assert t.snd_cwnd == 20


def test_cong_avoid_ai_carries_credit():
    t = tp(10)
    tcp_cong_avoid_ai(t, 10, 25)
    assert t.snd_cwnd == 12 and t.snd_cwnd_cnt == 5


def test_cubic_root_is_within_linux_tolerance():
    for a in (1, 8, 27, 1000, 12345, 10 ** 9, 2 ** 40):
        assert abs(cubic_root(a) - a ** (1 / 3)) <= max(1.0, 0.01 * a ** (1 / 3))


def test_cubic_beta_and_fast_convergence():
    c = Cubic()
    t = tp(1000)
    assert c.ssthresh(t) == 1000 * 717 // 1024 == 700
    assert c.last_max_cwnd == 1000
    t.snd_cwnd = 800                          # lost again below the previous maximum
    c.ssthresh(t)
    assert c.last_max_cwnd == 800 * (1024 + 717) // 2048      # (1 + β)/2


def test_cubic_window_follows_the_cubic_curve():
    """After a loss at W_max, cwnd(t) tracks C(t − K)³ + W_max (RFC 8312, Linux's C and β)."""
    wmax = 1000
    c = Cubic()
    t = tp(wmax, ssthresh=0)
    t.snd_cwnd = c.ssthresh(t)               # 700: the window after the reduction
    t.snd_ssthresh = t.snd_cwnd
    c.tcp_friendliness = False
    C, beta = 410 / 1024, 717 / 1024
    K = (wmax * (1 - beta) / C) ** (1 / 3)   # seconds
    rtt_s = 0.01
    c.delay_min = int(rtt_s * 1e6)
    samples = {}
    j = 1000                                  # jiffies at the start of the epoch
    for step in range(int(2 * K / rtt_s)):
        now_j = j + round(step * rtt_s * HZ)
        for _ in range(t.snd_cwnd):          # one window of ACKs per RTT
            c.cong_avoid(t, 0, 1, now_j, HZ)
        samples[step * rtt_s] = t.snd_cwnd
    for ts, w in samples.items():
        if ts < 0.2 * K:
            continue
        want = C * (ts + rtt_s - K) ** 3 + wmax      # the epoch counts delay_min as elapsed
        assert w == pytest.approx(want, rel=0.04, abs=3), ts
    assert max(samples.values()) > wmax       # beyond K it probes above the old maximum


def test_cubic_first_epoch_grows_at_least_five_percent_per_rtt():
    c = Cubic()
    t = tp(100, ssthresh=100)
    c.delay_min = 10000
    j = 0
    for rtt in range(10):
        start = t.snd_cwnd
        for _ in range(start):
            c.cong_avoid(t, 0, 1, j, HZ)
        assert t.snd_cwnd >= start * 1.045
        j += 3


def test_hystart_delay_exit():
    """Slow start ends once a round's minimum RTT exceeds delay_min + clamp(delay_min/8, 4, 16 ms)."""
    c = Cubic()
    t = tp(32)
    c.init(t, 0)
    c.hystart_detect = 2                      # delay detection only
    for i in range(20):
        c.pkts_acked(t, 20000, 1000 * i, 0, HZ)   # 20 ms, the baseline
    assert c.delay_min == 20000 and not c.found
    t.snd_una = t.snd_nxt = 1
    c._hystart_reset(t, 50000)
    for i in range(8):
        c.pkts_acked(t, 20000 + 4000, 60000 + i, 0, HZ)    # 4 ms above: not more than the threshold
    c.pkts_acked(t, 24000, 60100, 0, HZ)
    assert not c.found                        # threshold is max(20/8, 4) = 4 ms: needs more than that
    c._hystart_reset(t, 70000)
    for i in range(9):
        c.pkts_acked(t, 24001, 70000 + i, 0, HZ)
    assert c.found and t.snd_ssthresh == t.snd_cwnd == 32


def test_hystart_waits_for_cwnd_16():
    c = Cubic()
    t = tp(10)
    c.init(t, 0)
    for i in range(30):
        c.pkts_acked(t, 10000 + 1000 * i, i, 0, HZ)
    assert not c.found and t.snd_ssthresh == INF


def test_cubic_loss_state_resets():
    c = Cubic()
    t = tp(500)
    c.ssthresh(t)
    c.set_state(t, 4, 0)
    assert c.last_max_cwnd == 0 and c.epoch_start == 0
    assert math.isclose(Cubic.BETA_SCALE, 8 * (1024 + 717) // 3 // (1024 - 717))
