"""The dbt project and odwh.transform, against a real PostgreSQL (seeds, sources, staging, policy parameters)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from queue import Empty
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import yaml
from odwh import contract, history, policy, transform, warehouse

STAGING = transform.dbt_project_dir() / "models" / "staging"
NO_SERVER_URL = "postgresql://nobody:secret@127.0.0.1:9/none"  # parse and compile never connect


def _columns(url: str, schema: str) -> dict[str, dict[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select table_name, column_name, data_type from information_schema.columns"
            " where table_schema = %s order by table_name, ordinal_position",
            (schema,),
        ).fetchall()
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(table, {})[column] = data_type
    return tables


VALIDITY = ["valid_from", "valid_to"]


def _staging_columns(f: contract.ExtractFile) -> list[str]:
    """What a staging model must expose: contract columns (no PII), a version's validity for a snapshot kept
    as change history, business_date, _load_id."""
    columns = [c.name for c in f.columns if not c.pii] + (VALIDITY if history.stored_as_history(f) else [])
    return [*columns, *([] if "business_date" in columns else ["business_date"]), "_load_id"]


def _versions_model(f: contract.ExtractFile) -> str:
    """The staging view of a history's versions: stg_core_banking__od_account_versions for od_accounts."""
    return f"stg_core_banking__{f.table.removesuffix('s')}_versions"


