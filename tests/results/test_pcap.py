"""pcap captures (simnet.results.pcap) checked with parsers that are not simnet's.

Every scenario is run once with captures on (``simnet.run(path, pcap_dir=...)``, then
``Results.write`` for ``counters.json``) and its files are read three ways:

* a pcap reader written here (file and record headers, timestamps);
* dpkt (Ethernet/ARP/IPv4/UDP/ICMP decoding), with every checksum recomputed here, *not* with
  ``simnet.results.pcap.ip_checksum``: a buffer's 16-bit one's-complement sum is the buffer read
  as one big-endian integer modulo 0xFFFF (2**16 = 1 mod 0xFFFF), so a header, a UDP datagram
  with its pseudo-header or an ICMP message verifies iff that integer is 0 mod 0xFFFF;
* tshark (when installed), with checksum validation and IP reassembly on.

Telling transmitted from received frames on a device (tcpdump on a device sees both; the
pcap format does not say which is which). The rule, from the topology in ``Results.graph``:

* ``lo``: the loopback driver transmits and receives every packet, libpcap keeps one copy: each
  frame counts once as transmitted *and* once as received.
* a bridge port (a device with a ``master``) transmits whatever the bridge forwards, whatever
  its source MAC, and receives only what its peer (the other end of its veth or wire) sent.
  The peer of every port in these scenarios is not itself a bridge port, so the peer only
  sends frames with its own source MAC: a frame is *received* iff its source MAC is the peer's.
* every other device (container/host veth end, NIC, the bridge device) only transmits frames
  it originates: a frame is *transmitted* iff its source MAC is the device's own.

The rule is then checked independently of MACs: on a veth pair the frames one end transmits are
exactly the frames the other end receives (same bytes, same time); on a wire the frames one NIC
transmits are the frames the other receives (same bytes up to the 60-byte pad, in the same
order, after at least the serialisation and propagation delay).
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt
import pytest

import simnet

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"

PCAP_MAGIC_NS = 0xA1B23C4D
BROADCAST = b"\xff" * 6
ZERO_MAC = b"\0" * 6
ETH_ZLEN = 60

# -- extra scenarios, written to a tmp dir -------------------------------------------------------

# ICMP errors: port unreachable (nobody listens: ``listen: false``), also for a fragmented
# datagram (reassembled, then quoted, truncated to 576 bytes), and "fragmentation needed" from
# the host routing a DF datagram from front (MTU 1500) to back (MTU 1000). The fragmented
# datagram is also re-fragmented by the host for back's MTU. The 101-byte payload makes the
# ICMP message odd-sized (its checksum pads a zero byte).
ICMP_YAML = """\
name: icmp-errors
seed: 1
hosts:
  host: {daemon: {iptables: false}}
networks:
  front: {driver: bridge, subnet: 10.10.0.0/24}
  back: {driver: bridge, subnet: 10.20.0.0/24, mtu: 1000}
containers:
  web: {networks: [front]}
  db: {networks: [back]}
workloads:
  - {name: closed, app: udp, from: web, to: db, port: 9999, listen: false, count: 3, payload: 101, interval: 1ms}
  - {name: closed_frag, app: udp, from: web, to: db, port: 9998, listen: false, count: 2, payload: 3000,
     interval: 1ms, start: 10ms}
  - {name: toobig, app: udp, from: web, to: db, port: 9000, count: 4, payload: 1400, interval: 1ms, start: 20ms}
"""

# Traffic in both directions at once, at CPU speed: between two containers on a 2-CPU host
# (veth, bridge) and between that host and a 1-CPU host over a wire (NICs that transmit and
# receive at the same time), with fragments both ways.
BIDIR_YAML = """\
name: bidir
seed: 1
hosts:
  host: {cpus: 2}
  far: {cpus: 1}
links:
  - {endpoints: [host, far], delay: 5us}
containers:
  a: {host: host}
  b: {host: host}
