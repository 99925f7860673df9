-- NBC grading rules with their validity [effective_from, effective_to) and a version id per rule row.
-- Grade on a date:  join ... on r.term_class = x.term_class and x.dpd >= r.min_dpd
--   and (r.max_dpd is null or x.dpd <= r.max_dpd) and x.d >= r.effective_from and x.d < r.effective_to
-- Unique on (term_class, grade, effective_from): a graded row joins its rule on that index (macros/nbc_grade.sql).
-- A provision rate recorded by `odwh policy set provision_rate_<term_class>_<grade>` (rulebook L) is a new
-- rule row from its date: the seed rule in force then, with the recorded rate.
{{ config(post_hook="{{ unique_index(['term_class', 'grade', 'effective_from']) }}") }}

with defaults as (
    -- listed, not *: `recorded` below gives the same columns in this order (union all pairs by position)
    select
        term_class,
        grade,
        grade_order,
        min_dpd,
        max_dpd,
        provision_rate,
        is_non_performing,
        effective_from,
        {{ seed_provenance() }}
    from {{ ref('nbc_grading_rules') }}
),

recorded as (
    -- the seed rule in force on the change's date, with the recorded rate
    select distinct on (c.change_id)
        d.term_class,
        d.grade,
        d.grade_order,
        d.min_dpd,
        d.max_dpd,
        c.value as provision_rate,
        d.is_non_performing,
        c.effective_from,
        {{ recorded_change_provenance('c') }}
    from {{ ref('stg_meta__policy_changes') }} as c
    inner join defaults as d
        on
            c.parameter_name
            = 'provision_rate_' || lower(d.term_class) || '_' || replace(lower(d.grade), ' ', '_')
            and d.effective_from <= c.effective_from
    where c.is_latest_for_date
    order by c.change_id asc, d.effective_from desc
),

rules as (
    select * from recorded
    union all
    select d.* from defaults as d
    where not exists (
        select 1 from recorded as r
        where r.term_class = d.term_class and r.grade = d.grade and r.effective_from = d.effective_from
    )
)

-- listed again, not a shared list: the output puts effective_to and the version id among rules' columns
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
    source,
    origin,
    recorded_by,
    reason
from rules
