{#-
    Generic test for the grade views (decision 0038): every key once, and on every row a grade, the rule version
    it came from and a term class among term_classes. One pass: a view grades every row it reads again, so
    five tests of one view graded its history five times (full build at 100,000 x 61: 70 s of tests for 28 s
    of this one). The columns say which rule a failing key breaks.

    keys_from_unique_index: the view's rows are a table's rows one to one, and that table's unique index holds
    the key (the OD grades: the positions' (account, date) index, each row given at most one run and one rule by
    joins on their unique keys, decisions 0060 and 0061). The key cannot repeat, so the rows are checked one by
    one, without the group by over every key: over the OD grades' 6.1 million account-days at 100,000 x 61 it
    spilled 478 MB and took 11.4 s of the full build's critical path, against 1.5 s. That no two rules hold at
    once (the grade's key would mix them) is tests/assert_nbc_grading_bands_never_overlap.sql.
-#}
{% test graded_once(model, combination_of_columns, term_classes, keys_from_unique_index=false) %}
    {%- set columns = combination_of_columns | join(', ') %}
    {%- set accepted %}{% for c in term_classes %}'{{ c }}'{{ ", " if not loop.last }}{% endfor %}{% endset %}
    {%- if keys_from_unique_index %}
    select
        {{ columns }},
        1 as occurrences,
        nbc_grade is null as grade_missing,
        grading_version is null as grading_version_missing,
        term_class not in ({{ accepted }}) as term_class_not_accepted
    from {{ model }}
    where
        nbc_grade is null
        or grading_version is null
        or term_class not in ({{ accepted }})
        {%- for c in combination_of_columns %}
        or {{ c }} is null
        {%- endfor %}
    {%- else %}
    select
        {{ columns }},
        count(*) as occurrences,
        bool_or(nbc_grade is null) as grade_missing,
        bool_or(grading_version is null) as grading_version_missing,
        bool_or(term_class not in ({{ accepted }})) as term_class_not_accepted
    from {{ model }}
    group by {{ columns }}
    having
        count(*) > 1
        or bool_or(nbc_grade is null)
        or bool_or(grading_version is null)
        or bool_or(term_class not in ({{ accepted }}))
        {%- for c in combination_of_columns %}
        or {{ c }} is null
        {%- endfor %}
    {%- endif %}
{% endtest %}
