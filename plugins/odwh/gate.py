"""The month-end quality gate: a Great Expectations checkpoint on the month's marts before publication.

The six rules of issue 4, each checked by one or more GX expectations (every verdict is a GX validation
result, and the run's Data Docs are published with the month under ``data-quality/``):

1. every active account graded exactly once, with one of the five NBC grades;
2. provision_amount = provision_rate x principal_outstanding, exactly, with the seed's rate for the grade;
3. totals reconcile to the manifest: the month end's principal sum and row count equal ``od_balances.csv``'s
   control total and rows of the date's current load, and every account's principal equals its delivery;
4. no negative balances;
5. FX present: KHR, USD and THB rates for the month end, and no null ``*_usd`` amount;
6. review-list rows routed to an officer with a manager, both in the month end's officers snapshot
   (conditional on ``marts.rpt_review_list`` existing unless ``require_review_list``).

One suite per batch; a batch is one table's rows for the month end (a GX query asset whose SQL holds the
date). Suites hold no date: cross-table SQL (``UnexpectedRowsExpectation``) takes it from the batch rows, so
the suites are static, built here in code and exported as JSON under ``expectations/suites/month_end_gate/``
(a test keeps them in sync). The gate reads marts, and raw/meta/policy to reconcile: it is a check, not a
report. See docs/decisions/0006-quality-gate.md.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from odwh import contract

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.data_context import FileDataContext
    from great_expectations.expectations import Expectation

SUITE_FAMILY = "month_end_gate"  # expectations/suites/<family>/
NBC_GRADES = (
    "Normal",
    "Special Mention",
    "Substandard",
    "Doubtful",
    "Loss",
)  # policy-rules.md F (seed grades)
ROW_KEY = "od_account_id"  # the column every row-level failure sample names
MAX_SAMPLE_ROWS = 20  # failing rows kept per expectation: a million bad rows still make a readable report
NON_NEGATIVE_COLUMNS = (
    "limit_amount", "principal_outstanding", "interest_due", "unutilized_fee_due", "excess_fee_due",
    "provision_amount", "principal_outstanding_usd", "provision_amount_usd", "stagnant_amount_60d",
)  # fmt: skip
USD_COLUMNS = ("principal_outstanding_usd", "provision_amount_usd")  # the *_usd columns of fct_od_month_end

RULE_GRADED = "1. every active account graded exactly once"
RULE_PROVISION = "2. provision = rate x base"
RULE_TOTALS = "3. totals reconcile to the manifests' control totals"
RULE_NON_NEGATIVE = "4. no negative balances"
RULE_FX = "5. FX present"
RULE_ROUTED = "6. review-list rows routed to an officer with a manager"
RULE_TABLE_PRESENT = "table present"

# An account that must carry a month-end grade: ACTIVE in the month end's od_accounts snapshot, started and not
# closed. A matured account still ACTIVE is included: its balance is still an exposure to grade (DPD since
# maturity, policy-rules.md D).
_ACTIVE = (
    "trim(a.status) = 'ACTIVE' and a.start_date <= a._business_date"
    " and (a.closed_on is null or a.closed_on > a._business_date)"
)


# --- the checks as data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateSuite:
    """One batch (``table``'s rows for the month end, read by ``batch_sql``) and its expectations."""

    name: str  # suite name is f"{SUITE_FAMILY}.{name}"
    table: str
    batch_sql: str  # {month_end} is replaced by a date literal
    expectations: Callable[[], list[Expectation]]
    optional: bool = False  # skipped (and said so) when ``table`` does not exist

    @property
    def suite_name(self) -> str:
        return f"{SUITE_FAMILY}.{self.name}"

    def batch_query(self, month_end: date) -> str:
        return self.batch_sql.format(month_end=f"date '{month_end.isoformat()}'")


def _meta(check: str, rule: str, table: str, failure: str) -> dict[str, Any]:
    """``check`` names the expectation in failures; ``failure`` is the sentence said when it fails."""
    return {"check": check, "rule": rule, "table": table, "failure": failure}


def _fct_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "marts.fct_od_month_end"
    found: list[Expectation] = [
        gxe.ExpectColumnValuesToBeUnique(
            column=ROW_KEY, description="One month-end row per account (graded exactly once).",
            meta=_meta("graded_once", RULE_GRADED, table, "account has more than one month-end row")),
        gxe.ExpectColumnValuesToBeInSet(
            column="nbc_grade", value_set=list(NBC_GRADES),
            description=f"nbc_grade is one of the five NBC grades ({', '.join(NBC_GRADES)}).",
            meta=_meta("grade_valid", RULE_GRADED, table, "nbc_grade is not one of the five NBC grades")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=PROVISION_AMOUNT_SQL,
            description="provision_amount = provision_rate x principal_outstanding, exactly (numeric).",
            meta=_meta("provision_amount", RULE_PROVISION, table,
                       "provision_amount is not provision_rate x principal_outstanding")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=PROVISION_RATE_SQL,
            description="provision_rate is the rate of the account's grade in policy.nbc_grading_rules "
                        "(SHORT term class, version in force at the month end).",
            meta=_meta("provision_rate", RULE_PROVISION, table,
                       "provision_rate is not the seed's rate for the grade")),
    ]  # fmt: skip
    found += [
        gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=0, description=f"{column} >= 0.",
            meta=_meta(f"non_negative.{column}", RULE_NON_NEGATIVE, table, f"negative {column}"))
        for column in NON_NEGATIVE_COLUMNS
    ]  # fmt: skip
    found += [
        gxe.ExpectColumnValuesToNotBeNull(
            column=column, description=f"{column} is converted (not null): the month end has its FX rate.",
            meta=_meta(f"usd_present.{column}", RULE_FX, table, f"{column} is null (no USD conversion)"))
        for column in USD_COLUMNS
    ]  # fmt: skip
    return found


