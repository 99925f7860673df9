"""Receiving a delivery: its archive copy, verified against its manifest (``odwh.landing``), before the door
stages it (``odwh.pipeline.ingest``).

The verification reads every byte in Python (sha256, rows, field counts, control totals): one core's work. While
the door COPYs one date into quarantine (PostgreSQL, the other core), :func:`one_ahead` has the next date received
in a helper process (``python -m odwh.receiving``, one JSON line per date each way): a thread would share the
interpreter's lock with the COPY and gain little, and ``multiprocessing`` would import the caller's main module.
The helper also compares each snapshot's lines with the date before's (``odwh.snapshot_lines``, decision 0069).
"""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

from odwh import contract, landing, module_command
from odwh.snapshot_lines import COMPARED_FILES, LineChanges, SnapshotLines

ARCHIVE_FAILED = (
    "could not archive the delivery, so nothing of it was loaded: free space or fix the folder and run again"
)
TAMPERED_ARCHIVE = (
    "the archive copy of this delivery no longer matches its manifest (changed after it was archived); it is"
    " kept as it is for investigation: move it aside and rerun to archive the delivery again"
)


@dataclass(frozen=True)
class Received:
    """A delivery archived and compared with its manifest: ``problems`` is empty when it matches."""

    archived: Path
    problems: list[str]
    # per snapshot file, its lines against the date before's (received by the helper only; None: not comparable)
    lines: dict[str, LineChanges | None] = field(default_factory=dict)

    def manifest(self) -> contract.Manifest:
        return landing.read_manifest(self.archived)


def receive(delivery: landing.Delivery, archive_root: Path) -> Received:
    """Archive ``delivery`` under ``archive_root`` and verify the copy against its manifest."""
    try:
        archived = landing.archive_delivery(delivery, archive_root)
        landing.read_manifest(archived)
    except landing.LandingError as exc:
        return Received(archive_root, [str(exc)])
    except OSError as exc:  # e.g. a full disk: nothing of the copy is left (archive_delivery), nothing loaded
        return Received(archive_root, [f"{archive_root}: {ARCHIVE_FAILED} ({exc.strerror or exc})"])
    problems = [str(p) for p in landing.verify_manifest(archived)]
    if problems and not landing.verify_manifest(delivery.path):  # the delivery is sound, its archive is not
        problems.insert(0, f"{archived}: {TAMPERED_ARCHIVE}")
    return Received(archived, problems)


@contextmanager
def one_ahead(pending: list[landing.Delivery], archive_root: Path) -> Iterator[Callable[[int], Received]]:
    """``receive(i)``, to be called for i = 0, 1, ... in order: :func:`receive` of ``pending[i]``. With two or
    more local dates, the next one is received by a helper process while the caller works on this one; a date
    after a refused one is never touched. Remote storage is received here (its client lives in this process)."""
    if len(pending) < 2 or any(landing.local_path(d.path) is None for d in pending):
        yield lambda i: receive(pending[i], archive_root)
        return
    with _Helper() as helper:
        helper.ask(pending[0], archive_root)

        def receive_in_order(i: int) -> Received:
            received = helper.answer()
            if not received.problems and i + 1 < len(pending):
                helper.ask(pending[i + 1], archive_root)
            return received

        yield receive_in_order


class _Helper:
    """``python -m odwh.receiving`` as a child process: a request line in, a :class:`Received` line out."""

    def __enter__(self) -> _Helper:
        argv, env = module_command("odwh.receiving")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the helper finishes the date it is on (an archive is never half written)
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def ask(self, delivery: landing.Delivery, archive_root: Path) -> None:
        request = {
            "business_date": delivery.business_date.isoformat(),
            "path": str(delivery.path),
            "manifest_sha256": delivery.manifest_sha256,
            "archive_root": str(archive_root),
        }
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def answer(self) -> Received:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the receiving helper process ended (exit code {self.process.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the receiving helper process failed:\n{reply['error']}")
        lines = {
            name: None if changes is None else LineChanges.from_json(changes)
            for name, changes in reply["lines"].items()
        }
        return Received(Path(reply["archived"]), reply["problems"], lines)


def compare_lines(received: Received, snapshots: dict[str, SnapshotLines]) -> dict[str, LineChanges | None]:
    """Each delivered snapshot of a received date against its lines of the date before (``snapshots``, one per
    file, advanced date after date); the archive copy's bytes, which matched the manifest."""
    manifest = received.manifest()
    business_date = date.fromisoformat(manifest.business_date)
    compared: dict[str, LineChanges | None] = {}
    for f in COMPARED_FILES:
        entry = manifest.files.get(f.name)
        path = received.archived / f.name
        tracker = snapshots.setdefault(f.name, SnapshotLines(f))
        if entry is None or not path.exists():
            tracker.advance(business_date, b"", -1)  # not comparable: the next date starts again
            continue
        compared[f.name] = tracker.advance(business_date, path.read_bytes(), entry.rows)
    return compared


def _serve(requests: IO[str], replies: IO[str]) -> None:
    snapshots: dict[str, SnapshotLines] = {}
    for line in requests:
        request = json.loads(line)
        delivery = landing.Delivery(
            date.fromisoformat(request["business_date"]), Path(request["path"]), request["manifest_sha256"]
        )
        try:
            received = receive(delivery, Path(request["archive_root"]))
            lines = {} if received.problems else compare_lines(received, snapshots)
            reply: dict[str, object] = {
                "archived": str(received.archived),
                "problems": received.problems,
                "lines": {name: None if c is None else c.to_json() for name, c in lines.items()},
            }
        except Exception:  # reported to the door, which raises it
            reply = {"error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
