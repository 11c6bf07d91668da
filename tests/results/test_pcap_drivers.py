"""Captures of Docker's other drivers read back by dpkt and tshark: VXLAN on the underlay.

On the underlay NIC of an overlay network every frame but ARP is an outer IPv4/UDP packet to
port 4789 whose payload is an 8-byte VXLAN header (flag I, the network's VNI) followed by the
container's whole Ethernet frame; the outer packet is 50 bytes longer than the inner one.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import Counter

import dpkt
import pytest

import simnet

from conftest import SCENARIOS

TSHARK = shutil.which("tshark")


def sum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\0"
    return int.from_bytes(data, "big") % 0xFFFF == 0


@pytest.fixture(scope="module")
def overlay_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ovpcap")
    text = (SCENARIOS / "overlay-two-hosts.yaml").read_text().replace("count: 2000", "count: 50").replace(
        "count: 5000", "count: 100")
    text = "\n".join(ln for ln in text.splitlines() if "app: tcp_" not in ln)    # the UDP workloads
    res = simnet.run(simnet.loads(text, "overlay-two-hosts.yaml"), pcap_dir=out / "pcap")
    return res, out


def test_underlay_frames_are_vxlan_with_the_inner_frame(overlay_run):
    res, out = overlay_run
    g = res.graph
    web_mac = bytes.fromhex(g.nodes["web:eth0"]["mac"].replace(":", ""))
    db_mac = bytes.fromhex(g.nodes["db:eth0"]["mac"].replace(":", ""))
    inner_sizes = Counter()
    n_ip = 0
    with open(out / "pcap" / "host1-eth0.pcap", "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            if eth.type == dpkt.ethernet.ETH_TYPE_ARP:
                continue
            n_ip += 1
            ip = eth.data
            assert isinstance(ip, dpkt.ip.IP) and ip.p == 17 and sum_ok(bytes(ip)[:20])
            assert not ip.df                           # the outer packet never has DF
            udp = ip.data
            assert udp.dport == 4789 and 32768 <= udp.sport < 60999
            raw = bytes(ip)[20:]
            pseudo = ip.src + ip.dst + struct.pack("!BBH", 0, 17, len(raw))
            assert sum_ok(pseudo + raw), "outer UDP checksum"
            flags, vni = struct.unpack("!II", raw[8:16])
            assert flags == 0x08000000 and vni >> 8 == 4096
            inner = dpkt.ethernet.Ethernet(raw[16:])
            assert {inner.src, inner.dst} == {web_mac, db_mac}
            assert len(ip) == 50 + len(inner.data)
            inner_sizes[len(inner.data)] += 1
            assert sum_ok(bytes(inner.data)[:20]), "inner IP checksum"
    # 50 requests and responses of 64 bytes, 100 datagrams of 1422 bytes
    assert inner_sizes == Counter({92: 100, 1450: 100})
    c = res.counters["host1"]["dev"]["eth0"]
    assert n_ip + 1 == c["tx_packets"] + c["rx_packets"] - 1     # one ARP request out, one reply in


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_tshark_decodes_vxlan(overlay_run):
    res, out = overlay_run
    r = subprocess.run([TSHARK, "-r", str(out / "pcap" / "host2-eth0.pcap"), "-o", "ip.check_checksum:TRUE",
                        "-o", "udp.check_checksum:TRUE", "-Y", "vxlan", "-T", "fields", "-e", "vxlan.vni",
                        "-e", "ip.src", "-e", "ip.dst", "-e", "udp.dstport", "-e", "udp.checksum.status",
                        "-e", "ip.checksum.status"], capture_output=True, text=True, check=True)
    rows = [ln.split("\t") for ln in r.stdout.splitlines() if ln]
    assert len(rows) == 200
    web = g_addr(res, "web:eth0")
    db = g_addr(res, "db:eth0")
    h1, h2 = g_addr(res, "host1:eth0"), g_addr(res, "host2:eth0")
    for vni, src, dst, dport, ucs, ics in rows:
        assert vni == "4096"
        assert src.split(",") in ([h1, web], [h2, db])        # outer then inner
        assert dst.split(",") in ([h2, db], [h1, web])
        assert dport.split(",")[0] == "4789"
        assert set(ucs.split(",")) == {"1"} and set(ics.split(",")) == {"1"}


def g_addr(res, node: str) -> str:
    return res.graph.nodes[node]["addrs"][0].split("/")[0]


@pytest.fixture(scope="module")
def overlay_tcp(tmp_path_factory):
    """overlay-two-hosts' TCP workloads alone, the transfer cut to 1 MB."""
    out = tmp_path_factory.mktemp("ovtcp")
    text = (SCENARIOS / "overlay-two-hosts.yaml").read_text().replace("count: 1000", "count: 20").replace(
        "size: 8MB", "size: 1MB")
    text = "\n".join(ln for ln in text.splitlines() if "app: udp" not in ln)
    res = simnet.run(simnet.loads(text, "overlay-two-hosts.yaml"), pcap_dir=out / "pcap")
    return res, out


def test_overlay_tcp_mss_follows_the_container_mtu(overlay_tcp):
    """MSS = container MTU − 40 in the SYN (1410); 1398 bytes per segment with timestamps (12 more
    bytes of options); on the underlay every segment is alone in an outer packet 50 bytes longer."""
    res, out = overlay_tcp
    mtu = res.graph.nodes["web:eth0"]["mtu"]
    underlay = res.graph.nodes["host1:eth0"]["mtu"]
    assert mtu == underlay - 50
    f = res.flow("tcp_bulk")
    assert f.packets_delivered == f.packets_sent == -(-1_000_000 // 65536)
    assert f.tcp["client"]["tcpi_snd_mss"] == f.tcp["server"]["tcpi_rcv_mss"] == mtu - 40 - 12 == 1398
    assert res.flow("tcp_rr").tcp["client"]["tcpi_snd_mss"] == 1398
    payloads = Counter()
    syn_mss = []
    with open(out / "pcap" / "host1-eth0.pcap", "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            if eth.type != dpkt.ethernet.ETH_TYPE_IP:
                continue
            outer = eth.data
            assert len(outer) <= underlay
            inner = dpkt.ethernet.Ethernet(bytes(outer)[20 + 8 + 8:]).data
            assert len(outer) == 50 + len(inner)
            tcp = inner.data
            if tcp.flags & dpkt.tcp.TH_SYN:
                syn_mss.append(int.from_bytes(dict(dpkt.tcp.parse_opts(tcp.opts))[dpkt.tcp.TCP_OPT_MSS], "big"))
            if tcp.dport == 9003 and tcp.data:
                assert len(tcp.opts) == 12                    # timestamps, aligned
                payloads[len(tcp.data)] += 1
    assert syn_mss == [mtu - 40] * 4            # SYN and SYN-ACK of both connections (db has the same MTU)
    assert max(payloads) == 1398 and sum(k * v for k, v in payloads.items()) == 1_000_000
    # 64 KiB writes cut into full segments: at most one short segment per write
    assert sum(v for k, v in payloads.items() if k < 1398) <= f.packets_sent
