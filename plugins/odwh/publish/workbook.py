"""Printable, bilingual XLSX tables (openpyxl) and their byte-for-byte reproducible saving."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from odwh.publish import labels

HEADER_ROW = 2  # row 1 is the sheet's title; data starts below the header
HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
THIN = Side(style="thin", color="A6A6A6")
BOLD = Font(bold=True)
WRAP_TOP = Alignment(wrap_text=True, vertical="top")  # shared style objects: a style per cell is slow
INVALID_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True)
class Column:
    """One column of a table: the record field, its header, width and number format.

    ``currency_field`` names the record field whose currency decides the decimals of this column, row by row
    (KHR none, USD and THB two); ``number_format`` is a fixed format otherwise.
    """

    field: str
    width: int
    number_format: str | None = None
    currency_field: str | None = None
    wrap: bool = False

    @property
    def header(self) -> str:
        return labels.header(self.field)


def new_workbook(title: str) -> Workbook:
    book = Workbook()
    book.remove(book.active)
    book.properties.title = title
    book.properties.creator = "odwh"
    return book


def sheet_name(base: str, used: set[str]) -> str:
    """An Excel-legal sheet name (31 characters, no []:*?/\\), unique in the workbook."""
    name = INVALID_SHEET_CHARS.sub("-", base).strip()[:31] or "Sheet"
    candidate, n = name, 2
    while candidate.lower() in used:
        suffix = f" ({n})"
        candidate, n = name[: 31 - len(suffix)] + suffix, n + 1
    used.add(candidate.lower())
    return candidate


def write_table(
    book: Workbook,
    name: str,
    title: str,
    columns: Sequence[Column],
    records: Iterable[dict[str, Any]],
    *,
    total_rows: Iterable[dict[str, Any]] = (),
) -> Worksheet:
    """A sheet with a title row, one bilingual header row (frozen, repeated on every printed page) and rows.

    ``total_rows`` follow the records in bold on a grey fill (subtotals and totals).
    """
    sheet: Worksheet = book.create_sheet(name)
    sheet.cell(row=1, column=1, value=title).font = Font(bold=True, size=13)
    for index, column in enumerate(columns, start=1):
        cell = sheet.cell(row=HEADER_ROW, column=index, value=column.header)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.border = Border(bottom=THIN, top=THIN)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.row_dimensions[HEADER_ROW].height = 32
    row = HEADER_ROW
    for bold, record in [(False, r) for r in records] + [(True, r) for r in total_rows]:
        row += 1
        for index, column in enumerate(columns, start=1):
            cell = sheet.cell(row=row, column=index, value=_cell_value(record, column))
            fmt = _number_format(record, column)
            if fmt:
                cell.number_format = fmt
            if column.wrap:
                cell.alignment = WRAP_TOP
            if bold:
                cell.font = BOLD
                cell.fill = TOTAL_FILL
    _print_setup(sheet, len(columns), row)
    return sheet


def _cell_value(record: dict[str, Any], column: Column) -> Any:
    value = record.get(column.field)
    if value is None or (isinstance(value, float) and value != value):  # NaN from an outer merge
        return None
    if isinstance(value, Decimal) and column.currency_field:
        return labels.quantize(value, labels.decimals(record.get(column.currency_field)))
    if isinstance(value, Decimal) and column.number_format:
        return labels.quantize(value, _places(column.number_format))
    return value


def _number_format(record: dict[str, Any], column: Column) -> str | None:
    if column.currency_field:
        return labels.excel_format(labels.decimals(record.get(column.currency_field)))
    return column.number_format


def _places(number_format: str) -> int:
    return len(number_format.split(".", 1)[1]) if "." in number_format else 0


def _print_setup(sheet: Worksheet, width: int, last_row: int) -> None:
    """Landscape A4, fit to one page wide, header rows repeated, frozen below the header."""
    sheet.freeze_panes = sheet.cell(row=HEADER_ROW + 1, column=1)
    sheet.print_title_rows = f"1:{HEADER_ROW}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_options.gridLines = False
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.oddFooter.center.text = "&P / &N"
    if last_row > HEADER_ROW:
        sheet.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(width)}{last_row}"


def save(book: Workbook, path: Path, when: datetime) -> Path:
    """Save with ``when`` as the document and zip-entry timestamps, so equal content gives equal bytes."""
    book.properties.created = when
    buffer = io.BytesIO()
    book.save(buffer)  # openpyxl stamps "modified" with the current time: rewritten below
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    date_time = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>" + stamp.encode() + rb"\g<2>",
                    content,
                )
            info = zipfile.ZipInfo(item.filename, date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, content)
    return path
