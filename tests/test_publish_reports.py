"""Month reports (odwh.publish) from a scripted set of marts in a real PostgreSQL.

The marts are created from the dbt contracts with a handful of scripted rows (``support.marts.ScriptedMarts``),
so the renderers are tested without a dbt build. Every output is opened and read back: XLSX with openpyxl,
CSV with the csv module, the PDF's bytes, the HTML's text.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import shutil
import subprocess
import uuid
import zipfile
import zlib
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import psycopg
import pytest
from odwh import pseudonym, publish
from odwh.publish import labels, review_lists, workbook
from odwh.publish.board_pack import render_board_pack
from odwh.publish.dashboard import render_dashboard
from odwh.publish.review_lists import claimed_files, write_review_lists
from plotly.offline import get_plotlyjs
from support.marts import MIGRATION, MONTH_END, NATIONAL_ID, OD_TOTAL, PHONE, ScriptedMarts

D = Decimal


@pytest.fixture
def marts_db(fresh_db: str) -> str:
    ScriptedMarts(fresh_db).create()
    return fresh_db


@pytest.fixture(scope="module")
def month(scripted_month: publish.MonthData) -> publish.MonthData:
    return scripted_month


# --- reading the marts ---------------------------------------------------------------------------------------


def test_load_month_reads_only_marts(marts_db: str) -> None:
    """Under a role that may read nothing but ``marts``, the month loads: no raw, staging or pii access."""
    role = f"marts_only_{uuid.uuid4().hex[:8]}"  # roles are server-wide: unique per test
    with psycopg.connect(marts_db, autocommit=True) as conn:
        conn.execute(f"create role {role} nologin")
        try:
            conn.execute(f"grant usage on schema marts to {role}")
            conn.execute(f"grant select on all tables in schema marts to {role}")
            conn.execute(f"set role {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("select * from pii.customers")
            data = publish.load_month(conn, MONTH_END)
        finally:
            conn.execute("reset role")
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")
    assert data.portfolio["od_outstanding_usd"] == OD_TOTAL
    assert len(data.portfolio_trend) == 13
    assert data.cube["outstanding_usd"].sum() == OD_TOTAL
    assert set(data.cube["customer_type"]) == {"UNKNOWN"}  # no mart publishes it, staging not readable
    assert any("Customer type unknown" in n for n in data.notes)
    assert set(data.review_list["officer_name"]) >= {"Sok Dara", "Keo Vanna"}  # names the mart carries
    top = data.top_exposures
    assert "customer_id" not in top.columns  # the board pack names no client, it tells rows apart
    assert list(top["customer_ref"][:2]) == [pseudonym.of("customer", "C5"), pseudonym.of("customer", "C3")]
    c1 = top[top["customer_ref"] == pseudonym.of("customer", "C1")].iloc[0]
    assert (c1["accounts"], c1["outstanding_usd"], c1["worst_grade"]) == (2, D("6700"), "Special Mention")


def test_load_month_customer_type_from_staging_snapshot(marts_db: str) -> None:
    """Without a mart carrying customer_type, the month end's customers snapshot in staging is the exception."""
    with psycopg.connect(marts_db) as conn:
        conn.execute(
            "create schema if not exists staging; create table staging.stg_core_banking__customers"
            " (customer_id text, customer_type text, business_date date)"
        )
        conn.execute(
            "insert into staging.stg_core_banking__customers values"
            " ('C1','AGENT','2026-01-31'), ('C2','SME','2026-01-31'), ('C3','MSME','2026-01-31'),"
            " ('C4','RETAIL','2026-01-31'), ('C5','SME','2026-01-31'), ('C5','RETAIL','2026-02-01')"
        )
        data = publish.load_month(conn, MONTH_END)
    by_type = data.cube.groupby("customer_type")["outstanding_usd"].sum()
    assert by_type.to_dict() == {"AGENT": D("6700"), "SME": D("82000"), "MSME": D("7500"), "RETAIL": D("0")}
    assert any("staging.stg_core_banking__customers" in n for n in data.notes)


