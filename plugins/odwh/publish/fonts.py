"""The Khmer font the reports carry with them: Noto Sans Khmer from the pinned package ``fontpkg-noto-sans-khmer``.

Khmer text must not depend on the fonts of the machine that prints or opens a report (Debian's fonts-khmeros
is not everywhere: without it the board pack's Khmer printed as empty boxes). Every report names one family,
``KHMER_FAMILY``, declared by an ``@font-face`` rule that points at the packaged file:

- the PDF (WeasyPrint) reads the file through a ``file://`` URL and embeds the glyphs it uses (a subset);
- the self-contained HTML pages (board pack, dashboard) carry the font as a base64 ``data:`` URL, so they still
  fetch nothing and look the same on any machine.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import fontpkg  # the package's own resolver (its dependency): family name -> installed file
import fontpkg_noto_sans_khmer
from markupsafe import Markup

KHMER_FAMILY: str = fontpkg_noto_sans_khmer.FAMILY  # "Noto Sans Khmer"
# CSS font-family value: Latin text keeps the reports' sans serif, Khmer falls back to the packaged font only
TEXT_FAMILIES = f'"Liberation Sans", "DejaVu Sans", "{KHMER_FAMILY}", Arial, sans-serif'
KHMER_FAMILIES = f'"{KHMER_FAMILY}", sans-serif'


def khmer_font_path() -> Path:
    """The variable TrueType file (weights 100-900) installed by fontpkg-noto-sans-khmer."""
    return fontpkg.path(KHMER_FAMILY)


def file_font_face() -> Markup:
    """``@font-face`` with a ``file://`` URL: for WeasyPrint, which embeds the font in the PDF."""
    return _font_face(khmer_font_path().as_uri())


@functools.cache
def embedded_font_face() -> Markup:
    """``@font-face`` with the font inline (base64, ~480 kB): for the HTML pages, which fetch nothing."""
    encoded = base64.b64encode(khmer_font_path().read_bytes()).decode("ascii")
    return _font_face(f"data:font/ttf;base64,{encoded}")


@contextlib.contextmanager
def reproducible_fonts(as_of: date) -> Iterator[None]:
    """Font files written while printing carry ``as_of`` (midnight UTC), not the clock: WeasyPrint turns the
    variable font into a static instance with fontTools, which stamps its ``head.modified`` with the time unless
    ``SOURCE_DATE_EPOCH`` is set (the reproducible-builds convention). An epoch already set is kept."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        yield
        return
    epoch = datetime.combine(as_of, time(), tzinfo=UTC).timestamp()
    os.environ["SOURCE_DATE_EPOCH"] = str(int(epoch))
    try:
        yield
    finally:
        del os.environ["SOURCE_DATE_EPOCH"]


def _font_face(url: str) -> Markup:
    return Markup(
        f'@font-face {{ font-family: "{KHMER_FAMILY}"; src: url("{url}") format("truetype");'
        " font-weight: 100 900; font-style: normal; }"
    )
