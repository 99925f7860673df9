"""Raw-to-mart reconciliation of the OD facts, and incremental builds equal to a full refresh.

Scripted accounts are written into raw as one load per business date (support.raw.ScriptedAccounts), dbt
builds the marts, and the marts are reconciled with raw: one fct_od_daily row per current od_balances row
with the same principal, one fct_od_month_end row per account with a balance on each loaded month end.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from odwh import policy
from support.database import query
from support.dbt import build
from support.raw import Account, ScriptedAccounts, days, transaction

D = Decimal
FIRST, LAST = date(2024, 1, 1), date(2024, 3, 10)  # 70 days: month ends 31 Jan and 29 Feb are loaded
MARTS = "+fct_od_daily +fct_od_month_end"

ACCOUNTS = [
    Account("U1", "USD", D(800), D("0.015")),
    Account("U2", "USD", D(5000), D("0.018"), maturity_date=date(2024, 2, 15)),
    Account("K1", "KHR", D(10_000_000), D("0.0125"), excess_fee_rate_monthly=D("0.02")),
    Account("K2", "KHR", D(4_000_000), D("0.014"), start_date=date(2024, 1, 20)),  # first balance 20 Jan
    Account("T1", "THB", D(50_000), D("0.011"), status="ACTIVE", closed_on=date(2024, 2, 16)),
]


def principal(account: str, day: date) -> Decimal | None:
    n = (day - FIRST).days
    if account == "U1":
        return D("1000.00")
    if account == "U2":
        return D("3000.00") - 25 * (n % 40) if n < 60 else D("0.00")
    if account == "K1":
        return D(12_000_000) if 15 <= n < 41 else D(4_000_000) + 50_000 * (n % 7)
    if account == "K2":
        return None if day < date(2024, 1, 20) else D(1_000_000) + 100_000 * (n % 5)
    return None if day > date(2024, 2, 16) else D(20_000) + 1000 * (n % 9)  # T1 closes on 16 Feb


TRANSACTIONS = {
    date(2024, 1, 31): [
        transaction("C1", "U1", "INTEREST_CHARGE", "15.00"),
        transaction("C2", "K1", "INTEREST_CHARGE", "90000"),
    ],
    date(2024, 2, 5): [transaction("R1", "U2", "REPAYMENT", "500.00")],
}


@pytest.fixture(scope="module")
def built_db(module_db: str, dbt_work: Path) -> str:
    ScriptedAccounts(module_db, ACCOUNTS, principal, TRANSACTIONS).load(days(FIRST, LAST))
    build(module_db, MARTS, dbt_work)
    return module_db


def one(url: str, sql: str) -> Any:
    return query(url, sql)[0][0]


def test_daily_fact_reconciles_with_raw_balances(built_db):
    raw_count, raw_principal = query(
        built_db,
        "select count(*), sum(principal_outstanding) from raw.od_balances as b"
        " join meta.loads as l on l.load_id = b._load_id and l.superseded_at is null",
    )[0]
    fact_count, fact_principal = query(
        built_db, "select count(*), sum(principal_outstanding) from marts.fct_od_daily"
    )[0]
    assert fact_count == raw_count == 70 * 2 + 70 + (70 - 19) + 47
    assert fact_principal == raw_principal
    # per date too, so one date's surplus cannot hide another's gap
    assert (
        query(
            built_db,
            "select business_date, count(*), sum(principal_outstanding) from marts.fct_od_daily group by 1"
            " except select b.business_date, count(*), sum(b.principal_outstanding) from raw.od_balances as b"
            " join meta.loads as l on l.load_id = b._load_id and l.superseded_at is null group by 1",
        )
        == []
    )
    # every row traces to the current load of its date
    assert (
        one(
            built_db,
            "select count(*) from marts.fct_od_daily as f join meta.loads as l on l.load_id = f.load_id"
            " and l.business_date = f.business_date and l.superseded_at is null",
        )
        == fact_count
    )
    assert one(built_db, "select count(*) from marts.fct_od_daily where parameter_version is null") == 0


def test_month_end_rows_are_the_accounts_at_each_loaded_month_end(built_db):
    month_ends = query(
        built_db,
        "select month_end, count(*), sum(principal_outstanding) from marts.fct_od_month_end group by 1",
    )
    expected = query(
        built_db,
        "select business_date, count(*), sum(principal_outstanding) from raw.od_balances"
        " where business_date in ('2024-01-31', '2024-02-29') group by 1",
    )
    assert sorted(month_ends) == sorted(expected)
    assert {m for m, _, _ in month_ends} == {date(2024, 1, 31), date(2024, 2, 29)}  # 31 March is not loaded
    assert dict((m, n) for m, n, _ in month_ends) == {date(2024, 1, 31): 5, date(2024, 2, 29): 4}  # T1 closed


def test_month_end_charges_are_the_rounded_sums_of_the_daily_accruals(built_db):
    rows = query(
        built_db,
        "select m.od_account_id, m.month_end, m.interest_due, sum(d.interest_accrued),"
        " m.excess_fee_due, sum(d.excess_fee_accrued), m.currency"
        " from marts.fct_od_month_end as m join marts.fct_od_daily as d on d.od_account_id = m.od_account_id"
        " and date_trunc('month', d.business_date) = date_trunc('month', m.month_end)"
        " group by m.od_account_id, m.month_end, m.interest_due, m.excess_fee_due, m.currency",
    )
    assert len(rows) == 9
    for account, month_end, interest_due, interest, excess_due, excess, currency in rows:
        half_unit = D("0.5") if currency == "KHR" else D("0.005")
        assert abs(interest_due - interest) <= half_unit, (account, month_end)
        assert abs(excess_due - excess) <= half_unit, (account, month_end)
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("U1", date(2024, 1, 31))][2] == D("15.00")  # 1,000 x 1.5 % for a whole month
    reconciliation = dict(
        ((r[0], r[1]), r[2:])
        for r in query(
            built_db,
            "select od_account_id, month_end, core_interest_charged, reconciliation_break"
            " from marts.fct_od_month_end where month_end = '2024-01-31'",
        )
    )
    assert reconciliation[("U1", date(2024, 1, 31))] == (
        D("15.00"),
        True,
    )  # fees 2.00 not charged by the core
    assert reconciliation[("K1", date(2024, 1, 31))][0] == D(90_000)


PARTITIONED = [  # meta partitioned_by_month (docs/decisions/0046), those MARTS builds
    "intermediate.int_od__positions_daily",
]


def _month_partitions(url: str) -> dict[str, list[tuple[str, date, date]]]:
    """Each partitioned table's partitions: name, first and last business date it holds."""
    found = {}
    for table in PARTITIONED:
        found[table] = query(
            url,
            "select c.relname, min(t.business_date), max(t.business_date)"  # noqa: S608
            f" from pg_inherits as i join pg_class as c on c.oid = i.inhrelid left join {table} as t"
            f" on t.tableoid = c.oid where i.inhparent = '{table}'::regclass group by c.relname order by 1",
        )
    return found


