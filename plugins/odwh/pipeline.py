"""What the DAG tasks do, as plain functions (usable and testable without Airflow).

Ingestion drains every complete pending business date in date order: archive each delivery and verify its
manifest, stage the sound ones in ``quarantine`` and check them against the contract at once (Great
Expectations inside PostgreSQL), then promote them to raw date by date. The first invalid date is refused
(recorded in ``meta.rejections``, nothing of it loaded) and every later date waits until it is corrected.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from odwh import contract, landing, load, progress, quarantine, receiving, runlock, validate, warehouse
from odwh.snapshot_lines import LineChanges

WAREHOUSE_CONN_ID = "odwh_warehouse"


# Airflow connection fields <-> libpq parameters; every other libpq parameter travels in the ``extra`` JSON
AIRFLOW_FIELDS = {"host": "host", "port": "port", "login": "user", "password": "password", "schema": "dbname"}
# keys the postgres provider keeps in ``extra`` for itself: not libpq parameters
AIRFLOW_ONLY_EXTRA = frozenset(
    {
        "cursor",
        "iam",
        "redshift",
        "aws_conn_id",
        "cluster-identifier",
        "sqlalchemy_scheme",
        "sqlalchemy_query",
        "enable_log_db_messages",
    }
)


def warehouse_url_from_airflow() -> str:
    """The warehouse as Airflow knows it: the ``odwh_warehouse`` connection (``AIRFLOW_CONN_ODWH_WAREHOUSE``),
    its ``extra`` (``sslmode``, ``sslrootcert``, ``options``, a socket host...) included."""
    from airflow.sdk import Connection

    c = Connection.get(WAREHOUSE_CONN_ID)
    params = {key: str(value) for key, value in c.extra_dejson.items() if key not in AIRFLOW_ONLY_EXTRA}
    for field_name, key in AIRFLOW_FIELDS.items():
        if (value := getattr(c, field_name)) not in (None, ""):
            params[key] = str(value)
    return warehouse.url_from_conninfo(params)


def airflow_connection_env(warehouse_url: str) -> dict[str, str]:
    """``AIRFLOW_CONN_ODWH_WAREHOUSE`` for a warehouse URL (JSON form: passwords need no URL escaping).

    Parameters without a connection field go to ``extra``, which the postgres provider passes to the driver.
    """
    params = warehouse.conninfo(warehouse_url)
    conn: dict[str, object] = {"conn_type": "postgres"}
    for field_name, key in AIRFLOW_FIELDS.items():
        if key in params:
            value = params.pop(key)
            conn[field_name] = int(value) if field_name == "port" and value.isdigit() else value
    if params:
        conn["extra"] = params
    return {f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": json.dumps(conn)}


def landing_url() -> str:
    return os.environ.get("ODWH_LANDING_URL") or str(warehouse.project_dir() / "landing")


def archive_root() -> Path:
    return Path(os.environ.get("ODWH_ARCHIVE_DIR") or warehouse.odwh_home() / "archive")


@dataclass
class DateOutcome:
    business_date: str
    status: str  # loaded | rejected | waiting
    detail: str = ""
    rows: int = 0
    warnings: list[str] = field(default_factory=list)  # printed with the outcome, kept in meta.loads.warnings


@dataclass
class IngestReport:
    outcomes: list[DateOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.status == "loaded" for o in self.outcomes)

    @property
    def loaded_dates(self) -> list[str]:
        return [o.business_date for o in self.outcomes if o.status == "loaded"]

    def to_json(self) -> dict[str, object]:
        return {"outcomes": [asdict(o) for o in self.outcomes]}

    @classmethod
    def from_json(cls, data: dict[str, list[dict[str, object]]]) -> IngestReport:
        return cls([DateOutcome(**o) for o in data["outcomes"]])  # type: ignore[arg-type]


def pending_deliveries(conn: psycopg.Connection, source: str) -> list[landing.Delivery]:
    """Complete deliveries not loaded yet, or delivered again with a different manifest, in date order."""
    loaded = load.current_loads(conn)
    return [d for d in landing.list_deliveries(source) if loaded.get(d.business_date) != d.manifest_sha256]


def has_work(warehouse_url: str, source: str) -> bool:
    """Whether a run over ``source`` has anything to do: a date to load (or to refuse again), a policy change
    the daily models must take in, or a month ready to close. ``odwh run`` starts Airflow and dbt only then."""
    with psycopg.connect(warehouse_url) as conn:
        if pending_deliveries(conn, source) or models_behind(conn, "daily") is not None:
            return True
    return _policy_refresh(warehouse_url, "daily") is not None or bool(months_ready_to_close(warehouse_url))


def models_behind(conn: psycopg.Connection, selector: str) -> int | None:
    """The newest load id when ``selector``'s models were not built over it since (a build failed or was
    killed after its dates were loaded), else None."""
    newest, built = conn.execute(
        "select (select max(load_id) from meta.loads),"
        " (select loads_through from meta.model_builds where selector = %s)",
        (selector,),
    ).fetchone() or (None, None)
    return newest if newest is not None and (built is None or newest > built) else None


def record_build(conn: psycopg.Connection, selector: str, loads_through: int) -> None:
    conn.execute(
        "insert into meta.model_builds (selector, loads_through) values (%s, %s) on conflict (selector)"
        " do update set loads_through = excluded.loads_through, built_at = now()",
        (selector, loads_through),
    )


# The door stages, checks and promotes pending dates in batches of this many: a backfill's quarantine (every
# file of every staged date, as text) stays about a quarter's worth, not a year's (17 GB at 100,000 accounts);
# each batch pays Great Expectations' validation set-up once (decision 0029). Within a batch a snapshot date
# merges only its changed rows (decision 0040); the first date of the next batch is checked and merged whole.
DOOR_BATCH_DATES = 92


@dataclass(frozen=True)
class _Received:
    """A pending date archived and matching its manifest: ready for the contract check."""

    delivery: landing.Delivery
    archived: Path
    manifest: contract.Manifest
    lines: dict[str, LineChanges | None]  # its snapshots' lines against the date before's (odwh.receiving)


@runlock.exclusive("load")
def ingest(warehouse_url: str, source: str | None = None, *, echo: bool = True) -> IngestReport:
    """Check and load every pending date in order; stop at the first invalid one.

    Each date is archived and verified against its manifest; the sound ones are staged in ``quarantine`` and
    checked against the contract all at once (``odwh.validate``; :data:`DOOR_BATCH_DATES` dates at a time),
    then promoted to raw one date at a time, in date order, each in its own transaction. The first date refused
    stops the others: they wait behind it.
    """
    source = source or landing_url()
    warehouse.migrate(warehouse_url)
    report = IngestReport()
    loader = warehouse.stage_url(warehouse.LOADER, warehouse_url)
    with psycopg.connect(loader, autocommit=True) as conn:  # each date commits on its own
        pending = pending_deliveries(conn, source)
        bar = progress.Progress("check and load", len(pending), log_lines=not echo)

        def record(outcome: DateOutcome) -> None:
            report.outcomes.append(outcome)
            if echo:
                bar.note(format_outcome(outcome))
            bar.advance(outcome.business_date)

        def blocker() -> DateOutcome | None:
            last = report.outcomes[-1] if report.outcomes else None
            return last if last is not None and last.status != "loaded" else None

        received: list[_Received] = []
        refusal: list[list[str]] = []
        if pending:
            last_loaded = max(load.current_loads(conn), default=None)

            def folders() -> Generator[Path]:  # each date staged as soon as it is received
                for item in _receive(pending, last_loaded, refusal):
                    received.append(item)
                    yield item.archived

            def lines_to_stage(day: date) -> dict[str, LineChanges | None]:
                # a date after every loaded one merges its changes alone: it may be staged by them (quarantine._Plan)
                after_loads = last_loaded is None or day > last_loaded
                return (
                    _lines(received[-1]) if after_loads and received[-1].delivery.business_date == day else {}
                )

            # closed on the way out: the helper process receiving the next date stops with it
            with contextlib.closing(folders()) as receiving_order:
                while not blocker() and len(received) < len(pending) and not refusal:
                    batch_start = len(received)
                    with quarantine.quarantined(
                        conn, itertools.islice(receiving_order, DOOR_BATCH_DATES), lines=lines_to_stage
                    ) as staged:
                        if not staged:
                            break
                        lines = {r.delivery.business_date: _lines(r) for r in received[batch_start:]}
                        checked = validate.check_staged(conn, loader, staged, lines=lines)
                        _admit_in_order(conn, loader, received[batch_start:], checked, record, blocker)
                    if len(received) < len(pending):  # the next batch's checks plan with these dates counted
                        load.analyze_raw(conn)
        for delivery in pending[len(received) :]:  # the date _receive refused, then the ones behind it
            blocked = blocker()
            if blocked is not None:
                record(_waiting(delivery, blocked))
            elif refusal:
                record(_reject(conn, delivery, refusal[0]))
        if report.loaded_dates:
            load.analyze_raw(conn)
    return report


def _lines(item: _Received) -> dict[str, LineChanges | None]:
    """A received date's snapshots' lines compared with the date before's (empty: none compared)."""
    return item.lines


