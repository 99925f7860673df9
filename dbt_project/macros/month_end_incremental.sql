{#-
    Incremental models with one row set per month end (grain month_end): int_od__policy_facts_month_end,
    int_od__policy_checks_month_end, int_quality__exposures_month_end, int_quality__par_month_end,
    fct_od_month_end, fct_portfolio_month_end, fct_grade_distribution_month_end. A month end's
    row depends on every loaded date up to it (cash withdrawals "ever", look-backs), so each row records
    max_input_load_id, the newest load among the dates up to its month end. A run rebuilds the month ends on or
    after the earliest business date loaded after that watermark: a re-delivered old date redoes every later
    month end once, a mid-month day costs nothing.
    branches is a small snapshot delivered with every date, so its load ids name the loaded dates. The model
    needs the hint `-- depends_on: {{ ref('stg_core_banking__branches') }}`.
-#}

{#- The earliest business date to rebuild from ('infinity' when nothing is new), or none on a full build. -#}
{% macro month_end_rebuild_from() -%}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set newest_load_sql -%}
        select coalesce(min(business_date), 'infinity'::date)::text
        from {{ ref('stg_core_banking__branches') }}
        where _load_id > (select coalesce(max(max_input_load_id), 0) from {{ this }})
    {%- endset -%}
    {{ return(run_query(newest_load_sql).columns[0].values()[0] if execute else 'infinity') }}
{%- endmacro %}

{#- SQL: the newest load among the loaded dates up to month_end (a column or literal). -#}
{% macro max_input_load_id(month_end) -%}
    (
        select max(loaded._load_id) from {{ ref('stg_core_banking__branches') }} as loaded
        where loaded.business_date <= {{ month_end }}
    )
{%- endmacro %}
