"""Progress of long steps: a bar redrawn in place on a terminal, a bounded number of lines in a log."""

from __future__ import annotations

import io
from types import SimpleNamespace

from odwh.progress import LOG_LINES_PER_STEP, DbtProgress, Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_at_most_a_line_per_tenth_and_always_the_last_step():
    log = io.StringIO()
    bar = Progress("dbt build daily", 95, stream=log)
    for step in range(95):
        bar.advance(f"model_{step}")
    lines = log.getvalue().splitlines()
    assert len(lines) == LOG_LINES_PER_STEP  # 10, 20, ... 90, then 95
    assert lines[0].startswith("dbt build daily 10/95") and lines[0].endswith("model_9")
    assert lines[-1].startswith("dbt build daily 95/95")
    assert "#" not in log.getvalue()  # no bar drawing in a log


def test_a_log_of_few_steps_gets_every_step():
    log = io.StringIO()
    bar = Progress("close months", 3, stream=log)
    for month in ("2026-01-31", "2026-02-28", "2026-03-31"):
        bar.advance(month)
    assert [line.split()[2] for line in log.getvalue().splitlines()] == ["1/3", "2/3", "3/3"]


def test_a_terminal_redraws_one_line_and_keeps_notes_above_it():
    screen = Terminal()
    bar = Progress("check and load", 4, stream=screen, log_lines=False)
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"):
        bar.note(f"{day}  loaded")
        bar.advance(day)
    text = screen.getvalue()
    assert text.count("\r") >= 4  # the bar is redrawn in place
    assert text.endswith("\n") and "[" + "#" * 30 + "] 4/4" in text  # finished bar, then a newline
    shown = text.replace("\033[K", "").split("\n")
    assert [line.split("\r")[-1] for line in shown if "loaded" in line] == [
        f"2026-01-0{d}  loaded" for d in (1, 2, 3, 4)
    ]  # every note is kept on a line of its own


def test_notes_alone_in_a_log_when_the_caller_says_each_step():
    log = io.StringIO()
    bar = Progress("check and load", 2, stream=log, log_lines=False)
    for day in ("2026-01-01", "2026-01-02"):
        bar.note(f"{day}  loaded")
        bar.advance(day)
    assert log.getvalue().splitlines() == ["2026-01-01  loaded", "2026-01-02  loaded"]


def _event(name: str, **data: object) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(name=name), data=SimpleNamespace(**data))


def test_dbt_progress_counts_the_nodes_dbt_announces(capsys):
    shown = DbtProgress("dbt build")
    shown(_event("NodeFinished", node_info=SimpleNamespace(unique_id="model.odwh.early")))  # before the count
    shown(_event("ConcurrencyLine", node_count=2))
    for name in ("stg_a", "fct_b"):
        shown(_event("NodeFinished", node_info=SimpleNamespace(unique_id=f"model.odwh.{name}")))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[2] for line in lines] == ["1/2", "2/2"]
    assert lines[-1].endswith("fct_b")
