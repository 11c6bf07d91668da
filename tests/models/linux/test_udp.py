"""UDP sockets: send-buffer blocking against a slow NIC, receive-buffer overflow."""

from __future__ import annotations

import pytest

from conftest import run_yaml

TWO_HOSTS = """
name: u
hosts:
  h1: {{cpus: 1, nic: {{rate: 100mbit}}}}
  h2: {{cpus: 1, nic: {{rate: 100mbit}}}}
links:
  - {{endpoints: [h1, h2], delay: 10us}}
workloads:
  - {{name: blast, app: udp, from: h1, to: h2, port: 9000, count: {count}, payload: 1472{extra}}}
"""


def test_sender_blocks_on_sndbuf_instead_of_overflowing_the_qdisc():
    """A sender that never pauses, into a 100 Mbit/s NIC: Linux blocks it when its
    sk_wmem_alloc (truesize 2304 per 1500-byte packet) reaches SO_SNDBUF's 212992 bytes, so at
    most 93 packets are queued below the socket and pfifo_fast (1000) never drops; the link
    stays busy, so the payload rate is the line rate times 1472/1538."""
    res = run_yaml(TWO_HOSTS.format(count=5000, extra=""))
    f = res.flow("blast")
    assert f.packets_delivered == 5000 and not res.drops
    assert f.goodput_bps == pytest.approx(100e6 * 1472 / 1538, rel=0.01)
    layers = dict(f.layers_s)
    assert layers.get("sndbuf", 0) > 0            # the application waited for buffer space
    # the worst queueing delay is bounded by what 93 frames take on the wire
    assert f.latencies_s.max() - f.latencies_s.min() < 94 * 1538 * 8 / 100e6 + layers.get("sndbuf", 0) / 5000 * 50


def test_bigger_sndbuf_lets_the_qdisc_overflow():
    """SO_SNDBUF 4 MiB (doubled to 8 MiB, capped at 2 × wmem_max): 8 MiB / 2304 ≈ 3640 packets
    may be queued, more than the ring (256) plus pfifo_fast (1000) hold: the qdisc drops."""
    res = run_yaml(TWO_HOSTS.format(count=5000, extra=", sndbuf: 4MiB"))
    drops = res.drops.get("QDISC_DROP", 0)
    assert drops > 0
    assert res.flow("blast").packets_delivered == 5000 - drops
    assert res.counters["h1"]["qdisc"]["eth0"]["drops"] == drops


def test_receive_buffer_overflow_counts_rcvbuf_errors():
    """SO_RCVBUF 2 KiB is doubled to 4096 bytes; a datagram is refused once sk_rmem_alloc
    exceeds it, so at most two of truesize 2304 wait in the queue. Three senders that never
    pause share the one CPU with the sink, which gets to read only between their system calls:
    the third datagram of each round is lost (RcvbufErrors, InErrors)."""
    res = run_yaml("""
        name: r
        hosts: {host: {cpus: 1}}
        containers: {a1: {}, a2: {}, a3: {}, b: {}}
        workloads:
          - {name: f1, app: udp, from: a1, to: b, port: 9000, count: 300, payload: 1472, rcvbuf: 2KiB}
          - {name: f2, app: udp, from: a2, to: b, port: 9000, count: 300, payload: 1472, listen: false}
          - {name: f3, app: udp, from: a3, to: b, port: 9000, count: 300, payload: 1472, listen: false}
        """)
    b = res.counters["b"]["snmp"]["Udp"]
    lost = res.drops.get("SOCKET_RCVBUFF", 0)
    assert lost > 0
    assert b["RcvbufErrors"] == b["InErrors"] == lost
    assert b["InDatagrams"] + lost == 900
    # each datagram counts for the flow it belongs to, whoever's server read it
    got = [res.flow(n).packets_delivered for n in ("f1", "f2", "f3")]
    assert sum(got) == 900 - lost and got[0] > 0
    assert sum(f.packets_sent for f in res.flows) == 900
