{#- The newest load id the incremental model has built from (0 while empty), as a literal: the planner uses a
    load id index for `load_id > <literal>`, not for a subquery. Used by daily_rebuild_from and
    int_od__charges_monthly; in its own file because sqlfluff's templater passes a macro's `return` value only
    to callers in other files (called from its own file, the value ended the caller). -#}
{% macro load_watermark() -%}
    {%- set watermark_sql -%}
        {%- if indexed_by_date_and_load(this) -%}
            select coalesce(max(newest_load_id), 0) from ({{ newest_load_per_date(this) }}) as loaded
        {%- else -%}
            select coalesce(max(load_id), 0) from {{ this }}
        {%- endif -%}
    {%- endset -%}
    {{ return(run_query(watermark_sql).columns[0].values()[0] if execute else 0) }}
{%- endmacro %}

{#- Whether `relation` has a valid, whole index on (business_date, load_id), as account_day_indexes() gives an
    account-day table (decision 0058). A table built before keeps an index on each column until its full refresh,
    and is read through them, as before: one probe per date over the business_date index alone would read every
    row. A partial or not yet valid index does not count. -#}
{% macro indexed_by_date_and_load(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set index_sql -%}
        select exists (
            select from pg_index as i
            where
                i.indrelid = '{{ relation }}'::regclass
                and i.indisvalid
                and i.indpred is null
                and i.indkey[0] = (
                    select attnum from pg_attribute where attrelid = i.indrelid and attname = 'business_date'
                )
                and i.indkey[1] = (
                    select attnum from pg_attribute where attrelid = i.indrelid and attname = 'load_id'
                )
        )
    {%- endset -%}
    {{ return(run_query(index_sql).columns[0].values()[0]) }}
{%- endmacro %}

{#- Each business date of `relation` with its newest load id, by a loose index scan of its (business_date,
    load_id) index: the next date is one probe past the last, its newest load id one probe back from the next
    (two probes a date, a few milliseconds for a year, where max(load_id) over the index reads every entry). -#}
{% macro newest_load_per_date(relation) -%}
    with recursive loaded_dates (business_date) as (
        select min(business_date) from {{ relation }}
        union all
        select (select min(r.business_date) from {{ relation }} as r where r.business_date > d.business_date)
        from loaded_dates as d
        where d.business_date is not null
    )

    select
        d.business_date,
        (select max(r.load_id) from {{ relation }} as r where r.business_date = d.business_date) as newest_load_id
    from loaded_dates as d
    where d.business_date is not null
{%- endmacro %}
