"""UDP agents with real sockets: the ``udp`` sender and sink, the ``udp_rr`` client and server.

They do what models/apps/udp.py simulates, with the scenario's timing and socket options:

* :class:`UdpSender`: ``count`` datagrams of ``payload`` bytes at ``start + times[i]`` (the
  engine computes the times: constant interval, or the model's Poisson draws), late rather
  than skipped when it falls behind, blocking while the send buffer is full (``SO_SNDBUF``
  as the scenario says), unconnected ``sendto()`` as the model's ``UdpSock``;
* :class:`UdpSink`: reads every datagram until told to stop (``InDatagrams`` counts reads),
  one-way latency from the sender's timestamp in the payload to the end of ``recvfrom``;
* :class:`UdpRrClient`: ``count`` transactions, one at a time, the round-trip time of each,
  ``interval`` of think time, a transaction unanswered for ``timeout`` is lost and the next
  one starts at once; late answers are read and ignored;
* :class:`UdpRrServer`: answers each request with ``response`` bytes to where it came from.

Payloads carry ``(sequence, send time)`` in their first 12 bytes (``!Id``) when they have
room, as iperf and netperf do; shorter ones carry what fits (a 4-byte sequence) or nothing.
All times are CLOCK_MONOTONIC, shared by every namespace, so one-way latencies are exact.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from .base import Agent, now, wait_until

__all__ = ["UdpSender", "UdpSink", "UdpRrClient", "UdpRrServer"]

HDR = struct.Struct("!Id")     # sequence, send time (monotonic seconds)
SEQ = struct.Struct("!I")


def _sock(cfg: dict[str, Any], port: int | None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if cfg.get("sndbuf"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(cfg["sndbuf"]))
    if cfg.get("rcvbuf"):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(cfg["rcvbuf"]))
    s.bind(("0.0.0.0", port or 0))
    return s


def _stamp(buf: bytearray, seq: int, t: float) -> None:
    if len(buf) >= HDR.size:
        HDR.pack_into(buf, 0, seq & 0xFFFFFFFF, t)
    elif len(buf) >= SEQ.size:
        SEQ.pack_into(buf, 0, seq & 0xFFFFFFFF)


class _Reader(Agent):
    """Reads its socket until stop: the sink, the server, and the client after its transactions."""

    sock: socket.socket

    def setup_reader(self) -> None:
        self.rbuf = bytearray(65536)
        self.block_50ms()
        self.read = 0
        self.read_bytes = 0

    def block_50ms(self) -> None:
        """Blocking reads that give up after 50 ms (SO_RCVTIMEO: no poll() per datagram)."""
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 50000))

    def on_datagram(self, n: int, addr: Any, t: float) -> None:
        pass

    def idle(self) -> None:
        sock, rbuf = self.sock, self.rbuf
        k = 0
        while k < 256:
            try:
                n, addr = sock.recvfrom_into(rbuf)
            except (BlockingIOError, InterruptedError, TimeoutError):
                return
            t = now()
            self.read += 1
            self.read_bytes += n
            self.on_datagram(n, addr, t)
            k += 1

    def drain(self) -> None:
        """After stop: read what is queued already (the kernel counts InDatagrams on read)."""
        self.sock.setblocking(False)
        while True:
            try:
                n, addr = self.sock.recvfrom_into(self.rbuf)
            except (BlockingIOError, InterruptedError):
                return
            self.read += 1
            self.read_bytes += n
            self.on_datagram(n, addr, now())


class UdpSender(Agent):
    def setup(self) -> dict[str, Any]:
        c = self.cfg
        self.sock = _sock(c, c.get("sport"))
        self.sock.setblocking(True)
        return {"sport": self.sock.getsockname()[1]}

    def run(self, t0: float) -> dict[str, Any]:
        c = self.cfg
        addr = (c["daddr"], int(c["dport"]))
        count, interval = int(c["count"]), float(c.get("interval_s", 0.0))
        times = c.get("times")
        start = t0 + float(c.get("start_s", 0.0))
        stop_at = t0 + float(c["until_s"]) if c.get("until_s") is not None else float("inf")
        stop_at = min(stop_at, self.deadline)
        buf = bytearray(int(c["payload"]))
        sent = nbytes = 0
        errors: dict[str, int] = {}
        first = last = None
        send = self.sock.sendto
        for i in range(count):
            t = wait_until(start + (times[i] if times is not None else i * interval))
            if t >= stop_at:
                break
            _stamp(buf, i, t)
            try:
                send(buf, addr)
            except OSError as e:
                key = str(e.errno)
                errors[key] = errors.get(key, 0) + 1
                continue
            sent += 1
            nbytes += len(buf)
            if first is None:
                first = t
            last = t
        self.stats = {"sent": sent, "bytes_sent": nbytes, "send_errors": sum(errors.values()), "errno": errors,
                      "first_send": first, "last_send": last, "sport": self.sock.getsockname()[1]}
        return self.stats

    def finish(self) -> dict[str, Any]:
        return getattr(self, "stats", {"sent": 0})


class UdpSink(_Reader):
    def setup(self) -> dict[str, Any]:
        self.sock = _sock(self.cfg, int(self.cfg["port"]))
        self.setup_reader()
        self.lat: list[float] = []
        self.sent_at: list[float] = []
        self.first = self.last = None
        return {}

    def on_datagram(self, n: int, addr: Any, t: float) -> None:
        if self.first is None:
            self.first = t
        self.last = t
        if n >= HDR.size:
            _seq, ts = HDR.unpack_from(self.rbuf, 0)
            self.lat.append(t - ts)
            self.sent_at.append(ts)

    def finish(self) -> dict[str, Any]:
        self.drain()
        return {"delivered": self.read, "bytes_delivered": self.read_bytes, "first_recv": self.first,
                "last_recv": self.last, "latencies_s": self.lat, "sent_at": self.sent_at}


class UdpRrServer(_Reader):
    def setup(self) -> dict[str, Any]:
        self.sock = _sock(self.cfg, int(self.cfg["port"]))
        self.setup_reader()
        self.resp = bytearray(int(self.cfg["response"]))
        self.answered = 0
        return {}

    def on_datagram(self, n: int, addr: Any, t: float) -> None:
        k = min(n, len(self.resp), HDR.size)
        self.resp[:k] = self.rbuf[:k]
        try:
            self.sock.sendto(self.resp, addr)
            self.answered += 1
        except OSError:
            pass

    def finish(self) -> dict[str, Any]:
        self.drain()
        return {"requests": self.read, "answered": self.answered}


class UdpRrClient(_Reader):
    def setup(self) -> dict[str, Any]:
        c = self.cfg
        self.sock = _sock(c, c.get("sport"))
        self.setup_reader()
        self.late = 0
        return {"sport": self.sock.getsockname()[1]}

    def on_datagram(self, n: int, addr: Any, t: float) -> None:
        self.late += 1          # after the last transaction, everything is late

    def run(self, t0: float) -> dict[str, Any]:
        c = self.cfg
        addr = (c["daddr"], int(c["dport"]))
        count, interval, timeout = int(c["count"]), float(c["interval_s"]), float(c["timeout_s"])
        req = bytearray(int(c["request"]))
        resp_len = int(c["response"])
        check_seq = len(req) >= SEQ.size and resp_len >= SEQ.size
        stop_at = t0 + float(c["until_s"]) if c.get("until_s") is not None else float("inf")
        stop_at = min(stop_at, self.deadline)
        sock, rbuf = self.sock, self.rbuf
        rtts: list[float] = []
        sent_at: list[float] = []
        sent = nbytes = delivered = dbytes = timeouts = 0
        errors: dict[str, int] = {}
        first = last_recv = None
        nxt = t0 + float(c.get("start_s", 0.0))
        for seq in range(count):
            t_call = wait_until(nxt)
            if t_call >= stop_at:
                break
            _stamp(req, seq, t_call)
            try:
                sock.sendto(req, addr)
            except OSError as e:
                errors[str(e.errno)] = errors.get(str(e.errno), 0) + 1
                nxt = now() + interval
                continue
            sent += 1
            nbytes += len(req)
            if first is None:
                first = t_call
            give_up = t_call + timeout
            while True:
                left = give_up - now()
                if left <= 0:
                    timeouts += 1
                    nxt = now()
                    break
                sock.settimeout(left)
                try:
                    n, _a = sock.recvfrom_into(rbuf)
                except TimeoutError:
                    continue
                t = now()
                self.read += 1
                self.read_bytes += n
                if check_seq and n >= SEQ.size and SEQ.unpack_from(rbuf, 0)[0] != (seq & 0xFFFFFFFF):
                    self.late += 1
                    continue
                delivered += 1
                dbytes += resp_len
                rtts.append(t - t_call)
                sent_at.append(t_call)
                last_recv = t
                nxt = t + interval
                break
        self.block_50ms()
        self.stats = {"sent": sent, "bytes_sent": nbytes, "delivered": delivered, "bytes_delivered": dbytes,
                      "timeouts": timeouts, "send_errors": sum(errors.values()), "errno": errors,
                      "first_send": first, "last_recv": last_recv, "sport": sock.getsockname()[1]}
        self.rtts, self.sent_at = rtts, sent_at
        return {k: v for k, v in self.stats.items()}

    def finish(self) -> dict[str, Any]:
        self.drain()
        out = dict(getattr(self, "stats", {"sent": 0, "delivered": 0}))
        out.update(latencies_s=getattr(self, "rtts", []), sent_at=getattr(self, "sent_at", []), late=self.late,
                   read=self.read)
        return out
