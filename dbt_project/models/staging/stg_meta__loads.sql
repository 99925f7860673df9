-- Every delivery loaded (meta.loads), the superseded ones too: a business date re-delivered keeps its earlier
-- loads here with superseded_at set, which is how an incremental model tells a re-delivered date from a new one.
with source as (
    select * from {{ source('meta', 'loads') }}
),

renamed as (
    select
        load_id,
        business_date,
        loaded_at,
        superseded_at
    from source
)

select * from renamed
