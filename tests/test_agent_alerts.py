"""Daily agent monitoring (rulebook H): marts.fct_agent_alerts from a scripted portfolio in a real PostgreSQL.

The portfolio is written straight into ``raw`` (one load id per business date, as the loader would) and dbt
builds ``+fct_agent_alerts``. ``RawPortfolio`` is shared with ``test_review_list.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from odwh import contract, transform
from psycopg import sql

D = Decimal
JAN = [date(2026, 1, 1) + timedelta(days=i) for i in range(20)]


class RawPortfolio:
    """Raw rows of a scripted portfolio: snapshots repeated on every day, events on their own day.

    Reference data (two branches, the chain CM -> AM -> SM -> RM, FX) is there from the start; add customers
    and accounts with :meth:`customer` / :meth:`account`, balances with :meth:`balances` and events with
    :meth:`txn`; then :meth:`write` the days to the database.
    """

    def __init__(self) -> None:
        self.snapshots: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.events: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
        self.principal: dict[tuple[str, date], Decimal] = {}
        self.snapshots["branches"] = [
            {"branch_code": "B01", "branch_name": "Phnom Penh Main", "province": "Phnom Penh",
             "region_code": "R1", "region_name": "Central"},
            {"branch_code": "B02", "branch_name": "Battambang", "province": "Battambang",
             "region_code": "R2", "region_name": "North-West"},
        ]  # fmt: skip
        for officer_id, role, branch, manager in [
            ("RM1", "RM", "B01", None), ("SM1", "SM", "B01", "RM1"), ("AM1", "AM", "B01", "SM1"),
            ("CM1", "CM", "B01", "AM1"), ("AM2", "AM", "B02", "SM1"), ("CM2", "CM", "B02", "AM2"),
        ]:  # fmt: skip
            self.snapshots["officers"].append(
                {"officer_id": officer_id, "officer_name": f"Officer {officer_id}", "role": role,
                 "branch_code": branch, "manager_id": manager}
            )  # fmt: skip

    def customer(self, customer_id: str, customer_type: str = "AGENT", officer: str = "CM1") -> None:
        branch = {"CM1": "B01", "CM2": "B02"}[officer]
        self.snapshots["customers"].append(
            {"customer_id": customer_id, "customer_type": customer_type, "legal_form": "INDIVIDUAL",
             "customer_name": f"Customer {customer_id}", "branch_code": branch, "officer_id": officer,
             "agent_since": date(2020, 1, 1) if customer_type == "AGENT" else None,
             "registered_on": date(2019, 6, 1)}
        )  # fmt: skip

    def account(self, od_account_id: str, customer_id: str, limit: str, **attributes: Any) -> None:
        row = {"od_account_id": od_account_id, "customer_id": customer_id, "currency": "USD",
               "limit_amount": D(limit), "approved_on": date(2025, 6, 1), "start_date": date(2025, 6, 1),
               "maturity_date": date(2026, 5, 31), "monthly_interest_rate": D("0.015"),
               "processing_fee_rate": D("0.01"), "excess_fee_rate_monthly": D("0.01"),
               "unutilized_fee_rate_annual": D("0.01"), "collateral_type": "NONE",
               "purpose": "WORKING_CAPITAL", "restructured": False, "status": "ACTIVE"}  # fmt: skip
        self.snapshots["od_accounts"].append(row | attributes)

    def balances(self, od_account_id: str, days: Iterable[date], principal: str) -> None:
        for day in days:
            self.principal[od_account_id, day] = D(principal)

    def txn(self, txn_id: str, od_account_id: str, day: date, txn_type: str, amount: str,
            reverses: str | None = None, direction: str | None = None) -> None:  # fmt: skip
        debit = txn_type in ("DRAWDOWN", "CASH_WITHDRAWAL", "TRANSFER_OUT", "INTEREST_CHARGE", "FEE_CHARGE",
                             "PROCESSING_FEE", "INTEREST_CAPITALIZATION")  # fmt: skip
        self.events["od_transactions", day].append(
            {"txn_id": txn_id, "od_account_id": od_account_id, "business_date": day, "txn_type": txn_type,
             "direction": direction or ("DEBIT" if debit else "CREDIT"), "amount": D(amount),
             "channel": "SYSTEM" if reverses else "AGENT", "reversed_txn_id": reverses}
        )  # fmt: skip

    def rows(self, day: date) -> Iterator[tuple[str, dict[str, Any]]]:
        for table, rows in self.snapshots.items():
            for row in rows:
                yield table, row
        yield "fx_rates", {"business_date": day, "currency": "KHR", "khr_per_unit": D(1)}
        yield "fx_rates", {"business_date": day, "currency": "USD", "khr_per_unit": D(4000)}
        yield "fx_rates", {"business_date": day, "currency": "THB", "khr_per_unit": D(120)}
        for row in self.snapshots["od_accounts"]:
            principal = self.principal.get((row["od_account_id"], day), D(0))
            yield "od_balances", {"od_account_id": row["od_account_id"], "business_date": day,
                                  "principal_outstanding": principal, "interest_receivable": D(0),
                                  "fees_receivable": D(0)}  # fmt: skip
        for (table, event_day), rows in self.events.items():
            if event_day == day:
                for row in rows:
                    yield table, row

    def write(self, url: str, days: Iterable[date], first_load_id: int = 1) -> None:
        """Insert every file of each day as its own load (load ids ascending with the days); a day already
        loaded is replaced entirely, as a re-delivery is."""
        with psycopg.connect(url) as conn:
            for load_id, day in enumerate(days, start=first_load_id):
                for f in contract.FILES:
                    conn.execute(
                        sql.SQL("delete from raw.{} where _business_date = %s").format(
                            sql.Identifier(f.table)
                        ),
                        [day],
                    )
                numbers: dict[str, int] = defaultdict(int)
                for table, row in self.rows(day):
                    numbers[table] += 1
                    names = [c.name for c in contract.FILES_BY_NAME[f"{table}.csv"].columns if not c.pii]
                    columns = [*names, "_business_date", "_load_id", "_row_number"]
                    statement = sql.SQL("insert into raw.{} ({}) values ({})").format(
                        sql.Identifier(table),
                        sql.SQL(", ").join(map(sql.Identifier, columns)),
                        sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                    )
                    conn.execute(statement, [*(row.get(n) for n in names), day, load_id, numbers[table]])


def build(url: str, work_dir: Path, select: str, *extra: str) -> None:
    """Build the selected models with their upstream seeds and data tests (unit tests run on their own).

    Cautious indirect selection: a relationships test to a model outside the selection is left out.
    """
    options = [
        "--indirect-selection",
        "cautious",
        "--exclude-resource-type",
        "unit_test",
        "--exclude",
        "tag:raw_keys",
    ]
    transform.run_dbt(["build", "--select", select, *options, *extra], url, work_dir=work_dir)


@pytest.fixture(scope="module")
def dbt_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt target directory per module, so later invocations parse partially."""
    return tmp_path_factory.mktemp("dbt")


