{#-
    SQL: the last day of the newest complete month, null before the first month is complete. Dates load
    consecutively (pipeline.months_ready_to_close), so the newest loaded business date that is a month's last
    day closes its month. Month-end models that read events (applications, surveys, complaints) keep only the
    deliveries and dates up to it, so they hold what belongs to complete months whenever they are built: a build
    on 10 March holds what the build at the February close held (docs/policy-engine.md I, "Complete months").
-#}
{% macro last_complete_month_end() -%}
    (
        select max(loaded.business_date) from {{ ref('stg_core_banking__branches') }} as loaded
        where loaded.business_date = (date_trunc('month', loaded.business_date) + interval '1 month - 1 day')::date
    )
{%- endmacro %}
