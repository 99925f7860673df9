-- Days past due of every OD position (rulebook D; docs/policy-engine.md D): one row per position, its account's
-- charges state from its run (int_od__days_past_due_runs, decision 0060) and the day counts from the date
-- (macros/runs.sql). A view: each account-day's state is stored once, as a run.
{{ config(materialized='view', meta={'rebuilt_by_date': true}) }}

select
    p.od_account_id,
    p.business_date,
    dpd.dpd_charges,
    dpd.dpd_excess,
    dpd.dpd_maturity,
    dpd.days_past_due,
    dpd.oldest_unpaid_due_date,
    dpd.unpaid_charges,
    dpd.excess_since,
    dpd.cumulative_credits,
    dpd.cumulative_fees_due,
    dpd.cumulative_interest_due,
    dpd.credits_beyond_fees,
    dpd.credits_beyond_charges,
    p.load_id
from {{ ref('int_od__positions_daily') }} as p
{{ days_past_due_join('p', ref('int_od__days_past_due_runs'), 'dpd') }}
