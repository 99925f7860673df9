"""Month-end close end to end: `odwh run` over two simulated months publishes both, with marts equal to the
rulebook's charges recomputed here from the extract files, and a failed gate leaves a publication alone.
On the same run: no client data where none belongs, a crash between render and flip, snapshot isolation."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from odwh import contract, publication, publish, simulate
from psycopg import sql
from support import REPO
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
    assert_only_published_releases(reports)
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


def assert_only_published_releases(root: Path) -> None:
    """Every release under ``root`` is the target of a published link; no temporary or partial entry."""
    links = {os.readlink(p) for p in root.iterdir() if p.is_symlink() and not p.name.startswith(".")}
    assert {f"{publication.RELEASES}/{p.name}" for p in (root / publication.RELEASES).iterdir()} == links
    assert [p.name for p in root.glob(".*")] == [publication.RELEASES]


def published_text(path: Path) -> str:
    """What a reader of the file sees: the PDF's text, a workbook's cells and sheet names, any other file's
    characters; runs of white space made one space (a name may wrap in a table cell)."""
    if path.suffix == ".pdf":
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True
        ).stdout
    elif path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as book:
            text = " ".join(book.read(n).decode("utf-8") for n in book.namelist() if n.endswith(".xml"))
    else:
        text = path.read_bytes().decode("utf-8", errors="replace")
    return " ".join(text.split())


def found(values: set[str], text: str) -> list[str]:
    return sorted(v for v in values if re.search(rf"(?<![\w]){re.escape(v)}(?![\w])", text))


@pytest.mark.slow
def test_published_files_hold_client_data_only_where_it_belongs(closed: tuple[str, Path, Path, str]) -> None:
    """Board pack (PDF text and HTML), dashboard, manifest, Data Docs: no national ID, phone, customer name,
    customer or account ID. Review lists and agent lists (they go to the branch that owns the client) may hold
    customer IDs and names, never a national ID or a phone."""
    _, landing, reports, _ = closed
    last_day = max(p.name for p in landing.iterdir())
    customers = list(csv.DictReader((landing / last_day / "customers.csv").open()))
    staff = {o["officer_name"] for o in csv.DictReader((landing / last_day / "officers.csv").open())}
    accounts = {a["od_account_id"] for a in csv.DictReader((landing / last_day / "od_accounts.csv").open())}
    secret = {c["national_id"] for c in customers if c["national_id"]} | {c["phone"] for c in customers}
    names = {c["customer_name"] for c in customers} - staff  # a client may share an officer's name
    ids = {c["customer_id"] for c in customers} | accounts
    assert len(secret) > len(customers) and names and ids
    scanned: dict[str, int] = {}
    for folder, _, files in os.walk(reports, followlinks=True):
        if publication.RELEASES in Path(folder).relative_to(reports).parts:
            continue  # read through the published links, as users do
        for name in files:
            path = Path(folder) / name
            text = published_text(path)
            branch_list = {"review-lists", "agent-alerts"} & set(path.relative_to(reports).parts)
            assert found(secret, text) == [], path
            if branch_list:
                scanned["branch lists"] = scanned.get("branch lists", 0) + bool(found(ids, text))
            else:
                assert found(names | ids, text) == [], path
                scanned[path.suffix] = scanned.get(path.suffix, 0) + 1
    assert scanned["branch lists"] > 0, "the review lists name their clients: the scan reads them"
    assert scanned[".pdf"] == 2 and scanned[".html"] >= 6 and scanned[".json"] >= 2
    pack = published_text(reports / "2024-02" / "board-pack.pdf")
    assert re.search(r"\bC-[A-Z2-7]{10}\b", pack), "top exposures are told apart by pseudonym"


@pytest.mark.slow
def test_a_crash_between_render_and_flip_leaves_the_month_readable_and_the_next_run_publishes(
    closed: tuple[str, Path, Path, str],
) -> None:
    url, _, reports, _ = closed
    month = reports / "2024-01"
    before = (month / "manifest.json").read_bytes()
    crash = (
        "import os, sys; from datetime import date; from pathlib import Path; from odwh import publication\n"
        "publication.flip = lambda link, release: os._exit(9)  # killed after rendering, before the flip\n"
        "publication.close_month(sys.argv[1], date(2024, 1, 31), out_root=Path(sys.argv[2]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    run = subprocess.run(
        [sys.executable, "-c", crash, url, str(reports)], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 9, run.stdout + run.stderr
    assert (month / "manifest.json").read_bytes() == before  # the old month, whole
    leftovers = [p for p in (reports / publication.RELEASES).iterdir() if p.name.startswith("2024-01-")]
    assert len(leftovers) == 2 and any((p / "board-pack.pdf").exists() for p in leftovers)

    outcome = publication.close_month(url, JAN, out_root=reports)
    assert outcome.published, outcome.detail
    assert_only_published_releases(reports)
    manifest = json.loads((month / "manifest.json").read_text())
    loads = [
        r[0]
        for r in query(
            url,
            "select load_id from meta.loads where superseded_at is null and business_date <= %s order by 1",
            JAN,
        )
    ]
    assert manifest["load_ids"] == loads and len(loads) == 31
    assert manifest["load_ids"] == sorted(e["load_id"] for e in manifest["extracts"])


@pytest.mark.slow
def test_a_month_is_rendered_from_one_snapshot(
    closed: tuple[str, Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load and a mart change committed while the month renders are in none of its files."""
    url, _, reports, _ = closed
    load_month = publish.load_month
    month = reports / "2024-01"
    rendered = [
        "board-pack.html",
        "dashboard.html",
        *(str(p.relative_to(month)) for p in month.glob("review-lists/*.csv")),
    ]
    before = {name: (month / name).read_bytes() for name in rendered}
    assert query(url, "select count(*) from marts.fct_od_month_end where month_end = %s", JAN)[0][0] > 0
    marts = ("fct_od_month_end", "rpt_review_list")

    def commit_meanwhile(conn: psycopg.Connection, month_end: date) -> publish.MonthData:
        with psycopg.connect(url) as other:
            for mart in marts:
                table, saved = sql.Identifier("marts", mart), sql.Identifier("public", f"saved_{mart}")
                other.execute(sql.SQL("create table {} as select * from {}").format(saved, table))
                other.execute(sql.SQL("delete from {}").format(table))
            other.execute(
                "insert into meta.loads (business_date, source_folder, archive_folder, manifest_sha256,"
                " rows_loaded) values ('2023-12-31', 'meanwhile', 'meanwhile', 'meanwhile', 0)"
            )
        return load_month(conn, month_end)

    monkeypatch.setattr(publish, "load_month", commit_meanwhile)
    try:
        outcome = publication.close_month(url, JAN, out_root=reports)
    finally:
        with psycopg.connect(url) as conn:
            for mart in marts:
                table, saved = sql.Identifier("marts", mart), sql.Identifier("public", f"saved_{mart}")
                conn.execute(sql.SQL("insert into {} select * from {}").format(table, saved))
                conn.execute(sql.SQL("drop table {}").format(saved))
            conn.execute("delete from meta.loads where source_folder = 'meanwhile'")
    assert outcome.published, outcome.detail
    manifest = json.loads((month / "manifest.json").read_text())
    assert len(manifest["load_ids"]) == 31  # not the load committed meanwhile
    assert {name: (month / name).read_bytes() for name in rendered} == before  # nor the deleted rows


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
    assert_only_published_releases(reports)
    (passed,) = query(url, "select gate_passed from meta.publications order by published_at desc limit 1")[0]
    assert passed is False


