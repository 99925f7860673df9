"""The core-banking extract contract, version 1, as data.

Single source of truth for ``../shared/spec/extract-contract.md``: the simulator writes from it, the
validator builds its Great Expectations suites from it, the loader builds the ``raw`` tables from it and dbt's
sources mirror it. Change the contract here and everything follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EXTRACT_VERSION = 1
MANIFEST_NAME = "_manifest.json"

# odwh.history compares rows by value and numeric scale, exact for these types only (not for float: -0 = 0)
ColumnType = Literal["text", "date", "numeric", "integer", "boolean"]
FileKind = Literal["snapshot", "event"]

CURRENCIES = ("KHR", "USD", "THB")
ACTIVITIES = (
    "AGRICULTURE",
    "LIVESTOCK",
    "FISHERIES",
    "TRADE",
    "SERVICES",
    "MANUFACTURING",
    "CONSTRUCTION",
    "TRANSPORT",
    "HOUSING",
    "EDUCATION",
    "CONSUMPTION",
)
EXCLUDED_ACTIVITIES = (
    "FORCED_OR_CHILD_LABOUR",
    "WEAPONS_MUNITIONS",
    "GAMBLING",
    "SEX_TRAFFICKING",
    "CITES_WILDLIFE_TRADE",
    "RADIOACTIVE_OR_HAZARDOUS_CHEMICALS",
    "ILLEGAL_FISHING",
    "ILLEGAL_LOGGING",
    "TOBACCO",
    "OTHER_ILLEGAL",
)
ALL_ACTIVITIES = ACTIVITIES + EXCLUDED_ACTIVITIES
# od_transactions' enumerations (the simulator writes them by their index in these tuples)
TXN_TYPES = (
    "DRAWDOWN",
    "CASH_WITHDRAWAL",
    "TRANSFER_OUT",
    "REPAYMENT",
    "INTEREST_CHARGE",
    "FEE_CHARGE",
    "PROCESSING_FEE",
    "INTEREST_CAPITALIZATION",
    "REVERSAL",
)
TXN_DIRECTIONS = ("DEBIT", "CREDIT")
TXN_CHANNELS = ("COUNTER", "AGENT", "ATM", "MOBILE", "SYSTEM")


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"
    required: bool = True
    allowed: tuple[str, ...] | None = None  # enumeration
    min_value: float | None = None
    max_value: float | None = None
    strict_min: bool = False  # min is exclusive (amount > 0)
    pii: bool = False  # client identifier: loaded into the restricted ``pii`` schema, never into ``raw``

    def __post_init__(self) -> None:
        bounded = self.min_value is not None or self.max_value is not None
        if bounded and self.type not in ("numeric", "integer"):
            raise ValueError(f"{self.name}: bounds apply to numeric and integer columns, not {self.type}")

    @property
    def pg_type(self) -> str:
        return self.type  # the contract's type names are PostgreSQL's


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` of this file must exist as ``ref_columns`` in ``ref_file`` of the same delivery."""

    columns: tuple[str, ...]
    ref_file: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class ExtractFile:
    name: str  # file name in the delivery folder, e.g. "od_balances.csv"
    kind: FileKind
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    control_total: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    folder_date_column: str | None = None  # must equal the folder's business date
    # A snapshot is the full current state: without data rows the day's portfolio would vanish, so it is refused,
    # except where an institution may truly hold none (fixed deposits: an MFI may take no deposits).
    may_be_empty: bool = False

    @property
    def table(self) -> str:
        """Name of the ``raw`` table (and dbt source table) holding this file."""
        return self.name.removesuffix(".csv")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _c(name: str, type_: ColumnType = "text", **kw: object) -> Column:
    return Column(name, type_, **kw)  # type: ignore[arg-type]


def _enum(name: str, *values: str, required: bool = True) -> Column:
    return Column(name, "text", required=required, allowed=values)


def _rate(name: str) -> Column:
    return Column(name, "numeric", min_value=0, max_value=1)


def _money(name: str, *, required: bool = True, positive: bool = False) -> Column:
    return Column(name, "numeric", required=required, min_value=0, strict_min=positive)


def _bool(name: str, *, required: bool = True) -> Column:
    return Column(name, "boolean", required=required)


