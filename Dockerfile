# One image for every Airflow role (api-server, scheduler, dag-processor, triggerer, Celery worker) and the
# odwh CLI. Same pinned lock as `make install` (it includes the Celery provider and the Redis client).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow ODWH_PROJECT_DIR=/opt/odwh ODWH_HOME=/var/lib/odwh
# no Khmer font package: the reports carry Noto Sans Khmer from the Python lock (odwh.publish.fonts)
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/* && useradd --create-home --uid 50000 airflow
WORKDIR /opt/odwh
COPY requirements.lock pyproject.toml README.md ./
# bytecode compiled at build (decision 0051): with PYTHONDONTWRITEBYTECODE no process writes it, so without it
# every task would compile Airflow's, dbt's and Great Expectations' imports again
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache --compile-bytecode -r requirements.lock
COPY plugins ./plugins
COPY dags ./dags
COPY dbt_project ./dbt_project
COPY expectations ./expectations
COPY docker ./docker
RUN uv pip install --system --no-cache --no-deps -e . && python -m compileall -q plugins dags && mkdir -p /var/lib/odwh /opt/airflow \
    && chown -R airflow /var/lib/odwh /opt/airflow
USER airflow
# Reads the warehouse password from its Docker secret into the Airflow connection, then runs the command.
ENTRYPOINT ["/opt/odwh/docker/entrypoint.sh"]
