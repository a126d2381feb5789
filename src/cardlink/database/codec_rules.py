"""The rule each column type's values must meet: one rule per column type, used by every write.

Text (length, NUL, lone surrogates), integers (the column type's range), floats
(finite, in double range), booleans, enums (member, value or name), UUIDs,
timestamps (an instant between years 1 and 9999 in UTC) and JSON (JSON values
only, nested at most ``JSON_MAX_DEPTH`` deep). A column may narrow an integer
range with ``Column.info["range"] = (low, high)``, and add a normaliser in
``Column.info["normalise"]``, run before the rule, raising ``ValueError`` for a
value it refuses (the status word has one). ``codec.TableCodec`` compiles these
per table.
"""

from __future__ import annotations

import enum
import functools
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Enum, Float, Integer, String

from .exceptions import ValidationError
from .types import GUID, JSONDict, UTCDateTime, to_plain, to_uuid

#: Deepest nesting of lists and objects a JSON column takes (``[[1]]`` is 2 deep).
#: MariaDB refuses 32 and more in a JSON column; 20 leaves room and is ample for settings.
JSON_MAX_DEPTH = 20

#: Largest integer a float column (a double everywhere) takes as an integer: it holds
#: every integer up to 2**53 exactly, so a larger one would be stored changed.
EXACT_INTEGER = 2**53

_UTC = timezone.utc


class FieldError(ValueError):
    """A refused value; the caller adds where it was (table, row, field)."""


Rule = Callable[[Any], Any]


def kind_of(value: Any) -> str:
    """How a refusal names a value's type."""
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


def check_text(value: str, *, length: int | None = None) -> str:
    """Text a column can store: NUL-free, valid Unicode (no lone surrogate), at most ``length``."""
    if "\x00" in value:
        raise FieldError("contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise FieldError(
                f"contains a lone surrogate (U+{ord(value[error.start]):04X}), not valid Unicode"
            ) from None
    if length is not None and len(value) > length:
        raise FieldError(f"{len(value)} characters long; at most {length} fit")
    return value


def _text_rule(length: int | None) -> Rule:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError(f"expected text, got {kind_of(value)}")
        if isinstance(value, enum.Enum):
            value = str(value.value)
        return check_text(value, length=length)

    return check


def integer_bounds(column: Column[Any]) -> tuple[int, int, str]:
    """The lowest and highest value of an integer column, and how a refusal names them:
    the column type's range, or ``Column.info["range"]`` when the model narrows it."""
    bits = 64 if isinstance(column.type, BigInteger) else 32
    narrowed = column.info.get("range")
    if narrowed is not None:
        low, high = narrowed
        return low, high, f"must be between {low} and {high}"
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, f"is out of range for a {bits}-bit integer"


def _integer_rule(column: Column[Any]) -> Rule:
    lowest, highest, limit = integer_bounds(column)

    def check(value: Any) -> int:
        if value.__class__ is int and lowest <= value <= highest:  # most values, at once
            return value  # type: ignore[no-any-return]
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"expected an integer, got {kind_of(value)}")
        if not lowest <= value <= highest:
            shown = str(value) if abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
            raise FieldError(f"{shown} {limit}")
        return int(value)

    return check


