"""``struct tcp_info`` (``getsockopt(TCP_INFO)``, what ``ss -ti`` prints) of a simulated socket.

Field names and units are the kernel's (include/uapi/linux/tcp.h, ``tcp_get_info`` in
net/ipv4/tcp.c): times in microseconds (``tcpi_rtt``, ``tcpi_rttvar``, ``tcpi_rto``,
``tcpi_ato``, ``tcpi_min_rtt``, ``tcpi_rcv_rtt``), counts in segments, the rest in bytes;
``tcpi_pacing_rate`` in bytes per second. Two fields are not in tcp_info but are what ``ss -m``
shows next to it: ``sk_sndbuf`` and ``sk_rcvbuf`` (the values ``SO_SNDBUF``/``SO_RCVBUF``
report) and ``sk_wmem_queued``; ``tcpi_ca_name`` is ``TCP_CONGESTION``.

Scope and limitations: the delivery-rate estimator fields (``tcpi_delivery_rate``,
``tcpi_busy_time``, the chrono timers) are not modelled and not reported.
Validation: tests/models/linux/tcp/test_info.py.
"""

from __future__ import annotations

from typing import Any

from .const import STATE_NAMES

__all__ = ["tcp_info"]

TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4


def tcp_info(sk: Any) -> dict[str, Any]:
    """tcp_get_info() of ``sk``."""
    now = sk.ctx.env.now
    opts = (TCPI_OPT_TIMESTAMPS if sk.tstamp_ok else 0) | (TCPI_OPT_SACK if sk.sack_ok else 0) | (
        TCPI_OPT_WSCALE if sk.wscale_ok else 0)
    ms = lambda t: int((now - t) * 1000) if t else 0  # noqa: E731
    return {
        "tcpi_state": STATE_NAMES[sk.state],
        "tcpi_ca_state": sk.ca_state,
        "tcpi_retransmits": sk.retransmits,
        "tcpi_backoff": sk.backoff,
        "tcpi_options": opts,
        "tcpi_snd_wscale": sk.snd_wscale,
        "tcpi_rcv_wscale": sk.rcv_wscale,
        "tcpi_rto": int(round(sk.rto * 1e6)),
        "tcpi_ato": int(round(sk.ack_ato * 1e6)),
        "tcpi_snd_mss": sk.mss_cache,
        "tcpi_rcv_mss": sk.rcv_mss,
        "tcpi_unacked": sk.packets_out,
        "tcpi_sacked": sk.sacked_out,
        "tcpi_lost": sk.lost_out,
        "tcpi_retrans": sk.retrans_out,
        "tcpi_last_data_sent": ms(sk.lsndtime),
        "tcpi_pmtu": sk.pmtu(),
        "tcpi_rcv_ssthresh": sk.rcv_ssthresh,
        "tcpi_rtt": sk.srtt_us >> 3,
        "tcpi_rttvar": sk.mdev_us >> 2,
        "tcpi_snd_ssthresh": sk.snd_ssthresh,
        "tcpi_snd_cwnd": sk.snd_cwnd,
        "tcpi_advmss": sk.advmss,
        "tcpi_reordering": sk.reordering,
        "tcpi_rcv_rtt": sk.rcv_rtt_us >> 3,
        "tcpi_rcv_space": sk.rcvq_space,
        "tcpi_total_retrans": sk.total_retrans,
        "tcpi_pacing_rate": sk.pacing_rate_Bps,
        "tcpi_bytes_acked": sk.bytes_acked,
        "tcpi_bytes_received": sk.bytes_received,
        "tcpi_segs_out": sk.segs_out,
        "tcpi_segs_in": sk.segs_in,
        "tcpi_notsent_bytes": sk.write_seq - sk.snd_nxt,
        "tcpi_min_rtt": sk.min_rtt_us if sk.min_rtt_us != 0xFFFFFFFF else 0,
        "tcpi_data_segs_in": sk.data_segs_in,
        "tcpi_data_segs_out": sk.data_segs_out,
        "tcpi_delivered": sk.delivered,
        "tcpi_bytes_sent": sk.bytes_sent,
        "tcpi_bytes_retrans": sk.bytes_retrans,
        "tcpi_dsack_dups": sk.dsack_dups,
        "tcpi_reord_seen": sk.reord_seen,
        "tcpi_rcv_ooopack": sk.rcv_ooopack,
        "tcpi_snd_wnd": sk.snd_wnd,
        "tcpi_rcv_wnd": sk.rcv_wnd,
        "tcpi_ca_name": sk.ca_name,
        "sk_sndbuf": sk.sndbuf,
        "sk_rcvbuf": sk.rcvbuf,
        "sk_wmem_queued": sk.wmem_queued,
    }
