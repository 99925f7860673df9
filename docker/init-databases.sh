#!/usr/bin/env bash
# First start of the postgres container (docker-entrypoint-initdb.d): one role and one database for Airflow's
# metadata, another for the warehouse. Passwords come from the Docker secrets through psql variables, which
# quote them as SQL literals (:'name'): a password with ' or \ cannot break or inject into the statement.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\set airflow_password `cat /run/secrets/airflow_db_password`
\set warehouse_password `cat /run/secrets/warehouse_db_password`
create role airflow login password :'airflow_password';
create role odwh login password :'warehouse_password';
create database airflow owner airflow;
create database odwh owner odwh;
revoke all on database airflow from public;
revoke all on database odwh from public;
-- odwh db migrate grants to these reader roles; it runs as odwh, which may not create roles itself.
create role pii_reader nologin;
create role odwh_reader nologin;
SQL
