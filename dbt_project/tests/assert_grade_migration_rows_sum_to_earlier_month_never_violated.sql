-- Rulebook K: each row of the migration matrix (a from_grade other than NEW) sums to the accounts graded so at
-- the earlier month end, for OD and term loans apart. Returns the offending (month end, family, grade) rows.
{{ config(tags=['month_end']) }}

with matrix as (
    select
        month_end,
        previous_month_end,
        product_family,
        from_grade,
        sum(accounts) as matrix_accounts
    from {{ ref('fct_grade_migration_month_end') }}
    where from_grade <> 'NEW'
    group by month_end, previous_month_end, product_family, from_grade
),

graded as (
    select
        month_end,
        product_family,
        nbc_grade,
        count(*) as graded_accounts
    from {{ ref('int_quality__exposures_month_end') }}
    where nbc_grade is not null and product_family in ('OD', 'TERM')
    group by month_end, product_family, nbc_grade
),

-- the earlier month end's graded accounts, under the later month end of every pair in the matrix
expected as (
    select distinct
        pair.month_end,
        g.product_family,
        g.nbc_grade,
        g.graded_accounts
    from {{ ref('fct_grade_migration_month_end') }} as pair
    inner join graded as g on pair.previous_month_end = g.month_end
)

select
    coalesce(m.month_end, e.month_end) as month_end,
    coalesce(m.product_family, e.product_family) as product_family,
    coalesce(m.from_grade, e.nbc_grade) as from_grade,
    coalesce(m.matrix_accounts, 0) as matrix_accounts,
    coalesce(e.graded_accounts, 0) as graded_accounts
from expected as e
full outer join matrix as m
    on e.month_end = m.month_end and e.product_family = m.product_family and e.nbc_grade = m.from_grade
where coalesce(m.matrix_accounts, 0) <> coalesce(e.graded_accounts, 0)
