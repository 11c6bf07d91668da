"""TCP applications: bulk transfer, request/response and a timed stream, with their servers.

Each is a single-threaded program pinned to one CPU of its host; every system call
(``connect``, ``write``, ``read``) is a CPU segment there (models.linux.cpu), one call per
segment, so softirq work on the same CPU runs between two calls as it would on Linux.

* :class:`TcpBulkClient` (``tcp_bulk``): ``connect()``, then ``size`` bytes in ``write``-byte
  writes as fast as the socket takes them (a blocking writer), then ``close()``. The
  :class:`TcpSink` server accepts and reads (``read`` bytes per ``recv()``, iperf3's 128 KiB)
  until end of file, then closes. One latency sample per write: from the ``write()`` call to
  the end of the ``recv()`` that returned its last byte.
* :class:`TcpRrClient` / :class:`TcpRrServer` (``tcp_rr``, netperf TCP_RR): ``count``
  transactions on one connection; a request of ``request`` bytes written in ``writes`` equal
  writes, the server answers with ``response`` bytes once it has read the whole request, the
  client thinks for ``interval`` and repeats. One sample per transaction: from the first
  request ``write()`` to the end of the ``recv()`` completing the response.
* :class:`TcpStreamClient` (``tcp_stream``, iperf3 -t): writes for ``duration`` seconds, then
  closes; the sink reports the bytes read in each ``report`` interval.

Every sample comes with its per-layer ledger (see models.linux.tcp.sock.Mark): the
application's own waits (``sndbuf``: blocked on a full send buffer; ``cpu_wait``), the copy,
why its last byte waited in the write queue (``tcp:cwnd``, ``tcp:rwnd``, ``tcp:nagle``,
``tcp:cork``, ``tcp:autocork``, ``tcp:tsq``, ``tcp:send_queue`` behind other data), its
retransmission delay (``tcp:retransmit``), the stack and wire stages of the segment that
delivered it, reassembly (``tcp:reassembly``), the receive queue (``socket_rx``) and the read;
they add up to the sample's latency.

Scope and limitations: blocking sockets; the client connects once (no connection per
transaction); a failed connect ends the flow with an error count.
Validation: tests/models/apps/test_tcp_apps.py, the TCP scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simnet.kernel import Timer

from ..linux.tcp.sock import Mark, TcpSock
from .udp import FlowStats, _App

if TYPE_CHECKING:
    from ..linux.cpu import Cpu
    from ..linux.netns import Netns

__all__ = ["TcpFlowStats", "TcpBulkClient", "TcpSink", "TcpRrClient", "TcpRrServer", "TcpStreamClient",
           "mark_ledger", "SockOpts"]


@dataclass
class TcpFlowStats(FlowStats):
    """FlowStats plus what TCP adds: the sockets, connect time, intervals."""

    proto: str = "tcp"
    connect_s: float | None = None          # connect() called
    established_s: float | None = None      # connect() returned
    client: Any = None                      # the client's socket
    server: Any = None                      # the server's accepted socket
    intervals: list[tuple[float, float, int]] = field(default_factory=list)   # (t0, t1, bytes read)
    connect_errors: int = 0

    @property
    def retransmits(self) -> int:
        return sum(s.total_retrans for s in (self.client, self.server) if s is not None)


@dataclass(frozen=True)
class SockOpts:
    """Socket options a workload sets before connect()/listen()."""

    nodelay: bool = False
    cork: bool = False
    sndbuf: int | None = None
    rcvbuf: int | None = None
    cc: str | None = None

    def apply(self, sk: TcpSock) -> None:
        if self.sndbuf:
            sk.set_sndbuf(self.sndbuf)
        if self.rcvbuf:
            sk.set_rcvbuf(self.rcvbuf)
        if self.nodelay:
            sk.set_nodelay(True)
        if self.cork:
            sk.set_cork(True)


def mark_ledger(m: Mark, t_read_start: float, t_end: float) -> dict[str, float]:
    """The per-layer ledger of one marked write, from its ``write()`` call to ``t_end``."""
    led: dict[str, float] = dict(m.pre) if m.pre else {}

    def add(k: str, v: float) -> None:
        if v > 0.0:
            led[k] = led.get(k, 0.0) + v

    if m.waits:
        # the reasons were recorded by CPUs whose virtual clocks may disagree by a segment:
        # scale them to the span they describe, so the ledger still adds up exactly
        span = (m.t_tx1 if m.t_tx1 is not None else m.t_copied) - m.t_copied
        tot = sum(m.waits.values())
        f = span / tot if tot > span and tot > 0 else 1.0
        for k, v in m.waits.items():
            add(k, v * f)
    if m.t_tx1 is not None:
        add("tcp:retransmit", m.t_tx - m.t_tx1)
    if m.rx_acct:
        for k, v in m.rx_acct.items():
            add(k, v)
    add("tcp:reassembly", m.t_inorder - m.t_arrive)
    s = t_read_start if t_read_start > m.t_inorder else m.t_inorder
    add("socket_rx", s - m.t_inorder)
    add("cpu:tcp_recvmsg", t_end - s)
    return led


class _TcpApp(_App):
    """A single-threaded process pinned to ``cpu`` in namespace ``ns`` (see udp._App)."""

    pending = False
    sock: TcpSock | None = None

    # -- reading: one recv() per call, while there is data, in one segment --------------------
    def _accepted(self, child: TcpSock) -> None:
        """The listener's first connection is the one this server serves."""
        if self.sock is not None:
            return
        self.sock = child
        self.stats.server = child
        child.on_readable = self._readable
        self._readable()

    def _readable(self) -> None:
        self.sock.user_idle = False
        if not self.pending and not self.done:
            self.pending = True
            self.cpu.submit(self._read, None)

    def _read(self, _arg: Any) -> None:
        """recv() of up to ``read_chunk()`` bytes until nothing is left; ``on_data`` for each."""
        self.pending = False
        sk = self.sock
        seg = self.ctx.seg
        while True:
            if not sk.readable():
                if sk.at_eof() or sk.err:
                    seg.spend("syscall")           # the recv() that returns 0 (end of file)
                    seg.spend("tcp_recvmsg")
                    self.on_eof(seg.start + seg.cost)
                sk.user_idle = self.idle_after_read()
                return                             # a blocking recv() sleeps until data comes
            start = seg.start + seg.cost
            seg.spend("syscall")
            seg.spend("tcp_recvmsg")
            got, marks = sk.recvmsg(self.read_chunk())
            seg.spend_bytes("tcp_recvmsg", got)    # copy_to_user
            self.on_data(got, marks, start, seg.start + seg.cost)

    def read_chunk(self) -> int:
        return 1 << 20

    def idle_after_read(self) -> bool:
        """Whether, with nothing left to read, the program makes no call on the socket until
        the socket wakes it (see TcpSock.user_idle)."""
        return True

    def on_data(self, got: int, marks: list[Mark], start: float, t_end: float) -> None:
        raise NotImplementedError

    def on_eof(self, t: float) -> None:
        self.sock.close()

    def _listen(self, port: int, opts: SockOpts) -> None:
        lst = TcpSock(self.ns, self.cpu, cc=opts.cc, name=self.stats.name)
        lst.flow = self.stats.flow
        opts.apply(lst)
        lst.listen(port)
        lst.on_accept = self._accepted

    def _syscall(self) -> None:
        """A system call with no payload (connect, close): its entry/exit cost."""
        seg = self.ctx.seg
        if seg is not None:
            seg.spend("syscall")

    def _after(self, fn: Any) -> None:
        """Run ``fn`` in a new segment once this one ends (the next system call)."""
        seg = self.ctx.seg
        t = seg.start + seg.cost if seg is not None else self.ctx.env._now
        self.ctx.call_at(t, lambda _a: self.cpu.submit(fn, None), None)


