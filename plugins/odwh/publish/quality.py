"""Portfolio quality in the month's reports (rulebook K): PAR 30 and its trend, risk coverage, roll rates.

Reads ``marts.fct_par_month_end`` (this month end and up to 12 before), ``marts.fct_par_by_segment_month_end`` and
``marts.fct_grade_migration_month_end`` (this month end). The board pack opens with these figures; the dashboard
shows the same, filterable by product family and segment. Kept apart from the other sections so that each
report section can change on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from markupsafe import Markup

from odwh import grades
from odwh.publish import charts, labels
from odwh.publish.data import frame, records, require

PAR_COLUMNS = (
    "month_end",
    "product_family",
    "accounts",
    "gross_outstanding_usd",
    "par1_usd",
    "par30_usd",
    "par90_usd",
    "par1_ratio",
    "par30_ratio",
    "par90_ratio",
    "provisions_usd",
    "risk_coverage",
    "written_off_usd",
    "write_off_ratio_12m",
    "months_in_window",
)
SEGMENT_COLUMNS = (
    "month_end",
    "product_family",
    "segment_type",
    "segment_value",
    "accounts",
    "gross_outstanding_usd",
    "par1_usd",
    "par30_usd",
    "par90_usd",
    "par30_ratio",
    "provisions_usd",
)
MIGRATION_COLUMNS = (
    "month_end",
    "product_family",
    "from_grade",
    "from_grade_order",
    "to_grade",
    "to_grade_order",
    "accounts",
    "outstanding_usd",
)
FAMILIES = {"ALL": "OD and term loans", "OD": "Overdrafts", "TERM": "Term loans"}
SEGMENT_TYPES = {
    "BRANCH": "Branch",
    "OFFICER": "Officer",
    "CURRENCY": "Currency",
    "CUSTOMER_TYPE": "Customer type",
}
EXITS = ("CLOSED", "CONVERTED", "WRITTEN_OFF")


@dataclass(frozen=True)
class QualityData:
    """The month's portfolio-quality marts; amounts are Decimal (object columns)."""

    month_end: date
    par_trend: (
        pd.DataFrame
    )  # fct_par_month_end, this month end and up to 12 before, every family, oldest first
    par_segments: pd.DataFrame  # fct_par_by_segment_month_end of the month end
    migration: pd.DataFrame  # fct_grade_migration_month_end of the month end

    def par(self, family: str = "ALL") -> dict[str, Any]:
        """The month end's fct_par_month_end row of a family."""
        rows = self.par_trend[
            (self.par_trend["month_end"] == self.month_end) & (self.par_trend["product_family"] == family)
        ]
        return records(rows)[0]


def load_quality(conn: psycopg.Connection, month_end: date) -> QualityData:
    for table, needed in (
        ("fct_par_month_end", PAR_COLUMNS),
        ("fct_par_by_segment_month_end", SEGMENT_COLUMNS),
        ("fct_grade_migration_month_end", MIGRATION_COLUMNS),
    ):
        require(conn, table, needed)
    params = {"m": month_end}
    return QualityData(
        month_end=month_end,
        par_trend=frame(
            conn,
            "select * from marts.fct_par_month_end where month_end <= %(m)s"
            " and month_end > (%(m)s::date - interval '13 months') order by month_end, product_family",
            params,
        ),
        par_segments=frame(
            conn,
            "select * from marts.fct_par_by_segment_month_end where month_end = %(m)s"
            " order by product_family, segment_type, segment_value",
            params,
        ),
        migration=frame(
            conn,
            "select * from marts.fct_grade_migration_month_end where month_end = %(m)s"
            " order by product_family, from_grade_order, to_grade_order",
            params,
        ),
    )


# --- the roll-rate matrix -----------------------------------------------------------------------------------