def test_review_list_officer_name_from_the_mart_wins(marts_db: str, tmp_path: Path) -> None:
    """rpt_review_list's officer_name (the dbt model carries it) names the officer's sheet, over dim_officers;
    a review list without the column takes the names from dim_officers."""
    with psycopg.connect(marts_db) as conn:
        conn.execute(
            "update marts.rpt_review_list set officer_name = 'Sok Dara (CM)' where officer_id = 'CM1'"
        )
        data = publish.load_month(conn, MONTH_END)
        conn.execute("alter table marts.rpt_review_list drop column officer_name")
        without_names = publish.load_month(conn, MONTH_END)
    write_review_lists(data, tmp_path)
    names = openpyxl.load_workbook(tmp_path / "review-lists" / "B01.xlsx").sheetnames
    assert names == ["SM SM1", "AM AM1", "CM1 Sok Dara (CM)", "CM3 Chan Sophea"]
    assert set(without_names.review_list["officer_name"]) >= {"Sok Dara", "Keo Vanna"}


def test_load_month_names_the_missing_mart(fresh_db: str) -> None:
    with (
        psycopg.connect(fresh_db) as conn,
        pytest.raises(publish.MartMissing, match=r"marts\.fct_od_month_end"),
    ):
        publish.load_month(conn, MONTH_END)


def test_load_month_refuses_a_month_without_portfolio_row(marts_db: str) -> None:
    with psycopg.connect(marts_db) as conn, pytest.raises(publish.MartMissing, match="2026-02-28"):
        publish.load_month(conn, date(2026, 2, 28))


# --- review lists --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(month: publish.MonthData, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("reports") / "2026-01"
    return out, publish.render_month(month, out)


def test_render_month_writes_every_report(rendered: tuple[Path, list[Path]]) -> None:
    out, files = rendered
    names = sorted(str(p.relative_to(out)) for p in files)
    assert names == sorted(
        ["board-pack.html", "board-pack.pdf", "dashboard.html"]
        + [f"review-lists/{b}.{ext}" for b in ("B01", "B02", "B03") for ext in ("csv", "xlsx")]
    )
    assert all(p.is_file() and p.stat().st_size > 0 for p in files)
    assert sorted(p for p in out.rglob("*") if p.is_file()) == sorted(files)


def test_render_month_fails_when_the_pack_beside_the_lists_fails(
    month: publish.MonthData, tmp_path: Path
) -> None:
    """The board pack is rendered by a second process while the review lists are written: its failure is the
    month's, with the process's own error in the log (the PDF's path is taken by a folder here)."""
    (tmp_path / "board-pack.pdf").mkdir()
    with pytest.raises(RuntimeError, match="board pack and dashboard were not rendered"):
        publish.render_month(month, tmp_path)
    assert (tmp_path / "review-lists" / "B01.xlsx").is_file()  # the lists were written meanwhile


def test_two_processes_share_the_review_lists_branch_by_branch(
    month: publish.MonthData,
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """render_month's second process writes, after the pack, the branches the first has not claimed: a branch
    claimed elsewhere is left to its claimant, the others are written largest first, and both processes' files
    are the bytes one process writes."""
    out, _ = rendered
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "B02").touch()  # taken by the other process
    asked: list[str] = []
    claim = review_lists._claim
    monkeypatch.setattr(
        review_lists, "_claim", lambda folder, code: asked.append(code) or claim(folder, code)
    )
    written = write_review_lists(month, tmp_path, claims=claims)
    items = month.review_list["branch_code"].value_counts()
    assert [items.get(code, 0) for code in asked] == sorted(items.get(c, 0) for c in ("B01", "B02", "B03"))[
        ::-1
    ]
    assert [p.name for p in written] == ["B01.xlsx", "B01.csv", "B03.xlsx", "B03.csv"]
    assert not (tmp_path / "review-lists" / "B02.xlsx").exists()
    assert write_review_lists(month, tmp_path / "late", claims=claims) == []  # every branch taken
    listed = claimed_files(tmp_path, claims)
    assert [p.name for p in listed] == [
        f"{b}.{ext}" for b in ("B01", "B02", "B03") for ext in ("xlsx", "csv")
    ]
    for path in written:
        assert path.read_bytes() == (out / path.relative_to(tmp_path)).read_bytes(), path


