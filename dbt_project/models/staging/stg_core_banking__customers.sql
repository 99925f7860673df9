-- stored as change history: one row per business date again (macros/history_as_of.sql)
with source as (
    {{ history_as_of(source('core_banking', 'customers'), source('meta', 'loads')) }}
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
        _as_of_load_id as _load_id
    from source
)

select * from renamed
