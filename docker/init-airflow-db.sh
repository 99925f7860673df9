#!/usr/bin/env bash
# First start of the postgres container: a separate database and role for Airflow's metadata.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
create role airflow login password '${POSTGRES_PASSWORD}';
create database airflow owner airflow;
SQL
