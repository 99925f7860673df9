"""Accruals and month-end charges end to end: scripted accounts written into raw, dbt built, values checked
against arithmetic done by hand here (rulebook B and C, docs/policy-engine.md "Accruals and charges").

``RawDays`` writes raw rows the way the loader does (one load id per business date, contract columns from
``odwh.contract``); tests/test_marts_reconciliation.py reuses it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from odwh import contract, transform, warehouse
from psycopg import sql

TABLES = {f.table: f for f in contract.FILES}
D = Decimal
ONE_PERCENT = D("0.01")


def q20(value: Decimal) -> Decimal:
    """``value`` at the 20 decimals the daily accruals keep."""
    return value.quantize(D("1e-20"))


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(n) for n in range((last - first).days + 1)]


@dataclass
class Account:
    """An OD facility as the od_accounts snapshot delivers it (contract column names)."""

    od_account_id: str
    currency: str
    limit_amount: Decimal
    monthly_interest_rate: Decimal
    excess_fee_rate_monthly: Decimal = ONE_PERCENT
    unutilized_fee_rate_annual: Decimal = ONE_PERCENT
    start_date: date = date(2023, 12, 1)
    maturity_date: date = date(2024, 11, 30)
    status: str = "ACTIVE"
    closed_on: date | None = None
    customer_id: str = field(default="")
    approved_on: date = date(2023, 11, 25)
    processing_fee_rate: Decimal = ONE_PERCENT
    collateral_type: str = "NONE"
    purpose: str = "WORKING_CAPITAL"
    restructured: bool = False

    def __post_init__(self) -> None:
        self.customer_id = self.customer_id or "C" + self.od_account_id


def insert_raw(
    conn: psycopg.Connection, table: str, day: date, load_id: int, rows: Iterable[dict[str, Any]]
) -> None:
    """Insert rows into raw.<table> as one delivery of ``day``; unknown column names fail, missing ones are null."""
    allowed = [c.name for c in TABLES[table].columns if not c.pii]
    for number, row in enumerate(rows, start=1):
        unknown = set(row) - set(allowed)
        assert not unknown, f"raw.{table}: no contract column {sorted(unknown)}"
        names = [*row, "_business_date", "_load_id", "_row_number"]
        values = [*row.values(), day, load_id, number]
        statement = sql.SQL("insert into {} ({}) values ({})").format(
            sql.Identifier("raw", table),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(names)),
        )
        conn.execute(statement, values)


Principal = Callable[[str, date], Decimal | None]  # None: no balance row for the account that day


@dataclass
class RawDays:
    """Deliveries of scripted accounts: one load per business date, snapshots repeated every day."""

    url: str
    accounts: list[Account]
    principal: Principal
    transactions: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    khr_per_unit: dict[str, Decimal] = field(
        default_factory=lambda: {"KHR": D(1), "USD": D(4100), "THB": D("118.5")}
    )

    def load(self, business_dates: Iterable[date]) -> None:
        with psycopg.connect(self.url) as conn:
            for day in business_dates:
                self._load_day(conn, day)
            conn.commit()

    def _load_day(self, conn: psycopg.Connection, day: date) -> None:
        conn.execute("update meta.loads set superseded_at = now() where business_date = %s", (day,))
        load_id = conn.execute(
            "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256, rows_loaded)"
            " values (%s, 'test', 'test', 'test', 0) returning load_id",
            (day,),
        ).fetchone()[0]  # type: ignore[index]
        for f in contract.FILES:  # a re-delivered date replaces every row of that date
            table = sql.Identifier("raw", f.table)
            conn.execute(sql.SQL("delete from {} where _business_date = %s").format(table), (day,))
        branches = [{"branch_code": "B01", "branch_name": "Main", "province": "PP", "region_code": "R1",
                     "region_name": "Central"}]  # fmt: skip
        insert_raw(conn, "branches", day, load_id, branches)
        insert_raw(conn, "officers", day, load_id, [{"officer_id": "O01", "officer_name": "Dara", "role": "CM",
                                                     "branch_code": "B01"}])  # fmt: skip
        customers = [
            {"customer_id": a.customer_id, "customer_type": "SME", "legal_form": "INDIVIDUAL",
             "customer_name": a.customer_id, "branch_code": "B01", "officer_id": "O01",
             "registered_on": date(2020, 1, 1)}
            for a in self.accounts
        ]  # fmt: skip
        insert_raw(conn, "customers", day, load_id, customers)
        insert_raw(conn, "od_accounts", day, load_id, [asdict(a) for a in self.accounts])
        balances = [
            {"od_account_id": a.od_account_id, "business_date": day, "principal_outstanding": p,
             "interest_receivable": D(0), "fees_receivable": D(0)}
            for a in self.accounts
            if (p := self.principal(a.od_account_id, day)) is not None
        ]  # fmt: skip
        insert_raw(conn, "od_balances", day, load_id, balances)
        rates = [
            {"business_date": day, "currency": c, "khr_per_unit": r} for c, r in self.khr_per_unit.items()
        ]
        insert_raw(conn, "fx_rates", day, load_id, rates)
        txns = [{"business_date": day, "channel": "SYSTEM", **t} for t in self.transactions.get(day, [])]
        insert_raw(conn, "od_transactions", day, load_id, txns)


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new migrated database on the test server (like the ``fresh_db`` fixture, for wider scopes)."""
    name = f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    warehouse.migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def build(url: str, select: str, work_dir: Path, *extra: str) -> None:
    """Seeds and models of ``select`` (data and unit tests are the dbt suite's business, not these tests')."""
    resource_types = ["--resource-type", "seed", "--resource-type", "model"]
    transform.run_dbt(["build", "--select", select, *resource_types, *extra], url, work_dir=work_dir)


