{#-
    Published PAR columns (rulebook K) from rows of int_quality__par_month_end grouped to one row per key:
    par<n>_usd and par<n>_ratio (0-1, unrounded) for the published thresholds, null when n is not in the
    par_thresholds_days list in force (the row set then has no threshold n), plus the totals every threshold row
    repeats. Use inside a select grouped by the mart's key.
-#}
{% macro par_columns(published_thresholds=(1, 30, 90)) -%}
    max(accounts) as accounts,
    max(gross_outstanding_usd) as gross_outstanding_usd,
    {%- for n in published_thresholds %}
    max(par_usd) filter (where threshold_days = {{ n }}) as par{{ n }}_usd,
    {%- endfor %}
    {%- for n in published_thresholds %}
    trim_scale(max(par_usd) filter (where threshold_days = {{ n }}) / nullif(max(gross_outstanding_usd), 0))
        as par{{ n }}_ratio,
    {%- endfor %}
    max(par_accounts) filter (where threshold_days = 30) as par30_accounts,
    max(provisions_usd) as provisions_usd,
    string_agg(distinct parameter_version, ',') as parameter_version,
    max(load_id) as load_id
{%- endmacro %}
