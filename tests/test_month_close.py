"""Month-end close end to end: `odwh run` over two simulated months publishes both, with marts equal to the
rulebook's charges recomputed here from the extract files, and a failed gate leaves a publication alone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from odwh import contract, publication, publish, simulate
from support.airflow import month_loaded_events, odwh_run
from support.database import query, throwaway_database
from support.rulebook import extract_rows, mart_charges, rulebook_charges

JAN, FEB = date(2024, 1, 31), date(2024, 2, 29)  # a 31-day month and a leap February


@pytest.fixture(scope="module")
def closed(
    server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path, str]]:
    """January and February 2024 simulated and run through `odwh run` once: (url, landing, reports, stdout)."""
    tmp = tmp_path_factory.mktemp("close")
    landing = tmp / "landing"
    simulate.simulate(landing, date(2024, 1, 1), FEB, accounts=8, seed=11, progress=False)
    with throwaway_database(server_url) as url:
        run = odwh_run(tmp, url, landing)
        assert run.returncode == 0, run.stdout + run.stderr
        yield url, landing, tmp / "reports", run.stdout


@pytest.mark.slow
def test_odwh_run_publishes_every_complete_month(closed: tuple[str, Path, Path, str]) -> None:
    url, _, reports, stdout = closed
    assert "2024-01  published" in stdout and "2024-02  published" in stdout
    assert "odwh run: 60 of 60 pending date(s) loaded; 2 of 2 month(s) published" in stdout
    for month in ("2024-01", "2024-02"):
        folder = reports / month
        for name in ("board-pack.pdf", "board-pack.html", "dashboard.html", "manifest.json"):
            assert (folder / name).stat().st_size > 1000, name
        assert (folder / "data-quality" / "index.html").exists()
        assert list((folder / "review-lists").glob("*.xlsx")) and list(
            (folder / "review-lists").glob("*.csv")
        )
    assert not list(reports.glob(".*")), "no partial or old folder is left behind"
    assert month_loaded_events(reports.parent) == 1  # one daily run with ready months: one asset event
    published = query(url, "select month_end from meta.publications where gate_passed order by 1")
    assert published == [(JAN,), (FEB,)]


@pytest.mark.slow
def test_the_manifest_traces_every_file_to_its_extracts_and_parameters(
    closed: tuple[str, Path, Path, str],
) -> None:
    _, landing, reports, _ = closed
    manifest = json.loads((reports / "2024-02" / "manifest.json").read_text())
    assert manifest["month_end"] == FEB.isoformat() and manifest["quality_gate"]["passed"] is True
    extracts = {e["business_date"]: e for e in manifest["extracts"]}
    # a month end's figures rest on the whole history up to it (60-day windows, days past due), not on later days
    assert sorted(extracts) == sorted(p.name for p in landing.iterdir())
    january = json.loads((reports / "2024-01" / "manifest.json").read_text())
    assert max(e["business_date"] for e in january["extracts"]) == JAN.isoformat()
    for day, entry in extracts.items():
        delivered = json.loads((landing / day / contract.MANIFEST_NAME).read_text())["files"]
        assert {n: f["sha256"] for n, f in entry["files"].items()} == {
            n: f["sha256"] for n, f in delivered.items()
        }
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((reports / "2024-02" / name).read_bytes()).hexdigest() == entry["sha256"], name
    params = manifest["parameter_versions"]["policy_parameters"]
    assert [v["value"] for v in params["interest_days_per_month"]] == ["30"]
    assert params["interest_days_per_month"][0]["origin"] == "seed"


@pytest.mark.slow
def test_month_end_charges_equal_the_rulebook_computed_from_the_files(
    closed: tuple[str, Path, Path, str],
) -> None:
    url, landing, _, _ = closed
    for month_end in (JAN, FEB):
        expected = rulebook_charges(landing, month_end)
        assert mart_charges(url, month_end) == expected, month_end
        assert any(any(v) for v in expected.values()), "the scenario must charge something"

    balances = {
        b["od_account_id"]: Decimal(b["principal_outstanding"])
        for b in extract_rows(landing, FEB, "od_balances.csv")
    }
    rates = {r["currency"]: Decimal(r["khr_per_unit"]) for r in extract_rows(landing, FEB, "fx_rates.csv")}
    ccy = {a["od_account_id"]: a["currency"] for a in extract_rows(landing, FEB, "od_accounts.csv")}
    od_usd = sum(p * rates[ccy[acc]] / rates["USD"] for acc, p in balances.items())
    (mart_od_usd,) = query(
        url, "select od_outstanding_usd from marts.fct_portfolio_month_end where month_end = %s", FEB
    )[0]
    assert abs(mart_od_usd - od_usd) <= Decimal("0.01")


@pytest.mark.slow
def test_the_packs_accounts_are_the_grade_distributions(closed: tuple[str, Path, Path, str]) -> None:
    """On dbt-built marts, the pack's OD accounts (the cover's count) are those the grade table totals, and
    every other facility of the month end is counted as outside the portfolio (docs/decisions/0024)."""
    url = closed[0]
    for month_end in (JAN, FEB):
        with psycopg.connect(url) as conn:
            data = publish.load_month(conn, month_end)
        graded = data.grades[
            (data.grades["month_end"] == month_end) & (data.grades["product_family"] == "OD")
        ]
        in_portfolio = int(data.cube["accounts"].sum())
        assert in_portfolio == int(graded["accounts"].sum()) > 0, month_end
        (rows,) = query(url, "select count(*) from marts.fct_od_month_end where month_end = %s", month_end)[0]
        assert in_portfolio + data.facilities_outside == rows, month_end


@pytest.mark.slow
def test_a_failed_gate_leaves_the_previous_publication_untouched(
    closed: tuple[str, Path, Path, str], tmp_path: Path
) -> None:
    url, _, reports, _ = closed
    before = {p.relative_to(reports): p.read_bytes() for p in (reports / "2024-02").rglob("*") if p.is_file()}
    with psycopg.connect(url) as conn:
        account = conn.execute(
            "select od_account_id from marts.fct_od_month_end where month_end = %s order by 1 limit 1", (FEB,)
        ).fetchone()
        conn.execute(
            "update marts.fct_od_month_end set provision_amount = provision_amount + 1"
            " where month_end = %s and od_account_id = %s",
            (FEB, account[0]),
        )
    outcome = publication.close_month(url, FEB, out_root=reports)
    assert not outcome.published
    assert "fct_od_month_end.provision_amount" in outcome.detail and account[0] in outcome.line()
    after = {p.relative_to(reports): p.read_bytes() for p in (reports / "2024-02").rglob("*") if p.is_file()}
    assert after == before
    assert not list(reports.glob(".*"))
    (passed,) = query(url, "select gate_passed from meta.publications order by published_at desc limit 1")[0]
    assert passed is False
