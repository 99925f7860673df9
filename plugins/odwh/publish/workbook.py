"""Printable, bilingual XLSX tables (openpyxl) and their byte-for-byte reproducible saving.

Printing is designed, not left to the office suite: every table fits A4 landscape at 100% (its column widths
add up to at most ``PRINTABLE_WIDTH``; the wrapped columns absorb what is too wide), wrapped text gets row
heights that fit its lines (office suites do not grow a row that openpyxl wrote), and the title, header row,
page numbers and a footer naming the list repeat on every page.
"""

from __future__ import annotations

import functools
import io
import math
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from copy import copy
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from odwh.publish import labels

HEADER_ROW = 2  # row 1 is the sheet's title; data starts below the header
HEADER_FILL = PatternFill("solid", fgColor="DDE4EE")
TOTAL_FILL = PatternFill("solid", fgColor="F2F2F2")
THIN = Side(style="thin", color="A6A6A6")
BOLD = Font(bold=True)
WRAP_TOP = Alignment(wrap_text=True, vertical="top")  # shared style objects: a style per cell is slow
TOP = Alignment(vertical="top")  # a row's short values beside the first line of its wrapped detail
INVALID_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
#: Sum of column widths (Excel character units of Calibri 11, ~7.4 px each plus cell padding) that fits A4
#: landscape at 100% between 0.4" margins, with room to spare (LibreOffice measured with Carlito).
PRINTABLE_WIDTH = 130
#: Points per printed line of 11-pt text; Khmer stacks vowels and subscripts above and below, so more.
LINE_HEIGHT, KHMER_LINE_HEIGHT = 15.0, 21.0
KHMER = re.compile("[\u1780-\u17ff]")
COENG = "\u17d2"  # Khmer sign that writes the next consonant as a subscript
MIN_WRAP_WIDTH = 12


@dataclass(frozen=True)
class Column:
    """One column of a table: the record field, its header, width and number format.

    ``currency_field`` names the record field whose currency decides the decimals of this column, row by row
    (KHR none, USD and THB two); ``number_format`` is a fixed format otherwise. A ``wrap`` column breaks its
    text into lines (and gives up width when the table is wider than the page).
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
    footer: str = "",
) -> Worksheet:
    """A sheet with a title row, one bilingual header row (frozen, repeated on every printed page) and rows.

    ``total_rows`` follow the records in bold on a grey fill (subtotals and totals); ``footer`` is printed
    at the foot of every page beside the page number.
    """
    sheet: Worksheet = book.create_sheet(name)
    sheet.cell(row=1, column=1, value=title).font = Font(bold=True, size=13)
    widths = fit_widths(columns)
    for index, (column, width) in enumerate(zip(columns, widths, strict=True), start=1):
        cell = sheet.cell(row=HEADER_ROW, column=index, value=column.header)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.border = Border(bottom=THIN, top=THIN)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.row_dimensions[HEADER_ROW].height = row_height([c.header for c in columns], widths)
    row = HEADER_ROW
    # a cell's style is set once per (format, wrap, bold) and copied to the next cells that share it: setting
    # it through openpyxl's style attributes hashes the style objects per cell (a third of a large list's time)
    styles: dict[tuple[str | None, bool, bool, type | None], StyleArray] = {}
    for bold, record in [(False, r) for r in records] + [(True, r) for r in total_rows]:
        row += 1
        values = [_cell_value(record, column) for column in columns]
        for index, (column, value) in enumerate(zip(columns, values, strict=True), start=1):
            cell = sheet.cell(row=row, column=index, value=value)
            # a date without a format gets openpyxl's date format as its value is set: its type is in the key
            key = (
                _number_format(record, column),
                column.wrap,
                bold,
                type(value) if cell.data_type == "d" else None,
            )
            if key in styles:
                cell._style = copy(styles[key])
                continue
            if key[0]:
                cell.number_format = key[0]
            cell.alignment = WRAP_TOP if column.wrap else TOP
            if bold:
                cell.font = BOLD
                cell.fill = TOTAL_FILL
            styles[key] = copy(cell._style)
        wrapped = [v if c.wrap else None for c, v in zip(columns, values, strict=True)]
        sheet.row_dimensions[row].height = row_height(wrapped, widths)
    _print_setup(sheet, len(columns), row, footer or title)
    return sheet


def fit_widths(columns: Sequence[Column]) -> list[int]:
    """The columns' widths, the wrapped ones narrowed (widest first) until the table fits the printed page.

    No column is narrower than the longest word of its header, so a header never breaks inside a word.
    """
    widths = [max(c.width, _header_width(c.header)) for c in columns]
    excess = sum(widths) - PRINTABLE_WIDTH
    for index in sorted((i for i, c in enumerate(columns) if c.wrap), key=lambda i: -widths[i]):
        if excess <= 0:
            break
        floor = max(MIN_WRAP_WIDTH, _header_width(columns[index].header))
        give = max(min(excess, widths[index] - floor), 0)
        widths[index] -= give
        excess -= give
    return widths


def row_height(values: Sequence[Any], widths: Sequence[int]) -> float:
    """Points a row needs so that each wrapped value's lines show in full (at least one line)."""
    heights = [LINE_HEIGHT]
    for value, width in zip(values, widths, strict=True):
        if value is None or value == "":
            continue
        text = str(value)
        per_line = KHMER_LINE_HEIGHT if KHMER.search(text) else LINE_HEIGHT
        heights.append(wrapped_lines(text, width) * per_line)
    return max(heights) + 2