def _copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    shutil.copytree(transform.dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    return project


def test_sources_match_contract():
    committed = yaml.safe_load((transform.dbt_project_dir() / transform.SOURCES_FILE).read_text())
    assert committed == transform.sources_spec(), "run `python -m odwh.transform` to regenerate the sources"
    tables = {t["name"]: t for t in committed["sources"][0]["tables"]}
    assert set(tables) == {f.table for f in contract.FILES}
    customers = [c["name"] for c in tables["customers"]["columns"]]
    assert "national_id" not in customers and "phone" not in customers


def test_staging_yaml_documents_every_contract_column():
    documented = {
        m["name"]: m for m in yaml.safe_load((STAGING / "_staging__models.yml").read_text())["models"]
    }
    for f in contract.FILES:
        model = documented[f"stg_core_banking__{f.table}"]
        assert [c["name"] for c in model["columns"]] == _staging_columns(f), f.table
        assert all(c.get("description") for c in model["columns"]), f.table
        assert (STAGING / f"stg_core_banking__{f.table}.sql").exists()
        if history.stored_as_history(f):  # the same columns, one row per version
            versions = documented[_versions_model(f)]
            assert [c["name"] for c in versions["columns"]] == _staging_columns(f)[:-2], f.table
            assert all(c.get("description") for c in versions["columns"]), f.table
            assert (STAGING / f"{_versions_model(f)}.sql").exists()


def test_dbt_env_reads_the_warehouse_url():
    env = transform.dbt_env("postgresql://odwh:p%40ss@db.example:6543/wh")
    assert {k: env[k] for k in env if k.startswith("ODWH_PG_")} == {
        "ODWH_PG_HOST": "db.example",
        "ODWH_PG_PORT": "6543",
        "ODWH_PG_USER": "odwh",
        "ODWH_PG_PASSWORD": "p@ss",
        "ODWH_PG_DBNAME": "wh",
    }


@pytest.mark.parametrize("given, threads", [(None, "2"), ("", "2"), ("4", "4"), (" 8 ", "8")])
def test_dbt_threads_come_from_the_environment(monkeypatch, given, threads):
    if given is None:
        monkeypatch.delenv(transform.DBT_THREADS, raising=False)
    else:
        monkeypatch.setenv(transform.DBT_THREADS, given)
    assert transform.dbt_env(NO_SERVER_URL)[transform.DBT_THREADS] == threads


@pytest.mark.parametrize("given", ["0", "two", "-1", "1.5"])
def test_dbt_threads_that_are_not_a_count_are_refused(monkeypatch, given):
    monkeypatch.setenv(transform.DBT_THREADS, given)
    with pytest.raises(transform.TransformError, match=rf"ODWH_DBT_THREADS .* got {re.escape(repr(given))}"):
        transform.dbt_env(NO_SERVER_URL)


def test_dbt_builds_with_the_threads_asked_for(fresh_db, tmp_path, monkeypatch):
    monkeypatch.setenv(transform.DBT_THREADS, "3")
    threads: list[int] = []

    def concurrency(event: Any) -> None:
        if event.info.name == "ConcurrencyLine":
            threads.append(event.data.num_threads)

    transform.run_dbt(
        ["show", "--inline", "select 1 as one"], fresh_db, work_dir=tmp_path, callbacks=[concurrency]
    )
    assert threads == [3]


def _count(conn: psycopg.Connection, query: str) -> int:
    conn.execute("select pg_stat_clear_snapshot()")
    row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _client_sessions_but_mine(conn: psycopg.Connection) -> int:
    """The database's other client sessions, once those closing have gone (a backend leaves pg_stat_activity a
    moment after its client disconnects)."""
    query = (
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and backend_type = 'client backend' and pid <> pg_backend_pid()"
    )
    for _ in range(50):
        if (sessions := _count(conn, query)) == 0:
            break
        time.sleep(0.1)
    return sessions


def test_each_dbt_thread_keeps_one_session_and_no_temporary_table(fresh_db, dbt_work, monkeypatch):
    """transform.keep_sessions_between_nodes: the building thread opens one session for all its nodes, not one per
    node as when every session is idle too long (then closed before the next node, as dbt would); each node
    leaves its session without its temporary tables (an incremental model's batch) and with the transformer's
    role (everything built is owned by it, after the source tests' rolled-back reads); none stays open."""
    monkeypatch.setenv(transform.DBT_THREADS, "1")
    build = ["build", "--select", "+int_od__positions_daily", "--indirect-selection", "cautious"]
    build += ["--exclude-resource-type", "unit_test"]
    first = transform.run_dbt(
        build, fresh_db, work_dir=dbt_work
    )  # the incremental model exists: the next appends
    # a source's test first (the longest chain by its recorded seconds): the thread's first transaction, which set
    # the role, is a read rolled back when the node ends
    source_test = next(
        r.node.unique_id
        for r in first.result.results
        if r.node.resource_type == "test" and all(p.startswith("source.") for p in r.node.depends_on.nodes)
    )
    (dbt_work / transform.NODE_SECONDS_FILE).write_text(json.dumps({source_test: 1000.0}))
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        temporary_tables: list[int] = []

        def after_incremental(event: Any) -> None:
            if event.info.name == "NodeFinished" and event.data.node_info.materialized == "incremental":
                temporary_tables.append(
                    _count(conn, "select count(*) from pg_class where relpersistence = 't'")
                )

        def sessions_opened(idle_seconds: float) -> tuple[int, int]:
            """The nodes a build ran and the sessions it opened, its kept sessions closed after ``idle_seconds``."""
            monkeypatch.setattr(transform, "SESSION_IDLE_SECONDS", idle_seconds)
            count = "select sessions from pg_stat_database where datname = current_database()"
            before = _count(conn, count)
            result = transform.run_dbt(build, fresh_db, work_dir=dbt_work, callbacks=[after_incremental])
            return len(result.result.results), _count(conn, count) - before

        idle_limit = transform.SESSION_IDLE_SECONDS
        nodes, one_per_node = sessions_opened(0.0)
        assert sessions_opened(idle_limit) == (nodes, one_per_node - (nodes - 1))
        left_open = _client_sessions_but_mine(conn)
        owners = conn.execute(
            "select distinct pg_get_userbyid(relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where nspname in ('policy', 'staging', 'intermediate') and relkind in ('r', 'v', 'p')"
        ).fetchall()
    assert nodes >= 20 and left_open == 0
    assert len(temporary_tables) == 2 and set(temporary_tables) == {0}
    assert owners == [(warehouse.TRANSFORMER,)]


@pytest.mark.parametrize("level, statements", [(None, False), ("debug", True)])
def test_dbt_logs_its_nodes_and_only_on_request_its_statements(
    fresh_db, dbt_work, monkeypatch, level, statements
):
    for setting in (
        "DBT_DEBUG",
        "DBT_LOG_LEVEL",
    ):  # either would decide the file's level (dbt's own defaults)
        monkeypatch.delenv(setting, raising=False)
    if level is None:
        monkeypatch.delenv(transform.DBT_LOG_LEVEL_FILE, raising=False)
    else:
        monkeypatch.setenv(transform.DBT_LOG_LEVEL_FILE, level)
    log_file = dbt_work / "logs" / "dbt.log"
    start = log_file.stat().st_size if log_file.exists() else 0
    transform.run_dbt(["run", "--select", "stg_core_banking__branches"], fresh_db, work_dir=dbt_work)
    with log_file.open() as f:
        f.seek(start)
        logged = f.read()
    assert "OK created sql view model staging.stg_core_banking__branches" in logged
    assert ('create view "' in logged) is statements


def _deprecations_on_parse(project: Path, work_dir: Path) -> list[str]:
    events: list[str] = []
    result = transform.run_dbt(
        ["parse"],
        NO_SERVER_URL,
        project=project,
        work_dir=work_dir,
        callbacks=[lambda e: events.append(e.info.name)],
    )
    assert result.success and "AdapterRegistered" in events  # the callback really saw the parse
    return [e for e in events if "Deprecation" in e]


def _graph_node(unique_id: str) -> SimpleNamespace:
    """What dbt's queue reads of a manifest node: a test when named test_*, else a model."""
    from dbt.node_types import NodeType

    kind = NodeType.Test if unique_id.startswith("test") else NodeType.Model
    return SimpleNamespace(unique_id=unique_id, resource_type=kind, is_ephemeral=False)


def test_dbt_starts_the_ready_node_heading_the_longest_chain_when_a_thread_is_free(monkeypatch):
    """After a, dbt's own order (depth, then name) starts b before c, which heads a chain of three models, and hands
    f to its pool at once too, to wait there behind both: the days past due waited so behind the agents' days. Ours
    starts c, and takes a third node only when one of the two threads is free: d, ready by then, before f. A dbt
    without the two queue methods replaced fails here."""
    import networkx as nx
    from dbt.graph.queue import GraphQueue

    monkeypatch.setenv(transform.DBT_THREADS, "2")
    transform.order_by_longest_chain()  # as every run_dbt does
    graph = nx.DiGraph([("a", "b"), ("a", "c"), ("c", "test_c"), ("c", "d"), ("d", "e"), ("a", "f")])
    queue = GraphQueue(graph, SimpleNamespace(expect=_graph_node), set(graph))
    queue.mark_done(queue.get().unique_id)
    started = [queue.get().unique_id, queue.get().unique_id]
    assert started == ["c", "b"]
    with pytest.raises(Empty):  # a bounded wait for a thread ends as dbt's bounded wait for a node does
        queue.get(timeout=0.1)
    third: list[str] = []
    taker = threading.Thread(target=lambda: third.append(queue.get().unique_id))
    taker.start()
    taker.join(0.3)
    assert taker.is_alive() and not third, "a third node taken while both threads are busy"
    queue.mark_done("c")
    taker.join(10)
    assert third == ["d"]  # before f, and before c's test, which heads no model


def test_dbt_weighs_each_node_by_its_last_seconds(monkeypatch):
    """A leaf test that took 20 s last time starts before a chain of two models never timed (a second each): left
    for last, it ran alone at the end of the full build while the other thread idled."""
    import networkx as nx
    from dbt.graph.queue import GraphQueue

    graph = nx.DiGraph([("a", "test_a"), ("a", "m1"), ("m1", "m2")])
    monkeypatch.setenv(transform.DBT_THREADS, "1")
    for seconds, second in (({}, "m1"), ({"test_a": 20.0}, "test_a")):
        transform.order_by_longest_chain(seconds)
        queue = GraphQueue(graph.copy(), SimpleNamespace(expect=_graph_node), set(graph))
        queue.mark_done(queue.get().unique_id)
        assert queue.get().unique_id == second, seconds


def _node_result(unique_id: str, status: str, seconds: float) -> SimpleNamespace:
    return SimpleNamespace(node=SimpleNamespace(unique_id=unique_id), status=status, execution_time=seconds)


def _dbt_result(which: str, *results: SimpleNamespace, **args: Any) -> SimpleNamespace:
    """What run_dbt reads of a dbt invocation: its parsed arguments (the command in `which`) and node results."""
    return SimpleNamespace(result=SimpleNamespace(args={"which": which, **args}, results=list(results)))


def test_dbt_records_only_the_seconds_of_nodes_a_build_ran_to_an_end(tmp_path):
    """A node skipped (0 s) or stopped by an error, and any node of a compile or of a build --empty, would
    otherwise overwrite the time of its last real run with one that says nothing of its work."""
    path = tmp_path / transform.NODE_SECONDS_FILE
    path.write_text(json.dumps({"model.a": 30.0, "model.b": 20.0, "model.c": 10.0}))
    build = [
        _node_result("model.a", "success", 31.0),
        _node_result("model.b", "skipped", 0.0),
        _node_result("model.c", "error", 1.0),
        _node_result("test.d", "fail", 5.0),
    ]
    transform._record_node_seconds(path, _dbt_result("build", *build))
    expected = {"model.a": 31.0, "model.b": 20.0, "model.c": 10.0, "test.d": 5.0}
    assert json.loads(path.read_text()) == expected
    quick = _node_result("model.a", "success", 0.2)
    transform._record_node_seconds(path, _dbt_result("compile", quick))
    transform._record_node_seconds(path, _dbt_result("build", quick, empty=True))
    transform._record_node_seconds(path, _dbt_result("retry", quick))
    assert json.loads(path.read_text()) == expected


def test_seconds_that_cannot_be_recorded_are_logged_and_the_run_goes_on(tmp_path, caplog):
    path = tmp_path / transform.NODE_SECONDS_FILE
    path.mkdir()  # a directory where the file should be: the rename fails
    transform._record_node_seconds(path, _dbt_result("build", _node_result("model.a", "success", 3.0)))
    assert "not recorded" in caplog.text and list(tmp_path.iterdir()) == [path]  # no partial file left
    blocked = tmp_path / "a-file" / transform.NODE_SECONDS_FILE
    blocked.parent.touch()  # its folder is a file: the write and the clean-up both fail
    transform._record_node_seconds(blocked, _dbt_result("build", _node_result("model.a", "success", 3.0)))


def test_recorded_seconds_that_are_not_finite_numbers_are_ignored(tmp_path):
    path = tmp_path / transform.NODE_SECONDS_FILE
    path.write_text(
        '{"a": 2.5, "b": 7, "huge": 1%s, "nan": NaN, "inf": Infinity, "big": 1e400, "neg": -1, "text": "3", "t": true}'
        % ("0" * 400)
    )
    assert transform._read_node_seconds(path) == {"a": 2.5, "b": 7.0}


def test_overlapping_grading_bands_fail_the_build(fresh_db, tmp_path):
    """Special Mention widened to 31 days past due overlaps Substandard: the grade join takes the key of the one
    rule in force (`max()` of the rules it meets, decision 0061), so the build must stop on the rules, not grade
    by a mix of two."""
    project = _copy_project(tmp_path)
    seed = project / "seeds" / "nbc_grading_rules.csv"
    seed.write_text(
        seed.read_text().replace("SHORT,Special Mention,2,15,30,", "SHORT,Special Mention,2,15,31,")
    )
    selection = ["build", "-s", "+assert_nbc_grading_bands_never_overlap"]
    with pytest.raises(transform.TransformError, match="assert_nbc_grading_bands_never_overlap"):
        transform.run_dbt(selection, fresh_db, project=project, work_dir=tmp_path / "work")


def test_the_grading_rules_get_their_unique_index_in_a_warehouse_built_before_it(fresh_db, tmp_path):
    """A graded row joins its rule on the rule versions' unique index (decision 0061). The policy models are
    rebuilt in place, never replaced, so the index comes from a post-hook, which a warehouse built without it
    gets on its next build."""
    model = "int_policy__nbc_grading_rule_versions"
    unique_indexes = (
        "select indexrelid::regclass::text, pg_get_indexdef(indexrelid) from pg_index"
        " where indrelid = 'intermediate.int_policy__nbc_grading_rule_versions'::regclass and indisunique"
    )
    transform.run_dbt(["build", "-s", f"+{model}"], fresh_db, work_dir=tmp_path)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        [(index, definition)] = conn.execute(unique_indexes).fetchall()
        assert definition.endswith("(term_class, grade, effective_from)")
        conn.execute(f"drop index {index}")
    transform.run_dbt(["run", "-s", model], fresh_db, work_dir=tmp_path)
    with psycopg.connect(fresh_db) as conn:
        [(_, rebuilt)] = conn.execute(unique_indexes).fetchall()
        assert rebuilt.endswith("(term_class, grade, effective_from)")


def test_parse_has_no_deprecation_warnings(tmp_path):
    assert _deprecations_on_parse(transform.dbt_project_dir(), tmp_path / "work") == []
    assert os.environ.get("ODWH_PG_PASSWORD") != "secret"  # run_dbt restores the environment

    # the same check catches a pre-1.11 construct (generic test arguments outside `arguments:`)
    project = _copy_project(tmp_path)
    (project / "models" / "intermediate" / "int_old_style.sql").write_text("select 'SHORT' as term_class\n")
    (project / "models" / "intermediate" / "_old_style.yml").write_text(
        "version: 2\nmodels:\n  - name: int_old_style\n    columns:\n      - name: term_class\n"
        "        data_tests:\n          - accepted_values:\n              values: [SHORT, LONG]\n"
    )
    assert _deprecations_on_parse(project, tmp_path / "work_old") != []


def test_seed_and_build_on_an_empty_raw_schema(fresh_db, tmp_path):
    transform.seed_and_build(fresh_db, work_dir=tmp_path)  # every model, data test and dbt unit test
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    unit = [r for r in results if r["unique_id"].startswith("unit_test.")]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert len(unit) == len(manifest["unit_tests"]) >= 40, (
        "the DAGs skip unit tests: this test must run them all"
    )
    assert {r["status"] for r in unit} == {"pass"}
    # the seconds of every node run, seeds (the first invocation) and the build alike, for the next run's order
    seconds = json.loads((tmp_path / transform.NODE_SECONDS_FILE).read_text())
    seeds = {unique_id for unique_id in manifest["nodes"] if unique_id.startswith("seed.")}
    assert seeds and set(seconds) == {r["unique_id"] for r in results} | seeds

    staging = _columns(fresh_db, "staging")
    for f in contract.FILES:
        assert list(staging[f"stg_core_banking__{f.table}"]) == _staging_columns(f), f.table
        if history.stored_as_history(f):
            assert list(staging[_versions_model(f)]) == _staging_columns(f)[:-2], f.table
    with psycopg.connect(fresh_db) as conn:
        views = {
            r[0]
            for r in conn.execute(
                "select table_name from information_schema.views where table_schema = 'staging'"
            )
        }
        assert views == {f"stg_core_banking__{f.table}" for f in contract.FILES} | {
            _versions_model(f) for f in contract.FILES if history.stored_as_history(f)
        } | {
            "stg_meta__loads",
            "stg_meta__policy_changes",
        }
        parameters = conn.execute(
            "select count(*), count(distinct parameter_name) from policy.policy_parameters"
        ).fetchone()
        assert parameters is not None and parameters[0] == parameters[1] >= 25

    policy = _columns(fresh_db, "policy")
    assert policy["policy_parameters"]["value"] == "numeric"
    assert policy["policy_parameters"]["effective_from"] == "date"
    assert policy["nbc_grading_rules"]["provision_rate"] == "numeric"
    assert policy["nbc_grading_rules"]["max_dpd"] == "integer"
    assert not [
        (t, c) for t, cols in policy.items() for c, typ in cols.items() if typ in ("double precision", "real")
    ]
    assert set(_columns(fresh_db, "intermediate")) >= {
        "int_policy__parameter_versions",
        "int_policy__nbc_grading_rule_versions",
    }
    transform.run_dbt(["docs", "generate"], fresh_db, work_dir=tmp_path)
    _assert_every_published_column_is_described(tmp_path / "target", _columns(fresh_db, "marts"))


def _assert_every_published_column_is_described(target: Path, marts: dict[str, dict[str, str]]) -> None:
    """`dbt docs generate` wrote a catalog of the built marts, and each of their columns has a description."""
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    described = {
        node["name"]: {c: bool(col.get("description", "").strip()) for c, col in node["columns"].items()}
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }
    assert set(described) == set(marts) and {"fct_od_month_end", "rpt_review_list"} <= set(marts)
    for table, columns in marts.items():
        assert {c: described[table].get(c, False) for c in columns} == dict.fromkeys(columns, True), table
        assert set(catalog["nodes"][f"model.odwh.{table}"]["columns"]) == set(columns), table


def test_policy_param_resolves_the_version_in_force_on_a_date(fresh_db, tmp_path):
    transform.run_dbt(["seed"], fresh_db, work_dir=tmp_path)
    with psycopg.connect(fresh_db) as conn:  # the board shortens the window from 2027: a new row, no rewrite
        conn.execute(
            "insert into policy.policy_parameters (parameter_name, value, unit, effective_from, source)"
            " values ('stagnation_window_days', 45, 'days', '2027-01-01', 'board minute (test)')"
        )
        conn.commit()
    # ... and the institution records a change in the warehouse (rulebook L, odwh policy set)
    policy.record_change(fresh_db, "stagnation_window_days", "90", date(2028, 1, 1), "board (test)", "risk")
    versions = "stg_meta__policy_changes int_policy__parameter_versions"
    transform.run_dbt(["run", "--select", versions], fresh_db, work_dir=tmp_path)

    def compiled(sql: str) -> str:
        result = transform.run_dbt(["compile", "--inline", sql], fresh_db, work_dir=tmp_path)
        return result.result.results[0].node.compiled_code

    query = compiled(
        "select {{ policy_param('stagnation_window_days', \"date '2026-12-31'\") }} as before_change,"
        " {{ policy_param('stagnation_window_days', 'd') }} as after_change,"
        " {{ policy_param_version('stagnation_window_days', 'd') }} as version,"
        " {{ policy_param_text('day_count_convention', 'd') }} as convention,"
        " {{ policy_param_version('stagnation_window_days', \"date '2028-01-01'\") }} as recorded"
        " from (select date '2027-01-01' as d) as days"
    )
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(query).fetchone() == (
            Decimal("60"),
            Decimal("45"),
            "stagnation_window_days@2027-01-01",
            "30E/360",
            "stagnation_window_days@2028-01-01",
        )
        assert conn.execute(
            "select effective_to from intermediate.int_policy__parameter_versions"
            " where parameter_version = 'stagnation_window_days@2019-01-01'"
        ).fetchone() == (date(2027, 1, 1),)

    missing = compiled("select {{ policy_param('no_such_parameter', \"date '2026-01-01'\") }}")
    too_early = compiled("select {{ policy_param('stagnation_window_days', \"date '2018-12-31'\") }}")
    with psycopg.connect(fresh_db) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="no_such_parameter: 0 versions"):
            conn.execute(missing)
        conn.rollback()
        with pytest.raises(
            psycopg.errors.InvalidTextRepresentation, match="0 versions in force on 2018-12-31"
        ):
            conn.execute(too_early)


