-- One row per policy parameter version, valid on [effective_from, effective_to). The example to copy:
--   join ref('int_policy__parameter_versions') as pv
--     on pv.parameter_name = 'stagnation_window_days'
--    and d.business_date >= pv.effective_from and d.business_date < pv.effective_to
-- then carry pv.parameter_version on the output row so every mart row names the version it used.
-- Versions are the seed's defaults united with the changes recorded by `odwh policy set` (rulebook L); a
-- recorded change on the same date as a seed row replaces it (docs/decisions/0016-policy-changes.md).
with defaults as (
    -- listed, not *: `recorded` below gives the same columns in this order (union all pairs by position)
    select
        parameter_name,
        value,
        value_text,
        unit,
        effective_from,
        {{ seed_provenance() }}
    from {{ ref('policy_parameters') }}
),

units as (
    select distinct on (parameter_name)
        parameter_name,
        unit
    from defaults
    order by parameter_name asc, effective_from desc
),

recorded as (
    select
        c.parameter_name,
        c.value,
        c.value_text,
        u.unit,
        c.effective_from,
        {{ recorded_change_provenance('c') }}
    from {{ ref('stg_meta__policy_changes') }} as c
    inner join units as u on c.parameter_name = u.parameter_name
    where c.is_latest_for_date
),

parameters as (
    select * from recorded
    union all
    select d.* from defaults as d
    where not exists (
        select 1 from recorded as r
        where r.parameter_name = d.parameter_name and r.effective_from = d.effective_from
    )
)

-- listed again, not a shared list: the output puts effective_to and the version id among parameters' columns
select
    parameter_name,
    value,
    value_text,
    unit,
    effective_from,
    coalesce(
        lead(effective_from) over (partition by parameter_name order by effective_from),
        'infinity'::date
    ) as effective_to,
    {{ parameter_version_id('parameter_name', 'effective_from') }} as parameter_version,
    source,
    origin,
    recorded_by,
    reason
from parameters
