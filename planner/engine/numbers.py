"""Numbers a person reads, in one style everywhere: tables, the app and the engine's messages
(never scientific notation, never float noise). JSON keeps full precision and does not use these."""

from __future__ import annotations

import math
from decimal import Decimal


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "∞"
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    if value >= 100:
        return f"{value:,.0f} ms"
    return f"{value:.1f} ms"


def fmt_usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"${value:,.0f}"
    return f"${value:,.2f}"


def estimated_usd(value: float | None, estimated: bool | None) -> str:
    """A cost, marked '~' where it rests on an estimated price rather than a quoted one."""
    return ("~" if estimated and value is not None else "") + fmt_usd(value)


def fmt_num(value: float | None, unit: str = "") -> str:
    """A table cell's count or amount: one decimal below 100, whole numbers with separators up to
    10,000, then k / M / B / T. Never scientific notation, however large."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "∞" if value > 0 else "-"
    for threshold, scale, suffix, decimals in _SCALES:
        if abs(value) >= threshold:
            return f"{value / scale:,.{decimals}f}{suffix}{unit}"
    return f"{value:,.1f}{unit}" if abs(value) < 100 else f"{value:,.0f}{unit}"


_SCALES = ((1e12, 1e12, "T", 2), (1e9, 1e9, "B", 2), (1e6, 1e6, "M", 2), (1e4, 1e3, "k", 1))


def fmt_sig(value: float | None, digits: int = 3) -> str:
    """A number in a sentence or a measured value: `digits` significant digits (whole numbers keep
    every digit up to 15, with separators), trailing zeros dropped, never scientific notation:
    11.5741 -> '11.6', 10390.5 -> '10,390' (digits=4), 0.012345 -> '0.0123', 5.0 -> '5'."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "∞" if value > 0 else "-∞" if value < 0 else "-"
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    if decimals == 0:  # beyond a float's 15 exact digits, the rest would be noise: rounded to `digits`
        return f"{Decimal(f'{value:.{digits - 1}e}') if magnitude >= 15 else Decimal(round(value)):,.0f}"
    text = f"{value:,.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


_BYTE_UNITS = ("GB", "TB", "PB", "EB", "ZB", "YB")


def fmt_gb(value_gb: float | None) -> str:
    """A memory size given in GB: one decimal, moving to TB, PB, ... as it grows, so an absurd
    model reads '1.7 ZB' and not '1744830726733.8 GB'."""
    if value_gb is None:
        return "-"
    if not math.isfinite(value_gb):
        return "∞ GB"
    unit = 0
    while abs(value_gb) >= 1000 and unit < len(_BYTE_UNITS) - 1:
        value_gb /= 1000
        unit += 1
    return f"{value_gb:,.1f} {_BYTE_UNITS[unit]}"


def fmt_replicas(n: int) -> str:
    return f"{n:,} replica{'s' if n != 1 else ''}"
