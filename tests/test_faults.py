"""Faults an unlucky operator meets, each run for real: a killed run, PostgreSQL crashing mid-load and
mid-build, a corrected date in a published month, a tampered archive copy, the same landing run again.

After each: the exit code and message, then the state: raw holds every delivered row and control total
exactly once (against the manifests), the marts equal those of an undisturbed run (ordered hash of every
mart), and the months are published. docs/reliability.md lists these rows of the fault matrix.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from odwh import contract, history, pipeline, publication, receiving, simulate, warehouse
from psycopg import sql
from support import REPO
from support.airflow import airflow_env, odwh_run
from support.database import manifest_mismatches, marts_fingerprint, query, throwaway_database
from support.extract import write_manifest

pytestmark = pytest.mark.slow

FIRST, LAST = date(2026, 1, 29), date(2026, 2, 2)  # five dates; January closes (history began on the 29th)
MONTH_END = date(2026, 1, 31)


@dataclass
class Reference:
    """An undisturbed `odwh run` over the landing: what every fault must end in."""

    landing: Path
    home: Path
    url: str
    marts: dict[str, tuple[int, str]]


@pytest.fixture(scope="module")
def reference(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    home = tmp_path_factory.mktemp("reference")
    landing = home / "landing"
    simulate.simulate(landing, FIRST, LAST, accounts=12, seed=7, progress=False)
    with throwaway_database(server_url) as url:
        done = odwh_run(home, url, landing)
        assert done.returncode == 0, done.stdout + done.stderr
        yield Reference(landing, home, url, marts_fingerprint(url))


def _published(url: str) -> list[tuple[date, bool]]:
    return query(url, "select month_end, gate_passed from meta.publications order by publication_id")


def _start_run(home: Path, url: str, landing: Path) -> subprocess.Popen[str]:
    """`odwh run` in its own process group, its output (stdout and stderr) in one pipe."""
    return subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "odwh"), "run", "--landing", str(landing)],
        env=airflow_env(home, url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _run_until(
    home: Path, url: str, landing: Path, marker: str | Callable[[str], bool], timeout: float = 600
) -> str:
    """Start `odwh run`, kill it (SIGKILL, the whole process group) once a line matches ``marker`` (a regular
    expression, or a test of the line)."""
    matches = marker if callable(marker) else lambda line: re.search(marker, line) is not None
    proc = _start_run(home, url, landing)
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if matches(line):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "".join(seen)
        assert time.monotonic() < deadline, f"no line matched {marker!r} in time:\n{''.join(seen)}"
    proc.wait()
    raise AssertionError(f"`odwh run` ended (exit {proc.returncode}) before {marker!r}:\n{''.join(seen)}")


def _late_in(build: str) -> Callable[[str], bool]:
    """A progress line of the dbt build ``build`` (one per tenth of its nodes) past four fifths of them: the
    month-end models, at the end of the graph, are being built."""

    def matches(line: str) -> bool:
        done = re.match(rf"^dbt build {build} +(\d+)/(\d+) ", line)
        return done is not None and 4 * int(done[2]) <= 5 * int(done[1]) < 5 * int(done[2])

    return matches


def _assert_complete(home: Path, url: str, reference: Reference) -> None:
    """A last run succeeds; nothing lost or doubled; marts equal the undisturbed run's; January published."""
    done = odwh_run(home, url, reference.landing)
    assert done.returncode == 0, done.stdout + done.stderr
    assert manifest_mismatches(url, reference.landing) == []
    assert query(url, "select count(*) from meta.loads where superseded_at is null") == [(5,)]
    assert marts_fingerprint(url) == reference.marts
    assert [passed for month, passed in _published(url) if month == MONTH_END] == [True]


def test_the_same_landing_run_again_changes_nothing(reference: Reference):
    loads = query(reference.url, "select load_id, loaded_at from meta.loads order by 1")
    again = odwh_run(reference.home, reference.url, reference.landing)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing new" in again.stdout and "no DAG run needed" in again.stdout
    assert query(reference.url, "select load_id, loaded_at from meta.loads order by 1") == loads
    assert marts_fingerprint(reference.url) == reference.marts  # byte-identical ordered hash of every mart
    assert _published(reference.url) == [(MONTH_END, True)]


def test_a_run_killed_at_each_stage_resumes_to_the_same_marts(
    server_url: str, reference: Reference, tmp_path: Path
):
    with throwaway_database(server_url) as url:
        # killed while checking and loading (after the first date committed)
        _run_until(tmp_path, url, reference.landing, r"^2026-01-29  loaded")
        loaded = {d.isoformat() for (d,) in query(url, "select business_date from meta.loads")}
        assert 1 <= len(loaded) < 5
        missing = manifest_mismatches(url, reference.landing)  # loaded dates whole, the others absent
        assert {day for day, *_ in missing} == {p.name for p in reference.landing.iterdir()} - loaded
        assert all(raw_rows == 0 for *_, raw_rows in missing)
        # killed late in building the models (the month is ready: the daily and month-end ones in one build,
        # decision 0059), while the month-end models are built: the loads are in, the models behind them
        _run_until(tmp_path, url, reference.landing, _late_in("daily_and_month_end"))
        with psycopg.connect(url) as conn:
            assert pipeline.models_behind(conn, "daily") is not None
            assert pipeline.models_behind(conn, "month_end") is not None
        # killed while closing the month: the models built over every load, the month not published
        _run_until(tmp_path, url, reference.landing, r"^the month-end models are built over load ")
        with psycopg.connect(url) as conn:
            assert pipeline.models_behind(conn, "month_end") is None
        assert _published(url) == []
        _assert_complete(tmp_path, url, reference)


