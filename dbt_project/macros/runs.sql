{#-
    Reading the state stored as runs (decision 0060): a position takes its account's latest run starting on or
    before its date. The joins below find the run in two steps (decision 0061): a lateral aggregate, the latest
    `valid_from` (a one-probe scan of the runs' unique (od_account_id, valid_from) index), then the run itself on
    that index. The planner proves each step returns at most one row, so a reader that uses none
    of the run's columns (a control total of fct_od_daily, a count of a view's rows) does not probe at all: a
    `limit 1` probe it cannot prove so, and ran it once per row.
    The probe reads only the position's account and date: any other column of the position it read would become
    a parameter of the probe, and the planner then puts a Memoize in front of it that misses on every row
    (docs/performance.md). So `condition` (SQL over the position; the columns are null where it does not hold)
    goes in the join's `on`, and the day counts are computed outside it.
-#}
{#- Each account's latest run starting before `from_date`, for the accounts of `accounts` (a query of
    od_account_id), as two CTEs: `name` and `name`_recent. Most accounts' latest run started in the last few days
    (of 100,000 accounts after a year, 73 % of the stagnation's and 77 % of the days past due's within 7 days):
    those runs are one range scan of the runs' valid_from index and one sort; only the other accounts probe the
    unique index, one each. 100,000 probes cost 19.2 s with a cold cache after a year, this 3.4 s
    (docs/performance.md, "One more day after a year, day by day"). `name`_recent also holds accounts outside `accounts`
    (closed since): a reader joins it by account. -#}
{% macro latest_runs_before(name, runs, from_date, accounts, recent_days=7) -%}
    {%- set recent_from = "'" ~ from_date ~ "'::date - " ~ recent_days -%}
    {{ name }}_recent as materialized (
        select distinct on (r.od_account_id) r.*
        from {{ runs }} as r
        where r.valid_from >= {{ recent_from }} and r.valid_from < '{{ from_date }}'::date
        order by r.od_account_id asc, r.valid_from desc
    ),

    {{ name }} as materialized (
        select * from {{ name }}_recent
        union all
        select t.*
        from ({{ accounts }}) as a
        cross join lateral (
            select r.*
            from {{ runs }} as r
            where r.od_account_id = a.od_account_id and r.valid_from < {{ recent_from }}
            order by r.valid_from desc
            limit 1
        ) as t
        where not exists (select from {{ name }}_recent as n where n.od_account_id = a.od_account_id)
    )
{%- endmacro %}

{#- the latest run of a position's account, joined as `alias` (its columns null where `condition` does not hold or
    there is no run) -#}
{% macro run_join(position, runs, alias, condition='true') -%}
    left join lateral (
        select max(r.valid_from) as valid_from
        from {{ runs }} as r
        where
            r.od_account_id = {{ position }}.od_account_id
            and r.valid_from <= {{ position }}.business_date
    ) as {{ alias }}_start on {{ condition }}
    left join {{ runs }} as {{ alias }}
        on
            {{ position }}.od_account_id = {{ alias }}.od_account_id
            and {{ alias }}_start.valid_from = {{ alias }}.valid_from
{%- endmacro %}

{#- the stagnation of a position: its run's columns as they are (docs/policy-engine.md E) -#}
{% macro stagnation_join(position, runs, alias, condition='true') -%}
    {{ run_join(position, runs, alias, condition) }}
{%- endmacro %}

{#- The days past due of a position: its run's charges state and the three day counts from the date
    (docs/policy-engine.md D). With `grade_alias`, also the NBC grade of those days past due (every OD is
    short-term, OD policy §4). The counts are one row's `max()` (an aggregate without `group by`): the planner
    proves it one row, so a reader using none of its columns drops it and the run's join (decision 0061), and
    keeps it a query of its own, whose columns the grade's probe reads as three values with few distinct
    combinations: a Memoize in front of the probe then hits on nearly every row. Written as a plain `select`,
    the planner merged it into the reader, and the grade probed once per row on the run's and the position's
    columns (39.6 s against 29.4 s for every date's grades at 100,000 x 61), or, read as joined columns,
    kept the run's join for a reader that used neither. `business_date` and `term_class` are the graded
    row's; every column is null where there is no run (the aggregate of no row). -#}
{% macro days_past_due_join(position, runs, alias, condition='true', grade_alias=none) -%}
    {%- set p = position -%}
    {%- set run = alias ~ '_run' -%}
    {%- set charges = 'coalesce(' ~ p ~ '.business_date - ' ~ run ~ '.oldest_unpaid_due_date, 0)' -%}
    {%- set excess = 'coalesce(' ~ p ~ '.business_date - ' ~ run ~ '.excess_since, 0)' -%}
    {%- set past_maturity = p ~ '.principal_outstanding > 0 and ' ~ p ~ '.business_date > ' ~ p ~ '.maturity_date' -%}
    {%- set maturity = 'case when ' ~ past_maturity ~ ' then ' ~ p ~ '.business_date - ' ~ p
        ~ '.maturity_date else 0 end' -%}
    {%- set columns = ['business_date', 'term_class', 'dpd_charges', 'dpd_excess', 'dpd_maturity', 'days_past_due',
        'oldest_unpaid_due_date', 'unpaid_charges', 'excess_since', 'cumulative_credits', 'cumulative_fees_due',
        'cumulative_interest_due', 'credits_beyond_fees', 'credits_beyond_charges'] -%}
    {%- set maxima = [] -%}
    {%- for column in columns %}{% do maxima.append('max(counted.' ~ column ~ ') as ' ~ column) %}{% endfor -%}
    {{ run_join(p, runs, run, condition) }}
    left join lateral (
        select {{ maxima | join(', ') }}
        from (
            select
                {{ p }}.business_date,
                'SHORT' as term_class,
                {{ charges }} as dpd_charges,
                {{ excess }} as dpd_excess,
                {{ maturity }} as dpd_maturity,
                greatest({{ charges }}, {{ excess }}, {{ maturity }}) as days_past_due,
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
    {{ nbc_grade_rule_join(alias ~ '.term_class', alias ~ '.days_past_due', alias ~ '.business_date', grade_alias)
        if grade_alias }}
{%- endmacro %}

{#- The runs of a model stored as runs (decision 0060): the days of `days` (od_account_id, business_date, the
    `state_columns`, load_id) whose state differs from the account's previous day's, each the first day of a run.
    An account's first day is compared with its row in `previous` (its latest run before the batch; none on a full
    build), so that a run goes on across a batch's first date. Compared by their stored bytes (`*<>`, record image
    inequality): a numeric's scale is part of the value a reader sees (0 and 0.00 start different runs), as when
    the states were compared as text, which cost 2 to 3 x as much (a year's full build: 23 s of stagnation's). -#}
{% macro run_starts(days, previous, state_columns) -%}
    {%- set day_state = 'row(d.' ~ state_columns | join(', d.') ~ ')' -%}
    {%- set previous_state = 'row(r.' ~ state_columns | join(', r.') ~ ')' if previous else 'null' -%}
    select
        od_account_id,
        business_date as valid_from,
        {{ state_columns | join(', ') }},
        load_id
    from (
        select
            d.*,
            -- *<> is strict: no earlier state (null) starts a run. (Its right side is not a row constructor, so the
            -- rows are compared whole, not column by column with each type's own <>.)
            coalesce({{ day_state }} *<> coalesce(lag({{ day_state }}) over account_days, {{ previous_state }}), true)
                as starts_run
        -- ordered, the days are a query level of their own (a subquery with an `order by` is never merged into
        -- its reader), so each state column is computed once a row, not again for lag()'s argument (about 10 s of
        -- the stagnation runs' full build at 100,000 x 61); a full build's days already come in this order, and
        -- an incremental build sorts its batch here
        from (select * from {{ days }} order by od_account_id, business_date) as d
        -- (no previous runs: a relation without rows, so that the statement has one shape)
        left join {{ previous or '(select null::text as od_account_id where false)' }} as r
            on d.od_account_id = r.od_account_id
        window account_days as (partition by d.od_account_id order by d.business_date)
    ) as days_compared
    where starts_run
{%- endmacro %}
