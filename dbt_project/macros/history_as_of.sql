{#-
    Snapshot files stored as change history (raw.customers, od_accounts, loans, fixed_deposits; odwh.history,
    docs/decisions/0030-snapshot-history.md) keep one row per version (valid_from, valid_to exclusive, null while
    current). `history_as_of(history, loads)` expands them back to the shape the models were written for: one row
    per version and business date currently loaded (meta.loads, superseded_at null), with `_business_date` and
    `_as_of_load_id` (that date's current load, which names the date for incremental models). The join is two
    btree-estimable comparisons, not `daterange(...) @> date`: the planner guesses a range containment at 0.5 %
    of the versions per date (58 of 10,000 accounts), planned nested loops that re-expanded a history per row,
    and one model ran for minutes instead of a second (docs/performance.md, "Snapshots as change history").
-#}
{% macro history_as_of(history, loads) -%}
    select
        h.*,
        l.business_date as _business_date,
        l.load_id as _as_of_load_id
    from {{ loads }} as l
    inner join {{ history }} as h
        on
            l.business_date >= h.valid_from
            and (h.valid_to is null or l.business_date < h.valid_to)
    where l.superseded_at is null
{%- endmacro %}
