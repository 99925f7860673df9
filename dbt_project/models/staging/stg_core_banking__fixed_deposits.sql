-- one row per fixed deposit and loaded business date: its versions expanded (macros/history_as_of.sql)
{{ history_as_of(ref('stg_core_banking__fixed_deposit_versions'), source('meta', 'loads')) }}
