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
-- The group roles odwh db migrate grants to (docs/decisions/0025); it runs as odwh, which may not create roles.
create role pii_reader nologin;
create role odwh_reader nologin;
create role odwh_branch_reader nologin;
create role odwh_loader nologin;
create role odwh_transformer nologin;
create role odwh_publisher nologin;
-- odwh owns the database; each pipeline stage SETs its role (odwh keeps none of their rights by inheritance)
-- and odwh access grant hands odwh_branch_reader to report logins.
grant odwh_loader, odwh_transformer, odwh_publisher to odwh with inherit false, set true;
grant odwh_branch_reader to odwh with admin true, inherit false, set false;
SQL