def _waiting(delivery: landing.Delivery, blocker: DateOutcome) -> DateOutcome:
    after = (
        blocker.detail.removeprefix("after ")
        if blocker.status == "waiting"
        else f"{blocker.business_date} was refused"
    )
    return DateOutcome(delivery.business_date.isoformat(), "waiting", f"after {after}")


def _receive(
    pending: list[landing.Delivery], last_loaded: date | None, refusal: list[list[str]]
) -> Iterator[_Received]:
    """The pending dates archived and verified, in order, up to the first that fails (its problems are
    appended to ``refusal``). Each next date is verified in a helper process while the caller stages this one:
    the manifest's pass over every byte (Python, one core) beside PostgreSQL's COPY (the other)."""
    with receiving.one_ahead(pending, archive_root()) as receive:
        for i, delivery in enumerate(pending):
            previous = pending[i - 1].business_date if i else last_loaded
            if previous and delivery.business_date > previous + timedelta(days=1):
                gap = (previous + timedelta(days=1)).isoformat()
                refusal.append([f"gap: business date {gap} has not been delivered (or is incomplete)"])
                return
            received = receive(i)
            if received.problems:
                refusal.append(received.problems)
                return
            yield _Received(delivery, received.archived, received.manifest(), received.lines)


class _Behind(Exception):
    """The date before was not loaded: this date's transaction is rolled back, and it waits behind that date."""


