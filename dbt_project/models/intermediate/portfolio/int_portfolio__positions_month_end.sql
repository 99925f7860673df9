-- The loan portfolio at each loaded month end, one row per OD account or term loan, in USD at the month
-- end's NBC rate (rulebook A, F, G): the common input of fct_portfolio_month_end and
-- fct_grade_distribution_month_end. A view: the marts filter it by month_end and PostgreSQL pushes that down.
-- OD: every fct_od_month_end row; it counts as an account of the portfolio while drawn or active. An OD whose
-- month-end snapshot says CONVERTED or WRITTEN_OFF is out (rulebook J): a converted OD's exposure is its term
-- loan's (counted once, graded from the loans extract), a written-off one leaves gross outstanding and
-- provisions, whatever balance the extract still shows. A CLOSED OD with a balance stays (a data error,
-- reported by the review list, never hidden).
-- TERM: ACTIVE loans of the loans snapshot on the month end, converted ODs (OD_CONVERTED) included: once
-- converted they are term loans (the OD itself is closed). Provisions in USD are rounded to the cent per
-- account, from the unrounded amount (rulebook A). Choices: docs/policy-engine.md G.
{{ config(materialized='view') }}

with od_month_end as (
    select o.*
    from {{ ref('fct_od_month_end') }} as o
    -- the month ends' rows only (the index on the business date): a mart's month_end condition reaches this
    -- join, but an unfiltered read (the exposures of every month end) would hash the whole daily history
    left join (
        select
            od_account_id,
            business_date,
            status
        from {{ ref('int_od__positions_daily') }}
        where business_date = any(array({{ loaded_month_ends() }}))
    ) as p
        on o.od_account_id = p.od_account_id and o.month_end = p.business_date
    where p.status is null or p.status not in ('CONVERTED', 'WRITTEN_OFF')
),

term_loans as (
    select * from {{ ref('int_grading__term_loan_grades') }}
    where
        status = 'ACTIVE'
        and business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
),

fx as (
    select * from {{ ref('int_fx__rates_daily') }}
),

usd_rounding_units as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name = 'rounding_unit_usd'
)

select
    'OD' as product_family,
    o.od_account_id as account_id,
    o.month_end,
    o.customer_id,
    o.currency,
    o.days_past_due,
    o.nbc_grade,
    o.grade_order,
    o.principal_outstanding as outstanding,
    o.principal_outstanding_usd as outstanding_usd,
    o.provision_amount_usd as provision_usd,
    o.principal_outstanding > 0 or coalesce(o.is_active, false) as in_portfolio,
    o.load_id
from od_month_end as o

union all

select
    'TERM' as product_family,
    t.loan_id as account_id,
    t.business_date as month_end,
    t.customer_id,
    t.currency,
    t.days_past_due,
    t.nbc_grade,
    t.grade_order,
    t.outstanding_principal as outstanding,
    -- USD needs no rate; another currency without the month end's rate stays null (flagged by the marts)
    case
        when t.currency = 'USD' then t.outstanding_principal
        else {{ to_usd('t.outstanding_principal', 'fx') }}
    end as outstanding_usd,
    -- a provision's USD equivalent: from the unrounded provision, rounded to the cent (rulebook A)
    {{ round_to_unit(
        "case when t.currency = 'USD' then t.provision_rate * t.outstanding_principal else "
        ~ to_usd('t.provision_rate * t.outstanding_principal', 'fx') ~ " end",
        required_rounding_unit('u.value', "'USD'", 't.business_date'),
    ) }} as provision_usd,
    true as in_portfolio,
    t.load_id
from term_loans as t
left join fx on t.business_date = fx.business_date and t.currency = fx.currency
left join usd_rounding_units as u on {{ join_rounding_unit('u', "'USD'", 't.business_date') }}
