"""Linux-exact packet and byte counts for UDP between two containers on docker0.

The expected numbers follow from Linux's rules, computed here independently of the model:
a frame counts 14 bytes of Ethernet header plus the IP packet (no FCS, no preamble); a UDP
datagram of P bytes is an IP packet of P + 28 bytes; above the MTU (1500) it is cut into
fragments carrying (1500 - 20) & ~7 = 1480 bytes of IP payload each (the UDP header travels
in the first); an ARP frame is 42 bytes on a veth. The first datagram makes A broadcast one
ARP request; B answers once and, having learnt A from the request, never asks itself.

These are the numbers a Linux 6.18 kernel produced for the same experiment (two network
namespaces on a bridge, 100 datagrams, IPv6 off): e.g. for P = 1473, A's eth0 counted
201 packets / 154942 bytes, Ip FragCreates 200, FragOKs 100; B ReasmReqds 200, ReasmOKs 100;
the bridge device received 1 frame of 28 bytes (the broadcast ARP request, counted after its
Ethernet header is pulled).
"""

from __future__ import annotations

import pytest

from conftest import run_yaml

SCEN = """
name: counts
containers:
  a: {{}}
  b: {{}}
workloads:
  - {{name: f, app: udp, from: a, to: b, port: 9000, count: {n}, payload: {p}, interval: 1ms}}
"""


def ip_packet_sizes(payload: int, mtu: int = 1500) -> list[int]:
    """IP packet sizes Linux sends for one UDP datagram (independent of the model)."""
    total = payload + 8               # UDP header + payload = IP payload
    if total + 20 <= mtu:
        return [total + 20]
    per = (mtu - 20) // 8 * 8
    sizes = []
    while total > 0:
        d = min(per, total)
        sizes.append(d + 20)
        total -= d
    return sizes


def veth_of(res, netns: str, container_if: str = "eth0") -> str:
    """The host-side veth whose peer is ``container_if`` of ``netns``."""
    g = res.graph
    return g.nodes[g.nodes[f"{netns}:{container_if}"]["peer"]]["ifname"]


@pytest.mark.parametrize("payload,nfrags", [(64, 1), (1472, 1), (1473, 2), (4000, 3)])
def test_udp_over_docker0_counts_like_linux(payload, nfrags):
    n = 100
    res = run_yaml(SCEN.format(n=n, p=payload))
    c = res.counters
    sizes = ip_packet_sizes(payload)
    assert len(sizes) == nfrags
    frames = n * len(sizes) + 1                       # + one ARP request
    nbytes = n * sum(s + 14 for s in sizes) + 42
    a, b = c["a"], c["b"]
    assert a["dev"]["eth0"]["tx_packets"] == frames
    assert a["dev"]["eth0"]["tx_bytes"] == nbytes
    assert a["dev"]["eth0"]["rx_packets"] == 1 and a["dev"]["eth0"]["rx_bytes"] == 42   # the ARP reply
    assert b["dev"]["eth0"]["rx_packets"] == frames and b["dev"]["eth0"]["rx_bytes"] == nbytes
    assert b["dev"]["eth0"]["tx_packets"] == 1 and b["dev"]["eth0"]["tx_bytes"] == 42
    # ARP: one request from a, one reply from b, no request from b
    assert a["arp"]["requests_sent"] == 1 and a["arp"]["replies_received"] == 1
    assert b["arp"]["replies_sent"] == 1 and b["arp"]["requests_sent"] == 0
    # the host side of each veth pair forwards the same frames
    host = c["host"]["dev"]
    va, vb = veth_of(res, "a"), veth_of(res, "b")
    assert host[va]["rx_packets"] == frames and host[va]["rx_bytes"] == nbytes
    assert host[vb]["tx_packets"] == frames and host[vb]["tx_bytes"] == nbytes
    assert host[va]["tx_packets"] == 1 and host[vb]["rx_packets"] == 1
    # the broadcast request is passed up to docker0 (28 bytes: after the Ethernet header)
    assert host["docker0"]["rx_packets"] == 1 and host["docker0"]["rx_bytes"] == 28
    assert host["docker0"]["tx_packets"] == 0
    # IP and UDP MIBs
    ipa, ipb = a["snmp"]["Ip"], b["snmp"]["Ip"]
    assert ipa["OutRequests"] == n and ipa["OutTransmits"] == n * nfrags
    assert ipb["InReceives"] == n * nfrags and ipb["InDelivers"] == n
    if nfrags > 1:
        assert ipa["FragOKs"] == n and ipa["FragCreates"] == n * nfrags
        assert ipb["ReasmReqds"] == n * nfrags and ipb["ReasmOKs"] == n
    else:
        assert ipa["FragOKs"] == ipa["FragCreates"] == ipb["ReasmReqds"] == ipb["ReasmOKs"] == 0
    assert a["snmp"]["Udp"]["OutDatagrams"] == n and b["snmp"]["Udp"]["InDatagrams"] == n
    assert res.flow("f").packets_delivered == n


def test_fragment_sizes_1473_are_1514_and_35():
    res = run_yaml(SCEN.format(n=1, p=1473))
    assert res.counters["a"]["dev"]["eth0"]["tx_bytes"] == 1514 + 35 + 42


def test_closed_port_icmp_is_rate_limited_like_linux():
    """10 datagrams to a port with no socket within 100 ms: 6 port-unreachable errors
    (a new peer's bucket holds 6 tokens, icmp_ratelimit 1 s) and OutRateLimitHost 4, as
    Linux 6.18 counted in the same experiment."""
    res = run_yaml("""
        name: closed
        containers:
          a: {}
          b: {}
        workloads:
          - {name: open, app: udp, from: a, to: b, port: 9000, count: 1, payload: 64}
          - {name: closed, app: udp, from: a, to: b, port: 9999, count: 10, payload: 64,
             interval: 10ms, start: 1ms, listen: false}
        """)
    b = res.counters["b"]["snmp"]
    assert b["Udp"]["NoPorts"] == 10
    assert b["Icmp"]["OutDestUnreachs"] == 6 and b["Icmp"]["OutRateLimitHost"] == 4
    assert b["IcmpMsg"]["OutType3"] == 6
    assert res.counters["a"]["snmp"]["Icmp"]["InDestUnreachs"] == 6
    # the ICMP errors are 120-byte IP packets (20 + 8 + the 92-byte offending datagram)
    assert res.counters["b"]["dev"]["eth0"]["tx_bytes"] == 42 + 6 * (14 + 120)
    assert res.drops["NO_SOCKET"] == 10