def test_review_workbook_sheets_per_officer_and_manager(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    b01 = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")
    assert b01.sheetnames == ["SM SM1", "AM AM1", "CM1 Sok Dara", "CM3 Chan Sophea"]
    b02 = openpyxl.load_workbook(out / "review-lists" / "B02.xlsx")
    assert b02.sheetnames == ["SM SM1", "AM AM2", "CM2 Keo Vanna"]
    b03 = openpyxl.load_workbook(out / "review-lists" / "B03.xlsx")
    assert b03.sheetnames == ["No items"]
    assert b03["No items"].max_row == 2  # title and header only


def test_review_officer_sheet_content_and_formats(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    sheet = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")["CM1 Sok Dara"]
    header = [c.value for c in sheet[2]]
    assert header == [
        "លេខគណនី / Account",
        "លេខអតិថិជន / Customer",
        "មូលហេតុ / Reason",
        "ព័ត៌មានលម្អិត / Detail",
        "រូបិយប័ណ្ណ / Currency",
        "ចំនួនទឹកប្រាក់ / Amount",
        "ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)",
    ]
    assert "Sok Dara" in sheet["A1"].value and "January 2026" in sheet["A1"].value
    assert sheet.freeze_panes == "A3"
    assert sheet.print_title_rows == "$1:$2"
    assert sheet.page_setup.orientation == "landscape"
    # 100 %, never shrunk to fit: a scale left out is 100, and a sheet without page set-up properties does not fit
    assert sheet.page_setup.scale in (None, 100)
    assert sheet.sheet_properties.pageSetUpPr is None or not sheet.sheet_properties.pageSetUpPr.fitToPage
    # a width applies to its columns min to max (columns of one width are written as one range)
    widths = [d.width * (d.max - d.min + 1) for d in sheet.column_dimensions.values()]
    assert 100 < sum(widths) <= workbook.PRINTABLE_WIDTH  # A4 landscape at 100%: no shrinking to fit
    assert "Sok Dara" in sheet.oddFooter.left.text and "&P / &N" in sheet.oddFooter.right.text
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=3)]
    # reason order of the rulebook, then the largest amount; subtotals per reason, then distinct accounts
    assert [(r[0], r[2]) for r in rows[:4]] == [
        ("A1", labels.reason_label("EXCESS")),
        ("A2", labels.reason_label("NO_TRANSACTION")),
        ("A1", labels.reason_label("GRADE")),
        ("A1", labels.reason_label("BREACH")),
    ]
    khr = sheet.cell(row=4, column=6)
    assert (khr.value, khr.number_format) == (12000000, "#,##0")  # KHR: whole riel
    assert sheet.cell(row=4, column=7).number_format == "#,##0.00"
    assert sheet.cell(row=4, column=7).value == 3000
    usd = sheet.cell(row=3, column=6)
    assert (usd.value, usd.number_format) == (200, "#,##0.00")
    subtotal = labels.bilingual(labels.SUBTOTAL)
    assert [(r[0], r[2], r[6]) for r in rows[4:-1]] == [
        (subtotal, labels.reason_label(code), amount)
        for code, amount in (("EXCESS", 200), ("NO_TRANSACTION", 3000), ("GRADE", 5200), ("BREACH", 5000))
    ]
    # two accounts (A1 in three reasons): counted once, and no amount summed across reasons
    assert rows[-1][0] == "សរុប / Total" and rows[-1][6] is None
    assert rows[-1][3].endswith("Accounts, each counted once: 2")
    detail_row = next(i for i, r in enumerate(rows, start=3) if r[3] and len(r[3]) > 40)
    assert sheet.row_dimensions[detail_row].height >= 2 * workbook.LINE_HEIGHT  # wrapped text gets its lines
    thb = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")["CM3 Chan Sophea"].cell(row=3, column=6)
    assert (thb.value, thb.number_format) == (200000.5, "#,##0.00")


def test_a_cells_style_follows_its_own_value_and_format(tmp_path: Path) -> None:
    """write_table shares one format among the cells alike (number format, wrap, bold): a date in a column without
    a format is shown as a date (a time of day as one too), text beside it stays General, the total row is bold on
    its fill, and a currency column's decimals follow each row's currency."""
    book = workbook.new_workbook("t")
    columns = [
        workbook.Column("note", 10),
        workbook.Column("opened", 10),
        workbook.Column("amount", 12, currency_field="currency"),
    ]
    records = [
        {"note": "a", "opened": date(2026, 1, 31), "amount": D("1.5"), "currency": "USD"},
        {"note": "b", "opened": datetime(2026, 2, 1, 8, 30), "amount": D("1500"), "currency": "KHR"},
        {"note": "c", "opened": date(2026, 3, 1), "amount": D("2.25"), "currency": "USD"},
    ]
    workbook.write_table(book, "s", "t", columns, records, total_rows=[{"note": "total"}])
    saved = workbook.save(book, tmp_path / "t.xlsx", datetime(2026, 3, 31))
    sheet = openpyxl.load_workbook(saved)["s"]
    first = workbook.HEADER_ROW + 1
    assert [sheet.cell(first + i, 2).value for i in range(3)] == [
        datetime(2026, 1, 31),
        datetime(2026, 2, 1, 8, 30),
        datetime(2026, 3, 1),
    ]
    assert [sheet.cell(first + i, 1).number_format for i in range(3)] == ["General"] * 3
    assert [sheet.cell(first + i, 2).number_format for i in range(3)] == [
        "yyyy-mm-dd",
        "yyyy-mm-dd h:mm:ss",
        "yyyy-mm-dd",
    ]
    amounts = [sheet.cell(first + i, 3).number_format for i in range(3)]
    assert amounts[0] == amounts[2] != amounts[1]
    total = sheet.cell(first + 3, 1)
    assert total.font.bold and total.fill.fgColor.rgb.endswith("F2F2F2")
    assert not sheet.cell(first, 1).font.bold


