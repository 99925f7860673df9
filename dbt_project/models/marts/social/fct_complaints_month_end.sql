-- Complaints per loaded month end (rulebook I, client protection principle 7). int_social__complaints keeps the
-- latest delivery of each complaint_id up to the last complete month end, so a resolution delivered later
-- closes the complaint: figures are as known at the last complete month end (the next month's close restates a
-- month with the late resolutions delivered in it; a build in an open month changes nothing).
--   received                complaints received in the month
--   resolved                complaints resolved in the month (whenever received)
--   median_days_to_resolve  median of resolved_on - received_on over those resolved in the month
--   open_at_month_end       received on or before the month end, not resolved by it
--   open_over_limit         of those, open more than complaint_open_limit_days (in force on the month end)
with complaints as (
    select * from {{ ref('int_social__complaints') }}
),

month_ends as (
    select distinct business_date as month_end
    from {{ ref('stg_core_banking__branches') }}
    where business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
),

params as (
    select
        m.month_end,
        date_trunc('month', m.month_end)::date as month_start,
        {{ policy_param('complaint_open_limit_days', 'm.month_end') }} as open_limit_days,
        {{ policy_param_version('complaint_open_limit_days', 'm.month_end') }} as parameter_version
    from month_ends as m
),

complaint_month_ends as (
    select
        p.*,
        c.load_id,
        c.received_on between p.month_start and p.month_end as received_in_month,
        c.resolved_on between p.month_start and p.month_end as resolved_in_month,
        c.resolved_on - c.received_on as days_to_resolve,
        c.received_on is not null and (c.resolved_on is null or c.resolved_on > p.month_end) as open_at_end,
        p.month_end - c.received_on as days_open
    from params as p
    left join complaints as c on c.received_on <= p.month_end
)

select
    month_end,
    count(*) filter (where received_in_month) as received,
    count(*) filter (where resolved_in_month) as resolved,
    (
        percentile_cont(0.5) within group (order by days_to_resolve) filter (where resolved_in_month)
    )::numeric as median_days_to_resolve,
    count(*) filter (where open_at_end) as open_at_month_end,
    count(*) filter (where open_at_end and days_open > open_limit_days) as open_over_limit,
    open_limit_days,
    parameter_version,
    max(load_id) as load_id
from complaint_month_ends
group by month_end, open_limit_days, parameter_version
