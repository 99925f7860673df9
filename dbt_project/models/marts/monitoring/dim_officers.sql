-- Officers as in the latest officers snapshot with their reporting line (int_monitoring__officer_chains):
-- direct manager, nearest senior manager (SM) and regional manager (RM) above them.
with chains as (
    select * from {{ ref('int_monitoring__officer_chains') }}
)

select
    officer_id,
    officer_name,
    role,
    branch_code,
    manager_id,
    senior_manager_id,
    regional_manager_id,
    business_date as as_of_date,
    load_id
from chains
where business_date = (select max(c.business_date) from chains as c)
