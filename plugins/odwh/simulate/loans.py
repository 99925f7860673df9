"""Term loans: the rest of the portfolio, sized so the OD share of the book sits near the 10% cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from odwh.contract import ACTIVITIES
from odwh.simulate.customers import RETAIL, SME, Customers
from odwh.simulate.money import (
    CURRENCY_CODES,
    KHR,
    THB,
    USD,
    FloatArray,
    FxWalk,
    IntArray,
    add_months,
    fmt_minor,
    in_cents,
    iso,
)
from odwh.simulate.od import OdBook
from odwh.simulate.rates import Rates

PRODUCTS = ("SME", "MSME", "GROUP", "AGRI", "OD_CONVERTED")
P_SME, P_MSME, P_GROUP, P_AGRI, P_OD_CONVERTED = range(len(PRODUCTS))
LOAN_STATUS = ("ACTIVE", "CLOSED", "WRITTEN_OFF")
L_ACTIVE, L_CLOSED, L_WRITTEN_OFF = range(3)
LOAN_STEP = np.array([100_000, 10_000, 100_000], dtype=np.int64)
TERMS = np.array([12, 18, 24, 36, 48])
TERM_WEIGHTS = np.array([0.25, 0.2, 0.3, 0.15, 0.1])
AGRI_ACTIVITIES = (0, 1, 2)  # AGRICULTURE, LIVESTOCK, FISHERIES
WRITE_OFF_DPD = 360
MEDIAN_LOAN_USD, LOAN_SIGMA = 3000.0, 0.8  # before scaling to the target book


@dataclass
class LoanSizer:
    """Draws loan amounts from the book's distribution (scaled so the OD share starts at the target)."""

    scale: float

    def usd(self, rng: np.random.Generator, n: int) -> FloatArray:
        return rng.lognormal(np.log(MEDIAN_LOAN_USD), LOAN_SIGMA, n) * self.scale

    @property
    def mean_usd(self) -> float:
        return float(MEDIAN_LOAN_USD * np.exp(LOAN_SIGMA**2 / 2) * self.scale)

    @staticmethod
    def currencies(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice([KHR, USD, THB], size=n, p=[0.5, 0.45, 0.05]).astype(np.int8)

    @staticmethod
    def to_minor(usd: FloatArray, cur: np.ndarray, fx: FxWalk) -> IntArray:
        step = LOAN_STEP[cur]
        return (np.maximum(np.round(usd / fx.usd_per_minor()[cur] / step), 1) * step).astype(np.int64)


class LoanBook:
    def __init__(self, customer_ids: list[str], od_ids: list[str], rates: Rates) -> None:
        self.customer_ids, self.od_ids, self.rates = customer_ids, od_ids, rates
        self.n = 0
        self._cols: dict[str, np.ndarray] = {
            name: np.zeros(0, dtype=dtype)
            for name, dtype in (  # one (column, dtype) per loan attribute: a table, alike by design
                ("cust", np.int64),
                ("product", np.int8),
                ("cur", np.int8),
                ("disbursed", np.int64),
                ("term", np.int64),
                ("instalment", np.int64),
                ("outstanding", np.int64),
                ("dpd", np.int64),
                ("activity", np.int64),
                ("status", np.int8),
                ("source", np.int64),
                ("pay_day", np.int64),
                ("chronic", bool),
            )
        }
        self._rows: list[str] = []
        self._dirty = np.zeros(0, dtype=bool)

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("_cols", {})
        if name in cols:
            return cols[name][: self.n]
        raise AttributeError(name)

    def add(self, **values: np.ndarray) -> None:
        """Append loans; every column in ``values`` must have the same length."""
        k = len(values["cust"])
        if self.n + k > len(self._cols["cust"]):
            size = max(2 * (self.n + k), 1024)
            for name, col in self._cols.items():
                grown = np.zeros(size, dtype=col.dtype)
                grown[: self.n] = col[: self.n]
                self._cols[name] = grown
            dirty = np.zeros(size, dtype=bool)
            dirty[: self.n] = self._dirty[: self.n]
            self._dirty = dirty
        defaults = {"dpd": 0, "status": L_ACTIVE, "source": -1, "chronic": False}
        for name, col in self._cols.items():
            col[self.n : self.n + k] = values.get(name, defaults.get(name, 0))
        self._dirty[self.n : self.n + k] = True
        self._rows.extend([""] * k)
        self.n += k

    def disburse(
        self,
        d: date,
        cust: IntArray,
        product: np.ndarray,
        cur: np.ndarray,
        amount: IntArray,
        term: IntArray,
        activity: np.ndarray,
        source: IntArray | None = None,
    ) -> None:
        self.add(
            cust=cust,
            product=product,
            cur=cur,
            disbursed=np.full(len(cust), d.toordinal()),
            term=term,
            instalment=-(-amount // term),
            outstanding=amount,
            activity=activity,
            source=np.full(len(cust), -1) if source is None else source,
            pay_day=np.full(len(cust), min(d.day, 28)),
        )

    def step(self, d: date, rng: np.random.Generator) -> None:
        """Instalments on the disbursement day of month, unless in arrears; arrears come and (mostly) go."""
        r, n = self.rates, self.n
        cols = {k: v[:n] for k, v in self._cols.items()}
        active = cols["status"] == L_ACTIVE
        u = rng.random((3, n))
        enter = active & (cols["dpd"] == 0) & (u[0] < r.loan_arrears_daily)
        cols["chronic"] |= enter & (u[1] < r.loan_chronic_share)
        late = active & (cols["dpd"] > 0)
        cure = late & ~cols["chronic"] & (u[2] < r.loan_cure_daily)
        cols["dpd"][late] += 1
        cols["dpd"][cure] = 0
        cols["dpd"][enter] = 1
        pays = active & (cols["pay_day"] == d.day) & (cols["dpd"] == 0)
        cols["outstanding"][pays] -= np.minimum(cols["instalment"][pays], cols["outstanding"][pays])
        cols["status"][pays & (cols["outstanding"] == 0)] = L_CLOSED
        cols["status"][active & (cols["dpd"] >= WRITE_OFF_DPD)] = L_WRITTEN_OFF
        self._dirty[:n] |= enter | late | pays

    def render(self) -> tuple[str, int, int]:
        n = self.n
        cols = {k: v[:n] for k, v in self._cols.items()}
        for i in np.flatnonzero(self._dirty[:n]).tolist():
            cur = int(cols["cur"][i])
            src = int(cols["source"][i])
            self._rows[i] = (
                f"LN{i + 1:08d},{self.customer_ids[cols['cust'][i]]},{PRODUCTS[cols['product'][i]]},"
                f"{CURRENCY_CODES[cur]},{iso(int(cols['disbursed'][i]))},{cols['term'][i]},"
                f"{fmt_minor(int(cols['outstanding'][i]), cur)},{cols['dpd'][i]},{ACTIVITIES[cols['activity'][i]]},"
                f"{LOAN_STATUS[cols['status'][i]]},{self.od_ids[src] if src >= 0 else ''}\n"
            )
        self._dirty[:n] = False
        return "".join(self._rows), n, in_cents(cols["outstanding"], cols["cur"])

    def outstanding_usd(self, fx: FxWalk) -> float:
        active = self.status == L_ACTIVE
        return float((self.outstanding[active] * fx.usd_per_minor()[self.cur[active]]).sum())


def products_for(rng: np.random.Generator, ctype: np.ndarray) -> np.ndarray:
    retail = rng.choice([P_GROUP, P_AGRI, P_MSME], size=len(ctype), p=[0.4, 0.35, 0.25])
    return np.where(ctype == SME, P_SME, np.where(ctype == RETAIL, retail, P_MSME)).astype(np.int8)


def activities_for(rng: np.random.Generator, product: np.ndarray) -> np.ndarray:
    general = rng.choice(len(ACTIVITIES), size=len(product), p=_activity_weights())
    agri = rng.choice(AGRI_ACTIVITIES, size=len(product))
    return np.where(product == P_AGRI, agri, general).astype(np.int64)


def _activity_weights() -> np.ndarray:
    # AGRICULTURE, LIVESTOCK, FISHERIES, TRADE, SERVICES, MANUFACTURING, CONSTRUCTION, TRANSPORT, HOUSING,
    # EDUCATION, CONSUMPTION
    w = np.array([0.16, 0.08, 0.03, 0.25, 0.14, 0.04, 0.05, 0.06, 0.08, 0.04, 0.07])
    return w / w.sum()


def create_loans(
    rng: np.random.Generator,
    customers: Customers,
    book: OdBook,
    n_old: int,
    n_loans: int,
    first: date,
    fx: FxWalk,
    rates: Rates,
) -> tuple[LoanBook, LoanSizer]:
    """The term-loan book at the start, scaled so that OD / (OD + loans) = ``rates.od_share_target``."""
    n_od_holders = min(round(n_loans * rates.od_customer_loan_share), n_old)
    n_retail = customers.n - book.n
    if n_retail == 0:
        n_od_holders = n_loans
    od_holders = rng.choice(n_old, size=n_od_holders, replace=n_od_holders > n_old)
    retail = book.n + np.minimum(np.arange(n_loans - n_od_holders) // 2, max(n_retail - 1, 0))
    cust = np.concatenate([od_holders, retail]).astype(np.int64)
    term = rng.choice(TERMS, size=n_loans, p=TERM_WEIGHTS)
    elapsed = (rng.random(n_loans) * term).astype(np.int64)
    raw = LoanSizer(1.0).usd(rng, n_loans)
    od_usd = float((book.P * fx.usd_per_minor()[book.cur]).sum()) or float(n_old * 1000)
    target = od_usd * (1 - rates.od_share_target) / rates.od_share_target
    sizer = LoanSizer(target / float((raw * (1 - elapsed / term)).sum()))
    cur = LoanSizer.currencies(rng, n_loans)
    original = LoanSizer.to_minor(raw * sizer.scale, cur, fx)
    instalment = -(-original // term)
    disbursed = np.array(
        [
            add_months(first, -int(e)).toordinal() - int(k)
            for e, k in zip(elapsed, rng.integers(1, 28, n_loans), strict=True)
        ],
        dtype=np.int64,
    )
    product = products_for(rng, customers.ctype[cust])
    chronic = rng.random(n_loans) < 0.006
    loans = LoanBook(customers.ids, book.ids, rates)
    loans.add(
        cust=cust,
        product=product,
        cur=cur,
        disbursed=disbursed,
        term=term,
        instalment=instalment,
        outstanding=original - elapsed * instalment,
        activity=activities_for(rng, product),
        dpd=np.where(chronic, rng.integers(1, 300, n_loans), 0),
        chronic=chronic,
        pay_day=np.array([min(date.fromordinal(int(x)).day, 28) for x in disbursed]),
    )
    return loans, sizer


def convert_ods(
    loans: LoanBook, d: date, book: OdBook, acc: IntArray, amount: IntArray, rng: np.random.Generator
) -> None:
    """ODs converted to term loans (rulebook E): same currency, same term, monthly declining instalments."""
    if len(acc) == 0:
        return
    product = np.full(len(acc), P_OD_CONVERTED, dtype=np.int8)
    activity = rng.choice([3, 4, 5], size=len(acc))  # TRADE, SERVICES, MANUFACTURING
    loans.disburse(d, book.customer[acc], product, book.cur[acc], amount, book.term[acc], activity, acc)
