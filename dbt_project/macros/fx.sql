{#-
    USD equivalent of an account-currency amount (rulebook A): amount x khr_per_unit(ccy) / khr_per_unit(USD).
    fx is the alias of a joined int_fx__rates_daily row (the currency's rate on the date that matters).
    Multiplying before dividing keeps KHR -> USD -> KHR exact; the result is not rounded (not a due amount), only
    its trailing zeros are trimmed (4,100,000 KHR at 4,100 reads 1000, not 1000.0000000000000000).

    to_usd('a.limit_amount', 'fx')  ->  trim_scale(a.limit_amount * fx.khr_per_unit / fx.khr_per_usd)
-#}
{% macro to_usd(amount, fx) -%}
    trim_scale({{ amount }} * {{ fx }}.khr_per_unit / {{ fx }}.khr_per_usd)
{%- endmacro %}

{#- USD amount in a currency: amount_usd x khr_per_unit(USD) / khr_per_unit(ccy). -#}
{% macro from_usd(amount_usd, fx) -%}
    trim_scale({{ amount_usd }} * {{ fx }}.khr_per_usd / {{ fx }}.khr_per_unit)
{%- endmacro %}
