"""Throw-away migrated databases on the test server, and the two shapes of query the tests read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from odwh import warehouse
from psycopg import sql
from psycopg.rows import dict_row


@contextmanager
def throwaway_database(server_url: str) -> Iterator[str]:
    """A new migrated database on the server of ``server_url``, dropped on exit; yields its URL."""
    name = f"odwh_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
        warehouse.migrate(url)
        yield url
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
