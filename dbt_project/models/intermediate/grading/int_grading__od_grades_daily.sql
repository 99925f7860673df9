-- NBC grade of every OD position (rulebook F): every OD is short-term (OD policy §4: up to 12 months), graded
-- from its days past due with the nbc_grading_rules version in force on the day. One row per account and
-- business date: the grade history is kept, never overwritten (migrations compare two dates' rows).
-- A view (decision 0038): a row's grade is a function of that row's days past due and the rule versions, so a
-- reader's date condition reaches the positions' index and only those dates are graded. The days past due are
-- joined here as int_od__days_past_due_daily joins them (macros/runs.sql, decision 0060): a view
-- reading that view would be dropped whenever dbt recreates it.
-- Built after that view all the same: it replaced the table this view read before, and replacing a table drops
-- the views reading it, so on an upgrade's first build the two would race.
-- depends_on: {{ ref('int_od__days_past_due_daily') }}

select
    p.od_account_id,
    p.business_date,
    dpd.days_past_due,
    dpd.term_class,
    r.grade as nbc_grade,
    r.grade_order,
    r.provision_rate,
    r.is_non_performing,
    r.grading_version,
    p.load_id
from {{ ref('int_od__positions_daily') }} as p
{{ days_past_due_join('p', ref('int_od__days_past_due_runs'), 'dpd', grade_alias='r') }}
