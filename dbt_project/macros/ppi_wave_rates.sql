{#-
    PPI poverty rate per wave, optionally per breakdown column (rulebook I), from int_social__ppi_wave_clients:
    surveyed_clients, poverty_rate = mean poverty likelihood (0-1, unrounded), change_pp = the change against
    the same group's previous surveyed wave in percentage points (13.4% -> 10.8% = -2.6; null for the first),
    and the wave's completeness from int_social__ppi_waves. Complete months only: surveys delivered by the last
    complete month end (int_social__ppi_wave_clients, decision 0034).

    ppi_wave_rates()              -> one row per wave
    ppi_wave_rates('province')    -> one row per (wave, province)
-#}
{% macro ppi_wave_rates(breakdown=none) -%}
    {%- set group_cols = ['c.wave'] + (['c.' ~ breakdown] if breakdown else []) -%}
    with rates as (
        select
            {{ group_cols | join(', ') }},
            count(*) as surveyed_clients,
            trim_scale(avg(c.poverty_likelihood)) as poverty_rate,
            max(c.load_id) as load_id
        from {{ ref('int_social__ppi_wave_clients') }} as c
        group by {{ group_cols | join(', ') }}
    )

    select
        r.wave,
        {% if breakdown %}r.{{ breakdown }},{% endif %}
        r.surveyed_clients,
        r.poverty_rate,
        trim_scale(
            (r.poverty_rate - lag(r.poverty_rate) over (
                {% if breakdown %}partition by r.{{ breakdown }}{% endif %} order by r.wave
            )) * 100
        ) as change_pp,
        w.is_complete,
        w.first_delivered_on,
        w.last_delivered_on,
        w.parameter_version,
        r.load_id
    from rates as r
    inner join {{ ref('int_social__ppi_waves') }} as w on r.wave = w.wave
{%- endmacro %}
