"""Published TCP ports (scenario publish-port.yaml): docker-proxy's two connections, and DNAT's one.

What must hold (moby ``tcp_proxy.go``, netfilter): the host's own connection to 127.0.0.1:8091
ends at docker-proxy, which opens a second connection from docker0's address to web:91; each
has its own handshake, its own TCP_INFO and its counts in the ``Tcp`` MIB of its namespace. A
client on another machine is DNATed by the kernel: one connection, the host's address and port
on the host's NIC, the container's inside it, conntrack counting its packets. Every expected
number here is counted from the captures (read back with dpkt) or derived from the workload's
sizes, not taken from the model's own counters.
"""

from __future__ import annotations

import socket
from collections import Counter

import dpkt
import pytest

import simnet
from simnet.models.linux.cpu import DEFAULT_COSTS

from conftest import SCENARIOS

COUNT, REQUEST, RESPONSE = 1000, 64, 512


@pytest.fixture(scope="module")
def pp(tmp_path_factory):
    out = tmp_path_factory.mktemp("pptcp")
    return simnet.run(SCENARIOS / "publish-port.yaml", pcap_dir=out), out


def tcp_frames(path) -> list[tuple[str, int, str, int, int, int, dict]]:
    """(src, sport, dst, dport, flags, payload bytes, options) of every TCP frame of a capture."""
    out = []
    with open(path, "rb") as f:
        for _t, buf in dpkt.pcap.Reader(f):
            e = dpkt.ethernet.Ethernet(buf)
            if not isinstance(e.data, dpkt.ip.IP) or e.data.p != 6:
                continue
            ip, t = e.data, e.data.data
            opts = dict(dpkt.tcp.parse_opts(t.opts))
            out.append((socket.inet_ntoa(ip.src), t.sport, socket.inet_ntoa(ip.dst), t.dport, t.flags, len(t.data),
                        opts))
    return out


def syns(frames, ack: bool) -> list[tuple[str, int, str, int]]:
    want = dpkt.tcp.TH_SYN | (dpkt.tcp.TH_ACK if ack else 0)
    return [f[:4] for f in frames if f[4] & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK) == want]


def addr(res, node):
    return res.graph.nodes[node]["addrs"][0].split("/")[0]


def proxy(res, port):
    return next(p for p in res.counters["host1"]["docker_proxy"] if p["host_port"] == port and p["proto"] == "tcp")


def test_the_proxy_makes_two_connections_with_their_syns(pp):
    res, out = pp
    f = res.flow("local_tcp_proxy")
    assert f.packets_delivered == COUNT and f.tcp["client"]["tcpi_state"] == "TIME_WAIT"
    gw, web = addr(res, "host1:docker0"), addr(res, "web:eth0")
    lo = tcp_frames(out / "host1-lo.pcap")
    inside = tcp_frames(out / "web-eth0.pcap")
    # the client's connection: 127.0.0.1:<ephemeral> → 127.0.0.1:8091, answered by the proxy
    assert syns(lo, ack=False) == [("127.0.0.1", f.sport, "127.0.0.1", 8091)]
    assert syns(lo, ack=True) == [("127.0.0.1", 8091, "127.0.0.1", f.sport)]
    # the proxy's connection: docker0's address → web:91, from a port of its own
    p = proxy(res, 8091)
    assert p["sessions"] == 1 and len(p["connections"]) == 1 and p["connect_errors"] == 0
    conn = p["connections"][0]
    bport = int(conn["backend"]["local"].rsplit(":", 1)[1])
    to91 = [s for s in syns(inside, ack=False) if s[3] == 91]
    assert to91 == [(gw, bport, web, 91)] and bport != f.sport
    assert [s for s in syns(inside, ack=True) if s[1] == 91] == [(web, 91, gw, bport)]
    assert conn["frontend"]["local"] == "127.0.0.1:8091" and conn["frontend"]["remote"] == f"127.0.0.1:{f.sport}"
    assert conn["backend"]["remote"] == f"{web}:91"
    assert not any("127.0.0.1" in (x[0], x[2]) for x in inside), "loopback addresses never reach the container"
    # both SYNs carry the MSS of their route: lo's 65535 MTU, docker0's 1500
    syn_lo = next(x for x in lo if x[4] & dpkt.tcp.TH_SYN and not x[4] & dpkt.tcp.TH_ACK)
    syn_in = next(x for x in inside if x[4] & dpkt.tcp.TH_SYN and not x[4] & dpkt.tcp.TH_ACK and x[3] == 91)
    mtu_lo = res.graph.nodes["host1:lo"]["mtu"]
    assert int.from_bytes(syn_lo[6][dpkt.tcp.TCP_OPT_MSS], "big") == mtu_lo - 40
    assert int.from_bytes(syn_in[6][dpkt.tcp.TCP_OPT_MSS], "big") == res.graph.nodes["host1:docker0"]["mtu"] - 40


