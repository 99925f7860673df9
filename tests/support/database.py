"""Throw-away migrated databases on the test server, and the two shapes of query the tests read."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from odwh import contract, history, warehouse
from psycopg import sql
from psycopg.rows import dict_row

# The migrated database each server's throw-away databases are copied from (server URL -> database name): a
# copy costs a fraction of applying every migration again, a few hundred times a suite
_templates: dict[str, str] = {}


def _database_url(server_url: str, name: str) -> str:
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def _migrated_template(server_url: str) -> str:
    if server_url not in _templates:
        name = f"odwh_test_template_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        warehouse.migrate(_database_url(server_url, name))
        _templates[server_url] = name
    return _templates[server_url]


def reused_name(kind: str) -> str:
    """The name a fixture's database takes in every test of this process (one per pytest-xdist worker)."""
    return f"odwh_test_{kind}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def drop_templates(server_url: str) -> None:
    """Drop the template :func:`throwaway_database` copied on ``server_url`` (at the end of the session)."""
    if name := _templates.pop(server_url, None):
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@contextmanager
def throwaway_database(server_url: str, name: str | None = None) -> Iterator[str]:
    """A new migrated database on the server of ``server_url``, dropped on exit; yields its URL.

    A copy of a database migrated once per session (``create database ... template``), with what a copy does not
    carry: the database's own privileges, granted to the odwh roles by the migrations (warehouse.ACCESS_DDL).
    ``name`` (default: a new one) replaces a database left by an earlier test: dbt parses a project again whole
    for a database of another name (its connection is part of what partial parsing compares), so the fixtures'
    databases keep theirs from test to test (``reused_name``)."""
    template = _migrated_template(server_url)
    name = name or f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    try:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("grant connect on database {} to {}").format(
                    sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, warehouse.ROLES))
                )
            )
        yield _database_url(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def query(url: str, statement: str | sql.Composable, *params: object) -> list[tuple[Any, ...]]:
    """Rows of ``statement`` as tuples."""
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params or None).fetchall()  # type: ignore[arg-type]


def query_dicts(url: str, statement: str, *params: object) -> list[dict[str, Any]]:
    """Rows of ``statement`` as dicts keyed by column name."""
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(statement, params or None).fetchall()  # type: ignore[arg-type]


def marts_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the ordered rows of every marts table and view: equal fingerprints, equal marts.

    A ``load_id`` (or ``max_input_load_id``) is compared as the extract it names (business date and manifest
    sha256): two warehouses that loaded the same deliveries number their loads alike only if no load was ever
    cut short (a rolled-back load still uses up its id)."""
    extract = (
        "(select l.business_date::text || ':' || l.manifest_sha256 from meta.loads l where l.load_id = t.{})"
    )
    with psycopg.connect(url) as conn:
        found: dict[str, tuple[int, str]] = {}
        for (name,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1"
        ).fetchall():
            columns = conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'marts' and table_name = %s order by ordinal_position",
                (name,),
            ).fetchall()
            selected = sql.SQL(", ").join(
                sql.SQL(extract if column.endswith("load_id") else "t.{}").format(sql.Identifier(column))
                for (column,) in columns
            )
            found[name] = conn.execute(
                sql.SQL(
                    "select count(*), md5(coalesce(string_agg(r::text, E'\\n' order by r::text), ''))"
                    " from (select {} from marts.{} t) r"
                ).format(selected, sql.Identifier(name))
            ).fetchone()
        return found


def manifest_mismatches(url: str, landing: Path) -> list[tuple[str, str, object, object]]:
    """(date, file, manifest's, raw's) for every row count or control total of a delivery in ``landing``
    that raw does not hold exactly once: empty when nothing was lost or doubled."""
    found: list[tuple[str, str, object, object]] = []
    with psycopg.connect(url) as conn:
        for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
            manifest = json.loads((folder / contract.MANIFEST_NAME).read_text())
            day = date.fromisoformat(folder.name)
            for name, entry in manifest["files"].items():
                f = contract.FILES_BY_NAME[name]
                total = (
                    sql.SQL("sum({})").format(sql.Identifier(f.control_total))
                    if f.control_total
                    else sql.SQL("null")
                )
                rows_by_date = sql.SQL(history.by_business_date(f))  # a history's rows as of the date
                statement = sql.SQL("select count(*), {} from {} r where _business_date = %s").format(
                    total, rows_by_date
                )
                count, loaded_total = conn.execute(statement, (day,)).fetchone() or (0, None)
                if count != entry["rows"]:
                    found.append((folder.name, name, entry["rows"], count))
                elif f.control_total and count and loaded_total != Decimal(entry["control_total"]):
                    found.append((folder.name, name, entry["control_total"], loaded_total))
    return found
