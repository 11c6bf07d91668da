"""The namespace agent: counts ARP frames per layer-3 device and reads the namespace's counters.

One runs in every namespace of a replay, started before the workloads. It opens an
``AF_PACKET`` socket on each device it is given, with a classic BPF filter that accepts only
ARP frames (so the data path is not slowed by copies to the tap), counts what it sees by
direction and ARP operation, and on the veth ends that stand in for physical NICs also the
received frames shorter than 60 bytes (a NIC receives them padded to ETH_ZLEN and counts the
padding; a veth does not), answers ``status`` (fragments in reassembly) while the engine
waits for the network to go quiet, and on ``stop`` reports its counts and the kernel's
counters (see counters.py) — at ready (the baseline) and at the end.
"""

from __future__ import annotations

import ctypes
import select
import socket
import struct
from pathlib import Path
from typing import Any

from ..counters import frag_inuse, read_namespace
from .base import Agent, now

__all__ = ["NsAgent", "ARP_FILTER"]

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
PACKET_OTHERHOST = 3
ETH_ZLEN = 60
# ldh [12]; jeq #0x806 jt 0 jf 1; ret #0x40000; ret #0
ARP_FILTER = [(0x28, 0, 0, 12), (0x15, 0, 1, 0x0806), (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]
# ARP, or any frame shorter than ETH_ZLEN: ldh [12]; jeq #0x806 → accept; ld len; jge #60 → drop; accept
ARP_OR_SHORT_FILTER = [(0x28, 0, 0, 12), (0x15, 2, 0, 0x0806), (0x80, 0, 0, 0), (0x35, 1, 0, ETH_ZLEN),
                       (0x06, 0, 0, 0x40000), (0x06, 0, 0, 0)]


def _attach_filter(s: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    code = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(code)
    fprog = struct.pack("@HP", len(prog), ctypes.addressof(buf))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class NsAgent(Agent):
    """Config: ``devices`` (layer-3 devices: ARP frames counted) and ``nics`` (devices standing in
    for physical NICs: received frames shorter than ETH_ZLEN counted, since a NIC would have
    received them padded)."""

    def setup(self) -> dict[str, Any]:
        self.socks: dict[int, tuple[str, socket.socket]] = {}
        arp_devs = list(self.cfg.get("devices", []))
        nics = list(self.cfg.get("nics", []))
        for dev in dict.fromkeys(arp_devs + nics):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)   # protocol 0: nothing queued yet
            _attach_filter(s, ARP_OR_SHORT_FILTER if dev in nics else ARP_FILTER)
            s.bind((dev, ETH_P_ALL))
            s.setblocking(False)
            self.socks[s.fileno()] = (dev, s)
        self.count_arp = set(arp_devs)
        self.arp = {dev: {"requests_sent": 0, "replies_sent": 0, "requests_received": 0, "replies_received": 0}
                    for dev in arp_devs}
        self.short_rx = {dev: {"frames": 0, "pad_bytes": 0} for dev in nics}
        self.baseline = read_namespace()
        return {}

    def _drain(self, fds: list[int]) -> None:
        for fd in fds:
            dev, s = self.socks[fd]
            while True:
                try:
                    data, addr = s.recvfrom(128)
                except (BlockingIOError, InterruptedError):
                    break
                pkttype = addr[2]
                if dev in self.short_rx and pkttype != PACKET_OUTGOING and len(data) < ETH_ZLEN:
                    self.short_rx[dev]["frames"] += 1
                    self.short_rx[dev]["pad_bytes"] += ETH_ZLEN - len(data)
                if dev not in self.count_arp or len(data) < 22 or data[12:14] != b"\x08\x06":
                    continue
                op = int.from_bytes(data[20:22], "big")
                c = self.arp[dev]
                if pkttype == PACKET_OUTGOING:
                    key = "requests_sent" if op == 1 else "replies_sent" if op == 2 else None
                elif pkttype == PACKET_OTHERHOST:
                    key = None
                else:
                    key = "requests_received" if op == 1 else "replies_received" if op == 2 else None
                if key is not None:
                    c[key] += 1

    def _wait(self, timeout_s: float) -> None:
        fds = list(self.socks)
        r, _w, _x = select.select(fds + [0], [], [], timeout_s)
        self._drain([fd for fd in r if fd != 0])
        if 0 in r:
            self._wait_msg(0.0)

    def run(self, t0: float) -> None:
        return None

    def idle(self) -> None:
        self._wait(max(0.0, min(0.5, self.deadline - now())))

    def on_message(self, msg: dict[str, Any]) -> None:
        if msg.get("status"):
            self._drain(list(self.socks))
            self.send(status={"frag_inuse": frag_inuse(Path("/proc/net/sockstat").read_text()), "arp": self.arp})

    def finish(self) -> dict[str, Any]:
        self._drain(list(self.socks))
        return {"arp": self.arp, "short_rx": self.short_rx, "baseline": self.baseline, "final": read_namespace()}
