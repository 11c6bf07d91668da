"""IPv4: path MTU discovery through a router, reassembly timeout, forwarding counters."""

from __future__ import annotations

import pytest

from conftest import run_yaml

ROUTED = """
name: pmtu
hosts: {{host: {{daemon: {{iptables: false}}}}}}
networks:
  front: {{driver: bridge, subnet: 10.10.0.0/24}}
  back: {{driver: bridge, subnet: 10.20.0.0/24, mtu: {mtu}}}
containers:
  web: {{networks: [front]}}
  db: {{networks: [back]}}
workloads:
  - {{name: f, app: udp, from: web, to: db, port: 9000, count: {n}, payload: {p}, interval: 1ms}}
"""


def test_frag_needed_teaches_the_sender_the_path_mtu():
    """A 1472-byte datagram fits web's MTU (1500) and leaves with DF; the host cannot forward
    it into the 1000-byte network: FragFails, ICMP fragmentation needed (mtu 1000). web then
    fragments the next datagrams itself to (1000 - 20) & ~7 = 976 bytes of payload: 1500 bytes
    of IP become 996 + 524. Linux 6.18 did the same in a router namespace (FragFails 1)."""
    n = 10
    res = run_yaml(ROUTED.format(mtu=1000, n=n, p=1472))
    c = res.counters
    assert c["host"]["snmp"]["Ip"]["FragFails"] == 1
    assert c["host"]["snmp"]["Icmp"]["OutDestUnreachs"] == 1
    assert c["web"]["snmp"]["IcmpMsg"] == {"InType3": 1}
    assert c["web"]["snmp"]["Ip"]["FragOKs"] == n - 1 and c["web"]["snmp"]["Ip"]["FragCreates"] == 2 * (n - 1)
    assert c["db"]["snmp"]["Ip"]["ReasmOKs"] == n - 1
    assert res.flow("f").packets_delivered == n - 1
    assert res.drops["PKT_TOO_BIG"] == 1
    # fragments on db's wire: 996 + 524 bytes of IP (+ 14 each), plus one ARP reply... from db: none
    assert c["db"]["dev"]["eth0"]["rx_bytes"] == (n - 1) * (996 + 14 + 524 + 14) + 42


def test_router_fragments_datagrams_without_df():
    """A 3000-byte datagram is fragmented at web (MTU 1500) without DF; the host refragments
    the 1500-byte fragment for the 1000-byte network (ip_forward → ip_fragment)."""
    res = run_yaml(ROUTED.format(mtu=1000, n=5, p=3000))
    c = res.counters
    assert c["host"]["snmp"]["Ip"]["FragFails"] == 0
    assert c["host"]["snmp"]["Ip"]["ForwDatagrams"] == 5 * 3
    # web: 1480 + 1480 + 48 bytes of payload; the host splits each 1500-byte fragment in two
    assert c["host"]["snmp"]["Ip"]["FragOKs"] == 5 * 2 and c["host"]["snmp"]["Ip"]["FragCreates"] == 5 * 4
    assert c["db"]["snmp"]["Ip"]["ReasmReqds"] == 5 * 5 and c["db"]["snmp"]["Ip"]["ReasmOKs"] == 5
    assert res.flow("f").packets_delivered == 5


def test_reassembly_times_out_when_a_fragment_is_lost():
    """A 4000-byte datagram over a 1500-MTU link leaves h1 as ceil(4008 / 1480) = 3 fragments
    (frames 2-4 on the wire: frame 1 is h1's ARP request). The link loses frame 3, the second
    fragment. h2 holds the other two ipfrag_time (30 s), then gives up: ReasmFails,
    ReasmTimeout, and an ICMP time exceeded (code 1, fragment reassembly) because the first
    fragment did arrive (ip_expire() answers only when offset 0 is in the queue)."""
    res = run_yaml("""
        name: reasm
        hosts: {h1: {}, h2: {}}
        links:
          - {endpoints: [h1, h2], drop: [3]}
        workloads:
          - {name: f, app: udp, from: h1, to: h2, port: 9000, count: 1, payload: 4000}
        """)
    nfrag = -(-(4000 + 8) // 1480)
    assert nfrag == 3
    h2 = res.counters["h2"]["snmp"]
    # ip_expire() frees every queued fragment with this reason (inet_frag_rbtree_purge)
    assert res.drops == {"LINK_LOSS": 1, "FRAG_REASM_TIMEOUT": nfrag - 1}
    assert h2["Ip"]["ReasmReqds"] == nfrag - 1
    assert h2["Ip"]["ReasmFails"] == 1 and h2["Ip"]["ReasmTimeout"] == 1 and h2["Ip"]["ReasmOKs"] == 0
    assert h2["Icmp"]["OutTimeExcds"] == 1
    assert res.flow("f").packets_delivered == 0
    assert res.sim_time_s == pytest.approx(30.0, abs=0.05)


def test_forwarding_off_counts_in_addr_errors():
    res = run_yaml("""
        name: nofwd
        hosts: {host: {daemon: {ip_forward: false, iptables: false}}}
        networks:
          n1: {driver: bridge, subnet: 10.1.0.0/24}
          n2: {driver: bridge, subnet: 10.2.0.0/24}
        containers:
          a: {networks: [n1]}
          b: {networks: [n2]}
          c: {networks: [n1]}
        workloads:
          - {name: ok, app: udp, from: a, to: c, port: 9000, count: 1}
        """)
    assert res.counters["host"]["snmp"]["Ip"]["Forwarding"] == 2
    assert res.flow("ok").packets_delivered == 1