def wrapped_lines(text: str, width: int) -> int:
    """Lines ``text`` takes in a column of ``width`` characters, breaking at spaces as office suites do.

    Conservative: a column unit is the width of a digit, and the average letter is narrower, so one character
    less than the width fits on a line.
    """
    room = max(width - 1, 1)
    lines = 0
    for paragraph in text.split("\n"):
        used = 0
        lines += 1
        for word in paragraph.split(" "):
            size = text_width(word)
            if used and used + 1 + size > room:
                lines += 1
                used = 0
            if size > room:  # a word longer than the column is broken across lines
                lines += (size - 1) // room
                size = (size - 1) % room + 1
            used += size + (1 if used else 0)
    return lines


@functools.lru_cache(maxsize=1 << 16)  # called per word: a month's lists repeat the same words
def text_width(text: str) -> int:
    """Characters ``text`` occupies on a line: Khmer vowel signs and subscript consonants stack on their base
    consonant (combining marks, and the consonant after a coeng), so they take no width of their own."""
    if text.isascii():
        return len(text)
    width, after_coeng = 0, False
    for char in text:
        if not (after_coeng or unicodedata.category(char) in ("Mn", "Me") or char == COENG):
            width += 1
        after_coeng = char == COENG
    return width


def _header_width(header: str) -> int:
    """Width that holds the header's longest word in bold (a fifth wider than regular) beside the padding."""
    longest = max((text_width(word) for word in header.split()), default=0)
    return math.ceil(longest * 1.2) + 2


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


def _print_setup(sheet: Worksheet, width: int, last_row: int, footer: str) -> None:
    """Landscape A4 at 100% (the widths fit it), title and header rows repeated, footer and page numbers."""
    sheet.freeze_panes = sheet.cell(row=HEADER_ROW + 1, column=1)
    sheet.print_title_rows = f"1:{HEADER_ROW}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.scale = 100
    sheet.sheet_properties.pageSetUpPr.fitToPage = False
    sheet.print_options.gridLines = False
    sheet.page_margins.left = sheet.page_margins.right = 0.4
    sheet.oddFooter.left.text = footer.replace("&", "&&")  # '&' starts a header/footer code
    sheet.oddFooter.left.size = 8
    sheet.oddFooter.right.text = "&P / &N"
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
