{#-
    Unit-test fixtures cast every value with safe_cast(value, <column data_type>). dbt-postgres reads column types
    from information_schema, where every array is just "ARRAY" (dbt-labs/dbt-adapters#939), so a fixture for a
    text[] column (policy_breaches) rendered `cast('{}' as ARRAY)`, a syntax error. Every array column of this
    project is text[]; any other type passes through unchanged.
-#}
{% macro postgres__safe_cast(field, type) -%}
    {%- if type | upper == 'ARRAY' -%}
        cast({{ field }} as text[])
    {%- else -%}
        cast({{ field }} as {{ type }})
    {%- endif -%}
{%- endmacro %}
