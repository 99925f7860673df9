{#-
    The rows an incremental run recomputes: `select * from <relation>`, on an incremental run only those on or
    after from_date (daily_rebuild_from / month_end_rebuild_from; none on a full build reads every row).
    `date_column` is the relation's date (`month_end` for monthly relations). A literal date: index range scan.
-#}
{% macro rows_since_from_date(relation, from_date, date_column='business_date') -%}
    select * from {{ relation }}
    {%- if from_date %}
    where {{ date_column }} >= '{{ from_date }}'::date
    {%- endif %}
{%- endmacro %}
