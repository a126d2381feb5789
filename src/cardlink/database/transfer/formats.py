"""The export document: its formats, tables, and how each column's value is written and read back.

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
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from os import PathLike
from pathlib import PurePath
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Enum, Float, Integer, String, Table

from ..exceptions import ValidationError
from ..models import Base
from ..models.base import coerce_enum
from ..types import GUID, LabelledEnum, UTCDateTime, to_plain

#: Written as ``format``; a document without it is not a CardLink export.
FORMAT_NAME = "cardlink-database-export"
#: Bumped when the document layout changes incompatibly; the importer reads only this one.
FORMAT_VERSION = 1

#: The tables in export and import order: parents before the rows that point at them.
TABLE_NAMES = ("devices", "cards", "sessions", "logs", "tests", "settings")

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


def detect_format(path: str | PathLike[str]) -> ExportFormat:
    """The format a file name implies: ``.json``, ``.yaml`` or ``.yml`` (any case)."""
    suffix = PurePath(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise ValidationError(
            f"cannot tell the format of {str(path)!r} from its extension; "
            "use .json, .yaml or .yml, or give the format explicitly"
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


def primary_key(table: Table) -> Column[Any]:
    """The single-column primary key every CardLink table has."""
    (column,) = table.primary_key.columns
    return column


# -- writing values --------------------------------------------------------------------


def canonical_json(value: Any) -> Any:
    """A plain copy of a JSON value with object keys sorted (JSONB reorders them)."""
    if isinstance(value, dict):
        return {str(key): canonical_json(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical_json(item) for item in value]
    return value


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with exactly six fraction digits, the same on every backend."""
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def encode_value(column: Column[Any], value: Any) -> Any:
    """A column value as it appears in the document."""
    if value is None:
        return None
    if isinstance(column.type, JSON):
        return canonical_json(to_plain(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    return value


def encode_row(table: Table, row: Any, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A result row as a document row, columns in table order."""
    mapping = row._mapping
    return {
        str(column.name): encode_value(column, mapping[column])
        for column in table.columns
        if column.name not in skip
    }


# -- reading values --------------------------------------------------------------------


def decode_value(column: Column[Any], value: Any, where: str) -> Any:
    """The Python value to bind for a document value; ``ValidationError`` naming ``where``."""
    column_type = column.type
    if value is None:
        return None
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        if not isinstance(value, str):
            raise ValidationError(f"{where}: expected text, got {_kind(value)}")
        members = column_type.enum_class
        for member in members:
            if value == member.value or value.lower() == str(member.value).lower():
                return member
        valid = ", ".join(str(member.value) for member in members)
        raise ValidationError(f"{where}: unknown value {value[:64]!r}; valid values: {valid}")
    if isinstance(column_type, GUID):
        if not isinstance(value, str):
            raise ValidationError(f"{where}: expected a UUID string, got {_kind(value)}")
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ValidationError(f"{where}: not a valid UUID: {value[:64]!r}") from None
    if isinstance(column_type, UTCDateTime):
        return _decode_datetime(value, where)
    if isinstance(column_type, JSON):
        if (column.table.name, column.name) not in ANY_JSON_COLUMNS and not isinstance(value, dict):
            raise ValidationError(f"{where}: expected a JSON object, got {_kind(value)}")
        _check_json(value, where)
        return value
    if isinstance(column_type, Boolean):
        if not isinstance(value, bool):
            raise ValidationError(f"{where}: expected true or false, got {_kind(value)}")
        return value
    if isinstance(column_type, Integer):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{where}: expected an integer, got {_kind(value)}")
        return value
    if isinstance(column_type, Float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{where}: expected a number, got {_kind(value)}")
        return float(value)
    if isinstance(column_type, String):
        if not isinstance(value, str):
            raise ValidationError(f"{where}: expected text, got {_kind(value)}")
        length = column_type.length
        if length is not None and len(value) > length:
            raise ValidationError(f"{where}: {len(value)} characters long; at most {length} fit")
        if "\x00" in value:
            raise ValidationError(f"{where}: contains a NUL character")
        return value
    return value


def check_psk_ciphertext(value: str, where: str) -> None:
    """Refuse anything but a Fernet token, so a plaintext key can never be imported as one."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) < 57 or raw[0] != 0x80:
        raise ValidationError(f"{where}: not a Fernet token (PSK keys are imported encrypted only)")


def _decode_datetime(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{where}: not an ISO 8601 timestamp: {value[:64]!r}") from None
    else:
        raise ValidationError(f"{where}: expected an ISO 8601 timestamp, got {_kind(value)}")
    # Documents are UTC; a timestamp without an offset is read as UTC, not local time.
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed


def _check_json(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(f"{where}: JSON object keys must be text, got {_kind(key)}")
            _check_json(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{where}: JSON numbers must be finite")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValidationError(f"{where}: not a JSON value ({_kind(value)})")


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
