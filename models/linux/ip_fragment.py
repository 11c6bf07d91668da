"""IPv4 fragmentation and reassembly: net/ipv4/ip_output.c ``ip_do_fragment`` and
net/ipv4/ip_fragment.c ``ip_defrag``.

Fragmentation: each fragment carries ``(mtu − 20) & ~7`` bytes of the original payload (1480
at MTU 1500), the last one the rest; offsets are in 8-byte units on the wire, MF is set on
all but the last, DF is clear, all share the IP ID. Only the first fragment carries the UDP
header. Counters: ``FragOKs`` per datagram, ``FragCreates`` per fragment. A UDP datagram of
P bytes at MTU 1500 makes ``ceil((P + 8) / 1480)`` fragments (1473 → 1500 + 21 bytes).

Reassembly: fragments are queued per (source, destination, protocol, ID); each counts in
``ReasmReqds``; a complete datagram counts in ``ReasmOKs`` and continues up the stack as one
packet. A queue not completed within ``ipfrag_time`` (30 s) is dropped (``ReasmFails``,
``ReasmTimeout``, and an ICMP time-exceeded/reassembly error if the first fragment arrived).
Fragments arriving while reassembly memory is above ``ipfrag_high_thresh`` are dropped.

Scope and limitations: overlapping fragments are not modelled (the simulated stack never
produces them), nor ``ipfrag_max_dist``.
Validation: tests/test_counts.py (Linux-exact counts and sizes), tests/models/linux/test_ip.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simnet.kernel import Timer
from simnet.trace import Drop

from .skb import Skb, truesize

if TYPE_CHECKING:
    from .fib import Route
    from .netns import Netns

__all__ = ["ip_fragment", "fragment_sizes", "Reassembly"]


def fragment_sizes(l3_len: int, mtu: int) -> list[int]:
    """IP packet lengths of the fragments of an ``l3_len``-byte packet at ``mtu``."""
    payload = l3_len - 20
    maxdata = (mtu - 20) & ~7
    sizes = []
    while payload > 0:
        d = min(maxdata, payload)
        sizes.append(20 + d)
        payload -= d
    return sizes


def ip_fragment(ns: "Netns", skb: Skb, rt: "Route", mtu: int) -> None:
    """ip_do_fragment(): split ``skb`` and send each fragment down, in order."""
    maxdata = (mtu - 20) & ~7
    payload = skb.l3_len - 20
    base_off = skb.frag_off
    last_mf = skb.mf
    nfrag = (payload + maxdata - 1) // maxdata
    ns.snmp_ip["FragOKs"] += 1
    ns.snmp_ip["FragCreates"] += nfrag
    tracer = ns.ctx.tracer
    tracer.clone(skb.origin, nfrag - 1)
    sk = skb.sk
    if sk is not None:
        sk.wmem_alloc -= skb.truesize
    frags = []
    off = 0
    for i in range(nfrag):
        d = min(maxdata, payload - off)
        f = skb if i == 0 else skb.copy(ns.next_skb_id())
        f.frag_off = base_off + off
        f.mf = (i < nfrag - 1) or last_mf
        f.df = False
        f.l3_len = 20 + d
        f.truesize = truesize(f.l3_len)
        f.sk = sk
        if sk is not None:
            sk.wmem_alloc += f.truesize
        frags.append(f)
        off += d
    seg = ns.ctx.seg
    for f in frags:
        if seg is not None:
            seg.charge(f, "ip_fragment")
        ns.ip_finish_output2(f, rt)


class _Ipq:
    __slots__ = ("key", "frags", "meat", "total", "mem", "timer")

    def __init__(self, key: tuple, timer: Timer) -> None:
        self.key = key
        self.frags: list[Skb] = []
        self.meat = 0
        self.total = -1
        self.mem = 0
        self.timer = timer


class Reassembly:
    """The fragment queues of one namespace."""

    def __init__(self, ns: "Netns") -> None:
        self.ns = ns
        self.queues: dict[tuple, _Ipq] = {}
        self.mem = 0

    def in_flight(self) -> list[Skb]:
        return [f for q in self.queues.values() for f in q.frags]

    def defrag(self, skb: Skb) -> Skb | None:
        """ip_defrag(): queue ``skb``; return the whole datagram once complete."""
        ns = self.ns
        ip = ns.snmp_ip
        ip["ReasmReqds"] += 1
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "ip_defrag")
        if self.mem > ns.params.ip.ipfrag_high_thresh_bytes:
            ip["ReasmFails"] += 1
            ns.kfree_skb(skb, Drop.FRAG_REASM_MEM, "ip_defrag")
            return None
        key = (skb.saddr, skb.daddr, skb.proto, skb.ip_id)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Ipq(key, Timer(ns.ctx, lambda k=key: self._expire(k)))
            q.timer.mod(ns.ctx.vnow() + ns.params.ip.ipfrag_time_s)
        data = skb.l3_len - 20
        q.frags.append(skb)
        q.meat += data
        q.mem += skb.truesize
        self.mem += skb.truesize
        if not skb.mf:
            q.total = skb.frag_off + data
        if q.total < 0 or q.meat < q.total:
            return None
        # complete: ip_frag_reasm()
        del self.queues[key]
        q.timer.cancel()
        self.mem -= q.mem
        ip["ReasmOKs"] += 1
        first = min(q.frags, key=lambda f: f.frag_off)
        whole = first.copy(ns.next_skb_id())
        whole.frag_off = 0
        whole.mf = False
        whole.l3_len = 20 + q.total
        whole.truesize = q.mem
        whole.acct = dict(skb.acct) if skb.acct is not None else None   # the completing fragment's path
        whole.t_mark = skb.t_mark
        tracer = ns.ctx.tracer
        tracer.clone(skb.origin, 1)
        tracer.consume(skb, len(q.frags))
        return whole

    def _expire(self, key: tuple) -> None:
        self.ns.host.cpus[0].submit_softirq(self._expire_on_cpu, key)

    def _expire_on_cpu(self, key: tuple) -> None:
        """ip_expire()."""
        q = self.queues.pop(key, None)
        if q is None:
            return
        ns = self.ns
        self.mem -= q.mem
        ns.snmp_ip["ReasmFails"] += 1
        ns.snmp_ip["ReasmTimeout"] += 1
        first = next((f for f in q.frags if f.frag_off == 0), None)
        if first is not None:
            ns.icmp.send(first, 11, 1)
        for f in q.frags:
            ns.kfree_skb(f, Drop.FRAG_REASM_TIMEOUT, "ip_expire")