workloads:
  - {name: ab, app: udp, from: a, to: b, port: 9000, count: 300, payload: 1000, interval: 0}
  - {name: ba, app: udp, from: b, to: a, port: 9001, count: 300, payload: 1000, interval: 0}
  - {name: hf, app: udp, from: host, to: far, port: 9002, count: 300, payload: 1472, interval: 0, start: 20ms}
  - {name: fh, app: udp, from: far, to: host, port: 9003, count: 300, payload: 1472, interval: 0, start: 20ms}
  - {name: rr, app: udp_rr, from: far, to: host, port: 9004, count: 200, request: 3000, response: 3000, start: 40ms}
  - {name: af, app: udp, from: a, to: far, port: 9005, count: 300, payload: 4, interval: 0, start: 60ms}
"""

TANDEM_COUNT = 2000


def _tandem_small(tmp: Path) -> Path:
    text = (SCENARIOS / "udp-tandem.yaml").read_text()
    assert "count: 200000" in text
    # the reduced tandem, plus a burst at CPU speed so that the 100 Mbit/s link's qdisc fills
    text = text.replace("count: 200000", f"count: {TANDEM_COUNT}")
    text += ("  - {name: burst, app: udp, from: h1, to: h4, port: 9002, count: 200, payload: 1472, interval: 0,\n"
             "     start: 400ms}\n")
    p = tmp / "udp-tandem-small.yaml"
    p.write_text(text)
    return p


def _scenario_path(name: str, tmp: Path) -> Path:
    if name == "icmp-errors":
        p = tmp / "icmp-errors.yaml"
        p.write_text(ICMP_YAML)
        return p
    if name == "bidir":
        p = tmp / "bidir.yaml"
        p.write_text(BIDIR_YAML)
        return p
    if name == "udp-tandem-small":
        return _tandem_small(tmp)
    return SCENARIOS / f"{name}.yaml"


ALL = ["quickstart", "fragmentation", "arp-cold-start", "two-networks", "host-vs-bridge", "none",
       "udp-tandem-small", "icmp-errors", "bidir"]
TSHARK_SCENARIOS = ["quickstart", "fragmentation", "arp-cold-start", "icmp-errors", "two-networks",
                    "udp-tandem-small", "bidir"]


# -- reading -------------------------------------------------------------------------------------

@dataclass
class Rec:
    ts_ns: int
    data: bytes
    orig_len: int


@dataclass
class PcapFile:
    magic: int
    version: tuple[int, int]
    snaplen: int
    linktype: int
    recs: list[Rec]


def read_pcap(path: Path) -> PcapFile:
    """A little-endian pcap reader (what simnet writes), independent of dpkt and of simnet."""
    b = path.read_bytes()
    assert len(b) >= 24, f"{path.name}: no file header"
    magic, vmaj, vmin, _tz, _sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", b, 0)
    recs = []
    off = 24
    while off < len(b):
        assert off + 16 <= len(b), f"{path.name}: truncated record header at {off}"
        sec, frac, incl, orig = struct.unpack_from("<IIII", b, off)
        off += 16
        assert incl <= orig and incl <= snaplen, f"{path.name}: record at {off}: incl {incl} orig {orig}"
        assert off + incl <= len(b), f"{path.name}: truncated record at {off}"
        assert frac < 1_000_000_000, f"{path.name}: fraction {frac} is not nanoseconds"
        recs.append(Rec(sec * 1_000_000_000 + frac, b[off:off + incl], orig))
        off += incl
    return PcapFile(magic, (vmaj, vmin), snaplen, linktype, recs)


def sum_ok(data: bytes) -> bool:
    """The Internet checksum over ``data`` (checksum field included) verifies."""
    if len(data) % 2:
        data += b"\0"
    return int.from_bytes(data, "big") % 0xFFFF == 0


def mac_bytes(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


@dataclass
class Run:
    name: str
    out: Path
    res: Any
    counters: dict
    devices: dict[str, dict] = field(default_factory=dict)   # "<netns>:<ifname>" -> graph attrs
    peer: dict[str, str] = field(default_factory=dict)       # veth peer / other end of the wire
    wire_delay: dict[str, float] = field(default_factory=dict)
    _files: dict[str, PcapFile] = field(default_factory=dict)

    def path(self, node: str) -> Path:
        ns, ifname = node.split(":", 1)
        return self.out / "pcap" / f"{ns}-{ifname}.pcap"

    def pcap(self, node: str) -> PcapFile:
        if node not in self._files:
            self._files[node] = read_pcap(self.path(node))
        return self._files[node]

    def dev_counters(self, node: str) -> dict[str, int]:
        ns, ifname = node.split(":", 1)
        return self.counters[ns]["dev"][ifname]

    def mac(self, node: str) -> bytes:
        return mac_bytes(self.devices[node]["mac"])

    def ips_of_mac(self) -> dict[bytes, set[str]]:
        m: dict[bytes, set[str]] = defaultdict(set)
        for n, d in self.devices.items():
            for a in d.get("addrs", []):
                m[self.mac(n)].add(str(ipaddress.IPv4Interface(a).ip))
        return m

    def subnets(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.IPv4Interface(a).network for d in self.devices.values() for a in d.get("addrs", [])]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    cache: dict[str, Run] = {}
    base = tmp_path_factory.mktemp("pcap")

    def get(name: str) -> Run:
        if name not in cache:
            out = base / name
            out.mkdir()
            res = simnet.run(_scenario_path(name, base), pcap_dir=out / "pcap")
            res.write(out, plots=False)
            counters = json.loads((out / "counters.json").read_text())
            r = Run(name, out, res, counters)
            g = res.graph
            for n, d in g.nodes(data=True):
                if d["kind"] != "netns":
                    r.devices[n] = d
            for n, d in r.devices.items():
                if "peer" in d:
                    r.peer[n] = d["peer"]
            for a, b, d in g.edges(data=True):
                if d.get("kind") == "wire":
                    r.peer[a] = b
                    r.wire_delay[a] = d.get("delay_s", 0.0)
            cache[name] = r
        return cache[name]

    return get


# -- tx/rx classification (see the module docstring) -------------------------------------------

def classify(run: Run, node: str) -> tuple[list[Rec], list[Rec]]:
    """(transmitted, received) frames of one device's capture."""
    d = run.devices[node]
    recs = run.pcap(node).recs
    if d["kind"] == "loopback":
        return list(recs), list(recs)
    if d.get("master"):
        p = run.peer[node]
        assert not run.devices[p].get("master"), f"{node}: a port whose peer is a port: the rule does not apply"
        pmac = run.mac(p)
        rx = [r for r in recs if r.data[6:12] == pmac]
        tx = [r for r in recs if r.data[6:12] != pmac]
        return tx, rx
    mac = run.mac(node)
    tx = [r for r in recs if r.data[6:12] == mac]
    rx = [r for r in recs if r.data[6:12] != mac]
    return tx, rx


