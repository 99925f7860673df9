"""``python -m odwh.publish.pack MONTH_PICKLE OUT_DIR``: the board pack and the dashboard of a month, rendered
beside the review lists (``odwh.publish.render_month`` writes the pickle, a file of its own temporary folder)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from odwh.publish.data import MonthData

FILES = ("board-pack.html", "board-pack.pdf", "dashboard.html")


def render(data: MonthData, out_dir: Path) -> list[Path]:
    from odwh.publish.board_pack import render_board_pack
    from odwh.publish.dashboard import render_dashboard

    pack = render_board_pack(data, out_dir)
    return [pack.html, pack.pdf, render_dashboard(data, out_dir)]


def main(argv: list[str]) -> None:
    month, out_dir = Path(argv[0]), Path(argv[1])
    data = pickle.loads(month.read_bytes())  # written by this process's parent, never by a user
    written = render(data, out_dir)
    assert [p.name for p in written] == list(FILES), written


if __name__ == "__main__":
    main(sys.argv[1:])
