"""docker-proxy for UDP, as an agent: what models/apps/docker_proxy.py's ``UdpProxy`` simulates.

moby's ``cmd/docker-proxy`` (``udp_proxy.go``): a *frontend* socket bound to the published
port on every address of the host (``0.0.0.0:HOSTPORT``), and per client address a
*backend* socket connected to the container (``net.DialUDP``), with its own reader that
sends every reply back to that client through the frontend. Each datagram is received into
user space and sent again: two sockets, one more copy each way. The kernel's DNAT rule
still takes traffic from other machines before it reaches the frontend (PREROUTING), so the
proxy sees the host's own traffic to 127.0.0.1 and hairpin traffic from containers.

Counters, in the model's names: ``sessions`` (backend sockets opened), and per side
``rx_msgs``/``rx_bytes``/``tx_msgs``/``tx_bytes`` (``frontend``: from and to the clients;
``backend_socket``: to and from the container), payload bytes.

Standard library only.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from .base import Agent, now

__all__ = ["UdpProxyAgent"]


def _stats() -> dict[str, int]:
    return {"rx_msgs": 0, "rx_bytes": 0, "tx_msgs": 0, "tx_bytes": 0}


class UdpProxyAgent(Agent):
    """Config: ``host_port``, ``backend_addr``, ``backend_port`` (and ``cpu``, ``rtprio``)."""

    def setup(self) -> dict[str, Any]:
        c = self.cfg
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("0.0.0.0", int(c["host_port"])))
        self.front.setblocking(False)
        self.backend = (c["backend_addr"], int(c["backend_port"]))
        self.by_client: dict[tuple[str, int], socket.socket] = {}
        self.client_of: dict[int, tuple[str, int]] = {}
        self.fs, self.bs = _stats(), _stats()
        self.buf = bytearray(65536)
        return {}

    def _backend(self, client: tuple[str, int]) -> socket.socket:
        b = self.by_client.get(client)
        if b is None:
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            b.connect(self.backend)
            b.setblocking(False)
            self.by_client[client] = b
            self.client_of[b.fileno()] = client
        return b

    def _pump(self, fds: list[int]) -> None:
        buf = self.buf
        for fd in fds:
            if fd == self.front.fileno():
                while True:
                    try:
                        n, client = self.front.recvfrom_into(buf)
                    except (BlockingIOError, InterruptedError):
                        break
                    self.fs["rx_msgs"] += 1
                    self.fs["rx_bytes"] += n
                    try:
                        self._backend(client).send(memoryview(buf)[:n])
                    except OSError:
                        continue
                    self.bs["tx_msgs"] += 1
                    self.bs["tx_bytes"] += n
                continue
            client = self.client_of[fd]
            b = self.by_client[client]
            while True:
                try:
                    n = b.recv_into(buf)
                except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                    break
                self.bs["rx_msgs"] += 1
                self.bs["rx_bytes"] += n
                try:
                    self.front.sendto(memoryview(buf)[:n], client)
                except OSError:
                    continue
                self.fs["tx_msgs"] += 1
                self.fs["tx_bytes"] += n

    def _fds(self) -> list[int]:
        return [self.front.fileno(), *self.client_of]

    def idle(self) -> None:
        r, _w, _x = select.select([*self._fds(), 0], [], [], max(0.0, min(0.05, self.deadline - now())))
        self._pump([fd for fd in r if fd != 0])
        if 0 in r:
            self._wait_msg(0.0)

    def finish(self) -> dict[str, Any]:
        self._pump(self._fds())
        return {"proto": "udp", "host_port": int(self.cfg["host_port"]),
                "backend": f"{self.backend[0]}:{self.backend[1]}/udp", "sessions": len(self.by_client),
                "frontend": self.fs, "backend_socket": self.bs}
