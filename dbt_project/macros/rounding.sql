{#-
    Rounding of amounts that fall due or are booked (rulebook A): half away from zero to the currency's
    rounding unit (parameters rounding_unit_<ccy>: USD/THB 0.01, KHR 1 riel). PostgreSQL's numeric round() is
    half away from zero, and round(x / unit) * unit works for any unit (100 riel too).

    round_to_unit('p.amount', 'u.value')              -> round((p.amount) / (u.value)) * (u.value)
    required_rounding_unit('u.value', 'p.currency', 'p.business_date')
        -> u.value, or fails the query naming the parameter and the date when no version is in force
           (a null currency stays null: a row without its account snapshot has nothing to round)
    join_rounding_unit('u', 'p.currency', 'p.business_date')
        -> the join condition of int_policy__parameter_versions (alias u) on the row's currency and date
-#}
{% macro round_to_unit(amount, unit) -%}
    (round(({{ amount }}) / ({{ unit }})) * ({{ unit }}))
{%- endmacro %}

{% macro required_rounding_unit(unit, currency, on_date) -%}
    coalesce(
        {{ unit }},
        ('policy parameter rounding_unit_' || lower({{ currency }}) || ': 0 versions in force on ' || {{ on_date }})::numeric
    )
{%- endmacro %}

{% macro join_rounding_unit(alias, currency, on_date) -%}
    {{ alias }}.parameter_name = 'rounding_unit_' || lower({{ currency }})
    and {{ on_date }} >= {{ alias }}.effective_from and {{ on_date }} < {{ alias }}.effective_to
{%- endmacro %}
