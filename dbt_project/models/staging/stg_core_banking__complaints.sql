-- A complaint is delivered when received and again when resolved: every delivery is kept, the latest up to the
-- last complete month end wins in int_social__complaints.
with source as (
    select * from {{ source('core_banking', 'complaints') }}
),

renamed as (
    select
        trim(complaint_id) as complaint_id,
        trim(customer_id) as customer_id,
        received_on,
        trim(channel) as channel,
        trim(category) as category,
        resolved_on,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
