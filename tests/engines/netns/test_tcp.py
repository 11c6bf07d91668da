"""TCP on the netns engine (as root: real sockets in real namespaces; skipped with the reason elsewhere).

* tcp-segments (offloads off, TCP_CORK): the kernel sends exactly ceil(10 MB / 1448) data
  segments, and the model the same (``simnet run --engine des,netns`` exits 0);
* every bundled TCP scenario runs on netns and is compared (the long ones shortened); what
  the kernel here cannot reproduce (lossy links without netem) is in the notes;
* without root: TCP_INFO decoding, agent options and exactness rules (no kernel needed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct

import pytest

import simnet
from simnet.engines.netns.agents.tcp import TCP_INFO_FIELDS, decode_tcp_info
from simnet.engines.netns.tcpflows import tcp_exactness
from simnet.engines.netns.workloads import agent_configs

from conftest import SCENARIOS
from netnscheck import replay_and_compare

root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ethtool") is None,
                          reason="the netns engine needs root, iproute2 and ethtool (CI runs as root)")


def test_tcp_info_decodes_the_kernels_layout():
    vals = list(range(1, 9)) + [100 + i for i in range(24)] + [1000, 2000, 3000, 4000] + [7, 8, 9, 10, 11, 12]
    raw = struct.pack("=8B24I4Q6I", *vals)
    info = decode_tcp_info(raw)
    assert info["tcpi_state"] == "ESTABLISHED" and info["tcpi_ca_state"] == 2
    assert info["tcpi_snd_wscale"] == 7 & 0xF and info["tcpi_rcv_wscale"] == 7 >> 4
    assert info["tcpi_rto"] == 100 and info["tcpi_snd_mss"] == 102 and info["tcpi_total_retrans"] == 123
    assert info["tcpi_bytes_acked"] == 3000 and info["tcpi_bytes_received"] == 4000
    assert info["tcpi_segs_out"] == 7 and info["tcpi_data_segs_out"] == 12
    assert "tcpi_delivered" not in info                     # beyond what this (older) struct holds
    assert set(info) <= set(TCP_INFO_FIELDS) | {"tcpi_snd_wscale", "tcpi_rcv_wscale"}


def test_tcp_agents_take_the_scenarios_socket_options():
    comp = simnet.compile_scenario(SCENARIOS / "nagle-delack.yaml")
    pairs = agent_configs(comp, 1e9)
    nagle, nodelay = pairs
    assert nodelay.client["nodelay"] and nodelay.server["nodelay"] and not nagle.client["nodelay"]
    assert nagle.client["writes"] == 2 and nagle.client["request"] == 200 and nagle.server["response"] == 100
    assert nagle.client["cc"] == "cubic" == nagle.server["cc"]            # the model's default, set per socket
    assert nagle.client["rtprio"] is None                                 # TCP agents run under the default scheduler
    comp = simnet.compile_scenario(SCENARIOS / "sndbuf-what-if.yaml")
    auto, fixed = agent_configs(comp, 1e9)
    assert fixed.client["sndbuf"] == 256 * 1024 and auto.client["sndbuf"] is None
    assert fixed.client["size"] == 50_000_000 and fixed.server["read"] == 131072


def test_only_rule_fixed_segmentation_is_exact():
    ex = tcp_exactness(simnet.compile_scenario(SCENARIOS / "tcp-segments.yaml"))
    assert ex["exact_flows"] == ["copy"] and ex["exact_netns"] == ["client", "server"]
    assert ex["netns"] == ["client", "host", "server"]                     # the host bridges it: ACKs there too
    ex = tcp_exactness(simnet.compile_scenario(SCENARIOS / "tcp-bulk-bridge.yaml"))
    assert ex["exact_flows"] == []                                         # TSO on, Nagle: timing decides
    ex = tcp_exactness(simnet.compile_scenario(SCENARIOS / "loss-recovery.yaml"))
    assert ex["impaired_flows"] == ["mid", "tail"]


@root
def test_tcp_segments_equal_with_offloads_off(tmp_path):
    out, rows = replay_and_compare(SCENARIOS / "tcp-segments.yaml", tmp_path)
    want = math.ceil(10_000_000 / 1448)
    assert rows["client/snmp/TcpExt/TCPOrigDataSent"]["exact"] == "1"
    assert rows["client/snmp/TcpExt/TCPOrigDataSent"]["b"] == str(want)
    assert rows["flow/copy/tcp_info/client/data_segs_orig"]["b"] == str(want)
    assert rows["flow/copy/tcp_info/server/tcpi_bytes_received"]["b"] == str(10_000_000 + 1)     # and the FIN
    info = json.loads((out / "netns" / "tcp.json").read_text())["copy"]
    assert info["client"]["tcpi_snd_mss"] == 1448 and info["client"]["tcpi_ca_name"] == "cubic"


SHORTEN = {
    "sndbuf-what-if": [("size: 100MB", "size: 20MB"), ("size: 50MB", "size: 10MB")],
    "cubic-vs-reno": [("duration: 20s", "duration: 2s")],
    "tcp-bottleneck": [("duration: 10s", "duration: 2s")],
}


@root
@pytest.mark.parametrize("name", ["tcp-bulk-bridge", "nagle-delack", "sndbuf-what-if", "loss-recovery",
                                  "cubic-vs-reno", "tcp-bottleneck"])
def test_every_tcp_scenario_replays_and_compares(name, tmp_path):
    text = (SCENARIOS / f"{name}.yaml").read_text()
    for a, b in SHORTEN.get(name, []):
        assert a in text
        text = text.replace(a, b)
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    out, rows = replay_and_compare(p, tmp_path)
    tcp = json.loads((out / "netns" / "tcp.json").read_text())
    comp = simnet.compile_scenario(p)
    for wp in comp.workloads:
        f = tcp[wp.name]
        assert f["client"]["tcpi_state"] == "CLOSE" and f["server"]["tcpi_state"] == "CLOSE"
        assert f["client"]["tcpi_ca_name"] == (wp.spec.congestion or "cubic")
        assert rows[f"flow/{wp.name}/bytes_delivered"]["a"] == rows[f"flow/{wp.name}/bytes_delivered"]["b"] \
            or wp.app == "tcp_stream"
    notes = json.loads((out / "netns" / "netns.json").read_text())["notes"]
    if name == "loss-recovery":
        assert sum("drop list" in n for n in notes) == 2                  # reported, not silently ignored
        assert rows["a1/snmp/Tcp/RetransSegs"]["exact"] == "0"
    if name == "nagle-delack":
        lat = {r: float(rows[f"flow/{r}/latency_p50_s"]["b"]) for r in ("nagle", "nodelay")}
        assert lat["nagle"] > 0.030 > 0.005 > lat["nodelay"]              # the kernel's 40 ms stall, and none
