"""Printable, bilingual XLSX tables (XlsxWriter) and their byte-for-byte reproducible saving.

Printing is designed, not left to the office suite: every table fits A4 landscape at 100% (its column widths
add up to at most ``PRINTABLE_WIDTH``; the wrapped columns absorb what is too wide), wrapped text gets row
heights that fit its lines (office suites do not grow a row a writer set), and the title, header row,
page numbers and a footer naming the list repeat on every page.

Written with XlsxWriter, which streams each cell's XML from its value and a format shared by the cells alike;
openpyxl, which built an object per cell and validated each attribute, spent most of a month's review lists
(docs/decisions/0073-workbooks-written-by-xlsxwriter.md).
"""

from __future__ import annotations

import functools
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from odwh.publish import labels

HEADER_ROW = 2  # 1-based, as office suites number rows: row 1 is the title; data starts below the header
HEADER_FILL = "#DDE4EE"
TOTAL_FILL = "#F2F2F2"
BORDER_COLOR = "#A6A6A6"
# a date without a number format of its column is shown as office suites show a date typed in
DATE_FORMAT, DATETIME_FORMAT = "yyyy-mm-dd", "yyyy-mm-dd h:mm:ss"
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


@dataclass
class Book:
    """A workbook being written (in memory until :func:`save`), with its cell formats, one per kind of cell."""

    title: str
    buffer: io.BytesIO = field(default_factory=io.BytesIO)
    formats: dict[tuple[Any, ...], Format] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.book = xlsxwriter.Workbook(self.buffer, {"in_memory": True, "remove_timezone": True})

    def format(self, *key: Any, **properties: Any) -> Format:
        """The workbook's format for ``key`` (made from ``properties`` the first time)."""
        if key not in self.formats:
            self.formats[key] = self.book.add_format(properties)
        return self.formats[key]


def new_workbook(title: str) -> Book:
    return Book(title)


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
    book: Book,
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
    sheet: Worksheet = book.book.add_worksheet(name)
    sheet.write_string(0, 0, title, book.format("title", bold=True, font_size=13))
    widths = fit_widths(columns)
    header = book.format(
        "header",
        bold=True,
        bg_color=HEADER_FILL,
        top=1,
        bottom=1,
        top_color=BORDER_COLOR,
        bottom_color=BORDER_COLOR,
        text_wrap=True,
        valign="vcenter",
    )
    for index, (column, width) in enumerate(zip(columns, widths, strict=True)):
        sheet.write_string(HEADER_ROW - 1, index, column.header, header)
        # XlsxWriter adds the cell padding (5 pixels of 7 a character) to a width: stored as fit_widths says
        sheet.set_column(index, index, width - 5 / 7)
    sheet.set_row(HEADER_ROW - 1, row_height([c.header for c in columns], widths))
    row = HEADER_ROW - 1
    for bold, record in [(False, r) for r in records] + [(True, r) for r in total_rows]:
        row += 1
        values = [_cell_value(record, column) for column in columns]
        wrapped = [v if c.wrap else None for c, v in zip(columns, values, strict=True)]
        sheet.set_row(row, row_height(wrapped, widths))  # before the row's cells: rows are written in order
        for index, (column, value) in enumerate(zip(columns, values, strict=True)):
            _write_cell(sheet, row, index, value, _cell_format(book, record, column, value, bold))
    _print_setup(sheet, len(columns), row + 1, footer or title)
    return sheet


def _cell_format(book: Book, record: dict[str, Any], column: Column, value: Any, bold: bool) -> Format:
    number_format = _number_format(record, column)
    if number_format is None and isinstance(value, date):
        number_format = DATETIME_FORMAT if isinstance(value, datetime) else DATE_FORMAT
    found = book.formats.get(("cell", number_format, column.wrap, bold))
    if found is not None:  # nearly always: the properties are spelled once per kind of cell
        return found
    properties: dict[str, Any] = {"valign": "top"}
    if column.wrap:
        properties["text_wrap"] = True
    if number_format:
        properties["num_format"] = number_format
    if bold:
        properties |= {"bold": True, "bg_color": TOTAL_FILL}
    return book.format("cell", number_format, column.wrap, bold, **properties)


def _write_cell(sheet: Worksheet, row: int, column: int, value: Any, cell_format: Format) -> None:
    """``value`` as its own type: a number, a date, a boolean, text (never read as a formula or a link)."""
    if value is None:
        sheet.write_blank(row, column, None, cell_format)
    elif isinstance(value, bool):
        sheet.write_boolean(row, column, value, cell_format)
    elif isinstance(value, int | float | Decimal):
        sheet.write_number(row, column, float(value), cell_format)
    elif isinstance(value, date):
        sheet.write_datetime(row, column, value, cell_format)
    else:
        sheet.write_string(row, column, str(value), cell_format)


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
    sheet.freeze_panes(HEADER_ROW, 0)
    sheet.repeat_rows(0, HEADER_ROW - 1)
    sheet.set_landscape()
    sheet.set_paper(9)  # A4
    sheet.set_print_scale(100)
    sheet.set_margins(left=0.4, right=0.4, top=1, bottom=1)
    sheet.set_header("", {"margin": 0.5})
    # '&' starts a header/footer code; &8: the left part in 8 points
    sheet.set_footer(f"&L&8{footer.replace('&', '&&')}&R&P / &N", {"margin": 0.5})
    if last_row > HEADER_ROW:
        sheet.autofilter(HEADER_ROW - 1, 0, last_row - 1, width - 1)


def save(book: Book, path: Path, when: datetime) -> Path:
    """Save with ``when`` as the document's creation time (its "modified" too), so equal content gives equal
    bytes: XlsxWriter dates every part of the file 1 January 1980."""
    book.book.set_properties({"title": book.title, "author": "odwh", "created": when})
    book.book.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(book.buffer.getvalue())
    return path
