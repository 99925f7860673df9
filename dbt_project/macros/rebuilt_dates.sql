{#-
    The data tests of a daily model read the dates its build rewrote, not its whole history
    (docs/decisions/0037). A test configured with where: '__rebuilt_dates__' (every test: dbt_project.yml) on a
    model that is incremental by business_date, outside the month-end models (or on a view over such rows
    that says meta rebuilt_by_date: the grades, decision 0038), sees only the business dates loaded since the
    daily models' last recorded build (meta.model_builds, which odwh.pipeline advances once the build and its
    tests passed) and after: the dates the incremental build replaced (macros/daily_rebuild_from.sql; a model
    whose newest load id lags may rewrite earlier dates, unchanged). Every date is read by a full refresh (a
    policy change, or by hand), by the tests of a model built whole in the same dbt invocation (its first
    build: meta.whole_builds; for a view, a model it reads), by a run with nothing loaded since the last build,
    and by a test on any other model. A `dbt test` after a failed build reads that build's window. A test may
    narrow it further with where: "__rebuilt_dates__ and <condition>" (the term-loan grades: month ends only).
    A test on a daily model keyed by month_end says where: '__rebuilt_months__' for the same window by months
    (the monthly charges' relationships test: over a year's positions it read all 33 million every day, 16.9 s).
-#}

{#- dbt's own macro, which generic tests call with the tested relation, taught the placeholder -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') or '' -%}
    {%- if '__rebuilt_dates__' in where -%}
        {%- set filtered = rebuilt_by_date(relation) and not built_whole_now(relation) -%}
        {%- set condition = rebuilt_dates_condition('business_date') if filtered else '' -%}
        {#- "__rebuilt_dates__ and <more>": a test narrowed further keeps the rebuilt dates' window -#}
        {%- set where = '' if where == '__rebuilt_dates__' and not condition
            else where | replace('__rebuilt_dates__', '(' ~ (condition or 'true') ~ ')') -%}
    {%- endif -%}
    {%- if '__rebuilt_months__' in where -%}
        {#- a daily model keyed by month_end (the monthly charges): the months from the first date loaded since the
            last daily build, whose month end is on or after that date (an earlier month's is before it) -#}
        {%- set condition = '' if built_whole_now(relation) else rebuilt_dates_condition('month_end') -%}
        {%- set condition = condition | replace("month_end = '", "month_end >= '") -%}
        {%- set where = where | replace('__rebuilt_months__', '(' ~ (condition or 'true') ~ ')') -%}
    {%- endif -%}
    {%- if where -%}
        {{ return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') }}
    {%- endif -%}
    {{ return(relation) }}
{%- endmacro %}

{#- whether the relation is a daily model that an incremental build replaces by whole business dates, or a view
    over such models' dates that says so (meta rebuilt_by_date: the grades, decision 0038) -#}
{% macro rebuilt_by_date(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
        and node.relation_name == relation | string -%}
        {%- set key = node.config.unique_key -%}
        {%- if node.config.materialized == 'view' -%}
            {{ return(node.config.get('meta', {}).get('rebuilt_by_date', false)) }}
        {%- endif -%}
        {{ return(node.config.materialized == 'incremental' and 'month_end' not in node.tags
                  and (key == 'business_date' or key == ['business_date'])) }}
    {%- endfor -%}
    {{ return(false) }}
{%- endmacro %}

{#- pre-hook of every model (dbt_project.yml): an incremental model about to be built whole says so -#}
{% macro record_whole_build() -%}
    {%- if model.config.materialized == 'incremental' and not is_incremental() -%}
        insert into meta.whole_builds (relation_name, invocation_id) values ('{{ this }}', '{{ invocation_id }}')
        on conflict (relation_name) do update set invocation_id = excluded.invocation_id, built_at = now()
    {%- endif -%}
{%- endmacro %}

{#- whether the relation was built whole earlier in this dbt invocation; a view (recreated by every build: a
    table it reads is replaced, and drops it) counts as built whole when a model it reads was -#}
{% macro built_whole_now(relation) -%}
    {%- set relations = [relation | string] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
        and node.relation_name == relation | string and node.config.materialized == 'view' -%}
        {%- for parent in node.depends_on.nodes if parent in graph.nodes -%}
            {%- do relations.append(graph.nodes[parent].relation_name) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set whole_sql -%}
        select count(*) from meta.whole_builds
        where relation_name in ('{{ relations | join("', '") }}') and invocation_id = '{{ invocation_id }}'
    {%- endset -%}
    {{ return(run_query(whole_sql).columns[0].values()[0] > 0) }}
{%- endmacro %}

{#- "<date_column> >= 'the first date loaded since the last daily build'", or '' when every date is tested;
    "= " when that date is also the newest loaded (each morning's new date): a view's left joins carry an
    equality with a constant to every table it joins, which then reads one month's partition (decision 0046),
    where a range reached the first table only. A literal date, as in daily_rebuild_from: against a subquery
    the planner could not use the date index. -#}
{% macro rebuilt_dates_condition(date_column) -%}
    {%- if flags.FULL_REFRESH or not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set first_date_sql -%}
        select
            min(l.business_date)::text,
            min(l.business_date) = (select max(n.business_date) from meta.loads as n where n.superseded_at is null)
        from meta.loads as l
        where
            l.superseded_at is null
            and l.load_id > coalesce((select b.loads_through from meta.model_builds as b where b.selector = 'daily'), 0)
    {%- endset -%}
    {%- set first_date, newest = run_query(first_date_sql).rows[0] -%}
    {{ return(date_column ~ (" = '" if newest else " >= '") ~ first_date ~ "'::date" if first_date else '') }}
{%- endmacro %}

{#- rebuilt_dates_condition for a model stored as runs (decision 0060): from the date its latest incremental
    build rewrote its runs from (meta.runs_rebuilt_from) when that is earlier than the first date loaded since the
    last daily build (the model's newest load id lags the loads: a date that started no run) -#}
{% macro runs_rebuilt_dates_condition(runs, date_column) -%}
    {%- set condition = rebuilt_dates_condition(date_column) -%}
    {%- if not condition -%}
        {{ return('') }}
    {%- endif -%}
    {%- set from_sql -%}
        select from_date::text from meta.runs_rebuilt_from where relation_name = '{{ runs }}'
    {%- endset -%}
    {%- set recorded = run_query(from_sql).rows -%}
    {%- set first_date = condition.split("'")[1] -%}
    {#- ISO dates compare as text -#}
    {{ return(date_column ~ " >= '" ~ recorded[0][0] ~ "'::date" if recorded and recorded[0][0] < first_date
        else condition) }}
{%- endmacro %}
