-- Stagnation of every OD position (rulebook E; docs/policy-engine.md E): one row per position, its account's run
-- (int_od__stagnation_runs, decision 0060; macros/runs.sql). A view: each account-day's stagnation is stored
-- once, as a run.
{{ config(materialized='view', meta={'rebuilt_by_date': true}) }}

select
    p.od_account_id,
    p.business_date,
    s.window_days,
    s.window_evaluable,
    s.principal_at_window_start,
    s.net_inflow_60d,
    s.no_net_inflow_60d,
    s.stagnant_amount_60d,
    s.conversion_candidate,
    s.window_version_from,
    p.load_id
from {{ ref('int_od__positions_daily') }} as p
{{ stagnation_join('p', ref('int_od__stagnation_runs'), 's') }}
