"""docker-proxy, Docker's userland proxy: moby ``cmd/docker-proxy`` (``proxy.go``, ``udp_proxy.go``,
``tcp_proxy.go``).

With ``userland-proxy`` on (Docker's default) the daemon starts one ``docker-proxy`` process per
published port; it binds the host port in the host's namespace and relays to the container.
The kernel's DNAT rule still catches traffic from other machines first (PREROUTING), so the
proxy carries what the rules leave to it: the host's own traffic to 127.0.0.1:<port> and
containers reaching a published port of their own host (hairpin).

:class:`UserlandProxy` is the part every protocol shares: a process pinned to one CPU, a
*frontend* socket on the host port, one *backend* socket per client towards the container,
and the user-space relay of every message between them, which costs a ``recvfrom`` with its
copy to user space, the proxy's own work (Go runtime, epoll wake-up: the ``docker_proxy``
stage) and a ``sendto`` with its copy back into the kernel. :class:`UdpProxy` is the UDP
flavour (``UDPProxy``: a connection-tracking map from client address to backend socket, one
goroutine per backend reading replies; sessions time out after 90 s, longer than simnet's
runs). :class:`TcpProxy` is ``TCPProxy`` (moby 28, ``tcp_proxy.go``): the daemon's listening
socket on the host port; per accepted client (``Run``) a second connection to the container
(``clientLoop``: ``net.DialTCP``) and two brokers, ``io.Copy(backend, client)`` and
``io.Copy(client, backend)``; a broker that reads end of file half-closes the other side
(``from.CloseRead(); to.CloseWrite()``: the FIN goes on), and the connection pair is closed
when both are done. So a proxied TCP flow is two TCP connections, each with its own handshake,
sequence numbers, congestion window, TCP_INFO and snmp ``Tcp`` counts (``ActiveOpens`` for the
proxy's connect, ``PassiveOpens`` for its accept, in the host namespace).

Each relayed datagram is a new packet (the proxy's), carrying the application's payload and
the per-layer ledger of the packet it relays, so end-to-end latencies and breakdowns stay
whole. For TCP the ledger rides on the application records of the byte stream
(models.linux.tcp.sock ``Mark``): the proxy's read returns the records of the bytes it read,
and its write passes each on with the byte it belongs to, its ledger so far in ``pre``: the
first connection's layers up to the end of the proxy's ``read()`` (send path, wire, receive
queue, the read), then ``cpu:docker_proxy``, the proxy's blocking on a full send buffer
(``sndbuf``) or for its CPU (``cpu_wait``) and ``cpu:tcp_sendmsg`` (the write and the bytes
ahead of the record in it), then the second connection's layers as for any TCP flow. A sample
of a proxied flow therefore adds up to its latency, with the stages of both connections (two
``cpu:tcp_recvmsg`` and ``cpu:tcp_sendmsg`` each way, summed under their names).
Counters per socket: messages (``read``/``write`` calls that moved data) and bytes in and
out, the number of sessions and, for TCP, each connection pair with both sockets' TCP_INFO.

Scope and limitations: the proxy's goroutine scheduling is one CPU segment per message (UDP)
or per read-and-write (TCP), all on the proxy's CPU. Go's ``io.Copy`` between two
``*net.TCPConn`` uses ``splice(2)`` through a pipe on Linux (Go's net/splice_linux.go, up to
1 MiB per call), which moves page references where simnet charges the per-byte copy of a
``read()`` and a ``write()``: the per-call costs are the same, the per-byte ones an upper
bound. Reads take up to 1 MiB (Go's ``maxSpliceSize``). No ``SO_LINGER``, no 5 s dial timeout
(a refused backend connection closes the client's, as moby does).
Validation: tests/models/linux/test_nat.py (two sockets, their counters, the extra cost) and
tests/models/linux/test_tcp_proxy.py (two TCP connections, their counters and SYNs in pcap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..linux.skb import int_to_ip
from ..linux.tcp.info import tcp_info
from ..linux.tcp.sock import Mark, TcpSock
from ..linux.udp import UdpSock
from .tcp import mark_ledger

if TYPE_CHECKING:
    from ..linux.cpu import Cpu
    from ..linux.netns import Netns

__all__ = ["UserlandProxy", "UdpProxy", "TcpProxy", "PROXIES"]


class _SockStats:
    __slots__ = ("rx_msgs", "rx_bytes", "tx_msgs", "tx_bytes")

    def __init__(self) -> None:
        self.rx_msgs = self.rx_bytes = self.tx_msgs = self.tx_bytes = 0

    def as_dict(self) -> dict[str, int]:
        return {"rx_msgs": self.rx_msgs, "rx_bytes": self.rx_bytes, "tx_msgs": self.tx_msgs, "tx_bytes": self.tx_bytes}


class UserlandProxy:
    """One docker-proxy process: frontend on the host port, backends to the container."""

    proto = ""

    def __init__(self, ns: "Netns", cpu: "Cpu", *, host_port: int, backend_addr: int, backend_port: int,
                 label: str = "") -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.cpu = cpu
        self.host_port = host_port
        self.backend_addr = backend_addr
        self.backend_port = backend_port
        self.label = label
        self.frontend_stats = _SockStats()
        self.backend_stats = _SockStats()
        self.sessions = 0

    def relay_cost(self, skb: Any) -> None:
        """The proxy's own work per message (between the recvfrom and the sendto)."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "docker_proxy")

    def counters(self) -> dict[str, Any]:
        return {"proto": self.proto, "host_port": self.host_port, "backend": self.label, "sessions": self.sessions,
                "frontend": self.frontend_stats.as_dict(), "backend_socket": self.backend_stats.as_dict()}


