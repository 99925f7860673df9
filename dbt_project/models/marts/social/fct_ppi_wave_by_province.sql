-- PPI poverty rate per survey wave and province of the client's branch (rulebook I; macros/ppi_wave_rates.sql).
{{ ppi_wave_rates('province') }}
