"""Month reports (odwh.publish) from a scripted set of marts in a real PostgreSQL.

The marts are created here with the published columns (``/shared/spec/published-interface.md``) and a handful
of rows, so the renderers are tested without a dbt build; ``ScriptedMarts`` is shared with
``test_dashboard_browser.py``. Every output is opened and read back: XLSX with openpyxl, CSV with the csv
module, the PDF's bytes, the HTML's text.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import openpyxl
import psycopg
import pytest
from odwh import publish, warehouse
from odwh.publish import labels
from odwh.publish.board_pack import render_board_pack
from odwh.publish.dashboard import render_dashboard
from odwh.publish.review_lists import write_review_lists
from plotly.offline import get_plotlyjs

D = Decimal
MONTH_END = date(2026, 1, 31)
NATIONAL_ID = "KH-NID-0099887766"
PHONE = "+855 12 999 888"

MARTS_DDL = """
create schema if not exists marts;
create table marts.dim_branches (branch_code text primary key, branch_name text, province text, region_code text,
    region_name text, as_of_date date not null, load_id bigint);
create table marts.dim_officers (officer_id text primary key, officer_name text, role text, branch_code text,
    manager_id text, senior_manager_id text, regional_manager_id text, as_of_date date not null, load_id bigint);
create table marts.fct_od_month_end (
    od_account_id text, month_end date, customer_id text, branch_code text, officer_id text, currency text,
    limit_amount numeric, principal_outstanding numeric, interest_due numeric, unutilized_fee_due numeric,
    excess_fee_due numeric, core_interest_charged numeric, reconciliation_break boolean, days_past_due integer,
    nbc_grade text, provision_rate numeric, provision_amount numeric, principal_outstanding_usd numeric,
    provision_amount_usd numeric, conversion_candidate boolean, stagnant_amount_60d numeric,
    policy_breaches text[], primary key (od_account_id, month_end));
create table marts.fct_portfolio_month_end (
    month_end date primary key, od_outstanding_usd numeric, term_loan_outstanding_usd numeric,
    total_portfolio_usd numeric, od_share numeric, od_cap numeric, cap_breached boolean, npl_ratio_od numeric,
    provision_total_usd numeric);
create table marts.fct_grade_distribution_month_end (
    month_end date, product_family text, nbc_grade text, accounts integer, outstanding_usd numeric,
    provision_usd numeric, primary key (month_end, product_family, nbc_grade));
create table marts.rpt_review_list (
    month_end date, od_account_id text, reason text, officer_id text, manager_id text, senior_manager_id text,
    branch_code text, customer_id text, currency text, amount numeric, detail text, amount_usd numeric,
    primary key (month_end, od_account_id, reason));
create table marts.fct_agent_alerts (
    customer_id text, od_account_id text, officer_id text, regional_manager_id text, assigned_to_id text,
    branch_code text, currency text, reason text, detail text, opened_on date, last_abnormal_on date,
    closed_on date, abnormal_days integer, days_open integer, escalated boolean, escalated_on date, status text,
    primary key (customer_id, opened_on));