def test_run_dbt_raises_transform_error_naming_the_failed_node(fresh_db, tmp_path):
    project = _copy_project(tmp_path)
    (project / "models" / "intermediate" / "int_broken__division.sql").write_text("select 1 / 0 as boom\n")

    with pytest.raises(transform.TransformError, match="division by zero") as raised:
        transform.run_dbt(
            ["run", "--select", "int_broken__division"], fresh_db, project=project, work_dir=tmp_path / "work"
        )
    assert raised.value.failed_nodes == ("model.odwh.int_broken__division",)
    assert "model.odwh.int_broken__division" in str(raised.value)
    assert not raised.value.only_tagged("month_end")

    # a failed test carries its model's tags (dbt gives a test none of them): a month-end model's test is month-end
    (project / "models" / "intermediate" / "int_tagged__one.sql").write_text(
        "{{ config(tags=['month_end']) }}\nselect 1 as one\n"
    )
    (project / "tests" / "assert_tagged_one_is_never_one.sql").write_text(
        "select * from {{ ref('int_tagged__one') }} where one = 1\n"
    )
    with pytest.raises(transform.TransformError, match="assert_tagged_one_is_never_one") as raised:
        transform.run_dbt(
            ["build", "--select", "int_tagged__one+"], fresh_db, project=project, work_dir=tmp_path / "work"
        )
    assert raised.value.failed_nodes == ("test.odwh.assert_tagged_one_is_never_one",)
    assert raised.value.only_tagged("month_end") and not raised.value.only_tagged("daily")

    # a month-end model's failure that leaves an untagged model unbuilt (skipped) is not a month-end failure only
    (project / "models" / "intermediate" / "int_tagged__two.sql").write_text(
        "{{ config(tags=['month_end']) }}\nselect 1 / 0 as two\n"
    )
    (project / "models" / "intermediate" / "int_untagged__after_two.sql").write_text(
        "select two from {{ ref('int_tagged__two') }}\n"
    )
    with pytest.raises(transform.TransformError, match="division by zero") as raised:
        transform.run_dbt(
            ["build", "--select", "int_tagged__two+"], fresh_db, project=project, work_dir=tmp_path / "work"
        )
    assert raised.value.failed_nodes == ("model.odwh.int_tagged__two",)
    assert not raised.value.only_tagged("month_end")


