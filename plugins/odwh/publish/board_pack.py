"""The Board Risk Committee pack: ``board-pack.html`` (self-contained) and ``board-pack.pdf`` (WeasyPrint).

One jinja2 template (``templates/board_pack.html.j2``) with inline CSS and inline SVG charts; the PDF is the
same HTML printed on A4 with running headers and "Page n of N" footers. Nothing is fetched: no base URL, no
external stylesheet or image; the Khmer font comes from a pinned package (``odwh.publish.fonts``), inline in the
HTML and embedded in the PDF.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from odwh import grades, i18n
from odwh.html_pages import bilingual, template_environment
from odwh.publish import charts, fonts, labels, quality, social
from odwh.publish.data import MonthData, column, records, total

COVER_KHMER = i18n.gettext(i18n.KHMER, "Board Risk Committee")
#: SVG presentation properties of the inline charts' style attributes. WeasyPrint's HTML cascade reads every
#: style attribute as CSS and warns that it does not know these (its SVG renderer reads them itself and draws
#: the charts right): about 1,200 warnings a pack, which hid any real one.
SVG_PROPERTIES = frozenset(
    {"fill", "fill-opacity", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin", "stroke-dasharray",
     "stroke-dashoffset", "stroke-opacity", "stroke-miterlimit", "text-anchor"}
)  # fmt: skip


class _SvgStyleWarnings(logging.Filter):
    """Drops WeasyPrint's "Ignored `<SVG property>: ...`, unknown property." and nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (
            str(record.msg).startswith("Ignored `%s:%s`")
            and len(args) == 5
            and args[0] in SVG_PROPERTIES
            and args[4] == "unknown property"
        )


_WEASYPRINT_LOG = logging.getLogger("weasyprint")
if not any(isinstance(f, _SvgStyleWarnings) for f in _WEASYPRINT_LOG.filters):
    _WEASYPRINT_LOG.addFilter(_SvgStyleWarnings())


@dataclass(frozen=True)
class BoardPack:
    html: Path
    pdf: Path
    pages: int


def environment() -> Environment:
    env = template_environment("odwh.publish")
    env.filters["usd"] = lambda v: labels.thousands(v, 2)
    env.filters["whole"] = lambda v: labels.thousands(v, 0)
    env.filters["pct"] = lambda v, places=1: labels.percent(v, places)
    env.filters["amount"] = lambda v, ccy: labels.thousands(v, labels.decimals(ccy))
    env.globals |= {
        "text_fonts": Markup(fonts.TEXT_FAMILIES),
        "khmer_fonts": Markup(fonts.KHMER_FAMILIES),
        "khmer_family": fonts.KHMER_FAMILY,
    }
    return env


def render_board_pack(data: MonthData, out_dir: Path) -> BoardPack:
    """Write both files; ``pages`` is WeasyPrint's page count of the PDF."""
    from weasyprint import HTML  # imported late: pango/cairo load only when a pack is printed

    page = context(data)
    html_path = out_dir / "board-pack.html"
    html_path.write_text(_render(page, fonts.embedded_font_face()), encoding="utf-8")
    pdf_path = out_dir / "board-pack.pdf"
    with fonts.reproducible_fonts(data.month_end):  # same marts, same bytes
        document = HTML(string=_render(page, fonts.file_font_face())).render()
        document.write_pdf(pdf_path, pdf_identifier=f"odwh-board-pack-{data.month_end}".encode())
    return BoardPack(html_path, pdf_path, len(document.pages))


def board_pack_html(data: MonthData) -> str:
    """The self-contained page (the Khmer font inline)."""
    return _render(context(data), fonts.embedded_font_face())


def _render(page: dict[str, Any], font_face: Markup) -> str:
    return environment().get_template("board_pack.html.j2").render(**page, font_face=font_face)


# --- what the template shows ------------------------------------------------------------------------------


