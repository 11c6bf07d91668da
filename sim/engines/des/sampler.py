"""Periodic samples of every TCP flow's sending socket, for timeseries.csv.

Every ``run.sample`` seconds (default 1 ms) while a TCP flow is connected: cwnd and ssthresh
(segments), smoothed RTT and RTO, packets and bytes in flight, the send buffer (``sk_sndbuf``)
and its fill (``sk_wmem_queued``), the peer's window, bytes ACKed so far and the throughput
since the previous sample (bytes ACKed per second), retransmissions, the congestion state.
One event per sample; a flow's rows end with the first sample after it is done, and sampling
stops when every TCP flow is done.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TcpSampler"]


class TcpSampler:
    def __init__(self, net: Any, dt_s: float) -> None:
        self.net = net
        self.dt_s = dt_s
        self.flows = [st for st in net.flows if st.proto == "tcp"]
        self.last: dict[int, int] = {}
        self.ended: set[int] = set()
        net.timeseries = []
        if self.flows:
            net.ctx.call_at(0.0, self._tick, 0)

    def _tick(self, k: int) -> None:
        ctx = self.net.ctx
        now = ctx.env.now
        rows = self.net.timeseries
        alive = False
        for st in self.flows:
            sk = st.client
            if sk is None or sk.t_established is None:
                alive = alive or not st.done_s
                continue
            if st.done_s is None:
                alive = True
            elif st.flow in self.ended:
                continue                        # one sample after the end, then none
            else:
                self.ended.add(st.flow)
            acked = sk.bytes_acked
            prev = self.last.get(st.flow, acked)
            self.last[st.flow] = acked
            rows.append({
                "t_s": now, "flow": st.name, "cwnd": sk.snd_cwnd,
                "ssthresh": sk.snd_ssthresh if sk.snd_ssthresh < 0x7FFFFFFF else None,
                "srtt_s": (sk.srtt_us >> 3) * 1e-6, "rto_s": sk.rto,
                "packets_in_flight": sk.packets_out - sk.sacked_out - sk.lost_out + sk.retrans_out,
                "bytes_in_flight": sk.snd_nxt - sk.snd_una, "sndbuf": sk.sndbuf, "wmem_queued": sk.wmem_queued,
                "snd_wnd": sk.snd_wnd, "bytes_acked": acked,
                "throughput_bps": (acked - prev) * 8 / self.dt_s if k else 0.0,
                "retrans": sk.total_retrans, "ca_state": sk.ca_state})
        if alive:
            ctx.call_at((k + 1) * self.dt_s, self._tick, k + 1)
