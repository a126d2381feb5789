"""Schema commands: ``init``, ``migrate`` and ``status``."""

from __future__ import annotations

import click
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from ..config import DatabaseConfig
from ..exceptions import ConnectionError
from ..manager import DatabaseManager
from .app import CliState, cli
from .console import confirm_destructive
from .queries import TABLE_NAMES, existing_tables, row_counts

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
    manager = _connect_creating_database(config)
    try:
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


def _connect_creating_database(config: DatabaseConfig) -> DatabaseManager:
    """An initialized manager; on a server, the database is created first if it is missing."""
    manager = DatabaseManager(config)
    try:
        manager.initialize()
        return manager
    except ConnectionError:
        if config.is_sqlite or not _create_server_database(config):
            raise
    manager.initialize()
    return manager


def _create_server_database(config: DatabaseConfig) -> bool:
    """CREATE DATABASE on the server (UTF-8); False if that is not possible either."""
    name = config.url.database
    if not name:
        return False
    if config.is_postgresql:
        admin_url = config.url.set(database="postgres")
        quoted = '"' + name.replace('"', '""') + '"'
        statement = f"CREATE DATABASE {quoted} ENCODING 'UTF8'"
    else:
        admin_url = config.url.set(database="information_schema")  # readable by every user
        quoted = "`" + name.replace("`", "``") + "`"
        statement = (
            f"CREATE DATABASE IF NOT EXISTS {quoted} "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if config.is_postgresql:
                exists = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if exists:
                    return False
            connection.execute(text(statement))
        return True
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@cli.command()
@click.option("--revision", "-r", default="head", show_default=True, help="Target revision.")
@click.option("--dry-run", is_flag=True, help="Print the SQL instead of running it.")
@click.pass_obj
def migrate(state: CliState, revision: str, dry_run: bool) -> None:
    """Apply pending schema migrations (each revision in its own transaction).

    \b
    Example:
      cardlink-db migrate
      cardlink-db migrate --revision ae1234
      cardlink-db migrate --dry-run
    """
    from ..migrate import get_current_revision, get_pending_revisions, run_migrations  # Alembic

    with state.manager() as manager:
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
@click.option("--verbose", "-v", is_flag=True, help="Also list each table's columns and indexes.")
@click.pass_obj
def status(state: CliState, verbose: bool) -> None:
    """Show the backend, the schema revision, pending migrations and row counts.

    \b
    Example:
      cardlink-db status
      cardlink-db status --verbose
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
        with manager.engine.connect() as connection:
            counts = row_counts(connection)
            details = _table_details(connection) if verbose else {}
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
        lines.extend(details.get(name, []))
    click.echo("\n".join(lines))
    if unversioned:
        head = get_head_revision()
        click.echo(
            "\nWarning: the tables exist but no migration version is recorded "
            f"(created before migrations); {FIX_UNVERSIONED.format(head=head)}"
        )
    elif any(count is None for count in counts.values()):
        click.echo("\nSome tables are missing: run `cardlink-db migrate` (or `cardlink-db init`)")
    elif pending:
        click.echo(f"\n{len(pending)} migration(s) pending: run `cardlink-db migrate`")


def _table_details(connection: Connection) -> dict[str, list[str]]:
    """Indented column and index lines per existing table, for ``status --verbose``."""
    inspector = inspect(connection)
    dialect = connection.dialect
    details: dict[str, list[str]] = {}
    for name in sorted(existing_tables(connection), key=TABLE_NAMES.index):
        primary = set(inspector.get_pk_constraint(name).get("constrained_columns") or [])
        lines = ["    Columns:"]
        for column in inspector.get_columns(name):
            flags = []
            if column["name"] in primary:
                flags.append("PRIMARY KEY")
            if not column.get("nullable", True):
                flags.append("NOT NULL")
            type_name = column["type"].compile(dialect=dialect)
            lines.append(f"      {column['name']}: {' '.join([type_name, *flags])}")
        lines.append("    Indexes:")
        for index in inspector.get_indexes(name):
            unique = " (unique)" if index.get("unique") else ""
            columns = ", ".join(str(column) for column in index["column_names"])
            lines.append(f"      {index['name']}: {columns}{unique}")
        details[name] = lines
    return details
