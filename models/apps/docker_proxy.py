"""docker-proxy, Docker's userland proxy: moby ``cmd/docker-proxy`` (``proxy.go``, ``udp_proxy.go``).

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
runs). A TCP flavour accepts on the listener and opens a second connection per client
(``TCPProxy``), on the same base class.

Each relayed datagram is a new packet (the proxy's), carrying the application's payload and
the per-layer ledger of the packet it relays, so end-to-end latencies and breakdowns stay
whole. Counters per socket: datagrams and bytes in and out, and the number of sessions.

Scope and limitations: the proxy's goroutine scheduling is one CPU segment per message.
Validation: tests/models/linux/test_nat.py (two sockets, their counters, the extra cost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..linux.udp import UdpSock

if TYPE_CHECKING:
    from ..linux.cpu import Cpu
    from ..linux.netns import Netns

__all__ = ["UserlandProxy", "UdpProxy", "PROXIES"]


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


# docker-proxy flavours by protocol; TCP's registers here when TCP is modelled
PROXIES: dict[str, type[UserlandProxy]] = {"udp": UdpProxy}
