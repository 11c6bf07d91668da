"""TCP agents with real sockets: ``tcp_bulk``, ``tcp_stream`` (client and sink) and ``tcp_rr``.

They do what models/apps/tcp.py simulates, with the scenario's sizes and socket options
(``TCP_NODELAY``, ``TCP_CORK``, ``SO_SNDBUF``/``SO_RCVBUF``, ``TCP_CONGESTION``; on the
listener for a server, so the accepted socket inherits them and the SYN-ACK advertises the
window scale they imply):

* :class:`TcpBulkClient`: ``connect()``, ``size`` bytes in ``write``-byte ``write()`` calls on
  a blocking socket, then ``shutdown(SHUT_WR)`` (the FIN ``close()`` would send, without the
  reset ``close()`` sends when data is unread), reads to end of file — the server closes after
  reading everything — and reads ``TCP_INFO`` once the connection is over;
* :class:`TcpStreamClient`: the same, writing until ``duration`` has passed since connect()
  returned (iperf3 -t);
* :class:`TcpSink`: accepts one connection, reads ``read`` bytes per ``recv()`` until end of
  file, logging (time, bytes so far) per read, then ``shutdown(SHUT_WR)`` and waits (bounded)
  for its FIN to be acknowledged (state CLOSE), so its ``TCP_INFO`` counts the whole
  connection as the model's final TCP_INFO does;
* :class:`TcpRrClient` / :class:`TcpRrServer`: ``count`` transactions of ``request`` bytes
  in ``writes`` writes and ``response`` bytes, ``interval`` of think time between them.

The engine (workloads.py) turns the logs into the model's flows.csv row: one sample per
write (from its ``write()`` call to the end of the ``recv()`` that returned its last byte,
found by byte offset in the sink's read log) or per transaction (first request write to the
end of the read completing the response), per-interval throughput from the read log.

Every blocking call has a timeout (``SO_SNDTIMEO``/``SO_RCVTIMEO``) and every loop checks the
agent's deadline and the engine's stop.

``TCP_INFO`` is decoded from ``struct tcp_info`` (include/uapi/linux/tcp.h, Linux 6.x; the
fields a shorter struct from an older kernel lacks are left out) with the model's keys
(models/linux/tcp/info.py): the kernel's field names, ``tcpi_state`` and ``tcpi_ca_name`` as
names, ``sk_sndbuf``/``sk_rcvbuf``/``sk_wmem_queued`` from ``SO_MEMINFO``.

Standard library only.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from .base import Agent, now, wait_until

__all__ = ["TcpBulkClient", "TcpStreamClient", "TcpSink", "TcpRrClient", "TcpRrServer", "decode_tcp_info",
           "TCP_INFO_FIELDS"]

TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_CONGESTION = getattr(socket, "TCP_CONGESTION", 13)
TCP_CORK = getattr(socket, "TCP_CORK", 3)
SO_MEMINFO = 55
TCP_CLOSE = 7
STATE_NAMES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT",
               7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}
TICK_S = 0.2                  # longest a blocking call waits before the agent checks stop and deadline

# struct tcp_info, in order: (format, names); "_" fields are decoded and dropped
_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("8B", ("tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes", "tcpi_backoff", "tcpi_options",
            "_wscale", "_flags")),
    ("24I", ("tcpi_rto", "tcpi_ato", "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_unacked", "tcpi_sacked", "tcpi_lost",
             "tcpi_retrans", "_fackets", "tcpi_last_data_sent", "_last_ack_sent", "_last_data_recv",
             "_last_ack_recv", "tcpi_pmtu", "tcpi_rcv_ssthresh", "tcpi_rtt", "tcpi_rttvar", "tcpi_snd_ssthresh",
             "tcpi_snd_cwnd", "tcpi_advmss", "tcpi_reordering", "tcpi_rcv_rtt", "tcpi_rcv_space",
             "tcpi_total_retrans")),
    ("4Q", ("tcpi_pacing_rate", "_max_pacing_rate", "tcpi_bytes_acked", "tcpi_bytes_received")),
    ("6I", ("tcpi_segs_out", "tcpi_segs_in", "tcpi_notsent_bytes", "tcpi_min_rtt", "tcpi_data_segs_in",
            "tcpi_data_segs_out")),
    ("4Q", ("_delivery_rate", "_busy_time", "_rwnd_limited", "_sndbuf_limited")),
    ("2I", ("tcpi_delivered", "_delivered_ce")),
    ("2Q", ("tcpi_bytes_sent", "tcpi_bytes_retrans")),
    ("5I", ("tcpi_dsack_dups", "tcpi_reord_seen", "tcpi_rcv_ooopack", "tcpi_snd_wnd", "tcpi_rcv_wnd")),
)
TCP_INFO_FIELDS = tuple(n for _f, names in _LAYOUT for n in names if not n.startswith("_"))


def decode_tcp_info(raw: bytes) -> dict[str, Any]:
    """``struct tcp_info`` as the model's dict (fields beyond ``len(raw)`` are absent)."""
    out: dict[str, Any] = {}
    off = 0
    for fmt, names in _LAYOUT:
        st = struct.Struct("=" + fmt)
        if off + st.size > len(raw):
            break
        vals = st.unpack_from(raw, off)
        off += st.size
        for n, v in zip(names, vals):
            if n == "_wscale":
                out["tcpi_snd_wscale"], out["tcpi_rcv_wscale"] = v & 0xF, v >> 4
            elif not n.startswith("_"):
                out[n] = v
    if "tcpi_state" in out:
        out["tcpi_state"] = STATE_NAMES.get(out["tcpi_state"], str(out["tcpi_state"]))
    return out


