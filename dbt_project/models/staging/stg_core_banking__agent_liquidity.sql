with source as (
    select * from {{ source('core_banking', 'agent_liquidity') }}
),

renamed as (
    select
        trim(customer_id) as customer_id,
        business_date,
        liquidity_usd,
        _load_id
    from source
)

select * from renamed
