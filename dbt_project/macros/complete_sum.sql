{#-
    The sum of an amount over a group, or null when any row's amount is null (a position without its month
    end's FX rate): never a silent partial sum.

    complete_sum('p.outstanding_usd')                        -> null if any is null, else sum (null on no rows)
    complete_sum('p.outstanding_usd', "p.product_family = 'OD'", zero_when_empty=true)
        -> the same over the rows matching `where`; 0 when no row matches
-#}
{% macro complete_sum(amount, where=none, zero_when_empty=false) -%}
    {%- set only = ' filter (where ' ~ where ~ ')' if where else '' -%}
    {%- set total = 'sum(' ~ amount ~ ')' ~ only -%}
    case
        when bool_or({{ amount }} is null){{ only }} then null
        else {{ 'coalesce(' ~ total ~ ', 0)' if zero_when_empty else total }}
    end
{%- endmacro %}
