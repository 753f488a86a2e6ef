"""French numbers for what students read: decimal commas, thousands spaces, percentages."""

from __future__ import annotations

NBSP = "\u00a0"  # French typography: no line break inside "12,5 %" or "60 000"


def fr_num(x: float, digits: int = 4) -> str:
    """Return `x` with `digits` significant digits and a French decimal comma ('0,0418')."""
    return f"{x:.{digits}g}".replace(".", ",")


def fr_fixed(x: float, decimals: int = 2, signed: bool = False) -> str:
    """Return `x` with a fixed number of decimals and a French decimal comma ('2,30')."""
    sign = "+" if signed else ""
    return f"{x:{sign}.{decimals}f}".replace(".", ",")


def fr_pct(x: float, decimals: int = 2, signed: bool = False) -> str:
    """Return the fraction `x` as a French percentage, e.g. '18,00 %' or '+0,35 %'."""
    sign = "+" if signed else ""
    return f"{100 * x:{sign}.{decimals}f}".replace(".", ",") + f"{NBSP}%"


def fr_int(n: int) -> str:
    """Return the integer `n` with French thousands separators ('60 000')."""
    return f"{int(n):,}".replace(",", NBSP)
