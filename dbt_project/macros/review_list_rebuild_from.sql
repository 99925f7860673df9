{#-
    rpt_review_list's incremental start (decision 0045): month_end_rebuild_from(with_reversed_dates=true), or an
    earlier month end whose social or lifecycle rows changed. Those inputs are rebuilt in full at each close and
    place a row by its own date, not by the delivery's: an application under the month it was decided in, a
    write-off under its closed_on. A later delivery can so restate a month end the list already holds (decision
    0034: the next close restates a month with what was delivered late for it). Their rows are few: they are
    compared with the list's copies both ways, over the month ends the list holds.
    In its own file: sqlfluff's templater passes a macro's `return` value only to callers in other files.
-#}
{% macro review_list_rebuild_from() -%}
    {%- set from_date = month_end_rebuild_from(with_reversed_dates=true) -%}
    {%- if from_date is none or not execute -%}
        {{ return(from_date) }}
    {%- endif -%}
    {%- set columns = 'month_end, od_account_id, reason, detail, detail_params, amount, load_id' -%}
    {%- set restated_sql -%}
        with routed as (
            select {{ columns }} from {{ ref('int_social__review_reasons') }}
            union all
            select {{ columns }} from {{ ref('int_monitoring__od_lifecycle_month_end') }}
        ),

        listed as (
            select {{ columns }} from {{ this }}
            where reason in (
                'ES_SCREENING', 'EXCLUSION', 'OVER_INDEBTEDNESS', 'PRICING',
                'CONVERTED', 'CLOSED_WITH_BALANCE', 'WRITTEN_OFF'
            )
        )

        select coalesce(min(month_end), 'infinity'::date)::text
        from (
            (
                select * from routed
                where month_end in (select distinct month_end from {{ this }})
                except select * from listed
            )
            union all
            (select * from listed except select * from routed)
        ) as changed
    {%- endset -%}
    {%- set restated_from = run_query(restated_sql).columns[0].values()[0] -%}
    {{ return([from_date, restated_from] | min) }}
{%- endmacro %}
