"""New log rows: the batch's columns checked, commands decoded, responses linked to commands.

``add_log`` and ``add_log_batch`` hand their rows here. A command gets the columns
the model marks with ``info["apdu_field"]`` (``cla`` ... ``command_name``) from
``apdu.decode_apdu``; a command that cannot be decoded is stored as given, with those
columns empty. A response without a ``status_message`` gets its status word's
meaning. At write time ``CommandLinker`` pairs each response with the command it
answers (``pairing.ApduPairer``: newest unanswered command of the channel, T=0
chains followed) and stores that command's id in ``command_id``.

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

import functools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, case, func, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from ..apdu import StoredFields, describe_status_word, stored_fields
from ..codec import codec_for, columns_of, default_value, insert_columns
from ..exceptions import ValidationError, is_duplicate_key
from ..models import CommDirection, CommLog
from ..models.log import DECODED_FIELDS
from ..pairing import (
    MAX_OPEN_PER_CHANNEL,
    ApduPairer,
    OpenCommand,
    PairingState,
    header_of,
    sw1_of,
)
from ..status_words import derive_status_word
from ..types import to_uuid

_TABLE: Table = CommLog.__table__  # type: ignore[assignment]
_LOGS = _TABLE.c
_CODEC = codec_for(_TABLE)
_COMMAND, _RESPONSE = CommDirection.COMMAND, CommDirection.RESPONSE

#: The guide's batch tuples: these fields in this order, stopping after any from the 2nd on.
#: A column beyond them comes in through a dict row or a keyword of ``add_log``.
BATCH_FIELDS = (
    "session_id",
    "direction",
    "raw_data",
    "decoded_data",
    "status_word",
    "status_message",
    "latency_ms",
    "timestamp",
)
#: What a dict row or ``add_log`` may give: every column but the key the database hands out.
LOG_FIELDS = tuple(
    name
    for name, column in _CODEC.columns.items()
    if not (column.primary_key and column.autoincrement is True)
)
#: Columns a row that leaves them out gets its Python-side default in (the time of the call).
_DEFAULTED = {name: column for name, column in _CODEC.columns.items() if column.default is not None}
#: Responses linked per UPDATE on MariaDB/MySQL (two parameters each, plus the id list).
_LINKS_PER_UPDATE = 500
#: Sessions resumed per query (SQLite before 3.32 takes at most 999 parameters).
_SESSIONS_PER_QUERY = 500

Columns = dict[str, list[Any]]


@functools.lru_cache(maxsize=4096)
def _decoded(raw_data: str) -> StoredFields | None:
    """``apdu.stored_fields``, remembered: a trace repeats the same few commands many times."""
    return stored_fields(raw_data)


@functools.lru_cache(maxsize=1024)
def _meaning(status_word: str) -> str | None:
    """``describe_status_word`` of a checked (four hex digit) status word."""
    return describe_status_word(status_word)


def unknown_fields(fields: Iterable[Any]) -> list[str]:
    return sorted(str(name) for name in set(fields) - set(LOG_FIELDS))


def as_columns(logs: list[Any]) -> Columns:
    """The batch's rows (the guide's tuples or dicts) as one list per column."""
    if logs and all(log.__class__ is tuple for log in logs):
        sizes = set(map(len, logs))
        if len(sizes) == 1 and 2 <= (size := sizes.pop()) <= len(BATCH_FIELDS):
            return dict(zip(BATCH_FIELDS[:size], map(list, zip(*logs, strict=True)), strict=True))
    rows: list[dict[Any, Any]] = []
    for index, log in enumerate(logs):
        if isinstance(log, Mapping):
            unknown = unknown_fields(log)
            if unknown:
                valid = ", ".join(LOG_FIELDS)
                raise ValidationError(
                    f"log #{index}: unknown field(s) {unknown}; valid fields: {valid}"
                )
            rows.append(dict(log))
        elif isinstance(log, Sequence) and not isinstance(log, str | bytes):
            if not 2 <= len(log) <= len(BATCH_FIELDS):
                raise ValidationError(
                    f"log #{index}: expected a tuple of 2 to {len(BATCH_FIELDS)} values "
                    f"({', '.join(BATCH_FIELDS)}), got {len(log)}"
                )
            rows.append(dict(zip(BATCH_FIELDS, log, strict=False)))
        else:
            kind = type(log).__name__
            raise ValidationError(f"log #{index}: expected a tuple or a dict, got {kind}")
    given = [name for name in LOG_FIELDS if any(name in row for row in rows)]
    return columns_of(rows, given)


def checked(columns: Columns, count: int, where: Callable[[int, str], str]) -> Columns:
    """The codec's checks and the columns' defaults, then what a row says of itself: a
    response's status word and its meaning, a command's decoded fields."""
    for name, column in _DEFAULTED.items():
        values = columns.get(name)
        if values is None:
            columns[name] = [default_value(column)] * count
        elif None in values:
            default = default_value(column)
            columns[name] = [default if value is None else value for value in values]
    result = _CODEC.check_columns(columns, where)
    directions = result["direction"]
    raw_data = result.get("raw_data") or [None] * count
    words = result.get("status_word") or [None] * count
    if None in words:
        words = [
            derive_status_word(raw) if word is None and direction is _RESPONSE else word
            for word, direction, raw in zip(words, directions, raw_data, strict=True)
        ]
        result["status_word"] = words
    messages = result.get("status_message") or [None] * count
    result["status_message"] = [
        _meaning(word)
        if message is None and word is not None and direction is _RESPONSE
        else message
        for message, word, direction in zip(messages, words, directions, strict=True)
    ]
    _decode_commands(result, directions, raw_data, count)
    return result


def _decode_commands(
    columns: Columns, directions: list[Any], raw_data: list[Any], count: int
) -> None:
    """Fill the decoded columns of every command; a value the caller gave is kept."""
    decoded = [
        _decoded(raw) if direction is _COMMAND and raw else None
        for direction, raw in zip(directions, raw_data, strict=True)
    ]
    for name, field in DECODED_FIELDS.items():
        at = StoredFields._fields.index(field)
        found = [None if apdu is None else apdu[at] for apdu in decoded]
        given = columns.get(name)
        if given is not None and any(value is not None for value in given):
            found = [
                mine if mine is not None else new for mine, new in zip(given, found, strict=True)
            ]
        columns[name] = found
    if "command_id" not in columns:
        columns["command_id"] = [None] * count


def decode_entity(log: CommLog) -> dict[str, Any] | None:
    """Fill a new ``CommLog``'s decoded columns (a command with none given); the row as the
    linker reads it, or None without a usable session id."""
    direction = str(getattr(log.direction, "value", log.direction)).lower()
    is_command = direction == _COMMAND.value
    raw_data = log.raw_data if isinstance(log.raw_data, str) else None
    if is_command and raw_data and all(getattr(log, name) is None for name in DECODED_FIELDS):
        apdu = _decoded(raw_data)
        for name, field in DECODED_FIELDS.items():
            setattr(log, name, None if apdu is None else getattr(apdu, field))
    try:
        session = to_uuid(log.session_id)
    except ValidationError:
        return None
    return {
        "session_id": session,
        "direction": _COMMAND if is_command else _RESPONSE,
        "raw_data": raw_data,
        "status_word": log.status_word if isinstance(log.status_word, str) else None,
        "channel": log.channel,
    }


class CommandLinker:
    """Links responses to their commands as rows are written, session by session."""

    def __init__(self) -> None:
        self._states: dict[uuid.UUID, PairingState] = {}

    def forget(self) -> None:
        """Drop the pairing states (the unit of work rolled back what they describe)."""
        self._states.clear()

    def saved(self) -> dict[uuid.UUID, PairingState]:
        """The states as they are, to restore when a write fails (they are immutable)."""
        return dict(self._states)

    def restore(self, saved: dict[uuid.UUID, PairingState]) -> None:
        self._states = saved

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
        saved, given = self.saved(), chunk["command_id"]
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
            self.restore(saved)
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
            self._states = {
                key: _without_placeholders(state) for key, state in self._states.items()
            }
            return
        real = {-1 - index: key for index, key in enumerate(stored)}
        for session in sessions:
            self._states[session] = _rekeyed(self._states[session], real)
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
        pairers: dict[uuid.UUID, ApduPairer] = {}
        links: list[Any] = []
        for index in range(count):
            session = sessions[index]
            pairer = pairers.get(session)
            if pairer is None:
                pairer = pairers[session] = ApduPairer(self._states.get(session))
            link = _feed(
                pairer,
                directions[index],
                raw_data[index],
                words[index],
                channels[index],
                keys[index],
            )
            links.append(given[index] if given[index] is not None else link)
        for session, pairer in pairers.items():
            self._states[session] = pairer.state
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
        pairer = ApduPairer(self._states.get(session))
        link = _feed(
            pairer,
            row["direction"],
            row.get("raw_data"),
            row.get("status_word"),
            row.get("channel"),
            key,
        )
        self._states[session] = pairer.state
        return link

    # -- resuming ----------------------------------------------------------------------

    def resume(self, connection: Connection, sessions: set[Any]) -> None:
        """Load the newest unanswered commands of the sessions not seen yet, per channel."""
        new = sorted(sessions - self._states.keys(), key=str)
        for session in new:
            self._states[session] = PairingState()
        for start in range(0, len(new), _SESSIONS_PER_QUERY):
            self._resume(connection, new[start : start + _SESSIONS_PER_QUERY])

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
            self._states[session] = PairingState(numbered, (), len(numbered))


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
        drawn = connection.exec_driver_sql(
            "SELECT nextval(pg_get_serial_sequence('logs', 'id')) FROM generate_series(1, %(n)s)",
            {"n": count},
        )
        return sorted(row[0] for row in drawn)
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
