"""``simnet calibrate`` on the real kernel (needs root, iproute2, ethtool and cc; skipped otherwise).

A shortened calibration (one path, short points, one run each) writes a cost profile whose TCP
stages were fitted, prints both checks' tables, leaves nothing behind, and ``simnet run
--cost-profile`` loads the profile. No timing is asserted: the figures are the machine's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from simnet.engines.netns.apply import netns_list
from simnet.engines.netns.lab import NETNS_RE, run_is_live
from simnet.models.linux.cpu import DEFAULT_COSTS, CostProfile

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ethtool") is None
    or (shutil.which("cc") or shutil.which("gcc")) is None or shutil.which("taskset") is None,
    reason="simnet calibrate needs root, iproute2, ethtool, taskset and a C compiler (CI runs as root)")


def cli(*args):
    return subprocess.run([sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=900)


def test_shortened_calibration_writes_a_profile_the_des_loads(tmp_path):
    prof = tmp_path / "cost-profile.json"
    r = cli("calibrate", "-o", str(prof), "--paths", "veth", "--sizes", "1472", "--seconds", "0.3", "--repeat", "1",
            "--writes", "131072", "--check-seconds", "0.5")
    assert r.returncode == 0, r.stderr
    assert "tcp_stream (128 KiB writes)" in r.stdout and "veth" in r.stdout
    data = json.loads(prof.read_text())
    profile = CostProfile.from_dict(data, DEFAULT_COSTS)
    assert "fitted to TCP streams" in profile.stages["tcp_transmit"].note
    assert "simnet calibrate" in profile.stages["veth_xmit"].note                  # the UDP fit
    (pt,) = data["source"]["tcp_points"]
    assert pt["path"] == "veth" and pt["write"] == 131072 and pt["send_ns_per_byte"] > 0 and pt["gbps"] > 0
    out = tmp_path / "run"
    r = cli("run", "tcp-bulk-bridge", "--out", str(out), "--no-plots", "--cost-profile", str(prof))
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "summary.json").read_text())["flows"][0]["bytes_delivered"] > 0
    left = {n for n in netns_list() if (m := NETNS_RE.match(n)) and not run_is_live(m.group(1))}
    assert not left


def test_bad_calibration_options_are_refused():
    for args in (("--paths", "nowhere"), ("--writes", "abc"), ("--check-seconds", "0")):
        r = cli("calibrate", *args)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, (args, r.stderr)
