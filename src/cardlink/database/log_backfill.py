"""Decoded columns and command links for log rows stored without them, in bounded batches.

The revision that adds ``cla`` ... ``command_name`` and ``command_id`` runs this over
every stored log, and an import of a document written before those columns existed
runs it over the sessions it brought in. It reads one session at a time in wire
order (timestamp, id), a page of rows at a time (keyset pagination, never OFFSET),
decodes each command with ``apdu.decode_apdu``, pairs each response with
``pairing.ApduPairer`` (carrying its state from page to page of the session) and
writes the page back. Memory holds one page and one session's open commands, so it
stays flat at millions of rows. Only the new columns are written; every other value
stays as stored.

The table and its decoded columns are the caller's: the revision passes its own plain
definition and column list (what the schema had then), an import the model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import Table, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection

from .apdu import decode_apdu
from .pairing import ApduPairer, WireApdu

#: Rows read and written per page; sessions listed per page.
PAGE_ROWS = 2000
PAGE_SESSIONS = 500


def backfill_logs(
    connection: Connection,
    logs: Table,
    decoded_columns: Mapping[str, str],
    *,
    session_ids: Iterable[Any] | None = None,
    page_rows: int = PAGE_ROWS,
) -> int:
    """Fill the decoded columns and ``command_id`` of the sessions' logs (all sessions when
    ``session_ids`` is None); returns the number of rows read.

    ``decoded_columns`` maps each decoded column to the ``DecodedApdu`` field it holds.
    """
    sessions = _all_sessions(connection, logs) if session_ids is None else iter(session_ids)
    done = 0
    for session in sessions:
        done += _backfill_session(connection, logs, decoded_columns, session, page_rows)
    return done


def _all_sessions(connection: Connection, logs: Table) -> Iterator[Any]:
    """Every session that has logs, by keyset pages of ``PAGE_SESSIONS``."""
    last: Any = None
    while True:
        statement = select(logs.c.session_id).distinct().order_by(logs.c.session_id)
        if last is not None:
            statement = statement.where(logs.c.session_id > last)
        page = connection.execute(statement.limit(PAGE_SESSIONS)).scalars().all()
        yield from page
        if len(page) < PAGE_SESSIONS:
            return
        last = page[-1]


def _backfill_session(
    connection: Connection,
    logs: Table,
    decoded_columns: Mapping[str, str],
    session: Any,
    page_rows: int,
) -> int:
    """One session in wire order, page by page, with one pairer carried across pages."""
    columns = logs.c
    commands = (
        update(logs)
        .where(columns.id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in decoded_columns})
    )
    responses = (
        update(logs).where(columns.id == bindparam("b_id")).values(command_id=bindparam("b_link"))
    )
    pairer = ApduPairer()
    after: tuple[Any, Any] | None = None
    done = 0
    while True:
        statement = select(
            columns.id, columns.timestamp, columns.direction, columns.raw_data, columns.status_word
        ).where(columns.session_id == session)
        if after is not None:
            moment, key = after
            statement = statement.where(
                or_(columns.timestamp > moment, and_(columns.timestamp == moment, columns.id > key))
            )
        page = connection.execute(
            statement.order_by(columns.timestamp, columns.id).limit(page_rows)
        ).all()
        decoded: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        for key, _, direction, raw_data, status_word in page:
            if getattr(direction, "value", direction) == "command":
                apdu = decode_apdu(raw_data) if raw_data else None
                values = {
                    f"b_{name}": None if apdu is None else getattr(apdu, field)
                    for name, field in decoded_columns.items()
                }
                channel = None if apdu is None else apdu.channel
                pairer.add(WireApdu("command", raw_data or "", channel or 0, key=key))
                decoded.append({"b_id": key, **values})
            else:
                hex_text = raw_data or status_word or ""
                link = pairer.add(WireApdu("response", hex_text, key=key)).command_key
                links.append({"b_id": key, "b_link": link})
        if decoded:
            connection.execute(commands, decoded)
        if links:
            connection.execute(responses, links)
        done += len(page)
        if len(page) < page_rows:
            return done
        after = (page[-1][1], page[-1][0])
