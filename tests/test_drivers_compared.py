"""drivers-compared: a CSV and a PNG per driver, and a breakdown that accounts for each difference."""

from __future__ import annotations

import csv

import pytest

import simnet

from conftest import SCENARIOS

DRIVERS = ("host", "bridge", "overlay", "macvlan", "ipvlan")


@pytest.fixture(scope="module")
def dc(tmp_path_factory):
    out = tmp_path_factory.mktemp("dc")
    res = simnet.run(SCENARIOS / "drivers-compared.yaml")
    res.write(out)
    return res, out


def test_csv_and_png_per_driver(dc):
    res, out = dc
    rows = {r["flow"]: r for r in csv.DictReader(open(out / "flows.csv"))}
    for d in DRIVERS:
        for kind in ("rr", "bulk", "tcp_rr", "tcp_bulk"):
            r = rows[f"{d}_{kind}"]
            assert int(r["packets_delivered"]) == int(r["packets_sent"]) > 0
            assert float(r["latency_p50_s"]) > 0 and float(r["goodput_bps"]) > 0
    png = (out / "plots" / "flows.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_breakdown_accounts_for_every_difference(dc):
    res, _out = dc
    per = {f.name: {r["layer"]: r["seconds_per_packet"] for r in f.breakdown()} for f in res.flows}
    for name, layers in per.items():
        f = res.flow(name)
        assert sum(layers.values()) == pytest.approx(f.latencies_s.mean(), rel=1e-9)
    base = per["host_rr"]
    for d in DRIVERS[1:]:
        other = per[f"{d}_rr"]
        diff = res.flow(f"{d}_rr").latencies_s.mean() - res.flow("host_rr").latencies_s.mean()
        deltas = {k: other.get(k, 0.0) - base.get(k, 0.0) for k in set(other) | set(base)}
        assert sum(deltas.values()) == pytest.approx(diff, abs=1e-12)
    # what each driver adds, by name
    assert per["overlay_rr"]["cpu:vxlan_xmit"] > 0 and per["overlay_rr"]["cpu:vxlan_rcv"] > 0
    assert per["bridge_rr"]["cpu:nf_nat"] > 0 and per["bridge_rr"]["cpu:bridge"] > 0
    assert per["macvlan_rr"]["cpu:macvlan_xmit"] > 0 and "cpu:veth_xmit" not in per["macvlan_rr"]
    assert per["ipvlan_rr"]["cpu:ipvlan_xmit"] > 0
    # the 50 bytes of VXLAN make the overlay's frames take longer on the wire
    assert per["overlay_bulk"]["serialisation"] > per["macvlan_bulk"]["serialisation"]


def test_tcp_per_driver_and_what_explains_each_difference(dc):
    res, out = dc
    rows = {r["flow"]: r for r in csv.DictReader(open(out / "flows.csv"))}
    per = {f.name: {r["layer"]: r["seconds_per_packet"] for r in f.breakdown()} for f in res.flows}
    for kind in ("tcp_rr", "tcp_bulk"):
        base = res.flow(f"host_{kind}")
        for d in DRIVERS:
            f = res.flow(f"{d}_{kind}")
            assert f.retransmits == 0 and int(rows[f.name]["retransmits"]) == 0
            if kind == "tcp_bulk":
                assert f.bytes_delivered == 4_000_000 and f.packets_delivered == -(-4_000_000 // 65536)
                assert float(rows[f.name]["goodput_bps"]) == pytest.approx(f.goodput_bps)
            other, b = per[f.name], per[base.name]
            deltas = {k: other.get(k, 0.0) - b.get(k, 0.0) for k in set(other) | set(b)}
            assert sum(deltas.values()) == pytest.approx(f.latencies_s.mean() - base.latencies_s.mean(), abs=1e-12)
    # the same stages as for UDP name what each driver adds to a TCP round trip
    assert per["overlay_tcp_rr"]["cpu:vxlan_xmit"] > 0 and per["overlay_tcp_rr"]["cpu:vxlan_rcv"] > 0
    assert per["bridge_tcp_rr"]["cpu:nf_nat"] > 0 and per["bridge_tcp_rr"]["cpu:bridge"] > 0
    assert per["macvlan_tcp_rr"]["cpu:macvlan_xmit"] > 0 and "cpu:veth_xmit" not in per["macvlan_tcp_rr"]
    assert per["ipvlan_tcp_rr"]["cpu:ipvlan_xmit"] > 0
    # MSS from each path's MTU: the overlay's 1450 leaves 1398 bytes per segment, the others 1448
    for d in DRIVERS:
        mss = res.flow(f"{d}_tcp_bulk").tcp["client"]["tcpi_snd_mss"]
        assert mss == (1450 if d == "overlay" else 1500) - 40 - 12
