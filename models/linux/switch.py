"""An external Ethernet switch (not part of Linux): the ``switches:`` node of a scenario.

Hosts whose NICs are cabled to one switch share a broadcast domain. The switch is an IEEE
802.1D learning bridge, store-and-forward: a frame is handled once its last bit has arrived;
its source MAC is learnt on the ingress port (entries age out after ``ageing_s``); a known
unicast destination goes out of its port, an unknown one and every broadcast out of all
ports but the ingress one. Each port transmits at its cable's rate (the host NIC's rate)
from a FIFO of ``queue_pkts`` frames (tail drop, ``QDISC_DROP`` at the switch) and the frame
reaches the host after the cable's propagation delay.

``hairpin`` is IEEE 802.1Qbg reflective relay on every port: a frame may leave through the
port it arrived on (a unicast to a MAC learnt on the ingress port; broadcasts flood to the
ingress port too). It is what macvlan's and ipvlan's ``vepa`` mode needs to let two children
of one parent talk; without it a frame for a MAC behind the ingress port is filtered
(``OTHERHOST`` at the switch), as on an ordinary switch.

Counters: per port as ``dev`` statistics under the switch's name (``rx_*`` what arrived from
the host, ``tx_*`` what was sent to it, ``tx_dropped`` full queues), plus ``filtered``.

Scope and limitations: one VLAN, no STP, no flow control, no cut-through, no per-port rates
other than the attached NIC's.
Validation: tests/models/linux/test_macvlan.py (vepa hairpin, learning, flooding).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from simnet.trace import Drop

from .skb import Skb

__all__ = ["Switch", "SwitchPort"]

_MCAST_BIT = 1 << 40


class SwitchPort:
    """One port: a cable to a host NIC and the egress FIFO towards it."""

    kind = "switch_port"

    def __init__(self, switch: "Switch", name: str, nic: Any, delay_s: float) -> None:
        self.switch = switch
        self.ctx = switch.ctx
        self.ifname = name
        self.nic = nic
        self.delay_s = delay_s
        self.rate_bps = nic.rate_bps
        self.queue: deque[Skb] = deque()
        self.busy = False
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.rx_dropped = self.tx_dropped = 0
        nic.peer = self
        nic.delay_s = delay_s

    def stats(self) -> dict[str, int]:
        return {"rx_packets": self.rx_packets, "rx_bytes": self.rx_bytes, "tx_packets": self.tx_packets,
                "tx_bytes": self.tx_bytes, "rx_dropped": self.rx_dropped, "tx_dropped": self.tx_dropped}

    def _arrive(self, skb: Skb) -> None:
        """The last bit of a frame from the host arrived."""
        self.rx_packets += 1
        self.rx_bytes += 14 + skb.l3_len
        self.switch.forward(skb, self)

    def enqueue(self, skb: Skb) -> None:
        if len(self.queue) >= self.switch.queue_pkts:
            self.tx_dropped += 1
            self.switch.drop(skb, Drop.QDISC_DROP, "switch_egress")
            return
        self.queue.append(skb)
        skb.t_mark = max(skb.t_mark, self.ctx.env.now)
        if not self.busy:
            self._start(None)

    def _start(self, _arg: Any) -> None:
        if not self.queue:
            self.busy = False
            return
        self.busy = True
        skb = self.queue.popleft()
        now = self.ctx.env.now
        ser = self.nic.wire_time_s(skb)
        acct = skb.acct
        if acct is not None:
            if now > skb.t_mark:
                acct["switch_queue"] = acct.get("switch_queue", 0.0) + (now - skb.t_mark)
            acct["serialisation"] = acct.get("serialisation", 0.0) + ser
            if self.delay_s > 0.0:
                acct["propagation"] = acct.get("propagation", 0.0) + self.delay_s
        skb.t_mark = now + ser + self.delay_s
        self.tx_packets += 1
        self.tx_bytes += 14 + skb.l3_len
        self.ctx.call_later(ser + self.delay_s, self.nic._arrive, skb)
        self.ctx.call_later(ser, self._start, None)

    def in_flight(self) -> list[Skb]:
        return list(self.queue)


class Switch:
    """A learning switch with optional reflective relay (see the module docstring)."""

    def __init__(self, ctx: Any, name: str, *, hairpin: bool = False, ageing_s: float = 300.0,
                 queue_pkts: int = 1000) -> None:
        self.ctx = ctx
        self.name = name
        self.hairpin = hairpin
        self.ageing_s = ageing_s
        self.queue_pkts = queue_pkts
        self.ports: list[SwitchPort] = []
        self.fdb: dict[int, list] = {}         # MAC -> [port, last seen]
        self.filtered = 0

    def add_port(self, nic: Any, delay_s: float) -> SwitchPort:
        p = SwitchPort(self, f"p{len(self.ports) + 1}", nic, delay_s)
        self.ports.append(p)
        return p

    def drop(self, skb: Skb, reason: Drop, where: str) -> None:
        self.ctx.tracer.drop(skb, reason, where, self.name)

    def forward(self, skb: Skb, port: SwitchPort) -> None:
        now = self.ctx.env.now
        src = skb.eth_src
        if not src & _MCAST_BIT:
            e = self.fdb.get(src)
            if e is None:
                self.fdb[src] = [port, now]
            else:
                e[0], e[1] = port, now
        dst = skb.eth_dst
        e = None if dst & _MCAST_BIT else self.fdb.get(dst)
        if e is not None and now - e[1] <= self.ageing_s:
            out = e[0]
            if out is port and not self.hairpin:
                self.filtered += 1
                self.drop(skb, Drop.OTHERHOST, "switch_filter")
                return
            out.enqueue(skb)
            return
        outs = [p for p in self.ports if p is not port or self.hairpin]
        if not outs:
            self.filtered += 1
            self.drop(skb, Drop.OTHERHOST, "switch_flood")
            return
        if len(outs) > 1:
            self.ctx.tracer.clone(skb.origin, len(outs) - 1)
        for i, p in enumerate(outs):
            p.enqueue(skb if i == 0 else skb.copy(self.ctx.next_skb_id()))

    def in_flight(self) -> list[Skb]:
        return [s for p in self.ports for s in p.queue]
