-- stored as change history: one row per business date again (macros/history_as_of.sql)
with source as (
    {{ history_as_of(source('core_banking', 'od_accounts'), source('meta', 'loads')) }}
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
        _business_date as business_date,
        _as_of_load_id as _load_id
    from source
)

select * from renamed
