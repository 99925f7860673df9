with source as (
    select * from {{ source('core_banking', 'od_transactions') }}
),

renamed as (
    select
        trim(txn_id) as txn_id,
        trim(od_account_id) as od_account_id,
        -- the contract makes the column equal the folder's date; the load's copy is indexed (date-range reads)
        _business_date as business_date,
        trim(txn_type) as txn_type,
        trim(direction) as direction,
        amount,
        trim(channel) as channel,
        trim(reversed_txn_id) as reversed_txn_id,
        _load_id
    from source
)

select * from renamed
