"""Static SVG charts for the board pack (matplotlib, no pyplot: no global state, safe in a worker).

SVGs are reproducible (ids salted by each chart's title, no date) and inlined into the HTML. Amounts become floats here only
to place bars and points; every figure printed in the pack's tables stays Decimal.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure  # Figure without pyplot: no GUI backend, no global figure registry
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from odwh import grades, i18n
from odwh.publish import labels

NAVY = "#1f3b63"
LIGHT = "#8fa8cf"
CAP_RED = "#c62828"
GRID = "#d9d9d9"
GRADE_COLORS = {
    "Normal": "#2e7d32",
    "Special Mention": "#f2b705",
    "Substandard": "#ef6c00",
    "Doubtful": "#c62828",
    "Loss": "#5d1212",
}
STYLE: Any = {  # rcParams (Any: matplotlib types its keys as literals)
    "svg.hashsalt": "odwh",
    "svg.fonttype": "none",  # text stays text: small, selectable, fast to print
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#7f7f7f",
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
}
WIDTH = 6.6  # inches: the A4 text width of the pack


def short_money(value: float, _position: object = None) -> str:
    """1234567 -> '1.23M', 45600 -> '45.6k'."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value else "0"


def month_labels(month_ends: Iterable[date]) -> list[str]:
    """'Jan 2026': a month end names its month and year ('Jan 26' would read as a day). The charts' words are
    English (matplotlib's DejaVu Sans has no Khmer), the labels Babel's."""
    return [i18n.month_short(m) for m in month_ends]


def _stacked(months: Sequence[str]) -> list[str]:
    """'Jan\n2026': month over year, so thirteen labels fit side by side on the pack's width."""
    return [m.replace(" ", "\n", 1) for m in months]


def _floats(values: Sequence[Decimal | int | None]) -> list[float]:
    return [float(v) if v is not None else float("nan") for v in values]


def to_svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog or doctype, no metadata date)."""
    buffer = io.StringIO()
    # matplotlib names its marker and clip-path definitions by a hash of their shape and this salt: two charts
    # of one page with the same ticks or plot area repeated an id (WeasyPrint warned per duplicate anchor). The
    # titles differ within a document, and keep the ids reproducible.
    titles = [(a.get_title("left"), a.get_title("center"), a.get_title("right")) for a in figure.axes]
    salt = f"odwh {titles}"
    with rc_context({**STYLE, "svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.05)
    text = buffer.getvalue()
    text = re.sub(r"^<\?xml[^>]*>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    # matplotlib numbers its groups per figure (text_1, patch_1, ...): nothing refers to them, and several
    # charts inlined in one page would repeat the ids (invalid HTML; WeasyPrint warns per duplicate anchor)
    text = re.sub(r'<g id="[A-Za-z0-9.]+_\d+"', "<g", text)
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def _figure(height: float, width: float = WIDTH) -> tuple[Figure, Axes]:
    with rc_context(STYLE):
        figure = Figure(figsize=(width, height))
        axes = figure.add_subplot()
        axes.grid(axis="y", color=GRID, linewidth=0.6)
        axes.set_axisbelow(True)
    return figure, axes


def portfolio_trend(months: Sequence[str], od_usd: Sequence[Decimal | None]) -> str:
    """OD outstanding (USD) per month end, the latest bar dark."""
    with rc_context(STYLE):
        figure, axes = _figure(2.3)
        colors = [LIGHT] * (len(months) - 1) + [NAVY]
        axes.bar(_stacked(months), _floats(od_usd), color=colors, width=0.65)
        axes.yaxis.set_major_formatter(FuncFormatter(short_money))
        axes.set_title("OD outstanding, USD equivalent")
        for label in axes.get_xticklabels():
            label.set_fontsize(7)
        return to_svg(figure)


def ratio_trend(
    months: Sequence[str],
    ratios: Sequence[Decimal | None],
    title: str,
    cap: Decimal | None = None,
    *,
    width: float = WIDTH,
) -> str:
    """A ratio per month end as a line (percent axis), with the cap as a red dashed line when given."""
    with rc_context(STYLE):
        figure, axes = _figure(2.0, width)
        values = [v * 100 for v in _floats(ratios)]
        narrow = width < WIDTH  # a half-width chart turns its month labels upright instead
        axes.plot(
            months if narrow else _stacked(months),
            values,
            color=NAVY,
            marker="o",
            markersize=3,
            linewidth=1.6,
        )
        top = max([v for v in values if v == v] or [0.0])
        if cap is not None:
            axes.axhline(float(cap) * 100, color=CAP_RED, linestyle="--", linewidth=1.2)
            axes.text(
                0, float(cap) * 100, f" cap {labels.percent(cap, 0)}", color=CAP_RED, va="bottom", fontsize=7
            )
            top = max(top, float(cap) * 100)
        axes.set_ylim(0, top * 1.25 or 1)
        axes.yaxis.set_major_formatter(PercentFormatter(decimals=None))
        axes.set_title(title)
        axes.tick_params(axis="x", labelsize=6, labelrotation=90 if narrow else 0)
        return to_svg(figure)


def grade_mix(families: Sequence[str], shares: Mapping[str, Sequence[Decimal]]) -> str:
    """100% stacked bars: the share of outstanding in each NBC grade, one bar per product family."""
    with rc_context(STYLE):
        figure, axes = _figure(1.6)
        left = [0.0] * len(families)
        for grade in grades.NBC_GRADES:
            values = [v * 100 for v in _floats(shares.get(grade, [Decimal(0)] * len(families)))]
            axes.barh(families, values, left=left, color=GRADE_COLORS[grade], label=grade, height=0.55)
            left = [a + b for a, b in zip(left, values, strict=True)]
        axes.set_xlim(0, 100)
        axes.xaxis.set_major_formatter(PercentFormatter(decimals=0))
        axes.grid(axis="x", color=GRID, linewidth=0.6)
        axes.grid(axis="y", visible=False)
        axes.invert_yaxis()
        axes.legend(ncols=5, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False, fontsize=7)
        axes.set_title("Outstanding by NBC grade (share of USD equivalent)")
        return to_svg(figure)


def horizontal_bars(
    names: Sequence[str],
    values: Sequence[Decimal | int],
    title: str,
    *,
    money: bool = True,
    width: float = WIDTH,
) -> str:
    """Ranked horizontal bars (largest on top), value printed at the end of each bar."""
    with rc_context(STYLE):
        figure, axes = _figure(0.35 + 0.24 * max(len(names), 1), width)
        numbers = _floats(values)
        axes.barh(list(names), numbers, color=NAVY, height=0.6)
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.grid(axis="x", color=GRID, linewidth=0.6)
        formatter = short_money if money else (lambda v, _p=None: f"{v:,.0f}")
        axes.xaxis.set_major_formatter(FuncFormatter(formatter))
        if not money:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        peak = max(numbers or [0.0]) or 1.0
        axes.set_xlim(0, peak * 1.15)
        for y, v in enumerate(numbers):
            axes.text(v + peak * 0.01, y, formatter(v), va="center", fontsize=7)
        axes.set_title(title)
        return to_svg(figure)
