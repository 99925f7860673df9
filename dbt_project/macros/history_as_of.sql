{#-
    Snapshot files stored as change history (raw.customers, od_accounts, loans, fixed_deposits; odwh.history,
    docs/decisions/0030-snapshot-history.md) keep one row per version (valid_from, valid_to exclusive, null while
    current). `history_as_of(history, loads)` expands them back to the shape the models were written for: one row
    per version and business date currently loaded (meta.loads, superseded_at null), with `_business_date` and
    `_as_of_load_id` (that date's current load, which names the date for incremental models). A filter on
    `_business_date` reaches meta.loads first; each date's versions come from the range (GiST) index.
-#}
{% macro history_as_of(history, loads) -%}
    select
        h.*,
        l.business_date as _business_date,
        l.load_id as _as_of_load_id
    from {{ loads }} as l
    inner join {{ history }} as h
        on daterange(h.valid_from, h.valid_to) @> l.business_date
    where l.superseded_at is null
{%- endmacro %}
