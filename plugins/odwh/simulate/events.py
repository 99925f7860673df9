"""Daily event files besides OD transactions: agent liquidity, loan applications, PPI waves, complaints."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date

import numpy as np

from odwh.contract import ACTIVITIES, EXCLUDED_ACTIVITIES
from odwh.simulate.customers import AGENT, RETAIL, Customers
from odwh.simulate.loans import L_ACTIVE, LoanBook, LoanSizer, activities_for, products_for
from odwh.simulate.money import CURRENCY_CODES, KHR, FxWalk, fmt_minor, in_cents, iso
from odwh.simulate.rates import Rates, pick_exact

ES_THRESHOLD_KHR = 40_000_000  # business loans of KHR 40,000,000 (USD 10,000) or more are screened
MAX_DSR = 0.5  # over_indebtedness_max_dsr
ES_RISKS = ("LOW", "MEDIUM", "HIGH")
COMPLAINT_CHANNELS = ("HOTLINE", "BRANCH", "FACEBOOK", "TELEGRAM", "LETTER")
# the categories complaints are drawn from (data: the warehouse passes any text through)
COMPLAINT_CATEGORIES = (
    "INTEREST_AND_FEES",
    "STAFF_CONDUCT",
    "SERVICE_QUALITY",
    "DEBT_COLLECTION",
    "PRODUCT_INFORMATION",
    "DATA_PRIVACY",
    "OVER_INDEBTEDNESS",
)
# A wave (March-May of an odd year) reaches the warehouse in batches, as branches send their surveys in.
PPI_BATCHES = ((6, 15), (7, 15), (8, 31))
PPI_WAVES_BACKFILLED = 2  # batches due before the run (of the last two waves) are delivered on its first day


def _bool(value: bool) -> str:
    return "true" if value else "false"


def poverty_likelihood(score: int) -> str:
    """A PPI-style look-up table: the likelihood of living below the national poverty line, by score."""
    return f"{1 / (1 + math.exp((score - 30) / 6.5)):.4f}"


class SocialEvents:
    def __init__(
        self,
        rng: np.random.Generator,
        customers: Customers,
        n_od: int,
        loans: LoanBook,
        sizer: LoanSizer,
        first: date,
        fx: FxWalk,
        rates: Rates,
    ) -> None:
        self.customers, self.n_od, self.loans, self.sizer, self.rates, self.first = (
            customers,
            n_od,
            loans,
            sizer,
            rates,
            first,
        )
        self.agents = np.flatnonzero(customers.ctype == AGENT)
        low = pick_exact(rng, np.ones(len(self.agents), dtype=bool), rates.agent_low_liquidity_share)
        self.low_liquidity = self.agents[low]
        self.liquidity_base = np.where(
            low, rng.uniform(1000, 2800, len(self.agents)), rng.uniform(3500, 12_000, len(self.agents))
        )
        self.counts: Counter[str] = Counter()
        self._complaints_due: defaultdict[int, list[str]] = defaultdict(list)
        self._next_application = self._next_complaint = 1
        self._khr_rates: dict[int, tuple[int, int]] = {}  # ordinal -> (riel per USD, hundredths per THB)
        self._waves: dict[int, tuple[list[str], np.ndarray]] = {}
        # draws added for rulebook I come from a child generator, so the main stream stays as it was
        self.social_rng = rng.spawn(1)[0]
        self._applications_per_day = self._application_rate(loans, fx)

    def _application_rate(self, loans: LoanBook, fx: FxWalk) -> float:
        """Enough approved applications to replace what the book repays, so its size stays level."""
        active = loans.status == L_ACTIVE
        repaid_usd_daily = (
            float((loans.instalment[active] * fx.usd_per_minor()[loans.cur[active]]).sum()) / 30.4
        )
        return repaid_usd_daily / self.sizer.mean_usd / (1 - self.rates.application_reject_share)

    # ------------------------------------------------------------------------------------------- liquidity
    def liquidity(self, rng: np.random.Generator, business_date: str) -> tuple[str, int, int]:
        """One row per agent per day: the agent's e-money and cash float, in USD cents."""
        cents = np.round(
            self.liquidity_base * np.clip(1 + rng.normal(0, 0.2, len(self.agents)), 0.2, 2) * 100
        )
        values = cents.astype(np.int64).tolist()
        ids = self.customers.ids
        body = "".join(
            f"{ids[c]},{business_date},{v // 100}.{v % 100:02d}\n"
            for c, v in zip(self.agents.tolist(), values, strict=True)
        )
        return body, len(values), int(sum(values))

    # ---------------------------------------------------------------------------------------- applications
    def _rates_on(self, applied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The NBC rates of each application date; before the first day, the first day's (as the warehouse)."""
        first = min(self._khr_rates)
        pairs = [self._khr_rates[max(o, first)] for o in applied.tolist()]
        return (
            np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64),
        )

    @staticmethod
    def _amount_khr(amount: np.ndarray, cur: np.ndarray, usd: np.ndarray, thb: np.ndarray) -> np.ndarray:
        """Riel at the given rates, exactly (as a fraction): 100 x riel for KHR, USD cents x riel, satang x 1/100."""
        return np.select([cur == KHR, cur == 1], [amount * 10_000, amount * usd * 100], amount * thb)

    def _near_threshold(
        self, rng: np.random.Generator, cur: np.ndarray, usd: np.ndarray, thb: np.ndarray
    ) -> np.ndarray:
        """Amounts at the screening threshold's edge in each currency at the day's rate: the smallest amount at or
        above KHR 40,000,000, one minor unit below it, or within a few percent of it."""
        khr_per_minor_x10000 = np.select([cur == KHR, cur == 1], [10_000, usd * 100], thb)
        edge = -(-ES_THRESHOLD_KHR * 10_000 // khr_per_minor_x10000)  # ceiling: the first amount at/above
        near = np.round(edge * rng.uniform(0.96, 1.04, len(cur))).astype(np.int64)
        return np.choose(rng.integers(0, 3, len(cur)), [edge, edge - 1, near])

    def _steer(self, od_usd: float, fx: FxWalk) -> float:
        """Lend more when the OD share is above target, less when below: the share stays near the cap."""
        loans_usd = self.loans.outstanding_usd(fx)
        if od_usd <= 0 or loans_usd <= 0:
            return 1.0
        share = od_usd / (od_usd + loans_usd)
        return float(np.clip((share / self.rates.od_share_target) ** 6, 0.1, 6.0))

    def applications(
        self, d: date, rng: np.random.Generator, fx: FxWalk, od_usd: float
    ) -> tuple[str, int, int]:
        """Applications decided today (delivered once, on the decision day); approved ones become loans."""
        r = self.rates
        self._khr_rates[d.toordinal()] = (fx.usd, fx.thb)  # every day: an application may be dated on any
        k = int(rng.poisson(self._applications_per_day * self._steer(od_usd, fx)))
        if k == 0:
            return "", 0, 0
        n_customers = self.customers.n
        od_holder = rng.random(k) < r.od_customer_loan_share
        cust = np.where(
            od_holder | (n_customers == self.n_od),
            rng.integers(0, self.n_od, k),
            rng.integers(self.n_od, max(n_customers, self.n_od + 1), k),
        ).astype(np.int64)
        cust = np.minimum(cust, n_customers - 1)
        ctype = self.customers.ctype[cust]
        cur = LoanSizer.currencies(rng, k)
        usd = self.sizer.usd(rng, k)
        amount = LoanSizer.to_minor(usd, cur, fx)
        product = products_for(rng, ctype)
        activity = activities_for(rng, product)
        u = rng.random((10, k))
        excluded = u[0] < r.excluded_activity_share
        excluded_code = rng.integers(0, len(EXCLUDED_ACTIVITIES), k)
        approved = u[1] >= r.application_reject_share
        business = (ctype != RETAIL) | (u[2] < 0.7)
        risk = np.searchsorted([0.7, 0.92], u[4], side="right")
        signed = np.where(risk == 2, u[5] >= r.es_high_risk_unsigned_share, (risk == 1) & (u[5] < 0.5))
        plan = np.where(risk == 2, u[6] < 0.9, (risk == 1) & (u[6] < 0.6))
        high_dsr = u[7] < r.high_dsr_share
        dsr = np.where(
            high_dsr, rng.uniform(0.75, 1.2, k), np.clip(rng.lognormal(np.log(0.35), 0.3, k), 0.05, 0.7)
        )
        dsr = np.where(self.social_rng.random(k) < r.dsr_at_limit_share, MAX_DSR, dsr)
        cbc = u[8] >= r.cbc_unchecked_share
        applied = d.toordinal() - rng.integers(1, 22, k)
        usd_rate, thb_rate = self._rates_on(applied)
        clustered = business & (u[9] < r.es_threshold_cluster_share)
        amount = np.where(clustered, self._near_threshold(self.social_rng, cur, usd_rate, thb_rate), amount)
        required = business & (self._amount_khr(amount, cur, usd_rate, thb_rate) >= ES_THRESHOLD_KHR * 10_000)
        screened = np.where(required, u[3] >= r.es_unscreened_share, u[3] < 0.3)
        ids = [f"AP{self._next_application + i:08d}" for i in range(k)]
        self._next_application += k
        rows = []
        for i in range(k):
            activity_name = EXCLUDED_ACTIVITIES[excluded_code[i]] if excluded[i] else ACTIVITIES[activity[i]]
            is_screened = bool(screened[i])
            rows.append(
                f"{ids[i]},{self.customers.ids[cust[i]]},{iso(int(applied[i]))},"
                f"{d.isoformat()},{'APPROVED' if approved[i] else 'REJECTED'},{CURRENCY_CODES[cur[i]]},"
                f"{fmt_minor(int(amount[i]), int(cur[i]))},{activity_name},{_bool(bool(business[i]))},"
                f"{_bool(is_screened)},{ES_RISKS[risk[i]] if is_screened else ''},"
                f"{_bool(bool(signed[i])) if is_screened else ''},{_bool(bool(plan[i])) if is_screened else ''},"
                f"{dsr[i]:.2f},{_bool(bool(cbc[i]))}\n"
            )
        self.counts["applications"] += k
        self.counts["approved_excluded_activity"] += int((approved & excluded).sum())
        self.counts["required_not_screened"] += int((required & ~screened).sum())
        self.counts["approved_high_dsr"] += int((approved & (dsr > MAX_DSR)).sum())
        self.counts["near_es_threshold"] += int(clustered.sum())
        self.counts["approved_without_cbc"] += int((approved & ~cbc).sum())
        ok = np.flatnonzero(approved)
        term = rng.choice([12, 18, 24, 36], size=len(ok))
        self.loans.disburse(d, cust[ok], product[ok], cur[ok], amount[ok], term, activity[ok])
        return "".join(rows), k, in_cents(amount, cur)

    # ------------------------------------------------------------------------------------------------- PPI
    def ppi(self, d: date, rng: np.random.Generator) -> tuple[str, int]:
        """Waves every two years (odd years), each delivered in batches; batches already due (of the last two
        waves) on the first day."""
        waves = [w for w in range(d.year - 8, d.year + 1) if w % 2 and date(w, *PPI_BATCHES[0]) <= d]
        backfilled = [w for w in waves if date(w, *PPI_BATCHES[0]) < d][-PPI_WAVES_BACKFILLED:]
        due: list[tuple[int, int]] = []
        for wave in waves:
            batch_days = [date(wave, *md) for md in PPI_BATCHES]
            due.extend((wave, b) for b, day in enumerate(batch_days) if day == d)
            if d == self.first and wave in backfilled:
                due.extend((wave, b) for b, day in enumerate(batch_days) if day < d)
        rows: list[str] = []
        for wave, batch in due:
            if wave not in self._waves:
                self._waves[wave] = self._wave(wave, rng)
            wave_rows, batch_of = self._waves[wave]
            rows.extend(row for row, b in zip(wave_rows, batch_of.tolist(), strict=True) if b == batch)
        return "".join(rows), len(rows)

    def _wave(self, wave: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        window_start = date(wave, 3, 1).toordinal()
        eligible = self.customers.registered < window_start
        chosen = np.flatnonzero(pick_exact(rng, eligible, self.rates.ppi_sample_share))
        survey_day = window_start + rng.integers(0, 92, len(chosen))
        # poverty falls a little with every wave (the SPM report: 13.4% in 2015, 10.8% in 2017)
        scores = np.clip(np.round(rng.normal(42 + 1.0 * (wave - 2015), 13, len(chosen))), 0, 100).astype(int)
        rows = [
            f"PPI{wave}-{n + 1:07d},{self.customers.ids[c]},{iso(s)},{wave},{score},{poverty_likelihood(score)}\n"
            for n, (c, s, score) in enumerate(
                zip(chosen.tolist(), survey_day.tolist(), scores.tolist(), strict=True)
            )
        ]
        return rows, self.social_rng.choice(len(PPI_BATCHES), size=len(rows), p=[0.5, 0.3, 0.2])

    # ------------------------------------------------------------------------------------------ complaints
    def complaints(self, d: date, rng: np.random.Generator) -> tuple[str, int]:
        """Delivered on receipt (resolved_on empty) and again on resolution (same-day: once, resolved)."""
        o = d.toordinal()
        k = int(rng.poisson(self.customers.n * self.rates.complaint_daily_per_customer))
        cust = rng.integers(0, self.customers.n, k)
        channel = rng.integers(0, len(COMPLAINT_CHANNELS), k)
        category = rng.integers(0, len(COMPLAINT_CATEGORIES), k)
        # right-skewed: most within a week or two, a long tail past the 30-day limit, some never resolved
        days = np.floor(rng.lognormal(np.log(6), 1.1, k)).astype(int)
        never = self.social_rng.random(k) < self.rates.complaint_never_resolved_share
        rows = []
        for i in range(k):
            head = (
                f"CP{self._next_complaint:07d},{self.customers.ids[cust[i]]},{d.isoformat()},"
                f"{COMPLAINT_CHANNELS[channel[i]]},{COMPLAINT_CATEGORIES[category[i]]},"
            )
            self._next_complaint += 1
            if days[i] == 0 and not never[i]:
                rows.append(head + d.isoformat() + "\n")
            else:
                rows.append(head + "\n")
                if not never[i]:
                    self._complaints_due[o + int(days[i])].append(head)
        rows.extend(head + d.isoformat() + "\n" for head in self._complaints_due.pop(o, []))
        self.counts["complaints"] += k
        return "".join(rows), len(rows)

    def truth(self) -> dict[str, object]:
        return {
            "agents_low_liquidity": [self.customers.ids[c] for c in self.low_liquidity.tolist()],
            "event_counts": dict(sorted(self.counts.items())),
        }