PROVISION_AMOUNT_SQL = """
select od_account_id, principal_outstanding, provision_rate, provision_amount,
       provision_rate * principal_outstanding as expected_provision_amount
from {batch}
where provision_amount is distinct from provision_rate * principal_outstanding
order by od_account_id
"""

# Every OD is SHORT term (policy-rules.md F); the grade's rate in force at the month end.
PROVISION_RATE_SQL = """
select f.od_account_id, f.nbc_grade, f.provision_rate, r.provision_rate as seed_provision_rate
from {batch} as f
left join lateral (
    select g.provision_rate
    from policy.nbc_grading_rules as g
    where g.term_class = 'SHORT' and g.grade = f.nbc_grade and g.effective_from <= f.month_end
    order by g.effective_from desc
    limit 1
) as r on true
where f.nbc_grade is not null and f.provision_rate is distinct from r.provision_rate
order by f.od_account_id
"""


def _snapshot_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "raw.od_accounts"
    return [
        gxe.ExpectTableRowCountToBeBetween(
            min_value=1, description="The od_accounts snapshot of the month end is loaded.",
            meta=_meta("snapshot_loaded", RULE_GRADED, table, "no od_accounts snapshot is loaded for the month end")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=GRADED_ONCE_SQL,
            description="Every account active at the month end (ACTIVE, started, not closed) has exactly one "
                        "row in marts.fct_od_month_end, with an nbc_grade.",
            meta=_meta("active_graded_once", RULE_GRADED, table,
                       "active account not graded exactly once in marts.fct_od_month_end")),
    ]  # fmt: skip


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


def _control_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "meta.load_files"
    return [
        gxe.ExpectTableRowCountToEqual(
            value=1, description="The month end has a current load with od_balances.csv in meta.load_files.",
            meta=_meta("od_balances_loaded", RULE_TOTALS, table,
                       "no current load of od_balances.csv for the month end")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=CONTROL_TOTAL_SQL,
            description="sum(principal_outstanding) and the row count of marts.fct_od_month_end for the month "
                        "end equal od_balances.csv's control_total and rows in the manifest of the current load "
                        "(a plain sum across currencies, as the manifest's control total is).",
            meta=_meta("control_total", RULE_TOTALS, table,
                       "month-end principal total or row count differs from the manifest")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=PRINCIPAL_MATCHES_SQL,
            description="Every account's month-end principal_outstanding equals its delivered od_balances row "
                        "(explains a control-total break account by account).",
            meta=_meta("principal_matches_delivery", RULE_TOTALS, "marts.fct_od_month_end",
                       "month-end principal differs from the delivered od_balances row")),
    ]  # fmt: skip


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