def test_each_connection_has_its_tcp_info(pp):
    res, out = pp
    f = res.flow("local_tcp_proxy")
    conn = proxy(res, 8091)["connections"][0]
    front, back = conn["frontend"]["tcp_info"], conn["backend"]["tcp_info"]
    # the bytes each socket moved, from the workload's sizes: requests in, responses out
    # (tcpi_bytes_received counts the peer's FIN, as tcp_rcv_nxt_update does up to its end_seq; the kernel
    # here says the same: 64001 on the replay's proxy socket)
    assert front["tcpi_bytes_received"] - 1 == back["tcpi_bytes_sent"] == COUNT * REQUEST
    assert back["tcpi_bytes_received"] - 1 == front["tcpi_bytes_sent"] == COUNT * RESPONSE
    assert f.tcp["client"]["tcpi_bytes_sent"] == COUNT * REQUEST and f.tcp["server"]["tcpi_bytes_received"] - 1 == COUNT * REQUEST
    # data segments per socket, counted on the wire of its connection
    lo = tcp_frames(out / "host1-lo.pcap")
    inside = tcp_frames(out / "web-eth0.pcap")
    bport = int(conn["backend"]["local"].rsplit(":", 1)[1])
    to_proxy = [x for x in lo if x[3] == 8091 and x[5] > 0]
    to_web = [x for x in inside if x[1] == bport and x[5] > 0]
    assert front["tcpi_data_segs_in"] == len(to_proxy) == COUNT
    assert back["tcpi_data_segs_out"] == len(to_web) == COUNT
    assert front["tcpi_segs_in"] == sum(1 for x in lo if x[3] == 8091)
    assert back["tcpi_segs_out"] == sum(1 for x in inside if x[1] == bport)
    assert front["tcpi_total_retrans"] == back["tcpi_total_retrans"] == 0
    # the proxy's socket counters: every byte relayed both ways
    p = proxy(res, 8091)
    assert p["frontend"]["rx_bytes"] == p["backend_socket"]["tx_bytes"] == COUNT * REQUEST
    assert p["backend_socket"]["rx_bytes"] == p["frontend"]["tx_bytes"] == COUNT * RESPONSE
    assert proxy(res, 8090)["sessions"] == 0                  # remote clients are DNATed, never proxied


def test_snmp_tcp_counters_match_the_captures(pp):
    """ActiveOpens/PassiveOpens per namespace = SYNs / SYN-ACKs its sockets sent; InSegs/OutSegs of
    host1 = the segments on lo (sent and received there) plus those to/from docker0's address."""
    res, out = pp
    gw = addr(res, "host1:docker0")
    lo = tcp_frames(out / "host1-lo.pcap")
    d0 = tcp_frames(out / "host1-docker0.pcap")
    h2 = tcp_frames(out / "host2-eth0.pcap") + tcp_frames(out / "host2-eth1.pcap")
    inside = tcp_frames(out / "web-eth0.pcap")
    h2addrs = {addr(res, "host2:eth0"), addr(res, "host2:eth1")}
    snmp = {ns: res.counters[ns]["snmp"]["Tcp"] for ns in ("host1", "host2", "web")}
    assert snmp["host1"]["ActiveOpens"] == len(syns(lo, False)) + len([s for s in syns(d0, False) if s[0] == gw]) == 2
    assert snmp["host1"]["PassiveOpens"] == len(syns(lo, True)) == 1
    assert snmp["web"]["PassiveOpens"] == len(syns(inside, True)) == 2        # remote_tcp (DNAT) and the proxy's
    assert snmp["web"]["ActiveOpens"] == len(syns(inside, False)) - 2 == 0
    assert snmp["host2"]["ActiveOpens"] == len([s for s in syns(h2, False) if s[0] in h2addrs]) == 2
    assert snmp["host1"]["InSegs"] == len(lo) + sum(1 for x in d0 if x[2] == gw)
    assert snmp["host1"]["OutSegs"] == len(lo) + sum(1 for x in d0 if x[0] == gw)
    # every connection ended with a FIN each way: nothing is established at the end
    mine = lo + [x for x in d0 if gw in (x[0], x[2])]                   # host1's own two connections
    fins = Counter((x[0], x[1]) for x in mine if x[4] & dpkt.tcp.TH_FIN)
    assert len(fins) == 4 and all(n == 1 for n in fins.values())
    assert all(snmp[ns]["CurrEstab"] == 0 for ns in snmp)
    assert snmp["host1"]["RetransSegs"] == snmp["host1"]["OutRsts"] == 0


