"""Published marts for the report tests: tables created from the dbt contracts, filled with a scripted month.

The tables are created from the ``columns:`` (``data_type`` and ``constraints``) and model ``constraints:`` of
the models in ``dbt_project/models/marts/**/*.yml``, so a column the contract adds, drops or retypes reaches
these tests without a dbt build. :class:`ScriptedMarts` fills them with a small portfolio for January 2026
(and client identifiers in ``pii`` that must never leak into a report).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

import psycopg
import yaml
from odwh import grades
from odwh.publish.data import GRADE_COLUMNS, PORTFOLIO_COLUMNS
from psycopg import sql

from support import REPO

D = Decimal
MARTS_DIR = REPO / "dbt_project" / "models" / "marts"
REPORTED_MARTS = (
    "dim_branches",
    "dim_officers",
    "fct_od_month_end",
    "fct_portfolio_month_end",
    "fct_grade_distribution_month_end",
    "rpt_review_list",
    "fct_agent_alerts",
    "fct_par_month_end",
    "fct_par_by_segment_month_end",
    "fct_grade_migration_month_end",
)


@cache
def mart_contracts() -> dict[str, dict[str, Any]]:
    """Model name -> its yml entry, for every model documented under ``models/marts`` (any sub-folder)."""
    models = {}
    for path in sorted(MARTS_DIR.glob("**/*.yml")):
        for model in (yaml.safe_load(path.read_text()) or {}).get("models", []):
            models[model["name"]] = model
    return models


def create_mart_table(conn: psycopg.Connection, name: str) -> None:
    """``create table marts.<name>`` with the columns, types and constraints of the model's contract."""
    model = mart_contracts()[name]
    columns = [
        sql.SQL(" ").join(
            [sql.Identifier(c["name"]), sql.SQL(c["data_type"]), *map(_constraint, c.get("constraints", []))]
        )
        for c in model["columns"]
    ]
    table_constraints = [_constraint(c) for c in model.get("constraints", [])]
    conn.execute("create schema if not exists marts")
    conn.execute(
        sql.SQL("create table marts.{} ({})").format(
            sql.Identifier(name), sql.SQL(", ").join([*columns, *table_constraints])
        )
    )


def _constraint(constraint: dict[str, Any]) -> sql.Composable:
    """One dbt contract constraint as SQL (column-level without ``columns``, table-level with them)."""
    kind = constraint["type"]
    keyword = {"not_null": "not null", "primary_key": "primary key", "unique": "unique"}.get(kind)
    if kind == "check":
        return sql.SQL("check ({})").format(sql.SQL(constraint["expression"]))
    if keyword is None:
        raise ValueError(f"contract constraint {kind!r} is not supported by tests/support/marts.py")
    if "columns" in constraint:
        return sql.SQL("{} ({})").format(
            sql.SQL(keyword), sql.SQL(", ").join(map(sql.Identifier, constraint["columns"]))
        )
    return sql.SQL(keyword)


# --- a scripted month ----------------------------------------------------------------------------------------

MONTH_END = date(2026, 1, 31)
NATIONAL_ID = "KH-NID-0099887766"
PHONE = "+855 12 999 888"
OD_TOTAL = D("96200")  # 5200 + 3000 + 7500 + 0 + 79000 + 1500
TERM_TOTAL = D("1000000")
PARAMETER_VERSION = "policy_parameters@2019-01-01"

BRANCHES = [
    ("B01", "Phnom Penh Main", "Phnom Penh"),
    ("B02", "Battambang", "Battambang"),
    ("B03", "Siem Reap", "Siem Reap"),  # no account and no review item
]
OFFICERS = [  # officer_id, name, role, branch, manager, senior manager, regional manager
    ("RM1", "Meas Rithy", "RM", "B01", None, None, None),
    ("SM1", "Lim Chenda", "SM", "B01", "RM1", None, "RM1"),
    ("AM1", "Ouk Sothea", "AM", "B01", "SM1", "SM1", "RM1"),
    ("AM2", "Heng Malis", "AM", "B02", "SM1", "SM1", "RM1"),
    ("CM1", "Sok Dara", "CM", "B01", "AM1", "SM1", "RM1"),
    ("CM3", "Chan Sophea", "CM", "B01", "AM1", "SM1", "RM1"),
    ("CM2", "Keo Vanna", "CM", "B02", "AM2", "SM1", "RM1"),
]
OFFICER_NAMES = {officer[0]: officer[1] for officer in OFFICERS}
BRANCH_COLUMNS = ("branch_code", "branch_name", "province", "region_code", "region_name")
# the dim_officers columns the OFFICERS rows above give, in order (data, like the rows)
OFFICER_COLUMNS = (
    "officer_id",
    "officer_name",
    "role",
    "branch_code",
    "manager_id",
    "senior_manager_id",
    "regional_manager_id",
)

