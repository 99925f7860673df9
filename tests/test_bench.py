"""The benchmark's code, on a tiny portfolio (a smoke test: no time is asserted, only that every stage ran)."""

from __future__ import annotations

import operator
import os
from datetime import date

import pytest
from odwh import bench


@pytest.mark.slow
def test_bench_runs_every_stage_and_reports_the_targets(server_url, tmp_path, monkeypatch):
    monkeypatch.setenv("WAREHOUSE_URL", server_url)
    monkeypatch.setenv("ODWH_HOME", str(tmp_path / "home"))
    # 2,000 accounts x 10 days, from the 22nd: history starts mid-January, so January closes
    # the loaded dates' folders deleted once loaded, as for the year (their archive copies count the rows)
    result = bench.run_size(
        accounts=2000, days=10, workdir=tmp_path / "bench", start=date(2026, 1, 22), keep_landing=False
    )

    names = [s.name for s in result.stages]
    assert names == [
        "simulate 2,000 accounts x 10 days",
        "floor: COPY every CSV + one 60-day window",
        "check + load (manifest, GX suite, COPY)",
        "models: the daily build (as odwh_daily)",
        "close and publish every complete month",
        "idle odwh run (nothing new)",
        "one more day through Airflow (odwh run)",
    ]
    stage = dict(zip(names, result.stages, strict=True))
    floor_rows = stage["floor: COPY every CSV + one 60-day window"].rows
    assert floor_rows > 2000 * 10  # every file of every date, balances alone are accounts x days
    assert [p.name for p in (tmp_path / "bench" / "landing").iterdir()] == ["2026-02-01"]  # the day after
    archive = tmp_path / "home" / "archive"
    balances = sum(len(p.read_text().splitlines()) - 1 for p in archive.glob("2026-01-*/*/od_balances.csv"))
    assert stage["check + load (manifest, GX suite, COPY)"].rows == balances  # raw.od_balances, every row
    assert result.months_closed == 1  # January 2026 (the extra day, Feb 1, comes after the closes)
    assert all(s.seconds > 0 and 0 < s.largest_process_mb <= s.peak_rss_mb for s in result.stages)
    assert result.landing_csv_bytes > 0 and result.warehouse_bytes > 0
    assert "2026-02-01" in (tmp_path / "bench" / "one-more-day.log").read_text()  # kept for its task timings
    report = bench.table([result], 2)
    assert "x the floor (target <= 3)" in report and "idle rerun" in report


def test_a_stage_runs_in_its_own_process_and_its_failure_reaches_the_bench():
    assert bench._in_own_process(os.getpid) != os.getpid()
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        bench._in_own_process(operator.floordiv, 1, 0)
