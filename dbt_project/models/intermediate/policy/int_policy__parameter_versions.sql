-- One row per policy parameter version, valid on [effective_from, effective_to). The example to copy:
--   join ref('int_policy__parameter_versions') as pv
--     on pv.parameter_name = 'stagnation_window_days'
--    and d.business_date >= pv.effective_from and d.business_date < pv.effective_to
-- then carry pv.parameter_version on the output row so every mart row names the version it used.
with parameters as (
    select * from {{ ref('policy_parameters') }}
)

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
    parameter_name || '@' || to_char(effective_from, 'YYYY-MM-DD') as parameter_version,
    source
from parameters
