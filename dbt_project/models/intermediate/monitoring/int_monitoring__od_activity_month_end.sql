-- The month's activity of every OD account with a balance on a loaded month end, for the review list
-- (rulebook H; docs/policy-engine.md H):
--   days_in_excess, peak_excess: loaded days of the month with P > L (an excess starting or ending
--     mid-month counts its days inside the month only) and the largest P - L;
--   customer_transactions, customer_credits: customer credits and debits (REPAYMENT; DRAWDOWN,
--     CASH_WITHDRAWAL, TRANSFER_OUT) dated in the month, net of reversals: a transaction whose reversal chain
--     nets to zero counts nowhere, whichever date the reversal has (team rule, as for the core's charges);
--     charges, processing fees and capitalization are no customer transactions;
--   month_observed: the loaded history covers the whole month for the account (its first loaded date is on
--     or before the later of the month's first day and the facility's start date); otherwise the flow tests
--     are not evaluable.
-- Incremental by month end: month ends on or after the earliest business date loaded after this table's
-- newest max_input_load_id, or the date of a transaction a newer reversal cancels
-- (macros/month_end_incremental.sql).
-- depends_on: {{ ref('stg_core_banking__branches') }}
-- no merge joins: the customers at the month ends (from their history, macros/history_as_of.sql) are estimated at
-- a few hundred rows, and the planner merged them with the positions on the date alone, filtering 298 M pairs on
-- the customer (10,000 accounts x 2 month ends: 22 s; hash joins on both keys: 0.3 s)
{{ config(
    pre_hook="set local enable_mergejoin = off",
    unique_key=['month_end'],
    tags=['month_end'],
    indexes=account_month_end_indexes(),
) }}

{%- set from_date = month_end_rebuild_from(with_reversed_dates=true) -%}
{%- set month_of_from = "date_trunc('month', '" ~ from_date ~ "'::date)::date" if from_date else none %}

{%- set positions = ref('int_od__positions_daily') %}
{%- set since = "and business_date >= " ~ month_of_from if from_date else "" %}

-- the positions are read where needed, never through a shared CTE (which PostgreSQL would spool in full)
with bounds as (
    select
        min(business_date) as first_date,
        max(business_date) as last_date
    from {{ positions }}
    where true {{ since }}
),

-- loaded month ends (index probes on business_date, no scan of the positions)
month_ends as (
    select
        m.month_end,
        date_trunc('month', m.month_end)::date as month_start,
        {{ max_input_load_id('m.month_end') }} as max_input_load_id
    from (
        select (g.month_start + interval '1 month - 1 day')::date as month_end
        from bounds as b
        cross join generate_series(date_trunc('month', b.first_date), b.last_date, interval '1 month')
            as g (month_start)
    ) as m
    where
        exists (
            select from {{ positions }} as p
            where p.business_date = m.month_end
        )
        {% if from_date %}and m.month_end >= '{{ from_date }}'::date{% endif %}  -- noqa: LT02
),

excess as (
    select
        p.od_account_id,
        m.month_end,
        count(*)::integer as days_in_excess,
        max(p.excess_amount) as peak_excess
    from {{ positions }} as p
    inner join month_ends as m on p.business_date between m.month_start and m.month_end
    where p.excess_amount > 0 {{ since }}
    group by p.od_account_id, m.month_end
),

-- customer transactions with the net of their reversal chain (0 when cancelled)
customer_chains as (
    select
        od_account_id,
        original_txn_id,
        original_business_date,
        min(flow_class) as flow_class,
        sum(signed_amount) as net_amount
    from {{ ref('int_od__transactions_classified') }}
    where
        flow_class in ('CUSTOMER_CREDIT', 'CUSTOMER_DEBIT')
        {% if from_date %}and original_business_date >= {{ month_of_from }}{% endif %}  -- noqa: LT02
    group by od_account_id, original_txn_id, original_business_date
),

flows as (
    select
        c.od_account_id,
        m.month_end,
        count(*) filter (where c.net_amount > 0)::integer as customer_transactions,
        coalesce(sum(c.net_amount) filter (where c.flow_class = 'CUSTOMER_CREDIT' and c.net_amount > 0), 0)
            as customer_credits
    from customer_chains as c
    inner join month_ends as m on c.original_business_date between m.month_start and m.month_end
    group by c.od_account_id, m.month_end
),

customers as (
    select
        customer_id,
        business_date,
        customer_type
    from {{ ref('stg_core_banking__customers') }}
    where business_date = any(array(select m.month_end from month_ends as m))
)

select
    p.od_account_id,
    m.month_end,
    p.customer_id,
    c.customer_type,
    p.start_date,
    p.first_business_date,
    coalesce(p.first_business_date <= greatest(m.month_start, p.start_date), false) as month_observed,
    coalesce(e.days_in_excess, 0) as days_in_excess,
    e.peak_excess,
    coalesce(f.customer_transactions, 0) as customer_transactions,
    coalesce(f.customer_credits, 0) as customer_credits,
    m.max_input_load_id,
    p.load_id
from {{ positions }} as p
inner join month_ends as m on p.business_date = m.month_end
left join customers as c on p.customer_id = c.customer_id and p.business_date = c.business_date
left join excess as e on p.od_account_id = e.od_account_id and m.month_end = e.month_end
left join flows as f on p.od_account_id = f.od_account_id and m.month_end = f.month_end
-- the month ends' rows through the business_date index (the join alone hashed every position: 4 s a close at
-- 100,000 x 365)
where p.business_date = any(array(select loaded.month_end from month_ends as loaded))
