"""Running dbt programmatically (``dbtRunner``) against the warehouse, and the dbt sources kept from drifting.

The dbt project lives in ``<project_dir>/dbt_project``; its ``profiles.yml`` reads only ``ODWH_PG_*``
environment variables, which :func:`dbt_env` derives from a warehouse URL, and ``ODWH_DBT_THREADS``. dbt writes
its target and logs under ``$ODWH_HOME/dbt`` (ignored by git), never into the checkout.

``python -m odwh.transform`` rewrites ``models/staging/_core_banking__sources.yml`` from ``odwh.contract``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING, Any

from odwh import contract, history, warehouse

if TYPE_CHECKING:
    from dbt.cli.main import dbtRunnerResult

log = logging.getLogger(__name__)

SOURCE_NAME = "core_banking"
SOURCES_FILE = Path("models/staging/_core_banking__sources.yml")
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
DONE_STATUSES = frozenset({"success", "pass", "warn", "no-op"})  # any other result left its node unfinished
RAW_METADATA_COLUMNS = (
    (
        "_business_date",
        "date",
        "Business date of the delivery folder the row was loaded from (snapshot as-of date).",
    ),
    ("_load_id", "bigint", "meta.loads.load_id of the load that wrote the row."),
    ("_row_number", "integer", "1-based data line of the row in the delivered CSV file."),
)
# a snapshot stored as change history (odwh.history): versions instead of per-date rows
HISTORY_METADATA_COLUMNS = (
    ("_load_id", "bigint", "meta.loads.load_id of the delivery of the version's first date."),
    ("_row_number", "integer", "1-based data line of the row in that delivery's CSV file."),
    ("valid_from", "date", "First business date delivered with these values."),
    (
        "valid_to",
        "date",
        "Day after the last business date with these values (exclusive); null while current.",
    ),
)


class TransformError(RuntimeError):
    """A dbt invocation failed; ``failed_nodes`` names the nodes that errored or failed, ``unfinished_tags`` holds
    the tags of every node left unfinished, failed or skipped for a failure (a test's own and its models': dbt
    does not pass a model's tags on to its tests)."""

    def __init__(
        self,
        message: str,
        failed_nodes: tuple[str, ...] = (),
        unfinished_tags: tuple[frozenset[str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.failed_nodes = failed_nodes
        self.unfinished_tags = unfinished_tags

    def only_tagged(self, tag: str) -> bool:
        """Whether nodes failed and every node left unfinished carries ``tag`` (e.g. only month-end models failed,
        and only month-end nodes were skipped for it): every other node of the invocation ran and passed."""
        return bool(self.failed_nodes) and all(tag in tags for tags in self.unfinished_tags)


def dbt_project_dir() -> Path:
    return warehouse.project_dir() / "dbt_project"


DBT_THREADS = "ODWH_DBT_THREADS"
DEFAULT_DBT_THREADS = 2  # a model at a time per core of a 2-core machine; a larger warehouse takes more

# dbt's log file takes every event at debug level by default, the SQL of each statement included: a tenth of a
# small date's build (decision 0074). odwh keeps its lines (each node started, done or failed, with the error);
# DBT_LOG_LEVEL_FILE=debug (or DBT_LOG_LEVEL=debug) brings the statements back for a build being investigated
DBT_LOG_LEVEL_FILE = "DBT_LOG_LEVEL_FILE"
DEFAULT_LOG_LEVEL_FILE = "info"


def dbt_threads() -> str:
    """How many nodes dbt builds at once (``ODWH_DBT_THREADS``), refused unless a whole number from 1."""
    value = os.environ.get(DBT_THREADS, "").strip() or str(DEFAULT_DBT_THREADS)
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        raise TransformError(f"{DBT_THREADS} must be a whole number of threads, at least 1; got {value!r}")
    return value


def dbt_env(warehouse_url: str | None = None) -> dict[str, str]:
    """The environment ``dbt_project/profiles.yml`` reads, for ``warehouse_url`` (default: the warehouse)."""
    parts = warehouse.dbt_profile_params(warehouse_url)
    env = {f"ODWH_PG_{key.upper()}": value for key, value in parts.items()}
    env[DBT_THREADS] = dbt_threads()
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"  # no network: never try to phone home
    if not any(os.environ.get(name, "").strip() for name in (DBT_LOG_LEVEL_FILE, "DBT_LOG_LEVEL")):
        env[DBT_LOG_LEVEL_FILE] = (
            DEFAULT_LOG_LEVEL_FILE  # dbt's default follows DBT_LOG_LEVEL when that is set
        )
    return env


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_dbt(
    args: list[str],
    warehouse_url: str | None = None,
    *,
    project: Path | None = None,
    work_dir: Path | None = None,
    callbacks: list[Callable[[Any], None]] | None = None,
) -> dbtRunnerResult:
    """Invoke ``dbt <args>`` in-process against ``warehouse_url``; raise :class:`TransformError` on failure.

    ``project`` defaults to the checkout's ``dbt_project``; ``work_dir`` (target and logs) to ``$ODWH_HOME/dbt``.
    ``callbacks`` receive every dbt event (e.g. to collect deprecation warnings).
    """
    from dbt.cli.main import dbtRunner

    project = project or dbt_project_dir()
    work_dir = work_dir or warehouse.odwh_home() / "dbt"
    locations = {
        "--project-dir": project,
        "--profiles-dir": project,
        "--target-path": work_dir / "target",
        "--log-path": work_dir / "logs",
    }
    paths = [part for option, path in locations.items() for part in (option, str(path))]
    seconds_file = work_dir / NODE_SECONDS_FILE
    order_by_longest_chain(_read_node_seconds(seconds_file))
    keep_sessions_between_nodes()
    with _environment(dbt_env(warehouse_url)):
        result = dbtRunner(callbacks=callbacks).invoke([*args, *paths])
    _record_node_seconds(seconds_file, result)
    _keep_run_results(work_dir / "target" / "run_results.json", args, result)
    if not result.success:
        raise _failure(args, result)
    return result


# dbt writes manifest.json (2.3 MB) after parsing and again after running: 0.3-0.6 s of a small build (a tenth of it
# at 1,000 accounts) that nothing reads: the pipeline's builds pass this and keep run_results.json (decision 0064)
NO_MANIFEST = "--no-write-json"


def _keep_run_results(path: Path, args: list[str], result: dbtRunnerResult) -> None:
    """``run_results.json`` as dbt writes it (what an operator reads after a failed build, what ``dbt retry`` starts
    from) for an invocation dbt wrote no JSON for: one run with :data:`NO_MANIFEST`, or a retry of one (dbt carries
    the setting over). When no node ran (dbt stopped before), the previous file goes: it must not pass for this
    invocation's. A file that cannot be written is logged: the invocation's own outcome is what the caller gets."""
    from dbt.artifacts.schemas.run import RunExecutionResult

    ran = result.result if isinstance(result.result, RunExecutionResult) else None
    if NO_MANIFEST not in args and (ran is None or ran.args.get("write_json") is not False):
        return  # dbt wrote its own
    try:
        if ran is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            ran.write(str(path))
    except OSError as error:
        log.warning("dbt's run results not written to %s (%s)", path, error)


# each node's seconds in the last invocation that ran it, under the work dir: how dbt's queue weighs the work left
NODE_SECONDS_FILE = "node_seconds.json"
# only a node's real work times it: not a compile or a show, nor a node skipped or stopped by an error
TIMED_COMMANDS = frozenset({"build", "run", "seed", "snapshot", "test"})  # a retry may redo a compile
TIMED_STATUSES = frozenset({"success", "pass", "warn", "fail"})
_node_seconds: dict[str, float] = {}


def order_by_longest_chain(node_seconds: dict[str, float] | None = None) -> None:
    """Make dbt start, whenever a thread is free, the ready node heading the longest chain of work still to do
    (docs/decisions/0056): each node weighs its seconds in ``node_seconds`` (its last run), a node never timed one
    second if a model, nothing otherwise. dbt hands every ready node to its thread pool at once, ordered by depth
    in the graph and name, so a node ready a moment later waited behind all of them: after
    ``int_od__positions_daily``, the charges (then the days past due, the longest chain) waited behind the agents'
    days and the month-end activity. dbt has no setting for it, so two methods of its queue (dbt-core 1.11's
    ``GraphQueue``) are replaced; ``tests/test_transform.py`` fails if they go."""
    from dbt.graph.queue import GraphQueue

    _node_seconds.clear()
    _node_seconds.update(node_seconds or {})
    if not hasattr(GraphQueue, "dbt_get"):
        GraphQueue.dbt_get = GraphQueue.get  # type: ignore[attr-defined]
    GraphQueue._get_scores = _longest_chain_scores  # type: ignore[method-assign, assignment]
    GraphQueue.get = _get_when_a_thread_is_free  # type: ignore[method-assign, assignment]


def _longest_chain_scores(queue: Any, graph: Any) -> dict[str, float]:
    """Each node's score (lower first): minus the work on the longest path from it to the end of the graph, itself
    included (ties keep dbt's order by name)."""
    import networkx as nx

    chain: dict[str, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        own = _node_seconds.get(node, 1.0 if queue._include_in_cost(node) else 0.0)
        chain[node] = own + max((chain[after] for after in graph.successors(node)), default=0.0)
    return {node: -work for node, work in chain.items()}


def _get_when_a_thread_is_free(queue: Any, block: bool = True, timeout: float | None = None) -> Any:
    """dbt's ``GraphQueue.get``, once fewer nodes are in progress than dbt has threads (``--threads``, else the
    profile's, ``ODWH_DBT_THREADS``): the node taken is then the best of those ready when it can start. A
    ``timeout`` bounds the wait for a thread as dbt's bounds the wait for a node (``queue.Empty`` after it)."""
    from dbt.flags import get_flags

    threads = int(getattr(get_flags(), "THREADS", None) or dbt_threads())
    deadline = None if timeout is None else time.monotonic() + timeout
    with queue.some_task_done:  # the queue's lock; notified whenever a node is done
        while block and len(queue.in_progress) >= threads:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Empty
            queue.some_task_done.wait(left)
    if deadline is not None:
        timeout = max(deadline - time.monotonic(), 0.0)
    return queue.dbt_get(block, timeout)


# a kept session idle longer than this is closed before its next node, as dbt would have closed it: a server's or a
# proxy's idle timeout (idle_session_timeout, a load balancer) may have ended it while a thread waited for work
SESSION_IDLE_SECONDS = 30.0
_IDLE_SINCE = "_odwh_idle_since"  # set on a dbt Connection when its session is reset and kept


def keep_sessions_between_nodes() -> None:
    """Make each of dbt's threads keep its warehouse session from one node to the next (decision 0074). dbt-core
    1.11 closes a thread's connection after every node, so each of a build's 120-odd nodes paid a new session
    (a backend started, the role set, the catalog read again): a tenth of a small date's build. A node's session
    is now reset instead: any open transaction rolled back, as closing would, the session's settings reset, its
    temporary tables dropped (an incremental model leaves its batch in one) and the profile's role set again
    (dbt sets it in the session's first transaction, which a read-only node rolls back). Only nodes' sessions are
    kept: dbt's own (its main thread's, the threads reading the catalog) are closed as before. A kept session idle
    longer than :data:`SESSION_IDLE_SECONDS`, or one that cannot be reset, is closed as dbt would, and the next
    node opens a new one; dbt closes every session at the end of the invocation. ``tests/test_transform.py``
    fails if the methods replaced go."""
    from dbt.adapters.postgres.connections import PostgresConnectionManager

    if not hasattr(PostgresConnectionManager, "dbt_release"):
        PostgresConnectionManager.dbt_release = PostgresConnectionManager.release  # type: ignore[attr-defined]
        PostgresConnectionManager.dbt_set_connection_name = (  # type: ignore[attr-defined]
            PostgresConnectionManager.set_connection_name
        )
    PostgresConnectionManager.release = _release_keeping_the_session  # type: ignore[method-assign, assignment]
    PostgresConnectionManager.set_connection_name = _name_a_fresh_session  # type: ignore[method-assign, assignment]


def _release_keeping_the_session(manager: Any) -> None:
    """dbt's ``release`` of the current thread's connection, resetting a node's session instead of closing it."""
    from dbt.adapters.contracts.connection import ConnectionState

    with manager.lock:
        connection = manager.get_if_exists()
    if connection is not None and connection.state == ConnectionState.OPEN and _is_a_node(connection.name):
        handle = connection.handle
        try:
            handle.rollback()  # what closing does to a transaction left open, dbt's or the driver's own
            connection.transaction_open = False
            with handle.cursor() as cursor:
                cursor.execute("reset all")  # a set_config(..., false) of a hook that failed after its commit
                cursor.execute("discard temp")
                # the role dbt-postgres's open set in the session's first transaction, undone if it was rolled back
                if role := connection.credentials.role:
                    cursor.execute(f"set role {role}")
            handle.commit()
            setattr(connection, _IDLE_SINCE, time.monotonic())
            return
        except Exception as error:  # a broken session (the server restarted, the link dropped): closed below
            log.debug("dbt session %s not reset (%s): closed", connection.name, error)
    manager.dbt_release()


def _name_a_fresh_session(manager: Any, name: str | None = None) -> Any:
    """dbt's ``set_connection_name`` (a node takes the thread's connection), after closing the thread's kept
    session when it has been idle too long; a session taken is no longer idle (a node may name it again)."""
    connection = manager.get_if_exists()
    idle_since = connection.__dict__.pop(_IDLE_SINCE, None) if connection is not None else None
    if idle_since is not None and time.monotonic() - idle_since > SESSION_IDLE_SECONDS:
        manager.dbt_release()
    return manager.dbt_set_connection_name(name)


def _is_a_node(connection_name: str | None) -> bool:
    """Whether dbt named the connection after a node (``model.odwh.fct_od_daily``), not after its own work
    (``master``, ``list_odwh_staging``)."""
    from dbt.node_types import NodeType

    kind, dot, _ = (connection_name or "").partition(".")
    return bool(dot) and kind in {t.value for t in NodeType}


def _read_node_seconds(path: Path) -> dict[str, float]:
    """The seconds recorded in ``path``; none when it is missing or unreadable, and no value that is not a finite
    number (a cache: the order is then a guess, never an error)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    seconds: dict[str, float] = {}
    for node, value in recorded.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            continue
        if math.isfinite(number) and number >= 0:
            seconds[str(node)] = number
    return seconds


def _record_node_seconds(path: Path, result: dbtRunnerResult) -> None:
    """Add to ``path`` the seconds of every node a building command (``TIMED_COMMANDS``, as dbt parsed it, not
    ``--empty``) ran to an end (``TIMED_STATUSES``), written whole, then renamed: another dbt run reading it sees
    the old or the new file. A file that cannot be written is logged and left: the build's own outcome is what
    the caller gets."""
    parsed = getattr(result.result, "args", None) or {}
    if parsed.get("which") not in TIMED_COMMANDS or parsed.get("empty"):
        return
    timed = {
        r.node.unique_id: r.execution_time
        for r in getattr(result.result, "results", None) or ()
        if getattr(r, "node", None) is not None
        and str(r.status) in TIMED_STATUSES
        and isinstance(r.execution_time, int | float)
    }
    if not timed:
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(_read_node_seconds(path) | timed, sort_keys=True))
        partial.replace(path)
    except OSError as error:
        log.warning(
            "dbt's node seconds not recorded in %s (%s): the next run orders its nodes by the old",
            path,
            error,
        )
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


def _failure(args: list[str], result: dbtRunnerResult) -> TransformError:
    command = " ".join(args[:1]) or "dbt"
    results = getattr(result.result, "results", None) or ()
    tags = {r.node.unique_id: frozenset(r.node.tags) for r in results}
    failed = [r for r in results if str(r.status) in FAILED_STATUSES]
    if failed:
        lines = "\n".join(f"  {r.node.unique_id} ({r.status}): {(r.message or '').strip()}" for r in failed)
        return TransformError(
            f"dbt {command} failed for {len(failed)} node(s):\n{lines}",
            tuple(r.node.unique_id for r in failed),
            tuple(_tags_with_parents(r.node, tags) for r in results if str(r.status) not in DONE_STATUSES),
        )
    return TransformError(f"dbt {command} failed: {result.exception or 'no result (see the dbt log)'}")


def _tags_with_parents(node: Any, tags: dict[str, frozenset[str]]) -> frozenset[str]:
    """A node's tags, a test's with those of the nodes it reads (of this invocation)."""
    parents = node.depends_on.nodes if node.resource_type == "test" else ()
    return frozenset(node.tags).union(*(tags.get(parent, frozenset()) for parent in parents))


# What the DAGs build: models and their data tests, not dbt's unit tests. Unit tests check the SQL against fixed
# inputs, so they belong to `make test` (tests/test_transform.py runs them all); in every daily run they cost
# ~20 s of the build and test nothing that changed. Never fail fast (DBT_FAIL_FAST): every node not downstream of
# a failure still runs, so a month-end failure leaves the daily models built (TransformError.only_tagged).
PIPELINE_BUILD = ["build", "--exclude-resource-type", "unit_test", "--no-fail-fast", NO_MANIFEST]


def seed_and_build(
    warehouse_url: str | None = None,
    select: str | None = None,
    exclude: str | None = None,
    *,
    unit_tests: bool = True,
    **kwargs: Any,
) -> None:
    """Load the policy seeds, then build (run + test) the selected models (all when ``select`` is None).

    The raw key tests (tag ``raw_keys``) scan every loaded date; a daily run can pass ``exclude="tag:raw_keys"``.
    ``unit_tests=False`` leaves out dbt's unit tests, as the pipeline does (see :data:`PIPELINE_BUILD`).
    ``kwargs`` go to :func:`run_dbt` (``project``, ``work_dir``, ``callbacks``).
    """
    run_dbt(["seed"], warehouse_url, **kwargs)
    selection = [*(["--select", select] if select else []), *(["--exclude", exclude] if exclude else [])]
    build = ["build"] if unit_tests else PIPELINE_BUILD
    run_dbt([*build, "--exclude-resource-type", "seed", *selection], warehouse_url, **kwargs)


# --- sources from the contract ------------------------------------------------------------------------------


def _key_tests(f: contract.ExtractFile) -> list[dict[str, Any]]:
    date_column = "valid_from" if history.stored_as_history(f) else "_business_date"
    per_date = [date_column, *(k for k in f.key if k != "_business_date")]
    return [{"unique_combination_of_columns": {"arguments": {"combination_of_columns": per_date}}}]


def _source_table(f: contract.ExtractFile) -> dict[str, Any]:
    columns: list[dict[str, Any]] = []
    for c in f.columns:
        if c.pii:  # loaded into pii.<table>, never into raw
            continue
        column: dict[str, Any] = {"name": c.name, "data_type": c.pg_type}
        if c.name in f.key:
            column["data_tests"] = ["not_null"]
        columns.append(column)
    as_history = history.stored_as_history(f)
    for name, pg_type, description in HISTORY_METADATA_COLUMNS if as_history else RAW_METADATA_COLUMNS:
        column = {"name": name, "data_type": pg_type, "description": description}
        if name in ("_business_date", "valid_from"):
            column["data_tests"] = ["not_null"]
        columns.append(column)
    kind = "full state per business date" if f.kind == "snapshot" else "that business date's events"
    grain = "per _business_date"
    if as_history:
        kind += ", stored as change history: one version per change"
        grain = "per valid_from (see docs/decisions/0030-snapshot-history.md)"
    return {
        "name": f.table,
        "description": f"{f.name} ({f.kind}: {kind}); key ({', '.join(f.key)}) {grain}.",
        "config": {"tags": ["raw_keys"]},
        "data_tests": _key_tests(f),
        "columns": columns,
    }


def sources_spec() -> dict[str, Any]:
    """The dbt sources YAML (as data) for every ``raw`` table, generated from ``odwh.contract``."""
    return {
        "version": 2,
        "sources": [
            {
                "name": SOURCE_NAME,
                "description": "Core-banking extracts as loaded into raw (extract contract version "
                f"{contract.EXTRACT_VERSION}); a re-delivered business date replaces all its rows.",
                "schema": "raw",
                "tables": [_source_table(f) for f in contract.FILES],
            }
        ],
    }


def render_sources_yaml() -> str:
    import yaml  # type: ignore[import-untyped]

    header = "# Generated from odwh.contract by `python -m odwh.transform`; do not edit by hand.\n"
    return header + yaml.safe_dump(sources_spec(), sort_keys=False, width=110, allow_unicode=True)


def write_sources_yaml(project: Path | None = None) -> Path:
    path = (project or dbt_project_dir()) / SOURCES_FILE
    path.write_text(render_sources_yaml(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_sources_yaml())
