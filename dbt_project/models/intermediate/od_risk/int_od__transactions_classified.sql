-- Every OD transaction with its flow class (binding team decision, docs/policy-engine.md D):
-- a REVERSAL takes the class of the transaction it cancels (looked up across all loaded dates) and a
-- negative signed_amount dated on the reversal's own date, so any sum over a period nets the pair to zero
-- when both fall inside it. A reversal of a reversal restores the original (sign flips at each level).
with recursive

transactions as (
    select * from {{ ref('stg_core_banking__od_transactions') }}
),

base_classes as (
    select
        txn_id,
        business_date,
        case txn_type
            when 'DRAWDOWN' then 'CUSTOMER_DEBIT'
            when 'CASH_WITHDRAWAL' then 'CUSTOMER_DEBIT'
            when 'TRANSFER_OUT' then 'CUSTOMER_DEBIT'
            when 'REPAYMENT' then 'CUSTOMER_CREDIT'
            when 'INTEREST_CHARGE' then 'CHARGE_INTEREST'
            when 'FEE_CHARGE' then 'CHARGE_FEE'
            when 'PROCESSING_FEE' then 'PROCESSING_FEE'
            when 'INTEREST_CAPITALIZATION' then 'CAPITALIZATION'
        end as flow_class
    from transactions
    where txn_type <> 'REVERSAL'
),

reversals as (
    select txn_id, od_account_id, reversed_txn_id
    from transactions
    where txn_type = 'REVERSAL'
),

-- walk reversal chains down from the original: only reversal rows take part in the recursion
reversal_classes (txn_id, flow_class, sign, depth, original_txn_id, original_business_date) as (
    select r.txn_id, o.flow_class, -1, 1, o.txn_id, o.business_date
    from reversals as r
    inner join transactions as ot
        on ot.txn_id = r.reversed_txn_id and ot.od_account_id = r.od_account_id
    inner join base_classes as o on o.txn_id = ot.txn_id
    union all
    select r.txn_id, parent.flow_class, -parent.sign, parent.depth + 1, parent.original_txn_id,
        parent.original_business_date
    from reversal_classes as parent
    inner join reversals as r on r.reversed_txn_id = parent.txn_id
    where parent.depth < 10
),

classes as (
    select txn_id, flow_class, 1 as sign, txn_id as original_txn_id, business_date as original_business_date
    from base_classes
    union all
    select txn_id, flow_class, sign, original_txn_id, original_business_date from reversal_classes
)

select
    t.txn_id,
    t.od_account_id,
    t.business_date,
    t.txn_type,
    t.direction,
    t.amount,
    c.flow_class,
    coalesce(c.sign * t.amount, 0)::numeric as signed_amount,
    t.txn_type = 'REVERSAL' as is_reversal,
    t.reversed_txn_id,
    c.original_txn_id,
    c.original_business_date,
    t._load_id as load_id
from transactions as t
left join classes as c on c.txn_id = t.txn_id
