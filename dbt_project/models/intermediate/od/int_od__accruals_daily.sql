-- Daily accruals of every position (rulebook B and C), unrounded (scale 20, never below 10):
--   interest          = P x monthly_interest_rate / days_per_month x w(d)            every day P > 0
--   unutilized fee    = max(L - P, 0) x unutilized_fee_rate_annual / days_per_year x w(d)  only while active
--   excess fee        = max(P - L, 0) x excess_fee_rate_monthly / days_per_month x w(d)
-- The rates are the account's contractual rates (od_accounts snapshot of the day); the convention and the
-- divisors (interest_days_per_month = 30, interest_days_per_year = 360) are policy parameters in force on
-- the day, resolved once per distinct date. 30E/360 weight, with p = interest_days_per_month: days after
-- the p-th weigh 0 (day 31), the last day of a month shorter than p weighs p + 1 - days_in_month (28 Feb:
-- 3, 29 Feb: 2), every other day 1. ACT/360: every day 1.
{{ config(indexes=account_day_indexes()) }}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) %}

with positions as (
    {{ rows_since_from_date(ref('int_od__positions_daily'), from_date) }}
),

parameters as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name in ('day_count_convention', 'interest_days_per_month', 'interest_days_per_year')
),

-- a separate (index-only) scan, so the positions CTE stays inlined instead of spooled to disk
dates as (
    select distinct business_date from {{ ref('int_od__positions_daily') }}
    {% if from_date %}where business_date >= '{{ from_date }}'::date{% endif %}
),

-- one row per date: the parameters in force (a missing parameter fails the query, never yields null)
day_count as (
    select
        d.business_date,
        {{ required_policy_param('conv', 'day_count_convention', 'd.business_date', 'value_text') }} as convention,
        {{ required_policy_param('per_month', 'interest_days_per_month', 'd.business_date') }} as days_per_month,
        {{ required_policy_param('per_year', 'interest_days_per_year', 'd.business_date') }} as days_per_year,
        conv.parameter_version,
        extract(day from d.business_date)::int as day_of_month,
        extract(day from date_trunc('month', d.business_date) + interval '1 month - 1 day')::int
            as days_in_month
    from dates as d
    left join parameters as conv
        on {{ join_policy_param('conv', 'day_count_convention', 'd.business_date') }}
    left join parameters as per_month
        on {{ join_policy_param('per_month', 'interest_days_per_month', 'd.business_date') }}
    left join parameters as per_year
        on {{ join_policy_param('per_year', 'interest_days_per_year', 'd.business_date') }}
),

weights as (
    select
        business_date,
        days_per_month,
        days_per_year,
        parameter_version,
        case
            when convention = 'ACT/360' then 1
            when convention = '30E/360'
                then
                    case
                        when day_of_month > days_per_month then 0
                        when day_of_month = days_in_month and days_in_month < days_per_month
                            then days_per_month + 1 - days_in_month
                        else 1
                    end
            else ('unknown day_count_convention ' || convention || ' on ' || business_date)::int
        end::numeric as day_weight
    from day_count
)

select
    p.od_account_id,
    p.business_date,
    p.currency,
    w.day_weight,
    -- multiply first (exact), cast to scale 20, divide once: the quotient keeps 20 decimals; trim_scale only
    -- drops trailing zeros (1.5, not 1.50000000000000000000), the value is unchanged
    trim_scale(
        (p.principal_outstanding * p.monthly_interest_rate * w.day_weight)::numeric(38, 20) / w.days_per_month
    ) as interest_accrued,
    case
        when p.is_active
            then trim_scale(
                (p.unutilized_amount * p.unutilized_fee_rate_annual * w.day_weight)::numeric(38, 20)
                / w.days_per_year
            )
        else 0
    end as unutilized_fee_accrued,
    trim_scale(
        (p.excess_amount * p.excess_fee_rate_monthly * w.day_weight)::numeric(38, 20) / w.days_per_month
    ) as excess_fee_accrued,
    w.parameter_version,
    p.load_id
from positions as p
inner join weights as w on p.business_date = w.business_date