def test_no_daily_model_reads_a_month_end_model(tmp_path):
    """What lets a month-end failure leave the daily models built (decision 0059): dbt skips only the failed
    node's descendants, and no model of the daily selector descends from a month-end one."""
    manifest = transform.run_dbt(["parse"], NO_SERVER_URL, work_dir=tmp_path).result
    month_end = {uid for uid, node in manifest.nodes.items() if "month_end" in node.tags}
    assert month_end, "no node tagged month_end: the selectors select nothing"
    daily_reading_month_end = {
        uid: sorted(set(node.depends_on.nodes) & month_end)
        for uid, node in manifest.nodes.items()
        if node.resource_type in ("model", "snapshot")
        and uid not in month_end
        and set(node.depends_on.nodes) & month_end
    }
    assert daily_reading_month_end == {}


def test_run_dbt_raises_transform_error_when_dbt_cannot_start(tmp_path: Path):
    project = _copy_project(tmp_path)
    (project / "models" / "staging" / "_broken.yml").write_text("version: 2\nmodels: [ {name: \n")
    with pytest.raises(transform.TransformError, match="dbt parse failed"):
        transform.run_dbt(["parse"], NO_SERVER_URL, project=project, work_dir=tmp_path / "work")


def test_a_grain_test_reads_the_unique_index_where_the_database_enforces_the_grain(fresh_db, tmp_path):
    """unique_combination_of_columns groups the table unless a valid, whole-table unique index on exactly its
    columns exists: then PostgreSQL refused every duplicate on write, and the table is not read at all."""
    probe = "api.Relation.create(database=target.database, schema='public', identifier='grain_probe')"
    call = f"{{{{ test_unique_combination_of_columns(model={probe}, combination_of_columns=['b', 'a']) }}}}"
    result = transform.run_dbt(["compile", "--inline", call], fresh_db, work_dir=tmp_path)
    query = result.result.results[0].node.compiled_code
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table public.grain_probe (a int, b int, c int)")
        conn.execute("insert into public.grain_probe values (1, 1, 1), (1, 1, 2), (2, 1, 1)")
        duplicate = [(1, 1, 2)]  # b, a, occurrences
        assert conn.execute(query).fetchall() == duplicate  # no index
        conn.execute("create unique index wider on public.grain_probe (a, b, c)")
        conn.execute("create unique index partial on public.grain_probe (a, b) where c = 2")
        assert conn.execute(query).fetchall() == duplicate  # neither enforces (a, b) on every row
        conn.execute("delete from public.grain_probe where c = 2")
        conn.execute("create unique index grain on public.grain_probe (b, a)")
        plan = "\n".join(r[0] for r in conn.execute(f"explain (analyze, costs off) {query}").fetchall())
        assert conn.execute(query).fetchall() == []
        assert "Seq Scan on grain_probe (never executed)" in plan, plan


