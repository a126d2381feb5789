"""Queries for APDU logs, and the buffered batch path that writes them in bulk."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select

from ..events import EventType
from ..exceptions import ValidationError, translated_errors
from ..models import CommDirection, CommLog
from ..models.base import check_value, coerce_enum
from ..sqlite_locking import lock_for_writing
from ..status_words import error_condition
from ..types import json_safe, naive_utc, to_utc, to_uuid, utcnow
from .base import BaseRepository, _slice, check_search_text
from .fast_load import EntityLoader, PreparedLoad
from .log_batch import ROW_COLUMNS, from_prepared_dict, prepare_row, write_rows

_HEX = re.compile(r"^[0-9A-Fa-f]+$")

#: Field order of the guide's batch tuples; a tuple may stop after any field from the 2nd on.
BATCH_FIELDS = ROW_COLUMNS
EXPORT_FIELDS = ("id", "session_id", *BATCH_FIELDS[1:])

_LOADER = EntityLoader(CommLog)
_LOGS = CommLog.__table__.c
#: ``find_by_session`` without extras: compiled once per dialect, run on the driver's cursor.
_BY_SESSION = PreparedLoad(
    _LOADER,
    _LOADER.select()
    .where(_LOGS.session_id == bindparam("session_id"))
    .order_by(_LOGS.timestamp, _LOGS.id),
    pinned={"session_id": "session_id"},
)


def normalize_status_word(
    status_word: str | None, *, field: str = "logs.status_word"
) -> str | None:
    """Upper-case four-hex-digit status word; anything else is a ValidationError."""
    if status_word is None:
        return None
    if not isinstance(status_word, str):
        raise ValidationError(f"{field} must be text like '9000', got {type(status_word).__name__}")
    word = status_word.replace(" ", "").upper()
    if len(word) != 4 or not _HEX.match(word):
        raise ValidationError(
            f"{field} must be four hex digits like '9000', got {status_word[:16]!r}"
        )
    return word


def derive_status_word(direction: CommDirection, raw_data: str | None) -> str | None:
    """A response APDU ends with SW1 SW2: take them when the caller gave no status word."""
    if direction is not CommDirection.RESPONSE or not raw_data:
        return None
    tail = raw_data.replace(" ", "")[-4:]
    return tail.upper() if len(tail) == 4 and _HEX.match(tail) else None


class LogRepository(BaseRepository[CommLog]):
    """APDU logs per session; ``add_log_batch`` buffers rows until ``flush_batch`` or commit."""

    model = CommLog
    entity_type = "log"
    created_event = EventType.LOG_CREATED
    deleted_event = None

    def __init__(self, uow: Any) -> None:
        super().__init__(uow)
        self._batch: list[tuple[Any, ...]] = []

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
    ) -> CommLog:
        """Store one APDU now; ``timestamp`` defaults to the current time."""
        row = self._prepare(
            {
                "session_id": session_id,
                "direction": direction,
                "raw_data": raw_data,
                "decoded_data": decoded_data,
                "status_word": status_word,
                "status_message": status_message,
                "latency_ms": latency_ms,
                "timestamp": timestamp,
            },
            index=None,
        )
        self.flush_batch()
        return self.create(CommLog(**row))

    def add_log_batch(self, logs: Iterable[Sequence[Any] | Mapping[str, Any]]) -> int:
        """Buffer many logs (the guide's tuples, or dicts); ``flush_batch`` writes them.

        Every row is checked before any is buffered, so a bad row adds nothing.
        Rows without a timestamp get the time of this call.
        """
        now = naive_utc(utcnow())
        prepared: list[tuple[Any, ...]] = []
        append = prepared.append
        for index, log in enumerate(logs):
            if log.__class__ is tuple:
                row = prepare_row(log, now)
                if row is None:
                    row = self._prepare_general(log, index)
            elif isinstance(log, Mapping):
                unknown = set(log) - set(BATCH_FIELDS)
                if unknown:
                    raise ValidationError(f"log #{index}: unknown field(s) {sorted(unknown)}")
                values = tuple(log.get(name) for name in BATCH_FIELDS)
                row = prepare_row(values, now) or self._prepare_general(values, index)
            else:
                row = self._prepare_general(log, index)
            append(row)
        self._batch.extend(prepared)
        return len(prepared)

    def _prepare_general(self, log: Any, index: int) -> tuple[Any, ...]:
        """Any row the fast check passed on: accepted or refused by the rules of ``add_log``."""
        if isinstance(log, Sequence) and not isinstance(log, str | bytes):
            if not 2 <= len(log) <= len(BATCH_FIELDS):
                raise ValidationError(
                    f"log #{index}: expected a tuple of 2 to {len(BATCH_FIELDS)} values "
                    f"({', '.join(BATCH_FIELDS)}), got {len(log)}"
                )
            values = dict(zip(BATCH_FIELDS, log, strict=False))
        else:
            kind = type(log).__name__
            raise ValidationError(f"log #{index}: expected a tuple or a dict, got {kind}")
        return from_prepared_dict(self._prepare(values, index=index))

    @property
    def pending_count(self) -> int:
        """Logs buffered by ``add_log_batch`` and not yet written."""
        return len(self._batch)

    def flush_batch(self) -> int:
        """Write the buffered logs in one bulk statement (COPY on PostgreSQL), all or none.

        Runs in the unit of work's transaction, inside a SAVEPOINT: a row the database
        refuses (unknown session) leaves none of the batch behind. Returns the count.
        """
        if not self._batch:
            return 0
        rows, self._batch = self._batch, []
        lock_for_writing(self.session)
        with translated_errors(), self.session.begin_nested() as savepoint:
            write_rows(savepoint.session.connection(), rows, naive_utc(utcnow()))
        session_ids = sorted(str(session_id) for session_id in {row[0] for row in rows})
        self._uow.record(
            EventType.LOG_BATCH_CREATED,
            self.entity_type,
            None,
            {
                "count": len(rows),
                "session_ids": session_ids[:100],
                "session_count": len(session_ids),
            },
        )
        return len(rows)

    def discard_batch(self) -> int:
        """Drop the buffered logs without writing them; returns how many were dropped."""
        dropped = len(self._batch)
        self._batch = []
        return dropped

    def _prepare(self, values: dict[str, Any], *, index: int | None) -> dict[str, Any]:
        where = "logs" if index is None else f"log #{index}"
        if values.get("session_id") is None:
            raise ValidationError(f"{where}: session_id is required")
        try:
            session_id = to_uuid(values["session_id"])
        except ValidationError:
            raise ValidationError(f"{where}: session_id is not a valid UUID") from None
        direction = coerce_enum(CommDirection, values.get("direction"), f"{where}: direction")
        if direction is None:
            raise ValidationError(f"{where}: direction is required (COMMAND or RESPONSE)")
        raw_data = values.get("raw_data")
        status_word = normalize_status_word(
            values.get("status_word"), field=f"{where}: status_word"
        )
        if status_word is None and isinstance(raw_data, str):
            status_word = derive_status_word(direction, raw_data)
        timestamp = values.get("timestamp")
        if timestamp is not None and not isinstance(timestamp, datetime):
            kind = type(timestamp).__name__
            raise ValidationError(f"{where}: timestamp must be a datetime, got {kind}")
        now = utcnow()
        row = {
            "session_id": session_id,
            "direction": direction,
            "raw_data": raw_data,
            "decoded_data": values.get("decoded_data"),
            "status_word": status_word,
            "status_message": values.get("status_message"),
            "latency_ms": values.get("latency_ms"),
            "timestamp": to_utc(timestamp) if timestamp is not None else now,
            "created_at": now,
            "updated_at": now,
        }
        table = CommLog.__table__
        for name in ("raw_data", "decoded_data", "status_message", "latency_ms"):
            try:
                check_value("logs", table.c[name], row[name])
            except ValidationError as error:
                raise ValidationError(f"{where}: {error}") from None
        return row

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
        word = normalize_status_word(status_word, field="status_word")
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
        if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
            raise ValidationError(f"days must be a number >= 0, got {days!r}")
        self.flush_batch()
        cutoff = utcnow() - timedelta(days=days)
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
        """The session's logs as JSON-ready dicts (``format="json"``) or CSV text (``"csv"``)."""
        if format not in ("json", "csv"):
            raise ValidationError(f"export format must be 'json' or 'csv', got {format!r}")
        self.flush_batch()
        statement = (
            select(*(CommLog.__table__.c[name] for name in EXPORT_FIELDS))
            .where(CommLog.session_id == to_uuid(session_id))
            .order_by(CommLog.timestamp, CommLog.id)
        )
        with translated_errors():
            rows = [json_safe(dict(row._mapping)) for row in self.session.execute(statement)]
        if format == "json":
            return rows
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

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
