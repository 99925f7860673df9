"""The cluster deployment files: docker-compose.yml can't be run here (no Docker engine), so check its shape."""

from __future__ import annotations

import re

import yaml
from support import REPO


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_runs_airflow_with_celery_against_postgres():
    services = _compose()["services"]
    airflow = {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
    }
    assert {"postgres", "redis", *airflow} <= set(services)
    worker_env = services["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "AIRFLOW_CONN_ODWH_WAREHOUSE" in worker_env and "WAREHOUSE_URL" in worker_env


def test_compose_holds_no_secret_literals():
    text = (REPO / "docker-compose.yml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|FERNET_KEY)\w*:\s*\S", line) and "${" not in line:
            raise AssertionError(f"literal secret in docker-compose.yml: {line.strip()}")


def test_image_contains_everything_the_dags_need():
    dockerfile = (REPO / "Dockerfile").read_text()
    for folder in ("plugins", "dags", "dbt_project", "expectations"):
        assert f"COPY {folder} " in dockerfile
    assert "requirements.lock" in dockerfile
