"""macvlan, ipvlan and the external switch: who talks to whom, which frames touch the wire.

Expectations follow drivers/net/macvlan.c and drivers/net/ipvlan (see the model docstrings):
bridge-mode siblings are switched inside the kernel; vepa frames go out and need a switch that
reflects them; private children never hear each other's broadcasts; the host cannot reach its
own macvlan children through the parent; ipvlan children share the parent's MAC, answer ARP
with it in l2 mode and never ARP in l3 mode.
"""

from __future__ import annotations

import struct

import dpkt
import pytest

import simnet

from conftest import SCENARIOS


@pytest.fixture(scope="module")
def modes():
    return simnet.run(SCENARIOS / "macvlan-modes.yaml")


@pytest.fixture(scope="module")
def mvbridge(tmp_path_factory):
    out = tmp_path_factory.mktemp("mvb")
    return simnet.run(SCENARIOS / "macvlan-bridge.yaml", pcap_dir=out), out


def test_bridge_mode_siblings_never_touch_the_wire(modes):
    f = modes.flow("bridge")
    assert f.packets_delivered == f.packets_sent == 500
    c = modes.counters
    # 500 requests + 500 responses + 2 ARP frames between b1 and b2; hb's eth0 sent only b1's
    # ARP broadcast (which also goes out), and the switch port of hb saw nothing else
    assert c["b1"]["dev"]["eth0"]["tx_packets"] == 501 and c["b2"]["dev"]["eth0"]["rx_packets"] >= 501
    assert c["hb"]["dev"]["eth0"]["tx_packets"] == 1
    assert c["lan"]["dev"]["p1"]["rx_packets"] == 1


def test_vepa_frames_hairpin_through_the_switch(modes):
    f = modes.flow("vepa")
    assert f.packets_delivered == 500
    c = modes.counters
    # every frame between v1 and v2 goes out of hv's eth0 and comes back through port p2
    port = c["lan"]["dev"]["p2"]
    assert port["rx_packets"] >= 1000 and port["tx_packets"] >= 1000
    assert c["hv"]["dev"]["eth0"]["tx_packets"] == 1000 + 2
    # two wire crossings each way: slower than bridge mode by at least four serialisations
    ser_64 = (14 + 92 + 24) * 8 / 10e9
    assert f.latency(0.5) > modes.flow("bridge").latency(0.5) + 4 * ser_64


def test_vepa_needs_a_hairpin_switch():
    text = (SCENARIOS / "macvlan-modes.yaml").read_text().replace("hairpin: true", "hairpin: false")
    res = simnet.run(simnet.loads(text, "macvlan-modes.yaml"))
    assert res.flow("vepa").packets_delivered == 0 and res.flow("bridge").packets_delivered == 500
    assert res.counters["lan"]["filtered"] > 0 or res.drops.get("NEIGH_FAILED", 0) > 0


def test_private_mode_siblings_cannot_talk(modes):
    f = modes.flow("private")
    assert f.packets_delivered == 0 and modes.drops["NEIGH_FAILED"] == 20
    # p2 never received p1's ARP requests; p1 got its own three back (and nothing else from p2)
    c = modes.counters
    assert c["p1"]["arp"]["requests_sent"] == 3 and c["p2"]["arp"]["replies_sent"] == 0


def test_every_container_has_its_own_mac(modes):
    g = modes.graph
    macs = [g.nodes[f"{c}:eth0"]["mac"] for c in ("b1", "b2", "v1", "v2", "p1", "p2")]
    assert len(set(macs)) == 6
    nic = modes.counters["hb"]["nic"]["eth0"]
    assert nic["uc_addresses"] == 2 and not nic["promisc"]


def test_host_cannot_reach_its_own_macvlan_container(mvbridge):
    res, _out = mvbridge
    assert res.flow("host1_a").packets_delivered == 0
    # the host's requests go out on the wire and nobody answers: one failed resolution
    # (res_failed counts once per failure, neigh_invalidate), every datagram dropped
    assert res.counters["host1"]["arp"]["res_failed"] == 1
    assert res.counters["host1"]["arp"]["requests_sent"] == 3
    assert res.flow("host2_a").packets_delivered == 100
    assert res.flow("a_b").latency(0.5) < res.flow("a_c").latency(0.5)


def test_bridge_mode_frames_seen_only_by_the_parents_taps(mvbridge):
    """a→b frames show up in a capture on host1's eth0 (dev_forward_skb passes its taps) but the
    NIC never transmits them and host2's eth0 never receives them."""
    res, out = mvbridge
    g = res.graph
    a_mac = bytes.fromhex(g.nodes["a:eth0"]["mac"].replace(":", ""))
    b_mac = bytes.fromhex(g.nodes["b:eth0"]["mac"].replace(":", ""))

    def frames(name):
        with open(out / name, "rb") as f:
            return [dpkt.ethernet.Ethernet(buf) for _t, buf in dpkt.pcap.Reader(f)]

    between = lambda e: {e.src, e.dst} == {a_mac, b_mac}
    assert sum(map(between, frames("host1-eth0.pcap"))) >= 2000
    assert sum(map(between, frames("host2-eth0.pcap"))) == 0


