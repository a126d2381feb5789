"""``sessions``: recent OTA sessions with their APDU and error counts."""

from __future__ import annotations

import json
import sys

import click

from ..models import SessionStatus
from ..repositories.session import SessionSummary
from ..unit_of_work import UnitOfWork
from .app import CliState, cli

#: Width for the table when stdout is not a terminal (a pipe, a file): wide enough for ids.
PIPE_WIDTH = 150


@cli.command()
@click.option(
    "--status",
    type=click.Choice([status.value for status in SessionStatus], case_sensitive=False),
    help="Only sessions in this state.",
)
@click.option(
    "--since",
    "since_days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="Only sessions started (else created) in the last DAYS days.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N."
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.pass_obj
def sessions(
    state: CliState,
    status: str | None,
    since_days: float | None,
    limit: int,
    output_format: str,
) -> None:
    """List recent sessions, newest first: id, device, card, status, start, APDUs, errors.

    Errors and warnings count responses by status-word class (6Axx is an error,
    62xx/63xx a warning); the counts are computed by the database.

    \b
    Example:
      cardlink-db sessions --status failed --since 7
      cardlink-db sessions --limit 5 --format json
    """
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        found = uow.sessions.summaries(status=status, since_days=since_days, limit=limit)
    if output_format == "json":
        click.echo(json.dumps([_as_json(summary) for summary in found], indent=2))
        return
    _print_table(found)


def _as_json(summary: SessionSummary) -> dict[str, object]:
    return {
        "id": summary.id,
        "device_id": summary.device_id,
        "card_iccid": summary.card_iccid,
        "status": summary.status.value,
        "started_at": summary.started_at.isoformat(),
        "duration_ms": summary.duration_ms,
        "apdu_count": summary.apdu_count,
        "errors": summary.errors,
        "warnings": summary.warnings,
    }


def _print_table(found: list[SessionSummary]) -> None:
    from rich.console import Console  # only here: importing rich slows every command's start
    from rich.table import Table  # rich, as above

    console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
    if not found:
        console.print("No sessions found")
        return
    table = Table()
    table.add_column("ID", no_wrap=True)
    for name in ("Device", "Card", "Status", "Started (UTC)"):
        table.add_column(name, no_wrap=True)
    for name in ("Duration", "APDUs", "Errors", "Warnings"):
        table.add_column(name, justify="right", no_wrap=True)
    for summary in found:
        table.add_row(
            summary.id,
            summary.device_id or "-",
            summary.card_iccid or "-",
            summary.status.value,
            summary.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            _duration(summary.duration_ms),
            f"{summary.apdu_count:,}",
            f"[red]{summary.errors:,}[/red]" if summary.errors else "0",
            f"[yellow]{summary.warnings:,}[/yellow]" if summary.warnings else "0",
        )
    console.print(table)


def _duration(milliseconds: int | None) -> str:
    if milliseconds is None:
        return "-"
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    return f"{milliseconds / 1000:.1f} s"