def tcp_info(sock: socket.socket) -> dict[str, Any]:
    """TCP_INFO of ``sock`` with the congestion control's name and the socket's buffers."""
    info = decode_tcp_info(sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 256))
    try:
        info["tcpi_ca_name"] = sock.getsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, 16).split(b"\0")[0].decode()
    except OSError:
        pass
    try:
        mem = struct.unpack("=9I", sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))
        info["sk_sndbuf"], info["sk_rcvbuf"], info["sk_wmem_queued"] = mem[3], mem[1], mem[5]
    except OSError:
        info["sk_sndbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        info["sk_rcvbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return info


def _timeouts(sock: socket.socket, tick_s: float = TICK_S) -> None:
    """Blocking calls that give up after ``tick_s`` (EAGAIN), so loops can check stop and deadline."""
    sock.settimeout(None)
    tv = struct.pack("ll", int(tick_s), int((tick_s % 1) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def _options(sock: socket.socket, cfg: dict[str, Any]) -> None:
    """The scenario's socket options, before connect() or listen()."""
    if cfg.get("sndbuf"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(cfg["sndbuf"]))
    if cfg.get("rcvbuf"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(cfg["rcvbuf"]))
    if cfg.get("nodelay"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if cfg.get("cork"):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CORK, 1)
    if cfg.get("cc"):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_CONGESTION, str(cfg["cc"]).encode())


class _Tcp(Agent):
    """Helpers shared by the TCP agents: bounded send, receive and close."""

    sock: socket.socket

    def alive(self) -> bool:
        return not self.poll_stop()

    def send_all(self, sock: socket.socket, mv: memoryview) -> bool:
        """write() until all of ``mv`` is copied (a blocking writer); False if stopped first."""
        off, n = 0, len(mv)
        while off < n:
            try:
                off += sock.send(mv[off:])
            except (BlockingIOError, InterruptedError, TimeoutError):
                if not self.alive():
                    return False
        return True

    def recv_some(self, sock: socket.socket, buf: memoryview) -> int | None:
        """One recv(); None when it timed out (check stop), 0 at end of file."""
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return None

    def wait_closed(self, sock: socket.socket, bound_s: float = 2.0) -> None:
        """After shutdown(SHUT_WR) at end of file: until our FIN is acknowledged (state CLOSE)."""
        give_up = now() + bound_s
        while now() < give_up:
            st = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 1)[0]
            if st == TCP_CLOSE:
                return
            wait_until(now() + 0.001)

    def close_after_eof(self, s: socket.socket, st: dict[str, Any]) -> dict[str, Any]:
        """The client's close: shutdown(SHUT_WR) (the FIN), read until the server's FIN, TCP_INFO, close()."""
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors[str(e.errno)] = self.errors.get(str(e.errno), 0) + 1
        rbuf = memoryview(bytearray(65536))
        try:
            while self.alive():                  # the server closes once it has read everything
                if self.recv_some(s, rbuf) == 0:
                    break
        except OSError as e:
            self.errors[str(e.errno)] = self.errors.get(str(e.errno), 0) + 1
        st["tcp_info"] = tcp_info(s)
        st["send_errors"] = sum(self.errors.values())
        s.close()
        return st

    def connect(self, c: dict[str, Any]) -> socket.socket | None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _options(s, c)
        s.settimeout(min(max(1.0, self.deadline - now()), 130.0))
        try:
            s.connect((c["daddr"], int(c["dport"])))
        except OSError as e:
            self.errors[str(e.errno)] = self.errors.get(str(e.errno), 0) + 1
            s.close()
            return None
        _timeouts(s)
        return s


class _Writer(_Tcp):
    """tcp_bulk / tcp_stream client: connect, write, shutdown, read to end of file, TCP_INFO."""

    def setup(self) -> dict[str, Any]:
        self.errors: dict[str, int] = {}
        self.stats: dict[str, Any] = {"sent": 0}
        return {}

    def more(self, t: float, sent_bytes: int) -> int:
        """Bytes of the next write (0: done)."""
        raise NotImplementedError

    def run(self, t0: float) -> dict[str, Any]:
        c = self.cfg
        wait_until(t0 + float(c.get("start_s", 0.0)))
        stop_at = min(t0 + float(c["until_s"]) if c.get("until_s") is not None else float("inf"), self.deadline)
        t_connect = now()
        s = self.connect(c)
        st: dict[str, Any] = {"connect_s": t_connect, "sent": 0, "bytes_sent": 0, "errno": self.errors,
                              "send_errors": 0, "connect_errors": 0}
        self.stats = st
        if s is None:
            st["send_errors"] = st["connect_errors"] = 1
            return st
        self.sock = s
        st["established_s"] = self.t_est = now()
        st["sport"] = s.getsockname()[1]
        buf = memoryview(bytearray(int(c["write"])))
        calls: list[float] = []
        ends: list[int] = []
        total = 0
        while True:
            t = now()
            if t >= stop_at:
                break
            n = self.more(t, total)
            if n <= 0:
                break
            if not self.send_all(s, buf[:n]):
                break
            total += n
            calls.append(t)
            ends.append(total)
        st.update(sent=len(calls), bytes_sent=total, write_calls=calls, write_ends=ends)
        return self.close_after_eof(s, st)

    def finish(self) -> dict[str, Any]:
        return self.stats


class TcpBulkClient(_Writer):
    def more(self, t: float, sent_bytes: int) -> int:
        return min(int(self.cfg["write"]), int(self.cfg["size"]) - sent_bytes)


class TcpStreamClient(_Writer):
    def more(self, t: float, sent_bytes: int) -> int:
        return int(self.cfg["write"]) if t < self.t_est + float(self.cfg["duration_s"]) else 0


class _Server(_Tcp):
    """Listen (options on the listener), accept one connection, serve it, TCP_INFO at the end."""

    def setup(self) -> dict[str, Any]:
        self.errors = {}
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        _options(self.lsock, self.cfg)
        self.lsock.bind(("0.0.0.0", int(self.cfg["port"])))
        self.lsock.listen(8)
        self.lsock.settimeout(TICK_S)
        self.result: dict[str, Any] = {}
        return {}

    def run(self, t0: float) -> None:
        while self.alive():
            try:
                s, _a = self.lsock.accept()
            except (TimeoutError, BlockingIOError, InterruptedError):
                continue
            _timeouts(s)
            self.result["accepted_s"] = now()
            self.serve(s)
            try:
                s.shutdown(socket.SHUT_WR)
                self.wait_closed(s)
            except OSError:
                pass
            self.result["tcp_info"] = tcp_info(s)
            s.close()
            break
        self.lsock.close()
        return None

    def serve(self, s: socket.socket) -> None:
        raise NotImplementedError

    def finish(self) -> dict[str, Any]:
        return self.result


class TcpSink(_Server):
    def serve(self, s: socket.socket) -> None:
        buf = memoryview(bytearray(int(self.cfg.get("read", 131072))))
        times: list[float] = []
        cum: list[int] = []
        total = 0
        while True:
            got = self.recv_some(s, buf)
            if got is None:
                if not self.alive():
                    break
                continue
            t = now()
            if got == 0:
                self.result["eof_s"] = t
                break
            total += got
            times.append(t)
            cum.append(total)
        self.result.update(bytes_delivered=total, read_times=times, read_cum=cum)


class TcpRrServer(_Server):
    def serve(self, s: socket.socket) -> None:
        req, resp = int(self.cfg["request"]), memoryview(bytearray(int(self.cfg["response"])))
        buf = memoryview(bytearray(1 << 16))
        have = answered = 0
        while True:
            got = self.recv_some(s, buf[:max(1, req - have)] if req > have else buf)
            if got is None:
                if not self.alive():
                    break
                continue
            if got == 0:
                break
            have += got
            while have >= req > 0:
                have -= req
                if not self.send_all(s, resp):
                    break
                answered += 1
        self.result.update(requests=answered, answered=answered)


class TcpRrClient(_Tcp):
    def setup(self) -> dict[str, Any]:
        self.errors = {}
        self.stats: dict[str, Any] = {"sent": 0, "delivered": 0}
        return {}

    def run(self, t0: float) -> dict[str, Any]:
        c = self.cfg
        wait_until(t0 + float(c.get("start_s", 0.0)))
        stop_at = min(t0 + float(c["until_s"]) if c.get("until_s") is not None else float("inf"), self.deadline)
        st: dict[str, Any] = {"connect_s": now(), "sent": 0, "delivered": 0, "bytes_sent": 0, "bytes_delivered": 0,
                              "errno": self.errors, "send_errors": 0, "connect_errors": 0}
        self.stats = st
        s = self.connect(c)
        if s is None:
            st["send_errors"] = st["connect_errors"] = 1
            return st
        st["established_s"] = now()
        st["sport"] = s.getsockname()[1]
        count, request, response = int(c["count"]), int(c["request"]), int(c["response"])
        writes = max(1, min(int(c.get("writes", 1)), request or 1))
        per = request // writes
        parts = [per] * (writes - 1) + [request - per * (writes - 1)]
        req = memoryview(bytearray(request))
        rbuf = memoryview(bytearray(max(response, 1)))
        interval = float(c.get("interval_s", 0.0))
        rtts: list[float] = []
        sent_at: list[float] = []
        last = None
        nxt = now()
        for _i in range(count):
            t_first = wait_until(nxt)
            if t_first >= stop_at:
                break
            off, ok = 0, True
            for n in parts:
                ok = self.send_all(s, req[off:off + n])
                off += n
                if not ok:
                    break
            if not ok:
                break
            st["sent"] += 1
            st["bytes_sent"] += request
            have = 0
            while have < response:
                got = self.recv_some(s, rbuf[:response - have])
                if got is None:
                    if not self.alive():
                        break
                    continue
                if got == 0:
                    break
                have += got
            if have < response:
                break
            last = now()
            st["delivered"] += 1
            st["bytes_delivered"] += response
            rtts.append(last - t_first)
            sent_at.append(t_first)
            nxt = last + interval
        st.update(last_recv=last, latencies_s=rtts, sent_at=sent_at)
        return self.close_after_eof(s, st)

    def finish(self) -> dict[str, Any]:
        return self.stats
