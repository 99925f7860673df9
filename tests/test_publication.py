"""Publication and concurrency (issue 8, items 4 and 5): keyed pseudonyms, the warehouse run lock, releases
published by flipping one symlink and the leftovers of an interrupted publication. The end-to-end checks on a
simulated run (no client data where none belongs, a crash between render and flip, snapshot isolation) are in
test_month_close.py, on its `odwh run` fixture."""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from odwh import pipeline, pseudonym, publication, runlock
from support import REPO
from support.airflow import airflow_env

# --- pseudonyms ----------------------------------------------------------------------------------------------


def test_pseudonyms_are_stable_keyed_and_tell_kinds_apart() -> None:
    key, other = b"k" * 32, b"o" * 32
    ref = pseudonym.of("customer", "C0042", key)
    assert ref == pseudonym.of("customer", "C0042", key) and ref.startswith("C-") and len(ref) == 12
    assert ref != pseudonym.of("customer", "C0042", other)  # rotation changes every pseudonym
    assert ref[2:] != pseudonym.of("account", "C0042", key)[2:]  # the same text as an account is another row
    assert "C0042" not in ref and pseudonym.key_id(key) != pseudonym.key_id(other)


def test_a_deployment_without_a_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(pseudonym.KEY_ENV, raising=False)
    monkeypatch.delenv(pseudonym.KEY_FILE_ENV, raising=False)
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql://odwh@db.example/odwh")
    with pytest.raises(pseudonym.PseudonymKeyMissing, match="set ODWH_PSEUDONYM_KEY"):
        pseudonym.key()
    monkeypatch.setenv(pseudonym.KEY_ENV, "short")
    with pytest.raises(pseudonym.PseudonymKeyMissing, match="shorter than 16 bytes"):
        pseudonym.key()


def test_key_file_and_the_embedded_warehouse_generated_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(pseudonym.KEY_ENV, raising=False)
    secret = tmp_path / "pseudonym_key"
    secret.write_text("a-docker-secret-of-32-characters\n")
    monkeypatch.setenv(pseudonym.KEY_FILE_ENV, str(secret))
    assert pseudonym.key() == b"a-docker-secret-of-32-characters"
    monkeypatch.delenv(pseudonym.KEY_FILE_ENV)
    monkeypatch.delenv("WAREHOUSE_URL", raising=False)
    monkeypatch.setenv("ODWH_HOME", str(tmp_path / "home"))
    first = pseudonym.key()
    path = pseudonym.generated_key_path()
    assert path == tmp_path / "home" / "secrets" / "pseudonym.key" and len(first) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pseudonym.key() == first  # generated once: pseudonyms stay stable from month to month


# --- the warehouse run lock ----------------------------------------------------------------------------------


WAITING_FOR_THE_LOCK = """
select exists (
    select from pg_locks
    where locktype = 'advisory' and not granted and classid = 0 and objid = %s and objsubid = 1
      and database = (select oid from pg_database where datname = current_database())
)
"""


def _hold_lock(url: str) -> psycopg.Connection:
    """A session holding the run lock as another odwh process would (no marker in this environment)."""
    conn = psycopg.connect(url, autocommit=True, application_name="odwh run (pid 4242 on elsewhere)")
    conn.execute("select pg_advisory_lock(%s)", (runlock.LOCK_KEY,))
    return conn


