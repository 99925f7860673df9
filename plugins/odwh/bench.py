"""``make bench``: time and memory of each stage at several portfolio sizes, beside the floor, as a table.

For each size it simulates a landing, then in a fresh database ``odwh_bench`` on the warehouse server (embedded
unless ``WAREHOUSE_URL``) it measures:

- the **floor**: ``COPY`` of every CSV file of the landing into unlogged all-text tables, plus one 60-day window
  pass (``min(principal) over 61 rows``) over the balances: what any warehouse must at least spend on the files;
- the pipeline through the functions the DAG tasks call, as ``odwh run`` does: check + load, the daily build
  (seeds, the daily models, and the month-end ones with them when a month is ready: decision 0059), every month
  close (the month-end models only if still behind, then gate and reports);
- an idle ``odwh run`` (a real subprocess) over the same landing, with nothing new; then one more business
  date through a real ``odwh run`` (Airflow start-up, ``odwh_daily``: check, load, daily models);
- peak RSS of each stage, which runs in its own process as an Airflow task does: the largest single process
  (the target's measure) and the process tree's sum (sampled every 0.1 s; the PostgreSQL server's own memory
  is not in it), the warehouse's size beside the landing's CSV bytes.

Figures go into docs/performance.md by hand, with the machine; no test asserts a time (the smoke test in
``tests/test_bench.py`` runs the code on a tiny portfolio).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from odwh import contract, pipeline, publication, simulate, warehouse

BENCH_DB = "odwh_bench"
DEFAULT_SIZES = (10_000, 20_000, 50_000, 100_000)
DEFAULT_DAYS = 61
COPY_CHUNK = 1 << 20  # bytes per COPY write: files are streamed, never read whole


@dataclass
class Stage:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: float  # the stage's process tree, summed
    largest_process_mb: float = 0.0  # the largest single process of the tree (the target's measure)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class SizeResult:
    """Every stage of one size, and what the targets of docs/performance.md are computed from."""

    accounts: int
    days: int
    stages: list[Stage] = field(default_factory=list)
    months_closed: int = 0
    landing_csv_bytes: int = 0
    warehouse_bytes: int = 0

    def seconds(self, prefix: str) -> float:
        return sum(s.seconds for s in self.stages if s.name.startswith(prefix))

    @property
    def floor_seconds(self) -> float:
        return self.seconds("floor")

    @property
    def run_seconds(self) -> float:
        """What ``odwh run`` spends on the landing: check + load, models, month closes."""
        return self.seconds("check + load") + self.seconds("models") + self.seconds("close")

    @property
    def ratio(self) -> float:
        return self.run_seconds / self.floor_seconds if self.floor_seconds else 0.0

    @property
    def peak_rss_mb(self) -> float:
        return max((s.peak_rss_mb for s in self.stages), default=0.0)

    @property
    def largest_process_mb(self) -> float:
        return max((s.largest_process_mb for s in self.stages), default=0.0)


def _tree_rss_kb(pid: int) -> list[int]:
    """Resident memory of ``pid`` and each of its descendants (Linux /proc), in kB; empty for a vanished one."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (OSError, ValueError):
        return []
    return [rss] + [kb for child in children for kb in _tree_rss_kb(int(child))]


@contextmanager
def _peak_rss() -> Iterator[list[float]]:
    """Samples this process tree's RSS every 0.1 s while the block runs; yields [peak of the tree's sum, peak of
    its largest process] in MB (filled at exit)."""
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            found = _tree_rss_kb(os.getpid())
            peak[0] = max(peak[0], sum(found) / 1024)
            peak[1] = max(peak[1], max(found, default=0) / 1024)
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def _in_own_process(work: Callable[..., int], *args: Any) -> int:
    """``work(*args)`` in a fresh process (spawned, not forked: a fork copies locks other threads hold, and a
    forked dbt build hung under pytest-xdist), as each Airflow task runs in its own: a stage's memory is its own,
    not what earlier stages left in this one. ``work`` and ``args`` must pickle (module-level functions)."""
    context = multiprocessing.get_context("spawn")
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(writer, work, args))
    child.start()
    writer.close()
    try:
        ok, value = reader.recv()
    except EOFError:
        ok, value = False, "the stage's process ended without a result"
    child.join()
    if not ok:
        raise RuntimeError(f"{value} (exit code {child.exitcode})")
    return int(value)


def _child(writer: Any, work: Callable[..., int], args: tuple[Any, ...]) -> None:
    try:
        writer.send((True, work(*args)))
    except BaseException as exc:  # any failure goes to the parent, which raises it
        writer.send((False, f"{type(exc).__name__}: {exc}"))


