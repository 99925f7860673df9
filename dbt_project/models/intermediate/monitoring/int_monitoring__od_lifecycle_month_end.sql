-- Facility lifecycle events the month's review list shows (rulebook J; docs/policy-engine.md J), one row per
-- account and reason, read from the od_accounts snapshot of each loaded month end (it keeps closed and
-- converted facilities with their status and closed_on):
--   CONVERTED            converted to a term loan during the month (status CONVERTED, closed_on in the month),
--                        listed next to the open conversion candidates; amount = the core's SETTLEMENT credit
--                        on the conversion date (the exposure the OD_CONVERTED loan took over)
--   CLOSED_WITH_BALANCE  status CLOSED on the month end while the extract still shows principal, interest or
--                        fees outstanding: a data error to report, never hidden; amount = that total
--   WRITTEN_OFF          written off during the month (int_quality__write_offs_month_end), listed once: from its
--                        date the OD leaves the book and gets no other reason (decision 0028); amount = the
--                        principal of the day before (null when that day is not loaded), routed by the
--                        officer of the account's last loaded day (it may be gone from the month end's extract)
-- Routed like the other reasons by rpt_review_list (the customer's officer of the month end).
{{ config(materialized='table', tags=['month_end']) }}

{%- set money = "(currency || ' ' || to_char(AMOUNT, case when currency = 'KHR' then 'FM999,999,999,999,990'"
    ~ " else 'FM999,999,999,999,990.00' end))" %}

with month_ends as (
    select distinct month_end from {{ ref('fct_od_month_end') }}
),

-- the month ends' rows only (index on the business date), not the daily history
positions as (
    select
        *,
        principal_outstanding + coalesce(interest_receivable, 0) + coalesce(fees_receivable, 0)
            as total_outstanding
    from {{ ref('int_od__positions_daily') }}
    where business_date = any(array(select month_end from month_ends))
),

converted as (
    select *
    from positions
    where
        status = 'CONVERTED'
        and closed_on > (date_trunc('month', business_date) - interval '1 day')::date
        and closed_on <= business_date
),

settlements as (
    select
        c.od_account_id,
        sum(t.signed_amount) as settled
    from converted as c
    inner join {{ ref('int_od__transactions_classified') }} as t
        on c.od_account_id = t.od_account_id and c.closed_on = t.business_date and t.flow_class = 'SETTLEMENT'
    group by c.od_account_id
),

-- the OD write-offs of the loaded month ends with the account's last loaded day up to the month end (its
-- officer and customer; one index probe per write-off: the account may be gone from the month end's extract)
written_off as (
    select
        w.month_end,
        w.written_off_on,
        w.amount_written_off,
        d.*
    from {{ ref('int_quality__write_offs_month_end') }} as w
    cross join
        lateral (
            select x.*
            from {{ ref('int_od__positions_daily') }} as x
            where x.od_account_id = w.account_id and x.business_date <= w.month_end
            order by x.business_date desc
            limit 1
        ) as d
    where w.product_family = 'OD' and w.month_end in (select m.month_end from month_ends as m)
),

-- the OD_CONVERTED loan the core opened (source_od_account_id), in the month end's loans snapshot
term_loans as (
    select
        source_od_account_id,
        business_date,
        min(loan_id) as loan_id
    from {{ ref('stg_core_banking__loans') }}
    where business_date = any(array(select month_end from month_ends)) and source_od_account_id is not null
    group by source_od_account_id, business_date
)

select
    c.business_date as month_end,
    c.od_account_id,
    'CONVERTED' as reason,
    c.customer_id,
    c.officer_id,
    c.branch_code,
    c.currency as ccy,
    s.settled as amount,
    'Converted on ' || c.closed_on || ' to term loan ' || coalesce(l.loan_id, '(not in the loans snapshot)')
    || coalesce(', settled ' || {{ money.replace('AMOUNT', 's.settled') }}, ', no settlement credit loaded')
    || ' by the core (no customer repayment); graded from the loans extract from that date' as detail,
    jsonb_build_object('closed_on', c.closed_on, 'loan_id', l.loan_id, 'settled', s.settled::text) as detail_params,
    null::text as parameter_version,
    c.load_id
from converted as c
left join settlements as s on c.od_account_id = s.od_account_id
left join term_loans as l on c.od_account_id = l.source_od_account_id and c.business_date = l.business_date

union all

select
    business_date as month_end,
    od_account_id,
    'CLOSED_WITH_BALANCE' as reason,
    customer_id,
    officer_id,
    branch_code,
    currency as ccy,
    total_outstanding as amount,
    'Data error: closed on ' || coalesce(closed_on::text, '(no closed_on)') || ' but the extract shows principal '
    || {{ money.replace('AMOUNT', 'principal_outstanding') }}
    || ', interest ' || {{ money.replace('AMOUNT', 'coalesce(interest_receivable, 0)') }}
    || ', fees ' || {{ money.replace('AMOUNT', 'coalesce(fees_receivable, 0)') }} as detail,
    jsonb_build_object(
        'closed_on', closed_on, 'principal', principal_outstanding::text,
        'interest', coalesce(interest_receivable, 0)::text, 'fees', coalesce(fees_receivable, 0)::text
    ) as detail_params,
    null::text as parameter_version,
    load_id
from positions
where status = 'CLOSED' and total_outstanding > 0

union all

select
    month_end,
    od_account_id,
    'WRITTEN_OFF' as reason,
    customer_id,
    officer_id,
    branch_code,
    currency as ccy,
    amount_written_off as amount,
    'Written off on ' || written_off_on || coalesce(
        ', principal ' || {{ money.replace('AMOUNT', 'amount_written_off') }} || ' the day before',
        ' (the day before is not loaded)'
    ) || '; off the books from that date' as detail,
    jsonb_build_object('written_off_on', written_off_on, 'principal', amount_written_off::text) as detail_params,
    null::text as parameter_version,
    load_id
from written_off
