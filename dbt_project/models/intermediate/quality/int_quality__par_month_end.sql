-- Portfolio at risk (rulebook K), long format: one row per (month_end, product_family, segment_type,
-- segment_value, threshold_days) for every threshold n of the par_thresholds_days list in force on the month
-- end. PAR n = outstanding of credits with days past due > n (strictly: DPD exactly n is not at risk), in USD
-- at the month end's rate. product_family OD, TERM and ALL (both); segment_type PORTFOLIO (segment_value ALL),
-- BRANCH, OFFICER, CURRENCY, CUSTOMER_TYPE. A USD total is null when a position lacks the month end's rate
-- (never a silent partial sum). The marts pivot PAR 1, 30 and 90 into the published columns.
-- Aggregated per days-past-due value first, so the thresholds join a few hundred rows per segment, not every
-- account. Incremental by month end (macros/month_end_incremental.sql): a month close adds its own month end
-- (a re-delivered date redoes every later one); rebuilt in full it took 33 s a close at 100,000 x 365.
-- depends_on: {{ ref('stg_core_banking__branches') }}
{#- the pre-hook deletes every rebuilt month end, also one a re-delivery left without rows (delete+insert
    by unique key deletes only the month ends the new rows name) -#}
{{ config(
    materialized='incremental',
    unique_key=['month_end'],
    indexes=[{'columns': ['month_end']}],
    pre_hook="{% set since = month_end_rebuild_from() %}"
        ~ "{% if since %}delete from {{ this }} where month_end >= '{{ since }}'::date{% endif %}",
) }}

{% set from_date = month_end_rebuild_from() -%}

with exposures as (
    {{ rows_since_from_date(ref('int_quality__exposures_month_end'), from_date, 'month_end') }}
),

-- every exposure counts in its family and in ALL, and in every segment type
by_days_past_due as (
    select
        e.month_end,
        f.product_family,
        s.segment_type,
        s.segment_value,
        e.days_past_due,
        count(*) as accounts,
        sum(e.outstanding_usd) as outstanding_usd,
        bool_or(e.outstanding_usd is null) as outstanding_unknown,
        sum(e.provision_usd) as provision_usd,
        bool_or(e.provision_usd is null) as provision_unknown,
        max(e.load_id) as load_id
    from exposures as e
    cross join lateral (values (e.product_family), ('ALL')) as f (product_family)
    cross join
        lateral (
            values
            ('PORTFOLIO', 'ALL'),
            ('BRANCH', e.branch_code),
            ('OFFICER', e.officer_id),
            ('CURRENCY', e.currency),
            ('CUSTOMER_TYPE', e.customer_type)
        ) as s (segment_type, segment_value)
    group by 1, 2, 3, 4, 5
),

-- the list in force on the month end; a malformed entry fails the cast (and the build), never drops a level;
-- materialized, so the watermark subquery runs once per month end and threshold, not per row
thresholds as materialized (
    select
        m.month_end,
        trim(t.threshold)::integer as threshold_days,
        pv.parameter_version,
        {{ max_input_load_id('m.month_end') }} as max_input_load_id
    from (select distinct month_end from exposures) as m
    left join {{ ref('int_policy__parameter_versions') }} as pv
        on {{ join_policy_param('pv', 'par_thresholds_days', 'm.month_end') }}
    cross join lateral unnest(
        string_to_array(
            {{ required_policy_param('pv', 'par_thresholds_days', 'm.month_end', 'value_text') }},
            ','
        )
    ) as t (threshold)
)

select
    b.month_end,
    b.product_family,
    b.segment_type,
    b.segment_value,
    t.threshold_days,
    sum(b.accounts)::bigint as accounts,
    case when bool_or(b.outstanding_unknown) then null else sum(b.outstanding_usd) end as gross_outstanding_usd,
    case when bool_or(b.provision_unknown) then null else sum(b.provision_usd) end as provisions_usd,
    coalesce(sum(b.accounts) filter (where b.days_past_due > t.threshold_days), 0)::bigint as par_accounts,
    case
        when bool_or(b.outstanding_unknown) then null
        else coalesce(sum(b.outstanding_usd) filter (where b.days_past_due > t.threshold_days), 0)
    end as par_usd,
    t.parameter_version,
    max(b.load_id) as load_id,
    t.max_input_load_id
from by_days_past_due as b
inner join thresholds as t on b.month_end = t.month_end
group by
    b.month_end, b.product_family, b.segment_type, b.segment_value, t.threshold_days, t.parameter_version,
    t.max_input_load_id
