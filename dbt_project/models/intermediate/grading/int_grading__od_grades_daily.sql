-- NBC grade of every OD position (rulebook F): every OD is short-term (OD policy §4: up to 12 months), graded
-- from its days past due with the nbc_grading_rules version in force on the day. One row per account and
-- business date: the grade history is kept, never overwritten (migrations compare two dates' rows).
-- Incremental: whole business dates from the earliest date touched by a newer load (no look-back: a row uses
-- its own day's days past due only).
{{ config(indexes=account_day_indexes()) }}

{%- set from_date = daily_rebuild_from(ref('int_od__days_past_due_daily')) %}

-- the columns grading reads, with the term class every OD has (a narrower read than the DPD model's rows)
with days_past_due as (
    select
        od_account_id,
        business_date,
        days_past_due,
        'SHORT' as term_class,
        load_id
    from {{ ref('int_od__days_past_due_daily') }}
    {% if from_date %}where business_date >= '{{ from_date }}'::date{% endif %}
)

select
    d.od_account_id,
    d.business_date,
    d.days_past_due,
    d.term_class,
    r.grade as nbc_grade,
    r.grade_order,
    r.provision_rate,
    r.is_non_performing,
    r.grading_version,
    d.load_id
from days_past_due as d
{{ nbc_grade_rule_join('d') }}
