-- Client complaints as known at the last complete month end (rulebook I; macros/last_complete_month_end.sql),
-- one row per complaint: of the deliveries up to that month end, the latest wins (a complaint is delivered when
-- received and again when resolved), so a resolution delivered in an open month leaves the complaint open.
select distinct on (complaint_id)
    complaint_id,
    customer_id,
    received_on,
    channel,
    category,
    resolved_on,
    business_date as delivered_on,
    _load_id as load_id
from {{ ref('stg_core_banking__complaints') }}
where business_date <= {{ last_complete_month_end() }}
order by complaint_id asc, business_date desc