def _admit_in_order(
    conn: psycopg.Connection,
    loader: str,
    items: Sequence[_Received],
    checked: dict[date, validate.ValidationReport],
    record: Callable[[DateOutcome], None],
    blocker: Callable[[], DateOutcome | None],
) -> None:
    """Promote a checked batch's dates to raw in date order, or refuse them, each recorded in order: every date
    its own transaction, committed after the date before, and a date after a refused one waits (decision 0029).

    Two dates at a time, on two connections (decision 0052): a date's files of the date alone (balances,
    transactions...) are written while the date before merges its snapshots into their versions, then it waits
    for that date's commit before touching the versions itself; if that date was not loaded, it rolls back and
    waits behind it. Its load row is inserted once the date before has written its own, so load ids still rise
    with the dates and commit in their order (the builds' watermarks read them)."""
    connections = [conn] if len(items) < 2 else [conn, psycopg.connect(loader, autocommit=True)]
    in_flight: tuple[_Received, psycopg.Connection, Future[load.LoadResult | Exception]] | None = None

    def settle() -> None:  # record the date in flight, once it is committed or rolled back
        nonlocal in_flight
        if in_flight is not None:
            item, used, promoted = in_flight
            in_flight = None
            record(_outcome(used, item, checked[item.delivery.business_date], promoted.result(), blocker()))

    def refused_in_flight() -> bool:  # the date in flight failed already: the next one would only roll back
        return (
            in_flight is not None
            and in_flight[2].done()
            and not isinstance(in_flight[2].result(), load.LoadResult)
        )

    try:
        with ThreadPoolExecutor(len(connections)) as pool:
            for position, item in enumerate(items):
                report = checked[item.delivery.business_date]
                if refused_in_flight():
                    settle()
                if not report.ok or blocker():
                    settle()
                    blocked = blocker()
                    problems = [str(p) for p in report.problems]
                    record(
                        _waiting(item.delivery, blocked)
                        if blocked
                        else _reject(conn, item.delivery, problems)
                    )
                    continue
                previous = in_flight
                # promoted just before this date, and staged (so checked) in the same batch
                day_before = previous is not None and previous[0].delivery.business_date == (
                    item.delivery.business_date - timedelta(days=1)
                )
                halfway = threading.Event()  # its files of the date alone are written, or it is over
                used = connections[position % len(connections)]
                promoted = pool.submit(
                    _promote_after,
                    used,
                    item,
                    report,
                    previous[2] if previous else None,
                    day_before,
                    halfway,
                )
                promoted.add_done_callback(functools.partial(_set_when_done, halfway))
                halfway.wait()
                settle()
                in_flight = (item, used, promoted)
            settle()
    finally:
        for extra in connections[1:]:
            extra.close()


