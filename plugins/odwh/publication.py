"""Closing a month: quality gate, then publish atomically under ``REPORTS_DIR/<YYYY-MM>/``.

Everything is rendered into a hidden sibling folder first; only when the gate passed and every file is written
is it swapped into place, so a failed gate or a crash leaves the previous publication untouched. Each attempt,
passed or not, is recorded in ``meta.publications``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg

from odwh import __version__, warehouse


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


def month_folder(month_end: date) -> str:
    return f"{month_end:%Y-%m}"


def close_month(
    warehouse_url: str, month_end: date, *, out_root: Path | None = None, loads_through: int | None = None
) -> MonthOutcome:
    """Gate the month's marts and, if they pass, publish every report for it.

    ``loads_through``: the newest load the marts were built from (``pipeline.build_month_end``); recorded with
    the verdict, it tells which data the verdict covers (``pipeline.MONTHS_READY_SQL``). Without it, the newest
    load now.
    """
    from odwh import gate, pipeline, publish

    if loads_through is None:
        loads_through = pipeline.newest_load_id(warehouse_url)
    out_root = out_root or reports_dir()
    out_root.mkdir(parents=True, exist_ok=True)
    work = out_root / f".{month_folder(month_end)}.{uuid.uuid4().hex[:8]}.partial"
    try:
        result = gate.run_gate(warehouse_url, month_end, work / "data-quality", require_review_list=True)
        if not result.passed:
            _record(warehouse_url, month_end, False, {"gate": result.to_json()}, loads_through)
            failed = "; ".join(f.describe() for f in result.failures[:5])
            return MonthOutcome(month_end.isoformat(), False, "", f"quality gate failed: {failed}")
        with psycopg.connect(warehouse_url) as conn:
            files = publish.render_month(publish.load_month(conn, month_end), work)
            manifest = publication_manifest(conn, month_end, result.to_json(), work, files)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        target = out_root / month_folder(month_end)
        _swap_into_place(work, target)
        _record(warehouse_url, month_end, True, manifest, loads_through)
        stats = result.statistics
        return MonthOutcome(
            month_end.isoformat(),
            True,
            str(target),
            f"gate passed {stats.get('successful', '?')}/{stats.get('evaluated', '?')}",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _swap_into_place(new: Path, target: Path) -> None:
    """Replace ``target`` with ``new``; the old folder is removed only once the new one is in place."""
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        target.rename(old)
    try:
        new.rename(target)
    except OSError:
        if old.exists():
            old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
