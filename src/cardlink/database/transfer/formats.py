"""The export document: its formats, tables, and how each column's value is read back.

Values are typed by the schema, not by tags in the document: a UUID is its
canonical text, a timestamp ISO 8601 in UTC with microseconds, an enum its stored
value, a JSON column its JSON (object keys sorted, so every backend writes the
same text), numbers and booleans as JSON numbers and booleans.
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from os import PathLike
from pathlib import PurePath
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Enum,
    Float,
    Integer,
    String,
    Table,
)

from ..exceptions import ValidationError
from ..models import Base
from ..models.base import coerce_enum
from ..types import GUID, LabelledEnum, UTCDateTime, uuid_from_hex

#: Written as ``format``; a document without it is not a CardLink export.
FORMAT_NAME = "cardlink-database-export"
#: Bumped when the document layout changes; version 2 added the trailer.
FORMAT_VERSION = 2
#: Documents written before the trailer existed: read, with a warning, without the check.
PRE_TRAILER_VERSION = 1
#: The key of the trailer, the document's last member.
TRAILER = "trailer"
#: The versions the importer reads.
READABLE_VERSIONS = (PRE_TRAILER_VERSION, FORMAT_VERSION)

#: The tables in export and import order: parents before the rows that point at them.
TABLE_NAMES = ("devices", "cards", "sessions", "logs", "test_runs", "tests", "settings")

#: The one secret column: Fernet ciphertext of the PSK key, left out on request.
PSK_COLUMN = ("cards", "psk_key_encrypted")
#: JSON columns that hold any JSON value; the others hold a JSON object.
ANY_JSON_COLUMNS = frozenset({("settings", "value")})


class ExportFormat(LabelledEnum):
    """The document formats: JSON (any size, streamed) and YAML (small databases)."""

    JSON = "json"
    YAML = "yaml"


class ConflictMode(LabelledEnum):
    """What an import does with a row whose key already exists."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    MERGE = "merge"


_EXTENSIONS = {".json": ExportFormat.JSON, ".yaml": ExportFormat.YAML, ".yml": ExportFormat.YAML}


#: A file name ending in this is gzip-compressed: ``backup.json.gz``.
GZIP_SUFFIX = ".gz"


def is_gzip_name(path: str | PathLike[str]) -> bool:
    """True for a file name ending in ``.gz`` (any case)."""
    return PurePath(path).suffix.lower() == GZIP_SUFFIX


def detect_format(path: str | PathLike[str]) -> ExportFormat:
    """The format a file name implies: ``.json``, ``.yaml`` or ``.yml``, each maybe ``.gz``."""
    name = PurePath(path)
    if is_gzip_name(name):
        name = name.with_suffix("")
    suffix = name.suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise ValidationError(
            f"cannot tell the format of {str(path)!r} from its extension; "
            "use .json, .yaml or .yml (each may end in .gz), or give the format explicitly"
        ) from None


def coerce_format(value: ExportFormat | str) -> ExportFormat:
    """The ``ExportFormat`` for a member or its name/value in any case."""
    return coerce_enum(ExportFormat, value, "format")  # type: ignore[no-any-return]


def coerce_conflict_mode(value: ConflictMode | str) -> ConflictMode:
    """The ``ConflictMode`` for a member or its name/value in any case."""
    return coerce_enum(ConflictMode, value, "conflict_mode")  # type: ignore[no-any-return]


def table_for(name: str) -> Table:
    """The ``Table`` of an exported table name."""
    return Base.metadata.tables[name]  # type: ignore[return-value]


def resolve_tables(tables: Iterable[str] | str | None) -> list[str]:
    """Validated table names in export order; ``None`` means all; text may list several."""
    if tables is None:
        return list(TABLE_NAMES)
    if isinstance(tables, str):
        tables = [part for part in (piece.strip() for piece in tables.split(",")) if part]
    wanted = []
    for name in tables:
        if not isinstance(name, str) or name.strip().lower() not in TABLE_NAMES:
            raise ValidationError(f"unknown table {name!r}; valid tables: {', '.join(TABLE_NAMES)}")
        wanted.append(name.strip().lower())
    if not wanted:
        raise ValidationError(f"no table selected; valid tables: {', '.join(TABLE_NAMES)}")
    return [name for name in TABLE_NAMES if name in wanted]


def trailer(row_counts: dict[str, int]) -> dict[str, Any]:
    """The document's last member: the rows written per table, so a cut-short copy shows."""
    return {"row_counts": dict(row_counts)}


def trailer_row_counts(found: Any) -> dict[str, int] | None:
    """The row counts of a trailer value, or None if it is not shaped as one."""
    counts = found.get("row_counts") if isinstance(found, dict) else None
    if not isinstance(counts, dict) or not all(
        isinstance(count, int) and not isinstance(count, bool) for count in counts.values()
    ):
        return None
    return dict(counts)


def check_trailer(found: Any, read: dict[str, int]) -> dict[str, int]:
    """The trailer's row counts; refused if it is not one or they differ from the rows ``read``."""
    counts = trailer_row_counts(found)
    if counts is None:
        raise ValidationError(
            'import: the trailer must be {"row_counts": {table: rows}}; '
            "the document is damaged, nothing was imported"
        )
    for name in sorted(set(counts) | set(read), key=str):
        expected, got = counts.get(name), read.get(name)
        if expected != got:
            said = "no rows" if expected is None else f"{expected} row(s)"
            raise ValidationError(
                f"import: the trailer says {str(name)[:64]!r} has {said}, the document holds "
                f"{got or 0}; it was cut short or damaged, nothing was imported"
            )
    return counts


