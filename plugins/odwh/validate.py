"""The extract contract checked with Great Expectations, one delivery at a time.

Suites are built from ``odwh.contract`` (never a second column list), one per extract file, and run on a
pandas DataFrame of the file read as text (every value a ``str``, empty field = null): type rules are regexes on the
text exactly as delivered. Rules GX cannot express on text alone run on derived columns added before
validation, still through GX expectations so every verdict is a GX validation result:

- ``<col>::decimal``: the value as ``Decimal`` (None if not a plain decimal), for min/max bounds;
- ``reversed_txn_id::delivered|same_account|opposite_direction``: the reversal rule, True/False per reversal;
- ``khr_per_unit::khr_is_1``: True/False on the KHR row of ``fx_rates``;
- ``<col>::in_<ref table>``: foreign key found in the same delivery's referenced file (None when null).

The folder's date is the GX suite parameter ``folder_date``. Key sets are not passed as parameters: GX
re-serialises an expectation's kwargs many times per run, so a 100k-value set costs seconds per expectation.
See ``expectations/README.md`` and ``docs/decisions/0003-contract-validation.md``.

Row numbers are 1-based data rows: the header is row 0, the first data row is row 1 (``raw._row_number``).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pandas as pd

from odwh import contract
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

if TYPE_CHECKING:
    import psycopg
    from great_expectations import ExpectationSuite
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.expectations import Expectation
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

SUITE_FAMILY = "extract_contract"  # expectations/suites/<family>/; the month-end gate is another family

RULE_COLUMN_PRESENT = "column present"
RULE_REQUIRED = "required (not empty)"
RULE_DATE = "date YYYY-MM-DD"
RULE_DECIMAL = "plain decimal number"
RULE_INTEGER = "integer"
RULE_BOOLEAN = "boolean true/false"
RULE_ENUM = "allowed value"
RULE_KEY_UNIQUE = "key unique within the file"
RULE_FOLDER_DATE = "equals the folder's business date"
RULE_REVERSAL = contract.RULE_REVERSAL
RULE_FX_COMPLETE = contract.RULE_FX_COMPLETE
RULE_UNREADABLE = "CSV readable"

FOLDER_DATE_PARAM = "folder_date"
INTEGER_PATTERN = r"^-?[0-9]+$"
# YYYY-MM-DD naming a real Gregorian day (years 1000-9999), in one regex so one expectation checks it
_MONTH_31 = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
_MONTH_30 = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
_FEBRUARY = "02-(?:0[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
DATE_PATTERN = f"^(?=[1-9])(?:[0-9]{{4}}-(?:{_MONTH_31}|{_MONTH_30}|{_FEBRUARY})|{_LEAP_YEAR}-02-29)$"
REVERSAL_DELIVERED = "reversed_txn_id::delivered"
REVERSAL_SAME_ACCOUNT = "reversed_txn_id::same_account"
REVERSAL_OPPOSITE = "reversed_txn_id::opposite_direction"
FX_KHR_IS_ONE = "khr_per_unit::khr_is_1"
TXN_COLUMNS = ("txn_id", "od_account_id", "direction")

EarlierTxn = tuple[str, str, str]  # (txn_id, od_account_id, direction) of a transaction loaded earlier
EarlierTxns = Union[  # noqa: UP007 (a runtime alias: X | Y would need every member to support |)
    Callable[[list[str]], "Iterable[EarlierTxn] | pd.DataFrame"], Iterable[EarlierTxn], pd.DataFrame
]


@dataclass
class ValidationReport:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def decimal_column(name: str) -> str:
    return f"{name}::decimal"


def fk_column(fk: contract.ForeignKey) -> str:
    """Derived column: does the row's key exist in the referenced file, e.g. ``od_account_id::in_od_accounts``."""
    return f"{'+'.join(fk.columns)}::in_{fk.ref_file.removesuffix('.csv')}"


def _ref_token(fk: contract.ForeignKey) -> str:
    """Names the referenced key set in ``needs``: unavailable when the referenced file or column is absent."""
    return f"{fk.ref_file}:{'+'.join(fk.ref_columns)}"


def rule_bounds(column: contract.Column) -> str:
    low, high = column.min_value, column.max_value
    if low is not None and high is not None:
        return f"{column.name} in {'(' if column.strict_min else '['}{low:g}, {high:g}]"
    if low is not None:
        return f"{column.name} {'>' if column.strict_min else '>='} {low:g}"
    return f"{column.name} <= {high:g}"


def rule_foreign_key(fk: contract.ForeignKey) -> str:
    return f"foreign key to {fk.ref_file} ({', '.join(fk.ref_columns)})"


# --- suites -------------------------------------------------------------------------------------------------


