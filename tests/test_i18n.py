"""The report catalogues (issue 13: Khmer first): every message translated, the template current with the code,
and the review and agent alert lists written in Khmer and English with amounts formatted by Babel.

The catalogue files are read here with Babel's own PO reader, not through ``odwh.i18n``, so a list is checked
against what a translator sees in the ``.po`` file.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import openpyxl
import psycopg
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po
from odwh import i18n, publish
from odwh.publish.board_pack import board_pack_html, environment
from odwh.publish.review_lists import write_review_lists
from support.marts import MONTH_END, ScriptedMarts

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "plugins" / "odwh" / "locale"
KHMER = re.compile("[\u1780-\u17ff]")
PLACEHOLDER = re.compile(r"\{\w+\}|%\(\w+\)s")


def _catalog(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def _ids(catalog: Catalog) -> set[str | tuple[str, ...]]:
    return {m.id for m in catalog if m.id}


def _forms(message: Message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple | list) else [message.string]


def test_every_message_has_its_khmer_translation() -> None:
    """Each msgid of messages.pot has a Khmer msgstr (every plural form), not fuzzy, in Khmer script where the
    English has words, with the same placeholders: a missing or half-done translation fails here."""
    template = _catalog(LOCALE / "messages.pot")
    khmer = _catalog(LOCALE / "km" / "LC_MESSAGES" / "messages.po", "km")
    problems = []
    for message in template:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        translated = khmer.get(message.id)
        if translated is None or translated.fuzzy or not all(_forms(translated)):
            problems.append(f"untranslated: {key!r}")
            continue
        wanted = sorted(PLACEHOLDER.findall(key))
        has_words = re.search("[A-Za-z]", PLACEHOLDER.sub("", key)) is not None
        for form in _forms(translated):
            if sorted(PLACEHOLDER.findall(form)) != wanted:
                problems.append(f"placeholders differ: {key!r} -> {form!r}")
            if has_words and not KHMER.search(form):
                problems.append(f"not Khmer: {key!r} -> {form!r}")
    assert problems == []
    assert len(_ids(template)) > 50  # the catalogue is really read


def test_catalogues_are_current_with_the_code(tmp_path: Path) -> None:
    """Extracting again (as `make i18n` does) finds no message missing from messages.pot, none left over, and
    the km and en catalogues hold exactly the template's messages."""
    keywords = re.search(r"^I18N_KEYWORDS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert keywords is not None
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("pybabel")),
            "-q",
            "extract",
            "-F",
            "babel.cfg",
            *keywords.group(1).split(),
            "-o",
            str(fresh),
            "plugins/odwh",
        ],
        cwd=ROOT,
        check=True,
    )
    committed = _ids(_catalog(LOCALE / "messages.pot"))
    assert _ids(_catalog(fresh)) == committed, "run `make i18n` and translate the new messages"
    for locale in i18n.LOCALES:
        assert _ids(_catalog(LOCALE / locale / "LC_MESSAGES" / "messages.po", locale)) == committed, locale


def test_amounts_round_half_away_from_zero_in_each_locale() -> None:
    """Babel formats (grouping, symbols of the locale) after rulebook A's rounding, not Babel's half-even."""
    assert i18n.money(Decimal("120000.5"), "KHR", "km") == "KHR 120,001"
    assert i18n.money(Decimal("0.125"), "USD") == "USD 0.13"
    assert i18n.money(Decimal("-1234567.005"), "THB", "km") == "THB -1,234,567.01"
    assert i18n.percent(Decimal("0.0625"), 1) == "6.3%"
    assert i18n.day(date(2026, 1, 31), "km") == "31 មករា 2026"
    assert i18n.day(date(2026, 1, 31)) == "January 31, 2026"


def _khmer(msgid: str, **values: object) -> str:
    """The translator's Khmer for ``msgid`` with its placeholders filled (plural: the one Khmer form)."""
    catalog = _catalog(LOCALE / "km" / "LC_MESSAGES" / "messages.po", "km")
    message = next(m for m in catalog if m.id == msgid or (isinstance(m.id, tuple) and m.id[0] == msgid))
    form = _forms(message)[0]
    return form.format(**values) if values else form


