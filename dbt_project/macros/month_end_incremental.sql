{#-
    Incremental models with one row set per month end (grain month_end): int_od__policy_facts_month_end,
    int_od__policy_checks_month_end, int_quality__exposures_month_end, int_quality__par_month_end,
    int_monitoring__od_activity_month_end, fct_od_month_end, fct_portfolio_month_end,
    fct_grade_distribution_month_end, fct_grade_migration_month_end, rpt_review_list. A month end's
    row depends on every loaded date up to it (cash withdrawals "ever", look-backs), so each row records
    max_input_load_id, the newest load among the dates up to its month end. A run rebuilds the month ends on or
    after the earliest business date loaded after that watermark: a re-delivered old date redoes every later
    month end once, a mid-month day costs nothing.
    branches is a small snapshot delivered with every date, so its load ids name the loaded dates. The model
    needs the hint `-- depends_on: {{ ref('stg_core_banking__branches') }}` (and one for
    int_od__transactions_classified with with_reversed_dates).
-#}

{#- The earliest business date to rebuild from ('infinity' when nothing is new), or none on a full build.
    with_reversed_dates: also the earliest date of a transaction that a newer load's reversal cancels, for the
    models whose month figures net out a reversal whenever it arrives (the month's charges and activity, and
    the marts built on them): a reversal delivered in February of a January transaction redoes January. -#}
{% macro month_end_rebuild_from(with_reversed_dates=false) -%}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {#- two steps: with the watermark as a literal the planner uses the load_id indexes -#}
    {%- set watermark_sql = 'select coalesce(max(max_input_load_id), 0) from ' ~ this -%}
    {%- set watermark = run_query(watermark_sql).columns[0].values()[0] if execute else 0 -%}
    {#- least() ignores a null: without reversed dates the delivery dates alone (and no ref to the
        transactions, which dbt would take for a dependency) -#}
    {%- set reversed_sql = 'select null::date' -%}
    {%- if with_reversed_dates -%}
        {%- set reversed_sql -%}
            select min(original_business_date) from {{ ref('int_od__transactions_classified') }}
            where load_id > {{ watermark }}
        {%- endset -%}
    {%- endif -%}
    {%- set newest_load_sql -%}
        select coalesce(least(
            (select min(business_date) from {{ ref('stg_core_banking__branches') }} where _load_id > {{ watermark }}),
            ({{ reversed_sql }})
        ), 'infinity'::date)::text
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
