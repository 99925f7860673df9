"""Social performance end to end (rulebook I, issue 9): `odwh run` over two simulated months, then every social
mart against the rule recomputed here from the landing's CSV files alone, the review-list reasons, and section
10 in the board pack (HTML and PDF) and the dashboard's tab.

The simulation covers a PPI wave delivered in batches (June 15 and July 15 2025, earlier waves backfilled on the
first day) and, with raised event rates, enough applications, exclusions and complaints for a two-month run.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import shutil
import statistics
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from odwh import gate, simulate
from odwh.contract import EXCLUDED_ACTIVITIES
from odwh.publish import labels
from odwh.simulate.rates import DEFAULT_RATES
from support.airflow import odwh_run
from support.database import query, throwaway_database

pytestmark = pytest.mark.slow

START, END = date(2025, 6, 1), date(2025, 7, 31)
MONTH_ENDS = (date(2025, 6, 30), date(2025, 7, 31))
THRESHOLD_KHR, MAX_DSR, CEILING, OPEN_LIMIT = Decimal(40_000_000), Decimal("0.5"), Decimal("0.18"), 30
RATES = dataclasses.replace(
    DEFAULT_RATES,
    complaint_daily_per_customer=0.002,
    excluded_activity_share=0.15,
    cbc_unchecked_share=0.05,
    es_unscreened_share=0.3,
)


@pytest.fixture(scope="module")
def run(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    tmp = tmp_path_factory.mktemp("social")
    landing = tmp / "landing"
    simulate.simulate(landing, START, END, accounts=150, seed=19, rates=RATES, progress=False)
    with throwaway_database(server_url) as url:
        result = odwh_run(tmp, url, landing)
        assert result.returncode == 0, result.stdout + result.stderr
        yield url, landing, tmp / "reports"


def rows(landing: Path, name: str) -> list[dict[str, str]]:
    """Every delivery of a file, oldest folder first, each row with its folder's date as ``_delivered``."""
    out = []
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        if (folder / name).exists():
            with (folder / name).open(newline="", encoding="utf-8") as f:
                out += [dict(r, _delivered=folder.name) for r in csv.DictReader(f)]
    return out


def latest(deliveries: list[dict[str, str]], key: str) -> dict[str, dict[str, str]]:
    """The latest delivery of each key wins (deliveries are oldest first)."""
    return {r[key]: r for r in deliveries}


def month_end_of(iso: str) -> date:
    d = date.fromisoformat(iso)
    following = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return date.fromordinal(following.toordinal() - 1)


def applications(landing: Path) -> list[dict[str, Any]]:
    """Decided applications with amount_khr at the NBC rate of the application date (else the nearest earlier
    loaded date, else the first loaded date after it)."""
    rates = {
        (r["_delivered"], r["currency"]): Decimal(r["khr_per_unit"]) for r in rows(landing, "fx_rates.csv")
    }
    dates = sorted({d for d, _ in rates})
    out = []
    for a in latest(rows(landing, "loan_applications.csv"), "application_id").values():
        earlier = [d for d in dates if d <= a["applied_on"]]
        rate_date = earlier[-1] if earlier else next(d for d in dates if d > a["applied_on"])
        out.append(dict(a, amount_khr=Decimal(a["amount"]) * rates[(rate_date, a["currency"])]))
    return out


def test_ppi_waves_match_the_surveys(run):
    url, landing, _ = run
    per_client: dict[tuple[str, str], dict[str, str]] = {}
    for s in sorted(
        latest(rows(landing, "ppi_surveys.csv"), "survey_id").values(),
        key=lambda s: (s["survey_date"], s["survey_id"]),
    ):
        per_client[(s["wave"], s["customer_id"])] = s  # the latest survey of a client in a wave counts
    waves: dict[int, list[Decimal]] = defaultdict(list)
    for (wave, _), s in per_client.items():
        waves[int(wave)].append(Decimal(s["poverty_likelihood"]))
    assert len(waves) == 3  # 2021 and 2023 backfilled on the first day, 2025 in batches
    got = query(
        url,
        "select wave, surveyed_clients, poverty_rate, change_pp, is_complete from marts.fct_ppi_wave order by wave",
    )
    assert [(w, n) for w, n, *_ in got] == [(w, len(v)) for w, v in sorted(waves.items())]
    previous = None
    for wave, _, rate, change, complete in got:
        expected = sum(waves[wave]) / len(waves[wave])
        assert abs(rate - expected) < Decimal("1e-15")
        assert (change is None) == (previous is None)
        if previous is not None:
            assert abs(change - (expected - previous) * 100) < Decimal("1e-12")
        previous = expected
        # 2025's last batch (31 August) is not in by 31 July: not complete; earlier waves are
        assert complete == (wave != 2025)
    batches = {s["_delivered"] for s in rows(landing, "ppi_surveys.csv") if s["wave"] == "2025"}
    assert batches == {"2025-06-15", "2025-07-15"}


