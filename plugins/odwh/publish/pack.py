"""``python -m odwh.publish.pack MONTH_PICKLE OUT_DIR CLAIMS``: the board pack and the dashboard of a month, then
the review lists of the branches its parent has not claimed yet (``odwh.publish.render_month`` writes the pickle
and the claims, in a temporary folder of its own)."""

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
    from odwh.publish.review_lists import write_review_lists

    month, out_dir, claims = Path(argv[0]), Path(argv[1]), Path(argv[2])
    data = pickle.loads(month.read_bytes())  # written by this process's parent, never by a user
    written = render(data, out_dir)
    assert [p.name for p in written] == list(FILES), written
    write_review_lists(data, out_dir, claims=claims)


if __name__ == "__main__":
    main(sys.argv[1:])
