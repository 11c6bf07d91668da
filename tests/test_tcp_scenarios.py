"""The TCP scenarios in scenarios/, run and checked against computations made here.

Wire limit of a bottleneck, as simnet models the wire: every 1448-byte payload travels in a
1538-byte slot (20 IP + 32 TCP with timestamps + 14 Ethernet + 24 preamble/SFD/FCS/IFG), so
a 100 Mbit/s link carries at most 100 × 1448 / 1538 = 94.15 Mbit/s of goodput.
Jain's fairness index of rates x_i: (Σx)² / (n Σx²).
"""

from __future__ import annotations

import pytest

import simnet

from conftest import SCENARIOS

WIRE_LIMIT_100M = 100e6 * 1448 / (1448 + 20 + 32 + 14 + 24)


def test_wire_limit_formula():
    assert WIRE_LIMIT_100M == pytest.approx(94.148e6, rel=1e-4)


def test_bottleneck_cubic_reaches_95_percent_of_the_wire_limit():
    res = simnet.run(SCENARIOS / "tcp-bottleneck.yaml")
    f = res.flow("bulk")
    ivs = f.tcp["intervals"]
    whole = [iv for iv in ivs if iv["end_s"] - iv["start_s"] > 0.999]
    assert len(whole) == 10
    goodput = sum(iv["bytes"] for iv in whole) * 8 / sum(iv["end_s"] - iv["start_s"] for iv in whole)
    assert goodput >= 0.95 * WIRE_LIMIT_100M
    assert goodput <= WIRE_LIMIT_100M * 1.001
    # the queue of 100 frames overflows now and then: CUBIC recovers by fast retransmit, no RTO
    ext = res.counters["h1"]["snmp"]["TcpExt"]
    assert ext["TCPTimeouts"] == 0 and ext["TCPSackRecovery"] >= 1
    assert res.drops.get("QDISC_DROP", 0) == res.counters["h1"]["snmp"]["Tcp"]["RetransSegs"]
    cw = [r["cwnd"] for r in res.timeseries]
    assert max(cw) > 83                               # above one BDP (83 frames) before a loss


def jain(rates: list[float]) -> float:
    return sum(rates) ** 2 / (len(rates) * sum(r * r for r in rates))


def last_seconds_rate(f, t_end: float, secs: int = 5) -> float:
    last = [iv for iv in f.tcp["intervals"]
            if iv["start_s"] >= t_end - secs - 1e-9 and iv["end_s"] - iv["start_s"] > 0.999]
    assert len(last) == secs
    return sum(iv["bytes"] for iv in last) * 8 / secs


def test_two_cubic_flows_share_the_bottleneck_fairly():
    """cubic-vs-reno with both flows CUBIC for 10 s (the link has ±100 µs of jitter; see the
    scenario's description for why a deterministic drop-tail queue needs it)."""
    sc = simnet.load(SCENARIOS / "cubic-vs-reno.yaml")
    w = [x.model_copy(update={"congestion": "cubic", "duration": 10.0}) for x in sc.workloads]
    res = simnet.run(sc.model_copy(update={"workloads": w}))
    rates = [last_seconds_rate(f, 10.0) for f in res.flows]
    assert jain(rates) >= 0.95
    assert sum(rates) >= 0.95 * WIRE_LIMIT_100M


def test_cubic_vs_reno():
    """In CUBIC's TCP-friendly region (K ≈ 4 s, longer than the time between losses) CUBIC
    is an AIMD with β = 717/1024 and α = 3(1−β)/(1+β) ≈ 0.53 segment per RTT (bictcp_update);
    an AIMD flow's rate goes as √(α(1+β)/(1−β)), which is √3 for CUBIC's (0.53, 0.7) and for
    Reno's (1, 0.5): an even share."""
    beta = 717 / 1024
    alpha = 3 * (1 - beta) / (1 + beta)
    assert alpha * (1 + beta) / (1 - beta) == pytest.approx(1 * (1 + 0.5) / (1 - 0.5))
    res = simnet.run(SCENARIOS / "cubic-vs-reno.yaml")
    cubic, reno = res.flow("cubic"), res.flow("reno")
    assert cubic.tcp["client"]["tcpi_ca_name"] == "cubic" and reno.tcp["client"]["tcpi_ca_name"] == "reno"
    total = (cubic.bytes_delivered + reno.bytes_delivered) * 8 / 20.0
    assert total >= 0.95 * WIRE_LIMIT_100M
    share = cubic.bytes_delivered / (cubic.bytes_delivered + reno.bytes_delivered)
    assert 0.4 <= share <= 0.6
    assert reno.retransmits > cubic.retransmits > 0


def test_tcp_bulk_bridge():
    res = simnet.run(SCENARIOS / "tcp-bulk-bridge.yaml")
    f = res.flow("copy")
    assert f.bytes_delivered == 10_000_000 and f.retransmits == 0 and not res.drops
    assert f.packets_sent == f.packets_delivered == 77             # ⌈10 MB / 128 KiB⌉ writes
    assert f.goodput_bps > 5e9                                    # CPU-bound, tens of Gbit/s on a veth path
    layers = {r["layer"] for r in f.breakdown()}
    assert {"cpu:veth_xmit", "cpu:bridge", "cpu:tcp_sendmsg", "cpu:tcp_recvmsg"} <= layers


def test_sndbuf_what_if():
    res = simnet.run(SCENARIOS / "sndbuf-what-if.yaml")
    auto, fixed = res.flow("autotuned"), res.flow("sndbuf_256k")
    assert auto.tcp["client"]["sk_sndbuf"] == 4194304 and fixed.tcp["client"]["sk_sndbuf"] == 524288
    assert auto.goodput_bps > 1.5 * fixed.goodput_bps
    # the fixed buffer's steady state: its payload in full skbs (×65160/65992) per round trip;
    # the whole window leaves as one burst, so a round trip is 2 ms plus the burst's
    # serialisation at 10 Gbit/s (1538 wire bytes per 1448 of payload)
    ts = [r for r in res.timeseries if r["flow"] == "sndbuf_256k" and 0.6 < r["t_s"] < fixed.end_s - 0.01]
    rate = (ts[-1]["bytes_acked"] - ts[0]["bytes_acked"]) * 8 / (ts[-1]["t_s"] - ts[0]["t_s"])
    usable = 524288 * 65160 // 65992
    rtt = 2e-3 + usable * 1538 / 1448 * 8 / 10e9
    assert rate == pytest.approx(usable * 8 / rtt, rel=0.05)


def test_tcp_plot_draws_the_timeseries(tmp_path):
    from matplotlib.figure import Figure

    from simnet.results.plots import plot_tcp

    res = simnet.run(SCENARIOS / "tcp-bottleneck.yaml")
    ax_w, ax_t = plot_tcp(res, Figure().subplots(2, 1))
    cwnd = ax_w.get_lines()[0]
    assert list(cwnd.get_ydata()) == [r["cwnd"] for r in res.timeseries]
    rate = ax_t.get_lines()[0].get_ydata()
    ivs = [iv for iv in res.flow("bulk").tcp["intervals"] if iv["end_s"] - iv["start_s"] > 0.999]
    mean = sum(iv["bytes"] for iv in ivs) * 8 / len(ivs) / 1e6
    assert sorted(rate)[len(rate) // 2] == pytest.approx(mean, rel=0.05)     # the median window
    res.write(tmp_path)
    assert (tmp_path / "plots" / "tcp.png").stat().st_size > 10_000