# the columns the ACCOUNTS rows below give, in order (data: the scripted part of fct_od_month_end; not
# publish.data's OD_MONTH_END_COLUMNS, which is the reports' read list in the mart's order)
ACCOUNT_COLUMNS = (
    "od_account_id",
    "customer_id",
    "branch_code",
    "officer_id",
    "currency",
    "limit_amount",
    "principal_outstanding",
    "principal_outstanding_usd",
    "nbc_grade",
    "days_past_due",
    "provision_amount_usd",
    "conversion_candidate",
    "stagnant_amount_60d",
    "policy_breaches",
    "interest_due",
    "core_interest_charged",
    "reconciliation_break",
)
ACCOUNTS = """
# od   customer branch officer ccy | limit    | principal | usd   | grade           | dpd | provision usd
#      | candidate | stagnant | breaches                              | interest due | core interest | break
A1 | C1 | B01 | CM1 | USD | 5000     | 5200      | 5200  | Special Mention | 20  | 156
       | f         | 0        | {AGENT_LIMIT_EXCEEDED}                | 78.00        | 78.00         | f
A2 | C2 | B01 | CM1 | KHR | 20000000 | 12000000  | 3000  | Normal          | 0   | 30
       | f         | 0        | {}                                    | 180000       | 180000        | f
A3 | C3 | B01 | CM3 | THB | 300000   | 250000    | 7500  | Substandard     | 45  | 1500
       | t         | 200000   | {}                                    | 3750.00      | 3750.00       | f
A4 | C4 | B02 | CM2 | USD | 10000    | 0         | 0     | Normal          | 0   | 0
       | f         | 0        | {}                                    | 0            | 0             | f
A5 | C5 | B02 | CM2 | USD | 80000    | 79000     | 79000 | Loss            | 120 | 79000
       | f         | 0        | {CROSS_FINANCE_EXPOSURE,RESTRUCTURED} | 1185.00      | 1180.50       | t
A6 | C1 | B01 | CM1 | USD | 2000     | 1500      | 1500  | Normal          | 0   | 15
       | f         | 0        | {}                                    | 22.50        | 22.50         | f
"""
REVIEW_COLUMNS = (
    "od_account_id",
    "reason",
    "officer_id",
    "manager_id",
    "senior_manager_id",
    "branch_code",
    "customer_id",
    "currency",
    "amount",
    "detail",
    "amount_usd",
    "detail_params",
)
REVIEW = """
# od | reason             | officer manager senior branch customer ccy | amount   | detail | amount usd | detail params
A1 | EXCESS               | CM1 | AM1 | SM1 | B01 | C1 | USD | 200        | 31 day(s) in excess, peak USD 200.00 | 200
   | {"days": 31, "peak": "200", "excess_fee": "6.2"}
A1 | BREACH               | CM1 | AM1 | SM1 | B01 | C1 | USD | 5000       | AGENT_LIMIT_EXCEEDED                 | 5000
   | {"breaches": ["AGENT_LIMIT_EXCEEDED"]}
A1 | GRADE                | CM1 | AM1 | SM1 | B01 | C1 | USD | 5200       | Special Mention (was Normal)         | 5200
   | {"previous": "Normal", "grade": "Special Mention", "days_past_due": 20}
A2 | NO_TRANSACTION       | CM1 | AM1 | SM1 | B01 | C2 | KHR | 12000000.4 | no transaction                       | 3000.0001
   | {"drawn": "12000000.4", "charges": "120000.5"}
A3 | CONVERSION_CANDIDATE | CM3 | AM1 | SM1 | B01 | C3 | THB | 200000.5   | stagnant                             | 6000.015
   | {"stagnant": "200000.5", "no_net_inflow": true, "window_days": 60, "drawn": "250000", "agent": false}
A3 | GRADE                | CM3 | AM1 | SM1 | B01 | C3 | THB | 250000     | Substandard                          | 7500
   | {"previous": "Special Mention", "grade": "Substandard", "days_past_due": 45}
A5 | RECONCILIATION       | CM2 | AM2 | SM1 | B02 | C5 | USD | 4.5        | interest 1185.00 vs 1180.50          | 4.5
   | {"interest": "1185.00", "core_interest": "1180.50", "fees": "0", "core_fees": "0"}
A5 | GRADE                | CM2 | AM2 | SM1 | B02 | C5 | USD | 79000      | Loss                                 | 79000
   | {"previous": "Doubtful", "grade": "Loss", "days_past_due": 120}
A5 | MATURITY             | CM2 | AM2 | SM1 | B02 | C5 | USD |            | matures 2026-02-28                   |
   | {"maturity_date": "2026-02-28", "drawn": "79000", "days_matured": null}
"""


