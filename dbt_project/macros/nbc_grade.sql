{#-
    Rulebook F: the nbc_grading_rules row in force for a graded row (its term class, days past due and date, as
    SQL expressions), joined as `rule_alias`. Two steps, like a run (macros/runs.sql, decision 0061): a lateral
    aggregate of the few rule rows, the key of the one in force, then that rule on the rule versions' unique
    (term_class, grade, effective_from) index, so that a reader using no grade column does not grade. A hash or
    merge join on the range conditions costs far more. No rule in force leaves the grade null.
-#}
{% macro nbc_grade_rule_join(term_class, days_past_due, business_date, rule_alias='r') -%}
left join lateral (
    select
        max(rule.grade) as grade,
        max(rule.effective_from) as effective_from
    from {{ ref('int_policy__nbc_grading_rule_versions') }} as rule
    where
        rule.term_class = {{ term_class }}
        and {{ days_past_due }} >= rule.min_dpd
        and (rule.max_dpd is null or {{ days_past_due }} <= rule.max_dpd)
        and {{ business_date }} >= rule.effective_from
        and {{ business_date }} < rule.effective_to
) as {{ rule_alias }}_key on true
left join {{ ref('int_policy__nbc_grading_rule_versions') }} as {{ rule_alias }}
    on
        {{ term_class }} = {{ rule_alias }}.term_class
        and {{ rule_alias }}_key.grade = {{ rule_alias }}.grade
        and {{ rule_alias }}_key.effective_from = {{ rule_alias }}.effective_from
{%- endmacro %}
