with source as (
    select * from {{ source('core_banking', 'ppi_surveys') }}
),

renamed as (
    select
        trim(survey_id) as survey_id,
        trim(customer_id) as customer_id,
        survey_date,
        wave,
        ppi_score,
        poverty_likelihood,
        _business_date as business_date,
        _load_id
    from source
)

select * from renamed
