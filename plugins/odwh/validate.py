"""The extract contract checked with Great Expectations, one delivery at a time.

Each file is read as text (every value a ``str``, empty field = null) and checked by its suite from
``odwh.suites.extract_contract`` (built from ``odwh.contract``), after :func:`prepare` adds the derived columns
that suite checks (exact decimals for bounds, foreign keys found in the same delivery, reversals, the KHR rate).
Each failed expectation becomes Problems naming file, row and rule. See ``expectations/README.md`` and
``docs/decisions/0003-contract-validation.md``.

Row numbers are 1-based data rows: the header is row 0, the first data row is row 1 (``raw._row_number``).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Union

import pandas as pd

from odwh import contract, gx, provinces
from odwh.landing import (
    DECIMAL_PATTERN,
    MAX_ROWS_LISTED,
    RULE_SNAPSHOT_PRESENT,
    LineBoundedReader,
    Problem,
    StoragePath,
    folder_business_date,
    location,
    open_regular,
    overflow_problem,
)
from odwh.suites.extract_contract import (
    FOLDER_DATE_PARAM,
    FX_KHR_IS_ONE,
    PROVINCE_KNOWN,
    REVERSAL_DELIVERED,
    REVERSAL_OPPOSITE,
    REVERSAL_SAME_ACCOUNT,
    RULE_COLUMN_PRESENT,
    TXN_COLUMNS,
    by_file,
    decimal_column,
    fk_column,
    has_bounds,
    ref_token,
)

if TYPE_CHECKING:
    import psycopg

RULE_UNREADABLE = "CSV readable"

EarlierTxn = tuple[str, str, str]  # (txn_id, od_account_id, direction) of a transaction loaded earlier
EarlierTxns = Union[  # noqa: UP007 (a runtime alias: X | Y would need every member to support |)
    Callable[[list[str]], "Iterable[EarlierTxn] | pd.DataFrame"], Iterable[EarlierTxn], pd.DataFrame
]


@dataclass
class ValidationReport:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- derived columns: what the suites check beyond the text (see odwh.suites.extract_contract) -------------


def _reversal_columns(frame: pd.DataFrame, earlier: EarlierTxns | None) -> dict[str, pd.Series]:
    """Per row with a ``reversed_txn_id``: is the original known (this file first, then ``earlier``), of the
    same account, in the opposite direction? None on rows without a reversal (GX skips nulls)."""
    if not set(TXN_COLUMNS) | {"reversed_txn_id"} <= set(frame.columns):
        return {}
    refs = frame["reversed_txn_id"]
    has_ref = refs.notna()
    originals = frame.loc[frame["txn_id"].notna(), list(TXN_COLUMNS)]
    unresolved = sorted(set(refs[has_ref]) - set(originals["txn_id"]))
    if unresolved and earlier is not None:
        originals = pd.concat([originals, _earlier_frame(earlier, unresolved)])
    originals = originals.drop_duplicates("txn_id").set_index("txn_id")
    delivered = refs.isin(originals.index) & has_ref
    account = refs.map(originals["od_account_id"])
    direction = refs.map(originals["direction"])
    return {
        REVERSAL_DELIVERED: delivered.astype(object).where(has_ref, None),
        REVERSAL_SAME_ACCOUNT: (account == frame["od_account_id"]).astype(object).where(delivered, None),
        REVERSAL_OPPOSITE: (direction != frame["direction"]).astype(object).where(delivered, None),
    }


def _earlier_frame(earlier: EarlierTxns, ids: list[str]) -> pd.DataFrame:
    rows = earlier(ids) if callable(earlier) else earlier
    found = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows), columns=list(TXN_COLUMNS))
    found = found.loc[:, list(TXN_COLUMNS)].astype(object)
    return found[found["txn_id"].isin(ids)]


def earlier_txns_from_warehouse(
    conn: psycopg.Connection[Any], business_date: date
) -> Callable[[list[str]], list[EarlierTxn]]:
    """The ``earlier_txns`` the loader passes: one query for just the ids a delivery's reversals name and
    its own file does not hold. Strictly earlier dates only: a re-delivered date replaces its own rows."""

    def lookup(ids: list[str]) -> list[EarlierTxn]:
        return conn.execute(
            "select txn_id, od_account_id, direction from raw.od_transactions"
            " where txn_id = any(%s) and _business_date < %s",
            (ids, business_date),
        ).fetchall()

    return lookup


def _fx_columns(frame: pd.DataFrame, _: EarlierTxns | None) -> dict[str, pd.Series]:
    if not {"currency", "khr_per_unit"} <= set(frame.columns):
        return {}
    value = decimals(frame["khr_per_unit"])
    checked = (frame["currency"] == "KHR") & value.notna()
    return {FX_KHR_IS_ONE: (value == Decimal(1)).astype(object).where(checked, None)}


def _province_columns(frame: pd.DataFrame, _: EarlierTxns | None) -> dict[str, pd.Series]:
    if "province" not in frame.columns:
        return {}
    known = frame["province"].map(provinces.is_known).astype(object)
    return {PROVINCE_KNOWN: known.where(frame["province"].notna(), None)}


# file name -> the builder of the derived columns its further rules check (odwh.suites.extract_contract)
_DERIVED_COLUMNS: dict[str, Callable[[pd.DataFrame, EarlierTxns | None], dict[str, pd.Series]]] = {
    "od_transactions.csv": _reversal_columns,
    "fx_rates.csv": _fx_columns,
    "branches.csv": _province_columns,
}


# --- running ------------------------------------------------------------------------------------------------


def _to_decimal(value: object) -> Decimal | None:
    return Decimal(value) if isinstance(value, str) and _DECIMAL.match(value) else None


def decimals(values: pd.Series) -> pd.Series:
    """Exact ``Decimal`` per value (None when null or not a plain decimal), parsed once per distinct value:
    rates and fee columns repeat a handful of values across 100k rows."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    parsed = pd.Series([*map(_to_decimal, uniques), None], dtype=object)
    return pd.Series(parsed.to_numpy()[codes], index=values.index, dtype=object)  # code -1 -> the None


