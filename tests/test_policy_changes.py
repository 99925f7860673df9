"""Rulebook L: policy changes recorded with `odwh policy set` without editing code.

End to end: November 2023 to 20 February 2024 are run and Nov-Jan published; then three changes are recorded
(ACT/360 from 1 February, the stagnation window 60 -> 90 days from 15 February, mid-quarter, and the SHORT
Normal provision rate 1% -> 2% from 10 February) and `odwh run` loads the rest of February. The days already
built (1-20 February) must be recomputed with the new values, and the marts must equal the rulebook computed
here from the extract files. Every refusal is tested on its own, without dbt.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from odwh import policy, publication, simulate
from support import REPO
from support.airflow import airflow_env, odwh_run
from support.database import query, throwaway_database
from support.rulebook import UNIT, mart_charges, rulebook_charges, thirty_e_360

FIRST_DAY, CUT, FEB = date(2023, 11, 1), date(2024, 2, 20), date(2024, 2, 29)
JAN = date(2024, 1, 31)
WINDOW_FROM, PROVISION_FROM = date(2024, 2, 15), date(2024, 2, 10)
CHANGES = [
    ("day_count_convention", "ACT/360", "2024-02-01", "board resolution 2024-01: actual days"),
    ("stagnation_window_days", "90", WINDOW_FROM.isoformat(), "board resolution 2024-02: 90-day window"),
    ("provision_rate_short_normal", "0.02", PROVISION_FROM.isoformat(), "board resolution 2024-02: prudence"),
]


def odwh_policy(tmp: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`odwh policy ...` as a user types it."""
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "odwh"), "policy", *args],
        env=airflow_env(tmp, url),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_dates(source: Path, target: Path, last: date) -> None:
    """A landing folder holding the delivered dates of ``source`` up to ``last``."""
    target.mkdir()
    for folder in sorted(source.iterdir()):
        if date.fromisoformat(folder.name) <= last:
            shutil.copytree(folder, target / folder.name)


@pytest.fixture(scope="module")
def changed(
    server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path, str, subprocess.CompletedProcess[str]]]:
    """(url, landing, reports, stderr of the refused change, the second run) after both runs."""
    tmp = tmp_path_factory.mktemp("policy_changes")
    landing = tmp / "landing"
    simulate.simulate(landing, FIRST_DAY, FEB, accounts=8, seed=11, progress=False)
    _copy_dates(landing, tmp / "first", CUT)
    with throwaway_database(server_url) as url:
        first = odwh_run(tmp, url, tmp / "first")
        assert first.returncode == 0, first.stdout + first.stderr
        refused = odwh_policy(
            tmp, url, "set", "stagnation_window_days", "90", "--from", "2024-01-31", "--reason", "too late"
        )
        assert refused.returncode == 1, refused.stdout + refused.stderr
        for name, value, start, reason in CHANGES:
            done = odwh_policy(
                tmp, url, "set", name, value, "--from", start, "--reason", reason, "--by", "risk"
            )
            assert done.returncode == 0, done.stdout + done.stderr
        second = odwh_run(tmp, url, landing)
        assert "odwh run: 9 of 9 pending date(s) loaded" in second.stdout, second.stdout + second.stderr
        yield url, landing, tmp / "reports", refused.stderr, second


@pytest.mark.slow
def test_odwh_run_publishes_february_with_the_changes(changed) -> None:
    second = changed[4]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2024-02  published" in second.stdout


