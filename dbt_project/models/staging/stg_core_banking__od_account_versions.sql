-- stored as change history (docs/decisions/0030-snapshot-history.md): one row per version, valid from valid_from
-- to valid_to (exclusive; null while current). stg_core_banking__od_accounts: one row per loaded date.
with source as (
    select * from {{ source('core_banking', 'od_accounts') }}
),

renamed as (
    select
        trim(od_account_id) as od_account_id,
        trim(customer_id) as customer_id,
        trim(settlement_account_id) as settlement_account_id,
        trim(currency) as currency,
        limit_amount,
        approved_on,
        start_date,
        maturity_date,
        monthly_interest_rate,
        processing_fee_rate,
        excess_fee_rate_monthly,
        unutilized_fee_rate_annual,
        trim(collateral_type) as collateral_type,
        collateral_value,
        trim(fd_account_id) as fd_account_id,
        trim(purpose) as purpose,
        restructured,
        trim(status) as status,
        closed_on,
        valid_from,
        valid_to
    from source
)

select * from renamed
