-- stored as change history (docs/decisions/0030-snapshot-history.md): one row per version, valid from valid_from
-- to valid_to (exclusive; null while current). stg_core_banking__customers: one row per loaded date.
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
        valid_from,
        valid_to
    from source
)

select * from renamed
