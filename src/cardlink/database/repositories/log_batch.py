"""The fast path of ``LogRepository.add_log_batch``: checked rows in, one bulk write out.

Campaigns log every APDU, so this path is measured against the bare driver
(``benchmarks/run.py``, W1). Two things make it cheap:

* ``prepare_row`` checks a row with a few type tests and cached lookups; anything
  unusual (a string UUID, a mixed-case direction, a bad value) goes to the
  repository's general ``_prepare``, which accepts or refuses it with the same
  rules and messages as ``add_log``.
* ``write_rows`` hands the driver values already in stored form (UUID hex or
  native UUID, naive UTC timestamps, enum values) in one ``executemany``, or a
  ``COPY`` on PostgreSQL, inside the unit of work's transaction: no per-row
  SQLAlchemy type processing.

A prepared row is a tuple in ``ROW_COLUMNS`` order with Python values: UUID,
``CommDirection``, text, naive UTC ``datetime`` (created_at is added at write time).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from math import isfinite as _isfinite
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Connection

from ..bulk import copy_rows
from ..models import CommDirection, CommLog
from ..types import naive_utc

#: Columns of a prepared row, then the two timestamps every row gets at write time.
ROW_COLUMNS = (
    "session_id",
    "direction",
    "raw_data",
    "decoded_data",
    "status_word",
    "status_message",
    "latency_ms",
    "timestamp",
)
INSERT_COLUMNS = (*ROW_COLUMNS, "created_at", "updated_at")

_UTC = timezone.utc
_UUID = uuid.UUID
_RESPONSE = CommDirection.RESPONSE
_HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")
_MESSAGE_LENGTH = 255

#: Exact spellings accepted without a second look; anything else takes the general path.
_DIRECTIONS: dict[Any, CommDirection] = {}
for _member in CommDirection:
    _DIRECTIONS[_member] = _member  # a str enum: hashes and compares as its value
    _DIRECTIONS[_member.name] = _member
_DIRECTION_VALUES = {member: str(member.value) for member in CommDirection}

#: Status words already seen, as given -> normalized (bounded: only valid 4-digit words enter).
_STATUS_WORDS: dict[str, str] = {}


def _status_word(word: str) -> str | None:
    """The normalized status word, or None if it is not four hex digits (general path decides)."""
    found = _STATUS_WORDS.get(word)
    if found is None:
        compact = word.replace(" ", "").upper()
        if len(compact) != 4 or not _HEX_DIGITS.issuperset(compact):
            return None
        if len(_STATUS_WORDS) < 70_000:
            _STATUS_WORDS[word] = compact
        found = compact
    return found


def _derived(raw_data: str) -> str | None:
    """SW1 SW2 at the end of a response APDU (same rule as ``derive_status_word``)."""
    tail = raw_data.replace(" ", "")[-4:]
    if len(tail) == 4 and _HEX_DIGITS.issuperset(tail):
        return tail.upper()
    return None


def prepare_row(log: Sequence[Any], now: datetime) -> tuple[Any, ...] | None:
    """The stored form of one batch tuple, or None when the general path must judge it.

    ``now`` (naive UTC) is the timestamp of a row that gives none.
    """
    size = len(log)
    if not 2 <= size <= 8:
        return None
    session_id = log[0]
    if session_id.__class__ is not _UUID:
        return None
    try:
        direction = _DIRECTIONS.get(log[1])
    except TypeError:  # unhashable
        return None
    if direction is None:
        return None
    raw_data = log[2] if size > 2 else None
    decoded_data = log[3] if size > 3 else None
    status_word = log[4] if size > 4 else None
    status_message = log[5] if size > 5 else None
    latency_ms = log[6] if size > 6 else None
    timestamp = log[7] if size > 7 else None
    for text in (raw_data, decoded_data):
        if text is not None and (text.__class__ is not str or "\x00" in text):
            return None
    if status_message is not None and (
        status_message.__class__ is not str
        or len(status_message) > _MESSAGE_LENGTH
        or "\x00" in status_message
    ):
        return None
    if (
        latency_ms is not None
        and latency_ms.__class__ is not float
        and latency_ms.__class__ is not int
    ):
        return None
    if latency_ms.__class__ is float and not _isfinite(latency_ms):  # NaN/inf: refused there
        return None
    if status_word is not None:
        if status_word.__class__ is not str:
            return None
        status_word = _status_word(status_word)
        if status_word is None:
            return None
    elif direction is _RESPONSE and raw_data:
        status_word = _derived(raw_data)
    if timestamp is None:
        timestamp = now
    elif timestamp.__class__ is datetime:
        timestamp = naive_utc(timestamp)
    else:
        return None
    return (
        session_id,
        direction,
        raw_data,
        decoded_data,
        status_word,
        status_message,
        latency_ms,
        timestamp,
    )


def from_prepared_dict(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row accepted by the general ``_prepare`` (a dict of model values) in stored form."""
    values = [row[name] for name in ROW_COLUMNS]
    values[-1] = naive_utc(values[-1])
    return tuple(values)


