-- Daily agent monitoring alerts (rulebook H; docs/policy-engine.md H), one row per alert, key
-- (customer_id, opened_on). An alert is a run of consecutive abnormal days of the agent (any of the
-- customer's agent ODs abnormal, int_monitoring__agent_abnormal_days; consecutive calendar days, as the
-- pipeline never loads a date after a gap):
--   opens on the first abnormal day, assigned to the customer's officer (CM) of that day (and that day's
--   reporting line gives the Regional Manager for an escalation);
--   stays open while the days stay abnormal; the first loaded day that is not abnormal closes it (closed_on);
--   days_open = closed_on - opened_on when closed, as_of_date - opened_on + 1 while open (the abnormal days);
--   escalated when days_open > agent_alert_escalation_days (parameter on opened_on): escalated_on =
--   opened_on + that many days (the first day it had been open longer), assigned to the Regional Manager.
-- reason lists every test that fired during the alert, in the order CASH_WITHDRAWAL, EXCESS,
-- ABNORMAL_DRAWDOWN, joined by ','. Rebuilt in full: only abnormal days are read.
-- Nested loops off for this transaction: the runs' estimates are a row or two, and the planner joined every
-- alert to every run in nested loops (quadratic in the history's alerts; 10,000 accounts x 62 days: 1.7 s,
-- hash joins 0.16 s under EXPLAIN ANALYZE; docs/performance.md).
{{ config(pre_hook="set local enable_nestloop = off") }}
{#- "USD 1,234.56" / "KHR 1,234,567": money.replace('AMOUNT', <sql>).replace('CCY', <sql>) -#}
{%- set money = "(CCY || ' ' || to_char(AMOUNT, case when CCY = 'KHR' then 'FM999,999,999,999,990'"
    ~ " else 'FM999,999,999,999,990.00' end))" %}

with abnormal as (
    select * from {{ ref('int_monitoring__agent_abnormal_days') }}
),

-- only the columns escalation needs from the officer chains (a narrow read; each model names its own)
officers as (
    select
        business_date,
        officer_id,
        regional_manager_id
    from {{ ref('int_monitoring__officer_chains') }}
),

parameters as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name = 'agent_alert_escalation_days'
),

customer_days as (
    select
        customer_id,
        business_date,
        business_date - (row_number() over (partition by customer_id order by business_date))::integer
            as run_id
    from abnormal
    group by customer_id, business_date
),

runs as (
    select
        c.customer_id,
        min(c.business_date) as opened_on,
        max(c.business_date) as last_abnormal_on,
        count(distinct c.business_date)::integer as abnormal_days,
        count(distinct c.business_date) filter (where a.is_cash_withdrawal)::integer as cash_withdrawal_days,
        count(distinct c.business_date) filter (where a.is_excess)::integer as excess_days,
        count(distinct c.business_date) filter (where a.is_abnormal_drawdown)::integer as drawdown_days,
        string_agg(distinct a.parameter_version, ',') as day_parameter_versions,
        max(a.load_id) as load_id
    from customer_days as c
    inner join abnormal as a on c.customer_id = a.customer_id and c.business_date = a.business_date
    group by c.customer_id, c.run_id
),

-- the account, officer and branch of the opening day (the lowest account id when several were abnormal)
opening as (
    select distinct on (customer_id, business_date)
        customer_id,
        business_date,
        od_account_id,
        officer_id,
        branch_code,
        currency
    from abnormal
    order by customer_id, business_date, od_account_id
),

-- figures of the opening account over the alert's days, for the human-readable detail
figures as (
    select
        r.customer_id,
        r.opened_on,
        sum(a.cash_withdrawn) filter (where a.is_cash_withdrawal) as cash_withdrawn,
        max(a.excess_amount) filter (where a.is_excess) as peak_excess,
        max(a.largest_drawdown) filter (where a.is_abnormal_drawdown) as largest_abnormal_drawdown
    from runs as r
    inner join opening as o on r.customer_id = o.customer_id and r.opened_on = o.business_date
    inner join abnormal as a
        on
            o.od_account_id = a.od_account_id
            and a.business_date between r.opened_on and r.last_abnormal_on
    group by r.customer_id, r.opened_on
),

