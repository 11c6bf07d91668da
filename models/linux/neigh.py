"""IPv4 neighbour resolution: the NUD state machine and ARP.

Models net/core/neighbour.c (``__neigh_event_send``, ``__neigh_update``,
``neigh_timer_handler``, ``neigh_probe``, ``neigh_invalidate``) and net/ipv4/arp.c
(``arp_solicit``, ``arp_process``, ``arp_create``) with ``arp_tbl``'s defaults:

* first use of an unknown neighbour: INCOMPLETE, a broadcast request at once and every
  ``retrans_time`` (1 s); after ``mcast_solicit`` (3) requests with no reply, FAILED, and the
  queued packets are dropped (``NEIGH_FAILED``), each reported to its source with an ICMP
  host unreachable (``arp_error_report``). The next packet starts over.
* packets wait in the entry's ``arp_queue`` while INCOMPLETE, bounded by ``unres_qlen_bytes``
  of truesize; the oldest is dropped above it (``NEIGH_QUEUEFULL``).
* a reply makes the entry REACHABLE for ``reachable_time``, a uniform draw in
  [0.5, 1.5) × ``base_reachable_time`` per device, redrawn every 300 s.
* when REACHABLE runs out: DELAY if the entry was used within ``delay_first_probe_time``,
  else STALE. A packet to a STALE entry is sent at once and moves it to DELAY. DELAY becomes
  REACHABLE if confirmed meanwhile, else PROBE: ``ucast_solicit`` (3) *unicast* requests 1 s
  apart, then FAILED. Packets keep flowing with the old MAC in DELAY and PROBE.
* a request for one of our addresses is answered, and the requester is learnt as STALE
  (``neigh_event_ns``); other ARP frames only update entries that already exist
  (``arp_accept`` = 0), an update to a different MAC only after ``locktime``.

ARP frames are 28-byte payloads in a 42-byte Ethernet frame (``arp_create``); drivers of
physical NICs pad them to 60 bytes on the wire.

Scope and limitations: no proxy ARP, no gratuitous ARP (Docker ≥ 28 sends three at container
start: simnet's clock starts after that), no garbage collection of entries, one parameter
set per namespace (the kernel keeps one per device; ``reachable_time`` is still drawn per
device), upper-layer confirmation only from ARP (TCP's ``dst_confirm`` arrives with TCP).
Validation: tests/models/linux/test_neigh.py (state machine, timers against the kernel's
observed timings), tests/test_counts.py (Linux-exact ARP frame counts).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from simnet.kernel import Timer
from simnet.trace import Drop

from .skb import ARP_LEN, ARPOP_REPLY, ARPOP_REQUEST, BROADCAST_MAC, ETH_P_ARP, Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = [
    "NUD_NONE", "NUD_INCOMPLETE", "NUD_REACHABLE", "NUD_STALE", "NUD_DELAY", "NUD_PROBE", "NUD_FAILED",
    "NUD_NOARP", "NUD_PERMANENT", "NUD_NAMES", "Neighbour", "NeighTable",
]

NUD_NONE = 0x00
NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_NOARP = 0x40
NUD_PERMANENT = 0x80
NUD_IN_TIMER = NUD_INCOMPLETE | NUD_REACHABLE | NUD_DELAY | NUD_PROBE
NUD_VALID = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY
NUD_CONNECTED = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE

NUD_NAMES = {NUD_NONE: "NONE", NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE", NUD_STALE: "STALE",
             NUD_DELAY: "DELAY", NUD_PROBE: "PROBE", NUD_FAILED: "FAILED", NUD_NOARP: "NOARP",
             NUD_PERMANENT: "PERMANENT"}

_MIN_TIMER_S = 0.01  # HZ/100


class Neighbour:
    """One ``struct neighbour``: an IPv4 next hop on one device."""

    __slots__ = ("tbl", "dev", "ip", "ha", "state", "probes", "updated", "confirmed", "used",
                 "arp_queue", "queue_bytes", "timer")

    def __init__(self, tbl: "NeighTable", dev: Any, ip: int, now: float) -> None:
        self.tbl = tbl
        self.dev = dev
        self.ip = ip
        self.ha = 0
        self.state = NUD_NONE
        self.probes = 0
        self.updated = now
        self.used = now
        self.confirmed = now - 2 * tbl.params.base_reachable_time_s
        self.arp_queue: deque[Skb] = deque()
        self.queue_bytes = 0
        self.timer = Timer(tbl.ctx, self._timer_fire)

    @property
    def state_name(self) -> str:
        return NUD_NAMES.get(self.state, hex(self.state))

    # -- the timer -------------------------------------------------------------------
    def _timer_fire(self) -> None:
        # Timers run in softirq context: on CPU 0 of the host.
        self.tbl.ns.host.cpus[0].submit_softirq(self._timer_handler, None)

    def _timer_handler(self, _arg: Any) -> None:
        """neigh_timer_handler()."""
        tbl = self.tbl
        p = tbl.params
        now = tbl.ctx.vnow()
        state = self.state
        if not state & NUD_IN_TIMER:
            return
        nxt = now + p.retrans_time_s
        rt = tbl.reachable_time(self.dev)
        if state & NUD_REACHABLE:
            if now <= self.confirmed + rt:
                nxt = self.confirmed + rt
            elif now <= self.used + p.delay_first_probe_time_s:
                self._set_state(NUD_DELAY, now)
                nxt = now + p.delay_first_probe_time_s
            else:
                self._set_state(NUD_STALE, now)
        elif state & NUD_DELAY:
            if now <= self.confirmed + p.delay_first_probe_time_s:
                self._set_state(NUD_REACHABLE, now)
                nxt = self.confirmed + rt
            else:
                self._set_state(NUD_PROBE, now)
                self.probes = 0
                nxt = now + max(p.retrans_time_s, _MIN_TIMER_S)
        else:  # INCOMPLETE or PROBE
            nxt = now + max(p.retrans_time_s, _MIN_TIMER_S)
        if self.state & (NUD_INCOMPLETE | NUD_PROBE) and self.probes >= tbl.max_probes(self):
            self._set_state(NUD_FAILED, now)
            self.timer.cancel()
            self._invalidate()
            return
        if self.state & NUD_IN_TIMER:
            self.timer.mod(max(nxt, now + _MIN_TIMER_S))
        else:
            self.timer.cancel()
        if self.state & (NUD_INCOMPLETE | NUD_PROBE):
            self._probe()

    def _set_state(self, new: int, now: float) -> None:
        if new != self.state:
            self.state = new
            self.updated = now
            tr = self.tbl.ctx.tracer
            if tr.subs:
                tr.emit("neigh.state", netns=self.tbl.ns.name, dev=self.dev.ifname, ip=self.ip, state=NUD_NAMES[new])

    def _probe(self) -> None:
        """neigh_probe(): one solicitation, counted in ``probes``."""
        skb = self.arp_queue[-1] if self.arp_queue else None
        self.tbl.solicit(self, skb)
        self.probes += 1

    def _invalidate(self) -> None:
        """neigh_invalidate(): report and drop what waited for this neighbour.

        ``res_failed`` counts once per failed resolution; each queued packet goes to
        ``arp_error_report`` → ``ipv4_link_failure``, which sends its source an ICMP host
        unreachable (rate-limited like any ICMP error), then it is freed.
        """
        ns = self.tbl.ns
        self.tbl.res_failed += 1
        while self.arp_queue and self.state == NUD_FAILED:
            skb = self.arp_queue.popleft()
            self.queue_bytes -= skb.truesize
            ns.icmp.send(skb, 3, 1, via_lo=False)
            ns.kfree_skb(skb, Drop.NEIGH_FAILED, "neigh_invalidate")
        while self.arp_queue:
            skb = self.arp_queue.popleft()
            self.queue_bytes -= skb.truesize
            ns.kfree_skb(skb, Drop.NEIGH_FAILED, "neigh_invalidate")


class NeighTable:
    """The ARP table of one namespace: one dict of entries per device."""

    def __init__(self, ns: "Netns") -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.params = ns.params.neigh
        self._rng = self.ctx.rng(f"neigh:{ns.name}")
        self._reach: dict[str, tuple[float, float]] = {}   # ifname -> (reachable_time_s, drawn_at)
        # counters (arp_cache stats and frame counts, per namespace)
        self.requests_sent = 0
        self.replies_sent = 0
        self.requests_received = 0
        self.replies_received = 0
        self.res_failed = 0
        self.unresolved_discards = 0

    # -- parameters --------------------------------------------------------------------
    def reachable_time(self, dev: Any) -> float:
        """neigh_rand_reach_time(): uniform in [base/2, 3*base/2), redrawn every 300 s."""
        now = self.ctx.vnow()
        cur = self._reach.get(dev.ifname)
        if cur is None or now - cur[1] >= self.params.reach_rerandom_s:
            base = self.params.base_reachable_time_s
            cur = self._reach[dev.ifname] = (base / 2 + float(self._rng.random()) * base, now)
        return cur[0]

    def max_probes(self, n: Neighbour) -> int:
        """neigh_max_probes()."""
        p = self.params
        return p.ucast_solicit + p.app_solicit + (0 if n.state & NUD_PROBE else p.mcast_solicit)

    # -- lookups ---------------------------------------------------------------------
    def lookup(self, dev: Any, ip: int) -> Neighbour | None:
        return dev.neigh.get(ip)

    def create(self, dev: Any, ip: int) -> Neighbour:
        n = dev.neigh.get(ip)
        if n is None:
            n = dev.neigh[ip] = Neighbour(self, dev, ip, self.ctx.vnow())
        return n

    def entries(self) -> list[Neighbour]:
        out = []
        for dev in self.ns.devices.values():
            out.extend(dev.neigh.values())
        return out

    # -- output path -------------------------------------------------------------------
    def output(self, skb: Skb, dev: Any, nexthop: int) -> None:
        """neigh_output() / __neigh_event_send(): send, queue or start resolving."""
        if dev.noarp:
            # arp_constructor(): NUD_NOARP, the device's own address as the destination
            seg = self.ctx.seg
            if seg is not None:
                seg.charge(skb, "neigh_output")
            skb.eth_dst = skb.eth_src = dev.mac
            dev.queue_xmit(skb)
            return
        n = dev.neigh.get(nexthop)
        if n is None:
            n = dev.neigh[nexthop] = Neighbour(self, dev, nexthop, self.ctx.vnow())
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "neigh_output")
            now = seg.start + seg.cost
        else:
            now = self.ctx.env._now
        n.used = now
        st = n.state
        if st & (NUD_CONNECTED | NUD_DELAY | NUD_PROBE):
            skb.eth_dst = n.ha
            skb.eth_src = dev.mac
            dev.queue_xmit(skb)
            return
        if st & NUD_STALE:
            n._set_state(NUD_DELAY, now)
            n.timer.mod(now + self.params.delay_first_probe_time_s)
            self._xmit(n, skb)
            return
        immediate = False
        if st != NUD_INCOMPLETE:
            p = self.params
            if p.mcast_solicit + p.app_solicit:
                n.probes = p.ucast_solicit
                n._set_state(NUD_INCOMPLETE, now)
                n.timer.mod(now + max(p.retrans_time_s, _MIN_TIMER_S))
                immediate = True
            else:
                n._set_state(NUD_FAILED, now)
                self.ns.kfree_skb(skb, Drop.NEIGH_FAILED, "__neigh_event_send")
                return
        # INCOMPLETE: queue, dropping the oldest above unres_qlen_bytes
        limit = self.params.unres_qlen_bytes
        while n.arp_queue and n.queue_bytes + skb.truesize > limit:
            old = n.arp_queue.popleft()
            n.queue_bytes -= old.truesize
            self.unresolved_discards += 1
            self.ns.kfree_skb(old, Drop.NEIGH_QUEUEFULL, "__neigh_event_send")
        n.arp_queue.append(skb)
        n.queue_bytes += skb.truesize
        if immediate:
            n._probe()

    def _xmit(self, n: Neighbour, skb: Skb) -> None:
        dev = n.dev
        skb.eth_dst = n.ha
        skb.eth_src = dev.mac
        dev.queue_xmit(skb)

    # -- updates -----------------------------------------------------------------------
    def update(self, n: Neighbour, lladdr: int, new: int, override: bool) -> None:
        """__neigh_update() for non-administrative updates (ARP input)."""
        now = self.ctx.vnow()
        old = n.state
        if new & NUD_CONNECTED:
            n.confirmed = now
        if old & NUD_VALID:
            if lladdr != n.ha and not override:
                return
            if lladdr == n.ha and new == NUD_STALE:
                new = old
        if new != old or lladdr != n.ha:
            n.updated = now
        if new != old:
            n.timer.cancel()
            if new & NUD_PROBE:
                n.probes = 0
            if new & NUD_IN_TIMER:
                n.timer.mod(now + (self.reachable_time(n.dev) if new & NUD_REACHABLE else 0.0))
            n._set_state(new, now)
        if lladdr != n.ha:
            n.ha = lladdr
            if not new & NUD_CONNECTED:
                n.confirmed = now - 2 * self.params.base_reachable_time_s
        if new == old:
            return
        if not old & NUD_VALID and new & NUD_VALID:
            # flush the packets that waited for this neighbour, in order
            q = n.arp_queue
            while q and n.state & NUD_VALID:
                skb = q.popleft()
                n.queue_bytes -= skb.truesize
                self.ns.account_arp_wait(skb)
                self.output(skb, n.dev, n.ip)

    def event_ns(self, dev: Any, ip: int, lladdr: int) -> Neighbour:
        """neigh_event_ns(): learn ``ip`` at ``lladdr`` as STALE (from a request to us)."""
        n = self.create(dev, ip)
        self.update(n, lladdr, NUD_STALE, True)
        return n

    def add_permanent(self, dev: Any, ip: int, lladdr: int) -> Neighbour:
        """``ip neigh add ... nud permanent``."""
        n = self.create(dev, ip)
        n.ha = lladdr
        n.state = NUD_PERMANENT
        return n

    # -- ARP ---------------------------------------------------------------------------
    def solicit(self, n: Neighbour, skb: Skb | None) -> None:
        """arp_solicit(): broadcast in INCOMPLETE, unicast to the cached MAC in PROBE."""
        ns = self.ns
        dev = n.dev
        saddr = None
        if skb is not None and skb.saddr in ns.local_addrs:
            saddr = skb.saddr
        if saddr is None:
            saddr = ns.select_addr(dev, n.ip)
        probes = n.probes - self.params.ucast_solicit
        dst = n.ha if probes < 0 else BROADCAST_MAC
        self.requests_sent += 1
        self.send_arp(dev, ARPOP_REQUEST, dst_mac=dst, spa=saddr, tpa=n.ip, tha=0)

    def send_arp(self, dev: Any, op: int, *, dst_mac: int, spa: int, tpa: int, tha: int) -> None:
        """arp_create() + arp_xmit(): a 28-byte ARP payload in a 42-byte frame."""
        ns = self.ns
        skb = ns.alloc_skb("arp")
        skb.eth_type = ETH_P_ARP
        skb.eth_dst = dst_mac
        skb.eth_src = dev.mac
        skb.arp_op = op
        skb.arp_sha = dev.mac
        skb.arp_spa = spa
        skb.arp_tha = tha
        skb.arp_tpa = tpa
        skb.l3_len = ARP_LEN
        skb.truesize = 768
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "arp_send")
        dev.queue_xmit(skb)

    def arp_rcv(self, skb: Skb, dev: Any, for_us: bool) -> None:
        """arp_rcv() + arp_process()."""
        ns = self.ns
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "arp_rcv")
        if not for_us:  # PACKET_OTHERHOST: consume_skb()
            ns.ctx.tracer.consume(skb)
            return
        op = skb.arp_op
        sip, tip, sha = skb.arp_spa, skb.arp_tpa, skb.arp_sha
        if op == ARPOP_REQUEST:
            self.requests_received += 1
        elif op == ARPOP_REPLY:
            self.replies_received += 1
        if op == ARPOP_REQUEST and tip in ns.local_addrs and sip != 0:
            # arp_ignore = 0: answer for any local address, on any interface
            self.event_ns(dev, sip, sha)
            self.replies_sent += 1
            self.send_arp(dev, ARPOP_REPLY, dst_mac=sha, spa=tip, tpa=sip, tha=sha)
            ns.ctx.tracer.deliver(skb)
            return
        n = dev.neigh.get(sip)
        if n is not None:
            now = self.ctx.vnow()
            unicast_to_us = skb.eth_dst == dev.mac
            state = NUD_REACHABLE if (op == ARPOP_REPLY and unicast_to_us) else NUD_STALE
            override = now > n.updated + self.params.locktime_s
            self.update(n, sha, state, override)
        ns.ctx.tracer.deliver(skb)
