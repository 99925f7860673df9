-- The graded loan portfolio at each loaded month end (rulebook K), one row per OD account or term loan in
-- gross outstanding: the rows of int_portfolio__positions_month_end that count as portfolio accounts (an OD
-- drawn or active, an ACTIVE term loan), less written-off ODs (rulebook J: a write-off leaves gross
-- outstanding and provisions from its date), with the segments PAR is cut by: the customer's branch, officer
-- and type from the customers snapshot of the month end (the same snapshot the OD rows were routed with), and
-- the account currency. The common input of the PAR and grade-migration marts.
-- Rebuilt in full at each month close (a few rows per account and month end).
with positions as (
    select * from {{ ref('int_portfolio__positions_month_end') }}
    where in_portfolio
),

od_status as (
    select
        od_account_id,
        business_date as month_end,
        status
    from {{ ref('int_od__positions_daily') }}
    where business_date = any(array({{ loaded_month_ends() }}))
),

customers as (
    select
        customer_id,
        business_date,
        customer_type,
        branch_code,
        officer_id
    from {{ ref('stg_core_banking__customers') }}
    where business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
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
    p.load_id
from positions as p
left join od_status as s
    on p.product_family = 'OD' and p.account_id = s.od_account_id and p.month_end = s.month_end
left join customers as c on p.customer_id = c.customer_id and p.month_end = c.business_date
where s.status is distinct from 'WRITTEN_OFF'
