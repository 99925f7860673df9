{#- True on the days an OD has left the OD book (rulebook J, docs/policy-engine.md J): its snapshot says
    CONVERTED (the term loan carries the exposure) or WRITTEN_OFF (off the books), from closed_on, or from the
    first day with that status when the snapshot has no closed_on. False when the day's snapshot is missing
    (never null: it is used in "and not ..." join conditions). alias: a row of int_od__positions_daily. -#}
{% macro left_the_od_book(alias) -%}
    coalesce(
        {{ alias }}.status in ('CONVERTED', 'WRITTEN_OFF')
        and {{ alias }}.business_date >= coalesce({{ alias }}.closed_on, {{ alias }}.business_date),
        false
    )
{%- endmacro %}
