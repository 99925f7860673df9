-- Branches as in the latest branches snapshot (one row per branch_code), so reports need no staging.
-- A branch dropped from the latest snapshot is no longer listed (history stays in staging/raw).
with branches as (
    select * from {{ ref('stg_core_banking__branches') }}
),

latest as (
    select max(business_date) as as_of_date from branches
)

select
    b.branch_code,
    b.branch_name,
    b.province,
    b.region_code,
    b.region_name,
    b.business_date as as_of_date,
    b._load_id as load_id
from branches as b
inner join latest as l on b.business_date = l.as_of_date