def _meta(
    rule: str,
    columns: Sequence[str] = (),
    explain: str = "",
    *,
    ref: str = "",
    needs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What turns a failed expectation into Problems: the rule, the source columns (named in the Problem),
    why (for its detail), and what must be available for the result to mean anything (``needs``: default the
    columns, plus ``ref``, the referenced key set); results lacking it are skipped, the absence is reported once."""
    meta: dict[str, Any] = {"rule": rule}
    if columns:
        meta["columns"] = list(columns)
    if explain:
        meta["explain"] = explain
    if needs is not None or ref:
        meta["needs"] = [*(columns if needs is None else needs), *([ref] if ref else [])]
    return meta


def _column_expectations(col: contract.Column) -> list[Expectation]:
    import great_expectations.expectations as gxe

    name, on = col.name, [col.name]
    found: list[Expectation] = []
    if col.required:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_meta(RULE_REQUIRED, on)))
    if col.type == "date":
        found.append(
            gxe.ExpectColumnValuesToMatchRegex(column=name, regex=DATE_PATTERN, meta=_meta(RULE_DATE, on))
        )
    elif col.type == "numeric":
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=DECIMAL_PATTERN,
                                                        meta=_meta(RULE_DECIMAL, on)))  # fmt: skip
    elif col.type == "integer":
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=INTEGER_PATTERN,
                                                        meta=_meta(RULE_INTEGER, on)))  # fmt: skip
    elif col.type == "boolean":
        found.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=["true", "false"],
                                                     meta=_meta(RULE_BOOLEAN, on)))  # fmt: skip
    if col.allowed:
        found.append(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(col.allowed),
                                                     meta=_meta(RULE_ENUM, on, _allowed(col.allowed))))  # fmt: skip
    if col.min_value is not None or col.max_value is not None:
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=decimal_column(name), min_value=col.min_value, max_value=col.max_value,
            strict_min=col.strict_min, meta=_meta(rule_bounds(col), on)))  # fmt: skip
    return found


def _allowed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:6])
    return f"allowed: {shown}" + (f", ... ({len(values)} values)" if len(values) > 6 else "")


def _file_expectations(spec: contract.ExtractFile) -> list[Expectation]:
    import great_expectations.expectations as gxe

    found: list[Expectation] = []
    if len(spec.key) == 1:
        found.append(
            gxe.ExpectColumnValuesToBeUnique(column=spec.key[0], meta=_meta(RULE_KEY_UNIQUE, spec.key))
        )
    else:
        found.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key),
                                                         meta=_meta(RULE_KEY_UNIQUE, spec.key)))  # fmt: skip
    if spec.folder_date_column:
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=spec.folder_date_column, value_set={"$PARAMETER": FOLDER_DATE_PARAM},
            meta=_meta(RULE_FOLDER_DATE, [spec.folder_date_column])))  # fmt: skip
    for (
        fk
    ) in spec.foreign_keys:  # a boolean column, not the key set as a parameter: GX copies parameters often
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=fk_column(fk), value_set=[True],
            meta=_meta(rule_foreign_key(fk), fk.columns, f"not in {fk.ref_file}", ref=_ref_token(fk))))  # fmt: skip
    found += _SPECIAL_RULES[spec.name][0]() if spec.name in _SPECIAL_RULES else []
    return found


def _derived_columns(spec: contract.ExtractFile) -> list[str]:
    names = [
        decimal_column(c.name) for c in spec.columns if c.min_value is not None or c.max_value is not None
    ]
    names += [fk_column(fk) for fk in spec.foreign_keys]
    if spec.name in _SPECIAL_RULES:
        names += _SPECIAL_RULES[spec.name][2]
    return names


def build_suite(spec: contract.ExtractFile) -> ExpectationSuite:
    """The GX suite for one extract file, from the contract alone."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(  # fails only when a contract column is missing
            column_set=list(spec.column_names), exact_match=False, meta=_meta(RULE_COLUMN_PRESENT)),
        gxe.ExpectTableColumnsToMatchSet(  # an extra column is ignored with a warning
            column_set=[*spec.column_names, *_derived_columns(spec)], exact_match=True,
            severity=FailureSeverity.WARNING,
            meta=_meta("no columns beyond the contract")),
    ]  # fmt: skip
    for col in spec.columns:
        expectations += _column_expectations(col)
    expectations += _file_expectations(spec)
    return gx.ExpectationSuite(
        name=f"{SUITE_FAMILY}.{spec.table}", expectations=expectations,
        meta={"extract_file": spec.name, "extract_version": contract.EXTRACT_VERSION,
              "built_by": "odwh.validate.build_suite from odwh.contract"})  # fmt: skip