def _set_when_done(event: threading.Event, _: Future[load.LoadResult | Exception]) -> None:
    event.set()


def _promote_after(
    conn: psycopg.Connection,
    item: _Received,
    report: validate.ValidationReport,
    previous: Future[load.LoadResult | Exception] | None,
    day_before: bool,
    halfway: threading.Event,
) -> load.LoadResult | Exception:
    """``load.promote`` of one date, its versions merged only once the date ``previous`` promotes is committed
    and loaded (else :class:`_Behind`); a refusal is returned, not raised."""

    def day_before_loaded() -> bool:
        halfway.set()
        if previous is not None and not isinstance(previous.result(), load.LoadResult):
            raise _Behind
        return day_before

    delivery = item.delivery
    try:
        return load.promote(
            conn,
            item.manifest,
            [name for name in item.manifest.files if (item.archived / name).exists()],
            archive_folder=str(item.archived),
            manifest_sha256=delivery.manifest_sha256,
            source_folder=str(delivery.path),
            warnings=report.warnings,
            day_before_loaded=day_before_loaded,
        )
    except (_Behind, load.LoadError) as exc:
        return exc


def _outcome(
    conn: psycopg.Connection,
    item: _Received,
    report: validate.ValidationReport,
    promoted: load.LoadResult | Exception,
    blocked: DateOutcome | None,
) -> DateOutcome:
    """A promoted date's outcome: loaded, refused (``conn`` is free: its promotion is over), or waiting."""
    delivery = item.delivery
    if isinstance(promoted, load.LoadResult):
        replaced = " (replaces an earlier delivery)" if promoted.replaced_load_id else ""
        detail = f"{len(promoted.rows)} files{replaced}"
        return DateOutcome(
            delivery.business_date.isoformat(), "loaded", detail, promoted.total_rows, report.warnings
        )
    if blocked is not None:
        return _waiting(delivery, blocked)
    return _reject(conn, delivery, [str(promoted)])


def _reject(conn: psycopg.Connection, delivery: landing.Delivery, problems: list[str]) -> DateOutcome:
    conn.execute(
        "insert into meta.rejections (business_date, source_folder, errors) values (%s, %s, %s)",
        (delivery.business_date, str(delivery.path), json.dumps(problems)),
    )
    shown = problems[:10] + ([f"... and {len(problems) - 10} more"] if len(problems) > 10 else [])
    return DateOutcome(delivery.business_date.isoformat(), "rejected", "\n    ".join(shown))


