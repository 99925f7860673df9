"""Customers (OD holders and retail term-loan clients), their branches and officers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date

import numpy as np

from odwh.simulate import reference
from odwh.simulate.money import IntArray

AGENT, SME, MSME, RETAIL = 0, 1, 2, 3
CUSTOMER_TYPES = ("AGENT", "SME", "MSME", "RETAIL")


@dataclass
class Customers:
    ids: list[str]
    ctype: np.ndarray  # int8 customer type code
    branch: np.ndarray  # int index into reference.BRANCHES
    registered: IntArray  # ordinal
    agent_since: IntArray  # ordinal, 0 when not an agent
    legal_entity: np.ndarray  # bool
    names: list[str]
    officer: list[str]

    @property
    def n(self) -> int:
        return len(self.ids)

    def thai_border(self) -> np.ndarray:
        border = np.array([b[2] in reference.THAI_BORDER_PROVINCES for b in reference.BRANCHES])
        return border[self.branch]


def build_customers(
    rng: np.random.Generator, od_types: np.ndarray, n_retail: int, first_day: date
) -> Customers:
    """Customer ``i`` (``i < len(od_types)``) owns OD account ``i``; retail clients come after them."""
    ctype = np.concatenate([od_types, np.full(n_retail, RETAIL)]).astype(np.int8)
    n = len(ctype)
    weights = np.array([b[4] for b in reference.BRANCHES], dtype=float)
    branch = rng.choice(len(weights), size=n, p=weights / weights.sum())
    legal_p = np.array([0.05, 0.6, 0.15, 0.0])[ctype]
    legal_entity = rng.random(n) < legal_p
    owners = reference.person_names(rng, n)
    business = reference.business_names(rng, owners)
    names = [b if le else o for o, b, le in zip(owners, business, legal_entity.tolist(), strict=True)]
    d0 = first_day.toordinal()
    registered = (d0 - rng.integers(400, 4000, n)).astype(np.int64)
    return Customers(
        ids=[f"CU{i + 1:07d}" for i in range(n)],
        ctype=ctype,
        branch=branch,
        registered=registered,
        agent_since=np.zeros(n, dtype=np.int64),
        legal_entity=legal_entity,
        names=names,
        officer=[""] * n,
    )


def assign_officers(rng: np.random.Generator, customers: Customers) -> list[tuple[str, str, str, str, str]]:
    codes = [b[0] for b in reference.BRANCHES]
    counts = np.bincount(customers.branch, minlength=len(codes))
    officers = reference.build_officers(rng, dict(zip(codes, counts.tolist(), strict=True)))
    picks = rng.random(customers.n).tolist()
    customers.officer = [
        cms[int(p * len(cms))]
        for cms, p in zip(
            (officers.cms_by_branch[codes[b]] for b in customers.branch.tolist()), picks, strict=True
        )
    ]
    return officers.rows


def render_customers(rng: np.random.Generator, c: Customers) -> tuple[str, int]:
    """The static customers.csv body (no header): it does not change during a run."""
    national_ids = rng.integers(10_000_000, 999_999_999, c.n).tolist()
    prefixes = ("012", "015", "017", "077", "078", "085", "088", "089", "092", "096", "097", "098")
    phone_prefix = rng.integers(0, len(prefixes), c.n).tolist()
    phone_number = rng.integers(100_000, 9_999_999, c.n).tolist()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    codes = [b[0] for b in reference.BRANCHES]
    for i in range(c.n):
        since = int(c.agent_since[i])
        writer.writerow(
            (
                c.ids[i],
                CUSTOMER_TYPES[c.ctype[i]],
                "LEGAL_ENTITY" if c.legal_entity[i] else "INDIVIDUAL",
                c.names[i],
                "" if c.legal_entity[i] else f"{national_ids[i]:09d}",
                f"{prefixes[phone_prefix[i]]}{phone_number[i]}",
                codes[c.branch[i]],
                c.officer[i],
                date.fromordinal(since).isoformat() if since else "",
                date.fromordinal(int(c.registered[i])).isoformat(),
            )
        )
    return buf.getvalue(), c.n


def render_reference(officer_rows: list[tuple[str, str, str, str, str]]) -> tuple[str, str]:
    """branches.csv and officers.csv bodies (static)."""
    branches = "".join(
        f"{code},{name},{reference.province_name(province)},{region},{reference.REGIONS[region]}\n"
        for code, name, province, region, _ in reference.BRANCHES
    )
    officers = "".join(",".join(row) + "\n" for row in officer_rows)
    return branches, officers
