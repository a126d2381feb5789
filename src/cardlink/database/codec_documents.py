"""How a document's values (export and import) become checked column values.

Documents carry UUIDs, timestamps and enums as text; every other column takes its
own rule (``codec_rules``). The decoders remember recent texts, since neighbouring
rows often share a value.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, Enum, Float, String

from .codec_rules import (
    FieldError,
    Rule,
    check_datetime,
    check_float,
    check_text,
    check_uuid,
    column_rule,
    kind_of,
)
from .types import GUID, UTCDateTime, uuid_from_hex

_UTC = timezone.utc


#: A UUID's canonical text, as exported and as PostgreSQL and MariaDB write it.
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def canonical_uuid(value: Any) -> uuid.UUID | None:
    """The UUID of canonical lower-case text (``8-4-4-4-12``), parsed without ``UUID()``'s
    many steps; None for any other form."""
    if value.__class__ is str and len(value) == 36 and CANONICAL_UUID.fullmatch(value):
        return uuid_from_hex(value.replace("-", ""))
    return None


def _document_uuid(value: Any) -> uuid.UUID:
    if not isinstance(value, str):
        raise FieldError(f"expected a UUID string, got {kind_of(value)}")
    found = canonical_uuid(value)
    return found if found is not None else check_uuid(value)


def _document_datetime(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(f"not an ISO 8601 timestamp: {value[:64]!r}") from None
        # Documents are UTC; a timestamp without an offset is read as UTC, not local time.
        return check_datetime(parsed.replace(tzinfo=_UTC) if parsed.tzinfo is None else parsed)
    if isinstance(value, datetime):  # YAML reads timestamps itself
        return check_datetime(value.replace(tzinfo=_UTC) if value.tzinfo is None else value)
    raise FieldError(f"expected an ISO 8601 timestamp, got {kind_of(value)}")


def _document_enum(rule: Rule) -> Rule:
    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise FieldError(f"expected text, got {kind_of(value)}")
        return rule(value)

    return decode


def _remembering_text(decode: Rule) -> Rule:
    """``decode`` that keeps its last text and result: neighbouring rows often share a value
    (a session's logs, timestamps written together), and an equal string is cheap to spot."""
    last: tuple[Any, Any] = (None, None)

    def decode_text(value: Any) -> Any:
        nonlocal last
        if value.__class__ is str:
            seen, found = last
            if value == seen:
                return found
            found = decode(value)
            last = (value, found)
            return found
        return decode(value)

    return decode_text


def document_decoder(column: Column[Any]) -> Rule:
    """How a column's (non-null) document value becomes its checked value; raises FieldError.

    Documents carry UUIDs, timestamps and enums as text; everything else is the
    column's own rule.
    """
    rule = column_rule(column)
    column_type = column.type
    if isinstance(column_type, GUID):
        return _remembering_text(_document_uuid)
    if isinstance(column_type, UTCDateTime):
        return _remembering_text(_document_datetime)
    if isinstance(column_type, Enum):
        return _document_enum(rule)
    if isinstance(column_type, Float):
        return _document_float
    if isinstance(column_type, String):
        if column.info.get("normalise") is None:
            return _document_text(column_type.length)
        return _remembering_accepted(_strict_text(rule))
    return rule


def _document_float(value: Any) -> float:
    if value.__class__ is float and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    return check_float(value)


def _document_text(length: int | None) -> Rule:
    """The text rule for a document's plain text column, in one function per value: a
    row's text fields are most of an import's values. ASCII text without NUL within
    ``length`` is accepted at once; anything else goes through ``check_text`` (its error)."""

    def decode(value: Any) -> Any:
        if value.__class__ is not str:
            raise FieldError(f"expected text, got {kind_of(value)}")
        if "\x00" in value or not value.isascii() or (length is not None and len(value) > length):
            return check_text(value, length=length)
        return value

    return decode


#: How many distinct accepted texts one normalised column's decoder keeps.
_REMEMBERED_TEXTS = 1024


def _remembering_accepted(decode: Rule) -> Rule:
    """``decode`` for a normalised text column, keeping the results of the first accepted
    texts: such columns hold few distinct values (status words), each normalised afresh
    otherwise. A refused value is never kept, so it raises every time."""
    accepted: dict[str, Any] = {}

    def decode_text(value: Any) -> Any:
        if value.__class__ is str:
            found = accepted.get(value)
            if found is not None:
                return found
            found = decode(value)
            if len(accepted) < _REMEMBERED_TEXTS:
                accepted[value] = found
            return found
        return decode(value)

    return decode_text


def _strict_text(rule: Rule) -> Rule:
    def decode(value: Any) -> Any:
        if value.__class__ is not str:
            raise FieldError(f"expected text, got {kind_of(value)}")
        return rule(value)

    return decode


__all__ = ["CANONICAL_UUID", "canonical_uuid", "document_decoder"]