def test_postgres_crashing_mid_load_and_mid_build_loses_nothing(reference: Reference, tmp_path: Path):
    server = warehouse.EmbeddedServer(Path(tempfile.mkdtemp(prefix="odwh-crash-server-")))
    try:
        url = server.start()
        warehouse.migrate(url)
        home, landing = tmp_path, reference.landing
        # a snapshot file loaded late in a date's transaction: waiting on it, the load is half done
        snapshot = [f for f in contract.FILES if f.kind == "snapshot"][-1]
        # the third date's promotion waits for this session before it starts: the door promotes dates side by
        # side, milliseconds apart, and nothing else would stop one at a known place
        third = psycopg.connect(url, autocommit=True)
        third.execute(DATE_LOAD_LOCK, (FIRST.toordinal() + 2,))
        proc = _start_run(home, landing=landing, url=url)
        committed = [(FIRST,), (FIRST + timedelta(days=1),)]
        try:
            wait_for_rows(url, "select business_date from meta.loads order by 1", committed)
        except AssertionError as exc:  # with what the run said
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{exc}\n{proc.communicate()[0][-3000:]}") from exc
        blocker = psycopg.connect(url)  # not a `with` block: it must not commit after the crash
        blocker.execute(
            sql.SQL("lock table raw.{} in access exclusive mode").format(sql.Identifier(snapshot.table))
        )
        third.close()  # the third date writes its files of the date alone, then waits on the locked snapshot
        _wait_for_loader_blocked(url)
        assert query(url, "select business_date from meta.loads order by 1") == committed
        server.stop(mode="immediate")  # a crash: the load's transaction is cut mid-way
        blocker.close()
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode != 0, output
        server.start()
        assert (
            query(url, "select business_date from meta.loads order by 1") == committed
        )  # the cut date: nothing
        assert query(
            url,
            sql.SQL("select count(*) from {} as r where _business_date > %s").format(
                sql.SQL(history.by_business_date(snapshot))
            ),
            committed[-1][0],
        ) == [(0,)]

        _run_until(
            home, url, landing, r"^dbt build daily(_and_month_end)? "
        )  # loads the rest, then crashes mid-build
        server.stop(mode="immediate")
        server.start()
        with psycopg.connect(url) as conn:
            assert (
                pipeline.models_behind(conn, "daily") is not None
            )  # the next run builds, though nothing is new
        _assert_complete(home, url, reference)
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(server.home, ignore_errors=True)


# the lock each date's promotion takes first (odwh.load.promote): held, it keeps that date from starting
DATE_LOAD_LOCK = "select pg_advisory_lock(hashtext('odwh.load'), %s::int)"


