{#- The newest load id the incremental model has built from (0 while empty), as a literal: the planner uses a
    load_id index for `load_id > <literal>`, not for a subquery. Used by daily_rebuild_from and
    int_od__charges_monthly; in its own file because sqlfluff's templater passes a macro's `return` value only
    to callers in other files (called from its own file, the value ended the caller). -#}
{% macro load_watermark() -%}
    {%- set watermark_sql = 'select coalesce(max(load_id), 0) from ' ~ this -%}
    {{ return(run_query(watermark_sql).columns[0].values()[0] if execute else 0) }}
{%- endmacro %}