def _rows(landing: Path, day: date, name: str) -> list[dict[str, str]]:
    with (landing / day.isoformat() / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _principals(landing: Path, day: date) -> dict[str, Decimal]:
    return {
        b["od_account_id"]: Decimal(b["principal_outstanding"])
        for b in _rows(landing, day, "od_balances.csv")
    }


@pytest.mark.slow
def test_a_change_on_or_before_the_last_published_month_end_is_refused_naming_it(changed) -> None:
    url, _, _, refused, _ = changed
    assert "2024-01-31" in refused and "publication" in refused and "2024-01" in refused
    assert query(url, "select count(*) from meta.policy_changes where effective_from <= %s", JAN) == [(0,)]


@pytest.mark.slow
def test_act_360_from_the_first_of_february_charges_every_day_once(changed) -> None:
    url, landing, *_ = changed
    for month_end, weight in ((JAN, thirty_e_360), (FEB, lambda _day: 1)):  # ACT/360: every day weighs 1
        expected = rulebook_charges(landing, month_end, weight)
        assert mart_charges(url, month_end) == expected, month_end
        assert any(any(v) for v in expected.values()), "the scenario must charge something"
    weights = query(
        url,
        "select distinct business_date, day_weight from marts.fct_od_daily where business_date in (%s, %s, %s)",
        JAN,
        date(2024, 2, 1),
        FEB,
    )
    assert sorted(weights) == [(JAN, 0), (date(2024, 2, 1), 1), (FEB, 1)]  # 30E/360 would weigh 29 Feb as 2


@pytest.mark.slow
def test_the_stagnation_window_is_90_days_from_the_middle_of_february(changed) -> None:
    url, landing, *_ = changed
    evaluated = 0
    for day, window in ((WINDOW_FROM - timedelta(days=1), 60), (WINDOW_FROM, 90), (CUT, 90), (FEB, 90)):
        history = [_principals(landing, day - timedelta(days=k)) for k in range(window + 1)]
        rows = query(
            url,
            "select od_account_id, window_evaluable, stagnant_amount_60d, stagnation_window_version"
            " from marts.fct_od_daily where business_date = %s",
            day,
        )
        assert rows, day
        for account, evaluable, stagnant, version in rows:
            version_from = "2019-01-01" if window == 60 else WINDOW_FROM.isoformat()
            assert version == f"stagnation_window_days@{version_from}", (day, account)
            assert evaluable == (account in history[-1]), (day, account)  # an observed balance on d - N
            if evaluable:
                assert stagnant == min(p[account] for p in history if account in p), (day, account)
                evaluated += 1
    assert evaluated, "the scenario must evaluate some windows"


@pytest.mark.slow
def test_the_changed_provision_rate_applies_from_its_date(changed) -> None:
    url, landing, *_ = changed
    for day, rate in (
        (PROVISION_FROM - timedelta(days=1), Decimal("0.01")),
        (PROVISION_FROM, Decimal("0.02")),
    ):
        rates = query(
            url,
            "select distinct provision_rate from marts.fct_od_daily"
            " where business_date = %s and nbc_grade = 'Normal'",
            day,
        )
        assert rates == [(rate,)], day
    principals = _principals(landing, FEB)
    rows = query(
        url,
        "select od_account_id, currency, nbc_grade, provision_rate, provision_amount"
        " from marts.fct_od_month_end where month_end = %s",
        FEB,
    )
    normal = [r for r in rows if r[2] == "Normal"]
    assert normal, "the scenario must have Normal accounts at the month end"
    for account, currency, _, rate, amount in normal:
        unit = UNIT[currency]
        expected = (principals[account] * Decimal("0.02")).quantize(unit, rounding=ROUND_HALF_UP)
        assert (rate, amount.quantize(unit, rounding=ROUND_HALF_UP)) == (Decimal("0.02"), expected), account
    january = query(
        url,
        "select distinct provision_rate from marts.fct_od_month_end"
        " where month_end = %s and nbc_grade = 'Normal'",
        JAN,
    )
    assert january == [(Decimal("0.01"),)]


@pytest.mark.slow
def test_the_manifest_versions_of_february_list_every_version_used_during_the_month(changed) -> None:
    with psycopg.connect(changed[0]) as conn:
        manifest = publication._parameter_versions(conn, FEB)
    _assert_every_february_version(manifest)


@pytest.mark.slow
def test_the_published_february_manifest_lists_every_version(changed) -> None:
    reports = changed[2]
    _assert_every_february_version(
        json.loads((reports / "2024-02" / "manifest.json").read_text())["parameter_versions"]
    )


def _assert_every_february_version(manifest: dict[str, Any]) -> None:
    window = manifest["policy_parameters"]["stagnation_window_days"]
    assert [(v["version"], v["value"], v["origin"]) for v in window] == [
        ("stagnation_window_days@2019-01-01", "60", "seed"),
        ("stagnation_window_days@2024-02-15", "90", "recorded"),
    ]
    assert window[1]["recorded_by"] == "risk" and "90-day" in window[1]["reason"]
    assert [v["value"] for v in manifest["policy_parameters"]["day_count_convention"]] == ["ACT/360"]
    normal = [
        r for r in manifest["nbc_grading_rules"] if (r["term_class"], r["grade"]) == ("SHORT", "Normal")
    ]
    assert [(r["provision_rate"], r["effective_to"]) for r in normal] == [
        ("0.01", "2024-02-10"),
        ("0.02", None),
    ]


@pytest.mark.slow
def test_the_january_manifest_keeps_the_defaults(changed) -> None:
    reports = changed[2]
    january = json.loads((reports / "2024-01" / "manifest.json").read_text())["parameter_versions"]
    assert [v["value"] for v in january["policy_parameters"]["stagnation_window_days"]] == ["60"]
    assert [v["value"] for v in january["policy_parameters"]["day_count_convention"]] == ["30E/360"]


@pytest.mark.slow
def test_policy_show_and_history_name_the_versions_and_who_set_them(changed, tmp_path: Path) -> None:
    url = changed[0]
    shown = odwh_policy(tmp_path, url, "show", "--at", "2024-02-14")
    assert shown.returncode == 0, shown.stderr
    lines = {line.split()[0]: line for line in shown.stdout.splitlines()[1:]}
    assert "stagnation_window_days@2019-01-01" in lines["stagnation_window_days"]
    assert "provision_rate_short_normal@2024-02-10" in lines["provision_rate_short_normal"]
    assert " risk " in lines["provision_rate_short_normal"] and "(default)" in lines["max_term_months"]
    history = odwh_policy(tmp_path, url, "history", "stagnation_window_days")
    assert [line.split()[1] for line in history.stdout.splitlines()[1:]] == ["60", "90"]


# --- refusals and versions, without dbt ------------------------------------------------------------------------


def _publish(url: str, month_end: date, *, passed: bool = True) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "insert into meta.publications (month_end, gate_passed, manifest) values (%s, %s, '{}')",
            (month_end, passed),
        )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("no_such_parameter", "1", "unknown policy parameter 'no_such_parameter'"),
        ("processing_fee_rate", "one percent", "is not a number"),
        ("processing_fee_rate", "NaN", "is not a finite number"),
        ("processing_fee_rate", "1.01", "a rate must lie in [0, 1]"),
        ("provision_rate_short_loss", "-0.1", "a rate must lie in [0, 1]"),
        ("stagnation_window_days", "-30", "positive whole number"),
        ("stagnation_window_days", "0", "positive whole number"),
        ("stagnation_window_days", "60.5", "positive whole number"),
        ("agent_min_partnership_months", "2.5", "positive whole number"),
        ("day_count_convention", "ACT/365", "unknown day-count convention 'ACT/365'"),
        ("day_count_convention", "30", "unknown day-count convention"),
        ("processing_fee_basis_on_increase", "HALF", "unknown processing fee basis 'HALF'"),
        ("agent_od_max_limit_usd", "-5000", "must not be negative"),
        ("agent_abnormal_drawdown_multiple", "0", "a multiple must be positive"),
        ("rounding_unit_usd", "0", "a rounding unit must be positive"),
    ],
)
def test_an_invalid_value_is_refused_and_nothing_is_recorded(
    fresh_db: str, name: str, value: str, message: str
) -> None:
    with pytest.raises(policy.PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        policy.record_change(fresh_db, name, value, date(2030, 1, 1), "board", "risk")
    assert query(fresh_db, "select count(*) from meta.policy_changes") == [(0,)]


def test_a_valid_value_is_recorded_with_who_and_why(fresh_db: str) -> None:
    version = policy.record_change(
        fresh_db, "processing_fee_rate", "0.015", date(2030, 1, 1), " board ", "ana"
    )
    assert (version.version_id, version.recorded_by, version.reason) == (
        "processing_fee_rate@2030-01-01",
        "ana",
        "board",
    )
    rows = query(
        fresh_db, "select parameter_name, value, value_text, recorded_by, reason from meta.policy_changes"
    )
    assert rows == [("processing_fee_rate", Decimal("0.015"), None, "ana", "board")]


def test_a_change_without_a_reason_is_refused(fresh_db: str) -> None:
    with pytest.raises(policy.PolicyError, match="needs a reason"):
        policy.record_change(fresh_db, "processing_fee_rate", "0.02", date(2030, 1, 1), "  ", "ana")


def test_a_change_in_a_published_month_is_refused_naming_the_publication(fresh_db: str) -> None:
    _publish(fresh_db, date(2024, 1, 31))
    _publish(fresh_db, date(2024, 2, 29), passed=False)  # a failed gate publishes nothing
    for day in (date(2024, 1, 31), date(2023, 6, 1)):
        with pytest.raises(
            policy.PolicyError, match=r"last published month end 2024-01-31 \(publication 1 of 2024-01"
        ):
            policy.record_change(fresh_db, "stagnation_window_days", "90", day, "board", "ana")
    policy.record_change(fresh_db, "stagnation_window_days", "90", date(2024, 2, 1), "board", "ana")
    assert query(fresh_db, "select effective_from from meta.policy_changes") == [(date(2024, 2, 1),)]


def test_the_cli_refuses_with_a_message_and_status_1(fresh_db: str, tmp_path: Path) -> None:
    refused = odwh_policy(
        tmp_path, fresh_db, "set", "stagnation_window_days", "-5", "--from", "2030-01-01", "--reason", "board"
    )
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        "stagnation_window_days: a number of days must be a positive whole number, got -5",
    )


