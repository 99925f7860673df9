-- Environmental and social screening (rulebook I), one row per decided business-purpose application.
-- Screening is required when amount_khr (the amount at the NBC rate of the application date, for USD and THB
-- too) is at or above es_screening_threshold_khr in force on the application date: exactly KHR 40,000,000 is
-- required, one riel below is not. A required application is compliant when screened and, if rated HIGH,
-- with a signed E&S contract and a mitigation plan; one that is not required is compliant. The facts are kept
-- for rejected applications too; exceptions that reach the review lists and the board pack are the approved
-- ones (decision = 'APPROVED'). Exception codes, first that applies:
--   NOT_SCREENED                   required and not screened
--   NO_RISK_RATING                 screened without an es_risk
--   HIGH_RISK_NO_CONTRACT_NO_PLAN  HIGH, neither a signed E&S contract nor a mitigation plan
--   HIGH_RISK_NO_CONTRACT          HIGH, no signed E&S contract
--   HIGH_RISK_NO_PLAN              HIGH, no mitigation plan
-- Complete months only: applications decided and delivered by the last complete month end (int_social__applications).
with applications as (
    select * from {{ ref('int_social__applications') }}
    where business_purpose
),

classified as (
    select
        a.*,
        {{ policy_param('es_screening_threshold_khr', 'a.applied_on') }} as threshold_khr,
        {{ policy_param_version('es_screening_threshold_khr', 'a.applied_on') }} as parameter_version
    from applications as a
),

checked as (
    select
        *,
        amount_khr >= threshold_khr as requires_screening,
        case
            when amount_khr is null or not amount_khr >= threshold_khr then null
            when not es_screened then 'NOT_SCREENED'
            when es_risk is null then 'NO_RISK_RATING'
            when es_risk <> 'HIGH' then null
            when not es_contract_signed and not es_mitigation_plan then 'HIGH_RISK_NO_CONTRACT_NO_PLAN'
            when not es_contract_signed then 'HIGH_RISK_NO_CONTRACT'
            when not es_mitigation_plan then 'HIGH_RISK_NO_PLAN'
        end as exception
    from classified
)

select
    application_id,
    customer_id,
    applied_on,
    decided_on,
    decision,
    currency,
    amount,
    amount_khr,
    fx_rate_date,
    threshold_khr,
    requires_screening,
    es_screened as screened,
    es_risk,
    es_contract_signed,
    es_mitigation_plan,
    case when amount_khr is null then null else exception is null end as compliant,
    exception,
    parameter_version,
    load_id
from checked
