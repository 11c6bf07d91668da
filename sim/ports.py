"""Typed ports: how elements hand packets to each other.

An in-port is anything with ``put(skb)``. An out-port that was never wired is an
:class:`Unwired` sentinel naming its owner; the engine's wiring check rejects it before t = 0,
so a forgotten connection is a clear error instead of ``'NoneType' has no attribute 'put'``
in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["InPort", "Unwired", "WiringError", "is_wired"]


class WiringError(RuntimeError):
    """An element's out-port was used or left unconnected."""


class InPort(Protocol):
    def put(self, skb: Any) -> None: ...


@dataclass(frozen=True)
class Unwired:
    owner: str

    def put(self, skb: Any) -> None:
        raise WiringError(f"{self.owner}.out was never connected")


def is_wired(port: object) -> bool:
    return not isinstance(port, Unwired)
