"""Landing: finding complete delivery folders, reading and verifying manifests, archiving deliveries.

A delivery is ``<landing>/<YYYY-MM-DD>/`` holding the extract files and ``_manifest.json``, which the core
system writes last: a folder without it is still being written and is ignored, not an error.

The landing location is a local path, a ``file://`` URL, or any URL Airflow's ``ObjectStoragePath`` serves
(``sftp://conn_id@/dir``, ``s3://conn_id@bucket/dir``; the provider must be installed). Airflow is imported
only for URLs, so plain paths work without it. Verification and loading read a local, immutable archive copy
(:func:`archive_delivery`), so a re-delivery arriving mid-load cannot change what is being loaded.

Row numbers are 1-based data rows (the header is row 0), as ``raw.<table>._row_number`` stores them.

Only regular files are read: a symbolic link, FIFO, device, socket or folder inside a delivery is refused
without being followed or opened for reading (``lstat`` then ``O_NOFOLLOW | O_NONBLOCK``), manifests are capped
at MAX_MANIFEST_BYTES and lines at MAX_LINE_BYTES, and every file is read a block of whole lines at a time
(memory flat in its size). docs/reliability.md lists each refusal and the test that proves it.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from functools import reduce
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, Protocol

from odwh import contract

if TYPE_CHECKING:
    from _csv import Reader

    import numpy as np

log = logging.getLogger(__name__)

MAX_ROWS_LISTED = 20  # per file and rule: a million bad rows still make a readable report
DECIMAL_PATTERN = r"^-?[0-9]+(?:\.[0-9]+)?$"  # plain decimal: no exponent, no thousands separator, no NaN
_DECIMAL = re.compile(DECIMAL_PATTERN)
_DECIMAL_BYTES = re.compile(DECIMAL_PATTERN.encode())
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)  # control totals are exact sums, never rounded
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 1 << 20  # 13 files listed take ~2 KB
MAX_LINE_BYTES = 1 << 16  # a contract row is a few hundred bytes; a file with no newline stops here
INTERNAL_COLUMNS = ("_business_date", "_load_id", "_row_number")  # odwh's own columns in raw

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
RULE_REGULAR_FILE = "a regular file (no symbolic link, folder, FIFO, device or socket)"
RULE_MANIFEST_SIZE = f"manifest at most {MAX_MANIFEST_BYTES} bytes"
RULE_MANIFEST_UNIQUE = "no name repeated in the manifest (a file listed twice)"
RULE_LINE_LENGTH = f"line at most {MAX_LINE_BYTES} bytes"
RULE_NO_BOM = "UTF-8 without a byte order mark"
RULE_LF = "lines end with \\n, not \\r\\n"
RULE_NO_NUL = "no NUL byte"
RULE_HEADER_NAMES = "header names present and unique"
RULE_HEADER_RESERVED = f"no column named like odwh's own ({', '.join(INTERNAL_COLUMNS)})"
RULE_KEY_TRIMMED = "key without leading or trailing whitespace"
RULE_SNAPSHOT_ROWS = "snapshot file has data rows (the full current state)"


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


class RefusedInput(LandingError):
    """A file refused before its content is parsed (not a regular file, too large, a line too long)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


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
        linked = _is_link(entry)  # listed, never followed: archive_delivery refuses it with a reason
        if entry.name.startswith(".") or not (linked or entry.is_dir()):
            continue
        business_date = parse_business_date(entry.name)
        if business_date is None:
            log.warning("%s: ignored, not a business-date folder (YYYY-MM-DD)", entry)
            continue
        manifest = entry / contract.MANIFEST_NAME
        if not linked and not _present(manifest):
            log.info("%s: no %s yet, delivery incomplete: skipped", entry, contract.MANIFEST_NAME)
            continue
        try:
            sha = hashlib.sha256(read_manifest_bytes(entry)).hexdigest()
        except LandingError:  # refused with the reason when archived; an empty hash matches no load
            sha = ""
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
    content = read_manifest_bytes(folder)
    try:
        data = json.loads(content, object_pairs_hook=_unique_keys)
    except _RepeatedKey as exc:
        raise LandingError(f"{label}: {RULE_MANIFEST_UNIQUE} ({exc.args[0]!r} appears twice)") from exc
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
    source = str(data.get("source", ""))
    return contract.Manifest(business_date=data["business_date"], files=entries, source=source)


