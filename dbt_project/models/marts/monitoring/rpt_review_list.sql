-- Monthly review list (rulebook H, OD policy §12.2; docs/policy-engine.md H): one row per account,
-- loaded month end and reason, routed to the customer's officer (CM) at the month end and rolled up to the
-- officer's manager (AM) and senior manager (SM) of that date's officers snapshot. Reasons:
--   EXCESS                days in excess during the month; amount = peak excess
--   NO_TRANSACTION        active (or still drawn) and no customer transaction in the month; amount = drawn
--   INSUFFICIENT_INFLOW   customer credits of the month < the month's charges (total_due); amount = shortfall
--   CONVERSION_CANDIDATE  rulebook E at the month end; amount = stagnant amount, else the drawn balance
--   GRADE                 Special Mention or worse, or a grade unlike last month end's; amount = drawn
--   MATURITY              active and maturing next month, or matured with a drawn balance; amount = drawn
--   BREACH                policy_breaches not empty (rulebook G and restructuring); amount = limit
--   RECONCILIATION        recomputed charges differ from the core's by more than a rounding unit;
--                         amount = |interest difference| + |fees difference|
-- Social performance (rulebook I, docs/policy-engine.md I), routed to the customer's officer at the month end:
--   ES_SCREENING          approved application of the month with an E&S exception; amount = amount applied
--   EXCLUSION             approved application of the month with an excluded activity; amount = amount applied
--   OVER_INDEBTEDNESS     approved application of the month with DSR above the limit or no CBC check; amount
--   PRICING               monthly rate x 12 above the NBC ceiling at the month end; amount = drawn
-- An application reason carries the application id in od_account_id (decision 0014).
-- Facility lifecycle (rulebook J, int_monitoring__od_lifecycle_month_end), routed the same way:
--   CONVERTED             converted to a term loan in the month; amount = the core's settlement credit
--   CLOSED_WITH_BALANCE   CLOSED on the month end with a balance in the extract (a data error); amount = it
--   WRITTEN_OFF           written off in the month, listed once; amount = the principal of the day before
-- An OD converted or written off by the month end (rulebook J) gets none of the reasons above from that month:
-- the conversion month shows CONVERTED only (its SYSTEM settlement is no customer credit, so it would read as
-- INSUFFICIENT_INFLOW), the write-off month WRITTEN_OFF only, later months nothing (decision 0028).
-- The flow tests (NO_TRANSACTION, INSUFFICIENT_INFLOW) need the whole month observed for the account.
-- amount is in the account currency, amount_usd at the NBC rate of the month end (unrounded).
-- detail is an English sentence; detail_params holds its figures (JSON, amounts as exact decimal strings),
-- from which the reports write the detail in Khmer and English (odwh.publish.details, decision 0022).
-- Nested loops off for the build: the planner cannot estimate how few accounts left the book (an expression
-- over status and dates, given half the rows), so it expected one account left after the anti-join and looped
-- over the officer chains for each of 198,114 (a build of 2.6 s took 349 s at 100,000 x 61).
-- Incremental by month end (macros/review_list_rebuild_from.sql): a month close adds its own month end; a
-- re-delivered date, a reversal of an earlier month's transaction (the activity and charges net it out), or a
-- social or lifecycle row delivered later for an earlier month redoes every later one. Rebuilt in full it took
-- 29 s a close at 100,000 x 365.
-- depends_on: {{ ref('stg_core_banking__branches') }}, {{ ref('int_od__transactions_classified') }}
{#- the second pre-hook deletes every rebuilt month end, also one a re-delivery left without rows -#}
{{ config(
    materialized='incremental',
    unique_key=['month_end'],
    tags=['month_end'],
    indexes=[{'columns': ['month_end']}],
    pre_hook=[
        'set local enable_nestloop = off',
        "{% set since = review_list_rebuild_from() %}"
        ~ "{% if since %}delete from {{ this }} where month_end >= '{{ since }}'::date{% endif %}",
    ],
) }}

{% set from_date = review_list_rebuild_from() -%}

{#- "USD 1,234.56" / "KHR 1,234,567": money.replace('AMOUNT', <sql>) with the row's currency in ccy -#}
{%- set money = "(ccy || ' ' || to_char(AMOUNT, case when ccy = 'KHR' then 'FM999,999,999,999,990'"
    ~ " else 'FM999,999,999,999,990.00' end))" %}

with month_end as (
    {{ rows_since_from_date(ref('fct_od_month_end'), from_date, 'month_end') }}
),

-- the month ends rebuilt, each with its newest input load (the incremental watermark), looked up once each
month_ends as materialized (
    select
        m.month_end,
        {{ max_input_load_id('m.month_end') }} as max_input_load_id
    from (select distinct month_end from month_end) as m
),

-- last month's rows, for the grade change: the month before the earliest rebuilt one is not rebuilt
previous_month_end as (
    select
        od_account_id,
        month_end,
        nbc_grade
    from {{ ref('fct_od_month_end') }}
    {% if from_date -%}
        where month_end >= (date_trunc('month', '{{ from_date }}'::date) - interval '1 day')::date
    {%- endif %}
),

activity as (
    {{ rows_since_from_date(ref('int_monitoring__od_activity_month_end'), from_date, 'month_end') }}
),

chains as (
    select * from {{ ref('int_monitoring__officer_chains') }}
),

fx as (
    select * from {{ ref('int_fx__rates_daily') }}
),

window_parameter as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name = 'stagnation_window_days'
),

-- ODs that left the book by the month end (converted or written off, macros/lifecycle.sql): the account's own
-- reasons stop; the month's conversion or write-off is listed once, as CONVERTED or WRITTEN_OFF (decision 0028)
left_the_book as (
    select
        p.od_account_id,
        p.business_date as month_end
    from {{ ref('int_od__positions_daily') }} as p
    where p.business_date = any(array(select m.month_end from month_ends as m)) and {{ left_the_od_book('p') }}
),

accounts as (
    select
        me.*,
        me.currency as ccy,
        me.unutilized_fee_due + me.excess_fee_due as fees_due,
        a.customer_type,
        a.month_observed,
        a.days_in_excess,
        a.peak_excess,
        a.customer_transactions,
        a.customer_credits,
        previous.nbc_grade as previous_grade,
        w.value::integer as window_days,
        ch.officer_name,
        ch.manager_id,
        ch.senior_manager_id,
        fx.khr_per_unit,
        fx.khr_per_usd
    from month_end as me
    left join activity as a on me.od_account_id = a.od_account_id and me.month_end = a.month_end
    left join previous_month_end as previous
        on
            me.od_account_id = previous.od_account_id
            and previous.month_end = (date_trunc('month', me.month_end) - interval '1 day')::date
    left join window_parameter as w on me.month_end >= w.effective_from and me.month_end < w.effective_to
    left join chains as ch on me.month_end = ch.business_date and me.officer_id = ch.officer_id
    left join fx on me.month_end = fx.business_date and me.currency = fx.currency
    where not exists (
        select from left_the_book as gone
        where me.od_account_id = gone.od_account_id and me.month_end = gone.month_end
    )
),

reasons as (
    select
        *,
        'EXCESS' as reason,
        peak_excess as amount,
        days_in_excess || case when days_in_excess = 1 then ' day' else ' days' end || ' in excess, peak '
        || {{ money.replace('AMOUNT', 'peak_excess') }}
        || ', excess fee ' || {{ money.replace('AMOUNT', 'coalesce(excess_fee_due, 0)') }} as detail,
        jsonb_build_object(
            'days', days_in_excess, 'peak', peak_excess::text, 'excess_fee', coalesce(excess_fee_due, 0)::text
        ) as detail_params
    from accounts
    where days_in_excess > 0

    union all

    select
        *,
        'NO_TRANSACTION' as reason,
        principal_outstanding as amount,
        'No customer transaction in the month; drawn '
        || {{ money.replace('AMOUNT', 'principal_outstanding') }}
        || ', charges of the month ' || {{ money.replace('AMOUNT', 'coalesce(total_due, 0)') }} as detail,
        jsonb_build_object(
            'drawn', principal_outstanding::text, 'charges', coalesce(total_due, 0)::text
        ) as detail_params
    from accounts
    where month_observed and customer_transactions = 0 and (is_active or principal_outstanding > 0)

    union all

    select
        *,
        'INSUFFICIENT_INFLOW' as reason,
        total_due - customer_credits as amount,
        'Customer credits ' || {{ money.replace('AMOUNT', 'customer_credits') }}
        || ' below the month''s charges ' || {{ money.replace('AMOUNT', 'total_due') }}
        || ' (interest ' || {{ money.replace('AMOUNT', 'interest_due') }}
        || ', fees ' || {{ money.replace('AMOUNT', 'fees_due') }} || ')' as detail,
        jsonb_build_object(
            'credits', customer_credits::text, 'charges', total_due::text,
            'interest', interest_due::text, 'fees', fees_due::text
        ) as detail_params
    from accounts
    where month_observed and customer_credits < total_due

    union all

    select
        *,
        'CONVERSION_CANDIDATE' as reason,
        case when stagnant_amount_60d > 0 then stagnant_amount_60d else principal_outstanding end as amount,
        concat_ws(
            '; ',
            case
                when stagnant_amount_60d > 0 then
                    'Stagnant ' || {{ money.replace('AMOUNT', 'stagnant_amount_60d') }}
                    || ' (not repaid for ' || window_days || ' days)'
            end,
            case when no_net_inflow_60d then 'no net inflow over ' || window_days || ' days' end,
            'drawn ' || {{ money.replace('AMOUNT', 'principal_outstanding') }},
            'propose ' || coalesce(proposed_term_product || ' term loan', 'a term loan (no FX rate)'),
            'close the OD, re-appraise, check CBC again, keep term and purpose,'
            || ' monthly declining instalments, no grace period'
            || case when customer_type = 'AGENT' then ', collateral required (agent OD)' else '' end
        ) as detail,
        jsonb_build_object(
            'stagnant', nullif(stagnant_amount_60d, 0)::text, 'no_net_inflow', coalesce(no_net_inflow_60d, false),
            'window_days', window_days, 'drawn', principal_outstanding::text, 'term_product', proposed_term_product,
            'agent', customer_type = 'AGENT'
        ) as detail_params
    from accounts
    where conversion_candidate

    union all

    select
        *,
        'GRADE' as reason,
        principal_outstanding as amount,
        case when previous_grade <> nbc_grade then previous_grade || ' -> ' else '' end
        || nbc_grade || ', ' || days_past_due || ' days past due' as detail,
        jsonb_build_object(
            'previous', nullif(previous_grade, nbc_grade), 'grade', nbc_grade, 'days_past_due', days_past_due
        ) as detail_params
    from accounts
    where grade_order >= 2 or previous_grade <> nbc_grade

    union all

    select
        *,
        'MATURITY' as reason,
        principal_outstanding as amount,
        case
            when maturity_date <= month_end
                then
                    'Matured ' || maturity_date || ', '
                    || {{ money.replace('AMOUNT', 'principal_outstanding') }}
                    || ' still drawn (' || (month_end - maturity_date) || ' days)'
            else
                'Matures ' || maturity_date || ' (next month), drawn '
                || {{ money.replace('AMOUNT', 'principal_outstanding') }}
        end as detail,
        jsonb_build_object(
            'maturity_date', maturity_date, 'drawn', principal_outstanding::text,
            'days_matured', case when maturity_date <= month_end then month_end - maturity_date end
        ) as detail_params
    from accounts
    where
        (
            is_active and maturity_date > month_end
            and maturity_date <= (date_trunc('month', month_end) + interval '2 months - 1 day')::date
        )
        or (maturity_date <= month_end and principal_outstanding > 0)

    union all

    select
        *,
        'BREACH' as reason,
        limit_amount as amount,
        'Breaches: ' || array_to_string(policy_breaches, ', ') as detail,
        jsonb_build_object('breaches', to_jsonb(policy_breaches)) as detail_params
    from accounts
    where cardinality(policy_breaches) > 0

    union all

    select
        *,
        'RECONCILIATION' as reason,
        abs(interest_due - core_interest_charged) + abs(fees_due - core_fees_charged) as amount,
        'Interest: warehouse ' || {{ money.replace('AMOUNT', 'interest_due') }}
        || ', core ' || {{ money.replace('AMOUNT', 'core_interest_charged') }}
        || '; fees: warehouse ' || {{ money.replace('AMOUNT', 'fees_due') }}
        || ', core ' || {{ money.replace('AMOUNT', 'core_fees_charged') }} as detail,
        jsonb_build_object(
            'interest', interest_due::text, 'core_interest', core_interest_charged::text,
            'fees', fees_due::text, 'core_fees', core_fees_charged::text
        ) as detail_params
    from accounts
    where reconciliation_break
),

-- rulebook I exceptions (int_social__review_reasons) and the lifecycle events of rulebook J: already routed to
-- the customer's officer
social_routed as (
    select
        s.*,
        ch.officer_name,
        ch.manager_id,
        ch.senior_manager_id,
        fx.khr_per_unit,
        fx.khr_per_usd,
        loaded.max_input_load_id
    from (
        select * from {{ ref('int_social__review_reasons') }}
        union all
        select * from {{ ref('int_monitoring__od_lifecycle_month_end') }}
    ) as s
    inner join month_ends as loaded on s.month_end = loaded.month_end
    left join chains as ch on s.month_end = ch.business_date and s.officer_id = ch.officer_id
    left join fx on s.month_end = fx.business_date and s.ccy = fx.currency
)

select
    r.month_end,
    r.od_account_id,
    r.reason,
    r.officer_id,
    r.officer_name,
    r.manager_id,
    r.senior_manager_id,
    r.branch_code,
    r.customer_id,
    r.currency,
    r.detail,
    r.detail_params,
    r.amount,
    {{ to_usd('r.amount', 'r') }} as amount_usd,
    r.parameter_version,
    r.load_id,
    m.max_input_load_id
from reasons as r
inner join month_ends as m on r.month_end = m.month_end

union all

select
    s.month_end,
    s.od_account_id,
    s.reason,
    s.officer_id,
    s.officer_name,
    s.manager_id,
    s.senior_manager_id,
    s.branch_code,
    s.customer_id,
    s.ccy as currency,
    s.detail,
    s.detail_params,
    s.amount,
    {{ to_usd('s.amount', 's') }} as amount_usd,
    s.parameter_version,
    s.load_id,
    s.max_input_load_id
from social_routed as s
