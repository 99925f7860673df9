"""Policy changes without editing code (rulebook L): ``odwh policy show | set | history``.

The shipped seeds (``dbt_project/seeds/policy_parameters.csv``, ``nbc_grading_rules.csv``) are the defaults;
the institution's changes are rows of ``meta.policy_changes`` (append-only, with who and why). The dbt models
read both as versions (``int_policy__parameter_versions``, ``int_policy__nbc_grading_rule_versions``); this
module resolves the same versions for the commands and validates a change before recording it. A provision
rate of the NBC grading table is the parameter ``provision_rate_<term_class>_<grade>``.

A recorded change makes the next build fully rebuild the incremental models (:func:`full_refresh_needed`):
see docs/decisions/0016-policy-changes.md.
"""

from __future__ import annotations

import csv
import getpass
import itertools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache

import psycopg

from odwh import warehouse

DAY_COUNT_CONVENTIONS = ("30E/360", "ACT/360")
FEE_BASES = ("LIMIT", "INCREMENT")  # processing fee of a limit increase (rulebook J)
# the text parameters' units, their values and what the refusal calls them
TEXT_CHOICES = {"convention": DAY_COUNT_CONVENTIONS, "fee basis": FEE_BASES}
TEXT_LABELS = {"convention": "day-count convention", "fee basis": "processing fee basis"}
DEFAULTS_FROM = "seed"
RECORDED = "recorded"


class PolicyError(ValueError):
    """A change refused: unknown parameter, invalid value, or a date in a published month."""


@dataclass(frozen=True)
class Parameter:
    name: str
    unit: str
    description: str

    @property
    def is_text(self) -> bool:
        return self.unit in TEXT_CHOICES


@dataclass
class Version:
    parameter_name: str
    value: str
    effective_from: date
    origin: str  # seed | recorded
    source: str
    recorded_by: str = ""
    recorded_at: datetime | None = None
    reason: str = ""
    change_id: int | None = None
    effective_to: date | None = None  # exclusive; None while in force today
    superseded_by: int | None = None  # a later change for the same date replaced this one

    @property
    def version_id(self) -> str:
        return f"{self.parameter_name}@{self.effective_from.isoformat()}"


def _seed_rows(file_name: str) -> list[dict[str, str]]:
    path = warehouse.project_dir() / "dbt_project" / "seeds" / file_name
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _grading_name(term_class: str, grade: str) -> str:
    return f"provision_rate_{term_class.lower()}_{grade.lower().replace(' ', '_')}"


@cache
def catalog() -> dict[str, Parameter]:
    """Every parameter a change may name: the seed's parameters and the NBC provision rates."""
    params = {
        r["parameter_name"]: Parameter(r["parameter_name"], r["unit"], r["description"])
        for r in _seed_rows("policy_parameters.csv")
    }
    for r in _seed_rows("nbc_grading_rules.csv"):
        name = _grading_name(r["term_class"], r["grade"])
        params[name] = Parameter(name, "ratio", f"NBC provision rate of {r['term_class']} {r['grade']}")
    return params


def _default_versions() -> list[Version]:
    versions = [
        Version(
            r["parameter_name"],
            r["value"] or r["value_text"],
            date.fromisoformat(r["effective_from"]),
            DEFAULTS_FROM,
            r["source"],
        )
        for r in _seed_rows("policy_parameters.csv")
    ]
    versions += [
        Version(
            _grading_name(r["term_class"], r["grade"]),
            r["provision_rate"],
            date.fromisoformat(r["effective_from"]),
            DEFAULTS_FROM,
            r["source"],
        )
        for r in _seed_rows("nbc_grading_rules.csv")
    ]
    return versions


# --- validation ---------------------------------------------------------------------------------------------


def validate(name: str, raw: str) -> tuple[Decimal | None, str | None]:
    """``(value, value_text)`` to record for ``name``, or :class:`PolicyError` saying what is wrong."""
    param = catalog().get(name)
    if param is None:
        raise PolicyError(f"unknown policy parameter {name!r}; `odwh policy show` lists them all")
    raw = raw.strip()
    if param.is_text:
        choices = TEXT_CHOICES[param.unit]
        if raw not in choices:
            known = ", ".join(choices)
            raise PolicyError(f"{name}: unknown {TEXT_LABELS[param.unit]} {raw!r} (known: {known})")
        return None, raw
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PolicyError(f"{name}: {raw!r} is not a number ({param.unit})") from None
    if not value.is_finite():
        raise PolicyError(f"{name}: {raw!r} is not a finite number")
    _check_range(param, value)
    return value, None


def _check_range(param: Parameter, value: Decimal) -> None:
    unit = param.unit
    if unit.startswith("ratio") and not 0 <= value <= 1:
        raise PolicyError(f"{param.name}: a rate must lie in [0, 1], got {value}")
    if unit in ("days", "months") and (value != value.to_integral_value() or value <= 0):
        raise PolicyError(f"{param.name}: a number of {unit} must be a positive whole number, got {value}")
    if unit == "multiple" and value <= 0:
        raise PolicyError(f"{param.name}: a multiple must be positive, got {value}")
    if value < 0:
        raise PolicyError(f"{param.name}: must not be negative, got {value}")
    if param.name.startswith("rounding_unit_") and value == 0:
        raise PolicyError(f"{param.name}: a rounding unit must be positive")


# --- reading and recording ----------------------------------------------------------------------------------


