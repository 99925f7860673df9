{#-
    Where a policy version comes from (rulebook L), the same four columns (source, origin, recorded_by, reason)
    in int_policy__parameter_versions and int_policy__nbc_grading_rule_versions: a seed row keeps its own
    source; a change recorded by `odwh policy set` (alias `change` of stg_meta__policy_changes) names itself.
-#}
{% macro seed_provenance() -%}
    source,
        'seed' as origin,
        null::text as recorded_by,
        null::text as reason
{%- endmacro %}

{% macro recorded_change_provenance(change) -%}
    'odwh policy set (change ' || {{ change }}.change_id || ')' as source,
        'recorded' as origin,
        {{ change }}.recorded_by,
        {{ change }}.reason
{%- endmacro %}
