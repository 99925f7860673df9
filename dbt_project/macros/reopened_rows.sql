{#-
    int_od__charges_monthly's incremental read of a daily relation keyed by od_account_id: its rows dated from
    from_month, and the rows of the months the CTE `reopened` names for its accounts alone. A lateral per
    reopened account (a few) reads an index range; pulled up into a join, it was planned as a hash of every row.
-#}
{% macro rows_from_month_or_reopened(relation, date_column, from_month) -%}
    select * from {{ relation }}
    where {{ date_column }} >= '{{ from_month }}'::date
    union all
    select reopened_rows.*
    from reopened as r
    cross join lateral (
        select *
        from {{ relation }} as d
        where d.od_account_id = r.od_account_id and d.{{ date_column }} between r.month_start and r.month_end
        offset 0  -- kept apart from the join (see above)
    ) as reopened_rows
{%- endmacro %}
