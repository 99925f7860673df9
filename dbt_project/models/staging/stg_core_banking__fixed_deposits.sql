-- stored as change history: one row per business date again (macros/history_as_of.sql)
with source as (
    {{ history_as_of(source('core_banking', 'fixed_deposits'), source('meta', 'loads')) }}
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
        _business_date as business_date,
        _as_of_load_id as _load_id
    from source
)

select * from renamed
