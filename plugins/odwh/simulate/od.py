"""The OD book: facility terms, end-of-day balances, accruals and the core system's postings, day by day.

State is one numpy array per attribute (one slot per account, accounts approved during the run included),
so a day costs a few dozen vectorised operations whatever the number of accounts. Balances move only through
posted transactions; the posting order within a day is the order of the phases in ``step``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date

import numpy as np

# names, not logic: opening.py imports many of the same money helpers (each module says what it uses)
from odwh.simulate.money import (
    CURRENCY_CODES,
    KHR,
    PPM,
    THB,
    USD,
    BoolArray,
    FxWalk,
    IntArray,
    add_months,
    day_weight,
    fmt_many,
    fmt_minor,
    fmt_ppm,
    in_cents,
    is_month_end,
    iso,
    round_div,
    round_to_step,
)
from odwh.simulate.rates import Rates
from odwh.simulate.txns import (
    AGENT_CHANNEL,
    ATM,
    CAPITALIZATION,
    CASH_WITHDRAWAL,
    COUNTER,
    CREDIT,
    DEBIT,
    DRAWDOWN,
    FEE_CHARGE,
    INTEREST_CHARGE,
    MOBILE,
    PROCESSING_FEE,
    REPAYMENT,
    REVERSAL,
    SYSTEM,
    TRANSFER_OUT,
    Reversible,
    TxnLog,
)

# PENDING: approved after today, not yet in the extract
PENDING, ACTIVE, CLOSED, CONVERTED, WRITTEN_OFF = 0, 1, 2, 3, 4
STATUS_NAMES = ("", "ACTIVE", "CLOSED", "CONVERTED", "WRITTEN_OFF")
REVOLVING, STAGNANT, DORMANT = 0, 1, 2
NO_COLLATERAL, PROPERTY, FIXED_DEPOSIT = 0, 1, 2
COLLATERAL_NAMES = ("NONE", "PROPERTY", "FIXED_DEPOSIT")
WORKING_CAPITAL, AGENT_LIQUIDITY, REFINANCE, OTHER = 0, 1, 2, 3
PURPOSE_NAMES = ("WORKING_CAPITAL", "AGENT_LIQUIDITY", "REFINANCE", "OTHER")
LIMIT_STEP = np.array([100_000, 10_000, 100_000], dtype=np.int64)  # 100,000 riel, 100 dollars, 1,000 baht
# Monthly rates at or below the NBC ceiling of 18% a year (1.5% a month); a few accounts are priced above it
# (Rates.above_rate_ceiling_share, ABOVE_CEILING_PPM): the responsible-pricing exceptions of rulebook I.
ABOVE_CEILING_PPM = (16000, 18000)
INTEREST_PPM = {
    KHR: (13000, 14000, 15000, 15000),
    USD: (12000, 13000, 14000, 15000),
    THB: (13000, 14000, 15000),
}
FEE_PPM = 10_000  # processing 1% of limit, excess 1% a month, un-utilization 1% a year (OD policy §4)
AGENT_LIMIT_USD = 4800.0  # below the USD 5,000 cap with room for FX moves
LIMIT_CAP_USD = 95_000.0  # below the USD 100,000 cap
CONVERSION_DAY = 15
STAGNATION_DAYS = 60
WRITE_OFF_DAY = 20  # a write-off is decided on the 20th, after the conversions of the 15th
WRITE_OFF_DAYS = 180  # no repayment for this long (a Loss-grade OD, 91+ days past due)

# Account-level injections recorded for the ground truth (see Rates for their shares).
BREACH_FLAGS = (
    "agent_limit_over_5000",
    "agent_tenure_under_6m",
    "property_ltv_over_70",
    "limit_over_100k",
    "fd_limit_over_deposit",
    "fd_matures_first_not_frozen",
    "term_over_12m",
    "refinance",
    "restructured",
)


@dataclass
class Conversion:
    """ODs converted to term loans today: account index and the amount the new loan takes over."""

    acc: IntArray
    amount: IntArray


class OdBook:
    def __init__(self, n: int, rates: Rates) -> None:
        self.n, self.rates = n, rates

        def z64() -> IntArray:
            return np.zeros(n, dtype=np.int64)

        def zb() -> BoolArray:
            return np.zeros(n, dtype=bool)

        self.ids = [f"OD{i + 1:08d}" for i in range(n)]
        self.customer = np.arange(n, dtype=np.int64)  # customer i owns account i
        self.agent, self.sme = zb(), zb()
        self.cur = np.zeros(n, dtype=np.int8)
        self.limit, self.approved, self.start, self.maturity, self.closed = z64(), z64(), z64(), z64(), z64()
        self.term = np.full(n, 12, dtype=np.int64)
        self.status = np.zeros(n, dtype=np.int8)
        self.interest_ppm = z64()
        self.collateral = np.zeros(n, dtype=np.int8)
        self.collateral_value = z64()
        self.fd_of = np.full(n, -1, dtype=np.int64)
        self.purpose = np.zeros(n, dtype=np.int8)
        self.restructured = zb()
        self.behaviour = np.zeros(n, dtype=np.int8)
        self.excess_prone, self.recon_diff, self.no_increase = zb(), zb(), zb()
        self.pay_day = z64()
        # end-of-day balances (minor units) and what drives behaviour
        self.P, self.I, self.F = z64(), z64(), z64()
        self.last_credit, self.excess_until = z64(), z64()
        # month-to-date accrual bases: sum of balance x day weight (rulebook) and of balance (ACT/365 variant)
        self.s_interest, self.s_actual, self.s_unutilized, self.s_excess = z64(), z64(), z64(), z64()
        # fixed deposits (collateral of FD-backed ODs)
        self.fd_ids: list[str] = []
        self.fd_acc = np.zeros(0, dtype=np.int64)
        self.fd_principal = self.fd_opened = self.fd_maturity = np.zeros(0, dtype=np.int64)
        self.fd_frozen = np.zeros(0, dtype=bool)
        self._later: defaultdict[int, list[Reversible]] = defaultdict(list)
        # ground truth of what was injected
        self.flags: dict[str, BoolArray] = {}
        self.seen: defaultdict[str, BoolArray] = defaultdict(zb)
        self.counts: Counter[str] = Counter()
        # rendering caches
        self._account_rows = [""] * n
        self._account_dirty = np.ones(n, dtype=bool)
        self._fd_body: str | None = None
        self._bal_suffix = [""] * n
        self._bal_prev = np.full((3, n), -1, dtype=np.int64)
        self._ids_comma = [i + "," for i in self.ids]
        self.customer_ids: list[str] = []

    # ----------------------------------------------------------------------------------------------- one day
    def step(
        self, d: date, rng: np.random.Generator, fx: FxWalk, log: TxnLog, life: np.random.Generator
    ) -> Conversion:
        """One business date; ``life`` draws the limit decreases and write-offs (its own stream, so adding
        them left every other draw of a seed unchanged)."""
        o = d.toordinal()
        self._approvals(o, d, rng, fx, log)
        self._decrease_limits(o, life)
        self._due_reversals(o, log)
        posted = self._customer_transactions(o, d, rng, log)
        self._reverse(o, rng, posted, log)
        conversion = self._close_and_convert(o, d, rng, log)
        self._write_off(o, d, life, log)
        month_end = is_month_end(d)
        if month_end:
            self._capitalize(log)
        self._accrue(o, day_weight(d))
        if month_end:
            self._charge(np.flatnonzero(self.status == ACTIVE), log)
        self._drift(rng)
        return conversion

    def _approvals(self, o: int, d: date, rng: np.random.Generator, fx: FxWalk, log: TxnLog) -> None:
        """New facilities, renewals at maturity and limit increases: each is an approval with its fee."""
        r = self.rates
        new = np.flatnonzero((self.status == PENDING) & (self.approved == o))
        self.status[new] = ACTIVE
        active = self.status == ACTIVE
        maturing = np.flatnonzero(active & (self.maturity == o) & (self.behaviour != STAGNANT))
        renew = maturing[rng.random(len(maturing)) < r.renewal_share]
        for i in renew.tolist():
            self.approved[i] = self.start[i] = o
            self.maturity[i] = add_months(d, int(self.term[i])).toordinal()
            fd = self.fd_of[i]
            if (
                fd >= 0
                and self.fd_maturity[fd] < self.maturity[i]
                and not self.flags["fd_matures_first_not_frozen"][i]
            ):
                self.fd_frozen[fd] = True
                self._fd_body = None
        wants_more = active & (self.start <= o) & (self.maturity > o + 30) & (self.behaviour == REVOLVING)
        wants_more &= ~self.no_increase & (rng.random(self.n) < r.limit_increase_monthly / 30)
        increase = np.flatnonzero(wants_more)
        new_limit = self._capped_limit(
            increase, self.limit[increase] * (1.2 + 0.3 * rng.random(len(increase))), fx
        )
        keep = new_limit > self.limit[increase]
        increase = increase[keep]
        self.limit[increase] = new_limit[keep]
        self.approved[increase] = o
        approvals = np.concatenate([new, renew, increase])
        self._account_dirty[approvals] = True
        self.seen["renewed"][renew] = True
        self.seen["limit_increase"][increase] = True
        no_fee = rng.random(len(approvals)) < r.no_processing_fee_share
        self.seen["no_processing_fee"][approvals[no_fee]] = True
        self.counts["approvals"] += len(approvals)
        self.counts["no_processing_fee"] += int(no_fee.sum())
        charged = approvals[~no_fee]
        fee = round_div(self.limit[charged] * FEE_PPM, PPM)
        log.post(charged, PROCESSING_FEE, DEBIT, fee, SYSTEM)
        log.post(charged, REPAYMENT, CREDIT, fee, COUNTER)  # paid at the counter before activation
        # the fee goes onto fees_receivable and is paid off at once; the net effect on balances is nil

    def _decrease_limits(self, o: int, life: np.random.Generator) -> None:
        """A lower limit mid-term (rulebook J): a new approval without a fee, never below the drawn amount."""
        running = (self.status == ACTIVE) & (self.start < o) & (self.maturity > o + 30) & (self.approved < o)
        idx = np.flatnonzero(running & (life.random(self.n) < self.rates.limit_decrease_monthly / 30))
        step = LIMIT_STEP[self.cur[idx]]
        wanted = np.floor(self.limit[idx] * (0.6 + 0.25 * life.random(len(idx))) / step) * step
        new_limit = np.maximum(wanted, np.ceil(self.P[idx] / step) * step).astype(np.int64)
        keep = (new_limit < self.limit[idx]) & (new_limit > 0)
        idx = idx[keep]
        self.limit[idx] = new_limit[keep]
        self.approved[idx] = o
        self._account_dirty[idx] = True
        self.seen["limit_decrease"][idx] = True
        self.counts["limit_decreases"] += len(idx)

    def _write_off(self, o: int, d: date, life: np.random.Generator, log: TxnLog) -> None:
        """ODs without a repayment for WRITE_OFF_DAYS (not converted) may be written off on the 20th (rulebook J):
        the month's charges so far are posted, then principal and receivables leave the books (balances 0, no
        transaction: the amount written off is the principal of the day before)."""
        if d.day != WRITE_OFF_DAY:
            return
        due = (self.status == ACTIVE) & (self.P > 0) & (o - self.last_credit > WRITE_OFF_DAYS)
        idx = np.flatnonzero(due & (life.random(self.n) < self.rates.write_off_monthly))
        self._charge(idx, log)
        self.P[idx] = self.I[idx] = self.F[idx] = 0
        self.status[idx] = WRITTEN_OFF
        self.closed[idx] = o
        self.excess_until[idx] = 0
        self._account_dirty[idx] = True
        self.seen["written_off"][idx] = True
        self.counts["write_offs"] += len(idx)

    def _capped_limit(self, idx: IntArray, wanted: np.ndarray, fx: FxWalk) -> IntArray:
        usd_per_minor = fx.usd_per_minor()[self.cur[idx]]
        cap = np.where(self.agent[idx], AGENT_LIMIT_USD, LIMIT_CAP_USD) / usd_per_minor
        collateral = self.collateral[idx]
        value = self.collateral_value[idx].astype(float)
        cap = np.where(collateral == PROPERTY, np.minimum(cap, 0.68 * value), cap)
        cap = np.where(collateral == FIXED_DEPOSIT, np.minimum(cap, value), cap)
        step = LIMIT_STEP[self.cur[idx]]
        return (np.floor(np.minimum(wanted, cap) / step) * step).astype(np.int64)

    def _due_reversals(self, o: int, log: TxnLog) -> None:
        """Reversals of earlier days' transactions; one per account a day, the rest wait a day."""
        batch = self._later.pop(o, [])
        if not batch:
            return
        due = Reversible(
            *(np.concatenate([getattr(b, f) for b in batch]) for f in Reversible.__dataclass_fields__)
        )
        first = np.zeros(len(due.acc), dtype=bool)
        first[np.unique(due.acc, return_index=True)[1]] = True
        if (~first).any():
            self._later[o + 1].append(due.take(~first))
        due = due.take(first)
        is_debit = due.ttype != REPAYMENT
        ok = (self.status[due.acc] == ACTIVE) & (~is_debit | (self.P[due.acc] >= due.amount))
        self.counts["reversals_dropped"] += int((~ok).sum())  # account closed, or the drawn amount repaid
        self._apply_reversals(due.take(ok), log)

    def _apply_reversals(self, rev: Reversible, log: TxnLog) -> None:
        is_debit = rev.ttype != REPAYMENT
        acc = rev.acc
        self.P[acc] += np.where(is_debit, -rev.amount, rev.principal_part)
        self.I[acc] += rev.interest_part
        self.F[acc] += rev.fee_part
        log.post(acc, REVERSAL, np.where(is_debit, CREDIT, DEBIT), rev.amount, rev.channel, rev.ids)
        self.seen["reversal"][acc] = True
        self.counts["reversals"] += len(acc)

    def _customer_transactions(self, o: int, d: date, rng: np.random.Generator, log: TxnLog) -> Reversible:
        """At most one customer transaction per account a day: a debit (drawdown, transfer, withdrawal) or a
        repayment. Excess episodes: a drawdown beyond the limit, repaid below it 3-25 days later."""
        r, n = self.rates, self.n
        u = rng.random((8, n))
        active = self.status == ACTIVE
        in_term = active & (self.start <= o) & (o <= self.maturity)
        total = self.P + self.I + self.F
        charges = self.I + self.F
        ending = active & (self.excess_until == o)
        ongoing = self.excess_until > o
        starting = in_term & self.excess_prone & (self.behaviour == REVOLVING) & ~ongoing & ~ending
        starting &= u[0] < r.excess_start_daily
        free = ~ongoing & ~starting & ~ending
        room = self.limit > self.P
        draw_p = np.where(self.agent, 0.30, 0.15)
        draw_p = np.where(self.behaviour == STAGNANT, 0.02, np.where(self.behaviour == DORMANT, 0.0, draw_p))
        repay_p = np.where(self.behaviour != REVOLVING, 0.0, np.where(self.agent, 0.30, 0.12))
        repay_p = np.where(active & (o > self.maturity) & (self.behaviour == REVOLVING), 0.25, repay_p)
        cash_withdrawal = in_term & self.agent & free & room & (u[1] < r.agent_cash_withdrawal_daily)
        draw = in_term & free & room & (u[2] < draw_p)
        payday = active & (self.pay_day == d.day) & (charges > 0) & (self.behaviour != STAGNANT)
        payday &= ~starting & ~ending
        regular = active & free & (total > 0) & (u[3] < repay_p)
        repay = regular | payday
        draw &= ~(repay & (payday | (u[4] < 0.5)))
        repay &= ~draw
        draw |= cash_withdrawal
        repay &= ~cash_withdrawal
        payday &= repay

        size = u[5]
        debit_idx, debit_amt, debit_type, debit_channel = self._debits(
            draw, cash_withdrawal, size, u[6], u[7]
        )
        s_idx = np.flatnonzero(starting)
        step = LIMIT_STEP[self.cur[s_idx]] // 100
        over = np.ceil(self.limit[s_idx] * (0.02 + 0.13 * size[s_idx]) / step).astype(np.int64) * step
        s_amt = np.maximum(self.limit[s_idx] - self.P[s_idx], 0) + over
        self.excess_until[s_idx] = o + rng.integers(3, 26, len(s_idx))
        self.excess_until[ending] = 0
        self.seen["excess_episode"][s_idx] = True
        self.counts["excess_episodes"] += len(s_idx)

        credit_idx = np.flatnonzero((repay | ending) & (total > 0))
        credit_amt = self._repayment_amounts(credit_idx, size, payday & ~regular, ending, ongoing)
        keep = credit_amt > 0
        credit_idx, credit_amt = credit_idx[keep], credit_amt[keep]

        d_idx = np.concatenate([debit_idx, s_idx])
        d_amt = np.concatenate([debit_amt, s_amt])
        d_type = np.concatenate([debit_type, np.full(len(s_idx), DRAWDOWN)])
        d_channel = np.concatenate([debit_channel, np.full(len(s_idx), COUNTER)])
        d_ids = log.post(d_idx, d_type, DEBIT, d_amt, d_channel)
        self.P[d_idx] += d_amt
        c_channel = np.array([COUNTER, AGENT_CHANNEL, ATM, MOBILE])[
            np.searchsorted([0.35, 0.65, 0.75], u[7][credit_idx], side="right")
        ]
        c_ids = log.post(credit_idx, REPAYMENT, CREDIT, credit_amt, c_channel)
        fee, interest, principal = self._waterfall(credit_idx, credit_amt)
        self.last_credit[credit_idx] = o
        zeros = np.zeros(len(d_idx), dtype=np.int64)
        return Reversible(
            ids=np.concatenate([d_ids, c_ids]),
            acc=np.concatenate([d_idx, credit_idx]),
            ttype=np.concatenate([d_type, np.full(len(credit_idx), REPAYMENT)]),
            amount=np.concatenate([d_amt, credit_amt]),
            channel=np.concatenate([d_channel, c_channel]),
            fee_part=np.concatenate([zeros, fee]),
            interest_part=np.concatenate([zeros, interest]),
            principal_part=np.concatenate([zeros, principal]),
        )

    def _debits(
        self,
        draw: BoolArray,
        cash_withdrawal: BoolArray,
        size: np.ndarray,
        kind: np.ndarray,
        chan: np.ndarray,
    ) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        idx = np.flatnonzero(draw)
        amount = round_to_step((self.limit[idx] - self.P[idx]) * (0.1 + 0.5 * size[idx]), self.cur[idx])
        keep = amount > 0
        idx, amount = idx[keep], amount[keep]
        k = kind[idx]
        agent_type = np.where(k < 0.6, TRANSFER_OUT, DRAWDOWN)
        other_type = np.where(k < 0.5, DRAWDOWN, np.where(k < 0.75, CASH_WITHDRAWAL, TRANSFER_OUT))
        ttype = np.where(
            cash_withdrawal[idx], CASH_WITHDRAWAL, np.where(self.agent[idx], agent_type, other_type)
        )
        c = chan[idx]
        channel = np.select(
            [ttype == DRAWDOWN, ttype == TRANSFER_OUT],
            [np.where(c < 0.5, COUNTER, MOBILE), MOBILE],
            np.where(c < 0.6, ATM, COUNTER),
        )
        agent_cw = idx[cash_withdrawal[idx]]
        self.seen["agent_cash_withdrawal"][agent_cw] = True
        self.counts["agent_cash_withdrawals"] += len(agent_cw)
        return idx, amount, ttype.astype(np.int64), channel.astype(np.int64)

    def _repayment_amounts(
        self, idx: IntArray, size: np.ndarray, payday_only: BoolArray, ending: BoolArray, ongoing: BoolArray
    ) -> IntArray:
        """Regular repayments pay 20-90% of the total (or all of it); on the pay day the month's charges are
        paid, with a little principal; the end of an excess episode brings the principal back under the limit."""
        total = (self.P + self.I + self.F)[idx]
        charges = (self.I + self.F)[idx]
        cur = self.cur[idx]
        frac = 0.2 + 0.8 * size[idx]
        amount = np.where(frac > 0.9, total, round_to_step(total * frac, cur))
        amount = np.maximum(amount, charges)
        with_principal = charges + round_to_step(self.P[idx] * 0.1 * size[idx], cur)
        amount = np.where(payday_only[idx], np.where(ongoing[idx], charges, with_principal), amount)
        back_below = charges + np.maximum(self.P[idx] - self.limit[idx], 0)
        back_below += round_to_step(self.limit[idx] * (0.05 + 0.25 * size[idx]), cur)
        amount = np.where(ending[idx], back_below, amount)
        return np.minimum(amount, total)

    def _waterfall(self, idx: IntArray, amount: IntArray) -> tuple[IntArray, IntArray, IntArray]:
        """A credit pays fees, then interest, then principal (rulebook D)."""
        fee = np.minimum(amount, self.F[idx])
        interest = np.minimum(amount - fee, self.I[idx])
        principal = amount - fee - interest
        if np.any(principal > self.P[idx]):
            raise ValueError("simulator bug: a repayment exceeds the total outstanding")
        self.F[idx] -= fee
        self.I[idx] -= interest
        self.P[idx] -= principal
        return fee, interest, principal

    def _reverse(self, o: int, rng: np.random.Generator, posted: Reversible, log: TxnLog) -> None:
        r = self.rates
        chosen = rng.random(len(posted.acc)) < r.reversal_share
        same_day = chosen & (rng.random(len(posted.acc)) < r.reversal_same_day_share)
        self._apply_reversals(posted.take(same_day), log)
        later = posted.take(chosen & ~same_day)
        due = o + rng.integers(1, 6, len(later.acc))
        for day in np.unique(due).tolist():
            self._later[day].append(later.take(due == day))

    def _close_and_convert(self, o: int, d: date, rng: np.random.Generator, log: TxnLog) -> Conversion:
        """Matured facilities repaid in full close; ODs without a repayment for 60 days may be converted to a
        term loan on the 15th (the month's charges so far are posted, then the loan takes over the total)."""
        active = self.status == ACTIVE
        convert = active & (d.day == CONVERSION_DAY) & (self.P > 0) & (o - self.last_credit > STAGNATION_DAYS)
        convert &= rng.random(self.n) < self.rates.conversion_monthly
        close = active & ~convert & (o > self.maturity) & (self.P == 0)
        ending = np.flatnonzero(convert | close)
        self._charge(ending, log)
        settle = ending[(self.P + self.I + self.F)[ending] > 0]
        amount = (self.P + self.I + self.F)[settle]
        log.post(settle, REPAYMENT, CREDIT, amount, np.where(convert[settle], SYSTEM, COUNTER))
        self.P[ending] = self.I[ending] = self.F[ending] = 0
        self.status[ending] = np.where(convert[ending], CONVERTED, CLOSED)
        self.closed[ending] = o
        self.excess_until[ending] = 0
        self._account_dirty[ending] = True
        conv = np.flatnonzero(convert)
        self.seen["converted"][conv] = True
        self.seen["closed"][np.flatnonzero(close)] = True
        return Conversion(conv, amount[convert[settle]])

    def _capitalize(self, log: TxnLog) -> None:
        """Month end: interest charged last month and still unpaid is capitalized into principal."""
        idx = np.flatnonzero((self.status == ACTIVE) & (self.I > 0))
        log.post(idx, CAPITALIZATION, DEBIT, self.I[idx], SYSTEM)
        self.P[idx] += self.I[idx]
        self.I[idx] = 0
        self.seen["capitalization"][idx] = True
        self.counts["capitalizations"] += len(idx)

    def _accrue(self, o: int, weight: int) -> None:
        active = self.status == ACTIVE
        in_term = active & (self.start <= o) & (o <= self.maturity)
        drawn = np.where(active, self.P, 0)
        self.s_interest += drawn * weight
        self.s_actual += drawn
        self.s_unutilized += np.where(in_term, np.maximum(self.limit - self.P, 0), 0) * weight
        self.s_excess += np.where(active, np.maximum(self.P - self.limit, 0), 0) * weight

    def _charge(self, idx: IntArray, log: TxnLog) -> None:
        """Post the month's (or month-to-date's) interest and fees; the core's deviating accounts use ACT/365."""
        rate = self.interest_ppm[idx]
        rulebook = round_div(self.s_interest[idx] * rate, 30 * PPM)
        act365 = round_div(self.s_actual[idx] * rate * 12, 365 * PPM)
        interest = np.where(self.recon_diff[idx], act365, rulebook)
        fee = round_div(self.s_unutilized[idx] * FEE_PPM, 360 * PPM) + round_div(
            self.s_excess[idx] * FEE_PPM, 30 * PPM
        )
        has_interest, has_fee = interest > 0, fee > 0
        log.post(idx[has_interest], INTEREST_CHARGE, DEBIT, interest[has_interest], SYSTEM)
        log.post(idx[has_fee], FEE_CHARGE, DEBIT, fee[has_fee], SYSTEM)
        self.I[idx] += interest
        self.F[idx] += fee
        for s in (self.s_interest, self.s_actual, self.s_unutilized, self.s_excess):
            s[idx] = 0

    def _drift(self, rng: np.random.Generator) -> None:
        onset = (self.behaviour == REVOLVING) & (self.status == ACTIVE) & (self.P > 0) & ~self.excess_prone
        onset &= rng.random(self.n) < self.rates.stagnant_onset_daily
        self.behaviour[onset] = STAGNANT
        self.seen["became_stagnant"][onset] = True

    def outstanding_usd(self, fx: FxWalk) -> float:
        return float((self.P * fx.usd_per_minor()[self.cur]).sum())

    def roll_deposits(self, o: int) -> None:
        """Fixed deposits renew automatically at maturity."""
        due = np.flatnonzero(self.fd_maturity == o)
        for j in due.tolist():
            self.fd_maturity[j] = add_months(date.fromordinal(o), 12).toordinal()
            self._fd_body = None

    # ----------------------------------------------------------------------------------------------- files
    def render_accounts(self) -> tuple[str, int, int]:
        visible = self.status != PENDING
        for i in np.flatnonzero(self._account_dirty & visible).tolist():
            self._account_rows[i] = self._account_row(i)
        self._account_dirty &= ~visible
        return (
            "".join(self._account_rows),
            int(visible.sum()),
            in_cents(self.limit[visible], self.cur[visible]),
        )

    def _account_row(self, i: int) -> str:
        cur = int(self.cur[i])
        fd = int(self.fd_of[i])
        value = int(self.collateral_value[i])
        return (
            f"{self.ids[i]},{self.customer_ids[i]},SA{i + 1:08d},{CURRENCY_CODES[cur]},"
            f"{fmt_minor(int(self.limit[i]), cur)},{iso(int(self.approved[i]))},{iso(int(self.start[i]))},"
            f"{iso(int(self.maturity[i]))},{fmt_ppm(int(self.interest_ppm[i]))},{fmt_ppm(FEE_PPM)},"
            f"{fmt_ppm(FEE_PPM)},{fmt_ppm(FEE_PPM)},{COLLATERAL_NAMES[self.collateral[i]]},"
            f"{fmt_minor(value, cur) if self.collateral[i] else ''},{self.fd_ids[fd] if fd >= 0 else ''},"
            f"{PURPOSE_NAMES[self.purpose[i]]},{'true' if self.restructured[i] else 'false'},"
            f"{STATUS_NAMES[self.status[i]]},{iso(int(self.closed[i]))}\n"
        )

    def render_balances(self, business_date: str) -> tuple[str, int, int]:
        """Rows are cached without their date; only accounts whose balances moved are formatted again."""
        now = np.stack([self.P, self.I, self.F])
        changed = np.flatnonzero((now != self._bal_prev).any(axis=0))
        cur = self.cur[changed]
        columns = [fmt_many(values[changed], cur) for values in now]
        for i, p, interest, fee in zip(changed.tolist(), *columns, strict=True):
            self._bal_suffix[i] = f"{p},{interest},{fee}\n"
        self._bal_prev = now
        mask = self.status != PENDING
        visible = np.flatnonzero(mask).tolist()
        prefix, suffix, date_part = self._ids_comma, self._bal_suffix, business_date + ","
        body = "".join([prefix[i] + date_part + suffix[i] for i in visible])
        return body, len(visible), in_cents(self.P[mask], self.cur[mask])

    def render_deposits(self) -> tuple[str, int, int]:
        if self._fd_body is None:
            self._fd_body = "".join(
                f"{self.fd_ids[j]},{self.customer_ids[a]},{CURRENCY_CODES[self.cur[a]]},"
                f"{fmt_minor(int(self.fd_principal[j]), int(self.cur[a]))},{iso(int(self.fd_opened[j]))},"
                f"{iso(int(self.fd_maturity[j]))},{'true' if self.fd_frozen[j] else 'false'},ACTIVE\n"
                for j, a in enumerate(self.fd_acc.tolist())
            )
        return self._fd_body, len(self.fd_ids), in_cents(self.fd_principal, self.cur[self.fd_acc])

    def truth(self) -> dict[str, object]:
        def ids(mask: BoolArray) -> list[str]:
            return [self.ids[i] for i in np.flatnonzero(mask).tolist()]

        return {
            "account_flags": {name: ids(mask) for name, mask in self.flags.items()},
            "accounts_with_event": {name: ids(mask) for name, mask in sorted(self.seen.items())},
            "event_counts": dict(sorted(self.counts.items())),
        }
