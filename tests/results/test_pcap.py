"""pcap captures (simnet.results.pcap) read back with dpkt and a reader written here: every frame
decodes, every checksum verifies, captures match the device counters, one end's transmissions are
the other's receptions, and the checkers catch a flipped bit. The rules are in pcapcheck.py."""

from __future__ import annotations

import ipaddress
import shutil
import struct
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from pcapcheck import (ALL, BROADCAST, ETH_ZLEN, PCAP_MAGIC_NS, TSHARK, Rec, Run, check_file, classify,
                       l3_len, runs_factory, sum_ok, tshark_rows)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    return runs_factory(tmp_path_factory.mktemp("pcap"))


@pytest.mark.parametrize("scenario", ALL)
def test_dpkt_decodes_every_frame_and_checksums_verify(runs, scenario):
    run = runs(scenario)
    total = 0
    stats = {}
    for node in sorted(run.devices):
        assert run.path(node).exists(), f"no capture for {node}"
        st = check_file(run, node)
        assert st.frames == len(run.pcap(node).recs), f"{node}: dpkt read {st.frames} frames"
        stats[node] = st
        total += st.frames
    assert total > 0
    # no stray files: one per device
    assert {p.name for p in (run.out / "pcap").iterdir()} == {run.path(n).name for n in run.devices}
    # every delivered datagram (or request) was seen, whole or reassembled, on some device
    for fl in run.res.flows:
        seen = sum(st.dports[fl.dport] for st in stats.values())
        assert seen >= fl.packets_delivered, f"{fl.name}: {seen} datagrams to port {fl.dport} captured"


def test_fragmentation_reassembles_to_the_sent_datagrams(runs):
    run = runs("fragmentation")
    for node in ("a:eth0", "b:eth0"):
        st = check_file(run, node)
        # 100 datagrams of 1472 bytes unfragmented; 1473 and 4000 bytes fragmented (2 and 3 pieces)
        assert st.udp == Counter({1480: 100}), st.udp
        assert st.reassembled == Counter({1481: 100, 4008: 100}), st.reassembled
        assert st.fragments == 100 * 2 + 100 * 3
        sizes = Counter(len(r.data) for r in run.pcap(node).recs)
        assert sizes[14 + 1500] == 100 + 100 + 200 and sizes[14 + 21] == 100 and sizes[14 + 4008 - 2960 + 20] == 100


def _arp_ops(recs: list[Rec]) -> Counter:
    c: Counter = Counter()
    for r in recs:
        if r.data[12:14] == b"\x08\x06":
            c[{1: "request", 2: "reply"}[struct.unpack_from("!H", r.data, 20)[0]]] += 1
    return c


def test_nic_pads_short_received_frames(runs):
    """46-byte frames (4 bytes of UDP payload) leave host as 46 bytes and reach far as 60."""
    run = runs("bidir")
    tx, _ = classify(run, "host:eth0")
    _, rx = classify(run, "far:eth0")
    short_tx = [r for r in tx if l3_len(r.data) == 20 + 8 + 4]
    short_rx = [r for r in rx if l3_len(r.data) == 20 + 8 + 4]
    assert len(short_tx) == len(short_rx) == 300
    assert {len(r.data) for r in short_tx} == {46} and {len(r.data) for r in short_rx} == {ETH_ZLEN}
    assert all(r.data[46:] == bytes(14) for r in short_rx)


@pytest.mark.parametrize("scenario", ALL)
def test_arp_frames_match_the_arp_counters(runs, scenario):
    """ARP requests/replies sent and received by each namespace, against its devices' captures."""
    run = runs(scenario)
    for ns, c in run.counters.items():
        tx: Counter = Counter()
        rx: Counter = Counter()
        for node, d in run.devices.items():
            # bridge ports hand frames to the bridge, not to ARP; lo has no ARP
            if d["netns"] != ns or d["kind"] == "loopback" or d.get("master"):
                continue
            t, r = classify(run, node)
            tx += _arp_ops(t)
            rx += _arp_ops(r)
        arp = c["arp"]
        assert (tx["request"], tx["reply"]) == (arp["requests_sent"], arp["replies_sent"]), f"{ns}: sent"
        assert (rx["request"], rx["reply"]) == (arp["requests_received"], arp["replies_received"]), f"{ns}: received"


def test_arp_cold_start_requests(runs):
    run = runs("arp-cold-start")
    tx, _ = classify(run, "a:eth0")
    who: Counter = Counter()
    unicast = 0
    for r in tx:
        if r.data[12:14] == b"\x08\x06" and r.data[20:22] == b"\0\1":
            who[str(ipaddress.IPv4Address(r.data[38:42]))] += 1
            unicast += r.data[:6] != BROADCAST
    b_ip = str(ipaddress.IPv4Interface(run.devices["b:eth0"]["addrs"][0]).ip)
    # nobody: at least one round of three broadcast requests for an address nobody has;
    # first: one broadcast for b; later: a unicast probe (PROBE) for b's stale entry
    assert who["172.18.0.99"] >= 3 and who["172.18.0.99"] % 3 == 0, who
    assert who[b_ip] >= 2 and unicast >= 1, (who, unicast)
    assert run.counters["b"]["arp"]["requests_sent"] == 0


