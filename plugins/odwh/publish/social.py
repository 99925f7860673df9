"""Social performance and client protection (rulebook I): the board pack's section 10 and the dashboard's tab.

Read from the social marts only (``marts.fct_client_protection_month_end``, ``fct_complaints_month_end``,
``fct_ppi_wave``, ``fct_pricing_exceptions``). The page lists the seven Client Protection Principles of the SPM
report, each with the indicators the data supports, and says plainly where the data holds none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from odwh.publish import charts, labels
from odwh.publish.data import columns_of, frame, pseudonymised, records

SOCIAL_MARTS = ("fct_client_protection_month_end", "fct_complaints_month_end", "fct_ppi_wave")
NO_INDICATOR = "The extracts hold no indicator for this principle."
PRIVACY_PENDING = (
    "Count of published files scanned clean of client identifiers: arrives with the reliability work. "
    "By construction no social mart or published report holds a national ID or phone number."
)


@dataclass(frozen=True)
class SocialData:
    """The month end's social-performance figures; None rows when the month has none."""

    month_end: date
    protection: dict[str, Any] | None  # fct_client_protection_month_end row
    complaints: dict[str, Any] | None  # fct_complaints_month_end row
    waves: pd.DataFrame = field(default_factory=pd.DataFrame)  # fct_ppi_wave delivered by the month end
    pricing: pd.DataFrame = field(default_factory=pd.DataFrame)  # largest pricing exceptions of the month end


@dataclass(frozen=True)
class Principle:
    number: int
    name: str
    indicators: list[tuple[str, str]]  # (indicator, value as shown)
    note: str = ""  # what the data does not hold


def load_social(conn: psycopg.Connection, month_end: date, list_rows: int = 25) -> SocialData | None:
    """None when the social marts are not built (an older warehouse): the section then says so."""
    if not all(columns_of(conn, "marts", name) for name in SOCIAL_MARTS):
        return None
    params = {"m": month_end, "n": list_rows}

    def row(table: str) -> dict[str, Any] | None:
        query = sql.SQL("select * from {} where month_end = %(m)s").format(sql.Identifier("marts", table))
        rows = records(frame(conn, query, params))
        return rows[0] if rows else None

    waves = frame(
        conn,
        "select wave, surveyed_clients, poverty_rate, change_pp, is_complete from marts.fct_ppi_wave"
        " where first_delivered_on <= %(m)s order by wave",
        params,
    )
    pricing = frame(
        conn,
        "select od_account_id, branch_code, officer_id, currency, monthly_interest_rate, annual_rate,"
        " rate_ceiling_annual from marts.fct_pricing_exceptions where month_end = %(m)s"
        " order by annual_rate desc, od_account_id limit %(n)s",
        params,
    )
    return SocialData(
        month_end,
        row("fct_client_protection_month_end"),
        row("fct_complaints_month_end"),
        waves,
        pseudonymised(pricing),
    )


def _count(value: Any) -> str:
    return labels.thousands(value, 0) if value is not None else "-"


def _days(value: Decimal | None) -> str:
    return "no complaint resolved" if value is None else f"{labels.thousands(value, 1)} days"


def principles(social: SocialData) -> list[Principle]:
    """The seven principles in the SPM report's order, with the month's indicators."""
    p = social.protection or {}
    c = social.complaints or {}
    return [
        Principle(
            1,
            "Appropriate product design and delivery",
            [
                ("E&S screening coverage (approved, required)", labels.percent(p.get("es_coverage"))),
                ("E&S screening exceptions (approved)", _count(p.get("es_exceptions"))),
                ("Exclusion-list breaches (approved)", _count(p.get("exclusion_breaches"))),
            ],
            "No indicator of product design itself; E&S screening and the exclusion list are what the data holds.",
        ),
        Principle(
            2,
            "Prevention of over-indebtedness",
            [
                (
                    "Applications decided / approved",
                    f"{_count(p.get('applications_decided'))} / {_count(p.get('applications_approved'))}",
                ),
                ("Credit Bureau (CBC) check coverage of approvals", labels.percent(p.get("cbc_coverage"))),
                (
                    "Over-indebtedness exceptions (DSR above limit or no CBC check)",
                    _count(p.get("over_indebtedness_exceptions")),
                ),
            ],
        ),
        Principle(3, "Transparency", [], NO_INDICATOR),
        Principle(
            4,
            "Responsible pricing",
            [("OD accounts above the NBC interest-rate ceiling", _count(p.get("pricing_exceptions")))],
            "Term loans are not checked: the loans extract carries no rate.",
        ),
        Principle(5, "Fair and respectful treatment of clients", [], NO_INDICATOR),
        Principle(6, "Privacy of client data", [], PRIVACY_PENDING),
        Principle(
            7,
            "Mechanisms for complaint resolution",
            [
                (
                    "Complaints received / resolved in the month",
                    f"{_count(c.get('received'))} / {_count(c.get('resolved'))}",
                ),
                ("Median time to resolve", _days(c.get("median_days_to_resolve"))),
                (
                    f"Open at month end / open over {_count(c.get('open_limit_days'))} days",
                    f"{_count(c.get('open_at_month_end'))} / {_count(c.get('open_over_limit'))}",
                ),
            ],
        ),
    ]


def wave_label(row: dict[str, Any]) -> str:
    return f"{row['wave']}" if row["is_complete"] else f"{row['wave']} (provisional)"


def ppi_chart(social: SocialData, *, width: float = charts.WIDTH) -> str:
    """Poverty rate per PPI wave (an incomplete wave is marked provisional)."""
    waves = records(social.waves)
    return charts.ratio_trend(
        [wave_label(w) for w in waves],
        [w["poverty_rate"] for w in waves],
        "PPI poverty rate per wave",
        width=width,
    )


def context(social: SocialData | None) -> dict[str, Any]:
    """What the templates show; ``available`` is False when the marts are missing."""
    if social is None:
        return {"available": False}
    waves = records(social.waves)
    return {
        "available": True,
        "principles": principles(social),
        "waves": [dict(w, label=wave_label(w)) for w in waves],
        "ppi_chart": ppi_chart(social) if waves else "",
        "pricing": records(social.pricing),
        "pricing_total": (social.protection or {}).get("pricing_exceptions", 0),
    }
