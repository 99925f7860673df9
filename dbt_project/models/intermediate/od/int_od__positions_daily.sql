-- One row per od_balances row (the fact grain): the day's drawn principal with the account's attributes
-- from that day's od_accounts snapshot and the customer's branch/officer from that day's customers snapshot
-- (left joins: a balance is never dropped, a missing snapshot row shows as nulls). The snapshots are joined as
-- versions, each balance to the version valid on its date (decision 0049): expanding them to one row per
-- account and date first cost a full build at 100,000 x 61 two hash joins of 6 and 9 million rows, spilled.
-- Incremental: whole business dates from the earliest date touched by a load newer than this table's
-- newest load_id (docs/policy-engine.md "Incremental builds"); unique_key business_date so a re-delivered
-- date replaces every row of that date, including accounts the re-delivery dropped.
-- depends_on: {{ ref('stg_core_banking__branches') }}
-- Planner hint (this transaction only): the staging keys are trim() expressions without statistics, so the
-- planner overestimates the (account, date) joins by orders of magnitude and picks merge joins that sort the
-- whole snapshot in every parallel worker; hash joins are 2-3x faster here.
{{ config(
    indexes=account_day_indexes(),
    meta={"partitioned_by_month": "business_date"},
    pre_hook="set local enable_mergejoin = off",
    post_hook="{{ ndistinct_statistics(['od_account_id', 'business_date', '(' ~ month_end_of('business_date') ~ ')']) }}",
) }}

{%- set from_date = daily_rebuild_from(ref('stg_core_banking__branches'), load_id_column='_load_id') %}

with balances as not materialized (
    {{ rows_since_from_date(ref('stg_core_banking__od_balances'), from_date) }}
),

accounts as (
    {{ versions_since_from_date(ref('stg_core_banking__od_account_versions'), from_date) }}
),

customers as (
    {{ versions_since_from_date(ref('stg_core_banking__customer_versions'), from_date) }}
),

{% if from_date -%}
-- the first loaded date of accounts already in this table, carried from the rows of the last date before the
-- rebuild (one date's rows: contiguous when dates are added one by one, scattered after a full build, which
-- writes in hash-join order); an account absent on that date (new, or back after a gap) costs one
-- index probe (coalesce evaluates it only then): 100,000 probes read 95,000 pages at 100,000 x 365.
-- Materialized so the probes run once, never once per joined row (see int_od__days_past_due_daily)
    previous_date_rows as materialized (
        select
            od_account_id,
            first_business_date
        from {{ this }}
        where
            business_date = (
                select max(business_date)
                from {{ this }}
                where business_date < '{{ from_date }}'::date
            )
    ),

    earlier_first_dates as materialized (
        select
            a.od_account_id,
            coalesce(
                previous.first_business_date,
                (
                    select min(t.business_date)
                    from {{ this }} as t
                    where t.od_account_id = a.od_account_id and t.business_date < '{{ from_date }}'::date
                )
            ) as first_business_date
        from (select distinct od_account_id from balances) as a
        left join previous_date_rows as previous on a.od_account_id = previous.od_account_id
    ),
{%- endif %}

-- materialized: computed once, where the planner put it inside every parallel worker (a pass over the
-- balances each)
first_in_batch as materialized (
    select
        od_account_id,
        min(business_date) as first_in_batch
    from balances
    group by od_account_id
),

-- each account version with its account's first date in the batch: a balance takes both in one join. Joined to
-- the balances on their own, the first dates cost a hash join of every balance (2.3 s of a 15 s full build at
-- 100,000 x 61); a balance without its account's version on its date (the door refuses a balance whose account
-- is not in that day's snapshot: hand-made data only) finds its first date by a scan of first_in_batch
accounts_with_first_dates as (
    select
        a.*,
        f.first_in_batch
    from accounts as a
    inner join first_in_batch as f on a.od_account_id = f.od_account_id
),

positions as (
    select
        b.od_account_id,
        b.business_date,
        a.customer_id,
        c.branch_code,
        c.officer_id,
        a.currency,
        a.limit_amount,
        b.principal_outstanding,
        b.interest_receivable,
        b.fees_receivable,
        -- greatest() ignores nulls: keep them null when the day's account snapshot is missing
        case when a.limit_amount is not null then greatest(b.principal_outstanding - a.limit_amount, 0) end
            as excess_amount,
        case when a.limit_amount is not null then greatest(a.limit_amount - b.principal_outstanding, 0) end
            as unutilized_amount,
        coalesce(
            a.start_date <= b.business_date
            and b.business_date <= a.maturity_date
            and a.status = 'ACTIVE'
            and (a.closed_on is null or b.business_date < a.closed_on),
            false
        ) as is_active,
        a.start_date,
        a.maturity_date,
        a.status,
        a.closed_on,
        a.monthly_interest_rate,
        a.excess_fee_rate_monthly,
        a.unutilized_fee_rate_annual,
        coalesce(
            a.first_in_batch,
            (
                select f.first_in_batch
                from first_in_batch as f
                where f.od_account_id = b.od_account_id
            )
        ) as first_in_batch,
        b._load_id as load_id
    from balances as b
    left join accounts_with_first_dates as a
        on b.od_account_id = a.od_account_id and {{ valid_on('a', 'b.business_date') }}
    left join customers as c
        on a.customer_id = c.customer_id and {{ valid_on('c', 'b.business_date') }}
)

-- the position columns named one by one, not p.*: every OD model reads this row; an input column added
-- upstream must not reach them unseen (int_monitoring__agent_days lists its own subset the same way)
select
    p.od_account_id,
    p.business_date,
    p.customer_id,
    p.branch_code,
    p.officer_id,
    p.currency,
    p.limit_amount,
    p.principal_outstanding,
    p.interest_receivable,
    p.fees_receivable,
    p.excess_amount,
    p.unutilized_amount,
    p.is_active,
    p.start_date,
    p.maturity_date,
    p.status,
    p.closed_on,
    p.monthly_interest_rate,
    p.excess_fee_rate_monthly,
    p.unutilized_fee_rate_annual,
    {% if from_date -%}
        least(p.first_in_batch, e.first_business_date) as first_business_date,
    {%- else -%}
        p.first_in_batch as first_business_date,
    {%- endif %}
    p.load_id
from positions as p
-- (noqa ST11: sqlfluff lints this branch without the CTE it joins)
{% if from_date -%}
    left join earlier_first_dates as e on p.od_account_id = e.od_account_id  -- noqa: ST11
{%- endif %}
