-- Exclusion-list breaches (rulebook I): one row per APPROVED application whose activity is on the exclusion
-- list (seed activity_exclusion_list, in force on the decision date). A rejected application with an
-- excluded activity is the screening working, not a breach. Complete months only: applications decided and
-- delivered by the last complete month end (int_social__applications).
with applications as (
    select * from {{ ref('int_social__applications') }}
    where decision = 'APPROVED'
),

exclusion_list as (
    select * from {{ ref('activity_exclusion_list') }}
)

select
    a.application_id,
    a.customer_id,
    a.applied_on,
    a.decided_on,
    a.currency,
    a.amount,
    a.purpose_activity,
    x.activity_name,
    x.legal_basis,
    a.load_id
from applications as a
inner join exclusion_list as x
    on a.purpose_activity = x.activity_code and a.decided_on >= x.effective_from
