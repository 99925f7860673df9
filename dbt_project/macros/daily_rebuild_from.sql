{#-
    Incremental daily models (grain: account x business_date, unique_key business_date, a load_id column) rebuild
    whole business dates from the earliest date touched by a load newer than the model's newest load_id, so a
    re-delivered date replaces every row of that date (docs/policy-engine.md "Incremental builds").
    `upstream` is the relation whose load ids name its dates (a ref the model itself calls, so dbt sees the
    dependency); `load_id_column` is its load id column (`_load_id` in staging).
-#}

{#- The earliest business date to rebuild from ('infinity' when nothing is new), or none on a full build. An
    account-day table upstream (indexed by date and load id, decision 0058) is read one probe per date; staging
    and any other table through its load id index. -#}
{% macro daily_rebuild_from(upstream, load_id_column='load_id') -%}
    {%- if not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {#- two steps: a literal watermark lets the planner use the load id index -#}
    {%- set watermark = load_watermark() -%}
    {%- set newest_load_sql -%}
        {%- if indexed_by_date_and_load(upstream) -%}
            select coalesce(min(business_date), 'infinity'::date)::text
            from ({{ newest_load_per_date(upstream) }}) as loaded
            where newest_load_id > {{ watermark }}
        {%- else -%}
            {#- "filter (where true)" keeps the planner off min() via the business_date index, which would walk
                the whole history to find the first newer row; the load_id index finds the newer rows directly -#}
            select coalesce(min(business_date) filter (where true), 'infinity'::date)::text
            from {{ upstream }}
            where {{ load_id_column }} > {{ watermark }}
        {%- endif -%}
    {%- endset -%}
    {{ return(run_query(newest_load_sql).columns[0].values()[0] if execute else 'infinity') }}
{%- endmacro %}

{#- int_od__charges_monthly: from_date when no date on or after it was ever loaded before the model's last build
    (each morning's new date: `loads` is stg_meta__loads, which keeps a re-delivered date's superseded loads),
    so the month's sums before it can be carried forward; none when a date on or after it was loaded before
    (a re-delivery, even of the newest date: its old rows are gone from every table, so only the loads tell)
    or when nothing is new. -#}
{% macro month_to_date_carried_from(loads, from_date, watermark) -%}
    {%- if from_date == 'infinity' or not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set loaded_before_sql -%}
        select exists (
            select from {{ loads }}
            where business_date >= '{{ from_date }}'::date and load_id <= {{ watermark }}
        )
    {%- endset -%}
    {{ return(none if run_query(loaded_before_sql).columns[0].values()[0] else from_date) }}
{%- endmacro %}

{#- Pre-hook of a model stored as runs (decision 0060: int_od__days_past_due_runs, int_od__stagnation_runs): the
    runs starting on a date the build rebuilds are deleted before it inserts the batch's; a run starting earlier
    stays, and goes on into the batch when the batch's first day has its state. The model reads only the runs
    before `from_date`, and the watermark is read before anything is written, so both compute the same
    `from_date`. The date is recorded for the model's coverage test (runs_rebuilt_dates_condition), which then
    reads every run this build rewrote; a date recorded since the last daily build that passed (a failed build's)
    is kept when earlier, as the loads since then stay in the next build's window (decision 0037). -#}
{% macro delete_runs_rebuilt(upstream) -%}
    {%- set from_date = daily_rebuild_from(upstream) -%}
    {%- if from_date and from_date != 'infinity' -%}
        delete from {{ this }} where valid_from >= '{{ from_date }}'::date;
        insert into meta.runs_rebuilt_from (relation_name, from_date, invocation_id)
        values ('{{ this }}', '{{ from_date }}'::date, '{{ invocation_id }}')
        on conflict (relation_name) do update
        set
            from_date = case
                when runs_rebuilt_from.built_at
                    > coalesce((select b.built_at from meta.model_builds as b where b.selector = 'daily'), '-infinity')
                    then least(runs_rebuilt_from.from_date, excluded.from_date)
                else excluded.from_date
            end,
            invocation_id = excluded.invocation_id,
            built_at = now()
    {%- endif -%}
{%- endmacro %}
