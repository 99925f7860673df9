with source as (
    select * from {{ source('core_banking', 'customers') }}
),

renamed as (
    select
        trim(customer_id) as customer_id,
        trim(customer_type) as customer_type,
        trim(legal_form) as legal_form,
        trim(customer_name) as customer_name,
        trim(branch_code) as branch_code,
        trim(officer_id) as officer_id,
        agent_since,
        registered_on,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
