"""simnet's trace bus: named trace points, typed drop reasons and packet accounting.

Every element reports through one :class:`Tracer`:

* ``tracer.drop(skb, reason, where=...)`` is the only way a packet is discarded on an error
  path; :class:`Drop` mirrors the kernel's ``enum skb_drop_reason`` names.
* ``tracer.deliver(skb)`` marks a packet as having reached its end consumer (a socket
  receive queue, the ARP or ICMP handler).
* ``tracer.emit(name, **fields)`` publishes a trace point to subscribers (``tracer.on``).

**Conservation.** Each packet that some stack *originates* (a datagram written by an
application, an ARP request, an ICMP error) gets an :class:`Origin` record. Copies (bridge
flooding, fragments) share it and keep a count of live copies. An origin ends delivered as
soon as one copy is delivered, or dropped when its last live copy dies undelivered (with
the first drop reason seen). So at every instant::

    originated == delivered + dropped + in_flight

and the test suite checks it against an independent scan of every queue in the network.

**TCP's unit is the segment**, not the application's write: a byte stream has no packet
that one write maps to. Every segment a TCP socket transmits (data, a pure ACK, SYN, FIN,
RST, each retransmission) is an origin of kind ``tcp``. A super-segment is one origin while
it travels whole (TSO, a veth); when it is cut into MSS-sized segments (a NIC's TSO, software
GSO) the first keeps the origin and each further segment gets a new one, so the count
follows what is on the wire. A segment is delivered when the receiving TCP has taken it
(data queued in or out of order, an ACK processed, a SYN answered), or when GRO merged it
into the skb ahead of it; data already received is dropped (``TCP_OLD_DATA``), as Linux
drops it. The application's writes are followed separately, by records riding with their
last byte (models.linux.tcp.sock.Mark): they give ``flows.csv``'s packets and the latency
ledgers.
"""

from __future__ import annotations

import enum
from collections import Counter, defaultdict
from typing import Any, Callable

__all__ = ["Drop", "Origin", "Tracer", "TraceEvent"]


class Drop(enum.Enum):
    """Why a packet was discarded; values follow ``include/net/dropreason-core.h``."""

    NO_ROUTE = "IP_OUTNOROUTES"            # ip_route_output failed (ENETUNREACH)
    IP_INNOROUTES = "IP_INNOROUTES"        # forwarding with no route
    IP_INADDRERRORS = "IP_INADDRERRORS"    # not ours and forwarding is off
    OTHERHOST = "OTHERHOST"                # frame addressed to another MAC
    TTL_EXPIRED = "IP_INHDR"               # ip_forward: ttl <= 1 (InHdrErrors, ICMP time exceeded)
    PKT_TOO_BIG = "PKT_TOO_BIG"            # forward with DF set, larger than the MTU
    FRAG_REASM_TIMEOUT = "FRAG_REASM_TIMEOUT"
    FRAG_REASM_MEM = "FRAG_TOO_FAR"        # reassembly memory above ipfrag_high_thresh
    NEIGH_FAILED = "NEIGH_FAILED"          # neighbour resolution failed
    NEIGH_QUEUEFULL = "NEIGH_QUEUEFULL"    # arp_queue above unres_qlen_bytes (oldest dropped)
    QDISC_DROP = "QDISC_DROP"              # qdisc full (txqueuelen)
    NO_CARRIER = "NO_CARRIER"              # device has no link: noop qdisc drops (__qdisc_drop)
    CPU_BACKLOG = "CPU_BACKLOG"            # netif_rx backlog above netdev_max_backlog
    NO_SOCKET = "NO_SOCKET"                # UDP: no socket bound to the port (Udp NoPorts)
    SOCKET_RCVBUFF = "SOCKET_RCVBUFF"      # receive queue above sk_rcvbuf
    IP_NOPROTO = "IP_NOPROTO"              # no handler for the IP protocol
    NETFILTER_DROP = "NETFILTER_DROP"      # an iptables rule (Docker isolation) dropped it
    LINK_LOSS = "LINK_LOSS"                # the scenario's link impairment lost it on the wire
    VXLAN_NO_REMOTE = "VXLAN_NO_REMOTE"    # vxlan_xmit: no FDB entry for the destination MAC
    VXLAN_VNI_NOT_FOUND = "VXLAN_VNI_NOT_FOUND"   # vxlan_rcv: no device for the VNI
    XFRM_INHDR = "XFRM_INHDR"              # ESP packet without a security association
    MACVLAN_BROADCAST = "MACVLAN_BROADCAST_DROP"  # macvlan: broadcast queue full / mode forbids it
    IPVLAN_DROP = "IPVLAN_DROP"            # ipvlan: l3 mode refuses broadcast/multicast, private mode
    TCP_INVALID_ACK = "TCP_INVALID_ACK"    # ACK of data never sent (or a bad SYN-ACK)
    TCP_RESET = "TCP_RESET"                # an RST, consumed by the socket it reset
    TCP_FLAGS = "TCP_FLAGS"                # flags not valid in the socket's state
    TCP_OLD_DATA = "TCP_OLD_DATA"          # data already received (a spurious retransmission)
    TCP_INVALID_SEQUENCE = "TCP_INVALID_SEQUENCE"   # beyond the receive window
    TCP_OLD_SEQUENCE = "TCP_OLD_SEQUENCE"  # ends before the left edge of the window (rcv_wup)
    TCP_INVALID_SYN = "TCP_INVALID_SYN"    # SYN on an established connection
    TCP_ZEROWINDOW = "TCP_ZEROWINDOW"      # data while the advertised window is zero
    TCP_OVERWINDOW = "TCP_OVERWINDOW"      # data beyond the advertised window
    TCP_OFOMERGE = "TCP_OFOMERGE"          # out-of-order data already held
    NOT_SPECIFIED = "NOT_SPECIFIED"        # kfree_skb() without a reason (bridge: back out the ingress port)


