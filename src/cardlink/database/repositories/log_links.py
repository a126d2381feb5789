"""Responses linked to the commands they answer (``command_id``) as log rows are written.

``CommandLinker`` pairs each response with the command it answers
(``pairing.ApduPairer``: newest unanswered command of the channel, T=0 chains
followed) and stores that command's id in ``command_id``.

A response may answer a command written in the same statement, so the rows need
their ids before the INSERT: SQLite takes ``MAX(id) + 1`` onwards under its write
lock, PostgreSQL draws them from the id sequence. MariaDB/MySQL cannot reserve
AUTO_INCREMENT values: it takes ``MAX(id) + 1`` onwards in a SAVEPOINT and, when
another writer got there first (a duplicate key), inserts the rows without links,
reads their ids back (this chunk's sessions' rows above that largest id) and sets
the links by one UPDATE per few hundred responses.

The pairing state is kept per session for the unit of work; a session seen for the
first time resumes from the database: its newest unanswered commands per channel.
Two writers adding to the same session at the same time may link a response to the
other writer's command, as the wire order between them is not known either.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, case, func, select, text, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from ..codec import insert_columns
from ..exceptions import is_duplicate_key
from ..models import CommDirection, CommLog
from ..pairing import (
    MAX_OPEN_PER_CHANNEL,
    ApduPairer,
    OpenCommand,
    PairingState,
    header_of,
    sw1_of,
)

_TABLE: Table = CommLog.__table__  # type: ignore[assignment]
_LOGS = _TABLE.c
_COMMAND = CommDirection.COMMAND
#: Responses linked per UPDATE on MariaDB/MySQL (two parameters each, plus the id list).
_LINKS_PER_UPDATE = 500
#: Sessions resumed per query (SQLite before 3.32 takes at most 999 parameters).
_SESSIONS_PER_QUERY = 500

Columns = dict[str, list[Any]]


class CommandLinker:
    """Links responses to their commands as rows are written, session by session."""

    def __init__(self) -> None:
        self._pairers: dict[uuid.UUID, ApduPairer] = {}

    def forget(self, sessions: Iterable[Any] | None = None) -> None:
        """Drop the pairing of these sessions (all by default): a write failed or was rolled
        back, so the next write resumes them from what the database holds."""
        if sessions is None:
            self._pairers.clear()
        for session in sessions or ():
            self._pairers.pop(session, None)

    # -- the batch path ------------------------------------------------------------------

    def write(self, connection: Connection, chunk: Columns) -> None:
        """INSERT one chunk of checked columns with ``command_id`` set on its responses."""
        count = len(chunk["session_id"])
        self.resume(connection, set(chunk["session_id"]))
        ids = _reserve_ids(connection, count)
        if ids is not None:
            chunk["command_id"] = self._pair(chunk, ids, count)
            chunk["id"] = ids
            insert_columns(connection, _TABLE, chunk)
            return
        # MariaDB/MySQL: the ids after the largest are taken unless another writer was
        # faster (a duplicate key); then the rows go in first and are linked after.
        given = chunk["command_id"]
        highest = connection.execute(select(func.coalesce(func.max(_LOGS.id), 0))).scalar_one()
        try:
            with connection.begin_nested():
                ids = list(range(highest + 1, highest + 1 + count))
                chunk["command_id"] = self._pair(chunk, ids, count)
                insert_columns(connection, _TABLE, {**chunk, "id": ids})
            return
        except sa_exc.IntegrityError as error:
            if not is_duplicate_key(error):
                raise
        sessions = set(chunk["session_id"])
        self.forget(sessions)  # the savepoint took this chunk's rows back out
        self.resume(connection, sessions)
        chunk["command_id"] = given
        self._insert_then_link(connection, chunk, count, highest)

    def _insert_then_link(
        self, connection: Connection, chunk: Columns, count: int, watermark: int
    ) -> None:
        """Insert with placeholder keys (negative), read the ids back, then set the links."""
        links = self._pair(chunk, [-1 - index for index in range(count)], count)
        chunk["command_id"] = [link if link is None or link > 0 else None for link in links]
        sessions = set(chunk["session_id"])
        insert_columns(connection, _TABLE, chunk)
        found = connection.execute(
            select(_LOGS.id, _LOGS.session_id).where(_LOGS.id > watermark).order_by(_LOGS.id)
        )
        stored = [key for key, session in found if session in sessions]
        if len(stored) != count:  # another writer in the same sessions: leave these unlinked
            for session in sessions:
                state = _without_placeholders(self._pairers[session].state)
                self._pairers[session] = ApduPairer(state)
            return
        real = {-1 - index: key for index, key in enumerate(stored)}
        for session in sessions:
            self._pairers[session] = ApduPairer(_rekeyed(self._pairers[session].state, real))
        pending = {
            stored[index]: real[link]
            for index, link in enumerate(links)
            if link is not None and link < 0
        }
        _set_links(connection, pending)

    def _pair(self, chunk: Columns, keys: list[int], count: int) -> list[Any]:
        """The ``command_id`` of every row (None on commands and unanswered responses)."""
        sessions, directions = chunk["session_id"], chunk["direction"]
        raw_data = chunk.get("raw_data") or [None] * count
        words = chunk.get("status_word") or [None] * count
        channels, given = chunk["channel"], chunk["command_id"]
        pairers = self._pairers
        links: list[Any] = []
        for index in range(count):
            link = _feed(
                pairers[sessions[index]],
                directions[index],
                raw_data[index],
                words[index],
                channels[index],
                keys[index],
            )
            links.append(given[index] if given[index] is not None else link)
        return links

    # -- one row (add_log) -------------------------------------------------------------

    def link_one(
        self, connection: Connection, row: Mapping[str, Any], key: int | None
    ) -> int | None:
        """Feed one row to its session's pairer; a response's command id (None if none).

        A command is fed after it is stored (``key`` is its id), a response before.
        """
        session = row["session_id"]
        self.resume(connection, {session})
        link = _feed(
            self._pairers[session],
            row["direction"],
            row.get("raw_data"),
            row.get("status_word"),
            row.get("channel"),
            key,
        )
        return link

    # -- resuming ----------------------------------------------------------------------

    def resume(self, connection: Connection, sessions: set[Any]) -> None:
        """Load the newest unanswered commands of the sessions not seen yet, per channel."""
        new = list(sessions - self._pairers.keys())
        for session in new:
            self._pairers[session] = ApduPairer()
        with_commands = _with_commands(connection, new)  # new sessions have none
        for start in range(0, len(with_commands), _SESSIONS_PER_QUERY):
            self._resume(connection, with_commands[start : start + _SESSIONS_PER_QUERY])

    def _resume(self, connection: Connection, new: list[Any]) -> None:
        """One query: the newest unanswered commands per channel of these sessions."""
        responses = _TABLE.alias("responses")
        answered = select(responses.c.id).where(responses.c.command_id == _LOGS.id).exists()
        channel = func.coalesce(_LOGS.channel, 0)
        newest = (
            func.row_number()
            .over(
                partition_by=(_LOGS.session_id, channel),
                order_by=(_LOGS.timestamp.desc(), _LOGS.id.desc()),
            )
            .label("newest")
        )
        open_commands = (
            select(_LOGS.session_id, _LOGS.id, _LOGS.raw_data, channel.label("channel"), newest)
            .where(
                _LOGS.session_id.in_(new),
                _LOGS.direction == _COMMAND,
                ~answered,
            )
            .subquery()
        )
        statement = (
            select(
                open_commands.c.session_id,
                open_commands.c.id,
                open_commands.c.raw_data,
                open_commands.c.channel,
            )
            .where(open_commands.c.newest <= MAX_OPEN_PER_CHANNEL)
            .order_by(open_commands.c.session_id, open_commands.c.newest.desc())
        )
        found: dict[Any, list[tuple[int, int, bytes]]] = {}
        for session, key, raw_data, channel_number in connection.execute(statement):
            found.setdefault(session, []).append((key, channel_number, header_of(raw_data or "")))
        for session, commands in found.items():
            # Oldest first by id: wire order for the rows this layer wrote.
            commands.sort()
            numbered = tuple(
                OpenCommand(key, channel_number, header, number)
                for number, (key, channel_number, header) in enumerate(commands, start=1)
            )
            self._pairers[session] = ApduPairer(PairingState(numbered, (), len(numbered)))


def _with_commands(connection: Connection, sessions: list[Any]) -> list[Any]:
    """Which of ``sessions`` have a command stored: an index read. PostgreSQL takes them
    as one array parameter (a long IN list is parsed and planned on every call)."""
    if not sessions:
        return []
    if connection.dialect.name == "postgresql":
        as_array = text(
            "SELECT DISTINCT session_id FROM logs "
            "WHERE session_id = ANY(CAST(:sessions AS uuid[])) AND direction = :command"
        )
        found = connection.execute(as_array, {"sessions": sessions, "command": _COMMAND.value})
        return list(found.scalars())
    having: list[Any] = []
    for start in range(0, len(sessions), _SESSIONS_PER_QUERY):
        part = sessions[start : start + _SESSIONS_PER_QUERY]
        statement = select(_LOGS.session_id).where(
            _LOGS.session_id.in_(part), _LOGS.direction == _COMMAND
        )
        having += connection.execute(statement.distinct()).scalars()
    return having


def _feed(
    pairer: ApduPairer,
    direction: Any,
    raw_data: str | None,
    word: str | None,
    channel: int | None,
    key: int | None,
) -> Any:
    """One row into its session's pairer (``pairing``'s rules); a response's command key."""
    if direction is _COMMAND:
        pairer.add_command(key, channel or 0, header_of(raw_data) if raw_data else b"")
        return None
    sw1 = int(word[:2], 16) if word else (sw1_of(raw_data) if raw_data else None)
    return pairer.add_response(key, sw1)[1]


