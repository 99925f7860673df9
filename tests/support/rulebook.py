"""The rulebook recomputed in the tests from the extract files alone (exact fractions), to compare with marts."""

from __future__ import annotations

import calendar
import csv
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

from support.database import query

UNIT = {"USD": Decimal("0.01"), "THB": Decimal("0.01"), "KHR": Decimal("1")}  # rulebook A: rounding units


def extract_rows(landing: Path, day: date, name: str) -> list[dict[str, str]]:
    """The rows of one extract file of one business date of a landing, as text."""
    with (landing / day.isoformat() / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def thirty_e_360(day: date) -> int:
    """30E/360 (rulebook B): day 31 weighs 0, the last day of February 31 - its length, other days 1."""
    last = calendar.monthrange(day.year, day.month)[1]
    if day.day == 31:
        return 0
    return 31 - last if day.month == 2 and day.day == last else 1


def rulebook_charges(
    landing: Path, month_end: date, weight: Callable[[date], int] | None = None
) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """Rulebook C from the extract files alone, in exact fractions, rounded half away from zero (A); ``weight``
    is the day count's daily weight (30E/360 by default)."""
    weight = weight or thirty_e_360
    sums: dict[str, list[Fraction]] = defaultdict(lambda: [Fraction(0)] * 3)
    currency = {}
    for day_no in range(1, month_end.day + 1):
        day = month_end.replace(day=day_no)
        w = weight(day)
        accounts = {a["od_account_id"]: a for a in extract_rows(landing, day, "od_accounts.csv")}
        for b in extract_rows(landing, day, "od_balances.csv"):
            a = accounts[b["od_account_id"]]
            p, limit = Fraction(b["principal_outstanding"]), Fraction(a["limit_amount"])
            active = (
                a["status"] == "ACTIVE"
                and date.fromisoformat(a["start_date"]) <= day <= date.fromisoformat(a["maturity_date"])
                and (not a["closed_on"] or day < date.fromisoformat(a["closed_on"]))
            )
            s = sums[a["od_account_id"]]
            s[0] += p * Fraction(a["monthly_interest_rate"]) / 30 * w
            if active:
                s[1] += max(limit - p, 0) * Fraction(a["unutilized_fee_rate_annual"]) / 360 * w
            s[2] += max(p - limit, 0) * Fraction(a["excess_fee_rate_monthly"]) / 30 * w
            currency[a["od_account_id"]] = a["currency"]

    def due(x: Fraction, unit: Decimal) -> Decimal:
        exact = Decimal(x.numerator) / Decimal(x.denominator)  # 28 significant digits: far below a unit
        return exact.quantize(unit, rounding=ROUND_HALF_UP)  # amounts are >= 0: half up = away from zero

    return {acc: tuple(due(x, UNIT[currency[acc]]) for x in s) for acc, s in sums.items()}  # type: ignore[misc]


def mart_charges(url: str, month_end: date) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """fct_od_month_end's interest, unutilized fee and excess fee of ``month_end``, shaped as rulebook_charges."""
    rows = query(
        url,
        "select od_account_id, interest_due, unutilized_fee_due, excess_fee_due"
        " from marts.fct_od_month_end where month_end = %s",
        month_end,
    )
    return {r[0]: tuple(r[1:]) for r in rows}
