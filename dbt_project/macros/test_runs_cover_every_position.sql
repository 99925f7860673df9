{#-
    Generic test of a model stored as runs (decision 0060): every position on the dates tested has a run starting
    on or before its date, and the runs starting on those dates have every column of not_null_columns and no
    date of not_after_first_day after their first day (a day count from it, date - column, is never negative
    on any day of the run: the days past due's, decision 0070). This is
    what not_null on the view over the runs would assert (a position without a run reads nulls), without a run
    probe per account-day: a run holds until the account's next, so an account's earliest tested position having
    a run means all of them do. A full build's test of the views probed every account-day (at 100,000 x 61: 15 s
    for days past due, 10 s for stagnation); this one probes once per account.

    The dates tested are the positions' rebuilt dates (macros/rebuilt_dates.sql) and every date from the one the
    runs' latest build rewrote them from, or all of them when the positions or the runs were built whole in this
    invocation.
-#}
{% test runs_cover_every_position(model, positions, not_null_columns=[], not_after_first_day=[]) %}
    {%- set every_date = not rebuilt_by_date(positions) or built_whole_now(positions) or built_whole_now(model) %}
    {%- set position_dates = '' if every_date else runs_rebuilt_dates_condition(model, 'business_date') %}
    {%- set run_dates = '' if every_date else runs_rebuilt_dates_condition(model, 'valid_from') %}
    {%- set any_null = (not_null_columns | join(' is null or ') ~ ' is null') if not_null_columns else 'false' %}
    {%- set any_later = (not_after_first_day | join(' > valid_from or ') ~ ' > valid_from')
        if not_after_first_day else 'false' %}
with first_positions as (
    select
        od_account_id,
        min(business_date) as business_date
    from {{ positions }}
    where {{ position_dates or 'true' }}
    group by od_account_id
)

select
    p.od_account_id,
    p.business_date,
    'a position without a run' as failure
from first_positions as p
where not exists (
    select from {{ model }} as r
    where r.od_account_id = p.od_account_id and r.valid_from <= p.business_date
)

union all

select
    od_account_id,
    valid_from,
    'a run with a null among {{ not_null_columns | join(", ") }} or a date after its first day among {{
        not_after_first_day | join(", ") }}'
from {{ model }}
where ({{ any_null }} or {{ any_later }}) and {{ run_dates or 'true' }}
{% endtest %}
