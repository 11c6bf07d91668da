"""UDP applications: a constant-rate or Poisson sender with its sink, and request/response.

These are the processes of the ``udp`` and ``udp_rr`` workloads. Each is a single-threaded
program pinned to one CPU of its host; its system calls are CPU segments on that CPU
(models.linux.cpu), so an application competes for its CPU with the softirq work the
kernel does there.

* :class:`UdpSender` (``udp``): ``count`` datagrams of ``payload`` bytes, one every
  ``interval`` (constant, or exponential gaps for ``arrival: poisson``), starting at
  ``start``. Like a paced sender sleeping until absolute times, it sends late rather than
  skipping when it falls behind; while the socket's send buffer is full it blocks.
* :class:`UdpSink`: reads every datagram as soon as it can and records its one-way latency,
  from the sender's ``sendto()`` call to the end of the receiver's ``recvfrom()``.
* :class:`UdpRrClient` / :class:`UdpRrServer` (``udp_rr``, netperf's UDP_RR): the client
  sends a ``request``-byte datagram and waits for the ``response``-byte answer (round-trip
  time), thinks for ``interval``, and repeats ``count`` times; a transaction whose answer has
  not come within ``timeout`` is counted lost and the next one starts.

Every application datagram carries (flow, sequence, send time) in its payload, as iperf and
netperf do, so latencies are measured at the application, not inside the stack.

Scope and limitations: blocking sockets only; the sink reads whatever is queued in one
wake-up (one ``recvfrom()`` per datagram).
Validation: tests/models/apps/test_udp_apps.py; the scenario tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simnet.kernel import Timer

from ..linux.udp import UdpSock

if TYPE_CHECKING:
    from ..linux.cpu import Cpu
    from ..linux.netns import Netns

__all__ = ["FlowStats", "UdpSender", "UdpSink", "UdpRrClient", "UdpRrServer"]


@dataclass
class FlowStats:
    """What an application measured about its flow."""

    flow: int
    name: str
    app: str
    src: str
    dst: str
    proto: str = "udp"
    sport: int = 0
    dport: int = 0
    sent: int = 0                  # datagrams (udp) or requests (udp_rr) sent
    delivered: int = 0             # datagrams read (udp) or responses received (udp_rr)
    bytes_sent: int = 0            # application payload bytes
    bytes_delivered: int = 0
    send_errors: int = 0           # sendto() failures (ENETUNREACH, ...)
    timeouts: int = 0              # udp_rr transactions given up
    first_send_s: float | None = None
    last_send_s: float | None = None
    first_recv_s: float | None = None
    last_recv_s: float | None = None
    done_s: float | None = None    # when the application finished its work
    latencies_s: list[float] = field(default_factory=list)
    sent_s: list[float] = field(default_factory=list)     # send time of each sample in latencies_s
    errno_counts: dict[int, int] = field(default_factory=dict)

    def record_send(self, t: float, nbytes: int) -> None:
        self.sent += 1
        self.bytes_sent += nbytes
        if self.first_send_s is None:
            self.first_send_s = t
        self.last_send_s = t

    def record_error(self, rc: int) -> None:
        self.send_errors += 1
        self.errno_counts[-rc] = self.errno_counts.get(-rc, 0) + 1

    def record_recv(self, t: float, nbytes: int, t_sent: float) -> None:
        self.delivered += 1
        self.bytes_delivered += nbytes
        if self.first_recv_s is None:
            self.first_recv_s = t
        self.last_recv_s = t
        self.latencies_s.append(t - t_sent)
        self.sent_s.append(t_sent)


class _App:
    """A single-threaded process pinned to ``cpu`` in namespace ``ns``."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: FlowStats, on_done: Any = None) -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.cpu = cpu
        self.stats = stats
        self.on_done = on_done
        self.done = False

    def _read_when_ready(self, sock: UdpSock) -> None:
        """Wake on ``sock``'s data and hand each datagram to ``on_datagram`` in one segment."""
        self.pending = False
        sock.on_readable = self._readable

    def _readable(self) -> None:
        if not self.pending:
            self.pending = True
            self.cpu.submit(self._read_all, None)

    def _read_all(self, _arg: Any) -> None:
        self.pending = False
        while True:
            skb = self.sock.recvmsg()
            if skb is None:
                return
            if skb.app is not None:
                self.on_datagram(skb)

    def on_datagram(self, skb: Any) -> None:  # pragma: no cover - readers override it
        raise NotImplementedError

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.stats.done_s = self.ctx.vnow()
            if self.on_done is not None:
                self.ctx.defer(lambda _a: self.on_done(self), None)


