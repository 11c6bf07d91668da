"""docker-proxy for TCP, as an agent: what models/apps/docker_proxy.py's ``TcpProxy`` simulates.

moby's ``cmd/docker-proxy`` (``tcp_proxy.go``, ``TCPProxy``): a listening socket on the
published port on every address of the host (``0.0.0.0:HOSTPORT``, ``SO_REUSEADDR`` as Go's
listeners have it); per accepted client (``Run``) a second connection to the container
(``clientLoop``: ``net.DialTCP``; when it fails the client's connection is closed) and two
brokers, ``io.Copy(backend, client)`` and ``io.Copy(client, backend)``. A broker that reads end
of file (or fails) half-closes: ``from.CloseRead(); to.CloseWrite()`` — ``shutdown(SHUT_RD)``
on the socket it read, ``shutdown(SHUT_WR)`` (the FIN) on the other — and the pair is closed
when both brokers are done. The kernel's DNAT rule takes traffic from other machines first
(PREROUTING), so the proxy carries the host's own connections to 127.0.0.1 and hairpin ones
from containers.

Here one thread relays every connection with non-blocking sockets: a direction reads up to
1 MiB (Go's ``maxSpliceSize``, as the model reads) until the socket has nothing more, and
writes what it read before it reads again (``io.Copy``: a full send buffer stops the reading,
and TCP's flow control pushes back on the sender). The sockets take the namespace's
congestion control (``TCP_CONGESTION``: the model's sockets use
``net.ipv4.tcp_congestion_control``, which a namespace here may not set as its default) and
Nagle stays on, as in the model (Go sets ``TCP_NODELAY`` on its connections: see
models/apps/docker_proxy.py). When both directions are done the agent waits (at most
``CLOSE_WAIT_S``) until both sockets are in state CLOSE — their FINs acknowledged — so their
``TCP_INFO`` counts the whole connection, reads it and closes them.

Counters, in the model's names: ``sessions`` (connections accepted), ``connect_errors``
(backend connections that failed), per side ``rx_msgs``/``rx_bytes`` (``read()`` calls that
returned data, bytes read) and ``tx_msgs``/``tx_bytes`` (chunks written whole, bytes written)
— ``frontend`` the client's connection, ``backend_socket`` the container's — and
``connections``: per session both sockets' addresses and ``TCP_INFO`` (agents/tcp.py).

Scope and limitations: a backend connect() blocks the relay for at most ``DIAL_TIMEOUT_S``
(the model dials without a timeout); ``SO_LINGER`` and keep-alive are not set.
Standard library only.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from .base import Agent, now
from .tcp import TCP_CLOSE, TCP_CONGESTION, TCP_INFO, tcp_info

__all__ = ["TcpProxyAgent"]

READ_MAX_BYTES = 1 << 20      # Go's maxSpliceSize (internal/poll/splice_linux.go): io.Copy's largest read
DIAL_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 2.0            # longest a finished session waits for its FINs to be acknowledged


def _stats() -> dict[str, int]:
    return {"rx_msgs": 0, "rx_bytes": 0, "tx_msgs": 0, "tx_bytes": 0}


def _addr(sock: socket.socket, peer: bool) -> str:
    try:
        a, p = sock.getpeername() if peer else sock.getsockname()
    except OSError:
        return ""
    return f"{a}:{p}"


class _Broker:
    """One direction: read from ``src``, write all of it to ``dst``, again; at end of file the half-close."""

    def __init__(self, src: socket.socket, dst: socket.socket, rx: dict[str, int], tx: dict[str, int]) -> None:
        self.src, self.dst, self.rx, self.tx = src, dst, rx, tx
        self.buf = bytearray(READ_MAX_BYTES)
        self.pending: memoryview | None = None
        self.done = False

    def pump(self) -> None:
        """The source is readable (or the destination writable again): relay until either would block."""
        while not self.done:
            if self.pending is not None and not self._write():
                return
            try:
                n = self.src.recv_into(self.buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                n = 0                         # a reset: io.Copy returns its error, the broker ends the same way
            if n == 0:
                self._eof()
                return
            self.rx["rx_msgs"] += 1
            self.rx["rx_bytes"] += n
            self.pending = memoryview(self.buf)[:n]

    def _write(self) -> bool:
        """Write what is pending; False when the destination's send buffer is full (or it failed)."""
        assert self.pending is not None
        while len(self.pending):
            try:
                k = self.dst.send(self.pending)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.pending = None
                self._eof()
                return False
            self.tx["tx_bytes"] += k
            self.pending = self.pending[k:]
        self.pending = None
        self.tx["tx_msgs"] += 1
        return True

    def _eof(self) -> None:
        """``from.CloseRead(); to.CloseWrite()``."""
        self.done = True
        for s, how in ((self.src, socket.SHUT_RD), (self.dst, socket.SHUT_WR)):
            try:
                s.shutdown(how)
            except OSError:
                pass


