-- the staging shape of the dbt structure guide (source, renamed): one view per raw table, alike by design
with source as (
    select * from {{ source('core_banking', 'od_balances') }}
),

renamed as (
    select
        trim(od_account_id) as od_account_id,
        -- the contract makes the column equal the folder's date; the load's copy is indexed (date-range reads)
        _business_date as business_date,
        principal_outstanding,
        interest_receivable,
        fees_receivable,
        _load_id
    from source
)

select * from renamed
