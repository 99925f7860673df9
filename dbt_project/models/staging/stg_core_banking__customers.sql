-- one row per customer and loaded business date: its versions expanded (macros/history_as_of.sql)
{{ history_as_of(ref('stg_core_banking__customer_versions'), source('meta', 'loads')) }}
