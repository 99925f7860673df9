"""The Great Expectations suites, built in code; one module per family (``expectations/suites/<family>/``).

- ``extract_contract``: one suite per extract file, from ``odwh.contract`` (run by ``odwh.validate``);
- ``month_end_gate``: one suite per table the month-end gate checks (run by ``odwh.gate``).

GX plumbing (running, results, export) is ``odwh.gx``. ``odwh expectations`` calls :func:`export_all`.
"""

from __future__ import annotations

from pathlib import Path


def export_all(directory: Path | None = None) -> list[Path]:
    """Write every family's suites as JSON under ``directory`` (default ``expectations/suites``)."""
    from odwh.suites import extract_contract, month_end_gate

    return [*extract_contract.export_suites(directory), *month_end_gate.export_suites(directory)]