def format_outcome(o: DateOutcome) -> str:
    if o.status == "loaded":
        warned = "".join(f"\n    warning: {w}" for w in o.warnings)
        return f"{o.business_date}  loaded    {o.rows:>10,} rows, {o.detail}{warned}"
    if o.status == "rejected":
        return f"{o.business_date}  REFUSED   nothing loaded:\n    {o.detail}"
    return f"{o.business_date}  waiting   {o.detail}"


class IngestionRefused(RuntimeError):
    pass


def raise_if_refused(report: IngestReport) -> None:
    """Fail the run (after the valid dates were built) when a date was refused or is waiting."""
    bad = [o for o in report.outcomes if o.status != "loaded"]
    if bad:
        raise IngestionRefused("; ".join(f"{o.business_date} {o.status}" for o in bad[:5]))


@runlock.exclusive("build daily models")
def build_daily(warehouse_url: str) -> None:
    """Build the daily dbt models when a load is newer than their last build (incremental: a new day costs a
    day; a build that failed after its dates were loaded is made up by the next run, even with no new date),
    or rebuild them fully when a policy change was recorded since their last full build.

    When a month is ready to close, the month-end models are built in the same invocation (decision 0059), on
    the thread the daily models' longest chain leaves free, and recorded as built over the same load, so the
    close does not build them again. Their failure is not the daily build's: when only month-end nodes failed,
    the daily models are recorded as built and the close builds the month-end models again, and fails there."""
    _bring_daily_models_up_to_date(warehouse_url)


def _bring_daily_models_up_to_date(warehouse_url: str, *, closing: bool = False) -> bool:
    """:func:`build_daily` without the run lock; whether the month-end models were built with the daily ones.

    When only month-end nodes failed, the daily models are recorded as built; the failure is then raised when
    ``closing`` (the close would only build the same month-end models again), left to the close otherwise."""
    from odwh import transform

    refresh = _policy_refresh(warehouse_url, "daily")
    with psycopg.connect(warehouse.stage_url(warehouse.TRANSFORMER, warehouse_url)) as conn:
        behind = models_behind(conn, "daily")
    if behind is None and refresh is None:
        print("no new business date: daily models are up to date", flush=True)
        return False
    joined = behind is not None and _month_end_joins(warehouse_url, refresh)
    selectors = ("daily", "month_end") if joined else ("daily",)  # daily holds the seeds: built first
    try:
        _build_selector(warehouse_url, selectors, refresh)
    except transform.TransformError as exc:
        # dbt skips only a failed node's descendants (never failing fast: transform.PIPELINE_BUILD), and no daily
        # node descends from a month-end one (tests/test_transform.py): only month-end nodes are left unfinished
        if not joined or not exc.only_tagged("month_end"):
            raise
        _record_built(warehouse_url, ("daily",), behind, refresh)
        if closing:
            raise
        print(f"{exc}\nthe daily models are built; the close builds the month-end models again", flush=True)
        return False
    _record_built(warehouse_url, selectors, behind, refresh)
    return joined


def _month_end_joins(warehouse_url: str, daily_refresh: int | None) -> bool:
    """Whether the daily build takes the month-end models in: a month is ready to close and both selectors are
    built the same way (incrementally, or fully for the same policy change)."""
    return _policy_refresh(warehouse_url, "month_end") == daily_refresh and bool(
        months_ready_to_close(warehouse_url)
    )


def _policy_refresh(warehouse_url: str, selector: str) -> int | None:
    """The newest policy change a full rebuild of ``selector`` must take in, or None (odwh.policy)."""
    from odwh import policy

    with psycopg.connect(warehouse.stage_url(warehouse.TRANSFORMER, warehouse_url)) as conn:
        return policy.full_refresh_needed(conn, selector)


