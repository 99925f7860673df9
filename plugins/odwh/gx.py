"""Great Expectations plumbing, in one place: contexts, running suites, plain outcomes, Data Docs, suite export.

The suites themselves are built in code by ``odwh.suites``; the extract check (``odwh.validate``) and the
month-end gate (``odwh.gate``) run them through this module and read :class:`Outcome`\\ s, never GX result
objects. GX is imported inside functions: the import costs 10+ s of CPU and the DAG files import the package.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.data_context import FileDataContext

# --- contexts ---------------------------------------------------------------------------------------------


def _no_analytics() -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@functools.cache
def _ephemeral_context() -> Any:
    """One ephemeral GX context per process: no files, no analytics, no progress bars."""
    import great_expectations
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    _no_analytics()
    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return great_expectations.get_context(mode="ephemeral", project_config=config)


def _file_context(root: Path) -> FileDataContext:
    """A file context in ``root`` (its Data Docs site can be published), without progress bars."""
    import great_expectations
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _no_analytics()
    context = great_expectations.get_context(mode="file", project_root_dir=root)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    # GX re-reads this (comment-only) template on every config access, ~180 times a run; absent, it reads nothing
    (Path(context.root_directory) / "uncommitted" / "config_variables.yml").unlink(missing_ok=True)
    return context


# --- running ----------------------------------------------------------------------------------------------


MAX_UNEXPECTED_ROWS = 250_000  # per expectation, over all dates checked: ~50 MB of row ids at most


def validate_tables(
    warehouse_url: str, batches: Iterable[TableBatch], index_columns: Sequence[str]
) -> dict[str, ExpectationSuiteValidationResult]:
    """Each batch's suite on its table's rows, inside PostgreSQL (GX's SQL engine), as the batches come (a
    generator may still be writing the next tables); the results by batch name.

    Tables, not query assets: GX learns a query's columns by running it whole and fetching every row into this
    process (memory growing with the rows checked); a table's come from the catalogue.
    BOOLEAN_ONLY computes far fewer metrics; only a failing suite pays for the row lists (COMPLETE, each row
    named by ``index_columns``; at most MAX_UNEXPECTED_ROWS per expectation, beyond which counts are lower
    bounds). The source is ``add_sql``: ``add_postgres`` refuses a socket directory as host.
    Its engine is disposed at the end, so no connection outlives the check.
    """
    results: dict[str, ExpectationSuiteValidationResult] = {}
    pending = iter(batches)
    first = next(pending, None)  # a generator's writes (and its GX import) start before GX is imported here
    if first is None:
        return results
    import uuid

    from great_expectations.datasource.fluent import GxDatasourceWarning

    complete = {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": list(index_columns),
        # on SQL the row list is a LIMIT of this many, in no order: high enough for every row of a bad file
        "partial_unexpected_count": MAX_UNEXPECTED_ROWS,
    }
    context = _ephemeral_context()
    with warnings.catch_warnings():  # "a more specific PostgresDatasource may be more appropriate": see above
        warnings.simplefilter("ignore", GxDatasourceWarning)
        source = context.data_sources.add_sql(
            f"warehouse_{uuid.uuid4().hex}", connection_string=warehouse_url
        )
        try:
            for spec in itertools.chain([first], pending):
                asset = source.add_table_asset(spec.table, table_name=spec.table, schema_name=spec.schema)
                batch = asset.add_batch_definition_whole_table(spec.batch).get_batch()
                result = batch.validate(spec.suite, result_format="BOOLEAN_ONLY")
                results[spec.batch] = (
                    result if result.success else batch.validate(spec.suite, result_format=complete)
                )
        finally:
            for engine in (source.get_execution_engine().engine, source.get_engine()):
                engine.dispose()
            context.data_sources.delete(source.name)
    return results


@dataclass(frozen=True)
class TableBatch:
    """One suite on every row of ``schema.table``; ``batch`` names the batch."""

    suite: ExpectationSuite
    schema: str
    table: str
    batch: str


@dataclass(frozen=True)
class QueryBatch:
    """One suite on the rows of one SQL query: ``asset`` names the query asset, ``batch`` its batch."""

    suite: ExpectationSuite
    asset: str
    batch: str
    query: str


def run_checkpoint(
    root: Path, warehouse_url: str, name: str, batches: Sequence[QueryBatch], result_format: dict[str, Any]
) -> list[ExpectationSuiteValidationResult]:
    """One checkpoint over ``batches`` (results in their order) in a file context in ``root``, then its Data
    Docs built once (UpdateDataDocsAction would rebuild the whole site after every validation: 5x the time)."""
    from great_expectations import Checkpoint, ValidationDefinition

    context = _file_context(root)
    source = context.data_sources.add_postgres("warehouse", connection_string=warehouse_url)
    definitions = []
    for spec in batches:
        asset = source.add_query_asset(spec.asset, query=spec.query)
        definition = ValidationDefinition(
            name=spec.suite.name,
            data=asset.add_batch_definition_whole_table(spec.batch),
            suite=context.suites.add(spec.suite),
        )
        definitions.append(context.validation_definitions.add(definition))
    checkpoint = Checkpoint(name=name, validation_definitions=definitions, result_format=result_format)
    by_suite = {r.suite_name: r for r in context.checkpoints.add(checkpoint).run().run_results.values()}
    context.build_data_docs()
    return [by_suite[spec.suite.name] for spec in batches]


# --- outcomes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict as plain data: the expectation's ``meta`` (what the suite builder put there to
    explain a failure), GX's ``result`` dict, and the messages of exceptions raised while checking."""

    success: bool
    expectation_type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    warning: bool  # severity "warning": a failure is reported, not blocking
    errors: tuple[str, ...]
    result: dict[str, Any]

    def error(self, *, first_lines: bool = False) -> str | None:
        """The exceptions as one message, None when none was raised. ``first_lines``: only each message's first
        line (SQL errors carry the whole statement after it)."""
        if not self.errors:
            return None
        return "; ".join(_first_line(e) if first_lines else e for e in self.errors)

    def sample(self, limit: int) -> tuple[list[dict[str, Any]], int | None]:
        """At most ``limit`` failing rows as dicts, and how many failed (None when GX does not count rows)."""
        result = self.result
        if "unexpected_rows" in (result.get("details") or {}):  # UnexpectedRowsExpectation
            return list(result["details"]["unexpected_rows"])[:limit], result.get("observed_value")
        if "unexpected_count" in result:  # column map: rows keyed by the index columns plus the checked one
            rows = result.get("unexpected_index_list") or result.get("partial_unexpected_index_list") or []
            return list(rows)[:limit], result["unexpected_count"]
        if "partial_missing_list" in result:  # a set expected among the column's distinct values
            missing = result["partial_missing_list"]
            column = self.kwargs.get("column", "value")
            return [{f"missing_{column}": v} for v in missing], result.get("missing_count", len(missing))
        observed = result.get("observed_value")
        return ([{"observed_value": observed}] if observed is not None else []), None


