"""Ownership of what a netns run creates: its prefix, its namespaces, its processes, its cleanup.

A :class:`Lab` is a context manager. On entry it draws the run's prefix (``sn`` + 5 hex
digits) and holds an exclusive ``flock`` on ``/run/simnet/<prefix>.lock`` for its whole
life; SIGINT and SIGTERM raise :class:`Interrupted` in the main thread. Every namespace is
registered *before* it is created and every agent process is tracked, so the ``finally``
of ``__exit__`` can remove all of it: agents are terminated (then killed), whatever still
runs inside a namespace is killed, and the namespaces are deleted (their devices go with
them: the run never creates a device outside its own namespaces). Signals are blocked while
one plan operation runs and during cleanup, so an interruption never leaves a half-made
object, and a second Ctrl-C cannot cut the cleanup short.

:func:`clean_stale` (``simnet netns clean``) removes the leftovers of runs that died without
cleaning up (SIGKILL, a crash of the machine's Python): namespaces whose name starts with a
prefix whose lock file nobody holds. It touches nothing without the ``sn?????-`` prefix, and
nothing of a run still alive.

Validation: tests/engines/netns/test_netns.py (50 runs interrupted at random moments by
SIGINT or SIGTERM leave no namespace or device with the prefix; clean removes a stale run's
namespaces and leaves a live run's alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .apply import ip_json, kill_netns_pids, netns_list, remove_netns, run

__all__ = ["Lab", "Interrupted", "clean_stale", "run_is_live", "LOCK_DIR", "NETNS_RE"]

LOCK_DIR = Path("/run/simnet")
NETNS_RE = re.compile(r"^(sn[0-9a-f]{5})-")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a netns run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _child_setup() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Agents get the signals the engine held back, and die with the engine even if it is SIGKILLed."""
    import ctypes

    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG


class Lab:
    """Owns a netns run's prefix, namespaces and processes; removes them all on exit."""

    def __init__(self, prefix: str | None = None, lock_dir: Path = LOCK_DIR) -> None:
        self.prefix = prefix or "sn" + secrets.token_hex(3)[:5]
        self.lock_dir = lock_dir
        self.netns: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._lock_fd: int | None = None
        self._old_handlers: dict[int, Any] = {}
        self.cleaned: list[str] = []

    # -- signals -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        """Hold SIGINT/SIGTERM while the block runs; a pending one is raised when it ends."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    # -- context -----------------------------------------------------------------------------
    def __enter__(self) -> "Lab":
        with self.critical():
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_dir / f"{self.prefix}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._lock_fd = fd
            for s in _SIGNALS:
                self._old_handlers[s] = signal.signal(s, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            self.cleanup()
        finally:
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
            self._old_handlers.clear()
            if self._lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self.lock_dir / f"{self.prefix}.lock")
                os.close(self._lock_fd)
                self._lock_fd = None
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    # -- ownership ----------------------------------------------------------------------------
    def kname(self, name: str) -> str:
        """The kernel name of the run's namespace ``name``."""
        return f"{self.prefix}-{name}"

    def spawn(self, netns: str, argv: list[str], **kw: Any) -> subprocess.Popen:
        """Start ``argv`` inside kernel namespace ``netns`` (``ip netns exec``), tracked for cleanup."""
        with self.critical():
            p = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                 start_new_session=True, preexec_fn=_child_setup, **kw)
            self.procs.append(p)
        return p

    def python(self, netns: str, module: str, *args: str) -> subprocess.Popen:
        """This interpreter running ``-m module`` inside ``netns``."""
        return self.spawn(netns, [sys.executable, "-m", module, *args])

    def cleanup(self) -> None:
        """Stop every agent, then delete every namespace of the run (idempotent)."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2.0)
            for f in (p.stdin, p.stdout, p.stderr):
                if f is not None:
                    with contextlib.suppress(OSError):
                        f.close()
        self.procs.clear()
        # anything with the prefix, including namespaces registered by someone else's apply
        mine = [ns for ns in netns_list() if ns.startswith(self.prefix + "-")]
        names = list(dict.fromkeys(self.netns + mine))
        self.cleaned = remove_netns(names)
        self.netns.clear()
        _remove_prefixed_links(self.prefix)


def _remove_prefixed_links(prefix: str) -> list[str]:
    """Devices in the machine's own namespace named with ``prefix`` (the engine makes none; defensive)."""
    gone = []
    for e in ip_json("link", "show"):
        name = e.get("ifname", "")
        if name.startswith(prefix):
            if run(["ip", "link", "del", name], check=False).returncode == 0:
                gone.append(name)
    return gone


def _held(lock: Path) -> bool:
    """Whether a live run holds ``lock`` (a missing file is not held)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def run_is_live(prefix: str, lock_dir: Path = LOCK_DIR) -> bool:
    """Whether the run with ``prefix`` is still going (its process holds the prefix's lock)."""
    return _held(lock_dir / f"{prefix}.lock")


def clean_stale(lock_dir: Path = LOCK_DIR) -> dict[str, list[str]]:
    """Remove namespaces (and root-namespace devices) of runs that are gone; returns what was removed."""
    removed: dict[str, list[str]] = {"netns": [], "links": [], "live": []}
    by_prefix: dict[str, list[str]] = {}
    for ns in netns_list():
        m = NETNS_RE.match(ns)
        if m:
            by_prefix.setdefault(m.group(1), []).append(ns)
    for e in ip_json("link", "show"):
        m = re.match(r"^(sn[0-9a-f]{5})", e.get("ifname", ""))
        if m:
            by_prefix.setdefault(m.group(1), [])
    for prefix, names in sorted(by_prefix.items()):
        lock = lock_dir / f"{prefix}.lock"
        if run_is_live(prefix, lock_dir):
            removed["live"].append(prefix)
            continue
        for ns in names:
            kill_netns_pids(ns)
        removed["netns"] += remove_netns(names)
        removed["links"] += _remove_prefixed_links(prefix)
        with contextlib.suppress(OSError):
            lock.unlink()
    return removed
