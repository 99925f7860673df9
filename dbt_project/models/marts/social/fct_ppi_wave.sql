-- PPI poverty rate per survey wave (rulebook I): macros/ppi_wave_rates.sql; completeness: int_social__ppi_waves.
-- Complete months only: surveys delivered by the last complete month end (int_social__ppi_wave_clients).
{{ ppi_wave_rates() }}