_DECIMAL = re.compile(DECIMAL_PATTERN)


def read_extract(path: StoragePath) -> pd.DataFrame:
    """A delivery file as text (str objects), empty field = NaN (null), indexed by 1-based data row number.

    Only a regular file is opened, and a line longer than ``landing.MAX_LINE_BYTES`` stops the read
    (``landing.RefusedInput``, a ValueError): a file with no newline is never read whole.
    """
    with open_regular(path, path.name) as raw:
        fh: Any = LineBoundedReader(raw, path.name)  # has the read() and __iter__ pandas uses
        frame = pd.read_csv(
            fh, dtype=object, keep_default_na=False, na_values=[""], skip_blank_lines=False, encoding="utf-8"
        )
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return frame


def _keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """The (possibly compound) key per row as one string; None when any part is null."""
    parts = [frame[c] for c in columns]
    if len(parts) == 1:
        return parts[0]
    key = parts[0].fillna("").astype(str)
    for part in parts[1:]:
        key = key + "\x1f" + part.fillna("").astype(str)
    return key.astype(object).where(pd.concat(parts, axis=1).notna().all(axis=1), None)


def delivery_keys(frames: dict[str, pd.DataFrame]) -> dict[str, set[str]]:
    """Key sets foreign keys point at, by ``ref_token``; absent when the file or its column is."""
    found: dict[str, set[str]] = {}
    for fk in {fk for spec in contract.FILES for fk in spec.foreign_keys}:
        ref = frames.get(fk.ref_file)
        if ref is not None and set(fk.ref_columns) <= set(ref.columns):
            found[ref_token(fk)] = set(_keys(ref, fk.ref_columns).dropna())
    return found