def context(data: MonthData) -> dict[str, Any]:
    portfolio = data.portfolio
    cube = _with_npl(data.cube)
    trend = data.portfolio_trend
    months = charts.month_labels(trend["month_end"])
    branches = _grouped(
        cube, ["branch_code", "branch_name", "province", "province_km"], portfolio["od_outstanding_usd"]
    )
    provinces = _grouped(cube, ["province", "province_km"], portfolio["od_outstanding_usd"])
    currencies = _grouped(cube, ["currency"], portfolio["od_outstanding_usd"], local=True)
    types = _grouped(cube, ["customer_type"], portfolio["od_outstanding_usd"])
    grade_rows, grade_totals = _grade_table(data)
    top = data.top_exposures.copy()
    top["share"] = column([_ratio(v, portfolio["od_outstanding_usd"]) for v in top["outstanding_usd"]], top)
    conversions = _conversions_done(data.review_list)
    counts = {
        "accounts": int(cube["accounts"].sum()),
        "excess": int(cube["excess_accounts"].sum()),
        "excess_usd": total(cube["excess_usd"]),
        "candidates": int(cube["conversion_candidates"].sum()),
        "candidates_usd": total(cube["conversion_usd"]),
        "converted": len(conversions),
        "converted_usd": total(conversions["amount_usd"]),
        "breach_accounts": int(cube["breach_accounts"].sum()),
        "breaks": int(cube["reconciliation_breaks"].sum()),
        "drawn": int(cube["drawn_accounts"].sum()),
        "outside": data.facilities_outside,
        "graded": grade_totals["OD_accounts"],
    }
    counts["undrawn"] = counts["accounts"] - counts["drawn"]
    return {
        "data": data,
        "institution": data.institution,
        "cover_khmer": COVER_KHMER,
        "month_label": i18n.in_both(data.month_end, i18n.month),
        "month_end": data.month_end,
        "generated_at": data.generated_at,
        "portfolio": portfolio,
        "previous": data.previous_portfolio,
        "summary": summary(data, counts),
        "counts": counts,
        "outside_note": _outside_note(counts["outside"]),
        "trend": records(trend),
        "grade_rows": grade_rows,
        "grade_totals": grade_totals,
        "top": records(top),
        "branches": records(branches),
        "provinces": records(provinces),
        "currencies": records(currencies),
        "customer_types": records(types),
        "utilization": records(data.utilization),
        "candidates": records(data.conversion_candidates),
        "conversions": records(conversions.head(data.list_rows)),
        "breach_codes": records(data.breaches_by_code),
        "breach_accounts": records(data.breach_accounts),
        "breaks": records(data.reconciliation_breaks),
        "list_rows": data.list_rows,
        "notes": data.notes,
        "charts": _charts(data, months, grade_rows, branches, provinces, currencies, types),
        "quality": quality.board_context(data.quality) if data.quality is not None else None,
        "social": social.context(data.social),
    }


def summary(data: MonthData, counts: dict[str, Any]) -> Markup:
    """The cover's paragraph in Khmer, then in English (``summary_in``)."""
    return Markup('<span class="khmer" lang="km">{}</span><br>{}').format(
        summary_in(i18n.KHMER, data, counts), summary_in(i18n.ENGLISH, data, counts)
    )


