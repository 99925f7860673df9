"""The opening portfolio: OD facilities, their terms, collateral, behaviours and balances before day one."""

from __future__ import annotations

from datetime import date

import numpy as np

from odwh.simulate.customers import AGENT, SME, Customers

# names, not logic: od.py imports many of the same money helpers (each module says what it uses)
from odwh.simulate.money import (
    KHR,
    PPM,
    THB,
    USD,
    BoolArray,
    FxWalk,
    add_months,
    day_weight,
    round_div,
    round_to_step,
)
from odwh.simulate.od import (
    ABOVE_CEILING_PPM,
    ACTIVE,
    AGENT_LIMIT_USD,
    AGENT_LIQUIDITY,
    BREACH_FLAGS,
    DORMANT,
    FIXED_DEPOSIT,
    INTEREST_PPM,
    LIMIT_CAP_USD,
    LIMIT_STEP,
    NO_COLLATERAL,
    OTHER,
    PENDING,
    PROPERTY,
    REFINANCE,
    REVOLVING,
    STAGNANT,
    WORKING_CAPITAL,
    OdBook,
)
from odwh.simulate.rates import Rates, pick_exact


def create_book(
    rng: np.random.Generator,
    customers: Customers,
    n_old: int,
    n_new: int,
    first: date,
    last: date,
    rates: Rates,
    fx: FxWalk,
) -> OdBook:
    """Accounts 0..n_old-1 exist before ``first``; the rest are approved on random days of the run."""
    n = n_old + n_new
    book = OdBook(n, rates)
    book.customer_ids = customers.ids
    types = customers.ctype[:n]
    book.agent, book.sme = types == AGENT, types == SME
    old = np.arange(n) < n_old
    _currencies(book, rng, customers, rates)
    _dates(book, rng, first, last, n_old)
    _limits_and_collateral(book, rng, fx, rates)
    _terms(book, rng, rates, old)
    _behaviour(book, rng, rates, old)
    _opening_balances(book, rng, first, old)
    _deposits(book, rng, first)
    _customer_dates(book, rng, customers, rates)
    book.no_increase = np.logical_or.reduce([book.flags[f] for f in BREACH_FLAGS]) | book.recon_diff
    return book


def _currencies(book: OdBook, rng: np.random.Generator, customers: Customers, rates: Rates) -> None:
    thb = 1 - rates.khr_share - rates.usd_share
    p_thb = np.where(customers.thai_border()[: book.n], 3 * thb, 0.4 * thb)
    p_khr = (1 - p_thb) * rates.khr_share / (rates.khr_share + rates.usd_share)
    u = rng.random(book.n)
    book.cur = np.where(u < p_thb, THB, np.where(u < p_thb + p_khr, KHR, USD)).astype(np.int8)