@functools.cache
def suites() -> dict[str, ExpectationSuite]:
    """Every file's suite, built once per process."""
    return {spec.name: build_suite(spec) for spec in contract.FILES}


def suite_json(spec: contract.ExtractFile) -> str:
    """The suite as reviewable, deterministic JSON (no ids, no GX-version noise beyond the suite's meta)."""
    return json.dumps(_without_ids(build_suite(spec).to_json_dict()), indent=2, sort_keys=True) + "\n"


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


def default_suites_dir() -> Path:
    from odwh import warehouse

    return warehouse.project_dir() / "expectations" / "suites"


def export_suites(directory: Path | None = None) -> list[Path]:
    """Write every file's suite to ``<directory>/extract_contract/<table>.json`` (default
    ``expectations/suites``), removing suites of files no longer in the contract. Returns the files written."""
    family = (directory or default_suites_dir()) / SUITE_FAMILY
    family.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in contract.FILES:
        path = family / f"{spec.table}.json"
        path.write_text(suite_json(spec))
        written.append(path)
    for stale in set(family.glob("*.json")) - set(written):
        stale.unlink()
    return written


# --- rules specific to one file -------------------------------------------------------------------------


def _reversal_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    on, needs = ["reversed_txn_id"], [*TXN_COLUMNS, "reversed_txn_id"]
    return [
        gxe.ExpectColumnValuesToBeInSet(column=REVERSAL_DELIVERED, value_set=[True], meta=_meta(
            RULE_REVERSAL, on, "no such transaction in this file or earlier deliveries", needs=needs)),
        gxe.ExpectColumnValuesToBeInSet(column=REVERSAL_SAME_ACCOUNT, value_set=[True], meta=_meta(
            RULE_REVERSAL, on, "the original belongs to another account", needs=needs)),
        gxe.ExpectColumnValuesToBeInSet(column=REVERSAL_OPPOSITE, value_set=[True], meta=_meta(
            RULE_REVERSAL, on, "same direction as the original", needs=needs)),
    ]  # fmt: skip


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


def _fx_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnDistinctValuesToContainSet(column="currency", value_set=list(contract.CURRENCIES),
                                                   meta=_meta(RULE_FX_COMPLETE, ["currency"], "a currency is missing")),
        gxe.ExpectColumnValuesToBeInSet(column=FX_KHR_IS_ONE, value_set=[True],
                                        meta=_meta(RULE_FX_COMPLETE, ["khr_per_unit"], "KHR must be 1",
                                                  needs=["currency", "khr_per_unit"])),
    ]  # fmt: skip


def _fx_columns(frame: pd.DataFrame, _: EarlierTxns | None) -> dict[str, pd.Series]:
    if not {"currency", "khr_per_unit"} <= set(frame.columns):
        return {}
    value = decimals(frame["khr_per_unit"])
    checked = (frame["currency"] == "KHR") & value.notna()
    return {FX_KHR_IS_ONE: (value == Decimal(1)).astype(object).where(checked, None)}


# file name -> (expectations, derived columns builder, derived column names)
_SPECIAL_RULES: dict[str, tuple[Callable[[], list[Expectation]],
                                Callable[[pd.DataFrame, EarlierTxns | None], dict[str, pd.Series]],
                                list[str]]] = {
    "od_transactions.csv": (_reversal_expectations, _reversal_columns,
                            [REVERSAL_DELIVERED, REVERSAL_SAME_ACCOUNT, REVERSAL_OPPOSITE]),
    "fx_rates.csv": (_fx_expectations, _fx_columns, [FX_KHR_IS_ONE]),
}  # fmt: skip


# --- running ------------------------------------------------------------------------------------------------


