"""Queries for APDU logs, and the buffered batch path that writes them in bulk."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Table, bindparam, func, select

from ..codec import codec_for
from ..events import EventType
from ..exceptions import ValidationError, translated_errors
from ..models import CommDirection, CommLog
from ..sqlite_locking import lock_for_writing
from ..status_words import error_condition
from ..types import json_safe, to_uuid
from . import log_listing, log_queries, log_traces
from .base import BaseRepository, _slice, check_search_text, cutoff_before
from .fast_load import EntityLoader, PreparedLoad
from .log_columns import (
    BATCH_FIELDS,
    LOG_FIELDS,
    as_columns,
    checked,
    decode_entity,
    unknown_fields,
)
from .log_links import CommandLinker
from .log_listing import TraceLine
from .log_queries import CommandStats
from .log_traces import TraceImport

_HEX = re.compile(r"^[0-9A-Fa-f]+$")

_TABLE: Table = CommLog.__table__  # type: ignore[assignment]
_CODEC = codec_for(_TABLE)
_LOADER = EntityLoader(CommLog)
_LOGS = _TABLE.c
#: ``find_by_session`` without extras: compiled once per dialect, run on the driver's cursor.
_BY_SESSION = PreparedLoad(
    _LOADER,
    _LOADER.select()
    .where(_LOGS.session_id == bindparam("session_id"))
    .order_by(_LOGS.timestamp, _LOGS.id),
    pinned={"session_id": "session_id"},
)

Columns = dict[str, list[Any]]


def _field(index: int, name: str) -> str:
    return f"logs.{name}"


def _batch_row(index: int, name: str) -> str:
    return f"log #{index}: {name}"


class LogRepository(BaseRepository[CommLog]):
    """APDU logs per session; ``add_log_batch`` buffers rows until ``flush_batch`` or commit."""

    model = CommLog
    entity_type = "log"
    created_event = EventType.LOG_CREATED
    deleted_event = None

    def __init__(self, uow: Any) -> None:
        super().__init__(uow)
        self._batch: list[Columns] = []
        self._pending = 0
        self._linker = CommandLinker()

    # -- writing -----------------------------------------------------------------

    def add_log(
        self,
        session_id: Any,
        direction: CommDirection | str,
        raw_data: str | None = None,
        decoded_data: str | None = None,
        status_word: str | None = None,
        status_message: str | None = None,
        latency_ms: float | None = None,
        timestamp: datetime | None = None,
        **fields: Any,
    ) -> CommLog:
        """Store one APDU now; ``timestamp`` defaults to the current time.

        Any other column of the model can be given by keyword.
        """
        unknown = unknown_fields(fields)
        if unknown:
            raise ValidationError(
                f"add_log: unknown field(s) {unknown}; valid fields: {', '.join(LOG_FIELDS)}"
            )
        given = dict(
            zip(
                BATCH_FIELDS,
                (
                    session_id,
                    direction,
                    raw_data,
                    decoded_data,
                    status_word,
                    status_message,
                    latency_ms,
                    timestamp,
                ),
                strict=True,
            )
        )
        given.update(fields)
        columns = checked({name: [value] for name, value in given.items()}, 1, _field)
        row = {self._attribute_for_column(name): values[0] for name, values in columns.items()}
        return self.create(CommLog(**row))

    def create(self, entity: CommLog) -> CommLog:
        """Store a new log now: a command gets its decoded columns (when none are given),
        a response the ``command_id`` of the command it answers."""
        if not isinstance(entity, CommLog) or self._already_stored(entity):
            return super().create(entity)
        self.flush_batch()
        row = decode_entity(entity)
        if row is None:  # no session: the database refuses it as usual
            return super().create(entity)
        is_command = row["direction"] is CommDirection.COMMAND
        lock_for_writing(self.session)
        try:
            if not is_command:
                with translated_errors():
                    link = self._linker.link_one(self.session.connection(), row, None)
                entity.command_id = entity.command_id or link
            log = super().create(entity)
        except BaseException:
            self._linker.forget()
            raise
        if is_command:
            with translated_errors():
                self._linker.link_one(self.session.connection(), row, log.id)
        return log

    def add_log_batch(self, logs: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        """Buffer many logs (the guide's tuples, or dicts of any columns); ``flush_batch``
        writes them.

        Every row is checked before any is buffered, so a bad row adds nothing.
        Rows without a timestamp get the time of this call.
        """
        rows = list(logs)
        if not rows:
            return 0
        columns = checked(as_columns(rows), len(rows), _batch_row)
        last = self._batch[-1] if self._batch else None
        if last is not None and last.keys() == columns.keys():
            for name, values in columns.items():
                last[name].extend(values)
        else:
            self._batch.append(columns)
        self._pending += len(rows)
        return len(rows)

    @property
    def pending_count(self) -> int:
        """Logs buffered by ``add_log_batch`` and not yet written."""
        return self._pending

    def flush_batch(self) -> int:
        """Write the buffered logs in one bulk statement (COPY on PostgreSQL), all or none.

        Runs in the unit of work's transaction, inside a SAVEPOINT: a row the database
        refuses (unknown session) leaves none of the batch behind. Returns the count.
        """
        if not self._batch:
            return 0
        chunks, count = self._batch, self._pending
        self._batch, self._pending = [], 0
        lock_for_writing(self.session)
        try:
            with translated_errors(), self.session.begin_nested() as savepoint:
                connection = savepoint.session.connection()
                for chunk in chunks:
                    self._linker.write(connection, chunk)
        except BaseException:
            self._linker.forget()
            raise
        session_ids = sorted({str(key) for chunk in chunks for key in set(chunk["session_id"])})
        self._uow.record(
            EventType.LOG_BATCH_CREATED,
            self.entity_type,
            None,
            {
                "count": count,
                "session_ids": session_ids[:100],
                "session_count": len(session_ids),
            },
        )
        return count

    def discard_batch(self) -> int:
        """Drop the buffered logs without writing them; returns how many were dropped."""
        dropped = self._pending
        self._batch, self._pending = [], 0
        self._linker.forget()
        return dropped

    # -- reading -----------------------------------------------------------------

    def find_by_session(
        self, session_id: Any, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        """The session's logs in time order."""
        return self._in_session(session_id, None, limit, offset)

    def find_commands(
        self, session_id: Any, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        return self._in_session(
            session_id, CommLog.direction == CommDirection.COMMAND, limit, offset
        )

    def find_responses(
        self, session_id: Any, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        return self._in_session(
            session_id, CommLog.direction == CommDirection.RESPONSE, limit, offset
        )

    def find_by_status(
        self, session_id: Any, status_word: str, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        """The session's logs with this status word (e.g. ``"9000"``, any case)."""
        word = _CODEC.check("status_word", status_word, where="status_word")
        return self._in_session(session_id, CommLog.status_word == word, limit, offset)

    def find_errors(
        self, session_id: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        """Responses whose status word is an error (see ``cardlink.database.status_words``)."""
        condition = (CommLog.direction == CommDirection.RESPONSE) & CommLog.status_word.is_not(None)
        condition = condition & error_condition(CommLog.status_word)
        if session_id is None:
            self.flush_batch()
            statement = select(CommLog).where(condition).order_by(CommLog.timestamp, CommLog.id)
            return self._scalars(_slice(statement, limit, offset))
        return self._in_session(session_id, condition, limit, offset)

    def search_hex(
        self, pattern: str, session_id: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        """Logs whose raw APDU holds the bytes ``pattern`` (hex, any case, spaces ignored).

        Matches start on a byte boundary: ``"A4"`` finds ``00A40400`` but not
        ``80CA4000``. An odd number of hex digits is a ValidationError.
        """
        if not isinstance(pattern, str):
            raise ValidationError(f"hex pattern must be a string, got {type(pattern).__name__}")
        compact = pattern.replace(" ", "")
        if not compact or not _HEX.match(compact):
            raise ValidationError(
                f"hex pattern must contain only 0-9 and A-F, got {pattern[:32]!r}"
            )
        if len(compact) % 2:
            raise ValidationError(
                f"hex pattern must be whole bytes (an even number of hex digits), "
                f"got {len(compact)} digits: {pattern[:32]!r}"
            )
        check_search_text(compact, what="hex pattern")
        needle = compact.upper()
        stored = func.upper(func.replace(CommLog.raw_data, " ", ""))
        # LIKE narrows cheaply; the regular expression (REGEXP on every backend) keeps
        # the matches that start at an even offset, i.e. on a byte boundary.
        condition = stored.like(f"%{needle}%") & stored.regexp_match(f"^(?:..)*?{needle}")
        if session_id is not None:
            return self._in_session(session_id, condition, limit, offset)
        self.flush_batch()
        statement = select(CommLog).where(condition).order_by(CommLog.timestamp, CommLog.id)
        return self._scalars(_slice(statement, limit, offset))

    def count_by_session(self, session_id: Any) -> int:
        self.flush_batch()
        return self.count_by(session_id=session_id)

    # -- retention and export ------------------------------------------------------

    def purge_old(self, days: int) -> int:
        """Delete logs older than ``days`` days; returns how many were deleted."""
        cutoff = cutoff_before(days, unit="days", name="days")
        self.flush_batch()
        deleted = self._delete_where(CommLog.timestamp < cutoff)
        if deleted:
            self._uow.record(
                EventType.LOGS_PURGED,
                self.entity_type,
                None,
                {"count": deleted, "older_than": json_safe(cutoff)},
            )
        return deleted

    def export_session_logs(self, session_id: Any, format: str = "json") -> Any:
        """The session's logs, every column, as JSON-ready dicts (``format="json"``) or CSV
        text (``"csv"``)."""
        if format not in ("json", "csv"):
            raise ValidationError(f"export format must be 'json' or 'csv', got {format!r}")
        self.flush_batch()
        statement = (
            select(*_TABLE.columns)
            .where(CommLog.session_id == to_uuid(session_id))
            .order_by(CommLog.timestamp, CommLog.id)
        )
        with translated_errors():
            rows = [json_safe(dict(row._mapping)) for row in self.session.execute(statement)]
        if format == "json":
            return rows
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(_CODEC.columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    # -- decoded columns (see log_queries) --------------------------------------------

    def pairs(self, session_id: Any) -> list[tuple[CommLog, CommLog | None]]:
        """The session's commands in wire order, each with its response (None: unanswered).

        A response that answers no command is in no pair; ``find_responses`` lists it.
        """
        return log_queries.pairs(self, session_id)

    def find_by_command(
        self, name_or_ins: Any, session_id: Any = None, limit: int | None = None, offset: int = 0
    ) -> list[CommLog]:
        """Commands by name (``"SELECT"``; ``"INSTALL"`` finds every INSTALL [...]) or by
        INS (``0xA4``, ``"A4"``), in time order, in one session or all."""
        return log_queries.find_by_command(self, name_or_ins, session_id, limit, offset)

    def command_stats(
        self, session_id: Any = None, days: float | None = None
    ) -> list[CommandStats]:
        """Per command name, most sent first: count, error and warning responses, mean and
        p95 latency (ms), computed in SQL; ``days`` keeps commands of the last N days."""
        return log_queries.command_stats(self, session_id, days)

    # -- traces (see log_traces) ----------------------------------------------------

    def import_trace(
        self, stream: IO[bytes] | IO[str], *, format: str = "auto", session_id: Any
    ) -> TraceImport:
        """Store an apdu4j dump or a GSMTAP pcap/pcapng in wire order; commit to keep it.

        ``format``: ``"apdu4j"``, ``"pcap"`` (pcap or pcapng) or ``"auto"`` (by the
        file's magic number). An unknown session or a malformed file writes nothing.
        """
        return log_traces.import_trace(self, stream, format=format, session_id=session_id)

    def export_trace(self, session_id: Any, stream: IO[bytes]) -> int:
        """Write the session as GSMTAP SIM pcap, one packet per pair; returns the count."""
        return log_traces.export_trace(self, session_id, stream)

    def trace_lines(
        self,
        session_id: Any,
        *,
        errors: bool = False,
        command: str | int | None = None,
        limit: int | None = None,
    ) -> list[TraceLine]:
        """The session's APDUs in wire order as printable lines (``cardlink-db logs``).

        ``errors`` keeps the exchanges answered with an error; ``command`` those of one
        command (a name or an INS byte). An unknown session is a NotFoundError.
        """
        return log_listing.trace_lines(
            self, session_id, errors=errors, command=command, limit=limit
        )

    def _in_session(
        self, session_id: Any, condition: Any, limit: int | None, offset: int
    ) -> list[CommLog]:
        self.flush_batch()
        key = to_uuid(session_id)
        if not _LOADER.enabled:  # the plain ORM query
            statement = select(CommLog).where(CommLog.session_id == key)
            if condition is not None:
                statement = statement.where(condition)
            statement = statement.order_by(CommLog.timestamp, CommLog.id)
            return self._scalars(_slice(statement, limit, offset))
        if condition is None and limit is None and not offset:
            with translated_errors():
                return _BY_SESSION.load(self.session, session_id=key)
        statement = _LOADER.select().where(_LOGS.session_id == key)
        if condition is not None:
            statement = statement.where(condition)
        statement = _slice(statement.order_by(_LOGS.timestamp, _LOGS.id), limit, offset)
        with translated_errors():
            return _LOADER.load(self.session, statement)
