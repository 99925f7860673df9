"""Khmer and English words of the reports, from gettext catalogues, and numbers and dates formatted by Babel.

The words live in ``odwh/locale``: ``messages.pot`` extracted from the code and templates (``make i18n``), and
one ``<locale>/LC_MESSAGES/messages.po`` per language that a translator edits in any PO editor (Poedit,
Lokalize, Weblate). The ``.po`` files are compiled in memory when first used (no ``.mo`` binary in the
repository; decision 0022). Source strings (msgids) are English; ``en/messages.po`` may override them.

Staff read Khmer first and the policy says the Khmer text prevails, so a bilingual text puts Khmer first:
``both("Total")`` is "សរុប / Total". Mark a string for extraction without translating it yet with ``N_`` (a plural pair: ``NP_``).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import NumberPattern, parse_pattern
from babel.support import Translations

KHMER, ENGLISH = "km", "en"
LOCALES = (KHMER, ENGLISH)
DOMAIN = "messages"
#: Decimals shown per currency (rulebook A: KHR to 1 riel, USD and THB to 0.01).
CURRENCY_DECIMALS: dict[str, int] = {"KHR": 0, "USD": 2, "THB": 2}


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue; it is translated where it is shown."""
    return message


def NP_(singular: str, plural: str) -> tuple[str, str]:
    """Marks a singular/plural pair for the catalogue (for ``ngettext`` where it is shown)."""
    return singular, plural


@functools.cache
def translations(locale: str) -> Translations:
    """The catalogue of ``locale``, compiled once per process."""
    return compiled(files("odwh") / "locale" / locale / "LC_MESSAGES" / f"{DOMAIN}.po", locale)


def compiled(po: Traversable, locale: str) -> Translations:
    """A ``.po`` file compiled in memory, fuzzy (unchecked) entries left out as msgfmt does."""
    with po.open("rb") as source:
        catalog = read_po(source, locale=locale, domain=DOMAIN)
    binary = io.BytesIO()
    write_mo(binary, catalog)
    binary.seek(0)
    return Translations(binary, domain=DOMAIN)


def gettext(locale: str, message: str, **values: Any) -> str:
    """``message`` in ``locale``, with ``{name}`` placeholders filled from ``values``."""
    text = translations(locale).ugettext(message)
    return text.format(**values) if values else text


def ngettext(locale: str, singular: str, plural: str, n: int, **values: Any) -> str:
    """The singular or plural form for ``n`` (Khmer has one form), placeholders filled; ``n`` is ``{n}``."""
    return translations(locale).ungettext(singular, plural, n).format(n=n, **values)


def both(message: str, separator: str = " / ", **values: Any) -> str:
    """'សរុប / Total': Khmer first, then English."""
    return separator.join(gettext(locale, message, **values) for locale in LOCALES)


def rounded(value: Decimal | int, places: int) -> Decimal:
    """Half away from zero (rulebook A), not Babel's default half-even."""
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def number(value: Decimal | int | None, places: int = 2, locale: str = ENGLISH) -> str:
    """'1,234,567.89' in the locale's symbols, rounded half away from zero; an em dash for a missing value."""
    if value is None:
        return "—"
    pattern, parsed_locale = _number_format(places, locale)
    return pattern.apply(
        rounded(value, places), parsed_locale, decimal_quantization=True, numbering_system="latn"
    )


@functools.cache
def _number_format(places: int, locale: str) -> tuple[NumberPattern, Locale]:
    """The pattern and locale ``format_decimal`` would parse on every call (a month's lists format 200,000
    amounts at 100,000 accounts)."""
    return parse_pattern("#,##0" + ("." + "0" * places if places else "")), Locale.parse(locale)


def decimals(currency: str | None) -> int:
    return CURRENCY_DECIMALS.get(currency or "", 2)


def money(value: Decimal | int | None, currency: str, locale: str = ENGLISH) -> str:
    """'USD 1,234.56', 'KHR 1,234,567': the ISO code (as the lists' currency column) and the currency's
    decimals; an em dash for a missing amount."""
    return f"{currency} {number(value, decimals(currency), locale)}"


def percent(ratio: Decimal | None, places: int = 1, locale: str = ENGLISH) -> str:
    """0.0621 -> '6.2%'; an em dash for a missing ratio (e.g. no portfolio)."""
    if ratio is None:
        return "—"
    return number(Decimal(ratio) * 100, places, locale) + "%"


def day(value: date, locale: str = ENGLISH) -> str:
    """A date as the locale writes it in full: '31 មករា 2026', 'January 31, 2026'."""
    return format_date(value, "long", locale=locale)


def month(value: date, locale: str = ENGLISH) -> str:
    """'មករា 2026', 'January 2026'."""
    return format_date(value, "MMMM y", locale=locale)


def month_short(value: date, locale: str = ENGLISH) -> str:
    """'Jan 2026' (a chart's tick: a month end names its month, never a day)."""
    return format_skeleton("yMMM", value, locale=locale)


def in_both(value: date, form: Callable[[date, str], str] = day, separator: str = " / ") -> str:
    """A date written by each language in turn, Khmer first: '31 មករា 2026 / January 31, 2026'."""
    return separator.join(form(value, locale) for locale in LOCALES)
