with source as (
    select * from {{ source('core_banking', 'od_balances') }}
),

renamed as (
    select
        trim(od_account_id) as od_account_id,
        business_date,
        principal_outstanding,
        interest_receivable,
        fees_receivable,
        _load_id
    from source
)

select * from renamed