def primary_key(table: Table) -> Column[Any]:
    """The single-column primary key every CardLink table has."""
    (column,) = table.primary_key.columns
    return column


# -- reading values --------------------------------------------------------------------


class FieldError(ValueError):
    """A refused value; the caller adds where it was (table, row, field)."""


Decoder = Callable[[Any], Any]


def decoder_for(column: Column[Any]) -> Decoder:
    """How a column's (non-null) document value becomes the value to bind; raises FieldError."""
    column_type = column.type
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        return _enum_decoder(column_type.enum_class)
    if isinstance(column_type, GUID):
        return _remembering_last(_decode_uuid)
    if isinstance(column_type, UTCDateTime):
        return _remembering_last(_decode_datetime)
    if isinstance(column_type, JSON):
        if (column.table.name, column.name) in ANY_JSON_COLUMNS:
            return _decode_json
        return _decode_json_object
    if isinstance(column_type, Boolean):
        return _decode_bool
    if isinstance(column_type, Integer):
        return _int_decoder(64 if isinstance(column_type, BigInteger) else 32)
    if isinstance(column_type, Float):
        return _decode_float
    if isinstance(column_type, String):
        return _text_decoder(column_type.length)
    return _identity


def decode_value(column: Column[Any], value: Any, where: str) -> Any:
    """The Python value to bind for a document value; ``ValidationError`` naming ``where``."""
    if value is None:
        return None
    try:
        return decoder_for(column)(value)
    except FieldError as error:
        raise ValidationError(f"{where}: {error}") from None


def _identity(value: Any) -> Any:
    return value


def _remembering_last(decode: Decoder) -> Decoder:
    """``decode`` that keeps its last text and result: neighbouring rows often share a value
    (a session's logs, timestamps written together), and an equal string is cheap to spot."""
    last: tuple[Any, Any] = (None, None)

    def decode_text(value: Any) -> Any:
        nonlocal last
        if value.__class__ is str:
            seen, found = last  # one tuple, so the pair stays consistent
            if value == seen:
                return found
            found = decode(value)
            last = (value, found)
            return found
        return decode(value)

    return decode_text


def _enum_decoder(members: type[enum.Enum]) -> Decoder:
    lookup = {str(member.value).lower(): member for member in members}
    valid = ", ".join(str(member.value) for member in members)

    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise FieldError(f"expected text, got {_kind(value)}")
        try:
            return lookup[value.lower()]
        except KeyError:
            raise FieldError(f"unknown value {value[:64]!r}; valid values: {valid}") from None

    return decode


def _decode_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise FieldError(f"expected a UUID string, got {_kind(value)}")
    if _CANONICAL_UUID.fullmatch(value):  # as exported: parsed without UUID()'s many steps
        return uuid_from_hex(value.replace("-", ""))
    try:
        return uuid.UUID(value)
    except ValueError:
        raise FieldError(f"not a valid UUID: {value[:64]!r}") from None


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _decode_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(f"not an ISO 8601 timestamp: {value[:64]!r}") from None
    else:
        raise FieldError(f"expected an ISO 8601 timestamp, got {_kind(value)}")
    # Documents are UTC; a timestamp without an offset is read as UTC, not local time.
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _decode_json(value: Any) -> Any:
    _check_json(value)
    return value


def _decode_json_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise FieldError(f"expected a JSON object, got {_kind(value)}")
    _check_json(value)
    return value


def _decode_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise FieldError(f"expected true or false, got {_kind(value)}")


def _int_decoder(bits: int) -> Decoder:
    lowest, highest = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def decode(value: Any) -> int:
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            if not lowest <= value <= highest:  # SQLite would store it, the servers refuse it
                raise FieldError(f"{value} is out of range for a {bits}-bit integer")
            return value
        raise FieldError(f"expected an integer, got {_kind(value)}")

    return decode


def _decode_float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"expected a number, got {_kind(value)}")
    return float(value)


def _text_decoder(length: int | None) -> Decoder:
    def decode(value: Any) -> str:
        if type(value) is not str:
            raise FieldError(f"expected text, got {_kind(value)}")
        if length is not None and len(value) > length:
            raise FieldError(f"{len(value)} characters long; at most {length} fit")
        if "\x00" in value:
            raise FieldError("contains a NUL character")
        return value

    return decode


def check_psk_ciphertext(value: str, where: str) -> None:
    """Refuse anything but a Fernet token, so a plaintext key can never be imported as one."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) < 57 or raw[0] != 0x80:
        raise ValidationError(f"{where}: not a Fernet token (PSK keys are imported encrypted only)")


def _check_json(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FieldError(f"JSON object keys must be text, got {_kind(key)}")
            _check_json(key)
            _check_json(item)
    elif isinstance(value, list):
        for item in value:
            _check_json(item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise FieldError("JSON numbers must be finite")
    elif isinstance(value, str) and "\x00" in value:  # PostgreSQL's JSONB refuses it
        raise FieldError("contains a NUL character")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise FieldError(f"not a JSON value ({_kind(value)})")


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "an object",
        datetime: "a timestamp",
    }
    return names.get(type(value), type(value).__name__)
