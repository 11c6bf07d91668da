"""Slow start and loss recovery, against computations made here from the packets.

* Slow start (Reno, no loss, no receive-window limit): Linux adds the number of segments
  each ACK acknowledges to cwnd (``tcp_slow_start``), so over a round trip cwnd doubles
  whatever the ACK pattern; the test reads the ACK numbers the receiver sent, derives the
  segments each acknowledged, and compares cwnd after every ACK with 10 + their sum. The
  receiver ACKs the first 16 segments one by one (quick-ACK mode), later every second
  full-sized segment (delayed ACKs) except while its window is growing.
* One segment lost mid-stream: the segments after it are SACKed, RACK marks it lost once three
  are, it is retransmitted once (fast retransmit), no timeout.
* The last segment lost: nothing follows it, so only the retransmission timer recovers it, at
  (the arrival of the last ACK) + RTO, RTO = srtt + max(4·mdev, 200 ms) rounded up to 4 ms
  jiffies: with a steady 10 ms RTT, 212 ms.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

import simnet

from conftest import SCENARIOS, run_yaml

MSS = 1448

SLOW_START = """
name: ss
hosts:
  h1: {cpus: 2}
  h2: {cpus: 2, offloads: {gro: false}}
links:
  - {endpoints: [h1, h2], delay: 10ms}
workloads:
  - {name: f, app: tcp_bulk, from: h1, to: h2, port: 5001, size: 8MB, congestion: reno}
"""


def test_slow_start_follows_the_acks():
    acks = []

    def setup(net):
        def on(ev):
            if ev.flow == 0 and ev.sock.lport != 5001:
                acks.append((ev.t_s, ev.ack, ev.cwnd, ev.in_flight))
        net.ctx.tracer.on("tcp.ack", on)

    res = run_yaml(SLOW_START, setup=setup)
    assert res.flow("f").retransmits == 0
    data = [a for a in acks if a[1] > 1]
    prev_ack = 1
    segs_per_ack = []
    exact = 0
    cwnd_prev = 10
    for t, ack, cwnd, _inflight in data:
        k = math.ceil((ack - prev_ack) / MSS)
        segs_per_ack.append(k)
        if cwnd == cwnd_prev + k:
            exact += 1
        assert cwnd <= cwnd_prev + k
        cwnd_prev, prev_ack = cwnd, ack
    assert exact >= 0.95 * len(data)
    assert segs_per_ack[:16] == [1] * 16                          # quick-ACK mode
    assert segs_per_ack.count(2) > 100                            # then delayed ACKs, every 2nd segment
    # per round trip (20 ms), cwnd doubles while the window is not limiting
    rounds = defaultdict(list)
    for t, ack, cwnd, inflight in data:
        rounds[round(t / 0.02)].append(cwnd)
    ends = [v[-1] for _k, v in sorted(rounds.items())]
    assert ends[:6] == [20, 40, 80, pytest.approx(160, abs=2), pytest.approx(320, abs=4), pytest.approx(640, abs=8)]


def test_one_loss_mid_stream_is_one_fast_retransmission():
    res = simnet.run(SCENARIOS / "loss-recovery.yaml")
    a1 = res.counters["a1"]["snmp"]
    assert a1["Tcp"]["RetransSegs"] == 1
    assert a1["TcpExt"]["TCPFastRetrans"] == 1 and a1["TcpExt"]["TCPSackRecovery"] == 1
    assert a1["TcpExt"]["TCPTimeouts"] == 0
    assert res.flow("mid").retransmits == 1 and res.flow("mid").bytes_delivered == 2_000_000
    layers = {r["layer"] for r in res.flow("mid").breakdown()}
    assert "tcp:reassembly" in layers          # writes behind the hole waited for the retransmission


def test_tail_loss_waits_for_the_rto():
    seen = defaultdict(list)

    def setup(net):
        for d in net.devices.values():
            if d.ns.name == "b1" and d.ifname == "eth0":
                def cap(t, skb, _d, tx):
                    if skb.proto == 6:
                        seen["tx" if tx else "rx"].append((t, skb.seq, skb.ack_seq, skb.l3_len - 20 - skb.tcp_hlen))
                d.capture = cap

    res = simnet.run(SCENARIOS / "loss-recovery.yaml", setup=setup)
    b1 = res.counters["b1"]["snmp"]
    assert b1["Tcp"]["RetransSegs"] == 1 and b1["TcpExt"]["TCPTimeouts"] == 1
    assert b1["TcpExt"]["TCPFastRetrans"] == 0
    data = [x for x in seen["tx"] if x[3] > 0]
    sent_upto = 0
    rtx = None
    for t, seq, _ack, n in data:                                   # captured as sent: TSO super-segments
        if seq < sent_upto:
            rtx = (t, seq, n)
            break
        sent_upto = seq + n
    assert rtx is not None and rtx[1] + rtx[2] == sent_upto       # the last segment, sent again
    last_ack = max(t for t, _s, _a, _n in seen["rx"] if t < rtx[0])
    rtt = 2 * 5e-3
    rto = math.ceil((rtt + 0.2) / 0.004) * 0.004                   # srtt + 200 ms in 4 ms jiffies
    assert rto == pytest.approx(0.212)
    assert rtx[0] - last_ack == pytest.approx(rto, abs=50e-6)
    assert res.flow("tail").bytes_delivered == 2_000_000
