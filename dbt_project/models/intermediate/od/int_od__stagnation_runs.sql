-- Stagnation of every OD position (rulebook E; docs/policy-engine.md E), window N = stagnation_window_days in
-- force on the day d:
--   window_evaluable    = the account has an observed balance on d - N (so its history covers the window);
--   net_inflow_60d      = customer credits - customer debits dated in (d-N, d] (a reversal is a negative flow
--                         of its original's class on its own date, so a pair inside the window nets to zero);
--   no_net_inflow_60d   = evaluable and net_inflow_60d <= 0 and P(d-N) > 0;
--   stagnant_amount_60d = min P over [d-N, d] when evaluable, else null ("not evaluable");
--   conversion_candidate = open and drawn and evaluable and (no_net_inflow_60d or stagnant_amount_60d > 0),
--                          open and drawn = status ACTIVE in the day's snapshot (not closed, converted or written
--                          off) and P(d) > 0: a matured OD with a balance is still evaluated (rulebook E, §12.3
--                          converts exactly that case).
-- ("_60d" names the published columns; the window is the parameter's value.) RANGE frames over dates (not
-- rows) are exact when an account misses a day. A frame offset must be a constant, so the model is compiled
-- with one window per distinct parameter value (read at run time; var stagnation_window_days_values in unit
-- tests) and each row picks the one in force on its date.
-- The version in force is stored as its effective date (window_version_from, 4 bytes a row; its id, 34 bytes of
-- text, is spelled by fct_od_daily: decision 0055).
-- Incremental (decision 0033): whole business dates from the earliest date touched by a newer load. The window
-- passes read only the batch's rows; a row whose window starts before the batch adds the part before it from
-- the account's row on the last date before the batch (min P and net inflow over that row's window, less what
-- left the window since: a few rows read through the account-date indexes), or from its own window's rows
-- when that row cannot tell (the minimum left the window, no evaluable row on that date, a longer window).
-- Stored as runs (decision 0060, as int_od__days_past_due_runs): one row per account and run of its loaded days
-- with the same stagnation, from the run's first day (valid_from) until the account's next run starts;
-- int_od__stagnation_daily (a view) gives each position its run. The pre-hook deletes the runs starting on a
-- rebuilt date; a day whose stagnation equals the account's previous day's (the latest earlier run, for the
-- batch's first day) starts no run.
{{ config(
    unique_key=['od_account_id', 'valid_from'],
    incremental_strategy='append',
    indexes=run_indexes(),
    pre_hook="{{ delete_runs_rebuilt(ref('int_od__positions_daily')) }}",
) }}

{%- set windows = var('stagnation_window_days_values', none) -%}
{%- if windows is none -%}
    {%- set windows_sql -%}
        select distinct value::int from {{ ref('int_policy__parameter_versions') }}
        where parameter_name = 'stagnation_window_days' order by 1
    {%- endset -%}
    {%- set windows = run_query(windows_sql).columns[0].values() | list if execute else [] -%}
{%- endif -%}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) -%}
{%- set carries = from_date is not none and from_date != 'infinity' -%}
{#- the last computed date before the batch: its rows carry each account's window into the batch -#}
{%- set previous_date -%}
    (select max(business_date) from {{ ref('int_od__positions_daily') }} where business_date < '{{ from_date }}'::date)
{%- endset -%}
{#- the batch's balances and the flows after the previous date; nothing at all when no newer load exists -#}
{%- set positions_filter = '' if from_date is none else "where false" if from_date == 'infinity'
    else "where business_date >= '" ~ from_date ~ "'::date" -%}
{%- set flows_filter = '' if not carries
    else "where business_date > coalesce(" ~ previous_date ~ ", '-infinity'::date)" -%}
{%- set flows_filter = "where false" if from_date == 'infinity' else flows_filter -%}
{%- set net_flow = "case flow_class when 'CUSTOMER_CREDIT' then signed_amount else -signed_amount end" -%}
{%- set customer_flows = "flow_class in ('CUSTOMER_CREDIT', 'CUSTOMER_DEBIT')" -%}

with positions as (
    select
        od_account_id,
        business_date,
        principal_outstanding,
        coalesce(status = 'ACTIVE' and principal_outstanding > 0, false) as is_open_and_drawn,
        load_id
    from {{ ref('int_od__positions_daily') }}
    {{ positions_filter }}
),

-- the batch's balances and its customer flows as one set of rows (a flow: a row without a balance, credits
-- minus debits, a reversal negative on its own date), so that one sort serves the running sums below
balances_and_flows as (
    select
        od_account_id,
        business_date,
        true as is_observed,
        principal_outstanding,
        is_open_and_drawn,
        load_id,
        0 as net_flow
    from positions
    union all
    select
        od_account_id,
        business_date,
        false,
        null,
        null,
        null,
        {{ net_flow }}
    from {{ ref('int_od__transactions_classified') }}
    {{ flows_filter }} {{ 'and' if flows_filter else 'where' }} {{ customer_flows }}
),

-- one sort of an account's rows by date serves every window below: the cumulative flow (through the end of d: a
-- range frame takes the day's flows, its peers) here, and the windows over the balances after the flow rows are
-- filtered out (a flow row's null balance changes no minimum)
running as (
    select
        *,
        sum(net_flow) over (
            partition by od_account_id order by business_date range unbounded preceding
        ) as cumulative_flow,
        -- min P of the batch's rows up to d (a straddling row's window holds every one of them; read when the
        -- model carries its windows into a batch)
        min(principal_outstanding) over (
            partition by od_account_id order by business_date rows unbounded preceding
        ) as batch_min_principal
    from balances_and_flows
),

days as (
    select * from running
    where is_observed
),

-- min P over [d-N, d] as a moving min: PostgreSQL recomputes it over the frame's rows for every row (N + 1 at
-- most), and that costs less than the prefix and suffix minima over blocks of N + 1 days did, with their two
-- more sorts (docs/performance.md, "Stagnation's minimum in the date order")
-- (sqlfluff lints the loops of framed and picked in renderings of its own, whose indents differ from the model's)
-- noqa: disable=LT02,LT09
framed as (
    select
        *
        {%- for n in windows %},
        first_value(business_date) over closed_{{ n }} as start_date_{{ n }},
        first_value(principal_outstanding) over closed_{{ n }} as start_principal_{{ n }},
        min(principal_outstanding) over closed_{{ n }} as min_principal_{{ n }},
        -- flows in (d-N, d]: cumulative through d minus cumulative through d-N
        cumulative_flow - first_value(cumulative_flow) over closed_{{ n }} as net_inflow_{{ n }}
        {%- endfor %}
    from days
    {% if windows -%}
    window
    {%- for n in windows %}
        closed_{{ n }} as (  -- [d-N, d]
            partition by od_account_id order by business_date
            range between interval '{{ n }} days' preceding and current row
        ){{ "," if not loop.last }}
    {%- endfor %}
    {%- endif %}
),

-- each row takes the window in force on its date (a missing parameter fails the query, never yields null)
picked as (
    select
        x.od_account_id,
        x.business_date,
        x.is_open_and_drawn,
        w.window_days,
        w.window_version_from,
        x.load_id,
        x.cumulative_flow,
        x.batch_min_principal,
        {%- for column, sql_type in [('start_date', 'date'), ('start_principal', 'numeric'),
                                     ('min_principal', 'numeric'), ('net_inflow', 'numeric')] %}
        case w.window_days
            {%- for n in windows %}
            when {{ n }} then x.{{ column }}_{{ n }}
            {%- endfor %}
            else ('stagnation window of ' || w.window_days || ' days not compiled: rerun dbt')::{{ sql_type }}
        end as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from framed as x
    left join {{ ref('int_policy__parameter_versions') }} as pv
        on {{ join_policy_param('pv', 'stagnation_window_days', 'x.business_date') }}
    cross join lateral (
        select
            {{ required_policy_param('pv', 'stagnation_window_days', 'x.business_date') }}::int as window_days,
            pv.effective_from as window_version_from
    ) as w
    {% if from_date -%}
    where x.business_date >= '{{ from_date }}'::date
    {%- endif %}
),
-- noqa: enable=LT02,LT09

{% if carries -%}
-- each account's latest run before the batch: the batch's first day goes on with it when it has its stagnation
{{ latest_runs_before('previous_runs', this, from_date, 'select distinct od_account_id from positions') }},

-- each account's evaluable window on the last date before the batch (its latest run by then): min P and net
-- inflow over its window
previous_windows as materialized (
    select
        p.od_account_id,
        p.business_date - t.window_days as window_start,
        t.stagnant_amount_60d as min_principal,
        t.net_inflow_60d as net_inflow,
        p.principal_outstanding
    from {{ ref('int_od__positions_daily') }} as p
    inner join previous_runs as t on p.od_account_id = t.od_account_id
    where p.business_date = {{ previous_date }} and t.window_evaluable
),

-- a row whose window starts on or before the previous date: its balance on d - N and the previous window
straddling as (
    select
        x.*,
        x.business_date - x.window_days as window_start,
        s.principal_outstanding as principal_on_start,
        w.window_start as previous_window_start,
        w.min_principal as previous_min,
        w.net_inflow as previous_net_inflow,
        coalesce(x.business_date - x.window_days >= w.window_start, false) as is_carried,
        -- the previous minimum is still inside [d - N, previous date] when it is P there on either end
        w.min_principal in (w.principal_outstanding, s.principal_outstanding) as keeps_previous_min
    from picked as x
    -- one index probe per row (a lateral subquery, not flattened): as a join, the planner hashed every position
    -- of the window's dates (60 of them) for one new date whenever it guessed the batch a little larger. d - N
    -- lies in [from_date - the longest window, from_date): as literals, the probe reaches those months'
    -- partitions only (decision 0046)
    left join lateral (
        select s.principal_outstanding
        from {{ ref('int_od__positions_daily') }} as s
        where
            s.od_account_id = x.od_account_id
            and s.business_date = x.business_date - x.window_days
            and s.business_date >= '{{ from_date }}'::date - {{ windows | max if windows else 0 }}
            and s.business_date < '{{ from_date }}'::date
        offset 0  -- keeps the probe from being planned as a join
    ) as s on true
    left join previous_windows as w on x.od_account_id = w.od_account_id
    where x.business_date - x.window_days <= {{ previous_date }}
),

-- what left the previous window by d - N: balances in [its start, d - N), flows in (its start, d - N]
left_window as (
    select
        x.*,
        left_balances.min_principal as left_min,
        coalesce(left_flows.net_flow, 0) as left_net_flow
    from straddling as x
    left join lateral (
        select min(h.principal_outstanding) as min_principal
        from {{ ref('int_od__positions_daily') }} as h
        where
            h.od_account_id = x.od_account_id
            and h.business_date >= x.previous_window_start and h.business_date < x.window_start
    ) as left_balances on x.is_carried
    left join lateral (
        select sum({{ net_flow }}) as net_flow
        from {{ ref('int_od__transactions_classified') }}
        where
            od_account_id = x.od_account_id and {{ customer_flows }}
            and business_date > x.previous_window_start and business_date <= x.window_start
    ) as left_flows on x.is_carried
),

-- [d - N, d] = [d - N, previous date] + the batch's rows; the part before the batch carried when the previous
-- window tells it, else read (only for an evaluable row: the others publish neither)
joined as (
    select
        od_account_id,
        business_date,
        is_open_and_drawn,
        window_days,
        window_version_from,
        load_id,
        case when principal_on_start is not null then window_start end as start_date,
        principal_on_start as start_principal,
        least(batch_min_principal, case
            when principal_on_start is null then null
            when is_carried and (left_min is null or left_min > previous_min or keeps_previous_min)
                then previous_min
            else (
                select min(h.principal_outstanding)
                from {{ ref('int_od__positions_daily') }} as h
                where
                    h.od_account_id = x.od_account_id
                    and h.business_date between x.window_start and {{ previous_date }}
            )
        end) as min_principal,
        cumulative_flow + case
            when principal_on_start is null then null
            when is_carried then previous_net_inflow - left_net_flow
            else (
                select coalesce(sum({{ net_flow }}), 0)
                from {{ ref('int_od__transactions_classified') }}
                where
                    od_account_id = x.od_account_id and {{ customer_flows }}
                    and business_date > x.window_start and business_date <= {{ previous_date }}
            )
        end as net_inflow
    from left_window as x
),

-- the carried columns are named again at each step (as joined above does), never selected with *
windows_in_force as (
    select
        od_account_id,
        business_date,
        is_open_and_drawn,
        window_days,
        window_version_from,
        load_id,
        start_date,
        start_principal,
        min_principal,
        net_inflow
    from picked
    where business_date - window_days > coalesce({{ previous_date }}, '-infinity'::date)
    union all
    select * from joined
),
{%- endif %}

flags as (
    select
        *,
        coalesce(start_date = business_date - window_days, false) as window_evaluable
    from {{ 'windows_in_force' if carries else 'picked' }}
),

-- the stagnation of each day of the batch. The net inflow's scale is trimmed (0.00 -> 0, 12.50 -> 12.5): summed
-- from the account's whole history (a full build) or from the batch and the rows before it (a batch), the same
-- value had a different scale, and the runs, compared with their scale (macros/runs.sql), could start on
-- different days
stagnation_days as (
    select
        od_account_id,
        business_date,
        window_days,
        window_evaluable,
        case when window_evaluable then start_principal end as principal_at_window_start,
        case when window_evaluable then trim_scale(net_inflow) end as net_inflow_60d,
        coalesce(window_evaluable and net_inflow <= 0 and start_principal > 0, false) as no_net_inflow_60d,
        case when window_evaluable then min_principal end as stagnant_amount_60d,
        coalesce(
            is_open_and_drawn and window_evaluable and ((net_inflow <= 0 and start_principal > 0) or min_principal > 0),
            false
        ) as conversion_candidate,
        window_version_from,
        load_id
    from flags
)

-- a run starts on each day whose stagnation differs from the account's previous day's (macros/runs.sql)
{{ run_starts('stagnation_days', 'previous_runs' if carries else none, ['window_days', 'window_evaluable',
    'principal_at_window_start', 'net_inflow_60d', 'no_net_inflow_60d', 'stagnant_amount_60d', 'conversion_candidate',
    'window_version_from']) }}