# -- writing -----------------------------------------------------------------------------


def _sqlite_rows(rows: list[tuple[Any, ...]], stamp: datetime) -> list[tuple[Any, ...]]:
    created = stamp.isoformat(" ", "microseconds")
    directions = _DIRECTION_VALUES
    return [
        (
            row[0].hex,
            directions[row[1]],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7].isoformat(" ", "microseconds"),
            created,
            created,
        )
        for row in rows
    ]


def _mysql_rows(rows: list[tuple[Any, ...]], stamp: datetime) -> list[tuple[Any, ...]]:
    directions = _DIRECTION_VALUES
    return [
        (
            row[0].hex,
            directions[row[1]],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            stamp,
            stamp,
        )
        for row in rows
    ]


def _insert_sql(connection: Connection, mark: str) -> str:
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in INSERT_COLUMNS)
    marks = ", ".join([mark] * len(INSERT_COLUMNS))
    return f"INSERT INTO logs ({names}) VALUES ({marks})"


def _executemany(
    connection: Connection,
    rows: list[tuple[Any, ...]],
    stamp: datetime,
    convert: Callable[[list[tuple[Any, ...]], datetime], list[tuple[Any, ...]]],
    mark: str,
) -> None:
    connection.exec_driver_sql(_insert_sql(connection, mark), convert(rows, stamp))


def _copy(connection: Connection, rows: list[tuple[Any, ...]], stamp: datetime) -> None:
    """PostgreSQL COPY through psycopg, in the connection's current transaction."""
    names = ", ".join(f'"{name}"' for name in INSERT_COLUMNS)
    directions = _DIRECTION_VALUES
    copy_rows(
        connection,
        f"COPY logs ({names}) FROM STDIN",
        (
            (
                row[0],
                directions[row[1]],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6],
                row[7],
                stamp,
                stamp,
            )
            for row in rows
        ),
    )


def write_rows(connection: Connection, rows: list[tuple[Any, ...]], stamp: datetime) -> None:
    """Insert prepared rows on ``connection``; ``stamp`` (naive UTC) is created/updated_at."""
    dialect = connection.dialect
    if dialect.name == "sqlite":
        _executemany(connection, rows, stamp, _sqlite_rows, "?")
    elif dialect.name == "postgresql" and dialect.driver == "psycopg":
        _copy(connection, rows, stamp)
    elif dialect.name in ("mysql", "mariadb"):
        _executemany(connection, rows, stamp, _mysql_rows, "%s")
    else:  # another driver: let SQLAlchemy bind the values
        aware = stamp.replace(tzinfo=_UTC)  # UTCDateTime reads naive values as local time
        connection.execute(
            cast(Table, CommLog.__table__).insert(),
            [
                dict(
                    zip(
                        INSERT_COLUMNS,
                        (*row[:7], row[7].replace(tzinfo=_UTC), aware, aware),
                        strict=True,
                    )
                )
                for row in rows
            ],
        )
