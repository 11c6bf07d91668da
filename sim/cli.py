"""The ``simnet`` command line: a thin shell over the Python API.

Exit codes:

====  =======================================================================
0     success
1     the run failed (an internal error; the message says where)
2     bad input: a scenario or option error (``file:line: key.path: message``)
3     a needed tool, permission or kernel feature is missing (the netns engine needs root,
      iproute2, ethtool and the device kinds the scenario uses); nothing was created
130   interrupted (Ctrl-C, or SIGTERM for the netns engine): des writes the results so far,
      marked ``partial``; netns removes everything it created
====  =======================================================================

``simnet compare`` and ``simnet run --engine des,netns`` exit 1 when a counter that must
match between the two differs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
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


ENGINES = ("des", "netns", "des,netns")


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
    engine: Optional[str] = typer.Option(None, "--engine", help="des (simulation), netns (replay on real "
                                         "namespaces, needs root) or des,netns (both, then compare); default: "
                                         "the scenario's run.engine"),
    pcap: bool = typer.Option(False, "--pcap", help="write pcap/<netns>-<dev>.pcap for every device (des)"),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="write plots/*.png"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="print nothing but errors"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the netns engine's plan as a bash script and "
                                 "stop (no root needed; nothing is created)"),
    cost_profile: Optional[Path] = typer.Option(None, "--cost-profile", help="CPU cost profile (JSON, from "
                                                "simnet calibrate) for the des engine"),
) -> None:
    """Run a scenario and write its results."""
    sc, comp = _guard(lambda: _load_and_compile(file, seed))
    engine = engine if engine is not None else sc.run.engine
    if engine not in ENGINES:
        _err(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
        raise typer.Exit(EXIT_BAD_INPUT)
    from . import cli_netns

    if dry_run:
        if "netns" not in engine:
            _err("--dry-run prints the netns engine's plan: use it with --engine netns")
            raise typer.Exit(EXIT_BAD_INPUT)
        cli_netns.print_dry_run(comp)
        return
    costs = _cost_profile(cost_profile)
    out_dir = out if out is not None else Path("out") / sc.name
    out_dir = out_dir.resolve()
    if engine == "des,netns":
        des_res = _run_des(comp, out_dir / "des", pcap=pcap, plots=plots, quiet=quiet, costs=costs)
        if des_res.partial:
            _err(f"interrupted at {des_res.sim_time_s:.6f} s simulated: partial results in {out_dir / 'des'}")
            raise typer.Exit(EXIT_INTERRUPTED)
        real = cli_netns.run_replay(comp, quiet=quiet)
        _write(real, out_dir / "netns", plots=plots)
        if not quiet:
            _print_summary(real, out_dir / "netns")
        from .results.compare import compare_dirs, rows_csv

        rows, meta = compare_dirs(out_dir / "des", out_dir / "netns")
        (out_dir / "compare.csv").write_text(rows_csv(rows))
        bad = cli_netns.print_compare(rows, meta) if not quiet else sum(r.differs for r in rows)
        if bad:
            if quiet:
                _err(f"{bad} exact counters differ between des and netns (see {out_dir / 'compare.csv'})")
            raise typer.Exit(EXIT_FAIL)
        return
    if engine == "netns":
        res = cli_netns.run_replay(comp, quiet=quiet)
        _write(res, out_dir, plots=plots)
        if not quiet:
            _print_summary(res, out_dir)
        return
    res = _run_des(comp, out_dir, pcap=pcap, plots=plots, quiet=quiet, costs=costs)
    if res.partial:
        _err(f"interrupted at {res.sim_time_s:.6f} s simulated: partial results in {out_dir}")
        raise typer.Exit(EXIT_INTERRUPTED)


def _cost_profile(path: Optional[Path]):
    from .models.linux.cpu import DEFAULT_COSTS, CostProfile

    if path is None:
        return DEFAULT_COSTS
    try:
        return CostProfile.from_dict(json.loads(path.read_text()), base=DEFAULT_COSTS)
    except OSError as e:
        _err(f"{path}: cannot read the cost profile: {e.strerror}")
    except json.JSONDecodeError as e:
        _err(f"{path}:{e.lineno}: not valid JSON: {e.msg}")
    except ValueError as e:
        _err(f"{path}: {e}")
    raise typer.Exit(EXIT_BAD_INPUT)


def _new_tmp(out_dir: Path) -> Path:
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    except OSError as e:
        _err(f"{out_dir}: cannot create the result directory: {e.strerror}")
        raise typer.Exit(EXIT_BAD_INPUT) from None


def _publish(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``tmp`` directory."""
    parent = out_dir.parent
    if out_dir.exists():
        old = parent / f".{out_dir.name}.old-{os.getpid()}"
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)


def _write(res, out_dir: Path, *, plots: bool) -> None:
    tmp = _new_tmp(out_dir)
    try:
        res.write(tmp, plots=plots)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _run_des(comp, out_dir: Path, *, pcap: bool, plots: bool, quiet: bool, costs):
    tmp = _new_tmp(out_dir)
    progress = _Progress(not quiet)
    from .engines.des.engine import run_des

    try:
        try:
            res = run_des(comp, pcap_dir=(tmp / "pcap") if pcap else None, progress=progress, costs=costs)
        finally:
            progress.close()
        res.write(tmp, plots=plots)
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not quiet:
        _print_summary(res, out_dir)
    return res


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
    for n in res.extra.get("notes", []):
        con.print(f"not reproduced: {n}")
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


from . import cli_netns as _cli_netns  # noqa: E402  (compare, calibrate, netns clean)

_cli_netns.register(app)


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
