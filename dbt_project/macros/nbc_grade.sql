{#-
    Rulebook F: the nbc_grading_rules row in force for a graded row (`row` is its alias; it has term_class,
    days_past_due and business_date), joined as `rule_alias`. A lateral probe of the few rule rows per row: a
    hash or merge join on the range conditions costs far more. No rule in force leaves the grade null.
-#}
{% macro nbc_grade_rule_join(row, rule_alias='r') -%}
left join lateral (
    select *
    from {{ ref('int_policy__nbc_grading_rule_versions') }} as rule
    where
        rule.term_class = {{ row }}.term_class
        and {{ row }}.days_past_due >= rule.min_dpd
        and (rule.max_dpd is null or {{ row }}.days_past_due <= rule.max_dpd)
        and {{ row }}.business_date >= rule.effective_from
        and {{ row }}.business_date < rule.effective_to
    limit 1
) as {{ rule_alias }} on true
{%- endmacro %}
