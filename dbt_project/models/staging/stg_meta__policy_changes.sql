-- Policy changes recorded with `odwh policy set`; a correction for the same parameter and date is a later row
-- and wins (is_latest_for_date), earlier rows stay for the history.
with source as (
    select * from {{ source('meta', 'policy_changes') }}
),

renamed as (
    select
        change_id,
        trim(parameter_name) as parameter_name,
        value,
        trim(value_text) as value_text,
        effective_from,
        recorded_by,
        recorded_at,
        reason,
        change_id = max(change_id) over (
            partition by trim(parameter_name), effective_from
        ) as is_latest_for_date
    from source
)

select * from renamed
