"""ICMP errors: net/ipv4/icmp.c ``icmp_send``, ``icmp_rcv`` and the rate limits.

``send`` builds the error the kernel would: TOS 0xc0, the offending packet quoted up to a
576-byte total, sent from the offending packet's destination when that address is ours, else
from the address of the route back. No error is sent about an ICMP error, a non-first
fragment, or a packet that arrived as a link-layer broadcast.

Rate limits, in the kernel's order (Linux ≥ 6.10, ``__icmp_send``), for the types in
``icmp_ratemask`` except "fragmentation needed" (``icmpv4_mask_allow``):

1. the per-namespace global bucket (``icmpv4_global_allow``), skipped when the offending
   packet came in on ``lo``: allowed while its credit is positive; an empty bucket refills —
   at most ``icmp_msgs_burst``, by ``icmp_msgs_per_sec`` × the jiffies since the last refill,
   and not within 20 ms (HZ/50) of it; refused messages count ``OutRateLimitGlobal``;
2. after the route back is known, per destination (``icmpv4_xrlim_allow``: ``icmp_ratelimit``
   = 1 s per message with a burst of 6, ``XRLIM_BURST_FACTOR``; ``OutRateLimitHost``), not
   when the route back is ``lo``; a message that passes takes 0, 1 or 2 credits from the
   global bucket at random (``icmp_global_consume``, uniformly; this model draws from the
   namespace's own seeded stream, so runs are reproducible, but the kernel's counts of
   rate-limited messages are random).

Observed on Linux 6.18: 10 datagrams to a closed port within 100 ms → 6 port-unreachable
errors and ``OutRateLimitHost`` 4; 256 datagrams dropped at once by a failed neighbour
resolution → about 50 host-unreachable errors, the rest ``OutRateLimitGlobal``.

``rcv`` counts the message (``InMsgs``, ``InDestUnreachs``, ``IcmpMsg InTypeN``) and, for
"fragmentation needed", lowers the path MTU towards the quoted destination for 600 s
(``mtu_expires``, floor ``min_pmtu`` 552).

Scope and limitations: no echo (ping), no redirects, no errors reported to sockets yet.
Validation: tests/models/linux/test_icmp.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .fib import RTN_BROADCAST
from .skb import IPPROTO_ICMP, Skb, int_to_ip

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Icmp"]

_OUT_FIELD = {3: "OutDestUnreachs", 11: "OutTimeExcds", 12: "OutParmProbs", 4: "OutSrcQuenchs", 5: "OutRedirects"}
_IN_FIELD = {3: "InDestUnreachs", 11: "InTimeExcds", 12: "InParmProbs", 4: "InSrcQuenchs", 5: "InRedirects"}
_ERROR_TYPES = {3, 4, 5, 11, 12}
_XRLIM_BURST_FACTOR = 6
_MIN_PMTU = 552
_MTU_EXPIRES_S = 600.0
_HZ = 250                     # CONFIG_HZ of the reference kernel (jiffies of the global ICMP bucket)


class Icmp:
    """ICMP state of one namespace: rate-limit buckets and the send/receive paths."""

    def __init__(self, ns: "Netns") -> None:
        self.ns = ns
        self.peers: dict[int, list[float]] = {}      # daddr -> [tokens_s, last_s]
        self.global_credit = 0                       # icmp_global_credit (a new namespace: 0, stamp long ago)
        self.global_stamp_j: int | None = None       # icmp_global_stamp, in jiffies
        self._rng = ns.ctx.rng(f"icmp:{ns.name}")

    # -- rate limiting ---------------------------------------------------------------
    def _global_allow(self, now: float) -> bool:
        """icmp_global_allow()."""
        if self.global_credit > 0:
            return True
        p = self.ns.params.icmp
        j = int(now * _HZ)
        delta = _HZ if self.global_stamp_j is None else min(j - self.global_stamp_j, _HZ)
        if delta < _HZ // 50:
            return False
        incr = p.msgs_per_sec * delta // _HZ
        if incr <= 0:
            return False
        self.global_stamp_j = j
        self.global_credit = min(self.global_credit + incr, p.msgs_burst)
        return True

    def _global_consume(self) -> None:
        """icmp_global_consume(): 0, 1 or 2 credits, uniformly at random (may go negative)."""
        self.global_credit -= int(self._rng.integers(0, 3))

    def _peer_allow(self, daddr: int, now: float) -> bool:
        """inet_peer_xrlim_allow(): a new peer starts with a full bucket."""
        timeout = self.ns.params.icmp.ratelimit_s
        if timeout <= 0:
            return True
        b = self.peers.get(daddr)
        if b is None:
            b = self.peers[daddr] = [0.0, now - 60.0]
        token = min(b[0] + (now - b[1]), _XRLIM_BURST_FACTOR * timeout)
        b[1] = now
        ok = token >= timeout
        if ok:
            token -= timeout
        b[0] = token
        return ok

    # -- send ----------------------------------------------------------------------------
    def send(self, skb_in: Skb, itype: int, code: int, info: int = 0, pt: int = 0,
             via_lo: bool | None = None) -> None:
        """icmp_send(): an error about ``skb_in`` back to its source.

        ``via_lo``: whether ``skb_in`` came in on ``lo`` (no global rate limit then); by default
        a packet from one of our own addresses did (locally generated packets reach our own
        sockets over ``lo``); a packet we were sending passes ``via_lo=False``.
        """
        ns = self.ns
        if pt != 0:                                   # not PACKET_HOST
            return
        if skb_in.frag_off != 0:                      # only about the first fragment
            return
        if skb_in.proto == IPPROTO_ICMP and skb_in.icmp_type in _ERROR_TYPES:
            return
        if skb_in.saddr == 0 or skb_in.saddr == 0xFFFFFFFF or skb_in.daddr == 0xFFFFFFFF:
            return
        r_in = ns.fib.local.get(skb_in.daddr)
        if r_in is not None and r_in.rtype == RTN_BROADCAST:
            return
        now = ns.ctx.vnow()
        if via_lo is None:
            via_lo = skb_in.saddr in ns.local_addrs
        masked = bool(ns.params.icmp.ratemask & (1 << itype)) and not (itype == 3 and code == 4)
        apply_ratelimit = False
        if masked and not via_lo:
            if not self._global_allow(now):
                ns.snmp_icmp["OutRateLimitGlobal"] += 1
                return
            apply_ratelimit = True
        rt = ns.route_output(skb_in.saddr)
        if rt is None:
            return
        if apply_ratelimit:
            if rt.dev.kind != "loopback" and not self._peer_allow(skb_in.saddr, now):
                ns.snmp_icmp["OutRateLimitHost"] += 1
                return
            self._global_consume()
        skb = ns.alloc_skb("icmp")
        skb.proto = IPPROTO_ICMP
        skb.tos = 0xC0
        skb.ttl = ns.ttl
        skb.daddr = skb_in.saddr
        skb.saddr = skb_in.daddr if skb_in.daddr in ns.local_addrs else ns.source_for(rt, skb_in.saddr)
        skb.ip_id = ns.next_ip_id()
        skb.icmp_type = itype
        skb.icmp_code = code
        skb.udp_len = info                            # the next-hop MTU of "fragmentation needed"
        skb.icmp_quote = skb_in.copy(0)
        skb.icmp_quote.origin = None
        skb.l3_len = 28 + min(skb_in.l3_len, 576 - 28)
        skb.truesize = 768 if skb.l3_len < 300 else 1280
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "icmp_send")
        ic = ns.snmp_icmp
        ic["OutMsgs"] += 1
        field = _OUT_FIELD.get(itype)
        if field:
            ic[field] += 1
        ns.icmp_msg[f"OutType{itype}"] += 1
        tr = ns.ctx.tracer
        if tr.subs:
            tr.emit("icmp.send", netns=ns.name, type=itype, code=code, to=int_to_ip(skb.daddr))
        ns.ip_local_out(skb, rt)

    # -- receive -------------------------------------------------------------------------
    def rcv(self, skb: Skb) -> None:
        """icmp_rcv()."""
        ns = self.ns
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "icmp_rcv")
        ic = ns.snmp_icmp
        ic["InMsgs"] += 1
        t = skb.icmp_type
        field = _IN_FIELD.get(t)
        if field:
            ic[field] += 1
        ns.icmp_msg[f"InType{t}"] += 1
        if t == 3 and skb.icmp_code == 4 and skb.icmp_quote is not None:
            mtu = max(skb.udp_len, _MIN_PMTU)
            ns.pmtu[skb.icmp_quote.daddr] = (mtu, ns.ctx.vnow() + _MTU_EXPIRES_S)
        quote = skb.icmp_quote
        if t in _ERROR_TYPES and quote is not None and quote.proto == 17:
            ns.udp.err(quote, t, skb.icmp_code)
        ns.ctx.tracer.deliver(skb)
