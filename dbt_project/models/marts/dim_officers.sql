-- Officers as in the latest officers snapshot with their reporting line walked upwards (recursive, at most
-- 10 levels, cycle-safe): manager_id is the direct manager as delivered; senior_manager_id and
-- regional_manager_id are the nearest officer ABOVE with role SM, respectively RM (the chain is normally
-- CM -> AM -> SM -> RM, but a skipped level still finds the right person; null when the chain has none).
with recursive

officers as (
    select o.*
    from {{ ref('stg_core_banking__officers') }} as o
    where o.business_date = (select max(s.business_date) from {{ ref('stg_core_banking__officers') }} as s)
),

chain (officer_id, ancestor_id, ancestor_role, depth, path) as (
    select
        o.officer_id,
        m.officer_id as ancestor_id,
        m.role as ancestor_role,
        1,
        array[o.officer_id, m.officer_id]
    from officers as o
    inner join officers as m on o.manager_id = m.officer_id
    union all
    select
        c.officer_id,
        m.officer_id as ancestor_id,
        m.role as ancestor_role,
        c.depth + 1,
        c.path || m.officer_id
    from chain as c
    inner join officers as a on c.ancestor_id = a.officer_id
    inner join officers as m on a.manager_id = m.officer_id
    where c.depth < 10 and not m.officer_id = any(c.path)
),

nearest as (
    select
        officer_id,
        (array_agg(ancestor_id order by depth) filter (where ancestor_role = 'SM'))[1] as senior_manager_id,
        (array_agg(ancestor_id order by depth) filter (where ancestor_role = 'RM'))[1] as regional_manager_id
    from chain
    group by officer_id
)

select
    o.officer_id,
    o.officer_name,
    o.role,
    o.branch_code,
    o.manager_id,
    n.senior_manager_id,
    n.regional_manager_id,
    o.business_date as as_of_date,
    o._load_id as load_id
from officers as o
left join nearest as n on o.officer_id = n.officer_id
