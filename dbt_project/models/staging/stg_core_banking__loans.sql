-- one row per loan and loaded business date: its versions expanded (macros/history_as_of.sql)
{{ history_as_of(ref('stg_core_banking__loan_versions'), source('meta', 'loads')) }}
