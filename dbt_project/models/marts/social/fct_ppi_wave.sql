-- PPI poverty rate per survey wave (rulebook I): macros/ppi_wave_rates.sql; completeness: int_social__ppi_waves.
{{ ppi_wave_rates() }}
