-- Each loaded date's od_transactions file is classified whole: one int_od__transactions_classified row per
-- delivered transaction and the amounts summing to the manifest's control total (the file's amount column),
-- so no transaction is lost or doubled on its way to days past due, stagnation and agent monitoring.
with delivered as (
    select
        l.business_date,
        f.rows as manifest_rows,
        f.control_total as manifest_total
    from {{ source('meta', 'loads') }} as l
    inner join {{ source('meta', 'load_files') }} as f on l.load_id = f.load_id
    where l.superseded_at is null and f.file_name = 'od_transactions.csv'
),

classified as (
    select
        business_date,
        count(*) as classified_rows,
        coalesce(sum(amount), 0) as classified_total
    from {{ ref('int_od__transactions_classified') }}
    where business_date in (select d.business_date from delivered as d)
    group by business_date
)

select
    d.business_date,
    d.manifest_rows,
    m.classified_rows,
    d.manifest_total,
    m.classified_total
from delivered as d
left join classified as m on d.business_date = m.business_date
where
    d.manifest_rows <> coalesce(m.classified_rows, 0)
    or d.manifest_total is distinct from coalesce(m.classified_total, 0)
