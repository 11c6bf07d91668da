"""UDP sockets: net/ipv4/udp.c (``udp_sendmsg``, ``udp_rcv``, ``__udp_enqueue_schedule_skb``,
``udp_recvmsg``) and the socket memory accounting of net/core/sock.c.

Send: a datagram of P bytes becomes one skb of ``28 + P`` bytes of IP packet, charged to the
socket's ``sk_wmem_alloc`` by truesize until the skb is freed (TX completion on a NIC,
``skb_orphan`` at a veth or loopback, or a drop). A writer is blocked while
``sk_wmem_alloc ≥ sk_sndbuf`` (``sock_alloc_send_pskb``) and woken when it falls to half
(``sock_def_write_space``). DF is set when the datagram fits the path MTU
(``IP_PMTUDISC_WANT``); larger ones are fragmented without DF. ``OutDatagrams`` counts
datagrams handed to IP; a missing route fails the call with ENETUNREACH (``OutNoRoutes``).
The first send of an unbound socket picks an ephemeral port in ``ip_local_port_range``
(32768–60999).

Receive: no socket on the port → ``NoPorts``, an ICMP port unreachable (rate-limited), drop
``NO_SOCKET``. A receive queue whose ``sk_rmem_alloc`` already exceeds ``sk_rcvbuf`` drops the
datagram (``RcvbufErrors`` and ``InErrors``). ``InDatagrams`` counts datagrams *read* by the
application (``udp_recvmsg``), as Linux 6.18 does (checked: datagrams never read leave it 0).

Scope and limitations: blocking sockets only, no connect() semantics beyond a default
destination, no SO_REUSEPORT, no checksum errors; send and receive buffers from
``net.core.wmem_default``/``rmem_default`` unless the workload sets them.
Validation: tests/models/linux/test_udp.py, tests/test_counts.py.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from simnet.kernel import Timer
from simnet.trace import Drop

from .skb import IPPROTO_UDP, Skb, truesize

if TYPE_CHECKING:
    from .cpu import Cpu
    from .netns import Netns

__all__ = ["UdpSock", "UdpTable", "ENETUNREACH", "EMSGSIZE", "ECONNREFUSED"]

ENETUNREACH = 101
EMSGSIZE = 90
ECONNREFUSED = 111

_PORT_LO, _PORT_HI = 32768, 60999


class UdpSock:
    """A UDP socket owned by one application process (pinned to ``cpu``)."""

    lazy_tx = True                      # NIC TX completions are applied when read (tx_complete_at)

    def __init__(self, ns: "Netns", cpu: "Cpu", port: int = 0) -> None:
        self.ns = ns
        self.ctx = ns.ctx
        self.cpu = cpu
        self.port = port
        core = ns.params.core
        self.sndbuf = core.wmem_default_bytes
        self.rcvbuf = core.rmem_default_bytes
        self.wmem_alloc = 0
        self.rmem_alloc = 0
        self.rxq: deque[Skb] = deque()
        self.on_readable: Callable[[], None] | None = None
        self.on_writable: Callable[[], None] | None = None
        self.write_blocked = False
        # (TX completion time, truesize) of skbs on a NIC's ring: freed lazily, without an event
        self._tx_done: list[tuple[float, int]] = []
        self._wake = Timer(ns.ctx, self._check_writable)
        self.errors: list[tuple[float, int, int]] = []
        if port:
            ns.udp.bind(self, port)

    # -- options -------------------------------------------------------------------
    def set_sndbuf(self, nbytes: int) -> None:
        """SO_SNDBUF: clamped to wmem_max, doubled, floored at SOCK_MIN_SNDBUF (4608)."""
        self.sndbuf = max(4608, 2 * min(nbytes, self.ns.params.core.wmem_max_bytes))

    def set_rcvbuf(self, nbytes: int) -> None:
        """SO_RCVBUF: clamped to rmem_max, doubled, floored at SOCK_MIN_RCVBUF (2304)."""
        self.rcvbuf = max(2304, 2 * min(nbytes, self.ns.params.core.rmem_max_bytes))

    # -- send ----------------------------------------------------------------------
    def writable(self) -> bool:
        """sock_writeable() as sock_alloc_send_pskb() sees it: below the send buffer."""
        if self._tx_done:
            self._reap(self.ctx.env._now)
        return self.wmem_alloc < self.sndbuf

    def block(self) -> None:
        """The writer sleeps until the charge falls to half the buffer (sock_def_write_space)."""
        self.write_blocked = True
        self._arm_wake()

    def tx_complete_at(self, t_s: float, truesize: int) -> None:
        """The driver will free an skb of ``truesize`` at ``t_s`` (TX completion); the charge
        is released then, when next read, without an event of its own."""
        heapq.heappush(self._tx_done, (t_s, truesize))
        if self.write_blocked:
            self._arm_wake()

    def _reap(self, now: float) -> None:
        done = self._tx_done
        while done and done[0][0] <= now:
            self.wmem_alloc -= heapq.heappop(done)[1]

    def _arm_wake(self) -> None:
        """Wake the writer when enough of the known TX completions have happened."""
        need = self.wmem_alloc - self.sndbuf // 2
        for t, size in sorted(self._tx_done):
            need -= size
            if need <= 0:
                if self._wake.expires_s != t:
                    self._wake.mod(t)
                return

    def _check_writable(self) -> None:
        self._reap(self.ctx.env._now)
        if self.write_blocked and 2 * self.wmem_alloc <= self.sndbuf:
            self.write_blocked = False
            if self.on_writable is not None:
                self.on_writable()
        elif self.write_blocked:
            self._arm_wake()

    def sendmsg(self, daddr: int, dport: int, payload: int, *, flow: int = -1, app: Any = None,
                waits: dict[str, float] | None = None) -> int:
        """udp_sendmsg(); runs inside a segment on the owner's CPU. Returns 0 or -errno.

        ``waits`` says how the time from the application's call to the start of this segment
        was spent (``sndbuf``, ``cpu_wait``); it seeds the datagram's per-layer ledger so that
        its latency adds up from the application's point of view.
        """
        ns = self.ns
        seg = self.ctx.seg
        rt = ns.route_output(daddr)
        if rt is None:
            ns.snmp_ip["OutNoRoutes"] += 1
            if seg is not None:
                seg.cost += seg.cpu.costs["syscall"].per_packet_s
            return -ENETUNREACH
        if not self.port:
            ns.udp.autobind(self)
        skb = ns.alloc_skb("udp", flow)
        if waits and skb.acct is not None:
            skb.acct.update(waits)
        skb.proto = IPPROTO_UDP
        skb.saddr = ns.source_for(rt, daddr)
        skb.daddr = daddr
        skb.sport = self.port
        skb.dport = dport
        skb.ttl = ns.ttl
        skb.udp_len = 8 + payload
        skb.l3_len = 28 + payload
        skb.truesize = truesize(skb.l3_len)
        skb.ip_id = ns.next_ip_id()
        skb.app = app
        skb.df = skb.l3_len <= ns.path_mtu(rt, daddr)
        if seg is not None:
            seg.charge(skb, "syscall", payload)
            seg.charge(skb, "udp_sendmsg")
        ns.snmp_udp["OutDatagrams"] += 1
        self.wmem_alloc += skb.truesize
        skb.sk = self
        ns.ip_local_out(skb, rt)
        return 0

    def wfree(self, skb: Skb) -> None:
        """sock_wfree(): release the charge; wake a blocked writer at half the buffer."""
        self.wmem_alloc -= skb.truesize
        if self.write_blocked and 2 * self.wmem_alloc <= self.sndbuf:
            self.write_blocked = False
            cb = self.on_writable
            if cb is not None:
                self.ctx.defer(_call, cb)

    # -- receive -------------------------------------------------------------------
    def enqueue(self, skb: Skb) -> bool:
        """__udp_enqueue_schedule_skb(): False when the receive buffer is full."""
        if self.rmem_alloc > self.rcvbuf:
            return False
        self.rmem_alloc += skb.truesize
        self.rxq.append(skb)
        cb = self.on_readable
        if cb is not None:
            self.ctx.defer(_call, cb)
        return True

    def recvmsg(self) -> Skb | None:
        """udp_recvmsg(); runs inside a segment on the owner's CPU."""
        if not self.rxq:
            return None
        skb = self.rxq.popleft()
        self.rmem_alloc -= skb.truesize
        self.ns.snmp_udp["InDatagrams"] += 1
        seg = self.ctx.seg
        if seg is not None:
            acct = skb.acct
            if acct is not None and seg.start > skb.t_mark:
                acct["socket_rx"] = acct.get("socket_rx", 0.0) + (seg.start - skb.t_mark)
                skb.t_mark = seg.start
            seg.charge(skb, "syscall")
            seg.charge(skb, "udp_recvmsg", skb.udp_len - 8)
        return skb

    def close(self) -> None:
        self.ns.udp.unbind(self)


