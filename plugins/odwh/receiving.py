"""Receiving a delivery: its archive copy, verified against its manifest (``odwh.landing``), before the door
stages it (``odwh.pipeline.ingest``).

The verification reads every byte in Python (sha256, rows, field counts, control totals). While the door COPYs one
date into quarantine (PostgreSQL), :func:`one_ahead` has the next date received in a helper process (``python -m
odwh.receiving``, one JSON line per date each way): a thread would share the interpreter's lock with the COPY and
gain little, and ``multiprocessing`` would import the caller's main module. The helper also compares each
snapshot's lines with the date before's (``odwh.snapshot_lines``, decision 0069), and shares a date's files with a
second process of its own, forked when it starts (decision 0071): alone it took 0.8 s of a core per date at
100,000 accounts while the door's two COPYs of that date took about half of that, so the door waited for it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.connection import Connection
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


@dataclass(frozen=True)
class Examined:
    """A received date's files read by one or both of the helper's processes (:func:`examine`)."""

    facts: dict[str, landing.FileFacts]  # per file delivered and listed in the manifest: its scan
    lines: dict[str, LineChanges | None]  # per snapshot kept as history delivered: against the date before's


def receive(
    delivery: landing.Delivery, archive_root: Path, examine: Callable[[Path], Examined] | None = None
) -> Received:
    """Archive ``delivery`` under ``archive_root`` and verify the copy against its manifest; ``examine`` (the
    helper's) reads the copy's files first, and its lines compared are kept when the copy matches."""
    try:
        archived = landing.archive_delivery(delivery, archive_root)
        landing.read_manifest(archived)
    except landing.LandingError as exc:
        return Received(archive_root, [str(exc)])
    except OSError as exc:  # e.g. a full disk: nothing of the copy is left (archive_delivery), nothing loaded
        return Received(archive_root, [f"{archive_root}: {ARCHIVE_FAILED} ({exc.strerror or exc})"])
    examined = examine(archived) if examine else None
    problems = [str(p) for p in landing.verify_manifest(archived, examined.facts if examined else None)]
    if problems and not landing.verify_manifest(delivery.path):  # the delivery is sound, its archive is not
        problems.insert(0, f"{archived}: {TAMPERED_ARCHIVE}")
    return Received(archived, problems, examined.lines if examined and not problems else {})


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
        if self.process.stdout is not None:  # its answer read, however long: it must not wait to write it
            self.process.stdout.read()
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
    return examine(received.archived, [f.name for f in COMPARED_FILES], snapshots, scan=False).lines


def examine(
    archived: Path, names: Collection[str], snapshots: dict[str, SnapshotLines], *, scan: bool = True
) -> Examined:
    """The files ``names`` of an archived date: each delivered and listed scanned (``landing.scan_csv``, when
    ``scan``), and each snapshot kept as history compared with its lines of the date before (``snapshots``) once
    its scan matched its manifest entry (without ``scan``, the caller verified the copy)."""
    manifest = landing.read_manifest(archived)
    business_date = date.fromisoformat(manifest.business_date)
    found = Examined({}, {})
    for name in sorted(names):
        spec, entry, path = contract.FILES_BY_NAME[name], manifest.files.get(name), archived / name
        label = f"{business_date.isoformat()}/{name}"
        if entry is None or not path.exists():
            sound = False
        elif scan:
            facts = found.facts[name] = landing.scan_csv(path, label, spec)
            sound = not facts.problems and (facts.rows, facts.sha256) == (entry.rows, entry.sha256)
        else:
            sound = True
        if spec not in COMPARED_FILES:
            continue
        tracker = snapshots.setdefault(name, SnapshotLines(spec))
        if not sound or entry is None:  # not comparable: the next date starts again
            tracker.advance(business_date, b"", -1)
            continue
        with landing.open_regular(path, label) as fh:
            found.lines[name] = tracker.advance(business_date, fh.read(), entry.rows)
    return found


# The files the helper's second process reads, always the same (each compares its snapshots with its own lines of
# the date before): about half of a date's bytes. At 100,000 accounts: the accounts 13.7 MB, the balances 3.6,
# the transactions 1.9, the agent days 1.0 and the deposits 0.7 there; the customers 13.6, the loans 10.6 and the
# small files in the helper itself.
SECOND_PROCESS_FILES = frozenset(
    {"od_accounts.csv", "od_balances.csv", "od_transactions.csv", "agent_liquidity.csv", "fixed_deposits.csv"}
)


class _TwoProcesses:
    """The helper and its second process, forked when the helper starts (one thread: nothing to re-import), each
    examining its share of every date's files at once."""

    def __enter__(self) -> _TwoProcesses:
        context = multiprocessing.get_context("fork")
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_second_process, args=(theirs, self.connection), daemon=True)
        self.process.start()
        theirs.close()
        self.snapshots: dict[str, SnapshotLines] = {}
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()  # the second process ends at the end of its requests
        self.process.join()

    def examine(self, archived: Path) -> Examined:
        self.connection.send(archived)
        try:
            mine = examine(archived, set(contract.FILES_BY_NAME) - SECOND_PROCESS_FILES, self.snapshots)
        finally:  # its reply read whatever happened here: the next date's must not be taken for this one's
            theirs = self._reply()
        return Examined(mine.facts | theirs.facts, mine.lines | theirs.lines)

    def _reply(self) -> Examined:
        try:
            theirs = self.connection.recv()
        except EOFError:
            self.process.join()
            raise RuntimeError(
                f"the receiving helper's second process ended (exit code {self.process.exitcode})"
            ) from None
        if isinstance(theirs, str):
            raise RuntimeError(f"the receiving helper's second process failed:\n{theirs}")
        assert isinstance(theirs, Examined)
        return theirs


def _second_process(connection: Connection, helpers: Connection) -> None:
    helpers.close()  # its copy of the helper's end: the helper's closing must end this process's requests
    # the helper's stdout is the door's reply channel and its stdin the door's requests: not this process's
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    snapshots: dict[str, SnapshotLines] = {}
    while True:
        try:
            archived = connection.recv()
        except EOFError:  # the helper ended (or died): so does this process
            return
        try:
            reply: Examined | str = examine(archived, SECOND_PROCESS_FILES, snapshots)
        except Exception:  # reported by the helper to the door, which raises it
            reply = traceback.format_exc()
        try:
            connection.send(reply)
        except OSError:  # the helper died meanwhile
            return


def _serve(requests: IO[str], replies: IO[str]) -> None:
    with _TwoProcesses() as processes:
        for line in requests:
            request = json.loads(line)
            delivery = landing.Delivery(
                date.fromisoformat(request["business_date"]),
                Path(request["path"]),
                request["manifest_sha256"],
            )
            try:
                received = receive(delivery, Path(request["archive_root"]), processes.examine)
                reply: dict[str, object] = {
                    "archived": str(received.archived),
                    "problems": received.problems,
                    "lines": {name: None if c is None else c.to_json() for name, c in received.lines.items()},
                }
            except Exception:  # reported to the door, which raises it
                reply = {"error": traceback.format_exc()}
            replies.write(json.dumps(reply) + "\n")
            replies.flush()


if __name__ == "__main__":
    _serve(sys.stdin, sys.stdout)
