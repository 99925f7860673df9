-- Abnormal agent OD days (rulebook H, daily agent monitoring; docs/policy-engine.md H), one row per
-- account and abnormal day; a day is abnormal when at least one test holds:
--   CASH_WITHDRAWAL     a cash withdrawal of the day not reversed the same day (never allowed, OD policy §4);
--   EXCESS              P > L at the end of the day;
--   ABNORMAL_DRAWDOWN   a drawdown of the day above agent_abnormal_drawdown_multiple x the account's average
--                       drawdown over the agent_drawdown_trailing_days days before it ([d - N, d - 1], the
--                       day itself excluded); no drawdown in that window = no history = not abnormal by it.
-- Parameters are read on the day. Incremental from the earliest business date touched by a newer load (the
-- positions' loads: the agent days keep active days only, so a re-delivered date may have none left there);
-- the trailing windows read the history in int_monitoring__agent_days, so no lookback is needed. Only abnormal
-- days are kept, so the pre-hook first deletes every recomputed date (a recomputed date may have none left).
{%- set agent_days = ref('int_monitoring__agent_days') %}
{#- The pre-hook deletes the recomputed dates at run time (daily_rebuild_from again: the body computes them at
    compile time, before the hook deletes anything). -#}
{%- set recompute_from = "'{{ daily_rebuild_from(ref('int_od__positions_daily')) }}'::date" %}
{{ config(
    pre_hook="{% if is_incremental() %}delete from {{ this }} where business_date >= " ~ recompute_from
        ~ "{% endif %}",
    indexes=account_day_indexes() + [{'columns': ['customer_id', 'business_date']}],
) }}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) %}

with parameters as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name in ('agent_abnormal_drawdown_multiple', 'agent_drawdown_trailing_days')
),

-- candidate days (excess, a cash withdrawal or a drawdown) with the parameters in force on the day (a
-- missing parameter fails the query, never yields null); the parameter table has a handful of rows
candidates as (
    select
        d.*,
        {{ required_policy_param('multiple', 'agent_abnormal_drawdown_multiple', 'd.business_date') }}
            as drawdown_multiple,
        {{ required_policy_param('trail', 'agent_drawdown_trailing_days', 'd.business_date') }}::integer
            as trailing_days,
        concat_ws(',', multiple.parameter_version, trail.parameter_version) as parameter_version
    from {{ agent_days }} as d
    left join parameters as multiple
        on {{ join_policy_param('multiple', 'agent_abnormal_drawdown_multiple', 'd.business_date') }}
    left join parameters as trail
        on {{ join_policy_param('trail', 'agent_drawdown_trailing_days', 'd.business_date') }}
    where
        (d.is_excess or d.cash_withdrawals > 0 or d.drawdowns > 0)
        {% if from_date %}and d.business_date >= '{{ from_date }}'::date{% endif %}
),

tested as (
    select
        c.*,
        h.trailing_drawdowns,
        h.trailing_drawdown_total / nullif(h.trailing_drawdowns, 0) as trailing_average_drawdown
    from candidates as c
    -- an index range probe per drawdown day (unique index on od_account_id, business_date)
    left join lateral (
        select
            sum(w.drawdowns) as trailing_drawdowns,
            sum(w.drawdown_total) as trailing_drawdown_total
        from {{ agent_days }} as w
        where
            w.od_account_id = c.od_account_id
            and w.business_date >= c.business_date - c.trailing_days
            and w.business_date < c.business_date
            and w.drawdowns > 0
    ) as h on c.drawdowns > 0
),

flagged as (
    select
        *,
        cash_withdrawals > 0 as is_cash_withdrawal,
        coalesce(largest_drawdown > drawdown_multiple * trailing_average_drawdown, false)
            as is_abnormal_drawdown
    from tested
)

select
    od_account_id,
    business_date,
    customer_id,
    branch_code,
    officer_id,
    currency,
    is_cash_withdrawal,
    is_excess,
    is_abnormal_drawdown,
    concat_ws(
        ',',
        case when is_cash_withdrawal then 'CASH_WITHDRAWAL' end,
        case when is_excess then 'EXCESS' end,
        case when is_abnormal_drawdown then 'ABNORMAL_DRAWDOWN' end
    ) as reasons,
    cash_withdrawn,
    excess_amount,
    largest_drawdown,
    coalesce(trailing_drawdowns, 0)::integer as trailing_drawdowns,
    trailing_average_drawdown,
    drawdown_multiple * trailing_average_drawdown as drawdown_threshold,
    parameter_version,
    load_id
from flagged
where is_cash_withdrawal or is_excess or is_abnormal_drawdown
