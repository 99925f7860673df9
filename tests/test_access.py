"""Least privilege and row-level security, logged in as each role against a real server.

The pipeline runs end to end (load, dbt build, quality gate, publication) as three login users that are no
superusers, do not bypass row-level security and own nothing the migration created; then every role logs in and
is shown what it may and may not read or write.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
import pytest
from odwh import access, pipeline, simulate, transform, warehouse
from odwh.cli import app
from psycopg import errors, sql
from support.database import query, throwaway_database
from typer.testing import CliRunner

JAN = date(2024, 1, 31)
PASSWORD = "odwh-test-" + uuid.uuid4().hex[:8]
MEMBERSHIPS = {
    "loader": warehouse.LOADER,
    "transformer": warehouse.TRANSFORMER,
    "publisher": warehouse.PUBLISHER,
    "reader": warehouse.READER,
    "pii": warehouse.PII_READER,
    "branch": None,  # made a branch-scoped reader by `odwh access grant`
    "nobody": None,
}
CLIENT_IDENTIFIERS = {"national_id", "phone"}


@dataclass
class Warehouse:
    url: str  # as the owner (the test server's superuser)
    users: dict[str, str]  # who -> login user name
    reports: Path
    report: pipeline.IngestReport = field(default_factory=pipeline.IngestReport)
    months: list[dict[str, object]] = field(default_factory=list)

    def login(self, who: str) -> str:
        params = warehouse.conninfo(self.url)
        return warehouse.url_from_conninfo({**params, "user": self.users[who], "password": PASSWORD})


def _create_users(admin_url: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:6]
    users = {who: f"odwh_test_{who}_{suffix}" for who in MEMBERSHIPS}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for who, role in MEMBERSHIPS.items():
            options = "login nosuperuser nobypassrls nocreatedb nocreaterole password {}"
            conn.execute(
                sql.SQL("create role {} " + options).format(sql.Identifier(users[who]), sql.Literal(PASSWORD))
            )
            if role:
                conn.execute(
                    sql.SQL("grant {} to {}").format(sql.Identifier(role), sql.Identifier(users[who]))
                )
    return users


def _drop_users(admin_url: str, users: dict[str, str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in users.values():
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def built(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """January 2024 simulated, loaded as the loader, built as the transformer, gated and published as the
    publisher: each stage logged in as its own non-superuser."""
    tmp = tmp_path_factory.mktemp("access")
    simulate.simulate(tmp / "landing", date(2024, 1, 1), JAN, accounts=6, seed=3, progress=False)
    users: dict[str, str] = {}
    try:
        with throwaway_database(server_url) as url, pytest.MonkeyPatch.context() as env:
            users = _create_users(server_url)  # after the migration, which creates the group roles
            env.setenv("ODWH_HOME", str(tmp / "home"))  # archive and dbt target
            env.setenv("REPORTS_DIR", str(tmp / "reports"))
            wh = Warehouse(url, users, tmp / "reports")
            wh.report = pipeline.ingest(wh.login("loader"), str(tmp / "landing"), echo=False)
            pipeline.build_daily(wh.login("transformer"))
            pipeline.publish_agent_alerts(wh.login("publisher"), wh.report)
            pipeline.build_month_end(wh.login("transformer"), [JAN.isoformat()])
            wh.months = pipeline.close_months(wh.login("publisher"), [JAN.isoformat()])
            yield wh
    finally:  # the database first: a role with privileges in it cannot be dropped
        _drop_users(server_url, users)


def _can(url: str, statement: str | sql.Composable) -> bool:
    """Whether the statement is allowed (rolled back either way); only a privilege refusal counts as no."""
    with psycopg.connect(url) as conn:
        try:
            conn.execute(statement)
        except errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()
    return True


def _count(url: str, table: str, where: str = "true") -> int:
    statement = sql.SQL("select count(*) from {} where {}").format(sql.SQL(table), sql.SQL(where))
    return int(query(url, statement)[0][0])


def _select_all(table: str) -> sql.Composed:
    return sql.SQL("select * from {}").format(sql.SQL(table))


def _branch_marts(url: str) -> list[str]:
    rows = query(
        url,
        "select table_name from information_schema.columns"
        " where table_schema = 'marts' and column_name = 'branch_code' order by 1",
    )
    return [f"marts.{name}" for (name,) in rows]


@pytest.mark.slow
def test_the_pipeline_runs_as_non_superusers_end_to_end(built: Warehouse) -> None:
    assert [o.status for o in built.report.outcomes] == ["loaded"] * 31
    assert [m["published"] for m in built.months] == [True], built.months
    assert (built.reports / "2024-01" / "manifest.json").is_file()
    stage_users = [built.users[who] for who in ("loader", "transformer", "publisher")]
    rows = query(
        built.url, "select rolsuper, rolbypassrls from pg_roles where rolname = any(%s)", stage_users
    )
    assert rows == [(False, False)] * 3
    owners = query(
        built.url,
        "select distinct n.nspname, pg_get_userbyid(c.relowner) from pg_class c"
        " join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('raw', 'meta', 'pii', 'staging', 'intermediate', 'marts') and c.relkind in ('r', 'v')",
    )
    owner_of = {schema: owner for schema, owner in owners}
    assert owner_of["marts"] == owner_of["staging"] == warehouse.TRANSFORMER  # the group role, not the login
    assert not {owner for _, owner in owners} & {*stage_users, warehouse.LOADER, warehouse.PUBLISHER}
    assert _count(built.url, "marts.fct_od_month_end", f"month_end = '{JAN}'") == 6


@pytest.mark.slow
def test_the_loader_writes_raw_and_load_records_and_reads_no_mart(built: Warehouse) -> None:
    loader = built.login("loader")
    assert _can(loader, "delete from raw.od_balances")
    assert _can(
        loader, "insert into meta.rejections (business_date, source_folder, errors) values (now(), 'x', '[]')"
    )
    # keeping their change history (odwh.history) compares and splits the identifiers it loads (decision 0030)
    assert _can(loader, "update pii.customers set valid_to = null where valid_to = '2024-01-01'")
    assert not _can(loader, "select * from marts.fct_od_daily")
    assert not _can(loader, "select * from staging.stg_core_banking__customers")
    assert not _can(loader, "create table raw.anything (x int)")
    assert not _can(loader, "delete from meta.publications")
    assert not _can(loader, "delete from meta.branch_access")


@pytest.mark.slow
def test_the_transformer_reads_raw_and_never_client_identifiers(built: Warehouse) -> None:
    transformer = built.login("transformer")
    assert _can(transformer, "select * from raw.customers")
    assert _can(transformer, "select * from meta.policy_changes")
    assert not _can(transformer, "select * from pii.customers")
    assert not _can(transformer, "insert into raw.branches (branch_code) values ('X')")
    assert not _can(transformer, "delete from meta.loads")
    assert not _can(
        transformer,
        "insert into meta.publications (month_end, gate_passed, manifest) values (now(), true, '{}')",
    )


@pytest.mark.slow
def test_the_publisher_reads_what_it_publishes_and_records_publications_only(built: Warehouse) -> None:
    publisher = built.login("publisher")
    for mart in _branch_marts(built.url):  # every branch: row-level security lets the publisher see all rows
        assert _count(publisher, mart) == _count(built.url, mart), mart
    assert _can(publisher, "select customer_type from staging.stg_core_banking__customers")
    assert _can(
        publisher,
        "insert into meta.publications (month_end, gate_passed, manifest) values (now(), true, '{}')",
    )
    assert not _can(publisher, "select * from pii.customers")
    assert not _can(publisher, "delete from marts.fct_od_month_end")
    assert not _can(publisher, "delete from raw.od_balances")
    assert not _can(publisher, "update meta.loads set rows_loaded = 0")


@pytest.mark.slow
def test_the_reader_reads_every_mart_row_and_no_client_identifier(built: Warehouse) -> None:
    reader = built.login("reader")
    marts = [  # tables and views (fct_od_daily: decision 0041)
        f"marts.{t}"
        for (t,) in query(
            built.url, "select table_name from information_schema.tables where table_schema = 'marts'"
        )
    ]
    for mart in marts:
        assert _count(reader, mart) == _count(built.url, mart), mart
    columns = {
        c
        for (c,) in query(
            built.url, "select column_name from information_schema.columns where table_schema = 'marts'"
        )
    }
    assert not columns & (CLIENT_IDENTIFIERS | {"customer_name"})
    for table in ("pii.customers", "raw.customers", "staging.stg_core_banking__customers", "meta.loads"):
        assert not _can(reader, _select_all(table)), table
    assert not _can(reader, "delete from marts.fct_od_month_end")


@pytest.mark.slow
def test_pii_reader_alone_reads_national_ids_and_phones(built: Warehouse) -> None:
    """Besides the loader, which keeps their change history (decision 0030)."""
    assert _count(built.login("pii"), "pii.customers", "national_id is not null or phone is not null") > 0
    for who in ("transformer", "publisher", "reader", "nobody"):
        assert not _can(built.login(who), "select national_id, phone from pii.customers"), who
    assert not _can(built.login("pii"), "select * from marts.fct_od_daily")
    nobody = built.login("nobody")
    for table in ("marts.fct_od_daily", "raw.branches", "meta.loads", "meta.branch_access"):
        assert not _can(nobody, _select_all(table)), table


@pytest.mark.slow
def test_a_branch_reader_sees_only_its_branches_even_after_a_rebuild(built: Warehouse) -> None:
    user, branch_reader = built.users["branch"], built.login("branch")
    mine = query(built.url, "select min(branch_code) from marts.fct_od_daily")[0][0]  # a branch with ODs
    with psycopg.connect(built.url) as conn:
        access.grant(conn, user, [mine])
        assert (user, [mine]) in access.show(conn)
    marts = _branch_marts(built.url)
    assert {"marts.fct_od_daily", "marts.rpt_review_list", "marts.fct_agent_alerts"} <= set(marts)
    for mart in marts:
        assert _count(branch_reader, mart) == _count(built.url, mart, f"branch_code = '{mine}'"), mart
        assert _count(branch_reader, mart, f"branch_code <> '{mine}'") == 0, mart
    assert (
        _count(built.url, "marts.fct_od_daily", f"branch_code <> '{mine}'") > 0
    )  # there was something to hide
    # a view (decision 0041) is a security barrier: a cheap function of the reader's own, which the planner
    # would otherwise call before the view's branch filter, is shown only the reader's rows
    seen: list[str] = []
    with psycopg.connect(branch_reader, autocommit=True) as conn:
        conn.add_notice_handler(lambda notice: seen.append(notice.message_primary or ""))
        conn.execute(
            "create function pg_temp.peek(branch text) returns boolean language plpgsql cost 0.0001"
            " as $$ begin raise notice '%', branch; return true; end $$"
        )
        conn.execute("select count(*) from marts.fct_od_daily where pg_temp.peek(branch_code)")
    assert seen and set(seen) == {mine}
    assert not _can(branch_reader, "select * from marts.fct_portfolio_month_end")  # institution-wide totals
    assert not _can(branch_reader, "select * from meta.branch_access")

    transform.run_dbt(
        ["run", "--select", "dim_branches"], built.login("transformer")
    )  # dropped and recreated
    assert _count(branch_reader, "marts.dim_branches") == 1

    with psycopg.connect(built.url) as conn:
        assert access.revoke(conn, user) == []
        assert user not in [u for u, _ in access.show(conn)]
    assert not _can(branch_reader, "select * from marts.fct_od_daily")


@pytest.mark.slow
def test_access_commands_grant_show_revoke_and_refuse(
    built: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", built.url)
    cli, user = CliRunner(), built.users["branch"]
    branches = [b for (b,) in query(built.url, "select branch_code from marts.dim_branches order by 1")][:2]

    granted = cli.invoke(app, ["access", "grant", user, "--branches", ",".join(branches)])
    assert granted.exit_code == 0 and f"{user} reads branch(es) {', '.join(branches)}" in granted.output
    shown = cli.invoke(app, ["access", "show"])
    assert f"{user}  {', '.join(branches)}" in shown.output
    revoked = cli.invoke(app, ["access", "revoke", user, "--branches", branches[0]])
    assert revoked.exit_code == 0 and f"{user} reads branch(es) {branches[1]}" in revoked.output
    assert _count(built.login("branch"), "marts.dim_branches") == 1
    assert cli.invoke(app, ["access", "revoke", user]).exit_code == 0

    refusals = {
        built.users["reader"]: "which read every branch",
        "odwh_no_such_user": "no database user",
    }
    for who, message in refusals.items():
        refused = cli.invoke(app, ["access", "grant", who, "--branches", branches[0]])
        assert refused.exit_code == 1 and message in refused.output, refused.output
    unknown = cli.invoke(app, ["access", "grant", user, "--branches", "NOPE"])
    assert unknown.exit_code == 1 and "unknown branch code(s) NOPE" in unknown.output


@pytest.mark.slow
def test_a_pipeline_role_is_told_to_migrate_as_the_owner(built: Warehouse) -> None:
    loader = built.login("loader")
    assert warehouse.migrate(loader) == []  # up to date: no DDL, nothing refused
    with psycopg.connect(built.url) as conn:
        conn.execute("update meta.schema_migrations set checksum = 'changed' where version = 2")
        conn.commit()
    with pytest.raises(warehouse.WarehouseError, match="run `odwh db migrate` as the warehouse's owner"):
        warehouse.migrate(loader)
    # re-applied with every later one on an already built warehouse: still secured
    assert warehouse.migrate(built.url) == [m.version for m in warehouse.MIGRATIONS[1:]]
    assert _count(built.login("reader"), "marts.fct_od_daily") == _count(built.url, "marts.fct_od_daily")


def test_migrations_are_recorded_and_applied_once(fresh_db: str) -> None:
    applied = query(fresh_db, "select version, checksum from meta.schema_migrations order by 1")
    assert applied == [(m.version, m.checksum) for m in warehouse.MIGRATIONS]
    assert warehouse.migrate(fresh_db) == []
    with psycopg.connect(fresh_db) as conn:
        conn.execute("delete from meta.schema_migrations where version = 2")
        conn.commit()
    assert warehouse.migrate(fresh_db) == [m.version for m in warehouse.MIGRATIONS[1:]]
    roles = {r for (r,) in query(fresh_db, "select rolname from pg_roles where not rolcanlogin")}
    assert set(warehouse.ROLES) <= roles


def test_each_stage_works_as_its_role_whoever_logs_in(fresh_db: str) -> None:
    """One owner URL (the embedded superuser): every stage connection still has only its role's rights."""
    for role in (warehouse.LOADER, warehouse.TRANSFORMER, warehouse.PUBLISHER):
        stage = warehouse.stage_url(role, fresh_db)
        assert query(stage, "select current_user, rolsuper from pg_roles where rolname = current_user") == [
            (role, False)
        ]
        # the loader keeps the identifiers' change history (decision 0030); no other stage reads them
        assert _can(stage, "select national_id from pii.customers") == (role == warehouse.LOADER), role
    assert _can(warehouse.stage_url(warehouse.LOADER, fresh_db), "delete from raw.od_balances")
    assert not _can(warehouse.stage_url(warehouse.PUBLISHER, fresh_db), "delete from raw.od_balances")


