"""``odwh run``: the Airflow DAGs, in-process (``dag.test``), over a landing folder.

Airflow keeps its home, logs and SQLite metadata database inside the project (``.airflow/``, ignored by git);
production runs the same DAG files under a scheduler with PostgreSQL metadata (docs/operations.md).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from odwh import pipeline, runlock, warehouse


def airflow_env(warehouse_url: str, *, verbose: bool = False) -> dict[str, str]:
    """Environment under which the DAGs run in-process. Must be applied before Airflow is imported."""
    project = warehouse.project_dir()
    home = Path(os.environ.get("AIRFLOW_HOME") or project / ".airflow")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),  # odwh is an installed package, not a plugin
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO" if verbose else "ERROR",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "ODWH_PROJECT_DIR": str(project),
    }
    if not verbose:
        env["DBT_QUIET"] = "true"  # dbt still prints errors; per-model lines would bury the per-date lines
    env.update(pipeline.airflow_connection_env(warehouse_url))
    return env


def _prepare_airflow(warehouse_url: str, verbose: bool) -> None:
    os.environ.update(airflow_env(warehouse_url, verbose=verbose))
    if not verbose:  # library deprecation chatter would bury the one line per date users read
        warnings.filterwarnings("ignore")
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    from airflow.utils import db

    db.upgradedb()  # creates the SQLite metadata database on first use; a no-op afterwards


def load_dag(dag_id: str) -> Any:
    """A DAG from the project's DAGs folder (``dag.test`` needs one the DagBag serialised)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.get_dag(dag_id)


@dataclass
class RunSummary:
    dag_states: dict[str, str] = field(default_factory=dict)
    ingest: pipeline.IngestReport = field(default_factory=pipeline.IngestReport)
    months: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        published = all(m["published"] for m in self.months)
        return self.ingest.ok and published and all(s == "success" for s in self.dag_states.values())


def run(landing: str, *, verbose: bool = False) -> RunSummary:
    """Drain every complete pending date of ``landing`` through ``odwh_daily``."""
    started = time.monotonic()
    url = warehouse.ensure_running()
    with runlock.warehouse_lock(url, "run", wait=False):  # WarehouseBusy when another run holds it
        summary = _run_dags(url, landing, verbose)
    summary.seconds = time.monotonic() - started
    return summary


def _run_dags(url: str, landing: str, verbose: bool) -> RunSummary:
    warehouse.migrate(url)
    summary = RunSummary()
    if not pipeline.has_work(url, landing):  # no Airflow start-up, no dbt parse: an idle rerun takes seconds
        print("nothing new: every complete date is loaded and every ready month is closed", flush=True)
        return summary
    _prepare_airflow(url, verbose)
    daily = load_dag("odwh_daily")
    dag_run = daily.test(run_conf={"landing_url": str(landing)})
    summary.dag_states["odwh_daily"] = str(dag_run.state)
    summary.ingest = pipeline.IngestReport.from_json(_xcom(dag_run, "check_and_load") or {"outcomes": []})
    # Under a scheduler the MONTH_LOADED asset triggers odwh_month_end; in-process we run it ourselves when the
    # daily run announced months (its build succeeded), over every ready month, as announced months (not named by
    # hand: the month-end models the daily build took in stand).
    if _xcom(dag_run, "announce_loaded_months"):
        month_run = load_dag("odwh_month_end").test(run_conf={})
        summary.dag_states["odwh_month_end"] = str(month_run.state)
        summary.months = _xcom(month_run, "gate_and_publish") or []
    return summary


def _xcom(dag_run: Any, task_id: str) -> Any:
    """What a task of a finished in-process run returned (None if it did not run)."""
    ti = dag_run.get_task_instance(task_id)
    return ti.xcom_pull(task_ids=task_id) if ti is not None else None


def last_full_months(today: date, months: int = 12) -> tuple[date, date]:
    """First and last day of the ``months`` full calendar months before ``today``'s month."""
    end = today.replace(day=1) - timedelta(days=1)
    start_month = (end.year * 12 + end.month - 1) - (months - 1)
    return date(start_month // 12, start_month % 12 + 1, 1), end


def demo(*, accounts: int, seed: int = 42, months: int = 12) -> RunSummary:
    """``make demo``: simulate the last full months into ``landing/`` and run the DAGs over them."""
    from odwh import simulate

    landing = warehouse.project_dir() / "landing"
    start, end = last_full_months(date.today(), months)
    print(
        f"odwh demo: simulating {accounts} overdraft accounts from {start} to {end} into {landing}",
        flush=True,
    )
    simulate.simulate(landing, start, end, accounts=accounts, seed=seed)
    return run(str(landing))
