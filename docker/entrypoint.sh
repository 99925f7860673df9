#!/usr/bin/env bash
# Every odwh container starts here: the warehouse credentials are read from the Docker secret into the two
# variables odwh reads (the Airflow connection for the DAGs, WAREHOUSE_URL for the odwh CLI), then the command
# runs. Airflow's own secrets use its *_CMD settings instead (docker-compose.yml).
set -euo pipefail
secret=/run/secrets/warehouse_db_password
if [ -r "$secret" ]; then
  args=("${ODWH_WAREHOUSE_USER:-odwh}" "${ODWH_WAREHOUSE_HOST:-postgres}" "${ODWH_WAREHOUSE_PORT:-5432}" "${ODWH_WAREHOUSE_DB:-odwh}" "$secret")
  AIRFLOW_CONN_ODWH_WAREHOUSE="$(python /opt/odwh/docker/secret_url.py conn "${args[@]}")"
  WAREHOUSE_URL="$(python /opt/odwh/docker/secret_url.py url postgresql "${args[@]}")"
  export AIRFLOW_CONN_ODWH_WAREHOUSE WAREHOUSE_URL
fi
exec "$@"
