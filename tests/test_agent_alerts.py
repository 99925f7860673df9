"""Daily agent monitoring (rulebook H): marts.fct_agent_alerts from a scripted portfolio in a real PostgreSQL.

The portfolio (``support.raw.ScriptedPortfolio``) is written into ``raw`` as one load per business date and
dbt builds ``+fct_agent_alerts`` with its data tests.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from support.database import query, query_dicts
from support.dbt import build
from support.raw import ScriptedPortfolio

D = Decimal
JAN = [date(2026, 1, 1) + timedelta(days=i) for i in range(20)]


def build_alerts(url: str, work_dir: Path, *extra_args: str) -> None:
    build(url, "+fct_agent_alerts", work_dir, *extra_args, data_tests=True)


def agent_portfolio() -> ScriptedPortfolio:
    """Twenty days of January 2026; each agent exercises one edge of the alert rules."""
    p = ScriptedPortfolio()
    for customer in ["G1", "G2", "G3", "G4", "G5", "G6"]:
        p.customer(customer)
    p.customer("S1", "SME", officer="CM2")
    for od, customer in [("A1", "G1"), ("A2", "G2"), ("A3", "G3"), ("A5", "G5"), ("A6", "G6"), ("X1", "S1")]:
        p.account(od, customer, "1000.00")
        p.balances(od, JAN, "500.00")
    p.account("A4", "G4", "10000.00")
    p.balances("A4", JAN, "2000.00")
    # A1: excess on the 5th-7th, normal on the 8th -> open exactly 3 days, closed, not escalated
    p.balances("A1", JAN[4:7], "1200.00")
    # A2: excess on the 5th-8th -> open 4 days: escalated on the 8th, closed on the 9th
    p.balances("A2", JAN[4:8], "1000.01")
    # A3: a cash withdrawal reversed the same day (not abnormal); one kept (12th); one reversed a day later
    p.txn("W1", "A3", JAN[9], "CASH_WITHDRAWAL", "50.00")
    p.txn("W1R", "A3", JAN[9], "REVERSAL", "50.00", reverses="W1", direction="CREDIT")
    p.txn("W2", "A3", JAN[11], "CASH_WITHDRAWAL", "80.00")
    p.txn("W3", "A3", JAN[14], "CASH_WITHDRAWAL", "90.00")
    p.txn("W3R", "A3", JAN[15], "REVERSAL", "90.00", reverses="W3", direction="CREDIT")
    # A4: drawdowns of 100 on the 1st-10th (the 1st has no history); 301 on the 11th (> 3 x 100: abnormal);
    # 350 on the 13th is below 3 x the new average (1,301 / 11 = 118.27) -> normal; a same-day reversed
    # drawdown of 5,000 on the 15th is no drawdown at all
    for i in range(10):
        p.txn(f"D{i}", "A4", JAN[i], "DRAWDOWN", "100.00")
    p.txn("D10", "A4", JAN[10], "DRAWDOWN", "301.00")
    p.txn("D12", "A4", JAN[12], "DRAWDOWN", "350.00")
    p.txn("D14", "A4", JAN[14], "DRAWDOWN", "5000.00")
    p.txn("D14R", "A4", JAN[14], "REVERSAL", "5000.00", reverses="D14", direction="CREDIT")
    # A5: excess from the 17th to the last loaded day (20th): still open after 4 days -> ESCALATED
    p.balances("A5", JAN[16:], "1500.00")
    # A6: excess from the 18th: open 3 days -> OPEN; a cash withdrawal on the 19th adds its reason
    p.balances("A6", JAN[17:], "1100.00")
    p.txn("W6", "A6", JAN[18], "CASH_WITHDRAWAL", "20.00")
    # X1 is not an agent OD: excess and a cash withdrawal raise no agent alert
    p.balances("X1", JAN[2:6], "1500.00")
    p.txn("WX", "X1", JAN[3], "CASH_WITHDRAWAL", "500.00")
    return p


ALERTS_SQL = """
select customer_id, od_account_id, officer_id, regional_manager_id, assigned_to_id, branch_code, reason,
       opened_on, last_abnormal_on, closed_on, days_open, escalated, escalated_on, status
