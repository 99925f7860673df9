-- Every OD transaction with its flow class (binding team decision, docs/policy-engine.md D):
-- a REPAYMENT on channel SYSTEM dated on the account's conversion (that day's od_accounts snapshot says CONVERTED
-- with closed_on = that date) is SETTLEMENT, the core's payoff of the OD by its new term loan (rulebook J): not a
-- customer credit, so no net inflow, yet it pays the OD's charges like any credit (days past due);
-- a REVERSAL takes the class of the transaction it cancels (looked up across all loaded dates) and a
-- negative signed_amount dated on the reversal's own date, so any sum over a period nets the pair to zero
-- when both fall inside it. A reversal of a reversal restores the original (sign flips at each level).
-- Incremental: whole business dates from the earliest date touched by a newer load. A row depends on its own
-- date's delivery and on earlier originals only, so later dates never change it. The pre-hook clears the
-- recomputed dates first: a re-delivered date may have fewer transactions (or none) than before.
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

-- SYSTEM repayments of the whole history (few: the core's conversion payoffs), then the ones whose day's
-- snapshot shows the conversion; the snapshot is read on those dates only (index on the business date)
system_repayments as materialized (
    select
        txn_id,
        od_account_id,
        business_date
    from {{ ref('stg_core_banking__od_transactions') }}
    where txn_type = 'REPAYMENT' and channel = 'SYSTEM'
),

settlements as materialized (
    select r.txn_id
    from system_repayments as r
    inner join {{ ref('stg_core_banking__od_accounts') }} as a
        on r.business_date = a.business_date and r.od_account_id = a.od_account_id
    where
        a.business_date in (select business_date from system_repayments)
        and a.status = 'CONVERTED'
        and a.closed_on = r.business_date
),

reversals as (
    select
        txn_id,
        od_account_id,
        reversed_txn_id
    from {{ ref('stg_core_banking__od_transactions') }}
    where txn_type = 'REVERSAL'
),

-- walk reversal chains down from the original (any loaded date): only reversal rows take part
reversal_chains (txn_id, flow_class, sign, depth, original_txn_id, original_business_date) as (
    select
        r.txn_id,
        {{ flow_class_of_type | replace('{settles}', 'o.txn_id in (select txn_id from settlements)')
            | replace('{type}', 'o.txn_type') }},
        -1,
        1,
        o.txn_id,
        o.business_date
    from reversals as r
    inner join {{ ref('stg_core_banking__od_transactions') }} as o
        on r.reversed_txn_id = o.txn_id and r.od_account_id = o.od_account_id and o.txn_type <> 'REVERSAL'
    union all
    select
        r.txn_id,
        parent.flow_class,
        -parent.sign,
        parent.depth + 1,
        parent.original_txn_id,
        parent.original_business_date
    from reversal_chains as parent
    inner join reversals as r on parent.txn_id = r.reversed_txn_id
    where parent.depth < 10
),

transactions as (
    {{ rows_since_from_date(ref('stg_core_banking__od_transactions'), from_date) }}
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
left join reversal_chains as c on t.txn_id = c.txn_id
left join settlements as s on t.txn_id = s.txn_id
