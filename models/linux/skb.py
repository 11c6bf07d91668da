"""``struct sk_buff``, reduced to what goes on the wire and what the stack accounts.

An :class:`Skb` carries the headers of one frame (Ethernet, then ARP or IPv4 with UDP or ICMP),
its lengths and its ``truesize``. Two fields are bookkeeping rather than headers:

* ``origin``: the :class:`simnet.trace.Origin` shared by all copies and fragments of one
  originated packet (the conservation ledger);
* ``acct``/``t_mark``: the per-layer time ledger. ``t_mark`` is the simulated time up to which
  the packet's life has been attributed to a layer; each stage that holds the packet adds
  ``now - t_mark`` (or its known duration) to ``acct[layer]`` and moves the mark. At delivery,
  ``sum(acct.values())`` equals the packet's age exactly, which is what makes the per-layer
  breakdown add up. (The style guide keeps measurements in the tracer keyed by ``skb.id``;
  a reference on the skb is the same ledger without a hash lookup per stage.)

Addresses are ints (IPv4 as 32-bit, MAC as 48-bit) so that the hot path compares ints.

A TCP segment carries its header fields (``seq``, ``ack_seq``, ``tcp_flags``, the 16-bit
``window`` field, timestamp values, SACK blocks, the SYN options) and, for a TSO/GSO
super-segment, ``gso_segs``/``gso_size`` (``skb_shinfo(skb)->gso_segs/gso_size``).

Scope and limitations: no IP options, no VLAN tags, no IPv6; payload bytes are not stored
(pcap writes zeros, and checksums are computed over those zeros).
Validation: tests/models/linux/test_skb.py; pcap round trips in tests/results/test_pcap.py.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

__all__ = [
    "Skb",
    "ETH_P_IP",
    "ETH_P_ARP",
    "IPPROTO_ICMP",
    "IPPROTO_UDP",
    "IPPROTO_TCP",
    "IPPROTO_ESP",
    "ETH_HLEN",
    "IP_HLEN",
    "UDP_HLEN",
    "ARP_LEN",
    "BROADCAST_MAC",
    "truesize",
    "ip_to_int",
    "int_to_ip",
    "mac_to_int",
    "int_to_mac",
]

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ESP = 50
ETH_HLEN = 14
IP_HLEN = 20
UDP_HLEN = 8
ARP_LEN = 28                      # arp_hdr_len(): 8 + 2*6 + 2*4 for Ethernet/IPv4
BROADCAST_MAC = 0xFFFFFFFFFFFF

ARPOP_REQUEST = 1
ARPOP_REPLY = 2


def ip_to_int(a: str | ipaddress.IPv4Address) -> int:
    return int(ipaddress.IPv4Address(a))


def int_to_ip(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def int_to_mac(n: int) -> str:
    h = f"{n:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


_KMALLOC_SIZES = (32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


SKB_SMALL_HEAD_CACHE_BYTES = 576   # SKB_HEAD_ALIGN(MAX_TCP_HEADER) on the reference kernel (Linux 6.18)


@lru_cache(maxsize=None)
def truesize(l3_len: int) -> int:
    """``skb->truesize`` of a linear skb holding an ``l3_len``-byte IP packet (x86_64).

    ``__alloc_skb`` asks for ``SKB_DATA_ALIGN(len + headroom) + SKB_DATA_ALIGN(sizeof(skb_shared_info))``
    (320 B); ``kmalloc_reserve`` takes heads of up to ``SKB_SMALL_HEAD_CACHE_SIZE`` (576 B on the
    reference kernel; 640 B where MAX_HEADER makes MAX_TCP_HEADER 320) from the small-head cache,
    larger ones from kmalloc's next size class, and ``SKB_TRUESIZE`` adds the aligned ``struct
    sk_buff`` (256 B). Headroom is ``LL_RESERVED_SPACE`` = 16 B for Ethernet. A datagram of up to
    ~240 bytes gives 576 + 256 = 832 B (observed on Linux 6.18: a UDP socket blocks with 256
    such datagrams queued, 256 × 832 = 212992 = ``wmem_default``); a 1500-byte packet gives
    2048 + 256 = 2304 B, the per-MSS figure in ``tcp_sndbuf_expand``.
    """
    need = ((l3_len + 16 + 63) & ~63) + 320
    if need <= SKB_SMALL_HEAD_CACHE_BYTES:
        return SKB_SMALL_HEAD_CACHE_BYTES + 256
    for k in _KMALLOC_SIZES:
        if need <= k:
            return k + 256
    return need + 256


class Skb:
    """One frame's headers and lengths. See the module docstring for the two ledgers."""

    __slots__ = (
        "id", "origin", "acct", "t_mark", "sk", "truesize",
        # Ethernet
        "eth_dst", "eth_src", "eth_type",
        # IPv4
        "saddr", "daddr", "proto", "ttl", "ip_id", "frag_off", "mf", "df", "tos", "l3_len",
        # UDP (of the whole datagram; a non-first fragment carries none on the wire)
        "sport", "dport", "udp_len",
        # ARP
        "arp_op", "arp_sha", "arp_spa", "arp_tha", "arp_tpa",
        # ICMP: type, code and the quoted packet (an Skb)
        "icmp_type", "icmp_code", "icmp_quote",
        # TCP: header fields (window is the 16-bit field as sent), option values, SACK blocks,
        # the header length, and the GSO layout of a super-segment (gso_segs 1: a plain segment)
        "seq", "ack_seq", "tcp_flags", "window", "tsval", "tsecr", "sack", "syn_opts", "tcp_hlen",
        "gso_segs", "gso_size",
        # application data carried in the payload (as iperf does): flow, seq, send time, kind
        "app",
        # tunnels: the encapsulated inner frame (an Skb) of a VXLAN packet; ESP (SPI, sequence
        # number, pad length) when the outer packet is IPsec-protected
        "encap", "vni", "esp",
        # netfilter: the conntrack entry and direction of this packet in the current namespace
        "nfct",
    )

    def __init__(self) -> None:
        self.id = 0
        self.origin: Any = None
        self.acct: dict[str, float] | None = None
        self.t_mark = 0.0
        self.sk: Any = None
        self.truesize = 0
        self.eth_dst = 0
        self.eth_src = 0
        self.eth_type = ETH_P_IP
        self.saddr = 0
        self.daddr = 0
        self.proto = 0
        self.ttl = 64
        self.ip_id = 0
        self.frag_off = 0
        self.mf = False
        self.df = False
        self.tos = 0
        self.l3_len = 0
        self.sport = 0
        self.dport = 0
        self.udp_len = 0
        self.arp_op = 0
        self.arp_sha = 0
        self.arp_spa = 0
        self.arp_tha = 0
        self.arp_tpa = 0
        self.icmp_type = 0
        self.icmp_code = 0
        self.icmp_quote: Skb | None = None
        self.seq = 0
        self.ack_seq = 0
        self.tcp_flags = 0
        self.window = 0
        self.tsval = 0
        self.tsecr = 0
        self.sack: tuple | None = None
        self.syn_opts: tuple | None = None
        self.tcp_hlen = 0
        self.gso_segs = 1
        self.gso_size = 0
        self.app: Any = None
        self.encap: Skb | None = None
        self.vni = 0
        self.nfct: tuple | None = None
        self.esp: tuple[int, int, int] | None = None

    @property
    def frame_len(self) -> int:
        """Bytes the kernel counts in ``tx_bytes``/``rx_bytes``: Ethernet header + L3 packet."""
        return ETH_HLEN + self.l3_len

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_off != 0

    def copy(self, new_id: int) -> "Skb":
        """``skb_clone``/``skb_copy``: same headers, own ledger; the origin gains a live copy."""
        c = _copy_slots(self)
        c.id = new_id
        if self.acct is not None:
            c.acct = dict(self.acct)
        c.sk = None
        return c

    def __repr__(self) -> str:
        if self.eth_type == ETH_P_ARP:
            op = "request" if self.arp_op == ARPOP_REQUEST else "reply"
            return f"<Skb {self.id} ARP {op} {int_to_ip(self.arp_tpa)}? tell {int_to_ip(self.arp_spa)}>"
        frag = f" frag@{self.frag_off}{'+' if self.mf else ''}" if self.is_fragment else ""
        return (f"<Skb {self.id} {int_to_ip(self.saddr)}:{self.sport} > {int_to_ip(self.daddr)}:{self.dport} "
                f"proto {self.proto} len {self.l3_len}{frag}>")


def _make_copier():
    """A function that copies every slot of an Skb by straight assignments (five times faster
    than a getattr/setattr loop; copies are made per segment when a NIC cuts a TSO skb)."""
    body = "\n".join(f"    c.{n} = s.{n}" for n in Skb.__slots__)
    src = f"def _copy_slots(s):\n    c = _new(Skb)\n{body}\n    return c\n"
    ns: dict = {"_new": Skb.__new__, "Skb": Skb}
    exec(src, ns)
    return ns["_copy_slots"]


_copy_slots = _make_copier()
