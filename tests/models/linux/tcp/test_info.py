"""TCP_INFO as simnet reports it (tcp.json), against values computed here.

The kernel's definitions (net/ipv4/tcp.c ``tcp_get_info``, ``__tcp_transmit_skb``,
``tcp_segs_in``): ``tcpi_segs_out``/``tcpi_segs_in`` count segments (a TSO or GRO skb counts
its segments), ACKs included; ``tcpi_data_segs_*`` only those carrying payload;
``tcpi_bytes_sent`` counts payload sent including retransmissions, ``tcpi_bytes_retrans`` the
retransmitted part, ``tcpi_bytes_acked`` the bytes ACKed (+1 for the SYN, +1 for the FIN),
``tcpi_total_retrans`` retransmitted segments; a passive child's counts start with the SYN
in ``segs_in`` and leave its SYN-ACKs out (the request sock sent them); times in µs; ``tcpi_options`` = SACK (2) |
timestamps (1) | window scaling (4).
"""

from __future__ import annotations

import math

import pytest

from conftest import run_yaml

MSS = 1448
SIZE = 3_000_000

TWO = """
name: info
hosts:
  h1: {{cpus: 2, offloads: {{tso: false}}}}
  h2: {{cpus: 2, offloads: {{gro: false}}}}
links:
  - {{endpoints: [h1, h2], rate: 1gbit, delay: 5ms{extra}}}
workloads:
  - {{name: f, app: tcp_bulk, from: h1, to: h2, port: 5001, size: {size}}}
"""


@pytest.fixture(scope="module")
def lossy():
    return run_yaml(TWO.format(extra=", drop: [20]", size=SIZE))


def test_connection_fields(lossy):
    c, s = lossy.flow("f").tcp["client"], lossy.flow("f").tcp["server"]
    for i in (c, s):
        assert i["tcpi_options"] == 1 | 2 | 4
        assert i["tcpi_snd_wscale"] == i["tcpi_rcv_wscale"] == 10
        assert i["tcpi_snd_mss"] == i["tcpi_advmss"] == MSS and i["tcpi_pmtu"] == 1500
        assert i["tcpi_ca_name"] == "cubic"
    assert c["tcpi_state"] == "TIME_WAIT" and s["tcpi_state"] == "CLOSE"    # the client closed first
    assert s["tcpi_rcv_mss"] == MSS


def test_counts_follow_from_the_transfer(lossy):
    c, s = lossy.flow("f").tcp["client"], lossy.flow("f").tcp["server"]
    segs = math.ceil(SIZE / MSS)
    assert c["tcpi_total_retrans"] == 1 and c["tcpi_bytes_retrans"] == MSS
    assert c["tcpi_bytes_sent"] == SIZE + MSS                          # the retransmission included
    assert c["tcpi_data_segs_out"] == segs + 1                         # TSO off: one skb per segment
    assert s["tcpi_data_segs_in"] == segs                              # the lost one arrived once
    assert s["tcpi_bytes_received"] == SIZE + 1                         # and the FIN (tcp_rcv_nxt_update)
    assert c["tcpi_bytes_acked"] == SIZE + 2                           # SYN and FIN
    # every segment one side sent, the other received (nothing else was lost)
    assert c["tcpi_segs_out"] == s["tcpi_segs_in"] + 1
    assert s["tcpi_segs_out"] + 1 == c["tcpi_segs_in"]                # + the SYN-ACK (the request sock's)
    # the client's segments without payload: the SYN, the handshake's ACK and the ACK of the
    # server's FIN (its own FIN rides on the last data segment: close() found it unsent and
    # tcp_send_fin merged the FIN into it)
    assert c["tcpi_segs_out"] - c["tcpi_data_segs_out"] == 3
    tcp = lossy.counters["h1"]["snmp"]["Tcp"]
    assert tcp["RetransSegs"] == c["tcpi_total_retrans"]
    assert tcp["OutSegs"] + tcp["RetransSegs"] == c["tcpi_segs_out"]


def test_rtt_fields_in_microseconds(lossy):
    c = lossy.flow("f").tcp["client"]
    # 10 ms of propagation; serialisation at 1 Gbit/s and CPU add a little
    assert 10_000 <= c["tcpi_min_rtt"] < 10_100
    assert 10_000 <= c["tcpi_rtt"] < 12_000
    # RTO = srtt + max(4 rttvar, 200 ms), in 4 ms jiffies (HZ 250)
    assert c["tcpi_rto"] == 212_000


def test_gro_and_tso_count_segments():
    # 10 Gbit/s: frames arrive faster than one NAPI poll each, so GRO merges them
    text = TWO.format(extra="", size=SIZE).replace("offloads: {tso: false}", "offloads: {tso: true}") \
        .replace("offloads: {gro: false}", "offloads: {gro: true}").replace("rate: 1gbit, ", "")
    res = run_yaml(text)
    c, s = res.flow("f").tcp["client"], res.flow("f").tcp["server"]
    segs = math.ceil(SIZE / MSS)
    assert c["tcpi_data_segs_out"] == s["tcpi_data_segs_in"] == segs
    assert res.counters["h2"]["snmp"]["Tcp"]["InSegs"] < segs          # InSegs counts GRO skbs