def l3_len(data: bytes) -> int:
    """Length the kernel counts beyond the Ethernet header: IPv4 total length or the ARP body."""
    et = struct.unpack_from("!H", data, 12)[0]
    if et == 0x0800:
        return struct.unpack_from("!H", data, 16)[0]
    assert et == 0x0806, f"unexpected ethertype {et:#x}"
    return 28


# -- 1. dpkt decoding, checksums, reassembly, ARP ---------------------------------------------------

@dataclass
class Frag:
    off: int
    mf: bool
    payload: bytes


@dataclass
class FileStats:
    frames: int = 0
    udp: Counter = field(default_factory=Counter)          # UDP length of whole (unfragmented) datagrams
    reassembled: Counter = field(default_factory=Counter)  # UDP length of reassembled datagrams
    fragments: int = 0
    arp: Counter = field(default_factory=Counter)
    icmp: Counter = field(default_factory=Counter)          # (type, code)
    dports: Counter = field(default_factory=Counter)        # UDP datagrams (whole or reassembled) by port


def check_icmp(name: str, outer_src: bytes, outer_dst: bytes, msg: bytes, st: FileStats) -> None:
    assert sum_ok(msg), f"{name}: ICMP checksum"
    itype, code = msg[0], msg[1]
    assert (itype, code) in {(3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (11, 0), (11, 1)}, f"{name}: ICMP {itype}/{code}"
    st.icmp[(itype, code)] += 1
    if (itype, code) == (3, 4):
        mtu = struct.unpack_from("!H", msg, 6)[0]
        assert 68 <= mtu < 65536, f"{name}: next-hop MTU {mtu}"
    else:
        assert msg[4:8] == b"\0\0\0\0", f"{name}: ICMP unused field"
    q = msg[8:]
    assert len(q) >= 28 and q[0] == 0x45, f"{name}: quote too short or not IPv4"
    assert sum_ok(q[:20]), f"{name}: quoted IP header checksum"
    qlen = struct.unpack_from("!H", q, 2)[0]
    # icmp_send quotes the offending packet up to a 576-byte error
    assert len(q) == min(qlen, 576 - 28), f"{name}: quoted {len(q)} of {qlen} bytes"
    # the error goes back to the offending packet's source
    assert q[12:16] == outer_dst, f"{name}: quote source {q[12:16].hex()} is not the error's destination"
    if itype == 3 and code == 3:
        assert q[16:20] == outer_src, f"{name}: port unreachable not from the quoted destination"
    if itype == 3 and code == 4:
        assert qlen > mtu and struct.unpack_from("!H", q, 6)[0] & 0x4000, f"{name}: frag-needed about {qlen} B/no DF"
    qoff = struct.unpack_from("!H", q, 6)[0] & 0x1FFF
    assert qoff == 0, f"{name}: ICMP error about a non-first fragment"
    if q[9] == 17:
        ulen = struct.unpack_from("!H", q, 24)[0]
        assert ulen == qlen - 20, f"{name}: quoted UDP length {ulen} vs IP {qlen}"
        if len(q) == qlen:   # the whole datagram is quoted: its UDP checksum must verify
            assert sum_ok(q[12:20] + struct.pack("!BBH", 0, 17, ulen) + q[20:]), f"{name}: quoted UDP checksum"


def check_file(run: Run, node: str) -> FileStats:
    """Decode one capture with dpkt and verify every header independently."""
    path = run.path(node)
    name = f"{run.name}/{path.name}"
    dev = run.devices[node]
    mtu = dev["mtu"]
    known_macs = {run.mac(n) for n in run.devices}
    ips_of_mac = run.ips_of_mac()
    subnets = run.subnets()
    st = FileStats()
    groups: dict[tuple, list[Frag]] = defaultdict(list)
    with open(path, "rb") as f:
        rdr = dpkt.pcap.Reader(f)
        assert rdr.datalink() == dpkt.pcap.DLT_EN10MB
        for i, (ts, buf) in enumerate(rdr):
            where = f"{name} frame {i + 1}"
            st.frames += 1
            eth = dpkt.ethernet.Ethernet(buf)
            assert eth.src in known_macs, f"{where}: unknown source MAC {eth.src.hex()}"
            assert eth.dst in known_macs or eth.dst == BROADCAST, f"{where}: unknown destination {eth.dst.hex()}"
            if dev["kind"] == "loopback":
                assert eth.src == eth.dst == ZERO_MAC, f"{where}: lo frame with MACs"
            if eth.type == dpkt.ethernet.ETH_TYPE_ARP:
                arp = eth.data
                assert isinstance(arp, dpkt.arp.ARP), where
                assert (arp.hrd, arp.pro, arp.hln, arp.pln) == (1, 0x0800, 6, 4), where
                assert len(buf) in (42, ETH_ZLEN), f"{where}: ARP frame of {len(buf)} bytes"
                assert buf[42:] == bytes(len(buf) - 42), f"{where}: padding not zero"
                assert arp.sha == eth.src, f"{where}: ARP sender MAC is not the frame's source"
                spa = str(ipaddress.IPv4Address(arp.spa))
                tpa = str(ipaddress.IPv4Address(arp.tpa))
                assert spa in ips_of_mac[arp.sha], f"{where}: {spa} is not an address of {arp.sha.hex()}"
                net = next(n for n in subnets if ipaddress.IPv4Address(spa) in n)
                assert ipaddress.IPv4Address(tpa) in net, f"{where}: ARP for {tpa} off {net}"
                if arp.op == dpkt.arp.ARP_OP_REQUEST:
                    assert arp.tha == ZERO_MAC, f"{where}: request with a target MAC"
                    if eth.dst != BROADCAST:   # a unicast probe (NUD_PROBE) goes to the cached owner
                        assert tpa in ips_of_mac[eth.dst], f"{where}: unicast probe for {tpa} to {eth.dst.hex()}"
                    st.arp["request"] += 1
                else:
                    assert arp.op == dpkt.arp.ARP_OP_REPLY, f"{where}: ARP op {arp.op}"
                    assert arp.tha == eth.dst != BROADCAST, f"{where}: reply target MAC"
                    assert tpa in ips_of_mac[arp.tha], f"{where}: reply to {tpa} at {arp.tha.hex()}"
                    st.arp["reply"] += 1
                continue
            assert eth.type == dpkt.ethernet.ETH_TYPE_IP, f"{where}: ethertype {eth.type:#x}"
            raw = buf[14:]
            assert raw[0] == 0x45, f"{where}: not IPv4 without options"
            ip = eth.data
            assert isinstance(ip, dpkt.ip.IP), where
            tot = struct.unpack_from("!H", raw, 2)[0]
            assert ip.len == tot and 20 <= tot <= len(raw), f"{where}: IP length {tot} in {len(raw)} bytes"
            if tot < len(raw):   # only an Ethernet minimum-size pad, zeros
                assert len(buf) == ETH_ZLEN and raw[tot:] == bytes(len(raw) - tot), f"{where}: trailing bytes"
            assert tot <= mtu, f"{where}: {tot}-byte packet on a {mtu}-byte MTU device"
            assert sum_ok(raw[:20]), f"{where}: IP header checksum"
            assert ip.ttl > 0, where
            pkt = raw[:tot]
            flags_off = struct.unpack_from("!H", pkt, 6)[0]
            mf, off = bool(flags_off & 0x2000), (flags_off & 0x1FFF) * 8
            assert not flags_off & 0x8000, f"{where}: reserved flag"
            if mf or off:
                assert not flags_off & 0x4000, f"{where}: DF fragment"
                if mf:
                    assert (tot - 20) % 8 == 0, f"{where}: non-last fragment of {tot - 20} bytes"
                st.fragments += 1
                groups[(pkt[12:16], pkt[16:20], pkt[9], pkt[4:6])].append(Frag(off, mf, pkt[20:]))
                continue
            if pkt[9] == 17:
                udp = ip.data
                assert isinstance(udp, dpkt.udp.UDP), where
                ulen = struct.unpack_from("!H", pkt, 24)[0]
                assert udp.ulen == ulen == tot - 20, f"{where}: UDP length {ulen} in a {tot}-byte packet"
                assert udp.sum != 0, f"{where}: UDP without checksum"
                pseudo = pkt[12:20] + struct.pack("!BBH", 0, 17, ulen)
                assert sum_ok(pseudo + pkt[20:]), f"{where}: UDP checksum"
                st.udp[ulen] += 1
                st.dports[udp.dport] += 1
            elif pkt[9] == 1:
                assert isinstance(ip.data, dpkt.icmp.ICMP), where
                check_icmp(where, pkt[12:16], pkt[16:20], pkt[20:], st)
            else:
                pytest.fail(f"{where}: IP protocol {pkt[9]}")
    # reassembly, by (source, destination, protocol, IP id)
    for key, frags in groups.items():
        frags.sort(key=lambda f: f.off)
        where = f"{name}: datagram id {int.from_bytes(key[3], 'big'):#06x}"
        assert frags[0].off == 0, f"{where}: no first fragment"
        pos = 0
        data = b""
        for fr in frags:
            assert fr.off == pos, f"{where}: fragment at {fr.off}, expected {pos} (gap or overlap)"
            data += fr.payload
            pos += len(fr.payload)
        assert [f.mf for f in frags] == [True] * (len(frags) - 1) + [False], f"{where}: MF flags"
        assert 20 + len(data) <= 65535, where
        if key[2] == 17:
            ulen = struct.unpack_from("!H", data, 4)[0]
            assert ulen == len(data), f"{where}: UDP length {ulen}, reassembled {len(data)} bytes"
            assert data[6:8] != b"\0\0", f"{where}: UDP without checksum"
            assert sum_ok(key[0] + key[1] + struct.pack("!BBH", 0, 17, ulen) + data), f"{where}: UDP checksum"
            st.reassembled[ulen] += 1
            st.dports[struct.unpack_from("!H", data, 2)[0]] += 1
    return st


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


# -- 3. and 5. tshark ----------------------------------------------------------------------------------

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (shutil.which('tshark') is None)")
if TSHARK is None:  # pragma: no cover - depends on the machine
    print("test_pcap: tshark not found, the tshark checks are skipped")

TS_FIELDS = ["frame.number", "frame.protocols", "_ws.expert.severity", "_ws.expert.message", "_ws.malformed",
             "ip.checksum.status", "udp.checksum.status", "icmp.checksum.status", "icmp.type", "icmp.code",
             "icmp.mtu", "ip.src", "ip.dst", "ip.len", "udp.srcport", "udp.dstport", "udp.length"]
_SEV_WARN = 0x00600000          # PI_WARN; PI_ERROR is 0x00800000


def tshark_rows(path: Path, *opts: str, display: str | None = None) -> list[dict[str, list[str]]]:
    cmd = [TSHARK, "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
           *opts, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=|"]
    if display:
        cmd += ["-Y", display]
    for f in TS_FIELDS:
        cmd += ["-e", f]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"tshark failed on {path.name}: {p.stderr}"
    rows = []
    for line in p.stdout.splitlines():
        vals = line.split("|")
        assert len(vals) == len(TS_FIELDS), line
        rows.append({k: (v.split(",") if v else []) for k, v in zip(TS_FIELDS, vals)})
    return rows


@needs_tshark
@pytest.mark.parametrize("scenario", TSHARK_SCENARIOS)
def test_tshark_finds_nothing_wrong(runs, scenario):
    run = runs(scenario)
    frames = 0
    for node in sorted(run.devices):
        n_recs = len(run.pcap(node).recs)
        if n_recs == 0:
            continue
        rows = tshark_rows(run.path(node))   # IP reassembly on (tshark's default)
        assert len(rows) == n_recs, f"{node}: tshark read {len(rows)} of {n_recs} frames"
        for r in rows:
            where = f"{scenario}/{run.path(node).name} frame {r['frame.number'][0]}"
            assert not r["_ws.malformed"], f"{where}: malformed {r['_ws.expert.message']}"
            assert "malformed" not in r["frame.protocols"][0], where
            sev = [int(s, 0) for s in r["_ws.expert.severity"]]
            assert all(s < _SEV_WARN for s in sev), f"{where}: {r['_ws.expert.message']}"
            # 1 = good; every IP header (also those quoted in ICMP errors) is checked
            assert all(s == "1" for s in r["ip.checksum.status"]), f"{where}: IP checksum {r['ip.checksum.status']}"
            assert all(s == "1" for s in r["icmp.checksum.status"]), f"{where}: ICMP checksum"
            udp = r["udp.checksum.status"]
            if r["icmp.type"]:
                # a UDP header quoted in an ICMP error: tshark can only verify a complete datagram
                assert all(s in ("1", "2") for s in udp), where
            else:
                assert all(s == "1" for s in udp), f"{where}: UDP checksum {udp}"
        frames += len(rows)
    assert frames > 0


@needs_tshark
def test_tshark_reassembles_the_fragmented_datagrams(runs):
    run = runs("fragmentation")
    veths = sorted(n for n, d in run.devices.items() if d["kind"] == "veth")
    assert len(veths) == 4
    for node in veths:
        path = run.path(node)
        whole = tshark_rows(path, "-o", "ip.defragment:TRUE", display="udp")
        assert Counter(int(r["udp.length"][0]) for r in whole) == Counter({1480: 100, 1481: 100, 4008: 100})
        assert all(r["udp.checksum.status"] == ["1"] for r in whole), "reassembled UDP checksum"
        # without reassembly only the unfragmented datagrams decode as UDP
        plain = tshark_rows(path, "-o", "ip.defragment:FALSE", display="udp && ip.flags.mf == 0")
        assert len(plain) == 100
        frags = tshark_rows(path, "-o", "ip.defragment:FALSE", display="ip.flags.mf == 1 || ip.frag_offset > 0")
        assert len(frags) == 100 * 2 + 100 * 3


@needs_tshark
def test_tshark_decodes_icmp_errors_with_the_quoted_packet(runs):
    run = runs("icmp-errors")
    web = run.devices["web:eth0"]
    web_ip = str(ipaddress.IPv4Interface(web["addrs"][0]).ip)
    db_ip = str(ipaddress.IPv4Interface(run.devices["db:eth0"]["addrs"][0]).ip)
    gw_ip = str(ipaddress.IPv4Interface(run.devices["host:br-front"]["addrs"][0]).ip)
    rows = tshark_rows(run.path("web:eth0"), display="icmp")
    by = Counter()
    for r in rows:
        where = f"web-eth0.pcap frame {r['frame.number'][0]}"
        assert not r["_ws.malformed"], where
        assert r["frame.protocols"][0].endswith("ip:icmp:ip:udp:data") or \
            r["frame.protocols"][0].endswith("ip:icmp:ip:udp"), f"{where}: {r['frame.protocols']}"
        # outer header, then the quoted one
        assert len(r["ip.src"]) == 2 and r["ip.dst"][0] == web_ip, where
        assert (r["ip.src"][1], r["ip.dst"][1]) == (web_ip, db_ip), f"{where}: quoted {r['ip.src']} {r['ip.dst']}"
        assert r["ip.checksum.status"] == ["1", "1"], where
        outer_len, inner_len = int(r["ip.len"][0]), int(r["ip.len"][1])
        assert outer_len == 28 + min(inner_len, 548), where
        t, c = int(r["icmp.type"][0]), int(r["icmp.code"][0])
        dport = int(r["udp.dstport"][0])
        if (t, c) == (3, 3):
            assert r["ip.src"][0] == db_ip, where
            assert dport in (9999, 9998), where
            assert inner_len == {9999: 20 + 8 + 101, 9998: 20 + 8 + 3000}[dport], where
            assert int(r["udp.length"][0]) == inner_len - 20, where
        else:
            assert (t, c) == (3, 4), where
            assert r["ip.src"][0] == gw_ip, f"{where}: frag-needed from {r['ip.src'][0]}"
            assert r["icmp.mtu"] == ["1000"], where
            assert dport == 9000 and inner_len == 20 + 8 + 1400, where
        by[(t, c, dport)] += 1
    # every datagram to a closed port earns an error (within the rate limit's burst of 6); one
    # "fragmentation needed" for the first DF datagram, after which web fragments for MTU 1000
    assert by == Counter({(3, 3, 9999): 3, (3, 3, 9998): 2, (3, 4, 9000): 1}), by
    ic = run.counters
    assert sum(by.values()) == ic["web"]["snmp"]["Icmp"]["InDestUnreachs"]
    assert ic["db"]["snmp"]["Icmp"]["OutDestUnreachs"] == 5 and ic["host"]["snmp"]["Icmp"]["OutDestUnreachs"] == 1
    # and the same errors decode on db's side and through the bridge
    assert len(tshark_rows(run.path("db:eth0"), display="icmp.type == 3 && icmp.code == 3")) == 5
    st = check_file(run, "web:eth0")
    assert st.icmp == Counter({(3, 3): 5, (3, 4): 1})
    # after the error, web fragments for the path MTU: 1428 = 996 + 452 bytes of IP
    assert st.reassembled[1408] == 3


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