def test_screening_exclusion_and_over_indebtedness_match_the_rules(run):
    url, landing, _ = run
    apps = applications(landing)
    screening = {}
    for a in apps:
        if a["business_purpose"] != "true":
            continue
        required = a["amount_khr"] >= THRESHOLD_KHR
        if not required:
            code = None
        elif a["es_screened"] != "true":
            code = "NOT_SCREENED"
        elif not a["es_risk"]:
            code = "NO_RISK_RATING"
        elif a["es_risk"] != "HIGH":
            code = None
        else:
            signed, plan = a["es_contract_signed"] == "true", a["es_mitigation_plan"] == "true"
            code = {
                (False, False): "HIGH_RISK_NO_CONTRACT_NO_PLAN",
                (False, True): "HIGH_RISK_NO_CONTRACT",
                (True, False): "HIGH_RISK_NO_PLAN",
            }.get((signed, plan))
        screening[a["application_id"]] = (required, code)
    got = query(url, "select application_id, requires_screening, exception from marts.fct_es_screening")
    assert {r[0]: (r[1], r[2]) for r in got} == screening
    assert any(required for required, _ in screening.values()) and any(c for _, c in screening.values())

    approved = [a for a in apps if a["decision"] == "APPROVED"]
    excluded = {a["application_id"] for a in approved if a["purpose_activity"] in EXCLUDED_ACTIVITIES}
    assert excluded, "the raised exclusion share gives some approved excluded activities"
    assert {r[0] for r in query(url, "select application_id from marts.fct_exclusion_breaches")} == excluded
    rejected_excluded = [
        a for a in apps if a["decision"] == "REJECTED" and a["purpose_activity"] in EXCLUDED_ACTIVITIES
    ]
    assert not {a["application_id"] for a in rejected_excluded} & excluded

    over = {}
    for a in approved:
        above, no_cbc = Decimal(a["debt_service_ratio"]) > MAX_DSR, a["cbc_checked"] != "true"
        if above or no_cbc:
            over[a["application_id"]] = (
                ("DSR_ABOVE_LIMIT" if above else "")
                + ("_" if above and no_cbc else "")
                + ("NO_CBC_CHECK" if no_cbc else "")
            )
    assert {
        r[0]: r[1] for r in query(url, "select application_id, exception from marts.fct_over_indebtedness")
    } == over


def test_complaints_per_month_end_match_the_deliveries(run):
    url, landing, _ = run
    complaints = latest(rows(landing, "complaints.csv"), "complaint_id").values()
    assert any(c["resolved_on"] for c in complaints) and any(not c["resolved_on"] for c in complaints)
    got = {
        r[0]: r[1:]
        for r in query(
            url,
            "select month_end, received, resolved, median_days_to_resolve, open_over_limit from marts.fct_complaints_month_end",
        )
    }
    assert set(got) == set(MONTH_ENDS)
    for month_end in MONTH_ENDS:
        start = month_end.replace(day=1).isoformat()
        end = month_end.isoformat()
        received = [c for c in complaints if start <= c["received_on"] <= end]
        resolved = [c for c in complaints if c["resolved_on"] and start <= c["resolved_on"] <= end]
        days = [
            (date.fromisoformat(c["resolved_on"]) - date.fromisoformat(c["received_on"])).days
            for c in resolved
        ]
        over = [
            c
            for c in complaints
            if c["received_on"] <= end
            and not (c["resolved_on"] and c["resolved_on"] <= end)
            and (month_end - date.fromisoformat(c["received_on"])).days > OPEN_LIMIT
        ]
        median = Decimal(str(statistics.median(days))) if days else None
        assert got[month_end] == (len(received), len(resolved), median, len(over)), month_end


def test_pricing_exceptions_match_the_accounts(run):
    url, landing, _ = run
    for month_end in MONTH_ENDS:
        folder = landing / month_end.isoformat()
        with (folder / "od_balances.csv").open(newline="") as f:
            drawn = {b["od_account_id"] for b in csv.DictReader(f) if Decimal(b["principal_outstanding"]) > 0}
        with (folder / "od_accounts.csv").open(newline="") as f:
            accounts = list(csv.DictReader(f))
        expected = {
            a["od_account_id"]
            for a in accounts
            if Decimal(a["monthly_interest_rate"]) * 12 > CEILING
            and (a["status"] == "ACTIVE" or a["od_account_id"] in drawn)
        }
        got = query(
            url,
            "select od_account_id, officer_id from marts.fct_pricing_exceptions where month_end = %s",
            month_end,
        )
        assert {r[0] for r in got} == expected and all(r[1] for r in got)
        assert expected, "a few accounts are priced above the ceiling"


