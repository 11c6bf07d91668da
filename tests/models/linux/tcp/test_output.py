"""Segmentation, Nagle/cork, TSO/GSO and the device counters that see them.

Rules the expectations are computed from:

* MSS at MTU 1500 with timestamps: 1500 − 20 − 20 − 12 = 1448 bytes of payload.
* TCP_CORK sends only full-size segments until the socket is closed: N bytes make
  ⌈N / 1448⌉ segments, all 1448 bytes but the last.
* Nagle (Minshall): a sub-MSS segment waits while a previously sent small segment is
  unacknowledged; the first write of a connection goes out at once, alone.
* TSO/GSO: TCP hands super-segments down; a veth with TSO counts each as one packet
  (``tx_packets``), ``TcpOutSegs`` counts segments; without TSO they are segmented in software
  before the device and both count segments.
* Nagle + delayed ACK (measured on Linux 6.18 over veth, see nagle-delack.yaml): a request
  written as two small writes costs ≈ 40 ms (the delayed-ACK timer) for every transaction but
  the first (quick-ACK mode), and nothing with TCP_NODELAY.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simnet

from conftest import SCENARIOS, run_yaml

MSS = 1500 - 20 - 20 - 12
N = 1_000_000

VETH = """
name: seg
hosts:
  host: {{cpus: 2, offloads: {{tso: {tso}}}}}
containers:
  a: {{offloads: {{tso: {tso}}}}}
  b: {{offloads: {{tso: {tso}}}}}
workloads:
  - {{name: f, app: tcp_bulk, from: a, to: b, port: 5001, size: {n}, write: {w}{opts}}}
"""

NIC = """
name: seg2
hosts:
  h1: {{cpus: 2, offloads: {{tso: false}}}}
  h2: {{cpus: 2, offloads: {{tso: false}}}}
links:
  - {{endpoints: [h1, h2], rate: 1gbit, delay: 1ms}}
workloads:
  - {{name: f, app: tcp_bulk, from: h1, to: h2, port: 5001, size: {n}, write: 1000{opts}}}
"""


def data_segments(text: str, dev: tuple[str, str]):
    sizes = []

    def setup(net):
        for d in net.devices.values():
            if (d.ns.name, d.ifname) == dev:
                def cap(t, skb, _d, tx):
                    if tx and skb.proto == 6 and skb.l3_len > 20 + skb.tcp_hlen:
                        sizes.append(skb.l3_len - 20 - skb.tcp_hlen)
                d.capture = cap
    res = run_yaml(text, setup=setup)
    return res, sizes


@pytest.mark.parametrize("path", ["veth", "nic"])
def test_cork_with_offloads_off_sends_only_full_segments(path):
    text = VETH.format(tso="false", n=N, w=1000, opts=", cork: true") if path == "veth" else \
        NIC.format(n=N, opts=", cork: true")
    res, sizes = data_segments(text, ("a", "eth0") if path == "veth" else ("h1", "eth0"))
    assert len(sizes) == math.ceil(N / MSS) == 691
    assert sizes[:-1] == [MSS] * 690 and sizes[-1] == N - 690 * MSS
    assert res.flow("f").bytes_delivered == N


def test_nagle_with_offloads_off():
    res, sizes = data_segments(NIC.format(n=N, opts=""), ("h1", "eth0"))
    assert max(sizes) == MSS and sum(sizes) == N
    assert sizes[0] == 1000                       # the first write goes alone: nothing was in flight
    small = [s for s in sizes[1:] if s < MSS]
    assert len(small) <= 4                        # the rest are full while data waits behind the cwnd
    assert len(sizes) <= 2 + (N - 1000) // MSS + 3


def arp_frames(c) -> int:
    return c["arp"]["requests_sent"] + c["arp"]["replies_sent"]


def test_tso_on_veth_counts_super_packets():
    text = VETH.format(tso="true", n=N, w=65536, opts="")
    res, sizes = data_segments(text, ("a", "eth0"))
    a = res.counters["a"]
    tx = a["dev"]["eth0"]["tx_packets"] - arp_frames(a)
    segs = a["snmp"]["Tcp"]["OutSegs"] + a["snmp"]["Tcp"]["RetransSegs"]
    assert max(sizes) > MSS                       # super-segments on the wire of a veth
    assert tx < segs                              # a veth counts skbs, TCP counts segments
    assert tx == a["snmp"]["Ip"]["OutRequests"]   # one IP packet per skb
    assert sum(sizes) == N


def test_tso_off_counts_segments_everywhere():
    res, sizes = data_segments(VETH.format(tso="false", n=N, w=65536, opts=""), ("a", "eth0"))
    a = res.counters["a"]
    tx = a["dev"]["eth0"]["tx_packets"] - arp_frames(a)
    assert max(sizes) <= MSS
    assert tx == a["snmp"]["Tcp"]["OutSegs"] + a["snmp"]["Tcp"]["RetransSegs"]
    assert tx > a["snmp"]["Ip"]["OutRequests"]     # TCP still builds super-segments; GSO cuts them


def test_nagle_and_delayed_ack_stall():
    res = simnet.run(SCENARIOS / "nagle-delack.yaml")
    nagle, nodelay = res.flow("nagle").latencies_s, res.flow("nodelay").latencies_s
    assert len(nagle) == len(nodelay) == 20
    assert nagle[0] < 1e-3                        # quick-ACK mode at the start of a connection
    assert np.all((nagle[1:] > 0.040) & (nagle[1:] < 0.041))   # TCP_DELACK_MIN, then the second write
    assert np.all(nodelay < 1e-3)
    layers = {r["layer"]: r["seconds_total"] for r in res.flow("nagle").breakdown()}
    assert layers["tcp:nagle"] == pytest.approx(19 * 0.040, rel=0.01)
    assert "tcp:nagle" not in {r["layer"] for r in res.flow("nodelay").breakdown()}
    srv = res.counters["server"]["snmp"]["TcpExt"]
    assert srv["DelayedACKs"] >= 19