def query(url: str, sql: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(sql).fetchall()


def agent_portfolio() -> RawPortfolio:
    """Twenty days of January 2026; each agent exercises one edge of the alert rules."""
    p = RawPortfolio()
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


def expected_alerts() -> list[tuple[Any, ...]]:
    j = JAN
    return [
        ("G1", "A1", "CM1", "RM1", "CM1", "B01", "EXCESS", j[4], j[6], j[7], 3, False, None, "CLOSED"),
        ("G2", "A2", "CM1", "RM1", "RM1", "B01", "EXCESS", j[4], j[7], j[8], 4, True, j[7], "CLOSED"),
        ("G3", "A3", "CM1", "RM1", "CM1", "B01", "CASH_WITHDRAWAL", j[11], j[11], j[12], 1, False, None,
         "CLOSED"),
        ("G3", "A3", "CM1", "RM1", "CM1", "B01", "CASH_WITHDRAWAL", j[14], j[14], j[15], 1, False, None,
         "CLOSED"),
        ("G4", "A4", "CM1", "RM1", "CM1", "B01", "ABNORMAL_DRAWDOWN", j[10], j[10], j[11], 1, False, None,
         "CLOSED"),
        ("G5", "A5", "CM1", "RM1", "RM1", "B01", "EXCESS", j[16], j[19], None, 4, True, j[19], "ESCALATED"),
        ("G6", "A6", "CM1", "RM1", "CM1", "B01", "CASH_WITHDRAWAL,EXCESS", j[17], j[19], None, 3, False, None,
         "OPEN"),
    ]  # fmt: skip


def alerts(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(ALERTS_SQL).fetchall()


def test_agent_alerts_open_escalate_and_close(fresh_db, dbt_work):
    agent_portfolio().write(fresh_db, JAN)
    build(fresh_db, dbt_work, "+fct_agent_alerts")

    assert alerts(fresh_db) == expected_alerts()
    rows = {
        (r["customer_id"], r["opened_on"]): r for r in query(fresh_db, "select * from marts.fct_agent_alerts")
    }
    assert rows["G4", JAN[10]]["detail"] == "1 day(s) with an abnormal drawdown, largest USD 301.00"
    assert rows["G6", JAN[17]]["detail"] == (
        "1 day(s) with a cash withdrawal, total USD 20.00; 3 day(s) in excess, peak USD 100.00"
    )
    assert {r["as_of_date"] for r in rows.values()} == {JAN[-1]}
    assert all(r["parameter_version"].startswith("agent_alert_escalation_days@") for r in rows.values())
    threshold = query(
        fresh_db,
        "select trailing_drawdowns, trailing_average_drawdown, drawdown_threshold"
        " from intermediate.int_monitoring__agent_abnormal_days where od_account_id = 'A4'",
    )
    assert threshold == [{"trailing_drawdowns": 10, "trailing_average_drawdown": D("100"),
                          "drawdown_threshold": D("300")}]  # fmt: skip


@pytest.mark.slow
def test_incremental_days_and_a_redelivery_equal_a_full_refresh(fresh_db, dbt_work):
    portfolio = agent_portfolio()
    portfolio.write(fresh_db, JAN[:9])
    build(fresh_db, dbt_work, "+fct_agent_alerts")
    portfolio.write(fresh_db, JAN[9:], first_load_id=10)
    build(fresh_db, dbt_work, "+fct_agent_alerts")
    assert alerts(fresh_db) == expected_alerts()

    # the 6th and the 12th are delivered again: A1 back under its limit on the 6th splits G1's alert in two;
    # the 12th loses G3's cash withdrawal, its only abnormal account-day (the stale row must go)
    portfolio.balances("A1", [JAN[5]], "1000.00")
    events = portfolio.events["od_transactions", JAN[11]]
    events[:] = [e for e in events if e["txn_id"] != "W2"]
    portfolio.write(fresh_db, [JAN[5], JAN[11]], first_load_id=30)
    build(fresh_db, dbt_work, "+fct_agent_alerts")
    incremental = alerts(fresh_db)
    abnormal_sql = "select * from intermediate.int_monitoring__agent_abnormal_days order by 1, 2"
    abnormal_days = query(fresh_db, abnormal_sql)
    opened = {(a[0], a[7]): (a[9], a[10]) for a in incremental if a[0] in ("G1", "G3")}
    assert opened == {("G1", JAN[4]): (JAN[5], 1), ("G1", JAN[6]): (JAN[7], 1), ("G3", JAN[14]): (JAN[15], 1)}

    build(fresh_db, dbt_work, "+fct_agent_alerts", "--full-refresh")
    assert incremental == alerts(fresh_db)
    assert abnormal_days == query(fresh_db, abnormal_sql)


def test_dims_walk_the_manager_chain(fresh_db, dbt_work):
    RawPortfolio().write(fresh_db, JAN[:2])
    build(fresh_db, dbt_work, "+dim_officers +dim_branches")
    officers = query(fresh_db, "select * from marts.dim_officers order by officer_id")
    chain = {
        r["officer_id"]: (r["manager_id"], r["senior_manager_id"], r["regional_manager_id"]) for r in officers
    }
    assert chain == {
        "CM1": ("AM1", "SM1", "RM1"), "CM2": ("AM2", "SM1", "RM1"), "AM1": ("SM1", "SM1", "RM1"),
        "AM2": ("SM1", "SM1", "RM1"), "SM1": ("RM1", None, "RM1"), "RM1": (None, None, None),
    }  # fmt: skip
    assert {r["as_of_date"] for r in officers} == {JAN[1]}
    branches = query(fresh_db, "select branch_code, province, region_name from marts.dim_branches order by 1")
    assert branches == [
        {"branch_code": "B01", "province": "Phnom Penh", "region_name": "Central"},
        {"branch_code": "B02", "province": "Battambang", "region_name": "North-West"},
    ]


def test_monitoring_unit_tests_pass(fresh_db, dbt_work):
    """The dbt unit tests (given/expect) of the agent monitoring models, on an empty warehouse."""
    transform.run_dbt(["seed"], fresh_db, work_dir=dbt_work)
    transform.run_dbt(["run", "--select", "+fct_agent_alerts"], fresh_db, work_dir=dbt_work)
    models = [
        "int_monitoring__officer_chains",
        "int_monitoring__agent_days",
        "int_monitoring__agent_abnormal_days",
        "fct_agent_alerts",
    ]
    selection = [f"test_type:unit,{model}" for model in models]
    result = transform.run_dbt(["test", "--select", *selection], fresh_db, work_dir=dbt_work)
    assert len(result.result.results) == 4
