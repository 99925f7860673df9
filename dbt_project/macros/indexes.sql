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
    Multi-column n-distinct statistics on `columns` (dbt's config has none; an expression in parentheses is
    allowed): a post-hook creates them when the table has none on those columns and expressions (replacing
    statistics of an earlier definition), and analyzes the table once then, unless it was built whole, which
    analyze_after_build analyzes anyway (later builds analyze it as before).
    Unnamed, as partial_index is. The positions need them (decision 0060): a reader of a run per position joins
    laterally on (od_account_id, business_date), every pair once, but the planner guessed few distinct pairs from
    the columns' own statistics and put a Memoize in front of each probe, which missed every time: a view's
    whole history took minutes instead of seconds. On (od_account_id, month_end_of(business_date)) they tell the
    monthly charges' full build that an account's days make a few groups, so it sums them in parallel workers.
-#}
{% macro ndistinct_statistics(columns) -%}
    {%- set expressions = [] -%}
    {%- for column in columns if column.startswith('(') %}{% do expressions.append(column) %}{% endfor -%}
    {%- set analyze = 'analyze ' ~ this ~ ';' if execute and not built_whole_now(this) else '' -%}
    do $$
    declare
        earlier record;
    begin
        if not exists (
            select from pg_statistic_ext as s
            where
                s.stxrelid = '{{ this }}'::regclass
                and cardinality(s.stxkeys) = {{ columns | length - expressions | length }}
                and coalesce(cardinality(pg_get_statisticsobjdef_expressions(s.oid)), 0) = {{ expressions | length }}
        ) then
            for earlier in
                select n.nspname, s.stxname
                from pg_statistic_ext as s inner join pg_namespace as n on s.stxnamespace = n.oid
                where s.stxrelid = '{{ this }}'::regclass
            loop
                execute format('drop statistics %I.%I', earlier.nspname, earlier.stxname);
            end loop;
            create statistics (ndistinct) on {{ columns | join(', ') }} from {{ this }};
            -- not a table built whole: analyze_after_build analyzes that whole after its build
            {{ analyze }}
        end if;
    end $$
{%- endmacro %}

{#- The last day of the month of `day` (a date), as the positions' statistics name it: on a timestamp without time
    zone, immutable (date_trunc of a timestamp with time zone depends on the session's zone), so that a query
    grouping by it matches the statistics (ndistinct_statistics) -#}
{% macro month_end_of(day) -%}
    (date_trunc('month', {{ day }}::timestamp) + interval '1 month - 1 day')::date
{%- endmacro %}
