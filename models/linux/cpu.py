"""CPU time of the network stack: the cost profile and the per-host CPUs.

What separates host, bridge and overlay networking on one machine is not line rate but CPU
work per packet and per byte. Each host has ``cpus`` CPUs. Stack work runs in *segments*: a
run of synchronous kernel code on one CPU, such as ``sendto()`` from the syscall down to the
driver, or a NAPI poll from the NIC up to the socket. A segment charges each stage it passes
(``Segment.charge``) from the :class:`CostProfile`, and the CPU is busy for the sum. A CPU is
a non-preemptive FIFO server, so one segment costs one event however many layers it crosses.

Which CPU runs what, as on Linux with RPS off:

* an application's syscalls run on the CPU its process is pinned to (round-robin per host);
* ``netif_rx`` users (veth, loopback, macvlan's sibling forwarding) queue the frame on the
  CPU's backlog, drained on the *same* CPU inside the sender's segment when
  ``dev_queue_xmit`` re-enables bottom halves (models.linux.dev.netif_rx); above
  ``netdev_max_backlog`` frames are dropped (``CPU_BACKLOG``);
* a physical NIC's receive runs on the CPU its RSS hash of the flow selects;
* timers (ARP retransmit, reassembly timeout) run on CPU 0.

Within a segment, code runs at the simulated time the segment started, and everything that
leaves the CPU (a frame to a NIC's qdisc, a datagram to a socket queue, a wake-up) is handed
over at the segment's *virtual* time, ``start + cost so far`` (``SimContext.defer``).

Softirq work goes ahead of waiting process work, but not for ever: when softirqs have kept a
CPU for ``MAX_SOFTIRQ_TIME_S`` while a process waited, the rest is handed to ksoftirqd
(``__do_softirq`` → ``wakeup_softirqd``), a CFS thread of the same weight as the application,
and the two then share the CPU equally (the one that has had less CPU time since the hand-off
goes next) until the softirq work runs out. So an overloaded receiver still reads, as on Linux,
instead of starving behind its own NIC.

Scope and limitations: no preemption of process context by softirqs (a running segment
finishes), no frequency scaling or cache effects; per-stage costs are constants (per packet
and per byte), not distributions; CFS is reduced to equal shares between the two classes of
work (no timeslices, no other threads).

Validation: tests/models/linux/test_cpu.py (softirq first, FIFO, the ksoftirqd hand-off and the
equal shares, computed by hand); the UDP tandem test checks end-to-end delays against an
independent Lindley recursion that includes the CPU stages.

The default profile
-------------------
The numbers below were fitted by hand to path totals measured on the project's reference VM
(Linux 6.18, 2 vCPU, x86_64) with ``tools/costs/measure.sh``: a C ``send()`` loop pinned to
one CPU, receiver pinned to the other, 64- and 1472-byte UDP datagrams, 2–3 s per point. The
sender's CPU does everything up to the receiving socket's queue (veth and loopback receive
in the sender's softirq), so its time per packet is the path total:

==============================  ===========  ======================
path (sender CPU, per packet)   measured µs  this profile µs
==============================  ===========  ======================
loopback (host network)         3.08         2.85
veth pair, two namespaces       3.73–3.85    3.35
veth + bridge + veth (docker0)  4.27–4.55    4.45
same, br_netfilter on           5.05–5.34    5.20
veth + router netns + veth      4.25–4.60    5.20
overlay: veth, br0, vxlan0,     7.65–7.96    7.80
host stacks, vxlan0, br0, veth
two bridge-mode macvlan         3.78–4.03    3.91
children of one parent
published port, DNAT +          6.04–6.50    6.22
conntrack, hairpin on docker0
receiver ``recv()``             1.15–1.43    1.15 + 0.035 ns/B
==============================  ===========  ======================

The overlay, macvlan and published-port rows (medians of four 2-second runs per payload, 64,
512 and 1422/1472 bytes, with TSO/GSO/GRO off and bridge netfilter off as the netns engine
runs them) give the costs of ``vxlan_xmit``/``vxlan_rcv``, ``macvlan_xmit``/``macvlan_rcv``
and ``nf_conntrack``/``nf_nat``: each path's total minus the profile's other stages on it
(the DES's own ledger of that path says which, and how often), split between the two stages
of each pair in the ratio of the earlier estimates, since both always occur together on
the measured paths. ``simnet calibrate`` measures the same three paths (``vxlan``,
``macvlan``, ``nat``).

TCP, measured on the same VM over a veth pair (tools/costs/tcp_snd.c, tcp_rcv.c, tcp_rr.c:
sender pinned to CPU 0, receiver to CPU 1, CUBIC, TSO on unless said; the kernel has no
IRQ_TIME_ACCOUNTING, so softirq work done on a thread's CPU is in its CPU time). Ranges span
runs on a quiet machine and runs while other jobs shared it. The model's figures are for the
same experiment between two containers on docker0 (a veth, the bridge and a second veth:
about 0.6 µs more per packet than a veth pair, as the UDP rows show):

=====================================================  ==================  =================
experiment                                             measured            this profile
=====================================================  ==================  =================
64-byte writes, TCP_NODELAY, sender CPU per write      4.3–5.3 µs          5.2 µs
1448-byte writes, TCP_NODELAY, per write               4.3–5.8 µs          7.6 µs
64 KiB writes, sender CPU per write                    8.2–11.7 µs         10.9 µs
  throughput                                           26–63 Gbit/s        48 Gbit/s
64 KiB writes, TSO and GSO off, per write (45 segs)    55–59 µs, 9 Gbit/s  174 µs, 3 Gbit/s
TCP_RR 1 byte, both ends on one CPU, per transaction   12.4–15.8 µs        12.5 µs
=====================================================  ==================  =================

The sender's CPU runs the receiver's TCP in its softirq (veth), so its time per write is the
whole one-way path plus whatever ACK processing lands on it. Per-packet stage costs are
constants fitted to one packet per system call; Linux moves a burst of segments from one
write through the same functions about three times faster (1.3 µs per segment with TSO and
GSO off, cache-warm, backlog drained in batches), so paths that send many small skbs per
system call (offloads off, and pure ACKs, about 4 µs each here through two veths and the
bridge) cost too much in the model. The model charges no context switch, which the real
request/response pays twice per transaction.

UDP per-byte costs were taken from the 64 → 1472 → 4000-byte slopes (copy_from_user ≈ 0.05 ns/B,
copy_to_user ≈ 0.035 ns/B); fragmentation costs from the 4000-byte points. Physical-NIC
stages (driver transmit, NAPI receive) could not be measured on a VM without a physical NIC;
they are estimates, marked as such. ``tools/costs/measure.sh [SECONDS]`` (root) rebuilds the
namespaces and reruns the C programs (tools/costs/snd.c, rcv.c) for every row of the table.
``simnet calibrate`` (netns engine, sim/engines/netns/calibrate.py) measures the same paths
on the user's machine and fits a profile by least squares against the DES's own per-stage
charges, then fits the TCP stages to real TCP streams on the loopback and veth paths
(sim/engines/netns/calibrate_tcp.py, which counts each CPU's charges with ``Segment.spend``
and ``charge``); ``simnet run --cost-profile FILE`` uses it (``CostProfile.from_dict``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Stage", "CostProfile", "DEFAULT_COSTS", "ZERO_COSTS", "Cpu", "Segment", "CPU_WAIT", "CPU_SIBLINGS"]

CPU_WAIT = "cpu_wait"          # queued behind other work on a busy CPU
CPU_SIBLINGS = "cpu:siblings"  # same segment, CPU busy with sibling packets (other fragments)

US = 1e-6
NS = 1e-9


@dataclass(frozen=True, slots=True)
class Stage:
    """Cost of one stack stage: ``per_packet_s + per_byte_s * bytes``."""

    per_packet_s: float
    per_byte_s: float
    note: str


@dataclass(frozen=True)
class CostProfile:
    """Stage name → cost. Unknown stage names are an error (a typo would otherwise cost 0)."""

    name: str
    stages: dict[str, Stage] = field(default_factory=dict)

    def cost_s(self, stage: str, nbytes: int = 0) -> float:
        s = self.stages[stage]
        return s.per_packet_s + s.per_byte_s * nbytes

    def table(self) -> list[dict[str, Any]]:
        return [{"stage": k, "per_packet_us": v.per_packet_s / US, "per_byte_ns": v.per_byte_s / NS, "note": v.note}
                for k, v in self.stages.items()]

    def to_dict(self) -> dict[str, Any]:
        """The file format of ``simnet calibrate`` / ``simnet run --cost-profile``."""
        return {"name": self.name, "stages": {r["stage"]: {"per_packet_us": r["per_packet_us"],
                                                           "per_byte_ns": r["per_byte_ns"], "note": r["note"]}
                                              for r in self.table()}}

    @classmethod
    def from_dict(cls, d: Any, base: "CostProfile") -> "CostProfile":
        """A profile from ``to_dict``'s format; stages it does not name keep ``base``'s costs.

        Raises ValueError naming the first problem (an unknown stage, a negative or missing number).
        """
        if not isinstance(d, dict) or not isinstance(d.get("stages"), dict):
            raise ValueError("a cost profile is an object with 'name' and 'stages'")
        stages = dict(base.stages)
        for k, v in d["stages"].items():
            if k not in base.stages:
                raise ValueError(f"unknown stage {k!r} (stages: {', '.join(base.stages)})")
            try:
                pp, pb = float(v["per_packet_us"]), float(v.get("per_byte_ns", 0.0))
            except (TypeError, KeyError, ValueError):
                raise ValueError(f"stage {k!r}: needs a number per_packet_us (and optionally per_byte_ns)") from None
            if not (0 <= pp < 1e6 and 0 <= pb < 1e6):
                raise ValueError(f"stage {k!r}: costs must be non-negative, got {pp} µs, {pb} ns/B")
            stages[k] = Stage(pp * US, pb * NS, str(v.get("note", "")))
        return cls(str(d.get("name", "custom")), stages)


_MEASURED = "fitted to path totals measured with tools/costs/measure.sh (see module docstring)"
_PAIR = ("the path total measured with tools/costs/measure.sh (module docstring) minus this profile's other stages "
         "on it, split {} (the measurements cannot tell the two stages apart)")
_VXLAN = _PAIR.format("3:2 between vxlan_xmit and vxlan_rcv: 0.67 µs of a 7.80 µs overlay path")
_MACVLAN = _PAIR.format("3:2 between macvlan_xmit and macvlan_rcv: 1.12 µs of a 3.91 µs path between two "
                        "bridge-mode children")
_NAT = _PAIR.format("5:3 between nf_conntrack and nf_nat: 0.53 µs of a 6.22 µs path through a published port "
                    "(DNAT, no userland proxy)")
_TCP_MEASURED = "fitted to TCP totals measured with tools/costs/tcp_*.c (see module docstring)"

DEFAULT_COSTS = CostProfile("linux-6.18-vm", {
    # transmit, process context
    "syscall": Stage(0.60 * US, 0.05 * NS, "sendto()/sendmsg() entry and exit, copy_from_user; " + _MEASURED),
    "udp_sendmsg": Stage(0.45 * US, 0.0, "udp_sendmsg + ip_make_skb (skb alloc, UDP header); " + _MEASURED),
    "ip_output": Stage(0.40 * US, 0.0, "ip_route_output, IP header, LOCAL_OUT/POST_ROUTING, ip_finish_output; "
                       + _MEASURED),
    "ip_fragment": Stage(0.40 * US, 0.0, "ip_do_fragment, per fragment; from the 4000-byte points"),
    "neigh_output": Stage(0.05 * US, 0.0, "neigh_hh_output / neigh_resolve_output; " + _MEASURED),
    "dev_queue_xmit": Stage(0.10 * US, 0.0, "__dev_queue_xmit: qdisc enqueue/bypass or noqueue; " + _MEASURED),
    "driver_xmit": Stage(0.40 * US, 0.0, "ndo_start_xmit of a physical NIC (DMA map, descriptor); ESTIMATE, "
                         "no physical NIC on the reference VM"),
    # virtual devices
    "veth_xmit": Stage(0.75 * US, 0.0, "veth_xmit: __dev_forward_skb (scrub, netns crossing), netif_rx; "
                       + _MEASURED),
    "loopback_xmit": Stage(0.30 * US, 0.0, "loopback_xmit + netif_rx; " + _MEASURED),
    "bridge": Stage(0.10 * US, 0.0, "br_handle_frame: FDB learn/lookup, br_forward (or br_dev_xmit); " + _MEASURED),
    "br_netfilter": Stage(0.75 * US, 0.0, "bridged IPv4 through iptables hooks (bridge-nf-call-iptables=1); "
                          + _MEASURED),
    # tunnels and Docker's other drivers
    "vxlan_xmit": Stage(0.40 * US, 0.0, "vxlan_xmit/vxlan_xmit_one: FDB lookup, underlay route, udp_tunnel_xmit_skb "
                        "(outer headers); then ip_output etc. are charged in the host namespace; " + _VXLAN),
    "vxlan_rcv": Stage(0.27 * US, 0.0, "vxlan_rcv: VNI lookup, decapsulation, gro_cells_receive (the host's ip_rcv "
                       "and udp_rcv are charged separately); " + _VXLAN),
    "esp_output": Stage(1.00 * US, 0.60 * NS, "esp_output in transport mode: xfrm policy/state lookup, "
                        "rfc4106(gcm(aes)) encryption per byte; ESTIMATE (ESP is not built into the reference "
                        "kernel), AES-GCM with AES-NI at about 0.6 ns/B"),
    "esp_input": Stage(1.00 * US, 0.60 * NS, "esp_input/xfrm_input: state lookup, decryption and ICV check per byte; "
                       "ESTIMATE, as esp_output"),
    "macvlan_xmit": Stage(0.67 * US, 0.0, "macvlan_start_xmit/macvlan_queue_xmit: hash lookup of the destination, "
                          "dev_forward_skb (bridge mode, to a sibling) or dev_queue_xmit on the parent; " + _MACVLAN),
    "macvlan_rcv": Stage(0.45 * US, 0.0, "macvlan_handle_frame: rx_handler on the parent, lookup by MAC, another "
                         "pass of __netif_receive_skb_core on the child; " + _MACVLAN),
    "macvlan_bc": Stage(0.50 * US, 0.0, "macvlan_broadcast_enqueue + macvlan_process_broadcast (work queue), per "
                        "broadcast; ESTIMATE"),
    "ipvlan_xmit": Stage(0.15 * US, 0.0, "ipvlan_start_xmit: L3 address lookup, l2/l3 dispatch; ESTIMATE"),
    "ipvlan_rcv": Stage(0.10 * US, 0.0, "ipvlan_handle_frame: rx_handler on the parent, lookup by IP address "
                        "(and the multicast work queue); ESTIMATE"),
    "nf_conntrack": Stage(0.33 * US, 0.0, "nf_conntrack_in: tuple hash lookup (and __nf_conntrack_confirm for a new "
                          "entry), per hook traversal; " + _NAT),
    "nf_nat": Stage(0.20 * US, 0.0, "nf_nat_packet/nf_nat_manip_pkt: rewrite address and port, fix the checksums; "
                    + _NAT),
    "docker_proxy": Stage(3.00 * US, 0.0, "docker-proxy's own work per relayed message between its recvfrom and "
                          "sendto (Go runtime, goroutine hand-off, epoll wake-up); ESTIMATE"),
    # receive, softirq
    "napi_rx": Stage(0.80 * US, 0.0, "IRQ + NAPI poll + skb alloc of a physical NIC; ESTIMATE, "
                     "no physical NIC on the reference VM"),
    "netif_receive": Stage(0.15 * US, 0.0, "process_backlog / __netif_receive_skb_core, eth_type_trans; "
                           + _MEASURED),
    "ip_rcv": Stage(0.30 * US, 0.0, "ip_rcv, PRE_ROUTING, ip_route_input; " + _MEASURED),
    "ip_forward": Stage(0.10 * US, 0.0, "ip_forward: TTL, FORWARD hook (then ip_output is charged); " + _MEASURED),
    "ip_defrag": Stage(0.50 * US, 0.0, "ip_defrag, per fragment queued; from the 4000-byte points"),
    "udp_rcv": Stage(0.55 * US, 0.0, "ip_local_deliver + udp_rcv: socket lookup, enqueue, wake-up; " + _MEASURED),
    "arp_rcv": Stage(0.30 * US, 0.0, "arp_rcv/arp_process (+ reply build); ESTIMATE, of the order of ip_rcv"),
    "arp_send": Stage(0.30 * US, 0.0, "arp_solicit/arp_send: build a 42-byte request; ESTIMATE"),
    "icmp_send": Stage(0.80 * US, 0.0, "icmp_send: route, quote the offending packet; ESTIMATE, as udp_sendmsg "
                       "+ ip_output"),
    "icmp_rcv": Stage(0.30 * US, 0.0, "icmp_rcv + error report to the socket; ESTIMATE"),
    # receive, process context
    "udp_recvmsg": Stage(0.55 * US, 0.035 * NS, "recvfrom() entry/exit, udp_recvmsg, copy_to_user; " + _MEASURED),
    # TCP (tools/costs/tcp_snd.c, tcp_rcv.c, tcp_rr.c over a veth pair; see the module docstring)
    "tcp_sendmsg": Stage(0.30 * US, 0.0, "tcp_sendmsg_locked per write(): lock, skb alloc/entail; per byte: what "
                         "the copy into page frags costs on top of syscall's copy_from_user (0 here: the copy is "
                         "syscall's per-byte cost; simnet calibrate fits it); " + _TCP_MEASURED),
    "tcp_transmit": Stage(0.60 * US, 0.0, "tcp_write_xmit + __tcp_transmit_skb per skb (clone, header, options, "
                          "ip_queue_xmit route); " + _TCP_MEASURED),
    "tcp_send_ack": Stage(0.40 * US, 0.0, "__tcp_send_ack: alloc, header, ip_queue_xmit; ESTIMATE, as tcp_transmit "
                          "without the clone"),
    "tcp_rcv": Stage(0.80 * US, 0.0, "ip_local_deliver + tcp_v4_rcv + tcp_rcv_established (tcp_ack, "
                     "tcp_data_queue, the ACK decision, the reader's wake-up) per skb; " + _TCP_MEASURED),
    "tcp_recvmsg": Stage(0.50 * US, 0.04 * NS, "recv() entry/exit, tcp_recvmsg, copy_to_user, tcp_cleanup_rbuf; "
                         + _TCP_MEASURED),
    "gso_segment": Stage(0.25 * US, 0.0, "software GSO (skb_gso_segment) per segment on a device without TSO; "
                         "ESTIMATE"),
})

ZERO_COSTS = CostProfile("zero", {k: Stage(0.0, 0.0, "zero profile") for k in DEFAULT_COSTS.stages})


class Segment:
    """The stack work a CPU is doing now: its start time and the cost charged so far."""

    __slots__ = ("cpu", "start", "cost", "table")

    def __init__(self, cpu: "Cpu") -> None:
        self.cpu = cpu
        self.start = 0.0
        self.cost = 0.0
        # stage -> (per-packet s, per-byte s, ledger key), looked up once per charge
        self.table = {k: (v.per_packet_s, v.per_byte_s, "cpu:" + k) for k, v in cpu.costs.items()}

    @property
    def vnow(self) -> float:
        """Virtual time inside the segment: start + cost charged so far."""
        return self.start + self.cost

    def spend(self, stage: str, nbytes: int = 0) -> None:
        """Work of ``stage`` with no packet to book it to (a system call's entry and exit, a copy
        of ``nbytes``): the CPU is busy ``per_packet + per_byte × nbytes`` longer."""
        pp, pb, _key = self.table[stage]
        self.cost += pp + pb * nbytes if nbytes else pp

    def spend_bytes(self, stage: str, nbytes: int) -> None:
        """Only the per-byte part of ``stage`` for ``nbytes`` (a copy inside a call already charged)."""
        self.cost += self.table[stage][1] * nbytes

    def charge2(self, skb: Any, stage1: str, stage2: str) -> None:
        """Two consecutive per-packet stages in one call (the hot path's common pairs)."""
        pp1, _pb1, key1 = self.table[stage1]
        pp2, _pb2, key2 = self.table[stage2]
        t = self.start + self.cost
        self.cost += pp1 + pp2
        acct = skb.acct
        if acct is not None:
            if t - skb.t_mark > 1e-12:
                acct[CPU_SIBLINGS] = acct.get(CPU_SIBLINGS, 0.0) + (t - skb.t_mark)
            acct[key1] = acct.get(key1, 0.0) + pp1
            acct[key2] = acct.get(key2, 0.0) + pp2
        skb.t_mark = t + pp1 + pp2

    def charge(self, skb: Any, stage: str, nbytes: int = 0) -> None:
        """Charge ``stage`` for ``skb``: the CPU is busy longer, the skb's ledger records it."""
        pp, pb, key = self.table[stage]
        cost = pp + pb * nbytes if nbytes else pp
        t = self.start + self.cost
        self.cost += cost
        acct = skb.acct
        if acct is not None:
            if t - skb.t_mark > 1e-12:   # not float noise: the CPU worked on sibling packets first
                acct[CPU_SIBLINGS] = acct.get(CPU_SIBLINGS, 0.0) + (t - skb.t_mark)
            acct[key] = acct.get(key, 0.0) + cost
        skb.t_mark = t + cost


MAX_SOFTIRQ_TIME_S = 0.002
"""How long softirqs may keep a CPU from a waiting process before ksoftirqd takes them over.

kernel/softirq.c: ``MAX_SOFTIRQ_TIME`` is ``msecs_to_jiffies(2)``, one jiffy at HZ=250, so
``__do_softirq`` gives up at the next tick: 0-4 ms depending on the tick's phase, 2 ms on
average; net_rx_action's own limit (``netdev_budget_usecs`` 2000) is the same order."""


class Cpu:
    """One CPU of a host: a non-preemptive server of segments, softirq work first.

    Work submitted with ``submit_softirq`` (NAPI polls, the netif_rx backlog, timers,
    tasklets) is served before queued process-context work (applications' system calls),
    as Linux runs pending softirqs before it returns to user space; within each class,
    first come first served. A running segment is never preempted. Softirq work that has
    kept a waiting process off the CPU for ``MAX_SOFTIRQ_TIME_S`` moves to ksoftirqd, which
    shares the CPU equally with process work until no softirq work is left (see the module
    docstring).
    """

    __slots__ = ("ctx", "name", "costs", "free_at", "queue", "softq", "busy_s", "seg", "wake_pending", "segments",
                 "backlog", "draining", "tail_wake", "soft_since", "ksoftirqd", "share_soft_s", "share_proc_s")

    def __init__(self, ctx: Any, name: str, costs: CostProfile) -> None:
        self.ctx = ctx
        self.name = name
        self.costs = costs.stages
        self.free_at = 0.0
        self.queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self.softq: deque[tuple[Callable[[Any], None], Any]] = deque()
        self.backlog: deque = deque()     # netif_rx()'s backlog, drained within the segment
        self.draining = False
        self.busy_s = 0.0
        self.segments = 0
        self.seg = Segment(self)
        self.wake_pending = False
        self.tail_wake = False            # work was queued from inside the running segment
        self.soft_since = -1.0            # softirq work has held off a waiting process since then
        self.ksoftirqd = False            # softirq work handed to ksoftirqd (fair share with processes)
        self.share_soft_s = 0.0           # CPU time of each class since the hand-off
        self.share_proc_s = 0.0

    def submit(self, fn: Callable[[Any], None], arg: Any, skb: Any = None) -> None:
        """Run ``fn(arg)`` as a segment on this CPU, now if idle, else after the queued work.

        ``skb``, when given, is the packet the segment works on: the time it waits for the CPU
        is booked to ``cpu_wait``.
        """
        now = self.ctx.env._now
        if self.ctx.seg is self.seg:                 # from inside this CPU's segment: after it
            self.queue.append((fn, arg, skb))
            self.tail_wake = True
            return
        if self.free_at <= now and not self.queue and not self.softq:
            self._run(fn, arg, skb, now)
            return
        self.queue.append((fn, arg, skb))
        if not self.wake_pending:
            self.wake_pending = True
            self.ctx.call_at(self.free_at, self._wake)

    def submit_softirq(self, fn: Callable[[Any], None], arg: Any, skb: Any = None) -> None:
        """Like ``submit``, for softirq context: ahead of queued process-context work."""
        now = self.ctx.env._now
        if self.ctx.seg is self.seg:
            self.softq.append((fn, arg, skb))
            self.tail_wake = True
            return
        if self.free_at <= now and not self.softq and not self.queue:
            self._run(fn, arg, skb, now)
            return
        self.softq.append((fn, arg, skb))
        if not self.wake_pending:
            self.wake_pending = True
            self.ctx.call_at(self.free_at, self._wake)

    def _run(self, fn: Callable[[Any], None], arg: Any, skb: Any, now: float) -> None:
        if skb is not None:
            acct = skb.acct
            if acct is not None and now > skb.t_mark:
                acct[CPU_WAIT] = acct.get(CPU_WAIT, 0.0) + (now - skb.t_mark)
            skb.t_mark = now
        ctx = self.ctx
        seg = self.seg
        prev = ctx.seg
        if prev is seg:  # re-entry on the same CPU inside its own segment: continue it
            fn(arg)
            return
        seg.start = now
        seg.cost = 0.0
        ctx.seg = seg
        fn(arg)          # an exception here ends the run; no need to restore ctx.seg
        ctx.seg = prev
        cost = seg.cost
        self.free_at = now + cost
        self.busy_s += cost
        self.segments += 1
        if self.tail_wake:
            self.tail_wake = False
            if not self.wake_pending:
                self.wake_pending = True
                self.ctx.call_at(self.free_at, self._wake)

    def _wake(self, _ev: Any) -> None:
        self.wake_pending = False
        now = self.ctx.env._now
        q = self.queue
        sq = self.softq
        while (sq or q) and self.free_at <= now:
            if sq and q:                 # a process waits behind softirq work
                if self.ksoftirqd:
                    soft = self.share_soft_s < self.share_proc_s     # a tie goes to the process
                elif self.soft_since < 0.0:
                    self.soft_since = now
                    soft = True
                elif now - self.soft_since >= MAX_SOFTIRQ_TIME_S - 1e-12:     # (float sums of costs)
                    self.ksoftirqd = True            # wakeup_softirqd()
                    self.share_soft_s = self.share_proc_s = 0.0
                    soft = False                     # the process has waited longest: CFS runs it first
                else:
                    soft = True
            elif sq:                     # softirq work, nobody waiting: the wait clock stops, and a
                soft = True              # process that wakes starts level with ksoftirqd (CFS places
                self.soft_since = -1.0   # a waking task at the run queue's minimum vruntime)
                self.share_soft_s = self.share_proc_s = 0.0
            else:                        # no softirq work left: ksoftirqd sleeps
                soft = False
                self.ksoftirqd = False
                self.soft_since = -1.0
            fn, arg, skb = sq.popleft() if soft else q.popleft()
            self._run(fn, arg, skb, now)
            if self.ksoftirqd:
                if soft:
                    self.share_soft_s += self.free_at - now
                else:
                    self.share_proc_s += self.free_at - now
            elif not soft:
                self.soft_since = -1.0
        if (q or sq) and not self.wake_pending:
            self.wake_pending = True
            self.ctx.call_at(self.free_at, self._wake)
