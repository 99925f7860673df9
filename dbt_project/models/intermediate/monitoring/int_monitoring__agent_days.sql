-- One row per agent OD position-day with something to test (customer_type AGENT in that day's customers
-- snapshot; decision 0068): the day ends in excess, or has a cash withdrawal or a drawdown, with the day's inputs
-- to the abnormal-day tests of rulebook H (docs/policy-engine.md H):
--   excess: P > L at the end of the day;
--   cash withdrawals / drawdowns of the day AS KNOWN AT THE END OF THAT DAY: a transaction counts with its
--   net amount after the reversals posted on its own date (a same-day reversal cancels it, a reversal of the
--   reversal restores it); a reversal posted on a later date does not rewrite this day (the alert was due on
--   what was known), and it is no withdrawal or drawdown of its own date either.
-- An agent's quiet day (no excess, nothing withdrawn or drawn) is no row: every test of rulebook H, and the
-- trailing average drawdown, read the days with an excess or a flow only, and nine agent-days in ten are quiet
-- (100,000 accounts x 61 days: 214,387 rows of 2,128,962).
-- Incremental: whole business dates from the earliest date touched by a load newer than this table's newest
-- load_id (a day depends only on that day's rows, so no lookback is needed). The pre-hook deletes every
-- recomputed date first: a re-delivered date may have fewer active agent-days than before, or none. A newest
-- date without an active agent-day leaves no row of its load, so the next build computes that date again (the
-- pre-hook deletes it first; at any real size every date has an active agent).
-- Nested loops off for this transaction: the planner expects a handful of agents (trim() in staging has no
-- statistics) and of same-day debits (two date columns compared), and re-ran the debits' aggregate once per
-- agent-day (10,000 accounts: 9 s for one day, hash joins 0.02 s; docs/performance.md).
{{ config(
    indexes=account_day_indexes(),
    meta={"partitioned_by_month": "business_date"},
    pre_hook=[
        "set local enable_nestloop = off",
        "{% if is_incremental() %}delete from {{ this }} where business_date >= "
            ~ "'{{ daily_rebuild_from(ref('int_od__positions_daily')) }}'::date{% endif %}",
    ],
) }}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) %}

with positions as (
    {{ rows_since_from_date(ref('int_od__positions_daily'), from_date) }}
),

agents as (
    select
        customer_id,
        business_date
    from {{ ref('stg_core_banking__customers') }}
    where
        customer_type = 'AGENT'
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
),

-- each debit of the day with its net after the same-day reversals of it (one scan, no self-join: the
-- original row of a chain carries the type, reversals share its original_txn_id and CUSTOMER_DEBIT class)
net_of_same_day_reversals as (
    select
        od_account_id,
        business_date,
        max(txn_type) filter (where txn_id = original_txn_id) as txn_type,
        sum(signed_amount) as net_amount
    from {{ ref('int_od__transactions_classified') }}
    where
        flow_class = 'CUSTOMER_DEBIT'
        and business_date = original_business_date
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
    group by od_account_id, business_date, original_txn_id
),

day_flows as (
    select
        od_account_id,
        business_date,
        count(*) filter (where txn_type = 'CASH_WITHDRAWAL') as cash_withdrawals,
        coalesce(sum(net_amount) filter (where txn_type = 'CASH_WITHDRAWAL'), 0) as cash_withdrawn,
        count(*) filter (where txn_type = 'DRAWDOWN') as drawdowns,
        coalesce(sum(net_amount) filter (where txn_type = 'DRAWDOWN'), 0) as drawdown_total,
        max(net_amount) filter (where txn_type = 'DRAWDOWN') as largest_drawdown
    from net_of_same_day_reversals
    where txn_type in ('CASH_WITHDRAWAL', 'DRAWDOWN') and net_amount > 0
    group by od_account_id, business_date
)

-- the agent-day columns named one by one, not p.*: rulebook H reads these; a new position column stays out
select
    p.od_account_id,
    p.business_date,
    p.customer_id,
    p.branch_code,
    p.officer_id,
    p.currency,
    p.limit_amount,
    p.principal_outstanding,
    p.excess_amount,
    coalesce(p.excess_amount > 0, false) as is_excess,
    coalesce(f.cash_withdrawals, 0)::integer as cash_withdrawals,
    coalesce(f.cash_withdrawn, 0) as cash_withdrawn,
    coalesce(f.drawdowns, 0)::integer as drawdowns,
    coalesce(f.drawdown_total, 0) as drawdown_total,
    f.largest_drawdown,
    p.load_id
from positions as p
inner join agents as a on p.customer_id = a.customer_id and p.business_date = a.business_date
left join day_flows as f on p.od_account_id = f.od_account_id and p.business_date = f.business_date
-- a day_flows row is a day with a cash withdrawal or a drawdown left after its same-day reversals
where coalesce(p.excess_amount > 0, false) or f.od_account_id is not null
