"""Seeded, named random streams and derived identifiers.

One scenario seed; each element draws from its own stream, derived from the seed and the
element's name, so adding an element never perturbs the streams of the others. Identifiers
(MAC addresses, veth names) are derived from names, never drawn.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

__all__ = ["RngStreams", "stream", "mac_for", "hex_id"]


def stream(seed: int, name: str) -> np.random.Generator:
    """The random stream of element ``name`` under scenario ``seed``."""
    return np.random.default_rng([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, zlib.crc32(name.encode())])


class RngStreams:
    """Hands out one cached stream per name."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, np.random.Generator] = {}

    def __call__(self, name: str) -> np.random.Generator:
        g = self._streams.get(name)
        if g is None:
            g = self._streams[name] = stream(self.seed, name)
        return g


def mac_for(name: str) -> str:
    """A stable, locally administered unicast MAC address for an interface name.

    Docker 28 draws container MACs at random (``GenerateRandomMAC``); simnet derives them from
    the name instead so that two runs produce identical frames.
    """
    h = hashlib.blake2b(name.encode(), digest_size=5).digest()
    return "02:" + ":".join(f"{b:02x}" for b in h)


def hex_id(name: str, n: int) -> str:
    """``n`` stable hex characters derived from ``name`` (Docker uses random IDs)."""
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()[:n]
