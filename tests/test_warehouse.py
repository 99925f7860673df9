"""The embedded warehouse and the schema migration, against a real server."""

from __future__ import annotations

import psycopg
from odwh import contract, history, warehouse


def test_embedded_server_starts_stops_and_survives_restart(tmp_path):
    server = warehouse.EmbeddedServer(tmp_path / "home")
    url = server.start()
    assert url.startswith("postgresql://odwh:") and "@127.0.0.1:" in url
    assert server.start() == url  # idempotent
    with psycopg.connect(url) as conn:
        assert conn.execute("show timezone").fetchone() == ("Asia/Phnom_Penh",)
        assert conn.execute("show wal_level").fetchone() == ("minimal",)  # decision 0057
    assert server.stop() is True
    assert not server.is_running()
    assert server.stop() is False
    assert server.start() == url  # same data directory, same URL
    server.stop()
    assert oct((tmp_path / "home" / "warehouse.json").stat().st_mode & 0o777) == "0o600"


def test_migrate_creates_raw_tables_from_the_contract_and_is_idempotent(fresh_db):
    warehouse.migrate(fresh_db)  # second run: nothing changes, nothing fails
    with psycopg.connect(fresh_db) as conn:
        for f in contract.FILES:
            columns = conn.execute(
                "select column_name from information_schema.columns where table_schema = 'raw' and table_name = %s"
                " order by ordinal_position",
                (f.table,),
            )
            cols = [r[0] for r in columns]
            lineage = ["_load_id", "_row_number"]
            stored = ["valid_from", "valid_to"] if history.stored_as_history(f) else ["_business_date"]
            expected = [c.name for c in f.columns if not c.pii] + (
                [*lineage, *stored] if history.stored_as_history(f) else [*stored, *lineage]
            )
            assert cols == expected, f.table


def test_the_histories_keep_only_the_indexes_their_readers_use(fresh_db):
    """Every reader finds "the versions as of D" by two date comparisons (history.as_of, dbt's valid_on): no range
    index, which each version the door opens or closes would pay for (decision 0065, migration 13)."""
    with psycopg.connect(fresh_db) as conn:
        for f in filter(history.stored_as_history, contract.FILES):
            found = conn.execute(
                "select indexdef from pg_indexes where schemaname = 'raw' and tablename = %s order by indexname",
                (f.table,),
            ).fetchall()
            key = ", ".join(f.key)
            assert [d.split(" USING ")[1] for (d,) in found] == [
                "btree (valid_from)",
                "btree (valid_to)",
                f"btree ({key}, valid_from)",
            ], f.table
        gist = "select count(*) from pg_indexes where indexdef like '% USING gist %'"
        assert conn.execute(gist).fetchone() == (0,)
        # a warehouse migrated before 13 still has one: the upgrade applies migration 13 (and the later ones,
        # each safe to apply again) and drops it
        conn.execute("create index loans_as_of on raw.loans using gist (daterange(valid_from, valid_to))")
        conn.execute("delete from meta.schema_migrations where version = 13")
        conn.commit()
        assert warehouse.migrate(fresh_db) == [m.version for m in warehouse.MIGRATIONS if m.version >= 13]
        assert conn.execute(gist).fetchone() == (0,)


def test_client_identifiers_are_kept_out_of_raw_and_pii_is_closed_to_public(fresh_db):
    with psycopg.connect(fresh_db) as conn:
        columns = conn.execute(
            "select column_name from information_schema.columns where table_schema = 'raw'"
        )
        raw_cols = {r[0] for r in columns}
        assert not raw_cols & {"national_id", "phone"}
        conn.execute("create role odwh_test_nobody nologin")
        try:
            allowed = conn.execute(
                "select has_schema_privilege('odwh_test_nobody', 'pii', 'usage')"
            ).fetchone()
            assert allowed == (False,)
            allowed = conn.execute("select has_schema_privilege('pii_reader', 'pii', 'usage')").fetchone()
            assert allowed == (True,)
        finally:
            conn.rollback()


def test_odwh_db_commands_manage_the_embedded_server(tmp_path):
    import os
    import subprocess

    from support import REPO

    env = {k: v for k, v in os.environ.items() if k != "WAREHOUSE_URL"}
    env["ODWH_HOME"] = str(tmp_path / "home")
    odwh = str(REPO / ".venv" / "bin" / "odwh")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([odwh, "db", *args], env=env, capture_output=True, text=True, timeout=120)

    assert run("url").returncode == 1  # not initialised yet: says so, exits 1
    started = run("start")
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    assert run("url").stdout.strip() == url
    with psycopg.connect(url) as conn:  # started and migrated
        assert conn.execute(
            "select count(*) from information_schema.schemata where schema_name = 'raw'"
        ).fetchone() == (1,)
    assert run("stop").stdout.strip() == "stopped"
    assert run("stop").stdout.strip() == "not running"
    env["WAREHOUSE_URL"] = "postgresql://someone@db.example:5432/odwh"
    assert run("url").stdout.strip() == env["WAREHOUSE_URL"]  # WAREHOUSE_URL replaces the embedded server


def test_the_quarantine_is_the_loaders_alone(fresh_db):
    """Delivered rows, identifiers included, wait there unchecked: no other role may read them."""
    roles = ("odwh_loader", "odwh_transformer", "odwh_publisher", "odwh_reader", "pii_reader")
    with psycopg.connect(fresh_db) as conn:
        usage = conn.execute(
            "select r, has_schema_privilege(r, 'quarantine', 'usage'),"
            " has_table_privilege(r, 'quarantine.customers', 'select') from unnest(%s::text[]) as r",
            (list(roles),),
        ).fetchall()
        persistence = conn.execute(
            "select distinct relpersistence from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = 'quarantine' and c.relkind = 'r'"
        ).fetchall()
    assert usage == [("odwh_loader", True, True)] + [(r, False, False) for r in roles[1:]]
    assert persistence == [("u",)]  # unlogged: nothing there must survive a crash
