-- Each loaded date's od_balances file reaches fct_od_daily whole: one row per delivered balance and the
-- principal summing to the manifest's control total (the file's principal_outstanding), so the daily build
-- fails on the date that breaks it (the month-end gate re-checks the same on month ends only).
with delivered as (
    select
        l.business_date,
        f.rows as manifest_rows,
        f.control_total as manifest_total
    from {{ source('meta', 'loads') }} as l
    inner join {{ source('meta', 'load_files') }} as f on l.load_id = f.load_id
    where l.superseded_at is null and f.file_name = 'od_balances.csv'
),

mart as (
    select
        business_date,
        count(*) as mart_rows,
        coalesce(sum(principal_outstanding), 0) as mart_total
    from {{ ref('fct_od_daily') }}
    where business_date in (select d.business_date from delivered as d)
    group by business_date
)

select
    d.business_date,
    d.manifest_rows,
    m.mart_rows,
    d.manifest_total,
    m.mart_total
from delivered as d
left join mart as m on d.business_date = m.business_date
where
    d.manifest_rows <> coalesce(m.mart_rows, 0)
    or d.manifest_total is distinct from coalesce(m.mart_total, 0)
