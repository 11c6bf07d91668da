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
    """unres_qlen_bytes = 2304 holds one 1500-byte fragment while ARP resolves, so of a
    3-fragment datagram only the last survives (NEIGH_QUEUEFULL drops the older ones). The
    receiver keeps it ipfrag_time (30 s), then gives up: ReasmFails, ReasmTimeout, no ICMP (the
    first fragment never arrived)."""
    res = run_yaml("""
        name: reasm
        containers:
          a: {sysctls: {net.ipv4.neigh.eth0.unres_qlen_bytes: 2304}}
          b: {}
        workloads:
          - {name: f, app: udp, from: a, to: b, port: 9000, count: 1, payload: 4000}
        """)
    b = res.counters["b"]["snmp"]
    assert res.drops == {"NEIGH_QUEUEFULL": 2, "FRAG_REASM_TIMEOUT": 1}
    assert b["Ip"]["ReasmReqds"] == 1 and b["Ip"]["ReasmFails"] == 1 and b["Ip"]["ReasmTimeout"] == 1
    assert b["Icmp"]["OutMsgs"] == 0
    assert res.ledger["dropped"] == {"udp": {"NEIGH_QUEUEFULL": 1}}
    assert res.sim_time_s == pytest.approx(30.0, abs=0.02)


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


def test_backlog_overflow_drops_fragments_and_reassembly_fails():
    """A 65000-byte datagram leaves a's sendto() as ceil(65008 / 1480) = 44 fragments, all
    handed to the veth's netif_rx before the NET_RX softirq runs. With netdev_max_backlog 10 (a
    global sysctl: the host's), 34 are dropped (CPU_BACKLOG, counted in the veth's tx_dropped)
    and b's reassembly of the rest times out. (warm resolves ARP first, so the fragments do not
    wait in the neighbour queue.)"""
    res = run_yaml("""
        name: backlog
        hosts: {host: {sysctls: {net.core.netdev_max_backlog: 10}}}
        containers: {a: {}, b: {}}
        workloads:
          - {name: f, app: udp, from: a, to: b, port: 9000, count: 1, payload: 65000, start: 1ms}
          - {name: warm, app: udp, from: a, to: b, port: 9001, count: 1, payload: 1}
        """)
    nfrag = -(-(65000 + 8) // 1480)
    assert nfrag == 44
    a = res.counters["a"]
    assert a["dev"]["eth0"]["tx_dropped"] == nfrag - 10
    assert res.drops["CPU_BACKLOG"] == nfrag - 10
    assert res.counters["b"]["snmp"]["Ip"]["ReasmTimeout"] == 1
    assert res.flow("f").packets_delivered == 0 and res.flow("warm").packets_delivered == 1
