with source as (
    select * from {{ source('core_banking', 'loan_applications') }}
),

renamed as (
    select
        trim(application_id) as application_id,
        trim(customer_id) as customer_id,
        applied_on,
        decided_on,
        trim(decision) as decision,
        trim(currency) as currency,
        amount,
        trim(purpose_activity) as purpose_activity,
        business_purpose,
        es_screened,
        trim(es_risk) as es_risk,
        es_contract_signed,
        es_mitigation_plan,
        debt_service_ratio,
        cbc_checked,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
