-- Days past due of every OD position (rulebook D; docs/policy-engine.md D): the largest of
--   dpd_charges  = d - due date (month end) of the oldest month-end charge with an unpaid part on d (a
--                  facility closed or converted mid-month owes that month's charges on its closing date);
--   dpd_excess   = d - first day of the current unbroken run of loaded days with P > L;
--   dpd_maturity = d - maturity_date while P > 0 and d > maturity_date;
-- 0 when none applies. Charges are the warehouse's own rounded month-end charges (int_od__charges_monthly).
-- Customer credits pay fees first (all fees, oldest first, processing fees included on their posting date),
-- then interest (oldest first), then principal; capitalization pays nothing; a credit finding nothing due
-- goes to principal, it never prepays a later charge.
-- Set-based (Skorokhod reflection) on cumulative sums over the account's events:
--   fees_paid(t)     = R(t) - B(t),  B(t) = max(0, max_{s<=t} (R(s) - F(s)))   credits beyond the fees due
--   interest_paid(t) = B(t) - max(0, max_{s<=t} (B(s) - I(s)))                 (the rest goes to principal)
-- with R, F, I the cumulative credits, fees due and interest due. A reversed credit counts from its own date
-- until the reversal's date; from the reversal's date on the credit is treated as never made (a new
-- "version" of the account's credit history starts on every date a credit reversal is loaded).
-- Incremental: events (month-end charges, credits) are few, so their cumulative state is recomputed in full;
-- only the new days are joined to it. The excess run carries over from the account's last computed row.
{{ config(indexes=account_day_indexes()) }}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) %}

-- only the columns read below, not *: `days` is read four times, so PostgreSQL materializes it (narrow rows)
with days as (
    select
        od_account_id,
        business_date,
        principal_outstanding,
        limit_amount,
        maturity_date,
        closed_on,
        load_id
    from {{ ref('int_od__positions_daily') }}
    {% if from_date %}where business_date >= '{{ from_date }}'::date{% endif %}
),

-- customer credits and the conversion's settlement (it pays the OD off), and processing fees: a fee like the
-- month-end fees, so credits pay it first
flows as (
    select
        od_account_id,
        business_date,
        flow_class,
        is_reversal,
        original_business_date,
        signed_amount
    from {{ ref('int_od__transactions_classified') }}
    where
        flow_class in ('CUSTOMER_CREDIT', 'SETTLEMENT', 'PROCESSING_FEE')  -- no newer load: skip the history
    {% if from_date == 'infinity' %}and false{% endif %}  -- noqa: LT02
),

-- the closing date in the account's latest snapshot: a facility closed (or converted) before a month's end
-- settles that month's charges on its closing date, so they fall due then (the payoff credit pays them)
closures as (
    select
        od_account_id,
        max(closed_on) as closed_on
    from days
    group by 1
),

month_end_charges as (
    select
        c.od_account_id,
        case
            when cl.closed_on >= date_trunc('month', c.month_end) and cl.closed_on < c.month_end
                then cl.closed_on
            else c.month_end
        end as due_date,
        c.unutilized_fee_due + c.excess_fee_due as fee_due,
        c.interest_due
    from {{ ref('int_od__charges_monthly') }} as c
    left join closures as cl on c.od_account_id = cl.od_account_id
    {% if from_date == 'infinity' %}where false{% endif %}
),

-- every account's history has a version from the start, and a new one from each date a credit or a
-- processing fee is reversed: from that date on, the reversed transaction counts as never made
versions as (
    select
        od_account_id,
        version_from,
        coalesce(
            lead(version_from) over (partition by od_account_id order by version_from), 'infinity'::date
        ) as version_to
    from (
        select distinct
            od_account_id,
            '-infinity'::date as version_from
        from month_end_charges
        union
        select distinct
            od_account_id,
            '-infinity'::date
        from flows
        union
        select distinct
            od_account_id,
            business_date
        from flows
        where is_reversal
    ) as starts
),

