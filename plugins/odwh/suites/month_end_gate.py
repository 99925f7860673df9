"""The month-end quality gate's Great Expectations suites: one per batch, a batch being one table's rows for
the month end (a GX query asset whose SQL holds the date; ``odwh.gate`` runs them).

The six rules of issue 4 (docs/decisions/0006-quality-gate.md):

1. every active account graded exactly once, with one of the five NBC grades;
2. provision_amount = provision_rate x principal_outstanding, exactly, with the seed's rate for the grade;
3. totals reconcile to the manifest: the month end's principal sum and row count equal ``od_balances.csv``'s
   control total and rows of the date's current load, and every account's principal equals its delivery;
4. no negative balances;
5. FX present: KHR, USD and THB rates for the month end, and no null ``*_usd`` amount;
6. review-list rows routed to an officer with a manager, both in the month end's officers snapshot.

"One month-end row per account" is not an expectation on ``fct_od_month_end``: the mart's unique index on
(od_account_id, month_end) fails the build before a duplicate could reach the gate. Rule 1 is checked from the
snapshot's side instead (``od_accounts_snapshot.active_graded_once``: exactly one graded row per active account).

Suites hold no date: cross-table SQL (``UnexpectedRowsExpectation``) takes it from the batch rows, so they are
static and exported as JSON under ``expectations/suites/month_end_gate/``. The gate reads marts, and
raw/meta/policy to reconcile: it is a check, not a report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odwh import contract, gx, history
from odwh.grades import NBC_GRADES

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation

FAMILY = "month_end_gate"  # expectations/suites/<family>/
ROW_KEY = "od_account_id"  # the column every row-level failure sample names
NON_NEGATIVE_COLUMNS = (
    "limit_amount",
    "principal_outstanding",
    "interest_due",
    "unutilized_fee_due",
    "excess_fee_due",
    "provision_amount",
    "principal_outstanding_usd",
    "provision_amount_usd",
    "stagnant_amount_60d",
)
USD_COLUMNS = ("principal_outstanding_usd", "provision_amount_usd")  # the *_usd columns of fct_od_month_end

RULE_GRADED = "1. every active account graded exactly once"
RULE_PROVISION = "2. provision = rate x base"
RULE_TOTALS = "3. totals reconcile to the manifests' control totals"
RULE_NON_NEGATIVE = "4. no negative balances"
RULE_FX = "5. FX present"
RULE_ROUTED = "6. review-list rows routed to an officer with a manager"
RULE_SOCIAL = "7. social marts: every decided application classified, complaints reconciled"

# An account that must carry a month-end grade: ACTIVE in the month end's od_accounts snapshot, started and not
# closed. A matured account still ACTIVE is included: its balance is still an exposure to grade (DPD since
# maturity, policy-rules.md D).
_ACTIVE = (
    "trim(a.status) = 'ACTIVE' and a.start_date <= a._business_date"
    " and (a.closed_on is null or a.closed_on > a._business_date)"
)


@dataclass(frozen=True)
class GateSuite:
    """One batch (``table``'s rows for the month end, read by ``batch_sql``) and its expectations."""

    name: str  # suite name is f"{FAMILY}.{name}"
    table: str
    batch_sql: str  # {month_end} is replaced by a date literal
    expectations: Callable[[], list[Expectation]]
    optional: bool = False  # skipped (and said so) when ``table`` does not exist

    @property
    def suite_name(self) -> str:
        return f"{FAMILY}.{self.name}"

    def batch_query(self, month_end: date) -> str:
        return self.batch_sql.format(month_end=f"date '{month_end.isoformat()}'")


def _meta(check: str, rule: str, table: str, failure: str) -> dict[str, Any]:
    """``check`` names the expectation in failures; ``failure`` is the sentence said when it fails."""
    return {"check": check, "rule": rule, "table": table, "failure": failure}


def _unexpected_rows(sql: str, description: str, meta: dict[str, Any]) -> Expectation:
    import great_expectations.expectations as gxe

    return gxe.UnexpectedRowsExpectation(unexpected_rows_query=sql, description=description, meta=meta)


def _not_null(column: str, description: str, meta: dict[str, Any]) -> Expectation:
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToNotBeNull(column=column, description=description, meta=meta)


def _one_row(description: str, meta: dict[str, Any]) -> Expectation:
    import great_expectations.expectations as gxe

    return gxe.ExpectTableRowCountToEqual(value=1, description=description, meta=meta)


# --- marts.fct_od_month_end -------------------------------------------------------------------------------

PROVISION_AMOUNT_SQL = """
select f.od_account_id, f.principal_outstanding, f.provision_rate, f.provision_amount,
       round(f.provision_rate * f.principal_outstanding / u.value) * u.value as expected_provision_amount
from {batch} as f
left join intermediate.int_policy__parameter_versions as u
    on u.parameter_name = 'rounding_unit_' || lower(f.currency)
    and f.month_end >= u.effective_from and f.month_end < u.effective_to
where f.provision_amount is distinct from round(f.provision_rate * f.principal_outstanding / u.value) * u.value
order by f.od_account_id
"""

# Every OD is SHORT term (policy-rules.md F); the grade's rate in force at the month end.
PROVISION_RATE_SQL = """
select f.od_account_id, f.nbc_grade, f.provision_rate, r.provision_rate as policy_provision_rate
from {batch} as f
left join intermediate.int_policy__nbc_grading_rule_versions as r
    on r.term_class = 'SHORT' and r.grade = f.nbc_grade
    and f.month_end >= r.effective_from and f.month_end < r.effective_to
where f.nbc_grade is not null and f.provision_rate is distinct from r.provision_rate
order by f.od_account_id
"""


def _fct_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "marts.fct_od_month_end"
    found: list[Expectation] = [
        gxe.ExpectColumnValuesToBeInSet(
            column="nbc_grade",
            value_set=list(NBC_GRADES),
            description=f"nbc_grade is one of the five NBC grades ({', '.join(NBC_GRADES)}).",
            meta=_meta("grade_valid", RULE_GRADED, table, "nbc_grade is not one of the five NBC grades"),
        ),
        _unexpected_rows(
            PROVISION_AMOUNT_SQL,
            "provision_amount = provision_rate x principal_outstanding, exactly (numeric).",
            _meta(
                "provision_amount",
                RULE_PROVISION,
                table,
                "provision_amount is not provision_rate x principal_outstanding",
            ),
        ),
        _unexpected_rows(
            PROVISION_RATE_SQL,
            "provision_rate is the rate of the account's grade in the NBC grading rules in force at the month "
            "end (SHORT term class; the seed's default or a change recorded with `odwh policy set`).",
            _meta(
                "provision_rate",
                RULE_PROVISION,
                table,
                "provision_rate is not the policy's rate for the grade",
            ),
        ),
    ]
    for column in NON_NEGATIVE_COLUMNS:
        meta = _meta(f"non_negative.{column}", RULE_NON_NEGATIVE, table, f"negative {column}")
        found.append(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, description=f"{column} >= 0.", meta=meta
            )
        )
    for column in USD_COLUMNS:
        meta = _meta(f"usd_present.{column}", RULE_FX, table, f"{column} is null (no USD conversion)")
        found.append(
            _not_null(column, f"{column} is converted (not null): the month end has its FX rate.", meta)
        )
    return found


