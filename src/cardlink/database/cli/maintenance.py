"""Housekeeping commands: ``purge`` (age-based deletes) and ``stats``, over the library's calls."""

from __future__ import annotations

import json
from datetime import timedelta

import click

from ..maintenance import PURGEABLE
from .app import CliState, cli, fail
from .console import confirm_destructive, working


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
@click.option("--dry-run", is_flag=True, help="Print how many rows would go; delete nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(state: CliState, days: int, tables: str, dry_run: bool, yes: bool) -> None:
    """Delete old logs, sessions or test results, in one transaction.

    A log's age is its timestamp; a session's or test result's age is its
    started_at (created_at if it never started). Purging sessions also deletes
    their logs. Shows what will go and asks first, unless --yes; --dry-run only
    shows it.

    \b
    Example:
      cardlink-db purge --older-than 90 --tables logs --dry-run
      cardlink-db purge --older-than 90 --tables logs
      cardlink-db purge --older-than 30 --tables sessions,logs --yes
    """
    chosen = _purge_tables(tables)
    age = timedelta(days=days)
    with state.manager(tables=True) as manager:
        plan = manager.purge(older_than=age, tables=chosen, dry_run=True)
        when = plan.cutoff.strftime("%Y-%m-%d %H:%M UTC")
        if not plan.total:
            click.echo(f"Nothing to purge: no rows older than {days} days (before {when})")
            return
        verb = "would be deleted" if dry_run else "to delete"
        click.echo(
            f"Rows older than {days} days (before {when}) in {manager.config.database_url}, {verb}:"
        )
        for name, count in plan.counts.items():
            click.echo(f"  {name}: {count:,} {'row' if count == 1 else 'rows'}")
        if dry_run:
            click.echo("Dry run: nothing was deleted")
            return
        confirm_destructive("Delete these rows?", yes=yes)
        with working("Purging..."):
            deleted = manager.purge(older_than=plan.cutoff, tables=chosen)
    summary = ", ".join(f"{count:,} {name}" for name, count in deleted.counts.items())
    click.echo(f"Deleted {summary}")


def _purge_tables(value: str) -> list[str]:
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in PURGEABLE]
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
    with state.manager(tables=True) as manager:
        report = manager.stats()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    from rich.console import Console  # only here: importing rich slows every command's start
    from rich.table import Table  # rich, as above

    table = Table(title="Database Statistics")
    table.add_column("Table")
    table.add_column("Rows", justify="right")
    for name, count in report.tables.items():
        table.add_row(name, f"{count:,}")
    console = Console()
    console.print(table)
    console.print(f"Database size: {report.size_mb} MB")
    console.print(f"Sessions in the last 24h: {report.sessions_last_24h:,}")
    console.print(f"Tests in the last 24h: {report.tests_last_24h:,}")
