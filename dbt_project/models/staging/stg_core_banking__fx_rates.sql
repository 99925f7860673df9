with source as (
    select * from {{ source('core_banking', 'fx_rates') }}
),

renamed as (
    select
        business_date,
        trim(currency) as currency,
        khr_per_unit,
        _load_id
    from source
)

select * from renamed
