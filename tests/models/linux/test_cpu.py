"""The CPU model (models.linux.cpu.Cpu): softirq work first, FIFO within a class, and the
hand-off to ksoftirqd when softirqs keep a process waiting.

Computed here, independently of the model: with every segment of a known cost and a known
arrival time, the order and start time of each segment follow by hand:

* an idle CPU runs a segment at once; a busy one queues it; softirq work goes first;
* softirq work arriving faster than the CPU serves it keeps a waiting process off the CPU for
  ``MAX_SOFTIRQ_TIME_S`` (counted from the first segment boundary at which the process
  waited), after which the two share the CPU: one process segment, then softirq segments
  until softirq has had as much CPU time as the process, and so on;
* when the softirq work stops, the process runs without waiting.
"""

from __future__ import annotations

import math

import pytest

from simnet.kernel import SimContext
from simnet.models.linux.cpu import MAX_SOFTIRQ_TIME_S, ZERO_COSTS, Cpu

US = 1e-6


def burn(cost_s: float, log: list, tag: str):
    def fn(ctx: SimContext) -> None:
        log.append((tag, ctx.env.now))
        ctx.seg.cost += cost_s
    return fn


def make() -> tuple[SimContext, Cpu]:
    ctx = SimContext(1)
    return ctx, Cpu(ctx, "cpu0", ZERO_COSTS)


def test_softirq_work_goes_before_waiting_process_work():
    ctx, cpu = make()
    log: list = []
    ctx.call_at(0.0, lambda _a: cpu.submit(burn(10 * US, log, "p1"), ctx))
    ctx.call_at(1 * US, lambda _a: cpu.submit(burn(10 * US, log, "p2"), ctx))
    ctx.call_at(2 * US, lambda _a: cpu.submit_softirq(burn(5 * US, log, "s1"), ctx))
    ctx.env.run(until=1.0)
    assert [t for t, _ in log] == ["p1", "s1", "p2"]
    assert [round(t / US, 9) for _, t in log] == [0.0, 10.0, 15.0]


def overload(soft_cost_s: float, soft_every_s: float, soft_until_s: float, proc_cost_s: float, proc_n: int,
             proc_at_s: float):
    """Softirq segments arriving every ``soft_every_s`` until ``soft_until_s``; a process that
    runs ``proc_n`` back-to-back segments from ``proc_at_s`` (each resubmits the next)."""
    ctx, cpu = make()
    log: list = []

    def soft(k: int) -> None:
        cpu.submit_softirq(burn(soft_cost_s, log, "s"), ctx)
        if (k + 1) * soft_every_s < soft_until_s:
            ctx.call_at((k + 1) * soft_every_s, soft, k + 1)

    def proc_step(left: int):
        def fn(c: SimContext) -> None:
            log.append(("p", c.env.now))
            c.seg.cost += proc_cost_s
            if left > 1:
                cpu.submit(proc_step(left - 1), c)
        return fn

    ctx.call_at(0.0, soft, 0)
    ctx.call_at(proc_at_s, lambda _a: cpu.submit(proc_step(proc_n), ctx))
    ctx.env.run(until=1.0)
    return log


def test_softirqs_hand_over_to_ksoftirqd_after_max_softirq_time():
    c = 10 * US                                        # every softirq segment; they arrive every 5 µs
    log = overload(c, 5 * US, 0.020, c, 400, proc_at_s=0.1e-3 + 3 * US)
    procs = [t for tag, t in log if tag == "p"]
    # the process waits from the first boundary after it was queued (the segment running then
    # ends at 110 µs); the first boundary at least MAX_SOFTIRQ_TIME_S later is its turn
    first_wait = math.ceil((0.1e-3 + 3 * US) / c) * c
    turn = math.ceil(round((first_wait + MAX_SOFTIRQ_TIME_S) / c, 6)) * c
    assert procs[0] == pytest.approx(turn, abs=1e-12)
    # then equal shares: with equal segment costs, process and softirq alternate
    assert len(procs) == 400 and procs[-1] < 0.020       # the process finished inside the overload
    seq = [tag for tag, t in log if turn <= t < procs[-1]]
    assert seq[:6] == ["p", "s", "p", "s", "p", "s"]
    n = len(seq)
    assert seq.count("p") == pytest.approx(n / 2, abs=1)


def test_unequal_costs_share_cpu_time_not_turns():
    # process segments cost 3× a softirq segment: CPU time, not turns, is shared equally
    c = 10 * US
    log = overload(c, 5 * US, 0.030, 3 * c, 300, proc_at_s=0.0)
    procs = [t for tag, t in log if tag == "p"]
    assert len(procs) == 300 and procs[-1] < 0.030       # the process finished inside the overload
    window = [(tag, t) for tag, t in log if procs[0] <= t < procs[-1]]
    busy_p = sum(3 * c for tag, _ in window if tag == "p")
    busy_s = sum(c for tag, _ in window if tag == "s")
    assert busy_p == pytest.approx(busy_s, rel=0.02)


def test_without_a_waiting_process_softirqs_keep_the_cpu_and_the_clock_restarts():
    # softirq overload for 5 ms with nobody waiting, then a process arrives: it still waits the
    # full MAX_SOFTIRQ_TIME_S (the clock starts when it starts waiting), not zero
    c = 10 * US
    t_arrive = 5e-3 + 3 * US
    log = overload(c, 5 * US, 0.020, c, 10, proc_at_s=t_arrive)
    first_wait = math.ceil(t_arrive / c) * c
    turn = math.ceil(round((first_wait + MAX_SOFTIRQ_TIME_S) / c, 6)) * c
    assert next(t for tag, t in log if tag == "p") == pytest.approx(turn, abs=1e-12)


def test_process_runs_at_once_when_the_softirq_work_stops():
    c = 10 * US
    log = overload(c, 5 * US, 1e-3, c, 50, proc_at_s=0.0)
    procs = [t for tag, t in log if tag == "p"]
    softs = [t for tag, t in log if tag == "s"]
    last_soft_end = softs[-1] + c
    after = [t for t in procs if t >= last_soft_end]
    assert after, "the process ran on after the softirq work"
    # back to back once the softirq work is done: no gaps
    assert all(b - a == pytest.approx(c, abs=1e-12) for a, b in zip(after, after[1:]))
