"""Shared fixtures: a real PostgreSQL for every test that needs one (never a mock, never SQLite).

With ``WAREHOUSE_URL`` set, tests create throw-away databases on that server (the role needs CREATEDB);
otherwise one embedded server is started for the session in a temporary directory. Every session has its own
``ODWH_HOME`` and ``AIRFLOW_HOME`` too, so the suite never writes into the checkout's and the workers of
``make test`` (pytest-xdist, one session each) share no server, dbt target, archive or Airflow config.
Helpers the test modules import live in ``tests/support``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from odwh import pseudonym, publish, warehouse
from psycopg import sql
from support.database import drop_templates, reused_name, throwaway_database
from support.marts import MONTH_END, ScriptedMarts

# published reports pseudonymise clients with a keyed HMAC; tests (and the `odwh` they start) share a fixed key
os.environ.setdefault(pseudonym.KEY_ENV, "odwh-test-pseudonym-key-not-a-secret")


# The files that take minutes, longest first (`pytest --durations`, docs/performance.md "The test suite").
LONGEST_FILES = (
    "test_date_by_date_equals_batch.py",
    "test_cluster.py",
    "test_faults.py",
    "test_policy_changes.py",
    "test_month_close.py",
    "test_social_performance.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On an xdist worker: the longest files first, then the other files with slow tests, then the rest.

    Each file runs whole on one worker (``--dist loadfile``), handed out in this order; a long file handed out
    last would run alone at the end while the other worker idles. The sort is stable: a file's tests stay
    together and in order, and the order changes no result.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    rank: dict[Path, int] = {}
    for item in items:
        rank[item.path] = min(rank.get(item.path, len(LONGEST_FILES) + 1), _rank(item))
    items.sort(key=lambda item: rank[item.path])


def _rank(item: pytest.Item) -> int:
    if item.path.name in LONGEST_FILES:
        return LONGEST_FILES.index(item.path.name)
    return len(LONGEST_FILES) + (0 if item.get_closest_marker("slow") else 1)


@pytest.fixture(scope="session", autouse=True)
def private_homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``ODWH_HOME`` and ``AIRFLOW_HOME`` of this session (tests that need others set their own)."""
    root = tmp_path_factory.mktemp("homes")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ODWH_HOME", str(root / "odwh"))
        env.setenv("AIRFLOW_HOME", str(root / "airflow"))
        yield


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """URL of a running PostgreSQL server (its maintenance database).

    The embedded server lives outside pytest's temporary tree: pytest resets that tree to mode 0700 when
    another session starts, which would lock the server's own account out of its data directory.
    """
    if external := os.environ.get("WAREHOUSE_URL"):
        yield external
        drop_templates(external)
        return
    home = Path(tempfile.mkdtemp(prefix="odwh-test-server-"))
    server = warehouse.EmbeddedServer(home)
    server.start()
    url = server.url("postgres")
    # its databases are thrown away: no flush to disk at each commit and checkpoint (the crash tests start a
    # server of their own, tests/test_faults.py)
    with psycopg.connect(url, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(sql.SQL("alter system set {} = off").format(sql.Identifier(setting)))
        conn.execute("select pg_reload_conf()")
    yield url
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def fresh_db(server_url: str) -> Iterator[str]:
    """A new, migrated database for one test; dropped afterwards."""
    with throwaway_database(server_url, reused_name("fresh")) as url:
        yield url


@pytest.fixture(scope="module")
def module_db(server_url: str) -> Iterator[str]:
    """A new, migrated database shared by the tests of one module (for expensive scripted data)."""
    with throwaway_database(server_url, reused_name("module")) as url:
        yield url


@pytest.fixture(scope="module")
def dbt_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt target directory per module, so later invocations parse partially."""
    return tmp_path_factory.mktemp("dbt")


@pytest.fixture(scope="module")
def scripted_marts_db(module_db: str) -> str:
    """The report marts with their scripted month (``support.marts.ScriptedMarts``), for tests that only read
    them: created once per module, since rendering from them is the slow part."""
    ScriptedMarts(module_db).create()
    return module_db


@pytest.fixture(scope="module")
def scripted_month(scripted_marts_db: str) -> publish.MonthData:
    with psycopg.connect(scripted_marts_db) as conn:
        return publish.load_month(conn, MONTH_END, institution="Test MFI Plc.")
