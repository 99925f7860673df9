"""The NBC loan grades, defined once: the gate checks marts against them and the reports order by them.

They must equal the grades of the dbt seed ``nbc_grading_rules.csv`` (policy-rules.md F); a test checks the names.
"""

#: NBC grades, best first (the seed's grade_order).
NBC_GRADES: tuple[str, ...] = ("Normal", "Special Mention", "Substandard", "Doubtful", "Loss")
#: The non-performing grades (the seed's is_non_performing).
NON_PERFORMING: frozenset[str] = frozenset({"Substandard", "Doubtful", "Loss"})
