-- Month-end charges per account and month (rulebook C): the sum of the month's unrounded day values,
-- rounded half away from zero to the currency's rounding unit in force on the month end, next to what the
-- core system posted in the month (INTEREST_CHARGE, FEE_CHARGE; a charge cancelled by a reversal counts in
-- neither month, whichever dates they fall on). A break is a difference above one rounding unit.
-- A month still in progress has a row too (month_end_loaded = false): its sums are month to date.
-- Incremental, by whole months: every account of the months from the earliest date a newer load touched; an
-- earlier month a newer load reaches only through a transaction dated in it (a reversal of one of its charges)
-- is recomputed for those accounts alone, its other rows carried over as they are (at 100,000 accounts a
-- reversal on the 2nd re-aggregated the whole previous month: 9 s of the day's build). When no date on or after
-- the earliest newly loaded one was loaded before (each morning's case; not a re-delivery, even of the newest
-- date), the month to date is carried forward and only the new dates' accruals are added: they are computed as they are
-- read (decision 0043), and recomputing the month's would cost a date at 100,000 accounts about 5 s late in the
-- month.
-- depends_on: {{ ref('stg_meta__loads') }}
{{ config(
    unique_key=['month_end'],
    indexes=account_month_end_indexes(),
) }}

{%- set from_month = none -%}
{%- set carry_from = none -%}
{%- if is_incremental() -%}
    {%- set watermark = load_watermark() -%}
    {%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) -%}
    {%- set from_month = from_date[:8] ~ '01' if from_date != 'infinity' else from_date -%}
    {%- set carry_from = month_to_date_carried_from(ref('stg_meta__loads'), from_date, watermark) -%}
{%- endif %}

with
{% if from_month -%}
-- earlier months a newer load reaches through a transaction dated in them, with the accounts concerned
    reopened as materialized (
        select distinct
            od_account_id,
            date_trunc('month', original_business_date)::date as month_start,
            (date_trunc('month', original_business_date) + interval '1 month - 1 day')::date as month_end
        from {{ ref('int_od__transactions_classified') }}
        where load_id > {{ watermark }} and original_business_date < '{{ from_month }}'::date
    ),

    -- those months' other rows, as they are
    carried_over as (
        select c.*
        from {{ this }} as c
        where
            c.month_end in (select r.month_end from reopened as r)
            and not exists (
                select from reopened as r
                where r.od_account_id = c.od_account_id and r.month_end = c.month_end
            )
    ),
{%- endif %}

-- read twice (the month sums, and the rows of a month whose day-count convention changed after its first day):
-- each reader's conditions reach the positions' partitions and indexes
accruals as not materialized (
    {% if from_month -%}
        {{ rows_from_month_or_reopened(ref('int_od__accruals_daily'), 'business_date', carry_from or from_month) }}
    {%- else -%}
        select * from {{ ref('int_od__accruals_daily') }}
    {%- endif %}
),

transactions as (
    {% if from_month -%}
        {{ rows_from_month_or_reopened(ref('int_od__transactions_classified'), 'original_business_date', from_month) }}
    {%- else -%}
        select * from {{ ref('int_od__transactions_classified') }}
    {%- endif %}
),

-- only the three columns a posted charge needs (its currency): the positions row is wide, not *
positions as not materialized (
    select
        od_account_id,
        business_date,
        currency
    from {{ ref('int_od__positions_daily') }}
),

parameters as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name like 'rounding\_unit\_%'
),

loaded as (  -- the newest loaded date, read from the business_date index
    select max(business_date) as last_loaded_date from {{ ref('int_od__positions_daily') }}
),

{% if carry_from -%}
-- the sums of the month's dates before carry_from, as they were summed (unrounded), and their day-count
-- versions one per row (parameter_version lists the rounding version, then the day-count versions)
-- (noqa ST03: sqlfluff renders this branch without the one that reads it)
    month_to_date as (  -- noqa: ST03
        select
            od_account_id,
            month_end,
            currency,
            interest_accrued,
            unutilized_fee_accrued,
            excess_fee_accrued,
            null as parameter_version,
            load_id
        from {{ this }}
        where month_end = '{{ from_month }}'::date + interval '1 month - 1 day'
        union all
        select
            c.od_account_id,
            c.month_end,
            null as currency,
            0 as interest_accrued,
            0 as unutilized_fee_accrued,
            0 as excess_fee_accrued,
            v.version as parameter_version,
            null as load_id
        from {{ this }} as c
        cross join lateral unnest(string_to_array(c.parameter_version, ',')) as v (version)
        where
            c.month_end = '{{ from_month }}'::date + interval '1 month - 1 day'
            and v.version like 'day\_count\_convention@%'
    ),
{%- endif %}

-- The month sums are aggregated in the parallel workers (each sums its share, the leader adds the shares up: at
-- 100,000 x 61 the full build 11.3 -> 8.4 s), so every aggregate has a combining step: string_agg(distinct) has
-- none, so an account's day-count versions are its min() and max(), one version in nearly every month; a month
-- where some account's differ (changed_months, a convention changed after its first day) gets its accounts'
-- versions listed by a second aggregation of its rows alone (multi_versions). The month end is written on a
-- timestamp without time zone (immutable): the positions' statistics on (od_account_id, that month end) tell
-- the planner how few groups there are.
accrued as (
    select
        od_account_id,
        month_end,
        max(currency) as currency,
        sum(interest_accrued) as interest_accrued,
        sum(unutilized_fee_accrued) as unutilized_fee_accrued,
        sum(excess_fee_accrued) as excess_fee_accrued,
        min(parameter_version) as first_day_count_version,
        max(parameter_version) as last_day_count_version,
        max(load_id) as load_id
    from (
        select
            od_account_id,
            {{ month_end_of('business_date') }} as month_end,
            currency,
            interest_accrued,
            unutilized_fee_accrued,
            excess_fee_accrued,
            parameter_version,
            load_id
        from accruals
        {% if carry_from -%}
            union all
            select * from month_to_date
        {%- endif %}
    ) as day_values
    group by 1, 2
),