class Origin:
    """One originated packet, shared by all its copies and fragments."""

    __slots__ = ("kind", "flow", "live", "state", "reason", "t0")

    IN_FLIGHT = 0
    DELIVERED = 1
    DROPPED = 2

    def __init__(self, kind: str, flow: int, t0: float) -> None:
        self.kind = kind
        self.flow = flow
        self.live = 1
        self.state = 0
        self.reason: Drop | None = None
        self.t0 = t0


class TraceEvent:
    """What a subscriber receives: the time, the trace point name and its fields."""

    __slots__ = ("t_s", "name", "fields")

    def __init__(self, t_s: float, name: str, fields: dict[str, Any]) -> None:
        self.t_s, self.name, self.fields = t_s, name, fields

    def __getattr__(self, key: str) -> Any:
        try:
            return self.fields[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self) -> str:
        return f"TraceEvent({self.t_s:.9f}, {self.name!r}, {self.fields!r})"


class Tracer:
    """Trace points, drops and the conservation ledger of one run."""

    def __init__(self) -> None:
        self.ctx: Any = None
        self.subs: dict[str, list[Callable[[TraceEvent], None]]] = {}
        # Kernel view: every discarded skb, by (netns, where, reason).
        self.skb_drops: Counter[tuple[str, str, Drop]] = Counter()
        # Origin view (conservation), by packet kind.
        self.originated: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.dropped: defaultdict[str, Counter[Drop]] = defaultdict(Counter)
        # Per-flow sums of per-layer time of delivered packets (see models.linux.skb).
        self.flow_layers: defaultdict[int, defaultdict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.flow_layer_pkts: Counter[int] = Counter()

    def bind(self, ctx: Any) -> None:
        self.ctx = ctx

    # -- subscriptions -------------------------------------------------------------
    def on(self, name: str, fn: Callable[[TraceEvent], None]) -> None:
        """Call ``fn(event)`` at every emission of trace point ``name`` (``"*"``: all)."""
        self.subs.setdefault(name, []).append(fn)

    def wants(self, name: str) -> bool:
        return name in self.subs or "*" in self.subs

    def emit(self, name: str, **fields: Any) -> None:
        subs = self.subs
        if not subs:
            return
        fns = subs.get(name)
        star = subs.get("*")
        if star:
            fns = (fns or []) + star
        if not fns:
            return
        ev = TraceEvent(self.ctx.now if self.ctx else 0.0, name, fields)
        for fn in fns:
            fn(ev)

    # -- packet ledger -------------------------------------------------------------
    def originate(self, kind: str, flow: int = -1) -> Origin:
        self.originated[kind] += 1
        return Origin(kind, flow, self.ctx.now if self.ctx else 0.0)

    def clone(self, origin: Origin, n: int = 1) -> None:
        origin.live += n

    def drop(self, skb: Any, reason: Drop, where: str, netns: str = "") -> None:
        """Discard ``skb`` for ``reason``; the one exit for packets on error paths."""
        self.skb_drops[(netns, where, reason)] += 1
        o = skb.origin
        o.live -= 1
        if o.reason is None:
            o.reason = reason
        if o.live == 0 and o.state == 0:
            o.state = 2
            self.dropped[o.kind][o.reason] += 1
        if self.subs:
            self.emit("drop", skb=skb, reason=reason, where=where, netns=netns)

    def consume(self, skb: Any, n: int = 1) -> None:
        """``n`` copies end normally without being the delivery (merged fragments, say)."""
        o = skb.origin
        o.live -= n
        if o.live == 0 and o.state == 0:
            o.state = 2
            self.dropped[o.kind][o.reason or Drop.OTHERHOST] += 1

    def deliver(self, skb: Any) -> None:
        """``skb`` reached its end consumer; its origin counts as delivered."""
        o = skb.origin
        o.live -= 1
        if o.state == 0:
            o.state = 1
            self.delivered[o.kind] += 1

    def add_layers(self, flow: int, acct: dict[str, float]) -> None:
        """Add one delivered packet's (or transaction's) per-layer times to its flow.

        Applications call this when they receive, so the ledger ends where the application's
        latency ends."""
        fl = self.flow_layers[flow]
        for k, v in acct.items():
            fl[k] += v
        self.flow_layer_pkts[flow] += 1

    # -- summaries -----------------------------------------------------------------
    def in_flight(self) -> int:
        return sum(self.originated.values()) - sum(self.delivered.values()) - sum(
            sum(c.values()) for c in self.dropped.values()
        )

    def drop_counts(self) -> dict[str, int]:
        """Discarded skbs by reason name (kernel view)."""
        out: Counter[str] = Counter()
        for (_ns, _where, reason), n in self.skb_drops.items():
            out[reason.value] += n
        return dict(sorted(out.items()))
