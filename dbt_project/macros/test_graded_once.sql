{#-
    Generic test for the grade views (decision 0038): every key once, and on every row a grade, the rule version
    it came from and a term class among term_classes. One pass: a view grades every row it reads again, so
    five tests of one view graded its history five times (full build at 100,000 x 61: 70 s of tests for 28 s
    of this one). The columns say which rule a failing key breaks.
-#}
{% test graded_once(model, combination_of_columns, term_classes) %}
    {%- set columns = combination_of_columns | join(', ') %}
select
    {{ columns }},
    count(*) as occurrences,
    bool_or(nbc_grade is null) as grade_missing,
    bool_or(grading_version is null) as grading_version_missing,
    bool_or(term_class not in ({% for c in term_classes %}'{{ c }}'{{ ", " if not loop.last }}{% endfor %}))
        as term_class_not_accepted
from {{ model }}
group by {{ columns }}
having
    count(*) > 1
    or bool_or(nbc_grade is null)
    or bool_or(grading_version is null)
    or bool_or(term_class not in ({% for c in term_classes %}'{{ c }}'{{ ", " if not loop.last }}{% endfor %}))
    {%- for c in combination_of_columns %}
    or {{ c }} is null
    {%- endfor %}
{% endtest %}
