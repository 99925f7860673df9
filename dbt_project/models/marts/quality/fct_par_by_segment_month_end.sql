-- Portfolio at risk by segment at each loaded month end (rulebook K: "also by branch, officer, currency and
-- customer type"), one row per (month_end, product_family, segment_type, segment_value) with at least one
-- account: segment_type BRANCH, OFFICER (the customer's branch and officer in the month end's customers
-- snapshot), CURRENCY (account currency), CUSTOMER_TYPE (AGENT, SME, MSME, RETAIL); UNKNOWN when the snapshot
-- lacks the customer. Same measures as fct_par_month_end; the segments of a type add up to its PORTFOLIO row.
-- Rebuilt in full at each month close. Choices: docs/policy-engine.md K.
select
    month_end::date as month_end,
    product_family::text as product_family,
    segment_type::text as segment_type,
    segment_value::text as segment_value,
    {{ par_columns() }}
from {{ ref('int_quality__par_month_end') }}
where segment_type <> 'PORTFOLIO'
group by month_end, product_family, segment_type, segment_value
