"""Which months odwh_month_end closes: every date loaded, and not gated on the newest loads it is built from.

Runs ``pipeline.MONTHS_READY_SQL`` on a real warehouse with hand-written load and publication records (the
cluster test, tests/test_cluster.py, shows the same under a real scheduler)."""

from __future__ import annotations

from datetime import date

import psycopg
from odwh import pipeline


def _load(conn: psycopg.Connection, first: date, last: date) -> None:
    days = {"first": first, "last": last}
    conn.execute(
        "update meta.loads set superseded_at = clock_timestamp()"
        " where superseded_at is null and business_date between %(first)s and %(last)s",
        days,
    )
    conn.execute(
        """
        insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256, loaded_at,
                                rows_loaded)
        select d, 'landing', 'archive', 'sha', clock_timestamp(), 1
        from generate_series(%(first)s::date, %(last)s::date, interval '1 day') d
        """,
        days,
    )


def _gate(conn: psycopg.Connection, month_end: str, passed: bool, loads_through: int | None = None) -> None:
    """A gate verdict recorded now; ``loads_through`` as the month-end build saw it (None: an older record)."""
    conn.execute(
        "insert into meta.publications (month_end, published_at, gate_passed, manifest, loads_through)"
        " values (%s, clock_timestamp(), %s, '{}', %s)",
        (month_end, passed, loads_through),
    )


def test_a_month_is_ready_once_every_date_since_history_began_is_loaded(fresh_db: str):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 29), date(2026, 2, 27))
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-01-31"]  # history began on the 29th
        _load(conn, date(2026, 2, 28), date(2026, 2, 28))
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-01-31", "2026-02-28"]


def test_a_failed_gate_is_retried_only_when_new_data_arrives_for_the_month(fresh_db: str):
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 2, 28))
        built_from = pipeline.newest_load_id(fresh_db)
        _gate(conn, "2026-01-31", passed=True, loads_through=built_from)
        _gate(conn, "2026-02-28", passed=False, loads_through=built_from)
        assert pipeline.months_ready_to_close(fresh_db) == []  # same data would fail the same way
        _load(conn, date(2026, 3, 1), date(2026, 3, 2))  # new data for March only
        assert pipeline.months_ready_to_close(fresh_db) == []
        _load(conn, date(2026, 2, 10), date(2026, 2, 10))  # a corrected delivery for February
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-02-28"]
        _gate(conn, "2026-02-28", passed=True, loads_through=pipeline.newest_load_id(fresh_db))
        assert pipeline.months_ready_to_close(fresh_db) == []


def test_the_month_end_run_closes_the_months_its_triggering_events_announced():
    extras = [{"months": ["2026-02-28"]}, {"months": ["2026-01-31", "2026-02-28"]}, {}]
    assert pipeline.months_announced(extras) == ["2026-01-31", "2026-02-28"]
    assert pipeline.months_announced([]) == []


def test_a_stale_announcement_closes_only_the_months_still_ready(fresh_db: str):
    """Two daily runs can announce the same month before the month end runs: the second run closes nothing.
    (The verdict here is recorded as before ``loads_through`` was kept: compared by time.)"""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 2, 28))
        _gate(conn, "2026-01-31", passed=True)
    assert pipeline.still_ready(fresh_db, ["2026-01-31", "2026-02-28"]) == ["2026-02-28"]
    assert pipeline.still_ready(fresh_db, None) == ["2026-02-28"]  # nothing announced: every ready month


def test_a_delivery_loaded_while_the_month_was_built_and_gated_reopens_it(fresh_db: str):
    """The verdict covers the loads the build started from, not the time it was recorded: a corrected date
    loaded meanwhile (the gate recorded after it) is gated again."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 2, 1), date(2026, 2, 28))
        build_started_from = pipeline.newest_load_id(fresh_db)
        _load(conn, date(2026, 2, 28), date(2026, 2, 28))  # the corrected month end, while the build runs
        _gate(conn, "2026-02-28", passed=False, loads_through=build_started_from)
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-02-28"]
        _gate(conn, "2026-02-28", passed=True, loads_through=pipeline.newest_load_id(fresh_db))
        assert pipeline.months_ready_to_close(fresh_db) == []


def test_a_corrected_earlier_date_reopens_every_later_month_built_from_it(fresh_db: str):
    """A month end's marts look back (DPD, stagnation): a re-delivered January date changes February's, which
    the month-end build redoes, so February is gated again too; a later date changes neither."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 2, 28))
        for month_end in ("2026-01-31", "2026-02-28"):
            _gate(conn, month_end, passed=True, loads_through=pipeline.newest_load_id(fresh_db))
        _load(conn, date(2026, 3, 1), date(2026, 3, 1))
        assert pipeline.months_ready_to_close(fresh_db) == []
        _load(conn, date(2026, 1, 15), date(2026, 1, 15))
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-01-31", "2026-02-28"]


def test_the_month_end_build_reports_the_newest_load_it_includes(fresh_db: str):
    assert pipeline.build_month_end(fresh_db, []) is None  # nothing to close: nothing built
    assert pipeline.newest_load_id(fresh_db) == 0
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 1, 3))
        (newest,) = conn.execute("select max(load_id) from meta.loads").fetchone()
    assert pipeline.newest_load_id(fresh_db) == newest