def test_proxy_ledger_is_whole_and_shows_the_relay(pp):
    res, _out = pp
    lp, ln = res.flow("local_tcp_proxy"), res.flow("local_tcp_noproxy")
    per = {r["layer"]: r["seconds_per_packet"] for r in lp.breakdown()}
    assert sum(per.values()) == pytest.approx(lp.latencies_s.mean(), rel=1e-9)
    relay = DEFAULT_COSTS.stages["docker_proxy"].per_packet_s
    assert per["cpu:docker_proxy"] == pytest.approx(2 * relay)             # the request and the response
    assert lp.latency(0.5) > ln.latency(0.5) + 2 * relay
    assert "cpu:docker_proxy" not in {r["layer"] for r in ln.breakdown()}


def test_without_the_proxy_one_connection_dnat_and_conntrack(pp):
    res, out = pp
    f = res.flow("remote_tcp")
    assert f.packets_delivered == COUNT
    h1, h2, web = addr(res, "host1:eth0"), addr(res, "host2:eth0"), addr(res, "web:eth0")
    nic = tcp_frames(out / "host1-eth0.pcap")
    inside = tcp_frames(out / "web-eth0.pcap")
    sp = f.sport
    # one connection: the host's address and port on the NIC, the container's inside
    assert syns(nic, False) == [(h2, sp, h1, 8090)] and syns(nic, True) == [(h1, 8090, h2, sp)]
    assert (h2, sp, web, 90) in syns(inside, False) and (web, 90, h2, sp) in syns(inside, True)
    assert not any(web in (x[0], x[2]) for x in nic)
    up = [x for x in nic if x[:4] == (h2, sp, h1, 8090)]
    down = [x for x in nic if x[:4] == (h1, 8090, h2, sp)]
    assert len(up) + len(down) == len(nic)
    assert sum(x[5] for x in up) == COUNT * REQUEST and sum(x[5] for x in down) == COUNT * RESPONSE
    nf = res.counters["host1"]["netfilter"]
    assert nf["nat_hits"]["DNAT tcp dpt:8090 to:172.17.0.2:90"] == 1       # a connection's first packet only
    e = next(e for e in nf["entries"] if e["orig"] == f"tcp {h2}:{sp} > {h1}:8090")
    assert e["reply"] == f"tcp {web}:90 > {h2}:{sp}"
    assert e["packets"] == [len(up), len(down)]
    # host3, without the proxy: the host's own connection is DNATed in OUTPUT and masqueraded
    g = res.flow("local_tcp_noproxy")
    assert g.packets_delivered == COUNT and res.counters["host3"].get("docker_proxy") is None
    gw3, web3 = addr(res, "host3:docker0"), addr(res, "web3:eth0")
    in3 = tcp_frames(out / "web3-eth0.pcap")
    assert (gw3, g.sport, web3, 91) in syns(in3, False)
    lo3 = tcp_frames(out / "host3-lo.pcap")
    assert not [x for x in lo3 if 8091 in (x[1], x[3])], "no second connection on lo"
    nf3 = res.counters["host3"]["netfilter"]
    e3 = next(e for e in nf3["entries"] if e["orig"] == f"tcp 127.0.0.1:{g.sport} > 127.0.0.1:8091")
    conn3 = [x for x in in3 if g.sport in (x[1], x[3])]
    assert e3["packets"] == [sum(1 for x in conn3 if x[1] == g.sport), sum(1 for x in conn3 if x[3] == g.sport)]
    assert res.counters["host3"]["snmp"]["Tcp"]["ActiveOpens"] == 1 + 0     # the client only
    assert res.counters["web3"]["snmp"]["Tcp"]["PassiveOpens"] == len(syns(in3, True)) == 2