# --- raw.od_accounts of the month end ---------------------------------------------------------------------

GRADED_ONCE_SQL = f"""
select trim(a.od_account_id) as od_account_id, count(f.od_account_id) as month_end_rows,
       count(f.nbc_grade) as graded_rows
from {{batch}} as a
left join marts.fct_od_month_end as f
    on f.od_account_id = trim(a.od_account_id) and f.month_end = a._business_date
where {_ACTIVE}
group by trim(a.od_account_id)
having count(f.od_account_id) <> 1 or count(f.nbc_grade) <> 1
order by 1
"""  # noqa: S608 (a constant predicate, no input)


def _snapshot_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "raw.od_accounts"
    not_loaded = "no od_accounts snapshot is loaded for the month end"
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1,
            description="The od_accounts snapshot of the month end is loaded.",
            meta=_meta("snapshot_loaded", RULE_GRADED, table, not_loaded),
        ),
        _unexpected_rows(
            GRADED_ONCE_SQL,
            "Every account active at the month end (ACTIVE, started, not closed) has exactly one "
            "row in marts.fct_od_month_end, with an nbc_grade.",
            _meta(
                "active_graded_once",
                RULE_GRADED,
                table,
                "active account not graded exactly once in marts.fct_od_month_end",
            ),
        ),
    ]


