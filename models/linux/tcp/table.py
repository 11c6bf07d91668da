"""The TCP sockets of one namespace: net/ipv4/tcp_ipv4.c (``tcp_v4_rcv``, ``tcp_v4_connect``,
``tcp_v4_conn_request``, ``tcp_v4_send_reset``), inet_hashtables.c (ephemeral ports) and the
MIB counters of ``/proc/net/snmp`` (``Tcp``) and ``/proc/net/netstat`` (``TcpExt``).

``rcv`` counts every segment in ``InSegs`` (one per skb, as the kernel does: a GRO or TSO
super-segment counts once), finds the established socket by its 4-tuple or the listener by
port, and otherwise answers with a reset (``OutRsts``; RST with ``seq`` = the ACK number, or
RST|ACK acknowledging the segment when it had no ACK) and drops the segment (``NO_SOCKET``).
A segment for a socket whose application is inside a system call on another CPU at that
(virtual) time goes to the socket's backlog (``tcp_add_backlog``) and is processed on the
owner's CPU when the call ends (``release_sock``), so one CPU at a time works on a socket.
A SYN to a listener creates the child socket in SYN_RECV (a full socket rather than the
kernel's request sock), which answers with a SYN-ACK; the final ACK makes it ESTABLISHED
(``PassiveOpens``) and puts it on the listener's accept queue. ``connect`` picks the route,
the source address, an ephemeral port (``ip_local_port_range`` 32768–60999, offset drawn from
the namespace's seeded stream), a random initial sequence number and timestamp offset, and
sends the SYN (``ActiveOpens``).

Counters: ``Tcp`` has the kernel's fields in the kernel's order (RtoAlgorithm 1, RtoMin 200,
RtoMax 120000, MaxConn -1, ActiveOpens, PassiveOpens, AttemptFails, EstabResets, CurrEstab,
InSegs, OutSegs — new segments, not retransmissions, counted per TSO segment —,
RetransSegs, InErrs, OutRsts, InCsumErrors); ``TcpExt`` has the fields simnet models.

Scope and limitations: no SYN cookies, no accept backlog limit, no SO_REUSEADDR/REUSEPORT,
no TIME_WAIT assassination, bound only to the wildcard address.
Validation: tests/models/linux/tcp/test_handshake.py (RST to a closed port, counters).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from simnet.trace import Drop

from ..skb import IPPROTO_TCP, Skb
from .const import ACK, FIN, RST, SYN, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT
from .queue import RtxSeg

if TYPE_CHECKING:
    from ..netns import Netns
    from .sock import TcpSock

__all__ = ["TcpTable", "TCP_FIELDS", "TCPEXT_FIELDS"]

TCP_FIELDS = ("RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "ActiveOpens", "PassiveOpens", "AttemptFails",
              "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs", "InErrs", "OutRsts", "InCsumErrors")
TCPEXT_FIELDS = ("DelayedACKs", "DelayedACKLost", "TCPPureAcks", "TCPSackRecovery", "TCPLostRetransmit",
                 "TCPFastRetrans", "TCPSlowStartRetrans", "TCPTimeouts", "TCPLossProbes", "TCPSynRetrans",
                 "TCPOFOQueue", "TCPOFODrop", "TCPZeroWindowDrop", "TCPToZeroWindowAdv", "TCPFromZeroWindowAdv",
                 "TCPAutoCorking", "TCPOrigDataSent", "TCPDelivered", "TCPHystartTrainDetect",
                 "TCPHystartTrainCwnd", "TCPHystartDelayDetect", "TCPHystartDelayCwnd")

_PORT_LO, _PORT_HI = 32768, 60999


class TcpTable:
    """TCP of one namespace: the socket tables and the MIB."""

    def __init__(self, ns: "Netns") -> None:
        self.ns = ns
        self.ehash: dict[tuple[int, int, int, int], "TcpSock"] = {}
        self.listeners: dict[int, "TcpSock"] = {}
        self.bound: Counter[int] = Counter()
        self.mib = dict.fromkeys(TCP_FIELDS, 0)
        self.mib.update(RtoAlgorithm=1, RtoMin=int(ns.params.tcp.rto_min_s * 1000),
                        RtoMax=int(ns.params.tcp.rto_max_s * 1000), MaxConn=-1)
        self.ext: Counter[str] = Counter()
        self.rng = ns.ctx.rng(f"tcp:{ns.name}")
        span = _PORT_HI - _PORT_LO + 1
        self._next = _PORT_LO + int(self.rng.integers(0, span))
        self.socks: list["TcpSock"] = []

    # -- sockets --------------------------------------------------------------------------------
    def register(self, sk: "TcpSock") -> None:
        sk.mib_tcp = self.mib
        sk.mib_ext = self.ext
        sk.ip_id = int(self.rng.integers(0, 65536))
        sk.mss_clamp_user = False
        sk.advmss_syn = 1460
        sk.rs_rtt_us = -1
        sk.rcv_tstamp = 0.0
        self.socks.append(sk)

    def listen(self, sk: "TcpSock", port: int) -> None:
        if port in self.listeners:
            raise OSError(98, f"{self.ns.name}: TCP port {port} in use")
        self.listeners[port] = sk
        sk.lport = port
        sk.state = TCP_LISTEN

    def unlisten(self, sk: "TcpSock") -> None:
        if self.listeners.get(sk.lport) is sk:
            del self.listeners[sk.lport]

    def unhash(self, sk: "TcpSock") -> None:
        key = (sk.laddr, sk.lport, sk.raddr, sk.rport)
        if self.ehash.get(key) is sk:
            del self.ehash[key]

    def _ephemeral(self, laddr: int, raddr: int, rport: int) -> int:
        span = _PORT_HI - _PORT_LO + 1
        for _ in range(span):
            port = self._next
            self._next = _PORT_LO + (self._next - _PORT_LO + 1) % span
            if (laddr, port, raddr, rport) not in self.ehash and port not in self.listeners:
                return port
        raise OSError(99, f"{self.ns.name}: no free ephemeral TCP port")

    def _setup_route(self, sk: "TcpSock", rt: Any, daddr: int) -> None:
        """sk_setup_caps(): the route, MSS and GSO limits (TCP always uses GSO since 4.x)."""
        sk.route = rt
        mtu = self.ns.path_mtu(rt, daddr)
        sk.advmss = mtu - 40
        sk.advmss_syn = mtu - 40
        sk.gso_ok = True
        sk.gso_max_size = sk.p.gso_max_size_bytes - (sk.p.max_tcp_header_bytes + 1)

    def connect(self, sk: "TcpSock", daddr: int, dport: int) -> int:
        """tcp_v4_connect() + tcp_connect()."""
        ns = self.ns
        rt = ns.route_output(daddr)
        if rt is None:
            ns.snmp_ip["OutNoRoutes"] += 1
            return -101
        sk.laddr = ns.source_for(rt, daddr)
        sk.raddr = daddr
        sk.rport = dport
        sk.lport = self._ephemeral(sk.laddr, daddr, dport)
        self._setup_route(sk, rt, daddr)
        self.ehash[(sk.laddr, sk.lport, daddr, dport)] = sk
        sk.iss = int(self.rng.integers(0, 1 << 32))
        sk.ts_offset = int(self.rng.integers(0, 1 << 32))
        self._init_seq(sk)
        # tcp_connect_init()
        sk.tcp_header_len = 20 + (12 if sk.tstamp_ok else 0)
        sk.mss_clamp = sk.advmss
        sk.sync_mss(self.ns.path_mtu(rt, daddr))
        if sk.userlocks & 2 and (sk.window_clamp > sk.full_space() or sk.window_clamp == 0):
            sk.window_clamp = sk.full_space()
        sk.select_initial_window(sk.full_space(), sk.advmss)
        sk.rcv_ssthresh = sk.rcv_wnd
        sk.state = TCP_SYN_SENT
        sk.t_connect = ns.ctx.vnow()
        self.mib["ActiveOpens"] += 1
        self._queue_syn(sk)
        return 0

    def _init_seq(self, sk: "TcpSock") -> None:
        iss = sk.iss
        sk.snd_una = sk.snd_nxt = sk.pushed_seq = sk.snd_sml = iss
        sk.write_seq = iss + 1
        sk.rtt_seq = iss

    def _queue_syn(self, sk: "TcpSock") -> None:
        """The SYN (or SYN-ACK) sits on the retransmit queue like data and is sent."""
        now = sk.ctx.vnow()
        sk.rtx_queue.append(RtxSeg(sk.iss, sk.iss + 1, sk.skb_head(), SYN, now, None))
        sk.wmem_queued += sk.skb_head()
        sk.packets_out = 1
        sk.snd_nxt = sk.iss + 1
        sk.send_syn()
        sk.pending_timer = 1
        sk.rto = sk.p.rto_initial_s
        sk.rtx_timer.mod(now + sk.rto)

    # -- input ----------------------------------------------------------------------------------
    def rcv(self, skb: Skb, pt: int) -> None:
        """tcp_v4_rcv()."""
        ns = self.ns
        self.mib["InSegs"] += 1
        seg = ns.ctx.seg
        if seg is not None:
            seg.charge(skb, "tcp_rcv")
        sk = self.ehash.get((skb.daddr, skb.dport, skb.saddr, skb.sport))
        if sk is not None:
            if sk.backlog or sk.owned:
                sk.add_backlog(skb)       # the owner is in a system call on its CPU
                return
            if seg.cpu is not sk.cpu:
                vnow = seg.start + seg.cost
                cpu = sk.cpu
                if sk.owned_until > vnow or (not sk.user_idle and cpu.free_at < vnow and vnow > ns.ctx.env._now):
                    # The owner is in a system call then, or its program may still reach the
                    # socket before this segment's virtual time (its CPU is free earlier and it
                    # is not asleep on this socket): take it at that time, in time order with
                    # the owner (see add_backlog).
                    sk.add_backlog(skb)
                    return
            sk.sync(skb)
            sk.rcv(skb)
            sk.release()
            return
        lst = self.listeners.get(skb.dport)
        fl = skb.tcp_flags
        if lst is not None and ns.local_addrs.get(skb.daddr) is not None:
            if fl & SYN and not fl & (ACK | RST):
                self.conn_request(lst, skb)
                return
            if fl & RST:
                ns.kfree_skb(skb, Drop.TCP_RESET, "tcp_v4_rcv")
                return
        self.send_reset(skb)
        ns.kfree_skb(skb, Drop.NO_SOCKET, "tcp_v4_rcv")

    def conn_request(self, lst: "TcpSock", skb: Skb) -> None:
        """tcp_conn_request() → a child socket in SYN_RECV that sends the SYN-ACK."""
        from .sock import TcpSock
        ns = self.ns
        ctx = ns.ctx
        ctx.tracer.deliver(skb)
        rt = ns.route_output(skb.saddr)
        if rt is None:
            return
        child = TcpSock(ns, lst.cpu, cc=lst.ca_name, name=lst.name)
        child.parent = lst
        # a listener serving several flows (docker-proxy's) gives each child the flow of its SYN
        child.flow = lst.flow if lst.flow >= 0 or skb.origin is None else skb.origin.flow
        child.userlocks = lst.userlocks
        child.sndbuf = lst.sndbuf
        child.rcvbuf = lst.rcvbuf
        child.nonagle = lst.nonagle
        child.laddr, child.lport, child.raddr, child.rport = skb.daddr, skb.dport, skb.saddr, skb.sport
        self._setup_route(child, rt, skb.saddr)
        self.ehash[(child.laddr, child.lport, child.raddr, child.rport)] = child
        child.iss = int(self.rng.integers(0, 1 << 32))
        child.ts_offset = int(self.rng.integers(0, 1 << 32))
        self._init_seq(child)
        child.write_seq = child.iss + 1
        mss, sack_ok, ts_ok, wscale, _n = skb.syn_opts
        child.mss_clamp = 536
        child.apply_peer_syn_options(mss, sack_ok, ts_ok, wscale, skb)
        child.irs = skb.seq
        child.segs_in = 1                    # the SYN (tcp_create_openreq_child)
        child.rcv_nxt = child.rcv_wup = child.copied_seq = skb.seq + 1
        child.rcvq_seq = child.copied_seq
        child.snd_wnd = skb.window
        child.snd_wl1 = skb.seq
        child.max_window = child.snd_wnd
        child.sync_mss(ns.path_mtu(rt, skb.saddr))
        # tcp_openreq_init_rwin()
        mss_w = child.advmss_syn - (12 if child.tstamp_ok else 0)
        if child.userlocks & 2 and (child.window_clamp > child.full_space() or child.window_clamp == 0):
            child.window_clamp = child.full_space()
        wscale_ok = child.wscale_ok
        child.select_initial_window(child.full_space(), mss_w)
        if not wscale_ok:
            child.rcv_wscale = 0
        child.rcv_ssthresh = child.rcv_wnd
        child.state = TCP_SYN_RECV
        child.on_readable = None
        self._queue_syn(child)

    def send_reset(self, skb: Skb) -> None:
        """tcp_v4_send_reset(): answer a segment nobody owns."""
        ns = self.ns
        fl = skb.tcp_flags
        if fl & RST:
            return
        rt = ns.route_output(skb.saddr)
        if rt is None:
            return
        ctx = ns.ctx
        r = Skb()
        r.id = ctx.next_skb_id()
        r.origin = ctx.tracer.originate("tcp")
        r.t_mark = ctx.vnow()
        r.proto = IPPROTO_TCP
        r.saddr = skb.daddr
        r.daddr = skb.saddr
        r.sport = skb.dport
        r.dport = skb.sport
        r.ttl = ns.ttl
        r.df = True
        r.tcp_hlen = 20
        r.l3_len = 40
        if fl & ACK:
            r.seq = skb.ack_seq
            r.tcp_flags = RST
        else:
            payload = skb.l3_len - 20 - skb.tcp_hlen
            r.seq = 0
            r.ack_seq = skb.seq + payload + (1 if fl & SYN else 0) + (1 if fl & FIN else 0)
            r.tcp_flags = RST | ACK
        self.mib["OutRsts"] += 1
        self.mib["OutSegs"] += 1
        seg = ctx.seg
        if seg is not None:
            seg.charge(r, "tcp_send_ack")
        ns.ip_local_out(r, rt)

    # -- results ---------------------------------------------------------------------------------------
    def snmp(self) -> dict[str, dict[str, int]]:
        ext = {k: self.ext.get(k, 0) for k in TCPEXT_FIELDS}
        return {"Tcp": dict(self.mib), "TcpExt": ext}
