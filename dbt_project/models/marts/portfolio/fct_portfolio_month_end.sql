-- The OD portfolio against the total loan portfolio at each loaded month end (rulebook F, G; OD policy §14):
-- OD outstanding <= portfolio_cap_ratio (10%) of OD + term loans in USD at the month end's rate, early warning
-- above portfolio_early_warning_ratio (8%); NPL ratio of the OD book; provisions. Both levels are "breached"
-- when the share is strictly above them (exactly 10% is within the cap). Choices: docs/policy-engine.md G.
-- Incremental by month end (macros/month_end_incremental.sql): a re-delivered date redoes every later month end.
-- depends_on: {{ ref('stg_core_banking__branches') }}

{% set from_date = month_end_rebuild_from() -%}

with positions as (
    {{ rows_since_from_date(ref('int_portfolio__positions_month_end'), from_date, 'month_end') }}
),

month_ends as (
    select distinct month_end from positions
),

grading_rules as (
    select
        m.month_end,
        r.grade,
        r.is_non_performing,
        r.effective_from
    from month_ends as m
    inner join {{ ref('int_policy__nbc_grading_rule_versions') }} as r
        on m.month_end >= r.effective_from and m.month_end < r.effective_to
    where r.term_class = 'SHORT'
),

-- NPL = Substandard, Doubtful, Loss: is_non_performing of the grading rules in force
non_performing_grades as (
    select
        month_end,
        grade
    from grading_rules
    where is_non_performing
),

params as materialized (
    select
        m.month_end,
        {{ policy_param('portfolio_cap_ratio', 'm.month_end') }} as od_cap,
        {{ policy_param('portfolio_early_warning_ratio', 'm.month_end') }} as early_warning,
        {{ policy_param_version('portfolio_cap_ratio', 'm.month_end') }}
        || ',' || {{ policy_param_version('portfolio_early_warning_ratio', 'm.month_end') }}
        || ',nbc_grading@' || (
            select to_char(max(g.effective_from), 'YYYY-MM-DD') from grading_rules as g
            where g.month_end = m.month_end
        ) as parameter_version,
        {{ max_input_load_id('m.month_end') }} as max_input_load_id
    from month_ends as m
),

-- a USD total is null when any of its positions lacks the month end's FX rate (never a silent partial sum)
totals as (
    select
        p.month_end,
        {%- for family, prefix in [('OD', 'od'), ('TERM', 'term_loan')] %}
            {%- set of_family = "p.product_family = '" ~ family ~ "'" %}
            {{ complete_sum('p.outstanding_usd', of_family, zero_when_empty=true) }} as {{ prefix }}_outstanding_usd,
            {{ complete_sum('p.provision_usd', of_family, zero_when_empty=true) }} as {{ prefix }}_provision_usd,
            count(*) filter (where p.product_family = '{{ family }}' and p.in_portfolio)
                as {{ prefix }}_accounts,
        {%- endfor %}
        case
            when bool_or(p.outstanding_usd is null) filter (where p.product_family = 'OD') then null
            else
                coalesce(
                    sum(p.outstanding_usd) filter (where p.product_family = 'OD' and npl.grade is not null), 0
                )
        end as od_npl_outstanding_usd,
        max(p.load_id) as load_id
    from positions as p
    left join non_performing_grades as npl on p.month_end = npl.month_end and p.nbc_grade = npl.grade
    group by p.month_end
),

shares as (
    select
        t.*,
        t.od_outstanding_usd + t.term_loan_outstanding_usd as total_portfolio_usd,
        t.od_provision_usd + t.term_loan_provision_usd as provision_total_usd,
        -- trim_scale: a ratio of exactly 0.1 reads 0.1 (unrounded; only trailing zeros go)
        trim_scale(t.od_outstanding_usd / nullif(t.od_outstanding_usd + t.term_loan_outstanding_usd, 0))
            as od_share,
        trim_scale(t.od_npl_outstanding_usd / nullif(t.od_outstanding_usd, 0)) as npl_ratio_od
    from totals as t
)

select
    s.month_end,
    s.od_outstanding_usd,
    s.term_loan_outstanding_usd,
    s.total_portfolio_usd,
    s.od_share,
    p.od_cap,
    -- no portfolio at all: nothing to breach; an unknown total (FX missing): unknown
    case when s.total_portfolio_usd = 0 then false else s.od_share > p.od_cap end as cap_breached,
    p.early_warning,
    case when s.total_portfolio_usd = 0 then false else s.od_share > p.early_warning end
        as early_warning_breached,
    s.od_npl_outstanding_usd,
    s.npl_ratio_od,
    s.od_provision_usd,
    s.term_loan_provision_usd,
    s.provision_total_usd,
    s.od_accounts,
    s.term_loan_accounts,
    p.parameter_version,
    s.load_id,
    p.max_input_load_id
from shares as s
inner join params as p on s.month_end = p.month_end
