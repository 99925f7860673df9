"""Money in integer minor units, the 30E/360 day weight, month arithmetic and FX.

Amounts are int64 minor units of the account currency: 1 riel for KHR, 1 cent (satang) for USD and THB, so
every amount written is an exact decimal string. Rates are integers in parts per million.
"""

from __future__ import annotations

import calendar
import functools
from datetime import date, timedelta
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

# Loose aliases (numpy's dtype inference through where/select is too weak for strict ones); they say what
# each array holds: int64 minor units or ordinals, booleans, floats used for sizing only.
IntArray: TypeAlias = npt.NDArray[Any]
BoolArray: TypeAlias = npt.NDArray[Any]
FloatArray: TypeAlias = npt.NDArray[Any]

KHR, USD, THB = 0, 1, 2
CURRENCY_CODES = ("KHR", "USD", "THB")
# "Nice" steps for customer amounts: 1,000 riel, 1 dollar, 10 baht.
NICE_STEP = np.array([1000, 100, 1000], dtype=np.int64)
PPM = 1_000_000


def fmt_minor(value: int, currency: int) -> str:
    """Minor units as a plain decimal string (``1234.50`` for cents, ``12500`` for riel)."""
    if currency == KHR:
        return str(value)
    whole, cents = divmod(value, 100)
    return f"{whole}.{cents:02d}"


def fmt_many(values: IntArray, currencies: npt.NDArray[np.int8]) -> list[str]:
    return [
        str(v) if c == KHR else f"{v // 100}.{v % 100:02d}"
        for v, c in zip(values.tolist(), currencies.tolist(), strict=True)
    ]


def fmt_cents(value: int) -> str:
    whole, cents = divmod(value, 100)
    return f"{whole}.{cents:02d}" if value >= 0 else "-" + fmt_cents(-value)


def in_cents(values: IntArray, currencies: npt.NDArray[np.int8]) -> int:
    """Sum of amounts in hundredths of a unit, whatever the currency (for control totals)."""
    scale = np.where(currencies == KHR, 100, 1)
    return int((values * scale).sum())


def fmt_ppm(rate_ppm: int) -> str:
    """A rate in parts per million as a decimal string: 15000 -> ``0.015``."""
    whole, frac = divmod(rate_ppm, PPM)
    text = f"{whole}.{frac:06d}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def round_div(num: IntArray, den: int) -> IntArray:
    """``num / den`` rounded half away from zero, for non-negative ``num``."""
    return (2 * num + den) // (2 * den)


def round_to_step(amounts: FloatArray, currencies: npt.NDArray[np.int8]) -> IntArray:
    """Round positive float sizes (minor units) down to the currency's nice step."""
    step = NICE_STEP[currencies]
    return (np.floor(amounts / step) * step).astype(np.int64)


def day_weight(d: date) -> int:
    """30E/360 daily interest weight: day 31 weighs 0, the last day of February ``31 - days_in_february``."""
    if d.day == 31:
        return 0
    if d.month == 2 and d.day == calendar.monthrange(d.year, 2)[1]:
        return 31 - d.day
    return 1


def is_month_end(d: date) -> bool:
    return (d + timedelta(days=1)).day == 1


def add_months(d: date, months: int) -> date:
    month0 = d.month - 1 + months
    year, month = d.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


class FxWalk:
    """NBC-style official rates, a gentle bounded random walk: USD 4,000-4,120 riel, THB 110-125 riel."""

    USD_BOUNDS = (4000, 4120)  # whole riel
    THB_BOUNDS = (11000, 12500)  # hundredths of a riel

    def __init__(self, rng: np.random.Generator) -> None:
        self.usd = int(rng.integers(4040, 4100))
        self.thb = int(rng.integers(11300, 11900))

    def step(self, rng: np.random.Generator) -> None:
        usd_mid, thb_mid = sum(self.USD_BOUNDS) / 2, sum(self.THB_BOUNDS) / 2
        self.usd += int(rng.integers(-3, 4)) + round((usd_mid - self.usd) * 0.01)
        self.thb += round(rng.normal(0, 12) + (thb_mid - self.thb) * 0.01)
        self.usd = min(max(self.usd, self.USD_BOUNDS[0]), self.USD_BOUNDS[1])
        self.thb = min(max(self.thb, self.THB_BOUNDS[0]), self.THB_BOUNDS[1])

    def khr_per_unit(self) -> tuple[str, str, str]:
        """KHR, USD, THB as decimal strings."""
        return "1", str(self.usd), fmt_cents(self.thb)

    def usd_per_minor(self) -> FloatArray:
        """USD per minor unit of KHR, USD and THB (for sizing only, never for written amounts)."""
        return np.array([1 / self.usd, 0.01, self.thb / 100 / self.usd / 100])


@functools.lru_cache(maxsize=8192)
def iso(ordinal: int) -> str:
    """An ordinal date as ``YYYY-MM-DD``; 0 (no date) as an empty field."""
    return date.fromordinal(ordinal).isoformat() if ordinal else ""
