"""``timeline``: one SCP81 session in time order, with the gaps between its moments."""

from __future__ import annotations

import json

import click

from ..timeline import TimelineEntry
from ..unit_of_work import UnitOfWork
from .app import CliState, cli


@cli.command("timeline")
@click.argument("session_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A table for people, or JSON for tools.",
)
@click.pass_obj
def timeline(state: CliState, session_id: str, output_format: str) -> None:
    """Show a session's state changes, HTTP exchanges and APDUs in time order.

    Each POST and response shows its status and X-Admin headers, the APDUs
    between them are decoded, and the gap since the previous line is in ms.

    \b
    Example:
      cardlink-db timeline 0f0e0d0c-0b0a-4908-8706-050403020100 --format json
    """
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        entries = uow.sessions.timeline(session_id)
    if output_format == "json":
        document = {"session_id": session_id, "entries": [entry.to_dict() for entry in entries]}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    _draw(session_id, entries)


def _draw(session_id: str, entries: list[TimelineEntry]) -> None:
    from rich.console import Console  # only here: importing rich slows every command's start
    from rich.table import Table  # rich, as above

    table = Table(title=f"Session {session_id}")
    table.add_column("Time (UTC)", no_wrap=True)
    table.add_column("+ms", justify="right", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("What")
    for entry in entries:
        gap = "" if entry.gap_ms is None else f"{entry.gap_ms:,.1f}"
        moment = entry.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(moment, gap, entry.kind, entry.summary)
    Console().print(table)
