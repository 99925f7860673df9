-- Responsible pricing (rulebook I, client protection principle 4): one row per OD account and loaded month
-- end whose nominal annual rate (monthly_interest_rate x 12) is above nbc_interest_rate_ceiling_annual in
-- force on the month end (exactly at the ceiling is within it), for accounts active or still drawn then,
-- with the account's officer. The term-loan extract carries no rate, so only overdrafts are checked.
with month_end as (
    select * from {{ ref('fct_od_month_end') }}
    where is_active or principal_outstanding > 0
),

ceiling as (
    select
        m.month_end,
        {{ policy_param('nbc_interest_rate_ceiling_annual', 'm.month_end') }} as rate_ceiling_annual,
        {{ policy_param_version('nbc_interest_rate_ceiling_annual', 'm.month_end') }} as parameter_version
    from (select distinct month_end from month_end) as m
),

-- the month ends' snapshots only: the dates as an array reach meta.loads' index before the change history is
-- expanded (unfiltered, every account was expanded to every loaded date first)
accounts as (
    select * from {{ ref('stg_core_banking__od_accounts') }}
    where business_date = any(array(select c.month_end from ceiling as c))
),

priced as (
    select
        me.month_end,
        me.od_account_id,
        me.customer_id,
        me.branch_code,
        me.officer_id,
        me.currency,
        me.limit_amount,
        me.principal_outstanding,
        a.monthly_interest_rate,
        a.monthly_interest_rate * 12 as annual_rate,
        c.rate_ceiling_annual,
        c.parameter_version,
        me.load_id
    from month_end as me
    inner join accounts as a on me.od_account_id = a.od_account_id and me.month_end = a.business_date
    inner join ceiling as c on me.month_end = c.month_end
)

select * from priced
where annual_rate > rate_ceiling_annual