"""

BRANCHES = [
    ("B01", "Phnom Penh Main", "Phnom Penh"),
    ("B02", "Battambang", "Battambang"),
    ("B03", "Siem Reap", "Siem Reap"),  # no account and no review item
]
OFFICERS = [  # officer_id, name, role, branch, manager, senior manager, regional manager
    ("RM1", "Meas Rithy", "RM", "B01", None, None, None),
    ("SM1", "Lim Chenda", "SM", "B01", "RM1", None, "RM1"),
    ("AM1", "Ouk Sothea", "AM", "B01", "SM1", "SM1", "RM1"),
    ("AM2", "Heng Malis", "AM", "B02", "SM1", "SM1", "RM1"),
    ("CM1", "Sok Dara", "CM", "B01", "AM1", "SM1", "RM1"),
    ("CM3", "Chan Sophea", "CM", "B01", "AM1", "SM1", "RM1"),
    ("CM2", "Keo Vanna", "CM", "B02", "AM2", "SM1", "RM1"),
]
# od_account_id, customer, branch, officer, ccy, limit, principal, usd, grade, dpd, provision usd, candidate,
# stagnant, breaches, interest due, core interest, break
ACCOUNTS = [
    ("A1", "C1", "B01", "CM1", "USD", "5000", "5200", "5200", "Special Mention", 20, "156", False, "0",
     ["AGENT_LIMIT_EXCEEDED"], "78.00", "78.00", False),
    ("A2", "C2", "B01", "CM1", "KHR", "20000000", "12000000", "3000", "Normal", 0, "30", False, "0", [],
     "180000", "180000", False),
    ("A3", "C3", "B01", "CM3", "THB", "300000", "250000", "7500", "Substandard", 45, "1500", True, "200000",
     [], "3750.00", "3750.00", False),
    ("A4", "C4", "B02", "CM2", "USD", "10000", "0", "0", "Normal", 0, "0", False, "0", [], "0", "0", False),
    ("A5", "C5", "B02", "CM2", "USD", "80000", "79000", "79000", "Loss", 120, "79000", False, "0",
     ["CROSS_FINANCE_EXPOSURE", "RESTRUCTURED"], "1185.00", "1180.50", True),
    ("A6", "C1", "B01", "CM1", "USD", "2000", "1500", "1500", "Normal", 0, "15", False, "0", [], "22.50",
     "22.50", False),
]  # fmt: skip
OD_TOTAL = D("96200")  # 5200 + 3000 + 7500 + 0 + 79000 + 1500
TERM_TOTAL = D("1000000")
# od_account_id, reason, officer, manager, senior, branch, customer, ccy, amount, detail, amount_usd
REVIEW = [
    ("A1", "EXCESS", "CM1", "AM1", "SM1", "B01", "C1", "USD", "200", "31 day(s) in excess, peak USD 200.00", "200"),
    ("A1", "BREACH", "CM1", "AM1", "SM1", "B01", "C1", "USD", "5000", "AGENT_LIMIT_EXCEEDED", "5000"),
    ("A1", "GRADE", "CM1", "AM1", "SM1", "B01", "C1", "USD", "5200", "Special Mention (was Normal)", "5200"),
    ("A2", "NO_TRANSACTION", "CM1", "AM1", "SM1", "B01", "C2", "KHR", "12000000.4", "no transaction", "3000.0001"),
    ("A3", "CONVERSION_CANDIDATE", "CM3", "AM1", "SM1", "B01", "C3", "THB", "200000.5", "stagnant", "6000.015"),
    ("A3", "GRADE", "CM3", "AM1", "SM1", "B01", "C3", "THB", "250000", "Substandard", "7500"),
    ("A5", "RECONCILIATION", "CM2", "AM2", "SM1", "B02", "C5", "USD", "4.5", "interest 1185.00 vs 1180.50", "4.5"),
    ("A5", "GRADE", "CM2", "AM2", "SM1", "B02", "C5", "USD", "79000", "Loss", "79000"),
    ("A5", "MATURITY", "CM2", "AM2", "SM1", "B02", "C5", "USD", None, "matures 2026-02-28", None),
]  # fmt: skip


def month_ends(last: date, count: int) -> list[date]:
    """The ``count`` month ends up to ``last``, oldest first."""
    out = [last]
    while len(out) < count:
        first = out[-1].replace(day=1)
        out.append(date.fromordinal(first.toordinal() - 1))
    return out[::-1]


class ScriptedMarts:
    """Creates the marts of a small scripted portfolio (and client identifiers in ``pii`` that must never leak)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def create(self, *, history_months: int = 13) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute(MARTS_DDL)
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into marts.dim_branches values (%s, %s, %s, 'R1', 'Central', %s, 1)",
                    [(*b, MONTH_END) for b in BRANCHES],
                )
                cur.executemany(
                    "insert into marts.dim_officers values (%s, %s, %s, %s, %s, %s, %s, %s, 1)",
                    [(*o, MONTH_END) for o in OFFICERS],
                )
                cur.executemany(
                    "insert into marts.fct_od_month_end (od_account_id, month_end, customer_id, branch_code,"
                    " officer_id, currency, limit_amount, principal_outstanding, principal_outstanding_usd,"
                    " nbc_grade, days_past_due, provision_amount_usd, conversion_candidate, stagnant_amount_60d,"
                    " policy_breaches, interest_due, core_interest_charged, reconciliation_break)"
                    " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(a[0], MONTH_END, *a[1:]) for a in ACCOUNTS],
                )
                cur.executemany(
                    "insert into marts.rpt_review_list (od_account_id, month_end, reason, officer_id, manager_id,"
                    " senior_manager_id, branch_code, customer_id, currency, amount, detail, amount_usd)"
                    " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [(r[0], MONTH_END, *r[1:]) for r in REVIEW],
                )
                cur.executemany(
                    "insert into marts.fct_portfolio_month_end values (%s, %s, %s, %s, %s, 0.10, %s, %s, %s)",
                    self.portfolio_rows(history_months),
                )
                cur.executemany(
                    "insert into marts.fct_grade_distribution_month_end values (%s, %s, %s, %s, %s, %s)",
                    self.grade_rows(),
                )
                cur.executemany(
                    "insert into pii.customers (customer_id, national_id, phone, _business_date, _load_id)"
                    " values (%s, %s, %s, %s, 1)",
                    [(c, NATIONAL_ID, PHONE, MONTH_END) for c in ("C1", "C2", "C3", "C4", "C5")],
                )
            conn.commit()

    @staticmethod
    def portfolio_rows(count: int) -> list[tuple[object, ...]]:
        rows = []
        ends = month_ends(MONTH_END, count)
        for age, end in enumerate(reversed(ends)):  # age 0 = this month end
            od = OD_TOTAL - age * 4000
            term = TERM_TOTAL - age * 10000
            share = od / (od + term)
            npl = D("86500") / OD_TOTAL - age * D("0.02")
            rows.append(
                (end, od, term, od + term, share, share > D("0.10"), npl, D("81701") + 5000 - age * 100)
            )
        return rows

    @staticmethod
    def grade_rows() -> list[tuple[object, ...]]:
        od = {"Normal": (3, "4500", "45"), "Special Mention": (1, "5200", "156"), "Substandard": (1, "7500", "1500"),
              "Doubtful": (0, "0", "0"), "Loss": (1, "79000", "79000")}  # fmt: skip
        term = {"Normal": (40, "950000", "4500"), "Special Mention": (2, "50000", "500")}
        rows = []
        for grade in labels.GRADES:
            a, o, p = od[grade]
            rows.append((MONTH_END, "OD", grade, a, D(o), D(p)))
            ta, to, tp = term.get(grade, (0, "0", "0"))
            rows.append((MONTH_END, "TERM", grade, ta, D(to), D(tp)))
        return rows