def table_rows(table: str) -> list[list[str | None]]:
    """Rows of a ``|``-separated text table: ``#`` lines are comments, a line starting with a blank continues
    the row above, an empty cell is null."""
    rows: list[list[str | None]] = []
    for line in table.strip().splitlines():
        if line.startswith("#"):
            continue
        cells = [cell.strip() or None for cell in line.split("|")]
        if line.startswith(" "):
            rows[-1] += cells[1:]
        else:
            rows.append(cells)
    return rows


def month_ends(last: date, count: int) -> list[date]:
    """The ``count`` month ends up to ``last``, oldest first."""
    out = [last]
    while len(out) < count:
        first = out[-1].replace(day=1)
        out.append(date.fromordinal(first.toordinal() - 1))
    return out[::-1]


# Portfolio quality (rulebook K). This month end's PAR by family: gross, PAR 1, 30, 90, provisions, written off
# (OD: A1 20 DPD, A3 45, A5 120).
PAR = {
    "OD": ("96200", "91700", "86500", "79000", "80701", "0"),
    "TERM": ("1000000", "30000", "20000", "5000", "5000", "2500"),
    "ALL": ("1096200", "121700", "106500", "84000", "85701", "2500"),
}
PAR_INSERT = (
    "insert into marts.fct_par_month_end values (%s, %s, 6, %s, %s, %s, %s, %s, %s, %s, 2, %s, %s, 0, %s, %s, %s,"
    " %s, %s, 'par_thresholds_days@2019-01-01', 1)"
)
# OD by branch: branch, accounts, gross, PAR 1, 30, 90, provisions
SEGMENTS = [
    ("B01", 4, "17200", "12700", "7500", "0", "1701"),
    ("B02", 2, "79000", "79000", "79000", "79000", "79000"),
]
SEGMENT_INSERT = (
    "insert into marts.fct_par_by_segment_month_end values (%s, 'OD', 'BRANCH', %s, %s, %s, %s, %s, %s, %s, %s,"
    " %s, 1, %s, 'par_thresholds_days@2019-01-01', 1)"
)
# family, from, from order, to, to order, accounts, outstanding usd
MIGRATION = [
    ("OD", "Normal", 1, "Normal", 1, 2, "4500"),
    ("OD", "Normal", 1, "Special Mention", 2, 1, "5200"),
    ("OD", "Normal", 1, "CLOSED", 6, 1, "300"),
    ("OD", "Special Mention", 2, "Substandard", 3, 1, "7500"),
    ("OD", "Doubtful", 4, "Loss", 5, 1, "79000"),
    ("OD", "NEW", 0, "Normal", 1, 1, "0"),
    ("TERM", "Normal", 1, "Normal", 1, 40, "950000"),
    ("TERM", "Normal", 1, "WRITTEN_OFF", 8, 1, "2500"),
]


