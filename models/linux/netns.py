"""A network namespace and its IPv4 layer: net/ipv4/ip_output.c, ip_input.c, ip_forward.c.

A :class:`Netns` owns its devices, routing tables, neighbour table, sockets, reassembly
queues, ICMP state and the counters of its ``/proc/net/snmp``. A :class:`Host` owns the CPUs
that all namespaces of one machine share.

Output (``ip_local_out`` → ``ip_output`` → ``ip_finish_output`` → ``ip_finish_output2``):
``OutRequests`` counts locally generated datagrams, ``OutTransmits`` every packet handed to
the neighbour layer (fragments and forwarded packets included); a packet larger than the
path MTU is fragmented (ip_fragment.py) unless DF is set. Input (``ip_rcv``): frames for
another MAC are dropped before ``InReceives`` (``OTHERHOST``); packets for any local address
(the weak host model) go to ``ip_local_deliver`` (reassembly, then ``InDelivers``, then TCP, UDP or
ICMP); others are forwarded when ``ip_forward`` is on, else counted in ``InAddrErrors`` and
dropped without an ICMP error (``ip_error``). Forwarding (``ip_forward``) checks the TTL
(ICMP time exceeded), the FORWARD hook (Docker's isolation rules), DF against the MTU (ICMP
fragmentation needed), decrements the TTL and counts ``ForwDatagrams``.

These counter semantics were checked on Linux 6.18 (UDP through veth, bridge and a router
namespace; see tests/test_counts.py for the scenarios and the expected numbers).

Scope and limitations: IPv4 only, no IP options, no policy routing, no ICMP redirects, no
rp_filter, no multicast; PMTU exceptions learnt from ICMP are kept per destination.
Validation: tests/models/linux/test_ip.py, tests/test_counts.py.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from simnet.trace import Drop

from .cpu import CostProfile, Cpu
from .dev import PACKET_HOST, PACKET_OTHERHOST, NetDevice, pkt_type
from .fib import RTN_BROADCAST, RTN_LOCAL, RTN_UNICAST, Fib, Route
from .icmp import Icmp
from .ip_fragment import Reassembly, ip_fragment
from .neigh import NeighTable
from .nic import rss_hash
from .params import StackParams
from .skb import BROADCAST_MAC, ETH_P_ARP, ETH_P_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, Skb
from .tcp.table import TcpTable
from .udp import UdpTable

__all__ = ["Host", "Netns", "IP_FIELDS", "UDP_FIELDS", "ICMP_FIELDS", "IPEXT_FIELDS"]

IP_FIELDS = ("Forwarding", "DefaultTTL", "InReceives", "InHdrErrors", "InAddrErrors", "ForwDatagrams",
             "InUnknownProtos", "InDiscards", "InDelivers", "OutRequests", "OutDiscards", "OutNoRoutes",
             "ReasmTimeout", "ReasmReqds", "ReasmOKs", "ReasmFails", "FragOKs", "FragFails", "FragCreates",
             "OutTransmits")
UDP_FIELDS = ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams", "RcvbufErrors", "SndbufErrors",
              "InCsumErrors", "IgnoredMulti", "MemErrors")
ICMP_FIELDS = ("InMsgs", "InErrors", "InCsumErrors", "InDestUnreachs", "InTimeExcds", "InParmProbs",
               "InSrcQuenchs", "InRedirects", "InEchos", "InEchoReps", "InTimestamps", "InTimestampReps",
               "InAddrMasks", "InAddrMaskReps", "OutMsgs", "OutErrors", "OutRateLimitGlobal", "OutRateLimitHost",
               "OutDestUnreachs", "OutTimeExcds", "OutParmProbs", "OutSrcQuenchs", "OutRedirects", "OutEchos",
               "OutEchoReps", "OutTimestamps", "OutTimestampReps", "OutAddrMasks", "OutAddrMaskReps")
IPEXT_FIELDS = ("InNoRoutes",)


class Host:
    """A machine: its CPUs, shared by every namespace on it."""

    def __init__(self, ctx: Any, name: str, ncpus: int, costs: CostProfile) -> None:
        self.ctx = ctx
        self.name = name
        self.costs = costs
        self.cpus = [Cpu(ctx, f"{name}/cpu{i}", costs) for i in range(ncpus)]
        self.serial = ncpus == 1       # all stack work runs one segment after another
        # net.core.netdev_max_backlog is global (init_net), so it is the host's, not a namespace's
        self.max_backlog = 1000
        self._next_app_cpu = 0

    def rss_cpu(self, skb: Skb) -> Cpu:
        if self.serial:
            return self.cpus[0]
        return self.cpus[rss_hash(skb) % len(self.cpus)]

    def app_cpu(self) -> Cpu:
        """The CPU the next application process is pinned to (round-robin)."""
        cpu = self.cpus[self._next_app_cpu % len(self.cpus)]
        self._next_app_cpu += 1
        return cpu


class Netns:
    """One network namespace."""

    def __init__(self, ctx: Any, name: str, host: Host, params: StackParams, *, hostname: str = "",
                 role: str = "container") -> None:
        self.ctx = ctx
        self.name = name
        self.host = host
        self.params = params
        self.hostname = hostname or name
        self.role = role
        self.devices: dict[str, NetDevice] = {}
        self.fib = Fib()
        self.local_addrs: dict[int, NetDevice] = {}
        self.neigh = NeighTable(self)
        self.udp = UdpTable(self)
        self.tcp = TcpTable(self)
        self.reasm = Reassembly(self)
        self.icmp = Icmp(self)
        self.forward_filter: Callable[[Skb, NetDevice, NetDevice], str | None] | None = None
        # other IP protocols delivered locally (ESP for Docker's encrypted overlay): proto -> handler
        self.ip_protos: dict[int, Callable[[Skb], None]] = {}
        self.nf: Any = None          # netfilter.Netfilter when the namespace has NAT rules
        self.proxies: list[Any] = []  # docker-proxy processes (models.apps.docker_proxy)
        self.pmtu: dict[int, tuple[int, float]] = {}
        self.snmp_ip = dict.fromkeys(IP_FIELDS, 0)
        self.snmp_ip["Forwarding"] = 1 if params.ip.ip_forward else 2
        self.snmp_ip["DefaultTTL"] = params.ip.default_ttl
        self.snmp_udp = dict.fromkeys(UDP_FIELDS, 0)
        self.snmp_icmp = dict.fromkeys(ICMP_FIELDS, 0)
        self.icmp_msg: Counter[str] = Counter()
        self.ip_ext = dict.fromkeys(IPEXT_FIELDS, 0)
        self.forwarding = params.ip.ip_forward
        self.ttl = params.ip.default_ttl
        self._ip_id = int(ctx.rng(f"ipid:{name}").integers(0, 65536))

    def __repr__(self) -> str:
        return f"<Netns {self.name}>"

    # -- configuration (what the graph builder calls) ---------------------------------
    def add_device(self, dev: NetDevice) -> None:
        if dev.ifname in self.devices:
            raise ValueError(f"{self.name}: device {dev.ifname} exists")
        self.devices[dev.ifname] = dev

    def add_address(self, dev: NetDevice, addr: int, plen: int) -> None:
        """``ip addr add addr/plen dev``: the local and broadcast entries and the connected route."""
        dev.addrs.append((addr, plen))
        self.local_addrs[addr] = dev
        self.fib.add_local(addr, self.devices["lo"] if "lo" in self.devices and dev.ifname != "lo" else dev)
        if dev.ifname == "lo":
            return
        mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
        net = addr & mask
        if plen < 31:
            self.fib.add_local(net | (~mask & 0xFFFFFFFF), dev, RTN_BROADCAST)
        if not any(r.prefix == net and r.plen == plen and r.dev is dev for r in self.fib.main):
            self.fib.add(Route(net, plen, dev, src=addr, proto="kernel"))

    def add_route(self, route: Route) -> None:
        self.fib.add(route)

    # -- skb helpers ---------------------------------------------------------------------
    def next_skb_id(self) -> int:
        return self.ctx.next_skb_id()

    def alloc_skb(self, kind: str, flow: int = -1) -> Skb:
        skb = Skb()
        skb.id = self.ctx.next_skb_id()
        skb.origin = self.ctx.tracer.originate(kind, flow)
        skb.t_mark = self.ctx.vnow()
        if flow >= 0:
            skb.acct = {}
        return skb

    def skb_orphan(self, skb: Skb) -> None:
        """skb_orphan(): release the owning socket's send-buffer charge."""
        sk = skb.sk
        if sk is not None:
            skb.sk = None
            sk.wfree(skb)

    def kfree_skb(self, skb: Skb, reason: Drop, where: str) -> None:
        """kfree_skb_reason(): the one exit for discarded packets."""
        self.skb_orphan(skb)
        self.ctx.tracer.drop(skb, reason, where, self.name)

    def account_arp_wait(self, skb: Skb) -> None:
        """Book the time ``skb`` spent queued for neighbour resolution."""
        now = self.ctx.vnow()
        acct = skb.acct
        if acct is not None and now > skb.t_mark:
            acct["arp"] = acct.get("arp", 0.0) + (now - skb.t_mark)
        skb.t_mark = now

    def next_ip_id(self) -> int:
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    # -- addresses and routes ----------------------------------------------------------
    def select_addr(self, dev: NetDevice, dst: int) -> int:
        """inet_select_addr(): an address of ``dev`` on ``dst``'s subnet, else its first, else any."""
        for addr, plen in dev.addrs:
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
            if (addr & mask) == (dst & mask):
                return addr
        if dev.addrs:
            return dev.addrs[0][0]
        for addr, d in self.local_addrs.items():
            if d.ifname != "lo":
                return addr
        return 0x7F000001

    def route_output(self, daddr: int) -> Route | None:
        """ip_route_output_key(): the route to ``daddr`` (None: ENETUNREACH)."""
        return self.fib.lookup(daddr)

    def source_for(self, rt: Route, daddr: int) -> int:
        if rt.rtype == RTN_LOCAL:
            return daddr
        if rt.src is not None:
            return rt.src
        return self.select_addr(rt.dev, rt.gateway if rt.gateway is not None else daddr)

    def path_mtu(self, rt: Route, daddr: int) -> int:
        mtu = rt.mtu if rt.mtu is not None else rt.dev.mtu
        if not self.pmtu:
            return mtu
        exc = self.pmtu.get(daddr)
        if exc is not None:
            if exc[1] > self.ctx.vnow():
                mtu = min(mtu, exc[0])
            else:
                del self.pmtu[daddr]
        return mtu

    # -- output ------------------------------------------------------------------------
    def ip_local_out(self, skb: Skb, rt: Route) -> None:
        """ip_local_out() for a locally generated packet with its header built."""
        self.snmp_ip["OutRequests"] += 1
        nf = self.nf
        if nf is not None and nf.output(skb):       # DNAT: ip_route_me_harder()
            rt2 = self.route_output(skb.daddr)
            if rt2 is None:
                self.snmp_ip["OutNoRoutes"] += 1
                self.kfree_skb(skb, Drop.NO_ROUTE, "ip_route_me_harder")
                return
            rt = rt2
        self.ip_output(skb, rt)

    def ip_output(self, skb: Skb, rt: Route) -> None:
        """ip_output() → ip_finish_output(): fragment when larger than the path MTU."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "ip_output")
        if self.nf is not None:
            self.nf.postrouting(skb, rt.dev)
        mtu = self.path_mtu(rt, skb.daddr)
        if skb.l3_len > mtu and not skb.gso_size:     # GSO skbs are checked per segment
            ip_fragment(self, skb, rt, mtu)
        else:
            self.ip_finish_output2(skb, rt)

    def ip_finish_output2(self, skb: Skb, rt: Route) -> None:
        """ip_finish_output2(): to the neighbour layer (or straight to lo / broadcast)."""
        self.snmp_ip["OutTransmits"] += 1
        dev = rt.dev
        if dev.kind == "loopback":
            dev.queue_xmit(skb)
            return
        if rt.rtype == RTN_BROADCAST or skb.daddr == 0xFFFFFFFF:
            skb.eth_dst = BROADCAST_MAC
            skb.eth_src = dev.mac
            dev.queue_xmit(skb)
            return
        self.neigh.output(skb, dev, rt.gateway if rt.gateway is not None else skb.daddr)

    # -- input ---------------------------------------------------------------------------
    def netif_receive(self, skb: Skb, dev: NetDevice) -> None:
        """__netif_receive_skb_core() → the protocol handler for the EtherType."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "netif_receive")
        dst = skb.eth_dst
        pt = PACKET_HOST if dst == dev.mac else pkt_type(dst, dev.mac)
        et = skb.eth_type
        if et == ETH_P_IP:
            if pt == PACKET_OTHERHOST:
                self.kfree_skb(skb, Drop.OTHERHOST, "ip_rcv_core")
                return
            self.ip_rcv(skb, dev, pt)
        elif et == ETH_P_ARP:
            if dev.noarp:
                self.ctx.tracer.consume(skb)
                return
            self.neigh.arp_rcv(skb, dev, pt != PACKET_OTHERHOST)
        else:
            self.kfree_skb(skb, Drop.NOT_SPECIFIED, "netif_receive")

    def ip_rcv(self, skb: Skb, dev: NetDevice, pt: int) -> None:
        """ip_rcv() → ip_rcv_finish(): local delivery, forwarding or ip_error()."""
        ip = self.snmp_ip
        ip["InReceives"] += 1
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "ip_rcv")
        if self.nf is not None:
            self.nf.prerouting(skb, dev)
        rt = self.fib.lookup(skb.daddr)
        if (rt is not None and rt.rtype != RTN_UNICAST) or skb.daddr == 0xFFFFFFFF:
            self.ip_local_deliver(skb, dev, pt)
            return
        if pt != PACKET_HOST:  # link-layer broadcast of a packet not for us: not forwarded
            self.kfree_skb(skb, Drop.OTHERHOST, "ip_route_input")
            return
        if not self.forwarding:
            ip["InAddrErrors"] += 1
            self.kfree_skb(skb, Drop.IP_INADDRERRORS, "ip_error")
            return
        self.ip_forward(skb, dev, rt)

    def ip_local_deliver(self, skb: Skb, dev: NetDevice, pt: int) -> None:
        """ip_local_deliver(): reassemble, then hand to the transport protocol."""
        if skb.mf or skb.frag_off:
            skb = self.reasm.defrag(skb)
            if skb is None:
                return
        self.snmp_ip["InDelivers"] += 1
        if self.nf is not None:
            self.nf.local_in(skb)
        proto = skb.proto
        if proto == IPPROTO_TCP:
            self.tcp.rcv(skb, pt)
        elif proto == IPPROTO_UDP:
            self.udp.rcv(skb, pt)
        elif proto == IPPROTO_ICMP:
            self.icmp.rcv(skb)
        elif proto in self.ip_protos:
            self.ip_protos[proto](skb)
        else:
            self.snmp_ip["InUnknownProtos"] += 1
            self.icmp.send(skb, 3, 2, pt=pt)
            self.kfree_skb(skb, Drop.IP_NOPROTO, "ip_local_deliver")

    def ip_forward(self, skb: Skb, in_dev: NetDevice, rt: Route | None) -> None:
        """ip_forward() → ip_forward_finish() → ip_output()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "ip_forward")
        if skb.ttl <= 1:
            self.snmp_ip["InHdrErrors"] += 1
            self.icmp.send(skb, 11, 0)
            self.kfree_skb(skb, Drop.TTL_EXPIRED, "ip_forward")
            return
        if rt is None:
            self.ip_ext["InNoRoutes"] += 1
            self.icmp.send(skb, 3, 0)
            self.kfree_skb(skb, Drop.IP_INNOROUTES, "ip_route_input_slow")
            return
        filt = self.forward_filter
        if filt is not None:
            chain = filt(skb, in_dev, rt.dev)
            if chain is not None:
                self.kfree_skb(skb, Drop.NETFILTER_DROP, chain)
                return
        mtu = self.path_mtu(rt, skb.daddr)
        if skb.df and (skb.l3_len if not skb.gso_size else 20 + skb.tcp_hlen + skb.gso_size) > mtu:
            self.snmp_ip["FragFails"] += 1
            self.icmp.send(skb, 3, 4, info=mtu)
            self.kfree_skb(skb, Drop.PKT_TOO_BIG, "ip_forward")
            return
        skb.ttl -= 1
        self.snmp_ip["ForwDatagrams"] += 1
        self.ip_output(skb, rt)

    # -- state for results -------------------------------------------------------------------
    def snmp(self) -> dict[str, dict[str, int]]:
        msg = {}
        for k in sorted(self.icmp_msg, key=lambda s: (s[:2] != "In", int(s.lstrip("InOutType")))):
            msg[k] = self.icmp_msg[k]
        out = {"Ip": dict(self.snmp_ip), "Icmp": dict(self.snmp_icmp), "IcmpMsg": msg, "Tcp": {},
               "Udp": dict(self.snmp_udp), "IpExt": dict(self.ip_ext)}
        tcp = self.tcp.snmp()
        out["Tcp"] = tcp["Tcp"]
        out["TcpExt"] = tcp["TcpExt"]
        return out

    def arp_counters(self) -> dict[str, int]:
        t = self.neigh
        return {"requests_sent": t.requests_sent, "replies_sent": t.replies_sent,
                "requests_received": t.requests_received, "replies_received": t.replies_received,
                "res_failed": t.res_failed, "unresolved_discards": t.unresolved_discards}
