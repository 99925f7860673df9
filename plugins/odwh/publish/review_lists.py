"""Monthly review lists (rulebook H): ``review-lists/<branch_code>.xlsx`` and ``.csv`` per branch.

Workbook: a summary sheet per senior manager (SM) and per manager (AM) of the branch's officers (accounts and
amounts by reason, officer by officer), then one sheet per credit officer (CM) with that officer's accounts,
a subtotal per reason and the number of distinct accounts. Amounts are never summed across reasons: one account
can be listed for several reasons with the same balance, so such a sum would count it several times. The CSV holds the same rows as the officer sheets, one file per branch, UTF-8 with a BOM so Excel
shows the Khmer headers. Each detail is written from the mart's figures (``detail_params``) in Khmer, then in
English on the line below (``odwh.publish.details``).
"""

from __future__ import annotations

import os
from datetime import datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from odwh import i18n
from odwh.i18n import N_
from odwh.publish import details, labels
from odwh.publish.data import MonthData, column, records, total
from odwh.publish.workbook import Book, Column, new_workbook, save, sheet_name, write_table

TITLE = N_("Monthly review list")
SUMMARY_TITLE = N_("Summary")
ALL_OFFICERS = N_("All officers")
UNASSIGNED = "UNASSIGNED"

OFFICER_COLUMNS = (
    Column("od_account_id", 13, wrap=True),
    Column("customer_id", 12),
    Column("reason", 22, wrap=True),
    Column("detail", 40, wrap=True),
    Column("currency", 10),
    Column("amount", 16, currency_field="currency"),
    Column("amount_usd", 16, number_format="#,##0.00"),
)
SUMMARY_COLUMNS = (
    Column("officer_id", 16, wrap=True),
    Column("officer_name", 24, wrap=True),
    Column("reason", 30, wrap=True),
    Column("accounts", 12, number_format="#,##0"),
    Column("amount_usd", 18, number_format="#,##0.00"),
)
CSV_FIELDS = (
    "branch_code",
    "officer_id",
    "officer_name",
    "manager_id",
    "senior_manager_id",
    "od_account_id",
    "customer_id",
    "reason",
    "detail",
    "currency",
    "amount",
    "amount_usd",
)


def write_review_lists(data: MonthData, out_dir: Path, *, claims: Path | None = None) -> list[Path]:
    """One workbook and one CSV per branch (branches without an item get a list saying so); the files written,
    in branch order.

    ``claims``: a folder shared with another process writing the same month's lists (``render_month``). Each
    branch is then written by the process that first creates its file there, largest branch first, so the two
    share the work; :func:`claimed_files` lists what both wrote.
    """
    folder = out_dir / "review-lists"
    folder.mkdir(parents=True, exist_ok=True)
    review = _prepared(data)
    branch_names = dict(zip(data.branches["branch_code"], data.branches["branch_name"], strict=True))
    codes = sorted(set(data.branches["branch_code"]) | set(review["branch_code"].dropna()))
    when = data.generated_at or datetime.combine(data.month_end, time())
    if claims is not None:
        items = review["branch_code"].value_counts()
        codes.sort(key=lambda code: -items.get(code, 0))
    written: list[Path] = []
    for code in codes:
        if claims is not None and not _claim(claims, code):  # one at a time, as each is started
            continue
        rows = review[review["branch_code"] == code]
        # the month in English only: the bilingual title already fills the printed width
        heading = f"{i18n.month(data.month_end)} — {code} {branch_names.get(code) or ''}".rstrip()
        written.append(save(_branch_workbook(rows, heading), folder / f"{code}.xlsx", when))
        written.append(_write_csv(rows, folder / f"{code}.csv"))
    return sorted(written, key=lambda path: (path.stem, path.suffix != ".xlsx"))


def claimed_files(out_dir: Path, claims: Path) -> list[Path]:
    """The workbook and CSV of every branch claimed in ``claims``, in branch order."""
    codes = sorted(path.name for path in claims.iterdir())
    return [out_dir / "review-lists" / f"{code}.{ext}" for code in codes for ext in ("xlsx", "csv")]


