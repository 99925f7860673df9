-- Every officer of every officers snapshot with the reporting line walked upwards on that date (recursive,
-- at most 10 levels, cycle-safe): manager_id is the direct manager as delivered; senior_manager_id and
-- regional_manager_id are the nearest officer ABOVE with role SM, respectively RM (the chain is normally
-- CM -> AM -> SM -> RM; a skipped level still finds the right person; null when the chain has none).
-- Review lists route on the month end's chain, alerts on the opening day's, dim_officers shows the latest.
{{ config(materialized='table') }}  -- rebuilt in full (the folder's models are incremental)

with recursive

officers as (
    select
        business_date,
        officer_id,
        officer_name,
        role,
        branch_code,
        manager_id,
        _load_id as load_id
    from {{ ref('stg_core_banking__officers') }}
),

chain (business_date, officer_id, ancestor_id, ancestor_role, depth, path) as (
    select
        o.business_date,
        o.officer_id,
        m.officer_id as ancestor_id,
        m.role as ancestor_role,
        1 as depth,
        array[o.officer_id, m.officer_id] as path
    from officers as o
    inner join officers as m on o.business_date = m.business_date and o.manager_id = m.officer_id
    union all
    select
        c.business_date,
        c.officer_id,
        m.officer_id as ancestor_id,
        m.role as ancestor_role,
        c.depth + 1 as depth,
        c.path || m.officer_id as path
    from chain as c
    inner join officers as a on c.business_date = a.business_date and c.ancestor_id = a.officer_id
    inner join officers as m on a.business_date = m.business_date and a.manager_id = m.officer_id
    where c.depth < 10 and not m.officer_id = any(c.path)
),

nearest as (
    select
        business_date,
        officer_id,
        (array_agg(ancestor_id order by depth) filter (where ancestor_role = 'SM'))[1] as senior_manager_id,
        (array_agg(ancestor_id order by depth) filter (where ancestor_role = 'RM'))[1] as regional_manager_id
    from chain
    group by business_date, officer_id
)

select
    o.business_date,
    o.officer_id,
    o.officer_name,
    o.role,
    o.branch_code,
    o.manager_id,
    n.senior_manager_id,
    n.regional_manager_id,
    o.load_id
from officers as o
left join nearest as n on o.business_date = n.business_date and o.officer_id = n.officer_id
