"""The netns engine's commands: ``compare``, ``netns clean``, ``calibrate``, and the replay part of ``run``.

Registered on the main Typer app by sim/cli.py (:func:`register`); exit codes as there:
0 success, 1 failure (for ``compare`` and ``run --engine des,netns``: an exact counter
differs), 2 bad input, 3 a needed tool, permission or kernel feature is missing, 130
interrupted (everything the run created was removed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_MISSING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

netns_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Manage what the netns engine creates in the kernel.")


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def run_replay(comp: Any, *, quiet: bool) -> Any:
    """Run the netns engine, turning its failures into one line and the documented exit code."""
    from .engines.netns.apply import ApplyError
    from .engines.netns.engine import ReplayError, run_netns
    from .engines.netns.lab import Interrupted
    from .engines.netns.preflight import Unavailable

    def say(msg: str) -> None:
        if not quiet:
            _err(f"netns: {msg}")

    try:
        return run_netns(comp, progress=say)
    except Unavailable as e:
        _err(f"simnet: netns engine unavailable: {e}")
        raise typer.Exit(EXIT_MISSING) from None
    except (ApplyError, ReplayError) as e:
        _err(f"simnet: the replay failed: {e}")
        raise typer.Exit(EXIT_FAIL) from None
    except Interrupted as e:
        _err(f"interrupted ({e.args[0]}): everything the replay created was removed")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def print_dry_run(comp: Any) -> None:
    from .engines.netns.engine import plan_for
    from .engines.netns.preflight import Unavailable

    try:
        plan = plan_for(comp)
    except Unavailable as e:
        _err(f"simnet: netns engine unavailable: {e}")
        raise typer.Exit(EXIT_MISSING) from None
    typer.echo(plan.to_script(), nl=False)


def print_compare(rows: list[Any], meta: dict[str, Any], *, show_all: bool = False) -> int:
    """The comparison table on stdout; returns the number of exact fields that differ."""
    from rich.console import Console
    from rich.table import Table

    from .results.compare import fmt_value

    con = Console(width=max(Console().width, 110))
    ea, eb = meta["a"]["engine"], meta["b"]["engine"]
    if ea == eb:
        ea, eb = f"A ({ea})", f"B ({eb})"
    t = Table(title=f"{meta['a']['scenario']}: {meta['a']['dir']} vs {meta['b']['dir']}")
    for col, just in (("counter", "left"), (ea, "right"), (eb, "right"), ("diff", "right"), ("rel", "right"),
                      ("exact", "center"), ("", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    hidden = 0
    for r in rows:
        if r.zero and not show_all and not r.differs:
            hidden += 1
            continue
        rel = f"{r.rel:+.1%}" if r.rel is not None else ""
        diff = fmt_value(r.diff) if r.diff is not None else ""
        mark = "[red]DIFFERS[/red]" if r.differs else ("[green]=[/green]" if r.exact and r.comparable else "")
        t.add_row(r.key, fmt_value(r.a), fmt_value(r.b), diff, rel, "●" if r.exact else ("≈" if r.note else ""),
                  mark)
    con.print(t)
    n_exact = sum(1 for r in rows if r.exact and r.comparable)
    bad = [r for r in rows if r.differs]
    if hidden:
        con.print(f"{hidden} counters are zero on both sides (--all lists them)")
    for note in sorted({r.note for r in rows if r.note}):
        con.print(f"≈ {note}")
    for side in ("a", "b"):
        for n in meta[side]["notes"]:
            con.print(f"not reproduced ({meta[side]['engine']}): {n}")
    if bad:
        con.print(f"[red]{len(bad)} of {n_exact} exact counters differ[/red]: "
                  + ", ".join(r.key for r in bad[:8]) + (" …" if len(bad) > 8 else ""))
    else:
        con.print(f"all {n_exact} exact counters are equal")
    return len(bad)


def compare(
    a: Path = typer.Argument(..., help="result directory (e.g. a des run)"),
    b: Path = typer.Argument(..., help="result directory (e.g. a netns run of the same scenario)"),
    show_all: bool = typer.Option(False, "--all", help="list counters that are zero on both sides too"),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="also write every row to this CSV file"),
) -> None:
    """Compare two result directories counter by counter; exit 1 when a field that must match differs."""
    from .results.compare import CompareError, compare_dirs, rows_csv

    try:
        rows, meta = compare_dirs(a, b)
    except CompareError as e:
        _err(str(e))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if csv_out is not None:
        csv_out.write_text(rows_csv(rows))
    if print_compare(rows, meta, show_all=show_all):
        raise typer.Exit(EXIT_FAIL)


@netns_app.command("clean")
def netns_clean() -> None:
    """Remove what crashed netns runs left behind (namespaces named sn?????-*), never anything else."""
    import os

    from .engines.netns.apply import ApplyError
    from .engines.netns.lab import clean_stale

    if os.geteuid() != 0:
        _err("simnet netns clean needs root (it deletes network namespaces)")
        raise typer.Exit(EXIT_MISSING)
    try:
        removed = clean_stale()
    except ApplyError as e:
        _err(f"simnet: {e}")
        raise typer.Exit(EXIT_MISSING if "not found" in str(e) else EXIT_FAIL) from None
    for ns in removed["netns"]:
        typer.echo(f"removed namespace {ns}")
    for ln in removed["links"]:
        typer.echo(f"removed device {ln}")
    for p in removed["live"]:
        typer.echo(f"left {p}-*: its run is still going")
    if not removed["netns"] and not removed["links"]:
        typer.echo("nothing to clean")


def calibrate(
    output: Path = typer.Option(Path("cost-profile.json"), "--output", "-o", help="cost profile to write"),
    seconds: float = typer.Option(1.0, "--seconds", help="seconds per measurement point"),
    sizes: str = typer.Option("64,512,1472", "--sizes", help="UDP payload sizes, comma-separated"),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="then compare the DES's prediction with a real run of each path"),
    as_json: bool = typer.Option(False, "--json", help="print the measurements as JSON lines"),
    repeat: int = typer.Option(2, "--repeat", help="runs per point; the least disturbed one counts (TCP: the "
                               "median; the TCP check takes at least 3)"),
    writes: str = typer.Option("32768,131072", "--writes",
                               help="TCP write sizes of the TCP fit, comma-separated ('' or 0: no TCP fit)"),
    paths: str = typer.Option("", "--paths", help="only these paths, comma-separated (default: all; the TCP fit "
                              "uses loopback and veth, the TCP check veth, bridge and vxlan)"),
    check_seconds: float = typer.Option(3.0, "--check-seconds", help="seconds per real tcp_stream of the check"),
) -> None:
    """Measure this machine's stack costs on real namespaces and fit a cost profile for --cost-profile."""
    from .engines.netns.calibrate import CalibrationError, calibrate as do_calibrate
    from .engines.netns.lab import Interrupted
    from .engines.netns.preflight import Unavailable

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        _err(f"--sizes: expected comma-separated integers, got {sizes!r}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if not size_list or any(s < 12 or s > 65507 for s in size_list) or seconds <= 0 or not 1 <= repeat <= 20:
        _err("--sizes: payloads between 12 and 65507 bytes; --seconds: positive; --repeat: 1 to 20")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        write_list = [int(s) for s in writes.split(",") if s.strip() and int(s) != 0]
    except ValueError:
        _err(f"--writes: expected comma-separated integers, got {writes!r}")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    from .engines.netns.calibrate import PATHS

    path_list = tuple(p.strip() for p in paths.split(",") if p.strip()) or PATHS
    bad = [p for p in path_list if p not in PATHS]
    if bad or any(not 1 <= w <= 1 << 24 for w in write_list) or check_seconds <= 0:
        _err(f"--paths: among {', '.join(PATHS)}; --writes: 1 byte to 16 MiB; --check-seconds: positive")
        raise typer.Exit(EXIT_BAD_INPUT)
    try:
        report = do_calibrate(output, seconds_per_point=seconds, sizes=size_list, check=check, repeat=repeat,
                              say=lambda m: _err(f"calibrate: {m}"), paths=path_list, writes=write_list,
                              check_seconds=check_seconds)
    except Unavailable as e:
        _err(f"simnet: netns engine unavailable: {e}")
        raise typer.Exit(EXIT_MISSING) from None
    except CalibrationError as e:
        _err(f"simnet: calibration failed: {e}")
        raise typer.Exit(EXIT_FAIL) from None
    except Interrupted as e:
        _err(f"interrupted ({e.args[0]}): everything the calibration created was removed")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        for r in report["points"]:
            typer.echo(json.dumps(r))
        for r in report.get("check", []):
            typer.echo(json.dumps({"check": True, **r}))
        for r in report.get("tcp_points", []):
            typer.echo(json.dumps({"tcp": True, **r}))
        for r in report.get("tcp_check", []):
            typer.echo(json.dumps({"tcp_check": True, **r}))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console(width=max(Console().width, 110))
    t = Table(title="measured: sender CPU time per datagram (the whole path up to the receiving socket)")
    for col in ("path", "payload", "packets", "µs/packet measured", "µs/packet fitted"):
        t.add_column(col, justify="left" if col == "path" else "right")
    for r in report["points"]:
        t.add_row(r["path"], str(r["payload"]), f"{r['packets']:,}", f"{r['us_per_packet']:.3f}",
                  f"{r['fit_us_per_packet']:.3f}")
    con.print(t)
    if report.get("check"):
        c = Table(title="CPU-bound UDP sender: the DES with the new profile vs a real run right after")
        for col in ("path", "payload", "predicted", "measured", "error"):
            c.add_column(col, justify="left" if col == "path" else "right")
        for r in report["check"]:
            c.add_row(r["path"], str(r["payload"]), f"{r['predicted_pps']:,.0f} pkt/s",
                      f"{r['measured_pps']:,.0f} pkt/s", f"{r['error']:+.1%}")
        con.print(c)
    if report.get("tcp_points"):
        t = Table(title="measured: TCP stream, CPU time per byte delivered on the writer's and the sink's CPU")
        for col in ("path", "write", "Gbit/s", "writer ns/B", "fitted", "sink ns/B", "fitted", "DES Gbit/s"):
            t.add_column(col, justify="left" if col == "path" else "right")
        for r in report["tcp_points"]:
            t.add_row(r["path"], str(r["write"]), f"{r['gbps']:.2f}", f"{r['send_ns_per_byte']:.4f}",
                      f"{r['fit_send_ns_per_byte']:.4f}", f"{r['recv_ns_per_byte']:.4f}",
                      f"{r['fit_recv_ns_per_byte']:.4f}", f"{r['des_gbps']:.2f}")
        con.print(t)
    if report.get("tcp_check"):
        c = Table(title="tcp_stream (128 KiB writes): the DES with the new profile vs the netns engine's agents "
                        "and the C probes right after (medians of the real runs)")
        for col in ("path", "DES Gbit/s", "real Gbit/s", "error", "real runs", "C probes Gbit/s", "error"):
            c.add_column(col, justify="left" if col == "path" else "right")
        for r in report["tcp_check"]:
            probe = (f"{r['probe_gbps']:.2f}", f"{r['probe_error']:+.1%}") if "probe_gbps" in r else ("", "")
            c.add_row(r["path"], f"{r['predicted_gbps']:.2f}", f"{r['measured_gbps']:.2f}", f"{r['error']:+.1%}",
                      " ".join(f"{g:.1f}" for g in r["runs_gbps"]), *probe)
        con.print(c)
    con.print(f"wrote {output} (use it with: simnet run FILE --cost-profile {output})")


def register(app: typer.Typer) -> None:
    app.command()(compare)
    app.command()(calibrate)
    app.add_typer(netns_app, name="netns")
