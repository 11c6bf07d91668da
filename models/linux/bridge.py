"""The Linux bridge: net/bridge/br_input.c, br_forward.c, br_fdb.c, br_device.c.

A frame arriving on a port (``br_handle_frame``) teaches the FDB where its source MAC lives,
then goes by destination: to the bridge device's own MAC → up the host's stack through the
bridge device; broadcast or multicast → flooded to every other port *and* passed up; a known
unicast MAC → that port; an unknown one → flooded to every other port. FDB entries age out
after 300 s (``BR_DEFAULT_AGEING_TIME``). STP is off (``BR_NO_STP``), so ports forward at
once. The host transmitting through the bridge device (``br_dev_xmit``) looks up the FDB the
same way and floods unknown destinations to all ports.

The bridge device's own counters follow the kernel: ``tx_bytes`` counts the whole frame,
``rx_bytes`` what ``br_pass_frame_up`` sees after the Ethernet header is pulled (the L3
length; observed on Linux 6.18: one ARP request passed up counts 28 bytes).

A capture on the bridge device sees what ``tcpdump -p -i docker0`` sees: frames passed up to
the host and frames the host sends through the bridge (plain ``tcpdump`` would also put the
bridge in promiscuous mode, which passes every bridged frame up; simnet does not model that).

With ``net.bridge.bridge-nf-call-iptables`` = 1 (br_netfilter loaded), bridged IPv4 frames
also traverse iptables' hooks, which costs CPU (``br_netfilter`` stage). Docker 28 loads
br_netfilter only when ICC or the userland proxy is disabled, so the default is off.

Scope and limitations: no VLAN filtering, no multicast snooping, no hairpin mode, no STP,
MTU fixed at creation (the kernel follows the smallest port's MTU).
Validation: tests/models/linux/test_bridge.py; tests/test_counts.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import NetDevice
from .skb import BROADCAST_MAC, ETH_P_IP, Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Bridge"]

_MCAST_BIT = 1 << 40


class Bridge(NetDevice):
    kind = "bridge"

    def __init__(self, ns: "Netns", ifname: str, mac: int, mtu: int, *, ageing_s: float = 300.0,
                 nf_call_iptables: bool = False) -> None:
        super().__init__(ns, ifname, mac, mtu)
        self.ports: list[NetDevice] = []
        self.fdb: dict[int, list] = {}      # MAC -> [port, last seen]
        self.ageing_s = ageing_s
        self.nf_call_iptables = nf_call_iptables

    def add_port(self, dev: NetDevice) -> None:
        """``ip link set dev master br``."""
        dev.master = self
        self.ports.append(dev)

    def fdb_entries(self) -> dict[int, str]:
        return {mac: e[0].ifname for mac, e in self.fdb.items()}

    # -- rx_handler on a port ----------------------------------------------------------
    def handle_frame(self, skb: Skb, port: NetDevice) -> None:
        """br_handle_frame() → br_handle_frame_finish()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "bridge")
        now = self.ctx.vnow()
        src = skb.eth_src
        if not src & _MCAST_BIT:
            e = self.fdb.get(src)
            if e is None:
                self.fdb[src] = [port, now]
            else:
                e[0] = port
                e[1] = now
        dst = skb.eth_dst
        if dst == self.mac:
            self._pass_up(skb)
            return
        if dst & _MCAST_BIT:
            self._flood(skb, exclude=port, local=True)
            return
        e = self.fdb.get(dst)
        if e is not None and now - e[1] <= self.ageing_s:
            out = e[0]
            if out is port:  # should_deliver() refuses the ingress port (no hairpin mode)
                self.ns.kfree_skb(skb, Drop.NOT_SPECIFIED, "br_forward")
                return
            self._forward(out, skb)
        else:
            self._flood(skb, exclude=port, local=False)

    def _forward(self, port: NetDevice, skb: Skb) -> None:
        """br_forward() → br_dev_queue_push_xmit() → dev_queue_xmit(port)."""
        if self.nf_call_iptables and skb.eth_type == ETH_P_IP:
            seg = self.ctx.seg
            if seg is not None:
                seg.charge(skb, "br_netfilter")
        port.queue_xmit(skb)

    def _flood(self, skb: Skb, exclude: NetDevice | None, local: bool) -> None:
        """br_flood(): a copy to every port but the ingress one (and up the stack if asked)."""
        outs = [p for p in self.ports if p is not exclude]
        n = len(outs) + (1 if local else 0)
        if n == 0:
            self.ns.kfree_skb(skb, Drop.NOT_SPECIFIED, "br_flood")
            return
        tracer = self.ctx.tracer
        copies = [skb]
        if n > 1:
            tracer.clone(skb.origin, n - 1)
            for _ in range(n - 1):
                copies.append(skb.copy(self.ns.next_skb_id()))
        for port, c in zip(outs, copies):
            self._forward(port, c)
        if local:
            self._pass_up(copies[-1])

    def _pass_up(self, skb: Skb) -> None:
        """br_pass_frame_up(): the frame enters the host's stack on the bridge device."""
        self.rx_packets += 1
        self.rx_bytes += skb.l3_len
        if self.capture is not None:
            self.capture(self.ctx.vnow(), skb, self, False)
        self.ns.netif_receive(skb, self)

    # -- the bridge device transmitting ------------------------------------------------
    def xmit(self, skb: Skb) -> None:
        """br_dev_xmit()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "bridge")
        self.count_tx(skb)
        dst = skb.eth_dst
        if dst == BROADCAST_MAC or dst & _MCAST_BIT:
            self._flood(skb, exclude=None, local=False)
            return
        e = self.fdb.get(dst)
        if e is not None and self.ctx.vnow() - e[1] <= self.ageing_s:
            self._forward(e[0], skb)
        else:
            self._flood(skb, exclude=None, local=False)
