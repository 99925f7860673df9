-- Published month-end OD fact (published-interface.md): one row per account with a balance on a loaded month
-- end (last calendar day of a month): the day's row of fct_od_daily (position, DPD, grade, stagnation), the
-- month's rounded charges and reconciliation against the core (int_od__charges_monthly), the USD and KHR
-- equivalents at the NBC rate of the month end (int_fx__rates_daily, unrounded), the proposed term-loan
-- product of a conversion candidate and the policy breaches of the month end (int_od__policy_checks_month_end).
-- Incremental by month end (macros/month_end_incremental.sql): a re-delivered old date redoes every later
-- month end, and so does a reversal of an earlier month's charge (the month's charges net it out); a mid-month
-- day renders an empty query.
-- depends_on: {{ ref('stg_core_banking__branches') }}, {{ ref('int_od__transactions_classified') }}
-- A close's build (incremental) reads its month ends' rows through the daily tables' indexes with hash joins
-- off: the planner hashed int_od__stagnation_daily whole instead (33 M rows at 100,000 x 365; the query 23.8 s
-- -> 15.9 s for two month ends). A full build reads every month end, where hashing is right.
{{ config(
    unique_key=['month_end'],
    tags=['month_end'],
    indexes=account_month_end_indexes(),
    pre_hook="{{ 'set local enable_hashjoin = off' if is_incremental() }}",
) }}

{%- set from_date = month_end_rebuild_from(with_reversed_dates=true) -%}
{%- set since = "and business_date >= '" ~ from_date ~ "'::date" if from_date else "" %}

