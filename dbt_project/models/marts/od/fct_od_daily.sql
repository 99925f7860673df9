-- Published daily OD fact (published-interface.md): one row per od_balances row (account x business date)
-- with the day's position, unrounded accruals (engineer A), days past due, NBC grade and stagnation (engineer
-- B). Every row names its load (load_id -> meta.loads) and parameter versions (day count, grading,
-- stagnation window).
-- A view (decision 0041): each account-day is stored once, in the daily models it joins on their unique
-- (account, date) indexes (its accruals and grade are computed from those rows: decisions 0043 and 0038), so a
-- reader's date or account condition reaches those indexes and nothing else is read. It filters its rows by
-- branch itself (row-level security does not reach a view's rows) and is a security barrier
-- (meta.secure_relation). A reader's condition is applied inside the view only when it is
-- leakproof: compare business_date with a date (=, <, in a list), not through a function of it.
{{ config(materialized='view', meta={'rebuilt_by_date': true}) }}
-- built after the views that replaced the tables it read before decision 0060: replacing a table drops the views
-- reading it, so on an upgrade's first build the two would race
-- depends_on: {{ ref('int_od__days_past_due_daily') }} {{ ref('int_od__stagnation_daily') }}

{%- set provision_rate = "(case when " ~ left_the_od_book('p') ~ " then 0 else g.provision_rate end)" %}

-- each position with its accruals, computed here as int_od__accruals_daily computes them (macros/accruals.sql):
-- a view reading that view would be dropped whenever dbt recreates it, in every build
with positions as (
    select
        p.*,
        {{ accrual_columns('p', 'w') }}
    from {{ ref('int_od__positions_daily') }} as p
    inner join (
        {{ day_count_weights(ref('int_od__positions_daily'), ref('int_policy__parameter_versions')) }}
    ) as w on p.business_date = w.business_date
),

rounding_units as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name like 'rounding\_unit\_%'
)

-- one cast per column to the enforced contract's type (_od__models.yml): each mart's own columns, not shared
select
    p.od_account_id::text as od_account_id,
    p.business_date::date as business_date,
    p.customer_id::text as customer_id,
    p.branch_code::text as branch_code,
    p.officer_id::text as officer_id,
    p.currency::text as currency,
    p.limit_amount::numeric as limit_amount,
    p.principal_outstanding::numeric as principal_outstanding,
    p.interest_receivable::numeric as interest_receivable,
    p.fees_receivable::numeric as fees_receivable,
    p.excess_amount::numeric as excess_amount,
    p.unutilized_amount::numeric as unutilized_amount,
    p.is_active::boolean as is_active,
    p.maturity_date::date as maturity_date,
    p.day_weight::numeric as day_weight,
    p.interest_accrued::numeric as interest_accrued,
    p.unutilized_fee_accrued::numeric as unutilized_fee_accrued,
    p.excess_fee_accrued::numeric as excess_fee_accrued,
    dpd.days_past_due::integer as days_past_due,
    dpd.dpd_charges::integer as dpd_charges,
    dpd.dpd_excess::integer as dpd_excess,
    dpd.dpd_maturity::integer as dpd_maturity,
    g.grade::text as nbc_grade,
    g.grade_order::integer as grade_order,
    {{ provision_rate }}::numeric as provision_rate,
    -- a provision is booked: rounded like an amount due, in the account currency (rulebook A)
    {{ round_to_unit(
        provision_rate ~ ' * p.principal_outstanding',
        required_rounding_unit('u.value', 'p.currency', 'p.business_date'),
    ) }}::numeric as provision_amount,
    s.window_evaluable::boolean as window_evaluable,
    s.no_net_inflow_60d::boolean as no_net_inflow_60d,
    s.stagnant_amount_60d::numeric as stagnant_amount_60d,
    s.conversion_candidate::boolean as conversion_candidate,
    p.parameter_version::text as parameter_version,
    g.grading_version::text as grading_version,
    ({{ parameter_version_id("'stagnation_window_days'", 's.window_version_from') }})::text
        as stagnation_window_version,
    p.load_id::bigint as load_id
from positions as p
-- an OD that left the book (converted, written off; macros/lifecycle.sql) keeps its balance row but no longer
-- runs days past due, a grade or stagnation from that date (nulls), and provisions 0 (rulebook J; decision 0028).
-- The days past due and stagnation as int_od__days_past_due_daily and int_od__stagnation_daily join their runs
-- (decision 0060), graded here as int_grading__od_grades_daily grades (every OD is short-term): a view reading
-- any of those views would be dropped whenever dbt recreates it, in every build
{{ days_past_due_join('p', ref('int_od__days_past_due_runs'), 'dpd', 'not ' ~ left_the_od_book('p'), grade_alias='g') }}
{{ stagnation_join('p', ref('int_od__stagnation_runs'), 's', 'not ' ~ left_the_od_book('p')) }}
left join rounding_units as u on {{ join_rounding_unit('u', 'p.currency', 'p.business_date') }}
where {{ visible_branch_rows('p.branch_code') }}