@pytest.fixture
def marts_db(fresh_db: str) -> str:
    ScriptedMarts(fresh_db).create()
    return fresh_db


@pytest.fixture(scope="module")
def shared_marts_db(server_url: str) -> Iterator[str]:
    """One scripted database for the tests that only read it (rendering is the slow part: done once)."""
    name = f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    warehouse.migrate(url)
    ScriptedMarts(url).create()
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="module")
def month(shared_marts_db: str) -> publish.MonthData:
    with psycopg.connect(shared_marts_db) as conn:
        return publish.load_month(conn, MONTH_END, institution="Test MFI Plc.")


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
    assert set(data.review_list["officer_name"]) >= {"Sok Dara", "Keo Vanna"}  # names from dim_officers
    assert list(data.top_exposures["customer_id"][:2]) == ["C5", "C3"]
    c1 = data.top_exposures[data.top_exposures["customer_id"] == "C1"].iloc[0]
    assert (c1["accounts"], c1["outstanding_usd"], c1["worst_grade"]) == (2, D("6700"), "Special Mention")


def test_load_month_customer_type_from_staging_snapshot(marts_db: str) -> None:
    """Without a mart carrying customer_type, the month end's customers snapshot in staging is the exception."""
    with psycopg.connect(marts_db) as conn:
        conn.execute(
            "create schema staging; create table staging.stg_core_banking__customers"
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
    """When rpt_review_list carries officer_name (as the dbt model does), it names the officer's sheet."""
    with psycopg.connect(marts_db) as conn:
        conn.execute("alter table marts.rpt_review_list add column officer_name text")
        conn.execute(
            "update marts.rpt_review_list set officer_name = 'Sok Dara (CM)' where officer_id = 'CM1'"
        )
        data = publish.load_month(conn, MONTH_END)
    write_review_lists(data, tmp_path)
    names = openpyxl.load_workbook(tmp_path / "review-lists" / "B01.xlsx").sheetnames
    assert names == ["SM SM1", "AM AM1", "CM1 Sok Dara (CM)", "CM3 Chan Sophea"]


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
        "លេខគណនី / Account", "លេខអតិថិជន / Customer", "មូលហេតុ / Reason", "ព័ត៌មានលម្អិត / Detail",
        "រូបិយប័ណ្ណ / Currency", "ចំនួនទឹកប្រាក់ / Amount", "ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)",
    ]  # fmt: skip
    assert "Sok Dara" in sheet["A1"].value and "January 2026" in sheet["A1"].value
    assert sheet.freeze_panes == "A3"
    assert sheet.print_title_rows == "$1:$2"
    assert sheet.page_setup.orientation == "landscape"
    assert (sheet.page_setup.fitToWidth, sheet.page_setup.fitToHeight) == (1, 0)
    assert sheet.sheet_properties.pageSetUpPr.fitToPage
    assert sheet.column_dimensions["D"].width == 60
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=3)]
    # reason order of the rulebook, then the largest amount; a total line at the end
    assert [(r[0], r[2]) for r in rows[:-1]] == [
        ("A1", labels.reason_label("EXCESS")), ("A2", labels.reason_label("NO_TRANSACTION")),
        ("A1", labels.reason_label("GRADE")), ("A1", labels.reason_label("BREACH")),
    ]  # fmt: skip
    khr = sheet.cell(row=4, column=6)
    assert (khr.value, khr.number_format) == (12000000, "#,##0")  # KHR: whole riel
    assert sheet.cell(row=4, column=7).number_format == "#,##0.00"
    assert sheet.cell(row=4, column=7).value == 3000
    usd = sheet.cell(row=3, column=6)
    assert (usd.value, usd.number_format) == (200, "#,##0.00")
    assert rows[-1][0] == "សរុប / Total" and rows[-1][6] == 13400.0  # 200 + 3000 + 5200 + 5000
    thb = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")["CM3 Chan Sophea"].cell(row=3, column=6)
    assert (thb.value, thb.number_format) == (200000.5, "#,##0.00")


