-- The graded loan portfolio at each loaded month end (rulebook K), one row per OD account or term loan in
-- gross outstanding: the rows of int_portfolio__positions_month_end that count as portfolio accounts (an OD
-- drawn or active, an ACTIVE term loan), less written-off ODs (rulebook J: a write-off leaves gross
-- outstanding and provisions from its date), with the segments PAR is cut by: the customer's branch, officer
-- and type from the customers snapshot of the month end (the same snapshot the OD rows were routed with), and
-- the account currency. The common input of the PAR and grade-migration marts.
-- Incremental by month end (macros/month_end_incremental.sql): a month close adds its own month end (a
-- re-delivered date redoes every later one); rebuilt in full it took 24 s a close at 100,000 x 365.
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

with positions as (
    select * from ({{ rows_since_from_date(ref('int_portfolio__positions_month_end'), from_date, 'month_end') }}) as p
    where in_portfolio
),

-- the incremental watermark, once per month end: materialized, or the subquery ran once per row
month_ends as materialized (
    select
        month_end,
        {{ max_input_load_id('month_end') }} as max_input_load_id
    from (select distinct month_end from positions) as m
),

od_status as (
    select
        od_account_id,
        business_date as month_end,
        status
    from {{ ref('int_od__positions_daily') }}
    where
        business_date = any(array({{ loaded_month_ends() }}))
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
),

customers as (
    select
        customer_id,
        business_date,
        customer_type,
        branch_code,
        officer_id
    from {{ ref('stg_core_banking__customers') }}
    where
        business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
)

select
    p.month_end,
    p.product_family,
    p.account_id,
    p.customer_id,
    coalesce(c.branch_code, 'UNKNOWN') as branch_code,
    coalesce(c.officer_id, 'UNKNOWN') as officer_id,
    p.currency,
    coalesce(c.customer_type, 'UNKNOWN') as customer_type,
    p.days_past_due,
    p.nbc_grade,
    p.grade_order,
    p.outstanding_usd,
    p.provision_usd,
    p.load_id,
    m.max_input_load_id
from positions as p
inner join month_ends as m on p.month_end = m.month_end
left join od_status as s
    on p.product_family = 'OD' and p.account_id = s.od_account_id and p.month_end = s.month_end
left join customers as c on p.customer_id = c.customer_id and p.month_end = c.business_date
where s.status is distinct from 'WRITTEN_OFF'