class _RepeatedKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json`` keeps the last of two equal keys; a manifest listing a file twice is ambiguous: refused."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def read_manifest_bytes(folder: StoragePath) -> bytes:
    """The manifest's bytes: a regular file of at most MAX_MANIFEST_BYTES (a FIFO must not block the run)."""
    day = folder_business_date(folder).isoformat()
    label = f"{day}/{contract.MANIFEST_NAME}"
    if _is_link(folder):
        raise RefusedInput(Problem(day, None, None, RULE_REGULAR_FILE, "the folder is a symbolic link"))
    if not _present(folder / contract.MANIFEST_NAME):
        raise LandingError(f"{label}: missing, the delivery is incomplete")
    with open_regular(folder / contract.MANIFEST_NAME, label) as fh:
        content = fh.read(MAX_MANIFEST_BYTES + 1)
    if len(content) > MAX_MANIFEST_BYTES:
        raise RefusedInput(Problem(label, None, None, RULE_MANIFEST_SIZE, "the file is larger"))
    return bytes(content)


# --- reading only regular files, line by line ----------------------------------------------------------------


def local_path(path: StoragePath) -> Path | None:
    """The local path behind ``path`` (a Path or a ``file://`` ObjectStoragePath); None for remote storage,
    which has no links or special files to refuse."""
    if isinstance(path, Path):
        return path
    if getattr(path, "protocol", None) in ("file", "local"):
        return Path(str(path.path))  # type: ignore[attr-defined]
    return None


def _is_link(path: StoragePath) -> bool:
    local = local_path(path)
    return local is not None and local.is_symlink()


def _present(path: StoragePath) -> bool:
    """Exists, without following a final symbolic link (a dangling link is present, and refused)."""
    local = local_path(path)
    return os.path.lexists(local) if local is not None else path.exists()


