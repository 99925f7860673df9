"""Closing a month: quality gate, then publish atomically under ``REPORTS_DIR/<YYYY-MM>/``.

A publication is rendered into a release folder, ``REPORTS_DIR/.releases/<YYYY-MM>-<stamp>``, and published by
flipping one symbolic link, ``REPORTS_DIR/<YYYY-MM> -> .releases/<YYYY-MM>-<stamp>``: a temporary link is made
beside it and ``os.replace``-d over it (one ``rename``), so a reader sees the old month or the new one, never
none. A failed gate or a crash leaves the previous publication in place; a crash's leftovers (an unlinked
release, a temporary link) are removed by the next publication. The daily agent lists are published the same
way under ``REPORTS_DIR/daily/<date>``. Each attempt, passed or not, is recorded in ``meta.publications``.

The reports and the manifest of a month are read in one REPEATABLE READ read-only transaction: a load committed
while they render is in none of them, and the manifest names the loads they rest on (``load_ids``). The gate
(Great Expectations, its own connections) runs just before, under the same warehouse lock (odwh.runlock); the
snapshot must hold the very loads the gate saw, else the month is not published.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from odwh import __version__, pseudonym, warehouse

RELEASES = ".releases"
TEMP_LINK_SUFFIX = ".link"


def reports_dir() -> Path:
    return Path(os.environ.get("REPORTS_DIR") or warehouse.project_dir() / "reports").resolve()


@dataclass
class MonthOutcome:
    month_end: str
    published: bool
    folder: str
    detail: str

    def line(self) -> str:
        month = self.month_end[:7]
        if self.published:
            return f"{month}  published {self.folder} ({self.detail})"
        return f"{month}  NOT PUBLISHED: {self.detail}"


class PublicationError(RuntimeError):
    pass


def month_folder(month_end: date) -> str:
    return f"{month_end:%Y-%m}"


# --- releases: render aside, publish by flipping one symbolic link ----------------------------------------


@dataclass
class Release:
    """A release folder being rendered for ``root/name``; :meth:`publish` makes it the one readers see."""

    root: Path
    name: str
    path: Path
    published: bool = False

    @property
    def link(self) -> Path:
        return self.root / self.name

    def publish(self) -> None:
        previous = _current_release(self.link)
        if self.link.is_dir() and not self.link.is_symlink():  # a folder published before releases existed
            previous = self.path.with_name(f"{self.name}-before-releases-{uuid.uuid4().hex[:6]}")
            self.link.rename(previous)  # once per month: the only moment the path is missing
        flip(self.link, self.path)
        self.published = True
        if previous is not None and previous != self.path:
            shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def staged_release(root: Path, name: str) -> Iterator[Release]:
    """A fresh release folder for ``root/name``; removed on exit unless published. Earlier leftovers of
    ``root`` are cleaned first (callers hold the warehouse lock, so no other publication is under way)."""
    clean_leftovers(root)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    release = Release(root, name, root / RELEASES / f"{name}-{stamp}")
    release.path.mkdir(parents=True)
    try:
        yield release
    finally:
        if not release.published:
            shutil.rmtree(release.path, ignore_errors=True)


def flip(link: Path, release: Path) -> None:
    """Point ``link`` at ``release`` in one atomic rename (a relative target: the folder may be moved)."""
    temp = link.with_name(f".{link.name}.{uuid.uuid4().hex[:8]}{TEMP_LINK_SUFFIX}")
    temp.symlink_to(release.relative_to(link.parent))
    os.replace(temp, link)
    _fsync_dir(link.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _current_release(link: Path) -> Path | None:
    if not link.is_symlink():
        return None
    return link.parent / os.readlink(link)


def clean_leftovers(root: Path) -> list[Path]:
    """Remove what an interrupted publication left in ``root``: releases no link points to, temporary links,
    and the ``.partial`` / ``.old`` folders of the publication before releases. Returns what was removed."""
    if not root.is_dir():
        return []
    published = [entry for entry in root.iterdir() if not entry.name.startswith(".")]  # not a temporary link
    in_use = {target.resolve() for entry in published if (target := _current_release(entry))}
    releases = root / RELEASES
    stale = [p for p in releases.iterdir() if p.resolve() not in in_use] if releases.is_dir() else []
    stale += [
        p
        for p in root.glob(".*")
        if p.name.endswith((TEMP_LINK_SUFFIX, ".partial", ".old")) and p.name != RELEASES
    ]
    for path in stale:
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)
    return stale


@contextmanager
def snapshot(warehouse_url: str) -> Iterator[psycopg.Connection]:
    """One REPEATABLE READ, read-only transaction: every query in the block reads the same snapshot, taken by
    the block's first statement."""
    with psycopg.connect(warehouse_url) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            yield conn


# --- the month-end close ------------------------------------------------------------------------------------


def close_month(
    warehouse_url: str, month_end: date, *, out_root: Path | None = None, loads_through: int | None = None
) -> MonthOutcome:
    """Gate the month's marts and, if they pass, publish every report for it.

    ``loads_through``: the newest load the marts were built from (``pipeline.build_month_end``); recorded with
    the verdict, it tells which data the verdict covers (``pipeline.MONTHS_READY_SQL``). Without it, the newest
    load now.
    """
    from odwh import gate, pipeline

    if loads_through is None:
        loads_through = pipeline.newest_load_id(warehouse_url)
    out_root = out_root or reports_dir()
    out_root.mkdir(parents=True, exist_ok=True)
    with staged_release(out_root, month_folder(month_end)) as release:
        with psycopg.connect(warehouse_url) as conn:
            gated_loads = load_ids(conn, month_end)
        result = gate.run_gate(
            warehouse_url, month_end, release.path / "data-quality", require_review_list=True
        )
        if not result.passed:
            _record(warehouse_url, month_end, False, {"gate": result.to_json()}, loads_through)
            failed = "; ".join(f.describe() for f in result.failures[:5])
            return MonthOutcome(month_end.isoformat(), False, "", f"quality gate failed: {failed}")
        manifest = render_release(warehouse_url, month_end, result.to_json(), release.path, gated_loads)
        release.publish()
        _record(warehouse_url, month_end, True, manifest, loads_through)
        stats = result.statistics
        return MonthOutcome(
            month_end.isoformat(),
            True,
            str(release.link),
            f"gate passed {stats.get('successful', '?')}/{stats.get('evaluated', '?')}",
        )


