"""Quantities with units, parsed once at load time.

Rates use tc's spelling (``bit``, ``kbit``, ``mbit``, ``gbit``, ``tbit``; SI prefixes, so
``1mbit`` is 10**6 bit/s). ``bps``, ``kbps``, ``mbps``, ``gbps`` are refused: in tc(8) they
mean *bytes* per second, which is rarely what a scenario author meant. Times accept ``ns``,
``us``, ``ms``, ``s``, ``min``. Sizes accept plain bytes, SI (``kB``, ``MB``, ``GB``) and IEC
(``KiB``, ``MiB``, ``GiB``) suffixes, and ``k``/``m``/``g`` as tc does (IEC multiples).

Internally every value is SI: seconds, bits per second, bytes.
"""

from __future__ import annotations

import math
import re

__all__ = ["UnitError", "parse_rate", "parse_time", "parse_size", "tx_time_s", "fmt_time", "fmt_rate"]


class UnitError(ValueError):
    """A quantity string that cannot be parsed; the message says what was expected."""


_NUM = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
_RATE_RE = re.compile(_NUM + r"\s*([a-zA-Z]*)$")

_RATE_UNITS = {
    "bit": 1.0,
    "kbit": 1e3,
    "mbit": 1e6,
    "gbit": 1e9,
    "tbit": 1e12,
}
_BYTE_RATE_UNITS = {"bps", "kbps", "mbps", "gbps", "tbps"}

_TIME_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
}

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}


def _split(text: object, what: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UnitError(f"expected a {what}, got a boolean")
    if isinstance(text, (int, float)):
        if text < 0:
            raise UnitError(f"{what} must not be negative: {text!r}")
        if not math.isfinite(text):
            raise UnitError(f"{what} must be finite: {text!r}")
        return float(text), ""
    if not isinstance(text, str):
        raise UnitError(f"expected a {what} string, got {type(text).__name__}")
    s = text.strip()
    if s.startswith("-"):
        raise UnitError(f"{what} must not be negative: {text!r}")
    m = re.match(_NUM + r"\s*([a-zA-Zµ]*)$", s)
    if not m:
        raise UnitError(f"cannot parse {what} {text!r}")
    return float(m.group(1)), m.group(2)


def parse_rate(text: object) -> float:
    """Parse a tc-style rate (``"10gbit"``) into bits per second.

    A bare number is bits per second. ``*bps`` units are refused as ambiguous because tc
    reads them as bytes per second.
    """
    value, unit = _split(text, "rate")
    u = unit.lower()
    if u in _BYTE_RATE_UNITS:
        raise UnitError(
            f"ambiguous rate {text!r}: in tc '{unit}' means bytes per second; "
            f"write bits per second as e.g. '{_fmt_num(value)}{u[:-3]}bit'"
        )
    if u == "":
        mult = 1.0
    elif u in _RATE_UNITS:
        mult = _RATE_UNITS[u]
    else:
        raise UnitError(f"unknown rate unit {unit!r} in {text!r} (use bit, kbit, mbit, gbit, tbit)")
    rate = value * mult
    if not math.isfinite(rate):
        raise UnitError(f"rate must be finite: {text!r}")
    if not rate > 0:
        raise UnitError(f"rate must be positive: {text!r}")
    return rate


def parse_time(text: object) -> float:
    """Parse a duration (``"50us"``, ``"2ms"``, ``"1s"``) into seconds; a bare number is seconds."""
    value, unit = _split(text, "time")
    if unit == "":
        mult = 1.0
    elif unit in _TIME_UNITS:
        mult = _TIME_UNITS[unit]
    else:
        raise UnitError(f"unknown time unit {unit!r} in {text!r} (use ns, us, ms, s, min)")
    t = value * mult
    if not math.isfinite(t):
        raise UnitError(f"time must be finite: {text!r}")
    return t


def parse_size(text: object) -> int:
    """Parse a size (``1472``, ``"64KiB"``, ``"10MB"``) into whole bytes."""
    value, unit = _split(text, "size")
    u = unit.lower()
    if u not in _SIZE_UNITS:
        raise UnitError(f"unknown size unit {unit!r} in {text!r} (use B, kB, MB, GB, KiB, MiB, GiB)")
    n = value * _SIZE_UNITS[u]
    if not math.isfinite(n):
        raise UnitError(f"size must be finite: {text!r}")
    if n != int(n):
        raise UnitError(f"size must be a whole number of bytes: {text!r}")
    return int(n)


def tx_time_s(size_bytes: int, rate_bps: float) -> float:
    """Time to serialise ``size_bytes`` at ``rate_bps``."""
    return size_bytes * 8 / rate_bps


def _fmt_num(v: float) -> str:
    return f"{v:g}"


def fmt_time(t_s: float) -> str:
    """Human-readable duration, for tables and plot labels."""
    a = abs(t_s)
    if a >= 1:
        return f"{t_s:.3g} s"
    if a >= 1e-3:
        return f"{t_s * 1e3:.3g} ms"
    if a >= 1e-6:
        return f"{t_s * 1e6:.3g} µs"
    return f"{t_s * 1e9:.3g} ns"


def fmt_rate(r_bps: float) -> str:
    """Human-readable rate in tc's spelling."""
    for unit, mult in (("tbit", 1e12), ("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if r_bps >= mult:
            return f"{r_bps / mult:.4g}{unit}"
    return f"{r_bps:.4g}bit"
