"""The TCP part of ``simnet calibrate`` without root: the DES's per-stage tallies and the fit.

* :class:`TallySegment`'s counts, priced with the profile, give each CPU's busy time (which the
  CPU adds up itself, segment by segment);
* measurements made up from a known profile with the DES's own loads: the fit reproduces every
  point on both CPUs and moves the stages the way the truth differs from its start; run
  through the DES loop (loads that move with the costs), the profile it returns matches the
  made-up measurements better than the one it started from;
* the overlay on the calibration's veth underlay carries TCP super-segments whole.
"""

from __future__ import annotations

import pytest

from simnet.engines.netns import calibrate_tcp as ct
from simnet.models.linux.cpu import DEFAULT_COSTS, NS, CostProfile, Stage


def _truth() -> CostProfile:
    st = dict(DEFAULT_COSTS.stages)
    st["tcp_transmit"] = Stage(st["tcp_transmit"].per_packet_s * 1.5, 0.0, "")
    st["tcp_recvmsg"] = Stage(st["tcp_recvmsg"].per_packet_s, st["tcp_recvmsg"].per_byte_s * 2, "")
    st["tcp_sendmsg"] = Stage(st["tcp_sendmsg"].per_packet_s * 0.7, 0.02 * NS, "")
    st["tcp_rcv"] = Stage(st["tcp_rcv"].per_packet_s * 0.6, 0.0, "")
    return CostProfile("truth", st)


@pytest.fixture(scope="module")
def des_loads():
    """The DES's loads of the fit's four points under the default profile."""
    out = {}
    for path in ct.FIT_PATHS:
        for write in ct.WRITES:
            out[(path, write)] = ct.tcp_loads(ct.tcp_scenario(path, write, 0.01), DEFAULT_COSTS)
    return out


def test_tallies_priced_with_the_profile_give_each_cpus_busy_time(des_loads):
    for loads in des_loads.values():
        # the writer's CPU works only in stages; the sink's also waits for the socket the writer's
        # CPU holds (TcpSock.sync), which no stage counts
        assert ct.load_ns_per_byte(loads["send"], DEFAULT_COSTS) == pytest.approx(loads["send_busy_ns_per_byte"],
                                                                                  rel=0.02)
        assert ct.load_ns_per_byte(loads["recv"], DEFAULT_COSTS) <= loads["recv_busy_ns_per_byte"] * (1 + 1e-9)
        for side in ("send", "recv"):
            assert ct.cpu_ns_per_byte(loads, side, DEFAULT_COSTS) == pytest.approx(loads[f"{side}_busy_ns_per_byte"])
            assert loads[side]["syscall"][0] > 0
        assert loads["send"]["tcp_sendmsg"][1] == pytest.approx(1.0, rel=1e-3)      # every byte copied once
        assert loads["recv"]["tcp_recvmsg"][1] == pytest.approx(1.0, rel=1e-3)
        assert loads["gbps"] > 1


def test_fit_with_fixed_loads_reproduces_made_up_measurements(des_loads):
    truth = _truth()
    points = []
    for (path, write), loads in des_loads.items():
        points.append({"path": path, "write": write, "fixed": loads,
                       "send_ns_per_byte": ct.cpu_ns_per_byte(loads, "send", truth),
                       "recv_ns_per_byte": ct.cpu_ns_per_byte(loads, "recv", truth)})
    fitted = ct.fit_tcp(points, DEFAULT_COSTS, loads_of=lambda p, _c: p["fixed"], iterations=6)
    for p in points:
        for side in ("send", "recv"):
            assert ct.cpu_ns_per_byte(p["loads"], side, fitted) == pytest.approx(p[f"{side}_ns_per_byte"], rel=0.06)
    assert ct.residual(points, fitted) < 0.04 < 0.15 < ct.residual(points, DEFAULT_COSTS)
    # the directions the truth moved
    assert fitted.stages["tcp_recvmsg"].per_byte_s > DEFAULT_COSTS.stages["tcp_recvmsg"].per_byte_s * 1.3
    assert fitted.stages["tcp_sendmsg"].per_byte_s > 0.005 * NS
    # stages outside the TCP fit keep their costs
    for st in ("syscall", "veth_xmit", "ip_output", "ip_rcv", "loopback_xmit"):
        assert fitted.stages[st] == DEFAULT_COSTS.stages[st]
    assert "simnet calibrate" in fitted.stages["tcp_transmit"].note


def test_fit_through_the_des_loop_improves_on_its_start():
    """Loads that move with the costs (the DES rerun with each profile)."""
    truth = _truth()
    points = []
    for path, write in (("veth", 32768), ("veth", 131072)):
        loads = ct.tcp_loads(ct.tcp_scenario(path, write, 0.01), truth)
        points.append({"path": path, "write": write, "send_ns_per_byte": ct.cpu_ns_per_byte(loads, "send", truth),
                       "recv_ns_per_byte": ct.cpu_ns_per_byte(loads, "recv", truth)})
    said: list[str] = []
    fitted = ct.fit_tcp(points, DEFAULT_COSTS, iterations=3, say=said.append,
                        loads_of=lambda p, c: ct.tcp_loads(ct.tcp_scenario(p["path"], p["write"], 0.01), c))
    start = [ct.tcp_loads(ct.tcp_scenario(p["path"], p["write"], 0.01), DEFAULT_COSTS) for p in points]
    r_start = ct.residual([{**p, "loads": ld} for p, ld in zip(points, start)], DEFAULT_COSTS)
    assert ct.residual(points, fitted) < r_start / 2
    assert len(said) >= 1 and all("RMS error" in m for m in said)


def test_scenarios_of_the_paths():
    for path in (*ct.FIT_PATHS, *ct.CHECK_PATHS):
        comp = ct.tcp_scenario(path, 65536, 1.0)
        assert comp.workloads[0].app == "tcp_stream" and comp.workloads[0].spec.write == 65536
        w, s = ct.des_app_cpus(comp)
        assert w != s                     # the two ends on different CPUs, as the probes are pinned
    kinds = {d.get("kind") for _n, d in ct.tcp_scenario("vxlan", 65536, 1.0).graph.nodes(data=True)}
    assert "vxlan" in kinds and "wire" not in kinds


def test_overlay_on_a_veth_underlay_carries_super_segments_whole():
    """Linux keeps a VXLAN-encapsulated GSO packet whole over a veth (tunnel GSO): one outer
    packet per super-segment on the underlay, one UDP datagram and one decapsulated frame each."""
    from simnet.engines.des.engine import run_des

    res = run_des(ct.tcp_scenario("vxlan", 131072, 0.003))
    data_segs = res.flows[0].tcp["client"]["tcpi_data_segs_out"]
    c = res.counters
    outer = c["h1"]["dev"]["eth0"]["tx_packets"]
    assert data_segs > 20 * outer > 0
    assert c["h2"]["snmp"]["Udp"]["InDatagrams"] == c["1-ov@h2"]["dev"]["vxlan0"]["rx_packets"]
    # each outer frame: the inner bytes plus 50 bytes of encapsulation and 14 of Ethernet; the
    # rest of the underlay's frames are ARP (42 bytes)
    n, inner = c["1-ov@h2"]["dev"]["vxlan0"]["rx_packets"], c["1-ov@h2"]["dev"]["vxlan0"]["rx_bytes"]
    arp = c["h2"]["dev"]["eth0"]["rx_packets"] - n
    assert 0 <= arp <= 2
    assert c["h2"]["dev"]["eth0"]["rx_bytes"] == inner + (50 + 14) * n + 42 * arp
