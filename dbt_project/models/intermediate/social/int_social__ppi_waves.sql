-- PPI survey waves and whether each is complete (rulebook I; docs/decisions/0014-social-performance.md).
-- Surveys arrive long after their survey date, often in batches, so a wave's rate can still move. A wave is
-- complete when a later wave has started arriving, or when no survey of it has been delivered for
-- ppi_wave_complete_after_days (parameter in force on as_of), both up to as_of: the last complete month end
-- (macros/last_complete_month_end.sql), like the surveys int_social__ppi_wave_clients keeps.
with clients as (
    select * from {{ ref('int_social__ppi_wave_clients') }}
),

as_of as (
    select {{ last_complete_month_end() }} as as_of
),

waves as (
    select
        wave,
        min(survey_date) as first_survey_date,
        max(survey_date) as last_survey_date,
        min(delivered_on) as first_delivered_on,
        max(delivered_on) as last_delivered_on,
        max(load_id) as load_id
    from clients
    group by wave
),

settle as (
    select
        as_of.as_of,
        {{ policy_param('ppi_wave_complete_after_days', 'as_of.as_of') }} as complete_after_days,
        {{ policy_param_version('ppi_wave_complete_after_days', 'as_of.as_of') }} as parameter_version
    from as_of
)

-- the model's columns in order, named one by one (a wave row: alike in shape with other final selects only)
select
    w.wave,
    w.first_survey_date,
    w.last_survey_date,
    w.first_delivered_on,
    w.last_delivered_on,
    s.as_of,
    w.wave < max(w.wave) over () as later_wave_started,
    coalesce(
        w.wave < max(w.wave) over () or s.as_of - w.last_delivered_on >= s.complete_after_days, false
    ) as is_complete,
    s.parameter_version,
    w.load_id
from waves as w
cross join settle as s
