"""Facility lifecycle (rulebook J) end to end: scripted raw rows -> dbt -> marts, against hand arithmetic.

Seven USD OD accounts are delivered day by day from 2026-01-01 to 2026-02-28 (USD 4,000 riel); the snapshots
change on the lifecycle dates as a core system would deliver them:

- LIM: limit 1,000 with 1,200 drawn; raised to 1,500 on 15 January (fee 15 on the new limit), lowered to 1,300
  on 10 February (no fee): accruals and excess use the limit in force each day.
- INC: raised from 1,000 to 2,000 on 20 January; the core posts 10 (the increment), 20 is due on the new limit.
- CLS: closed on 10 January after a repayment: no un-utilization fee from that date.
- CLB: CLOSED on 5 January while the extract still shows 50 drawn: a data error on the review list.
- CNV: converted on 15 January: the SYSTEM credit settles 2,500 (no customer credit), loan LNC (OD_CONVERTED)
  carries it from that day, counted once; listed CONVERTED only (no INSUFFICIENT_INFLOW).
- WOF: written off on 20 January with 800 drawn the day before; the extract keeps showing 780 afterwards
  (no grade, provision or review-list reason from that date).
- ACT: an ordinary account, 500 drawn.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from odwh import transform
from odwh.publish import details
from support.database import query
from support.raw import ScriptedPortfolio, days

FIRST, JAN_END, LAST = date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 28)
MODELS = "+rpt_review_list +fct_portfolio_month_end +fct_par_month_end"
RATE = Fraction(15, 1000)  # monthly interest; fees 1% (PORTFOLIO_ACCOUNT)
# (account, customer, limit, principal before its event) and the lifecycle dates
ACCOUNTS = [
    ("LIM", "C1", "1000", "1200"),
    ("INC", "C2", "1000", "100"),
    ("CLS", "C3", "500", "100"),
    ("CLB", "C4", "500", "50"),
    ("CNV", "C5", "3000", "2500"),
    ("WOF", "C6", "1000", "800"),
    ("ACT", "C7", "1000", "500"),
]
LIMIT_RAISED, LIMIT_LOWERED = date(2026, 1, 15), date(2026, 2, 10)
INC_RAISED, CLOSED, CONVERTED, WRITTEN_OFF = (
    date(2026, 1, 20),
    date(2026, 1, 10),
    date(2026, 1, 15),
    date(2026, 1, 20),
)


def _until(day: date) -> list[date]:
    return days(FIRST, day - timedelta(days=1))


def _account(p: ScriptedPortfolio, od: str) -> dict[str, Any]:
    return next(a for a in p.snapshots["od_accounts"] if a["od_account_id"] == od)


def _write_phase(p: ScriptedPortfolio, url: str, first: date, last: date, **changes: dict[str, Any]) -> None:
    """Apply the snapshot changes (account -> attributes) and deliver the days first..last."""
    for od, attributes in changes.items():
        _account(p, od).update(attributes)
    p.write(url, days(first, last))


def _system_credit(p: ScriptedPortfolio, txn_id: str, od: str, day: date, amount: str) -> None:
    p.txn(txn_id, od, day, "REPAYMENT", amount)
    p.events["od_transactions", day][-1]["channel"] = "SYSTEM"


def load(url: str) -> None:
    p = ScriptedPortfolio()
    for od, customer, limit, principal in ACCOUNTS:
        p.customer(customer, customer_type="SME")
        p.account(od, customer, limit, start_date=date(2025, 6, 1), approved_on=date(2025, 6, 1))
        p.balances(od, days(FIRST, LAST), principal)
    p.balances("CLS", days(CLOSED, LAST), "0")
    p.balances("CNV", days(CONVERTED, LAST), "0")
    p.balances("WOF", days(WRITTEN_OFF, LAST), "780")
    p.txn("F1", "LIM", LIMIT_RAISED, "PROCESSING_FEE", "15")
    p.txn("F1P", "LIM", LIMIT_RAISED, "REPAYMENT", "15")
    p.txn("F2", "INC", INC_RAISED, "PROCESSING_FEE", "10")
    p.txn("R1", "CLS", CLOSED, "REPAYMENT", "100")
    _system_credit(p, "S1", "CNV", CONVERTED, "2500")
    loan = {
        "loan_id": "LNC",
        "customer_id": "C5",
        "product": "OD_CONVERTED",
        "currency": "USD",
        "disbursed_on": CONVERTED,
        "original_term_months": 12,
        "outstanding_principal": Decimal(2500),
        "days_past_due": 0,
        "purpose_activity": "TRADE",
        "status": "ACTIVE",
        "source_od_account_id": "CNV",
    }
    closed = {"status": "CLOSED"}
    # the phases of the scenario, in date order: each call is the snapshot change of that day (data, alike by shape)
    _write_phase(p, url, FIRST, date(2026, 1, 4))
    _write_phase(p, url, date(2026, 1, 5), date(2026, 1, 9), CLB={**closed, "closed_on": date(2026, 1, 5)})
    _write_phase(p, url, CLOSED, date(2026, 1, 14), CLS={**closed, "closed_on": CLOSED})
    p.snapshots["loans"] = [loan]
    _write_phase(
        p,
        url,
        CONVERTED,
        date(2026, 1, 19),
        LIM={"limit_amount": Decimal(1500), "approved_on": LIMIT_RAISED},
        CNV={"status": "CONVERTED", "closed_on": CONVERTED},
    )
    _write_phase(
        p,
        url,
        INC_RAISED,
        date(2026, 2, 9),
        INC={"limit_amount": Decimal(2000), "approved_on": INC_RAISED},
        WOF={"status": "WRITTEN_OFF", "closed_on": WRITTEN_OFF},
    )
    _write_phase(
        p, url, LIMIT_LOWERED, LAST, LIM={"limit_amount": Decimal(1300), "approved_on": LIMIT_LOWERED}
    )


@pytest.fixture(scope="module")
def lifecycle_db(module_db: str, dbt_work: Path) -> str:
    load(module_db)
    transform.run_dbt(["seed"], module_db, work_dir=dbt_work)
    transform.run_dbt(["run", "--select", MODELS], module_db, work_dir=dbt_work)
    return module_db


# --- the rulebook by hand -------------------------------------------------------------------------------------


def _weight(d: date) -> int:
    """30E/360 (rulebook B)."""
    if d.day == 31:
        return 0
    last_feb = (date(d.year, 3, 1) - timedelta(days=1)).day
    return 31 - last_feb if d.month == 2 and d.day == last_feb else 1


def _due(x: Fraction) -> Decimal:
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def _charges(month: list[date], limit: Any, principal: Any, active: Any) -> tuple[Decimal, Decimal, Decimal]:
    """(interest, un-utilization fee, excess fee) of a month from each day's limit, principal and activity."""
    interest = unused = excess = Fraction(0)
    for d in month:
        w, lim, p = _weight(d), Fraction(limit(d)), Fraction(principal(d))
        interest += p * RATE / 30 * w
        unused += max(lim - p, Fraction(0)) / 100 / 360 * w * active(d)
        excess += max(p - lim, Fraction(0)) / 100 / 30 * w
    return _due(interest), _due(unused), _due(excess)