def _timed(name: str, work: Callable[..., int], *args: Any, own_process: bool = True) -> Stage:
    """Run one stage (in its own process unless it starts one itself); a line when it starts and one when it
    ends (a log shows progress, step by step)."""
    print(f"bench: {name} ...", flush=True)
    started = time.perf_counter()
    with _peak_rss() as peak:
        rows = _in_own_process(work, *args) if own_process else work(*args)
    stage = Stage(name, time.perf_counter() - started, rows, peak[0], peak[1])
    print(
        f"bench: {name}: {stage.seconds:.1f} s, {rows:,} rows, peak RSS {stage.peak_rss_mb:.0f} MB"
        f" (largest process {stage.largest_process_mb:.0f} MB)",
        flush=True,
    )
    return stage


def _fresh_database(server_url: str) -> str:
    maintenance = warehouse.with_database(server_url, "postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(BENCH_DB)))
    return warehouse.with_database(server_url, BENCH_DB)


def _scalar(conn: psycopg.Connection, query: sql.Composed | str) -> int:
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _count_rows(conn: psycopg.Connection, schema: str, table: str) -> int:
    return _scalar(conn, sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table)))


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return _count_rows(conn, *table.split(".", 1))


def floor(url: str, landing: Path) -> int:
    """The floor: every CSV of the landing COPYed into unlogged all-text tables, then one 60-day window pass
    over the balances. Returns the rows copied."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists bench_floor cascade; create schema bench_floor")
        for spec in contract.FILES:
            table = sql.Identifier("bench_floor", spec.table)
            columns = sql.SQL(", ").join(
                sql.SQL("{} text").format(sql.Identifier(c.name)) for c in spec.columns
            )
            conn.execute(sql.SQL("create unlogged table {} ({})").format(table, columns))
            for path in sorted(landing.glob(f"*/{spec.name}")):
                with (
                    path.open("rb") as src,
                    conn.cursor().copy(
                        sql.SQL("copy {} from stdin (format csv, header match)").format(table)
                    ) as copy,
                ):
                    while chunk := src.read(COPY_CHUNK):
                        copy.write(chunk)
        copied = sum(_count_rows(conn, "bench_floor", f.table) for f in contract.FILES)
        conn.execute(
            "select count(m) from (select min(principal_outstanding::numeric) over ("
            "  partition by od_account_id order by business_date rows between 60 preceding and current row) m"
            " from bench_floor.od_balances) w"
        )
        conn.execute("drop schema bench_floor cascade")
    return copied


def _csv_bytes(landing: Path) -> int:
    return sum(p.stat().st_size for p in landing.glob("*/*.csv"))


def _database_bytes(url: str) -> int:
    with psycopg.connect(url) as conn:
        return _scalar(conn, "select pg_database_size(current_database())")


def _odwh_run(url: str, landing: Path, workdir: Path, expected: str, log_name: str) -> None:
    """``odwh run --landing`` as a user types it (a subprocess: Airflow start-up and DAG runs included); its
    summary line must say ``expected``. Its output, Airflow's task log lines included (``--verbose``: the
    task timings), is kept in ``workdir/<log_name>.log``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "WAREHOUSE_URL": url,
        "AIRFLOW_HOME": str(workdir / "airflow"),
        "REPORTS_DIR": str(workdir / "reports"),
    }
    odwh = Path(sys.executable).with_name("odwh")
    done = subprocess.run(
        [str(odwh), "run", "--verbose", "--landing", str(landing)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    (workdir / f"{log_name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or expected not in done.stdout:
        raise RuntimeError(f"odwh run did not say {expected!r}:\n{done.stdout}\n{done.stderr}")


def _idle_run(url: str, landing: Path, workdir: Path) -> int:
    """Over a landing that is already loaded: ``odwh run`` must find nothing to do."""
    _odwh_run(url, landing, workdir, "0 of 0 pending date(s) loaded", "idle-run")
    return 0


# --- the stages run in their own process: module-level, so they pickle ---------------------------------------


def _simulate_stage(
    landing: Path, held_back: Path, start: date, extra_day: date, accounts: int, days: int
) -> int:
    simulate.simulate(landing, start, extra_day, accounts=accounts, seed=7)
    (landing / extra_day.isoformat()).rename(held_back)  # the incremental day, later
    return accounts * days


def _ingest_stage(url: str, landing: Path) -> int:
    report = pipeline.ingest(url, str(landing), echo=False)
    if not report.ok:
        raise RuntimeError(f"bench data refused: {[o for o in report.outcomes if o.status != 'loaded'][:1]}")
    return _count(url, "raw.od_balances")


def _build_stage(url: str) -> int:
    # what odwh_daily builds after loading, as `odwh run` does: the seeds, the daily models and, a month being
    # ready, the month-end ones in the same invocation (decision 0059), with their data tests
    pipeline.build_daily(url)
    # the account-days built: fct_od_daily is a view of these rows (decision 0041), counted without its joins
    return _count(url, "intermediate.int_od__positions_daily")


def _close_stage(url: str, months: list[str], reports: Path) -> int:
    pipeline.build_month_end(url, months)  # as odwh_month_end: built by the daily build, so gate and publish
    for month_end in months:
        outcome = publication.close_month(url, date.fromisoformat(month_end), out_root=reports)
        if not outcome.published:
            raise RuntimeError(f"bench month {month_end} not published: {outcome.detail}")
    return _count(url, "marts.fct_od_month_end")


def run_size(
    *, accounts: int, days: int, workdir: Path, start: date = date(2026, 1, 1), keep_landing: bool = True
) -> SizeResult:
    """Every stage at one size (a fresh database and scratch folder). Without ``keep_landing`` the loaded
    dates' folders are deleted once loaded (their archive copies stay): a year at 100,000 accounts needs the
    disk for the warehouse."""
    shutil.rmtree(workdir, ignore_errors=True)
    landing, held_back = workdir / "landing", workdir / "held-back"
    url = _fresh_database(warehouse.ensure_running())
    end = start + timedelta(days=days - 1)
    extra_day = end + timedelta(days=1)
    result = SizeResult(accounts, days)
    stages = result.stages

    def one_more_day() -> int:
        """The morning's run as the scheduler makes it: the new date through ``odwh_daily`` under Airflow."""
        held_back.rename(landing / extra_day.isoformat())
        _odwh_run(url, landing, workdir, "1 of 1 pending date(s) loaded", "one-more-day")
        return accounts

    simulated = (landing, held_back, start, extra_day, accounts, days)
    stages.append(_timed(f"simulate {accounts:,} accounts x {days} days", _simulate_stage, *simulated))
    # the floor is its statements alone, in this process: no start-up (every odwh stage pays its own, as each
    # Airflow task does)
    stages.append(_timed("floor: COPY every CSV + one 60-day window", floor, url, landing, own_process=False))
    stages.append(_timed("check + load (manifest, GX suite, COPY)", _ingest_stage, url, landing))
    result.landing_csv_bytes = _csv_bytes(landing)
    if not keep_landing:
        for loaded in landing.iterdir():
            shutil.rmtree(loaded)
    stages.append(_timed("models: the daily build (as odwh_daily)", _build_stage, url))
    months = pipeline.months_ready_to_close(url)
    result.months_closed = len(months)
    reports = workdir / "reports"
    stages.append(_timed("close and publish every complete month", _close_stage, url, months, reports))
    _idle_run(url, landing, workdir)  # sets up Airflow's metadata database, as a user's first `odwh run` did
    # the two `odwh run` stages start their own process
    stages.append(_timed("idle odwh run (nothing new)", _idle_run, url, landing, workdir, own_process=False))
    stages.append(_timed("one more day through Airflow (odwh run)", one_more_day, own_process=False))
    result.warehouse_bytes = _database_bytes(url)
    return result


def run(*, sizes: tuple[int, ...], days: int, workdir: Path, keep_landing: bool = True) -> list[SizeResult]:
    return [
        run_size(accounts=n, days=days, workdir=workdir / f"{n}x{days}", keep_landing=keep_landing)
        for n in sizes
    ]


def table(results: list[SizeResult], cores: int | None) -> str:
    """One table per size, then the targets of issue 12 / docs/performance.md, each met or not."""
    lines: list[str] = []
    for r in results:
        lines += [
            f"odwh bench: {r.accounts:,} accounts x {r.days} days, {cores} cores",
            f"{'stage':<48} {'seconds':>9} {'rows':>12} {'rows/s':>10} {'RSS MB':>8} {'largest':>8}",
        ]
        lines += [
            f"{s.name:<48} {s.seconds:>9.1f} {s.rows:>12,} {s.rows_per_second:>10,.0f}"
            f" {s.peak_rss_mb:>8.0f} {s.largest_process_mb:>8.0f}"
            for s in r.stages
        ]
        per_month = r.seconds("close") / r.months_closed if r.months_closed else 0.0
        lines += [
            f"floor {r.floor_seconds:.1f} s; odwh run (load + models + {r.months_closed} month closes) "
            f"{r.run_seconds:.1f} s = {r.ratio:.1f} x the floor (target <= 3)",
            f"idle rerun {r.seconds('idle'):.1f} s (target <= 15); one more day {r.seconds('one more'):.1f} s "
            f"(target <= 60); one month closed and published {per_month:.1f} s (target <= 120)",
            f"largest process {r.largest_process_mb:.0f} MB (target <= 1024; tree {r.peak_rss_mb:.0f} MB); warehouse {r.warehouse_bytes / 1e6:,.0f} MB "
            f"for {r.landing_csv_bytes / 1e6:,.0f} MB of CSV (target: warehouse <= CSV)",
            "",
        ]
    return "\n".join(lines)