-- the months in which an account's days have more than one day-count version (usually none)
changed_months as (
    select distinct month_end
    from accrued
    where first_day_count_version <> last_day_count_version
),

-- each account's day-count versions in those months, listed as the month's rows give them
multi_versions as (
    select
        od_account_id,
        month_end,
        string_agg(distinct parameter_version, ',') as day_count_versions
    from (
        select
            od_account_id,
            {{ month_end_of('business_date') }} as month_end,
            parameter_version
        from accruals
        -- none usually: the bounds are null, and the positions' partitions are pruned as the query starts
        where
            business_date >= (select min(date_trunc('month', month_end::timestamp))::date from changed_months)
            and business_date <= (select max(month_end) from changed_months)
        {% if carry_from -%}
            union all
            select
                od_account_id,
                month_end,
                parameter_version
            from month_to_date
        {%- endif %}
    ) as month_rows
    where month_end in (select c.month_end from changed_months as c)
    group by 1, 2
),

accrued_versions as (
    select
        a.*,
        coalesce(m.day_count_versions, a.first_day_count_version) as day_count_versions
    from accrued as a
    left join multi_versions as m on a.od_account_id = m.od_account_id and a.month_end = m.month_end
),

-- net per charge: a reversal chain counts in the month of its original (signed amounts: the original +a, a
-- reversal -a, a reversal of that +a), so a cancelled charge counts in neither month
posted as (
    select
        t.od_account_id,
        (date_trunc('month', t.original_business_date) + interval '1 month - 1 day')::date as month_end,
        max(p.currency) as currency,
        sum(t.signed_amount) filter (where t.flow_class = 'CHARGE_INTEREST') as core_interest_charged,
        sum(t.signed_amount) filter (where t.flow_class = 'CHARGE_FEE') as core_fees_charged,
        max(t.load_id) as load_id
    from transactions as t
    {% if from_month -%}
        -- a rebuild from a month posts that month's charges and a few reopened ones: each probes the (account,
        -- date) index (limit 1 keeps the probe a subquery), where a hash join read every position of the year
        left join lateral (
            select p.currency from positions as p
            where p.od_account_id = t.od_account_id and p.business_date = t.original_business_date
            limit 1
        ) as p on true
    {%- else -%}
        left join positions as p
            on t.od_account_id = p.od_account_id and t.original_business_date = p.business_date
    {%- endif %}
    where
        t.flow_class in ('CHARGE_INTEREST', 'CHARGE_FEE')
        and t.original_txn_id is not null
    group by 1, 2
),

months as (
    select
        coalesce(a.od_account_id, c.od_account_id) as od_account_id,
        coalesce(a.month_end, c.month_end) as month_end,
        coalesce(a.currency, c.currency) as currency,
        coalesce(a.interest_accrued, 0) as interest_accrued,
        coalesce(a.unutilized_fee_accrued, 0) as unutilized_fee_accrued,
        coalesce(a.excess_fee_accrued, 0) as excess_fee_accrued,
        coalesce(c.core_interest_charged, 0) as core_interest_charged,
        coalesce(c.core_fees_charged, 0) as core_fees_charged,
        a.day_count_versions,
        greatest(a.load_id, c.load_id) as load_id
    from accrued_versions as a
    full outer join posted as c on a.od_account_id = c.od_account_id and a.month_end = c.month_end
),

units as (
    select
        m.*,
        {{ required_rounding_unit('u.value', 'm.currency', 'm.month_end') }} as rounding_unit,
        u.parameter_version as rounding_version
    from months as m
    left join parameters as u on {{ join_rounding_unit('u', 'm.currency', 'm.month_end') }}
),

-- round_to_unit (macros/rounding.sql): half away from zero. The sum is first rounded to 15 decimals so a sum
-- that is exactly half a unit (e.g. thirds adding up to x.005) is not pushed below it by the 20-decimal daily
-- quotients.
due as (
    select
        *,
        {{ round_to_unit('round(interest_accrued, 15)', 'rounding_unit') }} as interest_due,
        {{ round_to_unit('round(unutilized_fee_accrued, 15)', 'rounding_unit') }} as unutilized_fee_due,
        {{ round_to_unit('round(excess_fee_accrued, 15)', 'rounding_unit') }} as excess_fee_due
    from units
),

-- the model's columns in order, named one by one (its unit tests and fct_od_month_end read them by name)
computed as (
    select
        due.od_account_id,
        due.month_end,
        due.currency,
        due.interest_accrued,
        due.unutilized_fee_accrued,
        due.excess_fee_accrued,
        due.interest_due,
        due.unutilized_fee_due,
        due.excess_fee_due,
        due.interest_due + due.unutilized_fee_due + due.excess_fee_due as total_due,
        due.core_interest_charged,
        due.core_fees_charged,
        due.rounding_unit,
        -- the core posts a month's charges on its last day: a month in progress is never a break
        due.month_end <= loaded.last_loaded_date
        and (
            abs(due.interest_due - due.core_interest_charged) > due.rounding_unit
            or abs(due.unutilized_fee_due + due.excess_fee_due - due.core_fees_charged) > due.rounding_unit
        ) as reconciliation_break,
        due.month_end <= loaded.last_loaded_date as month_end_loaded,
        concat_ws(',', due.rounding_version, due.day_count_versions) as parameter_version,
        due.load_id
    from due
    cross join loaded
)

select * from computed
{% if from_month -%}
    union all
    select * from carried_over
{%- endif %}
