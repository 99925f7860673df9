"""A machine without Khmer fonts, for the reports' font tests: a fontconfig file that rejects every font
covering Khmer (Debian's fonts-khmeros or any other), to point ``FONTCONFIG_FILE`` at in a child process."""

from __future__ import annotations

from pathlib import Path

NO_KHMER_FONTS = """<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<fontconfig>
  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>
  <selectfont><rejectfont><pattern><patelt name="lang"><string>km</string></patelt></pattern></rejectfont></selectfont>
</fontconfig>
"""


def without_khmer_fonts(directory: Path) -> Path:
    """Write the configuration into ``directory`` and return its path."""
    config = directory / "no-khmer-fonts.conf"
    config.write_text(NO_KHMER_FONTS, encoding="utf-8")
    return config
