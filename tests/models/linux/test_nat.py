"""Published ports: DNAT, MASQUERADE, conntrack and docker-proxy (scenario publish-port.yaml).

What must hold (moby's rules, netfilter's behaviour): on the host's NIC the client talks to the
host's address and published port; inside the container the same datagrams are addressed to
the container's address and port; answers leave the host with the host's address and port as
their source again (conntrack). The host's own traffic to 127.0.0.1 goes through docker-proxy
when the userland proxy is on (two sockets, each datagram received and sent again), and through
OUTPUT DNAT plus MASQUERADE of the loopback source when it is off.
"""

from __future__ import annotations

import socket
from collections import Counter

import dpkt
import pytest

import simnet
from simnet.models.linux.cpu import DEFAULT_COSTS

from conftest import SCENARIOS


@pytest.fixture(scope="module")
def pp(tmp_path_factory):
    out = tmp_path_factory.mktemp("pp")
    return simnet.run(SCENARIOS / "publish-port.yaml", pcap_dir=out), out


def udp_pairs(path, port_filter=None) -> Counter:
    out = Counter()
    with open(path, "rb") as f:
        for _t, buf in dpkt.pcap.Reader(f):
            e = dpkt.ethernet.Ethernet(buf)
            if e.type != dpkt.ethernet.ETH_TYPE_IP or e.data.p != 17:
                continue
            ip, u = e.data, e.data.data
            out[(socket.inet_ntoa(ip.src), u.sport, socket.inet_ntoa(ip.dst), u.dport)] += 1
    return out


def addr(res, node):
    return res.graph.nodes[node]["addrs"][0].split("/")[0]


def test_nic_shows_the_host_port_and_the_container_its_own(pp):
    res, out = pp
    f = res.flow("remote")
    assert f.packets_delivered == 1000
    h1, h2, web = addr(res, "host1:eth0"), addr(res, "host2:eth0"), addr(res, "web:eth0")
    nic = udp_pairs(out / "host1-eth0.pcap")
    inside = udp_pairs(out / "web-eth0.pcap")
    sport = f.sport
    assert nic[(h2, sport, h1, 8080)] == 1000 and nic[(h1, 8080, h2, sport)] == 1000
    assert inside[(h2, sport, web, 80)] == 1000 and inside[(web, 80, h2, sport)] == 1000
    assert not any(p[0] == web or p[2] == web for p in nic), "the container's address never reaches the wire"
    nf = res.counters["host1"]["netfilter"]
    assert nf["nat_hits"]["DNAT udp dpt:8080 to:172.17.0.2:80"] == 1     # only the first packet meets the rule
    assert nf["nat_hits"]["DNAT udp dpt:8081 to:172.17.0.2:81"] == 0     # the proxy's traffic comes from docker0
    # Linux 6.18 (the netns replay of the UDP flows of publish-port): 3 entries per protocol (the remote
    # flow; the local one's client → proxy on lo and proxy → web); found counts NAT tuple clashes only and
    # insert ctnetlink insertions only, so both stay 0 however many packets find their entry
    assert nf["conntrack"] == {"entries": 2 * 3, "found": 0, "insert": 0, "invalid": 0}
    remote = next(e for e in nf["entries"] if e["orig"].endswith(f"{h1}:8080"))
    assert remote["packets"] == [1000, 1000]


def test_userland_proxy_uses_two_sockets(pp):
    res, _out = pp
    p = next(x for x in res.counters["host1"]["docker_proxy"] if x["host_port"] == 8081)
    assert p["sessions"] == 1
    assert p["frontend"] == {"rx_msgs": 1000, "rx_bytes": 64000, "tx_msgs": 1000, "tx_bytes": 512000}
    assert p["backend_socket"] == {"rx_msgs": 1000, "rx_bytes": 512000, "tx_msgs": 1000, "tx_bytes": 64000}
    # two conntrack entries for the local flow: client → proxy on lo, proxy → web on docker0
    entries = res.counters["host1"]["netfilter"]["entries"]
    lo = next(e for e in entries if e["orig"].startswith("udp 127.0.0.1:") and e["orig"].endswith("127.0.0.1:8081"))
    assert any(e["orig"].endswith("172.17.0.2:81") for e in entries)
    # a datagram looped back through lo is tracked once (in OUTPUT), not again in PREROUTING: as Linux 6.18
    assert lo["packets"] == [1000, 1000]
    # the proxy's relay shows in the breakdown, twice per transaction, and costs time
    lp, ln = res.flow("local_proxy"), res.flow("local_noproxy")
    per = {r["layer"]: r["seconds_per_packet"] for r in lp.breakdown()}
    relay = DEFAULT_COSTS.stages["docker_proxy"].per_packet_s
    assert per["cpu:docker_proxy"] == pytest.approx(2 * relay)
    assert lp.latency(0.5) > ln.latency(0.5) + 2 * relay


def test_without_proxy_loopback_is_translated_and_masqueraded(pp):
    res, out = pp
    assert res.counters["host3"].get("docker_proxy") is None
    nf = res.counters["host3"]["netfilter"]
    assert nf["nat_hits"]["MASQUERADE src-type LOCAL docker0"] == 2       # the UDP flow and the TCP connection
    gw = addr(res, "host3:docker0")
    inside = udp_pairs(out / "web3-eth0.pcap")
    f = res.flow("local_noproxy")
    assert f.packets_delivered == 1000
    assert inside[(gw, f.sport, addr(res, "web3:eth0"), 81)] == 1000



MASQ = """
name: masq
hosts: {{host1: {{}}, host2: {{}}}}
links:
  - {{endpoints: [host1, host2]}}
networks:
  n: {{driver: bridge, subnet: 10.5.0.0/24{opts}}}
containers:
  c: {{host: host1, networks: [n]}}
workloads:
  - {{name: out, app: udp, from: c, to: host2, port: 9000, count: 3}}
"""


@pytest.mark.parametrize("opts, masquerades", [("", True),
                                               (", options: {com.docker.network.bridge.enable_ip_masquerade: "
                                                "'false'}", False)])
def test_enable_ip_masquerade_option(tmp_path, opts, masquerades):
    """Docker masquerades a bridge network's traffic leaving its subnet unless the network sets
    com.docker.network.bridge.enable_ip_masquerade=false: then host2 sees the container's own
    address on the wire, and the host's conntrack translates nothing."""
    sc = simnet.loads(MASQ.format(opts=opts), "masq.yaml")
    res = simnet.run(sc, pcap_dir=tmp_path)
    host1 = res.graph.nodes["host1"]
    caddr = host1_addr = None
    for n, d in res.graph.nodes(data=True):
        if n == "c:eth0":
            caddr = d["addrs"][0].split("/")[0]
        if n == "host1:eth0":
            host1_addr = d["addrs"][0].split("/")[0]
    srcs = {src for (src, _sp, _dst, dp), k in udp_pairs(tmp_path / "host2-eth0.pcap").items() if dp == 9000}
    assert srcs == {host1_addr if masquerades else caddr}
    assert res.flow("out").packets_delivered == 3
    assert bool(host1.get("nat", {}).get("masquerade")) == masquerades
