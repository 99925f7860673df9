-- Social-performance exceptions for the monthly review list (rulebook I; docs/policy-engine.md I), one row per
-- (month_end, subject, reason), routed to the customer's officer and branch in the month end's customers snapshot
-- (rpt_review_list adds the officer's chain and the USD amount). Application reasons carry the application id
-- as od_account_id (decision 0014) and belong to the month of the decision; only approved applications count.
{#- "USD 1,234.56" / "KHR 1,234,567": money.replace('AMOUNT', <sql>) with the row's currency in currency -#}
{%- set money = "(currency || ' ' || to_char(AMOUNT, case when currency = 'KHR' then 'FM999,999,999,999,990'"
    ~ " else 'FM999,999,999,999,990.00' end))" %}

with exceptions as (
    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        application_id as od_account_id,
        'ES_SCREENING' as reason,
        customer_id,
        currency as ccy,
        amount,
        'E&S ' || exception || ': ' || coalesce(es_risk, 'not') || ' rated, '
        || {{ money.replace('AMOUNT', 'amount') }} || ' applied on ' || applied_on
        || ' (KHR ' || to_char(amount_khr, 'FM999,999,999,999,990') || ' at that day''s rate)' as detail,
        jsonb_build_object(
            'exception', exception, 'es_risk', es_risk, 'amount', amount::text, 'applied_on', applied_on,
            'amount_khr', amount_khr::text
        ) as detail_params,
        parameter_version,
        load_id
    from {{ ref('fct_es_screening') }}
    where decision = 'APPROVED' and exception is not null

    union all

    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        application_id as od_account_id,
        'EXCLUSION' as reason,
        customer_id,
        currency as ccy,
        amount,
        'Approved excluded activity ' || purpose_activity || ' (' || activity_name || '); legal basis: '
        || legal_basis as detail,
        jsonb_build_object(
            'activity', purpose_activity, 'activity_name', activity_name, 'legal_basis', legal_basis
        ) as detail_params,
        'activity_exclusion_list' as parameter_version,
        load_id
    from {{ ref('fct_exclusion_breaches') }}

    union all

    select
        (date_trunc('month', decided_on) + interval '1 month - 1 day')::date as month_end,
        application_id as od_account_id,
        'OVER_INDEBTEDNESS' as reason,
        customer_id,
        currency as ccy,
        amount,
        exception || ': debt service ratio ' || coalesce(debt_service_ratio::text, 'not recorded')
        || ' (limit ' || max_dsr || ')'
        || case when cbc_checked then '' else ', approved without a CBC check' end as detail,
        jsonb_build_object(
            'exception', exception, 'debt_service_ratio', debt_service_ratio::text, 'max_dsr', max_dsr::text,
            'cbc_checked', cbc_checked
        ) as detail_params,
        parameter_version,
        load_id
    from {{ ref('fct_over_indebtedness') }}

    union all

    select
        month_end,
        od_account_id,
        'PRICING' as reason,
        customer_id,
        currency as ccy,
        principal_outstanding as amount,
        'Monthly rate ' || trim_scale(monthly_interest_rate * 100) || '% = ' || trim_scale(annual_rate * 100)
        || '% a year, above the NBC ceiling of ' || trim_scale(rate_ceiling_annual * 100) || '%' as detail,
        jsonb_build_object(
            'monthly_rate', monthly_interest_rate::text, 'annual_rate', annual_rate::text,
            'ceiling', rate_ceiling_annual::text
        ) as detail_params,
        parameter_version,
        load_id
    from {{ ref('fct_pricing_exceptions') }}
)

select
    e.month_end,
    e.od_account_id,
    e.reason,
    e.customer_id,
    c.officer_id,
    c.branch_code,
    e.ccy,
    e.amount,
    e.detail,
    e.detail_params,
    e.parameter_version,
    e.load_id
from exceptions as e
-- the customers snapshots of the month ends only (an array of dates reaches meta.loads' index before the
-- change history is expanded; joined directly, every customer was expanded to every loaded date first)
left join (
    select
        customer_id,
        business_date,
        officer_id,
        branch_code
    from {{ ref('stg_core_banking__customers') }}
    where business_date = any(array(select distinct x.month_end from exceptions as x))
) as c
    on e.customer_id = c.customer_id and e.month_end = c.business_date