def test_a_second_odwh_run_is_refused_with_the_holder_named(fresh_db: str, tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    env = {k: v for k, v in airflow_env(tmp_path, fresh_db).items() if k != runlock.HELD_ENV}
    with _hold_lock(fresh_db):
        run = subprocess.run(
            [str(REPO / ".venv" / "bin" / "odwh"), "run", "--landing", str(tmp_path / "landing")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == runlock.EXIT_BUSY, run.stdout + run.stderr
    assert "another odwh run holds the warehouse lock: odwh run (pid 4242 on elsewhere)" in run.stderr
    assert "nothing was done, run again when it has finished" in run.stderr
    assert not (tmp_path / "airflow").exists()  # refused before any DAG ran


def test_a_scheduled_task_waits_for_the_lock_then_runs(
    fresh_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "landing").mkdir()
    holder = _hold_lock(fresh_db)
    released_at: list[float] = []

    def release_once_it_waits() -> None:  # a fixed sleep could end before a starved ingest reached the lock
        deadline = time.monotonic() + 300
        try:
            with psycopg.connect(fresh_db, autocommit=True) as conn:
                while not conn.execute(WAITING_FOR_THE_LOCK, (runlock.LOCK_KEY,)).fetchone()[0]:
                    if time.monotonic() > deadline:
                        return  # nobody waited: released_at stays empty and the test fails
                    time.sleep(0.05)
            released_at.append(time.monotonic())
        finally:
            holder.close()

    threading.Thread(target=release_once_it_waits, daemon=True).start()
    report = pipeline.ingest(fresh_db, str(tmp_path / "landing"), echo=False)
    finished = time.monotonic()
    assert report.outcomes == [] and released_at and finished >= released_at[0]
    assert (
        "load: waiting, another odwh run holds the warehouse lock: odwh run (pid 4242"
        in capsys.readouterr().out
    )
    assert runlock.HELD_ENV not in os.environ  # the marker leaves with the lock


def test_the_lock_is_free_again_after_a_run_and_taken_during_it(fresh_db: str) -> None:
    with runlock.warehouse_lock(fresh_db, "test", wait=False), psycopg.connect(fresh_db) as conn:
        assert "odwh test (pid" in runlock.holder(conn)
        (free,) = conn.execute("select pg_try_advisory_lock(%s)", (runlock.LOCK_KEY,)).fetchone() or (None,)
        assert free is False
    with runlock.warehouse_lock(fresh_db, "test", wait=False):
        pass


# --- releases and the symlink flip ---------------------------------------------------------------------------


def _publish(root: Path, name: str, text: str) -> Path:
    with publication.staged_release(root, name) as release:
        (release.path / "manifest.json").write_text(text)
        release.publish()
    return release.path


def test_publishing_flips_one_symlink_and_removes_the_previous_release(tmp_path: Path) -> None:
    first = _publish(tmp_path, "2024-01", "one")
    link = tmp_path / "2024-01"
    assert link.is_symlink() and os.readlink(link) == f".releases/{first.name}"
    assert (link / "manifest.json").read_text() == "one"
    second = _publish(tmp_path, "2024-01", "two")
    assert (link / "manifest.json").read_text() == "two" and not first.exists() and second.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".releases", "2024-01"]


def test_a_folder_published_before_releases_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "2024-01" / "review-lists").mkdir(parents=True)
    (tmp_path / "2024-01" / "manifest.json").write_text("old")
    _publish(tmp_path, "2024-01", "new")
    assert (tmp_path / "2024-01").is_symlink() and (
        tmp_path / "2024-01" / "manifest.json"
    ).read_text() == "new"
    assert len(list((tmp_path / ".releases").iterdir())) == 1


def test_an_unpublished_release_is_removed_and_the_old_month_stays(tmp_path: Path) -> None:
    _publish(tmp_path, "2024-01", "one")
    with pytest.raises(RuntimeError), publication.staged_release(tmp_path, "2024-01") as release:
        (release.path / "manifest.json").write_text("half")
        raise RuntimeError("render failed")
    assert (tmp_path / "2024-01" / "manifest.json").read_text() == "one"
    assert len(list((tmp_path / ".releases").iterdir())) == 1


def test_leftovers_of_an_interrupted_publication_are_cleaned(tmp_path: Path) -> None:
    kept = _publish(tmp_path, "2024-01", "one")
    orphan = tmp_path / ".releases" / "2024-02-20240301T000000Z-abcdef"  # rendered, never flipped
    orphan.mkdir()
    (orphan / "manifest.json").write_text("half")
    (tmp_path / ".2024-02.1234abcd.link").symlink_to(".releases/" + orphan.name)  # made, not renamed
    (tmp_path / ".2023-12.1234abcd.partial").mkdir()  # the layout before releases
    removed = publication.clean_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        [orphan.name, ".2024-02.1234abcd.link", ".2023-12.1234abcd.partial"]
    )
    assert kept.exists() and (tmp_path / "2024-01" / "manifest.json").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".releases", "2024-01"]


def test_a_reader_always_finds_the_month_while_it_is_republished(tmp_path: Path) -> None:
    _publish(tmp_path, "2024-01", "0")
    stop = threading.Event()
    misses: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                (tmp_path / "2024-01" / "manifest.json").read_text()
            except FileNotFoundError:  # only a removed previous release may vanish under an open path
                if not (tmp_path / "2024-01").exists():
                    misses.append("month missing")

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(1, 200):
        _publish(tmp_path, "2024-01", str(i))
    stop.set()
    reader.join()
    assert misses == []
    assert (tmp_path / "2024-01" / "manifest.json").read_text() == "199"
