-- noqa: disable=LT02,LT09,ST03,LT05
-- (Jinja loops over the parameter list generate this SQL: sqlfluff cannot lay out or follow those spans)
-- The facts behind the limits and eligibility checks (rulebook G, plus restructuring from F §13.3) for every
-- OD account in the od_accounts snapshot of each loaded month end: the account's terms and collateral, the
-- policy_parameters versions in force on the month end, limits in USD (at the FX rate of the approval date;
-- the cross-finance exposure at the month end's rate), the agent's liquidity look-back, net cash withdrawals
-- and processing fees (reversal chains netted), the customer's other loans, the kind of the current approval and
-- the processing fee it owes (rulebook J: a limit change is a new approval; a decrease owes no fee, an increase
-- owes it on the new limit or, by parameter, on the increment). int_od__policy_checks_month_end
-- turns them into BREACH / OK / NOT_EVALUABLE per check. Choices: docs/policy-engine.md G.
{% set parameters = {
    'agent_od_max_limit_usd': 'agent_max_limit_usd',
    'agent_min_partnership_months': 'agent_min_partnership_months',
    'agent_min_avg_liquidity_usd': 'agent_min_avg_liquidity_usd',
    'agent_liquidity_lookback_months': 'agent_liquidity_lookback_months',
    'property_max_ltv': 'property_max_ltv',
    'fixed_deposit_max_ltv': 'fixed_deposit_max_ltv',
    'sme_msme_max_limit_usd': 'collateral_max_limit_usd',
    'max_term_months': 'max_term_months',
    'single_loan_exposure_limit_usd': 'single_loan_exposure_limit_usd',
} %}
-- Incremental by month end (macros/month_end_incremental.sql): a re-delivered date redoes every later month
-- end (cash withdrawals count "ever"); a day that adds no month end renders an empty query.
-- depends_on: {{ ref('stg_core_banking__branches') }}
-- hash joins only: the snapshots come from their histories (macros/history_as_of.sql), whose rows per date the
-- planner underestimates; with nested loops it re-expanded the customers' history once per account (10,000
-- accounts x 2 month ends: over 9 minutes; hash joins: 7 s); with merge joins it merged the accounts with the
-- customers and the positions on the month end alone, filtering 800 M pairs on the key (20,000 x 61, full
-- build: 185 s; hash joins: 1.3 s), as int_monitoring__od_activity_month_end once did
{{ config(
    pre_hook=["set local enable_nestloop = off", "set local enable_mergejoin = off"],
    unique_key=['month_end'],
    tags=['month_end'],
    indexes=account_month_end_indexes(with_load_id=true),
) }}

