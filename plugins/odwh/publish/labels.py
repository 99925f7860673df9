"""Names shown to readers: bilingual (Khmer / English) headers, review reasons, alert states, currency decimals.

The Khmer wording is the project's own translation; the risk team should have it checked by a native speaker
(docs/reports.md). Everything here is data, so a correction is a one-line change.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

#: Column headers of the review lists and agent alert lists: field -> (Khmer, English).
HEADERS: dict[str, tuple[str, str]] = {
    "od_account_id": ("លេខគណនី", "Account"),
    "customer_id": ("លេខអតិថិជន", "Customer"),
    "reason": ("មូលហេតុ", "Reason"),
    "detail": ("ព័ត៌មានលម្អិត", "Detail"),
    "currency": ("រូបិយប័ណ្ណ", "Currency"),
    "amount": ("ចំនួនទឹកប្រាក់", "Amount"),
    "amount_usd": ("ចំនួនទឹកប្រាក់ (ដុល្លារ)", "Amount (USD)"),
    "officer_id": ("មន្ត្រីឥណទាន", "Officer"),
    "officer_name": ("ឈ្មោះមន្ត្រី", "Officer name"),
    "manager_id": ("អ្នកគ្រប់គ្រង", "Manager"),
    "senior_manager_id": ("អ្នកគ្រប់គ្រងជាន់ខ្ពស់", "Senior manager"),
    "branch_code": ("សាខា", "Branch"),
    "accounts": ("ចំនួនគណនី", "Accounts"),
    "assigned_to_id": ("អ្នកទទួលខុសត្រូវ", "Assigned to"),
    "status": ("ស្ថានភាព", "Status"),
    "opened_on": ("ថ្ងៃបើក", "Opened on"),
    "last_abnormal_on": ("ថ្ងៃមិនប្រក្រតីចុងក្រោយ", "Last abnormal day"),
    "days_open": ("ចំនួនថ្ងៃបើក", "Days open"),
    "escalated_on": ("ថ្ងៃបញ្ជូនបន្ត", "Escalated on"),
}

TOTAL = ("សរុប", "Total")
SUBTOTAL = ("សរុបរង", "Subtotal")
#: The count on a list's total line, where an account listed for several reasons counts once.
ACCOUNTS_COUNTED_ONCE = ("ចំនួនគណនី (គណនីនីមួយៗរាប់តែម្តង)", "Accounts, each counted once")

#: Review-list reasons (rulebook H) in the order the lists show them: code -> (Khmer, English).
REASONS: dict[str, tuple[str, str]] = {
    "EXCESS": ("ប្រើលើសដែនកំណត់", "Excess over limit"),
    "NO_TRANSACTION": ("គ្មានប្រតិបត្តិការ", "No transaction"),
    "INSUFFICIENT_INFLOW": ("ប្រាក់ចូលមិនគ្រប់គ្រាន់", "Credits below charges"),
    "CONVERSION_CANDIDATE": ("បេក្ខភាពប្តូរទៅកម្ចីមានកាលកំណត់", "Conversion candidate"),
    "GRADE": ("ចំណាត់ថ្នាក់ឥណទាន", "Grade"),
    "MATURITY": ("ដល់កាលកំណត់", "Maturity"),
    "BREACH": ("ការបំពានគោលនយោបាយ", "Policy breach"),
    "RECONCILIATION": ("ភាពខុសគ្នាពេលផ្ទៀងផ្ទាត់", "Reconciliation break"),
    # rulebook I (social performance): the "account" of an application reason is the application id
    "ES_SCREENING": ("ការត្រួតពិនិត្យបរិស្ថាន និងសង្គម", "E&S screening exception"),
    "EXCLUSION": ("សកម្មភាពក្នុងបញ្ជីហាមឃាត់", "Excluded activity approved"),
    "OVER_INDEBTEDNESS": ("ជំពាក់បំណុលហួសកម្រិត", "Over-indebtedness exception"),
    "PRICING": ("អត្រាការប្រាក់លើសពិដាន", "Rate above the NBC ceiling"),
}

#: Agent alert states as the daily list shows them.
ALERT_STATUS: dict[str, tuple[str, str]] = {
    "OPEN": ("បើក", "Open"),
    "ESCALATED": ("បានបញ្ជូនទៅប្រធានតំបន់", "Escalated to Regional Manager"),
}

#: Decimals shown per currency (rulebook A: KHR to 1 riel, USD and THB to 0.01).
CURRENCY_DECIMALS: dict[str, int] = {"KHR": 0, "USD": 2, "THB": 2}


def bilingual(pair: tuple[str, str]) -> str:
    """'លេខគណនី / Account'."""
    return f"{pair[0]} / {pair[1]}"


def header(field: str) -> str:
    return bilingual(HEADERS[field]) if field in HEADERS else field


def reason_label(code: str) -> str:
    return bilingual(REASONS[code]) if code in REASONS else code


def reason_rank(code: str) -> int:
    order = list(REASONS)
    return order.index(code) if code in order else len(order)


def decimals(currency: str | None) -> int:
    return CURRENCY_DECIMALS.get(currency or "", 2)


def quantize(value: Decimal | None, places: int) -> Decimal | None:
    """Round half away from zero (rulebook A) for display; None stays None."""
    if value is None:
        return None
    return Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def excel_format(places: int) -> str:
    return "#,##0" if places == 0 else "#,##0." + "0" * places


def thousands(value: Decimal | int | None, places: int = 2) -> str:
    """'1,234,567.89'; an em dash for a missing value."""
    if value is None:
        return "—"
    rounded = quantize(Decimal(value), places)
    return f"{rounded:,.{places}f}"


def percent(ratio: Decimal | None, places: int = 1) -> str:
    """0.0621 -> '6.2%'; an em dash for a missing ratio (e.g. no portfolio)."""
    if ratio is None:
        return "—"
    return f"{quantize(Decimal(ratio) * 100, places):,.{places}f}%"