# -- 2. frames and bytes against the device counters ----------------------------------------------

@pytest.mark.parametrize("scenario", ALL)
def test_capture_matches_device_counters(runs, scenario):
    run = runs(scenario)
    for node, d in sorted(run.devices.items()):
        c = run.dev_counters(node)
        tx, rx = classify(run, node)
        kind = d["kind"]
        recs = run.pcap(node).recs
        if kind != "loopback":
            assert len(tx) + len(rx) == len(recs), node
        for r in recs:
            assert r.orig_len == len(r.data), f"{node}: truncated frame"
        # loopback_xmit counts skb->len after eth_type_trans pulled the Ethernet header (Linux 6.18,
        # observed with the netns engine), and lo's rx statistics are its tx statistics
        hdr = 14 if kind == "loopback" else 0
        assert (len(tx), sum(len(r.data) - hdr for r in tx)) == (c["tx_packets"], c["tx_bytes"]), f"{node}: tx"
        if kind in ("bridge", "loopback"):
            # br_pass_frame_up counts after eth_type_trans pulled the Ethernet header
            rx_bytes = sum(len(r.data) - 14 for r in rx)
        else:
            rx_bytes = sum(len(r.data) for r in rx)
        assert (len(rx), rx_bytes) == (c["rx_packets"], c["rx_bytes"]), f"{node}: rx"
        # transmitted frames are never padded (the NIC pads on the wire, after the capture);
        # received ones only by a NIC, to ETH_ZLEN
        for r in tx:
            assert len(r.data) == 14 + l3_len(r.data), f"{node}: padded tx frame"
        for r in rx:
            want = 14 + l3_len(r.data)
            if kind == "nic":
                want = max(want, ETH_ZLEN)
            assert len(r.data) == want, f"{node}: rx frame of {len(r.data)} bytes, expected {want}"
        # a device that is not a bridge port only receives what is addressed to it
        if kind != "loopback" and not d.get("master"):
            mac = run.mac(node)
            for r in rx:
                assert r.data[:6] in (mac, BROADCAST), f"{node}: received a frame for {r.data[:6].hex()}"


@pytest.mark.parametrize("scenario", ALL)
def test_what_one_end_sends_the_other_receives(runs, scenario):
    """The tx/rx rule cross-checked without MACs: veth pairs and wires conserve frames."""
    run = runs(scenario)
    checked = 0
    for a, b in sorted(run.peer.items()):
        tx_a, _ = classify(run, a)
        _, rx_b = classify(run, b)
        kind = run.devices[a]["kind"]
        if kind == "veth":
            # veth_xmit hands the frame to the peer's netif_rx; the capture sees it when the CPU's
            # backlog is processed (__netif_receive_skb), in order, never before it was sent
            assert [r.data for r in tx_a] == [r.data for r in rx_b], f"{a} -> {b}"
            assert all(r.ts_ns >= t.ts_ns for t, r in zip(tx_a, rx_b)), f"{a} -> {b}: received before sent"
        else:
            assert kind == "nic"
            rate = run.devices[a]["rate_bps"]
            delay_ns = run.wire_delay[a] * 1e9
            assert len(tx_a) == len(rx_b), f"{a} -> {b}: {len(tx_a)} sent, {len(rx_b)} received"
            for s, r in zip(tx_a, rx_b):
                n = 14 + l3_len(s.data)
                assert r.data[:n] == s.data, f"{a} -> {b}: frame changed on the wire"
                ser_ns = (max(n, ETH_ZLEN) + 24) * 8 / rate * 1e9
                assert r.ts_ns >= s.ts_ns + ser_ns + delay_ns - 2, f"{a} -> {b}: arrived before it could"
        checked += len(tx_a)
    if run.peer:
        assert checked > 0