_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: StoragePath, label: str) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file; LandingError naming ``label`` and the rule otherwise.

    ``lstat`` names what the entry is without touching it; ``O_NOFOLLOW`` and ``fstat`` on the opened
    descriptor close the window where it could be swapped for a link; ``O_NONBLOCK`` lets a FIFO be opened
    (and refused) without waiting for a writer.
    """
    local = local_path(path)
    if local is None:
        return path.open("rb")
    mode = os.lstat(local).st_mode
    if stat.S_ISREG(mode):
        try:
            fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO):
                raise
            mode = 0  # swapped for a link or a socket since lstat
        else:
            mode = os.fstat(fd).st_mode
            if stat.S_ISREG(mode):
                os.set_blocking(fd, True)
                return os.fdopen(fd, "rb")
            os.close(fd)
    raise RefusedInput(Problem(label, None, None, RULE_REGULAR_FILE, _kind(mode)))


def bounded_lines(raw: IO[bytes], label: str, first_row: int = 0) -> Iterator[bytes]:
    """The file's lines, each read with a bound: a line over MAX_LINE_BYTES is a LandingError, never read
    whole. ``first_row`` numbers the first line for the message."""
    for row, line in enumerate(iter(lambda: raw.readline(MAX_LINE_BYTES + 1), b""), start=first_row):
        if len(line) > MAX_LINE_BYTES:
            raise RefusedInput(Problem(label, row, None, RULE_LINE_LENGTH, "the line is longer"))
        yield line


def read_header(path: StoragePath, label: str) -> list[str]:
    """The header row of a regular file, read line-bounded (``[]`` for an empty file)."""
    with open_regular(path, label) as raw:
        lines = (line.decode("utf-8") for line in bounded_lines(raw, label))
        return next(csv.reader(lines, strict=True), [])


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


def scan_csv(path: StoragePath, label: str, spec: contract.ExtractFile | None = None) -> FileFacts:
    """sha256 of the bytes, data rows, and the exact Decimal sum of the file's control-total column (empty =
    null, skipped), a block of whole lines at a time: never the whole file, nor a whole over-long line, in memory.

    Also refuses what would load wrongly: a byte order mark, CRLF line ends, a NUL byte, an over-long line,
    empty, repeated or reserved header names, rows whose field count differs from the header, keys with
    surrounding whitespace, and a snapshot file without data rows. Byte-level faults and header faults stop
    the parse (one problem says it all); the hash still covers every byte.
    """
    scan = _CsvScan(label, spec)
    try:
        with open_regular(path, label) as raw:
            scan.run(raw)
    except RefusedInput as exc:  # not a regular file: nothing was read
        scan.problems.append(exc.problem)
    return scan.facts()


class _Stop(Exception):
    """A fault after which the rest of the file cannot be parsed meaningfully."""


class _CsvScan:
    def __init__(self, label: str, spec: contract.ExtractFile | None) -> None:
        self.label, self.spec = label, spec
        self.control_column = spec.control_total if spec else None
        self.digest = hashlib.sha256()
        self.problems: list[Problem] = []
        self.row = 0  # the record being read (header = 0): lines are attributed to it
        self.rows = 0
        self.total = Decimal(0)
        self.bad_rows = _RowCollector(label, None, RULE_FIELD_COUNT)
        self.bad_numbers = _RowCollector(label, self.control_column, "decimal number (control total column)")
        self.untrimmed = (
            {key: _RowCollector(label, key, RULE_KEY_TRIMMED) for key in spec.key} if spec else {}
        )
        # set once the header is read: what the block-at-once path (_whole_lines) checks
        self.width = 0
        self.keys_at: dict[str, int] = {}
        self.control_at: int | None = None
        # lines handed to csv, and csv's line count after its last whole record: equal when csv stands between
        # two records, where a block's remaining lines may be checked at once
        self.lines_given = 0
        self.lines_done = 0

    def run(self, raw: IO[bytes]) -> None:
        lines = self._lines(raw)
        try:
            reader = csv.reader(lines, strict=True)
            header = next(reader, None)
            if header is None:
                self._fault(RULE_UTF8_CSV, "the file is empty: no header row")
            self.lines_done = reader.line_num
            self._check_header(header)
            self._read_rows(reader, header)
        except _Stop:
            pass
        except (UnicodeDecodeError, csv.Error) as exc:
            self.problems.append(Problem(self.label, self.row, None, RULE_UTF8_CSV, str(exc)))
        lines.close()  # hashes the rest of the block it was reading, before the rest of the file
        for chunk in iter(lambda: raw.read(_CHUNK), b""):  # hash whatever the parser did not reach
            self.digest.update(chunk)

    def facts(self) -> FileFacts:
        collected = [self.bad_rows, self.bad_numbers, *self.untrimmed.values()]
        problems = self.problems + [p for c in collected for p in c.problems()]
        return FileFacts(
            self.rows, self.digest.hexdigest(), self.total if self.control_column else None, problems
        )

    def _fault(self, rule: str, detail: str = "") -> NoReturn:
        self.problems.append(Problem(self.label, self.row, None, rule, detail))
        raise _Stop

    def _lines(self, raw: IO[bytes]) -> Generator[str, None, None]:
        """Text lines for ``csv`` while hashing the exact bytes, a block of whole lines at a time: a block without
        any byte-level fault is hashed, decoded and split at once (in C); one with a fault, or not UTF-8, is read
        line by line, so the fault names its row. Splitting on b"\\n" is safe in UTF-8."""
        first = True
        while block := raw.read(_CHUNK):
            if not block.endswith(b"\n"):  # complete the last line (a line too long shows in the block)
                block += raw.readline(MAX_LINE_BYTES + 1)
            text = self._clean_text(block, first)
            if text is None:
                yield from self._checked_lines(io.BytesIO(block), first)
            else:
                self.digest.update(block)
                yield from self._clean_lines(block, text)
            first = False

    def _clean_lines(self, block: bytes, text: str) -> Iterator[str]:
        """A clean block's lines for ``csv``, until csv stands between two records: from there the rest of the
        block is checked at once (:meth:`_whole_lines`), or, when a line of it needs csv's own reading, handed
        to csv line by line as before."""
        offset, tried = 0, False
        for line in io.StringIO(text, newline="\n"):  # lines end at "\n" alone, as in the bytes
            if not tried and self.width > 1 and self.lines_given == self.lines_done:
                tried = True
                if self._whole_lines(block[offset:]):
                    return
            end = block.find(b"\n", offset)
            offset = len(block) if end < 0 else end + 1
            self.lines_given += 1
            yield line

    @staticmethod
    def _clean_text(block: bytes, first: bool) -> str | None:
        """The block decoded when no line of it breaks a byte-level rule, else None."""
        if (first and block.startswith(b"\xef\xbb\xbf")) or b"\0" in block or b"\r\n" in block:
            return None
        if max(map(len, block.split(b"\n"))) >= MAX_LINE_BYTES:  # the line-by-line reader decides
            return None
        try:
            return block.decode("utf-8")
        except UnicodeDecodeError:
            return None

    def _checked_lines(self, block: IO[bytes], first: bool) -> Iterator[str]:
        """One block line by line, each line checked and hashed as it is read; whatever is left unread when the
        parse stops is hashed on closing."""
        try:
            while line := block.readline(MAX_LINE_BYTES + 1):
                self.digest.update(line)
                if len(line) > MAX_LINE_BYTES:
                    self._fault(RULE_LINE_LENGTH, "the line is longer")
                if first and line.startswith(b"\xef\xbb\xbf"):
                    self._fault(RULE_NO_BOM, "the file starts with EF BB BF")
                first = False
                if b"\0" in line:
                    self._fault(RULE_NO_NUL)
                if line.endswith(b"\r\n"):
                    self._fault(RULE_LF)
                self.lines_given += 1
                yield line.decode("utf-8")
        finally:
            self.digest.update(block.read())

    def _check_header(self, header: list[str]) -> None:
        for position, name in enumerate(header, start=1):
            if not name.strip():
                self.problems.append(
                    Problem(self.label, 0, None, RULE_HEADER_NAMES, f"column {position} has no name")
                )
            elif header.index(name) < position - 1:
                self.problems.append(Problem(self.label, 0, name, RULE_HEADER_NAMES, "repeated"))
            elif name in INTERNAL_COLUMNS:
                self.problems.append(Problem(self.label, 0, name, RULE_HEADER_RESERVED))
        if self.problems:
            raise _Stop

    def _read_rows(self, reader: Reader, header: list[str]) -> None:
        column = self.control_column
        column_at = header.index(column) if column in header else None
        if column and column_at is None:
            self.problems.append(
                Problem(self.label, None, column, RULE_CONTROL_TOTAL, "column not in the header")
            )
        keys_at = {key: header.index(key) for key in self.untrimmed if key in header}
        self.width, self.keys_at, self.control_at = len(header), keys_at, column_at
        self.row = 1
        for record in reader:  # the rows _whole_lines checks at once are counted there
            self.rows += 1
            self.lines_done = reader.line_num
            if len(record) != len(header):
                self.bad_rows.add(self.rows, f"{len(record)} fields, the header has {len(header)}")
            else:
                for key, at in keys_at.items():
                    if record[at] != record[at].strip():
                        self.untrimmed[key].add(self.rows, f"value {record[at]!r}")
                if column_at is not None and (value := record[column_at]):
                    if _DECIMAL.match(value):
                        self.total = _EXACT.add(self.total, Decimal(value))
                    else:
                        self.bad_numbers.add(self.rows, f"value {value!r}")
            self.row = self.rows + 1
        if self.spec and self.spec.kind == "snapshot" and not self.spec.may_be_empty and self.rows == 0:
            self.problems.append(Problem(self.label, None, None, RULE_SNAPSHOT_ROWS, "header only"))

    def _whole_lines(self, lines: bytes) -> bool:
        """Check whole lines of a clean block at once, as csv would read them line by line, and count them:
        True when every line is one sound record (the rows, keys and control total as :meth:`_read_rows`
        counts them), False, counting nothing, when any line needs csv's own reading or breaks a rule, so that
        csv reads them and names the row. A line without a quote is a record of the fields between its commas
        (what csv reads there); a line with one is read by csv alone and must be one record (a quoted newline
        is not). Four times faster than csv over the whole file, which a date's manifest pass spends most of
        its time in (docs/performance.md, "The manifest pass")."""
        import numpy as np  # here, not at the top: the DAG files import this module

        if b"\r" in lines:  # csv ends a record there too: its own reading decides
            return False
        data = np.frombuffer(lines, np.uint8)
        ends = np.flatnonzero(data == ord("\n"))
        if not lines.endswith(b"\n"):  # the file's last line, without its newline
            ends = np.append(ends, len(lines))
        count = len(ends)
        if count == 0:
            return True
        starts = np.concatenate(([0], ends[:-1] + 1))
        commas = np.flatnonzero(data == ord(","))
        line_of_comma = np.searchsorted(ends, commas)
        quoted = np.zeros(count, bool)
        quoted[np.searchsorted(ends, np.flatnonzero(data == ord('"')))] = True
        plain = ~quoted
        if not (np.bincount(line_of_comma, minlength=count)[plain] == self.width - 1).all():
            return False
        fields = _Fields(starts[plain], ends[plain], commas[plain[line_of_comma]].reshape(-1, self.width - 1))
        total = self.total
        for at in self.keys_at.values():
            if fields.untrimmed(data, at):
                return False
        if self.control_at is not None:
            values = fields.values(lines, self.control_at)
            if not all(map(_DECIMAL_BYTES.match, values)):
                return False
            if values:
                total = reduce(_EXACT.add, map(Decimal, b"\n".join(values).decode().split("\n")), total)
        if quoted.any():
            texts = [
                lines[a:b].decode()
                for a, b in zip(starts[quoted].tolist(), ends[quoted].tolist(), strict=True)
            ]
            read = self._quoted_lines(texts)
            if read is None:
                return False
            total = _EXACT.add(total, read)
        self.rows += count
        self.row = self.rows + 1
        self.total = total
        return True

    def _quoted_lines(self, texts: list[str]) -> Decimal | None:
        """The control column's sum over lines that csv reads (each must be one sound record), else None."""
        try:
            records = list(csv.reader(texts, strict=True))
        except csv.Error:
            return None
        if len(records) != len(texts):  # a quoted newline: one record over two lines
            return None
        total = Decimal(0)
        for record in records:
            if len(record) != self.width or any(
                record[at] != record[at].strip() for at in self.keys_at.values()
            ):
                return None
            if self.control_at is not None and (value := record[self.control_at]):
                if not _DECIMAL.match(value):
                    return None
                total = _EXACT.add(total, Decimal(value))
        return total


