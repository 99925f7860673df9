{#-
    The shape every limit and eligibility check of int_od__policy_checks_month_end shares (rulebook G):
    null when the check does not apply to the account (`applies` is not true), NOT_EVALUABLE when its inputs are
    missing or predate the loaded history (never a breach), BREACH when `breached` holds, OK otherwise.
    Arguments are SQL boolean expressions over the facts' columns; `applies` and `not_evaluable` are optional.

    {{ policy_check('fd_ltv_exceeded', breached='limit_amount > fixed_deposit_max_ltv * fd_principal_in_od_currency',
                    applies="collateral_type = 'FIXED_DEPOSIT'", not_evaluable='fd_principal_in_od_currency is null') }}
-#}
{% macro policy_check(name, breached, applies=none, not_evaluable=none) -%}
    {%- set skip = "when (" ~ applies ~ ") is not true then null" if applies else "" -%}
    {%- set unknown = "when " ~ not_evaluable ~ " then 'NOT_EVALUABLE'" if not_evaluable else "" -%}
    case {{ skip }} {{ unknown }} when {{ breached }} then 'BREACH' else 'OK' end as {{ name }}
{%- endmacro %}