def test_a_mart_view_reaches_branch_readers_only_as_a_barrier_filtering_their_branches(fresh_db: str) -> None:
    """Row-level security does not reach a view's rows (decision 0041): ``meta.secure_relation`` makes a mart view
    a security barrier, grants it to readers, and to branch readers only when it filters by their branches."""
    filtered = (
        "select b.branch_code from (values ('B01'), ('B02')) as b (branch_code)"
        " where (select meta.reads_every_branch()) or b.branch_code in (select meta.visible_branches())"
    )
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"create view marts.filtered_view as {filtered}")
        conn.execute("create view marts.unfiltered_view as select 'B01'::text as branch_code")
        for view in ("filtered_view", "unfiltered_view"):
            conn.execute(f"select meta.secure_relation('marts.{view}'::regclass)")
    options = dict(
        query(fresh_db, "select relname, reloptions from pg_class where relname like '%filtered_view'")
    )
    assert options == {
        "filtered_view": ["security_barrier=true"],
        "unfiltered_view": ["security_barrier=true"],
    }

    def may_read(role: str, view: str) -> bool:
        statement = "select has_table_privilege(%s, %s, 'select')"
        return bool(query(fresh_db, statement, role, f"marts.{view}")[0][0])

    assert may_read(warehouse.READER, "unfiltered_view") and may_read(warehouse.PUBLISHER, "unfiltered_view")
    assert may_read(warehouse.BRANCH_READER, "filtered_view")
    assert not may_read(warehouse.BRANCH_READER, "unfiltered_view")


