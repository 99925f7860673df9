{#-
    The indexes of the two incremental grains, so every model of a grain is keyed and probed alike:
    account x business date (unique key, the rebuilt-date delete, the load-id watermark of daily_rebuild_from)
    and account x month end (unique key, the month-end delete; with_load_id where the model carries load_id).
-#}
{% macro account_day_indexes() -%}
    {{ return([
        {'columns': ['od_account_id', 'business_date'], 'unique': true},
        {'columns': ['business_date']},
        {'columns': ['load_id']},
    ]) }}
{%- endmacro %}

{% macro account_month_end_indexes(with_load_id=false) -%}
    {%- set indexes = [
        {'columns': ['od_account_id', 'month_end'], 'unique': true},
        {'columns': ['month_end']},
    ] -%}
    {{ return(indexes + ([{'columns': ['load_id']}] if with_load_id else [])) }}
{%- endmacro %}
