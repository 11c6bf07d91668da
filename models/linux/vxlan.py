"""VXLAN devices: drivers/net/vxlan/vxlan_core.c (``vxlan_xmit``, ``vxlan_xmit_one``, ``arp_reduce``,
``vxlan_rcv``), net/ipv4/udp_tunnel_core.c (``udp_tunnel_xmit_skb``), net/ipv4/ip_tunnel_core.c
(``skb_tunnel_check_pmtu``, ``iptunnel_pmtud_build_icmp``) and, for Docker's encrypted overlay,
net/ipv4/esp4.c in transport mode.

A :class:`Vxlan` device lives in one namespace (Docker's overlay namespace, as a port of its
bridge ``br0``) while its UDP socket lives in the namespace it was created in (the host's
root namespace: ``ip link add vxlan0 type vxlan ...`` there, then ``ip link set vxlan0 netns``;
``ip -d link`` shows ``link-netns``). Transmit, per inner frame handed over by the bridge:

* ARP requests are answered locally when the device is a ``proxy`` and its neighbour table
  knows the target (``arp_reduce``): the reply comes back up through the device
  (``netif_rx``) and nothing crosses the underlay. Unknown targets are dropped (``l3miss``).
* the destination MAC is looked up in the device's FDB; Docker programs one static entry per
  remote container (``bridge fdb add <mac> dev vxlan0 dst <remote VTEP> self permanent``) and
  one permanent neighbour entry per remote container address (``ip neigh add <ip> lladdr
  <mac> dev vxlan0 nud permanent``), from its gossip (peerdb), so nothing is flooded to find
  peers: a frame to an unknown MAC, and any broadcast other than ARP, is dropped
  (``VXLAN_NO_REMOTE``; Docker adds no all-zeros flood entry).
* ``skb_tunnel_check_pmtu``: the inner IP packet may be at most the underlay route's MTU
  minus 50 bytes. A larger packet with DF set is answered, as Linux ≥ 5.9 does on a bridged
  VXLAN port, with an ICMP "fragmentation needed" (MTU = underlay MTU − 50) built from the
  packet itself: from the inner destination to the inner source, ID 0, DF, the inner TTL,
  the quote cut to a 576-byte error, Ethernet addresses swapped, and handed back up through
  the device; the datagram is lost. A larger packet *without* DF (a fragment) is
  encapsulated anyway and the outer packet, which never has DF, is fragmented by the
  host's IP layer and reassembled by the receiving host before decapsulation.
* encapsulation adds ``VXLAN_HEADROOM`` = 50 bytes (outer IPv4 20, UDP 8, VXLAN 8, inner
  Ethernet 14): outer UDP to port 4789 (Docker's ``defaultVXLANUDPPort``; Linux's own
  default 8472 is not used), source port from a hash of the inner flow scaled into the
  local port range (``udp_flow_src_port``: ``hash ^= hash << 16``, ``((hash × (max − min))
  >> 32) + min``; fragments hash without ports), TTL 64, TOS 0, DF clear, UDP checksum on;
  the outer packet leaves through the socket namespace's ``ip_local_out`` (its
  ``OutRequests`` counts it, ``Udp OutDatagrams`` does not).
* encrypted (Docker's ``--opt encrypted``): IPsec ESP in transport mode between the VTEPs,
  ``rfc4106(gcm(aes))`` with an 8-byte ICV: SPI 4 + sequence 4 + IV 8 + pad length 1 +
  next header 1 + ICV 8 = 26 bytes (moby ``encryption.go`` ``pktExpansion``) plus padding to
  a multiple of 4; the outer IP protocol becomes 50 and the receiving host decrypts before
  the UDP lookup. The cipher's CPU cost is charged per byte (``esp_output``/``esp_input``).

TCP's GSO super-segments (models.linux.tcp.offload) cross the bridge and the device whole
(``tx_packets`` counts one, ``tx_bytes`` its inner IP length, as ``iptunnel_xmit_stats``
does); the PMTU check takes each segment's length (``skb_gso_validate_network_len``). Linux
keeps the encapsulated packet whole (``SKB_GSO_UDP_TUNNEL``) down to the underlay device.
When that is a NIC, whose ``tx-udp_tnl-segmentation`` or the software GSO of
``validate_xmit_skb`` cuts it into one outer packet per inner segment, simnet cuts it at the
VXLAN device (``gso_segment`` charged per segment) and encapsulates each: the same frames on
the underlay wire, each carrying one inner segment of at most the inner MSS. When it is a
veth with TSO (``NETIF_F_GSO_ENCAP_ALL``: the calibration's underlay, and the netns engine's
stand-in for a NIC), the outer packet stays one GSO packet across the veth, the other host's
stack and ``vxlan_rcv`` (whose UDP socket takes tunnel GSO), as on Linux: one ``InDatagrams``
and one packet on each device per super-segment.

Receive: the UDP socket of port 4789 in the host namespace (an encapsulation socket, so the
host's ``Udp InDatagrams`` counts every VXLAN packet) finds the device by VNI, strips the
outer headers and hands the inner frame to the device (``gro_cells_receive``), whose bridge
forwards it.

Counters, as observed on Linux 6.18 (two namespaces joined by veth, Docker's layout): the
device's ``tx_bytes``/``rx_bytes`` count the *inner IP packet* (no Ethernet header) per
encapsulated or decapsulated frame; a frame bounced with ICMP counts one transmitted and
one received packet of the ICMP frame's length (590 bytes); proxied ARP counts nothing.

Scope and limitations: IPv4 underlay only, no learning from received frames (Docker's
static entries make it moot), no multicast groups or flooding entries, no GRO of outer
packets (the receiving host delivers the inner segments one by one), no ESP anti-replay window or rekeying (Docker rotates keys every 12 hours).
Validation: tests/models/linux/test_vxlan.py (sizes, fragments, ICMP, counters against the
kernel's observed numbers), tests/results/test_pcap_drivers.py (tshark decodes the outer
VXLAN frames), scenarios overlay-two-hosts.yaml and overlay-mtu.yaml.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import NetDevice
from .skb import (ARPOP_REPLY, ARPOP_REQUEST, ARP_LEN, ETH_P_ARP, ETH_P_IP, IPPROTO_ESP, IPPROTO_ICMP,
                  IPPROTO_TCP, IPPROTO_UDP, Skb)

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Vxlan", "VxlanSock", "VXLAN_HEADROOM", "IANA_VXLAN_UDP_PORT", "ESP_OVERHEAD", "udp_flow_src_port",
           "vxlan_inner_mtu", "esp_pad"]

VXLAN_HEADROOM = 50            # include/net/vxlan.h: outer IPv4 + UDP + VXLAN + inner Ethernet
VXLAN_HLEN = 8
IANA_VXLAN_UDP_PORT = 4789
ESP_OVERHEAD = 26              # moby encryption.go pktExpansion: SPI, seq, IV, pad len, next hdr, ICV(8)
_PORT_LO, _PORT_HI = 32768, 60999   # ip_local_port_range: udp_flow_src_port's default range
_ICMP_ERROR_TYPES = (3, 4, 5, 11, 12)


def esp_pad(payload_bytes: int) -> int:
    """Padding esp_output adds so that payload + pad + 2 trailer bytes is a multiple of 4."""
    return (-(payload_bytes + 2)) % 4


def vxlan_inner_mtu(underlay_mtu: int, encrypted: bool = False) -> int:
    """Largest inner IP packet that fits one outer packet of ``underlay_mtu`` bytes."""
    if not encrypted:
        return underlay_mtu - VXLAN_HEADROOM
    # outer = 20 + 8 (SPI, seq) + 8 (IV) + P + pad + 2 + 8 (ICV), P = 30 + inner: P + 2 ≡ 0 (mod 4)
    return ((underlay_mtu - 44) & ~3) - 32


def udp_flow_src_port(inner: Skb, lo: int = _PORT_LO, hi: int = _PORT_HI) -> int:
    """udp_flow_src_port(): the outer source port from a hash of the inner flow.

    The kernel hashes the flow dissector's keys with jhash (``skb_get_hash``); simnet hashes
    the same keys with CRC-32, then scales exactly as the kernel does. Fragments have no
    ports in the dissector's view, so all fragments of a datagram take one port.
    """
    if inner.eth_type == ETH_P_IP:
        if inner.proto in (IPPROTO_UDP, IPPROTO_TCP) and not inner.is_fragment:
            key = b"%d,%d,%d,%d,%d" % (inner.saddr, inner.daddr, inner.proto, inner.sport, inner.dport)
        else:
            key = b"%d,%d,%d" % (inner.saddr, inner.daddr, inner.proto)
    else:
        key = b"%d,%d,%d" % (inner.eth_src, inner.eth_dst, inner.eth_type)
    h = zlib.crc32(key) or 1
    h ^= (h << 16) & 0xFFFFFFFF
    return ((h * (hi - lo)) >> 32) + lo


class VxlanSock:
    """``struct vxlan_sock``: the UDP encapsulation socket of one port in one namespace."""

    def __init__(self, ns: "Netns", port: int) -> None:
        self.ns = ns
        self.port = port
        self.devs: dict[int, Vxlan] = {}      # VNI -> device

    def encap_rcv(self, skb: Skb) -> None:
        """vxlan_rcv(): find the device by VNI, strip the outer headers, hand the frame up."""
        ns = self.ns
        inner = skb.encap
        dev = self.devs.get(skb.vni) if inner is not None else None
        if dev is None:
            ns.kfree_skb(skb, Drop.VXLAN_VNI_NOT_FOUND, "vxlan_rcv")
            return
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "vxlan_rcv")
        inner.acct = skb.acct
        inner.t_mark = skb.t_mark
        inner.origin = skb.origin
        inner.sk = None
        dev.rx_decap(inner)


class Vxlan(NetDevice):
    """A VXLAN device (see the module docstring)."""

    kind = "vxlan"

    def __init__(self, ns: "Netns", ifname: str, mac: int, mtu: int, *, vni: int, local: int, sock_ns: "Netns",
                 dstport: int = IANA_VXLAN_UDP_PORT, proxy: bool = True, esp_spi: int | None = None) -> None:
        super().__init__(ns, ifname, mac, mtu)
        self.vni = vni
        self.local = local
        self.sock_ns = sock_ns
        self.dstport = dstport
        self.proxy = proxy
        self.esp_spi = esp_spi
        self.esp_seq = 0
        self.fdb: dict[int, int] = {}          # inner MAC -> remote VTEP address (static entries)
        self.proxy_neigh: dict[int, int] = {}  # address -> MAC (permanent neighbour entries)
        self.noarp = True                      # the bridge, not the vxlan device, holds addresses
        socks = sock_ns.udp.encap
        vs = socks.get(dstport)
        if vs is None:
            vs = socks[dstport] = VxlanSock(sock_ns, dstport)
        if vni in vs.devs:
            raise ValueError(f"{sock_ns.name}: VNI {vni} is already used by {vs.devs[vni]!r}")
        vs.devs[vni] = self

    # -- transmit ------------------------------------------------------------------------
    def xmit(self, skb: Skb) -> None:
        """vxlan_xmit() → vxlan_xmit_one()."""
        ns = self.ns
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "vxlan_xmit")
        if skb.eth_type == ETH_P_ARP and self.proxy:
            self._arp_reduce(skb)
            return
        remote = self.fdb.get(skb.eth_dst)
        if remote is None:
            self.tx_dropped += 1
            ns.kfree_skb(skb, Drop.VXLAN_NO_REMOTE, "vxlan_xmit")
            return
        sock_ns = self.sock_ns
        rt = sock_ns.route_output(remote)
        if rt is None:
            self.tx_dropped += 1
            ns.kfree_skb(skb, Drop.NO_ROUTE, "vxlan_xmit_one")
            return
        if skb.eth_type == ETH_P_IP:
            mtu = vxlan_inner_mtu(sock_ns.path_mtu(rt, remote), self.esp_spi is not None)
            # skb_gso_validate_network_len(): a GSO super-segment fits when each segment does
            l3 = skb.l3_len if skb.gso_segs <= 1 else 20 + skb.tcp_hlen + skb.gso_size
            if l3 > mtu and skb.df and mtu >= 576 and not (
                    skb.proto == IPPROTO_ICMP and skb.icmp_type in _ICMP_ERROR_TYPES):
                self._pmtud_icmp(skb, mtu)
                return
        self.tx_packets += 1
        self.tx_bytes += skb.l3_len
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, True)
        if skb.gso_segs > 1:
            dev = rt.dev
            if getattr(dev, "kind", "") == "veth" and dev.tso and self.esp_spi is None:
                # SKB_GSO_UDP_TUNNEL kept whole: a veth takes tunnel GSO (NETIF_F_GSO_ENCAP_ALL) and
                # hands it to its peer as it is; the other host decapsulates it whole
                out = self._encapsulate(skb, remote, rt)
                out.gso_segs, out.gso_size = skb.gso_segs, skb.gso_size
                sock_ns.ip_local_out(out, rt)
                return
            # SKB_GSO_UDP_TUNNEL: each segment leaves in an outer packet of its own
            for s in self.gso_segment(skb):
                sock_ns.ip_local_out(self._encapsulate(s, remote, rt), rt)
            return
        sock_ns.ip_local_out(self._encapsulate(skb, remote, rt), rt)

    def _encapsulate(self, inner: Skb, remote: int, rt) -> Skb:
        """udp_tunnel_xmit_skb(): the outer UDP/IPv4 packet carrying ``inner`` (and ESP if encrypted)."""
        sock_ns = self.sock_ns
        out = Skb()
        out.id = sock_ns.next_skb_id()
        out.origin = inner.origin
        out.acct = inner.acct
        out.t_mark = inner.t_mark
        out.sk = inner.sk
        inner.sk = None
        out.truesize = inner.truesize
        out.proto = IPPROTO_UDP
        out.saddr = self.local if self.local else sock_ns.source_for(rt, remote)
        out.daddr = remote
        out.sport = udp_flow_src_port(inner)
        out.dport = self.dstport
        out.udp_len = 8 + VXLAN_HLEN + 14 + inner.l3_len
        out.l3_len = 20 + out.udp_len
        out.ttl = 64
        out.ip_id = sock_ns.next_ip_id()
        out.encap = inner
        out.vni = self.vni
        if self.esp_spi is not None:
            self.esp_seq += 1
            pad = esp_pad(out.udp_len)
            out.esp = (self.esp_spi, self.esp_seq, pad)
            out.l3_len = 20 + ESP_OVERHEAD + out.udp_len + pad
            out.proto = IPPROTO_ESP
            seg = self.ctx.seg
            if seg is not None:
                seg.charge(out, "esp_output", out.udp_len)
        return out

    def _pmtud_icmp(self, skb: Skb, mtu: int) -> None:
        """iptunnel_pmtud_build_icmp(): "fragmentation needed" back to the sender, through this device."""
        ns = self.ns
        icmp = ns.alloc_skb("icmp")
        icmp.proto = IPPROTO_ICMP
        icmp.saddr, icmp.daddr = skb.daddr, skb.saddr
        icmp.eth_src, icmp.eth_dst = skb.eth_dst, skb.eth_src
        icmp.ttl = skb.ttl
        icmp.df = True
        icmp.ip_id = 0
        icmp.icmp_type, icmp.icmp_code = 3, 4
        icmp.udp_len = mtu                      # the next-hop MTU field (see icmp.py)
        q = skb.copy(0)
        q.origin = None
        icmp.icmp_quote = q
        icmp.l3_len = 28 + min(skb.l3_len, 576 - 28)
        icmp.truesize = skb.truesize
        self.tx_packets += 1
        self.tx_bytes += 14 + icmp.l3_len
        ns.kfree_skb(skb, Drop.PKT_TOO_BIG, "skb_tunnel_check_pmtu")
        tr = self.ctx.tracer
        if tr.subs:
            tr.emit("vxlan.pmtud", netns=ns.name, dev=self.ifname, mtu=mtu)
        self.rx(icmp)

    def _arp_reduce(self, skb: Skb) -> None:
        """arp_reduce(): answer an ARP request from the neighbour table, or drop it."""
        ns = self.ns
        tr = self.ctx.tracer
        if skb.arp_op != ARPOP_REQUEST:
            tr.consume(skb)
            return
        mac = self.proxy_neigh.get(skb.arp_tpa)
        if mac is None:       # l3miss: the daemon is told over netlink; the request goes nowhere
            tr.consume(skb)
            return
        reply = ns.alloc_skb("arp")
        reply.eth_type = ETH_P_ARP
        reply.eth_dst = skb.arp_sha
        reply.eth_src = mac
        reply.arp_op = ARPOP_REPLY
        reply.arp_sha = mac
        reply.arp_spa = skb.arp_tpa
        reply.arp_tha = skb.arp_sha
        reply.arp_tpa = skb.arp_spa
        reply.l3_len = ARP_LEN
        reply.truesize = 768
        tr.deliver(skb)
        if self.capture is not None:
            self.capture(self.ctx.vnow(), reply, self, False)
        self.receive(reply)         # netif_rx(reply): the device's counters do not count it

    # -- receive -------------------------------------------------------------------------
    def rx_decap(self, inner: Skb) -> None:
        """The decapsulated frame enters the stack on this device (counted by its inner IP length)."""
        self.rx_packets += 1
        self.rx_bytes += inner.l3_len
        if self.capture is not None:
            self.capture(self.ctx.vnow(), inner, self, False)
        self.receive(inner)


def esp_input(ns: "Netns", skb: Skb) -> Skb | None:
    """esp_input() in transport mode: check and strip ESP; the UDP packet continues up."""
    if skb.esp is None:
        ns.kfree_skb(skb, Drop.XFRM_INHDR, "esp_input")
        return None
    seg = ns.ctx.seg
    if seg is not None:
        seg.charge(skb, "esp_input", skb.udp_len)
    skb.esp = None
    skb.proto = IPPROTO_UDP
    skb.l3_len = 20 + skb.udp_len
    return skb
