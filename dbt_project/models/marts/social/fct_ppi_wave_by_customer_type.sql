-- PPI poverty rate per survey wave and customer type (rulebook I; macros/ppi_wave_rates.sql).
{{ ppi_wave_rates('customer_type') }}
