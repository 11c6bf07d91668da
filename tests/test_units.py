"""simnet.units: quantities with units, and the refusals (with messages that say what to write)."""

from __future__ import annotations

import math

import pytest

from simnet.units import UnitError, fmt_rate, fmt_time, parse_rate, parse_size, parse_time, tx_time_s


# -- rates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, bps", [
    ("512bit", 512.0),
    ("1.5kbit", 1.5e3),
    ("100mbit", 100e6),
    ("10gbit", 10e9),
    ("1tbit", 1e12),
    ("10Gbit", 10e9),          # tc's units are case-insensitive
    (" 10 gbit ", 10e9),       # spaces around and between
    ("1e3kbit", 1e6),
    ("2500", 2500.0),          # a bare number is bits per second
    (1000, 1000.0),
    (2.5e6, 2.5e6),
], ids=lambda v: repr(v))
def test_parse_rate(text, bps):
    assert parse_rate(text) == pytest.approx(bps)


@pytest.mark.parametrize("text, suggestion", [
    ("100mbps", "100mbit"),
    ("500kbps", "500kbit"),
    ("2gbps", "2gbit"),
    ("8bps", "8bit"),
    ("1.5Mbps", "1.5mbit"),
])
def test_parse_rate_refuses_byte_rates(text, suggestion):
    with pytest.raises(UnitError) as ei:
        parse_rate(text)
    msg = str(ei.value)
    assert "ambiguous" in msg
    assert "bytes per second" in msg
    assert f"'{suggestion}'" in msg


@pytest.mark.parametrize("text, pattern", [
    ("10 gbits", r"unknown rate unit 'gbits'.*\(use bit, kbit, mbit, gbit, tbit\)"),
    ("3 furlongs", r"unknown rate unit 'furlongs'"),
    ("-5mbit", r"rate must not be negative: '-5mbit'"),
    ("0gbit", r"rate must be positive"),
    ("0", r"rate must be positive"),
    ("fast", r"cannot parse rate 'fast'"),
    ("mbit", r"cannot parse rate 'mbit'"),
    ("10 mbit/s", r"cannot parse rate"),
    (True, r"got a boolean"),
    (None, r"expected a rate string, got NoneType"),
    ([10], r"expected a rate string, got list"),
])
def test_parse_rate_refusals(text, pattern):
    with pytest.raises(UnitError, match=pattern):
        parse_rate(text)


def test_unit_error_is_a_value_error():
    assert issubclass(UnitError, ValueError)
    with pytest.raises(ValueError):
        parse_rate("1 parsec")


# -- times ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("10ns", 10e-9),
    ("50us", 50e-6),
    ("3µs", 3e-6),
    ("2ms", 2e-3),
    ("1s", 1.0),
    ("1.5sec", 1.5),
    ("1min", 60.0),
    ("2 ms", 2e-3),
    ("0", 0.0),
    ("1e-3", 1e-3),
    (2, 2.0),
    (0.25, 0.25),
], ids=lambda v: repr(v))
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize("text, pattern", [
    ("5 parsecs", r"unknown time unit 'parsecs' in '5 parsecs' \(use ns, us, ms, s, min\)"),
    ("1 hour", r"unknown time unit 'hour'"),
    ("-1ms", r"time must not be negative: '-1ms'"),
    ("ms", r"cannot parse time 'ms'"),
    ("soon", r"cannot parse time 'soon'"),
    (float("inf"), r"time must be finite"),
    (False, r"got a boolean"),
    ({"ms": 1}, r"expected a time string, got dict"),
])
def test_parse_time_refusals(text, pattern):
    with pytest.raises(UnitError, match=pattern):
        parse_time(text)


# -- sizes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, nbytes", [
    (1472, 1472),
    ("1472", 1472),
    ("100B", 100),
    ("2kB", 2000),
    ("10MB", 10_000_000),
    ("1GB", 10**9),
    ("64KiB", 65536),
    ("1.5KiB", 1536),
    ("2MiB", 2 * 1024**2),
    ("1GiB", 1024**3),
    ("1k", 1024),             # tc's k/m/g are IEC multiples
    ("4m", 4 * 1024**2),
    (0, 0),
], ids=lambda v: repr(v))
def test_parse_size(text, nbytes):
    got = parse_size(text)
    assert got == nbytes
    assert isinstance(got, int)


@pytest.mark.parametrize("text, pattern", [
    ("1 furlong", r"unknown size unit 'furlong' in '1 furlong' \(use B, kB, MB, GB, KiB, MiB, GiB\)"),
    ("10 bits", r"unknown size unit 'bits'"),
    ("1.5", r"size must be a whole number of bytes: '1.5'"),
    (1.5, r"size must be a whole number of bytes"),
    ("1.0001kB", r"whole number of bytes"),
    ("-1KiB", r"size must not be negative: '-1KiB'"),
    ("big", r"cannot parse size 'big'"),
    ([1], r"expected a size string, got list"),
])
def test_parse_size_refusals(text, pattern):
    with pytest.raises(UnitError, match=pattern):
        parse_size(text)


# -- helpers ----------------------------------------------------------------------------------------

def test_tx_time():
    assert tx_time_s(1500, 1e9) == pytest.approx(12e-6)
    assert tx_time_s(1250, parse_rate("10mbit")) == pytest.approx(1e-3)


@pytest.mark.parametrize("t, text", [(2.0, "2 s"), (2.5e-3, "2.5 ms"), (5e-7, "500 ns"), (42e-6, "42 µs")])
def test_fmt_time(t, text):
    assert fmt_time(t) == text


@pytest.mark.parametrize("r, text", [(1.5e9, "1.5gbit"), (100e6, "100mbit"), (64e3, "64kbit"), (10, "10bit")])
def test_fmt_rate(r, text):
    assert fmt_rate(r) == text


@pytest.mark.parametrize("r", ["10gbit", "100mbit", "1.5kbit", "3tbit"])
def test_fmt_rate_round_trips(r):
    assert parse_rate(fmt_rate(parse_rate(r))) == pytest.approx(parse_rate(r))


def test_nan_is_refused():
    with pytest.raises(UnitError):
        parse_rate(math.nan)
    with pytest.raises(UnitError):
        parse_time(math.nan)


@pytest.mark.parametrize("fn,value,msg", [
    (parse_time, -1, "negative"), (parse_size, -5, "negative"), (parse_rate, -1, "negative"),
    (parse_rate, "1e400", "finite"), (parse_time, float("inf"), "finite"), (parse_size, 1e400, "finite"),
])
def test_bare_numbers_are_checked_too(fn, value, msg):
    with pytest.raises(UnitError, match=msg):
        fn(value)
