"""Broken scenario files fed to ``simnet run``: one line on stderr, exit code 2, nothing written.

Each case is a YAML text, the key path the error must name (None for errors about the whole
file), and a regular expression the message must match. The expected line is the line of the
YAML text marked with ``# <-`` (line 1 when no line is marked).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bad_input_cases import CASES, Case, expected_line


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SIMNET_DEBUG"}
    env["COLUMNS"] = "200"      # no wrapping by rich
    return subprocess.run([sys.executable, "-m", "simnet.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _check(proc: subprocess.CompletedProcess, file: str, line: int, path: str | None, message: str,
           out_dir: Path) -> None:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both, both
    assert proc.returncode == 2, f"exit code {proc.returncode}; stderr: {proc.stderr!r}"
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {proc.stderr!r}"
    assert proc.stderr.endswith("\n")
    where = re.escape(f"{path}: ") if path is not None else ""
    m = re.fullmatch(rf"{re.escape(file)}:(?P<line>\d+): {where}(?P<msg>\S.*)", lines[0])
    assert m, f"stderr does not look like {file}:{line}: {path or ''}: ...: {lines[0]!r}"
    assert int(m["line"]) == line, f"line {m['line']}, expected {line}: {lines[0]!r}"
    if path is None:
        # an error about the whole file has no key path in front of the message
        assert not re.match(r"[A-Za-z_][\w.\[\]-]*: ", m["msg"]), lines[0]
    assert re.search(message, m["msg"]), f"message {m['msg']!r} does not match {message!r}"
    assert not out_dir.exists(), "the output directory was created"
    leftovers = sorted(p.name for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}."))
    assert leftovers == [], leftovers


@pytest.mark.parametrize("c", CASES)
def test_bad_scenario(c: Case, tmp_path: Path) -> None:
    f = tmp_path / "scenario.yaml"
    f.write_text(c.text, encoding="utf-8")
    out_dir = tmp_path / "results"
    proc = _run(["run", str(f), "--out", str(out_dir)], cwd=tmp_path)
    _check(proc, str(f), expected_line(c), c.path, c.message, out_dir)


def test_case_ids_are_unique() -> None:
    ids = [p.values[0].id for p in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 35


def test_nonexistent_file(tmp_path: Path) -> None:
    f = tmp_path / "does-not-exist.yaml"
    out_dir = tmp_path / "results"
    proc = _run(["run", str(f), "--out", str(out_dir)], cwd=tmp_path)
    _check(proc, str(f), 1, None, r"no such file", out_dir)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    d = tmp_path / "adir"
    d.mkdir()
    out_dir = tmp_path / "results"
    proc = _run(["run", str(d), "--out", str(out_dir)], cwd=tmp_path)
    _check(proc, str(d), 1, None, r"directory", out_dir)


def test_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: caf\xe9\n")
    out_dir = tmp_path / "results"
    proc = _run(["run", str(f), "--out", str(out_dir)], cwd=tmp_path)
    _check(proc, str(f), 1, None, r"UTF-8", out_dir)


def test_relative_path_is_reported_as_given(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("name: t\nhosts:\n  h: {cpus: 0}\n", encoding="utf-8")
    out_dir = tmp_path / "results"
    proc = _run(["run", "s.yaml", "--out", str(out_dir)], cwd=tmp_path)
    _check(proc, "s.yaml", 3, "hosts.h.cpus", r"at least 1", out_dir)


def test_existing_output_directory_is_left_alone(tmp_path: Path) -> None:
    """A bad scenario must not touch results from an earlier run."""
    f = tmp_path / "scenario.yaml"
    f.write_text("name: t\ncolour: blue\n", encoding="utf-8")
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("earlier results", encoding="utf-8")
    proc = _run(["run", str(f), "--out", str(out_dir)], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert (out_dir / "keep.txt").read_text(encoding="utf-8") == "earlier results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "scenario.yaml"]


def test_good_scenario_still_runs(tmp_path: Path) -> None:
    """The harness itself: a correct file passes, so the failures above are about the input."""
    f = tmp_path / "scenario.yaml"
    f.write_text(textwrap.dedent("""
        name: ok
        containers: {a: {}, b: {}}
        workloads:
          - {app: udp, from: a, to: b, port: 9, count: 3}
        """), encoding="utf-8")
    out_dir = tmp_path / "results"
    proc = _run(["run", str(f), "--out", str(out_dir), "--quiet", "--no-plots"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert out_dir.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".results.")]