def _analyzed_since(url: str, since: Any) -> set[str]:
    return {
        f"{schema}.{name}"
        for schema, name in query(
            url,
            "select schemaname, relname from pg_stat_user_tables where relname ~ '_p2024\\d\\d$'"
            " and last_analyze >= %s",
            since,
        )
    }


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = {
        "intermediate.int_od__positions_daily": "od_account_id, business_date",
        "intermediate.int_od__charges_monthly": "od_account_id, month_end",
        "intermediate.int_od__days_past_due_runs": "od_account_id, valid_from",
        "intermediate.int_od__stagnation_runs": "od_account_id, valid_from",
        "marts.fct_od_daily": "od_account_id, business_date",
        "marts.fct_od_month_end": "od_account_id, month_end",
    }
    return {t: query(url, f"select * from {t} order by {key}") for t, key in tables.items()}  # noqa: S608


@pytest.mark.slow
def test_incremental_builds_equal_a_full_refresh(fresh_db: str, tmp_path: Path):
    """Deliveries in several runs (single days across month ends, the newest date re-delivered alone and then
    with the next one, a re-delivered old date that drops an account) give exactly the rows of one full refresh
    over the final raw state."""
    overrides: dict[tuple[str, date], Decimal | None] = {}

    def principal_now(account: str, day: date) -> Decimal | None:
        return overrides[(account, day)] if (account, day) in overrides else principal(account, day)

    raw = ScriptedAccounts(fresh_db, ACCOUNTS, principal_now, TRANSACTIONS)
    batches = [
        days(FIRST, date(2024, 1, 30)),
        [date(2024, 1, 31)],
        [date(2024, 2, 1)],
        days(date(2024, 2, 2), date(2024, 2, 29)),
        [date(2024, 3, 1)],
        # stagnation's windows (N = 60) are evaluable from 1 March on: carried from the previous day's rows
        [date(2024, 3, 2)],
        days(date(2024, 3, 3), date(2024, 3, 5)),
    ]
    for batch in batches:
        raw.load(batch)
        build(fresh_db, MARTS, tmp_path)
        if batch == batches[0]:
            first_built = one(fresh_db, "select now()")
    # a correction of 10 February: U1 repaid, K2 was not on the books that day
    overrides.update({("U1", date(2024, 2, 10)): D("100.00"), ("K2", date(2024, 2, 10)): None})
    raw.load([date(2024, 2, 10), *days(date(2024, 3, 6), date(2024, 3, 8))])
    build(fresh_db, MARTS, tmp_path)
    # corrections of the newest date, already summed into March's charges (decision 0043): alone, then with
    # the next date; then a new date, whose month to date is carried forward from them
    overrides[("U1", date(2024, 3, 8))] = D("321.00")
    raw.load([date(2024, 3, 8)])
    build(fresh_db, MARTS, tmp_path)
    overrides[("U1", date(2024, 3, 8))] = D("123.45")
    raw.load([date(2024, 3, 8), date(2024, 3, 9)])
    build(fresh_db, MARTS, tmp_path)
    started = one(fresh_db, "select now()")
    raw.load([LAST])
    build(fresh_db, MARTS, tmp_path)
    incremental = _snapshot(fresh_db)
    partitions = _month_partitions(fresh_db)
    assert partitions == {
        table: [
            (f"{table.split('.')[1]}_p202401", FIRST, date(2024, 1, 31)),
            (f"{table.split('.')[1]}_p202402", date(2024, 2, 1), date(2024, 2, 29)),
            (f"{table.split('.')[1]}_p202403", date(2024, 3, 1), LAST),
        ]
        for table in PARTITIONED
    }
    # a new date's month is analyzed after the build, the months it did not write are not analyzed again; the
    # table's own statistics were taken again once its partitions had grown by a tenth (February's batch doubled
    # them), not for a day within a month (decision 0067)
    assert _analyzed_since(fresh_db, started) == {f"{t}_p202403" for t in PARTITIONED}
    parents_analyzed = dict(
        query(
            fresh_db,
            "select schemaname || '.' || relname, last_analyze from pg_stat_user_tables"
            " where schemaname || '.' || relname = any(%s)",
            list(PARTITIONED),
        )
    )
    assert set(parents_analyzed) == set(PARTITIONED)
    assert all(first_built <= analyzed < started for analyzed in parents_analyzed.values()), parents_analyzed

    build(fresh_db, MARTS, tmp_path, "--full-refresh")
    full = _snapshot(fresh_db)
    # built whole beside the old table, whose partitions held the names until it was dropped, then renamed
    assert _month_partitions(fresh_db) == partitions

    assert {t: len(rows) for t, rows in incremental.items()} == {t: len(rows) for t, rows in full.items()}
    for table in full:
        assert incremental[table] == full[table], table
    daily = full["marts.fct_od_daily"]
    assert not [r for r in daily if r[0] == "K2" and r[1] == date(2024, 2, 10)]  # the dropped row is gone
    assert len(full["marts.fct_od_month_end"]) == 9


