"""Send and receive buffers: Linux 6.18's values, and the throughput a fixed buffer allows.

Values checked against the reference kernel (getsockopt on real sockets): a new socket's
SO_SNDBUF is tcp_wmem[1] = 16384; at ESTABLISHED a CUBIC socket's becomes 2 × 10 × 2304 =
46080 (2304 = roundup_pow_of_two(1460 + 256 + 320) + 256); SO_SNDBUF = x gives 2x, clamped
to 2 × wmem_max, floored at 4608.

Throughput limits are derived here from the buffer rules alone, independently of the model:

* **Send buffer**: a TCP skb holds up to 65160 bytes (45 × 1448) and costs its payload plus
  832 bytes (``SKB_TRUESIZE(MAX_TCP_HEADER)``, as ``ss -m`` shows on 6.18), and its memory
  returns only when it is ACKed, so the usable buffer is the payload ``sk_sndbuf`` holds in
  full-size skbs, ``sk_sndbuf × 65160 / 65992``, and goodput = usable / RTT. (The writer's
  overshoot by up to one skb and its sleep until the queue is below 2/3 of the buffer
  (``sk_stream_write_space``) roughly cancel with GRO's large ACKs refilling the buffer
  several times per round trip; at a long RTT the burst's serialisation is negligible.)
* **Receive window**: the window is ``sk_rcvbuf × scaling_ratio / 256``, the ratio being the
  payload/truesize of received skbs (a NIC's 2 KiB buffers: 1448 / 2304 → 160/256).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_yaml

PAIR = """
name: buf
hosts:
  h1: {{cpus: 2}}
  h2: {{cpus: 2}}
links:
  - {{endpoints: [h1, h2], delay: {delay}}}
workloads:
  - {{name: f, app: {app}, from: h1, to: h2, port: 5001, {what}{opts}}}
run: {{sample: 1ms}}
"""


def usable_send_buffer(sndbuf: int, skb_bytes: int = 65160, head: int = 832) -> int:
    """The payload ``sndbuf`` bytes of send buffer hold in full-size TSO skbs (payload + 832)."""
    return sndbuf * skb_bytes // (skb_bytes + head)


def steady_goodput(res, t0: float) -> float:
    ts = [r for r in res.timeseries if r["t_s"] >= t0]
    return (ts[-1]["bytes_acked"] - ts[0]["bytes_acked"]) * 8 / (ts[-1]["t_s"] - ts[0]["t_s"])


def test_linux_default_values():
    res = run_yaml(PAIR.format(delay="1ms", app="tcp_bulk", what="size: 1000", opts=""))
    c = res.flow("f").tcp["client"]
    assert c["sk_sndbuf"] == 46080 and c["sk_rcvbuf"] == 131072
    assert c["tcpi_snd_mss"] == 1448 and c["tcpi_advmss"] == 1448 and c["tcpi_rcv_wscale"] == 10


@pytest.mark.parametrize("req,want", [(100000, 200000), (10 ** 9, 8388608), (1, 4608)])
def test_so_sndbuf_is_doubled_and_clamped(req, want):
    res = run_yaml(PAIR.format(delay="1ms", app="tcp_bulk", what="size: 1000", opts=f", sndbuf: {req}"))
    assert res.flow("f").tcp["client"]["sk_sndbuf"] == want


def test_sndbuf_autotuning_grows_with_cwnd_up_to_wmem_max():
    res = run_yaml(PAIR.format(delay="1ms", app="tcp_bulk", what="size: 40MB", opts=""))
    c = res.flow("f").tcp["client"]
    assert c["sk_sndbuf"] == 4194304              # tcp_wmem[2]
    sizes = sorted({r["sndbuf"] for r in res.timeseries})
    assert sizes[0] == 46080 and all(s % 2304 == 0 or s == 4194304 for s in sizes)


def test_fixed_send_buffer_limits_goodput_to_usable_buffer_over_rtt():
    rtt = 0.02
    res = run_yaml(PAIR.format(delay="10ms", app="tcp_stream", what="duration: 2s", opts=", sndbuf: 256KiB"))
    c = res.flow("f").tcp["client"]
    assert c["sk_sndbuf"] == 524288
    usable = usable_send_buffer(524288)
    got = steady_goodput(res, 0.8)
    assert got == pytest.approx(usable * 8 / rtt, rel=0.05)


def test_fixed_receive_buffer_limits_goodput_to_window_over_rtt():
    rtt = 0.02
    res = run_yaml(PAIR.format(delay="10ms", app="tcp_stream", what="duration: 2s", opts=", rcvbuf: 256KiB"))
    s = res.flow("f").tcp["server"]
    assert s["sk_rcvbuf"] == 524288
    ratio = (1448 << 8) // 2304                    # payload/truesize of a NIC's 2 KiB receive buffers
    window = 524288 * ratio >> 8
    assert s["tcpi_snd_wnd"] >= 0 and abs(s["tcpi_rcv_wnd"] - window) <= 1024
    got = steady_goodput(res, 0.8)
    assert got == pytest.approx(window * 8 / rtt, rel=0.05)


def test_receive_autotuning_grows_the_window():
    res = run_yaml(PAIR.format(delay="10ms", app="tcp_stream", what="duration: 1s", opts=""))
    s = res.flow("f").tcp["server"]
    assert s["sk_rcvbuf"] > 131072 * 4
    wnd = [r["snd_wnd"] for r in res.timeseries]
    assert wnd[0] <= 65536 and max(wnd) > 1_000_000
    assert np.all(np.diff([r["sndbuf"] for r in res.timeseries]) >= 0)


def test_full_send_buffer_blocks_the_writer_and_wakes_it_at_two_thirds(monkeypatch):
    """tcp_sendmsg_locked checks sk_stream_memory_free (sk_wmem_queued < sk_sndbuf) only when it
    needs a new skb: data is appended to the unsent tail skb without a check, so the queue
    overshoots (by the tail being filled, and by the remainders tso_fragment leaves there);
    the writer blocks with the queue at or over the buffer. sk_stream_write_space wakes it
    once the free space is at least half of what is queued: queued ≤ 2/3 of the buffer."""
    from simnet.models.linux.tcp.sock import TcpSock

    blocked, woken = [], []
    send, space = TcpSock.sendmsg, TcpSock.new_space

    def sendmsg(self, nbytes, mark=None):
        got = send(self, nbytes, mark)
        if 0 <= got < nbytes:
            blocked.append((self.wmem_queued, self.sndbuf))
        return got

    def new_space(self):
        was = self.nospace
        space(self)
        if was and not self.nospace:
            woken.append((self.wmem_queued, self.sndbuf))

    monkeypatch.setattr(TcpSock, "sendmsg", sendmsg)
    monkeypatch.setattr(TcpSock, "new_space", new_space)
    res = run_yaml(PAIR.format(delay="5ms", app="tcp_bulk", what="size: 4MB, write: 16KiB",
                               opts=", sndbuf: 64KiB"))
    assert res.flow("f").bytes_delivered == 4_000_000
    assert len(blocked) > 10 and len(woken) >= len(blocked) - 1
    for q, buf in blocked:
        assert buf == 131072 and q >= buf
    for q, buf in woken:
        assert 3 * q <= 2 * buf
