"""The UDP tandem: every packet's end-to-end delay against a Lindley recursion.

The test computes, without the simulator, what each packet of the tandem scenario meets on
its way h1 → h2 → h3 → h4: a chain of FIFO servers — the sender's CPU (the send path's
stack stages), each NIC (serialisation of 14 + 1500 bytes + 24 bytes of L1 overhead at its
line rate), each link's propagation delay, each router's CPU (the forwarding stages) and
the receiver's CPU (receive stages, then the application's recvfrom()). For each FIFO
server, departure[i] = max(arrival[i], departure[i-1]) + service[i] (Lindley). Only the
packets' send times are taken from the run (they are the input); everything after is
computed here and must match to 1e-9 s.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import simnet
from simnet.models.linux.cpu import DEFAULT_COSTS

from conftest import SCENARIOS


def cost(*stages: str, nbytes: dict[str, int] | None = None) -> float:
    nbytes = nbytes or {}
    return sum(DEFAULT_COSTS.stages[s].per_packet_s + DEFAULT_COSTS.stages[s].per_byte_s * nbytes.get(s, 0)
               for s in stages)


def fifo(arrival: np.ndarray, service: float | np.ndarray) -> np.ndarray:
    """Departures of a FIFO server (Lindley), written as a plain loop."""
    service = np.broadcast_to(service, arrival.shape)
    dep = np.empty_like(arrival)
    last = -np.inf
    for i, (a, s) in enumerate(zip(arrival, service)):
        last = max(a, last) + s
        dep[i] = last
    return dep


def expected_delays(sent: np.ndarray, payload: int) -> np.ndarray:
    ip_len = payload + 28
    wire_bits = (14 + ip_len + 24) * 8
    prop = 10e-6
    tx = cost("syscall", "udp_sendmsg", "ip_output", "neigh_output", "dev_queue_xmit", "driver_xmit",
              nbytes={"syscall": payload})
    fwd = cost("napi_rx", "netif_receive", "ip_rcv", "ip_forward", "ip_output", "neigh_output",
               "dev_queue_xmit", "driver_xmit")
    rx = cost("napi_rx", "netif_receive", "ip_rcv", "udp_rcv")
    app = cost("syscall", "udp_recvmsg", nbytes={"udp_recvmsg": payload})
    t = fifo(sent, tx)                       # h1's CPU
    t = fifo(t, wire_bits / 1e9) + prop      # h1 eth0, 1 Gbit/s
    t = fifo(t, fwd)                         # h2's CPU
    t = fifo(t, wire_bits / 1e9) + prop      # h2 eth1, 1 Gbit/s
    t = fifo(t, fwd)                         # h3's CPU
    t = fifo(t, wire_bits / 1e8) + prop      # h3 eth1, 100 Mbit/s
    # h4's one CPU: the receive softirq, then the sink's recvfrom(). Arrivals are at least one
    # 100 Mbit/s frame time apart, far more than rx + app, so the two run back to back.
    assert np.all(np.diff(t) > rx + app)
    t = fifo(t, rx + app)
    return t - sent


def tandem(count: int, arrival: str) -> str:
    text = (SCENARIOS / "udp-tandem.yaml").read_text()
    text = text.replace("count: 200000", f"count: {count}")
    assert f"count: {count}" in text
    if arrival != "constant":
        text = text.replace("start: 10ms}", f"start: 10ms, arrival: {arrival}}}")
        assert f"arrival: {arrival}" in text
    return text


@pytest.mark.parametrize("arrival,count", [("constant", 20000), ("poisson", 20000)])
def test_tandem_delays_follow_lindley(arrival, count):
    res = simnet.run(simnet.loads(textwrap.dedent(tandem(count, arrival))))
    f = res.flow("tandem")
    assert f.packets_delivered == count
    exp = expected_delays(f.sent_s, 1472)
    np.testing.assert_allclose(f.latencies_s, exp, rtol=0, atol=1e-9)
    # and the per-layer ledger adds up to the same mean delay
    assert sum(f.layers_s.values()) / f.layer_packets == pytest.approx(f.latencies_s.mean(), rel=1e-9)
    assert f.layer_packets == count
    if arrival == "poisson":
        # queueing really happened (the 100 Mbit/s link is loaded at 0.9)
        assert f.latencies_s.max() > 10 * f.latencies_s.min()
    else:
        assert np.ptp(f.latencies_s) < 1e-9


def test_tandem_bottleneck_load_is_0_9():
    sc = simnet.load(SCENARIOS / "udp-tandem.yaml")
    w = sc.workloads[1]
    slot = (14 + 1500 + 24) * 8 / 100e6
    assert w.count == 200000 and w.payload == 1472
    assert slot / w.interval_s() == pytest.approx(0.9, abs=1e-9)
