"""What the netns engine's tests share: the CLI in a subprocess, what runs left behind, the
dry-run prefix held as a run holds its own, and random interruptions of real runs."""

from __future__ import annotations

import csv
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simnet.engines.netns.apply import ip_json, netns_list
from simnet.engines.netns.lab import NETNS_RE, Lab, run_is_live


def cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def replay_and_compare(path, tmp_path: Path) -> tuple[Path, dict[str, dict[str, str]]]:
    """``simnet run PATH --engine des,netns``: exit 0 and no exact counter differs; the rows by key."""
    out = tmp_path / "out"
    r = cli("run", str(path), "--engine", "des,netns", "-o", str(out), "--no-plots", "-q")
    rows = list(csv.DictReader((out / "compare.csv").open())) if (out / "compare.csv").exists() else []
    bad = [f"{x['counter']}: des {x['a']} netns {x['b']}" for x in rows if x["differs"] == "1"]
    assert r.returncode == 0, f"{r.stderr}\n" + "\n".join(bad)
    assert rows and not bad
    return out, {x["counter"]: x for x in rows}


def ours() -> set[str]:
    """simnet's namespaces whose run is over (nobody holds the prefix's lock): what a run left behind.
    Namespaces of runs still going (another simnet on this machine) are not counted."""
    return {n for n in netns_list() if (m := NETNS_RE.match(n)) and not run_is_live(m.group(1))}


def prefixed_links() -> set[str]:
    """Devices named with a run prefix in the machine's own namespace (the engine makes none)."""
    return {e["ifname"] for e in ip_json("link", "show") if re.match(r"^sn[0-9a-f]{5}", e["ifname"])}


@pytest.fixture
def dry_run_prefix():
    """The dry-run scripts' prefix, locked as a run locks its own while the script's topology
    exists (so other simnet runs on the machine count it as live), and removed afterwards."""
    with Lab(prefix="sn00000") as lab:
        yield lab.prefix


def interrupt_runs(names: list[str], out: Path, seed: int, sleep_s: tuple[float, float],
                   timeout_s: float) -> list[int]:
    """Start ``simnet run NAME --engine netns`` for each name in turn, send SIGINT or SIGTERM after
    a random time, and check that each exits cleanly and leaves nothing; the exit codes."""
    rng = random.Random(seed)
    before = ours()
    codes = []
    for i, name in enumerate(names):
        p = subprocess.Popen([sys.executable, "-m", "simnet.cli", "run", name, "--engine", "netns", "-o",
                              str(out / f"o{i}"), "--no-plots", "-q"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(*sleep_s))
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        p.send_signal(sig)
        try:
            _o, err = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            raise
        codes.append(p.returncode)
        assert p.returncode in (0, 130, -sig), err
        assert "Traceback" not in err, err
        assert ours() == before, f"run {i} ({name}, {sig.name}, exit {p.returncode}) left {ours() - before}"
        assert not prefixed_links()
    return codes
