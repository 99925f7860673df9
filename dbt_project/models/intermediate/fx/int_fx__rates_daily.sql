-- NBC official rates per business date and currency, with the USD cross rate (rulebook A):
-- usd_per_unit = khr_per_unit(ccy) / khr_per_unit(USD). Only loaded dates have rates: a date without an
-- fx_rates delivery has no row, so a conversion on it is "not evaluable" rather than silently stale.
-- Convert with the to_usd() macro (multiply first, divide last) rather than amount x usd_per_unit.
with rates as (
    select * from {{ ref('stg_core_banking__fx_rates') }}
),

usd as (
    select
        business_date,
        khr_per_unit as khr_per_usd
    from rates
    where currency = 'USD'
)

select
    rates.business_date,
    rates.currency,
    rates.khr_per_unit,
    usd.khr_per_usd,
    -- trim_scale: 120 / 4000 reads 0.03, not 0.03000000000000000000 (same value, shorter text)
    trim_scale(rates.khr_per_unit / usd.khr_per_usd) as usd_per_unit,
    rates._load_id as load_id
from rates
left join usd on rates.business_date = usd.business_date
