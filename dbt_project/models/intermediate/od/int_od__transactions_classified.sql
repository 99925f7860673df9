-- Every OD transaction with its flow class (binding team decision, docs/policy-engine.md D):
-- a REPAYMENT on channel SYSTEM dated on the account's conversion (that day's od_accounts snapshot says CONVERTED
-- with closed_on = that date) is SETTLEMENT, the core's payoff of the OD by its new term loan (rulebook J): not a
-- customer credit, so no net inflow, yet it pays the OD's charges like any credit (days past due);
-- a REVERSAL takes the class of the transaction it cancels (looked up across all loaded dates) and a
-- negative signed_amount dated on the reversal's own date, so any sum over a period nets the pair to zero
-- when both fall inside it. A reversal of a reversal restores the original (sign flips at each level).
-- Incremental: whole business dates from the earliest date touched by a newer load. A row depends on its own
-- date's delivery and on earlier originals only, so later dates never change it. The pre-hook clears the
-- recomputed dates first: a re-delivered date may have fewer transactions (or none) than before. The processing
-- fees have a partial index of their own (dbt's index config has no predicate): days past due reads an account's
-- since its oldest unpaid charge every day, a few rows among every transaction ever loaded.
-- depends_on: {{ ref('stg_core_banking__branches') }}
{{ config(
    pre_hook="{% if is_incremental() %}delete from {{ this }} where business_date >= "
        ~ "(select min(business_date) from {{ ref('stg_core_banking__branches') }} "
        ~ "where _load_id > (select coalesce(max(load_id), 0) from {{ this }})){% endif %}",
    indexes=[
        {'columns': ['txn_id'], 'unique': true},
        {'columns': ['od_account_id', 'business_date']},
        {'columns': ['business_date']},
        {'columns': ['load_id']},
    ],
    post_hook="{{ partial_index(['od_account_id', 'business_date'], 'flow_class', 'PROCESSING_FEE') }}",
) }}

{%- set from_date = daily_rebuild_from(ref('stg_core_banking__branches'), load_id_column='_load_id') -%}

{%- set plain_flow_class -%}
    case {type}
        when 'DRAWDOWN' then 'CUSTOMER_DEBIT'
        when 'CASH_WITHDRAWAL' then 'CUSTOMER_DEBIT'
        when 'TRANSFER_OUT' then 'CUSTOMER_DEBIT'
        when 'REPAYMENT' then 'CUSTOMER_CREDIT'
        when 'INTEREST_CHARGE' then 'CHARGE_INTEREST'
        when 'FEE_CHARGE' then 'CHARGE_FEE'
        when 'PROCESSING_FEE' then 'PROCESSING_FEE'
        when 'INTEREST_CAPITALIZATION' then 'CAPITALIZATION'
    end
{%- endset %}
{#- {settles}: a boolean SQL expression true for the conversion's settlement credit -#}
{%- set flow_class_of_type = "case when {settles} then 'SETTLEMENT' else " ~ plain_flow_class ~ " end" %}
with recursive

transactions as (
    {{ rows_since_from_date(ref('stg_core_banking__od_transactions'), from_date) }}
),

-- each reversal being built, walked up through what it cancels to the original (any loaded date), one
-- reversed id at a time through the raw txn_id index (a lateral probe with a limit: a join was planned as a
-- sort of every transaction ever loaded): a day's build reads its own reversals' chains, not every chain in
-- the history. reversal_account_id: the account of the reversal that names reversed_txn_id
reversal_chains (txn_id, reversed_txn_id, reversal_account_id, depth) as (
    select
        txn_id,
        reversed_txn_id,
        od_account_id,
        1
    from transactions
    where txn_type = 'REVERSAL'
    union all
    select
        c.txn_id,
        p.reversed_txn_id,
        p.od_account_id,
        c.depth + 1
    from reversal_chains as c
    cross join
        lateral (
            select
                t.reversed_txn_id,
                t.od_account_id
            from {{ ref('stg_core_banking__od_transactions') }} as t
            where t.txn_id = c.reversed_txn_id and t.txn_type = 'REVERSAL'
            order by t.business_date desc
            limit 1
        ) as p
    where c.depth < 10
),

-- the chain's original: not a reversal, on the account of the reversal that cancels it; the reversal `depth`
-- levels above it takes its class with the sign flipped at each level
originals as materialized (
    select
        c.txn_id,
        c.depth,
        o.txn_id as original_txn_id,
        o.od_account_id,
        o.business_date as original_business_date,
        o.txn_type,
        o.channel
    from reversal_chains as c
    cross join lateral (
        select
            t.txn_id,
            t.od_account_id,
            t.business_date,
            t.txn_type,
            t.channel
        from {{ ref('stg_core_banking__od_transactions') }} as t
        where t.txn_id = c.reversed_txn_id and t.od_account_id = c.reversal_account_id and t.txn_type <> 'REVERSAL'
        order by t.business_date desc
        limit 1
    ) as o
),

-- SYSTEM repayments that may be a conversion's payoff: those being built, and originals their reversals cancel
settlement_candidates as materialized (
    select
        txn_id,
        od_account_id,
        business_date
    from transactions
    where txn_type = 'REPAYMENT' and channel = 'SYSTEM'
    union
    select
        original_txn_id,
        od_account_id,
        original_business_date
    from originals
    where txn_type = 'REPAYMENT' and channel = 'SYSTEM'
),

-- conversions on the candidates' dates: that day's snapshot says CONVERTED, closed that day (the snapshot's
-- CONVERTED versions, expanded on those dates only)
conversions as materialized (
    select
        od_account_id,
        business_date
    from {{ ref('stg_core_banking__od_accounts') }}
    where
        business_date = any(array(select distinct c.business_date from settlement_candidates as c))
        and status = 'CONVERTED'
        and closed_on = business_date
),

-- the candidates their account's conversion pays off. A grouping, not a join: the planner cannot estimate either
-- side (expressions over staging), and a nested loop over them grew with the square of the conversions
settlements as materialized (
    select txn_id
    from (
        select
            txn_id,
            bool_or(txn_id is null) over (partition by od_account_id, business_date) as converted
        from (
            select
                od_account_id,
                business_date,
                txn_id
            from settlement_candidates
            union all
            select
                od_account_id,
                business_date,
                null
            from conversions
        ) as candidates_and_conversions
    ) as matched
    where txn_id is not null and converted
),

reversal_classes as (
    select
        txn_id,
        {{ flow_class_of_type | replace('{settles}', 'original_txn_id in (select txn_id from settlements)')
            | replace('{type}', 'txn_type') }} as flow_class,
        case when depth % 2 = 1 then -1 else 1 end as sign,
        original_txn_id,
        original_business_date
    from originals
)

select
    t.txn_id,
    t.od_account_id,
    t.business_date,
    t.txn_type,
    t.direction,
    t.amount,
    case
        when t.txn_type = 'REVERSAL' then c.flow_class
        else {{ flow_class_of_type | replace('{settles}', 's.txn_id is not null') | replace('{type}', 't.txn_type') }}
    end as flow_class,
    case
        when t.txn_type <> 'REVERSAL' then t.amount
        else coalesce(c.sign * t.amount, 0)  -- an original not in the loaded history: counts nowhere
    end::numeric as signed_amount,
    t.txn_type = 'REVERSAL' as is_reversal,
    t.reversed_txn_id,
    case when t.txn_type = 'REVERSAL' then c.original_txn_id else t.txn_id end as original_txn_id,
    case when t.txn_type = 'REVERSAL' then c.original_business_date else t.business_date end
        as original_business_date,
    t._load_id as load_id
from transactions as t
left join reversal_classes as c on t.txn_id = c.txn_id
left join settlements as s on t.txn_id = s.txn_id
