"""veth pairs: drivers/net/veth.c.

``veth_xmit`` counts the frame on the sending end, scrubs it for the other namespace
(``__dev_forward_skb``; the socket's send-buffer charge is released here, ``skb_orphan``) and
hands it to the peer's ``netif_rx``, which drains on the same CPU. No qdisc (noqueue), no
wire, no serialisation: a veth hop costs CPU time only.

Scope and limitations: no XDP/GRO ``ptr_ring`` path (off by default), no backlog overflow,
features (TSO/GSO) arrive with TCP.
Validation: tests/test_counts.py (both ends count the same frames as the kernel does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .dev import NetDevice, netif_rx
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
        self.count_tx(skb)
        self.ns.skb_orphan(skb)
        netif_rx(self.peer, skb)


def veth_pair(ns_a: "Netns", name_a: str, mac_a: int, ns_b: "Netns", name_b: str, mac_b: int,
              mtu: int = 1500) -> tuple[Veth, Veth]:
    """``ip link add name_a type veth peer name name_b`` across two namespaces."""
    a = Veth(ns_a, name_a, mac_a, mtu)
    b = Veth(ns_b, name_b, mac_b, mtu)
    a.peer, b.peer = b, a
    return a, b
