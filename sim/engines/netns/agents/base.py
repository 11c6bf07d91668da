"""The agent side of the engine protocol: JSON lines on stdin/stdout, pinning, pacing."""

from __future__ import annotations

import json
import os
import select
import sys
import time
import traceback
from typing import Any

__all__ = ["Agent", "wait_until", "now"]

now = time.monotonic          # CLOCK_MONOTONIC: one clock for every namespace of the machine


_SPIN = [True]


def wait_until(t: float) -> float:
    """Wait until monotonic time ``t``; returns the time it is (never before ``t``).

    A SCHED_FIFO agent sleeps the whole way (real-time tasks have no timer slack, and a task
    that spins would starve the softirq threads of its CPU, which drain the qdiscs); otherwise
    it sleeps to 200 µs before and spins the rest (the default timer slack is 50 µs).
    """
    while True:
        d = t - now()
        if d <= 0:
            return now()
        if not _SPIN[0]:
            time.sleep(d)
        elif d > 300e-6:
            time.sleep(d - 200e-6)


class Agent:
    """One agent process: ``setup`` (before ready), ``run`` (after go), ``finish`` (after stop)."""

    def __init__(self) -> None:
        self._buf = b""
        self.cfg: dict[str, Any] = {}
        self.stop_requested = False
        self.deadline = float("inf")

    # -- protocol --------------------------------------------------------------------------
    def send(self, **msg: Any) -> None:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def _line(self, timeout_s: float | None) -> str | None:
        """One line from the engine, waiting at most ``timeout_s`` (None: forever)."""
        while b"\n" not in self._buf:
            r, _w, _x = select.select([0], [], [], timeout_s)
            if not r:
                return None
            chunk = os.read(0, 65536)
            if not chunk:
                raise SystemExit(3)       # the engine is gone
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def poll_stop(self) -> bool:
        """Whether the engine asked to stop (or the deadline passed); never blocks."""
        if not self.stop_requested:
            line = self._line(0.0)
            if line is not None and json.loads(line).get("stop"):
                self.stop_requested = True
            elif line is not None:
                self.on_message(json.loads(line))
        if now() > self.deadline:
            self.stop_requested = True
        return self.stop_requested

    def on_message(self, msg: dict[str, Any]) -> None:
        """A message other than stop between go and stop (the namespace agent answers status)."""

    def main(self) -> int:
        try:
            line = self._line(None)
            self.cfg = json.loads(line or "{}")
            self.deadline = float(self.cfg.get("deadline", now() + 600.0))
            cpu = self.cfg.get("cpu")
            if cpu is not None:
                os.sched_setaffinity(0, {int(cpu) % (os.cpu_count() or 1)})
            info = self.setup() or {}
            prio = self.cfg.get("rtprio")
            if prio:
                # SCHED_FIFO: the model's applications own their CPU; under the default scheduler a
                # receiver woken on a busy CPU waits milliseconds, and its socket overflows
                try:
                    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(prio)))
                    info["realtime"] = True
                    _SPIN[0] = False
                except OSError:
                    info["realtime"] = False
            self.send(ready=True, **info)
            while True:
                msg = json.loads(self._line(max(0.0, self.deadline - now())) or '{"stop": true}')
                if "go" in msg:
                    break
                if msg.get("stop"):
                    self.send(result=self.finish())
                    return 0
            self.t0 = float(msg["go"])
            done = self.run(self.t0)
            if done is not None:
                self.send(done=done)
            while not self.poll_stop():
                self.idle()
            self.send(result=self.finish())
            return 0
        except SystemExit:
            raise
        except BaseException as e:  # report, never hang the engine
            self.send(error=f"{type(e).__name__}: {e}", where=traceback.format_exc(limit=3))
            return 1

    # -- to override -------------------------------------------------------------------------
    def setup(self) -> dict[str, Any] | None:
        return None

    def run(self, t0: float) -> dict[str, Any] | None:
        """The work after go; a client returns what it did (sent as ``done``), a server None."""
        return None

    def idle(self) -> None:
        """Between done and stop: wait for the stop message (receivers read instead)."""
        self._wait_msg(0.05)

    def _wait_msg(self, timeout_s: float) -> None:
        line = self._line(timeout_s)
        if line is not None:
            msg = json.loads(line)
            if msg.get("stop"):
                self.stop_requested = True
            else:
                self.on_message(msg)

    def finish(self) -> dict[str, Any]:
        return {}
