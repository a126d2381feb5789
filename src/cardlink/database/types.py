"""Column types shared by the models, so the three backends store and return the same values.

Time-zone rule: every timestamp is stored in UTC. A naive ``datetime`` handed to
the layer (``datetime.now()``) is taken as the machine's local time and
converted; an aware one is converted from its own zone. Timestamps come back
as aware UTC datetimes on every backend.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timezone
from itertools import repeat
from operator import add
from typing import Any

import yaml
from sqlalchemy import JSON, DateTime, Dialect, String, TypeDecorator, Uuid
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.ext.mutable import Mutable

from ._sa_internals import uuid_from_hex
from .exceptions import ValidationError

#: YAML's safe loader (never builds Python objects), in its C version when libyaml is there.
SAFE_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def to_utc(value: datetime) -> datetime:
    """Aware UTC ``datetime`` for ``value``; naive values count as local time."""
    if not isinstance(value, datetime):
        raise ValidationError(f"expected a datetime, got {type(value).__name__}")
    try:
        return value.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ValidationError(
            f"{value.isoformat()} is out of range: timestamps lie between "
            "0001-01-01 and 9999-12-31 in UTC"
        ) from None


def naive_utc_text(value: datetime) -> str:
    """A UTC ``datetime`` as naive text with microseconds (``2024-05-06 07:08:09.123456``).

    The one place this form is written: it is how SQLite stores a timestamp, and what
    MySQL's DATETIME(6) reads without PyMySQL escaping a ``datetime`` (bulk writes).
    """
    return datetime.combine(value, value.time()).isoformat(" ", "microseconds")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


_PROBE = datetime(2001, 2, 3, 4, 5, 6, 7)


def stores_iso_text(impl: Any, dialect: Dialect) -> bool:
    """Whether ``impl`` (a dialect's ``DateTime``) stores a datetime as the text
    ``isoformat(" ", "microseconds")`` gives, as SQLite's does by default."""
    processor = impl.bind_processor(dialect)
    return processor is not None and processor(_PROBE) == _PROBE.isoformat(" ", "microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC with microseconds and returned aware in UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return to_utc(value).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite through a raw text() query
            value = datetime.fromisoformat(value)
        return _as_utc(value) if value.tzinfo is None else value

    def bind_processor(self, dialect: Dialect) -> Any:
        """``process_bind_param`` and the dialect's own step fused (bulk writes bind millions)."""
        impl_processor = self.impl_instance.bind_processor(dialect)
        as_text = stores_iso_text(self.impl_instance, dialect)  # SQLite
        combine, utc = datetime.combine, timezone.utc

        def process(value: Any) -> Any:
            if value is None:
                return None
            if value.__class__ is not datetime or value.tzinfo is not utc:
                value = to_utc(value)  # refuses a non-datetime; naive means local time
            if as_text:
                return naive_utc_text(value)
            naive = combine(value, value.time())
            return impl_processor(naive) if impl_processor is not None else naive

        return process

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """One fused step per value (read paths load millions of timestamps)."""
        impl_processor = self.impl_instance.result_processor(dialect, coltype)
        combine, utc = datetime.combine, timezone.utc
        if stores_iso_text(self.impl_instance, dialect):
            fromisoformat = datetime.fromisoformat

            def parse(value: Any) -> datetime | None:  # SQLite stores text
                if value is None:
                    return None
                moment: Any
                try:
                    moment = fromisoformat(value)
                except (TypeError, ValueError):
                    moment = impl_processor(value) if impl_processor else value
                return combine(moment, moment.time(), utc) if moment.tzinfo is None else moment

            return parse

        def process(value: Any) -> datetime | None:
            if value is None:
                return None
            if impl_processor is not None and value.__class__ is not datetime:
                value = impl_processor(value)
            return combine(value, value.time(), utc) if value.tzinfo is None else value

        return process

    def column_result_processor(self, dialect: Dialect) -> Any:
        """A whole column's values at once, without a Python call per value, where possible.

        SQLite's text parses in C once an explicit UTC offset is appended; a value of
        another form (``None``, an offset of its own) sends the column through the
        per-value processor. ``None``: the dialect returns datetimes already.
        """
        for_dialect: Any = self.dialect_impl(dialect)
        if not stores_iso_text(for_dialect.impl_instance, dialect):
            return None
        one_by_one: Any = for_dialect.result_processor(dialect, None)
        fromisoformat, utc_offset = datetime.fromisoformat, repeat("+00:00")

        def process_column(values: Any) -> list[datetime | None]:
            try:
                return list(map(fromisoformat, map(add, values, utc_offset)))
            except (TypeError, ValueError):
                return list(map(one_by_one, values))

        return process_column


def _as_utc(value: datetime) -> datetime:
    """A naive UTC ``datetime`` made aware (``combine``: no keyword handling per value)."""
    return datetime.combine(value, value.time(), timezone.utc)


def to_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """``uuid.UUID`` for a UUID or its string form; anything else is a ValidationError."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, AttributeError, TypeError):
        raise ValidationError(f"not a valid UUID: {str(value)[:64]!r}") from None


class GUID(TypeDecorator[uuid.UUID]):
    """A UUID column (native on PostgreSQL, CHAR(32) elsewhere) that also accepts strings."""

    impl = Uuid
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        return None if value is None else to_uuid(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        return None if value is None else to_uuid(value)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """Stored keys become ``UUID`` objects in one step (a session's logs share one id)."""
        impl_processor = self.impl_instance.result_processor(dialect, coltype)
        last: tuple[Any, uuid.UUID | None] = (None, None)

        def process(value: Any) -> uuid.UUID | None:
            nonlocal last
            if value is None or value.__class__ is uuid.UUID:
                return value  # type: ignore[no-any-return]
            seen, found = last  # one tuple, so threads sharing this processor stay consistent
            if value == seen:
                return found
            if value.__class__ is str and len(value) == 32:  # CHAR(32) hex, as written
                found = uuid_from_hex(value)
            else:
                found = to_uuid(impl_processor(value) if impl_processor else value)  # type: ignore[arg-type]
            last = (value, found)
            return found

        return process


def _json_type() -> Any:
    return JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


#: JSON everywhere, JSONB on PostgreSQL; a Python ``None`` is stored as SQL NULL.
JSONType = _json_type()


def json_safe(value: Any) -> Any:
    """``value`` with UUIDs, datetimes and enums turned into JSON-friendly text."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_plain(value: Any) -> Any:
    """Plain ``dict``/``list`` copy of a (possibly change-tracked) JSON value."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    return value


class _TrackedDict(dict[str, Any]):
    """A nested dict that reports in-place changes to the attribute that owns it."""

    def __init__(self, data: dict[str, Any], root: Mutable) -> None:
        super().__init__({key: _track(item, root) for key, item in data.items()})
        self._root = root

    def _changed(self) -> None:
        self._root.changed()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _track(value, self._root))
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            super().__setitem__(key, _track(value, self._root))
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:
        value = super().pop(key, *default)
        self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()


class _TrackedList(list[Any]):
    """A nested list that reports in-place changes to the attribute that owns it."""

    def __init__(self, data: list[Any], root: Mutable) -> None:
        super().__init__(_track(item, root) for item in data)
        self._root = root

    def _changed(self) -> None:
        self._root.changed()

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, _track(value, self._root))
        self._changed()

    def __delitem__(self, index: Any) -> None:
        super().__delitem__(index)
        self._changed()

    def append(self, value: Any) -> None:
        super().append(_track(value, self._root))
        self._changed()

    def extend(self, values: Any) -> None:
        super().extend(_track(value, self._root) for value in values)
        self._changed()

    def insert(self, index: Any, value: Any) -> None:
        super().insert(index, _track(value, self._root))
        self._changed()

    def pop(self, index: Any = -1) -> Any:
        value = super().pop(index)
        self._changed()
        return value

    def remove(self, value: Any) -> None:
        super().remove(value)
        self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        super().sort(*args, **kwargs)
        self._changed()

    def reverse(self) -> None:
        super().reverse()
        self._changed()


def _track(value: Any, root: Mutable) -> Any:
    if isinstance(value, dict):
        return _TrackedDict(value, root)
    if isinstance(value, list | tuple):
        return _TrackedList(list(value), root)
    return value


class MutableJSONDict(Mutable, _TrackedDict):
    """A JSON object attribute whose edits persist, however deeply nested."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        _TrackedDict.__init__(self, data or {}, self)

    @classmethod
    def coerce(cls, key: str, value: Any) -> Any:
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return cls(value)
        raise ValidationError(f"{key}: expected a JSON object (dict), got {type(value).__name__}")

    def __getstate__(self) -> dict[str, Any]:
        return to_plain(self)  # type: ignore[no-any-return]

    def __setstate__(self, state: dict[str, Any]) -> None:
        _TrackedDict.__init__(self, state, self)


#: A JSON-object column with nested change tracking.
JSONDict = MutableJSONDict.as_mutable(_json_type())


class LabelledEnum(str, enum.Enum):
    """A string enum whose ``str()`` and format are its value, as stored in the database."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, format_spec: str) -> str:
        return format(str(self.value), format_spec)


def enum_column(enum_class: type[enum.Enum]) -> Any:
    """Enum stored as its value in a VARCHAR, so all backends agree and new members need no DDL."""
    longest = max(len(str(member.value)) for member in enum_class)
    return SAEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        validate_strings=True,
        length=max(16, longest),
        values_callable=lambda members: [str(member.value) for member in members],
    )


__all__ = [
    "GUID",
    "SAFE_YAML_LOADER",
    "JSONDict",
    "JSONType",
    "LabelledEnum",
    "String",
    "UTCDateTime",
    "enum_column",
    "json_safe",
    "naive_utc_text",
    "to_plain",
    "to_utc",
    "to_uuid",
    "utcnow",
]
