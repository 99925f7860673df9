"""Accruals and month-end charges end to end: scripted accounts written into raw, dbt built, values checked
against arithmetic done by hand here (rulebook B and C, docs/policy-engine.md "Accruals and charges").
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from support.database import query
from support.dbt import build
from support.raw import Account, ScriptedAccounts, days, transaction

D = Decimal


def q20(value: Decimal) -> Decimal:
    """``value`` at the 20 decimals the daily accruals keep."""
    return value.quantize(D("1e-20"))


# --- the scripted accounts -----------------------------------------------------------------------------------

JAN, FEB = date(2024, 1, 31), date(2024, 2, 29)  # 2024 is a leap year

USD_OVER = Account("U1", "USD", D(800), D("0.015"))  # 1,000 drawn on an 800 limit all of January and February
KHR_EXCESS = Account("K1", "KHR", D(10_000_000), D("0.0125"), excess_fee_rate_monthly=D("0.02"))
USD_MATURING = Account(
    "U2", "USD", D(1000), D("0.02"), unutilized_fee_rate_annual=D("0.012"), maturity_date=date(2024, 1, 20)
)


def principal(account: str, day: date) -> Decimal:
    if account == "U1":
        return D("1000.00")
    if account == "U2":
        return D("250.00")
    # K1: 4m to 15 Jan, 12m (2m above the limit) from 16 Jan to 10 Feb, then 3m
    if day <= date(2024, 1, 15):
        return D(4_000_000)
    return D(12_000_000) if day <= date(2024, 2, 10) else D(3_000_000)


CORE_CHARGES = {
    JAN: [
        transaction("T1", "U1", "INTEREST_CHARGE", "15.00"),
        transaction("T2", "U1", "FEE_CHARGE", "2.01"),  # one cent off: within one rounding unit, no break
        transaction("T3", "K1", "INTEREST_CHARGE", "100002"),  # two riel off: a break
        transaction("T4", "K1", "FEE_CHARGE", "22500"),
        transaction("T5", "U2", "INTEREST_CHARGE", "5.00"),
        transaction("T6", "U2", "FEE_CHARGE", "0.50"),
        # posted by mistake, reversed on 2 February: counts in neither month
        transaction("T7", "U2", "FEE_CHARGE", "9.99"),
    ],
    date(2024, 2, 2): [transaction("T8", "U2", "REVERSAL", "9.99", "CREDIT", reversed_txn_id="T7")],
}


@pytest.fixture(scope="module")
def scripted_db(module_db: str, dbt_work: Path) -> str:
    """January and February 2024 of the scripted accounts, built once for the module's tests."""
    accounts = [USD_OVER, KHR_EXCESS, USD_MATURING]
    ScriptedAccounts(module_db, accounts, principal, CORE_CHARGES).load(days(date(2024, 1, 1), FEB))
    build(module_db, "+int_od__charges_monthly", dbt_work)
    return module_db


def test_month_end_charges_match_hand_computed_values(scripted_db):
    charges = {
        (r[0], r[1]): r[2:]
        for r in query(
            scripted_db,
            "select od_account_id, month_end, interest_due, unutilized_fee_due, excess_fee_due,"
            " core_interest_charged, core_fees_charged, reconciliation_break from intermediate.int_od__charges_monthly",
        )
    }
    # 30E/360: a whole month bears 30 interest days, January (31 days) and February 2024 (29 days) alike
    u1 = (D("1000") * D("0.015"), D(0), D(200) * D("0.01"))  # 15.00 interest, 2.00 excess fee
    assert charges[("U1", JAN)] == (*u1, D("15.00"), D("2.01"), False)
    assert charges[("U1", FEB)] == (*u1, D(0), D(0), True)  # February not charged by the core: a break

    # K1 January: 15 days at 4m, days 16-30 at 12m (day 31 weighs 0); unused 6m on days 1-15; excess 2m x 15
    k1_jan_interest = D(4_000_000) * D("0.0125") / 30 * 15 + D(12_000_000) * D("0.0125") / 30 * 15
    k1_jan_unused = D(6_000_000) * D("0.01") / 360 * 15
    k1_jan_excess = D(2_000_000) * D("0.02") / 30 * 15
    assert (k1_jan_interest, k1_jan_unused, k1_jan_excess) == (100_000, 2_500, 20_000)
    assert charges[("K1", JAN)] == (D(100_000), D(2_500), D(20_000), D(100_002), D(22_500), True)
    # K1 February 2024: days 1-10 at 12m; days 11-28 (weight 1) and 29 Feb (weight 2) at 3m = 20 days
    k1_feb_excess = D(2_000_000) * D("0.02") / 30 * 10  # 13,333.33... -> 13,333 riel
    k1_feb_unused = D(7_000_000) * D("0.01") / 360 * 20  # 3,888.88... -> 3,889 riel
    assert (q20(k1_feb_excess), q20(k1_feb_unused)) == (
        D("13333.33333333333333333333"),
        D("3888.88888888888888888889"),
    )
    assert charges[("K1", FEB)][:3] == (D(75_000), D(3_889), D(13_333))

    # U2 matures on 20 January: the un-utilization fee stops (750 x 1.2 % / 360 x 20 days = 0.50), interest
    # goes on after maturity (250 x 2 % = 5.00 for the month); the reversed fee charge counts nowhere
    assert charges[("U2", JAN)] == (D("5.00"), D("0.50"), D("0.00"), D("5.00"), D("0.50"), False)
    assert charges[("U2", FEB)][:3] == (D("5.00"), D("0.00"), D("0.00"))


def test_daily_accruals_keep_unrounded_values_and_day_weights(scripted_db):
    rows = dict(
        (r[0], r[1:])
        for r in query(
            scripted_db,
            "select business_date, day_weight, interest_accrued, unutilized_fee_accrued, excess_fee_accrued"
            " from intermediate.int_od__accruals_daily where od_account_id = 'K1'",
        )
    )
    # 10 Feb: 12m drawn, 2m above the limit; 11 Feb: 3m drawn, 7m unused
    assert rows[date(2024, 2, 10)] == (1, D(5_000), D(0), q20(D(2_000_000) * D("0.02") / 30))
    assert rows[date(2024, 2, 10)][3] == D("1333.33333333333333333333")  # 20 decimals kept, not rounded
    assert rows[date(2024, 2, 11)] == (1, D(1_250), q20(D(7_000_000) * D("0.01") / 360), D(0))
    assert rows[date(2024, 2, 29)][:2] == (2, D(2_500))  # last day of February in a leap year weighs 2
