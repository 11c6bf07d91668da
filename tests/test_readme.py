"""The README's promises: its two commands, its example scenario, its scenario table."""

from __future__ import annotations

import re

import simnet

from conftest import ROOT, all_scenarios

README = (ROOT / "README.md").read_text()


def code_blocks(lang: str | None = None) -> list[str]:
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)
    return [body for l, body in blocks if lang is None or l == lang]


def test_first_block_has_exactly_two_commands_with_their_own_venv():
    first = [ln for ln in code_blocks()[0].splitlines() if ln.strip()]
    assert len(first) == 2
    assert all("venv" in ln for ln in first)
    assert "simnet run" in first[0] and "pytest" in first[1]


def test_example_scenario_is_valid():
    yaml_blocks = code_blocks("yaml")
    assert yaml_blocks
    comp = simnet.compile_scenario(simnet.loads(yaml_blocks[0], "README.md"))
    assert [w.app for w in comp.workloads] == ["udp_rr", "udp"]


def test_every_bundled_scenario_is_in_the_table():
    for p in all_scenarios():
        assert f"`{p.stem}`" in README, f"README does not describe {p.name}"


def test_ci_reads_the_readme():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "sed -n 2p" in ci
