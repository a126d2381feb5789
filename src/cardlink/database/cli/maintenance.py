"""Housekeeping commands: ``purge`` (age-based deletes) and ``stats``."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from ..types import utcnow
from .app import CliState, cli, fail
from .console import confirm_destructive, working
from .queries import (
    PURGEABLE,
    TABLE_NAMES,
    database_size_bytes,
    purge_plan,
    recent_activity,
    row_counts,
)
from .queries import purge as purge_rows

BYTES_PER_MB = 1024 * 1024


@cli.command()
@click.option(
    "--older-than",
    "days",
    required=True,
    type=click.IntRange(min=0),
    metavar="DAYS",
    help="Delete rows older than this many days.",
)
@click.option(
    "--tables",
    "-t",
    required=True,
    metavar="A,B",
    help=f"Comma-separated, from: {', '.join(PURGEABLE)}. Purging sessions deletes their logs.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(state: CliState, days: int, tables: str, yes: bool) -> None:
    """Delete old logs, sessions or test results, in one transaction.

    A log's age is its timestamp; a session's or test result's age is its
    started_at (created_at if it never started). Purging sessions also deletes
    their logs. Shows what will go and asks first, unless --yes.

    \b
    Example:
      cardlink-db purge --older-than 90 --tables logs
      cardlink-db purge --older-than 30 --tables sessions,logs --yes
    """
    chosen = _purge_tables(tables)
    cutoff = utcnow() - timedelta(days=days)
    with state.manager() as manager:
        with manager.engine.connect() as connection:
            plan = purge_plan(connection, chosen, cutoff)
        when = cutoff.strftime("%Y-%m-%d %H:%M UTC")
        if not any(plan.values()):
            click.echo(f"Nothing to purge: no rows older than {days} days (before {when})")
            return
        click.echo(f"Rows older than {days} days (before {when}) in {manager.config.database_url}:")
        for name, count in plan.items():
            click.echo(f"  {name}: {count:,} {'row' if count == 1 else 'rows'}")
        confirm_destructive("Delete these rows?", yes=yes)
        with working("Purging..."), manager.engine.begin() as connection:
            deleted = purge_rows(connection, chosen, cutoff)
    summary = ", ".join(f"{count:,} {name}" for name, count in deleted.items())
    click.echo(f"Deleted {summary}")


def _purge_tables(value: str) -> set[str]:
    names = {part.strip().lower() for part in value.split(",") if part.strip()}
    unknown = sorted(names - set(PURGEABLE))
    if unknown or not names:
        fail(
            f"cannot purge table {', '.join(unknown) or repr(value)}; "
            f"choose from {', '.join(PURGEABLE)}",
            exit_code=2,
        )
    return names


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (tables, size, recent activity).")
@click.pass_obj
def stats(state: CliState, as_json: bool) -> None:
    """Show row counts, database size and the last 24 hours' activity.

    \b
    Example:
      cardlink-db stats
      cardlink-db stats --json | python -m json.tool
    """
    with state.manager() as manager, manager.engine.connect() as connection:
        counts = row_counts(connection)
        missing = [name for name, count in counts.items() if count is None]
        if missing:
            fail(
                f"table(s) missing: {', '.join(missing)} "
                "(hint: run `cardlink-db init` or `cardlink-db migrate`)"
            )
        size = database_size_bytes(manager, connection)
        activity = recent_activity(connection, since=utcnow() - timedelta(hours=24))
    tables = {name: counts[name] or 0 for name in TABLE_NAMES}
    report = {
        "tables": tables,
        "database_size_mb": round(size / BYTES_PER_MB, 2),
        "recent_activity": activity,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console  # only here: importing rich slows every command's start
    from rich.table import Table  # rich, as above

    table = Table(title="Database Statistics")
    table.add_column("Table")
    table.add_column("Rows", justify="right")
    for name, count in tables.items():
        table.add_row(name, f"{count:,}")
    console = Console()
    console.print(table)
    console.print(f"Database size: {report['database_size_mb']} MB")
    console.print(f"Sessions in the last 24h: {activity['sessions_last_24h']:,}")
    console.print(f"Tests in the last 24h: {activity['tests_last_24h']:,}")