@dataclass(frozen=True)
class _Fields:
    """Where each field of quote-free lines starts and ends (byte offsets): the lines' starts and ends, and
    their commas, one row of ``width - 1`` per line."""

    starts: np.ndarray
    ends: np.ndarray
    commas: np.ndarray

    def bounds(self, at: int) -> tuple[np.ndarray, np.ndarray]:
        last = self.commas.shape[1]
        return (
            self.starts if at == 0 else self.commas[:, at - 1] + 1,
            self.ends if at == last else self.commas[:, at],
        )

    def untrimmed(self, data: np.ndarray, at: int) -> bool:
        """Whether a field at ``at`` may start or end with whitespace: any byte up to space, or any non-ASCII byte
        (a UTF-8 space such as U+00A0 starts with one), at either edge; csv then reads the block and decides."""
        import numpy as np

        first, end = self.bounds(at)
        filled = end > first
        edges = np.concatenate((data[first[filled]], data[end[filled] - 1]))
        return bool(((edges <= ord(" ")) | (edges >= 0x80)).any())

    def values(self, lines: bytes, at: int) -> list[bytes]:
        """The non-empty values at ``at`` (an empty one is null, skipped by the control total)."""
        first, end = self.bounds(at)
        return [lines[a:b] for a, b in zip(first.tolist(), end.tolist(), strict=True) if b > a]


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