def test_review_list_details_in_khmer_then_english(fresh_db: str, tmp_path: Path) -> None:
    """The officer's sheet and the CSV write each detail from rpt_review_list.detail_params: the Khmer of the
    catalogue first, the English below, amounts per currency (KHR whole riels, USD cents); a mart without
    detail_params keeps its English detail."""
    ScriptedMarts(fresh_db).create()
    with psycopg.connect(fresh_db) as conn:
        data = publish.load_month(conn, MONTH_END)
    write_review_lists(data, tmp_path)
    sheet = openpyxl.load_workbook(tmp_path / "review-lists" / "B01.xlsx")["CM1 Sok Dara"]
    detail = {
        (r[0], r[2].split(" / ")[1]): r[3] for r in sheet.iter_rows(min_row=3, values_only=True) if r[2]
    }
    assert detail["A1", "Excess over limit"].split("\n") == [
        _khmer("{n} day in excess, peak {peak}, excess fee {fee}", n=31, peak="USD 200.00", fee="USD 6.20"),
        "31 days in excess, peak USD 200.00, excess fee USD 6.20",
    ]
    khmer, english = detail["A2", "No transaction"].split("\n")
    assert (
        english
        == "No customer transaction in the month; drawn KHR 12,000,000, charges of the month KHR 120,001"
    )
    assert KHMER.search(khmer) and "KHR 12,000,000" in khmer and "KHR 120,001" in khmer
    assert detail["A1", "Grade"].split("\n") == [
        f"{_khmer('Normal')} → {_khmer('Special Mention')}, {_khmer('{n} day past due', n=20)}",
        "Normal -> Special Mention, 20 days past due",
    ]
    with (tmp_path / "review-lists" / "B01.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["ព័ត៌មានលម្អិត / Detail"] for r in rows} >= {detail["A1", "Excess over limit"]}

    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table marts.rpt_review_list drop column detail_params")
        without = publish.load_month(conn, MONTH_END)
    write_review_lists(without, tmp_path / "old")
    sheet = openpyxl.load_workbook(tmp_path / "old" / "review-lists" / "B01.xlsx")["CM1 Sok Dara"]
    assert "31 day(s) in excess, peak USD 200.00" in [
        r[3] for r in sheet.iter_rows(min_row=3, values_only=True)
    ]


def test_agent_alert_list_in_khmer_then_english(fresh_db: str, tmp_path: Path) -> None:
    """The daily list's status and detail in Khmer first, the detail from fct_agent_alerts.detail_params (a kind
    of day without its figure is named without an amount)."""
    ScriptedMarts(fresh_db).create()
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "insert into marts.fct_agent_alerts (customer_id, od_account_id, officer_id, regional_manager_id,"
            " branch_code, currency, reason, detail, detail_params, opened_on, last_abnormal_on, escalated,"
            " days_open, abnormal_days, status)"
            " values ('C1', 'A1', 'CM1', 'RM1', 'B01', 'KHR', 'CASH_WITHDRAWAL,EXCESS', 'English detail',"
            " jsonb_build_object('cash_withdrawal_days', 1, 'cash_withdrawn', '400000.5', 'excess_days', 3,"
            " 'peak_excess', '1234567', 'drawdown_days', 1), '2026-01-20', '2026-01-22', false, 3, 3, 'OPEN')"
        )
        publish.write_agent_alert_lists(conn, date(2026, 1, 22), tmp_path)
    sheet = openpyxl.load_workbook(tmp_path / "B01.xlsx").worksheets[0]
    row = next(r for r in sheet.iter_rows(min_row=3, values_only=True) if r[4] == "A1")
    assert row[0] == f"{_khmer('Open')} / Open"
    title = sheet.cell(row=1, column=1).value
    assert " — 22 មករា 2026 / January 22, 2026 — B01" in title  # the day as Babel writes it in each language
    assert row[6].split("\n") == [
        _khmer("{n} day with a cash withdrawal, total {amount}", n=1, amount="KHR 400,001")
        + "; "
        + _khmer("{n} day in excess, peak {amount}", n=3, amount="KHR 1,234,567")
        + "; "
        + _khmer("{n} day with an abnormal drawdown", n=1),  # no figure for the drawdown: none shown
        "1 day with a cash withdrawal, total KHR 400,001; 3 days in excess, peak KHR 1,234,567;"
        " 1 day with an abnormal drawdown",
    ]


def test_board_pack_cover_in_khmer_then_english(fresh_db: str) -> None:
    """The cover's paragraph in Khmer then English, its date and figures formatted by Babel in each language,
    and the month named in both."""
    ScriptedMarts(fresh_db).create()
    with psycopg.connect(fresh_db) as conn:
        html = board_pack_html(publish.load_month(conn, MONTH_END))
    summary = re.search(
        r'<p class="summary"><span class="khmer" lang="km">(.*?)</span><br>(.*?)</p>', html, re.S
    )
    assert summary is not None
    khmer, english = (" ".join(re.sub(r"<[^>]+>", "", part).split()) for part in summary.groups())
    opening = _khmer(
        "At {day} the overdraft (OD) portfolio stood at {outstanding} on {accounts}, {share} of the total"
        " loan portfolio of {portfolio}, {position}."
    ).split("{outstanding}")[0]
    assert khmer.startswith(opening.format(day="31 មករា 2026") + "USD 96,200.00")
    assert english.startswith("At January 31, 2026 the overdraft (OD) portfolio stood at USD 96,200.00 on 6")
    assert _khmer("{count} account", count=6) in khmer and "6 accounts" in english
    assert '<div class="month">មករា 2026 / January 2026</div>' in html


def test_board_pack_headings_in_khmer_then_english() -> None:
    """Templates write ``_()`` messages as the Khmer (in a lang="km" span for its font) then the English."""
    env = environment()
    html = env.from_string(
        '<h2>{{ _("OD share against the %(cap)s cap and NPL ratio", cap="10%") }}</h2>'
    ).render()
    khmer = _khmer("OD share against the %(cap)s cap and NPL ratio").replace("%(cap)s", "10%")
    assert (
        html
        == f'<h2><span class="khmer" lang="km">{khmer}</span> / OD share against the 10% cap and NPL ratio</h2>'
    )


def test_fuzzy_translations_are_not_used(tmp_path: Path) -> None:
    """A translation marked fuzzy (unchecked) in a .po is left out, as msgfmt does: the English shows."""
    po = tmp_path / "messages.po"
    po.write_text(
        '#, fuzzy\nmsgid "Total"\nmsgstr "សរុប?"\n\nmsgid "Subtotal"\nmsgstr "សរុបរង"\n', encoding="utf-8"
    )
    khmer = i18n.compiled(po, "km")
    assert (khmer.ugettext("Total"), khmer.ugettext("Subtotal")) == ("Total", "សរុបរង")
