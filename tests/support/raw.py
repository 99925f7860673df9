"""Raw rows written the way the loader writes them, and the two scripted inputs the dbt tests build on.

:func:`deliver` is the one writer: each business date becomes a new load in ``meta.loads`` (superseding an
earlier delivery of that date), its rows replace every raw row of that date, and rows are numbered per file.
Rows are dicts keyed by contract column name (``odwh.contract``); a missing column is null, an unknown one
fails. :class:`ScriptedAccounts` (accounts + a principal per day) and :class:`ScriptedPortfolio` (a
portfolio with an officer chain, built up call by call) produce such rows for each day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from odwh import contract, history
from psycopg import sql

D = Decimal
ONE_PERCENT = D("0.01")
Rows = dict[str, list[dict[str, Any]]]  # raw table name -> rows of one business date


def days(first: date, last: date) -> list[date]:
    """Every date from ``first`` to ``last``, both included."""
    return [first + timedelta(n) for n in range((last - first).days + 1)]


def deliver(url: str, deliveries: Mapping[date, Rows]) -> None:
    """Write each date's rows as one delivery of that date, in the order given (load ids ascend with it); a
    snapshot stored as change history gets the date merged into its versions as the loader does."""
    with psycopg.connect(url) as conn:
        for day, tables in deliveries.items():
            load_id = _register_load(conn, day)
            for f in contract.FILES:
                _write(conn, f, day, load_id, tables.get(f.table, ()))
        conn.commit()


def _register_load(conn: psycopg.Connection, day: date) -> int:
    conn.execute("update meta.loads set superseded_at = now() where business_date = %s", (day,))
    row = conn.execute(
        "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256, rows_loaded)"
        " values (%s, 'test', 'test', 'test', 0) returning load_id",
        (day,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _write(
    conn: psycopg.Connection, f: contract.ExtractFile, day: date, load_id: int, rows: Iterable[dict[str, Any]]
) -> None:
    names = [c.name for c in f.columns if not c.pii]
    table = sql.Identifier("raw", f.table)
    as_history = history.stored_as_history(f)
    if as_history:
        target = sql.Identifier("delivered_day")
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.pg_type))
            for c in f.columns
            if not c.pii
        )
        conn.execute(sql.SQL("create temp table {} ({}, _row_number integer)").format(target, columns))
    else:
        conn.execute(sql.SQL("delete from {} where _business_date = %s").format(table), (day,))
        target = table
    lineage = ["_row_number"] if as_history else ["_business_date", "_load_id", "_row_number"]
    statement = sql.SQL("copy {} ({}) from stdin").format(
        target, sql.SQL(", ").join(map(sql.Identifier, [*names, *lineage]))
    )
    with conn.cursor().copy(statement) as copy:
        for number, row in enumerate(rows, 1):
            unknown = set(row) - set(names)
            assert not unknown, f"raw.{f.table}: no contract column {sorted(unknown)}"
            values = [row.get(n) for n in names]
            copy.write_row([*values, number] if as_history else [*values, day, load_id, number])
    if as_history:
        numeric = [c.name for c in f.columns if not c.pii and c.pg_type == "numeric"]
        history.replace_date(
            conn,
            table,
            lambda: target,
            day,
            load_id,
            values=names,
            key=f.key,
            row_number=True,
            numeric=numeric,
        )
        conn.execute("drop table delivered_day")


DEBIT_TYPES = {
    "DRAWDOWN",
    "CASH_WITHDRAWAL",
    "TRANSFER_OUT",
    "INTEREST_CHARGE",
    "FEE_CHARGE",
    "PROCESSING_FEE",
    "INTEREST_CAPITALIZATION",
}

# --- scripted accounts: one branch and officer, accounts with a principal per day --------------------------


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


def transaction(
    txn_id: str,
    od_account_id: str,
    txn_type: str,
    amount: str,
    direction: str | None = None,
    reversed_txn_id: str | None = None,
) -> dict[str, Any]:
    """An od_transactions row without its date (the day it is delivered on); debit or credit by its type."""
    return {
        "txn_id": txn_id,
        "od_account_id": od_account_id,
        "txn_type": txn_type,
        "direction": direction or ("DEBIT" if txn_type in DEBIT_TYPES else "CREDIT"),
        "amount": D(amount),
        "reversed_txn_id": reversed_txn_id,
    }


Principal = Callable[[str, date], Decimal | None]  # None: no balance row for the account that day
BRANCH = {
    "branch_code": "B01",
    "branch_name": "Main",
    "province": "Phnom Penh",
    "region_code": "R1",
    "region_name": "Central",
}
OFFICER = {"officer_id": "O01", "officer_name": "Dara", "role": "CM", "branch_code": "B01"}


@dataclass
class ScriptedAccounts:
    """Deliveries of scripted accounts: snapshots (``snapshots`` too) repeated every day, transactions and
    balances (``principal``) on their day."""

    url: str
    accounts: list[Account]
    principal: Principal
    transactions: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    khr_per_unit: dict[str, Decimal] = field(
        default_factory=lambda: {"KHR": D(1), "USD": D(4100), "THB": D("118.5")}
    )
    snapshots: Rows = field(default_factory=dict)

    def load(self, business_dates: Iterable[date]) -> None:
        deliver(self.url, {day: self.rows(day) for day in business_dates})

    def rows(self, day: date) -> Rows:
        customers = [self._customer(a) for a in self.accounts]
        balances = [
            self._balance(a, day, principal)
            for a in self.accounts
            if (principal := self.principal(a.od_account_id, day)) is not None
        ]
        rates = [
            {"business_date": day, "currency": currency, "khr_per_unit": rate}
            for currency, rate in self.khr_per_unit.items()
        ]
        txns = [{"business_date": day, "channel": "SYSTEM", **t} for t in self.transactions.get(day, [])]
        return {
            "branches": [BRANCH],
            "officers": [OFFICER],
            "customers": customers,
            "od_accounts": [asdict(a) for a in self.accounts],
            "od_balances": balances,
            "fx_rates": rates,
            "od_transactions": txns,
            **self.snapshots,
        }

    @staticmethod
    def _customer(account: Account) -> dict[str, Any]:
        return {
            "customer_id": account.customer_id,
            "customer_type": "SME",
            "legal_form": "INDIVIDUAL",
            "customer_name": account.customer_id,
            "branch_code": "B01",
            "officer_id": "O01",
            "registered_on": date(2020, 1, 1),
        }

    @staticmethod
    def _balance(account: Account, day: date, principal: Decimal) -> dict[str, Any]:
        return {
            "od_account_id": account.od_account_id,
            "business_date": day,
            "principal_outstanding": principal,
            "interest_receivable": D(0),
            "fees_receivable": D(0),
        }


# --- scripted portfolio: two branches, the chain CM -> AM -> SM -> RM, accounts added call by call ----------

BRANCHES = [
    ("B01", "Phnom Penh Main", "Phnom Penh", "R1", "Central"),
    ("B02", "Battambang", "Battambang", "R2", "North-West"),
]
OFFICERS = [  # officer_id, role, branch, manager
    ("RM1", "RM", "B01", None),
    ("SM1", "SM", "B01", "RM1"),
    ("AM1", "AM", "B01", "SM1"),
    ("CM1", "CM", "B01", "AM1"),
    ("AM2", "AM", "B02", "SM1"),
    ("CM2", "CM", "B02", "AM2"),
]
PORTFOLIO_ACCOUNT = {
    "currency": "USD",
    "approved_on": date(2025, 6, 1),
    "start_date": date(2025, 6, 1),
    "maturity_date": date(2026, 5, 31),
    "monthly_interest_rate": D("0.015"),
    "processing_fee_rate": D("0.01"),
    "excess_fee_rate_monthly": D("0.01"),
    "unutilized_fee_rate_annual": D("0.01"),
    "collateral_type": "NONE",
    "purpose": "WORKING_CAPITAL",
    "restructured": False,
    "status": "ACTIVE",
}


class ScriptedPortfolio:
    """Raw rows of a scripted portfolio: snapshots repeated on every day, events on their own day.

    Reference data (two branches, the officer chain, FX) is there from the start; add customers and accounts
    with :meth:`customer` / :meth:`account`, balances with :meth:`balances` and events with :meth:`txn`;
    then :meth:`write` the days to the database (a day written again is a re-delivery of that day).
    """

    def __init__(self) -> None:
        self.snapshots: Rows = defaultdict(list)
        self.events: dict[tuple[str, date], list[dict[str, Any]]] = defaultdict(list)
        self.principal: dict[tuple[str, date], Decimal] = {}
        columns = ("branch_code", "branch_name", "province", "region_code", "region_name")
        self.snapshots["branches"] = [dict(zip(columns, b, strict=True)) for b in BRANCHES]
        self.snapshots["officers"] = [
            {
                "officer_id": officer_id,
                "officer_name": f"Officer {officer_id}",
                "role": role,
                "branch_code": branch,
                "manager_id": manager,
            }
            for officer_id, role, branch, manager in OFFICERS
        ]

    def customer(self, customer_id: str, customer_type: str = "AGENT", officer: str = "CM1") -> None:
        self.snapshots["customers"].append(
            {
                "customer_id": customer_id,
                "customer_type": customer_type,
                "legal_form": "INDIVIDUAL",
                "customer_name": f"Customer {customer_id}",
                "branch_code": {"CM1": "B01", "CM2": "B02"}[officer],
                "officer_id": officer,
                "agent_since": date(2020, 1, 1) if customer_type == "AGENT" else None,
                "registered_on": date(2019, 6, 1),
            }
        )

    def account(self, od_account_id: str, customer_id: str, limit: str, **attributes: Any) -> None:
        row = {"od_account_id": od_account_id, "customer_id": customer_id, "limit_amount": D(limit)}
        self.snapshots["od_accounts"].append(row | PORTFOLIO_ACCOUNT | attributes)

    def balances(self, od_account_id: str, days: Iterable[date], principal: str) -> None:
        for day in days:
            self.principal[od_account_id, day] = D(principal)

    def txn(
        self,
        txn_id: str,
        od_account_id: str,
        day: date,
        txn_type: str,
        amount: str,
        reverses: str | None = None,
        direction: str | None = None,
    ) -> None:
        """transaction()'s row (same arguments, plus its day), dated and with its channel."""
        row = transaction(txn_id, od_account_id, txn_type, amount, direction, reversed_txn_id=reverses)
        channel = "SYSTEM" if reverses else "AGENT"
        self.events["od_transactions", day].append({**row, "business_date": day, "channel": channel})

    def rows(self, day: date) -> Rows:
        rows: Rows = defaultdict(list, {table: list(r) for table, r in self.snapshots.items()})
        rows["fx_rates"] = [
            {"business_date": day, "currency": currency, "khr_per_unit": D(rate)}
            for currency, rate in (("KHR", 1), ("USD", 4000), ("THB", 120))
        ]
        rows["od_balances"] = [
            {
                "od_account_id": account["od_account_id"],
                "business_date": day,
                "principal_outstanding": self.principal.get((account["od_account_id"], day), D(0)),
                "interest_receivable": D(0),
                "fees_receivable": D(0),
            }
            for account in self.snapshots["od_accounts"]
        ]
        for (table, event_day), events in self.events.items():
            if event_day == day:
                rows[table] += events
        return rows

    def write(self, url: str, business_dates: Iterable[date]) -> None:
        """Deliver each day (re-delivering a day already written replaces it entirely)."""
        deliver(url, {day: self.rows(day) for day in business_dates})