def _fx_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="currency", value_set=list(contract.CURRENCIES),
            description=f"The month end has an NBC rate for every currency ({', '.join(contract.CURRENCIES)}).",
            meta=_meta("fx_currencies", RULE_FX, "raw.fx_rates", "the month end has no FX rate for a currency")),
    ]  # fmt: skip


def _review_list_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    table = "marts.rpt_review_list"
    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column="officer_id", description="Every review-list row is routed to an officer.",
            meta=_meta("routed_officer", RULE_ROUTED, table, "review-list row without officer_id")),
        gxe.ExpectColumnValuesToNotBeNull(
            column="manager_id", description="Every review-list row has the officer's manager.",
            meta=_meta("routed_manager", RULE_ROUTED, table, "review-list row without manager_id")),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=ROUTED_KNOWN_SQL,
            description="The officer and the manager of every review-list row are in the month end's officers "
                        "snapshot.",
            meta=_meta("routed_known", RULE_ROUTED, table,
                       "review-list officer or manager not in the officers snapshot")),
    ]  # fmt: skip


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

SUITES: tuple[GateSuite, ...] = (
    GateSuite("fct_od_month_end", "marts.fct_od_month_end",
              "select * from marts.fct_od_month_end where month_end = {month_end}", _fct_expectations),
    GateSuite("od_accounts_snapshot", "raw.od_accounts",
              "select * from raw.od_accounts where _business_date = {month_end}", _snapshot_expectations),
    GateSuite("control_totals", "meta.load_files",
              "select l.business_date, l.load_id, f.file_name, f.rows, f.control_total"
              " from meta.loads as l join meta.load_files as f on f.load_id = l.load_id"
              " where l.business_date = {month_end} and l.superseded_at is null"
              " and f.file_name = 'od_balances.csv'", _control_expectations),
    GateSuite("fx_rates", "raw.fx_rates",
              "select * from raw.fx_rates where _business_date = {month_end}", _fx_expectations),
    GateSuite("rpt_review_list", "marts.rpt_review_list",
              "select * from marts.rpt_review_list where month_end = {month_end}", _review_list_expectations,
              optional=True),
)  # fmt: skip
SUITES_BY_NAME = {s.name: s for s in SUITES}


def build_suite(spec: GateSuite) -> ExpectationSuite:
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=spec.suite_name, expectations=spec.expectations(),
        meta={"table": spec.table, "batch_query": spec.batch_sql, "optional": spec.optional,
              "built_by": "odwh.gate.build_suite"})  # fmt: skip


def suite_json(spec: GateSuite) -> str:
    """The suite as reviewable, deterministic JSON (no ids)."""
    return json.dumps(_without_ids(build_suite(spec).to_json_dict()), indent=2, sort_keys=True) + "\n"


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def export_suites(directory: Path | None = None) -> list[Path]:
    """Write every gate suite to ``<directory>/month_end_gate/<name>.json`` (default ``expectations/suites``),
    removing stale ones. Returns the files written."""
    from odwh.validate import default_suites_dir

    family = (directory or default_suites_dir()) / SUITE_FAMILY
    family.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in SUITES:
        path = family / f"{spec.name}.json"
        path.write_text(suite_json(spec))
        written.append(path)
    for stale in set(family.glob("*.json")) - set(written):
        stale.unlink()
    return written


# --- results ----------------------------------------------------------------------------------------------


@dataclass
class GateFailure:
    """One failed expectation: which (``expectation``, ``rule``), on which table, why, and sample rows."""

    expectation: str
    rule: str
    table: str
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # at most MAX_SAMPLE_ROWS, keyed by column
    unexpected_count: int | None = None

    def describe(self) -> str:
        shown = "; ".join(_row_text(r) for r in self.rows[:5])
        count = self.unexpected_count or 0
        more = f" (+{count - 5} more)" if count > 5 else ""
        return f"{self.expectation} on {self.table}: {self.message}" + (f" [{shown}{more}]" if shown else "")

    def to_json(self) -> dict[str, Any]:
        return {
            "expectation": self.expectation, "rule": self.rule, "table": self.table, "message": self.message,
            "unexpected_count": self.unexpected_count, "rows": [_json_row(r) for r in self.rows],
        }  # fmt: skip


