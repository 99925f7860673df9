with source as (
    select * from {{ source('core_banking', 'branches') }}
),

renamed as (
    select
        trim(branch_code) as branch_code,
        trim(branch_name) as branch_name,
        trim(province) as province,
        trim(region_code) as region_code,
        trim(region_name) as region_name,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
