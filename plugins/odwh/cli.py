"""The ``odwh`` command. Thin: each command parses options and calls the package."""

from __future__ import annotations

import atexit
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from odwh.runner import RunSummary

# platformdirs warns on every start of a container or CI shell without a login session; it changes nothing here
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

app = typer.Typer(help="odwh: overdraft-risk data platform.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="The embedded PostgreSQL warehouse.", no_args_is_help=True)
app.add_typer(db_app, name="db")
policy_app = typer.Typer(
    help="Policy parameters: the shipped defaults and the changes recorded in the warehouse (rulebook L).",
    no_args_is_help=True,
)
app.add_typer(policy_app, name="policy")
access_app = typer.Typer(
    help="Branch-scoped readers: which database users may read which branches' rows (row-level security).",
    no_args_is_help=True,
)
app.add_typer(access_app, name="access")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded PostgreSQL (initialising it on first use) and print its URL."""
    from odwh import warehouse

    url = warehouse.ensure_running()
    warehouse.migrate(url)
    typer.echo(url)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL."""
    from odwh import warehouse

    stopped = warehouse.embedded().stop()
    typer.echo("stopped" if stopped else "not running")


@db_app.command("migrate")
def db_migrate() -> None:
    """Create or update odwh's schemas and tables in the warehouse (idempotent)."""
    from odwh import warehouse

    warehouse.migrate(warehouse.url())
    typer.echo("warehouse schema is up to date")


@db_app.command("url")
def db_url() -> None:
    """Print the warehouse URL (WAREHOUSE_URL if set, else the embedded server's)."""
    from odwh import warehouse

    try:
        typer.echo(warehouse.url())
    except warehouse.WarehouseError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@policy_app.command("show")
def policy_show(
    at: str = typer.Option("", "--at", help="Date YYYY-MM-DD (default today)."),
) -> None:
    """Every policy parameter in force on a date, with its version, source and who set it."""
    from odwh import policy, warehouse

    on = date.fromisoformat(at) if at else date.today()
    with _policy_errors(), warehouse.connect(_migrated_warehouse()) as conn:
        typer.echo(policy.table(policy.in_force(conn, on)))


@policy_app.command("set", context_settings={"ignore_unknown_options": True})  # a value may be negative
def policy_set(
    name: str = typer.Argument(..., help="Parameter name, as `odwh policy show` lists it."),
    value: str = typer.Argument(..., help="New value (a number, or a day-count convention)."),
    effective_from: str = typer.Option(..., "--from", help="First business date it applies, YYYY-MM-DD."),
    reason: str = typer.Option(..., "--reason", help="Why: the board decision it implements."),
    by: str = typer.Option("", "--by", help="Who records it (default: the OS user)."),
) -> None:
    """Record a parameter change; refused in a published month or when the value is invalid."""
    from odwh import policy

    with _policy_errors():
        start = date.fromisoformat(effective_from)
        version = policy.record_change(_migrated_warehouse(), name, value, start, reason, by or None)
    typer.echo(
        f"recorded {version.version_id} = {version.value} (change {version.change_id} by {version.recorded_by}); "
        "the next `odwh run` rebuilds the affected days"
    )


@policy_app.command("history")
def policy_history(
    name: str = typer.Argument("", help="One parameter (default: all)."),
) -> None:
    """Every version of a parameter (or of all), oldest first."""
    from odwh import policy, warehouse

    with _policy_errors(), warehouse.connect(_migrated_warehouse()) as conn:
        typer.echo(policy.table(policy.versions(conn, name or None), history=True))


def _migrated_warehouse() -> str:
    from odwh import warehouse

    url = warehouse.ensure_running()
    warehouse.migrate(url)
    return url


@contextmanager
def _policy_errors() -> Iterator[None]:
    """A refused change or bad date: the message on stderr and exit status 1, not a traceback."""
    from odwh import policy, warehouse

    try:
        yield
    except (policy.PolicyError, warehouse.WarehouseError, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@access_app.command("grant")
def access_grant(
    user: str = typer.Argument(..., help="An existing database login user."),
    branches: list[str] = typer.Option(..., "--branches", help="Branch codes, e.g. B01,B02 (repeatable)."),
) -> None:
    """Let USER read these branches' rows of every mart carrying branch_code (added to any it had)."""
    from odwh import access, warehouse

    with _access_errors(), warehouse.connect(_migrated_warehouse()) as conn:
        access.grant(conn, user, branches)
        typer.echo(f"{user} reads branch(es) {', '.join(access.branches_of(conn, user))}")


@access_app.command("revoke")
def access_revoke(
    user: str = typer.Argument(..., help="A branch-scoped reader."),
    branches: list[str] = typer.Option([], "--branches", help="Branch codes to withdraw (default: all)."),
) -> None:
    """Withdraw branches from USER (all by default); with its last branch USER loses the reader role."""
    from odwh import access, warehouse

    with _access_errors(), warehouse.connect(_migrated_warehouse()) as conn:
        left = access.revoke(conn, user, branches)
    typer.echo(f"{user} reads branch(es) {', '.join(left)}" if left else f"{user} reads no branch")


@access_app.command("show")
def access_show() -> None:
    """Every branch-scoped reader and the branches it may read."""
    from odwh import access, warehouse

    with _access_errors(), warehouse.connect(_migrated_warehouse()) as conn:
        typer.echo(access.table(access.show(conn)))


@contextmanager
def _access_errors() -> Iterator[None]:
    from odwh import access, warehouse

    try:
        yield
    except (access.AccessError, warehouse.WarehouseError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@app.command()
def simulate(
    out: Path = typer.Option(..., help="Landing folder to write business-date folders into."),
    start: str = typer.Option(..., help="First business date, YYYY-MM-DD."),
    end: str = typer.Option(..., help="Last business date, YYYY-MM-DD."),
    accounts: int = typer.Option(200, help="Number of overdraft accounts."),
    seed: int = typer.Option(42, help="Random seed: the same seed writes the same extracts."),
) -> None:
    """Write core-banking extracts that follow the extract contract."""
    from odwh import simulate as sim

    sim.simulate(out, date.fromisoformat(start), date.fromisoformat(end), accounts=accounts, seed=seed)


@app.command()
def run(
    landing: str = typer.Option(
        ..., help="Landing folder or URL (file://, sftp://, s3://) of business-date folders."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Airflow's own log lines."),
) -> None:
    """Run the Airflow DAGs in-process over every complete, not yet loaded business date, in date order."""
    from odwh import runlock, runner

    try:
        summary = runner.run(landing, verbose=verbose)
    except runlock.WarehouseBusy as exc:
        typer.echo(f"odwh run: {exc}", err=True)
        raise typer.Exit(runlock.EXIT_BUSY) from exc
    _report(summary, exit_on_failure=False)
    code = 0 if summary.ok else 1
    if summary.dag_states:
        _exit_without_teardown(code)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    accounts: int = typer.Option(300, help="Overdraft accounts to simulate."),
    seed: int = typer.Option(42, help="Random seed."),
) -> None:
    """Simulate the last 12 full months, run the DAGs over them and say where everything is."""
    from odwh import publication, runner, warehouse

    summary = runner.demo(accounts=accounts, seed=seed)
    _report(summary, exit_on_failure=False)
    home = warehouse.project_dir()
    typer.echo(
        f"""
Where to look:
  warehouse      {warehouse.url()}   (psql it; schemas raw, staging, intermediate, marts, meta)
  load records   table meta.loads (one row per delivery loaded)
  extracts       {home / "landing"}   (one folder per business date, _manifest.json last)
  archive        {warehouse.odwh_home() / "archive"}
  Airflow        {home / ".airflow"}   (metadata DB and task logs)
  reports        {publication.reports_dir()}   (<YYYY-MM>/: review-lists/, board-pack.pdf and .html,
                 dashboard.html, data-quality/index.html, manifest.json; daily/<date>/agent-alerts/)"""
    )
    if not summary.ok:
        raise typer.Exit(1)


@app.command("expectations")
def expectations_export() -> None:
    """Re-export the Great Expectations suites (contract and month-end gate) under expectations/suites/."""
    from odwh import suites

    written = suites.export_all()
    typer.echo(f"{len(written)} suite file(s) written under expectations/suites/")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def dbt(ctx: typer.Context) -> None:
    """Run dbt against the warehouse with odwh's project and profile, e.g. `odwh dbt build --full-refresh`."""
    from odwh import transform

    try:
        transform.run_dbt(list(ctx.args), _migrated_warehouse())
    except transform.TransformError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc


@app.command()
def bench(
    accounts: list[int] = typer.Option(
        None, help="Overdraft accounts per size (repeat the option); default 10,000 20,000 50,000 100,000."
    ),
    days: int = typer.Option(61, help="Business days to simulate and load at each size."),
    year: bool = typer.Option(False, "--year", help="The backfill target: 100,000 accounts x 365 days."),
    workdir: Path = typer.Option(Path("bench"), help="Scratch folder for the simulated extracts."),
    keep_landing: bool = typer.Option(
        True,
        "--keep-landing/--drop-loaded-landing",
        help="Delete the landing's dates once loaded (their archive copies stay): the year at 100,000 accounts"
        " needs the disk.",
    ),
) -> None:
    """Time every stage at several sizes beside the floor (COPY of every CSV + one window pass)."""
    import os

    from odwh import bench as benchmark

    sizes = (100_000,) if year else tuple(accounts or benchmark.DEFAULT_SIZES)
    results = benchmark.run(
        sizes=sizes, days=365 if year else days, workdir=workdir.resolve(), keep_landing=keep_landing
    )
    typer.echo(benchmark.table(results, os.cpu_count()))


def _exit_without_teardown(code: int) -> NoReturn:
    """End the process once its work is done and reported, without the interpreter's teardown: after a DAG run
    it frees what Airflow, dbt and Great Expectations loaded, about 3 s of a day's run (decision 0047). The
    exit handlers (logging's flush among them) still run first."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report(summary: RunSummary, *, exit_on_failure: bool = True) -> None:
    outcomes = summary.ingest.outcomes
    loaded = sum(o.status == "loaded" for o in outcomes)
    published = sum(bool(m["published"]) for m in summary.months)
    typer.echo(
        f"odwh run: {loaded} of {len(outcomes)} pending date(s) loaded; "
        f"{published} of {len(summary.months)} month(s) published; "
        + (", ".join(f"{dag} {state}" for dag, state in summary.dag_states.items()) or "no DAG run needed")
        + f" ({summary.seconds:.0f} s)"
    )
    if exit_on_failure and not summary.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
