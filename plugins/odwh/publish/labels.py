"""Names shown to readers: column headers, review reasons, alert states, and amounts as the lists show them.

The words are English msgids marked for the gettext catalogue (``odwh/locale``, see ``odwh.i18n``); their Khmer
lives in ``km/LC_MESSAGES/messages.po``, where a native speaker reviews it (docs/reports.md). Headers and labels
are shown in both languages, Khmer first.
"""

from __future__ import annotations

from decimal import Decimal

from odwh.i18n import N_, both, decimals, number, percent, rounded

__all__ = ["decimals", "percent"]

#: Column headers of the review lists and agent alert lists: field -> msgid.
HEADERS: dict[str, str] = {
    "od_account_id": N_("Account"),
    "customer_id": N_("Customer"),
    "reason": N_("Reason"),
    "detail": N_("Detail"),
    "currency": N_("Currency"),
    "amount": N_("Amount"),
    "amount_usd": N_("Amount (USD)"),
    "officer_id": N_("Officer"),
    "officer_name": N_("Officer name"),
    "manager_id": N_("Manager"),
    "senior_manager_id": N_("Senior manager"),
    "branch_code": N_("Branch"),
    "accounts": N_("Accounts"),
    "assigned_to_id": N_("Assigned to"),
    "status": N_("Status"),
    "opened_on": N_("Opened on"),
    "last_abnormal_on": N_("Last abnormal day"),
    "days_open": N_("Days open"),
    "escalated_on": N_("Escalated on"),
}

TOTAL = N_("Total")
SUBTOTAL = N_("Subtotal")
#: The count on a list's total line, where an account listed for several reasons counts once.
ACCOUNTS_COUNTED_ONCE = N_("Accounts, each counted once")

#: Review-list reasons (rulebook H) in the order the lists show them: code -> msgid.
REASONS: dict[str, str] = {
    "EXCESS": N_("Excess over limit"),
    "NO_TRANSACTION": N_("No transaction"),
    "INSUFFICIENT_INFLOW": N_("Credits below charges"),
    "CONVERSION_CANDIDATE": N_("Conversion candidate"),
    # rulebook J: the conversions done in the month, next to the candidates still open
    "CONVERTED": N_("Converted to a term loan"),
    "GRADE": N_("Grade"),
    "MATURITY": N_("Maturity"),
    "BREACH": N_("Policy breach"),
    "RECONCILIATION": N_("Reconciliation break"),
    "CLOSED_WITH_BALANCE": N_("Closed with a balance (data error)"),
    # rulebook J: a write-off of the month, listed once (the account leaves the book; decision 0028)
    "WRITTEN_OFF": N_("Written off"),
    # rulebook I (social performance): the "account" of an application reason is the application id
    "ES_SCREENING": N_("E&S screening exception"),
    "EXCLUSION": N_("Excluded activity approved"),
    "OVER_INDEBTEDNESS": N_("Over-indebtedness exception"),
    "PRICING": N_("Rate above the NBC ceiling"),
}

#: Agent alert states as the daily list shows them.
ALERT_STATUS: dict[str, str] = {
    "OPEN": N_("Open"),
    "ESCALATED": N_("Escalated to Regional Manager"),
}


def bilingual(message: str) -> str:
    """'លេខគណនី / Account'."""
    return both(message)


def header(field: str) -> str:
    return both(HEADERS[field]) if field in HEADERS else field


def reason_label(code: str) -> str:
    return both(REASONS[code]) if code in REASONS else code


def reason_rank(code: str) -> int:
    order = list(REASONS)
    return order.index(code) if code in order else len(order)


def quantize(value: Decimal | None, places: int) -> Decimal | None:
    """Round half away from zero (rulebook A) for display; None stays None."""
    return None if value is None else rounded(value, places)


def excel_format(places: int) -> str:
    return "#,##0" if places == 0 else "#,##0." + "0" * places


def thousands(value: Decimal | int | None, places: int = 2) -> str:
    """'1,234,567.89' (Babel, English symbols); an em dash for a missing value."""
    return number(value, places)
