"""The receiver's ACK policy (``__tcp_ack_snd_check``, ``tcp_send_delayed_ack``,
``tcp_cleanup_rbuf``) and its SACK blocks, against what Linux 6.18 does.

Expected behaviour, from the kernel and from tcpdump traces on the reference VM:

* Quick-ACK mode at the start of a connection: every data segment is ACKed at once, for
  the first 16 segments (``TCP_MAX_QUICKACKS``; the receive window of 64 KiB allows 16 more
  with an MSS of 1448: min(16, rcv_wnd / (2 × rcv_mss))).
* Then an ACK for every second full-sized segment, at once ("more than one full-sized
  segment unacknowledged"), or for every segment while the receive window is growing
  (``tcp_grow_window`` sets ``icsk_ack.quick |= 1``).
* A request/response client with a think time longer than the delayed-ACK timeout is not in
  interactive (pingpong) mode: it ACKs each response when its read empties the receive queue,
  at once — the pattern tcpdump shows on Linux 6.18 for 1-byte requests every 100 ms (pure ACK
  ≈ 8 µs after each response).
* In interactive mode a small segment that nothing answers is ACKed by the delayed-ACK timer,
  after ``TCP_DELACK_MIN`` = 40 ms.
* After a hole, every out-of-order segment is ACKed at once (a duplicate ACK) with a SACK block
  covering the data above the hole.
"""

from __future__ import annotations

import pytest

from simnet.models.linux.tcp.const import ACK

from conftest import SCENARIOS, run_yaml

MSS = 1448

BULK = """
name: acks
hosts:
  h1: {{cpus: 2, offloads: {{tso: {tso}}}}}
  h2: {{cpus: 2, offloads: {{gro: false}}}}
links:
  - {{endpoints: [h1, h2], rate: 1gbit, delay: 1ms{extra}}}
workloads:
  - {{name: f, app: tcp_bulk, from: h1, to: h2, port: 5001, size: {size}}}
"""


def trace(text: str, ns_filter=None):
    """Every TCP segment each NIC sends and receives: (t, netns, tx, skb fields)."""
    rec = []

    def setup(net):
        for dev in net.devices.values():
            if dev.kind == "nic" or dev.ifname == "eth0":
                def cap(t, skb, d, tx):
                    if skb.proto == 6:
                        rec.append((t, d.ns.name, tx, skb.tcp_flags, skb.seq, skb.ack_seq,
                                    skb.l3_len - 20 - skb.tcp_hlen, skb.sack))
                dev.capture = cap
    res = run_yaml(text, setup=setup)
    return res, rec


def test_quick_acks_then_every_second_full_segment():
    res, rec = trace(BULK.format(extra="", size="2MB", tso="true"))
    arrivals = [r for r in rec if r[1] == "h2" and not r[2] and r[6] > 0]
    acks = [r for r in rec if r[1] == "h2" and r[2] and r[6] == 0 and r[3] & ACK]
    isn = arrivals[0][4] - 1
    # which data segment (by its end) each ACK acknowledges, and how many segments it covers
    covered = []
    prev = 1
    for a in acks[1:]:                  # acks[0] is the handshake's
        rel = a[5] - isn
        if rel > prev:
            covered.append((rel - prev) // MSS if (rel - prev) % MSS == 0 else (rel - prev) / MSS)
            prev = rel
    assert covered[:16] == [1] * 16                                   # quick-ACK mode
    # then every second segment, but while the receive window grows (tcp_grow_window sets
    # icsk_ack.quick |= 1) every segment; never more than two: no ACK is delayed
    later = covered[16:-1]
    assert set(later) == {1, 2} and later.count(2) >= 0.8 * len(later)
    # and at once: each ACK leaves within CPU time (µs) of the segment that completes it
    arrive_by_end = {r[4] - isn + r[6]: r[0] for r in arrivals}
    delays = [a[0] - arrive_by_end[a[5] - isn] for a in acks[1:] if a[5] - isn in arrive_by_end]
    assert max(delays) < 20e-6
    assert res.counters["h2"]["snmp"]["TcpExt"]["DelayedACKs"] == 0


def test_request_response_with_think_time_acks_each_response_at_once():
    text = """
    name: rrslow
    containers:
      client: {}
      server: {}
    workloads:
      - {name: rr, app: tcp_rr, from: client, to: server, port: 5001, count: 12, request: 1, response: 1,
         interval: 100ms}
    """
    res, rec = trace(text)
    cl = [r for r in rec if r[1] == "client"]
    responses = [r for r in cl if not r[2] and r[6] == 1]
    pure_acks = [r for r in cl if r[2] and r[6] == 0 and r[3] == ACK]
    assert len(responses) == 12
    for resp in responses:
        ack = next(a for a in pure_acks if a[0] >= resp[0])
        assert ack[5] == resp[4] + 1 and ack[0] - resp[0] < 20e-6
    assert res.counters["client"]["snmp"]["TcpExt"]["DelayedACKs"] == 0


def test_delayed_ack_timer_is_40ms_in_interactive_mode():
    res, rec = trace((SCENARIOS / "nagle-delack.yaml").read_text())
    srv = [r for r in rec if r[1] == "server" and r[0] < 0.9]         # the Nagle flow
    # how long each request segment waited for the server's ACK (pure or on the response)
    waits = []
    for r in srv:
        if not r[2] and r[6] > 0:
            ack = next(a for a in srv if a[2] and a[0] >= r[0] and a[5] >= r[4] + r[6])
            waits.append(ack[0] - r[0])
    assert len(waits) == 40                                           # 20 requests in two writes
    slow = [w for w in waits if w > 1e-3]
    # the first write of every request but the first (quick-ACK mode) waits for the timer; the
    # second is ACKed at once (two small segments in a row: ICSK_ACK_PUSHED2)
    assert len(slow) == 19
    assert all(w == pytest.approx(0.040, abs=50e-6) for w in slow)
    assert max(w for w in waits if w <= 1e-3) < 20e-6
    assert res.counters["server"]["snmp"]["TcpExt"]["DelayedACKs"] == 19


def test_out_of_order_segments_get_duplicate_acks_with_sack_blocks():
    # h1's 10th frame is lost (after its ARP request, the SYN and the handshake's ACK: a data
    # segment); TSO off, so that the capture shows the frames as they go on the wire
    res, rec = trace(BULK.format(extra=", drop: [10]", size="200KB", tso="false"))
    sent = [r for r in rec if r[1] == "h1" and r[2] and r[6] > 0]
    h2_rx = [r for r in rec if r[1] == "h2" and not r[2] and r[6] > 0]
    lost = sent[6]                     # frames 1-3: ARP request, SYN, ACK; then data from frame 4
    assert [r[4] for r in sent].count(lost[4]) == 2                   # sent again
    assert [r[4] for r in h2_rx].count(lost[4]) == 1                  # arrived once
    hole_end = lost[4] + lost[6]
    acks = [r for r in rec if r[1] == "h2" and r[2] and r[6] == 0]
    dup = [a for a in acks if a[5] == lost[4]]
    assert len(dup) >= 3                                              # duplicate ACKs at the hole
    for a in dup[1:]:
        assert a[7] and a[7][0][0] == hole_end                        # SACK: from the hole's end up
    # each dup ACK goes out at once, SACKing up to the segment that just arrived
    after = [r for r in h2_rx if r[4] >= hole_end and r[0] < dup[-1][0]]
    for a, r in zip(dup[1:], after):
        assert a[7][0][1] == r[4] + r[6]
    assert res.flow("f").retransmits == 1