# --- od_balances.csv of the month end's current load in meta.load_files ------------------------------------

CONTROL_TOTAL_SQL = """
select m.file_name, m.load_id, m.control_total as manifest_control_total, t.mart_principal_total,
       m.rows as manifest_rows, t.mart_rows
from {batch} as m
cross join lateral (
    select coalesce(sum(f.principal_outstanding), 0) as mart_principal_total, count(*) as mart_rows
    from marts.fct_od_month_end as f
    where f.month_end = m.business_date
) as t
where m.control_total is distinct from t.mart_principal_total or m.rows <> t.mart_rows
"""

PRINCIPAL_MATCHES_SQL = """
with delivered as (
    select trim(b.od_account_id) as od_account_id, b.principal_outstanding
    from {batch} as m
    join raw.od_balances as b on b._business_date = m.business_date
),
graded as (
    select f.od_account_id, f.principal_outstanding
    from {batch} as m
    join marts.fct_od_month_end as f on f.month_end = m.business_date
)
select coalesce(d.od_account_id, g.od_account_id) as od_account_id,
       d.principal_outstanding as delivered_principal, g.principal_outstanding as mart_principal
from delivered as d
full join graded as g on g.od_account_id = d.od_account_id
where d.principal_outstanding is distinct from g.principal_outstanding
order by 1
"""


def _control_expectations() -> list[Expectation]:
    table = "meta.load_files"
    return [
        _one_row(
            "The month end has a current load with od_balances.csv in meta.load_files.",
            _meta(
                "od_balances_loaded",
                RULE_TOTALS,
                table,
                "no current load of od_balances.csv for the month end",
            ),
        ),
        _unexpected_rows(
            CONTROL_TOTAL_SQL,
            "sum(principal_outstanding) and the row count of marts.fct_od_month_end for the month "
            "end equal od_balances.csv's control_total and rows in the manifest of the current load "
            "(a plain sum across currencies, as the manifest's control total is).",
            _meta(
                "control_total",
                RULE_TOTALS,
                table,
                "month-end principal total or row count differs from the manifest",
            ),
        ),
        _unexpected_rows(
            PRINCIPAL_MATCHES_SQL,
            "Every account's month-end principal_outstanding equals its delivered od_balances row "
            "(explains a control-total break account by account).",
            _meta(
                "principal_matches_delivery",
                RULE_TOTALS,
                "marts.fct_od_month_end",
                "month-end principal differs from the delivered od_balances row",
            ),
        ),
    ]


# --- raw.fx_rates of the month end ------------------------------------------------------------------------


def _fx_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    currencies = ", ".join(contract.CURRENCIES)
    return [
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="currency",
            value_set=list(contract.CURRENCIES),
            description=f"The month end has an NBC rate for every currency ({currencies}).",
            meta=_meta(
                "fx_currencies", RULE_FX, "raw.fx_rates", "the month end has no FX rate for a currency"
            ),
        ),
    ]


# --- marts.rpt_review_list of the month end ---------------------------------------------------------------