def heat(share: Decimal | None) -> str:
    """Background of a matrix cell by its share of the row: white (0) to deep red (1)."""
    if not share:
        return "#ffffff"
    s = min(float(share), 1.0)
    low, high = (255, 255, 255), (183, 28, 28)
    return "#" + "".join(f"{round(a + (b - a) * s):02x}" for a, b in zip(low, high, strict=True))


def matrix(migration: pd.DataFrame, family: str) -> dict[str, Any]:
    """One family's matrix: rows (from grade, NEW last) x columns (grades, then exits), cells with their share."""
    rows = [r for r in records(migration) if r["product_family"] == family]
    froms = [g for g in (*grades.NBC_GRADES, "NEW") if any(r["from_grade"] == g for r in rows)]
    tos = [*grades.NBC_GRADES, *EXITS]
    cells = {(r["from_grade"], r["to_grade"]): r for r in rows}
    table = []
    for grade in froms:
        row_accounts = sum(int(r["accounts"]) for r in rows if r["from_grade"] == grade)
        line = []
        for to in tos:
            cell = cells.get((grade, to))
            accounts = int(cell["accounts"]) if cell else 0
            share = Decimal(accounts) / row_accounts if row_accounts else None
            line.append(
                {
                    "accounts": accounts,
                    "outstanding_usd": cell["outstanding_usd"] if cell else Decimal(0),
                    "share": share,
                    "background": heat(share),
                    "dark": share is not None and share > Decimal("0.55"),
                }
            )
        table.append({"from_grade": grade, "accounts": row_accounts, "cells": line})
    return {"family": family, "label": FAMILIES[family], "to_grades": tos, "rows": table}


# --- board pack ---------------------------------------------------------------------------------------------


def board_context(quality: QualityData) -> dict[str, Any]:
    """What ``board_pack_quality.html.j2`` shows: PAR by family, its trend, risk coverage, both matrices."""
    trend = quality.par_trend
    everything = trend[trend["product_family"] == "ALL"]
    months = charts.month_labels(everything["month_end"])
    return {
        "par": {family: quality.par(family) for family in FAMILIES},
        "families": FAMILIES,
        "par_trend": records(everything),
        "matrices": [matrix(quality.migration, family) for family in ("OD", "TERM")],
        "has_migration": len(quality.migration) > 0,
        "par_chart": Markup(
            charts.ratio_trend(
                months, list(everything["par30_ratio"]), "PAR 30, OD and term loans", width=3.2
            )
        ),
        "coverage_chart": Markup(
            charts.ratio_trend(
                months,
                list(everything["risk_coverage"]),
                "Risk coverage (provisions / PAR 30 outstanding)",
                width=3.2,  # the pair shares the page's width, like section 2's charts
            )
        ),
    }


# --- dashboard ----------------------------------------------------------------------------------------------


def dashboard_payload(quality: QualityData) -> dict[str, Any]:
    """The dashboard's quality data: PAR per family and month end, per segment, and the migration cells."""
    return {
        "families": FAMILIES,
        "segment_types": SEGMENT_TYPES,
        "grades": [*grades.NBC_GRADES, "NEW"],
        "to_grades": [*grades.NBC_GRADES, *EXITS],
        "par": [_texts(row, PAR_COLUMNS) for row in records(quality.par_trend)],
        "segments": [_texts(row, SEGMENT_COLUMNS) for row in records(quality.par_segments)],
        "migration": [_texts(row, MIGRATION_COLUMNS) for row in records(quality.migration)],
    }


def _texts(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """JSON-safe values: dates ISO, Decimals as plain text (never float), ints as ints."""
    out: dict[str, Any] = {}
    for name in columns:
        value = row[name]
        if isinstance(value, date):
            out[name] = value.isoformat()
        elif isinstance(value, Decimal):
            out[name] = format(labels.quantize(value, 8).normalize(), "f")  # type: ignore[union-attr]
        else:
            out[name] = None if value is None or pd.isna(value) else value
    return out
