"""Shared fixtures: a real PostgreSQL for every test that needs one (never a mock, never SQLite).

With ``WAREHOUSE_URL`` set, tests create throw-away databases on that server (the role needs CREATEDB);
otherwise one embedded server is started for the session under a temporary ``ODWH_HOME``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from odwh import warehouse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a running PostgreSQL server (its maintenance database).

    The embedded server lives outside pytest's temporary tree: pytest resets that tree to mode 0700 when
    another session starts, which would lock the server's own account out of its data directory.
    """
    if external := os.environ.get("WAREHOUSE_URL"):
        yield external
        return
    home = Path(tempfile.mkdtemp(prefix="odwh-test-server-"))
    server = warehouse.EmbeddedServer(home)
    server.start()
    yield server.url("postgres")
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@pytest.fixture
def fresh_db(server_url: str) -> Iterator[str]:
    """A new, migrated database for one test; dropped afterwards."""
    name = f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = _with_database(server_url, name)
    warehouse.migrate(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


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
