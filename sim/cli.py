"""The ``simnet`` command line: a thin shell over the Python API.

Exit codes:

====  =======================================================================
0     success
1     the run failed (an internal error; the message says where)
2     bad input: a scenario or option error (``file:line: key.path: message``)
3     a needed tool or permission is missing
130   interrupted (Ctrl-C): results so far were written, marked ``partial``
====  =======================================================================
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import __version__

EXIT_OK = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_MISSING = 3
EXIT_INTERRUPTED = 130

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="simnet: what happens to your packets on a Linux host that runs containers, and why.")


class Engine(str, Enum):
    des = "des"


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _resolve(path: str) -> Path:
    """A scenario path, or the name of a bundled scenario (``quickstart``)."""
    p = Path(path)
    if p.exists():
        return p
    from . import bundled_scenario

    b = bundled_scenario(path)
    return b if b is not None else p


def _load_and_compile(path: str, seed: Optional[int] = None):
    from .compile import compile_scenario
    from .scenario.loader import ScenarioError, load, source_of

    sc = load(_resolve(path))
    src = source_of(sc)
    if seed is not None:
        sc = sc.model_copy(update={"seed": seed})
        sc._source = src
    try:
        return sc, compile_scenario(sc)
    except ScenarioError as e:
        raise e.located(src) from None


def _guard(fn):
    """Run ``fn`` turning scenario errors into one line and exit code 2."""
    from .scenario.loader import ScenarioError

    try:
        return fn()
    except ScenarioError as e:
        _err(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None


class _Progress:
    """A rich progress bar on stderr for runs longer than a second, when stderr is a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.bar = None
        self.task = None

    def __call__(self, t: float, end: float) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.t0 < 1.0:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed:.3f}s"),
                                TimeElapsedColumn(), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("run", total=end)
        self.bar.update(self.task, completed=t)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@app.command()