class _Writer(_TcpApp):
    """The sending side of a connection: connect, write in chunks, close."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, daddr: int, dport: int, start_s: float,
                 opts: SockOpts, on_done: Any = None) -> None:
        super().__init__(ns, cpu, stats, on_done)
        self.daddr, self.dport, self.opts = daddr, dport, opts
        self.sock: TcpSock | None = None
        self.closed = False
        # the write() in progress
        self.w_left = 0
        self.w_n = 0
        self.w_call = 0.0
        self.w_blocked = 0.0            # time spent blocked on a full send buffer
        self.w_cpu_wait = 0.0           # time spent ready but waiting for the CPU
        self.w_ready = 0.0
        self.w_since: float | None = None
        self.w_mark: Mark | None = None
        self.ctx.call_at(start_s, lambda _a: self.cpu.submit(self._connect, None), None)

    def _connect(self, _arg: Any) -> None:
        st = self.stats
        sk = TcpSock(self.ns, self.cpu, cc=self.opts.cc, name=st.name)
        sk.flow = st.flow
        self.opts.apply(sk)
        self.sock = sk
        st.client = sk
        st.connect_s = self.ctx.vnow()
        self._syscall()
        sk.on_connect = self._connected
        sk.on_writable = self._writable
        sk.on_closed = self._closed
        rc = sk.connect(self.daddr, self.dport)
        if rc < 0:
            st.record_error(rc)
            st.connect_errors += 1
            self._finish()
            return
        st.sport = sk.lport

    def _connected(self, rc: int) -> None:
        if rc < 0:
            st = self.stats
            st.record_error(rc)
            st.connect_errors += 1
            self._finish()
            return
        self.stats.established_s = self.ctx.env._now
        self.connected()
        self.cpu.submit(self._next_write, None)

    def connected(self) -> None:
        pass

    def _closed(self, err: int) -> None:
        """The connection ended (TIME_WAIT or CLOSE): the flow is done."""
        if err and not self.done and self.stats.established_s is not None:
            self.stats.record_error(-err)
        self._finish()

    def next_write_size(self) -> int:
        """Bytes of the next write() (0: close, -1: nothing to write now)."""
        raise NotImplementedError

    def make_mark(self, nbytes: int, t_call: float) -> Mark | None:
        return Mark((self, nbytes), t_call)

    def _next_write(self, _arg: Any) -> None:
        if self.done or self.closed:
            return
        n = self.next_write_size()
        if n < 0:
            return
        if n == 0:
            self._close()
            return
        now = self.ctx.vnow()
        self.w_left = self.w_n = n
        self.w_call = self.w_ready = now
        self.w_blocked = self.w_cpu_wait = 0.0
        self.w_since = None
        self.w_mark = self.make_mark(n, now)
        self._do_write(None)

    def _do_write(self, _arg: Any) -> None:
        seg = self.ctx.seg
        if seg.start > self.w_ready:
            self.w_cpu_wait += seg.start - self.w_ready
        seg.spend("syscall")
        seg.spend("tcp_sendmsg")
        mark = self.w_mark
        left = self.w_left
        copied = self.sock.sendmsg(left, mark)
        if copied < 0:
            self.stats.record_error(copied)
            self._finish()
            return
        self.w_left = left - copied
        if self.w_left > 0:
            self.w_since = self.ctx.vnow()          # blocked until on_writable
            self.sock.user_idle = True
            return
        if mark is not None:
            pre = {"sndbuf": self.w_blocked, "cpu_wait": self.w_cpu_wait}
            rest = mark.t_copied - self.w_call - self.w_blocked - self.w_cpu_wait
            if rest > 0:
                pre["cpu:tcp_sendmsg"] = rest
            mark.pre = pre
        self.wrote(self.w_n)
        self._after(self._next_write)

    def wrote(self, nbytes: int) -> None:
        self.stats.record_send(self.w_call, nbytes)

    def _writable(self) -> None:
        if self.w_since is None:
            return
        self.sock.user_idle = False
        now = self.ctx.vnow()
        self.w_blocked += now - self.w_since
        self.w_since = None
        self.w_ready = now
        self.cpu.submit(self._do_write, None)

    def _close(self) -> None:
        self.closed = True
        self._syscall()
        self.sock.close()
        self.sock.user_idle = True


class TcpBulkClient(_Writer):
    """``tcp_bulk``: ``size`` bytes in ``write``-byte writes, then close."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, size: int, write: int, **kw: Any) -> None:
        self.left = size
        self.write = write
        super().__init__(ns, cpu, stats, **kw)

    def next_write_size(self) -> int:
        n = min(self.write, self.left)
        self.left -= n
        return n


