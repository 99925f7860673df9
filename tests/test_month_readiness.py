"""Which months odwh_month_end closes: every date loaded, and not gated since the month's data last changed.

Runs ``pipeline.MONTHS_READY_SQL`` on a real warehouse with hand-written load and publication records."""

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


def _gate(conn: psycopg.Connection, month_end: str, passed: bool) -> None:
    conn.execute(
        "insert into meta.publications (month_end, published_at, gate_passed, manifest)"
        " values (%s, clock_timestamp(), %s, '{}')",
        (month_end, passed),
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
        _gate(conn, "2026-01-31", passed=True)
        _gate(conn, "2026-02-28", passed=False)
        assert pipeline.months_ready_to_close(fresh_db) == []  # same data would fail the same way
        _load(conn, date(2026, 3, 1), date(2026, 3, 2))  # new data for March only
        assert pipeline.months_ready_to_close(fresh_db) == []
        _load(conn, date(2026, 2, 10), date(2026, 2, 10))  # a corrected delivery for February
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-02-28"]
        _gate(conn, "2026-02-28", passed=True)
        assert pipeline.months_ready_to_close(fresh_db) == []


def test_a_corrected_date_reopens_its_month_and_every_later_published_one(fresh_db: str):
    """A month's figures carry its history (days past due, stagnation, roll rates from the month before)."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 3, 31))
        for month_end in ("2026-01-31", "2026-02-28", "2026-03-31"):
            _gate(conn, month_end, passed=True)
        _load(conn, date(2026, 2, 10), date(2026, 2, 10))  # a corrected February date
        assert pipeline.months_ready_to_close(fresh_db) == ["2026-02-28", "2026-03-31"]  # not January
        _gate(conn, "2026-02-28", passed=True)
        _gate(conn, "2026-03-31", passed=True)
        _load(conn, date(2026, 4, 1), date(2026, 4, 1))  # a later month's date reopens nothing before it
        assert pipeline.months_ready_to_close(fresh_db) == []


def test_the_month_end_run_closes_the_months_its_triggering_events_announced():
    extras = [{"months": ["2026-02-28"]}, {"months": ["2026-01-31", "2026-02-28"]}, {}]
    assert pipeline.months_announced(extras) == ["2026-01-31", "2026-02-28"]
    assert pipeline.months_announced([]) == []


def test_a_stale_announcement_closes_only_the_months_still_ready(fresh_db: str):
    """Two daily runs can announce the same month before the month end runs: the second run closes nothing."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        _load(conn, date(2026, 1, 1), date(2026, 2, 28))
        _gate(conn, "2026-01-31", passed=True)
    assert pipeline.still_ready(fresh_db, ["2026-01-31", "2026-02-28"]) == ["2026-02-28"]
    assert pipeline.still_ready(fresh_db, None) == ["2026-02-28"]  # nothing announced: every ready month