class UdpSender(_App):
    def __init__(self, ns: "Netns", cpu: "Cpu", stats: FlowStats, *, daddr: int, dport: int, count: int,
                 payload: int, interval_s: float, start_s: float, arrival: str = "constant", sport: int = 0,
                 sndbuf: int | None = None, on_done: Any = None) -> None:
        super().__init__(ns, cpu, stats, on_done)
        self.sock = UdpSock(ns, cpu, sport)
        if sndbuf:
            self.sock.set_sndbuf(sndbuf)
        self.sock.on_writable = self._unblocked
        self.daddr, self.dport, self.count, self.payload = daddr, dport, count, payload
        if arrival == "poisson":
            gaps = ns.ctx.rng(f"flow:{stats.name}").exponential(interval_s, size=count)
            gaps[0] = 0.0
            self.times = (start_s + np.cumsum(gaps)).tolist()
        else:
            self.times = [start_s + i * interval_s for i in range(count)]
        self.i = 0
        self.t_call = 0.0
        self.t_unblock = 0.0
        if count > 0:
            self.ctx.call_at(self.times[0], self._tick)
        else:
            self._finish()

    def _tick(self, _arg: Any = None) -> None:
        now = self.ctx.env._now
        self.t_call = now
        if not self.sock.writable():
            self.sock.block()
            return
        self.t_unblock = now
        self.cpu.submit(self._send, None)

    def _unblocked(self) -> None:
        self.t_unblock = self.ctx.env._now
        self.cpu.submit(self._send, None)

    def _send(self, _arg: Any) -> None:
        seg = self.ctx.seg
        t_call = self.t_call
        waits = {}
        if self.t_unblock > t_call:
            waits["sndbuf"] = self.t_unblock - t_call
        if seg.start > self.t_unblock:
            waits["cpu_wait"] = seg.start - self.t_unblock
        st = self.stats
        rc = self.sock.sendmsg(self.daddr, self.dport, self.payload, flow=st.flow,
                               app=(st.flow, self.i, t_call), waits=waits)
        if rc < 0:
            st.record_error(rc)
        else:
            st.record_send(t_call, self.payload)
            if st.sport == 0:
                st.sport = self.sock.port
        self.i += 1
        if self.i >= self.count:
            self._finish()
            return
        nxt = self.times[self.i]
        self.ctx.call_at(max(nxt, seg.start + seg.cost), self._tick)


class UdpSink(_App):
    def __init__(self, ns: "Netns", cpu: "Cpu", stats: FlowStats, *, port: int, rcvbuf: int | None = None,
                 flows: list[FlowStats] | None = None) -> None:
        super().__init__(ns, cpu, stats)
        # datagrams count for the flow they carry; ``flows`` is indexed by flow number
        self.flows = flows if flows is not None else [stats]
        self.sock = UdpSock(ns, cpu, port)
        if rcvbuf:
            self.sock.set_rcvbuf(rcvbuf)
        self._read_when_ready(self.sock)

    def on_datagram(self, skb: Any) -> None:
        flow, _seq, t_sent = skb.app[0], skb.app[1], skb.app[2]
        flows = self.flows
        st = flows[flow] if flow < len(flows) and flows[flow].flow == flow else self.stats
        st.record_recv(self.ctx.vnow(), skb.udp_len - 8, t_sent)
        if skb.acct is not None:
            self.ctx.tracer.add_layers(flow, skb.acct)


class UdpRrServer(_App):
    """Answers each request with a ``response``-byte datagram to where it came from."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: FlowStats, *, port: int, response: int) -> None:
        super().__init__(ns, cpu, stats)
        self.sock = UdpSock(ns, cpu, port)
        self.response = response
        self._read_when_ready(self.sock)

    def on_datagram(self, req: Any) -> None:
        flow, seq, t_sent = req.app[0], req.app[1], req.app[2]
        self.sock.sendmsg(req.saddr, req.sport, self.response, flow=flow, app=(flow, seq, t_sent, req.acct))


class UdpRrClient(_App):
    def __init__(self, ns: "Netns", cpu: "Cpu", stats: FlowStats, *, daddr: int, dport: int, count: int,
                 request: int, response: int, interval_s: float, start_s: float, timeout_s: float,
                 sport: int = 0, on_done: Any = None) -> None:
        super().__init__(ns, cpu, stats, on_done)
        self.sock = UdpSock(ns, cpu, sport)
        self._read_when_ready(self.sock)
        self.daddr, self.dport, self.count = daddr, dport, count
        self.request, self.response = request, response
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.seq = -1
        self.t_call = 0.0
        self.timer = Timer(ns.ctx, self._timeout)
        self.late = 0
        if count > 0:
            self.ctx.call_at(start_s, self._issue)
        else:
            self._finish()

    def _issue(self, _arg: Any = None) -> None:
        self.seq += 1
        if self.seq >= self.count:
            self._finish()
            return
        self.t_call = self.ctx.env._now
        self.cpu.submit(self._send, None)

    def _send(self, _arg: Any) -> None:
        seg = self.ctx.seg
        st = self.stats
        waits = {"cpu_wait": seg.start - self.t_call} if seg.start > self.t_call else None
        rc = self.sock.sendmsg(self.daddr, self.dport, self.request, flow=st.flow,
                               app=(st.flow, self.seq, self.t_call), waits=waits)
        if rc < 0:
            st.record_error(rc)
            self.ctx.call_at(seg.start + seg.cost + self.interval_s, self._issue)
            return
        st.record_send(self.t_call, self.request)
        if st.sport == 0:
            st.sport = self.sock.port
        self.timer.mod(self.t_call + self.timeout_s)

    def _timeout(self) -> None:
        self.stats.timeouts += 1
        self._issue()

    def on_datagram(self, skb: Any) -> None:
        app = skb.app
        if app[1] != self.seq or not self.timer.pending:
            self.late += 1
            return
        self.timer.cancel()
        ctx = self.ctx
        t = ctx.vnow()
        st = self.stats
        st.record_recv(t, self.response, self.t_call)
        req_acct = app[3]
        if skb.acct is not None:
            layers = dict(req_acct) if req_acct else {}
            for k, v in skb.acct.items():
                layers[k] = layers.get(k, 0.0) + v
            ctx.tracer.add_layers(st.flow, layers)
        ctx.call_at(t + self.interval_s, self._issue)