def summary_in(locale: str, data: MonthData, counts: dict[str, Any]) -> Markup:
    """The cover's one paragraph in ``locale``, from the figures only; each figure links to the section that
    explains it. Words from the catalogue, numbers and the date formatted by Babel for the locale."""
    p, previous = data.portfolio, data.previous_portfolio

    def _(message: str, **values: Any) -> Markup:  # named _ for `make i18n` to extract its messages
        return Markup(i18n.gettext(locale, message)).format(**values)

    def pct(value: Any, places: int = 1) -> str:
        return i18n.percent(value, places, locale)

    def usd(value: Any) -> str:
        return i18n.money(value, "USD", locale)

    def accounts(count: int) -> str:
        return i18n.ngettext(
            locale, "{count} account", "{count} accounts", count, count=i18n.number(count, 0, locale)
        )

    cap = _link("od-share", pct(p["od_cap"], 0))
    if p["od_share"] is None:
        position = _("with no loan portfolio to compare against the cap")
    elif p["cap_breached"]:
        position = _("above the board's cap of {cap}", cap=cap)
    else:
        position = _("within the board's cap of {cap}", cap=cap)
    in_portfolio = accounts(counts["accounts"])
    if counts["undrawn"]:
        in_portfolio = i18n.gettext(
            locale,
            "{accounts} ({drawn} drawn, {undrawn} active with nothing drawn)",
            accounts=in_portfolio,
            drawn=i18n.number(counts["drawn"], 0, locale),
            undrawn=i18n.number(counts["undrawn"], 0, locale),
        )
    sentences = [
        _(
            "At {day} the overdraft (OD) portfolio stood at {outstanding} on {accounts}, {share} of the total"
            " loan portfolio of {portfolio}, {position}.",
            day=i18n.day(data.month_end, locale),
            outstanding=_link("trend", usd(p["od_outstanding_usd"])),
            accounts=_link("grades", in_portfolio),
            share=_link("od-share", pct(p["od_share"])),
            portfolio=_link("trend", usd(p["total_portfolio_usd"])),
            position=position,
        )
    ]
    if previous is not None and previous["od_outstanding_usd"]:
        change = _ratio(
            p["od_outstanding_usd"] - previous["od_outstanding_usd"], previous["od_outstanding_usd"]
        )
        moved = i18n.gettext(
            locale,
            i18n.N_("up {change}") if change is not None and change >= 0 else i18n.N_("down {change}"),
            change=pct(abs(change) if change is not None else None),
        )
        sentences.append(
            _("OD outstanding is {change} on the previous month end.", change=_link("trend", moved))
        )
    npl = _link("od-share", pct(p["npl_ratio_od"]))
    if previous is not None:
        npl += Markup(" ") + _(
            "(previous month end {ratio})", ratio=_link("od-share", pct(previous["npl_ratio_od"]))
        )
    sentences.append(
        _(
            "The OD NPL ratio is {ratio} and provisions for OD and term loans total {provisions}.",
            ratio=npl,
            provisions=_link("grades", usd(p["provision_total_usd"])),
        )
    )
    sentences.append(
        _(
            "The month closed with {excess} over the limit, {candidates} proposed for conversion to a term"
            " loan, {breaches} failing a policy check and {breaks} with a reconciliation break against the"
            " core banking system.",
            excess=_link("utilization", accounts(counts["excess"])),
            candidates=_link("candidates", accounts(counts["candidates"])),
            breaches=_link("breaches", accounts(counts["breach_accounts"])),
            breaks=_link("reconciliation", accounts(counts["breaks"])),
        )
    )
    return Markup(" ").join(sentences)


def _outside_note(count: int) -> Markup:
    """The grade table's note on the facilities outside every figure (a plural: written here, as the template's
    ``ngettext`` is not extracted with odwh.i18n's keyword spec)."""
    singular, plural = i18n.NP_(
        "{count} more OD facility, neither drawn nor active (closed, matured or not yet started), is in no"
        " figure of this pack.",
        "{count} more OD facilities, neither drawn nor active (closed, matured or not yet started), are in no"
        " figure of this pack.",
    )
    return bilingual(
        *(
            i18n.ngettext(loc, singular, plural, count, count=i18n.number(count, 0, loc))
            for loc in i18n.LOCALES
        )
    )


def _link(anchor: str, text: str) -> Markup:
    """A figure linked to the section of the pack with the same anchor (a link in the PDF too)."""
    return Markup('<a href="#{}">{}</a>').format(anchor, text)


def _conversions_done(review_list: pd.DataFrame) -> pd.DataFrame:
    """The conversions to a term loan done in the month (rulebook J), largest settlement first."""
    done = review_list[review_list["reason"] == "CONVERTED"]
    return done.sort_values(["amount_usd", "od_account_id"], ascending=[False, True], na_position="last")


def _ratio(part: Any, whole: Any) -> Decimal | None:
    if part is None or whole is None or pd.isna(part) or pd.isna(whole) or Decimal(whole) == 0:
        return None
    return Decimal(part) / Decimal(whole)


def _with_npl(cube: pd.DataFrame) -> pd.DataFrame:
    cube = cube.copy()
    npl = cube["nbc_grade"].isin(list(grades.NON_PERFORMING))
    cube["npl_usd"] = column(
        [v if flag else Decimal(0) for v, flag in zip(cube["outstanding_usd"], npl, strict=True)], cube
    )
    for name, unknown in (("branch_name", "—"), ("province", "—"), ("province_km", "")):
        cube[name] = cube[name].where(cube[name].notna(), unknown)
    return cube


SUMMED = ("outstanding", "outstanding_usd", "provision_usd", "limit_amount", "npl_usd", "excess_usd")
COUNTED = ("accounts", "excess_accounts", "conversion_candidates", "breach_accounts", "reconciliation_breaks")


