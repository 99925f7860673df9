-- stored as change history (docs/decisions/0030-snapshot-history.md): one row per version, valid from valid_from
-- to valid_to (exclusive; null while current). stg_core_banking__fixed_deposits: one row per loaded date.
with source as (
    select * from {{ source('core_banking', 'fixed_deposits') }}
),

renamed as (
    select
        trim(fd_account_id) as fd_account_id,
        trim(customer_id) as customer_id,
        trim(currency) as currency,
        principal,
        opened_on,
        maturity_date,
        frozen,
        trim(status) as status,
        valid_from,
        valid_to
    from source
)

select * from renamed
