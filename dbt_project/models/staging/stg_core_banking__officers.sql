with source as (
    select * from {{ source('core_banking', 'officers') }}
),

renamed as (
    select
        trim(officer_id) as officer_id,
        trim(officer_name) as officer_name,
        trim(role) as role,
        trim(branch_code) as branch_code,
        trim(manager_id) as manager_id,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
