"""The risk dashboard: one self-contained ``dashboard.html`` (plotly.js inlined, the month's data as JSON).

The data is the month's cube (OD accounts aggregated by branch, currency, grade and customer type: a few hundred
rows whatever the portfolio size) and the portfolio trend; the page filters it in the browser. Amounts travel
as decimal strings; the unfiltered KPIs are formatted here, exactly, from the portfolio mart.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from markupsafe import Markup

from odwh import grades, i18n
from odwh.publish import fonts, labels, quality, social
from odwh.publish.board_pack import environment
from odwh.publish.data import MonthData, records, total


def render_dashboard(data: MonthData, out_dir: Path) -> Path:
    from plotly.offline import get_plotlyjs

    path = out_dir / "dashboard.html"
    html = (
        environment()
        .get_template("dashboard.html.j2")
        .render(
            institution=data.institution,
            font_face=fonts.embedded_font_face(),
            month_label=i18n.in_both(data.month_end, i18n.month),
            month_end=data.month_end,
            generated_at=data.generated_at,
            plotly_js=Markup(_inline_script(get_plotlyjs())),
            data_json=Markup(_json_script(payload(data))),
            month_labels_json=Markup(_json_script(month_labels(data))),
            quality_json=_quality_json(data),
            social=social.context(data.social),
        )
    )
    path.write_text(html, encoding="utf-8")
    return path


def payload(data: MonthData) -> dict[str, Any]:
    p = data.portfolio
    od_provisions = total(data.cube["provision_usd"])
    return {
        "month_end": data.month_end.isoformat(),
        "grades": list(grades.NBC_GRADES),
        "npl_grades": sorted(grades.NON_PERFORMING),
        "portfolio": {
            "od_outstanding_usd": labels.thousands(p["od_outstanding_usd"]),
            "od_share": labels.percent(p["od_share"], 2),
            "od_cap": labels.percent(p["od_cap"], 0),
            "cap_breached": bool(p["cap_breached"]),
            "npl_ratio_od": labels.percent(p["npl_ratio_od"], 2),
            "od_provision_usd": labels.thousands(od_provisions),
            "provision_total_usd": labels.thousands(p["provision_total_usd"]),
        },
        "trend": [
            {
                "month_end": row["month_end"].isoformat(),
                "od_outstanding_usd": _text(row["od_outstanding_usd"]),
                "od_share": _text(row["od_share"]),
                "od_cap": _text(row["od_cap"]),
                "npl_ratio_od": _text(row["npl_ratio_od"]),
            }
            for row in records(data.portfolio_trend)
        ],
        "cube": [
            {
                "branch": row["branch_code"],
                "branch_name": row["branch_name"] if isinstance(row["branch_name"], str) else "",
                "province": " ".join(
                    name for name in (row["province"], row["province_km"]) if isinstance(name, str) and name
                ),
                "currency": row["currency"],
                "grade": row["nbc_grade"],
                "customer_type": row["customer_type"],
                "accounts": int(row["accounts"]),
                "outstanding_usd": _text(row["outstanding_usd"]),
                "provision_usd": _text(row["provision_usd"]),
                "excess_accounts": int(row["excess_accounts"]),
                "conversion_candidates": int(row["conversion_candidates"]),
                "breach_accounts": int(row["breach_accounts"]),
            }
            for row in records(data.cube)
        ],
    }


def month_labels(data: MonthData) -> dict[str, str]:
    """'2026-01-31' -> 'Jan 2026' (Babel) for every month end a monthly chart draws: the page's axes and
    tables name a month end by its month, never a day."""
    month_ends = set(data.portfolio_trend["month_end"])
    if data.quality is not None:
        month_ends |= set(data.quality.par_trend["month_end"])
    return {m.isoformat(): i18n.month_short(m) for m in sorted(month_ends)}


def _quality_json(data: MonthData) -> Markup | None:
    """PAR, risk coverage and roll rates (odwh.publish.quality); none when the month has no quality data."""
    return Markup(_json_script(quality.dashboard_payload(data.quality))) if data.quality else None


def _text(value: Any) -> str | None:
    """A Decimal as plain text (no float on the way); rounded to 8 places to keep the page small."""
    if value is None:
        return None
    return format(labels.quantize(Decimal(value), 8).normalize(), "f")  # type: ignore[union-attr]


def _json_script(value: Any) -> str:
    """JSON that cannot end its <script> element early ("<\\/" is the same string in JSON)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")


def _inline_script(code: str) -> str:
    if "</script" in code.lower():
        raise ValueError("the plotly.js bundle contains '</script': it cannot be inlined as is")
    return code
