"""The Airflow DAGs: they import cleanly, and `odwh run` drives them end to end over simulated extracts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date

import psycopg
import pytest
from odwh import simulate
from support import REPO
from support.airflow import airflow_env, month_loaded_events, odwh_run
from support.database import manifest_mismatches
from support.extract import write_manifest

DAGBAG_SUMMARY = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder={folder!r})
daily, month_end = bag.dags.get("odwh_daily"), bag.dags.get("odwh_month_end")
print(json.dumps({{
    "errors": {{path: str(error) for path, error in bag.import_errors.items()}},
    "dags": {{dag_id: sorted(t.task_id for t in dag.tasks) for dag_id, dag in bag.dags.items()}},
    "daily_schedule": daily and [getattr(daily.timetable, "expression", None), daily.timezone.name],
    "month_end_assets": month_end and [asset.uri for asset in month_end.schedule],
}}))
"""


def load_dagbag(tmp_path, **env_vars: str) -> dict:
    """The DAG folder as the dag-processor parses it: import errors, each DAG's tasks, their schedules."""
    code = DAGBAG_SUMMARY.format(folder=str(REPO / "dags"))
    env = {
        **airflow_env(tmp_path, "postgresql://unused/odwh"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "ODWH_DAILY_SCHEDULE": "",  # empty: the default, whatever the developer's shell holds
        **env_vars,
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dagbag_has_no_import_errors(tmp_path):
    result = load_dagbag(tmp_path)
    assert result["errors"] == {}
    assert result["dags"]["odwh_daily"] == [
        "announce_loaded_months",
        "build_daily_models",
        "check_and_load",
        "fail_if_refused",
        "publish_agent_alerts",
    ]
    assert result["dags"]["odwh_month_end"] == [
        "build_month_end_models",
        "fail_if_not_published",
        "gate_and_publish",
        "months_to_close",
    ]
    assert result["daily_schedule"] == ["0 6 * * *", "Asia/Phnom_Penh"]
    assert result["month_end_assets"] == ["odwh://warehouse/month-loaded"]


def test_an_institution_sets_the_daily_schedule_and_a_wrong_one_is_an_import_error(tmp_path):
    custom = load_dagbag(tmp_path, ODWH_DAILY_SCHEDULE="30 8 * * 1-6")
    assert custom["errors"] == {} and custom["daily_schedule"] == ["30 8 * * 1-6", "Asia/Phnom_Penh"]
    triggered_only = load_dagbag(tmp_path, ODWH_DAILY_SCHEDULE="None")  # the core's own job triggers it
    assert triggered_only["errors"] == {} and triggered_only["daily_schedule"] == [None, "Asia/Phnom_Penh"]
    wrong = load_dagbag(tmp_path, ODWH_DAILY_SCHEDULE="at six")["errors"]
    assert list(wrong) == [str(REPO / "dags" / "odwh_daily.py")]
    assert wrong[str(REPO / "dags" / "odwh_daily.py")].startswith("AirflowTimetableInvalid")


@pytest.mark.slow
def test_odwh_run_loads_simulated_extracts_once(fresh_db, tmp_path):
    landing = tmp_path / "landing"
    simulate.simulate(landing, date(2026, 1, 1), date(2026, 1, 14), accounts=6, seed=7)

    first = odwh_run(tmp_path, fresh_db, landing)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "odwh run: 14 of 14 pending date(s) loaded" in first.stdout
    assert first.stdout.count("  loaded  ") == 14  # one line per date
    assert month_loaded_events(tmp_path) == 0  # no month is complete: the asset must not schedule a month end

    assert manifest_mismatches(fresh_db, landing) == []  # every row and control total loaded once
    with psycopg.connect(fresh_db) as conn:
        loads_before = conn.execute("select count(*) from meta.loads").fetchone()

    again = odwh_run(tmp_path, fresh_db, landing)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "odwh run: 0 of 0 pending date(s) loaded" in again.stdout
    assert "no DAG run needed" in again.stdout  # nothing new: neither Airflow nor dbt was started
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("select count(*) from meta.loads").fetchone() == loads_before

    simulate.simulate(tmp_path / "more", date(2026, 1, 15), date(2026, 1, 15), accounts=6, seed=7)
    bad = tmp_path / "more" / "2026-01-15"
    (bad / "od_balances.csv").write_text(
        (bad / "od_balances.csv").read_text().replace(",2026-01-15,", ",2026-01-16,", 1)
    )
    write_manifest(bad, date(2026, 1, 15))  # a well-formed delivery whose content breaks a rule
    shutil.copytree(bad, landing / "2026-01-15")  # a symlinked folder would be refused for the link itself
    refused = odwh_run(tmp_path, fresh_db, landing)
    assert refused.returncode == 1
    assert "2026-01-15  REFUSED" in refused.stdout
    assert "2026-01-15/od_balances.csv row 1" in refused.stdout