# -- 4. timestamps and file format -------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ALL)
def test_nanosecond_format_and_ordered_timestamps(runs, scenario):
    run = runs(scenario)
    sub_us = 0
    n = 0
    for node in sorted(run.devices):
        raw = run.path(node).read_bytes()[:4]
        assert raw == bytes.fromhex("4d3cb2a1"), f"{node}: magic {raw.hex()} (want nanosecond pcap)"
        pf = run.pcap(node)
        assert pf.magic == PCAP_MAGIC_NS and pf.version == (2, 4) and pf.linktype == 1, node
        assert pf.snaplen >= 65535, node
        prev = 0
        for i, r in enumerate(pf.recs):
            assert r.ts_ns >= prev, f"{node}: frame {i + 1} at {r.ts_ns} ns before frame {i} at {prev} ns"
            assert r.ts_ns <= run.res.sim_time_s * 1e9 + 1, f"{node}: frame {i + 1} after the end of the run"
            prev = r.ts_ns
            sub_us += r.ts_ns % 1000 != 0
            n += 1
        # dpkt, reading the same file, agrees on every timestamp
        with open(run.path(node), "rb") as f:
            ts = [t for t, _ in dpkt.pcap.Reader(f)]
        assert [round(t * 10**9) for t in ts] == [r.ts_ns for r in pf.recs], node
    assert n > 0
    assert sub_us > 0, "no timestamp uses the nanosecond digits"


# -- the checks can fail -----------------------------------------------------------------------------

def _corrupt_copy(run: Run, node: str, dst: Path, offset_in_frame: int, frame_pred) -> Path:
    """Copy a capture, flipping one byte in the first frame that ``frame_pred`` accepts."""
    b = bytearray(run.path(node).read_bytes())
    off = 24
    while off < len(b):
        incl = struct.unpack_from("<I", b, off + 8)[0]
        frame = bytes(b[off + 16: off + 16 + incl])
        if frame_pred(frame):
            b[off + 16 + offset_in_frame] ^= 0x01
            dst.write_bytes(bytes(b))
            return dst
        off += 16 + incl
    raise AssertionError("no frame to corrupt")


def test_checkers_catch_corruption(runs, tmp_path):
    """A single flipped bit in a header is caught by this file's parsers and by tshark."""
    run = runs("fragmentation")
    is_udp = lambda f: f[12:14] == b"\x08\x00" and f[23] == 17 and not (struct.unpack_from("!H", f, 20)[0] & 0x3FFF)
    is_frag = lambda f: f[12:14] == b"\x08\x00" and bool(struct.unpack_from("!H", f, 20)[0] & 0x2000)
    cases = {
        "ipsum": _corrupt_copy(run, "a:eth0", tmp_path / "ip.pcap", 14 + 8, is_udp),        # TTL
        "udpsum": _corrupt_copy(run, "a:eth0", tmp_path / "udp.pcap", 14 + 20 + 1, is_udp),  # source port
        "fragsum": _corrupt_copy(run, "a:eth0", tmp_path / "frag.pcap", 14 + 20 + 100, is_frag),  # payload
    }
    bad = Run("corrupt", tmp_path, run.res, run.counters, dict(run.devices), dict(run.peer))
    for key, path in cases.items():
        node = f"x:{path.stem}"
        (tmp_path / "pcap").mkdir(exist_ok=True)
        shutil.copy(path, tmp_path / "pcap" / f"x-{path.stem}.pcap")
        bad.devices[node] = run.devices["a:eth0"]
        with pytest.raises(AssertionError, match="checksum"):
            check_file(bad, node)
        if TSHARK is not None:
            rows = tshark_rows(path)
            statuses = [s for r in rows for k in ("ip.checksum.status", "udp.checksum.status")
                        for s in r[k]]
            assert "0" in statuses, f"tshark missed the corrupted {key}"


def test_udp_checksum_zero_is_sent_as_ffff():
    """RFC 768: a computed UDP checksum of 0 goes on the wire as 0xFFFF (0 means none)."""
    from simnet.models.linux.skb import IPPROTO_UDP, Skb
    from simnet.results.pcap import frame_bytes

    skb = Skb()
    skb.eth_dst, skb.eth_src = 0x020000000002, 0x020000000001
    skb.saddr, skb.daddr = 0x0A000001, 0x0A000002
    skb.proto = IPPROTO_UDP
    skb.dport, skb.udp_len = 9000, 8 + 33
    skb.l3_len = 20 + skb.udp_len
    for sport in range(1, 65536):
        pseudo = struct.pack("!IIBBH", skb.saddr, skb.daddr, 0, 17, skb.udp_len)
        if int.from_bytes(pseudo + struct.pack("!HHHH", sport, 9000, skb.udp_len, 0), "big") % 0xFFFF == 0:
            break
    skb.sport = sport
    f = frame_bytes(skb)
    assert f[14 + 26: 14 + 28] == b"\xff\xff"
    assert sum_ok(f[14 + 12: 14 + 20] + struct.pack("!BBH", 0, 17, skb.udp_len) + f[14 + 20:])
    skb.sport = sport + 1   # an ordinary one verifies too
    f = frame_bytes(skb)
    assert f[14 + 26: 14 + 28] not in (b"\0\0", b"\xff\xff")
    assert sum_ok(f[14 + 12: 14 + 20] + struct.pack("!BBH", 0, 17, skb.udp_len) + f[14 + 20:])