@pytest.mark.slow
def test_a_month_end_build_creates_the_grade_views_a_failed_daily_build_left_dropped(
    closed: tuple[str, Path, Path, str],
) -> None:
    """Decision 0038: dbt drops a view when it replaces a table the view reads, and creates it later in the same
    build; a daily build that failed in between leaves the grade views missing. A month close must not need
    them to be there."""
    from odwh import pipeline

    url, *_ = closed
    with psycopg.connect(url) as conn:
        conn.execute(
            "drop view intermediate.int_grading__term_loan_grades, intermediate.int_grading__od_grades_daily cascade"
        )
    pipeline.build_month_end(url, [FEB.isoformat()], rebuild=True)
    views = query(
        url,
        "select table_name from information_schema.views"
        " where table_schema = 'intermediate' and table_name like 'int_grading%' order by 1",
    )
    assert views == [("int_grading__od_grades_daily",), ("int_grading__term_loan_grades",)]


@pytest.mark.slow
def test_a_month_end_build_analyzes_every_table_it_wrote(closed: tuple[str, Path, Path, str]) -> None:
    """A model planned right after another is built reads that one's statistics: fct_od_month_end without its new
    month end made the review list of a close at 100,000 accounts take 435 s instead of 3 (docs/performance.md,
    "Fixed while measuring"). Every table a build writes is analyzed after it, views are not."""
    from odwh import pipeline

    url, *_ = closed
    [(started,)] = query(url, "select now()")
    pipeline.build_month_end(url, [FEB.isoformat()], rebuild=True)
    analyzed = {
        name
        for (name,) in query(
            url,
            "select schemaname || '.' || relname from pg_stat_user_tables"
            " where schemaname in ('intermediate', 'marts') and last_analyze >= %s",
            started,
        )
    }
    assert {
        "marts.fct_od_month_end",
        "marts.rpt_review_list",
        "intermediate.int_quality__exposures_month_end",
    } <= (analyzed)
