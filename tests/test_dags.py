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


def test_dagbag_has_no_import_errors(tmp_path):
    code = (
        "from airflow.dag_processing.dagbag import DagBag; import json;"
        f"b = DagBag(dag_folder={str(REPO / 'dags')!r});"
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()},"
        " 'dags': {d: sorted(t.task_id for t in b.dags[d].tasks) for d in b.dag_ids}}))"
    )
    env = {**airflow_env(tmp_path, "postgresql://unused/odwh"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
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
