-- Days past due of every OD position (rulebook D; docs/policy-engine.md D), stored as runs (decision 0060): one
-- row per account and run of its loaded days with the same charges state, from the run's first day
-- (valid_from) until the account's next run starts; int_od__days_past_due_daily (a view) gives each position
-- its run's state and the day counts, the largest of
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
--   interest_paid(t) = B(t) - P(t),  P(t) = max(0, max_{s<=t} (B(s) - I(s)))   credits beyond all charges
-- with R, F, I the cumulative credits, fees due and interest due. A reversed credit counts from its own date
-- until the reversal's date; from the reversal's date on the credit is treated as never made (a new
-- "version" of the account's credit history starts on every date a credit reversal is loaded).
-- Incremental: the state R, F, I, B, P of each run is kept in its columns (cumulative_credits, ...), so an
-- incremental run carries each account's state forward from its run on the last date before the batch and
-- reads only the batch's events, plus, for an account with an unpaid charge, the charges and processing fees
-- since its oldest unpaid charge (their cumulative dues tell when each is paid). An account a reversal of
-- the batch rewrites (a new version: the reversed transaction never made, over its whole history), a new
-- account, or one without a position on that last date is recomputed from its whole history instead. The
-- rebuilt dates are the batch's (daily_rebuild_from): a version starts on the reversal's own date, earlier
-- rows keep the reversed credit. The excess run carries over from the account's latest run too.
-- The pre-hook deletes the runs starting on a rebuilt date (the model reads only earlier ones); a day whose
-- state equals the account's previous day's (the latest earlier run, for the batch's first day) starts no run,
-- so a batch's runs continue across its first date and equal a full build's. A run's load_id is its first
-- day's: a date that changed no account's state leaves the watermark behind, and the next build rebuilds that
-- date again (unchanged; never at an institution's size, where every date changes some account).
{{ config(
    unique_key=['od_account_id', 'valid_from'],
    incremental_strategy='append',
    indexes=run_indexes(),
    pre_hook="{{ delete_runs_rebuilt(ref('int_od__positions_daily')) }}",
) }}

{%- set from_date = daily_rebuild_from(ref('int_od__positions_daily')) %}
{#- charges due before the batch are in the carried state; a month end that is not a loaded date (a weekend)
    can fall between the last computed date and from_date, so the batch reads charges from the month end
    before from_date on -#}
{%- set charges_from = "(date_trunc('month', '" ~ from_date ~ "'::date) - interval '1 day')::date" %}
{%- set credit_classes = "('CUSTOMER_CREDIT', 'SETTLEMENT', 'PROCESSING_FEE')" %}
{%- set last_date -%}
    (select max(business_date) from {{ ref('int_od__positions_daily') }} where business_date < '{{ from_date }}'::date)
{%- endset %}
{%- set previous_state -%}
    t.excess_since, t.cumulative_credits, t.cumulative_fees_due, t.cumulative_interest_due, t.credits_beyond_fees,
    t.credits_beyond_charges, t.oldest_unpaid_due_date, t.unpaid_charges
{%- endset %}

-- only the columns read below, not *: `days` is read twice, so PostgreSQL materializes it (narrow rows)
with days as (
    select
        od_account_id,
        business_date,
        principal_outstanding,
        limit_amount,
        closed_on,
        load_id
    from {{ ref('int_od__positions_daily') }}
    {% if from_date %}where business_date >= '{{ from_date }}'::date{% endif %}
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

{% if from_date -%}
-- each account's state on the last date before this batch (its latest run by then): its excess run and its
-- charges state, as of its last computed date (state_date: the last date for nearly every account; an account
-- missing on that date, few, has its date probed alone; none without a run, so that it is computed from its
-- whole history)
    {{ latest_runs_before('previous_runs', this, from_date, 'select od_account_id from closures') }},

    previous_rows as materialized (
        select
            a.od_account_id,
            case when t.od_account_id is not null then coalesce(l.business_date, (
                select max(h.business_date)
                from {{ ref('int_od__positions_daily') }} as h
                where h.od_account_id = a.od_account_id and h.business_date < '{{ from_date }}'::date
            )) end as state_date,
            {{ previous_state }}
        from closures as a
        left join {{ ref('int_od__positions_daily') }} as l
            on a.od_account_id = l.od_account_id and l.business_date = {{ last_date }}
        left join previous_runs as t on a.od_account_id = t.od_account_id
    ),

    -- accounts whose credit history a reversal of this batch rewrites (a new version from the reversal's date)
    rewritten_accounts as (
        select distinct od_account_id
        from {{ ref('int_od__transactions_classified') }}
        where business_date >= '{{ from_date }}'::date and is_reversal and flow_class in {{ credit_classes }}
    ),

    carried_accounts as (
        select
            p.*,
            r.od_account_id is null
            and coalesce(p.state_date = max(p.state_date) over (), false) as is_carried
        from previous_rows as p
        left join rewritten_accounts as r on p.od_account_id = r.od_account_id
    ),
{%- endif %}

-- where each account's charges state starts: carried from its last computed row (state_date; read_from: its
-- oldest unpaid charge, whose dues and processing fees it reads again), or from nothing with every event of
-- its history ('-infinity': a full build, a new or rewritten account, one missing on the last date)
starts as (
    {% if from_date -%}
        select
            od_account_id,
            case when is_carried then state_date else '-infinity'::date end as state_date,
            case when is_carried then oldest_unpaid_due_date else '-infinity'::date end as read_from,
            case when is_carried then cumulative_credits else 0 end as cumulative_credits,
            case when is_carried then cumulative_fees_due else 0 end as cumulative_fees_due,
            case when is_carried then cumulative_interest_due else 0 end as cumulative_interest_due,
            case when is_carried then credits_beyond_fees else 0 end as credits_beyond_fees,
            case when is_carried then credits_beyond_charges else 0 end as credits_beyond_charges,
            case when is_carried then oldest_unpaid_due_date end as oldest_unpaid_due_date,
            case when is_carried then unpaid_charges else 0 end as unpaid_charges
        from carried_accounts
    {%- else -%}
        select
            od_account_id,
            '-infinity'::date as state_date,
            '-infinity'::date as read_from,
            0 as cumulative_credits,
            0 as cumulative_fees_due,
            0 as cumulative_interest_due,
            0 as credits_beyond_fees,
            0 as credits_beyond_charges,
            null::date as oldest_unpaid_due_date,
            0 as unpaid_charges
        from closures
    {%- endif %}
),

-- customer credits and the conversion's settlement (it pays the OD off), and processing fees: a fee like the
-- month-end fees, so credits pay it first. Incremental: the batch's, then what an account reads again: an
-- account computed from nothing its whole history (an index probe per account; `offset 0` keeps the probe
-- from being planned as a join over every transaction ever loaded), a carried account the processing fees
-- since its oldest unpaid charge (transactions_classified's partial index on them: a few rows, whatever the
-- days kept)
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
        flow_class in {{ credit_classes }}
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}  -- noqa: LT02
    {% if from_date -%}
        -- same shape as monthly_charges below (the batch, then what a carried account must re-read): each
        -- names its own columns and date, which a shared macro would hide
        union all
        select
            f.od_account_id,
            f.business_date,
            f.flow_class,
            f.is_reversal,
            f.original_business_date,
            f.signed_amount
        from starts as s
        cross join
            lateral (
                select
                    t.od_account_id,
                    t.business_date,
                    t.flow_class,
                    t.is_reversal,
                    t.original_business_date,
                    t.signed_amount
                from {{ ref('int_od__transactions_classified') }} as t
                where
                    t.od_account_id = s.od_account_id
                    and t.business_date < '{{ from_date }}'::date
                    and t.flow_class in {{ credit_classes }}
                offset 0
            ) as f
        where s.state_date = '-infinity'::date
        union all
        select
            f.od_account_id,
            f.business_date,
            f.flow_class,
            f.is_reversal,
            f.original_business_date,
            f.signed_amount
        from starts as s
        inner join {{ ref('int_od__transactions_classified') }} as f
            on
                s.od_account_id = f.od_account_id
                and f.business_date >= s.read_from
                and f.business_date < '{{ from_date }}'::date
        where s.state_date > '-infinity'::date and f.flow_class = 'PROCESSING_FEE'
    {%- endif %}
),

monthly_charges as (
    select
        od_account_id,
        month_end,
        unutilized_fee_due,
        excess_fee_due,
        interest_due
    from {{ ref('int_od__charges_monthly') }}
    {% if from_date %}where month_end >= {{ charges_from }}{% endif %}
    {% if from_date -%}
        -- same shape as flows above, on the charges' own columns and month end
        union all
        select
            c.od_account_id,
            c.month_end,
            c.unutilized_fee_due,
            c.excess_fee_due,
            c.interest_due
        from starts as s
        inner join {{ ref('int_od__charges_monthly') }} as c
            on
                s.od_account_id = c.od_account_id
                and c.month_end >= s.read_from
                and c.month_end < {{ charges_from }}
    {%- endif %}
),

-- the charges after the account's state date, and, for a carried account, the unpaid ones it still owes
month_end_charges as (
    select
        c.od_account_id,
        c.due_date,
        c.fee_due,
        c.interest_due
    from (
        select
            m.od_account_id,
            case
                when cl.closed_on >= date_trunc('month', m.month_end) and cl.closed_on < m.month_end
                    then cl.closed_on
                else m.month_end
            end as due_date,
            m.unutilized_fee_due + m.excess_fee_due as fee_due,
            m.interest_due
        from monthly_charges as m
        left join closures as cl on m.od_account_id = cl.od_account_id
    ) as c
    inner join starts as s on c.od_account_id = s.od_account_id
    where c.due_date > s.state_date or c.due_date >= s.read_from
),

-- every account's history has a version from its start, and one from each date a credit or a processing fee
-- is reversed after the state date: from that date on, the reversed transaction counts as never made. A
-- version nets the reversals loaded by its start (a carried account's: all it reads, by its state date).
versions as (
    select
        v.od_account_id,
        v.version_from,
        coalesce(
            lead(v.version_from) over (partition by v.od_account_id order by v.version_from), 'infinity'::date
        ) as version_to,
        greatest(v.version_from, s.state_date) as reversals_through,
        s.state_date,
        s.read_from
    from (
        select
            od_account_id,
            '-infinity'::date as version_from
        from starts
        union
        select
            f.od_account_id,
            f.business_date
        from flows as f
        inner join starts as a on f.od_account_id = a.od_account_id
        where f.is_reversal and f.business_date > a.state_date
    ) as v
    inner join starts as s on v.od_account_id = s.od_account_id
),

-- each original on its own date, net of the reversals (and reversals of reversals) loaded by the version
-- start; a carried account's credits up to its state date are in its state already
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
            and (not f.is_reversal or v.reversals_through >= f.business_date)
    where
        f.original_business_date > v.state_date
        or (f.original_business_date >= v.read_from and f.flow_class = 'PROCESSING_FEE')
    group by 1, 2, 3
),

-- everything that falls due, per version and date, with cumulative fees and interest due through that date;
-- a carried account's sums start from its state (F, I) less what fell due from its oldest unpaid charge to
-- its state date
dues as (
    select
        by_date.*,
        s.cumulative_fees_due
        - coalesce(sum(by_date.fee_due) filter (where by_date.due_date <= s.state_date) over account_version, 0)
        + sum(by_date.fee_due) over history as fees_cum,
        s.cumulative_interest_due
        - coalesce(
            sum(by_date.interest_due) filter (where by_date.due_date <= s.state_date) over account_version, 0
        )
        + sum(by_date.interest_due) over history as interest_cum
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
    inner join starts as s on by_date.od_account_id = s.od_account_id
    window
        account_version as (partition by by_date.od_account_id, by_date.version_from),
        history as (
            partition by by_date.od_account_id, by_date.version_from
            order by by_date.due_date rows unbounded preceding
        )
),

-- the events after the state date (a carried account's earlier dues only tell when they are paid)
events as (
    select
        e.od_account_id,
        e.version_from,
        e.business_date,
        sum(e.credit) as credit,
        sum(e.fee_due) as fee_due,
        sum(e.interest_due) as interest_due
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
    inner join starts as s on e.od_account_id = s.od_account_id
    where e.business_date > s.state_date
    group by 1, 2, 3
),

-- end-of-day cumulative sums from the account's state: a charge is due on its due date, so a credit of that
-- day pays it
cumulative as (
    select
        e.*,
        s.cumulative_credits + sum(e.credit) over history as credits_cum,
        s.cumulative_fees_due + sum(e.fee_due) over history as fees_cum,
        s.cumulative_interest_due + sum(e.interest_due) over history as interest_cum,
        s.credits_beyond_fees as carried_beyond_fees,
        s.credits_beyond_charges as carried_beyond_charges
    from events as e
    inner join starts as s on e.od_account_id = s.od_account_id
    window
        history as (partition by e.od_account_id, e.version_from order by e.business_date rows unbounded preceding)
),

beyond_fees as (
    select
        *,
        greatest(carried_beyond_fees, max(credits_cum - fees_cum) over history) as credits_beyond_fees
    from cumulative
    window
        history as (partition by od_account_id, version_from order by business_date rows unbounded preceding)
),

applied as (
    select
        *,
        credits_cum - credits_beyond_fees as fees_paid,
        greatest(carried_beyond_charges, max(credits_beyond_fees - interest_cum) over history)
            as credits_beyond_charges,
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
        max(a.fees_cum + a.interest_cum - a.credits_cum + a.credits_beyond_charges) as unpaid_charges,
        max(a.credits_cum) as cumulative_credits,
        max(a.fees_cum) as cumulative_fees_due,
        max(a.interest_cum) as cumulative_interest_due,
        max(a.credits_beyond_fees) as credits_beyond_fees,
        max(a.credits_beyond_charges) as credits_beyond_charges
    from applied as a
    left join dues as d
        on
            a.od_account_id = d.od_account_id
            and a.version_from = d.version_from
            and a.business_date >= d.due_date
            and (
                (d.month_end_fee_due > 0 and a.fees_paid < d.fees_cum)
                or (d.month_end_interest_due > 0 and a.credits_beyond_fees - a.credits_beyond_charges < d.interest_cum)
            )
    {% if from_date -%}
        where a.next_event_date > '{{ from_date }}'::date  -- states that end before this batch are not needed
    {%- endif %}
    group by 1, 2, 3
),

-- the charges state of each account as a timeline of points (state_from): events inside their version, the
-- version's state at its first date, and a carried account's state at its state date
timeline_points as (
    select
        s.od_account_id,
        s.business_date as state_from,
        s.oldest_unpaid_due_date,
        s.unpaid_charges,
        s.cumulative_credits,
        s.cumulative_fees_due,
        s.cumulative_interest_due,
        s.credits_beyond_fees,
        s.credits_beyond_charges
    from event_states as s
    inner join versions as v on s.od_account_id = v.od_account_id and s.version_from = v.version_from
    where s.business_date > v.version_from and s.business_date < v.version_to
    union all
    select
        v.od_account_id,
        v.version_from,
        (array_agg(s.oldest_unpaid_due_date order by s.business_date desc))[1],
        coalesce((array_agg(s.unpaid_charges order by s.business_date desc))[1], 0),
        (array_agg(s.cumulative_credits order by s.business_date desc))[1],
        (array_agg(s.cumulative_fees_due order by s.business_date desc))[1],
        (array_agg(s.cumulative_interest_due order by s.business_date desc))[1],
        (array_agg(s.credits_beyond_fees order by s.business_date desc))[1],
        (array_agg(s.credits_beyond_charges order by s.business_date desc))[1]
    from versions as v
    left join event_states as s
        on
            v.od_account_id = s.od_account_id
            and v.version_from = s.version_from
            and v.version_from >= s.business_date
    where v.version_from > '-infinity'::date
    group by 1, 2
    union all
    select
        od_account_id,
        state_date,
        oldest_unpaid_due_date,
        unpaid_charges,
        cumulative_credits,
        cumulative_fees_due,
        cumulative_interest_due,
        credits_beyond_fees,
        credits_beyond_charges
    from starts
    where state_date > '-infinity'::date
),

-- each point's state as one array led by its date (days since 2000-01-01): arrays compare element by element
-- and two points of an account never share a date, so the largest array so far is the latest point's state
timeline as (
    select
        od_account_id,
        state_from,
        array[
            state_from - date '2000-01-01',
            oldest_unpaid_due_date - date '2000-01-01',
            unpaid_charges,
            cumulative_credits,
            cumulative_fees_due,
            cumulative_interest_due,
            credits_beyond_fees,
            credits_beyond_charges
        ]::numeric[] as state
    from timeline_points
),

-- every day and every timeline point of an account in one order (a point before the day of its own date): one
-- sort carries both the charges state and the excess run to each day
days_and_points as (
    select
        d.od_account_id,
        d.business_date,
        true as is_day,
        d.load_id,
        d.principal_outstanding > d.limit_amount as is_excess,
        {% if from_date %}p.excess_since{% else %}null::date{% endif %} as previous_excess_since,
        null::numeric[] as state
    from days as d
    {% if from_date -%}
        -- (p.excess_since is read above when from_date is set: the linter sees the join without it)
        left join previous_rows as p on d.od_account_id = p.od_account_id  -- noqa: ST11
    {%- endif %}
    union all
    select
        od_account_id,
        state_from,
        false,
        null,
        null,
        null,
        state
    from timeline
),

-- the latest point's state on each day, and whether the previous day was in excess: the latest earlier day as
-- twice its date plus its flag is the largest such number, and its parity is the flag (a lag over days alone
-- would need a sort of its own)
carried as (
    select
        *,
        max(state) over (account_order rows unbounded preceding) as latest_state,
        coalesce(
            max((business_date - date '2000-01-01') * 2 + coalesce(is_excess, false)::int) filter (where is_day)
                over (account_order rows between unbounded preceding and 1 preceding)
            % 2 <> 0,
            {% if from_date %}previous_excess_since is not null{% else %}false{% endif %}
        ) as was_excess
    from days_and_points
    window account_order as (partition by od_account_id order by business_date, is_day)
),

-- the first day of the current run is the latest run start on or before the day (the same order: no sort)
excess_runs as (
    select
        *,
        case
            when is_excess then
                coalesce(
                    max(business_date) filter (where is_excess and not was_excess)
                        over (account_order rows unbounded preceding),
                    previous_excess_since
                )
        end as excess_since
    from carried
    window account_order as (partition by od_account_id order by business_date, is_day)
),

-- the charges state of the day, unpacked from its array (no point yet: nothing unpaid, nothing paid)
day_states as (
    select
        od_account_id,
        business_date,
        excess_since,
        load_id,
        date '2000-01-01' + latest_state[2]::int as oldest_unpaid_due_date,
        coalesce(latest_state[3], 0) as unpaid_charges,
        coalesce(latest_state[4], 0) as cumulative_credits,
        coalesce(latest_state[5], 0) as cumulative_fees_due,
        coalesce(latest_state[6], 0) as cumulative_interest_due,
        coalesce(latest_state[7], 0) as credits_beyond_fees,
        coalesce(latest_state[8], 0) as credits_beyond_charges
    from excess_runs
    where is_day
)

-- a run starts on each day whose state differs from the account's previous day's (macros/runs.sql); the batch's
-- first day is compared with the account's latest run before the batch (previous_rows)
{{ run_starts('day_states', 'previous_rows' if from_date else none, ['oldest_unpaid_due_date', 'unpaid_charges',
    'excess_since', 'cumulative_credits', 'cumulative_fees_due', 'cumulative_interest_due', 'credits_beyond_fees',
    'credits_beyond_charges']) }}
