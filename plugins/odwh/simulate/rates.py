"""The simulator's knobs: portfolio mix and the documented rates at which behaviours are injected.

Every injected behaviour the warehouse must detect (excess, stagnation, breaches, reconciliation breaks...)
has its rate here, so a test or a reviewer can tell how many to expect. Shares marked *exact* are applied
as an exact count (``round(share * eligible)``, at least one when there are 20 or more eligible accounts);
the others are daily or monthly probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Rates:
    # --- portfolio mix (shares of OD accounts) -------------------------------------------------------------
    agent_share: float = 0.35
    sme_share: float = 0.25  # the rest are MSME
    khr_share: float = 0.45
    usd_share: float = 0.50  # the rest are THB (more often at the Thai-border branches)
    property_share: float = 0.40  # SME/MSME collateral: property; agents: property_share / 2
    fixed_deposit_share: float = 0.15  # SME/MSME collateral: fixed deposit (else NONE)
    new_account_annual_share: float = 0.20  # OD facilities approved during the run, per year simulated

    # --- customer behaviour (probabilities) ----------------------------------------------------------------
    stagnant_share: float = 0.06  # exact: stagnant at the start (no repayment since 20-150 days)
    stagnant_onset_daily: float = 0.0003  # a revolving, drawn account stops repaying (about 10% a year)
    dormant_share: float = 0.06  # exact: never draw (pay only their un-utilization fees)
    excess_prone_share: float = 0.05  # exact: revolving accounts that sometimes draw over their limit
    excess_start_daily: float = 1 / 40  # an excess-prone account starts an excess episode (3-25 days)
    late_payer_share: float = 0.05  # exact: pay month-end charges on day 16-28 instead of day 1-7
    agent_cash_withdrawal_daily: float = 0.001  # per active agent OD and day (forbidden by policy §4)
    reversal_share: float = 0.005  # of customer transactions (drawdowns, withdrawals, transfers, repayments)
    reversal_same_day_share: float = 0.6  # of reversals; the rest come 1-5 days later
    renewal_share: float = 0.85  # of non-stagnant facilities reaching maturity (new approval, new fee)
    limit_increase_monthly: float = 0.01  # per active revolving facility (new approval, new fee)
    conversion_monthly: float = 0.5  # of conversion candidates (no repayment for 60 days), on day 15
    limit_decrease_monthly: float = 0.003  # per running facility: a lower limit, new approval without a fee
    write_off_monthly: float = 0.3  # of drawn ODs not converted and without a repayment for 180 days, day 20

    # --- core-banking deviations ----------------------------------------------------------------------------
    recon_diff_share: float = 0.02  # exact: core charges interest ACT/365 instead of 30E/360
    no_processing_fee_share: float = 0.03  # of approvals during the run: activated without PROCESSING_FEE

    # --- limit and collateral breaches at approval (exact shares of eligible accounts) ------------------------
    agent_limit_breach_share: float = 0.02  # agent limit USD 5,500-8,000 (> USD 5,000)
    agent_tenure_breach_share: float = 0.03  # agent partnership under 6 months at approval
    agent_low_liquidity_share: float = 0.03  # agent average liquidity USD 1,000-2,800 (< USD 3,000)
    property_ltv_breach_share: float = 0.03  # limit 72-90% of property value (> 70%)
    limit_over_100k_share: float = 0.01  # SME limit USD 100,500-130,000 (> USD 100,000)
    fd_limit_breach_share: float = 0.05  # limit 110-130% of the fixed deposit (> 100%)
    fd_maturity_breach_share: float = 0.05  # OD matures after its deposit, deposit not frozen
    term_over_12m_share: float = 0.01  # 18-month facility (> 12 months)
    refinance_share: float = 0.01  # purpose REFINANCE (not allowed, §7)
    restructured_share: float = 0.005  # restructured = true (not allowed, §13.3)

    # --- term loans ----------------------------------------------------------------------------------------
    od_share_target: float = 0.095  # OD outstanding / (OD + term loans), USD, at the start
    loans_per_od_account: float = 1.5
    od_customer_loan_share: float = 0.3  # of term loans held by OD customers (cross finance)
    loan_arrears_daily: float = 0.0004  # a performing loan misses an instalment
    loan_cure_daily: float = 0.08  # a loan in arrears catches up
    loan_chronic_share: float = 0.1  # of loans entering arrears that never cure

    # --- social performance ----------------------------------------------------------------------------------
    application_reject_share: float = 0.12
    above_rate_ceiling_share: float = 0.03  # of OD accounts: monthly rate x 12 above the NBC 18% ceiling
    es_unscreened_share: float = 0.05  # of applications that require E&S screening (>= USD 10,000)
    es_high_risk_unsigned_share: float = 0.15  # of HIGH-risk screened: no signed E&S contract
    excluded_activity_share: float = 0.004  # of applications: an exclusion-list activity
    high_dsr_share: float = 0.03  # debt service ratio 0.75-1.2
    dsr_at_limit_share: float = 0.04  # debt service ratio exactly at over_indebtedness_max_dsr (0.50)
    es_threshold_cluster_share: float = 0.15  # of business applications: an amount at or near KHR 40,000,000
    cbc_unchecked_share: float = 0.01
    ppi_sample_share: float = 0.3  # of customers surveyed per wave (waves in odd years)
    complaint_daily_per_customer: float = 0.00012
    complaint_never_resolved_share: float = 0.05


DEFAULT_RATES = Rates()


def pick_exact(
    rng: np.random.Generator, eligible: npt.NDArray[np.bool_], share: float
) -> npt.NDArray[np.bool_]:
    """Exactly ``round(share * eligible)`` accounts (at least one of 20 or more eligible)."""
    idx = np.flatnonzero(eligible)
    k = round(share * len(idx))
    if k == 0 and share > 0 and len(idx) >= 20:
        k = 1
    mask = np.zeros(len(eligible), dtype=bool)
    if k:
        mask[rng.choice(idx, size=k, replace=False)] = True
    return mask
