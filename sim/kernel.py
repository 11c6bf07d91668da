"""The simulation kernel: a thin layer over ``simpy.Environment``.

Everything one run needs hangs off a :class:`SimContext` (the environment, the tracer, the
random streams); there are no globals, so two runs can live side by side in one notebook.

simpy already is the event loop. This module adds only what simnet needs on top of it:

* :meth:`SimContext.call_at` / :meth:`SimContext.call_later`: schedule a plain callback with
  one argument. Most of the network moves packets by callbacks, not by generator processes:
  a callback costs one heap entry, a process resumption costs several.
* :class:`Timer`: a re-armable, cancellable timer (simpy events cannot be cancelled; a timer
  ignores firings of stale generations, which is what ``mod_timer``/``del_timer`` amount to).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import simpy
from simpy.events import NORMAL, Event

from .rng import RngStreams
from .trace import Tracer

__all__ = ["SimContext", "Timer", "Call"]


def _fire(ev: "Call") -> None:
    ev.fn(ev._value)


class Call(Event):
    """A pre-triggered simpy event that calls ``fn(arg)`` when it comes due."""

    def __init__(self, env: simpy.Environment, fn: Callable[[Any], None], arg: Any) -> None:
        # Bypasses Event.__init__: the event is born triggered (ok, value=arg).
        self.env = env
        self.fn = fn
        self.callbacks = [_fire]
        self._value = arg
        self._ok = True


class SimContext:
    """All state of one simulation run.

    Parameters
    ----------
    seed:
        The scenario's seed; every random stream derives from it and a stream name.
    env:
        The simpy environment; a fresh one when omitted.
    """

    def __init__(self, seed: int, env: simpy.Environment | None = None, tracer: Tracer | None = None) -> None:
        self.env = env if env is not None else simpy.Environment()
        self.rng = RngStreams(seed)
        self.tracer = tracer if tracer is not None else Tracer()
        self.tracer.bind(self)
        # The CPU segment being executed right now (models.linux.cpu), or None.
        self.seg: Any = None
        self.next_skb_id = itertools.count(1).__next__

    @property
    def now(self) -> float:
        return self.env._now

    def call_later(self, delay_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` after ``delay_s``."""
        self.env.schedule(Call(self.env, fn, arg), NORMAL, delay_s)

    def call_at(self, t_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` at absolute time ``t_s`` (not before now)."""
        env = self.env
        d = t_s - env._now
        env.schedule(Call(env, fn, arg), NORMAL, d if d > 0.0 else 0.0)

    def vnow(self) -> float:
        """The current time as the running code sees it: inside a CPU segment, the segment's
        start plus the cost charged so far; elsewhere the simulation clock."""
        seg = self.seg
        return seg.start + seg.cost if seg is not None else self.env._now

    def defer(self, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Hand ``arg`` to ``fn`` at the current virtual time (see models.linux.cpu).

        Outside a segment, or when the segment has cost nothing yet, ``fn`` runs now, outside
        any segment; otherwise it runs when the CPU reaches this point of its work.
        """
        seg = self.seg
        if seg is None:
            fn(arg)
            return
        t = seg.start + seg.cost
        if t <= self.env._now:
            self.seg = None
            try:
                fn(arg)
            finally:
                self.seg = seg
            return
        self.env.schedule(Call(self.env, fn, arg), NORMAL, t - self.env._now)


class Timer:
    """A kernel-style timer: ``mod(t)`` (re)arms it for absolute time ``t``, ``cancel()`` stops it.

    Only the most recent arming fires ``fn()``; earlier ones are ignored when they come due.
    """

    __slots__ = ("ctx", "fn", "gen", "expires_s")

    def __init__(self, ctx: SimContext, fn: Callable[[], None]) -> None:
        self.ctx = ctx
        self.fn = fn
        self.gen = 0
        self.expires_s: float | None = None

    @property
    def pending(self) -> bool:
        return self.expires_s is not None

    def mod(self, t_s: float) -> None:
        self.gen += 1
        self.expires_s = t_s
        self.ctx.call_at(t_s, self._fire, self.gen)

    def mod_later(self, delay_s: float) -> None:
        """Arm for ``delay_s`` after the current virtual time."""
        self.mod(self.ctx.vnow() + delay_s)

    def cancel(self) -> None:
        self.gen += 1
        self.expires_s = None

    def _fire(self, gen: int) -> None:
        if gen != self.gen:
            return
        self.expires_s = None
        self.fn()