def last_publication(conn: psycopg.Connection) -> tuple[int, date, datetime] | None:
    """``(publication_id, month_end, published_at)`` of the latest published month end, if any."""
    return conn.execute(
        """
        select publication_id, month_end, published_at from meta.publications
        where gate_passed order by month_end desc, published_at desc limit 1
        """
    ).fetchone()


def _check_not_published(conn: psycopg.Connection, effective_from: date) -> None:
    last = last_publication(conn)
    if last and effective_from <= last[1]:
        publication_id, month_end, published_at = last
        raise PolicyError(
            f"refused: {effective_from} is on or before the last published month end {month_end} "
            f"(publication {publication_id} of {month_end:%Y-%m}, published {published_at:%Y-%m-%d %H:%M %Z}); "
            "history is never rewritten, choose a date after it"
        )


def record_change(
    warehouse_url: str,
    name: str,
    raw_value: str,
    effective_from: date,
    reason: str,
    recorded_by: str | None = None,
) -> Version:
    """Validate and record a change; the models use it from the next ``odwh run``."""
    value, value_text = validate(name, raw_value)
    if not reason.strip():
        raise PolicyError("a change needs a reason (--reason): the board decision it implements")
    by = (recorded_by or getpass.getuser()).strip()
    with psycopg.connect(warehouse_url) as conn:
        conn.execute("lock table meta.publications in share mode")  # no month publishes meanwhile
        _check_not_published(conn, effective_from)
        change_id, recorded_at = conn.execute(
            """
            insert into meta.policy_changes
                (parameter_name, value, value_text, effective_from, recorded_by, reason)
            values (%s, %s, %s, %s, %s, %s) returning change_id, recorded_at
            """,
            (name, value, value_text, effective_from, by, reason.strip()),
        ).fetchone()  # type: ignore[misc]
        conn.commit()
    return Version(
        name,
        str(value if value is not None else value_text),
        effective_from,
        RECORDED,
        f"odwh policy set (change {change_id})",
        by,
        recorded_at,
        reason.strip(),
        change_id,
    )


def _recorded_versions(conn: psycopg.Connection) -> list[Version]:
    rows = conn.execute(
        """
        select change_id, parameter_name, coalesce(value::text, value_text), effective_from,
               recorded_by, recorded_at, reason
        from meta.policy_changes order by change_id
        """
    ).fetchall()
    return [
        Version(name, value, eff, RECORDED, f"odwh policy set (change {cid})", by, at, reason, cid)
        for cid, name, value, eff, by, at, reason in rows
    ]


def versions(conn: psycopg.Connection, name: str | None = None) -> list[Version]:
    """Every version (seed defaults and recorded changes), oldest first, with its validity.

    Same rule as the models: a recorded change replaces a seed row of the same date, and the latest change for
    a date replaces earlier ones (those stay listed, marked ``superseded_by``).
    """
    if name is not None and name not in catalog():
        raise PolicyError(f"unknown policy parameter {name!r}; `odwh policy show` lists them all")
    recorded = _recorded_versions(conn)
    latest = {(v.parameter_name, v.effective_from): v for v in recorded}  # ordered by change_id: last wins
    for v in recorded:
        winner = latest[(v.parameter_name, v.effective_from)]
        if winner is not v:
            v.superseded_by = winner.change_id
    defaults = [v for v in _default_versions() if (v.parameter_name, v.effective_from) not in latest]
    every = [v for v in [*defaults, *recorded] if name is None or v.parameter_name == name]
    every.sort(key=lambda v: (v.parameter_name, v.effective_from, v.change_id or 0))
    live = [v for v in every if v.superseded_by is None]
    for current, following in itertools.pairwise(live):
        if following.parameter_name == current.parameter_name:
            current.effective_to = following.effective_from
    return every


def in_force(conn: psycopg.Connection, on: date) -> list[Version]:
    """The version of every parameter in force on ``on``."""
    return [
        v
        for v in versions(conn)
        if v.superseded_by is None
        and v.effective_from <= on
        and (v.effective_to is None or on < v.effective_to)
    ]


def table(rows: list[Version], *, history: bool = False) -> str:
    """Aligned text table of versions for the terminal."""
    header = ["parameter", "value", "from", "to", "version", "source", "set by", "reason"]
    lines = [header]
    for v in rows:
        to = "" if v.effective_to is None else v.effective_to.isoformat()
        by = v.recorded_by or "(default)"
        note = f"superseded by change {v.superseded_by}: " if history and v.superseded_by else ""
        lines.append(
            [
                v.parameter_name,
                v.value,
                v.effective_from.isoformat(),
                to,
                v.version_id,
                v.source,
                by,
                note + v.reason,
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in lines
    ).rstrip()


# --- rebuilding after a change ------------------------------------------------------------------------------


def latest_change_id(conn: psycopg.Connection) -> int:
    return conn.execute("select coalesce(max(change_id), 0) from meta.policy_changes").fetchone()[0]  # type: ignore[index]


def full_refresh_needed(conn: psycopg.Connection, selector: str) -> int | None:
    """The change id to record after a full rebuild of ``selector``, or None when no change is newer."""
    newest = latest_change_id(conn)
    row = conn.execute(
        "select last_change_id from meta.policy_builds where selector = %s", (selector,)
    ).fetchone()
    return newest if newest > (row[0] if row else 0) else None


def record_full_refresh(conn: psycopg.Connection, selector: str, change_id: int) -> None:
    conn.execute(
        """
        insert into meta.policy_builds (selector, last_change_id) values (%s, %s)
        on conflict (selector) do update set last_change_id = excluded.last_change_id, built_at = now()
        """,
        (selector, change_id),
    )