def prepare(
    spec: contract.ExtractFile,
    frame: pd.DataFrame,
    keys: dict[str, set[str]],
    earlier: EarlierTxns | None = None,
) -> pd.DataFrame:
    """The frame plus the derived columns its suite checks (``keys`` from :func:`delivery_keys`)."""
    derived: dict[str, pd.Series] = {}
    for col in spec.columns:
        if has_bounds(col) and col.name in frame.columns:
            derived[decimal_column(col.name)] = decimals(frame[col.name])
    for fk in spec.foreign_keys:
        if set(fk.columns) <= set(frame.columns) and ref_token(fk) in keys:
            key = _keys(frame, fk.columns)
            derived[fk_column(fk)] = key.isin(keys[ref_token(fk)]).astype(object).where(key.notna(), None)
    if spec.name in _DERIVED_COLUMNS:
        derived |= _DERIVED_COLUMNS[spec.name](frame, earlier)
    return frame.assign(**derived) if derived else frame


def validate_delivery(
    folder: str | os.PathLike[str] | StoragePath,
    *,
    earlier_txns: EarlierTxns | None = None,
    files: Collection[str] | None = None,
) -> ValidationReport:
    """Check every rule of the extract contract on one delivery (a landing folder or its archive copy).

    ``earlier_txns`` resolves reversals whose original is not in this delivery's ``od_transactions.csv``:
    a callable given the list of those ids (called at most once, only when there are any) returning
    ``(txn_id, od_account_id, direction)`` rows or a DataFrame with those columns, or such rows directly.
    The loader passes ``earlier_txns_from_warehouse(conn, business_date)``: one query for just those ids.

    Problems name file, 1-based data row (header = row 0) and rule; per rule and file the first
    ``MAX_ROWS_LISTED`` rows are listed, then one line with the count. ``ok`` is True when there are none.
    Manifest, sha256 and field counts are ``landing.verify_manifest``'s job: call it first.

    ``files`` limits the check to those file names (default: every contract file); the files their foreign
    keys reference are still read for their keys. GX costs ~5-10 ms per expectation, so one file is cheap.
    """
    folder = location(folder)
    day = folder_business_date(folder).isoformat()
    checked = set(contract.FILES_BY_NAME if files is None else files)
    if unknown := checked - set(contract.FILES_BY_NAME):
        raise ValueError(f"not extract files: {', '.join(sorted(unknown))}")
    needed = checked | {fk.ref_file for name in checked for fk in contract.FILES_BY_NAME[name].foreign_keys}
    problems: list[Problem] = []
    warnings: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    for spec in contract.FILES:
        path = folder / spec.name
        if spec.name not in needed:
            continue
        if not path.exists():
            if spec.kind == "snapshot" and spec.name in checked:
                problems.append(Problem(f"{day}/{spec.name}", None, None, RULE_SNAPSHOT_PRESENT))
            continue
        try:
            frames[spec.name] = read_extract(path)
        except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
            problems.append(Problem(f"{day}/{spec.name}", None, None, RULE_UNREADABLE, str(exc).strip()))
    keys = delivery_keys(frames)
    for name, frame in frames.items():
        if name not in checked:
            continue
        spec = contract.FILES_BY_NAME[name]
        found, warned = _validate_file(spec, f"{day}/{name}", frame, keys, day, earlier_txns)
        problems += found
        warnings += warned
    return ValidationReport(ok=not problems, problems=problems, warnings=warnings)


def _validate_file(
    spec: contract.ExtractFile,
    label: str,
    frame: pd.DataFrame,
    keys: dict[str, set[str]],
    day: str,
    earlier: EarlierTxns | None,
) -> tuple[list[Problem], list[str]]:
    data = prepare(spec, frame, keys, earlier)
    result = gx.validate_frame(data, by_file()[spec.name], {FOLDER_DATE_PARAM: [day]})
    unavailable = {c for c in spec.column_names if c not in frame.columns}
    unavailable |= {ref_token(fk) for fk in spec.foreign_keys if ref_token(fk) not in keys}
    return _to_problems(label, frame, gx.outcomes(result), unavailable)