def _build_selector(warehouse_url: str, selectors: tuple[str, ...], policy_change: int | None) -> None:
    """Build ``selectors`` in one dbt invocation; fully when a policy change is newer than their last full build
    (the incremental watermarks follow loads, so they would keep rows computed with the old values)."""
    from odwh import transform

    name = "_and_".join(selectors)  # selectors.yml: daily, month_end, daily_and_month_end
    full = ["--full-refresh"] if policy_change is not None else []
    if full:
        print(f"policy change {policy_change} recorded: rebuilding the {name} models in full", flush=True)
    build = [*transform.PIPELINE_BUILD, "--selector", name, *full]
    transform.run_dbt(build, warehouse_url, callbacks=[progress.DbtProgress(f"dbt build {name}")])


def _record_built(
    warehouse_url: str, selectors: tuple[str, ...], loads_through: int | None, policy_change: int | None
) -> None:
    """Record ``selectors`` as built over ``loads_through`` and, after a full build, over ``policy_change``."""
    from odwh import policy

    with psycopg.connect(warehouse.stage_url(warehouse.TRANSFORMER, warehouse_url)) as conn:
        for selector in selectors:
            if policy_change is not None:
                policy.record_full_refresh(conn, selector, policy_change)
            if loads_through is not None:
                record_build(conn, selector, loads_through)


@runlock.exclusive("publish agent alerts")
def publish_agent_alerts(warehouse_url: str, report: IngestReport) -> list[str]:
    """The daily agent alert list per branch, for the latest business date this run loaded, published like a
    month (``REPORTS_DIR/daily/<date>`` flipped to a complete release: odwh.publication).

    Earlier dates of a backfill get none: the list is an operational to-do for today, and history stays
    queryable in ``marts.fct_agent_alerts``.
    """
    if not report.loaded_dates:
        return []
    from odwh import publication, publish

    latest = max(report.loaded_dates)
    with publication.staged_release(publication.reports_dir() / "daily", latest) as release:
        with publication.snapshot(warehouse.stage_url(warehouse.PUBLISHER, warehouse_url)) as conn:
            rendered = publish.write_agent_alert_lists(
                conn, date.fromisoformat(latest), release.path / AGENT_ALERTS
            )
        release.publish()
    files = [release.link / f.relative_to(release.path) for f in rendered]
    print(f"{latest}  agent alert lists: {len(files)} file(s) in {release.link / AGENT_ALERTS}", flush=True)
    return [str(f) for f in files]


AGENT_ALERTS = "agent-alerts"

MONTHS_READY_SQL = """
with loaded as (
    select business_date, load_id, loaded_at from meta.loads where superseded_at is null
), months as (
    select date_trunc('month', business_date)::date as month_start,
           (date_trunc('month', business_date) + interval '1 month - 1 day')::date as month_end,
           count(*) as days_loaded, max(loaded_at) as last_loaded_at
    from loaded group by 1, 2
), first_load as (select min(business_date) as first_day from loaded)
select m.month_end
from months m cross join first_load f
cross join lateral (  -- the newest load the month's marts are built from: its dates and every earlier one
    select max(l.load_id) as input_load_id from loaded l where l.business_date <= m.month_end
) i
where m.days_loaded = m.month_end - greatest(m.month_start, f.first_day) + 1   -- no gap since history began
  and not exists (  -- gated, passed or failed, on every load it depends on: only newer data reopens it
      select 1 from meta.publications p
      where p.month_end = m.month_end
        and (p.loads_through >= i.input_load_id
             or (p.loads_through is null and p.published_at >= m.last_loaded_at)))  -- an older record
order by m.month_end
"""


def months_ready_to_close(warehouse_url: str) -> list[str]:
    """Month ends whose every date is loaded and which were not gated on their newest data.

    A month's marts are built from its dates and every earlier one (DPD, stagnation and charges look back), so a
    load of any date up to the month end reopens it, and nothing else does: a month whose gate failed is not
    offered again until a corrected or late delivery for it or an earlier date is loaded (re-gating the same
    data would fail the same way every day). A gate is compared by the loads its build started from
    (``meta.publications.loads_through``), not by time: a delivery loaded while the month was being built or
    gated reopens it. ``odwh_month_end`` with explicit ``months`` forces a month (docs/operations.md, "Rerun
    or republish a month").
    """
    with psycopg.connect(warehouse_url) as conn:
        return [d.isoformat() for (d,) in conn.execute(MONTHS_READY_SQL)]