def _lim_limit(d: date) -> int:
    return 1000 if d < LIMIT_RAISED else 1500 if d < LIMIT_LOWERED else 1300


def test_accruals_and_excess_use_the_limit_in_force_each_day(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select month_end, interest_due, unutilized_fee_due, excess_fee_due from marts.fct_od_month_end"
        " where od_account_id = 'LIM' order by month_end",
    )
    expected = [
        (m[-1], *_charges(m, _lim_limit, lambda d: 1200, lambda d: True))
        for m in (days(FIRST, JAN_END), days(date(2026, 2, 1), LAST))
    ]
    assert rows == expected
    # January: 14 days 200 over the limit (0.93), then 300 unused for 16 interest days (0.13)
    assert expected[0][2:] == (Decimal("0.13"), Decimal("0.93"))
    daily = dict(
        query(
            lifecycle_db,
            "select business_date, excess_amount from marts.fct_od_daily where od_account_id = 'LIM'"
            " and business_date in ('2026-01-14', '2026-01-15', '2026-02-10')",
        )
    )
    assert daily == {date(2026, 1, 14): 200, LIMIT_RAISED: 0, LIMIT_LOWERED: 0}


def test_closure_stops_the_unutilization_fee(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select interest_due, unutilized_fee_due from intermediate.int_od__charges_monthly"
        " where od_account_id = 'CLS' and month_end = %s",
        JAN_END,
    )
    interest, unused, _ = _charges(
        days(FIRST, JAN_END), lambda d: 500, lambda d: 100 if d < CLOSED else 0, lambda d: d < CLOSED
    )
    assert rows == [(interest, unused)] and unused == Decimal("0.10")