def wait_for_rows(url: str, sql_text: str, expected: list[tuple], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while (rows := query(url, sql_text)) != expected:
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {expected}, {sql_text!r} gave {rows}"
        time.sleep(0.1)


def _wait_for_loader_blocked(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            blocked = conn.execute(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                " and pid <> pg_backend_pid() and query ~* '^\\s*(insert|delete|copy)'"
            ).fetchone()
            if blocked and blocked[0]:
                return
            time.sleep(0.2)
    raise AssertionError("the loader never reached the locked table")


@contextmanager
def copy_of_reference(server_url: str, reference: Reference) -> Iterator[str]:
    """The reference warehouse as it stands (January published), copied into a throwaway database."""
    with throwaway_database(server_url) as url:
        copy = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        source = psycopg.conninfo.conninfo_to_dict(reference.url)["dbname"]
        with psycopg.connect(warehouse.with_database(server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database {}").format(sql.Identifier(copy)))
            conn.execute(
                sql.SQL("create database {} template {}").format(sql.Identifier(copy), sql.Identifier(source))
            )
        yield url


def test_a_corrected_date_in_a_published_month_republishes_it(
    server_url: str, reference: Reference, tmp_path: Path
):
    with copy_of_reference(server_url, reference) as url:
        landing = tmp_path / "landing"
        shutil.copytree(reference.landing, landing)
        corrected = date(2026, 1, 30)
        account, principal = _raise_first_principal(landing / corrected.isoformat(), Decimal("10.00"))
        write_manifest(landing / corrected.isoformat(), corrected)

        done = odwh_run(tmp_path, url, landing)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "2026-01-30  loaded" in done.stdout and "replaces an earlier delivery" in done.stdout
        assert manifest_mismatches(url, landing) == []
        assert _published(url) == [(MONTH_END, True), (MONTH_END, True)]  # republished
        (current_load,) = query(
            url,
            "select load_id from meta.loads where business_date = %s and superseded_at is null",
            corrected,
        )[0]
        manifest = json.loads((tmp_path / "reports" / "2026-01" / "manifest.json").read_text())
        used = {d["business_date"]: d["load_id"] for d in manifest["extracts"]}
        assert used[corrected.isoformat()] == current_load  # the manifest names the corrected delivery
        assert query(
            url,
            "select principal_outstanding from marts.fct_od_daily where od_account_id = %s and business_date = %s",
            account,
            corrected,
        ) == [(principal,)]


def _raise_first_principal(folder: Path, by: Decimal) -> tuple[str, Decimal]:
    """A correction: the first drawn account's principal on that date, raised by ``by``."""
    path = folder / "od_balances.csv"
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    row = next(r for r in rows if Decimal(r["principal_outstanding"]) > 0)
    row["principal_outstanding"] = str(Decimal(row["principal_outstanding"]) + by)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return row["od_account_id"], Decimal(row["principal_outstanding"])


def test_a_tampered_archive_copy_is_refused_and_kept(
    fresh_db: str, reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    archive = tmp_path / "archive"
    shutil.copytree(reference.home / "home" / "archive", archive)
    monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(archive))
    (copy,) = (archive / "2026-01-30").iterdir()
    tampered = copy / "od_balances.csv"
    copy.chmod(0o700)
    tampered.chmod(0o600)
    tampered.write_text(tampered.read_text().replace(".", "9", 1))

    report = pipeline.ingest(fresh_db, str(reference.landing), echo=False)
    assert [o.status for o in report.outcomes] == ["loaded", "rejected", "waiting", "waiting", "waiting"]
    refused = report.outcomes[1].detail
    assert str(copy) in refused and receiving.TAMPERED_ARCHIVE in refused
    assert "2026-01-30/od_balances.csv" in refused  # the file and the rule (sha256) it breaks
    assert query(fresh_db, "select count(*) from raw.od_balances where _business_date > %s", FIRST) == [(0,)]
    assert tampered.exists()  # kept for investigation

    copy.rename(archive / "2026-01-30" / "tampered-kept-aside")  # what the message tells the operator
    again = pipeline.ingest(fresh_db, str(reference.landing), echo=False)
    assert again.ok and len(again.loaded_dates) == 4
    assert manifest_mismatches(fresh_db, reference.landing) == []


@contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (root only: skipped elsewhere, with the reason)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(folder: Path) -> Path:
    """Fill ``folder``'s filesystem to the last byte; returns the filler file."""
    filler = folder / "filler"
    with filler.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_loads_nothing_publishes_nothing_and_loses_nothing(
    server_url: str, reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the archive's disk is full: the first date is refused, naming the folder and the cause; nothing loaded
    with throwaway_database(server_url) as url, small_filesystem(tmp_path / "archive", "64k") as archive:
        monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(archive))
        filler = _fill(archive)
        report = pipeline.ingest(url, str(reference.landing), echo=False)
        assert [o.status for o in report.outcomes] == ["rejected", "waiting", "waiting", "waiting", "waiting"]
        assert (
            str(archive) in report.outcomes[0].detail
            and "No space left on device" in report.outcomes[0].detail
        )
        assert query(url, "select count(*) from meta.loads") == [(0,)]
        assert sorted(p.name for p in archive.rglob("*") if p.is_file()) == ["filler"]  # no partial copy left
        filler.unlink()
        monkeypatch.setenv("ODWH_ARCHIVE_DIR", str(tmp_path / "archive-elsewhere"))  # more room
        again = pipeline.ingest(url, str(reference.landing), echo=False)
        assert again.ok and len(again.loaded_dates) == 5
        assert manifest_mismatches(url, reference.landing) == []

    # the reports' disk is full: the month is not published, the published one stays whole (a release is
    # ~11 MB here, so 32 MB holds the published month and the next one)
    with (
        copy_of_reference(server_url, reference) as url,
        small_filesystem(tmp_path / "reports", "32m") as reports,
    ):
        first = publication.close_month(url, MONTH_END, out_root=reports)
        assert first.published, first.detail
        month = reports / "2026-01"
        before = {p.relative_to(month): p.read_bytes() for p in month.rglob("*") if p.is_file()}
        filler = _fill(reports)
        with pytest.raises(OSError, match="No space left on device"):
            publication.close_month(url, MONTH_END, out_root=reports)
        assert {p.relative_to(month): p.read_bytes() for p in month.rglob("*") if p.is_file()} == before
        filler.unlink()
        second = publication.close_month(url, MONTH_END, out_root=reports)
        assert second.published, second.detail
        releases = list((reports / publication.RELEASES).iterdir())
        assert len(releases) == 1 and month.resolve() == releases[0].resolve()  # leftovers cleaned
