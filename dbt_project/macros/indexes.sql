{#-
    The indexes of the two incremental grains, so every model of a grain is keyed and probed alike:
    account x business date (the grain, unique; business date and load id: the rebuilt-date delete, a date's
    reads, and the load-id watermark of daily_rebuild_from read one probe per date, decision 0058) and account x
    month end (unique key, the month-end delete; with_load_id where the model carries load_id).
-#}
{% macro account_day_indexes() -%}
    {{ return([
        {'columns': ['od_account_id', 'business_date'], 'unique': true},
        {'columns': ['business_date', 'load_id']},
    ]) }}
{%- endmacro %}

{#- a model stored as runs (decision 0060): the runs' key, their first day (the rebuild's delete) and load id (the
    watermark) -#}
{% macro run_indexes() -%}
    {{ return([
        {'columns': ['od_account_id', 'valid_from'], 'unique': true},
        {'columns': ['valid_from']},
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

{#-
    An index of the rows where `column` equals `value`, which dbt's `indexes` config cannot express: a model's
    post-hook creates it when its table has no partial index yet. Unnamed: on a full refresh the replaced
    table, kept until the commit, still holds an index of any name chosen here, and "if not exists" on that
    name would skip the new table. One partial index per table: changing its columns or value needs the old
    index dropped by hand (or a full refresh).
-#}
{% macro partial_index(columns, column, value) -%}
    do $$ begin
        if not exists (
            select from pg_index where indrelid = '{{ this }}'::regclass and indpred is not null
        ) then
            create index on {{ this }} ({{ columns | join(', ') }}) where {{ column }} = '{{ value }}';
        end if;
    end $$
{%- endmacro %}

{#-
    A unique index on `columns` of a model that is rebuilt in place (the policy versions): dbt's `indexes` config
    creates indexes only with the table, so a warehouse built before the index was added would never get it. A
    post-hook creates it when the table has no unique index yet; unnamed, as partial_index is.
-#}
{% macro unique_index(columns) -%}
    do $$ begin
        if not exists (select from pg_index where indrelid = '{{ this }}'::regclass and indisunique) then
            create unique index on {{ this }} ({{ columns | join(', ') }});
        end if;
    end $$
{%- endmacro %}

{#-
    Multi-column n-distinct statistics on `columns` (dbt's config has none): a post-hook creates them when the
    table has no extended statistics yet, and analyzes the table once then (later builds analyze it as before).
    Unnamed, as partial_index is. The positions need them (decision 0060): a reader of a run per position joins
    laterally on (od_account_id, business_date), every pair once, but the planner guessed few distinct pairs from
    the columns' own statistics and put a Memoize in front of each probe, which missed every time: a view's
    whole history took minutes instead of seconds.
-#}
{% macro ndistinct_statistics(columns) -%}
    do $$ begin
        if not exists (select from pg_statistic_ext where stxrelid = '{{ this }}'::regclass) then
            create statistics (ndistinct) on {{ columns | join(', ') }} from {{ this }};
            analyze {{ this }};
        end if;
    end $$
{%- endmacro %}
