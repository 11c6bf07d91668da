"""Shared fixtures: building scenarios from YAML snippets and running them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import simnet

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def scenario(text: str, file: str = "<test>"):
    """A validated scenario from a YAML snippet (dedented)."""
    return simnet.loads(textwrap.dedent(text), file)


def run_yaml(text: str, **kw):
    return simnet.run(scenario(text), **kw)


@pytest.fixture
def run():
    return run_yaml


def all_scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.yaml"))