def verify_manifest(
    folder: str | os.PathLike[str] | StoragePath, scanned: Mapping[str, FileFacts] | None = None
) -> list[Problem]:
    """Compare a complete delivery folder with its manifest; an empty list means it matches.

    Every snapshot file must be present (a missing event file means no events that day), every listed file
    present, every present file listed, and per file the data rows, sha256 and control total must match.
    ``scanned``: files of the folder already scanned (:func:`scan_csv`, by the receiving helper's two
    processes); the others are scanned here.
    """
    folder = location(folder)
    day = folder_business_date(folder).isoformat()
    try:
        manifest = read_manifest(folder)
    except RefusedInput as exc:
        return [exc.problem]
    except LandingError as exc:
        return [Problem(f"{day}/{contract.MANIFEST_NAME}", None, None, RULE_MANIFEST_READABLE, str(exc))]
    present = {p.name for p in folder.iterdir() if p.name != contract.MANIFEST_NAME}
    absent = [f.name for f in contract.SNAPSHOT_FILES if f.name not in present]
    problems = [
        Problem(f"{day}/{name}", None, None, RULE_SNAPSHOT_PRESENT, "a snapshot file is never optional")
        for name in absent
    ]
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
            spec = contract.FILES_BY_NAME[name]
            facts = (scanned or {}).get(name) or scan_csv(folder / name, label, spec)
            problems += _compare(facts, label, spec, manifest.files[name])
    return problems


