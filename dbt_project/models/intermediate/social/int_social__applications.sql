-- Decided loan applications (rulebook I), one row per application: the latest delivery of an application_id
-- wins (a corrected re-delivery replaces it). amount_khr is the amount at the NBC rate of the application date
-- (rulebook A: amount x khr_per_unit). An application made before the warehouse's first loaded date has no
-- rate on its date: it takes the first loaded rate after it (fx_rate_date says which date was used), so every
-- decided application is classified. Complete months only (macros/last_complete_month_end.sql): the deliveries
-- up to the last complete month end, and of them the applications decided by it (the decision date places an
-- application in its month, as the reports count it), so a build on 10 March holds what the February close held.
-- docs/policy-engine.md I.
with applications as (
    select distinct on (application_id) *
    from {{ ref('stg_core_banking__loan_applications') }}
    where business_date <= {{ last_complete_month_end() }}
    order by application_id asc, business_date desc, _load_id desc
),

fx as (
    select * from {{ ref('int_fx__rates_daily') }}
)

select
    a.application_id,
    a.customer_id,
    a.applied_on,
    a.decided_on,
    a.decision,
    a.currency,
    a.amount,
    a.amount * rate.khr_per_unit as amount_khr,
    rate.business_date as fx_rate_date,
    a.purpose_activity,
    coalesce(a.business_purpose, false) as business_purpose,
    coalesce(a.es_screened, false) as es_screened,
    a.es_risk,
    coalesce(a.es_contract_signed, false) as es_contract_signed,
    coalesce(a.es_mitigation_plan, false) as es_mitigation_plan,
    a.debt_service_ratio,
    coalesce(a.cbc_checked, false) as cbc_checked,
    a.business_date as delivered_on,
    a._load_id as load_id
from applications as a
left join lateral (
    -- the application date's rate; else the nearest earlier loaded date; else the first loaded date after it
    select
        fx.business_date,
        fx.khr_per_unit
    from fx
    where fx.currency = a.currency
    order by
        fx.business_date > a.applied_on,
        abs(fx.business_date - a.applied_on)
    limit 1
) as rate on true
where a.decision in ('APPROVED', 'REJECTED') and a.decided_on <= {{ last_complete_month_end() }}