def test_a_reversal_of_a_charge_of_the_month_before_reopens_that_month_for_its_account(
    fresh_db: str, tmp_path: Path
):
    """K1's January charge reversed on 1 February: January's charges are recomputed for K1 alone, the other
    accounts' January rows carried over, and the result equals a full refresh (policy-engine.md, section C);
    so does January's published month-end row, built before the reversal arrived."""
    reversal = transaction("X2", "K1", "REVERSAL", "90000", "CREDIT", reversed_txn_id="C2")
    raw = ScriptedAccounts(fresh_db, ACCOUNTS, principal, {**TRANSACTIONS, date(2024, 2, 1): [reversal]})
    charges = "select * from intermediate.int_od__charges_monthly order by od_account_id, month_end"
    month_end = "select * from marts.fct_od_month_end order by od_account_id, month_end"
    for batch in (days(FIRST, date(2024, 1, 31)), [date(2024, 2, 1)], [date(2024, 2, 2)]):
        raw.load(batch)
        build(fresh_db, "+fct_od_month_end", tmp_path)
    incremental = query(fresh_db, charges), query(fresh_db, month_end)
    build(fresh_db, "+fct_od_month_end", tmp_path, "--full-refresh")
    assert incremental == (query(fresh_db, charges), query(fresh_db, month_end))
    january = dict(
        query(
            fresh_db,
            "select od_account_id, core_interest_charged from intermediate.int_od__charges_monthly"
            " where month_end = '2024-01-31'",
        )
    )
    assert january["K1"] == 0 and january["U1"] == D("15.00")  # reversed in its month; carried over