def test_unicast_filter_overflows_into_promiscuous_mode():
    many = "\n".join(f"  c{i}: {{networks: [lan]}}" for i in range(70))
    res = simnet.run(simnet.loads(
        "name: many\nhosts: {h: {nics: {eth0: {}}}}\nnetworks:\n"
        "  lan: {driver: macvlan, subnet: 192.168.9.0/24, options: {parent: eth0}}\ncontainers:\n" + many))
    nic = res.counters["h"]["nic"]["eth0"]
    assert nic["uc_addresses"] == 70 and nic["uc_promisc"] and nic["promisc"]


def test_passthru_takes_the_parents_mac_and_one_container_only():
    base = ("name: pt\nhosts: {{h: {{nics: {{eth0: {{}}}}}}}}\nnetworks:\n"
            "  lan: {{driver: macvlan, subnet: 192.168.9.0/24, options: {{parent: eth0, macvlan_mode: passthru}}}}\n"
            "containers:\n{c}\n")

    def run_yaml(text):
        return simnet.run(simnet.loads(text))

    res = run_yaml(base.format(c="  a: {networks: [lan]}"))
    g = res.graph
    assert g.nodes["a:eth0"]["mac"] == g.nodes["h:eth0"]["mac"]
    assert res.counters["h"]["nic"]["eth0"]["promisc"]
    with pytest.raises(simnet.ScenarioError, match="passthru.*only one container"):
        run_yaml(base.format(c="  a: {networks: [lan]}\n  b: {networks: [lan]}"))


# -- ipvlan ---------------------------------------------------------------------------------------

def test_ipvlan_l2_arp_replies_carry_the_parents_mac(tmp_path):
    res = simnet.run(SCENARIOS / "ipvlan-l2.yaml", pcap_dir=tmp_path)
    assert res.flow("c_a").packets_delivered == 1000 and res.flow("a_b").packets_delivered == 1000
    g = res.graph
    h1 = bytes.fromhex(g.nodes["host1:eth0"]["mac"].replace(":", ""))
    assert g.nodes["a:eth0"]["mac"] == g.nodes["b:eth0"]["mac"] == g.nodes["host1:eth0"]["mac"]
    a_ip = bytes(map(int, g.nodes["a:eth0"]["addrs"][0].split("/")[0].split(".")))
    replies = []
    with open(tmp_path / "host2-eth0.pcap", "rb") as f:
        for _t, buf in dpkt.pcap.Reader(f):
            e = dpkt.ethernet.Ethernet(buf)
            if e.type == dpkt.ethernet.ETH_TYPE_ARP and e.data.op == dpkt.arp.ARP_OP_REPLY:
                replies.append(e.data)
    assert replies and all(r.sha == h1 for r in replies)
    assert any(r.spa == a_ip for r in replies)


def test_ipvlan_l3_sends_no_arp_from_containers(tmp_path):
    res = simnet.run(SCENARIOS / "ipvlan-l3.yaml", pcap_dir=tmp_path)
    assert res.flow("a_c").packets_delivered == 1000 and res.flow("a_b").packets_delivered == 1000
    for c in ("a", "b", "c"):
        arp = res.counters[c]["arp"]
        assert arp["requests_sent"] == arp["replies_sent"] == 0
        with open(tmp_path / f"{c}-eth0.pcap", "rb") as f:
            kinds = {struct.unpack_from("!H", buf, 12)[0] for _t, buf in dpkt.pcap.Reader(f)}
        assert kinds == {0x0800}
    # the hosts resolve each other instead, and host1 routes a's packets (OutRequests)
    assert res.counters["host1"]["arp"]["requests_sent"] == 1
    assert res.counters["host1"]["snmp"]["Ip"]["OutRequests"] == 1000


def test_a_bridge_mode_broadcast_counts_its_ethernet_header_twice_on_siblings(mvbridge):
    """Linux 6.18, seen by the netns replay of macvlan-bridge: b receives a's two ARP requests (for b
    and for c) straight from the transmit path, 56 bytes each (macvlan_broadcast: skb->len, which
    still holds the Ethernet header, + ETH_HLEN), host2's request from the wire 42 bytes, and 1000
    requests of 64 bytes (106-byte frames)."""
    res, _out = mvbridge
    b = res.counters["b"]["dev"]["eth0"]
    assert b["rx_packets"] == 1003 and res.counters["b"]["arp"]["requests_received"] == 3
    assert b["rx_bytes"] == 1000 * 106 + 2 * 56 + 42 == 106154


def test_a_private_childs_returned_broadcast_counts_zero_bytes(modes):
    """Linux 6.18, seen by the netns replay of macvlan-modes: p1's three ARP requests for p2 come back
    from the hairpin switch and are handed to p1 alone, counted as packets of 0 bytes
    (macvlan_handle_frame leaves len at 0 on that path); the two broadcasts from the other hosts'
    children (b1's, v1's) count their 42 bytes."""
    c = modes.counters
    assert c["p1"]["arp"]["requests_sent"] == 3
    assert c["p1"]["dev"]["eth0"]["rx_packets"] == 5 and c["p1"]["dev"]["eth0"]["rx_bytes"] == 2 * 42
    assert c["hp"]["arp"]["requests_received"] == 2          # consumed by macvlan: the host never sees p1's
