"""The day's OD transactions, in posting order, and their rendering to ``od_transactions.csv``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from odwh.contract import TXN_CHANNELS, TXN_DIRECTIONS, TXN_TYPES
from odwh.simulate.money import IntArray, in_cents

# the simulator's codes: indexes into the extract contract's enumerations
(
    DRAWDOWN,
    CASH_WITHDRAWAL,
    TRANSFER_OUT,
    REPAYMENT,
    INTEREST_CHARGE,
    FEE_CHARGE,
    PROCESSING_FEE,
    CAPITALIZATION,
    REVERSAL,
) = range(len(TXN_TYPES))
CUSTOMER_DEBITS = (DRAWDOWN, CASH_WITHDRAWAL, TRANSFER_OUT)
DEBIT, CREDIT = range(len(TXN_DIRECTIONS))
COUNTER, AGENT_CHANNEL, ATM, MOBILE, SYSTEM = range(len(TXN_CHANNELS))


def txn_id(number: int) -> str:
    return f"TX{number:010d}"


@dataclass
class Reversible:
    """Customer transactions that may be reversed later, with what each repayment paid off."""

    ids: IntArray
    acc: IntArray
    ttype: IntArray
    amount: IntArray
    channel: IntArray
    fee_part: IntArray
    interest_part: IntArray
    principal_part: IntArray

    def take(self, mask: np.ndarray) -> Reversible:
        return Reversible(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


class TxnLog:
    """Collects a day's postings phase by phase; the file lists them in exactly this order."""

    def __init__(self, next_id: int = 1) -> None:
        self.next_id = next_id
        self._parts: list[tuple[IntArray, ...]] = []

    def start_day(self) -> None:
        self._parts = []

    def post(
        self,
        acc: IntArray,
        ttype: IntArray | int,
        direction: IntArray | int,
        amount: IntArray,
        channel: IntArray | int,
        reversed_id: IntArray | None = None,
    ) -> IntArray:
        n = len(acc)
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        if n:
            if np.any(amount <= 0):
                raise ValueError("simulator bug: a transaction amount is not positive")
            full = [np.broadcast_to(np.asarray(x, dtype=np.int64), (n,)) for x in (ttype, direction, channel)]
            rev = np.full(n, -1, dtype=np.int64) if reversed_id is None else reversed_id
            self._parts.append(
                (ids, acc.astype(np.int64), full[0], full[1], amount.astype(np.int64), full[2], rev)
            )
        return ids

    def render(
        self, account_ids: list[str], currency: np.ndarray, business_date: str
    ) -> tuple[str, int, int]:
        """CSV body, row count and control total (hundredths) of the day's transactions."""
        if not self._parts:
            return "", 0, 0
        ids, acc, ttype, direction, amount, channel, rev = (
            np.concatenate(c) for c in zip(*self._parts, strict=True)
        )
        cur = currency[acc]
        amounts = [
            str(v) if c == 0 else f"{v // 100}.{v % 100:02d}"
            for v, c in zip(amount.tolist(), cur.tolist(), strict=True)
        ]
        lines = [
            f"TX{i:010d},{account_ids[a]},{business_date},{TXN_TYPES[t]},{TXN_DIRECTIONS[d]},{amt},{TXN_CHANNELS[ch]},"
            f"{'' if r < 0 else f'TX{r:010d}'}\n"
            for i, a, t, d, amt, ch, r in zip(
                ids.tolist(),
                acc.tolist(),
                ttype.tolist(),
                direction.tolist(),
                amounts,
                channel.tolist(),
                rev.tolist(),
                strict=True,
            )
        ]
        return "".join(lines), len(lines), in_cents(amount, cur)
