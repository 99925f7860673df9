"""The core-banking simulator: writes daily extracts that follow ``shared/spec/extract-contract.md``.

``simulate(out, start, end, accounts=..., seed=...)`` writes one folder per calendar day, ``out/YYYY-MM-DD/``,
with every contract file (event files with no events are written header-only unless
``omit_empty_events``), then ``_manifest.json`` last. The same seed writes byte-identical files.

Only the current state is held in memory (numpy arrays, one slot per account); each day's files are rendered
and written, then forgotten. What is injected, and how often, is in :mod:`odwh.simulate.rates`; with
``truth_path`` the accounts that received each injection are written as JSON (outside the landing folder)
so tests downstream can check the warehouse finds them. Semantics the warehouse relies on:

- transactions are listed in posting order; end-of-day balances equal the previous day's plus the day's
  transactions applied in file order: customer debits (DRAWDOWN, CASH_WITHDRAWAL, TRANSFER_OUT) add to
  principal; REPAYMENT pays fees_receivable, then interest_receivable, then principal; INTEREST_CHARGE adds
  to interest_receivable; FEE_CHARGE and PROCESSING_FEE add to fees_receivable; INTEREST_CAPITALIZATION
  moves interest_receivable into principal; a REVERSAL undoes exactly what its original did (for a reversed
  repayment, the fee, interest and principal it paid off are owed again).
- month-end charges (30E/360 rulebook, rounded half away from zero) are posted on the last calendar day,
  after that day's capitalization and customer transactions; a facility that closes or converts mid-month
  has its month-to-date charges posted on its closing day. FEE_CHARGE = rounded un-utilization fee +
  rounded excess fee. The ``core_interest_act365`` accounts are charged ACT/365 interest instead.
- PROCESSING_FEE is posted on ``approved_on`` (new facility, renewal at maturity, limit increase) and paid at
  once by a COUNTER repayment of the same amount; the ``no_processing_fee`` approvals have neither.
- at each month end, before that month's charges, interest_receivable still unpaid (charged at an earlier
  month end) is capitalized (INTEREST_CAPITALIZATION); that is how most excesses after stagnation arise.
- a conversion to a term loan posts a SYSTEM REPAYMENT of the whole outstanding (not a customer payment),
  sets status CONVERTED and closed_on, and adds an OD_CONVERTED loan with ``source_od_account_id``. A facility
  past maturity with nothing drawn closes (CLOSED, closed_on) after a COUNTER REPAYMENT of any receivables.
- a limit increase is a new approval with its fee on the new limit; a limit decrease (never below the drawn
  amount) is a new approval without a fee.
- a write-off (an OD without a repayment for 180 days, not converted) posts the month-to-date charges, then sets
  status WRITTEN_OFF and closed_on and takes principal and receivables off the books: that day's balances are 0
  with no transaction (the amount written off is the principal of the day before).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from odwh.progress import Progress
from odwh.simulate.customers import AGENT, MSME, SME, assign_officers, build_customers, render_customers
from odwh.simulate.customers import render_reference as _render_reference
from odwh.simulate.events import SocialEvents
from odwh.simulate.loans import convert_ods, create_loans
from odwh.simulate.money import FxWalk
from odwh.simulate.opening import create_book
from odwh.simulate.rates import DEFAULT_RATES, Rates
from odwh.simulate.txns import TxnLog
from odwh.simulate.writer import DayFolder, StaticFile

__all__ = ["DEFAULT_RATES", "Rates", "Simulation", "simulate"]


class Simulation:
    """The portfolio's state; ``write_day`` advances it by one business date and writes that folder."""

    def __init__(
        self, start: date, end: date, *, accounts: int, seed: int, rates: Rates = DEFAULT_RATES
    ) -> None:
        if end < start:
            raise ValueError(f"end {end} is before start {start}")
        if accounts < 1:
            raise ValueError(f"accounts must be at least 1, got {accounts}")
        self.start, self.end, self.seed, self.rates = start, end, seed, rates
        rng = np.random.default_rng([seed, 0])
        self.fx = FxWalk(rng)
        days = (end - start).days + 1
        n_new = min(accounts // 3, round(accounts * rates.new_account_annual_share * days / 365))
        n_old = accounts - n_new
        shares = [rates.agent_share, rates.sme_share, 1 - rates.agent_share - rates.sme_share]
        od_types = rng.choice([AGENT, SME, MSME], size=accounts, p=shares)
        n_loans = max(1, round(n_old * rates.loans_per_od_account))
        n_retail = -(-(n_loans - round(n_loans * rates.od_customer_loan_share)) // 2)
        self.customers = build_customers(rng, od_types, n_retail, start)
        self.book = create_book(rng, self.customers, n_old, n_new, start, end, rates, self.fx)
        officer_rows = assign_officers(rng, self.customers)
        self.loans, sizer = create_loans(
            rng, self.customers, self.book, n_old, n_loans, start, self.fx, rates
        )
        self.events = SocialEvents(rng, self.customers, accounts, self.loans, sizer, start, self.fx, rates)
        branches, officers = _render_reference(officer_rows)
        customers_body, n_customers = render_customers(rng, self.customers)
        self.static = {
            "branches.csv": StaticFile.of("branches.csv", branches, branches.count("\n")),
            "officers.csv": StaticFile.of("officers.csv", officers, len(officer_rows)),
            "customers.csv": StaticFile.of("customers.csv", customers_body, n_customers),
        }
        self.log = TxnLog()

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def write_day(self, out: Path, d: date, *, omit_empty_events: bool = False) -> None:
        rng = np.random.default_rng([self.seed, d.toordinal()])
        if d != self.start:
            self.fx.step(rng)
        self.log.start_day()
        self.book.roll_deposits(d.toordinal())
        life = np.random.default_rng([self.seed, d.toordinal(), 1])  # limit decreases and write-offs
        conversion = self.book.step(d, rng, self.fx, self.log, life)
        self.loans.step(d, rng)
        convert_ods(self.loans, d, self.book, conversion.acc, conversion.amount, rng)
        ds = d.isoformat()
        folder = DayFolder(out, ds)

        def event(name: str, body: str, rows: int, control: int | None = None) -> None:
            if rows or not omit_empty_events:
                folder.write(name, body, rows, control)

        for name, static in self.static.items():
            folder.write_static(name, static)
        folder.write("od_accounts.csv", *self.book.render_accounts())
        event("od_transactions.csv", *self.log.render(self.book.ids, self.book.cur, ds))
        folder.write("od_balances.csv", *self.book.render_balances(ds))
        applications = self.events.applications(
            d, rng, self.fx, self.book.outstanding_usd(self.fx)
        )  # disburses loans: before loans.csv
        folder.write("loans.csv", *self.loans.render())
        folder.write("fixed_deposits.csv", *self.book.render_deposits())
        event("agent_liquidity.csv", *self.events.liquidity(rng, ds))
        usd_khr, usd, thb = self.fx.khr_per_unit()
        event("fx_rates.csv", f"{ds},KHR,{usd_khr}\n{ds},USD,{usd}\n{ds},THB,{thb}\n", 3)
        event("loan_applications.csv", *applications)
        event("ppi_surveys.csv", *self.events.ppi(d, rng))
        event("complaints.csv", *self.events.complaints(d, rng))
        folder.close()

    def truth(self) -> dict[str, object]:
        return {
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "rates": asdict(self.rates),
            "od": self.book.truth(),
            "customers": self.events.truth(),
        }


def simulate(
    out: Path,
    start: date,
    end: date,
    *,
    accounts: int,
    seed: int,
    progress: bool = True,
    rates: Rates = DEFAULT_RATES,
    omit_empty_events: bool = False,
    truth_path: Path | None = None,
) -> None:
    """Write ``out/YYYY-MM-DD/`` for every calendar day from ``start`` to ``end`` inclusive."""
    out = Path(out)
    sim = Simulation(start, end, accounts=accounts, seed=seed, rates=rates)
    days = sim.days()
    bar = Progress("simulating", len(days), stream=sys.stderr) if progress else None
    for d in days:
        sim.write_day(out, d, omit_empty_events=omit_empty_events)
        if bar:
            bar.advance(d.isoformat())
    if truth_path is not None:
        Path(truth_path).write_text(json.dumps(sim.truth(), indent=1) + "\n")
    if progress:
        print(f"simulated {len(days)} days, {accounts} OD accounts, into {out}", file=sys.stderr)
