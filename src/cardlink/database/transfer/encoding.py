"""How each column's value is written into the export document, from what the driver returns.

See ``formats`` for the document layout: a UUID is its canonical text, a timestamp
ISO 8601 in UTC with microseconds, an enum its stored value, a JSON column its
JSON with object keys sorted (every backend writes the same text).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, Dialect, Enum, String, Table, cast, type_coerce
from sqlalchemy.types import NullType

from ..codec import CANONICAL_UUID
from ..types import GUID, UTCDateTime, to_plain

_HEX_UUID = re.compile(r"[0-9a-f]{32}")


def canonical_json(value: Any) -> Any:
    """A plain copy of a JSON value with object keys sorted (JSONB reorders them)."""
    if isinstance(value, dict):
        return {str(key): canonical_json(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical_json(item) for item in value]
    return value


def format_datetime(value: datetime) -> str:
    """ISO 8601 in UTC with exactly six fraction digits, the same on every backend."""
    if value.tzinfo is not timezone.utc:
        value = value.astimezone(timezone.utc)
    return value.isoformat(timespec="microseconds")


def _encode_json(value: Any) -> Any:
    return canonical_json(to_plain(value))


def _encode_enum(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def encoder_for(column: Column[Any]) -> Callable[[Any], Any] | None:
    """How a column's (non-null) value is written; None when it is written as it is."""
    column_type = column.type
    if isinstance(column_type, JSON):
        return _encode_json
    if isinstance(column_type, Enum):
        return _encode_enum
    if isinstance(column_type, GUID):
        return str
    if isinstance(column_type, UTCDateTime):
        return format_datetime
    return None


def encode_value(column: Column[Any], value: Any) -> Any:
    """A column value as it appears in the document."""
    encode = encoder_for(column)
    return value if value is None or encode is None else encode(value)


class RowEncoder:
    """Turns a table's result rows into document rows (columns in table order), fast.

    Timestamps, enums and UUIDs are selected as the driver returns them (timestamps
    as text on MySQL, UUIDs as text on PostgreSQL) and written straight from that
    stored form; a value not in the form the package stores goes through the column
    type's own reading first, so the document is the same either way. Select
    ``columns`` (any extra columns after them are ignored) and pass a page of the
    rows to ``page``.
    """

    def __init__(
        self, table: Table, dialect: Dialect, *, skip: frozenset[str] = frozenset()
    ) -> None:
        kept = [column for column in table.columns if column.name not in skip]
        self.names = [str(column.name) for column in kept]
        self.columns: list[Any] = []
        encoders: dict[int, Callable[[Any], Any]] = {}
        for position, column in enumerate(kept):
            encode = _stored_encoder(column, dialect)
            if encode is None:
                self.columns.append(column)
                encode = encoder_for(column)
            elif dialect.name in ("mysql", "mariadb") and isinstance(column.type, UTCDateTime):
                # As text: the stored form is what the document wants, no PyMySQL parsing.
                self.columns.append(cast(column, String()).label(column.name))
            elif dialect.name == "postgresql" and isinstance(column.type, GUID):
                # As text: the server writes the canonical form the document wants.
                self.columns.append(cast(column, String()).label(column.name))
            else:
                self.columns.append(type_coerce(column, NullType()).label(column.name))
            if encode is not None:
                encoders[position] = encode
        self.page = _compile_page_encoder(self.names, encoders)


#: A page of rows -> document rows, compiled per table: one dict display per row with
#: the column names as constants, and each encoder called inline (no per-row loop).
_PAGE = """\
def encode_page(rows):
    return [
        {{{items}}}
        for ({values}*_) in rows
    ]
"""


def _compile_page_encoder(
    names: list[str], encoders: dict[int, Callable[[Any], Any]]
) -> Callable[[Any], list[dict[str, Any]]]:
    items = []
    for position, name in enumerate(names):
        value = f"v{position}"
        if position in encoders:
            value = f"None if {value} is None else e{position}({value})"
        items.append(f"{name!r}: {value}")
    source = _PAGE.format(
        items=", ".join(items), values="".join(f"v{position}, " for position in range(len(names)))
    )
    namespace: dict[str, Any] = {f"e{position}": encode for position, encode in encoders.items()}
    exec(compile(source, f"<page encoder {', '.join(names)}>", "exec"), namespace)
    encode_page: Callable[[Any], list[dict[str, Any]]] = namespace["encode_page"]
    return encode_page


def _stored_encoder(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The encoder of a column read in its stored form, or None to read it as its type."""
    column_type = column.type
    if not isinstance(column_type, UTCDateTime | Enum | GUID):
        return None
    process = column_type.dialect_impl(dialect).result_processor(dialect, None)

    def read(value: Any) -> Any:
        return value if process is None else process(value)

    if isinstance(column_type, GUID):
        hex_form, canonical_form = _HEX_UUID.fullmatch, CANONICAL_UUID.fullmatch

        def encode_uuid(value: Any) -> Any:
            if value.__class__ is str:
                if len(value) == 32 and hex_form(value):  # CHAR(32), as the package writes
                    return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
                if len(value) == 36 and canonical_form(value):  # PostgreSQL's text, MariaDB's
                    return value
            return str(read(value))

        return encode_uuid

    if isinstance(column_type, Enum):
        known = {text: _encode_enum(read(text)) for text in column_type.enums}

        def encode_enum(value: Any) -> Any:
            found = known.get(value) if value.__class__ is str else None
            return found if found is not None else _encode_enum(read(value))

        return encode_enum
    fromisoformat = datetime.fromisoformat

    def encode_time(value: Any) -> str:
        if value.__class__ is datetime and value.tzinfo is None:
            return value.isoformat("T", "microseconds") + "+00:00"  # PostgreSQL's naive UTC
        if value.__class__ is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            try:  # SQLite's or MySQL's text, parsed only to make sure it is a naive timestamp
                canonical = fromisoformat(value).tzinfo is None
            except ValueError:
                canonical = False
            if canonical:
                return f"{value[:10]}T{value[11:]}+00:00"
        return format_datetime(read(value))

    return encode_time
