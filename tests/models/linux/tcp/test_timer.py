"""RTT estimator, RTO and the lazy timer (models/linux/tcp/timer.py).

The expected values are RFC 6298's estimator with Linux's modifications, computed here in
floating point: the first sample m gives srtt = m, rttvar = max(2m, rto_min) and RTO =
srtt + rttvar (so max(3m, m + 200 ms)); the RTO is rounded up to whole jiffies at HZ = 250,
which is why `ss` shows rto:204 on a LAN.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simnet.kernel import SimContext
from simnet.models.linux.tcp.timer import LazyTimer, rto_from, rtt_estimator, usecs_to_jiffies

HZ = 250


def est(rto_min_us=200000):
    return SimpleNamespace(srtt_us=0, mdev_us=0, mdev_max_us=0, rttvar_us=0, rtt_seq=0, snd_una=0, snd_nxt=0,
                           rto_min_us=rto_min_us)


def test_usecs_to_jiffies_rounds_up():
    assert usecs_to_jiffies(1, HZ) == 1 and usecs_to_jiffies(4000, HZ) == 1 and usecs_to_jiffies(4001, HZ) == 2


@pytest.mark.parametrize("rtt_us,rto_ms", [(50, 204), (10000, 212), (100000, 300), (150000, 452)])
def test_first_sample(rtt_us, rto_ms):
    t = est()
    rtt_estimator(t, rtt_us)
    assert t.srtt_us >> 3 == rtt_us
    want_us = rtt_us + max(2 * rtt_us, 200000)
    assert rto_from(t, HZ, 120.0) == pytest.approx(-(-want_us // 4000) * 4000 / 1e6)
    assert rto_from(t, HZ, 120.0) == pytest.approx(rto_ms / 1000)


def test_steady_lan_rtt_gives_204_ms():
    t = est()
    for i in range(200):
        t.snd_una = i * 10
        t.snd_nxt = i * 10 + 10
        rtt_estimator(t, 50)
    assert t.srtt_us >> 3 == 50
    assert t.rttvar_us == 200000                 # never below rto_min
    assert rto_from(t, HZ, 120.0) == pytest.approx(0.204)


def test_smoothing_gain_is_one_eighth():
    t = est()
    rtt_estimator(t, 10000)
    rtt_estimator(t, 18000)
    assert t.srtt_us / 8 == pytest.approx(10000 + (18000 - 10000) / 8)


def test_rto_is_capped():
    t = est()
    rtt_estimator(t, 100_000_000)
    assert rto_from(t, HZ, 120.0) == 120.0


def test_lazy_timer_fires_once_at_the_latest_deadline():
    ctx = SimContext(1)
    fired = []
    tm = LazyTimer(ctx, lambda: fired.append(ctx.env.now))
    tm.mod(1.0)
    for k in range(50):                          # re-armed later and later: no new events needed
        ctx.call_at(0.01 * k, lambda _a, k=k: tm.mod(1.0 + 0.01 * k))
    ctx.env.run(until=5)
    assert fired == [pytest.approx(1.49)]
    tm.mod(6.0)
    tm.mod(5.5)                                  # earlier: a new event
    ctx.env.run(until=7)
    assert fired[-1] == pytest.approx(5.5) and len(fired) == 2
    tm.mod(8.0)
    tm.cancel()
    ctx.env.run(until=9)
    assert len(fired) == 2
