"""The simulator writes only what the contract allows: every simulated day passes the full contract check."""

from __future__ import annotations

from datetime import date

import psycopg
from odwh import landing, quarantine, simulate, validate, warehouse


def test_five_simulated_weeks_pass_manifest_and_contract_checks(tmp_path, fresh_db):
    # across a leap-year February month end: charges, capitalization and reversals all occur
    simulate.simulate(tmp_path, date(2024, 2, 1), date(2024, 3, 6), accounts=40, seed=11)
    deliveries = landing.list_deliveries(tmp_path)
    assert len(deliveries) == 35
    assert landing.missing_dates(deliveries) == []
    for delivery in deliveries:
        assert landing.verify_manifest(delivery.path) == [], delivery.business_date
    # every date at once, as a backfill checks them: reversals resolve against the earlier staged dates
    loader = warehouse.stage_url(warehouse.LOADER, fresh_db)
    with (
        psycopg.connect(loader, autocommit=True) as conn,
        quarantine.quarantined(conn, [d.path for d in deliveries]) as staged,
    ):
        assert len(staged) == 35
        reversals = conn.execute(
            "select count(*) from quarantine.od_transactions where reversed_txn_id <> ''"
        )
        assert reversals.fetchone()[0] > 0
        reports = validate.check_staged(conn, loader, staged)
    for day, report in reports.items():
        assert report.problems == [], (day, [str(p) for p in report.problems[:5]])
        assert report.warnings == [], day  # real province names, no extra column