def _dates(book: OdBook, rng: np.random.Generator, first: date, last: date, n_old: int) -> None:
    n, d0 = book.n, first.toordinal()
    book.term = np.where(rng.random(n) < 0.15, 6, 12).astype(np.int64)
    book.flags["term_over_12m"] = pick_exact(rng, np.ones(n, dtype=bool), book.rates.term_over_12m_share)
    book.term[book.flags["term_over_12m"]] = 18
    days = last.toordinal() - d0 + 1
    start = d0 - (rng.random(n) * 28 * book.term).astype(np.int64) - 1
    approved = start - rng.integers(0, 6, n)
    new_approved = d0 + rng.integers(0, days, n)
    approved = np.where(np.arange(n) < n_old, approved, new_approved)
    start = np.where(np.arange(n) < n_old, start, new_approved + rng.integers(0, 4, n))
    book.approved, book.start = approved.astype(np.int64), start.astype(np.int64)
    book.maturity = np.array(
        [
            add_months(date.fromordinal(s), m).toordinal()
            for s, m in zip(start.tolist(), book.term.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    book.status = np.where(approved < d0, ACTIVE, PENDING).astype(np.int8)


def _limits_and_collateral(book: OdBook, rng: np.random.Generator, fx: FxWalk, rates: Rates) -> None:
    n, agent, sme = book.n, book.agent, book.sme
    msme = ~agent & ~sme
    usd = np.where(agent, rng.uniform(1000, AGENT_LIMIT_USD, n), 0.0)
    usd = np.where(msme, np.clip(rng.lognormal(np.log(6000), 0.6, n), 1000, 40_000), usd)
    usd = np.where(sme, np.clip(rng.lognormal(np.log(25_000), 0.5, n), 10_000, LIMIT_CAP_USD), usd)
    flags = book.flags
    flags["agent_limit_over_5000"] = pick_exact(rng, agent, rates.agent_limit_breach_share)
    flags["limit_over_100k"] = pick_exact(rng, sme, rates.limit_over_100k_share)
    usd = np.where(flags["agent_limit_over_5000"], rng.uniform(5500, 8000, n), usd)
    usd = np.where(flags["limit_over_100k"], rng.uniform(100_500, 130_000, n), usd)
    per_minor = fx.usd_per_minor()[book.cur]
    step = LIMIT_STEP[book.cur]
    breach = flags["agent_limit_over_5000"] | flags["limit_over_100k"]
    units = np.where(breach, np.ceil(usd / per_minor / step), np.maximum(np.floor(usd / per_minor / step), 1))
    book.limit = (units * step).astype(np.int64)

    u = rng.random(n)
    collateral = np.where(
        u < rates.property_share,
        PROPERTY,
        np.where(u < rates.property_share + rates.fixed_deposit_share, FIXED_DEPOSIT, NO_COLLATERAL),
    )
    collateral = np.where(agent, np.where(u < rates.property_share / 2, PROPERTY, NO_COLLATERAL), collateral)
    book.collateral = collateral.astype(np.int8)
    flags["property_ltv_over_70"] = pick_exact(rng, collateral == PROPERTY, rates.property_ltv_breach_share)
    flags["fd_limit_over_deposit"] = pick_exact(rng, collateral == FIXED_DEPOSIT, rates.fd_limit_breach_share)
    ratio = rng.uniform(0.35, 0.68, n)
    ratio = np.where(flags["property_ltv_over_70"], rng.uniform(0.72, 0.90, n), ratio)
    ratio = np.where(collateral == FIXED_DEPOSIT, rng.uniform(0.6, 1.0, n), ratio)
    ratio = np.where(flags["fd_limit_over_deposit"], rng.uniform(1.1, 1.3, n), ratio)
    value_step = step // 10
    raw = book.limit / ratio / value_step
    over = flags["property_ltv_over_70"] | flags["fd_limit_over_deposit"]
    value = np.where(over, np.floor(raw), np.ceil(raw)) * value_step
    book.collateral_value = np.where(collateral == NO_COLLATERAL, 0, value).astype(np.int64)


def _terms(book: OdBook, rng: np.random.Generator, rates: Rates, old: BoolArray) -> None:
    n = book.n
    choices = np.full((n, 4), 0, dtype=np.int64)
    for cur, options in INTEREST_PPM.items():
        choices[book.cur == cur] = (list(options) * 2)[:4]
    book.interest_ppm = choices[np.arange(n), rng.integers(0, 4, n)]
    # a child generator: drawing these leaves the main stream (and every other simulated behaviour) unchanged
    pricing_rng = rng.spawn(1)[0]
    above_ceiling = pick_exact(pricing_rng, np.ones(n, dtype=bool), rates.above_rate_ceiling_share)
    book.interest_ppm[above_ceiling] = pricing_rng.choice(ABOVE_CEILING_PPM, int(above_ceiling.sum()))
    book.interest_ppm -= np.where(book.collateral == FIXED_DEPOSIT, 2000, 0)
    purpose = np.where(book.agent, AGENT_LIQUIDITY, np.where(rng.random(n) < 0.85, WORKING_CAPITAL, OTHER))
    book.flags["refinance"] = pick_exact(rng, ~book.agent, rates.refinance_share)
    book.purpose = np.where(book.flags["refinance"], REFINANCE, purpose).astype(np.int8)
    book.flags["restructured"] = pick_exact(rng, old, rates.restructured_share)
    book.restructured = book.flags["restructured"]


def _behaviour(book: OdBook, rng: np.random.Generator, rates: Rates, old: BoolArray) -> None:
    n = book.n
    everyone = np.ones(n, dtype=bool)
    stagnant = pick_exact(rng, old, rates.stagnant_share)
    dormant = pick_exact(rng, ~stagnant, rates.dormant_share)
    book.behaviour = np.where(stagnant, STAGNANT, np.where(dormant, DORMANT, REVOLVING)).astype(np.int8)
    book.excess_prone = pick_exact(rng, book.behaviour == REVOLVING, rates.excess_prone_share)
    late = pick_exact(rng, everyone, rates.late_payer_share)
    book.pay_day = np.where(late, rng.integers(16, 29, n), rng.integers(1, 8, n)).astype(np.int64)
    book.recon_diff = pick_exact(rng, everyone, rates.recon_diff_share)
    book.flags.update(
        stagnant_at_start=stagnant,
        dormant=dormant,
        excess_prone=book.excess_prone,
        late_payer=late,
        core_interest_act365=book.recon_diff,
    )


def _opening_balances(book: OdBook, rng: np.random.Generator, first: date, old: BoolArray) -> None:
    """Balances at the close of the day before ``first``, and the month's accrual bases so far."""
    n, d0 = book.n, first.toordinal()
    revolving = old & (book.behaviour == REVOLVING)
    stagnant = old & (book.behaviour == STAGNANT)
    share = np.where(rng.random(n) < 0.1, 0.0, rng.beta(2, 2.4, n))
    share = np.where(stagnant, rng.uniform(0.5, 1.0, n), np.where(revolving, share, 0.0))
    book.P = round_to_step(book.limit * share, book.cur)
    book.I = np.where(stagnant, round_div(book.P * book.interest_ppm, PPM), 0).astype(np.int64)
    book.last_credit = d0 - np.where(stagnant, rng.integers(20, 151, n), rng.integers(1, 21, n))
    for day in range(first.replace(day=1).toordinal(), d0):
        book._accrue(day, day_weight(date.fromordinal(day)))


def _deposits(book: OdBook, rng: np.random.Generator, first: date) -> None:
    d0 = first.toordinal()
    acc = np.flatnonzero(book.collateral == FIXED_DEPOSIT)
    k = len(acc)
    breach = pick_exact(rng, np.ones(k, dtype=bool), book.rates.fd_maturity_breach_share)
    od_maturity = book.maturity[acc]
    before = od_maturity - rng.integers(10, 91, k)
    after = od_maturity + rng.integers(0, 366, k)
    frozen = ~breach & (rng.random(k) < 0.3)
    maturity = np.maximum(np.where(breach | frozen, before, after), d0 + 1)
    term = np.where(rng.random(k) < 0.5, 12, 24)
    book.fd_acc = acc.astype(np.int64)
    book.fd_ids = [f"FD{j + 1:07d}" for j in range(k)]
    book.fd_principal = book.collateral_value[acc].copy()
    book.fd_maturity = maturity.astype(np.int64)
    book.fd_opened = np.array(
        [
            add_months(date.fromordinal(m), -t).toordinal()
            for m, t in zip(maturity.tolist(), term.tolist(), strict=True)
        ],
        dtype=np.int64,
    )
    book.fd_frozen = frozen
    book.fd_of[acc] = np.arange(k)
    flag = np.zeros(book.n, dtype=bool)
    flag[acc[breach & (maturity < od_maturity)]] = True
    book.flags["fd_matures_first_not_frozen"] = flag


def _customer_dates(book: OdBook, rng: np.random.Generator, customers: Customers, rates: Rates) -> None:
    """Registration before approval; agents' partnership >= 6 months at approval except the injected few."""
    n = book.n
    short = pick_exact(rng, book.agent, rates.agent_tenure_breach_share)
    book.flags["agent_tenure_under_6m"] = short
    since = book.approved - np.where(short, rng.integers(30, 171, n), rng.integers(200, 2500, n))
    customers.agent_since[:n] = np.where(book.agent, since, 0)
    latest = np.where(book.agent, since, book.approved) - 30
    customers.registered[:n] = np.minimum(customers.registered[:n], latest)