{%- set from_date = month_end_rebuild_from() -%}
{#- a run with no new month end renders empty inputs instead of scanning the transaction history -#}
{%- set nothing_to_check = false -%}
{%- if from_date -%}
    {%- set new_month_ends_sql -%}
        select count(*) from {{ ref('stg_core_banking__branches') }}
        where
            business_date >= '{{ from_date }}'::date
            and business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
    {%- endset -%}
    {%- set nothing_to_check = (run_query(new_month_ends_sql).columns[0].values()[0] == 0) if execute else true -%}
{%- endif %}

with loaded_dates as (
    select distinct business_date from {{ ref('stg_core_banking__branches') }}
),

-- a month end is checked when its snapshot is loaded (month end = last calendar day); every other input is
-- read on these dates only (index on the business date), except the history scans below. Inputs filter with
-- "= any(array(select month_end ...))": the dates then reach the loads index inside the staging views' history
-- expansion (macros/history_as_of.sql); "in (select ...)" became a semi join above it, which first expanded
-- every snapshot version to every loaded date (130 M rows at 100,000 x 365: this model took 126 s, now 32 s)
month_ends as (
    select business_date as month_end
    from loaded_dates
    where
        business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
),

positions as (
    select od_account_id, business_date, first_business_date
    from {{ ref('int_od__positions_daily') }}
    where
        business_date = any(array(select month_end from month_ends))
        {% if from_date %}and business_date >= '{{ from_date }}'::date  -- a literal range: index scan{% endif %}
),

fx as (
    select * from {{ ref('int_fx__rates_daily') }}
),

month_end_accounts as (
    select
        *,
        business_date as month_end
    from {{ ref('stg_core_banking__od_accounts') }}
    where
        business_date = any(array(select month_end from month_ends))
        {% if from_date %}and business_date >= '{{ from_date }}'::date  -- a literal range: index scan{% endif %}
),

first_loaded as (
    select min(business_date) as first_loaded_date from loaded_dates
),

-- one parameter set per month end, materialized so the scalar lookups run once per month end, not per row;
-- policy_param() fails the query when a parameter has no version in force
params as materialized (
    select
        me.month_end,
        {%- for name, alias in parameters.items() %}
        {{ policy_param(name, 'me.month_end') }} as {{ alias }},
        {%- endfor %}
        (
            select 'policy_parameters@' || to_char(max(pv.effective_from), 'YYYY-MM-DD')
            from {{ ref('int_policy__parameter_versions') }} as pv
            where
                pv.parameter_name in ('{{ parameters.keys() | join("', '") }}', 'processing_fee_basis_on_increase')
                and pv.effective_from <= me.month_end
                and me.month_end < pv.effective_to
        ) as parameter_version,
        {{ max_input_load_id('me.month_end') }} as max_input_load_id
    from month_ends as me
),

rounding_units as (
    select * from {{ ref('int_policy__parameter_versions') }}
    where parameter_name like 'rounding\_unit\_%'
),

customers as (
    select customer_id, business_date, customer_type, agent_since
    from {{ ref('stg_core_banking__customers') }}
    where
        business_date = any(array(select month_end from month_ends))
        {% if from_date %}and business_date >= '{{ from_date }}'::date  -- a literal range: index scan{% endif %}
),

deposits as (
    select fd_account_id, business_date, currency, principal, maturity_date, frozen
    from {{ ref('stg_core_banking__fixed_deposits') }}
    where
        business_date = any(array(select month_end from month_ends))
        {% if from_date %}and business_date >= '{{ from_date }}'::date  -- a literal range: index scan{% endif %}
),

-- materialized: inlined, the planner moved the month-end filter into the join with base and scanned every
-- loan of every date once per account (2,000 accounts x 2 month ends: 736 M rows, 350 s; now 0.5 s)
loans as materialized (
    select customer_id, business_date, currency, outstanding_principal, source_od_account_id
    from {{ ref('stg_core_banking__loans') }}
    where
        business_date = any(array(select month_end from month_ends))
        and status = 'ACTIVE'
        {% if from_date %}and business_date >= '{{ from_date }}'::date{% endif %}
),

-- the limit in force the day before each limit change (a change keeps the facility's start date): one index
-- probe per approval as a scalar subquery, which runs per row even with nested loops off (as a join it was a
-- hash join over the whole positions history: 33 M rows at 100,000 x 365)
previous_limits as materialized (
    select
        changes.od_account_id,
        changes.approved_on,
        (
            select x.limit_amount
            from {{ ref('int_od__positions_daily') }} as x
            where x.od_account_id = changes.od_account_id and x.business_date = changes.approved_on - 1
        ) as limit_amount
    from (
        select distinct od_account_id, approved_on
        from month_end_accounts
        where start_date < approved_on
    ) as changes
),

base as (
    select
        a.od_account_id,
        a.month_end,
        a.customer_id,
        a.currency,
        a.limit_amount,
        a.approved_on,
        a.start_date,
        a.maturity_date,
        a.collateral_type,
        a.collateral_value,
        a.fd_account_id,
        a.purpose,
        a.restructured,
        a.processing_fee_rate,
        a._load_id as load_id,
        coalesce(c.customer_type = 'AGENT', false) as is_agent,
        c.agent_since,
        h.first_business_date,
        fl.first_loaded_date,
        d.fd_account_id is not null as fd_found,
        d.currency as fd_currency,
        d.principal as fd_principal,
        d.maturity_date as fd_maturity_date,
        d.frozen as fd_frozen,
        -- USD needs no rate: USD -> USD is 1 whether or not the day's rates are loaded
        case
            when a.currency = 'USD' then a.limit_amount
            else {{ to_usd('a.limit_amount', 'fx_approval') }}
        end as limit_usd_at_approval,
        case
            when a.currency = 'USD' then a.limit_amount
            else {{ to_usd('a.limit_amount', 'fx_month_end') }}
        end as limit_usd_at_month_end,
        -- the deposit in the OD's currency, converted at the approval date when the currencies differ
        case
            when d.currency = a.currency then d.principal
            else d.principal * fx_deposit.khr_per_unit / fx_approval.khr_per_unit
        end as fd_principal_in_od_currency,
        p.agent_max_limit_usd,
        p.agent_min_partnership_months,
        p.agent_min_avg_liquidity_usd,
        p.agent_liquidity_lookback_months,
        (a.approved_on - make_interval(months => p.agent_liquidity_lookback_months::integer))::date
            as liquidity_window_start,
        p.property_max_ltv,
        p.fixed_deposit_max_ltv,
        p.collateral_max_limit_usd,
        p.max_term_months,
        p.single_loan_exposure_limit_usd,
        -- a limit change keeps the facility's start date (a new facility or a renewal starts on or after its
        -- approval): the limit in force the day before the approval is the previous approval's
        case
            when a.start_date >= a.approved_on then 'NEW'
            when before.limit_amount is null then 'UNKNOWN'  -- the day before is not loaded: not evaluable
            when a.limit_amount > before.limit_amount then 'INCREASE'
            when a.limit_amount < before.limit_amount then 'DECREASE'
            else 'UNCHANGED'
        end as approval_kind,
        before.limit_amount as previous_limit_amount,
        -- the basis in force on the approval date (the fee falls due then); an approval older than every
        -- version (before the seed's 2019-01-01) takes the default, the new limit
        coalesce(fee_basis.value_text, 'LIMIT') as fee_basis_on_increase,
        {{ required_rounding_unit('u.value', 'a.currency', 'a.month_end') }} as rounding_unit,
        p.parameter_version,
        p.max_input_load_id
    from month_end_accounts as a
    inner join params as p on a.month_end = p.month_end
    cross join first_loaded as fl
    -- the account's first loaded business date (int_od__positions_daily keeps it per row)
    left join positions as h on a.od_account_id = h.od_account_id and a.month_end = h.business_date
    left join customers as c on a.customer_id = c.customer_id and a.month_end = c.business_date
    left join deposits as d on a.fd_account_id = d.fd_account_id and a.month_end = d.business_date
    left join fx as fx_approval on a.approved_on = fx_approval.business_date and a.currency = fx_approval.currency
    left join fx as fx_deposit on a.approved_on = fx_deposit.business_date and d.currency = fx_deposit.currency
    left join fx as fx_month_end on a.month_end = fx_month_end.business_date and a.currency = fx_month_end.currency
    left join rounding_units as u on {{ join_rounding_unit('u', 'a.currency', 'a.month_end') }}
    left join {{ ref('int_policy__parameter_versions') }} as fee_basis
        on {{ join_policy_param('fee_basis', 'processing_fee_basis_on_increase', 'a.approved_on') }}
    left join previous_limits as before
        on
            a.od_account_id = before.od_account_id
            and a.approved_on = before.approved_on
            and a.start_date < a.approved_on
),

-- average daily agent liquidity over [approved_on - lookback, approved_on), once per approval
liquidity_windows as (
    select distinct
        customer_id,
        approved_on,
        liquidity_window_start as window_start
    from base
    where is_agent
),

-- only windows inside the loaded history read the liquidity rows (the others are not evaluable anyway)
evaluable_windows as (
    select w.*
    from liquidity_windows as w
    cross join first_loaded as fl
    where w.window_start >= fl.first_loaded_date
),

liquidity as (
    select
        w.customer_id,
        w.approved_on,
        w.window_start,
        avg(l.liquidity_usd) as avg_liquidity_usd,
        count(l.liquidity_usd) as liquidity_days
    from evaluable_windows as w
    left join {{ ref('stg_core_banking__agent_liquidity') }} as l
        on
            w.customer_id = l.customer_id
            and l.business_date >= w.window_start
            and l.business_date < w.approved_on
    group by w.customer_id, w.approved_on, w.window_start
),

-- cash withdrawals and processing fees with their reversal chains: a reversal counts -amount on its own date,
-- a reversal of a reversal +amount, so sums up to a date net out what was cancelled by then
transactions as (
    select txn_id, od_account_id, business_date, txn_type, amount, reversed_txn_id
    from {{ ref('stg_core_banking__od_transactions') }}
    where
        txn_type in ('CASH_WITHDRAWAL', 'PROCESSING_FEE', 'REVERSAL')
        {% if nothing_to_check %}and false  -- no new month end: skip the history scan{% endif %}
),

flows as (
    {# a recursive CTE inside a with-list needs "with recursive" at the top; a nested query avoids it #}
    with recursive chain (txn_id, od_account_id, business_date, amount, root_type, root_date, sign, depth) as (
        select txn_id, od_account_id, business_date, amount, txn_type, business_date, 1, 0
        from transactions
        where txn_type in ('CASH_WITHDRAWAL', 'PROCESSING_FEE')
        union all
        select r.txn_id, r.od_account_id, r.business_date, r.amount, c.root_type, c.root_date, -c.sign, c.depth + 1
        from chain as c
        inner join transactions as r
            on r.reversed_txn_id = c.txn_id and r.od_account_id = c.od_account_id and r.txn_type = 'REVERSAL'
        where c.depth < 10
    )

    select od_account_id, business_date, root_type, root_date, sign * amount as signed_amount
    from chain
),

-- net flows of one root type per account; processing_fees below is alike in shape with its own window
-- (approval to start date) and applies to every OD, not agents only: two facts, two CTEs
cash_withdrawals as (
    select
        b.od_account_id,
        b.month_end,
        sum(f.signed_amount) as net_cash_withdrawn
    from base as b
    inner join flows as f
        on
            b.od_account_id = f.od_account_id
            and f.root_type = 'CASH_WITHDRAWAL'
            and f.business_date <= b.month_end
    where b.is_agent
    group by b.od_account_id, b.month_end
),

-- (alike in shape with cash_withdrawals above: see there) the fee of the current approval: posted on or after approved_on and on or before the start date (a limit
-- increase keeps its old start date, so its fee is due on the approval date itself)
processing_fees as (
    select
        b.od_account_id,
        b.month_end,
        sum(f.signed_amount) as net_fee_posted
    from base as b
    inner join flows as f
        on
            b.od_account_id = f.od_account_id
            and f.root_type = 'PROCESSING_FEE'
            and f.root_date between b.approved_on and greatest(b.start_date, b.approved_on)
            and f.business_date <= b.month_end
    group by b.od_account_id, b.month_end
),

-- the customer's other outstanding loans (ACTIVE, USD at the month end), not the OD's own conversion
other_loans as (
    select
        b.od_account_id,
        b.month_end,
        sum(
            case
                when l.currency = 'USD' then l.outstanding_principal
                else {{ to_usd('l.outstanding_principal', 'fx_loan') }}
            end
        ) as other_loans_usd,
        bool_or(l.currency <> 'USD' and fx_loan.currency is null) as missing_fx
    from base as b
    inner join loans as l
        on
            b.customer_id = l.customer_id
            and b.month_end = l.business_date
            and l.source_od_account_id is distinct from b.od_account_id
    left join fx as fx_loan on b.month_end = fx_loan.business_date and l.currency = fx_loan.currency
    group by b.od_account_id, b.month_end
),

facts as (
    select
        b.*,
        li.avg_liquidity_usd,
        li.liquidity_days,
        coalesce(cw.net_cash_withdrawn, 0) as net_cash_withdrawn,
        coalesce(pf.net_fee_posted, 0) as net_fee_posted,
        coalesce(ol.other_loans_usd, 0) as other_loans_usd,
        coalesce(ol.missing_fx, false) as other_loans_missing_fx,
        (b.start_date + make_interval(months => b.max_term_months::integer))::date as latest_allowed_maturity,
        (b.agent_since + make_interval(months => b.agent_min_partnership_months::integer))::date
            as earliest_allowed_approval,
        -- the fee this approval owes (rulebook C §8.2, J): approved limit x the account's processing_fee_rate,
        -- on the increment instead for a limit increase when the parameter says INCREMENT, none for a decrease
        -- (or an unchanged limit on the increment basis); rounded like any amount due (A)
        {{ round_to_unit(
            "case b.approval_kind"
            ~ " when 'DECREASE' then 0"
            ~ " when 'INCREASE' then case b.fee_basis_on_increase when 'INCREMENT'"
            ~ " then b.limit_amount - b.previous_limit_amount else b.limit_amount end"
            ~ " when 'UNCHANGED' then case b.fee_basis_on_increase when 'INCREMENT' then 0 else b.limit_amount end"
            ~ " else b.limit_amount end * b.processing_fee_rate",
            'b.rounding_unit',
        ) }} as processing_fee_due
    from base as b
    left join liquidity as li on b.customer_id = li.customer_id and b.approved_on = li.approved_on
        and b.liquidity_window_start = li.window_start and b.is_agent
    left join cash_withdrawals as cw on b.od_account_id = cw.od_account_id and b.month_end = cw.month_end
    left join processing_fees as pf on b.od_account_id = pf.od_account_id and b.month_end = pf.month_end
    left join other_loans as ol on b.od_account_id = ol.od_account_id and b.month_end = ol.month_end
)

select * from facts
