{#-
    Generic test: each loaded date's file_name extract reaches the model whole: one model row per delivered row
    and amount_column summing to the manifest's control total, so the daily build fails on the date that breaks
    it (the month-end gate re-checks fct_od_daily on month ends only). Returns the offending dates. A model
    filtered to the dates its build rewrote (a query, not a relation: macros/rebuilt_dates.sql) is compared
    on those delivered dates alone.

    With `key` (the columns naming a row within its date) it checks the model's grain in the same pass: a date
    with more rows than distinct keys (or a row without a key) is returned too (`repeated_key_rows`; always 0
    without `key`). fct_od_daily is a view over the daily models, and a full build's tests read it whole: a
    grain test of its own read it a second time (docs/performance.md, "Eighteenth bench run").
-#}
{% test matches_file_control_total(model, file_name, amount_column, key=none) %}
    {%- set filtered = model is string and config.get('where') == '__rebuilt_dates__' -%}
    {%- set rebuilt = rebuilt_dates_condition('l.business_date') if filtered -%}
    {#- a composite key is counted only where every column has a value: count() skips a null row, not a row
        whose fields are null -#}
    {%- set distinct_keys = 'count(distinct (' ~ key | join(', ') ~ ')) filter (where '
        ~ key | join(' is not null and ') ~ ' is not null)' if key else 'count(*)' -%}
with delivered as (
    select
        l.business_date,
        f.rows as manifest_rows,
        f.control_total as manifest_total
    from {{ source('meta', 'loads') }} as l
    inner join {{ source('meta', 'load_files') }} as f on l.load_id = f.load_id
    where
        l.superseded_at is null
        and f.file_name = '{{ file_name }}'
        {% if rebuilt -%} and {{ rebuilt }} {%- endif %}
),

model_totals as (
    select
        business_date,
        count(*) as model_rows,
        coalesce(sum({{ amount_column }}), 0) as model_total,
        count(*) - {{ distinct_keys }} as repeated_key_rows
    from {{ model }}
    where business_date in (select d.business_date from delivered as d)
    group by business_date
)

select
    d.business_date,
    d.manifest_rows,
    m.model_rows,
    d.manifest_total,
    m.model_total,
    m.repeated_key_rows
from delivered as d
left join model_totals as m on d.business_date = m.business_date
where
    d.manifest_rows <> coalesce(m.model_rows, 0)
    or d.manifest_total is distinct from coalesce(m.model_total, 0)
    or m.repeated_key_rows > 0
{% endtest %}
