"""The command line: each command does its job and uses the documented exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from simnet.models.linux.params import SYSCTLS

from conftest import SCENARIOS


def simnet(*args: str, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def test_schema_is_json_schema_of_the_format():
    r = simnet("schema")
    assert r.returncode == 0
    s = json.loads(r.stdout)
    assert s["title"] == "Scenario" and "name" in s["required"]
    assert {"hosts", "links", "networks", "containers", "workloads", "sysctls", "run"} <= set(s["properties"])
    text = r.stdout
    assert '"udp_rr"' in text and '"from"' in text


def test_params_lists_every_sysctl_and_cost():
    r = simnet("params", "--json")
    assert r.returncode == 0
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    sysctls = {row["sysctl"] for row in rows if row.get("sysctl")}
    assert set(SYSCTLS) <= sysctls
    assert any(row["group"] == "cost" and row["stage"] == "veth_xmit" and row["note"] for row in rows)
    assert all(row.get("source") or row.get("note") for row in rows)
    human = simnet("params")
    assert human.returncode == 0 and "base_reachable_time" in human.stdout


def test_graph_writes_a_png(tmp_path):
    out = tmp_path / "topo.png"
    r = simnet("graph", str(SCENARIOS / "two-networks.yaml"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_prints_paths():
    r = simnet("validate", str(SCENARIOS / "two-networks.yaml"))
    assert r.returncode == 0
    assert "web_db: udp_rr web → 10.20.0.3:5433 via web → host → db" in r.stdout


def test_run_by_bundled_name(tmp_path):
    r = simnet("run", "quickstart", "--out", str(tmp_path / "q"), "--no-plots")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "q" / "summary.json").exists() and not (tmp_path / "q" / "plots").exists()


def test_bench_json():
    r = simnet("bench", "--json", "-s", "quickstart")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(row) == {"scenario", "engine", "packets", "events", "wall_s", "packets_per_s", "events_per_s",
                        "run_s"}
    assert row["packets"] == 1000 and row["events"] > row["packets"]
    assert row["packets_per_s"] == pytest.approx(row["packets"] / row["wall_s"], rel=0.01)
    assert row["run_s"] > row["wall_s"]
    assert simnet("bench", "-s", "nope").returncode == 2


@pytest.mark.parametrize("sig", [signal.SIGINT])
def test_ctrl_c_writes_partial_results(tmp_path, sig):
    out = tmp_path / "t"
    p = subprocess.Popen([sys.executable, "-m", "simnet.cli", "run", str(SCENARIOS / "udp-tandem.yaml"), "--out",
                          str(out), "-q", "--no-plots"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    p.send_signal(sig)
    _stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 130, stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["partial"] is True and 0 < s["simulated_s"] < 27
    assert "partial" in stderr
    f = s["flows"][1]
    assert 0 < f["packets_sent"] < 200000
    assert not list(tmp_path.glob(".t.tmp-*"))