def test_a_table_built_before_partitioning_works_until_built_whole(fresh_db: str, tmp_path: Path):
    """A warehouse built before decision 0046 keeps its unpartitioned positions table: a new date is added to it
    as before, and a full refresh rebuilds it partitioned, with the same rows."""
    table = "intermediate.int_od__positions_daily"
    raw = ScriptedAccounts(fresh_db, ACCOUNTS, principal, TRANSACTIONS)
    raw.load(days(FIRST, date(2024, 2, 3)))
    build(fresh_db, "+int_od__positions_daily", tmp_path)
    with psycopg.connect(fresh_db) as conn:  # as built before: one table, the same rows and unique index
        conn.execute("set role odwh_transformer")  # dbt's role, which owns what it builds
        conn.execute(f"create table {table}_plain as select * from {table}")  # noqa: S608
        conn.execute(f"drop table {table} cascade")
        conn.execute(f"alter table {table}_plain rename to int_od__positions_daily")
        conn.execute(f"create unique index on {table} (od_account_id, business_date)")
        conn.execute(f"analyze {table}")  # the statistics its last build left
    last_analyze = f"select last_analyze from pg_stat_user_tables where relid = '{table}'::regclass"  # noqa: S608
    analyzed = one(fresh_db, last_analyze)
    raw.load([date(2024, 2, 4)])
    build(fresh_db, "+int_od__positions_daily", tmp_path)
    kind = f"select relkind::text from pg_class where oid = '{table}'::regclass"  # noqa: S608
    rows = f"select * from {table} order by od_account_id, business_date"  # noqa: S608
    assert one(fresh_db, kind) == "r"
    assert one(fresh_db, last_analyze) > analyzed  # analyzed after each build, as before
    incremental = query(fresh_db, rows)
    assert max(r[1] for r in incremental) == date(2024, 2, 4)

    build(fresh_db, "+int_od__positions_daily", tmp_path, "--full-refresh")
    assert one(fresh_db, kind) == "p"
    assert query(fresh_db, rows) == incremental


def _date_and_load_indexes(url: str, table: str) -> list[str]:
    """The columns of each index of `table` that is not the grain's unique index, in order."""
    return sorted(
        columns
        for (columns,) in query(
            url,
            "select string_agg(a.attname, ', ' order by k.n) from pg_index as i"
            " cross join lateral unnest(i.indkey::int2[]) with ordinality as k (attnum, n)"
            " join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum"
            " where i.indrelid = %s::regclass and not i.indisunique group by i.indexrelid",
            table,
        )
    )


