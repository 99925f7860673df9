"""Publishing a month: review lists, board pack, dashboard (and the daily agent alert lists).

Reads only the ``marts`` schema (see :mod:`odwh.publish.data` for the documented exceptions) and writes only
into the folder it is given; the month-end close (:mod:`odwh.publication`) gates and swaps that folder into
``REPORTS_DIR/<YYYY-MM>/``. Outputs are deterministic for the same marts, except the ``generated_at``
timestamp a caller passes in.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from odwh.publish.agent_alerts import write_agent_alert_lists
from odwh.publish.data import MartMissing, MonthData, load_month

__all__ = ["MartMissing", "MonthData", "load_month", "render_month", "write_agent_alert_lists"]


def render_month(data: MonthData, out_dir: Path, *, generated_at: datetime | None = None) -> list[Path]:
    """Write the month's reports into ``out_dir``; returns the files written.

    ``review-lists/<branch_code>.xlsx`` and ``.csv``, ``board-pack.html``, ``board-pack.pdf``, ``dashboard.html``.
    ``generated_at`` (else ``data.generated_at``) is printed in the pack and dashboard and stamps the workbooks;
    without one the files carry no clock time at all (workbooks are stamped with the month end).
    """
    if generated_at is not None:
        data = dataclasses.replace(data, generated_at=generated_at)
    from odwh.publish.board_pack import render_board_pack
    from odwh.publish.dashboard import render_dashboard
    from odwh.publish.review_lists import write_review_lists

    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_review_lists(data, out_dir)
    pack = render_board_pack(data, out_dir)
    files += [pack.html, pack.pdf, render_dashboard(data, out_dir)]
    return files
