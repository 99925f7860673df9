"""Publishing a month: review lists, board pack, dashboard (and the daily agent alert lists).

Reads only the ``marts`` schema (see :mod:`odwh.publish.data` for the documented exceptions) and writes only
into the folder it is given; the month-end close (:mod:`odwh.publication`) gates and swaps that folder into
``REPORTS_DIR/<YYYY-MM>/``. Outputs are deterministic for the same marts, except the ``generated_at``
timestamp a caller passes in.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import tempfile
from datetime import datetime
from pathlib import Path

from odwh import module_command
from odwh.publish.agent_alerts import write_agent_alert_lists
from odwh.publish.data import MartMissing, MonthData, load_month

__all__ = ["MartMissing", "MonthData", "load_month", "render_month", "write_agent_alert_lists"]


def render_month(data: MonthData, out_dir: Path, *, generated_at: datetime | None = None) -> list[Path]:
    """Write the month's reports into ``out_dir``; returns the files written.

    ``review-lists/<branch_code>.xlsx`` and ``.csv``, ``board-pack.html``, ``board-pack.pdf``, ``dashboard.html``.
    ``generated_at`` (else ``data.generated_at``) is printed in the pack and dashboard and stamps the workbooks;
    without one the files carry no clock time at all (workbooks are stamped with the month end).

    The board pack and the dashboard are rendered by a second process (``python -m odwh.publish.pack``) while
    this one writes the review lists, largest branch first; once the pack is done, that process writes the
    branches not yet taken (each claims a branch by creating its file in a shared folder). Each is one core's
    Python (WeasyPrint, XlsxWriter), and nothing else runs while a month is published. A command, not
    ``multiprocessing``: that would import the caller's main module again, or fork the locks of its threads
    (Airflow's, Great Expectations').
    """
    if generated_at is not None:
        data = dataclasses.replace(data, generated_at=generated_at)
    from odwh.publish.pack import FILES
    from odwh.publish.review_lists import claimed_files, write_review_lists

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="odwh-pack-") as scratch:  # mode 0700, removed after: client rows
        month, claims = Path(scratch) / "month.pickle", Path(scratch) / "claims"
        month.write_bytes(pickle.dumps(data))
        claims.mkdir()
        argv, env = module_command("odwh.publish.pack", str(month), str(out_dir), str(claims))
        pack = subprocess.Popen(argv, env=env)
        try:
            write_review_lists(data, out_dir, claims=claims)
        except BaseException:
            pack.terminate()  # the month fails: the other process need not write the branches left
            raise
        finally:
            pack.wait()
        if pack.returncode != 0:
            raise RuntimeError(
                f"the board pack and dashboard were not rendered, or the review lists that process took"
                f" (exit code {pack.returncode}: above)"
            )
        files = claimed_files(out_dir, claims)
    return files + [out_dir / name for name in FILES]
