{#-
    Policy parameters on a date (docs/decisions/0004-policy-parameters.md).

    policy_param('stagnation_window_days', 'b.business_date')         -> numeric value in force on that date
    policy_param_text('day_count_convention', 'b.business_date')      -> text value in force on that date
    policy_param_version('stagnation_window_days', 'b.business_date') -> 'stagnation_window_days@2019-01-01'
    parameter_version_id("'stagnation_window_days'", 's.window_version_from')
        -> the version id of a parameter's version from its name and effective date (both SQL), the one spelling
           of int_policy__parameter_versions.parameter_version: a daily table stores the date (4 bytes a row)

    on_date is a SQL expression (a column or a literal such as "date '2026-10-31'"), required: a model always
    names the date its row is computed for, so a re-run of an old month uses the parameters of that month.
    Each call is a scalar subquery; in a big model resolve parameters once per distinct date in a small CTE
    and join it on the date (see int_policy__parameter_versions). A name with no version in force on the date
    fails the query with "policy parameter <name>: 0 versions in force on <date>" instead of yielding null
    (the message depends on count(*), so PostgreSQL cannot fold it into a plan-time error).

    The same rules for a model that joins int_policy__parameter_versions (or a CTE of it) once per date:
    join_policy_param('pv', 'stagnation_window_days', 'x.business_date')
        -> the join condition of the version in force on that date (alias pv)
    required_policy_param('pv', 'stagnation_window_days', 'x.business_date'[, 'value_text'])
        -> pv.value (or pv.value_text), or fails the query with the message above when no version is in force
-#}
{% macro policy_param(name, on_date) -%}
    {{ _policy_param_lookup(name, on_date, 'value', 'numeric') }}
{%- endmacro %}

{% macro policy_param_text(name, on_date) -%}
    {{ _policy_param_lookup(name, on_date, 'value_text', 'text') }}
{%- endmacro %}

{% macro policy_param_version(name, on_date) -%}
    {{ _policy_param_lookup(name, on_date, 'parameter_version', 'text') }}
{%- endmacro %}

{% macro _policy_param_lookup(name, on_date, column, sql_type) -%}
    {%- if on_date is none or (on_date | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error("policy_param('" ~ name ~ "'): on_date is required") }}
    {%- endif -%}
    (
        select
            case
                when count(*) = 1 then max(pv.{{ column }})
                else (
                    'policy parameter {{ name }}: ' || count(*)
                    || ' versions in force on ' || ({{ on_date }})::text
                )::numeric::{{ sql_type }}
            end
        from {{ ref('int_policy__parameter_versions') }} as pv
        where
            pv.parameter_name = '{{ name }}'
            and pv.effective_from <= {{ on_date }}
            and {{ on_date }} < pv.effective_to
    )
{%- endmacro %}

{% macro join_policy_param(alias, name, on_date) -%}
    {{ alias }}.parameter_name = '{{ name }}'
    and {{ on_date }} >= {{ alias }}.effective_from and {{ on_date }} < {{ alias }}.effective_to
{%- endmacro %}

{% macro required_policy_param(alias, name, on_date, column='value') -%}
    {%- set failing_cast = 'integer::text' if column == 'value_text' else 'numeric' -%}
    coalesce(
        {{ alias }}.{{ column }},
        ('policy parameter {{ name }}: 0 versions in force on ' || {{ on_date }})::{{ failing_cast }}
    )
{%- endmacro %}

{% macro parameter_version_id(name, effective_from) -%}
    {{ name }} || '@' || to_char({{ effective_from }}, 'YYYY-MM-DD')
{%- endmacro %}