@pytest.mark.slow
def test_a_daily_build_tests_the_dates_it_rewrote_and_a_test_run_every_date(fresh_db, tmp_path):
    """Decision 0037: a daily model's data tests read the business dates its incremental build replaced, unless
    the model was built whole; a test run with nothing new to build reads every date."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 1), date(2024, 1, 5), accounts=5, seed=2, progress=False
    )
    deliveries = sorted((tmp_path / "extracts").iterdir())
    landing = tmp_path / "landing"

    def load(delivery: Path) -> None:
        shutil.copytree(delivery, landing / delivery.name)
        assert pipeline.ingest(fresh_db, str(landing), echo=False).loaded_dates == [delivery.name]

    def build_fails() -> str:
        with pytest.raises(transform.TransformError) as failed:
            pipeline.build_daily(fresh_db)
        return str(failed.value)

    def execute(statement: str) -> None:
        with psycopg.connect(fresh_db) as conn:
            conn.execute(statement)

    for delivery in deliveries[:2]:
        load(delivery)
    pipeline.build_daily(fresh_db)
    # on a date already built and tested: a currency no rule accepts (lower case: still a currency with a
    # rounding unit, so the builds run), and positions without days past due, which no rule grades: their
    # accounts' runs start a day later (the load ids stay, so the next build rebuilds only its new date)
    execute(
        "update intermediate.int_od__positions_daily set currency = lower(currency) where business_date = '2024-01-01'"
    )
    runs = "intermediate.int_od__days_past_due_runs"
    execute(
        f"delete from {runs} as r where valid_from = '2024-01-01' and exists"  # noqa: S608
        f" (select from {runs} as n where n.od_account_id = r.od_account_id and n.valid_from = '2024-01-02')"
    )
    execute(f"update {runs} set valid_from = '2024-01-02' where valid_from = '2024-01-01'")  # noqa: S608
    load(deliveries[2])
    pipeline.build_daily(
        fresh_db
    )  # 2024-01-03 alone is rewritten and tested, in the tables and the grade view

    # with nothing loaded since the last build, a test run reads every date
    # (the grades without a run on 1 January are found by the runs' coverage test: the grade view's own test reads
    # month ends only, decision 0070)
    tested = ["fct_od_daily", "int_grading__od_grades_daily", "int_od__days_past_due_runs"]
    with pytest.raises(transform.TransformError, match="accepted_values_fct_od_daily_currency") as failed_run:
        transform.run_dbt(["test", "--select", *tested], fresh_db)
    assert "days_past_due_runs_cover_every_position" in str(failed_run.value)

    # a model built whole (here: its table lost, and the views reading it) is tested whole, beside models built
    # incrementally; so is a view reading it (fct_od_daily, decision 0041), whose other inputs are old
    execute("drop table intermediate.int_od__stagnation_runs cascade")
    load(deliveries[3])
    failed = build_fails()
    assert "accepted_values_fct_od_daily_currency" in failed
    assert "int_grading__od_grades_daily" not in failed  # the grades' own inputs were not rebuilt whole

    load(deliveries[4])  # the new date's balances lose a row between load and build
    execute(
        "delete from raw.od_balances where ctid = (select min(ctid) from raw.od_balances"
        " where business_date = '2024-01-05')"
    )
    target = warehouse.odwh_home() / "dbt" / "target"
    (target / "manifest.json").unlink(missing_ok=True)
    failed = build_fails()
    assert "matches_file_control_total_fct_od_daily" in failed
    assert "accepted_values_fct_od_daily" not in failed  # the bad currencies are on 2024-01-01, not rewritten
    # the failed build's run results stay for the operator, without dbt's manifest (transform.NO_MANIFEST)
    results = json.loads((target / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"].split(".")[2]: r["status"] for r in results}
    balances_total = [
        node for node in statuses if node.startswith("matches_file_control_total_fct_od_daily_principal")
    ]
    assert [statuses[node] for node in balances_total] == ["fail"]
    assert statuses["int_od__positions_daily"] == "success" and not (target / "manifest.json").exists()
    # a retry starts from them, carries the setting over, and leaves its own
    with pytest.raises(transform.TransformError, match="matches_file_control_total_fct_od_daily"):
        transform.run_dbt(["retry"], fresh_db)
    retried = {
        r["unique_id"].split(".")[2]: r["status"]
        for r in json.loads((target / "run_results.json").read_text())["results"]
    }
    assert "int_od__positions_daily" not in retried and [retried[node] for node in balances_total] == ["fail"]


def test_a_daily_build_analyzes_a_table_whole_past_a_tenth_and_else_its_dates_from_a_sample(
    fresh_db, tmp_path
):
    """Decision 0067: a model's post-hook analyzes its table whole when a tenth of it changed since, else only its
    date columns and load_id from 300 rows: the planner expects the new date's rows, the rest stands."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 1), date(2024, 1, 4), accounts=40, seed=2, progress=False
    )
    deliveries = sorted((tmp_path / "extracts").iterdir())
    landing = tmp_path / "landing"
    table = "intermediate.int_od__transactions_classified"

    def build(delivery: Path) -> None:
        shutil.copytree(delivery, landing / delivery.name)
        assert pipeline.ingest(fresh_db, str(landing), echo=False).loaded_dates == [delivery.name]
        pipeline.build_daily(fresh_db)

    def statistics(conn: psycopg.Connection, column: str) -> tuple[int, str]:
        """(how many most common values, their frequencies as text) of ``column`` in the table's statistics."""
        row = conn.execute(
            "select coalesce(cardinality(most_common_vals::text::text[]), 0), most_common_freqs::text"
            " from pg_stats where schemaname = 'intermediate' and tablename = %s and attname = %s",
            (table.split(".")[1], column),
        ).fetchone()
        assert row is not None
        return row

    def expected_rows(conn: psycopg.Connection, business_date: str) -> float:
        (plan,) = conn.execute(
            f"explain (format json) select * from {table} where business_date = %s",  # noqa: S608
            (business_date,),
        ).fetchone()
        return float(plan[0]["Plan"]["Plan Rows"])

    def grow(conn: psycopg.Connection, copies: int, batch: str) -> None:
        """``copies`` of the built rows, dated long before any build reads (load id 0), counted at once."""
        conn.execute(
            f"insert into {table} select %s || g || '-' || t.txn_id, t.od_account_id, '2000-01-01',"  # noqa: S608
            " t.txn_type, t.direction, t.amount, t.flow_class, t.signed_amount, t.is_reversal,"
            " t.reversed_txn_id, t.original_txn_id, '2000-01-01', 0"
            f" from {table} as t, generate_series(1, %s) as g where t.load_id > 0",
            (batch, copies),
        )
        conn.execute("select pg_stat_force_next_flush()")

    for delivery in deliveries[:2]:
        build(delivery)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert statistics(conn, "flow_class")[0] > 0  # a table just built: every column analyzed
        conn.execute(f"alter table {table} set (autovacuum_enabled = false)")  # analyzed by the builds alone
        grow(conn, 30, "a")
        conn.execute(f"analyze {table}")
        assert statistics(conn, "business_date")[0] == 3  # 2000-01-01 and the two dates: all of them
        assert expected_rows(conn, "2024-01-03") == 1  # a date the statistics do not know: none expected
        flow_classes = statistics(conn, "flow_class")

    build(deliveries[2])  # a new date, about a seventieth of the table
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert statistics(conn, "business_date")[0] <= 1  # from a sample of 300 rows
        assert expected_rows(conn, "2024-01-03") > 1
        assert statistics(conn, "flow_class") == flow_classes  # not analyzed again
        grow(conn, 30, "b")  # more than doubled

    build(deliveries[3])
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert statistics(conn, "business_date")[0] == 5  # whole again: every date
        assert statistics(conn, "flow_class") != flow_classes


