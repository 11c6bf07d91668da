"""Every notebook in notebooks/ runs top to bottom without an error."""

from __future__ import annotations

import pytest

from conftest import ROOT

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the test extras (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the test extras (pip install -e '.[test]')")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "transactions, median round trip" in text or path.stem != "01-send-path"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3 or path.stem == "03-docker-drivers"
    if path.stem == "03-docker-drivers":
        assert "layers add up to the measured mean latency for every driver" in text and len(images) >= 3
        assert "TCP: layers add up to the measured mean latency for every driver" in text
    if path.stem == "02-tcp":
        assert "RTT 3: cwnd    80 segments" in text and "usable send buffer" in text
        assert "DelayedACKs: 19" in text
