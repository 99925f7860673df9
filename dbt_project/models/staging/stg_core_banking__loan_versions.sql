-- stored as change history (docs/decisions/0030-snapshot-history.md): one row per version, valid from valid_from
-- to valid_to (exclusive; null while current). stg_core_banking__loans: one row per loaded date.
with source as (
    select * from {{ source('core_banking', 'loans') }}
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
        valid_from,
        valid_to
    from source
)

select * from renamed