-- each original on its own date, net of the reversals (and reversals of reversals) loaded by the version start
effective_flows as (
    select
        v.od_account_id,
        v.version_from,
        f.original_business_date as business_date,
        coalesce(sum(f.signed_amount) filter (where f.flow_class in ('CUSTOMER_CREDIT', 'SETTLEMENT')), 0)
            as credit,
        coalesce(sum(f.signed_amount) filter (where f.flow_class = 'PROCESSING_FEE'), 0) as processing_fee
    from versions as v
    inner join flows as f
        on
            v.od_account_id = f.od_account_id
            and (not f.is_reversal or v.version_from >= f.business_date)
    group by 1, 2, 3
),

-- everything that falls due, per version and date, with cumulative fees and interest due through that date
dues as (
    select
        *,
        sum(fee_due) over history as fees_cum,
        sum(interest_due) over history as interest_cum
    from (
        select
            od_account_id,
            version_from,
            due_date,
            sum(fee_due) as fee_due,
            sum(interest_due) as interest_due,
            coalesce(sum(fee_due) filter (where is_month_end_charge), 0) as month_end_fee_due,
            coalesce(sum(interest_due) filter (where is_month_end_charge), 0) as month_end_interest_due
        from (
            select
                v.od_account_id,
                v.version_from,
                c.due_date,
                c.fee_due,
                c.interest_due,
                true as is_month_end_charge
            from versions as v
            inner join month_end_charges as c on v.od_account_id = c.od_account_id
            union all
            select
                od_account_id,
                version_from,
                business_date,
                processing_fee,
                0,
                false
            from effective_flows
            where processing_fee <> 0
        ) as d
        group by 1, 2, 3
    ) as by_date
    window history as (partition by od_account_id, version_from order by due_date rows unbounded preceding)
),

events as (
    select
        od_account_id,
        version_from,
        business_date,
        sum(credit) as credit,
        sum(fee_due) as fee_due,
        sum(interest_due) as interest_due
    from (
        select
            od_account_id,
            version_from,
            business_date,
            credit,
            0 as fee_due,
            0 as interest_due
        from effective_flows
        union all
        select
            od_account_id,
            version_from,
            due_date,
            0,
            fee_due,
            interest_due
        from dues
    ) as e
    group by 1, 2, 3
),

-- end-of-day cumulative sums: a charge is due on its due date, so a credit of that day pays it
cumulative as (
    select
        *,
        sum(credit) over history as credits_cum,
        sum(fee_due) over history as fees_cum,
        sum(interest_due) over history as interest_cum
    from events
    window
        history as (partition by od_account_id, version_from order by business_date rows unbounded preceding)
),

beyond_fees as (
    select
        *,
        greatest(0, max(credits_cum - fees_cum) over history) as credits_beyond_fees
    from cumulative
    window
        history as (partition by od_account_id, version_from order by business_date rows unbounded preceding)
),

applied as (
    select
        *,
        credits_cum - credits_beyond_fees as fees_paid,
        credits_beyond_fees
        - greatest(0, max(credits_beyond_fees - interest_cum) over history) as interest_paid,
        coalesce(lead(business_date) over history, 'infinity'::date) as next_event_date
    from beyond_fees
    window
        history as (partition by od_account_id, version_from order by business_date rows unbounded preceding)
),

-- oldest month-end charge with an unpaid fee or interest part after each event: fees and interest are paid
-- oldest first, so a due is fully paid exactly when the cumulative dues through its date are covered
event_states as (
    select
        a.od_account_id,
        a.version_from,
        a.business_date,
        min(d.due_date) as oldest_unpaid_due_date,
        max(a.fees_cum + a.interest_cum - a.fees_paid - a.interest_paid) as unpaid_charges
    from applied as a
    left join dues as d
        on
            a.od_account_id = d.od_account_id
            and a.version_from = d.version_from
            and a.business_date >= d.due_date
            and (
                (d.month_end_fee_due > 0 and a.fees_paid < d.fees_cum)
                or (d.month_end_interest_due > 0 and a.interest_paid < d.interest_cum)
            )
    {% if from_date -%}
        where a.next_event_date > '{{ from_date }}'::date  -- states that end before this batch are not needed
    {%- endif %}
    group by 1, 2, 3
),