def _claim(claims: Path, code: str) -> bool:
    """True in the one process that creates ``claims/<code>`` (atomic, whichever asks first)."""
    try:
        os.close(os.open(claims / code, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


def _prepared(data: MonthData) -> pd.DataFrame:
    """The review rows in print order (officer, reason, largest amount first) with the officer's name."""
    review = data.review_list.copy()
    names = dict(zip(data.officers["officer_id"], data.officers["officer_name"], strict=True))
    review["officer_id"] = review["officer_id"].where(review["officer_id"].notna(), UNASSIGNED)
    review["officer_name"] = column(
        [
            own if isinstance(own, str) and own else names.get(oid)
            for own, oid in zip(review["officer_name"], review["officer_id"], strict=True)
        ],
        review,
    )
    review["reason_code"] = review["reason"]
    review["detail"] = column(
        [
            details.bilingual(*row)
            for row in zip(
                review["reason_code"],
                review["detail_params"],
                review["currency"],
                review["detail"],
                strict=True,
            )
        ],
        review,
    )
    review["reason"] = review["reason_code"].map(labels.reason_label)
    review["_rank"] = review["reason_code"].map(labels.reason_rank)
    review["_usd"] = column([_sortable(v) for v in review["amount_usd"]], review)
    review = review.sort_values(
        ["branch_code", "officer_id", "_rank", "_usd", "od_account_id"],
        ascending=[True, True, True, False, True],
        kind="stable",
    )
    return review.drop(columns=["_usd"]).reset_index(drop=True)


def _sortable(value: Any) -> Decimal:
    return Decimal(value) if isinstance(value, Decimal | int) else Decimal("-Infinity")


def _branch_workbook(rows: pd.DataFrame, heading: str) -> Book:
    book = new_workbook(f"{labels.bilingual(TITLE)} — {heading}")
    used: set[str] = set()
    if rows.empty:
        write_table(
            book, sheet_name("No items", used), f"{labels.bilingual(TITLE)} — {heading}", OFFICER_COLUMNS, []
        )
        return book
    for role, field in (("SM", "senior_manager_id"), ("AM", "manager_id")):
        for manager in sorted(rows[field].dropna().unique()):
            under = rows[rows[field] == manager]
            title = f"{labels.bilingual(SUMMARY_TITLE)} {role} {manager} — {heading}"
            lines, totals = _summary(under)
            write_table(
                book,
                sheet_name(f"{role} {manager}", used),
                title,
                SUMMARY_COLUMNS,
                lines,
                total_rows=totals,
            )
    for officer, own in rows.groupby("officer_id", sort=True):
        name = own["officer_name"].iloc[0] or ""
        title = f"{labels.bilingual(TITLE)} — {officer} {name} — {heading}"
        write_table(
            book,
            sheet_name(f"{officer} {name}", used),
            title,
            OFFICER_COLUMNS,
            records(own),
            total_rows=_officer_totals(own),
            footer=f"{officer} {name} — {heading}",
        )
    return book


def _officer_totals(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """A subtotal per reason (accounts and USD), then the officer's distinct accounts: no cross-reason sum."""
    subtotal = labels.bilingual(labels.SUBTOTAL)
    lines = [
        {**line, "od_account_id": subtotal, "detail": _accounts(line["accounts"])}
        for line in _by_reason(rows)
    ]
    distinct = rows["od_account_id"].nunique()
    return [*lines, {"od_account_id": labels.bilingual(labels.TOTAL), "detail": _accounts(distinct)}]


def _accounts(count: int) -> str:
    return " / ".join(
        f"{i18n.gettext(locale, labels.ACCOUNTS_COUNTED_ONCE)}: {i18n.number(count, 0, locale)}"
        for locale in i18n.LOCALES
    )


def _summary(rows: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Accounts and amounts by reason per officer (with an officer subtotal), then all officers by reason."""
    lines: list[dict[str, Any]] = []
    for officer, own in rows.groupby("officer_id", sort=True):
        name = own["officer_name"].iloc[0]
        lines += [{"officer_id": officer, "officer_name": name, **line} for line in _by_reason(own)]
        lines.append(_distinct_accounts(own, officer_id=officer, officer_name=name))
    everyone = labels.bilingual(ALL_OFFICERS)
    totals = [{"officer_id": everyone, **line} for line in _by_reason(rows)]
    totals.append(_distinct_accounts(rows, officer_id=everyone))
    return lines, totals


def _distinct_accounts(rows: pd.DataFrame, **who: Any) -> dict[str, Any]:
    """The total line: accounts counted once whatever their reasons; no amount (it would add reasons up)."""
    return {**who, "reason": labels.bilingual(labels.TOTAL), "accounts": rows["od_account_id"].nunique()}


def _by_reason(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per reason, in the reasons' order: its rows and their USD. Grouped in Python: a pandas group-by for each
    of the 3,110 officers' and managers' tables cost about 1 s of a month's 18 s of lists at 100,000 accounts."""
    amounts: dict[str, list[Any]] = {}
    for code, amount in zip(rows["reason_code"], rows["amount_usd"], strict=True):
        if isinstance(code, str):  # a group-by leaves out a row without a reason
            amounts.setdefault(code, []).append(amount)
    return [
        {"reason": labels.reason_label(code), "accounts": len(found), "amount_usd": total(found)}
        for code, found in sorted(amounts.items(), key=lambda item: (labels.reason_rank(item[0]), item[0]))
    ]


def _write_csv(rows: pd.DataFrame, path: Path) -> Path:
    """The officer sheets' rows; amounts as plain decimals rounded per currency (KHR none, USD/THB two)."""
    out = rows.reindex(columns=list(CSV_FIELDS)).copy()
    out["amount"] = column(
        [_plain(v, labels.decimals(c)) for v, c in zip(out["amount"], out["currency"], strict=True)], out
    )
    out["amount_usd"] = column([_plain(v, 2) for v in out["amount_usd"]], out)
    out.columns = [labels.header(c) for c in CSV_FIELDS]
    out.to_csv(path, index=False, encoding="utf-8-sig", lineterminator="\n")
    return path


def _plain(value: Any, places: int) -> str:
    return "" if not isinstance(value, Decimal | int) else str(labels.quantize(Decimal(value), places))