from marts.fct_agent_alerts
order by customer_id, opened_on
"""


def expected_alert(
    customer: str,
    account: str,
    assigned_to: str,
    reason: str,
    dates: tuple[date, date, date | None],
    days_open: int,
    escalated_on: date | None,
    status: str,
) -> tuple[Any, ...]:
    """A row of ALERTS_SQL for an agent of CM1 (regional manager RM1, branch B01); ``dates`` = (opened on,
    last abnormal on, closed on)."""
    escalated = escalated_on is not None
    return (
        customer,
        account,
        "CM1",
        "RM1",
        assigned_to,
        "B01",
        reason,
        *dates,
        days_open,
        escalated,
        escalated_on,
        status,
    )


def expected_alerts() -> list[tuple[Any, ...]]:
    j = JAN
    return [
        expected_alert("G1", "A1", "CM1", "EXCESS", (j[4], j[6], j[7]), 3, None, "CLOSED"),
        expected_alert("G2", "A2", "RM1", "EXCESS", (j[4], j[7], j[8]), 4, j[7], "CLOSED"),
        expected_alert("G3", "A3", "CM1", "CASH_WITHDRAWAL", (j[11], j[11], j[12]), 1, None, "CLOSED"),
        expected_alert("G3", "A3", "CM1", "CASH_WITHDRAWAL", (j[14], j[14], j[15]), 1, None, "CLOSED"),
        expected_alert("G4", "A4", "CM1", "ABNORMAL_DRAWDOWN", (j[10], j[10], j[11]), 1, None, "CLOSED"),
        expected_alert("G5", "A5", "RM1", "EXCESS", (j[16], j[19], None), 4, j[19], "ESCALATED"),
        expected_alert("G6", "A6", "CM1", "CASH_WITHDRAWAL,EXCESS", (j[17], j[19], None), 3, None, "OPEN"),
    ]


def alerts(url: str) -> list[tuple[Any, ...]]:
    return query(url, ALERTS_SQL)


def test_agent_alerts_open_escalate_and_close(fresh_db, dbt_work):
    agent_portfolio().write(fresh_db, JAN)
    build_alerts(fresh_db, dbt_work)

    assert alerts(fresh_db) == expected_alerts()
    rows = {
        (r["customer_id"], r["opened_on"]): r
        for r in query_dicts(fresh_db, "select * from marts.fct_agent_alerts")
    }
    assert rows["G4", JAN[10]]["detail"] == "1 day(s) with an abnormal drawdown, largest USD 301.00"
    assert rows["G6", JAN[17]]["detail"] == (
        "1 day(s) with a cash withdrawal, total USD 20.00; 3 day(s) in excess, peak USD 100.00"
    )
    assert {r["as_of_date"] for r in rows.values()} == {JAN[-1]}
    assert all(r["parameter_version"].startswith("agent_alert_escalation_days@") for r in rows.values())
    threshold = query_dicts(
        fresh_db,
        "select trailing_drawdowns, trailing_average_drawdown, drawdown_threshold"
        " from intermediate.int_monitoring__agent_abnormal_days where od_account_id = 'A4'",
    )
    expected = {
        "trailing_drawdowns": 10,
        "trailing_average_drawdown": D("100"),
        "drawdown_threshold": D("300"),
    }
    assert threshold == [expected]
    # an agent's quiet day is no row (decision 0068): the agent-days are those with excess or a flow
    agent_days = query_dicts(
        fresh_db,
        "select od_account_id, business_date, is_excess, cash_withdrawals, drawdowns"
        " from intermediate.int_monitoring__agent_days",
    )
    assert agent_days, "no agent-day at all"
    assert all(d["is_excess"] or d["cash_withdrawals"] or d["drawdowns"] for d in agent_days)
    assert ("A1", JAN[7]) not in {(d["od_account_id"], d["business_date"]) for d in agent_days}


@pytest.mark.slow
def test_incremental_days_and_a_redelivery_equal_a_full_refresh(fresh_db, dbt_work):
    portfolio = agent_portfolio()
    portfolio.write(fresh_db, JAN[:9])
    build_alerts(fresh_db, dbt_work)
    portfolio.write(fresh_db, JAN[9:])
    build_alerts(fresh_db, dbt_work)
    assert alerts(fresh_db) == expected_alerts()

    # the 6th and the 12th are delivered again: A1 back under its limit on the 6th splits G1's alert in two;
    # the 12th loses G3's cash withdrawal, its only abnormal account-day and the date's only active agent-day
    # (the stale rows must go, though the date now has no agent-day at all)
    portfolio.balances("A1", [JAN[5]], "1000.00")
    events = portfolio.events["od_transactions", JAN[11]]
    events[:] = [e for e in events if e["txn_id"] != "W2"]
    portfolio.write(fresh_db, [JAN[5], JAN[11]])
    build_alerts(fresh_db, dbt_work)
    incremental = alerts(fresh_db)
    abnormal_sql = "select * from intermediate.int_monitoring__agent_abnormal_days order by 1, 2"
    abnormal_days = query_dicts(fresh_db, abnormal_sql)
    agent_days_sql = "select * from intermediate.int_monitoring__agent_days order by 1, 2"
    agent_days = query_dicts(fresh_db, agent_days_sql)
    assert JAN[11] not in {d["business_date"] for d in agent_days}
    opened = {(a[0], a[7]): (a[9], a[10]) for a in incremental if a[0] in ("G1", "G3")}
    assert opened == {("G1", JAN[4]): (JAN[5], 1), ("G1", JAN[6]): (JAN[7], 1), ("G3", JAN[14]): (JAN[15], 1)}

    build_alerts(fresh_db, dbt_work, "--full-refresh")
    assert incremental == alerts(fresh_db)
    assert abnormal_days == query_dicts(fresh_db, abnormal_sql)
    assert agent_days == query_dicts(fresh_db, agent_days_sql)


def test_dims_walk_the_manager_chain(fresh_db, dbt_work):
    ScriptedPortfolio().write(fresh_db, JAN[:2])
    build(fresh_db, "+dim_officers +dim_branches", dbt_work, data_tests=True)
    officers = query_dicts(fresh_db, "select * from marts.dim_officers order by officer_id")
    chain = {
        r["officer_id"]: (r["manager_id"], r["senior_manager_id"], r["regional_manager_id"]) for r in officers
    }
    assert chain == {
        "CM1": ("AM1", "SM1", "RM1"),
        "CM2": ("AM2", "SM1", "RM1"),
        "AM1": ("SM1", "SM1", "RM1"),
        "AM2": ("SM1", "SM1", "RM1"),
        "SM1": ("RM1", None, "RM1"),
        "RM1": (None, None, None),
    }
    assert {r["as_of_date"] for r in officers} == {JAN[1]}
    branches = query_dicts(
        fresh_db, "select branch_code, province, region_name from marts.dim_branches order by 1"
    )
    assert branches == [
        {"branch_code": "B01", "province": "Phnom Penh", "region_name": "Central"},
        {"branch_code": "B02", "province": "Battambang", "region_name": "North-West"},
    ]
