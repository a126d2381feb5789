"""One stored-form codec per table: the rule each column's value must meet, and its driver form.

Every write checks values here, whatever the path: the ORM before each flush
(``models.base``), ``add_log`` and ``add_log_batch``, ``find_by``/``count_by``
filters, ``settings.set_value`` and the importer. A ``TableCodec`` is compiled
once per ``Table`` from its columns' types, so a column added to a model is
checked and written by every path with no other edit.

One rule per column type: text (length, NUL, lone surrogates), integers (the
column type's range), floats (finite, in double range), booleans, enums (member,
value or name), UUIDs, timestamps (an instant between years 1 and 9999 in UTC)
and JSON (JSON values only, nested at most ``JSON_MAX_DEPTH`` deep). A column
may narrow an integer range with ``Column.info["range"] = (low, high)``, and add
a normaliser in ``Column.info["normalise"]``, run before the rule, raising
``ValueError`` for a value it refuses (the status word has one).

The multi-row paths check a whole column at once with a few C-level passes and
go value by value only when the quick pass does not accept it: that pass either
converts the unusual value or words the refusal, so both passes give one answer.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Column, Enum, Float, Integer, String, Table
from sqlalchemy.engine import Connection, Dialect

from .bulk import write_records
from .exceptions import ValidationError
from .types import (
    GUID,
    JSONDict,
    UTCDateTime,
    naive_utc_text,
    to_plain,
    to_uuid,
    uuid_from_hex,
)

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

#: Deepest nesting of lists and objects a JSON column takes (``[[1]]`` is 2 deep).
#: MariaDB refuses 32 and more in a JSON column; 20 leaves room and is ample for settings.
JSON_MAX_DEPTH = 20

#: Largest integer a float column (a double everywhere) takes as an integer: it holds
#: every integer up to 2**53 exactly, so a larger one would be stored changed.
EXACT_INTEGER = 2**53

_UTC = timezone.utc
_combine = datetime.combine
_NONE = type(None)


class FieldError(ValueError):
    """A refused value; the caller adds where it was (table, row, field)."""


Rule = Callable[[Any], Any]


# -- the rules, one per column type -------------------------------------------------------


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


def _check_uuid(value: Any) -> uuid.UUID:
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
        rule = _check_uuid
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


# -- the codec of one table -----------------------------------------------------------------


class TableCodec:
    """The rules of one table's columns, and the writer of its rows in driver form."""

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

    def writer(self, dialect: Dialect) -> StoredForm:
        return _stored_form(self.table, dialect.name, dialect.driver)


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


# -- the driver form ----------------------------------------------------------------------


Convert = Callable[[Any], Any]


def _naive_utc(value: datetime) -> datetime:
    return _combine(value, value.time())


def _remembering_last(convert: Convert) -> Convert:
    """``convert`` that reuses its last result for the same object (rows share UUIDs, times)."""
    last: tuple[Any, Any] = (None, None)

    def convert_value(value: Any) -> Any:
        nonlocal last
        seen, found = last
        if value is seen and value is not None:
            return found
        found = None if value is None else convert(value)
        last = (value, found)
        return found

    return convert_value


def _enum_value(value: Any) -> Any:
    return None if value is None else str(value.value)


def _driver_kind(dialect_name: str, driver: str) -> str | None:
    """'sqlite', 'mysql' or 'postgresql' when the driver's own executemany/COPY is known."""
    if dialect_name == "sqlite" and driver == "pysqlite":
        return "sqlite"
    if dialect_name in ("mysql", "mariadb") and driver == "pymysql":
        return "mysql"
    if dialect_name == "postgresql" and driver == "psycopg":
        return "postgresql"
    return None


class StoredForm:
    """Checked values -> the values the driver stores, one converter per column, for one dialect.

    ``driver`` is None when the bulk path does not know the driver, or when a JSON
    column is written (SQLAlchemy's own JSON serialiser does it): the rows then go
    through ``connection.execute(table.insert(), rows)``.
    """

    def __init__(self, table: Table, driver: str | None) -> None:
        self.table = table
        self.driver = driver
        self.converters: dict[str, Convert | None] = {}
        for column in table.columns:
            try:
                self.converters[str(column.name)] = _converter(column, driver)
            except LookupError:
                self.converters[str(column.name)] = None
                self.driver = None

    def convert(self, name: str, values: list[Any]) -> list[Any]:
        convert = self.converters[name]
        if convert is None or self.driver is None:
            return values
        return list(map(convert, values))


def _converter(column: Column[Any], driver: str | None) -> Convert | None:
    """The conversion for one column: a function, or None (value as is). Raises LookupError
    for a column the driver path does not write (JSON: SQLAlchemy's serialiser does)."""
    column_type = column.type
    if isinstance(column_type, GUID):
        if driver == "postgresql":
            return None  # psycopg binds uuid.UUID natively
        return _remembering_last(lambda value: value.hex)
    if isinstance(column_type, UTCDateTime):
        return _remembering_last(naive_utc_text if driver != "postgresql" else _naive_utc)
    if isinstance(column_type, Enum):
        return _enum_value
    if isinstance(column_type, JSON):
        raise LookupError(column.name)
    return None


@functools.cache
def _stored_form(table: Table, dialect_name: str, driver: str) -> StoredForm:
    return StoredForm(table, _driver_kind(dialect_name, driver))


def insert_columns(connection: Connection, table: Table, columns: dict[str, list[Any]]) -> None:
    """INSERT rows given as checked columns (equal lengths) in one executemany or COPY."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return
    form = _stored_form(table, connection.dialect.name, connection.dialect.driver)
    if form.driver is None:
        count = len(columns[names[0]])
        rows = [{name: columns[name][index] for name in names} for index in range(count)]
        connection.execute(table.insert(), rows)
        return
    stored = [form.convert(name, columns[name]) for name in names]
    write_records(connection, form.driver, table, names, list(zip(*stored, strict=True)))


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts of checked values, all with the same keys) into ``table``."""
    if not rows:
        return
    names = list(rows[0])
    insert_columns(connection, table, {name: [row[name] for row in rows] for name in names})


def default_value(column: Column[Any]) -> Any:
    """The value the column's Python-side default gives (``uuid4()``, ``utcnow()``, a constant)."""
    default = column.default
    if default is None:
        return None
    if getattr(default, "is_callable", False):
        return default.arg(None)  # type: ignore[attr-defined]
    return getattr(default, "arg", None)


def columns_of(rows: Sequence[dict[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    """Rows given as dicts, as one list per column name (absent keys are None)."""
    return {name: [row.get(name) for row in rows] for name in names}


# -- document values (export and import) ---------------------------------------------


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
    return found if found is not None else _check_uuid(value)


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
    rule = codec_for(column.table).rules[str(column.name)]  # type: ignore[arg-type]
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
