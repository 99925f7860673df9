{#-
    The days past due of a position (decision 0060): its account's run on that date (the latest run of
    int_od__days_past_due_runs starting on or before it, one index probe) and the three day counts from the date
    (docs/policy-engine.md D). One way for every reader: the int_od__days_past_due_daily view, the grade view and
    fct_od_daily, which join it themselves (a view reading that view would be dropped whenever dbt recreates
    it). `condition` (SQL over the position) leaves the columns null where it does not hold; `business_date` and
    `term_class` are there for nbc_grade_rule_join.
-#}
{% macro days_past_due_join(position, runs, alias, condition='true') -%}
    {%- set p = position -%}
    left join lateral (
        select
            *,
            greatest(dpd_charges, dpd_excess, dpd_maturity) as days_past_due
        from (
            select
                {{ p }}.business_date,
                'SHORT' as term_class,  -- every OD is short-term (OD policy §4): the grading rules' class
                coalesce({{ p }}.business_date - r.oldest_unpaid_due_date, 0) as dpd_charges,
                coalesce({{ p }}.business_date - r.excess_since, 0) as dpd_excess,
                case
                    when {{ p }}.principal_outstanding > 0 and {{ p }}.business_date > {{ p }}.maturity_date
                        then {{ p }}.business_date - {{ p }}.maturity_date
                    else 0
                end as dpd_maturity,
                r.oldest_unpaid_due_date,
                r.unpaid_charges,
                r.excess_since,
                r.cumulative_credits,
                r.cumulative_fees_due,
                r.cumulative_interest_due,
                r.credits_beyond_fees,
                r.credits_beyond_charges
            from {{ runs }} as r
            where
                r.od_account_id = {{ p }}.od_account_id
                and r.valid_from <= {{ p }}.business_date
                and {{ condition }}
            order by r.valid_from desc
            limit 1
        ) as run
    ) as {{ alias }} on true
{%- endmacro %}
