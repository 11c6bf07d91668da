"""TCP in the captures, read back with parsers that are not simnet's: dpkt and tshark.

Each TCP segment is decoded by dpkt and checked here: IPv4 header checksum, DF set, TCP
checksum over the pseudo-header and the segment (the one's-complement sum of a buffer that
includes its checksum is the buffer read as one big-endian integer modulo 0xFFFF, zero when it
verifies), the option layout Linux writes (MSS, SACK-permitted, timestamps, window scale on
a SYN; timestamps on every segment), and per direction that the sequence space has no holes
or overlaps on a lossless run. tshark (with TCP and IP checksum validation) must report no
malformed packets, no bad checksums and none of its sequence-analysis complaints —
"previous segment not captured", "ACKed unseen segment", "out-of-order", "retransmission" — on
the lossless tcp-bulk-bridge run, and must see the lost segment of loss-recovery.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from collections import defaultdict
from pathlib import Path

import dpkt
import pytest

import simnet

from pcapcheck import read_pcap, sum_ok

REPO = Path(__file__).resolve().parents[2]
TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (shutil.which('tshark') is None)")

COMPLAINTS = ("_ws.malformed || tcp.checksum.status == \"Bad\" || ip.checksum.status == \"Bad\" || "
              "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment || tcp.analysis.out_of_order || "
              "tcp.analysis.retransmission || tcp.analysis.fast_retransmission || "
              "tcp.analysis.spurious_retransmission")


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    out = {}
    for name in ("tcp-bulk-bridge", "loss-recovery"):
        d = tmp_path_factory.mktemp(name)
        simnet.run(REPO / "scenarios" / f"{name}.yaml", pcap_dir=d)
        out[name] = d
    return out


def tcp_segments(path: Path):
    for rec in read_pcap(path).recs:
        eth = dpkt.ethernet.Ethernet(rec.data)
        if not isinstance(eth.data, dpkt.ip.IP) or eth.data.p != 6:
            continue
        yield rec, eth.data, eth.data.data


def options(tcp) -> list[tuple[int, bytes]]:
    return dpkt.tcp.parse_opts(tcp.opts)


@pytest.mark.parametrize("name", ["tcp-bulk-bridge", "loss-recovery"])
def test_dpkt_decodes_tcp_and_checksums_verify(captures, name):
    n = 0
    for path in sorted(captures[name].glob("*.pcap")):
        for rec, ip, tcp in tcp_segments(path):
            n += 1
            raw = rec.data[14:14 + ip.len]
            assert sum_ok(raw[:20]), f"{path.name}: IP header checksum"
            assert ip.df, f"{path.name}: TCP without DF"
            assert isinstance(tcp, dpkt.tcp.TCP)
            pseudo = raw[12:20] + struct.pack("!BBH", 0, 6, ip.len - 20)
            assert sum_ok(pseudo + raw[20:]), f"{path.name}: TCP checksum"
            kinds = [k for k, _v in options(tcp)]
            if tcp.flags & dpkt.tcp.TH_SYN:
                assert kinds == [dpkt.tcp.TCP_OPT_MSS, dpkt.tcp.TCP_OPT_SACKOK, dpkt.tcp.TCP_OPT_TIMESTAMP,
                                 dpkt.tcp.TCP_OPT_NOP, dpkt.tcp.TCP_OPT_WSCALE]
                mss = dict(options(tcp))[dpkt.tcp.TCP_OPT_MSS]
                assert struct.unpack("!H", mss)[0] == 1460
            elif not tcp.flags & dpkt.tcp.TH_RST:
                assert dpkt.tcp.TCP_OPT_TIMESTAMP in kinds, f"{path.name}: no timestamps"
    assert n > 100


def test_lossless_sequence_space_has_no_holes(captures):
    path = captures["tcp-bulk-bridge"] / "server-eth0.pcap"
    nxt: dict[tuple, int] = {}
    sent = defaultdict(int)
    for _rec, ip, tcp in tcp_segments(path):
        key = (ip.src, tcp.sport)
        ln = len(tcp.data) + (1 if tcp.flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)
        if key in nxt and ln:
            assert tcp.seq == nxt[key], "gap or overlap in the byte stream"
        if ln or key not in nxt:
            nxt[key] = (tcp.seq + ln) & 0xFFFFFFFF
        sent[key] += len(tcp.data)
    assert max(sent.values()) == 10_000_000


def tshark(path: Path, display: str) -> list[str]:
    p = subprocess.run([TSHARK, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
                        "-Y", display], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return [ln for ln in p.stdout.splitlines() if ln.strip()]


@needs_tshark
def test_tshark_finds_nothing_wrong_on_the_lossless_bulk_copy(captures):
    files = sorted(captures["tcp-bulk-bridge"].glob("*.pcap"))
    assert any(f.name == "client-eth0.pcap" for f in files)
    for f in files:
        assert tshark(f, COMPLAINTS) == [], f.name
    assert len(tshark(captures["tcp-bulk-bridge"] / "client-eth0.pcap", "tcp")) > 100


@needs_tshark
def test_tshark_sees_the_loss_and_the_retransmissions(captures):
    rx = captures["loss-recovery"] / "a2-eth0.pcap"
    assert tshark(rx, "tcp.analysis.lost_segment")
    tx = captures["loss-recovery"] / "a1-eth0.pcap"
    assert len(tshark(tx, "tcp.analysis.retransmission || tcp.analysis.fast_retransmission")) == 1
    assert len(tshark(captures["loss-recovery"] / "b1-eth0.pcap", "tcp.analysis.retransmission")) == 1
