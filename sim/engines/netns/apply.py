"""Running a plan with iproute2: argument lists, ``ip -json`` answers, stop at the first failure.

:func:`apply_plan` runs the plan's operations one by one (never through a shell). The first
command that fails raises :class:`ApplyError` naming the operation, its position and what
the command said, after every namespace created so far has been removed, so a failed build
leaves nothing behind. :func:`wait_carrier` then waits until the links the plan brings up
are really up: the kernel activates a device's qdisc and sets its operstate from the
linkwatch work queue (up to a second after ``ip link set up`` for a bridge), and until then
it drops what is sent through it.

Validation: tests/engines/netns/test_netns.py (a failing operation is named and leaves no
namespace; the topology after apply equals ``Plan.expected()``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from .plan import NetnsAdd, Op, Plan

__all__ = ["ApplyError", "run", "ip_json", "apply_plan", "wait_carrier", "remove_netns", "netns_list"]

Guard = Callable[[], contextlib.AbstractContextManager]


class ApplyError(Exception):
    """An operation of the plan failed (the message names it)."""


def run(argv: list[str], *, timeout_s: float = 30.0, check: bool = True,
        stderr_fails: bool = False) -> subprocess.CompletedProcess:
    """Run one command (argument list); raise ApplyError with its stderr when ``check`` and it fails.

    ``stderr_fails``: anything on stderr is a failure too (``sysctl -w`` exits 0 on a refused key).
    """
    try:
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        raise ApplyError(f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise ApplyError(f"{' '.join(argv)}: no answer within {timeout_s:g} s") from None
    if check and (cp.returncode != 0 or (stderr_fails and cp.stderr.strip())):
        raise ApplyError(f"{' '.join(argv)}: {(cp.stderr or cp.stdout).strip() or f'exit {cp.returncode}'}")
    return cp


def ip_json(*args: str) -> Any:
    """``ip -json ARGS``, parsed (an empty answer is an empty list)."""
    out = run(["ip", "-json", *args]).stdout.strip()
    return json.loads(out) if out else []


def netns_list() -> list[str]:
    """Names of the namespaces in /run/netns (``ip netns list``)."""
    return [e["name"] for e in ip_json("netns", "list")]


def remove_netns(names: list[str]) -> list[str]:
    """Kill every process inside, then delete each namespace that exists; returns those deleted."""
    existing = set(netns_list())
    gone = []
    for ns in reversed(names):
        if ns not in existing:
            continue
        kill_netns_pids(ns)
        cp = run(["ip", "netns", "del", ns], check=False)
        if cp.returncode == 0:
            gone.append(ns)
    return gone


def kill_netns_pids(ns: str) -> None:
    """SIGKILL the processes left inside namespace ``ns`` (only agents of the run that owns it)."""
    import os
    import signal

    cp = run(["ip", "netns", "pids", ns], check=False)
    for tok in cp.stdout.split():
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(tok), signal.SIGKILL)


@contextlib.contextmanager
def _no_guard() -> Iterator[None]:
    yield


def apply_plan(plan: Plan, *, created: list[str], guard: Guard = _no_guard,
               progress: Callable[[int, int, Op], None] | None = None) -> None:
    """Run every operation of ``plan``; namespaces go into ``created`` before they are made.

    On the first failure, the namespaces in ``created`` are removed and ApplyError names the step.
    """
    n = len(plan.ops)
    for i, op in enumerate(plan.ops, 1):
        if progress is not None:
            progress(i, n, op)
        try:
            with guard():
                if isinstance(op, NetnsAdd):
                    created.append(op.ns)
                run(op.argv(), stderr_fails=op.stderr_fails)
        except ApplyError as e:
            with guard():
                remove_netns(list(created))
            created.clear()
            raise ApplyError(f"step {i}/{n} ({op.label()}) failed: {e}; everything created so far was removed") \
                from None


def _link_state(ns: str) -> dict[str, dict[str, Any]]:
    return {e["ifname"]: e for e in ip_json("-n", ns, "-details", "link", "show")}


def wait_carrier(plan: Plan, timeout_s: float = 10.0) -> None:
    """Wait until every link the plan expects up has operstate UP (bridge ports: forwarding)."""
    deadline = time.monotonic() + timeout_s
    pending = list(plan.carrier)
    while True:
        states: dict[str, dict[str, dict[str, Any]]] = {}
        still = []
        for ns, ifname in pending:
            kns = plan.netns[ns]
            if kns not in states:
                states[kns] = _link_state(kns)
            e = states[kns].get(ifname)
            ok = e is not None and e.get("operstate") == "UP"
            slave = (e or {}).get("linkinfo", {}).get("info_slave_data")
            if ok and slave is not None and slave.get("state") not in (None, "forwarding"):
                ok = False
            if not ok:
                still.append((ns, ifname))
        if not still:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{ns}:{i}" for ns, i in still[:5])
            raise ApplyError(f"links did not come up within {timeout_s:g} s: {names}")
        pending = still
        time.sleep(0.02)
