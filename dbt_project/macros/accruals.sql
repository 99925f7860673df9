{#-
    A day's unrounded accruals (rulebook B and C) are a function of its position row and the day-count
    parameters in force on its date, so they are computed where they are read, never stored (decision 0043):
    int_od__accruals_daily and the published fct_od_daily (a view cannot read another view that dbt replaces
    in every build) both join `day_count_weights` on the date and select `accrual_columns`.
-#}

{#-
    One row per calendar day from the first to the last business date of `positions` (two index probes): the
    day-count divisors and the day's weight. 30E/360 with p = interest_days_per_month: days after the p-th weigh
    0 (day 31), the last day of a month shorter than p weighs p + 1 - days_in_month (28 Feb: 3, 29 Feb: 2),
    every other day 1. ACT/360: every day 1. A parameter missing on a day of the span fails the query, never
    yields null. Every day of the span, not the distinct dates of `positions`: those would be a scan of
    its whole date index for any reader whose date condition is a range, which does not reach a distinct list.
    `distinct on (business_date)`, though each date is already one row: a subquery with `distinct` is never
    merged into its reader, so the day's computations (the convention, the month's length, the parameters)
    run once a day, not once per accrual column of every position row (10 s of one core in the monthly
    charges' full build at 100,000 x 61); and the planner knows the date is unique, so it estimates the join
    at one row per position (behind `offset 0` it hashed the positions instead, on one core).
-#}
{% macro day_count_weights(positions, parameter_versions) -%}
    select distinct on (business_date)
        business_date,
        days_per_month,
        days_per_year,
        parameter_version,
        case
            when convention = 'ACT/360' then 1
            when convention = '30E/360'
                then
                    case
                        when day_of_month > days_per_month then 0
                        when day_of_month = days_in_month and days_in_month < days_per_month
                            then days_per_month + 1 - days_in_month
                        else 1
                    end
            else ('unknown day_count_convention ' || convention || ' on ' || business_date)::int
        end::numeric as day_weight
    from (
        select
            d.business_date,
            {{ required_policy_param('conv', 'day_count_convention', 'd.business_date', 'value_text') }}
                as convention,
            {{ required_policy_param('per_month', 'interest_days_per_month', 'd.business_date') }}
                as days_per_month,
            {{ required_policy_param('per_year', 'interest_days_per_year', 'd.business_date') }} as days_per_year,
            conv.parameter_version,
            extract(day from d.business_date)::int as day_of_month,
            extract(day from date_trunc('month', d.business_date) + interval '1 month - 1 day')::int
                as days_in_month
        from (
            -- whole days added to a date: a series of timestamps would follow the session's time zone
            select bounds.first_date + days.n as business_date
            from (
                select
                    min(business_date) as first_date,
                    max(business_date) as last_date
                from {{ positions }}
            ) as bounds
            cross join lateral generate_series(0, bounds.last_date - bounds.first_date) as days (n)
        ) as d
        left join {{ parameter_versions }} as conv
            on {{ join_policy_param('conv', 'day_count_convention', 'd.business_date') }}
        left join {{ parameter_versions }} as per_month
            on {{ join_policy_param('per_month', 'interest_days_per_month', 'd.business_date') }}
        left join {{ parameter_versions }} as per_year
            on {{ join_policy_param('per_year', 'interest_days_per_year', 'd.business_date') }}
    ) as day_count
{%- endmacro %}

{#- The accrual columns of position `p` with the weights `w` of its date. Multiply first (exact), cast to scale
    20, divide once: the quotient keeps 20 decimals; trim_scale only drops trailing zeros. -#}
{% macro accrual_columns(p, w) -%}
    {{ w }}.day_weight,
    trim_scale(
        ({{ p }}.principal_outstanding * {{ p }}.monthly_interest_rate * {{ w }}.day_weight)::numeric(38, 20)
        / {{ w }}.days_per_month
    ) as interest_accrued,
    case
        when {{ p }}.is_active
            then trim_scale(
                ({{ p }}.unutilized_amount * {{ p }}.unutilized_fee_rate_annual * {{ w }}.day_weight)::numeric(38, 20)
                / {{ w }}.days_per_year
            )
        else 0
    end as unutilized_fee_accrued,
    trim_scale(
        ({{ p }}.excess_amount * {{ p }}.excess_fee_rate_monthly * {{ w }}.day_weight)::numeric(38, 20)
        / {{ w }}.days_per_month
    ) as excess_fee_accrued,
    {{ w }}.parameter_version
{%- endmacro %}
