"""``make bench``: time and memory of each stage on a simulated portfolio, printed as a table.

Runs in a throw-away database ``odwh_bench`` on the warehouse server (embedded unless ``WAREHOUSE_URL``), and
calls the package directly (the same functions the DAG tasks call) so the figures are the pipeline's own, not
Airflow's start-up. Figures go into docs/performance.md by hand, with the machine they were measured on.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from odwh import pipeline, publication, simulate, transform, warehouse

BENCH_DB = "odwh_bench"


@dataclass
class Stage:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def _timed(name: str, work: Callable[[], int]) -> Stage:
    print(f"bench: {name} ...", flush=True)
    started = time.perf_counter()
    rows = work()
    return Stage(name, time.perf_counter() - started, rows, _peak_rss_mb())


def _fresh_database(server_url: str) -> str:
    maintenance = warehouse.with_database(server_url, "postgres")
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{BENCH_DB}" with (force)')
        conn.execute(f'create database "{BENCH_DB}"')
    return warehouse.with_database(server_url, BENCH_DB)


def _rows_in(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"select count(*) from {table}").fetchone()  # noqa: S608 (a fixed table name)
    return int(row[0]) if row else 0


def run(*, accounts: int, days: int, workdir: Path, start: date = date(2026, 1, 1)) -> list[Stage]:
    url = _fresh_database(warehouse.ensure_running())
    landing = workdir / "landing"
    shutil.rmtree(workdir, ignore_errors=True)
    end = start + timedelta(days=days - 1)
    extra_day = end + timedelta(days=1)
    month_end = (extra_day + timedelta(days=1)).replace(day=1) - timedelta(days=1)  # last whole month loaded
    stages: list[Stage] = []

    def simulate_all() -> int:
        simulate.simulate(landing, start, extra_day, accounts=accounts, seed=1)
        (landing / extra_day.isoformat()).rename(workdir / "held-back")  # the incremental day, later
        return accounts * days

    def ingest() -> int:
        report = pipeline.ingest(url, str(landing), echo=False)
        assert report.ok, [o for o in report.outcomes if o.status != "loaded"][:1]
        return _rows_in(url, "raw.od_balances")

    def build() -> int:
        transform.seed_and_build(url, exclude="tag:raw_keys", unit_tests=False)  # as the DAGs build
        return _rows_in(url, "raw.od_balances")

    def one_more_day() -> int:
        (workdir / "held-back").rename(landing / extra_day.isoformat())
        report = pipeline.ingest(url, str(landing), echo=False)
        assert report.ok
        pipeline.build_daily(url, report)  # what odwh_daily builds: the daily selector, incrementally
        return accounts

    def close_month() -> int:
        pipeline.build_month_end(url, [month_end.isoformat()])  # what odwh_month_end builds, then publishes
        outcome = publication.close_month(url, month_end, out_root=workdir / "reports")
        assert outcome.published, outcome.detail
        return _rows_in(url, "marts.fct_od_month_end")

    stages.append(_timed(f"simulate {accounts:,} accounts x {days} days", simulate_all))
    stages.append(_timed("check + load (manifest, GX suite, COPY)", ingest))
    stages.append(_timed("dbt seed + build (full)", build))
    stages.append(_timed("one more day: load + daily models", one_more_day))
    if month_end >= start:
        stages.append(_timed("close a month: month-end models, gate, reports", close_month))
    return stages


def table(stages: list[Stage], meta: dict[str, Any]) -> str:
    lines = [
        f"odwh bench: {meta['accounts']:,} accounts x {meta['days']} days, {meta['cores']} cores",
        f"{'stage':<45} {'seconds':>9} {'rows':>12} {'rows/s':>10} {'peak RSS MB':>12}",
    ]
    for s in stages:
        lines.append(
            f"{s.name:<45} {s.seconds:>9.1f} {s.rows:>12,} {s.rows_per_second:>10,.0f} {s.peak_rss_mb:>12.0f}"
        )
    return "\n".join(lines)
