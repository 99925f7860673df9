-- Over-indebtedness exceptions (rulebook I, client protection principle 2): one row per APPROVED application
-- whose debt service ratio at approval is above over_indebtedness_max_dsr in force on the decision date
-- (exactly at the parameter is within it), or approved without a Credit Bureau Cambodia check. Codes:
--   DSR_ABOVE_LIMIT_NO_CBC_CHECK, DSR_ABOVE_LIMIT, NO_CBC_CHECK, DSR_MISSING (no ratio recorded: not evaluable)
-- Complete months only: applications decided and delivered by the last complete month end (int_social__applications).
with applications as (
    select
        a.*,
        {{ policy_param('over_indebtedness_max_dsr', 'a.decided_on') }} as max_dsr,
        {{ policy_param_version('over_indebtedness_max_dsr', 'a.decided_on') }} as parameter_version
    from {{ ref('int_social__applications') }} as a
    where a.decision = 'APPROVED'
),

checked as (
    select
        *,
        case
            when debt_service_ratio > max_dsr and not cbc_checked then 'DSR_ABOVE_LIMIT_NO_CBC_CHECK'
            when debt_service_ratio > max_dsr then 'DSR_ABOVE_LIMIT'
            when not cbc_checked then 'NO_CBC_CHECK'
            when debt_service_ratio is null then 'DSR_MISSING'
        end as exception
    from applications
)

select
    application_id,
    customer_id,
    applied_on,
    decided_on,
    currency,
    amount,
    debt_service_ratio,
    max_dsr,
    cbc_checked,
    exception,
    parameter_version,
    load_id
from checked
where exception is not null