def test_versions_follow_the_models_rule_latest_change_of_a_date_wins(fresh_db: str) -> None:
    for value in ("80", "90"):
        policy.record_change(fresh_db, "stagnation_window_days", value, date(2030, 3, 1), "board", "ana")
    with psycopg.connect(fresh_db) as conn:
        every = policy.versions(conn, "stagnation_window_days")
        before, after = policy.in_force(conn, date(2030, 2, 28)), policy.in_force(conn, date(2030, 3, 1))
    assert [(v.value, v.origin, v.effective_to, v.superseded_by) for v in every] == [
        ("60", "seed", date(2030, 3, 1), None),
        ("80", "recorded", None, 2),
        ("90", "recorded", None, None),
    ]
    window = {v.parameter_name: v for v in before}["stagnation_window_days"]
    assert window.value == "60"
    assert {v.parameter_name: v for v in after}["stagnation_window_days"].value == "90"
    assert len(after) == len(policy.catalog())  # every parameter has exactly one version in force


def test_a_new_change_asks_each_selector_for_one_full_rebuild(fresh_db: str) -> None:
    with psycopg.connect(fresh_db) as conn:
        assert policy.full_refresh_needed(conn, "daily") is None
    policy.record_change(fresh_db, "stagnation_window_days", "90", date(2030, 3, 1), "board", "ana")
    with psycopg.connect(fresh_db) as conn:
        assert policy.full_refresh_needed(conn, "daily") == 1
        policy.record_full_refresh(conn, "daily", 1)
        assert policy.full_refresh_needed(conn, "daily") is None
        assert policy.full_refresh_needed(conn, "month_end") == 1
