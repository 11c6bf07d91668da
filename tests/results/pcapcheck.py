"""Checkers for simnet's pcap captures, written with parsers that are not simnet's (shared by
test_pcap.py, test_pcap_tshark.py and test_pcap_tcp.py).


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


def runs_factory(base: Path):
    """``runs(name)``: the scenario run once with captures on, cached (see the module docstring)."""
    cache: dict[str, Run] = {}

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