@pytest.mark.slow
def test_a_daily_build_tests_the_monthly_charges_of_the_months_it_rewrote(fresh_db, tmp_path):
    """The monthly charges' relationships test (every charge's account has a position) reads the months from the
    first date loaded since the last daily build, not every charge against every position of the history; a test
    run with nothing new to build reads every month."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 30), date(2024, 2, 1), accounts=5, seed=2, progress=False
    )
    landing = tmp_path / "landing"

    def load(delivery: Path) -> None:
        shutil.copytree(delivery, landing / delivery.name)
        assert pipeline.ingest(fresh_db, str(landing), echo=False).loaded_dates == [delivery.name]

    deliveries = sorted((tmp_path / "extracts").iterdir())
    for delivery in deliveries[:2]:
        load(delivery)
    pipeline.build_daily(fresh_db)  # January, through its month end
    charges = "intermediate.int_od__charges_monthly"
    with psycopg.connect(fresh_db) as conn:  # a January charge of an account with no position
        january = f"select * from {charges} where month_end = '2024-01-31' limit 1"  # noqa: S608
        conn.execute(f"create temp table orphan as {january}")
        conn.execute("update orphan set od_account_id = 'OD-WITHOUT-POSITION'")
        conn.execute(f"insert into {charges} select * from orphan")  # noqa: S608
    load(deliveries[2])
    pipeline.build_daily(fresh_db)  # February rewritten and tested: January's charges are not read again

    relationships = "relationships_int_od__charges_monthly_od_account_id"
    with pytest.raises(transform.TransformError, match=relationships):
        transform.run_dbt(["test", "--select", "int_od__charges_monthly"], fresh_db)


@pytest.mark.slow
def test_a_runs_models_coverage_test_reads_every_date_its_build_rewrote(fresh_db, tmp_path):
    """A date that starts no run leaves its load id out of the runs, so the next build rewrites the runs from that
    date on, earlier than the dates loaded since the last daily build: the coverage test reads those too."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 1), date(2024, 1, 3), accounts=5, seed=2, progress=False
    )
    landing = tmp_path / "landing"
    for delivery in sorted((tmp_path / "extracts").iterdir()):
        shutil.copytree(delivery, landing / delivery.name)
        assert pipeline.ingest(fresh_db, str(landing), echo=False).loaded_dates == [delivery.name]
        if delivery.name == "2024-01-02":
            pipeline.build_daily(fresh_db)  # the last daily build: the dates loaded since are 3 January's
    runs = "intermediate.int_od__stagnation_runs"
    transform.run_dbt(["run", "--select", f"+{runs.split('.')[1]}"], fresh_db)  # its models alone
    with psycopg.connect(fresh_db) as conn:
        # nothing is evaluable in three days of a 60-day window: every run started on 1 January, so the build
        # rewrote the runs from 2 January on
        rewritten = conn.execute(
            "select from_date from meta.runs_rebuilt_from where relation_name like '%int_od__stagnation_runs%'"
        ).fetchall()
        assert rewritten == [(date(2024, 1, 2),)]
        # a run that build wrote on 2 January, without its state
        conn.execute(
            f"insert into {runs} (od_account_id, valid_from, load_id)"  # noqa: S608
            f" select od_account_id, '2024-01-02', load_id from {runs} limit 1"
        )
    with pytest.raises(transform.TransformError, match=r"stagnation_runs_cover_every_position\S* \(fail\)"):
        transform.run_dbt(["test", "--select", runs.split(".")[1]], fresh_db)


