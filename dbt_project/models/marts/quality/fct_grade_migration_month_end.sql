-- Grade migration (roll rates; rulebook K), one row per (month_end, product_family, from_grade, to_grade) with
-- at least one account, for each loaded month end whose previous calendar month end is loaded too: the graded
-- accounts of int_quality__exposures_month_end at the earlier month end against the later one, OD and TERM
-- apart. from_grade NEW for arrivals (graded at the later month end only). to_grade for exits (graded at the
-- earlier month end only), by the account's status on the later month end: WRITTEN_OFF, CONVERTED (ODs), else
-- CLOSED (closed, repaid and undrawn, or a term loan CLOSED or gone from the snapshot). outstanding_usd is
-- at the earlier month end for exits, the later one otherwise. Each from_grade's rows add up to the accounts
-- graded so at the earlier month end (tests/assert_grade_migration_rows_sum_to_earlier_month_never_violated.sql).
-- Incremental by month end (macros/month_end_incremental.sql): a close adds its own pair, a re-delivered date
-- redoes every later one; rebuilt in full it took 15 s a close at 100,000 x 365. Choices: docs/policy-engine.md K.
-- depends_on: {{ ref('stg_core_banking__branches') }}
{#- the pre-hook deletes every rebuilt month end, also one a re-delivery left without rows -#}
{{ config(
    materialized='incremental',
    unique_key=['month_end'],
    pre_hook="{% set since = month_end_rebuild_from() %}"
        ~ "{% if since %}delete from {{ this }} where month_end >= '{{ since }}'::date{% endif %}",
) }}

{% set from_date = month_end_rebuild_from() -%}

with exposures as (
    select * from {{ ref('int_quality__exposures_month_end') }}
    where
        nbc_grade is not null and product_family in ('OD', 'TERM')
        {#- the earlier month end of the first rebuilt pair on -#}
        {% if from_date %}
            and month_end >= (date_trunc('month', '{{ from_date }}'::date) - interval '1 day')::date
        {% endif %}
),

portfolio_month_ends as (
    {{ portfolio_month_ends() }}
),

-- consecutive pairs: a loaded month end (one rebuilt) and the previous calendar month end, when loaded, with
-- the later one's newest input load (the incremental watermark), looked up once each
pairs as materialized (
    select
        later.month_end,
        earlier.month_end as previous_month_end,
        {{ max_input_load_id('later.month_end') }} as max_input_load_id
    from portfolio_month_ends as later
    inner join portfolio_month_ends as earlier
        on earlier.month_end = (date_trunc('month', later.month_end) - interval '1 day')::date
    {% if from_date -%}
        where later.month_end >= '{{ from_date }}'::date
    {%- endif %}
),

-- earlier and later differ only in the month end they read: two plain CTEs for the full outer join of moves
-- (one CTE with a side flag would have to be split again to be joined to itself)
earlier as (
    select
        p.month_end,
        e.product_family,
        e.account_id,
        e.nbc_grade,
        e.grade_order,
        e.outstanding_usd
    from pairs as p
    inner join exposures as e on p.previous_month_end = e.month_end
),

later as (
    select
        e.month_end,
        e.product_family,
        e.account_id,
        e.nbc_grade,
        e.grade_order,
        e.outstanding_usd
    from pairs as p
    inner join exposures as e on p.month_end = e.month_end
),

-- every account's status on the later month end, ODs and term loans apart (an exit's to_grade)
later_status as (
    select
        'OD' as product_family,
        od_account_id as account_id,
        business_date as month_end,
        status
    from {{ ref('int_od__positions_daily') }}
    where business_date = any(array(select month_end from pairs))
    union all
    select
        'TERM' as product_family,
        loan_id as account_id,
        business_date as month_end,
        status
    -- the status alone: the snapshot, not the grade view; the month ends as an array (computed once), so the
    -- condition reaches meta.loads before the change history is expanded (a join expanded every date first)
    from {{ ref('stg_core_banking__loans') }}
    where business_date = any(array(select month_end from pairs))
),

moves as (
    select
        coalesce(l.month_end, e.month_end) as month_end,
        coalesce(l.product_family, e.product_family) as product_family,
        coalesce(e.nbc_grade, 'NEW') as from_grade,
        coalesce(e.grade_order, 0) as from_grade_order,
        case
            when l.account_id is not null then l.nbc_grade
            when s.status = 'WRITTEN_OFF' then 'WRITTEN_OFF'
            when s.status = 'CONVERTED' and s.product_family = 'OD' then 'CONVERTED'
            else 'CLOSED'
        end as to_grade,
        l.grade_order as later_grade_order,
        case when l.account_id is null then e.outstanding_usd else l.outstanding_usd end as outstanding_usd
    from earlier as e
    full outer join later as l
        on e.month_end = l.month_end and e.product_family = l.product_family and e.account_id = l.account_id
    left join later_status as s
        on
            l.account_id is null and e.product_family = s.product_family
            and e.account_id = s.account_id and e.month_end = s.month_end
),

-- an exit's to_grade ranks after the five grades: CLOSED 6, CONVERTED 7, WRITTEN_OFF 8
ranked_moves as (
    select
        month_end,
        product_family,
        from_grade,
        from_grade_order,
        to_grade,
        case to_grade
            when 'CLOSED' then 6
            when 'CONVERTED' then 7
            when 'WRITTEN_OFF' then 8
            else later_grade_order
        end as to_grade_order,
        outstanding_usd
    from moves
)

-- one cast per column to the enforced contract's type (_quality__models.yml): each mart's own columns, not shared
select
    m.month_end::date as month_end,
    p.previous_month_end::date as previous_month_end,
    m.product_family::text as product_family,
    m.from_grade::text as from_grade,
    m.from_grade_order::integer as from_grade_order,
    m.to_grade::text as to_grade,
    m.to_grade_order::integer as to_grade_order,
    count(*)::bigint as accounts,
    -- null when any account lacks its month end's FX rate (never a silent partial sum)
    ({{ complete_sum('m.outstanding_usd') }})::numeric as outstanding_usd,
    p.max_input_load_id::bigint as max_input_load_id
from ranked_moves as m
inner join pairs as p on m.month_end = p.month_end
group by
    m.month_end, p.previous_month_end, m.product_family, m.from_grade, m.from_grade_order, m.to_grade,
    m.to_grade_order, p.max_input_load_id