-- the loaded dates the models have built, each with the next one (the agent days hold active days only, so not
-- every date is there; a date loaded after the positions were last built, as after a failed build, is not
-- checked yet and must neither close an alert nor date it)
loaded_dates as (
    select
        business_date,
        lead(business_date) over (order by business_date) as next_date
    from {{ ref('stg_meta__loads') }}
    where
        superseded_at is null
        and business_date <= (select max(p.business_date) from {{ ref('int_od__positions_daily') }} as p)
),

latest as (
    select max(business_date) as as_of_date from loaded_dates
),

alerts as (
    select
        r.*,
        o.od_account_id,
        o.officer_id,
        o.branch_code,
        o.currency,
        f.cash_withdrawn,
        f.peak_excess,
        f.largest_abnormal_drawdown,
        n.next_date as closed_on,
        l.as_of_date,
        coalesce(
            e.value,
            ('policy parameter agent_alert_escalation_days: 0 versions in force on ' || r.opened_on)::numeric
        )::integer as escalation_days,
        e.parameter_version as escalation_version
    from runs as r
    inner join opening as o on r.customer_id = o.customer_id and r.opened_on = o.business_date
    inner join figures as f on r.customer_id = f.customer_id and r.opened_on = f.opened_on
    left join loaded_dates as n on r.last_abnormal_on = n.business_date
    cross join latest as l
    left join parameters as e on r.opened_on >= e.effective_from and r.opened_on < e.effective_to
),

timed as (
    select
        *,
        case
            when closed_on is not null then closed_on - opened_on
            else as_of_date - opened_on + 1
        end as days_open,
        {{ money.replace('AMOUNT', 'cash_withdrawn').replace('CCY', 'currency') }} as cash_text,
        {{ money.replace('AMOUNT', 'peak_excess').replace('CCY', 'currency') }} as excess_text,
        {{ money.replace('AMOUNT', 'largest_abnormal_drawdown').replace('CCY', 'currency') }} as drawdown_text
    from alerts
)

select
    t.customer_id,
    t.od_account_id,
    t.officer_id,
    ofc.regional_manager_id,
    case when t.days_open > t.escalation_days then ofc.regional_manager_id else t.officer_id end
        as assigned_to_id,
    t.branch_code,
    t.currency,
    concat_ws(
        ',',
        case when t.cash_withdrawal_days > 0 then 'CASH_WITHDRAWAL' end,
        case when t.excess_days > 0 then 'EXCESS' end,
        case when t.drawdown_days > 0 then 'ABNORMAL_DRAWDOWN' end
    ) as reason,
    concat_ws(
        '; ',
        case
            when t.cash_withdrawal_days > 0 then
                t.cash_withdrawal_days
                || ' day(s) with a cash withdrawal'
                || coalesce(', total ' || t.cash_text, '')
        end,
        case
            when t.excess_days > 0 then
                t.excess_days || ' day(s) in excess' || coalesce(', peak ' || t.excess_text, '')
        end,
        case
            when t.drawdown_days > 0 then
                t.drawdown_days
                || ' day(s) with an abnormal drawdown'
                || coalesce(', largest ' || t.drawdown_text, '')
        end
    ) as detail,
    -- the figures of detail, for the lists' Khmer and English sentences (decision 0022)
    jsonb_build_object(
        'cash_withdrawal_days', t.cash_withdrawal_days, 'cash_withdrawn', t.cash_withdrawn::text,
        'excess_days', t.excess_days, 'peak_excess', t.peak_excess::text,
        'drawdown_days', t.drawdown_days, 'largest_drawdown', t.largest_abnormal_drawdown::text
    ) as detail_params,
    t.opened_on,
    t.last_abnormal_on,
    t.closed_on,
    t.abnormal_days,
    t.days_open,
    t.days_open > t.escalation_days as escalated,
    case when t.days_open > t.escalation_days then t.opened_on + t.escalation_days end as escalated_on,
    case
        when t.closed_on is not null then 'CLOSED'
        when t.days_open > t.escalation_days then 'ESCALATED'
        else 'OPEN'
    end as status,
    t.as_of_date,
    concat_ws(',', t.escalation_version, t.day_parameter_versions) as parameter_version,
    t.load_id
from timed as t
left join officers as ofc on t.opened_on = ofc.business_date and t.officer_id = ofc.officer_id