def test_the_fee_of_a_limit_change_is_checked_at_its_approval(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select od_account_id, month_end, approval_kind, processing_fee_due, net_fee_posted"
        " from intermediate.int_od__policy_facts_month_end where od_account_id in ('LIM', 'INC')"
        " order by 1, 2",
    )
    assert rows == [
        ("INC", JAN_END, "INCREASE", Decimal("20.00"), Decimal(10)),
        ("INC", LAST, "INCREASE", Decimal("20.00"), Decimal(10)),
        ("LIM", JAN_END, "INCREASE", Decimal("15.00"), Decimal(15)),
        ("LIM", LAST, "DECREASE", Decimal("0.00"), Decimal(0)),
    ]
    breaches = dict(
        query(
            lifecycle_db,
            "select od_account_id, policy_breaches from marts.fct_od_month_end where month_end = %s"
            " and od_account_id in ('LIM', 'INC')",
            LAST,
        )
    )
    assert breaches == {"INC": ["PROCESSING_FEE_NOT_COLLECTED"], "LIM": []}


def test_conversion_settlement_is_no_customer_credit_and_the_loan_is_counted_once(lifecycle_db: str) -> None:
    assert query(
        lifecycle_db,
        "select flow_class from intermediate.int_od__transactions_classified where txn_id = 'S1'",
    ) == [("SETTLEMENT",)]
    credits = query(
        lifecycle_db,
        "select customer_credits from intermediate.int_monitoring__od_activity_month_end"
        " where od_account_id = 'CNV' and month_end = %s",
        JAN_END,
    )
    assert credits == [(0,)]
    portfolio = query(
        lifecycle_db,
        "select od_outstanding_usd, term_loan_outstanding_usd, od_provision_usd, term_loan_provision_usd"
        " from marts.fct_portfolio_month_end where month_end = %s",
        JAN_END,
    )
    # OD: LIM 1,200 + INC 100 + CLB 50 (a closed OD with a balance is not hidden) + ACT 500; CNV is the term
    # loan's 2,500 (once); WOF's 780 is written off. Provisions 1% (Normal), but CLB's January charges fell due
    # on its closing date (5 January) and are unpaid: 26 days past due, Special Mention, 3%.
    od = Decimal(1200 + 100 + 50 + 500)
    provisions = Decimal(12 + 1 + 5) + Decimal("1.50")
    assert portfolio == [(od, Decimal(2500), provisions, Decimal(25))]


def test_write_off_amount_is_the_principal_of_the_day_before(lifecycle_db: str) -> None:
    written = query(
        lifecycle_db,
        "select written_off_on, amount_written_off, amount_written_off_usd"
        " from intermediate.int_quality__write_offs_month_end where account_id = 'WOF'",
    )
    assert written == [(WRITTEN_OFF, Decimal(800), Decimal(800))]
    par = query(
        lifecycle_db,
        "select written_off_usd from marts.fct_par_month_end where month_end = %s and product_family = 'OD'",
        JAN_END,
    )
    assert par == [(Decimal(800),)]


def test_review_list_shows_conversions_and_closed_accounts_with_a_balance(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select month_end, od_account_id, reason, amount from marts.rpt_review_list"
        " where reason in ('CONVERTED', 'CLOSED_WITH_BALANCE', 'CONVERSION_CANDIDATE') order by 1, 2, 3",
    )
    assert rows == [
        (JAN_END, "CLB", "CLOSED_WITH_BALANCE", Decimal(50)),
        (JAN_END, "CNV", "CONVERTED", Decimal(2500)),
        (LAST, "CLB", "CLOSED_WITH_BALANCE", Decimal(50)),
    ]


