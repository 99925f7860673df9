{#-
    The loaded business dates that end a calendar month, as a query (one column, month_end). Models filter
    daily tables with "business_date = any(array({{ loaded_month_ends() }}))": the dates, computed once, reach
    the business-date index (and inside the staging views, meta.loads' index before a snapshot history is
    expanded). A filter on an expression of the date ("business_date = its month's last day") reads every
    row, and "in (select ...)" can become a join above a whole-table scan (docs/performance.md).
-#}
{% macro loaded_month_ends() -%}
    select distinct business_date as month_end
    from {{ ref('stg_core_banking__branches') }}
    where business_date = (date_trunc('month', business_date) + interval '1 month - 1 day')::date
{%- endmacro %}

{#-
    The loaded month ends that have a portfolio (rows in int_portfolio__positions_month_end): one probe per
    month end into the view, which its month_end condition makes cheap; a scalar subquery with "limit 1" stops
    at the first row. "select distinct month_end" from the view computed every month end's portfolio (7-15 s a
    model at 100,000 x 365).
-#}
{% macro portfolio_month_ends() -%}
    select m.month_end
    from ({{ loaded_month_ends() }}) as m
    where (
        select true
        from {{ ref('int_portfolio__positions_month_end') }} as p
        where p.month_end = m.month_end
        limit 1
    )
{%- endmacro %}
