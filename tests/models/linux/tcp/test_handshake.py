"""Connection setup and teardown: options, timing, resets, SYN retransmissions, counters.

Expected values: Linux 6.18's SYN options at MTU 1500 (MSS 1460, window 64240 = 65536
rounded down to whole 1460-byte segments, SACK-permitted, timestamps, window scale 10 from
tcp_rmem[2] = 32 MiB), the SYN-ACK's window 65160 (45 × 1448) — both as observed with
tcpdump on the reference VM — and timings computed here from the link's delay and rate.
"""

from __future__ import annotations

import pytest

from simnet.models.linux.tcp.const import ACK, SYN

from conftest import run_yaml

TWO_HOSTS = """
name: hs
hosts:
  h1: {{cpus: 2}}
  h2: {{cpus: 2}}
links:
  - {{endpoints: [h1, h2], rate: 1gbit, delay: {delay}{extra}}}
sysctls: {{net.ipv4.tcp_syn_retries: 2}}
workloads:
  - {{name: warm, app: udp, from: h1, to: h2, port: 9, count: 1, payload: 10}}
  - {{name: f, app: tcp_bulk, from: h1, to: h2, port: 5001, size: {size}, start: 100ms{opts}}}
"""


def capture_tcp(net_holder):
    """A setup hook recording every TCP segment a NIC puts on the wire: (time, netns, skb fields)."""
    rec = []

    def setup(net):
        for dev in net.devices.values():
            if dev.kind == "nic":
                def cap(t, skb, d, tx, rec=rec):
                    if tx and skb.proto == 6:
                        rec.append((t, d.ns.name, skb.tcp_flags, skb.seq, skb.ack_seq, skb.window, skb.syn_opts,
                                    skb.l3_len - 20 - skb.tcp_hlen))
                dev.capture = cap
        net_holder.append(net)
    return rec, setup


def test_syn_options_and_windows():
    holder = []
    rec, setup = capture_tcp(holder)
    run_yaml(TWO_HOSTS.format(delay="1ms", extra="", size=1000, opts=""), setup=setup)
    syn = next(r for r in rec if r[2] == SYN)
    synack = next(r for r in rec if r[2] == SYN | ACK)
    mss, sack_ok, ts_ok, wscale, optlen = syn[6]
    assert (mss, sack_ok, ts_ok, wscale, optlen) == (1460, True, True, 10, 20)
    assert syn[5] == 64240                       # rounddown(65536, 1460)
    assert synack[6][:4] == (1460, True, True, 10) and synack[5] == 65160   # 45 × 1448
    data = [r for r in rec if r[7] > 0]
    assert max(r[7] for r in data) <= 1448       # MSS 1460 − 12 bytes of timestamps


def test_connect_returns_after_one_round_trip():
    res = run_yaml(TWO_HOSTS.format(delay="1ms", extra="", size=1000, opts=""))
    f = res.flow("f")
    # one RTT: the SYN (74-byte frame) and the SYN-ACK each take 1 ms of propagation plus their
    # serialisation at 1 Gbit/s ((74 + 24) × 8 ns); the rest is the stack's CPU time (µs)
    rtt = 2 * 1e-3 + 2 * (74 + 24) * 8 / 1e9
    dt = f.tcp["established_s"] - f.tcp["connect_s"]
    assert rtt < dt < rtt + 30e-6


def test_rst_for_a_closed_port():
    res = run_yaml(TWO_HOSTS.format(delay="1ms", extra="", size=1000, opts=", listen: false"))
    h1, h2 = res.counters["h1"]["snmp"]["Tcp"], res.counters["h2"]["snmp"]["Tcp"]
    assert h2["OutRsts"] == 1 and h2["PassiveOpens"] == 0
    assert h1["ActiveOpens"] == 1 and h1["AttemptFails"] == 1 and h1["CurrEstab"] == 0
    f = res.flow("f")
    assert f.send_errors == 1 and res.drops.get("NO_SOCKET") == 1


def test_syn_retransmissions_follow_linux_schedule():
    """SYN lost: RTO 1 s, kept at 1 s for tcp_syn_linear_timeouts (4) retransmissions, then doubling."""
    holder = []
    rec, setup = capture_tcp(holder)
    # frame 1 is the UDP warm-up datagram's ARP request, 2 the datagram, then SYNs
    extra = ", drop: [3, 4, 5, 6, 7, 8]"
    res = run_yaml(TWO_HOSTS.format(delay="1ms", extra=extra, size=1000, opts=""), setup=setup)
    syns = [r[0] for r in rec if r[2] == SYN]
    gaps = [round(b - a, 6) for a, b in zip(syns, syns[1:])]
    assert gaps == [1.0, 1.0, 1.0, 1.0, 1.0, 2.0]
    h1 = res.counters["h1"]["snmp"]
    assert h1["Tcp"]["RetransSegs"] == 6 and h1["TcpExt"]["TCPSynRetrans"] == 6
    f = res.flow("f")
    assert f.packets_delivered == 1
    assert f.tcp["established_s"] == pytest.approx(syns[-1] + 2e-3, abs=50e-6)


def test_connect_gives_up_after_syn_retries_plus_linear_timeouts():
    holder = []
    rec, setup = capture_tcp(holder)
    extra = ", drop: [" + ", ".join(str(i) for i in range(3, 20)) + "]"
    res = run_yaml(TWO_HOSTS.format(delay="1ms", extra=extra, size=1000, opts=""), setup=setup)
    syns = [r[0] for r in rec if r[2] == SYN]
    # tcp_syn_retries = 2 (set above) + 4 linear: 6 retransmissions at 1,2,3,4,5,7 s, failure at 11 s
    assert len(syns) == 7
    f = res.flow("f")
    assert f.send_errors == 1 and f.packets_delivered == 0
    assert res.counters["h1"]["snmp"]["Tcp"]["AttemptFails"] == 1
    assert f.tcp["client"]["tcpi_state"] == "CLOSE"


def test_fin_close_and_counters():
    res = run_yaml(TWO_HOSTS.format(delay="1ms", extra="", size="100KB", opts=""))
    h1, h2 = res.counters["h1"]["snmp"]["Tcp"], res.counters["h2"]["snmp"]["Tcp"]
    assert h1["ActiveOpens"] == 1 and h2["PassiveOpens"] == 1
    assert h1["CurrEstab"] == 0 and h2["CurrEstab"] == 0 and h1["EstabResets"] == 0
    assert h1["InSegs"] == h2["OutSegs"] and h2["InSegs"] <= h1["OutSegs"]   # GRO counts merged skbs once
    f = res.flow("f")
    assert f.tcp["client"]["tcpi_state"] == "TIME_WAIT" and f.tcp["server"]["tcpi_state"] == "CLOSE"
    assert f.bytes_delivered == 100000 and res.ledger["in_flight"] == 0
