-- One row per (wave, surveyed client), rulebook I: a survey re-delivered later replaces the earlier delivery
-- (latest delivery of a survey_id wins); a client surveyed twice in a wave counts once, with the latest survey.
-- Province and customer type come from the customers and branches snapshots of the survey's delivery date
-- (the client's branch when the survey reached the warehouse). Complete months only: the deliveries up to the
-- last complete month end (macros/last_complete_month_end.sql; a survey counts from its delivery, as waves settle).
with surveys as (
    select distinct on (survey_id) *
    from {{ ref('stg_core_banking__ppi_surveys') }}
    where business_date <= {{ last_complete_month_end() }}
    order by survey_id asc, business_date desc, _load_id desc
),

per_client as (
    select distinct on (wave, customer_id) *
    from surveys
    order by wave asc, customer_id asc, survey_date desc, survey_id desc
)

select
    s.wave,
    s.customer_id,
    s.survey_id,
    s.survey_date,
    s.ppi_score,
    s.poverty_likelihood,
    s.business_date as delivered_on,
    coalesce(b.province, 'UNKNOWN') as province,
    coalesce(c.customer_type, 'UNKNOWN') as customer_type,
    s._load_id as load_id
from per_client as s
-- the customers snapshots of the delivery dates only: the dates as an array reach meta.loads' index before
-- the change history is expanded (joined directly, every customer was expanded to every loaded date first:
-- 52 M rows at 100,000 x 365)
left join (
    select
        customer_id,
        business_date,
        branch_code,
        customer_type
    from {{ ref('stg_core_banking__customers') }}
    where business_date = any(array(select distinct d.business_date from per_client as d))
) as c
    on s.customer_id = c.customer_id and s.business_date = c.business_date
left join {{ ref('stg_core_banking__branches') }} as b
    on c.branch_code = b.branch_code and c.business_date = b.business_date
