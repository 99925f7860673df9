"""Print a database URL or an Airflow connection whose password is read from a file (a Docker secret).

Airflow's ``*_CMD`` settings run it, so no password is ever written into docker-compose.yml, an environment
variable's literal value or a URL by hand: the password is URL-escaped here (``@``, ``/``, ``:`` and ``'`` are
safe), and the Airflow connection is JSON (no escaping at all).

    secret_url.py url postgresql+psycopg airflow postgres 5432 airflow /run/secrets/airflow_db_password
    secret_url.py conn odwh postgres 5432 odwh /run/secrets/warehouse_db_password
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote


def _password(path: str) -> str:
    return Path(path).read_text().rstrip("\r\n")


def url(scheme: str, user: str, host: str, port: str, dbname: str, password_file: str) -> str:
    password = quote(_password(password_file), safe="")
    return f"{scheme}://{quote(user, safe='')}:{password}@{host}:{port}/{dbname}"


def conn(user: str, host: str, port: str, dbname: str, password_file: str) -> str:
    fields = {"conn_type": "postgres", "host": host, "port": int(port), "login": user, "schema": dbname}
    return json.dumps({**fields, "password": _password(password_file)})


if __name__ == "__main__":
    kind, *args = sys.argv[1:]
    print({"url": url, "conn": conn}[kind](*args))