def test_review_summary_sheets_roll_up_by_reason(rendered: tuple[Path, list[Path]]) -> None:
    out, _ = rendered
    book = openpyxl.load_workbook(out / "review-lists" / "B01.xlsx")
    sheet = book["AM AM1"]
    assert [c.value for c in sheet[2]] == [
        "មន្ត្រីឥណទាន / Officer", "ឈ្មោះមន្ត្រី / Officer name", "មូលហេតុ / Reason", "ចំនួនគណនី / Accounts",
        "ចំនួនទឹកប្រាក់ (ដុល្លារ) / Amount (USD)",
    ]  # fmt: skip
    assert sheet.freeze_panes == "A3"
    rows = [tuple(c.value for c in r) for r in sheet.iter_rows(min_row=3)]
    total = labels.bilingual(labels.TOTAL)
    everyone = "មន្ត្រីទាំងអស់ / All officers"
    assert rows == [
        ("CM1", "Sok Dara", labels.reason_label("EXCESS"), 1, 200),
        ("CM1", "Sok Dara", labels.reason_label("NO_TRANSACTION"), 1, 3000),
        ("CM1", "Sok Dara", labels.reason_label("GRADE"), 1, 5200),
        ("CM1", "Sok Dara", labels.reason_label("BREACH"), 1, 5000),
        ("CM1", "Sok Dara", total, 2, 13400),
        ("CM3", "Chan Sophea", labels.reason_label("CONVERSION_CANDIDATE"), 1, 6000.02),
        ("CM3", "Chan Sophea", labels.reason_label("GRADE"), 1, 7500),
        ("CM3", "Chan Sophea", total, 1, 13500.02),
        (everyone, None, labels.reason_label("EXCESS"), 1, 200),
        (everyone, None, labels.reason_label("NO_TRANSACTION"), 1, 3000),
        (everyone, None, labels.reason_label("CONVERSION_CANDIDATE"), 1, 6000.02),
        (everyone, None, labels.reason_label("GRADE"), 2, 12700),
        (everyone, None, labels.reason_label("BREACH"), 1, 5000),
        (everyone, None, total, 3, 26900.02),
    ]
    assert sheet.cell(row=3, column=5).number_format == "#,##0.00"
    sm = openpyxl.load_workbook(out / "review-lists" / "B02.xlsx")["SM SM1"]
    sm_rows = [tuple(c.value for c in r) for r in sm.iter_rows(min_row=3)]
    assert sm_rows[-1] == (everyone, None, total, 1, 79004.5)  # the null MATURITY amount counts as none


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
    month: publish.MonthData, rendered: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    pack = render_board_pack(month, tmp_path)
    pdf = pack.pdf.read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert pdf == (rendered[0] / "board-pack.pdf").read_bytes()  # reproducible, byte for byte
    assert pack.pages >= 5
    assert pdf_page_objects(pdf) == pack.pages
    html = pack.html.read_text(encoding="utf-8")
    for heading in (
        "Portfolio size and trend", "OD share against the 10% cap", "Grade distribution and provisions",
        "Top exposures", "Concentration", "By province", "By currency", "By customer type",
        "Limit utilization", "Conversion candidates", "Policy breaches", "Reconciliation with the core banking",
        "Social performance and client protection",
    ):  # fmt: skip
        assert heading in html, heading
    assert "Test MFI Plc." in html and "January 2026" in html
    assert "96,200.00" in html  # OD outstanding with thousands separators
    assert "counter(pages)" in html and '"Khmer OS"' in html and '"Noto Sans Khmer"' in html
    assert html.count("<svg") >= 8  # charts inline, not linked
    group_ids = Counter(re.findall(r'<g id="([^"]+)"', html))
    assert [i for i, n in group_ids.items() if n > 1] == []  # several charts, one page: no repeated anchors
    assert "The social performance marts are not built" in html  # none scripted here: test_social_performance
    assert "CROSS_FINANCE_EXPOSURE" in html and "A5" in html  # breach and reconciliation lists
    summary = re.search(r'<p class="summary">(.*?)</p>', html, re.S)
    assert summary is not None
    text = " ".join(summary.group(1).split())
    assert "USD 96,200.00 on 6 accounts, 8.8% of the total loan portfolio of USD 1,096,200.00, within" in text
    assert (
        "The month closed with 1 account over the limit, 1 account proposed for conversion to a term loan,"
        " 2 accounts failing a policy check and 1 account with a reconciliation break" in text
    )


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
        assert not re.search(r"@import|url\(\s*['\"]?(?:https?:|//)", html), name
    assert "Plotly" in (out / "dashboard.html").read_text(encoding="utf-8")


