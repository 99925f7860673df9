{#-
    Account-day tables partitioned by month (docs/decisions/0046): a model whose config says
    meta: {partitioned_by_month: <date column>} is a table partitioned by range of that column, one partition per
    calendar month, created as rows for the month arrive. A day's build then writes one month's indexes, not a
    year's, and a month end's rows are read from one month's pages. Here too: the delete of every incremental
    model keyed by one date column, and the daily models' ANALYZE after their build.
-#}

{#- dbt's create-table step (first build, full refresh; a temporary table stays as dbt makes it): the columns
    come from the query planned without running it, the months from every business date loaded (meta.loads:
    every row of these models is of a loaded date), so the query runs once, straight into its partitions. -#}
{% macro postgres__get_create_table_as_sql(temporary, relation, sql) -%}
    {%- set column = config.meta_get('partitioned_by_month') -%}
    {%- if temporary or not column -%}
        {{ return(create_table_as(temporary, relation, sql)) }}
    {%- endif -%}
    {%- set columns_relation = make_temp_relation(relation, '__columns') -%}
    create temporary table {{ columns_relation }} as ({{ sql }}) with no data;
    create table {{ relation }} (like {{ columns_relation }}) partition by range ({{ column }});
    drop table {{ columns_relation }};
    {{ month_partitions(relation, 'select business_date from meta.loads') }};
    insert into {{ relation }} ({{ sql }})
{%- endmacro %}

{#- dbt's delete+insert step of an incremental build. The months of the new rows get their partitions first.
    A date key (business_date, month_end) is deleted by the new rows' dates as literals, so the plan prunes to
    their partitions and reads the date index: dbt's `in (select distinct ...)` over the not yet analyzed new
    rows expected 200 dates and hashed every row of the table (the whole year, 5 GB, each day). -#}
{% macro postgres__get_incremental_delete_insert_sql(arg_dict) -%}
    {%- set target, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set partition_column = config.meta_get('partitioned_by_month') -%}
    {%- set key = arg_dict['unique_key'] -%}
    {%- set key = key[0] if key is not string and key | length == 1 else key -%}
    {%- set key_column = arg_dict['dest_columns'] | selectattr('name', 'equalto', key) | first
        if key is string else none -%}
    {%- set by_dates = key_column and key_column.data_type == 'date' and not arg_dict['incremental_predicates'] -%}
    {#- as the session writes dates, which it reads back alike; a null key is never deleted, as in dbt's -#}
    {%- set dates_sql = 'select distinct ' ~ key ~ '::text from ' ~ source ~ ' where ' ~ key ~ ' is not null' -%}
    {%- set dates = run_query(dates_sql).columns[0].values() if by_dates else [] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- if partition_column -%}
        {{ month_partitions(target, 'select ' ~ partition_column ~ ' from ' ~ source) }};
    {%- endif %}
    {%- if not by_dates %}
    {{ default__get_incremental_delete_insert_sql(arg_dict) }}
    {%- else %}
    delete from {{ target }} where {{ key }} = any('{{ '{' ~ dates | join(',') ~ '}' }}'::date []);
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ source }}
    {%- endif %}
{%- endmacro %}

{#- A partition of `relation` for every month of the dates `dates_sql` selects that has none; the months written,
    and whether one was created, noted for analyze_after_build (settings of this session: dbt runs a model's
    hooks on its connection).
    Named <table>_p<yyyymm>. A full refresh builds the new table as <table>__dbt_tmp beside the old one, so its
    partitions are named after that until analyze_after_build names them after the table, once the old one is
    dropped; a name still taken (a rename that never ran) gets the table's oid appended. Created, then attached:
    attaching locks the table against other writers only, where `create table ... partition of` would also lock
    out its readers until the build commits. -#}
{% macro month_partitions(relation, dates_sql) -%}
    do $$
    declare
        parent regclass := '{{ relation }}'::regclass;
        parent_name text := (select relname from pg_class where oid = parent);
        month date;
        partition_name text;
        datestyle text := current_setting('datestyle');
    begin
        perform set_config('datestyle', 'ISO, YMD', true);  -- how pg_get_expr writes the bounds compared below
        perform set_config('odwh.months_written', '', false);
        perform set_config('odwh.months_created', '', false);
        for month in
            select distinct date_trunc('month', dates.d)::date from ({{ dates_sql }}) as dates (d)
            where dates.d is not null
        loop
            perform set_config(
                'odwh.months_written', current_setting('odwh.months_written') || to_char(month, 'YYYY-MM-DD') || ',', false
            );
            -- a table built before it was partitioned stays as it is until a full refresh
            continue when (select relkind from pg_class where oid = parent) <> 'p' or exists (
                select from pg_inherits as i inner join pg_class as c on i.inhrelid = c.oid
                where i.inhparent = parent and pg_get_expr(c.relpartbound, c.oid)
                    = format('FOR VALUES FROM (%L) TO (%L)', month, (month + interval '1 month')::date)
            );
            partition_name := left(parent_name, 40) || '_p' || to_char(month, 'YYYYMM');
            if to_regclass(format('%I.%I', '{{ relation.schema }}', partition_name)) is not null then
                partition_name := partition_name || '_' || parent::oid;
            end if;
            execute format('create table %I.%I (like %s)', '{{ relation.schema }}', partition_name, parent);
            execute format(
                'alter table %s attach partition %I.%I for values from (%L) to (%L)',
                parent, '{{ relation.schema }}', partition_name, month, (month + interval '1 month')::date
            );
            perform set_config('odwh.months_created', to_char(month, 'YYYY-MM-DD'), false);
        end loop;
        perform set_config('datestyle', datestyle, true);
    end $$
{%- endmacro %}

{#- The daily models' post-hook, after the commit (dbt_project.yml): ANALYZE what the build wrote, so the next
    model's planner knows the new dates (docs/performance.md, "Models at 10,000 x 61"). A partitioned table built
    whole gets its partitions named after it, then is analyzed whole; built incrementally, the partitions of
    the months written, and the table's own statistics when a month was added or it has none (ANALYZE ONLY,
    PostgreSQL 18; before it, ANALYZE reads every partition again). Those sample the whole table, a second a
    day after a year, and a day barely moves them: a query of a day is planned from its partition's statistics,
    fresh; the table's serve joins over many months, whose keys and sizes a day does not change. A table built
    before it was partitioned (decision 0046) is analyzed after every build, as before. Nothing on a view. -#}
{% macro analyze_after_build() -%}
    {%- set partitioned = config.meta_get('partitioned_by_month') -%}
    {%- if model.config.materialized == 'view' -%}
    {%- elif not partitioned -%}
        analyze {{ this }}
    {%- else -%}
        {%- set whole = built_whole_now(this) -%}
        do $$
        declare
            parent regclass := '{{ this }}'::regclass;
            written text[] := array_remove(string_to_array(current_setting('odwh.months_written', true), ','), '');
            month_added boolean := coalesce(current_setting('odwh.months_created', true), '') <> '';
            built_whole boolean := {{ whole }};
            part record;
            canonical text;
            datestyle text := current_setting('datestyle');
        begin
            perform set_config('datestyle', 'ISO, YMD', true);  -- how pg_get_expr writes the bounds read below
            perform set_config('odwh.months_written', '', false);
            perform set_config('odwh.months_created', '', false);
            for part in
                select
                    c.oid::regclass as rel,
                    c.relname,
                    (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([0-9-]+)''\)'))[1] as month
                from pg_inherits as i inner join pg_class as c on i.inhrelid = c.oid
                where i.inhparent = parent
            loop
                canonical := left('{{ this.identifier }}', 40) || '_p' || replace(left(part.month, 7), '-', '');
                if part.relname <> canonical
                    and to_regclass(format('%I.%I', '{{ this.schema }}', canonical)) is null then
                    execute format('alter table %s rename to %I', part.rel, canonical);
                end if;
                if not built_whole and part.month = any(written) then
                    execute format('analyze %s', part.rel);
                end if;
            end loop;
            -- a table built before it was partitioned is analyzed whole, as before
            if not built_whole and cardinality(written) > 0 and (month_added or (
                select relkind <> 'p' or reltuples < 0 from pg_class where oid = parent
            )) then
                execute format(
                    case when current_setting('server_version_num')::int >= 180000 then 'analyze only %s'
                    else 'analyze %s' end, parent
                );
            end if;
            perform set_config('datestyle', datestyle, true);
        end $$
        {%- if whole %};
        analyze {{ this }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}
