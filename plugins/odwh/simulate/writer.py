"""Writing one business-date folder: contract files with their headers, then ``_manifest.json`` last."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from odwh import contract
from odwh.simulate.money import fmt_cents


@dataclass(frozen=True)
class StaticFile:
    data: bytes
    rows: int
    sha256: str

    @classmethod
    def of(cls, name: str, body: str, rows: int) -> StaticFile:
        if contract.FILES_BY_NAME[name].control_total:
            raise ValueError(f"{name} has a control total; write it with DayFolder.write")
        data = (",".join(contract.FILES_BY_NAME[name].column_names) + "\n" + body).encode()
        return cls(data, rows, hashlib.sha256(data).hexdigest())


class DayFolder:
    """``out/YYYY-MM-DD/``. Anything a previous delivery left there is removed first (manifest first), so a
    crash leaves an incomplete folder (no manifest), never a stale one."""

    def __init__(self, out: Path, business_date: str) -> None:
        self.path = out / business_date
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / contract.MANIFEST_NAME).unlink(missing_ok=True)
        for spec in contract.FILES:
            (self.path / spec.name).unlink(missing_ok=True)
        self.manifest = contract.Manifest(business_date)

    def write(self, name: str, body: str, rows: int, control_cents: int | None = None) -> None:
        """Write ``name`` (header from the contract, then ``body``) and record it for the manifest."""
        spec = contract.FILES_BY_NAME[name]
        data = (",".join(spec.column_names) + "\n" + body).encode()
        (self.path / name).write_bytes(data)
        total = fmt_cents(control_cents or 0) if spec.control_total else None
        self.manifest.files[name] = contract.ManifestEntry(rows, hashlib.sha256(data).hexdigest(), total)

    def write_static(self, name: str, static: StaticFile) -> None:
        """A file that does not change during the run: bytes and hash computed once."""
        (self.path / name).write_bytes(static.data)
        self.manifest.files[name] = contract.ManifestEntry(static.rows, static.sha256)

    def close(self) -> None:
        ordered = {
            f.name: self.manifest.files[f.name] for f in contract.FILES if f.name in self.manifest.files
        }
        self.manifest.files = ordered
        tmp = self.path / (contract.MANIFEST_NAME + ".tmp")
        tmp.write_text(json.dumps(self.manifest.to_json(), indent=2) + "\n")
        os.replace(tmp, self.path / contract.MANIFEST_NAME)
