"""``trace import`` and ``trace export``: APDU traces between files and a session."""

from __future__ import annotations

import io
import os
from pathlib import Path

import click

from ..exceptions import NotFoundError
from ..repositories.log_traces import TRACE_FORMATS
from ..unit_of_work import UnitOfWork
from .app import CliState, cli, fail


@cli.group()
def trace() -> None:
    """Import an APDU trace into a session, or export a session for Wireshark.

    \b
    Example:
      cardlink-db trace import select.apdu --session 3f2b...
      cardlink-db trace export 3f2b... --output session.pcap
    """


@trace.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--session", "session_id", metavar="ID", help="The session to add the APDUs to.")
@click.option("--device", metavar="D", help="With --card: create a new session for this device.")
@click.option("--card", metavar="ICCID", help="With --device: the new session's card.")
@click.option(
    "--format",
    "trace_format",
    type=click.Choice(TRACE_FORMATS),
    default="auto",
    show_default=True,
    help="apdu4j dump, or pcap (pcap or pcapng); auto tells them apart by content.",
)
@click.pass_obj
def trace_import(
    state: CliState,
    file: Path,
    session_id: str | None,
    device: str | None,
    card: str | None,
    trace_format: str,
) -> None:
    """Store an apdu4j dump or a GSMTAP SIM pcap/pcapng in a session, in one transaction.

    Give an existing session with --session, or --device and --card to create a
    new PENDING session (type "trace-import") for them; its id is printed. A
    malformed file or an unknown session writes nothing.

    \b
    Example:
      cardlink-db trace import capture.pcapng --session 3f2b8c1e-...
      cardlink-db trace import select.apdu --device RF8M0 --card 8901123456789012340
    """
    if session_id is not None and (device is not None or card is not None):
        fail("give either --session, or --device and --card, not both")
    if session_id is None and (device is None or card is None):
        fail("give --session ID, or --device and --card to create a session")
    created = session_id is None
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        if session_id is None:
            if uow.devices.find_by_id(device) is None:
                fail(f"device {device!r} not found")
            if uow.cards.find_by_id(card) is None:
                fail(f"card {card!r} not found")
            new = uow.sessions.create_session(device, card, session_type="trace-import")
            uow.flush()
            session_id = str(new.id)
        with file.open("rb") as stream:
            try:
                result = uow.logs.import_trace(stream, format=trace_format, session_id=session_id)
            except NotFoundError as error:
                fail(str(error))
        uow.commit()
    if created:
        click.echo(f"Created session {result.session_id} (device {device}, card {card})")
    click.echo(
        f"Imported {result.commands:,} commands and {result.responses:,} responses "
        f"({result.pairs:,} pairs) from {file.name} ({result.format}) "
        f"into session {result.session_id}"
    )


@trace.command("export")
@click.argument("session_id", metavar="SESSION_ID")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The pcap file to write (replaced if it exists).",
)
@click.pass_obj
def trace_export(state: CliState, session_id: str, output: Path) -> None:
    """Write a session as GSMTAP SIM pcap: one packet per command/response pair.

    tshark and Wireshark open it with their GSM SIM dissector (filter `gsm_sim`).
    An APDU without its other half has no packet.

    \b
    Example:
      cardlink-db trace export 3f2b8c1e-... --output session.pcap
      tshark -r session.pcap -Y gsm_sim
    """
    buffer = io.BytesIO()  # nothing touches the file until the session is known
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        try:
            packets = uow.logs.export_trace(session_id, buffer)
        except NotFoundError as error:
            fail(str(error))
    partial = output.with_name(f".{output.name}.partial")
    partial.write_bytes(buffer.getvalue())
    os.replace(partial, output)
    click.echo(f"Wrote {packets:,} GSMTAP SIM packets to {output}")