def run(
    file: str = typer.Argument(..., help="scenario file, or the name of a bundled scenario"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="result directory (default: out/<scenario name>)"),
    seed: Optional[int] = typer.Option(None, "--seed", help="override the scenario's seed"),
    engine: Engine = typer.Option(Engine.des, "--engine", help="simulation engine"),
    pcap: bool = typer.Option(False, "--pcap", help="write pcap/<netns>-<dev>.pcap for every device"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write plots/*.png"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors"),
) -> None:
    """Run a scenario and write its results."""
    sc, comp = _guard(lambda: _load_and_compile(file, seed))
    out_dir = out if out is not None else Path("out") / sc.name
    out_dir = out_dir.resolve()
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as e:
        _err(f"{out_dir}: cannot create the result directory: {e.strerror}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    progress = _Progress(not quiet)
    from .engines.des.engine import run_des

    try:
        try:
            res = run_des(comp, pcap_dir=(tmp / "pcap") if pcap else None, progress=progress)
        finally:
            progress.close()
        res.write(tmp, plots=plots)
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        _print_summary(res, out_dir)
    if res.partial:
        _err(f"interrupted at {res.sim_time_s:.6f} s simulated: partial results in {out_dir}")
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_summary(res, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from .units import fmt_rate, fmt_time

    con = Console(width=max(Console().width, 110))
    t = Table(title=f"{res.scenario}: {res.sim_time_s:g} s simulated in {res.wall_s:.2f} s ({res.engine})")
    for col in ("flow", "app", "path", "sent", "delivered", "goodput", "latency p50", "p99"):
        t.add_column(col, justify="right" if col not in ("flow", "app", "path") else "left", no_wrap=True)
    for f in res.flows:
        p50 = f.latency(0.5)
        p99 = f.latency(0.99)
        t.add_row(f.name, f.app, f"{f.src} → {f.dst}", str(f.packets_sent), str(f.packets_delivered),
                  fmt_rate(f.goodput_bps) if f.goodput_bps else "-",
                  fmt_time(p50) if p50 == p50 else "-", fmt_time(p99) if p99 == p99 else "-")
    con.print(t)
    if res.drops:
        con.print("drops: " + ", ".join(f"{k} {v}" for k, v in res.drops.items()))
    con.print(f"results: {out_dir}")


@app.command()
def validate(file: str = typer.Argument(..., help="scenario file")) -> None:
    """Check a scenario (syntax, references, addresses, reachability) without running it."""
    sc, comp = _guard(lambda: _load_and_compile(file))
    g = comp.graph
    n_ns = sum(1 for _n, d in g.nodes(data=True) if d["kind"] == "netns")
    n_dev = sum(1 for _n, d in g.nodes(data=True) if d["kind"] != "netns")
    typer.echo(f"{file}: ok — {len(sc.hosts)} host(s), {n_ns} namespaces, {n_dev} devices, "
               f"{len(comp.workloads)} workload(s)")
    for w in comp.workloads:
        typer.echo(f"  {w.name}: {w.app} {w.spec.from_} → {w.daddr}:{w.dport} via {' → '.join(w.path)}")


@app.command()
def graph(
    file: str = typer.Argument(..., help="scenario file"),
    output: Path = typer.Option(Path("topology.png"), "--output", "-o", help="PNG to write"),
) -> None:
    """Draw the scenario's topology (namespaces, devices, links)."""
    sc, comp = _guard(lambda: _load_and_compile(file))
    from matplotlib.figure import Figure

    from .results.plots import plot_topology

    fig = Figure(figsize=(9, 6))
    plot_topology(comp.graph, fig.subplots(), title=f"{sc.name}: topology")
    try:
        fig.savefig(output, dpi=110, bbox_inches="tight", metadata={"Software": None})
    except OSError as e:
        _err(f"{output}: cannot write: {e.strerror}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(f"wrote {output}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (generated from the models)."""
    from .scenario.spec import Scenario

    typer.echo(json.dumps(Scenario.model_json_schema(by_alias=True), indent=2))


@app.command()
def params(as_json: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """List every tunable: default, unit, and the Linux sysctl or constant it mirrors."""
    from .models.linux.cpu import DEFAULT_COSTS
    from .models.linux.params import all_knobs

    rows = all_knobs()
    if as_json:
        for r in rows:
            typer.echo(json.dumps(r))
        for r in DEFAULT_COSTS.table():
            typer.echo(json.dumps({"group": "cost", **r}))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title="simnet parameters (defaults are stock Linux 6.x and Docker 28)")
    for col in ("group", "name", "default", "unit", "sysctl", "source"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["group"], r["name"], str(r["default"]), r["unit"], r["sysctl"], r["source"])
    con = Console(width=max(120, Console().width))
    con.print(t)
    c = Table(title=f"CPU cost profile '{DEFAULT_COSTS.name}'")
    for col in ("stage", "µs/packet", "ns/byte", "where the number comes from"):
        c.add_column(col, overflow="fold")
    for r in DEFAULT_COSTS.table():
        c.add_row(r["stage"], f"{r['per_packet_us']:.3f}", f"{r['per_byte_ns']:.3f}", r["note"])
    con.print(c)


@app.command()
def bench(
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
    scenario: Optional[list[str]] = typer.Option(None, "--scenario", "-s", help="run only these benchmarks"),
) -> None:
    """Run the fixed benchmark scenarios and report packets and events per wall second."""
    from .bench import BENCHMARKS, run_benchmark

    names = scenario or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        _err(f"unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})")
        raise typer.Exit(EXIT_BAD_INPUT)
    rows = []
    for n in names:
        row = _guard(lambda n=n: run_benchmark(n))
        rows.append(row)
        if as_json:
            typer.echo(json.dumps(row))
    if not as_json:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="simnet bench")
        for col in ("scenario", "engine", "packets", "events", "wall s", "packets/s", "events/s", "run s"):
            t.add_column(col, justify="right" if col not in ("scenario", "engine") else "left")
        for r in rows:
            t.add_row(r["scenario"], r["engine"], f"{r['packets']:,}", f"{r['events']:,}", f"{r['wall_s']:.2f}",
                      f"{r['packets_per_s']:,.0f}", f"{r['events_per_s']:,.0f}", f"{r['run_s']:.2f}")
        Console().print(t)


@app.command()
def version() -> None:
    """Print simnet's version."""
    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # an internal error: one line, the traceback on request
        if os.environ.get("SIMNET_DEBUG"):
            raise
        import traceback

        tb = traceback.extract_tb(e.__traceback__)[-1]
        _err(f"simnet: internal error: {type(e).__name__}: {e} (at {Path(tb.filename).name}:{tb.lineno}; "
             "set SIMNET_DEBUG=1 for the traceback)")
        sys.exit(EXIT_FAIL)


if __name__ == "__main__":  # pragma: no cover
    main()
