"""Every bundled scenario, run, with its results checked against independent computations.

Round trips are computed here from the CPU cost profile (the model's parameters) and the
list of kernel stages a packet crosses on each path, written down independently of the
code that charges them.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import simnet
from simnet.models.linux.cpu import DEFAULT_COSTS

from conftest import SCENARIOS, all_scenarios


def c(*stages: str, nbytes: dict[str, int] | None = None) -> float:
    nbytes = nbytes or {}
    return sum(DEFAULT_COSTS.stages[s].per_packet_s + DEFAULT_COSTS.stages[s].per_byte_s * nbytes.get(s, 0)
               for s in stages)


def send(p: int) -> float:
    return c("syscall", "udp_sendmsg", "ip_output", nbytes={"syscall": p})


def recv(p: int) -> float:
    return c("syscall", "udp_recvmsg", nbytes={"udp_recvmsg": p})


VETH_OUT = ("neigh_output", "dev_queue_xmit", "veth_xmit")          # container eth0 → host side
BRIDGE_HOP = ("netif_receive", "bridge", "dev_queue_xmit", "veth_xmit")   # host veth → bridge → veth
DELIVER = ("netif_receive", "ip_rcv", "udp_rcv")


def bridge_one_way(p: int) -> float:
    return send(p) + c(*VETH_OUT) + c(*BRIDGE_HOP) + c(*DELIVER) + recv(p)


def loopback_one_way(p: int) -> float:
    return send(p) + c("dev_queue_xmit", "loopback_xmit") + c(*DELIVER) + recv(p)


def test_every_scenario_validates():
    names = {p.stem for p in all_scenarios()}
    assert {"quickstart", "host-vs-bridge", "fragmentation", "arp-cold-start", "two-networks", "none",
            "udp-tandem"} <= names
    for p in all_scenarios():
        simnet.compile_scenario(simnet.load(p))


def test_quickstart_round_trip():
    res = simnet.run(SCENARIOS / "quickstart.yaml")
    f = res.flow("rr")
    assert f.packets_delivered == f.packets_sent == 1000
    rtt = 2 * bridge_one_way(64)
    assert f.latency(0.5) == pytest.approx(rtt, abs=1e-12)
    # only the first transaction waited for ARP, and it waited for one request/reply exchange
    assert f.latencies_s[0] > rtt and (f.latencies_s[1:] == pytest.approx(rtt, abs=1e-12))
    arp_wait = f.latencies_s[0] - rtt
    arp_req = c("arp_send", "dev_queue_xmit", "veth_xmit") + c(*BRIDGE_HOP[:2]) + c("dev_queue_xmit", "veth_xmit")
    assert 0 < arp_wait < 3 * arp_req


def test_host_vs_bridge():
    res = simnet.run(SCENARIOS / "host-vs-bridge.yaml")
    b, h = res.flow("bridge_rr"), res.flow("host_rr")
    assert b.latency(0.5) == pytest.approx(2 * bridge_one_way(64), abs=1e-12)
    assert h.latency(0.5) == pytest.approx(2 * loopback_one_way(64), abs=1e-12)
    assert b.latency(0.5) > h.latency(0.5)
    # the breakdown says where the difference is: veth and bridge on one side, loopback on the other
    bl = {r["layer"]: r["seconds_per_packet"] for r in b.breakdown()}
    hl = {r["layer"]: r["seconds_per_packet"] for r in h.breakdown()}
    assert "cpu:veth_xmit" in bl and "cpu:bridge" in bl and "cpu:veth_xmit" not in hl
    assert "cpu:loopback_xmit" in hl and "cpu:loopback_xmit" not in bl
    # a sender that never pauses is CPU-bound: one datagram per send-path cost
    bb, hb = res.flow("bridge_burst"), res.flow("host_burst")
    assert bb.packets_delivered == hb.packets_delivered == 5000
    per_pkt_b = send(1472) + c(*VETH_OUT) + c(*BRIDGE_HOP) + c(*DELIVER)
    per_pkt_h = send(1472) + c("dev_queue_xmit", "loopback_xmit") + c(*DELIVER)
    assert bb.goodput_bps == pytest.approx(1472 * 8 / per_pkt_b, rel=2e-3)
    assert hb.goodput_bps == pytest.approx(1472 * 8 / per_pkt_h, rel=2e-3)
    # host-networked containers share the host's namespace: no counters of their own
    assert "h-client" not in res.counters and res.counters["host"]["containers"] == ["h-client", "h-server"]


def test_fragmentation():
    res = simnet.run(SCENARIOS / "fragmentation.yaml")
    a, b = res.counters["a"]["snmp"]["Ip"], res.counters["b"]["snmp"]["Ip"]
    assert a["FragOKs"] == 200 and a["FragCreates"] == 100 * 2 + 100 * 3
    assert b["ReasmOKs"] == 200 and b["ReasmReqds"] == 500
    lat = [res.flow(n).latency(0.5) for n in ("p1472", "p1473", "p4000")]
    assert lat[0] < lat[1] < lat[2]
    # one extra fragment costs the fragment's own trip plus fragmenting and reassembling it
    extra = c("ip_fragment", *VETH_OUT, *BRIDGE_HOP, "netif_receive", "ip_rcv", "ip_defrag")
    assert lat[1] - lat[0] == pytest.approx(extra + c("ip_fragment", "ip_defrag")
                                            + (1473 - 1472) * (DEFAULT_COSTS.stages["syscall"].per_byte_s
                                                               + DEFAULT_COSTS.stages["udp_recvmsg"].per_byte_s),
                                            abs=1e-12)


def truesize_small_udp() -> int:
    # a 64-byte datagram: 92-byte IP packet + 16 bytes headroom → 128 (cache-line aligned) +
    # 320 (skb_shared_info) = 448, taken from the 576-byte small-head cache, + 256 (struct
    # sk_buff) = 832 (Linux 6.18: a UDP socket blocks with 256 such datagrams in flight)
    return 832


def test_arp_cold_start():
    res = simnet.run(SCENARIOS / "arp-cold-start.yaml")
    first, nobody, later = res.flow("first"), res.flow("nobody"), res.flow("later")
    one_way = bridge_one_way(64)
    assert first.latencies_s[0] > one_way + 1e-7                 # waited for ARP
    assert first.latencies_s[1:] == pytest.approx(one_way, abs=1e-12)
    # at 60 s the entry is STALE: sent at once (no wait), DELAY, then one unicast probe at
    # 65 s, exactly when the sixth datagram is sent: that one may wait on a's CPU behind the
    # probe's and the reply's processing (each packet a veth delivers is its own softirq turn)
    assert np.delete(later.latencies_s, 5) == pytest.approx(one_way, abs=1e-12)
    arp_exchange = 2 * (c("arp_send", "dev_queue_xmit", "veth_xmit") + c(*BRIDGE_HOP[:2])
                        + c("dev_queue_xmit", "veth_xmit", "netif_receive", "arp_rcv"))
    assert one_way - 1e-12 <= later.latencies_s[5] <= one_way + arp_exchange
    # nobody answers for .99. The socket's send buffer (212992 = 256 × 832 bytes of truesize)
    # fills before the unresolved queue (unres_qlen_bytes, the same 212992) would overflow, so
    # the sender blocks with 256 datagrams queued; three broadcasts one second apart, FAILED,
    # the 256 are dropped (each reported with an ICMP host unreachable), the sender wakes and
    # the next datagram starts over: ceil(4000 / 256) = 16 rounds of 3 s, as Linux 6.18 does.
    qlen = 212992 // truesize_small_udp()
    rounds = -(-4000 // qlen)
    assert qlen == 256 and rounds == 16
    assert nobody.packets_sent == 4000 and nobody.packets_delivered == 0
    assert res.drops["NEIGH_FAILED"] == 4000 and "NEIGH_QUEUEFULL" not in res.drops
    a = res.counters["a"]
    assert a["arp"]["requests_sent"] == 1 + 3 * rounds + 1   # b, 3 per round for .99, the probe of b
    assert a["arp"]["res_failed"] == rounds and a["arp"]["unresolved_discards"] == 0
    # the host unreachables go to a itself over lo; the global bucket (burst 50) lets about 50
    # of each round's 256 through, the rest are OutRateLimitGlobal
    icmp = a["snmp"]["Icmp"]
    assert icmp["OutDestUnreachs"] + icmp["OutRateLimitGlobal"] == 4000
    assert icmp["InDestUnreachs"] == icmp["OutDestUnreachs"] == a["dev"]["lo"]["rx_packets"]
    assert 40 * rounds <= icmp["OutDestUnreachs"] <= 60 * rounds
    assert res.counters["b"]["arp"]["replies_sent"] == 2 and res.counters["b"]["arp"]["requests_sent"] == 0


def test_two_networks():
    res = simnet.run(SCENARIOS / "two-networks.yaml")
    aw, ad, wd = res.flow("app_web"), res.flow("app_db"), res.flow("web_db")
    direct = send(100) + c(*VETH_OUT) + c(*BRIDGE_HOP) + c(*DELIVER) + recv(100) \
        + send(1000) + c(*VETH_OUT) + c(*BRIDGE_HOP) + c(*DELIVER) + recv(1000)
    assert aw.latency(0.5) == pytest.approx(direct, abs=1e-12)
    assert ad.latency(0.5) == pytest.approx(direct, abs=1e-12)
    # routed: up through the first bridge into the host's stack, forwarded, out of the other
    routed_hop = c("netif_receive", "bridge", "netif_receive", "ip_rcv", "ip_forward", "ip_output",
                   "neigh_output", "dev_queue_xmit", "bridge", "dev_queue_xmit", "veth_xmit")
    routed = send(100) + c(*VETH_OUT) + routed_hop + c(*DELIVER) + recv(100) \
        + send(1000) + c(*VETH_OUT) + routed_hop + c(*DELIVER) + recv(1000)
    assert wd.latency(0.5) == pytest.approx(routed, abs=1e-12)
    host = res.counters["host"]["snmp"]["Ip"]
    assert host["ForwDatagrams"] == 1000 and host["InDelivers"] == 0
    assert res.counters["app"]["dev"]["eth1"]["tx_packets"] > 500


def test_two_networks_docker_isolation_refuses_the_routed_path():
    text = (SCENARIOS / "two-networks.yaml").read_text().replace("daemon: {iptables: false}",
                                                                  "daemon: {iptables: true}")
    with pytest.raises(simnet.ScenarioError, match="DOCKER-ISOLATION"):
        simnet.compile_scenario(simnet.loads(text, "two-networks.yaml"))


def test_none_is_loopback_only():
    res = simnet.run(SCENARIOS / "none.yaml")
    f = res.flow("loop_rr")
    assert f.latency(0.5) == pytest.approx(2 * loopback_one_way(64), abs=1e-12)
    ns = res.counters["sealed"]
    assert list(ns["dev"]) == ["lo"]
    assert ns["dev"]["lo"]["tx_packets"] == ns["dev"]["lo"]["rx_packets"] == 2000
    assert ns["arp"]["requests_sent"] == 0


def test_none_cannot_reach_others():
    text = textwrap.dedent("""
        name: x
        containers:
          sealed: {networks: [none]}
          other: {}
        workloads:
          - {app: udp, from: sealed, to: other, port: 1, count: 1}
        """)
    with pytest.raises(simnet.ScenarioError, match="unreachable"):
        simnet.compile_scenario(simnet.loads(text))