@dataclass
class GateResult:
    month_end: date
    passed: bool
    failures: list[GateFailure]
    statistics: dict[str, Any]  # evaluated, successful, unsuccessful (expectations), suites, seconds
    skipped: list[str] = field(default_factory=list)  # suites not run, and why
    data_docs_dir: Path | None = None
    suites: dict[str, str] = field(default_factory=dict)  # suite name -> passed, failed or skipped

    def to_json(self) -> dict[str, Any]:
        """For the publication manifest: verdict, counts, failures with sample rows, skipped suites."""
        import great_expectations as gx

        return {
            "month_end": self.month_end.isoformat(), "passed": self.passed, "statistics": self.statistics,
            "failures": [f.to_json() for f in self.failures], "skipped": self.skipped, "suites": self.suites,
            "great_expectations_version": gx.__version__, "data_docs": "index.html", "summary": SUMMARY_PAGE,
        }  # fmt: skip


def _row_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_json_value(v)}" for k, v in row.items())


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal | date):
        return str(value)
    return value


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in row.items()}


# --- running ----------------------------------------------------------------------------------------------

RESULT_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY],
                 "partial_unexpected_count": MAX_SAMPLE_ROWS}  # fmt: skip


def run_gate(
    warehouse_url: str, month_end: date, data_docs_dir: Path, *, require_review_list: bool = False
) -> GateResult:
    """Validate the month end's marts; ``passed`` only if every expectation of every suite passed.

    ``data_docs_dir`` (replaced) receives the run's GX Data Docs (``index.html``), ``gate-summary.html`` (the
    verdict and failing rows, readable offline) and ``gate-result.json`` (:meth:`GateResult.to_json`).
    ``marts.rpt_review_list`` is checked when it exists; with ``require_review_list`` its absence fails.
    """
    import great_expectations  # noqa: F401 (imported before the clock: statistics time the run, not the import)

    started = time.perf_counter()
    present = _existing_tables(warehouse_url, {s.table for s in SUITES})
    to_run = [spec for spec in SUITES if spec.table in present]
    failures, suites, skipped = _absent_tables(present, require_review_list)
    with tempfile.TemporaryDirectory(prefix="odwh-gate-") as work:
        results = _run_checkpoint(Path(work), warehouse_url, month_end, to_run) if to_run else []
        for spec, result in results:
            failures += _failures(spec, result)
            suites[spec.suite_name] = "passed" if result.success else "failed"
        _publish_docs(Path(work) / _DOCS_SITE, data_docs_dir, not failures)
    evaluated = sum(r.statistics["evaluated_expectations"] for _, r in results)
    successful = sum(r.statistics["successful_expectations"] for _, r in results)
    statistics = {"evaluated": evaluated, "successful": successful, "unsuccessful": evaluated - successful,
                  "suites": len(results), "seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    gate = GateResult(month_end, not failures, failures, statistics, skipped, data_docs_dir, suites)
    (data_docs_dir / "gate-result.json").write_text(json.dumps(gate.to_json(), indent=2) + "\n")
    (data_docs_dir / SUMMARY_PAGE).write_text(summary_html(gate), encoding="utf-8")
    return gate


def _absent_tables(
    present: set[str], require_review_list: bool
) -> tuple[list[GateFailure], dict[str, str], list[str]]:
    """A missing table fails the gate, except an optional one (skipped, and said so) unless required."""
    failures: list[GateFailure] = []
    suites: dict[str, str] = {}
    skipped: list[str] = []
    for spec in SUITES:
        if spec.table in present:
            continue
        if spec.optional and not require_review_list:
            suites[spec.suite_name] = "skipped"
            skipped.append(f"{spec.suite_name}: {spec.table} does not exist yet, its checks were skipped")
        else:
            suites[spec.suite_name] = "failed"
            failures.append(GateFailure(f"{spec.name}.table_present", RULE_TABLE_PRESENT, spec.table,
                                        f"{spec.table} does not exist: build the month-end models first"))  # fmt: skip
    return failures, suites, skipped


def _existing_tables(warehouse_url: str, tables: set[str]) -> set[str]:
    with psycopg.connect(warehouse_url) as conn:
        return {t for t in tables if conn.execute("select to_regclass(%s)", (t,)).fetchone()[0] is not None}  # type: ignore[index]


def _run_checkpoint(
    work: Path, warehouse_url: str, month_end: date, specs: Sequence[GateSuite]
) -> list[tuple[GateSuite, ExpectationSuiteValidationResult]]:
    """One file context in ``work``: a query asset per suite, one checkpoint that also builds Data Docs."""
    import great_expectations as gx

    context = _file_context(work)
    source = context.data_sources.add_postgres("warehouse", connection_string=warehouse_url)
    definitions = []
    for spec in specs:
        asset = source.add_query_asset(spec.name, query=spec.batch_query(month_end))
        batch = asset.add_batch_definition_whole_table(f"{month_end:%Y-%m-%d}")
        suite = context.suites.add(build_suite(spec))
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=spec.suite_name, data=batch, suite=suite)))  # fmt: skip
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"month_end_gate_{month_end:%Y_%m}", validation_definitions=definitions, result_format=RESULT_FORMAT))  # fmt: skip
    by_suite = {r.suite_name: r for r in checkpoint.run().run_results.values()}
    # once for the whole run: UpdateDataDocsAction rebuilds the site after every validation (5x the time)
    context.build_data_docs()
    return [(spec, by_suite[spec.suite_name]) for spec in specs]


