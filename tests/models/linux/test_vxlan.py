"""VXLAN and Docker's overlay network: sizes, fragmentation, PMTU and counters.

The expected numbers are computed here from the header sizes (Ethernet 14, IPv4 20, UDP 8,
VXLAN 8) and Linux's fragmentation rule, and, for the counters, taken from Linux 6.18 running
Docker's layout by hand (two "host" namespaces joined by a veth pair of MTU 1500, in each an
overlay namespace with br0 and a vxlan0 created in the host namespace, VNI 4096, port 4789,
proxy, static FDB and neighbour entries, one container namespace per host; UDP from a
container to the other): two 4000-byte datagrams at container MTU 1500 counted 6 packets /
8136 bytes on both vxlan devices, host1 OutRequests 6, FragOKs 4, FragCreates 8, host2
ReasmReqds 8, ReasmOKs 4, InDelivers 6, Udp InDatagrams 6; a 1472-byte datagram with DF was
answered by an ICMP "fragmentation needed" of 590 bytes (MTU 1450) from the destination's
address, counted as one packet transmitted and one received on vxlan0.
"""

from __future__ import annotations

import pytest

from simnet.models.docker.overlay import overlay_mtu
from simnet.models.linux.skb import IPPROTO_UDP, Skb
from simnet.models.linux.vxlan import esp_pad, udp_flow_src_port, vxlan_inner_mtu

from conftest import run_yaml

TWO_HOSTS = """
name: ov
seed: 1
hosts:
  host1: {{cpus: 2}}
  host2: {{cpus: 2}}
links:
  - {{endpoints: [host1, host2], delay: 10us}}
networks:
  ov: {{driver: overlay{opts}}}
containers:
  a: {{host: host1, networks: [ov]}}
  b: {{host: host2, networks: [ov]}}
workloads:
  - {{name: f, app: udp, from: a, to: b, port: 9000, count: {n}, payload: {p}, interval: 200us}}
"""


def frags(l3: int, mtu: int) -> list[int]:
    """IP packet sizes after fragmenting an ``l3``-byte packet at ``mtu`` (Linux's rule)."""
    if l3 <= mtu:
        return [l3]
    per = (mtu - 20) // 8 * 8
    data, out = l3 - 20, []
    while data > 0:
        out.append(20 + min(per, data))
        data -= per
    return out


def test_mtus():
    assert overlay_mtu(None, False) == 1450 == vxlan_inner_mtu(1500)
    assert overlay_mtu(None, True) == 1424 == vxlan_inner_mtu(1500, True)
    assert overlay_mtu(1550, False) == 1500
    # the ESP payload (UDP 8 + VXLAN 8 + inner frame) plus its 2 trailer bytes is padded to 4
    assert esp_pad(8 + 8 + 14 + 1424) == 0 and esp_pad(8 + 8 + 14 + 1423) == 1


@pytest.mark.parametrize("payload,inner", [(1422, 1), (1423, 2), (64, 1)])
def test_sizes_on_the_container_and_the_underlay(payload, inner):
    n = 20
    res = run_yaml(TWO_HOSTS.format(opts="", n=n, p=payload))
    c = res.counters
    sizes = frags(payload + 28, 1450)
    assert len(sizes) == inner
    assert res.flow("f").packets_delivered == n
    # the container's eth0: 14 + 28 + P per datagram (in fragments above 1450), + one ARP request
    eth0 = c["a"]["dev"]["eth0"]
    assert eth0["tx_packets"] == n * inner + 1
    assert eth0["tx_bytes"] == n * sum(14 + s for s in sizes) + 42
    # the underlay NIC: each inner packet in its own outer packet, 50 bytes more; one ARP for host2
    nic = c["host1"]["dev"]["eth0"]
    assert nic["tx_packets"] == n * inner + 1
    assert nic["tx_bytes"] == n * sum(14 + s + 50 for s in sizes) + 42
    # the ARP for b was answered by vxlan0's proxy: nothing crossed the underlay for it, and
    # host1 asked for host2's underlay address only
    assert c["host1"]["arp"]["requests_sent"] == 1 and c["host2"]["arp"]["requests_sent"] == 0
    assert c["a"]["arp"]["replies_received"] == 1 and c["b"]["arp"]["requests_received"] == 0
    # vxlan0 counts inner IP bytes; the receiving host counts every VXLAN packet as a UDP datagram
    vx1 = c["1-ov@host1"]["dev"]["vxlan0"]
    assert (vx1["tx_packets"], vx1["tx_bytes"]) == (n * inner, n * sum(sizes))
    assert c["1-ov@host2"]["dev"]["vxlan0"]["rx_bytes"] == n * sum(sizes)
    assert c["host2"]["snmp"]["Udp"]["InDatagrams"] == n * inner
    assert c["host1"]["snmp"]["Ip"]["OutRequests"] == n * inner
    assert c["host1"]["snmp"]["Udp"]["OutDatagrams"] == 0