class _Session:
    """The client's connection and the proxy's to the container."""

    def __init__(self, front: socket.socket, back: socket.socket, fs: dict[str, int], bs: dict[str, int]) -> None:
        self.front, self.back = front, back
        self.up = _Broker(front, back, fs, bs)
        self.down = _Broker(back, front, bs, fs)
        self.ends = {"frontend": (_addr(front, False), _addr(front, True)),
                     "backend": (_addr(back, False), _addr(back, True))}
        self.done_at: float | None = None
        self.info: dict[str, Any] | None = None

    def brokers(self) -> tuple[_Broker, _Broker]:
        return self.up, self.down

    def closed(self) -> bool:
        """Both FINs acknowledged on both sockets (or waited long enough)."""
        if self.done_at is None:
            return False
        for s in (self.front, self.back):
            try:
                if s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 1)[0] != TCP_CLOSE:
                    return now() - self.done_at > CLOSE_WAIT_S
            except OSError:
                pass
        return True

    def finish(self) -> None:
        """TCP_INFO of both sockets, then ``client.Close(); backend.Close()``."""
        if self.info is not None:
            return
        self.info = {}
        for side, s in (("frontend", self.front), ("backend", self.back)):
            local, remote = self.ends[side]
            try:
                ti = tcp_info(s)
            except OSError:
                ti = {}
            self.info[side] = {"local": local, "remote": remote, "tcp_info": ti}
            s.close()


class TcpProxyAgent(Agent):
    """Config: ``host_port``, ``backend_addr``, ``backend_port``, ``cc`` (and ``cpu``, ``rtprio``)."""

    def setup(self) -> dict[str, Any]:
        c = self.cfg
        self.backend = (c["backend_addr"], int(c["backend_port"]))
        self.cc = str(c["cc"]).encode() if c.get("cc") else None
        ls = self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._cc(ls)                                    # accepted sockets inherit it
        ls.bind(("0.0.0.0", int(c["host_port"])))
        ls.listen(socket.SOMAXCONN)
        ls.setblocking(False)
        self.fs, self.bs = _stats(), _stats()
        self.sessions: list[_Session] = []
        self.accepted = 0
        self.connect_errors = 0
        return {}

    def _cc(self, s: socket.socket) -> None:
        if self.cc:
            s.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, self.cc)

    def _accept(self) -> None:
        """accept() every waiting client, and dial the container for each (``clientLoop``)."""
        while True:
            try:
                front, _client = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            self.accepted += 1
            back = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._cc(back)
            back.settimeout(max(0.1, min(DIAL_TIMEOUT_S, self.deadline - now())))
            try:
                back.connect(self.backend)
            except OSError:
                self.connect_errors += 1               # "Can't forward traffic to backend": client.Close()
                back.close()
                front.close()
                continue
            front.setblocking(False)
            back.setblocking(False)
            sess = _Session(front, back, self.fs, self.bs)
            self.sessions.append(sess)
            for b in sess.brokers():                   # what the client sent while the proxy dialled
                b.pump()

    def _relay(self, timeout_s: float) -> bool:
        """One round: wait for any socket (or the engine) at most ``timeout_s``; True if the engine spoke."""
        rl: list[Any] = [self.listener, 0]
        wl: list[Any] = []
        for s in self.sessions:
            for b in s.brokers():
                if not b.done:
                    (wl if b.pending is not None else rl).append(b.dst if b.pending is not None else b.src)
        r, w, _x = select.select(rl, wl, [], max(0.0, timeout_s))
        ready = {id(x) for x in (*r, *w)}
        if self.listener in r:
            self._accept()
        for s in self.sessions:
            for b in s.brokers():
                if not b.done and id(b.dst if b.pending is not None else b.src) in ready:
                    b.pump()
            if s.done_at is None and s.up.done and s.down.done:
                s.done_at = now()
            if s.info is None and s.closed():
                s.finish()
        return 0 in r

    def idle(self) -> None:
        if self._relay(min(0.05, self.deadline - now())):
            self._wait_msg(0.0)

    def finish(self) -> dict[str, Any]:
        self._relay(0.0)
        for s in self.sessions:
            s.finish()
        self.listener.close()
        return {"proto": "tcp", "host_port": int(self.cfg["host_port"]),
                "backend": f"{self.backend[0]}:{self.backend[1]}/tcp", "sessions": self.accepted,
                "frontend": self.fs, "backend_socket": self.bs, "connect_errors": self.connect_errors,
                "connections": [s.info for s in self.sessions]}