def _grouped(cube: pd.DataFrame, keys: list[str], od_total: Any, *, local: bool = False) -> pd.DataFrame:
    """Concentration: totals per key, largest first, with share of OD, NPL ratio and (same currency) use."""
    columns = [*keys, *COUNTED, *SUMMED]
    if cube.empty:
        return pd.DataFrame(columns=[*columns, "share", "npl_ratio", "utilization"])
    rows = []
    for key, group in cube.groupby(keys, sort=True, dropna=False):
        row: dict[str, Any] = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        row |= {c: int(group[c].sum()) for c in COUNTED}
        row |= {c: total(group[c]) for c in SUMMED}
        row["share"] = _ratio(row["outstanding_usd"], od_total)
        row["npl_ratio"] = _ratio(row["npl_usd"], row["outstanding_usd"])
        row["utilization"] = _ratio(row["outstanding"], row["limit_amount"]) if local else None
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("outstanding_usd", ascending=False, kind="stable").reset_index(drop=True)


def _grade_table(data: MonthData) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One row per NBC grade with OD and TERM accounts, outstanding and provisions (zeros where empty)."""
    month = data.grades[data.grades["month_end"] == data.month_end]
    present = [g for g in month["nbc_grade"].unique() if g not in grades.NBC_GRADES]
    rows = []
    for grade in [*grades.NBC_GRADES, *sorted(present)]:
        row: dict[str, Any] = {"grade": grade, "npl": grade in grades.NON_PERFORMING}
        for family in ("OD", "TERM"):
            cell = month[(month["nbc_grade"] == grade) & (month["product_family"] == family)]
            row[f"{family}_accounts"] = int(cell["accounts"].sum())
            row[f"{family}_outstanding"] = total(cell["outstanding_usd"])
            row[f"{family}_provision"] = total(cell["provision_usd"])
        rows.append(row)
    totals = {k: sum(r[k] for r in rows) for k in rows[0] if k not in ("grade", "npl")}
    return rows, totals


def _charts(
    data: MonthData,
    months: list[str],
    grade_rows: list[dict[str, Any]],
    branches: pd.DataFrame,
    provinces: pd.DataFrame,
    currencies: pd.DataFrame,
    types: pd.DataFrame,
) -> dict[str, Markup]:
    trend = data.portfolio_trend
    shares: dict[str, list[Decimal]] = {}
    for family in ("OD", "TERM"):
        whole = sum((r[f"{family}_outstanding"] for r in grade_rows), Decimal(0))
        for r in grade_rows:
            shares.setdefault(r["grade"], []).append(
                r[f"{family}_outstanding"] / whole if whole else Decimal(0)
            )
    top_branches = branches.head(10)
    svgs = {
        "trend": charts.portfolio_trend(months, list(trend["od_outstanding_usd"])),
        "share": charts.ratio_trend(
            months, list(trend["od_share"]), "OD share of loan portfolio", data.portfolio["od_cap"], width=3.2
        ),
        "npl": charts.ratio_trend(months, list(trend["npl_ratio_od"]), "OD NPL ratio", width=3.2),
        "grades": charts.grade_mix(["OD", "Term loans"], shares),
        "branches": charts.horizontal_bars(
            [
                f"{c} {n}"
                for c, n in zip(top_branches["branch_code"], top_branches["branch_name"], strict=True)
            ],
            list(top_branches["outstanding_usd"]),
            "Largest branches, OD outstanding USD",
        ),
        "provinces": charts.horizontal_bars(
            list(provinces["province"].head(10)),
            list(provinces["outstanding_usd"].head(10)),
            "By province",
            width=3.2,
        ),
        "currencies": charts.horizontal_bars(
            list(currencies["currency"]),
            list(currencies["outstanding_usd"]),
            "By currency (USD eq.)",
            width=3.2,
        ),
        "customer_types": charts.horizontal_bars(
            list(types["customer_type"]), list(types["outstanding_usd"]), "By customer type", width=3.2
        ),
        "utilization": charts.horizontal_bars(
            list(data.utilization["band"]),
            list(data.utilization["accounts"]),
            "Accounts by limit use",
            money=False,
            width=3.2,
        ),
        "breaches": charts.horizontal_bars(
            list(data.breaches_by_code["code"]),
            list(data.breaches_by_code["accounts"]),
            "Accounts per failed check",
            money=False,
        )
        if len(data.breaches_by_code)
        else "",
    }
    return {name: Markup(svg) for name, svg in svgs.items()}