def _file_context(work: Path) -> FileDataContext:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    context = gx.get_context(mode="file", project_root_dir=work)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    # GX re-reads this (comment-only) template on every config access, ~180 times a run; absent, it reads nothing
    (Path(context.root_directory) / "uncommitted" / "config_variables.yml").unlink(missing_ok=True)
    return context


# --- turning GX results into failures ---------------------------------------------------------------------


def _failures(spec: GateSuite, result: ExpectationSuiteValidationResult) -> list[GateFailure]:
    found = []
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        meta = (config.meta if config else None) or {}
        check = f"{spec.name}.{meta.get('check', config.type if config else '?')}"
        rule, table = meta.get("rule", "?"), meta.get("table", spec.table)
        if (error := _exception(outcome)) is not None:
            found.append(GateFailure(check, rule, table, f"could not be checked: {error}"))
            continue
        rows, count = _sample(outcome)
        noun = "row" if count == 1 else "rows"
        message = meta.get("failure", "failed") + (f" ({count} {noun})" if count is not None else "")
        found.append(GateFailure(check, rule, table, message, rows, count))
    return found


def _sample(outcome: ExpectationValidationResult) -> tuple[list[dict[str, Any]], int | None]:
    """Failing rows (capped) and how many failed, for each shape of GX result."""
    result = outcome.result or {}
    if "details" in result and "unexpected_rows" in result["details"]:  # UnexpectedRowsExpectation
        return list(result["details"]["unexpected_rows"])[:MAX_SAMPLE_ROWS], result.get("observed_value")
    if "unexpected_count" in result:  # column map expectations: rows keyed by ROW_KEY plus the checked column
        rows = result.get("unexpected_index_list") or result.get("partial_unexpected_index_list") or []
        return list(rows)[:MAX_SAMPLE_ROWS], result["unexpected_count"]
    if "partial_missing_list" in result:  # a set expected among the column's distinct values
        column = outcome.expectation_config.kwargs["column"] if outcome.expectation_config else "value"
        missing = result["partial_missing_list"]
        return [{f"missing_{column}": v} for v in missing], result.get("missing_count", len(missing))
    observed = result.get("observed_value")
    return ([{"observed_value": observed}] if observed is not None else []), None


def _exception(outcome: ExpectationValidationResult) -> str | None:
    info = outcome.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        e.get("exception_message") for e in entries if isinstance(e, dict) and e.get("raised_exception")
    ]
    return "; ".join(_first_line(str(m)) for m in messages) if messages else None


def _first_line(message: str) -> str:
    """SQL errors carry the whole statement after the first line; the first line says what is wrong."""
    return next((line for line in message.splitlines() if line.strip()), message).strip()


# --- Data Docs and the summary page ----------------------------------------------------------------------

SUMMARY_PAGE = "gate-summary.html"
_DOCS_SITE = Path("gx") / "uncommitted" / "data_docs" / "local_site"
# GX's pages load their logo from a web host with the data context id in the URL (a beacon): use the copy
# the site ships instead, so opening the report from disk contacts nobody about it.
_REMOTE_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"')]*"
)
# Styles and scripts still come from CDNs (GX ships none); offline the pages are plain but readable, except the
# status icons (an icon font) and the index's tables (built by a script): glyphs and static links stand in.
_OFFLINE_STYLE = """<style>/* odwh: readable from disk without the CDN */
i.fa-check-circle::before { content: "\\2714"; color: #1a7f37; font: bold 1.1em sans-serif; }
i.fa-times::before { content: "\\2718"; color: #c62828; font: bold 1.1em sans-serif; }
.odwh-gate-banner { font: 15px sans-serif; padding: 8px 12px; margin: 8px; border: 1px solid #999; }
</style>"""