def test_securing_a_mart_waits_for_an_autovacuum_instead_of_deadlocking_with_it(fresh_db: str) -> None:
    """The post-hook's ``meta.secure_relation`` beside an autovacuum of the same mart (CI, fct_od_daily). The
    autovacuum holds its table lock and then waits to rewrite the table's pg_class row; a second session does
    the same here, the row rewritten by a grant. Had the hook granted first, each would wait for the other."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table marts.branch_mart (branch_code text)")
    with psycopg.connect(fresh_db) as vacuum, psycopg.connect(fresh_db) as hook:
        vacuum.execute("lock table marts.branch_mart in share update exclusive mode")
        hook_pid = hook.info.backend_pid
        errors_seen: list[BaseException] = []

        def secure() -> None:
            try:
                hook.execute("select meta.secure_relation('marts.branch_mart'::regclass)")
                hook.commit()
            except psycopg.Error as exc:
                errors_seen.append(exc)

        worker = threading.Thread(target=secure)
        worker.start()
        deadline = time.monotonic() + 30
        waiting = sql.SQL("select wait_event_type from pg_stat_activity where pid = {}").format(hook_pid)
        while query(fresh_db, waiting) != [("Lock",)]:
            assert time.monotonic() < deadline, "the hook never waited for the table lock"
            time.sleep(0.05)
        vacuum.execute("grant select on marts.branch_mart to odwh_reader")  # rewrites the pg_class row
        vacuum.commit()
        worker.join(timeout=30)
    assert not worker.is_alive() and errors_seen == []
    policies = query(
        fresh_db, "select policyname from pg_policies where tablename = 'branch_mart' order by 1"
    )
    assert policies == [("every_branch",), ("own_branches",)]