class TcpStreamClient(_Writer):
    """``tcp_stream``: write ``write``-byte chunks until ``duration`` has passed, then close."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, duration_s: float, write: int,
                 **kw: Any) -> None:
        self.write = write
        self.duration_s = duration_s
        self.t_end: float | None = None
        super().__init__(ns, cpu, stats, **kw)

    def next_write_size(self) -> int:
        now = self.ctx.vnow()
        if self.t_end is None:
            self.t_end = now + self.duration_s
        return self.write if now < self.t_end else 0


class TcpSink(_TcpApp):
    """The server of tcp_bulk/tcp_stream: accept, read until end of file, close."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, port: int, opts: SockOpts,
                 read: int = 131072, report_s: float = 1.0) -> None:
        super().__init__(ns, cpu, stats)
        self.read_size = read
        self.report_s = report_s
        self.iv_t0: float | None = None
        self.iv_bytes = 0
        self._listen(port, opts)

    def read_chunk(self) -> int:
        return self.read_size

    def on_data(self, got: int, marks: list[Mark], start: float, t_end: float) -> None:
        st = self.stats
        self._account(got, t_end)
        for m in marks:
            _writer, nbytes = m.app
            st.record_recv(t_end, nbytes, m.t_call)
            self.ctx.tracer.add_layers(st.flow, mark_ledger(m, start, t_end))

    def on_eof(self, t: float) -> None:
        self._flush_interval(t)
        self.sock.close()
        self._finish()

    def _account(self, got: int, t: float) -> None:
        if self.iv_t0 is None:
            self.iv_t0 = self.stats.established_s or t
        while t >= self.iv_t0 + self.report_s:
            t1 = self.iv_t0 + self.report_s
            self.stats.intervals.append((self.iv_t0, t1, self.iv_bytes))
            self.iv_t0 = t1
            self.iv_bytes = 0
        self.iv_bytes += got

    def _flush_interval(self, t: float) -> None:
        if self.iv_t0 is not None and (self.iv_bytes or t > self.iv_t0):
            self.stats.intervals.append((self.iv_t0, t, self.iv_bytes))
            self.iv_t0 = None


