"""The TCP applications (models/apps/tcp.py): what each writes and reads, and what it reports.

Expected values are computed here from the workload's parameters and the path: a 1 Gbit/s
link with 1 ms of delay each way (RTT 2 ms) between two hosts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import run_yaml

PATH = """
name: apps
hosts:
  h1: {{cpus: 2}}
  h2: {{cpus: 2}}
links:
  - {{endpoints: [h1, h2], rate: 1gbit, delay: 1ms}}
workloads:
  - {{name: f, from: h1, to: h2, port: 5001, {w}}}
"""


def test_bulk_writes_every_byte_in_write_sized_calls():
    res = run_yaml(PATH.format(w="app: tcp_bulk, size: 1000000, write: 64KiB"))
    f = res.flow("f")
    writes = math.ceil(1_000_000 / 65536)
    assert f.packets_sent == f.packets_delivered == writes == len(f.latencies_s)
    assert f.bytes_sent == f.bytes_delivered == 1_000_000
    assert np.all(f.latencies_s > 1e-3)                      # a byte needs at least the one-way delay
    assert f.tcp["server"]["tcpi_bytes_received"] == 1_000_000 + 1          # the FIN
    # goodput: the bytes over the time from connect to the last byte read
    assert f.goodput_bps == pytest.approx(8e6 / (f.end_s - f.start_s), rel=1e-9)


def test_stream_reports_per_interval_and_stops_after_duration():
    res = run_yaml(PATH.format(w="app: tcp_stream, duration: 2s, report: 500ms"))
    f = res.flow("f")
    ivs = f.tcp["intervals"]
    assert sum(iv["bytes"] for iv in ivs) == f.bytes_delivered
    full = [iv for iv in ivs if iv["end_s"] - iv["start_s"] == pytest.approx(0.5)]
    assert len(full) == 4                                    # 2 s in 500 ms reports (then the drain)
    # after slow start the 1 Gbit/s link is the limit: 1448 of every 1538 wire bytes
    limit = 1e9 * 1448 / 1538
    assert full[-1]["bytes"] * 8 / 0.5 == pytest.approx(limit, rel=0.03)
    # the writer stops at 2 s; what it had written drains within a few round trips
    assert 2.0 < f.end_s < 2.1


def test_rr_transactions_take_a_round_trip_plus_think_time():
    res = run_yaml(PATH.format(w="app: tcp_rr, count: 50, request: 100, response: 2000, interval: 10ms, "
                                 "nodelay: true"))
    f = res.flow("f")
    assert f.packets_sent == f.packets_delivered == 50
    lat = f.latencies_s
    # request one-way + response one-way (two segments) + CPU: a little over 2 ms
    wire = (100 + 52 + 38) * 8 / 1e9 + (1448 + 52 + 38) * 8 / 1e9
    assert np.all(lat > 2e-3 + wire)
    assert np.all(lat < 2e-3 + wire + 100e-6)
    starts = np.asarray(f.sent_s)
    assert np.allclose(np.diff(starts), lat[:-1] + 0.010, atol=50e-6)   # the next one after the think time
    assert f.tcp["client"]["tcpi_bytes_acked"] == 50 * 100 + 2
    assert f.tcp["server"]["tcpi_bytes_received"] == 50 * 100 + 1            # the FIN


def test_rr_request_in_several_writes():
    res = run_yaml(PATH.format(w="app: tcp_rr, count: 5, request: 300, writes: 3, response: 10, nodelay: true"))
    f = res.flow("f")
    assert f.packets_delivered == 5
    assert f.tcp["server"]["tcpi_data_segs_in"] == 15        # NODELAY: each write is a segment
