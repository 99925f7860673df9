with source as (
    select * from {{ source('core_banking', 'fx_rates') }}
),

renamed as (
    select
        -- the contract makes the column equal the folder's date; the load's copy is indexed (date-range reads)
        _business_date as business_date,
        trim(currency) as currency,
        khr_per_unit,
        _load_id
    from source
)

select * from renamed