class TcpRrServer(_TcpApp):
    """The server of tcp_rr: answer every ``request`` bytes read with ``response`` bytes."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, port: int, request: int, response: int,
                 opts: SockOpts) -> None:
        super().__init__(ns, cpu, stats)
        self.request, self.response = request, response
        self.have = 0
        self.req_mark: Mark | None = None
        self.req_start = 0.0
        self._listen(port, opts)

    def read_chunk(self) -> int:
        return self.request - self.have if self.request > self.have else 1 << 20

    def on_data(self, got: int, marks: list[Mark], start: float, t_end: float) -> None:
        for m in marks:
            self.req_mark = m
            self.req_start = start
        self.have += got
        if self.have >= self.request:
            self.have -= self.request
            self._respond(t_end)

    def _respond(self, t_read_end: float) -> None:
        req = self.req_mark
        self.req_mark = None
        seg = self.ctx.seg
        led = mark_ledger(req, self.req_start, t_read_end) if req is not None else None
        t_call = seg.start + seg.cost
        m = Mark(("resp", req.app if req is not None else None, led, t_read_end), t_call)
        seg.spend("syscall")
        seg.spend("tcp_sendmsg")
        copied = self.sock.sendmsg(self.response, m)
        if copied == self.response:
            m.pre = {}
            rest = m.t_copied - t_call
            if rest > 0:
                m.pre["cpu:tcp_sendmsg"] = rest


class TcpRrClient(_Writer):
    """``tcp_rr``: ``count`` transactions of ``request`` bytes (in ``writes`` writes) and
    ``response`` bytes, ``interval`` apart."""

    def __init__(self, ns: "Netns", cpu: "Cpu", stats: TcpFlowStats, *, count: int, request: int, response: int,
                 writes: int, interval_s: float, **kw: Any) -> None:
        self.count, self.request, self.response = count, request, response
        self.writes = max(1, min(writes, request or 1))
        self.interval_s = interval_s
        self.seq = 0
        self.part = 0
        self.t_first = 0.0
        self.have = 0
        self.waiting = False
        super().__init__(ns, cpu, stats, **kw)
        self.think = Timer(self.ctx, self._issue)

    def connected(self) -> None:
        self.sock.on_readable = self._readable

    def next_write_size(self) -> int:
        if self.waiting:
            return -1
        if self.seq >= self.count:
            return 0
        per = self.request // self.writes
        if self.part == 0:
            self.t_first = self.ctx.vnow()
        n = per if self.part < self.writes - 1 else self.request - per * (self.writes - 1)
        return n

    def make_mark(self, nbytes: int, t_call: float) -> Mark | None:
        if self.part < self.writes - 1:
            return None
        return Mark(("req", self.seq, self.t_first, t_call), t_call)

    def _close(self) -> None:
        super()._close()
        self._finish()

    def wrote(self, nbytes: int) -> None:
        self.part += 1
        if self.part >= self.writes:
            self.part = 0
            self.waiting = True
            self.stats.record_send(self.t_first, self.request)

    def _after(self, fn: Any) -> None:
        if self.waiting:
            self.sock.user_idle = True              # until the response wakes it
            return
        super()._after(fn)

    def idle_after_read(self) -> bool:
        return self.waiting

    def on_eof(self, t: float) -> None:
        pass

    def on_data(self, got: int, marks: list[Mark], start: float, t_end: float) -> None:
        st = self.stats
        self.have += got
        for m in marks:
            _kind, req_app, req_led, t_req_read = m.app
            led = mark_ledger(m, start, t_end)
            if req_led is not None:
                for k, v in req_led.items():
                    led[k] = led.get(k, 0.0) + v
                _r, _seq, t_first, t_last_call = req_app
                gap = (t_last_call - t_first) + (m.t_call - t_req_read)   # between the writes; server
                if gap > 0:
                    led["app"] = led.get("app", 0.0) + gap
                st.record_recv(t_end, self.response, t_first)
                self.ctx.tracer.add_layers(st.flow, led)
        if self.have >= self.response and self.waiting:
            self.have -= self.response
            self.waiting = False
            self.seq += 1
            if self.interval_s > 0:
                self.think.mod(t_end + self.interval_s)
            else:
                self.ctx.call_at(t_end, lambda _a: self._issue(), None)

    def _issue(self) -> None:
        self.cpu.submit(self._next_write, None)
