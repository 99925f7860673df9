-- stored as change history: one row per business date again (macros/history_as_of.sql)
with source as (
    {{ history_as_of(source('core_banking', 'loans'), source('meta', 'loads')) }}
),

renamed as (
    select
        trim(loan_id) as loan_id,
        trim(customer_id) as customer_id,
        trim(product) as product,
        trim(currency) as currency,
        disbursed_on,
        original_term_months,
        outstanding_principal,
        days_past_due,
        trim(purpose_activity) as purpose_activity,
        trim(status) as status,
        trim(source_od_account_id) as source_od_account_id,
        _business_date as business_date,
        _as_of_load_id as _load_id
    from source
)

select * from renamed