-- the charges state of each account as a timeline of points (state_from): events inside their version, and
-- the version's state at its first date
timeline_points as (
    select
        s.od_account_id,
        s.business_date as state_from,
        s.oldest_unpaid_due_date,
        s.unpaid_charges
    from event_states as s
    inner join versions as v on s.od_account_id = v.od_account_id and s.version_from = v.version_from
    where s.business_date > v.version_from and s.business_date < v.version_to
    union all
    select
        v.od_account_id,
        v.version_from,
        (array_agg(s.oldest_unpaid_due_date order by s.business_date desc))[1],
        coalesce((array_agg(s.unpaid_charges order by s.business_date desc))[1], 0)
    from versions as v
    left join event_states as s
        on
            v.od_account_id = s.od_account_id
            and v.version_from = s.version_from
            and v.version_from >= s.business_date
    where v.version_from > '-infinity'::date
    group by 1, 2
),

timeline as (
    select
        *,
        coalesce(
            lead(state_from) over (partition by od_account_id order by state_from), 'infinity'::date
        ) as state_to
    from timeline_points
),

-- each day takes the latest timeline point on or before it (a running max over days and points together)
day_points as (
    select
        od_account_id,
        business_date,
        is_day,
        latest_point
    from (
        select
            od_account_id,
            business_date,
            is_day,
            max(point_date) over (
                partition by od_account_id order by business_date, is_day rows unbounded preceding
            ) as latest_point
        from (
            select
                od_account_id,
                business_date,
                true as is_day,
                null::date as point_date
            from days
            union all
            select
                od_account_id,
                state_from,
                false,
                state_from
            from timeline
            {% if from_date %}where state_to > '{{ from_date }}'::date{% endif %}
        ) as u
    ) as carried
    where is_day
),

{% if from_date -%}
-- the excess run in progress at the account's last computed day before this batch; materialized: the planner
-- underestimates the accounts and re-ran the per-account probes once per row of the batch (accounts^2 probes)
    previous_rows as materialized (
        select
            a.od_account_id,
            prev.excess_since
        from (select distinct od_account_id from days) as a
        left join lateral (
            select t.excess_since
            from {{ this }} as t
            where t.od_account_id = a.od_account_id and t.business_date < '{{ from_date }}'::date
            order by t.business_date desc
            limit 1
        ) as prev on true
    ),
{%- endif %}

excess_flags as (
    select
        d.*,
        d.principal_outstanding > d.limit_amount as is_excess,
        coalesce(
            lag(d.principal_outstanding > d.limit_amount) over account_days,
            {% if from_date %}p.excess_since is not null{% else %}false{% endif %}
        )
            as was_excess{% if from_date %},
        p.excess_since as previous_excess_since{% endif %}
    from days as d
    {% if from_date -%}
        left join previous_rows as p on d.od_account_id = p.od_account_id
    {%- endif %}
    window account_days as (partition by d.od_account_id order by d.business_date)
),

-- the first day of the current run is the latest run start on or before the day
excess_runs as (
    select
        *,
        case
            when is_excess then
                coalesce(
                    max(business_date) filter (where is_excess and not was_excess) over account_days,
                    {% if from_date %}previous_excess_since{% else %}null{% endif %}
                )
        end as excess_since
    from excess_flags
    window account_days as (partition by od_account_id order by business_date rows unbounded preceding)
),

-- the three DPD components side by side, each its own rule (charges, excess, maturity: rulebook F)
components as (
    select
        r.od_account_id,
        r.business_date,
        coalesce(r.business_date - t.oldest_unpaid_due_date, 0) as dpd_charges,
        coalesce(r.business_date - r.excess_since, 0) as dpd_excess,
        case
            when r.principal_outstanding > 0 and r.business_date > r.maturity_date
                then r.business_date - r.maturity_date
            else 0
        end as dpd_maturity,
        t.oldest_unpaid_due_date,
        coalesce(t.unpaid_charges, 0) as unpaid_charges,
        r.excess_since,
        r.load_id
    from excess_runs as r
    left join day_points as dp on r.od_account_id = dp.od_account_id and r.business_date = dp.business_date
    left join timeline as t on dp.od_account_id = t.od_account_id and dp.latest_point = t.state_from
)

select
    od_account_id,
    business_date,
    dpd_charges,
    dpd_excess,
    dpd_maturity,
    greatest(dpd_charges, dpd_excess, dpd_maturity) as days_past_due,
    oldest_unpaid_due_date,
    unpaid_charges,
    excess_since,
    load_id
from components