class UdpProxy(UserlandProxy):
    """``UDPProxy``: relays datagrams per client address."""

    proto = "udp"

    def __init__(self, ns: "Netns", cpu: "Cpu", **kw: Any) -> None:
        super().__init__(ns, cpu, **kw)
        self.front = UdpSock(ns, cpu, self.host_port)
        self.front.on_readable = lambda: self._wake(self.front, None)
        self.backends: dict[tuple[int, int], UdpSock] = {}
        self.pending: set[int] = set()

    def _wake(self, sock: UdpSock, client: tuple[int, int] | None) -> None:
        if id(sock) not in self.pending:
            self.pending.add(id(sock))
            self.cpu.submit(self._drain, (sock, client))

    def _drain(self, arg: tuple[UdpSock, tuple[int, int] | None]) -> None:
        sock, client = arg
        self.pending.discard(id(sock))
        while True:
            skb = sock.recvmsg()
            if skb is None:
                return
            payload = skb.udp_len - 8
            if client is None:
                self._to_backend(skb, payload)
            else:
                self._to_client(skb, payload, client)

    def _backend(self, client: tuple[int, int]) -> UdpSock:
        b = self.backends.get(client)
        if b is None:
            b = self.backends[client] = UdpSock(self.ns, self.cpu)
            b.on_readable = lambda b=b, c=client: self._wake(b, c)
            self.sessions += 1
        return b

    def _to_backend(self, skb: Any, payload: int) -> None:
        fs = self.frontend_stats
        fs.rx_msgs += 1
        fs.rx_bytes += payload
        self.relay_cost(skb)
        b = self._backend((skb.saddr, skb.sport))
        flow = skb.origin.flow if skb.origin is not None else -1
        if b.sendmsg(self.backend_addr, self.backend_port, payload, flow=flow, app=skb.app,
                     waits=dict(skb.acct) if skb.acct is not None else None) == 0:
            self.backend_stats.tx_msgs += 1
            self.backend_stats.tx_bytes += payload

    def _to_client(self, skb: Any, payload: int, client: tuple[int, int]) -> None:
        bs = self.backend_stats
        bs.rx_msgs += 1
        bs.rx_bytes += payload
        self.relay_cost(skb)
        flow = skb.origin.flow if skb.origin is not None else -1
        if self.front.sendmsg(client[0], client[1], payload, flow=flow, app=skb.app,
                              waits=dict(skb.acct) if skb.acct is not None else None) == 0:
            self.frontend_stats.tx_msgs += 1
            self.frontend_stats.tx_bytes += payload


SPLICE_MAX_BYTES = 1 << 20          # Go's maxSpliceSize (internal/poll/splice_linux.go)


