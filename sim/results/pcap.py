"""pcap captures of simulated frames, as tcpdump would write them on each device.

Frames are rebuilt from an :class:`~simnet.models.linux.skb.Skb`'s headers: Ethernet, ARP,
IPv4 (with its header checksum), UDP (checksum over the pseudo-header and the datagram; the
payload is zeros), TCP (sequence and acknowledgement numbers modulo 2^32, flags, the window
field, options laid out as Linux's ``tcp_options_write`` does — MSS, SACK-permitted +
timestamps, NOP + window scale on a SYN; NOP NOP + timestamps and NOP NOP + SACK blocks
otherwise — and the checksum over the pseudo-header and segment) and ICMP errors quoting the
offending packet; a VXLAN packet carries the VXLAN header and the inner frame's bytes (sliced
across outer fragments), an ESP packet its SPI and sequence number followed by zeros (the
ciphertext). A TSO/GSO super-segment captured before segmentation is written as the one
large packet tcpdump shows. Files use the
nanosecond-resolution pcap format (magic ``0xa1b23c4d``), link type Ethernet.
"""

from __future__ import annotations

import heapq
import struct
from pathlib import Path
from typing import Any, BinaryIO

from simnet.models.linux.skb import ETH_P_ARP, IPPROTO_ESP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Skb

__all__ = ["PcapWriter", "frame_bytes", "ip_checksum"]

_LINKTYPE_ETHERNET = 1


def ip_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _mac(n: int) -> bytes:
    return n.to_bytes(6, "big")


def _ip_header(skb: Skb, l3_len: int, frag_off: int, mf: bool, df: bool) -> bytes:
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | ((frag_off // 8) & 0x1FFF)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, skb.tos, l3_len, skb.ip_id, flags, skb.ttl,
                      IPPROTO_ESP if skb.esp is not None else skb.proto, 0,
                      skb.saddr.to_bytes(4, "big"), skb.daddr.to_bytes(4, "big"))
    c = ip_checksum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:]


def _udp_header(skb: Skb, payload: bytes = b"") -> bytes:
    ulen = skb.udp_len
    pseudo = skb.saddr.to_bytes(4, "big") + skb.daddr.to_bytes(4, "big") + struct.pack("!BBH", 0, IPPROTO_UDP, ulen)
    hdr = struct.pack("!HHHH", skb.sport, skb.dport, ulen, 0)
    c = ip_checksum(pseudo + hdr + payload) or 0xFFFF     # a zero payload adds nothing to the sum
    return struct.pack("!HHHH", skb.sport, skb.dport, ulen, c)


def _vxlan_datagram(skb: Skb) -> bytes:
    """The whole outer UDP datagram of a VXLAN packet: UDP header, VXLAN header (flags I, VNI), inner frame."""
    payload = struct.pack("!II", 0x08000000, (skb.vni & 0xFFFFFF) << 8) + frame_bytes(skb.encap)
    return _udp_header(skb, payload) + payload


def _tcp_options(skb: Skb) -> bytes:
    so = skb.syn_opts
    if so is not None:
        mss, sack_ok, ts_ok, wscale, _n = so
        out = struct.pack("!BBH", 2, 4, mss)
        if ts_ok:
            out += (struct.pack("!BB", 4, 2) if sack_ok else b"\x01\x01") + struct.pack("!BBII", 8, 10, skb.tsval,
                                                                                     skb.tsecr)
        elif sack_ok:
            out += b"\x01\x01\x04\x02"
        if wscale >= 0:
            out += struct.pack("!BBBB", 1, 3, 3, wscale)
        return out
    out = b""
    sack_len = 4 + 8 * len(skb.sack) if skb.sack else 0
    if skb.tcp_hlen - 20 - sack_len == 12:          # NOP NOP TIMESTAMP
        out = struct.pack("!BBBBII", 1, 1, 8, 10, skb.tsval, skb.tsecr)
    if skb.sack:
        out += struct.pack("!BBBB", 1, 1, 5, 2 + 8 * len(skb.sack))
        for a, b in skb.sack:
            out += struct.pack("!II", a & 0xFFFFFFFF, b & 0xFFFFFFFF)
    return out