def test_an_account_day_table_indexed_before_0058_works_until_built_whole(fresh_db: str, tmp_path: Path):
    """An account-day table has one (business_date, load_id) index, its newest load and a newer load's dates read
    one probe per date (decision 0058). One built before, with an index on each column, rebuilds the same dates
    through them until a full refresh gives it the new one: a re-delivered old date and a new date give the rows
    of a full refresh."""
    tables = ["intermediate.int_od__positions_daily"]
    overrides: dict[tuple[str, date], Decimal | None] = {}

    def principal_now(account: str, day: date) -> Decimal | None:
        return overrides.get((account, day), principal(account, day))

    raw = ScriptedAccounts(fresh_db, ACCOUNTS, principal_now, TRANSACTIONS)
    raw.load(days(FIRST, date(2024, 2, 3)))
    build(fresh_db, "+int_od__positions_daily", tmp_path)
    assert {t: _date_and_load_indexes(fresh_db, t) for t in tables} == {
        t: ["business_date, load_id"] for t in tables
    }
    old_indexes = query(
        fresh_db,
        "select indrelid::regclass::text, indexrelid::regclass::text from pg_index"
        " where indrelid = any(%s::regclass[]) and not indisunique",
        tables,
    )
    with psycopg.connect(fresh_db) as conn:  # as built before: an index on each column
        conn.execute("set role odwh_transformer")  # dbt's role, which owns what it builds
        for table, index in old_indexes:
            conn.execute(f"drop index {index}")
            conn.execute(f"create index on {table} (business_date)")
            conn.execute(f"create index on {table} (load_id)")

    overrides[("U1", date(2024, 1, 10))] = D("250.00")  # a correction of an old date, with a new date
    raw.load([date(2024, 1, 10), date(2024, 2, 4)])
    build(fresh_db, "+int_od__positions_daily", tmp_path)
    assert {t: _date_and_load_indexes(fresh_db, t) for t in tables} == {
        t: ["business_date", "load_id"] for t in tables
    }
    rows = {t: f"select * from {t} order by od_account_id, business_date" for t in tables}  # noqa: S608
    incremental = {t: query(fresh_db, sql) for t, sql in rows.items()}
    corrected = (
        "select principal_outstanding from intermediate.int_od__positions_daily"
        " where od_account_id = 'U1' and business_date = '2024-01-10'"
    )
    assert one(fresh_db, corrected) == D("250.00")

    build(fresh_db, "+int_od__positions_daily", tmp_path, "--full-refresh")
    assert {t: _date_and_load_indexes(fresh_db, t) for t in tables} == {
        t: ["business_date, load_id"] for t in tables
    }
    assert {t: query(fresh_db, sql) for t, sql in rows.items()} == incremental


def test_a_window_without_flows_reads_the_same_in_a_batch_and_a_full_build(fresh_db: str, dbt_work: Path):
    """A repayment before a window and none inside it: a full build subtracts two cumulative sums (10.00 -
    10.00), a batch whose first day is the first evaluable one sums no flow at all (0). Both store one net
    inflow, with one scale, and the same runs (compared as text: with their scale, as the runs are)."""
    window = 3
    policy.record_change(fresh_db, "stagnation_window_days", str(window), FIRST, "a short window", "test")
    flows = {FIRST: [transaction("P1", "U1", "REPAYMENT", "10.00")]}
    raw = ScriptedAccounts(fresh_db, ACCOUNTS[:1], lambda account, day: D("100.00"), flows)
    runs = "select r::text from intermediate.int_od__stagnation_runs as r order by od_account_id, valid_from"
    first_evaluable = FIRST + timedelta(window)
    raw.load(days(FIRST, first_evaluable - timedelta(1)))
    build(fresh_db, "+int_od__stagnation_runs", dbt_work)
    raw.load(days(first_evaluable, first_evaluable + timedelta(4)))
    build(fresh_db, "+int_od__stagnation_runs", dbt_work)
    batches = query(fresh_db, runs)
    build(fresh_db, "+int_od__stagnation_runs", dbt_work, "--full-refresh")
    assert query(fresh_db, runs) == batches
    net_inflows = query(
        fresh_db,
        "select valid_from, net_inflow_60d::text from intermediate.int_od__stagnation_runs order by 1",
    )
    assert net_inflows == [(FIRST, None), (first_evaluable, "0")]
