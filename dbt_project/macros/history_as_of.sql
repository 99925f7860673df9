{#-
    Snapshot files stored as change history (raw.customers, od_accounts, loans, fixed_deposits; odwh.history,
    docs/decisions/0030-snapshot-history.md) keep one row per version (valid_from, valid_to exclusive, null while
    current). `history_as_of(versions, loads)` expands a staging view of those versions back to the shape the
    models were written for: one row per version and business date currently loaded (meta.loads, superseded_at
    null), with `business_date` and `_load_id` (that date's current load, which names the date for incremental
    models). A model that reads every date, or a range of them, can join the versions by their validity
    instead (int_od__positions_daily: the expansion of a year is 33 M rows per snapshot). The join is two
    btree-estimable comparisons, not `daterange(...) @> date`: the planner guesses a range containment at 0.5 %
    of the versions per date (58 of 10,000 accounts), planned nested loops that re-expanded a history per row,
    and one model ran for minutes instead of a second (docs/performance.md, "Snapshots as change history").
-#}
{% macro history_as_of(versions, loads) -%}
    select
        h.*,
        l.business_date,
        l.load_id as _load_id
    from {{ loads }} as l
    inner join {{ versions }} as h
        on {{ valid_on('h', 'l.business_date') }}
    where l.superseded_at is null
{%- endmacro %}

{#- The version `alias` is valid on `business_date` (its date range holds it). -#}
{% macro valid_on(alias, business_date) -%}
    {{ business_date }} >= {{ alias }}.valid_from
    and ({{ alias }}.valid_to is null or {{ business_date }} < {{ alias }}.valid_to)
{%- endmacro %}

{#- `select *` of a versions view; on an incremental run (from_date set) only the versions still valid on or after
    from_date, the ones the rebuilt dates can join. -#}
{% macro versions_since_from_date(versions, from_date) -%}
    select * from {{ versions }}
    {%- if from_date %}
    where valid_to is null or valid_to > '{{ from_date }}'::date
    {%- endif %}
{%- endmacro %}
