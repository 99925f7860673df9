-- Daily accruals of every position (rulebook B and C), unrounded (scale 20, never below 10):
--   interest          = P x monthly_interest_rate / days_per_month x w(d)            every day P > 0
--   unutilized fee    = max(L - P, 0) x unutilized_fee_rate_annual / days_per_year x w(d)  only while active
--   excess fee        = max(P - L, 0) x excess_fee_rate_monthly / days_per_month x w(d)
-- The rates are the account's contractual rates (od_accounts snapshot of the day); the convention and the
-- divisors (interest_days_per_month = 30, interest_days_per_year = 360) are policy parameters in force on
-- the day, resolved once per calendar day; the weights w(d) of 30E/360 and ACT/360 are in macros/accruals.sql.
-- A view (decision 0043): a day's accruals are a function of its position row and the parameters in force, so
-- they are computed as they are read; a reader's date or account condition reaches the positions' indexes.
{{ config(materialized='view', meta={'rebuilt_by_date': true}) }}

select
    p.od_account_id,
    p.business_date,
    p.currency,
    {{ accrual_columns('p', 'w') }},
    p.load_id
from {{ ref('int_od__positions_daily') }} as p
inner join (
    {{ day_count_weights(ref('int_od__positions_daily'), ref('int_policy__parameter_versions')) }}
) as w on p.business_date = w.business_date
