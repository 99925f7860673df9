"""Landing: finding complete delivery folders, reading and verifying manifests, archiving deliveries.

A delivery is ``<landing>/<YYYY-MM-DD>/`` holding the extract files and ``_manifest.json``, which the core
system writes last: a folder without it is still being written and is ignored, not an error.

The landing location is a local path, a ``file://`` URL, or any URL Airflow's ``ObjectStoragePath`` serves
(``sftp://conn_id@/dir``, ``s3://conn_id@bucket/dir``; the provider must be installed). Airflow is imported
only for URLs, so plain paths work without it. Verification and loading read a local, immutable archive copy
(:func:`archive_delivery`), so a re-delivery arriving mid-load cannot change what is being loaded.

Row numbers are 1-based data rows (the header is row 0), as ``raw.<table>._row_number`` stores them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from odwh import contract

log = logging.getLogger(__name__)

MAX_ROWS_LISTED = 20  # per file and rule: a million bad rows still make a readable report
DECIMAL_PATTERN = r"^-?[0-9]+(?:\.[0-9]+)?$"  # plain decimal: no exponent, no thousands separator, no NaN
_DECIMAL = re.compile(DECIMAL_PATTERN)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHUNK = 1 << 20

RULE_MANIFEST_READABLE = "manifest is valid JSON following the extract contract"
RULE_SNAPSHOT_PRESENT = "snapshot file present"
RULE_LISTED_FILE_PRESENT = "file listed in the manifest present"
RULE_FILE_LISTED = "file listed in the manifest"
RULE_KNOWN_FILE = "file is part of the extract contract"
RULE_UTF8_CSV = "UTF-8 CSV with a header row"
RULE_FIELD_COUNT = "row has as many fields as the header"
RULE_ROWS = "manifest rows match the file"
RULE_SHA256 = "manifest sha256 matches the file"
RULE_CONTROL_TOTAL = "manifest control total matches the file"


class StoragePath(Protocol):
    """What landing needs from a folder or file: ``pathlib.Path`` and ``ObjectStoragePath`` both fit."""

    @property
    def name(self) -> str: ...
    def __truediv__(self, other: str) -> StoragePath: ...
    def iterdir(self) -> Iterator[Any]: ...
    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def is_file(self) -> bool: ...
    def open(self, mode: str) -> IO[Any]: ...
    def read_bytes(self) -> bytes: ...


class LandingError(ValueError):
    """A delivery that cannot be read at all (bad manifest, folder name not a date, no manifest)."""


@dataclass(frozen=True)
class Problem:
    """One broken rule: ``file`` like ``2026-10-01/od_balances.csv``; ``row`` is the 1-based data row
    (header = row 0) or None when the whole file (or delivery) is at fault."""

    file: str
    row: int | None
    column: str | None
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f"{',' if self.row is not None else ''} column {self.column}"
        return f"{where}: {self.rule}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class Delivery:
    business_date: date
    path: StoragePath
    manifest_sha256: str  # identifies the delivery's content: the manifest holds every file's sha256


def location(where: str | os.PathLike[str] | StoragePath) -> StoragePath:
    """A local path stays a ``Path``; a URL (``file://``, ``sftp://``, ``s3://``...) becomes an ObjectStoragePath."""
    if isinstance(where, str) and "://" in where:
        from airflow.sdk import ObjectStoragePath  # slow import (seconds): only when a URL asks for it

        return ObjectStoragePath(where)
    if isinstance(where, str | os.PathLike):
        return Path(where)
    return where


def parse_business_date(name: str) -> date | None:
    """``2026-10-01`` -> date; anything else (including ``2026-13-01``) -> None."""
    if not _ISO_DATE.match(name):
        return None
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def folder_business_date(folder: StoragePath) -> date:
    """The delivery's business date: the folder's name, or its parent's for an archive copy
    (``<archive>/<date>/<manifest sha256[:16]>/``)."""
    for candidate in (folder, getattr(folder, "parent", None)):
        if candidate is not None and (found := parse_business_date(candidate.name)):
            return found
    raise LandingError(f"{folder}: a delivery folder is named YYYY-MM-DD (or is an archive copy under one)")


def list_deliveries(landing: str | os.PathLike[str] | StoragePath) -> list[Delivery]:
    """Complete delivery folders (those with a manifest) in business-date order."""
    root = location(landing)
    deliveries = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        business_date = parse_business_date(entry.name)
        if business_date is None:
            log.warning("%s: ignored, not a business-date folder (YYYY-MM-DD)", entry)
            continue
        manifest = entry / contract.MANIFEST_NAME
        if not manifest.exists():
            log.info("%s: no %s yet, delivery incomplete: skipped", entry, contract.MANIFEST_NAME)
            continue
        sha = hashlib.sha256(manifest.read_bytes()).hexdigest()
        deliveries.append(Delivery(business_date, entry, sha))
    return sorted(deliveries, key=lambda d: d.business_date)


def missing_dates(deliveries: list[Delivery], since: date | None = None) -> list[date]:
    """Business dates absent between ``since`` (or the first delivery) and the last delivery."""
    delivered = {d.business_date for d in deliveries}
    if not delivered:
        return []
    day, last = since or min(delivered), max(delivered)
    gaps = []
    while day <= last:
        if day not in delivered:
            gaps.append(day)
        day += timedelta(days=1)
    return gaps


def read_manifest(folder: str | os.PathLike[str] | StoragePath) -> contract.Manifest:
    """The folder's manifest; LandingError naming the file and the rule when it does not follow the contract."""
    folder = location(folder)
    business_date = folder_business_date(folder)
    label = f"{business_date.isoformat()}/{contract.MANIFEST_NAME}"
    path = folder / contract.MANIFEST_NAME
    if not path.exists():
        raise LandingError(f"{label}: missing, the delivery is incomplete")
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise LandingError(f"{label}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise LandingError(f"{label}: must be a JSON object")
    if data.get("extract_version") != contract.EXTRACT_VERSION:
        raise LandingError(
            f"{label}: extract_version is {data.get('extract_version')!r}, this pipeline reads version "
            f"{contract.EXTRACT_VERSION}"
        )
    if data.get("business_date") != business_date.isoformat():
        raise LandingError(f"{label}: business_date {data.get('business_date')!r} is not the folder's date")
    files = data.get("files")
    if not isinstance(files, dict):
        raise LandingError(f"{label}: 'files' must be an object of file name -> entry")
    entries = {name: _manifest_entry(label, name, entry) for name, entry in files.items()}
    return contract.Manifest(business_date=data["business_date"], files=entries,
                             source=str(data.get("source", "")))  # fmt: skip


def _manifest_entry(label: str, name: str, entry: object) -> contract.ManifestEntry:
    if not isinstance(entry, dict):
        raise LandingError(f"{label}: entry for {name} must be an object")
    rows, sha, total = entry.get("rows"), entry.get("sha256"), entry.get("control_total")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
        raise LandingError(f"{label}: {name}.rows must be a non-negative integer, got {rows!r}")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha):
        raise LandingError(f"{label}: {name}.sha256 must be 64 hex digits, got {sha!r}")
    if total is not None and (not isinstance(total, str) or not _DECIMAL.match(total)):
        raise LandingError(f"{label}: {name}.control_total must be a decimal string, got {total!r}")
    return contract.ManifestEntry(rows=rows, sha256=sha.lower(), control_total=total)


@dataclass
class FileFacts:
    """What one streaming pass over a CSV learns: the manifest compares these."""

    rows: int
    sha256: str
    control_total: Decimal | None
    problems: list[Problem]


def scan_csv(path: StoragePath, label: str, control_column: str | None) -> FileFacts:
    """sha256 of the bytes, data rows, and the exact Decimal sum of ``control_column`` (empty = null, skipped),
    line by line: never the whole file in memory. Also reports rows whose field count differs from the header."""
    digest = hashlib.sha256()
    problems: list[Problem] = []
    bad_rows = _RowCollector(label, None, RULE_FIELD_COUNT)
    bad_numbers = _RowCollector(label, control_column, "decimal number (control total column)")
    total = Decimal(0)
    rows = 0
    with path.open("rb") as raw:
        lines = _decoded_lines(raw, digest)
        try:
            reader = csv.reader(lines, strict=True)
            header = next(reader, None)
            if header is None:
                problems.append(Problem(label, None, None, RULE_UTF8_CSV, "the file is empty: no header row"))
                return FileFacts(0, digest.hexdigest(), None, problems)
            column_at = header.index(control_column) if control_column in header else None
            if control_column and column_at is None:
                problems.append(
                    Problem(label, None, control_column, RULE_CONTROL_TOTAL, "column not in the header")
                )
            for rows, record in enumerate(reader, start=1):
                if len(record) != len(header):
                    bad_rows.add(rows, f"{len(record)} fields, the header has {len(header)}")
                elif column_at is not None and (value := record[column_at]):
                    if _DECIMAL.match(value):
                        total += Decimal(value)
                    else:
                        bad_numbers.add(rows, f"value {value!r}")
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(Problem(label, rows + 1, None, RULE_UTF8_CSV, str(exc)))
        for chunk in iter(lambda: raw.read(_CHUNK), b""):  # hash whatever the parser did not reach
            digest.update(chunk)
    problems += bad_rows.problems() + bad_numbers.problems()
    return FileFacts(rows, digest.hexdigest(), total if control_column else None, problems)


def _decoded_lines(raw: IO[bytes], digest: Any) -> Iterator[str]:
    """Text lines for ``csv`` while hashing the exact bytes; splitting on b"\\n" is safe in UTF-8."""
    for line in raw:
        digest.update(line)
        yield line.decode("utf-8")


class _RowCollector:
    """Collects failing rows for one rule: the first MAX_ROWS_LISTED as Problems, then a count."""

    def __init__(self, label: str, column: str | None, rule: str) -> None:
        self.label, self.column, self.rule = label, column, rule
        self.listed: list[Problem] = []
        self.count = 0

    def add(self, row: int, detail: str) -> None:
        self.count += 1
        if len(self.listed) < MAX_ROWS_LISTED:
            self.listed.append(Problem(self.label, row, self.column, self.rule, detail))

    def problems(self) -> list[Problem]:
        return self.listed + overflow_problem(self.label, self.column, self.rule, self.count)


def overflow_problem(label: str, column: str | None, rule: str, count: int) -> list[Problem]:
    """The "and N more" line after the listed rows of one rule (empty when all were listed)."""
    if count <= MAX_ROWS_LISTED:
        return []
    return [Problem(label, None, column, rule, f"{count - MAX_ROWS_LISTED} more rows, {count} in all")]


def verify_manifest(folder: str | os.PathLike[str] | StoragePath) -> list[Problem]:
    """Compare a complete delivery folder with its manifest; an empty list means it matches.

    Every snapshot file must be present (a missing event file means no events that day), every listed file
    present, every present file listed, and per file the data rows, sha256 and control total must match.
    """
    folder = location(folder)
    day = folder_business_date(folder).isoformat()
    try:
        manifest = read_manifest(folder)
    except LandingError as exc:
        return [Problem(f"{day}/{contract.MANIFEST_NAME}", None, None, RULE_MANIFEST_READABLE, str(exc))]
    present = {p.name for p in folder.iterdir() if p.name != contract.MANIFEST_NAME}
    problems = [Problem(f"{day}/{f.name}", None, None, RULE_SNAPSHOT_PRESENT, "a snapshot file is never optional")
                for f in contract.SNAPSHOT_FILES if f.name not in present]  # fmt: skip
    for name in sorted(present | set(manifest.files)):
        label = f"{day}/{name}"
        if name not in contract.FILES_BY_NAME:
            problems.append(Problem(label, None, None, RULE_KNOWN_FILE, "no such file in extract version 1"))
        elif name not in manifest.files:
            problems.append(Problem(label, None, None, RULE_FILE_LISTED, "present but not in _manifest.json"))
        elif name not in present:
            if contract.FILES_BY_NAME[name].kind == "event":  # a snapshot's absence is reported above
                problems.append(
                    Problem(label, None, None, RULE_LISTED_FILE_PRESENT, "listed but not delivered")
                )
        else:
            problems += _compare(folder / name, label, contract.FILES_BY_NAME[name], manifest.files[name])
    return problems


def _compare(
    path: StoragePath, label: str, spec: contract.ExtractFile, entry: contract.ManifestEntry
) -> list[Problem]:
    facts = scan_csv(path, label, spec.control_total)
    problems = facts.problems
    if facts.rows != entry.rows:
        problems.append(Problem(label, None, None, RULE_ROWS, f"manifest {entry.rows}, file {facts.rows}"))
    if facts.sha256 != entry.sha256:
        problems.append(
            Problem(label, None, None, RULE_SHA256, f"manifest {entry.sha256}, file {facts.sha256}")
        )
    if spec.control_total is None:
        if entry.control_total is not None:
            problems.append(
                Problem(label, None, None, RULE_CONTROL_TOTAL, "this file has no control total column")
            )
    elif entry.control_total is None:
        problems.append(
            Problem(label, None, spec.control_total, RULE_CONTROL_TOTAL, "missing in the manifest")
        )
    elif facts.control_total != Decimal(entry.control_total):
        problems.append(Problem(label, None, spec.control_total, RULE_CONTROL_TOTAL,
                                f"manifest {entry.control_total}, file {facts.control_total}"))  # fmt: skip
    return problems


def archive_delivery(source: Delivery | str | os.PathLike[str] | StoragePath, archive_root: Path) -> Path:
    """Copy a complete delivery into ``archive_root/<date>/<manifest sha256[:16]>/`` and return that folder.

    The copy is written to a temporary folder and renamed into place, so it is complete or absent; an
    existing copy of the same manifest is reused. Files and folder are made read-only. The manifest bytes
    hashed are the bytes archived; if the files changed meanwhile, ``verify_manifest`` on the copy says so.
    """
    folder = source.path if isinstance(source, Delivery) else location(source)
    business_date = folder_business_date(folder)
    manifest_path = folder / contract.MANIFEST_NAME
    if not manifest_path.exists():
        raise LandingError(f"{folder}: no {contract.MANIFEST_NAME}, the delivery is incomplete")
    manifest_bytes = manifest_path.read_bytes()
    sha = hashlib.sha256(manifest_bytes).hexdigest()
    target = archive_root / business_date.isoformat() / sha[:16]
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{sha[:16]}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for entry in folder.iterdir():
            if entry.name == contract.MANIFEST_NAME:
                continue
            if not entry.is_file():
                log.warning("%s: not a file, not archived", entry)
                continue
            with entry.open("rb") as src, open(staging / entry.name, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        (staging / contract.MANIFEST_NAME).write_bytes(manifest_bytes)
        for copied in staging.iterdir():
            copied.chmod(0o444)
        staging.chmod(0o555)
        staging.rename(target)
    except OSError:
        _remove_tree(staging)
        if target.is_dir():  # another process archived the same delivery first: theirs is as good
            return target
        raise
    return target


def _remove_tree(path: Path) -> None:
    if path.exists():
        path.chmod(0o755)
        shutil.rmtree(path)