# --- daily agent alert lists ---------------------------------------------------------------------------------

ALERTS = [  # customer, account, officer, rm, branch, reason, opened, last abnormal, closed, escalated_on
    ("C1", "A1", "CM1", "RM1", "B01", "EXCESS", date(2026, 1, 20), date(2026, 1, 21), None, None),
    ("C3", "A3", "CM3", "RM1", "B01", "CASH_WITHDRAWAL", date(2026, 1, 14), date(2026, 1, 21), None,
     date(2026, 1, 17)),
    ("C2", "A2", "CM1", "RM1", "B01", "ABNORMAL_DRAWDOWN", date(2026, 1, 10), date(2026, 1, 11),
     date(2026, 1, 12), None),
    ("C5", "A5", "CM2", "RM1", "B02", "EXCESS", date(2026, 1, 21), date(2026, 1, 21), None, None),
    ("C4", "A4", "CM2", "RM1", "B02", "CASH_WITHDRAWAL", date(2026, 1, 22), date(2026, 1, 22), None, None),
]  # fmt: skip


def _alert_lists(url: str, out_dir: Path, day: date = date(2026, 1, 21)) -> list[Path]:
    with psycopg.connect(url) as conn:
        conn.execute("delete from marts.fct_agent_alerts")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.fct_agent_alerts (customer_id, od_account_id, officer_id, regional_manager_id,"
                " branch_code, reason, detail, opened_on, last_abnormal_on, closed_on, escalated_on, escalated,"
                " days_open, abnormal_days, status, currency)"
                " values (%s, %s, %s, %s, %s, %s, 'detail ' || %s, %s, %s, %s, %s, %s::date is not null, 1, 1, 'X', 'USD')",
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
    assert [(r["លេខអតិថិជន / Customer"], r["អ្នកទទួលខុសត្រូវ / Assigned to"], r["ចំនួនថ្ងៃបើក / Days open"]) for r in b01] == [
        ("C3", "RM1", "8"), ("C1", "CM1", "2"),
    ]  # fmt: skip
    assert b01[0]["ស្ថានភាព / Status"].endswith("Escalated to Regional Manager")
    assert b01[0]["ថ្ងៃបញ្ជូនបន្ត / Escalated on"] == "2026-01-17"
    b02 = list(csv.DictReader(io.StringIO((tmp_path / "B02.csv").read_text(encoding="utf-8-sig"))))
    assert [r["លេខអតិថិជន / Customer"] for r in b02] == ["C5"]  # C4 opens the next day
    assert (tmp_path / "B03.csv").read_text(encoding="utf-8-sig").count("\n") == 1  # header only
    sheet = openpyxl.load_workbook(tmp_path / "B01.xlsx").active
    assert sheet is not None and sheet.freeze_panes == "A3"
    assert sheet.cell(row=2, column=1).value == "ស្ថានភាព / Status"
    assert sheet.cell(row=3, column=4).value == "C3"


def test_agent_alert_state_is_the_days_state(marts_db: str, tmp_path: Path) -> None:
    """On the 15th the alert of C3 (escalated on the 17th) is still open and with its officer."""
    _alert_lists(marts_db, tmp_path, date(2026, 1, 15))
    b01 = list(csv.DictReader(io.StringIO((tmp_path / "B01.csv").read_text(encoding="utf-8-sig"))))
    assert [(r["លេខអតិថិជន / Customer"], r["អ្នកទទួលខុសត្រូវ / Assigned to"], r["ថ្ងៃបញ្ជូនបន្ត / Escalated on"]) for r in b01] == [
        ("C3", "CM3", ""),
    ]  # fmt: skip
