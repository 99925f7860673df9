"""Monthly review list (rulebook H): marts.rpt_review_list from a scripted portfolio in a real PostgreSQL.

History runs from 29 December 2025 to 28 February 2026, so December is only partly observed, January and
February fully, and the 60-day stagnation window is evaluable on 28 February. Every account that should stay
off the list repays something each month and touches a zero balance once (no stagnant portion).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.database import query_dicts
from support.dbt import build
from support.raw import ScriptedPortfolio

D = Decimal
DAYS = [date(2025, 12, 29) + timedelta(days=i) for i in range(62)]
DEC, JAN, FEB = date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 28)


ZERO_RATES = {
    "monthly_interest_rate": D(0),
    "excess_fee_rate_monthly": D(0),
    "unutilized_fee_rate_annual": D(0),
}
REVIEW_SQL = "select * from marts.rpt_review_list"


def days(first: date, last: date) -> list[date]:
    return [d for d in DAYS if first <= d <= last]


def quiet_account(
    p: ScriptedPortfolio, od: str, customer: str, zero_on: date = date(2026, 1, 10), **attributes: Any
) -> None:
    """An account with a customer repayment every month and one zero-balance day (never stagnant)."""
    p.account(od, customer, "1000.00", **attributes)
    p.balances(od, DAYS, "500.00")
    p.balances(od, [zero_on], "0")
    for month in (1, 2):
        p.txn(f"{od}-R{month}", od, date(2026, month, 5), "REPAYMENT", "10.00")


def interest_account(p: ScriptedPortfolio, od: str, customer: str) -> None:
    """1% a month on 500.00: 0.33 due on 31 Dec (two interest days), 5.00 in January and February."""
    p.account(od, customer, "1000.00", **(ZERO_RATES | {"monthly_interest_rate": D("0.01")}))
    p.balances(od, DAYS, "500.00")
    p.balances(od, [JAN], "0")  # day 31 weighs 0 in 30E/360: no effect on January's interest
    p.txn(f"{od}-IC0", od, DEC, "INTEREST_CHARGE", "0.33")
    p.txn(f"{od}-R0", od, DEC, "REPAYMENT", "0.33")
    p.txn(f"{od}-IC1", od, JAN, "INTEREST_CHARGE", "5.00")
    p.txn(f"{od}-R1", od, JAN, "REPAYMENT", "5.00")


def review_portfolio() -> ScriptedPortfolio:
    p = ScriptedPortfolio()
    for customer in ["E1", "E2", "N1", "Q1", "K1", "R1", "M1", "M2", "M3", "M4", "B1", "V1", "LR"]:
        p.customer(customer, "SME", officer="CM2" if customer in ("M1", "M2", "M3", "M4") else "CM1")
    p.customer("V2", "AGENT")
    plain = ZERO_RATES
    # EXCESS from 10 to 28 February (19 days, 200.00 over; 1.40 excess fee) -> GRADE Normal -> Special Mention
    quiet_account(p, "E1", "E1", **(plain | {"excess_fee_rate_monthly": D("0.01")}))
    p.balances("E1", days(date(2026, 2, 10), FEB), "1200.00")
    p.txn("E1-FC", "E1", FEB, "FEE_CHARGE", "1.40")
    p.txn("E1-RF", "E1", FEB, "REPAYMENT", "1.40")
    # EXCESS from 20 January to 3 February: 12 days in January (peak 300.00), 3 in February (peak 250.00)
    quiet_account(p, "E2", "E2", **plain)
    p.balances("E2", days(date(2026, 1, 20), JAN), "1300.00")
    p.balances("E2", days(date(2026, 2, 1), date(2026, 2, 3)), "1250.00")
    # N1: no customer transaction in February, only the core's interest charge -> NO_TRANSACTION and
    # INSUFFICIENT_INFLOW; Q1: credits exactly equal to the charges (5.00 = 5.00) -> nothing
    for od in ("N1", "Q1", "K1"):
        interest_account(p, od, od)
    p.txn("N1-IC2", "N1", FEB, "INTEREST_CHARGE", "5.00")
    p.txn("Q1-IC2", "Q1", FEB, "INTEREST_CHARGE", "5.00")
    p.txn("Q1-R2", "Q1", FEB, "REPAYMENT", "5.00")
    # K1: the core charges 4.00 interest in February instead of 5.00 -> RECONCILIATION
    p.txn("K1-IC2", "K1", FEB, "INTEREST_CHARGE", "4.00")
    p.txn("K1-R2", "K1", FEB, "REPAYMENT", "5.00")
    # R1: February's only customer transaction is reversed two days later -> NO_TRANSACTION
    p.account("R1", "R1", "1000.00", **plain)
    p.balances("R1", DAYS, "500.00")
    p.balances("R1", [JAN], "0")
    p.txn("R1-R1", "R1", date(2026, 1, 5), "REPAYMENT", "10.00")
    p.txn("R1-D2", "R1", date(2026, 2, 10), "DRAWDOWN", "100.00")
    p.txn("R1-D2R", "R1", date(2026, 2, 12), "REVERSAL", "100.00", reverses="R1-D2", direction="CREDIT")
    # maturities: 1 March and 31 March (next month on 28 Feb), 1 April (not), 15 February (matured, drawn)
    maturities = {
        "M1": date(2026, 3, 1),
        "M2": date(2026, 3, 31),
        "M3": date(2026, 4, 1),
        "M4": date(2026, 2, 15),
    }
    for od, maturity in maturities.items():
        quiet_account(p, od, od, maturity_date=maturity, **plain)
    # B1: purpose REFINANCE and restructured -> BREACH at every month end
    quiet_account(p, "B1", "B1", purpose="REFINANCE", restructured=True, **plain)
    # LR: January's only customer transaction is reversed on 3 February -> NO_TRANSACTION in January
    quiet_account(p, "LR", "LR", **plain)
    p.events["od_transactions", date(2026, 1, 5)] = [
        e for e in p.events["od_transactions", date(2026, 1, 5)] if e["txn_id"] != "LR-R1"
    ]
    p.txn("LR-J", "LR", date(2026, 1, 6), "REPAYMENT", "10.00")
    p.txn("LR-JR", "LR", date(2026, 2, 3), "REVERSAL", "10.00", reverses="LR-J", direction="DEBIT")
    # V1 (USD) and V2 (agent, KHR): drawn and never repaid -> CONVERSION_CANDIDATE on 28 Feb (window evaluable)
    p.account("V1", "V1", "1000.00", **plain)
    p.balances("V1", DAYS, "800.00")
    p.account("V2", "V2", "20000000", currency="KHR", purpose="AGENT_LIQUIDITY", **plain)
    p.balances("V2", DAYS, "16000000")
    return p


EXPECTED_ITEMS = {  # month end -> "account REASON" items of its review list
    DEC: ["B1 BREACH"],
    JAN: [
        "B1 BREACH",
        "E2 EXCESS",
        "M4 MATURITY",
        "V1 NO_TRANSACTION",
        "V2 NO_TRANSACTION",
        "LR NO_TRANSACTION",
    ],
    FEB: [
        "B1 BREACH",
        "E1 EXCESS",
        "E1 GRADE",
        "E2 EXCESS",
        "N1 NO_TRANSACTION",
        "N1 INSUFFICIENT_INFLOW",
        "R1 NO_TRANSACTION",
        "M1 MATURITY",
        "M2 MATURITY",
        "M4 MATURITY",
        "K1 RECONCILIATION",
        "V1 NO_TRANSACTION",
        "V1 CONVERSION_CANDIDATE",
        "V2 NO_TRANSACTION",
        "V2 CONVERSION_CANDIDATE",
    ],
}
EXPECTED = {(month_end, *item.split()) for month_end, items in EXPECTED_ITEMS.items() for item in items}


def build_review_list(url: str, work_dir: Path, *extra_args: str) -> None:
    build(url, "+rpt_review_list", work_dir, *extra_args, data_tests=True)


def test_review_list_has_the_expected_accounts_and_reasons(fresh_db, dbt_work):
    review_portfolio().write(fresh_db, DAYS)
    build_review_list(fresh_db, dbt_work)

    rows = {(r["month_end"], r["od_account_id"], r["reason"]): r for r in query_dicts(fresh_db, REVIEW_SQL)}
    assert set(rows) == EXPECTED

    def row(month_end: date, od: str, reason: str) -> tuple[Any, ...]:
        r = rows[month_end, od, reason]
        return r["detail"], r["amount"], r["amount_usd"]

    assert row(FEB, "E1", "EXCESS") == (
        "19 days in excess, peak USD 200.00, excess fee USD 1.40",
        D(200),
        D(200),
    )
    assert row(FEB, "E1", "GRADE")[0] == "Normal -> Special Mention, 18 days past due"
    assert row(JAN, "E2", "EXCESS")[0] == "12 days in excess, peak USD 300.00, excess fee USD 0.00"
    assert row(FEB, "E2", "EXCESS")[:2] == ("3 days in excess, peak USD 250.00, excess fee USD 0.00", D(250))
    assert row(FEB, "N1", "INSUFFICIENT_INFLOW") == (
        "Customer credits USD 0.00 below the month's charges USD 5.00 (interest USD 5.00, fees USD 0.00)",
        D(5),
        D(5),
    )
    assert row(FEB, "N1", "NO_TRANSACTION")[0] == (
        "No customer transaction in the month; drawn USD 500.00, charges of the month USD 5.00"
    )
    assert row(FEB, "M1", "MATURITY")[0] == "Matures 2026-03-01 (next month), drawn USD 500.00"
    assert row(FEB, "M2", "MATURITY")[0] == "Matures 2026-03-31 (next month), drawn USD 500.00"
    assert row(FEB, "M4", "MATURITY")[0] == "Matured 2026-02-15, USD 500.00 still drawn (13 days)"
    assert row(JAN, "M4", "MATURITY")[0] == "Matures 2026-02-15 (next month), drawn USD 500.00"
    assert row(FEB, "K1", "RECONCILIATION") == (
        "Interest: warehouse USD 5.00, core USD 4.00; fees: warehouse USD 0.00, core USD 0.00",
        D(1),
        D(1),
    )
    assert row(FEB, "B1", "BREACH")[:2] == ("Breaches: REFINANCE_PURPOSE, RESTRUCTURED", D(1000))
    detail, amount, amount_usd = row(FEB, "V2", "CONVERSION_CANDIDATE")
    assert (amount, amount_usd) == (D(16000000), D(4000))
    assert detail.startswith("Stagnant KHR 16,000,000 (not repaid for 60 days); no net inflow over 60 days")
    assert "propose MSME term loan" in detail and detail.endswith("collateral required (agent OD)")
    assert "collateral" not in row(FEB, "V1", "CONVERSION_CANDIDATE")[0]

    routing = {
        (r["officer_id"], r["officer_name"], r["manager_id"], r["senior_manager_id"]) for r in rows.values()
    }
    assert routing == {("CM1", "Officer CM1", "AM1", "SM1"), ("CM2", "Officer CM2", "AM2", "SM1")}
    assert {r["branch_code"] for r in rows.values() if r["officer_id"] == "CM2"} == {"B02"}
    assert all(r["parameter_version"] and r["load_id"] for r in rows.values())


@pytest.mark.slow
def test_month_by_month_builds_equal_a_full_refresh(fresh_db, dbt_work):
    """January, then February (whose load reverses a January repayment) built incrementally = full refresh;
    then a corrected January date re-delivered after February's build redoes both month ends (the list is
    incremental by month end, macros/month_end_incremental.sql)."""
    portfolio = review_portfolio()
    january, february = [d for d in DAYS if d <= JAN], [d for d in DAYS if d > JAN]
    portfolio.write(fresh_db, january)
    build_review_list(fresh_db, dbt_work)
    assert {
        (r["month_end"], r["reason"]) for r in query_dicts(fresh_db, REVIEW_SQL) if r["od_account_id"] == "LR"
    } == set()
    portfolio.write(fresh_db, february)
    build_review_list(fresh_db, dbt_work)
    ordered = REVIEW_SQL + " order by month_end, od_account_id, reason"
    incremental = query_dicts(fresh_db, ordered)
    assert {(r["month_end"], r["od_account_id"], r["reason"]) for r in incremental} == EXPECTED

    build_review_list(fresh_db, dbt_work, "--full-refresh")
    assert query_dicts(fresh_db, ordered) == incremental

    # 25 January corrected: E2 was 1,450.00 drawn that day, so January's peak excess is 450.00
    portfolio.balances("E2", [date(2026, 1, 25)], "1450.00")
    portfolio.write(fresh_db, [date(2026, 1, 25)])
    build_review_list(fresh_db, dbt_work)
    corrected = query_dicts(fresh_db, ordered)
    excess = {
        r["month_end"]: r["amount"]
        for r in corrected
        if (r["od_account_id"], r["reason"]) == ("E2", "EXCESS")
    }
    assert excess == {JAN: D(450), FEB: D(250)}
    build_review_list(fresh_db, dbt_work, "--full-refresh")
    assert query_dicts(fresh_db, ordered) == corrected


@pytest.mark.slow
def test_a_late_application_restates_a_month_end_already_listed(fresh_db, dbt_work):
    """An application decided on 30 January and delivered in a re-delivery of 1 February, after both months
    were listed, is listed under January at the next build, as a full refresh lists it: the list rebuilds a
    month end whose social rows changed (macros/review_list_rebuild_from.sql, decision 0045)."""
    portfolio = review_portfolio()
    portfolio.write(fresh_db, DAYS)
    build_review_list(fresh_db, dbt_work)
    application = {
        "application_id": "AP1",
        "customer_id": "E1",
        "applied_on": date(2026, 1, 20),
        "decided_on": date(2026, 1, 30),
        "decision": "APPROVED",
        "currency": "USD",
        "amount": D(50_000),
        "purpose_activity": "TRADE",
        "business_purpose": True,
        "es_screened": False,
        "es_risk": None,
        "es_contract_signed": False,
        "es_mitigation_plan": False,
        "debt_service_ratio": D("0.2"),
        "cbc_checked": True,
    }
    portfolio.events["loan_applications", date(2026, 2, 1)].append(application)
    portfolio.write(fresh_db, [date(2026, 2, 1)])
    build_review_list(fresh_db, dbt_work)
    ordered = REVIEW_SQL + " order by month_end, od_account_id, reason"
    incremental = query_dicts(fresh_db, ordered)
    assert {(r["month_end"], r["reason"]) for r in incremental if r["od_account_id"] == "AP1"} == {
        (JAN, "ES_SCREENING")
    }
    build_review_list(fresh_db, dbt_work, "--full-refresh")
    assert query_dicts(fresh_db, ordered) == incremental
