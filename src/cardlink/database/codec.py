"""One stored-form codec per table: the rule each column's value must meet, and its driver form.

Every write checks values here, whatever the path: the ORM before each flush
(``models.base``), ``add_log`` and ``add_log_batch``, ``find_by``/``count_by``
filters, ``settings.set_value`` and the importer. A ``TableCodec`` is compiled
once per ``Table`` from its columns' types, so a column added to a model is
checked and written by every path with no other edit.

The rules themselves live in ``codec_rules``, the driver form and the multi-row
INSERT in ``codec_stored``, a document's values in ``codec_documents``; this
module gathers them under one name.

The multi-row paths check a whole column at once with a few C-level passes and
go value by value only when the quick pass does not accept it: that pass either
converts the unusual value or words the refusal, so both passes give one answer.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from sqlalchemy import Boolean, Column, Enum, Float, Integer, String, Table

from .codec_documents import CANONICAL_UUID, canonical_uuid, document_decoder
from .codec_rules import (
    EXACT_INTEGER,
    JSON_MAX_DEPTH,
    FieldError,
    Rule,
    check_datetime,
    check_float,
    check_json,
    check_text,
    column_rule,
    enum_rule,
    integer_bounds,
    kind_of,
)
from .codec_stored import StoredForm, columns_of, default_value, insert_columns, insert_rows
from .exceptions import ValidationError
from .types import GUID, UTCDateTime

#: The tables in export and import order: parents before the rows that point at them.
TABLE_NAMES = (
    "devices",
    "cards",
    "sessions",
    "http_exchanges",
    "logs",
    "test_runs",
    "tests",
    "settings",
)

_NONE = type(None)
_UTC = timezone.utc
_zone = attrgetter("tzinfo")


# -- the codec of one table -----------------------------------------------------------------


class TableCodec:
    """The rules of one table's columns: one value at a time, or whole columns at once."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.name = str(table.name)
        self.columns: dict[str, Column[Any]] = {str(c.name): c for c in table.columns}
        self.rules: dict[str, Rule] = {name: column_rule(c) for name, c in self.columns.items()}
        #: Columns a new row must give: not nullable, no default, not a generated key.
        self.required = frozenset(
            name
            for name, column in self.columns.items()
            if not column.nullable
            and column.default is None
            and column.server_default is None
            and not (column.primary_key and column.autoincrement is True)
        )
        self._screens = {name: _screen_for(c, self.rules[name]) for name, c in self.columns.items()}

    def field(self, name: str) -> str:
        return f"{self.name}.{name}"

    def check(self, name: str, value: Any, *, where: str | None = None) -> Any:
        """The accepted form of one value of column ``name``; ValidationError naming the field."""
        if value is None:
            return None
        try:
            return self.rules[name](value)
        except FieldError as error:
            raise ValidationError(f"{where or self.field(name)}: {error}") from None

    def check_columns(
        self, columns: dict[str, list[Any]], where: Callable[[int, str], str]
    ) -> dict[str, list[Any]]:
        """Whole columns checked at once (accepted forms); ``where(row, field)`` names a refusal."""
        checked: dict[str, list[Any]] = {}
        for name, values in columns.items():
            found = self._screens[name](values)
            if found is None:  # something unusual: value by value, which converts or refuses
                rule = self.rules[name]
                found = []
                for index, value in enumerate(values):
                    try:
                        found.append(None if value is None else rule(value))
                    except FieldError as error:
                        raise ValidationError(f"{where(index, name)}: {error}") from None
            if name in self.required and None in found:
                index = found.index(None)
                raise ValidationError(f"{where(index, name)}: required field is missing")
            checked[name] = found
        return checked


@functools.cache
def codec_for(table: Table) -> TableCodec:
    """The codec of ``table``, compiled on first use."""
    return TableCodec(table)


# -- quick whole-column checks (None: look value by value) ------------------------------


Screen = Callable[[list[Any]], "list[Any] | None"]


def _kinds(values: list[Any]) -> set[type]:
    return set(map(type, values))


def _screen_for(column: Column[Any], rule: Rule) -> Screen:
    column_type = column.type
    if column.info.get("normalise") is not None:
        cached = functools.lru_cache(maxsize=4096)(rule)

        def normalised(values: list[Any]) -> list[Any] | None:
            try:
                return [None if value is None else cached(value) for value in values]
            except (FieldError, TypeError):
                return None

        return normalised
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        lookup: dict[Any, Any] = {None: None}
        for member in column_type.enum_class:
            lookup[member] = member  # a str enum also finds its value this way
            lookup[member.name] = member

        def members(values: list[Any]) -> list[Any] | None:
            try:
                return list(map(lookup.__getitem__, values))
            except (KeyError, TypeError):
                return None

        return members
    if isinstance(column_type, GUID):
        return lambda values: values if _kinds(values) <= {uuid.UUID, _NONE} else None
    if isinstance(column_type, UTCDateTime):

        def instants(values: list[Any]) -> list[Any] | None:
            if _kinds(values) <= {datetime, _NONE}:
                if set(map(_zone, filter(None, values))) <= {_UTC}:
                    return values  # UTC already (a zero-offset zone equals it, stored alike)
                try:
                    return [None if value is None else check_datetime(value) for value in values]
                except FieldError:
                    return None
            return None

        return instants
    if isinstance(column_type, Boolean):
        return lambda values: values if _kinds(values) <= {bool, _NONE} else None
    if isinstance(column_type, Integer):
        lowest, highest, _ = integer_bounds(column)

        def integers(values: list[Any]) -> list[Any] | None:
            if not _kinds(values) <= {int, _NONE}:
                return None
            present = [value for value in values if value is not None]
            if present and not (lowest <= min(present) and max(present) <= highest):
                return None
            return values

        return integers
    if isinstance(column_type, Float):

        def floats(values: list[Any]) -> list[Any] | None:
            if not _kinds(values) <= {float, _NONE}:
                return None
            total = sum(filter(None, values))  # NaN or an infinity makes the sum non-finite
            return values if math.isfinite(total) else None

        return floats
    if isinstance(column_type, String):
        length = column_type.length

        def texts(values: list[Any]) -> list[Any] | None:
            if not _kinds(values) <= {str, _NONE}:
                return None
            present = list(filter(None, values))
            joined = "".join(present)
            if "\x00" in joined:
                return None
            if not joined.isascii():
                try:
                    joined.encode("utf-8")
                except UnicodeEncodeError:
                    return None
            if length is not None and present and max(map(len, present)) > length:
                return None
            return values

        return texts

    def one_by_one(values: list[Any]) -> list[Any] | None:
        return None

    return one_by_one


__all__ = [
    "CANONICAL_UUID",
    "EXACT_INTEGER",
    "JSON_MAX_DEPTH",
    "TABLE_NAMES",
    "FieldError",
    "StoredForm",
    "TableCodec",
    "canonical_uuid",
    "check_datetime",
    "check_float",
    "check_json",
    "check_text",
    "codec_for",
    "column_rule",
    "columns_of",
    "default_value",
    "document_decoder",
    "enum_rule",
    "insert_columns",
    "insert_rows",
    "integer_bounds",
    "kind_of",
]