@functools.cache
def _batch_definition() -> Any:
    """One ephemeral GX context per process: no files, no analytics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    config = DataContextConfig(analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False),
                               store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))  # fmt: skip
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("landing").add_dataframe_asset("delivery_file")
    return asset.add_batch_definition_whole_dataframe("whole_file")


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
    """Key sets foreign keys point at, by ``_ref_token``; absent when the file or its column is."""
    found: dict[str, set[str]] = {}
    for fk in {fk for spec in contract.FILES for fk in spec.foreign_keys}:
        ref = frames.get(fk.ref_file)
        if ref is not None and set(fk.ref_columns) <= set(ref.columns):
            found[_ref_token(fk)] = set(_keys(ref, fk.ref_columns).dropna())
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
        if (col.min_value is not None or col.max_value is not None) and col.name in frame.columns:
            derived[decimal_column(col.name)] = decimals(frame[col.name])
    for fk in spec.foreign_keys:
        if set(fk.columns) <= set(frame.columns) and _ref_token(fk) in keys:
            key = _keys(frame, fk.columns)
            derived[fk_column(fk)] = key.isin(keys[_ref_token(fk)]).astype(object).where(key.notna(), None)
    if spec.name in _SPECIAL_RULES:
        derived |= _SPECIAL_RULES[spec.name][1](frame, earlier)
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
    spec: contract.ExtractFile, label: str, frame: pd.DataFrame, keys: dict[str, set[str]], day: str,
    earlier: EarlierTxns | None,
) -> tuple[list[Problem], list[str]]:  # fmt: skip
    data = prepare(spec, frame, keys, earlier)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": data})
    used = {FOLDER_DATE_PARAM: [day]}
    suite = suites()[spec.name]
    # BOOLEAN_ONLY computes ~2.5x fewer metrics; only a failing file pays for the row lists (COMPLETE)
    result = batch.validate(suite, result_format="BOOLEAN_ONLY", expectation_parameters=used)
    if not result.success:
        result = batch.validate(suite, result_format="COMPLETE", expectation_parameters=used)
    unavailable = {c for c in spec.column_names if c not in frame.columns}
    unavailable |= {_ref_token(fk) for fk in spec.foreign_keys if _ref_token(fk) not in keys}
    return _to_problems(label, frame, result, unavailable)


def _to_problems(
    label: str, frame: pd.DataFrame, result: ExpectationSuiteValidationResult, unavailable: set[str]
) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    warnings: list[str] = []
    failed_rows: dict[tuple[tuple[str, ...], str, str], set[int]] = defaultdict(set)
    for outcome in result.results:
        meta = _config(outcome).meta or {}
        columns: tuple[str, ...] = tuple(meta.get("columns", ()))
        column = ", ".join(columns) or None
        if unavailable & set(meta.get("needs", columns)):
            continue  # a missing column or referenced file is reported once, not once per rule on it
        if (error := _exception(outcome)) is not None:
            problems.append(
                Problem(label, None, column, meta.get("rule", "?"), f"could not be checked: {error}")
            )
        elif not outcome.success and _is_warning(outcome):
            extra = outcome.result.get("details", {}).get("mismatched", {}).get("unexpected", [])
            warnings += [f"{label}: column {name!r} is not in the contract, ignored" for name in extra]
        elif not outcome.success:
            rows = outcome.result.get("unexpected_index_list")
            if meta["rule"] == RULE_COLUMN_PRESENT:
                missing = outcome.result.get("details", {}).get("mismatched", {}).get("missing", [])
                problems += [
                    Problem(label, None, name, RULE_COLUMN_PRESENT, "not in the header") for name in missing
                ]
            elif rows is None:
                problems.append(Problem(label, None, column, meta["rule"], _table_detail(meta, outcome)))
            else:
                failed_rows[(columns, meta["rule"], meta.get("explain", ""))] |= set(rows)
    for (columns, rule, explain), rows in failed_rows.items():  # overlapping expectations: one row, once
        column = ", ".join(columns) or None
        problems += [Problem(label, row, column, rule, _row_detail(frame, row, columns, explain))
                     for row in sorted(rows)[:MAX_ROWS_LISTED]]  # fmt: skip
        problems += overflow_problem(label, column, rule, len(rows))
    return problems, warnings


def _config(outcome: ExpectationValidationResult) -> ExpectationConfiguration:
    if outcome.expectation_config is None:
        raise RuntimeError("a GX result without its expectation")
    return outcome.expectation_config


def _is_warning(outcome: ExpectationValidationResult) -> bool:
    severity = _config(outcome).severity
    return str(getattr(severity, "value", severity)) == "warning"


def _exception(outcome: ExpectationValidationResult) -> str | None:
    info = outcome.exception_info or {}
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        e.get("exception_message") for e in entries if isinstance(e, dict) and e.get("raised_exception")
    ]
    return "; ".join(str(m) for m in messages) if messages else None


def _row_detail(frame: pd.DataFrame, row: int, columns: Sequence[str], explain: str) -> str:
    values = [frame.at[row, c] if c in frame.columns else None for c in columns]
    shown = ", ".join(repr(v) if isinstance(v, str) else "empty" for v in values)  # None or NaN: empty
    return f"{'value' if len(values) == 1 else 'values'} {shown}" + (f": {explain}" if explain else "")


def _table_detail(meta: dict[str, Any], outcome: ExpectationValidationResult) -> str:
    missing = outcome.result.get("missing_list") or outcome.result.get("partial_missing_list")
    detail = meta.get("explain", "")
    if missing:
        detail += f": {', '.join(map(str, missing))}"
    return detail or str(outcome.result.get("observed_value", ""))