def _compare(
    facts: FileFacts, label: str, spec: contract.ExtractFile, entry: contract.ManifestEntry
) -> list[Problem]:
    problems = list(facts.problems)
    if any(p.rule == RULE_REGULAR_FILE for p in problems):  # not read at all: nothing to compare
        return problems
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
        detail = f"manifest {entry.control_total}, file {facts.control_total}"
        problems.append(Problem(label, None, spec.control_total, RULE_CONTROL_TOTAL, detail))
    return problems


def archive_delivery(source: Delivery | str | os.PathLike[str] | StoragePath, archive_root: Path) -> Path:
    """Copy a complete delivery into ``archive_root/<date>/<manifest sha256[:16]>/`` and return that folder.

    The copy is written to a temporary folder and renamed into place, so it is complete or absent; an
    existing copy of the same manifest is reused. Files are made read-only for their owner alone (0400 in a
    0500 folder): customer data is no one else's to read. Anything in the delivery that is not a regular file
    refuses the whole delivery (RefusedInput), nothing followed. The manifest bytes hashed are the bytes
    archived; if the files changed meanwhile, ``verify_manifest`` on the copy says so.
    """
    folder = source.path if isinstance(source, Delivery) else location(source)
    business_date = folder_business_date(folder)
    manifest_bytes = read_manifest_bytes(folder)
    sha = hashlib.sha256(manifest_bytes).hexdigest()
    target = archive_root / business_date.isoformat() / sha[:16]
    if target.is_dir():
        return target
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = target.parent / f".tmp-{sha[:16]}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o700)
    try:
        for entry in folder.iterdir():
            if entry.name != contract.MANIFEST_NAME:
                label = f"{business_date.isoformat()}/{entry.name}"
                with open_regular(entry, label) as src, _create_private(staging / entry.name) as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        with _create_private(staging / contract.MANIFEST_NAME) as dst:
            dst.write(manifest_bytes)
        for copied in staging.iterdir():
            copied.chmod(0o400)
        staging.chmod(0o500)
        staging.rename(target)
    except (OSError, LandingError) as exc:
        _remove_tree(staging)
        if isinstance(exc, OSError) and target.is_dir():  # another process archived the same delivery first
            return target
        raise
    return target


def _create_private(path: Path) -> IO[bytes]:
    """A new file only its owner can read and write, whatever the umask."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb")


def _remove_tree(path: Path) -> None:
    if path.exists():
        path.chmod(0o700)
        shutil.rmtree(path)
