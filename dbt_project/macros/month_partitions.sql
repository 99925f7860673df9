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

{#- A partition of `relation` for every month of the dates `dates_sql` selects that has none; the months written
    noted for analyze_after_build (settings of this session: dbt runs a model's
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
        end loop;
        perform set_config('datestyle', datestyle, true);
    end $$
{%- endmacro %}

{#- The models' post-hook, after the commit (dbt_project.yml): the statistics of what the build wrote, so the next
    model's planner knows the new dates (docs/performance.md, "Models at 10,000 x 61"), each relation by
    analyze_what_changed: a table and each month's partition written, then a partitioned table's own statistics
    (they serve plans over many months, which a day barely moves) when its partitions' rows have grown or shrunk
    by a tenth since they were taken (decision 0067). A partitioned table built whole gets its partitions named after it, then is
    analyzed whole. Nothing on a view. -#}
{% macro analyze_after_build() -%}
    {%- set partitioned = config.meta_get('partitioned_by_month') -%}
    {%- if model.config.materialized == 'view' -%}
    {%- elif not partitioned -%}
        do $$
        declare
            {{ analyze_what_changed_declarations() }}
        begin
            {{ analyze_what_changed("'" ~ this ~ "'::regclass") }}
        end $$
    {%- else -%}
        {%- set whole = built_whole_now(this) -%}
        do $$
        declare
            parent regclass := '{{ this }}'::regclass;
            written text[] := array_remove(string_to_array(current_setting('odwh.months_written', true), ','), '');
            built_whole boolean := {{ whole }};
            part record;
            canonical text;
            datestyle text := current_setting('datestyle');
            {{ analyze_what_changed_declarations() }}
        begin
            perform set_config('datestyle', 'ISO, YMD', true);  -- how pg_get_expr writes the bounds read below
            perform set_config('odwh.months_written', '', false);
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
                    {{ analyze_what_changed('part.rel') }}
                end if;
            end loop;
            perform set_config('datestyle', datestyle, true);
            -- a table built before it was partitioned is analyzed as any table
            if not built_whole and cardinality(written) > 0 then
                if (select relkind <> 'p' from pg_class where oid = parent) then
                    {{ analyze_what_changed('parent') }}
                elsif (
                    select
                        p.reltuples < 0
                        or abs(sum(c.reltuples) filter (where c.reltuples > 0) - p.reltuples) > 0.1 * p.reltuples
                    from pg_class as p, pg_inherits as i inner join pg_class as c on i.inhrelid = c.oid
                    where p.oid = parent and i.inhparent = parent
                    group by p.reltuples
                ) then
                    execute format(
                        case when current_setting('server_version_num')::int >= 180000 then 'analyze only %s'
                        else 'analyze %s' end, parent
                    );
                end if;
            end if;
        end $$
        {%- if whole %};
        analyze {{ this }}
        {%- endif %}
    {%- endif -%}
{%- endmacro %}

{#- The variables analyze_what_changed uses, in a DO block's declarations. -#}
{% macro analyze_what_changed_declarations() -%}
    analyze_whole boolean;
    analyze_columns text[];
    statistics_target text := current_setting('default_statistics_target');
{%- endmacro %}

{#- PL/pgSQL statements: ANALYZE the relation `rel` (a regclass expression) whole when a column has no statistics
    (never analyzed whole: a table just built has its row count from its indexes' builds, and the count of its
    inserted rows may not have reached the statistics system yet), grew by a tenth in pages since its last
    ANALYZE (a large build), or a tenth of its rows were modified since its last whole ANALYZE (the
    statistics system's count, which may lag by a second); else only its date columns and load_id, from a
    sample of 300 rows (decision 0067, as odwh.load.analyze_raw does for raw). After a year a day is 0.3 % of a
    table and a whole ANALYZE samples 30,000 random pages of it (13 s cold for the classified transactions); the
    planner still needs the new date: past the histogram's last bound, it would expect no row and choose nested
    loops over every account. A partial ANALYZE keeps the rows modified counting, so the whole one comes past
    the same tenth as autovacuum's. -#}
{% macro analyze_what_changed(rel) -%}
    select
        c.reltuples < 0
        or exists (
            select from pg_attribute as a
            where
                a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped and a.attgenerated <> 'v'
                and coalesce(a.attstattarget, -1) <> 0
                and not exists (
                    select from pg_stats as s
                    where
                        s.schemaname = n.nspname and s.tablename = c.relname and s.attname = a.attname
                        and not s.inherited
                )
        )
        or pg_relation_size(c.oid) / current_setting('block_size')::int > 1.1 * c.relpages
        or coalesce(pg_stat_get_mod_since_analyze(c.oid), 0) > 0.1 * c.reltuples,
        array(
            select quote_ident(a.attname) from pg_attribute as a
            where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
                and (a.atttypid = 'date'::regtype or a.attname = 'load_id')
        )
    into analyze_whole, analyze_columns
    from pg_class as c inner join pg_namespace as n on c.relnamespace = n.oid
    where c.oid = {{ rel }};
    if analyze_whole or cardinality(analyze_columns) = 0 then
        execute format('analyze %s', {{ rel }});
    else
        perform set_config('default_statistics_target', '1', true);
        execute format('analyze %s (%s)', {{ rel }}, array_to_string(analyze_columns, ', '));
        perform set_config('default_statistics_target', statistics_target, true);
    end if;
{%- endmacro %}