@pytest.mark.slow
def test_a_days_past_due_run_dated_after_its_first_day_fails_its_coverage_test(fresh_db, tmp_path):
    """The OD grades' graded_once reads month ends only (decision 0070): every other account-day has a grade
    because its run's day counts are never negative, which the runs' coverage test checks on the runs themselves:
    an excess run or an oldest unpaid due date starting after the run's first day would count negative days,
    which no grading band holds."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 1), date(2024, 1, 3), accounts=5, seed=2, progress=False
    )
    assert pipeline.ingest(fresh_db, str(tmp_path / "extracts"), echo=False).loaded_dates
    model = "int_od__days_past_due_runs"
    # built and tested, it passes (cautious: not the tests that also read models outside the selection)
    transform.run_dbt(["build", "--select", f"+{model}", "--indirect-selection", "cautious"], fresh_db)
    runs = f"intermediate.{model}"
    failed = r"days_past_due_runs_cover_every_position\S* \(fail\)"
    for column in ("excess_since", "oldest_unpaid_due_date"):
        with psycopg.connect(fresh_db) as conn:
            first = f"select od_account_id, valid_from, {column} from {runs} order by 1, 2 limit 1"  # noqa: S608
            account, valid_from, kept = conn.execute(first).fetchone()
            set_column = f"update {runs} set {column} = %s where od_account_id = %s and valid_from = %s"  # noqa: S608
            conn.execute(set_column, (valid_from + timedelta(days=1), account, valid_from))
        with pytest.raises(transform.TransformError, match=failed):
            transform.run_dbt(["test", "--select", model], fresh_db)
        with psycopg.connect(fresh_db) as conn:
            conn.execute(set_column, (kept, account, valid_from))
        transform.run_dbt(["test", "--select", model], fresh_db)


def test_gaps_between_grading_bands_fail_the_build(fresh_db, tmp_path):
    """Every days past due has a grade on every date only where the bands in force leave no gap (decision 0070):
    a band that starts a day late, a first band after 0 and a last band with an end each stop the build."""
    project = _copy_project(tmp_path)
    seed = project / "seeds" / "nbc_grading_rules.csv"
    rules = seed.read_text()
    selection = ["build", "-s", "+assert_nbc_grading_bands_leave_no_gap"]
    transform.run_dbt(
        selection, fresh_db, project=project, work_dir=tmp_path / "work"
    )  # the seed's bands pass
    for band, broken in [
        ("LONG,Special Mention,2,30,89,", "LONG,Special Mention,2,31,89,"),
        ("SHORT,Normal,1,0,14,", "SHORT,Normal,1,1,14,"),
        ("SHORT,Loss,5,91,,", "SHORT,Loss,5,91,999,"),
    ]:
        seed.write_text(rules.replace(band, broken))
        with pytest.raises(transform.TransformError, match="assert_nbc_grading_bands_leave_no_gap"):
            transform.run_dbt(selection, fresh_db, project=project, work_dir=tmp_path / "work")


@pytest.mark.slow
def test_the_published_daily_fact_is_tested_for_one_row_per_account_and_date(fresh_db, tmp_path):
    """fct_od_daily's grain is checked in the same pass as its control total (matches_file_control_total with a
    key): an account's row given another account's key keeps the date's rows and total, and still fails. The
    control total reads the positions alone: the planner drops the run and grade joins whose columns a query
    does not read (decision 0061), and keeps them for a query that does."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "landing", date(2024, 1, 1), date(2024, 1, 1), accounts=3, seed=2, progress=False
    )
    assert pipeline.ingest(fresh_db, str(tmp_path / "landing"), echo=False).loaded_dates == ["2024-01-01"]
    pipeline.build_daily(fresh_db)
    totals = "select count(*), sum(principal_outstanding) from marts.fct_od_daily"
    state_tables = [
        "int_od__days_past_due_runs",
        "int_od__stagnation_runs",
        "int_policy__nbc_grading_rule_versions",
    ]
    with psycopg.connect(fresh_db) as conn:

        def tables_read(query: str) -> list[str]:
            plan = "\n".join(row[0] for row in conn.execute(f"explain (costs off) {query}").fetchall())
            return [table for table in state_tables if table in plan]

        assert tables_read(totals) == []
        assert tables_read("select count(*) from intermediate.int_grading__od_grades_daily") == []
        graded = "select count(nbc_grade), count(conversion_candidate) from marts.fct_od_daily"
        assert tables_read(graded) == state_tables
        before = conn.execute(totals).fetchone()
        unique_index = conn.execute(
            "select indexrelid::regclass::text from pg_index"
            " where indrelid = 'intermediate.int_od__positions_daily'::regclass and indisunique"
        ).fetchone()
        assert unique_index is not None
        conn.execute(f"drop index {unique_index[0]}")
        conn.execute(
            "update intermediate.int_od__positions_daily set od_account_id = (select max(od_account_id)"
            " from intermediate.int_od__positions_daily) where od_account_id = (select min(od_account_id)"
            " from intermediate.int_od__positions_daily)"
        )
        assert conn.execute(totals).fetchone() == before  # as many rows, the same control total

    with pytest.raises(transform.TransformError) as failed:
        transform.run_dbt(["test", "--select", "fct_od_daily"], fresh_db)
    [node] = failed.value.failed_nodes  # nothing else failed: the rows and the total still match
    assert node.startswith("test.odwh.matches_file_control_total_fct_od_daily")


