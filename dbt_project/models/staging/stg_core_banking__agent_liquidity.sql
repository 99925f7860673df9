-- the staging shape of the dbt structure guide (source, renamed): one view per raw table, alike by design
with source as (
    select * from {{ source('core_banking', 'agent_liquidity') }}
),

renamed as (
    select
        trim(customer_id) as customer_id,
        -- the contract makes the column equal the folder's date; the load's copy is indexed (date-range reads)
        _business_date as business_date,
        liquidity_usd,
        _load_id
    from source
)

select * from renamed