def _publish_docs(site: Path, data_docs_dir: Path, passed: bool) -> None:
    """Copy the built site into ``data_docs_dir`` (replacing what was there), made readable from disk."""
    if data_docs_dir.exists():
        shutil.rmtree(data_docs_dir)
    if not site.is_dir():  # nothing was validated: the summary is the whole report
        data_docs_dir.mkdir(parents=True)
        (data_docs_dir / "index.html").write_text(_redirect(SUMMARY_PAGE), encoding="utf-8")
        return
    shutil.copytree(site, data_docs_dir)
    for page in data_docs_dir.rglob("*.html"):
        logo = os.path.relpath(data_docs_dir / "static" / "images" / "logo-long.png", page.parent)
        text = _REMOTE_LOGO.sub(logo, page.read_text(encoding="utf-8"))
        text = text.replace("</head>", _OFFLINE_STYLE + "\n</head>", 1)
        if page.parent == data_docs_dir and page.name == "index.html":
            text = re.sub(
                r"(<body[^>]*>)", lambda m: m.group(1) + _banner(data_docs_dir, passed), text, count=1
            )
        page.write_text(text, encoding="utf-8")


def _banner(data_docs_dir: Path, passed: bool) -> str:
    """Static links to every validation page, for the index whose own tables need a script from a CDN."""
    links = " &middot; ".join(
        f'<a href="{html.escape(p.relative_to(data_docs_dir).as_posix())}">{html.escape(p.parent.parent.parent.name)}</a>'
        for p in sorted((data_docs_dir / "validations").rglob("*.html"))
    )
    verdict = "PASSED" if passed else "FAILED"
    return (f'<div class="odwh-gate-banner"><b>Month-end quality gate: {verdict}</b> &mdash; '
            f'<a href="{SUMMARY_PAGE}">summary and failing rows</a>; validation results: {links}</div>')  # fmt: skip


def _redirect(target: str) -> str:
    return f'<!doctype html><meta http-equiv="refresh" content="0; url={target}"><a href="{target}">{target}</a>\n'


def summary_html(gate: GateResult) -> str:
    """One self-contained page: the verdict, counts, skipped suites and each failure with its sample rows."""
    esc = html.escape
    stats = gate.statistics
    verdict = "PASSED" if gate.passed else "FAILED"
    suites = "".join(
        f"<tr><td>{esc(n)}</td><td class={esc(v)}>{esc(v)}</td></tr>" for n, v in gate.suites.items()
    )
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Quality gate {gate.month_end}</title>",
        f"<style>{_SUMMARY_CSS}</style></head><body>",
        f"<h1>Month-end quality gate {gate.month_end}: <span class={verdict.lower()}>{verdict}</span></h1>",
        f"<p>{stats.get('successful', 0)} of {stats.get('evaluated', 0)} expectations passed in "
        f"{stats.get('suites', 0)} suites ({stats.get('seconds', '?')} s). "
        f'Great Expectations Data Docs: <a href="index.html">index.html</a>.</p>',
        f"<table><tr><th>suite</th><th>result</th></tr>{suites}</table>",
        *(f"<p class=note>{esc(note)}</p>" for note in gate.skipped),
    ]
    for failure in gate.failures:
        parts.append(f"<h2>{esc(failure.expectation)} <small>({esc(failure.rule)}; {esc(failure.table)})</small></h2>"
                     f"<p>{esc(failure.message)}</p>{_rows_table(failure.rows)}")  # fmt: skip
    return "\n".join([*parts, "</body></html>"]) + "\n"


def _rows_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    return "null" if value is None else str(_json_value(value))


_SUMMARY_CSS = (
    "body{font:14px/1.4 'Noto Sans','Khmer OS','Noto Sans Khmer',sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}"
    ".passed{color:#1a7f37}.failed{color:#c62828}.skipped,.note{color:#8a6d00}small{color:#555;font-weight:normal}"
)
