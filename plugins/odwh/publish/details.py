"""The detail sentence of a review-list reason or an agent alert, in Khmer or English, from the mart's figures.

``rpt_review_list.detail_params`` and ``fct_agent_alerts.detail_params`` carry the figures of a reason as JSON
(amounts as exact decimal strings); the sentence is made here from catalogue messages so the Khmer is reviewed
with the rest of the catalogue, and amounts, dates and numbers are formatted by Babel for the locale. A row
without figures (a mart built before they existed) keeps the mart's English ``detail``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from odwh.i18n import KHMER, LOCALES, N_, NP_, day, gettext, money, ngettext, number

#: NBC grade names as the review lists show them (the marts carry the English name).
GRADES = {
    "Normal": N_("Normal"),
    "Special Mention": N_("Special Mention"),
    "Substandard": N_("Substandard"),
    "Doubtful": N_("Doubtful"),
    "Loss": N_("Loss"),
}


class _Sentence:
    """The figures of one row, formatted for one locale."""

    def __init__(self, params: Mapping[str, Any], currency: str, locale: str) -> None:
        self.params, self.currency, self.locale = params, currency, locale

    def __getitem__(self, key: str) -> Any:
        return self.params.get(key)

    def amount(self, key: str, currency: str | None = None) -> str:
        value = self.params.get(key)
        return money(None if value is None else Decimal(value), currency or self.currency, self.locale)

    def rate(self, key: str) -> str:
        """A ratio as a percentage with up to 4 decimals: '0.03' -> '3'; '0.0125' -> '1.25'."""
        value = Decimal(self.params[key]) * 100
        places = max(0, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
        return number(value, min(places, 4), self.locale)

    def date(self, key: str) -> str:
        return day(date.fromisoformat(self.params[key]), self.locale)

    def grade(self, key: str) -> str:
        name = self.params[key]
        return self._(GRADES[name]) if name in GRADES else name

    def _(self, message: str, **values: Any) -> str:
        return gettext(self.locale, message, **values)

    def n_(self, singular: str, plural: str, n: int, **values: Any) -> str:
        return ngettext(self.locale, singular, plural, n, **values)


# One function per reason: each is that reason's own sentence and figures (the catalogue's msgid is the sentence,
# so the calls look alike but are data; a table of templates would hide the msgids from extraction).


def _excess(s: _Sentence) -> str:
    return s.n_(
        "{n} day in excess, peak {peak}, excess fee {fee}",
        "{n} days in excess, peak {peak}, excess fee {fee}",
        s["days"],
        peak=s.amount("peak"),
        fee=s.amount("excess_fee"),
    )


def _no_transaction(s: _Sentence) -> str:
    return s._(
        "No customer transaction in the month; drawn {drawn}, charges of the month {charges}",
        drawn=s.amount("drawn"),
        charges=s.amount("charges"),
    )


def _insufficient_inflow(s: _Sentence) -> str:
    return s._(
        "Customer credits {credits} below the month's charges {charges} (interest {interest}, fees {fees})",
        credits=s.amount("credits"),
        charges=s.amount("charges"),
        interest=s.amount("interest"),
        fees=s.amount("fees"),
    )


def _conversion_candidate(s: _Sentence) -> str:
    window = s["window_days"]
    parts = []
    if s["stagnant"] is not None:
        parts.append(
            s._("Stagnant {amount} (not repaid for {days} days)", amount=s.amount("stagnant"), days=window)
        )
    if s["no_net_inflow"]:
        parts.append(s._("no net inflow over {days} days", days=window))
    parts.append(s._("drawn {amount}", amount=s.amount("drawn")))
    if s["term_product"]:
        parts.append(s._("propose {product} term loan", product=s["term_product"]))
    else:
        parts.append(s._("propose a term loan (no FX rate)"))
    parts.append(
        s._(
            "close the OD, re-appraise, check CBC again, keep term and purpose, monthly declining instalments,"
            " no grace period"
        )
    )
    if s["agent"]:
        parts.append(s._("collateral required (agent OD)"))
    return "; ".join(parts)


def _grade(s: _Sentence) -> str:
    grade = s.grade("grade")
    if s["previous"]:
        grade = s._("{previous} -> {grade}", previous=s.grade("previous"), grade=grade)
    days = s.n_("{n} day past due", "{n} days past due", s["days_past_due"])
    return f"{grade}, {days}"


def _maturity(s: _Sentence) -> str:
    if s["days_matured"] is not None:
        return s.n_(
            "Matured {date}, {drawn} still drawn ({n} day)",
            "Matured {date}, {drawn} still drawn ({n} days)",
            s["days_matured"],
            date=s.date("maturity_date"),
            drawn=s.amount("drawn"),
        )
    return s._(
        "Matures {date} (next month), drawn {drawn}", date=s.date("maturity_date"), drawn=s.amount("drawn")
    )


def _breach(s: _Sentence) -> str:
    return s._("Breaches: {checks}", checks=", ".join(s["breaches"]))


def _reconciliation(s: _Sentence) -> str:
    return s._(
        "Interest: warehouse {interest}, core {core_interest}; fees: warehouse {fees}, core {core_fees}",
        interest=s.amount("interest"),
        core_interest=s.amount("core_interest"),
        fees=s.amount("fees"),
        core_fees=s.amount("core_fees"),
    )


def _es_screening(s: _Sentence) -> str:
    rated = s._("{risk} rated", risk=s["es_risk"]) if s["es_risk"] else s._("not rated")
    return s._(
        "E&S {exception}: {rated}, {amount} applied on {date} ({khr} at that day's rate)",
        exception=s["exception"],
        rated=rated,
        amount=s.amount("amount"),
        date=s.date("applied_on"),
        khr=s.amount("amount_khr", "KHR"),
    )


def _exclusion(s: _Sentence) -> str:
    return s._(
        "Approved excluded activity {activity} ({name}); legal basis: {basis}",
        activity=s["activity"],
        name=s["activity_name"],
        basis=s["legal_basis"],
    )


def _over_indebtedness(s: _Sentence) -> str:
    if s["debt_service_ratio"] is None:
        ratio = s._("not recorded")
    else:
        ratio = number(Decimal(s["debt_service_ratio"]), 2, s.locale)
    text = s._(
        "{exception}: debt service ratio {ratio} (limit {limit})",
        exception=s["exception"],
        ratio=ratio,
        limit=number(Decimal(s["max_dsr"]), 2, s.locale),
    )
    return text if s["cbc_checked"] else text + s._(", approved without a CBC check")


def _pricing(s: _Sentence) -> str:
    return s._(
        "Monthly rate {monthly}% = {annual}% a year, above the NBC ceiling of {ceiling}%",
        monthly=s.rate("monthly_rate"),
        annual=s.rate("annual_rate"),
        ceiling=s.rate("ceiling"),
    )


def _converted(s: _Sentence) -> str:
    """Rulebook J: a conversion done in the month."""
    loan = s["loan_id"] or s._("(not in the loans snapshot)")
    if s["settled"] is None:
        return s._(
            "Converted on {date} to term loan {loan}, no settlement credit loaded",
            date=s.date("closed_on"),
            loan=loan,
        )
    return s._(
        "Converted on {date} to term loan {loan}, settled {amount} by the core (no customer repayment)",
        date=s.date("closed_on"),
        loan=loan,
        amount=s.amount("settled"),
    )


def _closed_with_balance(s: _Sentence) -> str:
    """Rulebook J: a closed OD still showing a balance, a data error."""
    closed = s.date("closed_on") if s["closed_on"] else s._("(no closing date)")
    return s._(
        "Data error: closed on {date} but the extract shows principal {principal}, interest {interest}, fees {fees}",
        date=closed,
        principal=s.amount("principal"),
        interest=s.amount("interest"),
        fees=s.amount("fees"),
    )


def _written_off(s: _Sentence) -> str:
    """Rulebook J: a write-off done in the month (decision 0028)."""
    if s["principal"] is None:
        return s._(
            "Written off on {date} (the day before is not loaded); off the books from that date",
            date=s.date("written_off_on"),
        )
    return s._(
        "Written off on {date}, principal {amount} the day before; off the books from that date",
        date=s.date("written_off_on"),
        amount=s.amount("principal"),
    )


#: Agent alert figures: (days key, amount key, message without the amount, message with it).
ALERT_DAYS = (
    (
        "cash_withdrawal_days",
        "cash_withdrawn",
        NP_("{n} day with a cash withdrawal", "{n} days with a cash withdrawal"),
        NP_(
            "{n} day with a cash withdrawal, total {amount}",
            "{n} days with a cash withdrawal, total {amount}",
        ),
    ),
    (
        "excess_days",
        "peak_excess",
        NP_("{n} day in excess", "{n} days in excess"),
        NP_("{n} day in excess, peak {amount}", "{n} days in excess, peak {amount}"),
    ),
    (
        "drawdown_days",
        "largest_drawdown",
        NP_("{n} day with an abnormal drawdown", "{n} days with an abnormal drawdown"),
        NP_(
            "{n} day with an abnormal drawdown, largest {amount}",
            "{n} days with an abnormal drawdown, largest {amount}",
        ),
    ),
)


def _agent_alert(s: _Sentence) -> str:
    """Each kind of abnormal day that occurred, with its figure when the opening account has one."""
    return "; ".join(
        s.n_(*without, s[days]) if s[amount] is None else s.n_(*with_amount, s[days], amount=s.amount(amount))
        for days, amount, without, with_amount in ALERT_DAYS
        if s[days]
    )


SENTENCES: dict[str, Callable[[_Sentence], str]] = {
    "EXCESS": _excess,
    "NO_TRANSACTION": _no_transaction,
    "INSUFFICIENT_INFLOW": _insufficient_inflow,
    "CONVERSION_CANDIDATE": _conversion_candidate,
    "GRADE": _grade,
    "MATURITY": _maturity,
    "BREACH": _breach,
    "RECONCILIATION": _reconciliation,
    "CONVERTED": _converted,
    "CLOSED_WITH_BALANCE": _closed_with_balance,
    "WRITTEN_OFF": _written_off,
    "ES_SCREENING": _es_screening,
    "EXCLUSION": _exclusion,
    "OVER_INDEBTEDNESS": _over_indebtedness,
    "PRICING": _pricing,
    "AGENT_ALERT": _agent_alert,
}


def sentence(kind: str, params: Mapping[str, Any], currency: str, locale: str = KHMER) -> str:
    """The detail of a review reason (its code) or of an agent alert (``AGENT_ALERT``) in ``locale``."""
    return SENTENCES[kind](_Sentence(params, currency, locale))


def bilingual(kind: str, params: Mapping[str, Any] | None, currency: str | None, fallback: str | None) -> str:
    """Khmer, then English on the next line; the mart's English ``fallback`` where the figures are missing."""
    if not isinstance(params, Mapping) or kind not in SENTENCES:
        return fallback or ""
    return "\n".join(sentence(kind, params, currency or "", locale) for locale in LOCALES)