def query(url: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


# --- the scripted accounts -----------------------------------------------------------------------------------

JAN, FEB = date(2024, 1, 31), date(2024, 2, 29)  # 2024 is a leap year

USD_OVER = Account("U1", "USD", D(800), D("0.015"))  # 1,000 drawn on an 800 limit all of January and February
KHR_EXCESS = Account("K1", "KHR", D(10_000_000), D("0.0125"), excess_fee_rate_monthly=D("0.02"))
USD_MATURING = Account("U2", "USD", D(1000), D("0.02"), unutilized_fee_rate_annual=D("0.012"),
                       maturity_date=date(2024, 1, 20))  # fmt: skip


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
        {"txn_id": "T1", "od_account_id": "U1", "txn_type": "INTEREST_CHARGE", "direction": "DEBIT",
         "amount": D("15.00")},
        {"txn_id": "T2", "od_account_id": "U1", "txn_type": "FEE_CHARGE", "direction": "DEBIT",
         "amount": D("2.01")},  # one cent off: within one rounding unit, no break
        {"txn_id": "T3", "od_account_id": "K1", "txn_type": "INTEREST_CHARGE", "direction": "DEBIT",
         "amount": D(100_002)},  # two riel off: a break
        {"txn_id": "T4", "od_account_id": "K1", "txn_type": "FEE_CHARGE", "direction": "DEBIT",
         "amount": D(22_500)},
        {"txn_id": "T5", "od_account_id": "U2", "txn_type": "INTEREST_CHARGE", "direction": "DEBIT",
         "amount": D("5.00")},
        {"txn_id": "T6", "od_account_id": "U2", "txn_type": "FEE_CHARGE", "direction": "DEBIT",
         "amount": D("0.50")},
        {"txn_id": "T7", "od_account_id": "U2", "txn_type": "FEE_CHARGE", "direction": "DEBIT",
         "amount": D("9.99")},  # posted by mistake, reversed on 2 February: counts in neither month
    ],
    date(2024, 2, 2): [
        {"txn_id": "T8", "od_account_id": "U2", "txn_type": "REVERSAL", "direction": "CREDIT",
         "amount": D("9.99"), "reversed_txn_id": "T7"},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def scripted_db(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """January and February 2024 of the scripted accounts, built once for the module's tests."""
    with throwaway_database(server_url) as url:
        RawDays(url, [USD_OVER, KHR_EXCESS, USD_MATURING], principal, CORE_CHARGES).load(
            days(date(2024, 1, 1), FEB)
        )
        build(url, "+int_od__charges_monthly", tmp_path_factory.mktemp("dbt"))
        yield url


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