# The contract as data: one ExtractFile per delivered file, alike in shape by design (each is its own file)
FILES: tuple[ExtractFile, ...] = (
    ExtractFile(
        "branches.csv",
        "snapshot",
        (_c("branch_code"), _c("branch_name"), _c("province"), _c("region_code"), _c("region_name")),
        key=("branch_code",),
    ),
    ExtractFile(
        "officers.csv",
        "snapshot",
        (
            _c("officer_id"),
            _c("officer_name"),
            _enum("role", "CM", "AM", "SM", "RM"),
            _c("branch_code"),
            _c("manager_id", required=False),
        ),
        key=("officer_id",),
        foreign_keys=(
            ForeignKey(("branch_code",), "branches.csv", ("branch_code",)),
            ForeignKey(("manager_id",), "officers.csv", ("officer_id",)),
        ),
    ),
    ExtractFile(
        "customers.csv",
        "snapshot",
        (
            _c("customer_id"),
            _enum("customer_type", "AGENT", "SME", "MSME", "RETAIL"),
            _enum("legal_form", "INDIVIDUAL", "LEGAL_ENTITY"),
            _c("customer_name"),
            _c("national_id", required=False, pii=True),
            _c("phone", required=False, pii=True),
            _c("branch_code"),
            _c("officer_id"),
            _c("agent_since", "date", required=False),
            _c("registered_on", "date"),
        ),
        key=("customer_id",),
        foreign_keys=(
            ForeignKey(("branch_code",), "branches.csv", ("branch_code",)),
            ForeignKey(("officer_id",), "officers.csv", ("officer_id",)),
        ),
    ),
    ExtractFile(
        "od_accounts.csv",
        "snapshot",
        (
            _c("od_account_id"),
            _c("customer_id"),
            _c("settlement_account_id", required=False),
            _enum("currency", *CURRENCIES),
            _money("limit_amount", positive=True),
            _c("approved_on", "date"),
            _c("start_date", "date"),
            _c("maturity_date", "date"),
            _rate("monthly_interest_rate"),
            _rate("processing_fee_rate"),
            _rate("excess_fee_rate_monthly"),
            _rate("unutilized_fee_rate_annual"),
            _enum("collateral_type", "NONE", "PROPERTY", "FIXED_DEPOSIT"),
            _money("collateral_value", required=False),
            _c("fd_account_id", required=False),
            _enum("purpose", "WORKING_CAPITAL", "AGENT_LIQUIDITY", "REFINANCE", "OTHER"),
            _bool("restructured"),
            _enum("status", "ACTIVE", "CLOSED", "CONVERTED", "WRITTEN_OFF"),
            _c("closed_on", "date", required=False),
        ),
        key=("od_account_id",),
        control_total="limit_amount",
        foreign_keys=(
            ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),
            ForeignKey(("fd_account_id",), "fixed_deposits.csv", ("fd_account_id",)),
        ),
    ),
    ExtractFile(
        "od_transactions.csv",
        "event",
        (
            _c("txn_id"),
            _c("od_account_id"),
            _c("business_date", "date"),
            _enum("txn_type", *TXN_TYPES),
            _enum("direction", *TXN_DIRECTIONS),
            _money("amount", positive=True),
            _enum("channel", *TXN_CHANNELS),
            _c("reversed_txn_id", required=False),
        ),
        key=("txn_id",),
        control_total="amount",
        foreign_keys=(ForeignKey(("od_account_id",), "od_accounts.csv", ("od_account_id",)),),
        folder_date_column="business_date",
    ),
    ExtractFile(
        "od_balances.csv",
        "snapshot",
        (
            _c("od_account_id"),
            _c("business_date", "date"),
            _money("principal_outstanding"),
            _money("interest_receivable"),
            _money("fees_receivable"),
        ),
        key=("od_account_id",),
        control_total="principal_outstanding",
        foreign_keys=(ForeignKey(("od_account_id",), "od_accounts.csv", ("od_account_id",)),),
        folder_date_column="business_date",
    ),
    ExtractFile(
        "loans.csv",
        "snapshot",
        (
            _c("loan_id"),
            _c("customer_id"),
            _c("product"),
            _enum("currency", *CURRENCIES),
            _c("disbursed_on", "date"),
            _c("original_term_months", "integer", min_value=1),
            _money("outstanding_principal"),
            _c("days_past_due", "integer", min_value=0),
            _enum("purpose_activity", *ALL_ACTIVITIES, required=False),
            _enum("status", "ACTIVE", "CLOSED", "WRITTEN_OFF"),
            _c("source_od_account_id", required=False),
        ),
        key=("loan_id",),
        control_total="outstanding_principal",
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
    ),
    ExtractFile(
        "fixed_deposits.csv",
        "snapshot",
        (
            _c("fd_account_id"),
            _c("customer_id"),
            _enum("currency", *CURRENCIES),
            _money("principal"),
            _c("opened_on", "date"),
            _c("maturity_date", "date"),
            _bool("frozen"),
            _enum("status", "ACTIVE", "CLOSED"),
        ),
        key=("fd_account_id",),
        control_total="principal",
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
        may_be_empty=True,
    ),
    ExtractFile(
        "agent_liquidity.csv",
        "event",
        (_c("customer_id"), _c("business_date", "date"), _money("liquidity_usd")),
        key=("customer_id", "business_date"),
        control_total="liquidity_usd",
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
        folder_date_column="business_date",
    ),
    ExtractFile(
        "fx_rates.csv",
        "event",
        (
            _c("business_date", "date"),
            _enum("currency", *CURRENCIES),
            Column("khr_per_unit", "numeric", min_value=0, strict_min=True),
        ),
        key=("business_date", "currency"),
        folder_date_column="business_date",
    ),
    ExtractFile(
        "loan_applications.csv",
        "event",
        (
            _c("application_id"),
            _c("customer_id"),
            _c("applied_on", "date"),
            _c("decided_on", "date", required=False),
            _enum("decision", "APPROVED", "REJECTED", required=False),
            _enum("currency", *CURRENCIES),
            _money("amount", positive=True),
            _enum("purpose_activity", *ALL_ACTIVITIES),
            _bool("business_purpose"),
            _bool("es_screened"),
            _enum("es_risk", "LOW", "MEDIUM", "HIGH", required=False),
            _bool("es_contract_signed", required=False),
            _bool("es_mitigation_plan", required=False),
            Column("debt_service_ratio", "numeric", required=False, min_value=0),
            _bool("cbc_checked"),
        ),
        key=("application_id",),
        control_total="amount",
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
    ),
    ExtractFile(
        "ppi_surveys.csv",
        "event",
        (
            _c("survey_id"),
            _c("customer_id"),
            _c("survey_date", "date"),
            _c("wave", "integer"),
            Column("ppi_score", "numeric", min_value=0, max_value=100),
            _rate("poverty_likelihood"),
        ),
        key=("survey_id",),
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
    ),
    ExtractFile(
        "complaints.csv",
        "event",
        (
            _c("complaint_id"),
            _c("customer_id"),
            _c("received_on", "date"),
            _c("channel"),
            _c("category"),
            _c("resolved_on", "date", required=False),
        ),
        key=("complaint_id",),
        foreign_keys=(ForeignKey(("customer_id",), "customers.csv", ("customer_id",)),),
    ),
)

FILES_BY_NAME: dict[str, ExtractFile] = {f.name: f for f in FILES}
SNAPSHOT_FILES = tuple(f for f in FILES if f.kind == "snapshot")

# Rules that involve more than one column or file; named so error messages and suites can cite them.
RULE_REVERSAL = (
    "reversal names a transaction of the same account delivered on or before this date, opposite direction"
)
RULE_FX_COMPLETE = "fx_rates has KHR, USD and THB, with khr_per_unit(KHR) = 1"


@dataclass
class ManifestEntry:
    rows: int
    sha256: str
    control_total: str | None = None


@dataclass
class Manifest:
    business_date: str
    files: dict[str, ManifestEntry] = field(default_factory=dict)
    extract_version: int = EXTRACT_VERSION
    source: str = "core-banking"

    def to_json(self) -> dict[str, object]:
        files: dict[str, dict[str, object]] = {}
        for name, e in self.files.items():
            entry: dict[str, object] = {"rows": e.rows, "sha256": e.sha256}
            if e.control_total is not None:
                entry["control_total"] = e.control_total
            files[name] = entry
        return {
            "extract_version": self.extract_version,
            "business_date": self.business_date,
            "source": self.source,
            "files": files,
        }