def outcomes(result: ExpectationSuiteValidationResult) -> list[Outcome]:
    return [_outcome(r) for r in result.results]


def _outcome(found: ExpectationValidationResult) -> Outcome:
    config = found.expectation_config
    if config is None:
        raise RuntimeError("a GX result without its expectation")
    severity = str(getattr(config.severity, "value", config.severity))
    info = found.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    errors = tuple(
        str(e.get("exception_message")) for e in entries if isinstance(e, dict) and e.get("raised_exception")
    )
    return Outcome(
        success=bool(found.success),
        expectation_type=config.type,
        kwargs=dict(config.kwargs),
        meta=dict(config.meta or {}),
        warning=severity == "warning",
        errors=errors,
        result=dict(found.result or {}),
    )


def _first_line(message: str) -> str:
    return next((line for line in message.splitlines() if line.strip()), message).strip()


# --- Data Docs --------------------------------------------------------------------------------------------

_DOCS_SITE = Path("gx") / "uncommitted" / "data_docs" / "local_site"
# GX's pages load their logo from a web host with the data context id in the URL (a beacon): use the copy
# the site ships instead, so opening the report from disk contacts nobody about it.
_REMOTE_LOGO = re.compile(
    r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/[A-Za-z_-]+\.png[^\"')]*"
)
# Styles and scripts still come from CDNs (GX ships none); offline the pages are plain but readable, except the
# status icons (an icon font): glyphs stand in.
_OFFLINE_STYLE = """<style>/* odwh: readable from disk without the CDN */
i.fa-check-circle::before { content: "\\2714"; color: #1a7f37; font: bold 1.1em sans-serif; }
i.fa-times::before { content: "\\2718"; color: #c62828; font: bold 1.1em sans-serif; }
</style>"""


def copy_data_docs(root: Path, target: Path) -> bool:
    """Replace ``target`` with the Data Docs site :func:`run_checkpoint` built in ``root``, made readable from
    disk. False (and ``target`` empty) when no site was built."""
    site = root / _DOCS_SITE
    if target.exists():
        shutil.rmtree(target)
    if not site.is_dir():
        target.mkdir(parents=True)
        return False
    shutil.copytree(site, target)
    for page in target.rglob("*.html"):
        logo = os.path.relpath(target / "static" / "images" / "logo-long.png", page.parent)
        text = _REMOTE_LOGO.sub(logo, page.read_text(encoding="utf-8"))
        page.write_text(text.replace("</head>", _OFFLINE_STYLE + "\n</head>", 1), encoding="utf-8")
    return True


def validation_pages(site: Path) -> list[tuple[str, Path]]:
    """(suite name, page) for every validation result page of a copied site."""
    # validations/<suite name>/<run name>/<run time>/<batch id>.html
    return [(p.parent.parent.parent.name, p) for p in sorted((site / "validations").rglob("*.html"))]


# --- suites as reviewable JSON ----------------------------------------------------------------------------


def suites_dir() -> Path:
    """``expectations/suites`` of the project: one folder per suite family."""
    from odwh import warehouse

    return warehouse.project_dir() / "expectations" / "suites"


def suite_json(suite: ExpectationSuite) -> str:
    """The suite as reviewable, deterministic JSON (no ids, no GX-version noise beyond the suite's meta)."""
    return json.dumps(_without_ids(suite.to_json_dict()), indent=2, sort_keys=True) + "\n"


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def export_family(
    family: str, suites: dict[str, ExpectationSuite], directory: Path | None = None
) -> list[Path]:
    """Write ``suites`` (file stem -> suite) to ``<directory>/<family>/<stem>.json`` (default
    :func:`suites_dir`), removing the family's files no longer built. Returns the files written."""
    folder = (directory or suites_dir()) / family
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, suite in suites.items():
        path = folder / f"{stem}.json"
        path.write_text(suite_json(suite))
        written.append(path)
    for stale in set(folder.glob("*.json")) - set(written):
        stale.unlink()
    return written
