"""Segmentation offloads for TCP: ``skb_gso_segment`` → ``tcp_gso_segment`` (software GSO,
and what a NIC's TSO engine does on the wire).

Since Linux 4.x TCP always builds GSO super-segments (``sk_setup_caps`` sets ``NETIF_F_GSO``
for every TCP socket); a device's features decide where they are cut into MSS-sized
segments: a device with TSO (a NIC, or a veth, which passes them through untouched) takes
them whole, a device without it has them segmented in software on the way in
(``validate_xmit_skb``), at a CPU cost per segment (``gso_segment``).

Each segment gets ``gso_size`` bytes of payload (the last one the rest), its sequence
number, the IP ID advanced by one per segment, PSH and FIN only on the last, and its share
of the socket's send-buffer charge (``tcp_gso_segment`` moves the destructor and truesize to
the segments). For the conservation ledger a super-segment is one packet until it is cut,
then each segment is a packet of its own (the cut originates the extra ones), so a lost
segment counts as lost; application marks travel with the segment that carries their last
byte.

Scope and limitations: TCP over IPv4 only (UDP GSO and tunnels are not modelled); no
GSO_PARTIAL, no fraglist GSO.
Validation: tests/models/linux/tcp/test_output.py (segment sizes and device counters with
TSO on and off), tests/models/linux/tcp/test_info.py (segments counted through TSO and GRO),
tests/results/test_pcap_tcp.py (sequence numbers and checksums of the cut segments).
"""

from __future__ import annotations

from typing import Any

from ..skb import Skb
from .const import FIN, PSH

__all__ = ["gso_segment"]


def gso_segment(skb: Skb, ctx: Any) -> list[Skb]:
    """Cut ``skb`` into its ``gso_segs`` segments; ``skb`` itself becomes the first."""
    n = skb.gso_segs
    size = skb.gso_size
    hlen = skb.tcp_hlen
    payload = skb.l3_len - 20 - hlen
    last_flags = skb.tcp_flags
    first_flags = last_flags & ~(FIN | PSH)
    app = skb.app
    t_tx, marks = app if app is not None else (0.0, None)
    tracer = ctx.tracer
    origin = skb.origin
    share = skb.truesize // n
    out = [skb]
    seq0 = skb.seq
    for i in range(1, n):
        s = skb.copy(ctx.next_skb_id())
        s.origin = tracer.originate(origin.kind, origin.flow)
        s.seq = seq0 + i * size
        ln = size if i < n - 1 else payload - size * (n - 1)
        s.l3_len = 20 + hlen + ln
        s.ip_id = (skb.ip_id + i) & 0xFFFF
        s.tcp_flags = last_flags if i == n - 1 else first_flags
        s.gso_segs = 1
        s.gso_size = 0
        s.sk = skb.sk
        s.truesize = share
        out.append(s)
    skb.truesize -= share * (n - 1)
    skb.l3_len = 20 + hlen + size
    skb.tcp_flags = first_flags
    skb.gso_segs = 1
    skb.gso_size = 0
    if marks:
        fin = 1 if last_flags & FIN else 0
        for i, s in enumerate(out):
            lo = seq0 + i * size
            hi = lo + (s.l3_len - 20 - hlen) + (fin if i == n - 1 else 0)
            mk = [m for m in marks if lo < m.end_seq <= hi]
            s.app = (t_tx, mk) if mk else None
    elif app is not None:
        for s in out:
            s.app = None
    return out
