"""``logs``: one session's APDU trace, decoded, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys

import click

from ..exceptions import NotFoundError
from ..repositories.log_listing import TraceLine
from ..unit_of_work import UnitOfWork
from .app import CliState, cli, fail

#: Width for the table when stdout is not a terminal (a pipe, a file).
PIPE_WIDTH = 160
#: Hex digits of data shown in the table before it is cut with an ellipsis.
DATA_DIGITS = 24
#: Row colours by the status-word class of the exchange.
STYLES = {"error": "red", "warning": "yellow"}


@cli.command("logs")
@click.argument("session_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="A table for people; JSON or CSV (every field, data in full) for tools.",
)
@click.option("--errors", is_flag=True, help="Only exchanges whose response is an error.")
@click.option(
    "--command",
    metavar="NAME",
    help="Only exchanges of this command: a name (SELECT, 'GET STATUS') or an INS byte (A4).",
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N lines.")
@click.option(
    "--pager/--no-pager",
    default=True,
    show_default=True,
    help="Page a table longer than the terminal (only when stdout is a terminal).",
)
@click.pass_obj
def logs(
    state: CliState,
    session_id: str,
    output_format: str,
    errors: bool,
    command: str | None,
    limit: int | None,
    pager: bool,
) -> None:
    """Print a session's APDUs in wire order, decoded from the stored columns.

    Each line: number, ms since the first APDU, channel, direction, command
    name, P1P2, data, status word with its meaning, and latency. A response
    shows the name of the command it answers. Errors are red, warnings yellow.

    \b
    Example:
      cardlink-db logs 0f0e0d0c-0b0a-4908-8706-050403020100
      cardlink-db logs 0f0e0d0c-0b0a-4908-8706-050403020100 --errors
      cardlink-db logs 0f0e0d0c-0b0a-4908-8706-050403020100 --command SELECT --format json
    """
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        try:
            lines = uow.logs.trace_lines(session_id, errors=errors, command=command, limit=limit)
        except NotFoundError as error:
            fail(f"{error} (hint: `cardlink-db sessions` lists the sessions)")
    if output_format == "json":
        document = {"session_id": session_id, "apdus": [line.as_dict() for line in lines]}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output_format == "csv":
        click.echo(_csv(lines), nl=False)
    else:
        _print_table(session_id, lines, pager=pager)


def _csv(lines: list[TraceLine]) -> str:
    buffer = io.StringIO()
    fields = list(TraceLine.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(line.as_dict() for line in lines)
    return buffer.getvalue()


def _print_table(session_id: str, lines: list[TraceLine], *, pager: bool) -> None:
    from rich.console import Console  # only here: importing rich slows every command's start
    from rich.table import Table  # rich, as above
    from rich.text import Text  # rich, as above

    terminal = sys.stdout.isatty()
    if not lines:
        click.echo(f"No APDUs in session {session_id} match")
        return
    table = Table(title=Text(f"Session {session_id}"))
    for name in ("#", "+ms", "Ch"):
        table.add_column(name, justify="right", no_wrap=True)
    for name in ("Dir", "Command", "P1P2", "Data", "SW"):
        table.add_column(name, no_wrap=True)
    table.add_column("Meaning")
    table.add_column("Latency", justify="right", no_wrap=True)
    for line in lines:
        table.add_row(
            str(line.number),
            f"{line.offset_ms:,.1f}",
            "" if line.channel is None else str(line.channel),
            ">>" if line.direction.value == "command" else "<<",
            Text(line.command_name or "?"),
            line.p1p2 or "",
            _shortened(line.data),
            line.status_word or "",
            Text(line.status_message or ""),
            "" if line.latency_ms is None else f"{line.latency_ms:,.1f} ms",
            style=STYLES.get(line.status_class or ""),
        )
    width = None if terminal else PIPE_WIDTH
    buffer = io.StringIO()
    # Rendered to text first: the pager gets the same colours the terminal would.
    Console(
        file=buffer,
        width=width or shutil.get_terminal_size().columns,
        force_terminal=terminal,
        color_system="standard" if terminal else None,
    ).print(table)
    text = buffer.getvalue()
    if terminal and pager and text.count("\n") > shutil.get_terminal_size().lines:
        click.echo_via_pager(text, color=True)
    else:
        click.echo(text, nl=False, color=terminal)


def _shortened(data: str | None) -> str:
    if not data:
        return ""
    return data if len(data) <= DATA_DIGITS else data[: DATA_DIGITS - 1] + "…"
