-- Rulebook F: on every date, the grading bands in force for each term class cover every days past due from 0 up,
-- one after the other (the next band starts the day after the last one ends, the last is open-ended). With
-- assert_nbc_grading_bands_never_overlap, every days past due then has exactly one grade on every date, so a graded
-- row has a grade whenever it has days past due: what the OD grades' graded_once test checked for every account-day
-- (decision 0070). Returns each date, term class and band that breaks it (a term class without a band on a date is
-- returned with a null grading_version).
-- The dates checked: each date a rule version starts (the bands in force change on no other date). A date before
-- the first version (the seed's: 2019-01-01) has no band at all: the OD grades' graded_once finds a month end's
-- positions dated so. (The rule versions are the only input: a test also reading the loads would be selected by
-- every build that selects them, built or not.)
with checked_dates as (
    select distinct effective_from as business_date
    from {{ ref('int_policy__nbc_grading_rule_versions') }}
),

term_classes as (
    select distinct term_class
    from {{ ref('int_policy__nbc_grading_rule_versions') }}
),

bands as (
    select
        d.business_date,
        c.term_class,
        r.grading_version,
        r.min_dpd,
        r.max_dpd,
        lag(r.max_dpd) over dated_bands as previous_max_dpd,
        row_number() over dated_bands as band,
        count(r.grading_version) over (partition by d.business_date, c.term_class) as bands
    from checked_dates as d
    cross join term_classes as c
    left join {{ ref('int_policy__nbc_grading_rule_versions') }} as r
        on
            c.term_class = r.term_class
            and d.business_date >= r.effective_from
            and d.business_date < r.effective_to
    window dated_bands as (partition by d.business_date, c.term_class order by r.min_dpd)
)

select
    business_date,
    term_class,
    grading_version,
    min_dpd,
    max_dpd,
    case
        when bands = 0 then 'no band in force'
        when band = 1 and min_dpd <> 0 then 'the first band does not start at 0'
        when band > 1 and (previous_max_dpd is null or min_dpd <> previous_max_dpd + 1)
            then 'the band does not start the day after the one before ends'
        when band = bands and max_dpd is not null then 'the last band has an end'
    end as failure
from bands
where
    bands = 0
    or (band = 1 and min_dpd <> 0)
    or (band > 1 and (previous_max_dpd is null or min_dpd <> previous_max_dpd + 1))
    or (band = bands and max_dpd is not null)
