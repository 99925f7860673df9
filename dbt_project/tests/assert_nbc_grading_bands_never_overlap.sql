-- Rulebook F: on any date, the grading bands of a term class do not overlap, so a days-past-due value has at
-- most one grade. The grade join (macros/nbc_grade.sql) takes the first rule it finds (`limit 1`): an overlap
-- would grade by whichever row the scan met first. A gap is a row without a grade (graded_once). Returns each
-- overlapping pair of rule versions.
select
    a.term_class,
    a.grading_version,
    b.grading_version as overlapping_version
from {{ ref('int_policy__nbc_grading_rule_versions') }} as a
inner join {{ ref('int_policy__nbc_grading_rule_versions') }} as b
    on
        a.term_class = b.term_class
        and (a.grade, a.effective_from) < (b.grade, b.effective_from)  -- each pair once: the versions' key
        and a.effective_from < b.effective_to
        and b.effective_from < a.effective_to
        and a.min_dpd <= coalesce(b.max_dpd, 2147483647)
        and b.min_dpd <= coalesce(a.max_dpd, 2147483647)
