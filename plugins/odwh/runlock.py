"""One writer at a time per warehouse: a PostgreSQL session-level advisory lock (docs/reliability.md).

``odwh run`` holds it for the whole run and, when another run holds it, refuses to start (:class:`WarehouseBusy`,
exit 75) naming the holder: a command typed by hand should answer at once, not hang. Under a scheduler each
DAG task that writes (load, build, publish) takes it and waits for it, saying so: the scheduler's own timeouts
bound the wait. The lock dies with the session, so a killed run never leaves it behind. Advisory locks are per
database: one lock per warehouse.

The process holding it (and the in-process DAG tasks it runs) marks the environment with ``HELD_ENV`` so its
own tasks do not wait for themselves.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, TypeVar

import psycopg

LOCK_KEY = 0x6F647768  # "odwh"; below 2**31, so pg_locks shows it as classid 0, objid LOCK_KEY
HELD_ENV = "ODWH_RUN_LOCK_HELD"
EXIT_BUSY = 75  # EX_TEMPFAIL: try again later

P = ParamSpec("P")
R = TypeVar("R")


class WarehouseBusy(RuntimeError):
    pass


HOLDER_SQL = """
select a.application_name, a.pid, to_char(a.backend_start at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"')
from pg_locks l left join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = %s and l.objsubid = 1
  and l.database = (select oid from pg_database where datname = current_database())
"""


def holder(conn: psycopg.Connection) -> str:
    """Who holds the lock, as far as this role may see (``application_name`` names the odwh process)."""
    row = conn.execute(HOLDER_SQL, (LOCK_KEY,)).fetchone()
    if row is None:
        return "nobody (released just now)"
    name, pid, since = row
    return f"{name or 'a session'} (server pid {pid}, since {since})"


@contextmanager
def warehouse_lock(warehouse_url: str, purpose: str, *, wait: bool) -> Iterator[None]:
    """Hold the warehouse's run lock for the block; ``wait`` False raises :class:`WarehouseBusy` at once."""
    if os.environ.get(HELD_ENV):
        yield
        return
    name = f"odwh {purpose} (pid {os.getpid()} on {socket.gethostname()})"[:63]
    with psycopg.connect(warehouse_url, autocommit=True, application_name=name) as conn:
        (got,) = conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone() or (False,)
        if not got:
            busy = f"another odwh run holds the warehouse lock: {holder(conn)}"
            if not wait:
                raise WarehouseBusy(f"{busy}; nothing was done, run again when it has finished")
            print(f"{purpose}: waiting, {busy}", flush=True)
            conn.execute("select pg_advisory_lock(%s)", (LOCK_KEY,))
        os.environ[HELD_ENV] = name
        try:
            yield
        finally:
            del os.environ[HELD_ENV]  # closing the session releases the lock


def exclusive(
    purpose: str,
) -> Callable[[Callable[Concatenate[str, P], R]], Callable[Concatenate[str, P], R]]:
    """Decorate a task function whose first argument is the warehouse URL: it runs under the lock, waiting."""

    def wrap(func: Callable[Concatenate[str, P], R]) -> Callable[Concatenate[str, P], R]:
        @functools.wraps(func)
        def locked(warehouse_url: str, *args: P.args, **kwargs: P.kwargs) -> R:
            with warehouse_lock(warehouse_url, purpose, wait=True):
                return func(warehouse_url, *args, **kwargs)

        return locked

    return wrap