def _to_problems(
    label: str, frame: pd.DataFrame, outcomes: list[gx.Outcome], unavailable: set[str]
) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    warnings: list[str] = []
    failed_rows: dict[tuple[tuple[str, ...], str, str], set[int]] = defaultdict(set)
    for outcome in outcomes:
        meta = outcome.meta
        columns: tuple[str, ...] = tuple(meta.get("columns", ()))
        if unavailable & set(meta.get("needs", columns)):
            continue  # a missing column or referenced file is reported once, not once per rule on it
        if (error := outcome.error()) is not None:
            rule = meta.get("rule", "?")
            problems.append(
                Problem(label, None, ", ".join(columns) or None, rule, f"could not be checked: {error}")
            )
        elif outcome.success:
            continue
        elif outcome.warning:
            warnings += _warnings(label, frame, outcome)
        elif meta["rule"] == RULE_COLUMN_PRESENT:
            missing = _mismatched(outcome, "missing")
            problems += [
                Problem(label, None, name, RULE_COLUMN_PRESENT, "not in the header") for name in missing
            ]
        elif (rows := outcome.result.get("unexpected_index_list")) is None:
            problems.append(
                Problem(label, None, ", ".join(columns) or None, meta["rule"], _table_detail(outcome))
            )
        else:
            failed_rows[(columns, meta["rule"], meta.get("explain", ""))] |= set(rows)
    for (columns, rule, explain), rows in failed_rows.items():  # overlapping expectations: one row, once
        column = ", ".join(columns) or None
        listed = sorted(rows)[:MAX_ROWS_LISTED]
        problems += [
            Problem(label, row, column, rule, _row_detail(frame, row, columns, explain)) for row in listed
        ]
        problems += overflow_problem(label, column, rule, len(rows))
    return problems, warnings


def _warnings(label: str, frame: pd.DataFrame, outcome: gx.Outcome) -> list[str]:
    """A warning per extra column, or per row of a row rule of severity "warning" (an unknown province)."""
    if (rows := outcome.result.get("unexpected_index_list")) is None:
        return [
            f"{label}: column {name!r} is not in the contract, ignored"
            for name in _mismatched(outcome, "unexpected")
        ]
    columns, rule, explain = outcome.meta["columns"], outcome.meta["rule"], outcome.meta.get("explain", "")
    column = ", ".join(columns)
    listed = [
        Problem(label, row, column, rule, _row_detail(frame, row, columns, explain))
        for row in sorted(rows)[:MAX_ROWS_LISTED]
    ]
    return [str(p) for p in [*listed, *overflow_problem(label, column, rule, len(rows))]]


def _mismatched(outcome: gx.Outcome, kind: str) -> list[str]:
    """Column names an ``expect_table_columns_to_match_set`` result lists as ``missing`` or ``unexpected``."""
    return list(outcome.result.get("details", {}).get("mismatched", {}).get(kind, []))


def _row_detail(frame: pd.DataFrame, row: int, columns: Sequence[str], explain: str) -> str:
    values = [frame.at[row, c] if c in frame.columns else None for c in columns]
    shown = ", ".join(repr(v) if isinstance(v, str) else "empty" for v in values)  # None or NaN: empty
    return f"{'value' if len(values) == 1 else 'values'} {shown}" + (f": {explain}" if explain else "")


def _table_detail(outcome: gx.Outcome) -> str:
    missing = outcome.result.get("missing_list") or outcome.result.get("partial_missing_list")
    detail = outcome.meta.get("explain", "")
    if missing:
        detail += f": {', '.join(map(str, missing))}"
    return detail or str(outcome.result.get("observed_value", ""))