def test_lifecycle_details_in_khmer_then_english(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select reason, detail_params, currency from marts.rpt_review_list"
        " where month_end = %s and reason in ('CONVERTED', 'CLOSED_WITH_BALANCE', 'WRITTEN_OFF') order by reason",
        JAN_END,
    )
    texts = {reason: details.bilingual(reason, params, ccy, None).split("\n") for reason, params, ccy in rows}
    assert set(texts) == {"CONVERTED", "CLOSED_WITH_BALANCE", "WRITTEN_OFF"}
    assert all(len(t) == 2 and t[0] != t[1] for t in texts.values())  # Khmer first, then English
    assert "LNC" in texts["CONVERTED"][0] and "LNC" in texts["CONVERTED"][1]
    assert "2,500.00" in texts["CONVERTED"][1] and "no customer repayment" in texts["CONVERTED"][1]
    assert "Data error" in texts["CLOSED_WITH_BALANCE"][1] and "50.00" in texts["CLOSED_WITH_BALANCE"][1]
    assert "800.00" in texts["WRITTEN_OFF"][0] and "Written off on" in texts["WRITTEN_OFF"][1]


def test_converted_and_written_off_ods_leave_the_book_from_their_date(lifecycle_db: str) -> None:
    left_on = {"CNV": CONVERTED, "WOF": WRITTEN_OFF}
    graded = {
        (od, day): risk
        for od, day, *risk in query(
            lifecycle_db,
            "select od_account_id, business_date, days_past_due, nbc_grade, provision_amount, conversion_candidate"
            " from marts.fct_od_daily where od_account_id in ('CNV', 'WOF')",
        )
    }
    assert len(graded) == 2 * len(days(FIRST, LAST))  # the balance rows stay (the extract shows them)
    off_book = [None, None, Decimal(0), None]  # nothing graded, nothing provisioned
    assert all((risk == off_book) == (day >= left_on[od]) for (od, day), risk in graded.items())
    assert graded["CNV", CONVERTED - timedelta(days=1)] == [0, "Normal", Decimal(25), False]
    # the extract still shows 780 after the write-off: no grade, a provision of 0 on it
    assert graded["WOF", WRITTEN_OFF - timedelta(days=1)] == [0, "Normal", Decimal(8), False]
    month_ends = query(
        lifecycle_db,
        "select od_account_id, month_end, nbc_grade, provision_amount_usd from marts.fct_od_month_end"
        " where od_account_id in ('CNV', 'WOF') order by 1, 2",
    )
    # the month-end gate needs every USD equivalent: a provision of 0 has one
    assert month_ends == [(od, m, None, Decimal(0)) for od in ("CNV", "WOF") for m in (JAN_END, LAST)]


def test_review_list_stops_at_the_conversion_and_the_write_off(lifecycle_db: str) -> None:
    rows = query(
        lifecycle_db,
        "select month_end, od_account_id, reason from marts.rpt_review_list"
        " where od_account_id in ('CNV', 'WOF', 'ACT') and reason <> 'RECONCILIATION' order by 1, 2, 3",
    )
    # CNV only as converted (its SYSTEM settlement is no customer credit, yet no INSUFFICIENT_INFLOW); WOF,
    # graded Normal until the day before, only as written off in its month, then not at all. ACT, drawn like WOF and without a
    # customer transaction either, is listed both months (in February also for its grade: charges unpaid).
    ordinary = [(m, "ACT", r) for m in (JAN_END, LAST) for r in ("INSUFFICIENT_INFLOW", "NO_TRANSACTION")]
    lifecycle = [(JAN_END, "CNV", "CONVERTED"), (JAN_END, "WOF", "WRITTEN_OFF")]
    assert rows == sorted([*ordinary, (LAST, "ACT", "GRADE"), *lifecycle])
    written_off = query(
        lifecycle_db,
        "select amount from marts.rpt_review_list where reason = 'WRITTEN_OFF' and od_account_id = 'WOF'",
    )
    assert written_off == [(Decimal(800),)]
