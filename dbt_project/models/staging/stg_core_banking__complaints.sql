-- A complaint is delivered when received and again when resolved: the latest delivery wins.
with source as (
    select * from {{ source('core_banking', 'complaints') }}
),

latest as (
    select distinct on (complaint_id) *
    from source
    order by complaint_id asc, _business_date desc
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
    from latest
)

select * from renamed
