"""The skbs of a TCP socket's queues and the application records they carry.

:class:`SendSkb` is an skb on the write queue not yet sent, :class:`RtxSeg` a sent segment
on the retransmit queue, :class:`Mark` an application record riding with a byte (see
models.linux.tcp.sock). Kept apart from the socket so that the output and input code can
import them at module level.
"""

from __future__ import annotations

from typing import Any

from .const import ACK, SKB_OVERHEAD

__all__ = ["Mark", "SendSkb", "RtxSeg"]


class Mark:
    """An application record riding with the byte at ``end_seq`` (see the module docstring).

    The sending socket fills ``t_copied``/``waits``/``t_tx1``; the receiving socket fills
    ``t_tx`` (the transmission that arrived first), ``rx_acct`` (that segment's per-layer
    ledger up to TCP), ``t_arrive`` and ``t_inorder``.
    """

    __slots__ = ("end_seq", "app", "t_call", "pre", "t_copied", "snap", "waits", "t_tx1", "t_tx", "rx_acct",
                 "t_arrive", "t_inorder")

    def __init__(self, app: Any, t_call: float, pre: dict[str, float] | None = None) -> None:
        self.end_seq = 0
        self.app = app
        self.t_call = t_call
        self.pre = pre                      # the write's own ledger up to the copy (sndbuf, CPU)
        self.t_copied = 0.0
        self.snap: dict[str, float] | None = None
        self.waits: dict[str, float] | None = None
        self.t_tx1: float | None = None
        self.t_tx = 0.0
        self.rx_acct: dict[str, float] | None = None
        self.t_arrive: float | None = None
        self.t_inorder = 0.0


class SendSkb:
    """An skb on the write queue that has not been sent (``tcp_send_head`` onwards).

    ``t_ready`` is the (virtual) time its last byte was copied in: another CPU's softirq
    that processes an ACK at an earlier virtual time must not send it yet (the writer's own
    ``tcp_push`` will)."""

    __slots__ = ("seq", "end_seq", "truesize", "flags", "marks", "t_ready")

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.end_seq = seq
        self.truesize = SKB_OVERHEAD + 256          # SKB_TRUESIZE(MAX_TCP_HEADER), see TcpSock.skb_head
        self.flags = ACK
        self.marks: list[Mark] | None = None
        self.t_ready = 0.0


class RtxSeg:
    """Sent, unacknowledged data on the retransmit queue: one MSS (or less), a SYN or a FIN."""

    __slots__ = ("seq", "end_seq", "truesize", "sacked", "tx_s", "first_tx_s", "flags", "marks", "rack_done")

    def __init__(self, seq: int, end_seq: int, truesize: int, flags: int, tx_s: float,
                 marks: list[Mark] | None) -> None:
        self.seq = seq
        self.end_seq = end_seq
        self.truesize = truesize
        self.sacked = 0
        self.tx_s = tx_s
        self.first_tx_s = tx_s
        self.flags = flags
        self.marks = marks
        self.rack_done = False
