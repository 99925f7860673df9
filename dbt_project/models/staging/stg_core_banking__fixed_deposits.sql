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
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
