"""simnet: what happens to your packets on a Linux host that runs containers, and why.

The Python API::

    import simnet
    sc = simnet.load("scenarios/quickstart.yaml")    # validated scenario
    res = simnet.run(sc)                              # Results (engine "des")
    res.flow("rr").latencies_s                        # numpy array
    res.to_pandas()["breakdown"]                      # needs pandas
"""

from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .results.results import Results
    from .scenario.spec import Scenario

__all__ = ["__version__", "load", "loads", "compile_scenario", "run", "ScenarioError", "bundled_scenario"]


def __getattr__(name: str) -> Any:
    if name == "ScenarioError":
        from .scenario.loader import ScenarioError

        return ScenarioError
    if name in ("Results", "Scenario"):
        from .results.results import Results
        from .scenario.spec import Scenario

        return {"Results": Results, "Scenario": Scenario}[name]
    raise AttributeError(name)


def bundled_scenario(name: str) -> Path | None:
    """Path of a scenario shipped with simnet (``quickstart`` or ``quickstart.yaml``), or None."""
    from importlib import resources

    stem = name[:-5] if name.endswith(".yaml") else name
    try:
        p = resources.files("simnet.scenarios") / f"{stem}.yaml"
    except ModuleNotFoundError:  # pragma: no cover - broken install
        return None
    return Path(str(p)) if p.is_file() else None


def load(path: str | Path) -> "Scenario":
    """Load and validate a scenario file (or a bundled scenario by name)."""
    from .scenario.loader import load as _load

    p = Path(path)
    if not p.exists():
        b = bundled_scenario(str(path))
        if b is not None:
            p = b
    return _load(p)


def loads(text: str, file: str = "<scenario>") -> "Scenario":
    """Parse and validate scenario text."""
    from .scenario.loader import loads as _loads

    return _loads(text, file)


def compile_scenario(scenario: "Scenario | str | Path") -> Any:
    """Compile a scenario into its topology graph and workload plans (``simnet.compile.Compiled``)."""
    from .compile import compile_scenario as _compile
    from .scenario.loader import source_of

    sc = scenario if not isinstance(scenario, (str, Path)) else load(scenario)
    try:
        return _compile(sc)
    except Exception as e:
        from .scenario.loader import ScenarioError

        if isinstance(e, ScenarioError):
            raise e.located(source_of(sc)) from None
        raise


def run(scenario: "Scenario | str | Path", engine: str = "des", *, seed: int | None = None,
        pcap_dir: str | Path | None = None, progress: Any = None, **kwargs: Any) -> "Results":
    """Run a scenario (object, path or bundled name) and return its :class:`Results`."""
    sc = scenario if not isinstance(scenario, (str, Path)) else load(scenario)
    if seed is not None:
        src = sc._source
        sc = sc.model_copy(update={"seed": seed})
        sc._source = src
    comp = compile_scenario(sc)
    if engine != "des":
        raise ValueError(f"unknown engine {engine!r} (available: des)")
    from .engines.des.engine import run_des

    return run_des(comp, pcap_dir=Path(pcap_dir) if pcap_dir is not None else None, progress=progress, **kwargs)
