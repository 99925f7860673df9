{#-
    Generic test: no two rows share the values of combination_of_columns (e.g. a key per business date).

    Where a valid unique index covers exactly these columns, PostgreSQL has refused every duplicate on write,
    so the test asserts that index instead of grouping the whole table: a daily model's grain test read its
    whole history every day, and at 100,000 accounts the grain tests took longer than building the day
    (docs/decisions/0036). Without such an index (or on a filtered model) it groups as usual.
-#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    {%- set columns = combination_of_columns | join(', ') %}
{%- set wanted = combination_of_columns | sort %}
with enforcing_index as (
    select i.indexrelid
    from pg_index as i
    where
        i.indrelid = {{ "to_regclass('" ~ model ~ "')" if model is not string else 'null' }}
        and i.indisunique
        and i.indisvalid
        and i.indpred is null
        and i.indnkeyatts = {{ wanted | length }}
        and array(
            select a.attname::text
            from pg_attribute as a
            where a.attrelid = i.indrelid and a.attnum = any(i.indkey)
            order by a.attname
        ) = array[{% for c in wanted %}'{{ c }}'{{ ", " if not loop.last }}{% endfor %}]::text[]
)

select
    {{ columns }},
    count(*) as occurrences
from {{ model }}
where not exists (select from enforcing_index)
group by {{ columns }}
having count(*) > 1
{% endtest %}