@pytest.mark.slow
def test_a_load_that_makes_a_month_ready_builds_its_month_end_models_with_the_daily_ones(
    fresh_db, tmp_path, monkeypatch
):
    """Decision 0059: the daily build takes the month-end models in when a month is ready to close, and the close
    then builds nothing (unless the month is named by hand). A month-end model that fails does not fail the
    daily build: the daily models are recorded as built, and the close builds the month-end models and fails
    there. A close never publishes from daily models behind its loads: it brings them up to date first, and
    fails when only the month-end models taken in then fail (building them again would fail the same way)."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "extracts", date(2024, 1, 30), date(2024, 3, 1), accounts=4, seed=3, progress=False
    )
    landing = tmp_path / "landing"
    built: list[tuple[str, ...]] = []
    build_selector = pipeline._build_selector
    monkeypatch.setattr(
        pipeline,
        "_build_selector",
        lambda url, selectors, change: (built.append(selectors), build_selector(url, selectors, change)),
    )

    def load_through(last: str) -> int:
        for delivery in sorted((tmp_path / "extracts").iterdir()):
            if delivery.name <= last and not (landing / delivery.name).exists():
                shutil.copytree(delivery, landing / delivery.name)
        assert pipeline.ingest(fresh_db, str(landing), echo=False).ok
        return pipeline.newest_load_id(fresh_db)

    def recorded() -> dict[str, int]:
        with psycopg.connect(fresh_db) as conn:
            return dict(conn.execute("select selector, loads_through from meta.model_builds").fetchall())

    def month_ends() -> list[date]:
        with psycopg.connect(fresh_db) as conn:
            sql = "select distinct month_end from marts.fct_od_month_end order by 1"
            return [d for (d,) in conn.execute(sql).fetchall()]

    load_through("2024-01-30")
    pipeline.build_daily(fresh_db)  # January is not complete: the daily models alone
    assert built == [("daily",)]
    newest = load_through("2024-01-31")
    pipeline.build_daily(fresh_db)
    assert built[1:] == [("daily", "month_end")]
    assert recorded() == {"daily": newest, "month_end": newest} and month_ends() == [date(2024, 1, 31)]
    assert pipeline.build_month_end(fresh_db, ["2024-01-31"]) == newest  # announced: nothing to build
    assert built[2:] == []
    assert pipeline.build_month_end(fresh_db, ["2024-01-31"], rebuild=True) == newest  # named by hand
    assert built[2:] == [("month_end",)]

    # a month-end model that cannot write February's month end: the daily models are built and recorded anyway,
    # with no second build
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "alter table marts.fct_od_month_end add constraint broken check (month_end < '2024-02-01') not valid"
        )
    newest = load_through("2024-02-29")
    pipeline.build_daily(fresh_db)
    assert built[3:] == [("daily", "month_end")]
    assert recorded()["daily"] == newest and recorded()["month_end"] < newest
    with pytest.raises(transform.TransformError, match="fct_od_month_end"):
        pipeline.build_month_end(fresh_db, ["2024-02-29"])  # the close builds them, and fails there
    assert built[4:] == [("month_end",)]

    # a date loaded and not built (its daily build failed, or has not run): the close builds it first, with the
    # month-end models; when only they fail, the daily models are recorded and the close fails, building once
    newest = load_through("2024-03-01")
    with pytest.raises(transform.TransformError, match="fct_od_month_end"):
        pipeline.build_month_end(fresh_db, ["2024-02-29"])
    assert built[5:] == [("daily", "month_end")]
    assert recorded()["daily"] == newest and recorded()["month_end"] < newest
    with psycopg.connect(fresh_db) as conn:
        conn.execute("alter table marts.fct_od_month_end drop constraint broken")
    assert pipeline.build_month_end(fresh_db, ["2024-02-29"]) == newest
    assert built[6:] == [("month_end",)]
    assert recorded() == {"daily": newest, "month_end": newest}
    assert month_ends() == [date(2024, 1, 31), date(2024, 2, 29)]
    with psycopg.connect(fresh_db) as conn:
        [(last_day,)] = conn.execute("select max(business_date) from marts.fct_od_daily").fetchall()
    assert last_day == date(2024, 3, 1)


@pytest.mark.slow
def test_the_term_loan_grades_are_tested_at_month_ends_the_one_date_read(fresh_db, tmp_path):
    """The term-loan grade view's test reads calendar month ends only (int_portfolio__positions_month_end reads
    nothing else): a loan no rule grades is a failure on a month end and not on another day."""
    from odwh import pipeline, simulate

    simulate.simulate(
        tmp_path / "landing", date(2024, 1, 30), date(2024, 2, 1), accounts=20, seed=2, progress=False
    )
    assert len(pipeline.ingest(fresh_db, str(tmp_path / "landing"), echo=False).loaded_dates) == 3
    pipeline.build_daily(fresh_db)

    def ungraded_loan_from(day: str) -> None:  # a version with days past due no rule grades, current from day
        with psycopg.connect(fresh_db) as conn:
            conn.execute("delete from raw.loans where loan_id = 'UNGRADED'")
            conn.execute(
                "insert into raw.loans select 'UNGRADED', customer_id, product, currency, disbursed_on,"
                " original_term_months, outstanding_principal, -1, purpose_activity, status,"
                " source_od_account_id, _load_id, _row_number, %s, null from raw.loans limit 1",
                (date.fromisoformat(day),),
            )

    def test_grades() -> None:
        transform.run_dbt(["test", "--select", "int_grading__term_loan_grades"], fresh_db)

    ungraded_loan_from("2024-02-01")
    test_grades()  # graded nowhere from 1 February: no month end among its dates
    ungraded_loan_from("2024-01-30")
    with pytest.raises(transform.TransformError, match="graded_once_int_grading__term_loan_grades"):
        test_grades()  # 31 January is a month end