def test_non_df_packets_larger_than_the_tunnel_fragment_outside():
    """Container MTU 1500 over a 1500 underlay: the kernel's observed counts for 4000-byte datagrams."""
    res = run_yaml(TWO_HOSTS.format(opts=', options: {com.docker.network.driver.mtu: "1550"}', n=2, p=4000))
    c = res.counters
    assert res.flow("f").packets_delivered == 2
    inner = frags(4028, 1500)
    assert inner == [1500, 1500, 1068]
    for ns, key in (("1-ov@host1", "tx"), ("1-ov@host2", "rx")):
        vx = c[ns]["dev"]["vxlan0"]
        assert (vx[f"{key}_packets"], vx[f"{key}_bytes"]) == (6, 8136)
    h1, h2 = c["host1"]["snmp"]["Ip"], c["host2"]["snmp"]["Ip"]
    assert (h1["OutRequests"], h1["FragOKs"], h1["FragCreates"]) == (6, 4, 8)
    assert (h2["ReasmReqds"], h2["ReasmOKs"], h2["InDelivers"]) == (8, 4, 6)
    assert c["host2"]["snmp"]["Udp"]["InDatagrams"] == 6
    # a 1550-byte outer packet leaves as 1500 + 70 bytes of IP
    assert frags(1500 + 50, 1500) == [1500, 70]
    nic = c["host1"]["dev"]["eth0"]
    assert nic["tx_bytes"] == 2 * (2 * (14 + 1500 + 14 + 70) + 14 + 1068 + 50) + 42


def test_df_packet_larger_than_the_tunnel_is_answered_with_icmp():
    res = run_yaml(TWO_HOSTS.format(opts=', options: {com.docker.network.driver.mtu: "1550"}', n=5, p=1472))
    c = res.counters
    f = res.flow("f")
    assert f.packets_delivered == 4 and res.drops == {"PKT_TOO_BIG": 1}
    vx = c["1-ov@host1"]["dev"]["vxlan0"]
    # the bounced datagram: one packet each way on vxlan0, the 590-byte ICMP error
    assert (vx["rx_packets"], vx["rx_bytes"]) == (1, 590)
    assert vx["tx_packets"] == 1 + 4 * 2 and vx["tx_bytes"] == 590 + 4 * (1444 + 76)
    a = c["a"]["snmp"]
    assert a["Icmp"]["InDestUnreachs"] == 1 and a["IcmpMsg"] == {"InType3": 1}
    # the following datagrams are fragmented by the sender at the learnt path MTU, 1450
    assert frags(1500, 1450) == [1444, 76]
    assert a["Ip"]["FragOKs"] == 4 and a["Ip"]["FragCreates"] == 8
    assert c["b"]["snmp"]["Ip"]["ReasmOKs"] == 4


def test_encrypted_overlay_adds_esp():
    p = 1000
    res = run_yaml(TWO_HOSTS.format(opts=", options: {encrypted: \"\"}", n=10, p=p))
    c = res.counters
    assert res.flow("f").packets_delivered == 10
    assert res.graph.nodes["a:eth0"]["mtu"] == 1424
    udp_seg = 8 + 8 + 14 + 20 + 8 + p
    outer = 20 + 26 + udp_seg + esp_pad(udp_seg)
    assert c["host1"]["dev"]["eth0"]["tx_bytes"] == 10 * (14 + outer) + 42
    layers = res.flow("f").layers_s
    assert layers["cpu:esp_output"] > 0 and layers["cpu:esp_input"] > 0


def _skb(sport: int, frag: bool = False) -> Skb:
    s = Skb()
    s.saddr, s.daddr, s.proto, s.sport, s.dport = 0x0A000102, 0x0A000103, IPPROTO_UDP, sport, 9000
    s.mf = frag
    return s


def test_outer_source_port_is_a_flow_hash():
    ports = {udp_flow_src_port(_skb(sp)) for sp in range(40000, 40200)}
    assert all(32768 <= p < 60999 for p in ports)
    assert len(ports) > 150                      # flows spread over the range (ECMP entropy)
    assert udp_flow_src_port(_skb(40000)) == udp_flow_src_port(_skb(40000))
    # fragments have no ports for the flow dissector: every fragment of a flow's datagrams alike
    assert udp_flow_src_port(_skb(40000, True)) == udp_flow_src_port(_skb(41234, True))
