-- noqa: disable=LT02,LT09,ST03,LT05
-- (Jinja loops over the check list generate this SQL: sqlfluff cannot lay out or follow those spans)
-- Limits and eligibility (rulebook G, plus restructuring from F §13.3), re-checked for every OD account in
-- the od_accounts snapshot of each loaded month end from its facts (int_od__policy_facts_month_end). Every
-- check yields BREACH, OK, NOT_EVALUABLE (its inputs predate the loaded history or are missing: never a
-- breach) or null (does not apply to the account): macros/policy_check.sql. Choices: docs/policy-engine.md G.
{% set codes = [
    'AGENT_LIMIT_EXCEEDED', 'AGENT_PARTNERSHIP_UNDER_6M', 'AGENT_LIQUIDITY_BELOW_MIN', 'AGENT_CASH_WITHDRAWAL',
    'PROPERTY_LTV_EXCEEDED', 'PROPERTY_LIMIT_ABOVE_MAX', 'FD_LTV_EXCEEDED', 'FD_LIMIT_ABOVE_MAX',
    'FD_MATURITY_BEFORE_OD', 'TERM_ABOVE_12_MONTHS', 'REFINANCE_PURPOSE', 'CROSS_FINANCE_EXPOSURE',
    'PROCESSING_FEE_NOT_COLLECTED', 'RESTRUCTURED',
] %}
-- Incremental by month end like its facts (macros/month_end_incremental.sql).
-- depends_on: {{ ref('stg_core_banking__branches') }}
{{ config(
    unique_key=['month_end'],
    tags=['month_end'],
    indexes=account_month_end_indexes(with_load_id=true),
) }}

{%- set from_date = month_end_rebuild_from() %}

with facts as (
    {{ rows_since_from_date(ref('int_od__policy_facts_month_end'), from_date, 'month_end') }}
),

