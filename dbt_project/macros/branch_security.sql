{#- The row filter of a mart view that carries branch_code (decision 0041). Row-level security does not reach
    the rows of a view, read with its owner's rights, so the view filters them itself: every row for the roles
    the marts' policies let read every branch (a reader, the publisher, the transformer that owns them), the
    granted branches for a branch reader (meta.visible_branches, odwh access grant). meta.secure_relation makes
    the view a security barrier and grants it to branch readers only when this filter is in its definition.
    (select ...) is evaluated once per query, so a reader of every branch pays nothing per row. -#}
{% macro visible_branch_rows(branch_column) -%}
    ((select meta.reads_every_branch()) or {{ branch_column }} in (select meta.visible_branches()))
{%- endmacro %}
