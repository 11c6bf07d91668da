"""Link impairments (the scenario's ``links[]``: what tbf and netem put on a real link).

Computed here, independently of the model:

* The NICs' own rate is 10 Gbit/s unless the link sets a lower one.
* ``rate``: a frame of L3 length L occupies (max(14 + L, 60) + 24) × 8 / rate seconds;
  datagrams offered faster than that queue, and the queue holds ``queue`` frames (the ring one
  more): the rest are tail-dropped (``QDISC_DROP``).
* ``delay``/``jitter``: a frame arrives delay ± jitter after its serialisation ends, and never
  before the frame sent ahead of it.
* ``loss``: each frame is lost with probability p from a seeded stream: the count is
  binomial, the same for the same seed, different for another seed.
* ``drop``: exactly the listed frame numbers (ARP included: the first frame h1 sends is its
  ARP request) are lost, as ``LINK_LOSS``.
"""

from __future__ import annotations

import math

import pytest

from conftest import run_yaml

PAYLOAD = 1000
L3 = 20 + 8 + PAYLOAD

LINK = """
name: link
seed: {seed}
hosts:
  h1: {{cpus: 1}}
  h2: {{cpus: 1}}
links:
  - {{endpoints: [h1, h2], {link}}}
workloads:
  - {{name: u, app: udp, from: h1, to: h2, port: 9000, count: {count}, payload: {payload},
     interval: {interval}}}
"""


def run_link(link: str, count: int = 200, interval: str = "1ms", seed: int = 1):
    tx: dict[int, float] = {}
    rx: list[tuple[int, float]] = []

    def setup(net):
        for d in net.devices.values():
            if d.ifname != "eth0":
                continue
            if d.ns.name == "h1":
                def cap_tx(t, skb, _d, is_tx):
                    if is_tx and skb.proto == 17:
                        tx[skb.id] = t
                d.capture = cap_tx
            elif d.ns.name == "h2":
                def cap_rx(t, skb, _d, is_tx):
                    if not is_tx and skb.proto == 17:
                        rx.append((skb.id, t))
                d.capture = cap_rx

    res = run_yaml(LINK.format(seed=seed, link=link, count=count, payload=PAYLOAD, interval=interval),
                   setup=setup)
    return res, tx, rx


def wire_s(rate_bps: float) -> float:
    return (max(14 + L3, 60) + 24) * 8 / rate_bps


def test_rate_serialises_and_paces_the_frames():
    res, tx, rx = run_link("rate: 10mbit", count=100, interval="100us")
    ser = wire_s(10e6)
    assert len(rx) == 100 and res.flow("u").lost == 0
    gaps = [b[1] - a[1] for a, b in zip(rx, rx[1:])]
    assert all(g == pytest.approx(ser, rel=1e-9) for g in gaps)        # back to back at 10 Mbit/s


def test_queue_limit_tail_drops():
    # 100 datagrams in 100 µs gaps into a 10 Mbit/s link (830 µs a frame) with room for 10:
    # frame k (from 0) arrives at k × 100 µs; the link has sent ⌊(t − t0) / ser⌋ by then.
    res, _tx, rx = run_link("rate: 10mbit, queue: 10", count=100, interval="100us")
    ser, gap = wire_s(10e6), 100e-6
    queued, kept, sent_until = [], 0, 0.0
    for k in range(100):
        t = k * gap
        queued = [e for e in queued if e > t]          # frames still waiting or on the wire at t
        if len(queued) < 10 + 1:                       # the qdisc's 10 and the one on the ring
            sent_until = max(sent_until, t) + ser
            queued.append(sent_until)
            kept += 1
    assert len(rx) == kept < 100
    assert res.drops["QDISC_DROP"] == 100 - kept


def test_delay_and_jitter_bounds_and_order():
    res, tx, rx = run_link("delay: 2ms, jitter: 500us", count=500, interval="1ms")
    ser = wire_s(10e9)                                                 # the NICs' default rate
    delays = [t - tx[i] - ser for i, t in rx]                          # + the receive CPU's NAPI work
    assert len(delays) == 500
    assert min(delays) >= 1.5e-3 - 1e-9 and max(delays) <= 2.5e-3 + 20e-6
    assert max(delays) - min(delays) > 0.8e-3                         # it does vary
    assert sum(delays) / len(delays) == pytest.approx(2e-3, abs=60e-6)   # uniform around the delay
    order = [i for i, _t in rx]
    assert order == sorted(order, key=lambda i: tx[i])                 # nothing overtakes


def test_jitter_never_reorders_back_to_back_frames():
    _res, tx, rx = run_link("delay: 1ms, jitter: 900us", count=300, interval="20us")
    times = [t for _i, t in rx]
    assert times == sorted(times)
    assert [i for i, _t in rx] == sorted(tx, key=tx.get)


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_random_loss_is_binomial_and_seeded(p):
    # counted among the datagrams that went on the wire (a lost ARP frame holds some back)
    res, tx, rx = run_link(f"loss: {p}", count=2000)
    n = len(tx)
    lost = n - len(rx)
    sd = math.sqrt(n * p * (1 - p))
    assert n > 1000 and abs(lost - n * p) < 4 * sd
    assert res.drops["LINK_LOSS"] >= lost                             # ARP frames may be lost too
    again, tx2, rx2 = run_link(f"loss: {p}", count=2000)
    other, tx3, rx3 = run_link(f"loss: {p}", count=2000, seed=2)
    assert (len(tx2), len(rx2)) == (n, len(rx))
    assert sorted(tx3) != sorted(tx) or sorted(i for i, _ in rx3) != sorted(i for i, _ in rx)


def test_explicit_drop_list():
    # frame 1 is h1's ARP request; datagram k (from 1) is frame k + 1
    res, tx, rx = run_link("drop: [3, 10]", count=20)
    assert res.flow("u").lost == 2
    assert res.drops == {"LINK_LOSS": 2}
    order = sorted(tx, key=tx.get)
    got = {i for i, _t in rx}
    assert [k + 1 for k, i in enumerate(order) if i not in got] == [2, 9]
