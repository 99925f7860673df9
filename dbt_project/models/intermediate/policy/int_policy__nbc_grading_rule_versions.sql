-- NBC grading rules with their validity [effective_from, effective_to) and a version id per rule row.
-- Grade on a date:  join ... on r.term_class = x.term_class and x.dpd >= r.min_dpd
--   and (r.max_dpd is null or x.dpd <= r.max_dpd) and x.d >= r.effective_from and x.d < r.effective_to
with rules as (
    select * from {{ ref('nbc_grading_rules') }}
)

select
    term_class,
    grade,
    grade_order,
    min_dpd,
    max_dpd,
    provision_rate,
    is_non_performing,
    effective_from,
    coalesce(
        lead(effective_from) over (partition by term_class, grade order by effective_from),
        'infinity'::date
    ) as effective_to,
    'nbc_grading.' || lower(term_class) || '.' || grade_order || '@'
    || to_char(effective_from, 'YYYY-MM-DD') as grading_version,
    source
from rules
