"""`odwh` as a user runs it, in a subprocess whose Airflow home, ODWH_HOME and reports sit in a tmp dir."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

from support import REPO


def airflow_env(tmp_path: Path, warehouse_url: str) -> dict[str, str]:
    """Environment for an `odwh` subprocess: Airflow home, ODWH_HOME and reports all inside ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        WAREHOUSE_URL=warehouse_url,
        ODWH_HOME=str(tmp_path / "home"),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        REPORTS_DIR=str(tmp_path / "reports"),
    )
    return env


def odwh_run(tmp_path: Path, warehouse_url: str, landing: Path) -> subprocess.CompletedProcess[str]:
    """`odwh run --landing LANDING` as a user types it."""
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "odwh"), "run", "--landing", str(landing)],
        env=airflow_env(tmp_path, warehouse_url),
        capture_output=True,
        text=True,
        timeout=1800,
    )


def month_loaded_events(tmp_path: Path) -> int:
    """How many MONTH_LOADED asset events the in-process Airflow of ``odwh_run(tmp_path, ...)`` recorded."""
    from odwh.assets import MONTH_LOADED

    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as db:
        (count,) = db.execute(
            "select count(*) from asset_event e join asset a on a.id = e.asset_id where a.uri = ?",
            (MONTH_LOADED.uri,),
        ).fetchone()
    return int(count)