ROUTED_KNOWN_SQL = """
select r.od_account_id, r.reason, r.officer_id, r.manager_id,
       case when o.officer_id is null then 'officer_id not in the officers snapshot'
            else 'manager_id not in the officers snapshot' end as problem
from {batch} as r
left join raw.officers as o on trim(o.officer_id) = r.officer_id and o._business_date = r.month_end
left join raw.officers as m on trim(m.officer_id) = r.manager_id and m._business_date = r.month_end
where (r.officer_id is not null and o.officer_id is null) or (r.manager_id is not null and m.officer_id is null)
order by r.od_account_id, r.reason
"""


def _review_list_expectations() -> list[Expectation]:
    table = "marts.rpt_review_list"
    return [
        _not_null(
            "officer_id",
            "Every review-list row is routed to an officer.",
            _meta("routed_officer", RULE_ROUTED, table, "review-list row without officer_id"),
        ),
        _not_null(
            "manager_id",
            "Every review-list row has the officer's manager.",
            _meta("routed_manager", RULE_ROUTED, table, "review-list row without manager_id"),
        ),
        _unexpected_rows(
            ROUTED_KNOWN_SQL,
            "The officer and the manager of every review-list row are in the month end's officers snapshot.",
            _meta(
                "routed_known",
                RULE_ROUTED,
                table,
                "review-list officer or manager not in the officers snapshot",
            ),
        ),
    ]


# --- social performance and client protection (rulebook I) ------------------------------------------------
# Reconciled against what was delivered (raw, where a re-delivered date's rows are replaced), not against the
# staging views the marts read: a second path to the same figures. Rates in [0, 1] (poverty rates, CBC and E&S
# coverage) are check constraints of the marts' contracts: a build fails on them before the gate could. The batch of the application and complaint
# checks is the month end alone (MONTH_END_BATCH), so a check still runs when the mart has no row at all.
MONTH_END_BATCH = "select {month_end} as month_end"
# LAST_CLOSE: the social marts keep the deliveries up to the last complete month end (macros/
# last_complete_month_end.sql, decision 0034), so the reconciliation does too: a backfill past a month end must not
# count a late delivery that a close on the month end had not seen.

NOT_CLASSIFIED_SQL = """
with delivered as (
    select distinct on (trim(application_id)) trim(application_id) as application_id, decision, decided_on,
           business_purpose
    from raw.loan_applications
    where _business_date <= (  -- LAST_CLOSE
        select max(business_date) from meta.loads where superseded_at is null
            and business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
    )
    order by trim(application_id), _business_date desc, _load_id desc
)
select d.application_id, d.decision, d.decided_on
from delivered as d
cross join {batch} as b
left join marts.fct_es_screening as s on s.application_id = d.application_id
where d.business_purpose and d.decision is not null and d.decided_on <= b.month_end and s.application_id is null
order by d.application_id
"""

COMPLAINTS_UNRECONCILED_SQL = """
with delivered as (
    select distinct on (trim(complaint_id)) received_on, resolved_on
    from raw.complaints
    where _business_date <= (  -- LAST_CLOSE
        select max(business_date) from meta.loads where superseded_at is null
            and business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
    )
    order by trim(complaint_id), _business_date desc, _load_id desc
),
counted as (
    select b.month_end,
           count(d.*) filter (where d.received_on >= date_trunc('month', b.month_end)) as received,
           count(d.*) filter (where d.resolved_on between date_trunc('month', b.month_end) and b.month_end)
               as resolved
    from {batch} as b
    left join delivered as d on d.received_on <= b.month_end
    group by b.month_end
)
select c.month_end, m.received, c.received as delivered_received, m.resolved, c.resolved as delivered_resolved,
       m.open_at_month_end, m.open_over_limit
from counted as c
left join marts.fct_complaints_month_end as m on m.month_end = c.month_end
where m.month_end is null or m.received <> c.received or m.resolved <> c.resolved
   or m.open_over_limit > m.open_at_month_end
"""


def _social_check(check: str, sql: str, description: str, table: str, failure: str) -> Expectation:
    return _unexpected_rows(sql, description, _meta(check, RULE_SOCIAL, table, failure))


