"""Netfilter's NAT and connection tracking, reduced to what Docker installs for published ports:
net/netfilter/nf_conntrack_core.c (``nf_conntrack_in``, ``__nf_conntrack_confirm``),
nf_nat_core.c (``nf_nat_packet``, ``nf_nat_inet_fn``), xt_MASQUERADE / nf_nat_masquerade.c, and
moby's rules (``iptabler/port.go`` ``setPerPortNAT``, ``network.go``):

* ``nat PREROUTING -m addrtype --dst-type LOCAL -j DOCKER`` and ``DOCKER ! -i <bridge> -p <proto>
  [-d <hostip>] --dport <hostport> -j DNAT --to-destination <container>:<port>``: traffic from
  outside to the host's port is sent to the container;
* ``nat OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER`` (with the userland proxy;
  without it, 127.0.0.0/8 too, with ``route_localnet``): the host's own traffic to its address;
* ``nat POSTROUTING -s <subnet> ! -o <bridge> -j MASQUERADE``: containers' traffic leaving the
  bridge takes the outgoing interface's address (and, without the proxy, ``-o <bridge>
  -m addrtype --src-type LOCAL -j MASQUERADE`` for the host's loopback traffic to a container).

Connection tracking: the first packet of a flow (``NEW``) goes through the nat rules; its
translation is kept in a conntrack entry confirmed when the packet leaves (POSTROUTING) or is
delivered (INPUT), keyed by the original tuple and by the tuple replies will carry. Later
packets of either direction find the entry and are translated without the rules: replies get
the original addresses back. A packet looped back through ``lo`` keeps the entry it got in
OUTPUT and is not tracked again in PREROUTING (``nf_conntrack_in``: "Previously seen
(loopback)? Ignore."), so it counts once in its entry.

Counters, with the kernel's meaning (``/proc/net/stat/nf_conntrack``, ``conntrack -S``, Linux
6.18): ``entries`` (the table's size), ``found`` (``nf_conntrack_tuple_taken`` finding a NAT
tuple already in use: the model never has to pick another one, so 0), ``insert`` (counted
only for entries inserted over ctnetlink, not for confirmed packets, so 0), ``invalid``;
per entry the packets of each direction (``nf_conntrack_acct``); per nat rule the number of
connections it translated (its packet counter: the nat table sees a connection's first
packet only), every rule listed.

Scope and limitations: UDP and ICMP errors are not translated inside (no RELATED handling),
no defragmentation before tracking (a fragmented datagram is tracked by its first fragment
only), no timeouts (entries live for the run: ``nf_conntrack_udp_timeout`` is 30 s, longer
than most runs), no filter table (Docker's DOCKER/DOCKER-CT accept rules and the drop of
unsolicited inbound traffic are not modelled), conntrack runs only in a host namespace that
publishes ports or, in a scenario of several hosts, has containers on a bridge network (a real
Docker host tracks every connection once its nat table exists, loopback included).
Validation: tests/models/linux/test_nat.py (pcap on both sides, counters); scenario
publish-port.yaml.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .skb import IPPROTO_TCP, IPPROTO_UDP, Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Netfilter", "DnatRule", "MasqRule", "Conn"]

_LOOPBACK_NET = 0x7F000000
_PROTOS = {"udp": IPPROTO_UDP, "tcp": IPPROTO_TCP}


@dataclass(frozen=True)
class DnatRule:
    """``DOCKER ! -i <bridge> -p proto [-d hostip] --dport hostport -j DNAT --to to_addr:to_port``."""

    proto: int
    host_port: int
    to_addr: int
    to_port: int
    not_in_if: str          # the container's bridge
    host_ip: int = 0        # 0: every local address
    name: str = ""


@dataclass(frozen=True)
class MasqRule:
    """``POSTROUTING -s subnet ! -o bridge -j MASQUERADE`` (or ``-o bridge --src-type LOCAL``)."""

    net: int
    plen: int
    bridge: str
    local_src_to_bridge: bool = False
    name: str = ""

    def matches_src(self, saddr: int) -> bool:
        mask = (0xFFFFFFFF << (32 - self.plen)) & 0xFFFFFFFF if self.plen else 0
        return (saddr & mask) == self.net


class Conn:
    """One conntrack entry: the original tuple and the translations applied to it."""

    __slots__ = ("orig", "dnat", "snat", "reply", "confirmed", "packets")

    def __init__(self, orig: tuple) -> None:
        self.orig = orig                      # (proto, saddr, sport, daddr, dport)
        self.dnat: tuple[int, int] | None = None
        self.snat: tuple[int, int] | None = None
        self.reply: tuple | None = None
        self.confirmed = False
        self.packets = [0, 0]


def _tuple(skb: Skb) -> tuple:
    return (skb.proto, skb.saddr, skb.sport, skb.daddr, skb.dport)


class Netfilter:
    """The nat table and conntrack of one namespace."""

    def __init__(self, ns: "Netns", *, output_loopback: bool = False) -> None:
        self.ns = ns
        self.dnat: list[DnatRule] = []
        self.masq: list[MasqRule] = []
        self.output_loopback = output_loopback     # userland proxy off: OUTPUT DNATs 127.0.0.0/8 too
        self.table: dict[tuple, tuple[Conn, int]] = {}
        self.stats = {"entries": 0, "found": 0, "insert": 0, "invalid": 0}
        self.hits: dict[str, int] = {}

    # -- helpers -----------------------------------------------------------------------------
    def _charge(self, skb: Skb, stage: str) -> None:
        seg = self.ns.ctx.seg
        if seg is not None:
            seg.charge(skb, stage)

    def _lookup(self, skb: Skb) -> tuple[Conn, int] | None:
        if skb.proto not in (IPPROTO_UDP, IPPROTO_TCP) or skb.frag_off:
            return None
        self._charge(skb, "nf_conntrack")
        return self.table.get(_tuple(skb))

    def _hit(self, name: str) -> None:
        self.hits[name] = self.hits.get(name, 0) + 1

    def _new(self, skb: Skb) -> Conn | None:
        if skb.proto not in (IPPROTO_UDP, IPPROTO_TCP) or skb.frag_off:
            return None
        c = Conn(_tuple(skb))
        skb.nfct = (c, 0)
        return c

    def _dnat_rules(self, skb: Skb, c: Conn, in_if: str | None) -> None:
        for r in self.dnat:
            if r.proto != skb.proto or r.host_port != skb.dport:
                continue
            if in_if is not None and in_if == r.not_in_if:
                continue
            if r.host_ip and r.host_ip != skb.daddr:
                continue
            if skb.daddr not in self.ns.local_addrs and (skb.daddr & 0xFF000000) != _LOOPBACK_NET:
                continue
            c.dnat = (r.to_addr, r.to_port)
            self._hit(r.name)
            self._charge(skb, "nf_nat")
            skb.daddr, skb.dport = r.to_addr, r.to_port
            return

    # -- hooks -------------------------------------------------------------------------------
    def prerouting(self, skb: Skb, in_dev: Any) -> None:
        """NF_INET_PRE_ROUTING: conntrack, DNAT of new flows, de-masquerading of replies."""
        if skb.nfct is not None and getattr(in_dev, "kind", "") == "loopback":
            return                        # tracked in OUTPUT already: loopback keeps skb->_nfct
        skb.nfct = None                   # nf_reset_ct() (skb_scrub_packet): a packet new to this namespace
        hit = self._lookup(skb)
        if hit is not None:
            c, d = hit
            skb.nfct = hit
            c.packets[d] += 1
            if d == 0 and c.dnat is not None:
                self._charge(skb, "nf_nat")
                skb.daddr, skb.dport = c.dnat
            elif d == 1 and c.snat is not None:
                self._charge(skb, "nf_nat")
                skb.daddr, skb.dport = c.orig[1], c.orig[2]
            return
        c = self._new(skb)
        if c is not None and skb.daddr in self.ns.local_addrs:
            self._dnat_rules(skb, c, getattr(in_dev, "ifname", None))

    def output(self, skb: Skb) -> bool:
        """NF_INET_LOCAL_OUT: as PREROUTING for locally generated packets. True: re-route."""
        skb.nfct = None
        hit = self._lookup(skb)
        if hit is not None:
            c, d = hit
            skb.nfct = hit
            c.packets[d] += 1
            if d == 0 and c.dnat is not None:
                self._charge(skb, "nf_nat")
                skb.daddr, skb.dport = c.dnat
                return True
            return False
        c = self._new(skb)
        if c is None:
            return False
        loop = (skb.daddr & 0xFF000000) == _LOOPBACK_NET
        if loop and not self.output_loopback:
            return False
        before = skb.daddr
        self._dnat_rules(skb, c, None)
        return skb.daddr != before

    def postrouting(self, skb: Skb, out_dev: Any) -> None:
        """NF_INET_POST_ROUTING: MASQUERADE new flows, restore DNATed sources of replies, confirm."""
        ct = skb.nfct
        if ct is None:
            return
        c, d = ct
        if c.confirmed:
            if d == 0 and c.snat is not None:
                self._charge(skb, "nf_nat")
                skb.saddr, skb.sport = c.snat
            elif d == 1 and c.dnat is not None:
                self._charge(skb, "nf_nat")
                skb.saddr, skb.sport = c.orig[3], c.orig[4]
            return
        out_if = out_dev.ifname
        for r in self.masq:
            local = skb.saddr in self.ns.local_addrs
            if r.local_src_to_bridge:
                ok = local and out_if == r.bridge
            else:
                ok = out_if != r.bridge and r.matches_src(skb.saddr)
            if ok:
                new = self.ns.select_addr(out_dev, skb.daddr)
                c.snat = (new, skb.sport)
                self._hit(r.name)
                self._charge(skb, "nf_nat")
                skb.saddr = new
                break
        self.confirm(skb)

    def local_in(self, skb: Skb) -> None:
        """NF_INET_LOCAL_IN: a reply to a DNATed connection gets its original source back (the
        source half of ``nf_nat_packet`` for a local destination: the host's own connection to
        127.0.0.1:<port> sees the answer come from there), then the entry is confirmed."""
        ct = skb.nfct
        if ct is not None and ct[0].confirmed and ct[1] == 1 and ct[0].dnat is not None:
            c = ct[0]
            self._charge(skb, "nf_nat")
            skb.saddr, skb.sport = c.orig[3], c.orig[4]
            return
        self.confirm(skb)

    def confirm(self, skb: Skb) -> None:
        """__nf_conntrack_confirm(): both tuples into the table."""
        ct = skb.nfct
        if ct is None or ct[0].confirmed:
            return
        c = ct[0]
        c.confirmed = True
        c.packets[0] += 1
        c.reply = (skb.proto, skb.daddr, skb.dport, skb.saddr, skb.sport)
        self.table[c.orig] = (c, 0)
        self.table[c.reply] = (c, 1)
        self.stats["entries"] += 1

    def counters(self) -> dict[str, Any]:
        names = [r.name for r in [*self.dnat, *self.masq]]
        hits = {n: self.hits.get(n, 0) for n in names} | self.hits
        return {"conntrack": dict(self.stats), "nat_hits": dict(sorted(hits.items())),
                "entries": [{"orig": _fmt(c.orig), "reply": _fmt(c.reply), "packets": list(c.packets)}
                            for (c, d) in sorted(self.table.values(), key=lambda x: x[0].orig) if d == 0]}


def _fmt(t: tuple | None) -> str:
    if t is None:
        return ""
    p = {IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp"}.get(t[0], str(t[0]))
    return (f"{p} {ipaddress.IPv4Address(t[1])}:{t[2]} > {ipaddress.IPv4Address(t[3])}:{t[4]}")
