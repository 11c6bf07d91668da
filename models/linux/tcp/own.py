"""Socket ownership: ``lock_sock``/``release_sock`` and the socket backlog
(net/core/sock.c ``__release_sock``, net/ipv4/tcp_ipv4.c ``tcp_add_backlog``), and how
simnet keeps everything done to one socket in time order across CPUs.

A system call owns the socket (``lock_sock``) for its duration; segments that
arrive meanwhile wait in the socket's backlog and are processed when it returns
(``release_sock``), as ``tcp_v4_rcv`` does. A CPU segment runs at once while its clock
advances with its cost, so two CPUs can reach one socket out of time order: a softirq whose
virtual time is ahead of the clock, on a socket whose owner could still reach it earlier
(its CPU is free before then and the program is not asleep on this socket), hands its
segment to the backlog at its own time, and a CPU arriving behind another
CPU's work on the socket waits for it (``socket_lock``) — everything done to a socket happens
in time order.

The owning program's wake-ups (``sk_data_ready``, ``sk_write_space``) are here too: on the
program's own CPU they need no event — its next call is queued behind the running segment —
and from another CPU they happen at that segment's virtual time.

Scope and limitations: ``bh_lock_sock`` is a wait for the other CPU's virtual time, not a
spin that costs CPU in Linux's way; timers that fire on the owner's CPU are not checked
against a softirq ahead in time (a rare overlap of microseconds); the backlog has no
``sk_rcvbuf + sk_sndbuf`` limit (``TCPBacklogDrop`` never counts).
Validation: tests/models/linux/tcp/test_input.py and tests/results/test_pcap_tcp.py (segments
on the wire in order), the CPU figures in models/linux/cpu.py (a small-write stream over a
veth at Linux's rate).
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["TcpOwner"]


class TcpOwner:
    """Ownership methods of TcpSock (state lives in sock.py)."""

    def wake_user(self, cb: Callable[[], None]) -> None:
        """sk_data_ready()/sk_write_space(): wake the program. On its own CPU the wake-up needs
        no event: the program's next call is queued behind the running segment; from another
        CPU it happens at this segment's virtual time."""
        seg = self.ctx.seg
        if seg is not None and seg.cpu is self.cpu and not self.owned:
            cb()
        else:                           # (inside the program's own call: after it returns)
            self.ctx.defer(_call, cb)

    def sync(self, skb: Any = None) -> None:
        """bh_lock_sock()/lock_sock(): one CPU at a time works on a socket.

        A CPU segment runs at once at its start while its clock advances with its cost, so a
        CPU can reach a socket at an earlier virtual time than another CPU that already worked
        on it; it then waits (spins) until the socket's virtual time, so that everything done
        to the socket happens in time order. ``skb`` books that wait (``socket_lock``)."""
        seg = self.ctx.seg
        if seg is None:
            return
        t = seg.start + seg.cost
        vt = self.vtime
        if t < vt:
            seg.cost += vt - t
            if skb is not None:
                acct = skb.acct
                if acct is not None:
                    acct["socket_lock"] = acct.get("socket_lock", 0.0) + (vt - t)
                skb.t_mark = vt

    def release(self) -> None:
        seg = self.ctx.seg
        if seg is not None:
            t = seg.start + seg.cost
            if t > self.vtime:
                self.vtime = t

    def lock(self) -> None:
        """lock_sock() at the start of an application's call."""
        self.sync()
        self.owned = True

    def own(self) -> None:
        """release_sock() at the end of an application's call: process what arrived meanwhile
        (the backlog), then the socket is owned until now."""
        if self.backlog:
            self._drain_backlog()
        self.owned = False
        seg = self.ctx.seg
        if seg is not None:
            self.owned_until = seg.start + seg.cost
            self.release()

    def add_backlog(self, skb: Any) -> None:
        """tcp_add_backlog(): processed by the owner when its call returns."""
        self.backlog.append(skb)
        if self.owned:
            return                      # release_sock() at the end of the call drains it
        if not self.backlog_pending:
            self.backlog_pending = True
            t = skb.t_mark
            self.ctx.call_at(t if t > self.owned_until else self.owned_until, self._backlog_due, None)

    def _backlog_due(self, _arg: Any) -> None:
        self.cpu.submit_softirq(self._backlog_softirq, None)

    def _backlog_softirq(self, _arg: Any) -> None:
        self.backlog_pending = False
        if self.backlog:
            self._drain_backlog()

    def _drain_backlog(self) -> None:
        """__release_sock(): the queued segments, in order (new ones join the queue)."""
        q = self.backlog
        seg = self.ctx.seg
        self.sync()
        while q:
            if seg is not None and q[0].t_mark > seg.start + seg.cost:
                # arrived after this point of the owner's time: the softirq takes it then
                if not self.backlog_pending:
                    self.backlog_pending = True
                    self.ctx.call_at(q[0].t_mark, self._backlog_due, None)
                break
            skb = q.popleft()
            if seg is not None:
                t = seg.start + seg.cost
                acct = skb.acct
                if acct is not None and t > skb.t_mark:
                    acct["socket_backlog"] = acct.get("socket_backlog", 0.0) + (t - skb.t_mark)
                if t > skb.t_mark:
                    skb.t_mark = t
            self.rcv(skb)
        self.release()


def _call(fn: Callable[[], None]) -> None:
    fn()
