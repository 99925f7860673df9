-- Portfolio quality at each loaded month end (rulebook K; published-interface.md), one row per product family
-- OD, TERM and ALL, every family present (zeros for an empty book): gross outstanding, PAR 1 / 30 / 90 (DPD > n,
-- thresholds from par_thresholds_days), provisions, risk coverage = provisions / PAR 30 outstanding (null when
-- nothing is at risk), amounts written off in the month and the 12-month write-off ratio = written off over the
-- loaded month ends of the 12 months ending here / their average gross outstanding (months_in_window says how
-- many: fewer while the history is shorter). USD at each month end's NBC rate. Choices: docs/policy-engine.md K.
-- Rebuilt in full at each month close (the 12-month window reads earlier month ends).
with par as (
    select
        month_end,
        product_family,
        {{ par_columns() }}
    from {{ ref('int_quality__par_month_end') }}
    where segment_type = 'PORTFOLIO'
    group by month_end, product_family
),

month_ends as (
    {{ portfolio_month_ends() }}
),

families as (
    select product_family from (values ('OD'), ('TERM'), ('ALL')) as f (product_family)
),

write_offs as (
    select
        w.month_end,
        f.product_family,
        count(*) as written_off_accounts,
        {{ complete_sum('w.amount_written_off_usd') }} as written_off_usd
    from {{ ref('int_quality__write_offs_month_end') }} as w
    cross join lateral (values (w.product_family), ('ALL')) as f (product_family)
    group by w.month_end, f.product_family
),

-- an empty family reads zero, not null (no credit is at risk in an empty book)
monthly as (
    select
        m.month_end,
        f.product_family,
        coalesce(p.accounts, 0) as accounts,
        case when p.month_end is null then 0 else p.gross_outstanding_usd end as gross_outstanding_usd,
        case when p.month_end is null then 0 else p.par1_usd end as par1_usd,
        case when p.month_end is null then 0 else p.par30_usd end as par30_usd,
        case when p.month_end is null then 0 else p.par90_usd end as par90_usd,
        case when p.month_end is null then 0 else p.provisions_usd end as provisions_usd,
        p.par1_ratio,
        p.par30_ratio,
        p.par90_ratio,
        coalesce(p.par30_accounts, 0) as par30_accounts,
        coalesce(w.written_off_accounts, 0) as written_off_accounts,
        case when w.month_end is null then 0 else w.written_off_usd end as written_off_usd,
        p.parameter_version,
        p.load_id
    from month_ends as m
    cross join families as f
    left join par as p on m.month_end = p.month_end and f.product_family = p.product_family
    left join write_offs as w on m.month_end = w.month_end and f.product_family = w.product_family
),

-- the loaded month ends of the 12 months ending at each month end (itself included)
last_12_months as (
    select
        m.month_end,
        m.product_family,
        count(*) as months_in_window,
        {{ complete_sum('h.written_off_usd') }} as written_off_12m_usd,
        case when bool_or(h.gross_outstanding_usd is null) then null else avg(h.gross_outstanding_usd) end
            as average_gross_outstanding_12m_usd
    from monthly as m
    inner join monthly as h
        on
            m.product_family = h.product_family
            and h.month_end <= m.month_end
            and h.month_end >= (date_trunc('month', m.month_end) - interval '11 months')::date
    group by m.month_end, m.product_family
)

-- one cast per column to the enforced contract's type (_quality__models.yml): each mart's own columns, not shared
select
    m.month_end::date as month_end,
    m.product_family::text as product_family,
    m.accounts::bigint as accounts,
    m.gross_outstanding_usd::numeric as gross_outstanding_usd,
    m.par1_usd::numeric as par1_usd,
    m.par30_usd::numeric as par30_usd,
    m.par90_usd::numeric as par90_usd,
    m.par1_ratio::numeric as par1_ratio,
    m.par30_ratio::numeric as par30_ratio,
    m.par90_ratio::numeric as par90_ratio,
    m.par30_accounts::bigint as par30_accounts,
    m.provisions_usd::numeric as provisions_usd,
    trim_scale(m.provisions_usd / nullif(m.par30_usd, 0))::numeric as risk_coverage,
    m.written_off_accounts::bigint as written_off_accounts,
    m.written_off_usd::numeric as written_off_usd,
    t.written_off_12m_usd::numeric as written_off_12m_usd,
    trim_scale(t.average_gross_outstanding_12m_usd)::numeric as average_gross_outstanding_12m_usd,
    t.months_in_window::integer as months_in_window,
    trim_scale(t.written_off_12m_usd / nullif(t.average_gross_outstanding_12m_usd, 0))::numeric
        as write_off_ratio_12m,
    m.parameter_version::text as parameter_version,
    m.load_id::bigint as load_id
from monthly as m
inner join last_12_months as t on m.month_end = t.month_end and m.product_family = t.product_family