def test_review_summary_sheets_roll_up_by_reason(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    book = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")
    sheet = book["AM AM1"]
    assert [c.value for c in sheet[2]] == [
        "មន្ត្រីឥណទាន / Officer",
        "ឈ្មោះមន្ត្រី / Officer name",
        "មូលហេតុ / Reason",
        "ចំនួនគណនី / Accounts",
        "ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)",
    ]
    assert sheet.freeze_panes == "A3"
    rows = [tuple(c.value for c in r) for r in sheet.iter_rows(min_row=3)]
    total = labels.bilingual(labels.TOTAL)
    everyone = "មន្ត្រីទាំងអស់ / All officers"
    assert rows == [
        ("CM1", "Sok Dara", labels.reason_label("EXCESS"), 1, 200),
        ("CM1", "Sok Dara", labels.reason_label("NO_TRANSACTION"), 1, 3000),
        ("CM1", "Sok Dara", labels.reason_label("GRADE"), 1, 5200),
        ("CM1", "Sok Dara", labels.reason_label("BREACH"), 1, 5000),
        ("CM1", "Sok Dara", total, 2, None),
        ("CM3", "Chan Sophea", labels.reason_label("CONVERSION_CANDIDATE"), 1, 6000.02),
        ("CM3", "Chan Sophea", labels.reason_label("GRADE"), 1, 7500),
        ("CM3", "Chan Sophea", total, 1, None),
        (everyone, None, labels.reason_label("EXCESS"), 1, 200),
        (everyone, None, labels.reason_label("NO_TRANSACTION"), 1, 3000),
        (everyone, None, labels.reason_label("CONVERSION_CANDIDATE"), 1, 6000.02),
        (everyone, None, labels.reason_label("GRADE"), 2, 12700),
        (everyone, None, labels.reason_label("BREACH"), 1, 5000),
        (everyone, None, total, 3, None),
    ]
    assert sheet.cell(row=3, column=5).number_format == "#,##0.00"
    sm = openpyxl.load_workbook(out / "review-lists" / "B02.xlsx")["SM SM1"]
    sm_rows = [tuple(c.value for c in r) for r in sm.iter_rows(min_row=3)]
    # one account in three reasons: counted once; its balance is not added up three times (was 79,004.50)
    assert sm_rows[-4:] == [
        (everyone, None, labels.reason_label("GRADE"), 1, 79000),
        (everyone, None, labels.reason_label("MATURITY"), 1, 0),  # a null amount counts as none
        (everyone, None, labels.reason_label("RECONCILIATION"), 1, 4.5),
        (everyone, None, total, 1, None),
    ]


def test_review_csv_matches_the_sheets_with_bom(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    raw = (out / "review-lists" / "B01.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 6
    by_key = {(r["លេខគណនី / Account"], r["មូលហេតុ / Reason"]): r for r in rows}
    khr = by_key["A2", labels.reason_label("NO_TRANSACTION")]
    assert (khr["ចំនួនទឹកប្រាក់ / Amount"], khr["ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)"]) == ("12000000", "3000.00")
    thb = by_key["A3", labels.reason_label("CONVERSION_CANDIDATE")]
    assert (thb["ចំនួនទឹកប្រាក់ / Amount"], thb["ឈ្មោះមន្ត្រី / Officer name"]) == ("200000.50", "Chan Sophea")
    assert (thb["អ្នកគ្រប់គ្រង / Manager"], thb["អ្នកគ្រប់គ្រងជាន់ខ្ពស់ / Senior manager"]) == ("AM1", "SM1")
    b02 = list(
        csv.DictReader(io.StringIO((out / "review-lists" / "B02.csv").read_text(encoding="utf-8-sig")))
    )
    maturity = next(r for r in b02 if r["មូលហេតុ / Reason"] == labels.reason_label("MATURITY"))
    assert maturity["ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)"] == ""


def test_lists_and_dashboard_are_reproducible(
    month: publish.MonthData, rendered: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    """Same marts, same bytes (the manifest hashes them): no hidden clock or random id in any file.

    The board pack's PDF is compared in the board pack test.
    """
    out, _ = rendered
    again = [*write_review_lists(month, tmp_path), render_dashboard(month, tmp_path)]
    for path in again:
        assert path.read_bytes() == (out / path.relative_to(tmp_path)).read_bytes(), path


# --- board pack ----------------------------------------------------------------------------------------------


def pdf_page_objects(pdf: bytes) -> int:
    """Count ``/Type /Page`` objects, in plain objects and in compressed object streams."""
    pattern = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
    count = len(pattern.findall(pdf))
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            count += len(pattern.findall(zlib.decompress(match.group(1))))
        except zlib.error:
            continue
    return count


def test_board_pack_pdf_pages_and_html_sections(
    month: publish.MonthData,
    rendered: tuple[Path, list[Path]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        pack = render_board_pack(month, tmp_path)
    # the charts' SVG style attributes are no CSS WeasyPrint knows, and every id is defined once
    noise = [
        r.getMessage()
        for r in caplog.records
        if "unknown property" in r.getMessage() or "twice" in r.getMessage()
    ]
    assert noise == []
    pdf = pack.pdf.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert pdf == (rendered[0] / "board-pack.pdf").read_bytes()  # reproducible, byte for byte
    assert pack.pages >= 5
    assert pdf_page_objects(pdf) == pack.pages
    html = pack.html.read_text(encoding="utf-8")
    # every id once, the inlined charts' marker and clip-path definitions included (WeasyPrint warns per
    # duplicate anchor)
    assert [i for i, n in Counter(re.findall(r'\sid="([^"]+)"', html)).items() if n > 1] == []
    for heading in (
        "Portfolio size and trend",
        "OD share against the 10% cap",
        "Grade distribution and provisions",
        "Top exposures",
        "Concentration",
        "By province",
        "By currency",
        "By customer type",
        "Limit utilization",
        "Conversion candidates",
        "Policy breaches",
        "Reconciliation with the core banking",
        "Social performance and client protection",
    ):
        assert heading in html, heading
    assert "Test MFI Plc." in html and "January 2026" in html
    assert "96,200.00" in html  # OD outstanding with thousands separators
    assert "counter(pages)" in html and '"Noto Sans Khmer"' in html  # test_report_fonts_and_provinces
    assert html.count("<svg") >= 8  # charts inline, not linked
    group_ids = Counter(re.findall(r'<g id="([^"]+)"', html))
    assert [i for i, n in group_ids.items() if n > 1] == []  # several charts, one page: no repeated anchors
    assert "The social performance marts are not built" in html  # none scripted here: test_social_performance
    # breach and reconciliation lists: accounts told apart by pseudonym, never by their core-banking ID
    assert "CROSS_FINANCE_EXPOSURE" in html and pseudonym.of("account", "A5") in html
    assert not re.search(r">(A|C)\d+<", html)
    summary = re.search(r'<p class="summary">(.*?)</p>', html, re.S)
    assert summary is not None
    text = " ".join(re.sub(r"<[^>]+>", "", summary.group(1)).split())  # figures are links to their sections
    assert (
        "USD 96,200.00 on 6 accounts (5 drawn, 1 active with nothing drawn), 8.8% of the total loan portfolio"
        " of USD 1,096,200.00, within" in text
    )
    assert (
        "The month closed with 1 account over the limit, 1 account proposed for conversion to a term loan,"
        " 2 accounts failing a policy check and 1 account with a reconciliation break" in text
    )


def test_board_pack_opens_with_par_30_and_the_roll_rate_heat_map(rendered: tuple[Path, list[Path]]) -> None:
    """Rulebook K in the pack: PAR 30 first on the cover, then PAR, risk coverage and roll rates before section 1."""
    html = (rendered[0] / "board-pack.html").read_text(encoding="utf-8")
    kpis = re.findall(
        r'<a class="kpi" href="#[\w-]+"><div class="label">(.*?)</div><div class="value[^"]*">([^<]+)<',
        html,
    )
    label, value = kpis[0]  # the label in Khmer, then in English
    assert label.endswith("</span> / PAR 30, OD and term loans") and value == "9.72%"  # 106,500 / 1,096,200
    quality = html.index("Portfolio at risk, risk coverage and roll rates")
    assert quality < html.index('<h2 id="trend">1. ')
    section = html[quality : html.index('<h2 id="trend">1. ')]
    assert (
        "PAR 30, OD and term loans" in section
        and "Risk coverage (provisions / PAR 30 outstanding)" in section
    )
    assert section.count("<svg") == 2  # PAR 30 trend and risk coverage trend
    assert "80%" in section  # risk coverage 85,701 / 106,500
    assert "Written Off" in section and "Converted" in section and ">New<" in section
    # heat map: Normal -> Normal is 2 of the row's 4 OD accounts (half-way to red), Doubtful -> Loss all of 1
    assert 'style="background: #db8e8e">2<span class="usd">4,500.00</span>' in section
    assert 'class="dark" style="background: #b71c1c">1<span class="usd">79,000.00</span>' in section


def test_dashboard_quality_section_is_filterable(rendered: tuple[Path, list[Path]]) -> None:
    """The dashboard carries PAR per book and month end, per segment, and the migration cells, as exact text."""
    html = (rendered[0] / "dashboard.html").read_text(encoding="utf-8")
    match = re.search(r'<script type="application/json" id="quality-data">(.*?)</script>', html, re.S)
    assert match is not None
    data = json.loads(match.group(1))
    assert len(data["par"]) == 13 * 3 and len(data["migration"]) == len(MIGRATION)
    now = [p for p in data["par"] if p["month_end"] == MONTH_END.isoformat() and p["product_family"] == "ALL"]
    assert now[0]["par30_usd"] == "106500" and now[0]["months_in_window"] == 12
    assert {(s["segment_type"], s["segment_value"]) for s in data["segments"]} == {
        ("BRANCH", "B01"),
        ("BRANCH", "B02"),
    }
    for control in ("quality-family", "quality-segment-type", "quality-segment-value", "quality-measure"):
        assert f'id="{control}"' in html
    assert 'Plotly.react("chart-roll-rates"' in html and '"heatmap"' in html


def test_board_pack_with_short_history(fresh_db: str, tmp_path: Path) -> None:
    """A first month end (no trend yet) still renders a complete pack."""
    ScriptedMarts(fresh_db).create(history_months=1)
    with psycopg.connect(fresh_db) as conn:
        data = publish.load_month(conn, MONTH_END)
    assert data.previous_portfolio is None
    pack = render_board_pack(data, tmp_path)
    assert pack.pages >= 5
    assert "1 month end(s) of history (the warehouse holds no earlier month end)" in pack.html.read_text()


def test_month_without_accounts_or_review_items(marts_db: str, tmp_path: Path) -> None:
    """An empty OD book still publishes: zero tables, empty charts, one "No items" list per branch."""
    with psycopg.connect(marts_db) as conn:
        conn.execute("delete from marts.fct_od_month_end; delete from marts.rpt_review_list")
        data = publish.load_month(conn, MONTH_END)
    files = publish.render_month(data, tmp_path, generated_at=datetime(2026, 2, 1, 6, 0))
    assert len(files) == 9
    html = (tmp_path / "board-pack.html").read_text(encoding="utf-8")
    assert "Generated 2026-02-01T06:00." in html  # the only clock time, and only when passed in
    assert "No OD outstanding." in html and "0 account(s) with no net cash inflow" in html
    assert openpyxl.load_workbook(tmp_path / "review-lists" / "B01.xlsx").sheetnames == ["No items"]


# --- privacy and self-containment ----------------------------------------------------------------------------


def texts_of(path: Path) -> list[str]:
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as book:
            return [book.read(n).decode("utf-8", "replace") for n in book.namelist()]
    return [path.read_bytes().decode("utf-8", "replace")]


def test_no_client_identifier_reaches_any_output(rendered: tuple[Path, list[Path]], marts_db: str) -> None:
    """National ids and phones sit in pii.customers of the same database: no output holds them.

    The PDF's text is glyph-encoded, so it is checked through the HTML it is printed from.
    """
    out, files = rendered
    alerts = _alert_lists(marts_db, out / "alerts")
    for path in [*files, *alerts]:
        for text in texts_of(path):
            for secret in (NATIONAL_ID, PHONE, "0099887766"):
                assert secret not in text, (path, secret)
            if path.name != "dashboard.html":  # plotly.js itself mentions phones (user-agent sniffing)
                assert not re.search(r"national[ _]?id|\bphone", text, re.I), path
    data_json = re.search(
        r'<script type="application/json" id="month-data">(.*?)</script>',
        (out / "dashboard.html").read_text(),
        re.S,
    )
    assert data_json is not None and not re.search(r"national|phone|C1|C5", data_json.group(1), re.I)


def test_html_outputs_fetch_nothing(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    for name in ("board-pack.html", "dashboard.html"):
        html = (
            (out / name).read_text(encoding="utf-8").replace(get_plotlyjs(), "")
        )  # its own strings hold URLs
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:|//|file:|/)""", html), name
        assert not re.search(r"@import|url\(\s*['\"]?(?:https?:|//|file:)", html), name
    assert "Plotly" in (out / "dashboard.html").read_text(encoding="utf-8")


# --- daily agent alert lists ---------------------------------------------------------------------------------

CUSTOMER, ASSIGNED_TO = "លេខអតិថិជន / Customer", "អ្នកទទួលខុសត្រូវ / Assigned to"
DAYS_OPEN, ESCALATED_ON = "ចំនួនថ្ងៃបើក / Days open", "ថ្ងៃបញ្ជូនបន្ត / Escalated on"


def jan(day: int) -> date:
    return date(2026, 1, day)


ALERTS = [  # customer, account, officer, rm, branch, reason, opened, last abnormal, closed, escalated_on
    ("C1", "A1", "CM1", "RM1", "B01", "EXCESS", jan(20), jan(21), None, None),
    ("C3", "A3", "CM3", "RM1", "B01", "CASH_WITHDRAWAL", jan(14), jan(21), None, jan(17)),
    ("C2", "A2", "CM1", "RM1", "B01", "ABNORMAL_DRAWDOWN", jan(10), jan(11), jan(12), None),
    ("C5", "A5", "CM2", "RM1", "B02", "EXCESS", jan(21), jan(21), None, None),
    ("C4", "A4", "CM2", "RM1", "B02", "CASH_WITHDRAWAL", jan(22), jan(22), None, None),
]


def _alert_lists(url: str, out_dir: Path, day: date = date(2026, 1, 21)) -> list[Path]:
    with psycopg.connect(url) as conn:
        conn.execute("delete from marts.fct_agent_alerts")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.fct_agent_alerts (customer_id, od_account_id, officer_id, regional_manager_id,"
                " branch_code, reason, detail, opened_on, last_abnormal_on, closed_on, escalated_on, escalated,"
                " days_open, abnormal_days, status, currency, detail_params)"
                " values (%s, %s, %s, %s, %s, %s, 'detail ' || %s, %s, %s, %s, %s, %s::date is not null, 1, 1, 'X', 'USD',"
                " jsonb_build_object('excess_days', 2, 'peak_excess', '150.5'))",
                [(*a[:6], a[0], *a[6:], a[9]) for a in ALERTS],
            )
        conn.commit()
        return publish.write_agent_alert_lists(conn, day, out_dir)


def test_agent_alert_lists_per_branch(marts_db: str, tmp_path: Path) -> None:
    files = _alert_lists(marts_db, tmp_path)
    assert sorted(p.name for p in files) == [
        f"{b}.{e}" for b in ("B01", "B02", "B03") for e in ("csv", "xlsx")
    ]
    b01 = list(csv.DictReader(io.StringIO((tmp_path / "B01.csv").read_text(encoding="utf-8-sig"))))
    # the escalated alert first; the alert closed on the 12th is off the list
    assert [(r[CUSTOMER], r[ASSIGNED_TO], r[DAYS_OPEN]) for r in b01] == [
        ("C3", "RM1", "8"),
        ("C1", "CM1", "2"),
    ]
    assert b01[0]["ស្ថានភាព / Status"].endswith("Escalated to Regional Manager")
    assert b01[0][ESCALATED_ON] == "2026-01-17"
    b02 = list(csv.DictReader(io.StringIO((tmp_path / "B02.csv").read_text(encoding="utf-8-sig"))))
    assert [r[CUSTOMER] for r in b02] == ["C5"]  # C4 opens the next day
    assert (tmp_path / "B03.csv").read_text(encoding="utf-8-sig").count("\n") == 1  # header only
    sheet = openpyxl.load_workbook(tmp_path / "B01.xlsx").active
    assert sheet is not None and sheet.freeze_panes == "A3"
    assert sheet.cell(row=2, column=1).value == "ស្ថានភាព / Status"
    assert sheet.cell(row=3, column=4).value == "C3"


def test_agent_alert_state_is_the_days_state(marts_db: str, tmp_path: Path) -> None:
    """On the 15th the alert of C3 (escalated on the 17th) is still open and with its officer."""
    _alert_lists(marts_db, tmp_path, date(2026, 1, 15))
    b01 = list(csv.DictReader(io.StringIO((tmp_path / "B01.csv").read_text(encoding="utf-8-sig"))))
    assert [(r[CUSTOMER], r[ASSIGNED_TO], r[ESCALATED_ON]) for r in b01] == [("C3", "CM3", "")]


# --- printed as an office suite prints them (issue 13: LibreOffice converts, poppler reads the PDF) -----------

SOFFICE, PDFTOTEXT = shutil.which("soffice"), shutil.which("pdftotext")
needs_office = pytest.mark.skipif(
    not (SOFFICE and PDFTOTEXT),
    reason="LibreOffice (Debian libreoffice-calc-nogui) or pdftotext (poppler-utils) is not installed; "
    "`make test` installs both with apt when run as root",
)
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def printed_pages(workbooks: list[Path], out: Path) -> dict[str, list[list[tuple[float, ...] | str]]]:
    """Each workbook printed to PDF by LibreOffice; per workbook, its pages as [(x0, y0, x1, y1, word), ...]."""
    profile = out / "libreoffice-profile"  # a private profile: no clash with a running office
    convert = [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf"]
    subprocess.run([*convert, "--outdir", str(out), *map(str, workbooks)], check=True, capture_output=True)
    printed = {}
    for book in workbooks:
        html = subprocess.run(
            [PDFTOTEXT, "-bbox", str(out / f"{book.stem}.pdf"), "-"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        printed[book.stem] = [
            [(*map(float, m.groups()[:4]), m.group(5)) for m in WORD.finditer(page)]
            for page in html.split("<page ")[1:]
        ]
    return printed


def _overprinted(words: list) -> list[tuple[str, str]]:
    """Pairs of Latin words printed on top of each other: boxes that overlap across, and by more than half a
    line down (a line's box reaches a little into the next line's, so a small vertical overlap is normal)."""
    latin = [w for w in words if w[4].isascii()]
    return [
        (a[4], b[4])
        for i, a in enumerate(latin)
        for b in latin[i + 1 :]
        if min(a[2], b[2]) - max(a[0], b[0]) > 1
        and min(a[3], b[3]) - max(a[1], b[1]) > min(a[3] - a[1], b[3] - b[1]) / 2
    ]


@needs_office
def test_review_and_alert_lists_print_readably(
    rendered: tuple[Path, list[Path]], marts_db: str, tmp_path: Path
) -> None:
    out, _ = rendered
    alerts = [p for p in _alert_lists(marts_db, tmp_path / "alerts") if p.suffix == ".xlsx"]
    reviews = sorted((out / "review-lists").glob("*.xlsx"))
    printed = [
        (book, pages)
        for kind, books in (("reviews", reviews), ("alerts", alerts))
        for book, pages in zip(books, printed_pages(books, tmp_path / kind).values(), strict=True)
    ]
    for book_path, pages in printed:
        book = openpyxl.load_workbook(book_path)
        assert len(pages) >= len(book.sheetnames), book_path.name  # each sheet starts a page
        for number, page in enumerate(pages, start=1):
            # every page prints the whole width: the first and the last column's header (repeated rows)
            page_text = " ".join(str(w[4]) for w in page)
            firsts_and_lasts = {(s.cell(2, 1).value, s.cell(2, s.max_column).value) for s in book}
            assert any(
                first.split(" / ")[1].split()[0] in page_text
                and last.split(" / ")[1].split()[-1] in page_text
                for first, last in firsts_and_lasts
            ), (book_path.name, number, page_text[:200])
        words = [w for page in pages for w in page]
        text = " ".join(str(w[4]) for w in words)
        for sheet in book:
            for row in sheet.iter_rows(min_row=3, values_only=True):
                for value in row:
                    if isinstance(value, str) and re.fullmatch(r"[A-Z]+\d+", value):  # account, customer ids
                        assert value in text, (book_path.name, sheet.title, value)
                    if isinstance(value, str) and " / " in value:  # the full English half of every label
                        assert value.split(" / ", 1)[1] in text, (book_path.name, sheet.title, value)
        for number, page in enumerate(pages, start=1):
            assert _overprinted(page) == [], (book_path.name, number)
            heights = sorted(w[3] - w[1] for w in page if str(w[4]).isascii())
            assert heights[len(heights) // 2] >= 10, (book_path.name, number)  # 11-pt text at 100%, readable
