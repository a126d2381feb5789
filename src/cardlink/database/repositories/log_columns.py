"""The columns of new log rows: the batch's tuples or dicts checked, commands decoded.

``add_log``, ``add_log_batch`` and ``create`` hand their rows here. A command gets
the columns the model marks with ``info["apdu_field"]`` (``cla`` ... ``command_name``)
from ``apdu.stored_fields``; a command that cannot be decoded is stored as given,
with those columns empty. A response without a ``status_message`` gets its status
word's meaning. ``log_links`` then links each response to its command as rows are
written.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table

from ..apdu import StoredFields, describe_status_word, stored_fields
from ..codec import codec_for, columns_of, default_value
from ..exceptions import ValidationError
from ..models import CommDirection, CommLog
from ..models.log import DECODED_FIELDS
from ..status_words import derive_status_word
from ..types import to_uuid

_TABLE: Table = CommLog.__table__  # type: ignore[assignment]
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