def render_release(
    warehouse_url: str, month_end: date, gate: dict[str, Any], folder: Path, gated_loads: list[int]
) -> dict[str, Any]:
    """Render the month's reports and manifest into ``folder`` from one snapshot holding ``gated_loads``."""
    from odwh import publish

    with snapshot(warehouse_url) as conn:
        used = load_ids(conn, month_end)  # the first statement: it fixes the snapshot every report reads
        if used != gated_loads:
            raise PublicationError(
                f"the loads changed while the gate ran ({len(gated_loads)} gated, {len(used)} now):"
                " not published, run again"
            )
        files = publish.render_month(publish.load_month(conn, month_end), folder)
        manifest = publication_manifest(conn, month_end, gate, folder, files)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def load_ids(conn: psycopg.Connection, month_end: date) -> list[int]:
    """The current loads (one per business date) a month end's figures rest on: every date up to it."""
    rows = conn.execute(
        "select load_id from meta.loads where superseded_at is null and business_date <= %s order by 1",
        (month_end,),
    )
    return [load_id for (load_id,) in rows]


def _record(
    warehouse_url: str, month_end: date, passed: bool, manifest: dict[str, Any], loads_through: int
) -> None:
    with psycopg.connect(warehouse_url) as conn:
        conn.execute(
            "insert into meta.publications (month_end, gate_passed, manifest, loads_through)"
            " values (%s, %s, %s, %s)",
            (month_end, passed, json.dumps(manifest, default=str), loads_through),
        )
        conn.commit()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publication_manifest(
    conn: psycopg.Connection, month_end: date, gate: dict[str, Any], folder: Path, files: list[Path]
) -> dict[str, Any]:
    """What was published, from which extracts and parameter versions, and the gate's verdict."""
    extracts = [
        {"business_date": d.isoformat(), "manifest_sha256": sha, "load_id": load_id, "files": files_}
        for d, sha, load_id, files_ in conn.execute(
            """
            select l.business_date, l.manifest_sha256, l.load_id,
                   jsonb_object_agg(f.file_name, jsonb_build_object('sha256', f.sha256, 'rows', f.rows))
            from meta.loads l join meta.load_files f using (load_id)
            where l.superseded_at is null and l.business_date <= %s
            group by 1, 2, 3 order by 1
            """,
            (month_end,),
        )
    ]
    return {
        "month_end": month_end.isoformat(),
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_ids": load_ids(conn, month_end),
        "pseudonym_key_id": pseudonym.key_id(),
        "odwh_version": __version__,
        "quality_gate": gate,
        "parameter_versions": _parameter_versions(conn, month_end),
        "extracts": extracts,
        "files": {
            str(p.relative_to(folder)): {"sha256": _sha256(p), "bytes": p.stat().st_size}
            for p in sorted(files)
            if p.is_file()
        },
    }


def _parameter_versions(conn: psycopg.Connection, month_end: date) -> dict[str, Any]:
    """Every policy parameter and NBC grading rule version in force on any day of the month (rulebook L: a
    change effective mid-month adds a version), as the models read them (seed defaults and recorded changes)."""
    month = {"start": month_end.replace(day=1), "end": month_end}
    params = conn.execute(
        """
        select parameter_name, parameter_version, coalesce(value::text, value_text),
               origin, recorded_by, reason, effective_from, nullif(effective_to, 'infinity')
        from intermediate.int_policy__parameter_versions
        where effective_from <= %(end)s and effective_to > %(start)s
        order by parameter_name, effective_from
        """,
        month,
    ).fetchall()
    grading = conn.execute(
        """
        select term_class, grade, grading_version, provision_rate::text,
               origin, recorded_by, reason, effective_from, nullif(effective_to, 'infinity')
        from intermediate.int_policy__nbc_grading_rule_versions
        where effective_from <= %(end)s and effective_to > %(start)s
        order by term_class, grade_order, effective_from
        """,
        month,
    ).fetchall()
    policy_parameters: dict[str, list[dict[str, Any]]] = {}
    for name, version, value, *provenance in params:
        policy_parameters.setdefault(name, []).append(
            {"version": version, "value": value, **_provenance(provenance)}
        )
    return {
        "policy_parameters": policy_parameters,
        "nbc_grading_rules": [
            {"term_class": t, "grade": g, "version": v, "provision_rate": r, **_provenance(provenance)}
            for t, g, v, r, *provenance in grading
        ],
    }


def _provenance(row: list[Any]) -> dict[str, Any]:
    origin, recorded_by, reason, effective_from, effective_to = row
    return {
        "effective_from": str(effective_from),
        "effective_to": None if effective_to is None else str(effective_to),
        "origin": origin,
        "recorded_by": recorded_by,
        "reason": reason,
    }


def outcome_json(outcomes: list[MonthOutcome]) -> list[dict[str, Any]]:
    return [asdict(o) for o in outcomes]