def _es_screening_expectations() -> list[Expectation]:
    return [
        _social_check(
            "classified",
            NOT_CLASSIFIED_SQL,
            "Every decided business-purpose application delivered up to the month end is classified in "
            "fct_es_screening (its key makes it once).",
            "marts.fct_es_screening",
            "a decided business-purpose application is not classified",
        )
    ]


def _client_protection_expectations() -> list[Expectation]:
    table = "marts.fct_client_protection_month_end"
    return [
        _one_row(
            "The month end has its client-protection row (the board pack's section 10).",
            _meta("row_present", RULE_SOCIAL, table, "no client-protection row for the month end"),
        ),
    ]


def _complaints_expectations() -> list[Expectation]:
    return [
        _social_check(
            "reconciled",
            COMPLAINTS_UNRECONCILED_SQL,
            "The month's complaints received and resolved equal those delivered (latest delivery of each "
            "complaint), and no more are open over the limit than are open.",
            "marts.fct_complaints_month_end",
            "complaints do not reconcile to the deliveries",
        )
    ]


# --- the suites -------------------------------------------------------------------------------------------

_CURRENT_OD_BALANCES = """
select l.business_date, l.load_id, f.file_name, f.rows, f.control_total
from meta.loads as l
join meta.load_files as f on f.load_id = l.load_id
where l.business_date = {month_end} and l.superseded_at is null and f.file_name = 'od_balances.csv'
"""

SUITES: tuple[GateSuite, ...] = (
    GateSuite(
        "fct_od_month_end",
        "marts.fct_od_month_end",
        "select * from marts.fct_od_month_end where month_end = {month_end}",
        _fct_expectations,
    ),
    GateSuite(
        "od_accounts_snapshot",
        "raw.od_accounts",
        f"select * from {history.by_business_date(contract.FILES_BY_NAME['od_accounts.csv'])} as r"  # noqa: S608
        " where _business_date = {month_end}",  # the snapshot of the month end (stored as change history)
        _snapshot_expectations,
    ),
    GateSuite("control_totals", "meta.load_files", _CURRENT_OD_BALANCES, _control_expectations),
    GateSuite(
        "fx_rates",
        "raw.fx_rates",
        "select * from raw.fx_rates where _business_date = {month_end}",
        _fx_expectations,
    ),
    GateSuite(
        "rpt_review_list",
        "marts.rpt_review_list",
        "select * from marts.rpt_review_list where month_end = {month_end}",
        _review_list_expectations,
        optional=True,
    ),
    GateSuite(
        "fct_es_screening",
        "marts.fct_es_screening",
        MONTH_END_BATCH,
        _es_screening_expectations,
        optional=True,
    ),
    GateSuite(
        "fct_client_protection_month_end",
        "marts.fct_client_protection_month_end",
        "select * from marts.fct_client_protection_month_end where month_end = {month_end}",
        _client_protection_expectations,
        optional=True,
    ),
    GateSuite(
        "fct_complaints_month_end",
        "marts.fct_complaints_month_end",
        MONTH_END_BATCH,
        _complaints_expectations,
        optional=True,
    ),
)


def build_suite(spec: GateSuite) -> ExpectationSuite:
    import great_expectations

    meta = {
        "table": spec.table,
        "batch_query": spec.batch_sql,
        "optional": spec.optional,
        "built_by": "odwh.suites.month_end_gate.build_suite",
    }
    return great_expectations.ExpectationSuite(
        name=spec.suite_name, expectations=spec.expectations(), meta=meta
    )


def suite_json(spec: GateSuite) -> str:
    return gx.suite_json(build_suite(spec))


def export_suites(directory: Path | None = None) -> list[Path]:
    """Write every gate suite to ``<directory>/month_end_gate/<name>.json`` (default ``expectations/suites``),
    removing stale ones. Returns the files written."""
    return gx.export_family(FAMILY, {spec.name: build_suite(spec) for spec in SUITES}, directory)
