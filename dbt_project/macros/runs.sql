{#-
    Reading the state stored as runs (decision 0060): a position takes its account's latest run starting on or
    before its date, one probe of the runs' unique (od_account_id, valid_from) index. One way for every reader:
    the views over the runs (int_od__days_past_due_daily, int_od__stagnation_daily), the grade view and
    fct_od_daily, which join the runs themselves (a view reading a view is dropped whenever dbt recreates the
    view it reads).
    The probe reads only the position's account and date: any other column of the position it read would become
    a parameter of the probe, and the planner then puts a Memoize in front of it that misses on every row
    (docs/performance.md). So `condition` (SQL over the position; the columns are null where it does not hold)
    goes in the join's `on`, and the day counts are computed outside the probe.
-#}
{% macro latest_run(position, runs) -%}
    select *
    from {{ runs }} as r
    where
        r.od_account_id = {{ position }}.od_account_id
        and r.valid_from <= {{ position }}.business_date
    order by r.valid_from desc
    limit 1
{%- endmacro %}

{#- the stagnation of a position: its run's columns as they are (docs/policy-engine.md E) -#}
{% macro stagnation_join(position, runs, alias, condition='true') -%}
    left join lateral ({{ latest_run(position, runs) }}) as {{ alias }} on {{ condition }}
{%- endmacro %}

{#- the days past due of a position: its run's charges state and the three day counts from the date
    (docs/policy-engine.md D); `business_date` and `term_class` are there for nbc_grade_rule_join -#}
{% macro days_past_due_join(position, runs, alias, condition='true') -%}
    {%- set p = position -%}
    {%- set run = alias ~ '_run' -%}
    left join lateral ({{ latest_run(p, runs) }}) as {{ run }} on {{ condition }}
    left join lateral (
        select
            *,
            greatest(dpd_charges, dpd_excess, dpd_maturity) as days_past_due
        from (
            select
                {{ p }}.business_date,
                'SHORT' as term_class,  -- every OD is short-term (OD policy §4): the grading rules' class
                coalesce({{ p }}.business_date - {{ run }}.oldest_unpaid_due_date, 0) as dpd_charges,
                coalesce({{ p }}.business_date - {{ run }}.excess_since, 0) as dpd_excess,
                case
                    when {{ p }}.principal_outstanding > 0 and {{ p }}.business_date > {{ p }}.maturity_date
                        then {{ p }}.business_date - {{ p }}.maturity_date
                    else 0
                end as dpd_maturity,
                {{ run }}.oldest_unpaid_due_date,
                {{ run }}.unpaid_charges,
                {{ run }}.excess_since,
                {{ run }}.cumulative_credits,
                {{ run }}.cumulative_fees_due,
                {{ run }}.cumulative_interest_due,
                {{ run }}.credits_beyond_fees,
                {{ run }}.credits_beyond_charges
            where {{ run }}.od_account_id is not null
        ) as counted
    ) as {{ alias }} on true
{%- endmacro %}

{#- The runs of a model stored as runs (decision 0060): the days of `days` (od_account_id, business_date, the
    `state_columns`, load_id) whose state differs from the account's previous day's, each the first day of a run.
    An account's first day is compared with its row in `previous` (its latest run before the batch; none on a full
    build), so that a run goes on across a batch's first date. Compared as text: a numeric's scale is part of the
    value a reader sees (0 and 0.00 start different runs). -#}
{% macro run_starts(days, previous, state_columns) -%}
    {%- set day_state = 'row(d.' ~ state_columns | join(', d.') ~ ')::text' -%}
    {%- set previous_state = 'row(r.' ~ state_columns | join(', r.') ~ ')::text' if previous else 'null' -%}
    select
        od_account_id,
        business_date as valid_from,
        {{ state_columns | join(', ') }},
        load_id
    from (
        select
            d.*,
            ({{ day_state }} is distinct from coalesce(lag({{ day_state }}) over account_days, {{ previous_state }}))
                as starts_run
        from {{ days }} as d
        -- (no previous runs: a relation without rows, so that the statement has one shape)
        left join {{ previous or '(select null::text as od_account_id where false)' }} as r
            on d.od_account_id = r.od_account_id
        window account_days as (partition by d.od_account_id order by d.business_date)
    ) as days_compared
    where starts_run
{%- endmacro %}