def still_ready(warehouse_url: str, announced: list[str] | None) -> list[str]:
    """The announced months that are still ready to close (all ready months when nothing was announced)."""
    ready = months_ready_to_close(warehouse_url)
    return ready if announced is None else [m for m in announced if m in ready]


def months_announced(event_extras: list[dict[str, Any]]) -> list[str]:
    """The month ends the ``MONTH_LOADED`` events that triggered a run carry (several events may be merged
    into one run), sorted and without repeats."""
    months = {str(m) for extra in event_extras for m in extra.get("months") or []}
    return sorted(months)


def newest_load_id(warehouse_url: str) -> int:
    """The newest ``meta.loads.load_id`` committed (0 before the first load). Dates load one at a time, so a
    load still in flight will get a larger id: every load up to this one is in a build that starts now."""
    with psycopg.connect(warehouse_url) as conn:
        [(newest,)] = conn.execute("select coalesce(max(load_id), 0) from meta.loads").fetchall()
    return int(newest)


@runlock.exclusive("build month-end models")
def build_month_end(warehouse_url: str, months: list[str], *, rebuild: bool = False) -> int | None:
    """Build the month-end models (selector ``month_end``) when there is a month to close; the newest load they
    are built over, for the gate's record, or None when there is no month to close.

    The daily models they read are brought up to date first (a close must not publish from daily tables behind
    its loads, e.g. after a failed daily build); that build takes the month-end models in (decision 0059), as
    the daily build did when its load made the month ready. They are built here only when still behind or
    under a policy change, or with ``rebuild`` (a month named by hand) when the daily build did not just build
    them."""
    if not months:
        print("no month to close", flush=True)
        return None
    built_with_daily = _bring_daily_models_up_to_date(warehouse_url, closing=True)
    refresh = _policy_refresh(warehouse_url, "month_end")
    with psycopg.connect(warehouse.stage_url(warehouse.TRANSFORMER, warehouse_url)) as conn:
        behind = models_behind(conn, "month_end")
    loads_through = newest_load_id(warehouse_url)  # under the run lock: no load commits before the build ends
    if behind is None and refresh is None and (built_with_daily or not rebuild):
        print(f"the month-end models are built over load {loads_through} (by the daily build)", flush=True)
        return loads_through
    _build_selector(warehouse_url, ("month_end",), refresh)
    _record_built(warehouse_url, ("month_end",), loads_through, refresh)
    return loads_through


@runlock.exclusive("publish months")
def close_months(
    warehouse_url: str, months: list[str], loads_through: int | None = None
) -> list[dict[str, object]]:
    """Gate and publish each month in order, built from the loads up to ``loads_through``; one line per month."""
    from odwh import publication

    outcomes = []
    publisher = warehouse.stage_url(warehouse.PUBLISHER, warehouse_url)
    bar = progress.Progress("close months", len(months), log_lines=False)
    for month_end in months:
        try:
            outcome = publication.close_month(
                publisher, date.fromisoformat(month_end), loads_through=loads_through
            )
        except Exception as exc:  # one month's failure must not hide the others; the run still fails
            outcome = publication.MonthOutcome(month_end, False, "", f"{type(exc).__name__}: {exc}")
        bar.note(outcome.line())
        bar.advance(month_end)
        outcomes.append(outcome)
    return publication.outcome_json(outcomes)


class MonthNotPublished(RuntimeError):
    pass


def raise_if_unpublished(outcomes: list[dict[str, object]]) -> None:
    failed = [o for o in outcomes if not o["published"]]
    if failed:
        raise MonthNotPublished("; ".join(f"{o['month_end']}: {o['detail']}" for o in failed))
