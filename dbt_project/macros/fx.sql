{#-
    USD equivalent of an account-currency amount (rulebook A): amount x khr_per_unit(ccy) / khr_per_unit(USD).
    fx is the alias of a joined int_fx__rates_daily row (the currency's rate on the date that matters).
    Multiplying before dividing keeps KHR -> USD -> KHR exact; the result is not rounded (not a due amount).

    to_usd('a.limit_amount', 'fx')  ->  (a.limit_amount * fx.khr_per_unit / fx.khr_per_usd)
-#}
{% macro to_usd(amount, fx) -%}
    ({{ amount }} * {{ fx }}.khr_per_unit / {{ fx }}.khr_per_usd)
{%- endmacro %}

{#- USD amount in a currency: amount_usd x khr_per_unit(USD) / khr_per_unit(ccy). -#}
{% macro from_usd(amount_usd, fx) -%}
    ({{ amount_usd }} * {{ fx }}.khr_per_usd / {{ fx }}.khr_per_unit)
{%- endmacro %}
