-- Client protection indicators per loaded month end (rulebook I), the board pack's section 10 in one row:
-- applications decided in the month, their Credit Bureau Cambodia coverage and exceptions of the approved
-- ones (over-indebtedness, E&S screening, exclusion list), and the responsible-pricing exceptions of the
-- month end. Ratios are 0-1, unrounded, null when there is nothing to divide by.
with month_ends as (
    select month_end from {{ ref('fct_complaints_month_end') }}
),

applications as (
    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        count(*) as decided,
        count(*) filter (where decision = 'APPROVED') as approved,
        count(*) filter (where decision = 'APPROVED' and cbc_checked) as approved_cbc_checked
    from {{ ref('int_social__applications') }}
    group by 1
),

screening as (
    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        count(*) filter (where requires_screening) as es_required,
        count(*) filter (where requires_screening and screened) as es_screened,
        count(*) filter (where exception is not null) as es_exceptions
    from {{ ref('fct_es_screening') }}
    where decision = 'APPROVED'
    group by 1
),

-- one small count per source mart and month end below: alike in shape, each its own indicator
over_indebtedness as (
    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        count(*) as exceptions
    from {{ ref('fct_over_indebtedness') }}
    group by 1
),

exclusion as (
    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        count(*) as exceptions
    from {{ ref('fct_exclusion_breaches') }}
    group by 1
),

pricing as (
    select
        month_end,
        count(*) as exceptions
    from {{ ref('fct_pricing_exceptions') }}
    group by month_end
)

select
    m.month_end,
    coalesce(a.decided, 0) as applications_decided,
    coalesce(a.approved, 0) as applications_approved,
    coalesce(a.approved_cbc_checked, 0) as approved_cbc_checked,
    a.approved_cbc_checked::numeric / nullif(a.approved, 0) as cbc_coverage,
    coalesce(o.exceptions, 0) as over_indebtedness_exceptions,
    coalesce(s.es_required, 0) as es_required,
    coalesce(s.es_screened, 0) as es_screened,
    s.es_screened::numeric / nullif(s.es_required, 0) as es_coverage,
    coalesce(s.es_exceptions, 0) as es_exceptions,
    coalesce(x.exceptions, 0) as exclusion_breaches,
    coalesce(p.exceptions, 0) as pricing_exceptions
from month_ends as m
left join applications as a on m.month_end = a.month_end
left join screening as s on m.month_end = s.month_end
left join over_indebtedness as o on m.month_end = o.month_end
left join exclusion as x on m.month_end = x.month_end
left join pricing as p on m.month_end = p.month_end