def _tcp_segment(skb: Skb, body_len: int) -> bytes:
    hlen = skb.tcp_hlen
    opts = _tcp_options(skb)
    opts += bytes(hlen - 20 - len(opts))
    off_flags = ((hlen // 4) << 12) | (skb.tcp_flags & 0x1FF)
    hdr = struct.pack("!HHIIHHHH", skb.sport, skb.dport, skb.seq & 0xFFFFFFFF, skb.ack_seq & 0xFFFFFFFF,
                      off_flags, skb.window & 0xFFFF, 0, 0) + opts
    pseudo = skb.saddr.to_bytes(4, "big") + skb.daddr.to_bytes(4, "big") + struct.pack("!BBH", 0, IPPROTO_TCP,
                                                                                        body_len)
    c = ip_checksum(pseudo + hdr)           # a zero payload adds nothing to the sum
    hdr = hdr[:16] + struct.pack("!H", c) + hdr[18:]
    return hdr + bytes(body_len - hlen)


def _ip_packet(skb: Skb) -> bytes:
    """The L3 packet (IP header and payload) of ``skb``."""
    l3 = skb.l3_len
    hdr = _ip_header(skb, l3, skb.frag_off, skb.mf, skb.df)
    body_len = l3 - 20
    if skb.esp is not None:
        spi, seq, _pad = skb.esp
        body = struct.pack("!II", spi, seq) + bytes(body_len - 8)     # IV, ciphertext, trailer, ICV
    elif skb.encap is not None:
        body = _vxlan_datagram(skb)[skb.frag_off: skb.frag_off + body_len]
    elif skb.proto == IPPROTO_UDP:
        if skb.frag_off == 0:
            body = _udp_header(skb) + bytes(max(0, body_len - 8))
            body = body[:body_len]
        else:
            body = bytes(body_len)
    elif skb.proto == IPPROTO_TCP and skb.frag_off == 0:
        body = _tcp_segment(skb, body_len)
    elif skb.proto == IPPROTO_ICMP:
        quote = skb.icmp_quote
        qbytes = _ip_packet(quote)[: body_len - 8] if quote is not None else b""
        rest = struct.pack("!HH", 0, skb.udp_len & 0xFFFF) if (skb.icmp_type == 3 and skb.icmp_code == 4) else bytes(4)
        msg = struct.pack("!BBH", skb.icmp_type, skb.icmp_code, 0) + rest + qbytes
        msg += bytes(max(0, body_len - len(msg)))
        c = ip_checksum(msg)
        body = msg[:2] + struct.pack("!H", c) + msg[4:]
    else:
        body = bytes(body_len)
    return hdr + body


def frame_bytes(skb: Skb, pad_to: int = 0) -> bytes:
    """The Ethernet frame of ``skb`` (without FCS), padded to ``pad_to`` bytes if shorter."""
    if skb.eth_type == ETH_P_ARP:
        payload = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, skb.arp_op, _mac(skb.arp_sha),
                              skb.arp_spa.to_bytes(4, "big"), _mac(skb.arp_tha), skb.arp_tpa.to_bytes(4, "big"))
    else:
        payload = _ip_packet(skb)
    frame = _mac(skb.eth_dst) + _mac(skb.eth_src) + struct.pack("!H", skb.eth_type) + payload
    if len(frame) < pad_to:
        frame += bytes(pad_to - len(frame))
    return frame


class PcapWriter:
    """One capture file, written in timestamp order.

    Frames are not handed over in time order: a CPU segment captures at its virtual time
    (``ctx.vnow()``, ahead of the simulation clock; a one-CPU host's NIC takes a frame at the end
    of the segment that sent it) while a frame arriving from the wire is captured at the clock.
    Every capture is stamped at or after the simulation clock, so a frame stamped at or before
    the clock can no longer be overtaken: frames wait in a heap until the clock passes them, and
    the file is non-decreasing in time (frames with equal stamps keep their capture order).
    """

    def __init__(self, path: Path, snaplen: int = 262144) -> None:
        self.path = path
        self.snaplen = snaplen
        self.f: BinaryIO = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))
        self.frames = 0
        self._pending: list[tuple[int, int, bytes]] = []     # (ns, capture order, frame)

    def __call__(self, t_s: float, skb: Skb, dev: Any, tx: bool) -> None:
        pad = 60 if (not tx and dev.kind == "nic") else 0
        data = frame_bytes(skb, pad)
        heapq.heappush(self._pending, (round(t_s * 1e9), self.frames, data))
        self.frames += 1
        ctx = getattr(dev, "ctx", None)
        if ctx is None:
            self._flush(None)
        else:
            self._flush(round(ctx.env.now * 1e9))

    def _flush(self, upto_ns: int | None) -> None:
        """Write the frames stamped at or before ``upto_ns`` (all of them if None)."""
        pending = self._pending
        while pending and (upto_ns is None or pending[0][0] <= upto_ns):
            ns_total, _, data = heapq.heappop(pending)
            sec, nsec = divmod(ns_total, 1_000_000_000)
            cap = data[: self.snaplen]
            self.f.write(struct.pack("<IIII", sec, nsec, len(cap), len(data)))
            self.f.write(cap)

    def close(self) -> None:
        if self.f.closed:
            return
        self._flush(None)
        self.f.close()
