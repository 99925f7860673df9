"""Days past due, stagnation and NBC grades end to end: one scripted overdraft written into raw, dbt built, and
the values checked against arithmetic done by hand here (rulebook D, E, F; docs/policy-engine.md D, E, F).

The account (USD, limit 1,000, 2 % a month, un-utilization 1.2 % a year, excess 2.4 % a month, maturity
10 March 2026), loaded every day from 1 January to 15 March 2026:
- January: 600 drawn. Charges due 31 Jan: interest 600 x 2 % = 12.00, un-utilization 400 x 1.2 % / 12 = 0.40.
- 5 Feb: repays 5 (pays the 0.40 fee, then 4.60 of January's interest: January stays unpaid).
- 10 Feb: draws 600 more, 1,200 on a 1,000 limit: excess until 24 Feb.
- 25 Feb: repays 595 (7.40 closes January, 587.60 goes to principal): 612.40 drawn.
- February charges (30E/360: 28 Feb 2026 weighs 3): interest 2 % / 30 x (600 x 9 + 1,200 x 15 + 612.40 x 6)
  = 18.0496 -> 18.05; un-utilization 1.2 % / 360 x (400 x 9 + 387.60 x 6) = 0.19752 -> 0.20; excess
  2.4 % / 30 x 200 x 15 = 2.40. Due 28 Feb: fees 2.60, interest 18.05.
- 1 Mar: the core capitalizes the 18.05 (not a payment): 630.45 drawn.
- 3 Mar: repays 50 (pays February); 4 Mar: that repayment is reversed: February is unpaid again.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.database import query
from support.dbt import build
from support.raw import Account, ScriptedAccounts, days, transaction

D = Decimal
FIRST, LAST = date(2026, 1, 1), date(2026, 3, 15)
MY_MODELS = (
    "int_od__transactions_classified",
    "int_od__days_past_due_daily",
    "int_od__stagnation_daily",
    "int_grading__od_grades_daily",
    "int_grading__term_loan_grades",
)
SELECT = " ".join(f"+{m}" for m in MY_MODELS)

OD1 = Account(
    "OD1",
    "USD",
    D(1000),
    D("0.02"),
    excess_fee_rate_monthly=D("0.024"),
    unutilized_fee_rate_annual=D("0.012"),
    start_date=date(2025, 12, 1),
    maturity_date=date(2026, 3, 10),
    approved_on=date(2025, 11, 25),
)


def principal(_account: str, day: date) -> Decimal:
    if day < date(2026, 2, 10):
        return D("600.00")
    if day < date(2026, 2, 25):
        return D("1200.00")
    if day < date(2026, 3, 1):
        return D("612.40")
    return D("583.05") if day == date(2026, 3, 3) else D("630.45")


def _txn(txn_id: str, txn_type: str, amount: str, **options: Any) -> dict[str, Any]:
    return transaction(txn_id, "OD1", txn_type, amount, **options)


TRANSACTIONS = {
    date(2026, 1, 31): [_txn("T01", "INTEREST_CHARGE", "12.00"), _txn("T02", "FEE_CHARGE", "0.40")],
    date(2026, 2, 5): [_txn("T03", "REPAYMENT", "5.00")],
    date(2026, 2, 10): [_txn("T04", "DRAWDOWN", "600.00")],
    date(2026, 2, 25): [_txn("T05", "REPAYMENT", "595.00")],
    date(2026, 2, 28): [_txn("T06", "INTEREST_CHARGE", "18.05"), _txn("T07", "FEE_CHARGE", "2.60")],
    date(2026, 3, 1): [_txn("T08", "INTEREST_CAPITALIZATION", "18.05")],
    date(2026, 3, 3): [_txn("T09", "REPAYMENT", "50.00")],
    date(2026, 3, 4): [_txn("T10", "REVERSAL", "50.00", direction="DEBIT", reversed_txn_id="T09")],
}

LOANS = [  # graded from the core's days past due: 24 months is long-term, 12 months short-term
    {
        "loan_id": "L1",
        "customer_id": "COD1",
        "product": "SME",
        "currency": "USD",
        "disbursed_on": date(2025, 1, 1),
        "original_term_months": 24,
        "outstanding_principal": D(5000),
        "days_past_due": 90,
        "status": "ACTIVE",
    },
    {
        "loan_id": "L2",
        "customer_id": "COD1",
        "product": "MSME",
        "currency": "KHR",
        "disbursed_on": date(2025, 6, 1),
        "original_term_months": 12,
        "outstanding_principal": D(4_000_000),
        "days_past_due": 15,
        "status": "ACTIVE",
    },
]


def load(url: str, first: date, last: date, principal_of: Any = principal) -> None:
    """Deliver ``first``..``last`` (a date already loaded is delivered again and replaced), loans included."""
    scripted = ScriptedAccounts(url, [OD1], principal_of, TRANSACTIONS, snapshots={"loans": LOANS})
    scripted.load(days(first, last))


@pytest.fixture(scope="module")
def scripted_db(module_db: str, dbt_work: Path) -> str:
    load(module_db, FIRST, LAST)
    build(module_db, SELECT, dbt_work)
    return module_db


def _by_date(url: str, model: str, columns: str) -> dict[date, tuple[Any, ...]]:
    # model and columns are this module's constants
    statement = f"select business_date, {columns} from intermediate.{model} where od_account_id = 'OD1'"  # noqa: S608
    rows = query(url, statement)
    return {r[0]: r[1:] for r in rows}


def test_days_past_due_by_hand(scripted_db):
    components = "dpd_charges, dpd_excess, dpd_maturity, days_past_due"
    dpd = _by_date(scripted_db, "int_od__days_past_due_daily", components)
    expected = {  # (charges, excess, maturity, days past due)
        date(2026, 1, 30): (0, 0, 0, 0),
        date(2026, 1, 31): (0, 0, 0, 0),  # January's charges fall due today: 0 days past due
        date(2026, 2, 5): (5, 0, 0, 5),  # a partial payment leaves January unpaid
        date(2026, 2, 10): (10, 0, 0, 10),  # excess starts (0 on its first day)
        date(2026, 2, 14): (14, 4, 0, 14),
        date(2026, 2, 15): (15, 5, 0, 15),
        date(2026, 2, 24): (24, 14, 0, 24),
        date(2026, 2, 25): (0, 0, 0, 0),  # January paid, back under the limit
        date(2026, 2, 28): (0, 0, 0, 0),  # February due today
        date(2026, 3, 1): (1, 0, 0, 1),  # capitalization is not a payment
        date(2026, 3, 3): (0, 0, 0, 0),  # the 50 pays February's 20.65
        date(2026, 3, 4): (4, 0, 0, 4),  # ... until it is reversed
        date(2026, 3, 10): (10, 0, 0, 10),  # maturity day itself: not yet past maturity
        date(2026, 3, 11): (11, 0, 1, 11),
        date(2026, 3, 14): (14, 0, 4, 14),
        date(2026, 3, 15): (15, 0, 5, 15),
    }
    assert {d: dpd[d] for d in expected} == expected
    assert len(dpd) == len(days(FIRST, LAST))
    unpaid = _by_date(scripted_db, "int_od__days_past_due_daily", "oldest_unpaid_due_date, unpaid_charges")
    assert unpaid[date(2026, 2, 5)] == (date(2026, 1, 31), D("7.40"))  # 12.40 - 5
    assert unpaid[date(2026, 3, 4)] == (date(2026, 2, 28), D("20.65"))


def test_grades_follow_days_past_due_with_history_kept(scripted_db):
    grades = _by_date(scripted_db, "int_grading__od_grades_daily", "term_class, nbc_grade, provision_rate")
    normal, special = ("SHORT", "Normal", D("0.01")), ("SHORT", "Special Mention", D("0.03"))
    assert grades[date(2026, 2, 14)] == normal  # 14 days
    assert grades[date(2026, 2, 15)] == special  # 15 days
    assert grades[date(2026, 2, 25)] == normal
    assert grades[date(2026, 3, 14)] == normal
    assert grades[date(2026, 3, 15)] == special
    assert len(grades) == len(days(FIRST, LAST))  # one row per day: a later grade never overwrites

    loans = query(
        scripted_db,
        "select loan_id, term_class, nbc_grade, provision_rate from intermediate.int_grading__term_loan_grades"
        " where business_date = %s order by loan_id",
        LAST,
    )
    assert loans == [("L1", "LONG", "Substandard", D("0.20")), ("L2", "SHORT", "Special Mention", D("0.03"))]


def test_stagnation_by_hand(scripted_db):
    columns = "window_evaluable, net_inflow_60d, no_net_inflow_60d, stagnant_amount_60d, conversion_candidate"
    stagnation = _by_date(scripted_db, "int_od__stagnation_daily", columns)
    # 1 March: the window starts on 30 December, before the first loaded date (day N-1): not evaluable
    assert stagnation[date(2026, 3, 1)] == (False, None, False, None, False)
    # 2 March (day N): window (1 Jan, 2 Mar]: +5 - 600 + 595 = 0 is no net inflow, P(1 Jan) = 600;
    # stagnant = min P over [1 Jan, 2 Mar] = 600
    assert stagnation[date(2026, 3, 2)] == (True, D("0.00"), True, D("600.00"), True)
    # 4 March: the 50 of 3 March and its reversal cancel inside the window; min P = 583.05 on 3 March
    assert stagnation[date(2026, 3, 4)] == (True, D("0.00"), True, D("583.05"), True)
    # 11 March: past maturity with a balance: still evaluated and a conversion candidate (rulebook E: a matured
    # OD that still carries a balance is exactly the case §12.3 converts)
    assert stagnation[date(2026, 3, 11)] == (True, D("0.00"), True, D("583.05"), True)


def _my_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {m: query(url, f"select * from intermediate.{m} order by 1, 2, 3") for m in MY_MODELS}  # noqa: S608


@pytest.mark.slow
def test_incremental_builds_equal_a_full_refresh(fresh_db: str, tmp_path: Path) -> None:
    work = tmp_path / "dbt"
    load(fresh_db, FIRST, date(2026, 2, 12))
    build(fresh_db, SELECT, work)
    load(fresh_db, date(2026, 2, 13), date(2026, 3, 3))  # the repayment of 3 March pays February, carried
    build(fresh_db, SELECT, work)
    # its reversal on 4 March, in a run of its own, rewrites OD1's credit history
    load(fresh_db, date(2026, 3, 4), date(2026, 3, 4))
    build(fresh_db, SELECT, work)
    unpaid = _by_date(fresh_db, "int_od__days_past_due_daily", "dpd_charges, unpaid_charges")
    assert unpaid[date(2026, 3, 3)] == (0, 0)  # as by hand (test_days_past_due_by_hand) before the
    assert unpaid[date(2026, 3, 4)] == (4, D("20.65"))  # re-delivery below rebuilds these dates again
    incremental_days = query(fresh_db, "select count(*) from intermediate.int_od__days_past_due_daily")

    # 20 February delivered again with another balance (1,250), then the rest of March
    def corrected(account: str, day: date) -> Decimal:
        return D("1250.00") if day == date(2026, 2, 20) else principal(account, day)

    load(fresh_db, date(2026, 2, 20), date(2026, 2, 20), corrected)
    load(fresh_db, date(2026, 3, 5), LAST, corrected)
    build(fresh_db, SELECT, work)
    incremental = _my_rows(fresh_db)

    build(fresh_db, SELECT, work, "--full-refresh")
    assert incremental == _my_rows(fresh_db)
    assert incremental_days == [(len(days(FIRST, date(2026, 3, 4))),)]
    dpd = {r[1]: r for r in incremental["int_od__days_past_due_daily"]}
    # the re-delivered date carries its newer load id
    assert dpd[date(2026, 2, 20)][-1] > dpd[date(2026, 2, 19)][-1]
