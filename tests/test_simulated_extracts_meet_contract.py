"""The simulator writes only what the contract allows: every simulated day passes the full contract check."""

from __future__ import annotations

from datetime import date

from odwh import landing, simulate, validate


def test_five_simulated_weeks_pass_manifest_and_contract_checks(tmp_path):
    # across a leap-year February month end: charges, capitalization and reversals all occur
    simulate.simulate(tmp_path, date(2024, 2, 1), date(2024, 3, 6), accounts=40, seed=11)
    deliveries = landing.list_deliveries(tmp_path)
    assert len(deliveries) == 35
    assert landing.missing_dates(deliveries) == []
    seen_txns: dict[str, tuple[str, str]] = {}
    for delivery in deliveries:
        assert landing.verify_manifest(delivery.path) == [], delivery.business_date
        earlier = [(t, a, d) for t, (a, d) in seen_txns.items()]
        report = validate.validate_delivery(delivery.path, earlier_txns=earlier)
        assert report.problems == [], (delivery.business_date, [str(p) for p in report.problems[:5]])
        assert report.warnings == [], delivery.business_date  # real province names, no extra column
        frame = validate.read_extract(delivery.path / "od_transactions.csv")
        for txn, account, direction in frame[["txn_id", "od_account_id", "direction"]].itertuples(
            index=False
        ):
            seen_txns[txn] = (account, direction)
