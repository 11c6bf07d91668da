"""models/ never imports the front end or an engine (DESIGN.md's layering rule)."""

from __future__ import annotations

import ast

from conftest import ROOT

ALLOWED = {"simnet.kernel", "simnet.units", "simnet.trace", "simnet.ports", "simnet.rng"}


def imported(path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_models_import_only_the_small_shared_kernels():
    files = list((ROOT / "models").rglob("*.py"))
    assert len(files) > 10
    for f in files:
        for mod in imported(f):
            if mod.startswith("simnet.") and not mod.startswith("simnet.models"):
                assert mod in ALLOWED, f"{f.relative_to(ROOT)} imports {mod}"


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from simnet.cli import app\nimport simnet.engines.des\n")
    assert {"simnet.cli", "simnet.engines.des"} <= imported(bad)