-- one policy_check call per rule, alike in shape by design: the macro is the shape, its arguments the rule
checks as (
    select
        od_account_id,
        month_end,
        customer_id,
        currency,
        parameter_version,
        load_id,
        max_input_load_id,
        -- agent OD (customer type AGENT)
        {{ policy_check('agent_limit_exceeded', applies='is_agent',
            not_evaluable='limit_usd_at_approval is null',
            breached='limit_usd_at_approval > agent_max_limit_usd') }},
        {{ policy_check('agent_partnership_under_6m', applies='is_agent',
            not_evaluable='earliest_allowed_approval is null',
            breached='approved_on < earliest_allowed_approval') }},
        {{ policy_check('agent_liquidity_below_min', applies='is_agent',
            not_evaluable='liquidity_window_start < first_loaded_date or avg_liquidity_usd is null',
            breached='avg_liquidity_usd < agent_min_avg_liquidity_usd') }},
        {{ policy_check('agent_cash_withdrawal', applies='is_agent', breached='net_cash_withdrawn > 0') }},
        -- property collateral
        {{ policy_check('property_ltv_exceeded', applies="collateral_type = 'PROPERTY'",
            not_evaluable='collateral_value is null',
            breached='limit_amount > property_max_ltv * collateral_value') }},
        {{ policy_check('property_limit_above_max', applies="collateral_type = 'PROPERTY'",
            not_evaluable='limit_usd_at_approval is null',
            breached='limit_usd_at_approval > collateral_max_limit_usd') }},
        -- fixed-deposit collateral
        {{ policy_check('fd_ltv_exceeded', applies="collateral_type = 'FIXED_DEPOSIT'",
            not_evaluable='fd_principal_in_od_currency is null',
            breached='limit_amount > fixed_deposit_max_ltv * fd_principal_in_od_currency') }},
        {{ policy_check('fd_limit_above_max', applies="collateral_type = 'FIXED_DEPOSIT'",
            not_evaluable='limit_usd_at_approval is null',
            breached='limit_usd_at_approval > collateral_max_limit_usd') }},
        {{ policy_check('fd_maturity_before_od', applies="collateral_type = 'FIXED_DEPOSIT'",
            not_evaluable='not fd_found',
            breached='maturity_date > fd_maturity_date and not fd_frozen') }},
        -- every OD
        {{ policy_check('term_above_12_months', breached='maturity_date > latest_allowed_maturity') }},
        {{ policy_check('refinance_purpose', breached="purpose = 'REFINANCE'") }},
        {{ policy_check('cross_finance_exposure',
            not_evaluable='limit_usd_at_month_end is null or other_loans_missing_fx',
            breached='limit_usd_at_month_end + other_loans_usd > single_loan_exposure_limit_usd') }},
        -- a facility not started by the month end (start_date after it) owes no fee yet
        -- (rulebook J: a limit decrease owes none; the fee due is in the facts: on the limit or the increment)
        {{ policy_check('processing_fee_not_collected',
            applies="approval_kind is distinct from 'DECREASE' and processing_fee_due is distinct from 0",
            not_evaluable="first_business_date is null or approved_on < first_business_date or approval_kind = 'UNKNOWN'",
            breached='(start_date > month_end) is not true'
                ~ ' and (net_fee_posted <= 0 or net_fee_posted < processing_fee_due)') }},
        {{ policy_check('restructured', breached='restructured') }},
        -- human-readable reasons, shown for breaches and not-evaluable checks only
        coalesce(
            'limit USD ' || round(limit_usd_at_approval, 2) || ' > ' || agent_max_limit_usd
            || ' at the ' || approved_on || ' rate',
            'no ' || currency || ' FX rate on the approval date ' || approved_on
        ) as agent_limit_exceeded_reason,
        coalesce(
            'approved ' || approved_on || ', agent since ' || agent_since || ' (needs '
            || agent_min_partnership_months || ' months)',
            'agent_since is missing'
        ) as agent_partnership_under_6m_reason,
        case
            when liquidity_window_start < first_loaded_date
                then 'look-back from ' || liquidity_window_start || ' predates the first loaded date '
                || first_loaded_date
            when avg_liquidity_usd is null
                then 'no agent liquidity between ' || liquidity_window_start || ' and ' || approved_on
            else 'average liquidity USD ' || round(avg_liquidity_usd, 2) || ' < ' || agent_min_avg_liquidity_usd
                || ' over ' || liquidity_days || ' days before ' || approved_on
        end as agent_liquidity_below_min_reason,
        'net cash withdrawn ' || net_cash_withdrawn || ' ' || currency as agent_cash_withdrawal_reason,
        coalesce(
            'limit ' || limit_amount || ' > ' || property_max_ltv || ' x collateral ' || collateral_value
            || ' ' || currency,
            'collateral value is missing'
        ) as property_ltv_exceeded_reason,
        coalesce(
            'limit USD ' || round(limit_usd_at_approval, 2) || ' > ' || collateral_max_limit_usd,
            'no ' || currency || ' FX rate on the approval date ' || approved_on
        ) as property_limit_above_max_reason,
        case
            when not fd_found then 'fixed deposit ' || coalesce(fd_account_id, '(none)') || ' not in the snapshot'
            when fd_principal_in_od_currency is null
                then 'no ' || fd_currency || '/' || currency || ' FX rate on the approval date ' || approved_on
            else 'limit ' || limit_amount || ' > ' || fixed_deposit_max_ltv || ' x deposit '
                || round(fd_principal_in_od_currency, 2) || ' ' || currency
        end as fd_ltv_exceeded_reason,
        coalesce(
            'limit USD ' || round(limit_usd_at_approval, 2) || ' > ' || collateral_max_limit_usd,
            'no ' || currency || ' FX rate on the approval date ' || approved_on
        ) as fd_limit_above_max_reason,
        coalesce(
            'OD matures ' || maturity_date || ' after deposit ' || fd_account_id || ' (' || fd_maturity_date
            || ', not frozen)',
            'fixed deposit ' || coalesce(fd_account_id, '(none)') || ' not in the snapshot'
        ) as fd_maturity_before_od_reason,
        'term ' || start_date || ' to ' || maturity_date || ' exceeds '
        || max_term_months || ' months' as term_above_12_months_reason,
        'purpose REFINANCE' as refinance_purpose_reason,
        coalesce(
            'limit USD ' || round(limit_usd_at_month_end, 2) || ' + other loans USD '
            || round(other_loans_usd, 2) || ' > ' || single_loan_exposure_limit_usd,
            'FX rate missing on ' || month_end
        ) as cross_finance_exposure_reason,
        case
            when first_business_date is null then 'no balance row on the month end'
            when approved_on < first_business_date
                then 'approved ' || approved_on || ' before the account''s first loaded date '
                || first_business_date
            when approval_kind = 'UNKNOWN'
                then 'limit changed on ' || approved_on || ', the day before is not loaded (previous limit unknown)'
            else 'processing fee posted between ' || approved_on || ' and ' || greatest(start_date, approved_on)
                || ': ' || net_fee_posted || ' ' || currency || ' < ' || processing_fee_due || ' due ('
                || case approval_kind
                    when 'INCREASE' then 'limit increase ' || previous_limit_amount || ' -> ' || limit_amount
                        || ', on the ' || lower(fee_basis_on_increase)
                    when 'UNCHANGED' then 're-approval of ' || limit_amount
                    else 'approved limit ' || limit_amount
                end || ')'
        end as processing_fee_not_collected_reason,
        'restructured OD (policy §13.3)' as restructured_reason
    from facts
),

-- plain array and string expressions (no per-row subquery); codes in C order, so the arrays come out sorted,
-- and a reason is only built for a failed or not-evaluable check
{%- set sorted_codes = codes | sort %}
checks_summary as (
    select
        c.*,
        array_remove(array[
            {%- for code in sorted_codes %}
            case when c.{{ code | lower }} = 'BREACH' then '{{ code }}' end{{ ',' if not loop.last }}
            {%- endfor %}
        ], null) as policy_breaches,
        array_remove(array[
            {%- for code in sorted_codes %}
            case when c.{{ code | lower }} = 'NOT_EVALUABLE' then '{{ code }}' end{{ ',' if not loop.last }}
            {%- endfor %}
        ], null) as checks_not_evaluable,
        nullif(concat_ws(
            '; ',
            {%- for code in sorted_codes %}
            case c.{{ code | lower }}
                when 'BREACH' then '{{ code }}: ' || c.{{ code | lower }}_reason
                when 'NOT_EVALUABLE' then '{{ code }} not evaluable: ' || c.{{ code | lower }}_reason
            end{{ ',' if not loop.last }}
            {%- endfor %}
        ), '') as detail
    from checks as c
)

select
    od_account_id,
    month_end,
    customer_id,
    currency,
    policy_breaches,
    checks_not_evaluable,
    detail,
    parameter_version,
    load_id,
    max_input_load_id
from checks_summary
