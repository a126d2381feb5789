"""Schema commands: ``init``, ``migrate``, ``downgrade``, ``stamp``, ``current``, ``history``,
``status`` and ``alembic-ini``."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import click

from ..maintenance import TABLE_NAMES, describe_tables, table_counts
from ..manager import DatabaseManager
from .app import CliState, cli, fail
from .console import confirm_destructive

FIX_UNVERSIONED = "run `cardlink-db init` to record the current schema as revision {head}"


@cli.command()
@click.option("--force", is_flag=True, help="Drop every CardLink table first, then recreate them.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before dropping tables (with --force).")
@click.pass_obj
def init(state: CliState, force: bool, yes: bool) -> None:
    """Create the database and its tables, and record the schema revision.

    Safe to re-run: existing tables and rows are kept. --force drops and
    recreates every table (all rows are lost) after a confirmation.

    \b
    Example:
      cardlink-db init
      cardlink-db init --force --yes
    """
    from ..migrate import get_current_revision, get_pending_revisions  # Alembic: only when used

    config = state.config()
    manager = DatabaseManager(config)
    try:
        manager.create_database()
        manager.initialize()
        if force:
            confirm_destructive(
                f"Drop every CardLink table in {config.database_url} and all its rows?", yes=yes
            )
            manager.recreate_tables()  # one transaction where the backend allows
        else:
            manager.create_tables()
        revision = get_current_revision(manager=manager)
        pending = get_pending_revisions(manager=manager)
    finally:
        manager.close()
    action = "Recreated" if force else "Initialized"
    click.echo(f"{action} database {config.database_url} (revision {revision})")
    if pending:
        click.echo(f"{len(pending)} migration(s) pending: run `cardlink-db migrate`")


@cli.command()
@click.option("--revision", "-r", default="head", show_default=True, help="Target revision.")
@click.option("--dry-run", is_flag=True, help="Print the SQL instead of running it.")
@click.pass_obj
def migrate(state: CliState, revision: str, dry_run: bool) -> None:
    """Apply pending schema migrations (each revision in its own transaction).

    Only upgrades; `cardlink-db downgrade` goes back. A missing SQLite file is
    created (except with --dry-run).

    \b
    Example:
      cardlink-db migrate
      cardlink-db migrate --revision ae1234
      cardlink-db migrate --dry-run
    """
    from ..migrate import get_current_revision, get_pending_revisions, run_migrations  # Alembic

    if revision == "base" or revision.startswith("-"):
        fail(f"migrate only upgrades; to go back run `cardlink-db downgrade --revision {revision}`")
    with state.manager(create=not dry_run) as manager:
        if dry_run:
            sql = run_migrations(revision, sql=True, manager=manager) or ""
            if sql.strip():
                click.echo(sql, nl=False)
            else:
                current = get_current_revision(manager=manager)
                click.echo(f"-- nothing to migrate: the database is at revision {current}")
            return
        pending = get_pending_revisions(manager=manager)
        before = get_current_revision(manager=manager)
        after = run_migrations(revision, manager=manager)
    if after == before:
        click.echo(f"Nothing to migrate: the database is at revision {after}")
    else:
        applied = len(pending) if revision in ("head", "heads") else None
        count = f" ({applied} revision(s) applied)" if applied else ""
        click.echo(f"Migrated {before or 'base'} -> {after}{count}")


@cli.command()
@click.option(
    "--revision",
    "-r",
    required=True,
    help="Target revision: an id, -N for N steps back, or base (drops every table).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def downgrade(state: CliState, revision: str, yes: bool) -> None:
    """Undo migrations down to a revision; a downgrade may drop columns or tables and their data.

    \b
    Example:
      cardlink-db downgrade --revision -1
      cardlink-db downgrade --revision base --yes
    """
    from ..migrate import downgrade as run_downgrade  # Alembic: only when used
    from ..migrate import get_current_revision  # Alembic, as above

    with state.manager(tables=True) as manager:
        before = get_current_revision(manager=manager)
        if before is None:
            fail(
                "the database has no migration version to downgrade from "
                "(hint: `cardlink-db current` shows it)"
            )
        confirm_destructive(
            f"Downgrade {manager.config.database_url} from {before} to {revision}? "
            "Data in dropped columns and tables is lost",
            yes=yes,
        )
        after = run_downgrade(revision=revision, manager=manager)
    click.echo(f"Downgraded {before} -> {after or 'base'}")


@cli.command()
@click.argument("revision", default="head")
@click.pass_obj
def stamp(state: CliState, revision: str) -> None:
    """Record REVISION as current without running migrations (like `alembic stamp`).

    For a database whose tables already match that revision.

    \b
    Example:
      cardlink-db stamp head
    """
    from ..migrate import stamp as run_stamp  # Alembic: only when used

    # Stamping a database without the tables would claim a schema it does not have.
    with state.manager(tables=revision != "base") as manager:
        now = run_stamp(revision, manager=manager)
    click.echo(f"Stamped {manager.config.database_url} at revision {now or 'base'}")


@cli.command()
@click.pass_obj
def current(state: CliState) -> None:
    """Print the database's revision (like `alembic current`).

    \b
    Example:
      cardlink-db current
    """
    from ..migrate import get_current_revision, get_head_revision  # Alembic: only when used

    with state.manager() as manager:
        revision = get_current_revision(manager=manager)
    head = get_head_revision()
    mark = " (head)" if revision is not None and revision == head else ""
    click.echo(f"{revision or 'none'}{mark}")


@cli.command()
def history() -> None:
    """List the shipped revisions, newest first (like `alembic history`); needs no database.

    \b
    Example:
      cardlink-db history
    """
    from ..migrate import get_history  # Alembic: only when used

    for entry in get_history():
        mark = " (head)" if entry.is_head else ""
        click.echo(f"{entry.down_revision or '<base>'} -> {entry.revision}{mark}, {entry.message}")


@cli.command("alembic-ini")
def alembic_ini() -> None:
    """Print the path of the Alembic config shipped in the package, for `alembic -c`.

    With it, Alembic's own commands work from any folder on an installed package.

    \b
    Example:
      alembic -c "$(cardlink-db alembic-ini)" history
      export ALEMBIC_CONFIG="$(cardlink-db alembic-ini)"; alembic current
    """
    click.echo(str(resources.files("cardlink.database") / "alembic.ini"))


@cli.command()
@click.option("--verbose", "-v", is_flag=True, help="Also list each table's columns and indexes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_obj
def status(state: CliState, verbose: bool, as_json: bool) -> None:
    """Show the backend, the schema revision, pending migrations and row counts.

    \b
    Example:
      cardlink-db status
      cardlink-db status --verbose
      cardlink-db status --json
    """
    from ..migrate import (  # Alembic: only when used
        get_current_revision,
        get_head_revision,
        get_pending_revisions,
        is_unversioned,
    )

    with state.manager() as manager:
        config = manager.config
        current = get_current_revision(manager=manager)
        pending = get_pending_revisions(manager=manager)
        unversioned = is_unversioned(manager)
        counts = table_counts(manager)
        details = describe_tables(manager) if verbose or as_json else {}
    head = get_head_revision()
    missing = [name for name, count in counts.items() if count is None]
    if unversioned:
        advice = f"the tables exist but no migration version is recorded; {FIX_UNVERSIONED}"
        advice = advice.format(head=head)
    elif missing:
        advice = "some tables are missing: run `cardlink-db init` (or `cardlink-db migrate`)"
    elif pending:
        advice = f"{len(pending)} migration(s) pending: run `cardlink-db migrate`"
    else:
        advice = None
    if as_json:
        report: dict[str, Any] = {
            "backend": config.backend,
            "url": config.database_url,
            "current_revision": current,
            "head_revision": head,
            "pending_migrations": pending,
            "tables": counts,
            "missing_tables": missing,
            "unversioned": unversioned,
            "advice": advice,
        }
        if verbose:
            report["schema"] = details
        click.echo(json.dumps(report, indent=2))
        return
    lines = [
        "Database Status",
        "===============",
        f"Backend: {config.backend_label}",
        f"URL: {config.database_url}",
        f"Current Revision: {current or 'none'}",
        f"Pending Migrations: {len(pending)}",
        "",
        "Tables:",
    ]
    for name in TABLE_NAMES:
        count = counts[name]
        if count is None:
            lines.append(f"  {name}: missing")
            continue
        lines.append(f"  {name}: {count:,} {'row' if count == 1 else 'rows'}")
        if name in details:
            lines.extend(_detail_lines(details[name]))
    click.echo("\n".join(lines))
    if unversioned:
        click.echo(
            "\nWarning: the tables exist but no migration version is recorded "
            f"(created before migrations); {FIX_UNVERSIONED.format(head=head)}"
        )
    elif advice:
        click.echo(f"\n{advice[0].upper()}{advice[1:]}")


def _detail_lines(table: dict[str, Any]) -> list[str]:
    """Indented column and index lines of one table, for ``status --verbose``."""
    lines = ["    Columns:"]
    for column in table["columns"]:
        flags = " ".join([column["type"], *column["flags"]])
        lines.append(f"      {column['name']}: {flags}")
    lines.append("    Indexes:")
    for index in table["indexes"]:
        unique = " (unique)" if index["unique"] else ""
        lines.append(f"      {index['name']}: {', '.join(index['columns'])}{unique}")
    return lines
