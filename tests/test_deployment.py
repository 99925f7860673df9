"""The Docker deployment files: their shape, checked statically (there is no Docker engine here), plus
`docker compose config` where the compose client is installed, and the secret helper the containers run."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml
from support import REPO

AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}
LONG_RUNNING = {"postgres", "redis", *AIRFLOW_SERVICES, "airflow-worker"}
URL_WITH_CREDENTIALS = re.compile(r"\w+://[^/@\s:]+:[^@\s]+@")


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(service: str) -> dict[str, str]:
    return _compose()["services"][service]["environment"]


def test_every_airflow_3_service_runs_with_celery_redis_and_postgres():
    services = _compose()["services"]
    assert {*LONG_RUNNING, "airflow-init"} <= set(services)
    assert services["airflow-triggerer"]["command"] == ["airflow", "triggerer"]
    assert services["airflow-worker"]["command"] == ["airflow", "celery", "worker"]
    for name in [*AIRFLOW_SERVICES, "airflow-worker"]:
        env = _env(name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        assert (
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"].split()[-1] == "/run/secrets/airflow_db_password"
        )
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}


def test_every_long_running_service_has_a_health_check():
    services = _compose()["services"]
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
    one_shot = set(services) - LONG_RUNNING
    assert one_shot == {"airflow-init"} and services["airflow-init"]["restart"] == "no"


def test_workers_scale_with_compose():
    worker = _compose()["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would clash at --scale 2


def test_secrets_come_from_files_never_from_literals_or_urls():
    compose = _compose()
    text = (REPO / "docker-compose.yml").read_text()
    assert not URL_WITH_CREDENTIALS.search(text)
    assert "PASSWORD:" not in text
    assert not any(key.startswith("AIRFLOW_CONN_") for key in _env("airflow-worker"))
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__CELERY__RESULT_BACKEND",
    ):
        assert key not in _env("airflow-worker") and f"{key}_CMD" in _env("airflow-worker")
    assert all("file" in s for s in compose["secrets"].values())
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith(
        "/run/secrets/"
    )


def test_metadata_and_warehouse_have_separate_roles_and_databases():
    postgres = _compose()["services"]["postgres"]
    mounted = next(v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v)
    script = (REPO / mounted.split(":")[0]).read_text()
    for role in ("airflow", "odwh"):
        assert f"create role {role} login password :'" in script
        assert f"create database {role} owner {role};" in script
    assert "create role pii_reader nologin;" in script and "create role odwh_reader nologin;" in script
    assert "${" not in script.split("<<'SQL'")[1]  # quoted heredoc: the shell pastes nothing into the SQL
    assert _env("airflow-worker")["ODWH_WAREHOUSE_USER"] == "odwh"


def test_landing_archive_and_reports_are_volumes():
    targets = {v.split("}:")[-1].split(":")[0] for v in _compose()["services"]["airflow-worker"]["volumes"]}
    assert {"/data/landing", "/data/archive", "/data/reports"} <= targets
    env = _env("airflow-worker")
    assert (env["ODWH_ARCHIVE_DIR"], env["REPORTS_DIR"]) == ("/data/archive", "/data/reports")


def test_env_example_names_every_variable_compose_reads_and_env_is_ignored():
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))  # $${X} is the container shell's, not compose's
    example = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^(\w+)=", example, flags=re.M))
    assert used <= documented, used - documented
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO)
    assert ignored.returncode == 0


def test_image_contains_everything_the_services_need():
    dockerfile = (REPO / "Dockerfile").read_text()
    for folder in ("plugins", "dags", "dbt_project", "expectations", "docker"):
        assert f"COPY {folder} " in dockerfile
    assert "requirements.lock" in dockerfile
    assert 'ENTRYPOINT ["/opt/odwh/docker/entrypoint.sh"]' in dockerfile
    lock = (REPO / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow-providers-celery==", lock, flags=re.M)
    assert re.search(r"^redis==", lock, flags=re.M)


def test_dependencies_are_installed_with_their_bytecode():
    """`make install` and the image compile the dependencies (decision 0051): where PYTHONDONTWRITEBYTECODE is set
    (the image sets it) no process writes bytecode, so each would compile Airflow's, dbt's and Great Expectations'
    imports again (Great Expectations' import took 15.9 s so, 5.6 s compiled)."""
    for package in ("airflow", "dbt.cli", "great_expectations"):
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.origin is not None
        assert Path(importlib.util.cache_from_source(spec.origin)).exists(), f"{package} is not compiled"
    assert "--compile-bytecode -r requirements.lock" in (REPO / "Dockerfile").read_text()
    assert "--compile-bytecode --python $(BIN)/python -r requirements.lock" in (REPO / "Makefile").read_text()


def _compose_client() -> str | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return docker
    return None


@pytest.mark.skipif(_compose_client() is None, reason="the docker compose client is not installed here")
def test_docker_compose_config_accepts_the_file(tmp_path: Path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in _compose()["secrets"]:
        (secrets / name).write_text("not-a-real-secret\n")
    env_file = tmp_path / ".env"
    env_file.write_text((REPO / ".env.example").read_text() + f"\nODWH_SECRETS_DIR={secrets}\n")
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(env_file),
            "-f",
            str(REPO / "docker-compose.yml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


SECRET_URL = REPO / "docker" / "secret_url.py"
AWKWARD_PASSWORD = "p@ss/w:rd'\"%#?&"


def _secret(tmp_path: Path, *args: str) -> str:
    secret = tmp_path / "password"
    secret.write_text(
        AWKWARD_PASSWORD + "\n"
    )  # secret files usually end with a newline: it is not the password
    result = subprocess.run(
        [sys.executable, str(SECRET_URL), *args, str(secret)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_secret_url_escapes_any_password(tmp_path: Path, server_url: str):
    """A password with @ / : ' " % survives into a URL PostgreSQL accepts (the old compose file broke on it)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("drop role if exists awkward")
        conn.execute(psycopg.sql.SQL("create role awkward login password {}").format(AWKWARD_PASSWORD))
    server = psycopg.conninfo.conninfo_to_dict(server_url)
    url = _secret(
        tmp_path, "url", "postgresql", "awkward", str(server["host"]), str(server["port"]), "postgres"
    )
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user").fetchone() == ("awkward",)
    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == AWKWARD_PASSWORD


def test_secret_url_writes_the_airflow_connection_as_json(tmp_path: Path):
    conn = json.loads(_secret(tmp_path, "conn", "odwh", "postgres", "5432", "odwh"))
    assert conn["password"] == AWKWARD_PASSWORD
    assert (conn["host"], conn["port"], conn["login"], conn["schema"]) == ("postgres", 5432, "odwh", "odwh")