{#- the month ends among the loaded dates (since from_date on an incremental build) -#}
{%- set month_ends_sql -%}
    select distinct business_date from {{ ref('stg_core_banking__branches') }}
    where business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date {{ since }}
{%- endset -%}
{#- An incremental build (a month close) names its month ends as literals, so the planner knows it reads one
    month end's rows and probes the daily tables' indexes for them; a query's array was estimated at a third of
    a year and the whole tables were hashed, a cost growing with the dates loaded. A full build reads every month
    end, where hashing the tables is right, and unit tests run no query: their array is a subquery. -#}
{%- set literals = [] -%}
{%- if from_date and execute -%}
    {%- for month_end in run_query(month_ends_sql).columns[0].values() -%}
        {%- do literals.append("'" ~ month_end ~ "'") -%}
    {%- endfor -%}
    {%- set month_end_dates = "array[" ~ literals | join(', ') ~ "]::date[]" -%}
{%- else -%}
    {%- set month_end_dates = "array(" ~ month_ends_sql ~ ")" -%}
{%- endif %}

-- fct_od_daily is a security-barrier view (decision 0041), which takes a reader's condition in only when it is
-- leakproof: "= any (array)" of dates is, and reaches the daily models' business_date indexes, where a month-end
-- expression of business_date would read every day.
{#- One select per literal month end: the view's left joins carry a date constant to every daily table, which
    reads that month's partition only (decision 0046); an array stops at the first table and the others were read
    whole (two month ends at 100,000 x 365: 20-34 s cold, one constant date 0.7 s). -#}
{%- set per_month_end = [] -%}
{%- for month_end in literals -%}
    {%- do per_month_end.append(
        'select * from ' ~ ref('fct_od_daily') ~ ' where business_date = ' ~ month_end ~ '::date'
    ) -%}
{%- endfor %}

with month_end_days as (
    {%- if per_month_end %}
        {{ per_month_end | join('\n        union all\n        ') }}
    {%- else %}
        select * from {{ ref('fct_od_daily') }}
        where business_date = any({{ month_end_dates }})
    {%- endif %}
),

-- materialized: one row per month end, its newest input load looked up once each (inlined, the lookup ran
-- once per account row: 27 s at 100,000 x 61, and growing with the dates loaded)
month_ends as materialized (
    select
        m.month_end,
        {{ max_input_load_id('m.month_end') }} as max_input_load_id,
        threshold.value as conversion_threshold_usd,
        threshold.parameter_version as conversion_threshold_version,
        {{ required_rounding_unit('usd_unit.value', "'USD'", 'm.month_end') }} as rounding_unit_usd,
        {{ required_rounding_unit('khr_unit.value', "'KHR'", 'm.month_end') }} as rounding_unit_khr
    from (select distinct business_date as month_end from month_end_days) as m
    left join {{ ref('int_policy__parameter_versions') }} as threshold
        on {{ join_policy_param('threshold', 'sme_msme_conversion_threshold_usd', 'm.month_end') }}
    left join {{ ref('int_policy__parameter_versions') }} as usd_unit
        on {{ join_rounding_unit('usd_unit', "'USD'", 'm.month_end') }}
    left join {{ ref('int_policy__parameter_versions') }} as khr_unit
        on {{ join_rounding_unit('khr_unit', "'KHR'", 'm.month_end') }}
),

charges as (
    {{ rows_since_from_date(ref('int_od__charges_monthly'), from_date, 'month_end') }}
),

checks as (
    {{ rows_since_from_date(ref('int_od__policy_checks_month_end'), from_date, 'month_end') }}
),

fx as (
    {{ rows_since_from_date(ref('int_fx__rates_daily'), from_date) }}
),

joined as (
    select
        d.*,
        me.max_input_load_id,
        me.conversion_threshold_usd,
        me.conversion_threshold_version,
        c.interest_due,
        c.unutilized_fee_due,
        c.excess_fee_due,
        c.total_due,
        c.core_interest_charged,
        c.core_fees_charged,
        c.reconciliation_break,
        c.parameter_version as charges_version,
        k.policy_breaches,
        k.checks_not_evaluable,
        k.parameter_version as checks_version,
        {{ to_usd('d.principal_outstanding', 'fx') }} as principal_outstanding_usd,
        -- the provision's equivalents: converted from the unrounded provision, then rounded (rulebook A)
        {{ round_to_unit(to_usd('d.provision_rate * d.principal_outstanding', 'fx'), 'me.rounding_unit_usd') }}
            as provision_amount_usd,
        {{ to_usd('d.stagnant_amount_60d', 'fx') }} as stagnant_amount_60d_usd,
        d.principal_outstanding * fx.khr_per_unit as principal_outstanding_khr,
        {{ round_to_unit('d.provision_rate * d.principal_outstanding * fx.khr_per_unit', 'me.rounding_unit_khr') }}
            as provision_amount_khr
    from month_end_days as d
    inner join month_ends as me on d.business_date = me.month_end
    left join charges as c on d.od_account_id = c.od_account_id and d.business_date = c.month_end
    left join checks as k on d.od_account_id = k.od_account_id and d.business_date = k.month_end
    left join fx on d.business_date = fx.business_date and d.currency = fx.currency
)

select
    od_account_id::text as od_account_id,
    business_date::date as month_end,
    customer_id::text as customer_id,
    branch_code::text as branch_code,
    officer_id::text as officer_id,
    currency::text as currency,
    limit_amount::numeric as limit_amount,
    principal_outstanding::numeric as principal_outstanding,
    is_active::boolean as is_active,
    maturity_date::date as maturity_date,
    interest_due::numeric as interest_due,
    unutilized_fee_due::numeric as unutilized_fee_due,
    excess_fee_due::numeric as excess_fee_due,
    total_due::numeric as total_due,
    core_interest_charged::numeric as core_interest_charged,
    core_fees_charged::numeric as core_fees_charged,
    coalesce(reconciliation_break, false)::boolean as reconciliation_break,
    days_past_due::integer as days_past_due,
    nbc_grade::text as nbc_grade,
    grade_order::integer as grade_order,
    provision_rate::numeric as provision_rate,
    provision_amount::numeric as provision_amount,
    principal_outstanding_usd::numeric as principal_outstanding_usd,
    provision_amount_usd::numeric as provision_amount_usd,
    principal_outstanding_khr::numeric as principal_outstanding_khr,
    provision_amount_khr::numeric as provision_amount_khr,
    conversion_candidate::boolean as conversion_candidate,
    no_net_inflow_60d::boolean as no_net_inflow_60d,
    stagnant_amount_60d::numeric as stagnant_amount_60d,
    stagnant_amount_60d_usd::numeric as stagnant_amount_60d_usd,
    (
        case
            when not conversion_candidate then null
            when stagnant_amount_60d_usd >= conversion_threshold_usd then 'SME'
            when stagnant_amount_60d_usd < conversion_threshold_usd then 'MSME'
        end
    )::text as proposed_term_product,
    coalesce(policy_breaches, array[]::text[])::text[] as policy_breaches,
    coalesce(checks_not_evaluable, array[]::text[])::text[] as checks_not_evaluable,
    concat_ws(
        ',', charges_version, grading_version, stagnation_window_version, conversion_threshold_version,
        checks_version
    )::text as parameter_version,
    load_id::bigint as load_id,
    max_input_load_id::bigint as max_input_load_id
from joined