class _Broker:
    """One direction of a proxied connection: moby's ``broker(to, from)``, ``io.Copy(to, from)``
    then ``from.CloseRead(); to.CloseWrite()``. A read of up to 1 MiB, the proxy's work, a write
    of what was read (waiting for send-buffer space when it does not fit), again."""

    __slots__ = ("px", "sess", "src", "dst", "rx", "tx", "pending", "done", "left", "written", "marks", "mk",
                 "t_read", "dp_s", "blocked_s", "cpu_wait_s", "since", "ready")

    def __init__(self, px: "TcpProxy", sess: "_Session", src: TcpSock, dst: TcpSock, rx: _SockStats,
                 tx: _SockStats) -> None:
        self.px, self.sess, self.src, self.dst, self.rx, self.tx = px, sess, src, dst, rx, tx
        self.pending = self.done = False
        self.left = self.written = self.mk = 0
        self.marks: list[tuple[int, Mark]] = []
        self.t_read = self.dp_s = self.blocked_s = self.cpu_wait_s = self.ready = 0.0
        self.since: float | None = None

    def wake(self) -> None:
        """``sk_data_ready`` of the source (or the start): the goroutine runs unless it sleeps in a
        write (then the destination's ``sk_write_space`` resumes it)."""
        if self.pending or self.done or self.since is not None:
            return
        self.pending = True
        self.sess.busy()
        self.px.cpu.submit(self.run, None)

    def writable(self) -> None:
        """``sk_write_space`` of the destination: the blocked write goes on."""
        if self.since is None or self.pending:
            return
        now = self.px.ctx.vnow()
        self.blocked_s += now - self.since
        self.since = None
        self.ready = now
        self.pending = True
        self.sess.busy()
        self.px.cpu.submit(self.run, None)

    def run(self, _arg: Any) -> None:
        self.pending = False
        seg = self.px.ctx.seg
        costs = seg.cpu.costs
        if self.left:
            if seg.start > self.ready:
                self.cpu_wait_s += seg.start - self.ready
            if not self._write(seg):
                self.sess.idle()
                return
        src = self.src
        call = costs["syscall"].per_packet_s + costs["tcp_recvmsg"].per_packet_s
        per_byte = costs["tcp_recvmsg"].per_byte_s
        dp = costs["docker_proxy"].per_packet_s
        while not self.done:
            if not src.readable():
                if src.at_eof() or src.err:
                    seg.cost += call                      # the read that returns 0 (or the error)
                    self._eof(seg)
                break
            start = seg.start + seg.cost
            seg.cost += call
            before = src.copied_seq
            got, marks = src.recvmsg(SPLICE_MAX_BYTES)
            seg.cost += per_byte * got
            t_end = seg.start + seg.cost
            self.rx.rx_msgs += 1
            self.rx.rx_bytes += got
            seg.cost += dp                                # the proxy's own work between the calls
            relayed = []
            for m in marks:
                r = Mark(m.app, m.t_call, mark_ledger(m, start, t_end))
                relayed.append((m.end_seq - before, r))
            self.left, self.written, self.marks, self.mk = got, 0, relayed, 0
            self.t_read, self.dp_s, self.blocked_s, self.cpu_wait_s = t_end, dp, 0.0, 0.0
            if not self._write(seg):
                break
        self.sess.idle()

    def _write(self, seg: Any) -> bool:
        """write() of what is left of the chunk; False: blocked (or failed)."""
        costs = seg.cpu.costs
        seg.cost += costs["syscall"].per_packet_s + costs["tcp_sendmsg"].per_packet_s
        base = self.written
        pend = [(off - base, m) for off, m in self.marks[self.mk:]]
        copied = self.dst.sendmsg(self.left, marks=pend)
        if copied < 0:                                    # io.Copy fails: this direction is over
            self.left = 0
            self._eof(seg)
            return False
        for off, m in pend:
            if off > copied:
                break
            self.mk += 1
            pre = m.pre
            rest = m.t_copied - self.t_read - self.dp_s - self.blocked_s - self.cpu_wait_s
            for k, v in (("cpu:docker_proxy", self.dp_s), ("sndbuf", self.blocked_s), ("cpu_wait", self.cpu_wait_s),
                         ("cpu:tcp_sendmsg", rest)):
                if v > 0.0:
                    pre[k] = pre.get(k, 0.0) + v
        self.left -= copied
        self.written += copied
        self.tx.tx_bytes += copied
        if self.left:
            self.since = seg.start + seg.cost             # asleep until sk_write_space
            return False
        self.tx.tx_msgs += 1
        return True

    def _eof(self, seg: Any) -> None:
        """``from.CloseRead(); to.CloseWrite()``: the FIN goes on to the other side."""
        self.done = True
        seg.cost += seg.cpu.costs["syscall"].per_packet_s
        self.dst.close()
        self.sess.broker_done()


