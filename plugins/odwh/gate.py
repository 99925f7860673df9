"""The month-end quality gate: a Great Expectations checkpoint on the month's marts before publication.

The suites and the rules they check are ``odwh.suites.month_end_gate``; GX plumbing is ``odwh.gx``. This module
runs the suites whose tables exist, turns their outcomes into :class:`GateFailure`\\ s, and writes the report:
the run's Data Docs (published with the month under ``data-quality/``), ``gate-summary.html`` (from
``templates/gate_summary.html.j2``) and ``gate-result.json``. See docs/decisions/0006-quality-gate.md.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from odwh import gx
from odwh.suites.month_end_gate import ROW_KEY, SUITES, GateSuite, build_suite

MAX_SAMPLE_ROWS = 20  # failing rows kept per expectation: a million bad rows still make a readable report
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "unexpected_index_column_names": [ROW_KEY],
    "partial_unexpected_count": MAX_SAMPLE_ROWS,
}
RULE_TABLE_PRESENT = "table present"
SUMMARY_PAGE = "gate-summary.html"

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
            "expectation": self.expectation,
            "rule": self.rule,
            "table": self.table,
            "message": self.message,
            "unexpected_count": self.unexpected_count,
            "rows": [_json_row(r) for r in self.rows],
        }


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
        import great_expectations

        return {
            "month_end": self.month_end.isoformat(),
            "passed": self.passed,
            "statistics": self.statistics,
            "failures": [f.to_json() for f in self.failures],
            "skipped": self.skipped,
            "suites": self.suites,
            "great_expectations_version": great_expectations.__version__,
            "data_docs": "index.html",
            "summary": SUMMARY_PAGE,
        }


def _row_text(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_json_value(v)}" for k, v in row.items())


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal | date):
        return str(value)
    return value


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in row.items()}


# --- running ----------------------------------------------------------------------------------------------


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
        day = f"{month_end:%Y-%m-%d}"
        batches = [
            gx.QueryBatch(suite=build_suite(s), asset=s.name, batch=day, query=s.batch_query(month_end))
            for s in to_run
        ]
        name = f"month_end_gate_{month_end:%Y_%m}"
        results = gx.run_checkpoint(Path(work), warehouse_url, name, batches, RESULT_FORMAT) if to_run else []
        for spec, result in zip(to_run, results, strict=True):
            failures += _failures(spec, gx.outcomes(result))
            suites[spec.suite_name] = "passed" if result.success else "failed"
        _publish_docs(Path(work), data_docs_dir, not failures)
    evaluated = sum(r.statistics["evaluated_expectations"] for r in results)
    successful = sum(r.statistics["successful_expectations"] for r in results)
    statistics = {
        "evaluated": evaluated,
        "successful": successful,
        "unsuccessful": evaluated - successful,
        "suites": len(results),
        "seconds": round(time.perf_counter() - started, 2),
    }
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
            message = f"{spec.table} does not exist: build the month-end models first"
            failures.append(
                GateFailure(f"{spec.name}.table_present", RULE_TABLE_PRESENT, spec.table, message)
            )
    return failures, suites, skipped


def _existing_tables(warehouse_url: str, tables: set[str]) -> set[str]:
    with psycopg.connect(warehouse_url) as conn:
        found = {t: conn.execute("select to_regclass(%s)", (t,)).fetchone() for t in tables}
    return {t for t, row in found.items() if row is not None and row[0] is not None}


def _failures(spec: GateSuite, outcomes: list[gx.Outcome]) -> list[GateFailure]:
    found = []
    for outcome in outcomes:
        if outcome.success:
            continue
        meta = outcome.meta
        check = f"{spec.name}.{meta.get('check', outcome.expectation_type)}"
        rule, table = meta.get("rule", "?"), meta.get("table", spec.table)
        if (error := outcome.error(first_lines=True)) is not None:
            found.append(GateFailure(check, rule, table, f"could not be checked: {error}"))
            continue
        rows, count = outcome.sample(MAX_SAMPLE_ROWS)
        noun = "row" if count == 1 else "rows"
        message = meta.get("failure", "failed") + (f" ({count} {noun})" if count is not None else "")
        found.append(GateFailure(check, rule, table, message, rows, count))
    return found


# --- Data Docs and the summary page ----------------------------------------------------------------------


def _publish_docs(work: Path, data_docs_dir: Path, passed: bool) -> None:
    """The run's Data Docs in ``data_docs_dir``, with a banner on the index: the verdict and static links to
    every validation page (the index's own tables need a script from a CDN)."""
    if not gx.copy_data_docs(work, data_docs_dir):  # nothing was validated: the summary is the whole report
        redirect = f'<!doctype html><meta http-equiv="refresh" content="0; url={SUMMARY_PAGE}">'
        (data_docs_dir / "index.html").write_text(f'{redirect}<a href="{SUMMARY_PAGE}">{SUMMARY_PAGE}</a>\n')
        return
    index = data_docs_dir / "index.html"
    banner = _banner(data_docs_dir, passed)
    text = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + banner, index.read_text(encoding="utf-8"), count=1)
    index.write_text(text, encoding="utf-8")


def _banner(data_docs_dir: Path, passed: bool) -> str:
    links = " &middot; ".join(
        f'<a href="{html.escape(page.relative_to(data_docs_dir).as_posix())}">{html.escape(suite)}</a>'
        for suite, page in gx.validation_pages(data_docs_dir)
    )
    verdict = "PASSED" if passed else "FAILED"
    style = "font: 15px sans-serif; padding: 8px 12px; margin: 8px; border: 1px solid #999"
    return (
        f'<div style="{style}"><b>Month-end quality gate: {verdict}</b> &mdash; '
        f'<a href="{SUMMARY_PAGE}">summary and failing rows</a>; validation results: {links}</div>'
    )


def summary_html(gate: GateResult) -> str:
    """One self-contained page: the verdict, counts, skipped suites and each failure with its sample rows."""
    from odwh.html_pages import template_environment

    env = template_environment("odwh")
    env.filters["columns"] = lambda rows: list(dict.fromkeys(k for row in rows for k in row))
    env.filters["cell"] = lambda value: "null" if value is None else str(_json_value(value))
    return env.get_template("gate_summary.html.j2").render(
        gate=gate, verdict="PASSED" if gate.passed else "FAILED"
    )