class ScriptedMarts:
    """Creates the reported marts of a small scripted portfolio, and client identifiers in ``pii``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def create(self, *, history_months: int = 13) -> None:
        with psycopg.connect(self.url) as conn:
            for name in REPORTED_MARTS:
                create_mart_table(conn, name)
            loaded = {"as_of_date": MONTH_END, "load_id": 1}
            branches = [(*branch, "R1", "Central") for branch in BRANCHES]
            insert(conn, "marts.dim_branches", BRANCH_COLUMNS, branches, loaded)
            insert(conn, "marts.dim_officers", OFFICER_COLUMNS, OFFICERS, loaded)
            month = {"month_end": MONTH_END, "load_id": 1}
            active = {**month, "is_active": True}  # A4 is an active facility with nothing drawn
            insert(conn, "marts.fct_od_month_end", ACCOUNT_COLUMNS, table_rows(ACCOUNTS), active)
            review = [[*row, OFFICER_NAMES[str(row[2])]] for row in table_rows(REVIEW)]
            insert(conn, "marts.rpt_review_list", (*REVIEW_COLUMNS, "officer_name"), review, month)
            versioned = {"parameter_version": PARAMETER_VERSION}
            portfolio = self.portfolio_rows(history_months)
            insert(conn, "marts.fct_portfolio_month_end", PORTFOLIO_COLUMNS, portfolio, versioned)
            distribution = self.grade_rows()
            insert(conn, "marts.fct_grade_distribution_month_end", GRADE_COLUMNS, distribution, versioned)
            self.create_quality(conn, history_months)
            clients = [(c, NATIONAL_ID, PHONE) for c in ("C1", "C2", "C3", "C4", "C5")]
            pii = {"valid_from": MONTH_END, "_load_id": 1}  # current versions since the month end
            insert(conn, "pii.customers", ("customer_id", "national_id", "phone"), clients, pii)
            conn.commit()

    @staticmethod
    def create_quality(conn: psycopg.Connection, history_months: int) -> None:
        """The portfolio-quality marts (rulebook K): PAR rising by 5% of this month's a month to this month end."""
        with conn.cursor() as cur:
            for age, end in enumerate(reversed(month_ends(MONTH_END, history_months))):
                for family, (gross, par1, par30, par90, provisions, written_off) in PAR.items():
                    g, provision, off = D(gross), D(provisions), D(written_off)
                    p1, p30, p90 = (D(v) * (20 - age) / 20 for v in (par1, par30, par90))
                    ratios = (p1 / g, p30 / g, p90 / g)
                    coverage = (provision, provision / p30)
                    write_offs = (off, off, g, min(history_months - age, 12), off / g)
                    cur.execute(PAR_INSERT, (end, family, g, p1, p30, p90, *ratios, *coverage, *write_offs))
            for branch, accounts, gross, par1, par30, par90, provision in SEGMENTS:
                amounts = (D(gross), D(par1), D(par30), D(par90))
                ratios = (D(par1) / D(gross), D(par30) / D(gross), D(par90) / D(gross))
                cur.execute(SEGMENT_INSERT, (MONTH_END, branch, accounts, *amounts, *ratios, D(provision)))
            cur.executemany(
                "insert into marts.fct_grade_migration_month_end values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(MONTH_END, date(2025, 12, 31), *m[:5], m[5], D(m[6])) for m in MIGRATION],
            )

    @staticmethod
    def portfolio_rows(count: int) -> list[tuple[object, ...]]:
        rows = []
        ends = month_ends(MONTH_END, count)
        for age, end in enumerate(reversed(ends)):  # age 0 = this month end
            od = OD_TOTAL - age * 4000
            term = TERM_TOTAL - age * 10000
            share = od / (od + term)
            npl = D("86500") / OD_TOTAL - age * D("0.02")
            provisions = D("81701") + 5000 - age * 100
            rows.append((end, od, term, od + term, share, D("0.10"), share > D("0.10"), npl, provisions))
        return rows

    @staticmethod
    def grade_rows() -> list[tuple[object, ...]]:
        od = {
            "Normal": (3, "4500", "45"),
            "Special Mention": (1, "5200", "156"),
            "Substandard": (1, "7500", "1500"),
            "Doubtful": (0, "0", "0"),
            "Loss": (1, "79000", "79000"),
        }
        term = {"Normal": (40, "950000", "4500"), "Special Mention": (2, "50000", "500")}
        rows = []
        for grade in grades.NBC_GRADES:
            a, o, p = od[grade]
            rows.append((MONTH_END, "OD", grade, a, D(o), D(p)))
            ta, to, tp = term.get(grade, (0, "0", "0"))
            rows.append((MONTH_END, "TERM", grade, ta, D(to), D(tp)))
        return rows


def insert(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    constants: dict[str, object],
) -> None:
    """Insert ``rows`` (values in ``columns`` order) into ``schema.table``, each with ``constants`` added."""
    names = [*columns, *constants]
    statement = sql.SQL("insert into {} ({}) values ({})").format(
        sql.Identifier(*table.split(".")),
        sql.SQL(", ").join(map(sql.Identifier, names)),
        sql.SQL(", ").join(sql.Placeholder() * len(names)),
    )
    with conn.cursor() as cur:
        cur.executemany(statement, [[*row, *constants.values()] for row in rows])