def check_float(value: Any) -> float:
    """A finite double: NaN, infinities and integers a double cannot hold exactly are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"expected a number, got {kind_of(value)}")
    if isinstance(value, int) and not -EXACT_INTEGER <= value <= EXACT_INTEGER:
        raise FieldError(
            f"an integer beyond ±{EXACT_INTEGER} is not stored exactly as a double; give a float"
        )
    number = float(value)
    if not math.isfinite(number):
        raise FieldError(f"must be a finite number, got {number}")
    return number


def _check_bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    raise FieldError(f"expected true or false, got {kind_of(value)}")


def enum_rule(enum_class: type[enum.Enum]) -> Rule:
    """A member of ``enum_class`` for a member, its value or its name (any case)."""
    lookup: dict[Any, enum.Enum] = {}
    for member in enum_class:
        lookup[str(member.value).lower()] = member
        lookup[member.name.lower()] = member
    valid = ", ".join(str(member.value) for member in enum_class)
    valid += ", or the names " + ", ".join(member.name for member in enum_class)

    def check(value: Any) -> Any:
        if isinstance(value, enum_class):
            return value
        found = lookup.get(value.lower()) if isinstance(value, str) else None
        if found is None:
            raise FieldError(f"unknown value {str(value)[:64]!r}; valid values: {valid}")
        return found

    return check


def check_uuid(value: Any) -> uuid.UUID:
    """A ``uuid.UUID`` for a UUID or its text in any form ``to_uuid`` reads."""
    try:
        return to_uuid(value)
    except ValidationError:
        raise FieldError(f"not a valid UUID: {str(value)[:64]!r}") from None


def check_datetime(value: Any) -> datetime:
    """The aware UTC instant of a ``datetime`` (naive means local time), within years 1-9999."""
    if value.__class__ is datetime and value.tzinfo is _UTC:
        return value  # type: ignore[no-any-return]
    if not isinstance(value, datetime):
        raise FieldError(f"expected a datetime, got {kind_of(value)}")
    try:
        return value.astimezone(_UTC)
    except (OverflowError, ValueError):
        raise FieldError(
            f"{value.isoformat()} is out of range: timestamps lie between "
            "0001-01-01 and 9999-12-31 in UTC"
        ) from None


def check_json(value: Any, *, objects_only: bool = False) -> Any:
    """A plain copy of a JSON value: text keys, finite numbers, valid text, nested at most
    ``JSON_MAX_DEPTH`` deep. Walked without recursion, so any depth is refused cleanly."""
    if objects_only and not isinstance(value, dict):
        raise FieldError(f"expected a JSON object, got {kind_of(value)}")
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= JSON_MAX_DEPTH:
                raise FieldError(f"JSON nested more than {JSON_MAX_DEPTH} deep")
            if isinstance(item, dict):
                for key, inner in item.items():
                    if not isinstance(key, str):
                        raise FieldError(f"JSON object keys must be text, got {kind_of(key)}")
                    _check_json_text(key)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            _check_json_text(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise FieldError("JSON numbers must be finite")
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > 2**64:  # JSONB and MariaDB hold numbers as doubles or decimals
                raise FieldError("JSON integers must lie within 64 bits")
        elif item is not None and not isinstance(item, bool):
            raise FieldError(f"not JSON-serialisable: {kind_of(item)}")
    return to_plain(value)


def _check_json_text(text: str) -> None:
    try:
        check_text(text)
    except FieldError as error:
        raise FieldError(f"JSON text {error}") from None


def column_rule(column: Column[Any]) -> Rule:
    """The rule for a column's non-null values: returns the accepted value, raises FieldError."""
    column_type = column.type
    rule: Rule
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        rule = enum_rule(column_type.enum_class)
    elif isinstance(column_type, GUID):
        rule = check_uuid
    elif isinstance(column_type, UTCDateTime):
        rule = check_datetime
    elif isinstance(column_type, JSON):
        rule = functools.partial(check_json, objects_only=column_type is JSONDict)
    elif isinstance(column_type, Boolean):
        rule = _check_bool
    elif isinstance(column_type, Integer):
        rule = _integer_rule(column)
    elif isinstance(column_type, Float):
        rule = check_float
    elif isinstance(column_type, String):
        rule = _text_rule(column_type.length)
    else:
        raise TypeError(f"no codec rule for {column.table.name}.{column.name} ({column_type!r})")
    normalise = column.info.get("normalise")
    if normalise is None:
        return rule

    def normalised(value: Any) -> Any:
        try:
            value = normalise(value)
        except ValueError as error:
            raise FieldError(str(error)) from None
        return rule(value)

    return normalised


__all__ = [
    "EXACT_INTEGER",
    "JSON_MAX_DEPTH",
    "FieldError",
    "Rule",
    "check_datetime",
    "check_float",
    "check_json",
    "check_text",
    "check_uuid",
    "column_rule",
    "enum_rule",
    "integer_bounds",
    "kind_of",
]