class _Session:
    """One client connection and the proxy's connection to the container (``clientLoop``)."""

    __slots__ = ("front", "back", "up", "down", "closed")

    def __init__(self, px: "TcpProxy", front: TcpSock, back: TcpSock) -> None:
        self.front, self.back = front, back
        self.up = _Broker(px, self, front, back, px.frontend_stats, px.backend_stats)
        self.down = _Broker(px, self, back, front, px.backend_stats, px.frontend_stats)
        self.closed = False

    def busy(self) -> None:
        self.front.user_idle = self.back.user_idle = False

    def idle(self) -> None:
        """Between calls the proxy sleeps in epoll: it touches a socket only when woken."""
        if not (self.up.pending or self.down.pending):
            self.front.user_idle = self.back.user_idle = True

    def broker_done(self) -> None:
        if self.up.done and self.down.done and not self.closed:
            self.closed = True                            # client.Close(); backend.Close()
            self.front.close()
            self.back.close()


class TcpProxy(UserlandProxy):
    """``TCPProxy``: accepts on the host port, a second connection to the container per client."""

    proto = "tcp"

    def __init__(self, ns: "Netns", cpu: "Cpu", **kw: Any) -> None:
        super().__init__(ns, cpu, **kw)
        self.name = f"docker-proxy:{self.host_port}"
        self.listener = TcpSock(ns, cpu, name=self.name)
        self.listener.listen(self.host_port)
        self.listener.on_accept = lambda child: self.cpu.submit(self._accept, child)
        self.sessions_list: list[_Session] = []
        self.connect_errors = 0

    def _accept(self, child: TcpSock) -> None:
        """accept(), then ``net.DialTCP`` to the container from a new socket."""
        seg = self.ctx.seg
        costs = seg.cpu.costs
        seg.cost += costs["syscall"].per_packet_s
        q = self.listener.accept_queue
        if child in q:
            q.remove(child)
        self.sessions += 1
        back = TcpSock(self.ns, self.cpu, name=self.name)
        back.flow = child.flow
        sess = _Session(self, child, back)
        self.sessions_list.append(sess)
        seg.cost += costs["syscall"].per_packet_s
        back.on_connect = lambda rc, s=sess: self._connected(s, rc)
        if back.connect(self.backend_addr, self.backend_port) < 0:
            self._refused(sess)

    def _connected(self, sess: _Session, rc: int) -> None:
        if rc < 0:
            self.cpu.submit(lambda _a: self._refused(sess), None)
            return
        front, back = sess.front, sess.back
        front.on_readable, back.on_writable = sess.up.wake, sess.up.writable
        back.on_readable, front.on_writable = sess.down.wake, sess.down.writable
        sess.up.wake()                 # what the client sent while the proxy was connecting
        sess.down.wake()

    def _refused(self, sess: _Session) -> None:
        """``Can't forward traffic to backend``: client.Close()."""
        self.connect_errors += 1
        sess.up.done = sess.down.done = sess.closed = True
        sess.front.close()

    def counters(self) -> dict[str, Any]:
        out = super().counters()
        out["connect_errors"] = self.connect_errors
        out["connections"] = [{"frontend": _conn(s.front), "backend": _conn(s.back)} for s in self.sessions_list]
        return out


def _conn(sk: TcpSock) -> dict[str, Any]:
    return {"local": f"{int_to_ip(sk.laddr)}:{sk.lport}", "remote": f"{int_to_ip(sk.raddr)}:{sk.rport}",
            "tcp_info": tcp_info(sk)}


# docker-proxy flavours by protocol
PROXIES: dict[str, type[UserlandProxy]] = {"udp": UdpProxy, "tcp": TcpProxy}
