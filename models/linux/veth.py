"""veth pairs: drivers/net/veth.c.

``veth_xmit`` scrubs the frame for the other namespace (``__dev_forward_skb``; the socket's
send-buffer charge is released here, ``skb_orphan``) and hands it to ``netif_rx``: the CPU's
backlog, drained on the same CPU when ``dev_queue_xmit`` re-enables bottom halves
(models.linux.dev.netif_rx). The frame counts on the sending end only if the backlog took it;
otherwise it is dropped (``CPU_BACKLOG``) and counted in the sender's ``tx_dropped``, as
``veth_xmit`` does. A veth's receive counters are its peer's transmit counters. No qdisc
(noqueue), no wire, no serialisation: a veth hop costs CPU time only. TSO/GSO super-skbs cross
it whole and count as one packet (models.linux.tcp.offload).

Scope and limitations: no XDP/GRO ``ptr_ring`` path (off by default).
Validation: tests/test_counts.py (both ends count the same frames as the kernel does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simnet.trace import Drop

from .dev import NetDevice, backlog_full, netif_rx
from .skb import Skb

if TYPE_CHECKING:
    from .netns import Netns

__all__ = ["Veth", "veth_pair"]


class Veth(NetDevice):
    kind = "veth"

    def __init__(self, ns: "Netns", ifname: str, mac: int, mtu: int) -> None:
        super().__init__(ns, ifname, mac, mtu)
        self.peer: Veth | None = None

    def xmit(self, skb: Skb) -> None:
        """veth_xmit()."""
        seg = self.ctx.seg
        if seg is not None:
            seg.charge(skb, "veth_xmit")
        peer = self.peer
        self.ns.skb_orphan(skb)
        if backlog_full(peer):
            self.tx_dropped += 1          # veth_xmit(): the peer's backlog refused it
            self.ns.kfree_skb(skb, Drop.CPU_BACKLOG, "veth_xmit")
            return
        self.count_tx(skb)
        netif_rx(peer, skb)


def veth_pair(ns_a: "Netns", name_a: str, mac_a: int, ns_b: "Netns", name_b: str, mac_b: int,
              mtu: int = 1500) -> tuple[Veth, Veth]:
    """``ip link add name_a type veth peer name name_b`` across two namespaces."""
    a = Veth(ns_a, name_a, mac_a, mtu)
    b = Veth(ns_b, name_b, mac_b, mtu)
    a.peer, b.peer = b, a
    return a, b