def _reserve_ids(connection: Connection, count: int) -> list[int] | None:
    """Ids for ``count`` new rows in ascending order, or None where they cannot be reserved.

    SQLite: the write lock is held (``lock_for_writing``), so nobody else takes the ids
    after the largest. PostgreSQL: drawn from the column's sequence.
    """
    dialect = connection.dialect.name
    if dialect == "sqlite":
        highest = connection.execute(select(func.coalesce(func.max(_LOGS.id), 0))).scalar_one()
        return list(range(highest + 1, highest + 1 + count))
    if dialect == "postgresql":
        # The sequence's name is looked up once (an uncorrelated subquery), not per id.
        drawn = connection.exec_driver_sql(
            "SELECT nextval((SELECT pg_get_serial_sequence('logs', 'id'))::regclass) "
            "FROM generate_series(1, %(n)s)",
            {"n": count},
        )
        return sorted(drawn.scalars().all())
    return None


def _set_links(connection: Connection, links: dict[int, int]) -> None:
    """``command_id`` of already inserted responses (response id -> command id)."""
    items = list(links.items())
    for start in range(0, len(items), _LINKS_PER_UPDATE):
        part = dict(items[start : start + _LINKS_PER_UPDATE])
        connection.execute(
            update(_TABLE)
            .where(_LOGS.id.in_(list(part)))
            .values(command_id=case(part, value=_LOGS.id))
        )


def _rekeyed(state: PairingState, keys: dict[int, int]) -> PairingState:
    """The state with placeholder keys replaced by the rows' ids."""

    def key(value: Any) -> Any:
        return keys.get(value, value) if isinstance(value, int) else value

    commands = tuple(
        OpenCommand(key(c.key), c.channel, c.header, c.sequence, key(c.chain_head))
        for c in state.open_commands
    )
    marks = tuple(
        (channel, type(mark)(key(mark.head), mark.follow_up, mark.header))
        for channel, mark in state.chain_marks
    )
    return PairingState(commands, marks, state.sequence)


def _without_placeholders(state: PairingState) -> PairingState:
    """The state minus the commands whose ids were never learnt."""
    commands = tuple(c for c in state.open_commands if not (isinstance(c.key, int) and c.key < 0))
    return PairingState(commands, (), state.sequence)