def test_review_lists_carry_the_social_reasons(run):
    url, _, _ = run
    counts = dict(
        query(
            url,
            "select reason, count(*) from marts.rpt_review_list"
            " where reason in ('ES_SCREENING', 'EXCLUSION', 'OVER_INDEBTEDNESS', 'PRICING') group by reason",
        )
    )
    expected = {
        "EXCLUSION": "select count(*) from marts.fct_exclusion_breaches",
        "OVER_INDEBTEDNESS": "select count(*) from marts.fct_over_indebtedness",
        "ES_SCREENING": "select count(*) from marts.fct_es_screening where decision = 'APPROVED' and exception is not null",
        "PRICING": "select count(*) from marts.fct_pricing_exceptions",
    }
    # every application is decided (and delivered) inside the run, so each mart row is listed in its month
    for reason, sql in expected.items():
        assert counts.get(reason, 0) == query(url, sql)[0][0], reason
    assert not query(
        url, "select 1 from marts.rpt_review_list where reason = 'PRICING' and officer_id is null"
    )
    # the published lists write each social reason's detail from its figures: Khmer, then English
    social = ("ES_SCREENING", "EXCLUSION", "OVER_INDEBTEDNESS", "PRICING")
    details = [
        row["ព័ត៌មានលម្អិត / Detail"].split("\n")
        for path in run[2].glob("*/review-lists/*.csv")
        for row in csv.DictReader(path.open(encoding="utf-8-sig", newline=""))
        if any(row["មូលហេតុ / Reason"].endswith(labels.REASONS[code]) for code in social)
    ]
    assert len(details) == sum(counts.values())
    khmer = re.compile("[\u1780-\u17ff]")
    assert all(len(d) == 2 and khmer.search(d[0]) and not khmer.search(d[1]) for d in details)


def test_section_10_in_the_board_pack_and_the_dashboard(run):
    _, _, reports = run
    for month_end in MONTH_ENDS:
        folder = reports / f"{month_end:%Y-%m}"
        html = (folder / "board-pack.html").read_text(encoding="utf-8")
        section = html[html.index('<h2 id="social-performance">10. ') :]
        for text in (
            "Prevention of over-indebtedness",
            "Responsible pricing",
            "Transparency",
            "arrives with the reliability work",
            "PPI poverty rate per wave",
            "2025 (provisional)",
        ):
            assert text in section, (month_end, text)
        dashboard = (folder / "dashboard.html").read_text(encoding="utf-8")
        assert 'id="tab-social"' in dashboard and "Mechanisms for complaint resolution" in dashboard
        if shutil.which("pdftotext"):
            pdf = subprocess.run(
                ["pdftotext", str(folder / "board-pack.pdf"), "-"], capture_output=True, text=True
            )
            words = " ".join(
                pdf.stdout.split()
            )  # a hyphen at a cell's line end is dropped: "overindebtedness"
            for text in (
                "Social performance and client protection",
                "Prevention of over",
                "Responsible pricing",
                "Mechanisms for complaint resolution",
                "PPI poverty rate per wave",
            ):
                assert text in words, (month_end, text)


def test_the_gate_checks_the_social_marts(run, tmp_path):
    """The month-end gate refuses a month whose social marts lose an application, miscount complaints or lack
    the client-protection row; the same month passes once they are restored (the run published it)."""
    url, _, _ = run
    july = MONTH_ENDS[1]
    with psycopg.connect(url) as conn:
        (application_id,) = conn.execute(
            "select application_id from marts.fct_es_screening where decided_on <= %s order by 1 limit 1",
            (july,),
        ).fetchone()
        conn.execute(
            "create temp table kept_screening as select * from marts.fct_es_screening where application_id = %s",
            (application_id,),
        )
        conn.execute("delete from marts.fct_es_screening where application_id = %s", (application_id,))
        conn.execute(
            "create temp table kept_protection as"
            " select * from marts.fct_client_protection_month_end where month_end = %s",
            (july,),
        )
        conn.execute("delete from marts.fct_client_protection_month_end where month_end = %s", (july,))
        conn.execute(
            "update marts.fct_complaints_month_end set received = received + 1 where month_end = %s", (july,)
        )
        conn.commit()
        try:
            result = gate.run_gate(url, july, tmp_path / "docs", require_review_list=True)
        finally:
            conn.execute("insert into marts.fct_es_screening select * from kept_screening")
            conn.execute("insert into marts.fct_client_protection_month_end select * from kept_protection")
            conn.execute(
                "update marts.fct_complaints_month_end set received = received - 1 where month_end = %s",
                (july,),
            )
            conn.commit()
    assert not result.passed
    assert {f.expectation for f in result.failures} == {
        "fct_es_screening.classified",
        "fct_complaints_month_end.reconciled",
        "fct_client_protection_month_end.row_present",
    }
    assert any(application_id in str(f.rows) for f in result.failures)
    assert gate.run_gate(url, july, tmp_path / "again", require_review_list=True).passed
