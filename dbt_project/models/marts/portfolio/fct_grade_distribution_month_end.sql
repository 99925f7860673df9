-- Accounts, outstanding and provisions per NBC grade at each loaded month end, for the OD book and for term
-- loans (rulebook F): always all five grades per product family, zeros where a grade is empty (the board
-- pack shows the full table). USD at the month end's NBC rate. Choices: docs/policy-engine.md G.
-- Incremental by month end (macros/month_end_incremental.sql): a re-delivered date redoes every later month end.
-- depends_on: {{ ref('stg_core_banking__branches') }}

{% set from_date = month_end_rebuild_from() -%}

with positions as (
    {{ rows_since_from_date(ref('int_portfolio__positions_month_end'), from_date, 'month_end') }}
),

month_ends as (
    select
        month_end,
        max(load_id) as load_id,
        {{ max_input_load_id('month_end') }} as max_input_load_id
    from positions
    group by month_end
),

-- the five grades of the rules in force on the month end (names and order are the same for both term classes)
grades as (
    select
        m.month_end,
        m.load_id,
        m.max_input_load_id,
        r.grade,
        r.grade_order,
        r.is_non_performing,
        'nbc_grading@' || to_char(max(r.effective_from) over (partition by m.month_end), 'YYYY-MM-DD')
            as parameter_version
    from month_ends as m
    inner join {{ ref('int_policy__nbc_grading_rule_versions') }} as r
        on m.month_end >= r.effective_from and m.month_end < r.effective_to
    where r.term_class = 'SHORT'
),

families as (
    select product_family from (values ('OD'), ('TERM')) as f (product_family)
),

by_grade as (
    select
        month_end,
        product_family,
        nbc_grade,
        count(*) filter (where in_portfolio) as accounts,
        -- null when any position lacks the month end's FX rate (never a silent partial sum)
        {{ complete_sum('outstanding_usd') }} as outstanding_usd,
        {{ complete_sum('provision_usd') }} as provision_usd
    from positions
    group by month_end, product_family, nbc_grade
)

select
    g.month_end,
    f.product_family,
    g.grade as nbc_grade,
    g.grade_order,
    g.is_non_performing,
    coalesce(b.accounts, 0) as accounts,
    case when b.month_end is null then 0 else b.outstanding_usd end as outstanding_usd,
    case when b.month_end is null then 0 else b.provision_usd end as provision_usd,
    g.parameter_version,
    g.load_id,
    g.max_input_load_id
from grades as g
cross join families as f
left join by_grade as b
    on g.month_end = b.month_end and f.product_family = b.product_family and g.grade = b.nbc_grade