def _call(fn: Callable[[], None]) -> None:
    fn()


class UdpTable:
    """The UDP sockets of one namespace, by local port."""

    def __init__(self, ns: "Netns") -> None:
        self.ns = ns
        self.socks: dict[int, UdpSock] = {}
        # encapsulation sockets (udp_tunnel: VXLAN), by port: their encap_rcv takes the datagram
        self.encap: dict[int, Any] = {}
        span = _PORT_HI - _PORT_LO + 1
        self._next = _PORT_LO + int(ns.ctx.rng(f"udp-ports:{ns.name}").integers(0, span))

    def bind(self, sock: UdpSock, port: int) -> None:
        if port in self.socks:
            raise OSError(98, f"{self.ns.name}: UDP port {port} in use")
        self.socks[port] = sock
        sock.port = port

    def unbind(self, sock: UdpSock) -> None:
        if self.socks.get(sock.port) is sock:
            del self.socks[sock.port]

    def autobind(self, sock: UdpSock) -> None:
        """inet_autobind(): the next free ephemeral port."""
        span = _PORT_HI - _PORT_LO + 1
        for _ in range(span):
            port = self._next
            self._next = _PORT_LO + (self._next - _PORT_LO + 1) % span
            if port not in self.socks:
                self.bind(sock, port)
                return
        raise OSError(98, f"{self.ns.name}: no free ephemeral UDP port")

    def rcv(self, skb: Skb, pt: int) -> None:
        """udp_rcv() → __udp4_lib_rcv()."""
        ns = self.ns
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "udp_rcv")
        sock = self.socks.get(skb.dport)
        if sock is None and self.encap:
            enc = self.encap.get(skb.dport)
            if enc is not None:
                # udp_queue_rcv_one_skb(): an encapsulation socket's datagram counts in InDatagrams
                ns.snmp_udp["InDatagrams"] += 1
                enc.encap_rcv(skb)
                return
        if sock is None:
            ns.snmp_udp["NoPorts"] += 1
            ns.icmp.send(skb, 3, 3, pt=pt)
            ns.kfree_skb(skb, Drop.NO_SOCKET, "__udp4_lib_rcv")
            return
        if not sock.enqueue(skb):
            ns.snmp_udp["RcvbufErrors"] += 1
            ns.snmp_udp["InErrors"] += 1
            ns.kfree_skb(skb, Drop.SOCKET_RCVBUFF, "__udp_enqueue_schedule_skb")
            return
        ns.ctx.tracer.deliver(skb)

    def err(self, quote: Skb, itype: int, code: int) -> None:
        """__udp4_lib_err(): record the error on the sending socket, if it still exists."""
        sock = self.socks.get(quote.sport)
        if sock is not None:
            sock.errors.append((self.ns.ctx.vnow(), itype, code))
