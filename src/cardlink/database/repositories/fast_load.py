"""Loading many rows of a simple entity as ORM objects, without the general ORM loader's cost.

``find_by_session`` returns a session's hundreds of logs; SQLAlchemy's ORM loader
spends more per row than the database and driver together (it handles eager
loads, polymorphism, versioning, refreshes and events, none of which a log
uses). ``EntityLoader`` builds the same persistent objects from rows: each row
becomes an instance of the mapped class, registered in the session's identity map
under its primary key, exactly as a query would leave it (lazy relationships load
on access, changes are tracked and flushed). A row whose identity the session
already holds returns that object unchanged, as a query without
``populate_existing`` does. Classes with ``load`` event listeners (e.g. mutable
JSON columns) go through the ORM instead, and so does every class when
``CARDLINK_DB_FAST_PATH=0`` is set or the SQLAlchemy names it needs have moved
(``_sa_internals``, which holds the code that touches them).

``PreparedLoad`` goes one step further for a fixed statement run again and again:
it is compiled once per dialect and run on the driver's cursor (``driver.fetch_all``:
listeners and SQL logging still see it). A column pinned to a parameter is not
selected; only the columns that need it are converted, each as a whole with its
column type's own result processing, and ``RowBuilder`` joins them to the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Dialect, Enum, Select, inspect, select
from sqlalchemy.orm import Session, configure_mappers

from .. import _sa_internals, driver

Decoder = Callable[[Any], Any]
ColumnProcessor = Callable[[Sequence[Any]], list[Any]]


class EntityLoader:
    """Builds ``model`` objects from rows of ``select()``; one per model."""

    def __init__(self, model: type[Any]) -> None:
        configure_mappers()
        mapper = inspect(model)
        self.model = model
        self.table = mapper.local_table
        self.columns = list(self.table.columns)
        self.keys = [mapper.get_property_by_column(column).key for column in self.columns]
        (key_column,) = mapper.primary_key
        self.key_index = self.columns.index(key_column)
        self.manager = mapper.class_manager
        self.supported = not mapper.inherits and not self.manager.dispatch.load
        self.plain = RowBuilder(self)

    @property
    def enabled(self) -> bool:
        """Whether this loader builds the entities, rather than the plain ORM query."""
        return self.supported and _sa_internals.fast_path_enabled()

    def select(self) -> Select[Any]:
        """A Core SELECT of every column, in the order ``load`` expects."""
        return select(*self.columns)

    def load(self, session: Session, statement: Any, params: Any = None) -> list[Any]:
        """Run ``statement`` (built on ``select()``) in ``session`` and return entities."""
        _autoflush(session)
        rows = session.connection().execute(statement, params).all()
        return self.build(session, rows)

    def build(
        self,
        session: Session,
        rows: Sequence[Sequence[Any]],
        builder: RowBuilder | None = None,
        columns: Sequence[Sequence[Any]] = (),
        pinned: Sequence[Any] = (),
    ) -> list[Any]:
        """Persistent entities for rows of ``select()``: of converted values, or of driver
        values with ``builder``'s columns converted apart (``columns``, ``pinned``)."""
        builder = builder or self.plain
        if len(session.identity_map):
            return _sa_internals.entities_beside_held(
                session,
                self.model,
                self.manager,
                self.keys,
                self.key_index,
                builder.merged(rows, columns, pinned),
            )
        # A fresh unit of work holds nothing yet: no row can match a held identity.
        return builder.new_entities(session, self.model, self.manager, rows, columns, pinned)


class RowBuilder:
    """Builds new persistent objects from rows that hold every column but the ``pinned``
    ones (one value for all rows, given apart), with the ``decoded`` columns also given
    apart, converted as whole columns.

    The per-row loop is compiled for the loader's attribute names
    (``_sa_internals.compile_new_entities``, the technique of ``collections.namedtuple``):
    each object's ``__dict__`` is one dict display, and converted values join the row
    without transposing all of it.
    """

    def __init__(
        self, loader: EntityLoader, decoded: Sequence[int] = (), pinned: Sequence[int] = ()
    ) -> None:
        self.width = len(loader.keys)
        self.selected = _selected_columns(self.width, pinned)
        self.decoded = list(decoded)
        self.pinned = list(pinned)
        self.new_entities = _sa_internals.compile_new_entities(
            loader.keys, loader.key_index, self.selected, self.decoded, self.pinned
        )

    def merged(
        self, rows: Sequence[Sequence[Any]], columns: Sequence[Sequence[Any]], pinned: Sequence[Any]
    ) -> Iterable[Sequence[Any]]:
        """Whole rows of converted values, for the path beside held objects."""
        if (not self.decoded and not self.pinned) or not rows:
            return rows
        merged: list[Any] = [()] * self.width
        for index, column in zip(self.selected, zip(*rows, strict=True), strict=True):
            merged[index] = column
        for index, converted in zip(self.decoded, columns, strict=True):
            merged[index] = converted
        for index, value in zip(self.pinned, pinned, strict=True):
            merged[index] = repeat(value, len(rows))
        return zip(*merged, strict=True)


def _selected_columns(width: int, pinned: Iterable[int]) -> list[int]:
    """The positions of a loader's columns a prepared statement selects: all but the pinned."""
    skipped = set(pinned)
    return [index for index in range(width) if index not in skipped]


class PreparedLoad:
    """A fixed ``select()``-based statement of a loader (plain bound parameters, no
    expanding ``IN``), compiled once per dialect.

    ``pinned`` maps a column the WHERE clause holds equal to a parameter onto that
    parameter (``{"session_id": "session_id"}``): every row would carry the
    parameter's value, so the column is not selected and the objects get the value
    as given (in the column's Python type).
    """

    def __init__(
        self, loader: EntityLoader, statement: Select[Any], *, pinned: dict[str, str] | None = None
    ) -> None:
        self.loader = loader
        self.pinned = [
            (loader.columns.index(loader.table.c[column]), parameter)
            for column, parameter in (pinned or {}).items()
        ]
        selected = _selected_columns(len(loader.columns), [index for index, _ in self.pinned])
        self.statement = statement.with_only_columns(*(loader.columns[i] for i in selected))
        # Per engine's dialect, kept only while that engine lives.
        self._by_dialect: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()

    def load(self, session: Session, **params: Any) -> list[Any]:
        """Run the statement with ``params`` in ``session`` and return entities."""
        _autoflush(session)
        connection = session.connection()
        dialect = connection.dialect
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            compiled = self._by_dialect[dialect] = _Compiled(self.loader, self.statement, dialect)
        description, rows = driver.fetch_all(connection, compiled.sql, compiled.parameters(params))
        if not rows:
            return []
        if compiled.builder is None:  # the first run tells each column's driver type
            compiled.plan(dialect, description, [index for index, _ in self.pinned])
        assert compiled.builder is not None
        columns = [decoder(list(map(column_of, rows))) for column_of, decoder in compiled.decoders]
        pinned = [params[parameter] for _, parameter in self.pinned]
        return self.loader.build(session, rows, compiled.builder, columns, pinned)


class _Compiled:
    """One dialect's form of a prepared load: driver SQL, parameter order and converters."""

    def __init__(self, loader: EntityLoader, statement: Select[Any], dialect: Dialect) -> None:
        self.loader = loader
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        binds = compiled.binds
        self.positional = bool(dialect.positional)
        self.names = list(compiled.positiontup or []) if self.positional else list(binds)
        self.binders = {
            name: binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            for name in self.names
        }
        self.decoders: list[tuple[Callable[[Sequence[Any]], Any], _ColumnDecoder]] = []
        self.builder: RowBuilder | None = None

    def plan(
        self, dialect: Dialect, description: Sequence[Sequence[Any]], pinned: list[int]
    ) -> None:
        """Choose the converter of each selected column that needs one, given the driver's
        type codes, and the loop that builds objects with them."""
        columns = self.loader.columns
        selected = _selected_columns(len(columns), pinned)
        decoded: list[int] = []
        decoders: list[tuple[Callable[[Sequence[Any]], Any], _ColumnDecoder]] = []
        for position, (index, described) in enumerate(zip(selected, description, strict=True)):
            decoder = _ColumnDecoder.for_type(columns[index].type, dialect, described[1])
            if decoder is not None:
                decoded.append(index)
                decoders.append((itemgetter(position), decoder))
        self.decoders = decoders
        self.builder = RowBuilder(self.loader, decoded, pinned)  # last: it marks the plan done

    def parameters(self, values: dict[str, Any]) -> Any:
        """Driver parameters for ``values``: bound by each parameter's type, in dialect form."""
        bound = {}
        for name in self.names:
            binder = self.binders[name]
            bound[name] = binder(values[name]) if binder is not None else values[name]
        return tuple(bound[name] for name in self.names) if self.positional else bound


class _ColumnDecoder:
    """Converts one column of driver values with the column type's result processing.

    Enum members come from a lookup table. A column whose first values repeat (a
    session's id, the created_at of rows written together) converts each distinct
    value once, through a memo; otherwise the type's whole-column processor runs when
    it has one, else its per-value one.
    """

    def __init__(self, one: Decoder, whole: ColumnProcessor | None, *, memo: bool = True) -> None:
        self.one = one
        self.whole = whole
        self.memo = memo

    @classmethod
    def for_type(cls, column_type: Any, dialect: Dialect, coltype: Any) -> _ColumnDecoder | None:
        is_enum = isinstance(column_type, Enum) and column_type.enum_class is not None
        if is_enum and not column_type.native_enum:  # VARCHAR of member values everywhere
            lookup = _EnumLookup(column_type).__getitem__
            return cls(lookup, lambda values: list(map(lookup, values)), memo=False)
        one = column_type.dialect_impl(dialect).result_processor(dialect, coltype)
        if one is None:
            return None
        column_form = getattr(column_type, "column_result_processor", None)
        return cls(one, column_form(dialect) if column_form is not None else None)

    def __call__(self, values: Sequence[Any]) -> list[Any]:
        if self.memo:
            try:
                if len(set(values[:8])) <= 4:
                    return list(map(_Memo(self.one).__getitem__, values))
            except TypeError:  # unhashable values (JSON documents)
                pass
        if self.whole is not None:
            return self.whole(values)
        return list(map(self.one, values))


class _Memo(dict[Any, Any]):
    """Driver value -> converted value, converting each distinct value on first sight."""

    def __init__(self, convert: Decoder) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.convert(key)
        return value


class _EnumLookup(dict[Any, Any]):
    """Stored value -> enum member, as a C-level ``__getitem__`` (no Python call per value)."""

    def __init__(self, column_type: Enum) -> None:
        enum_class = column_type.enum_class
        assert enum_class is not None
        super().__init__({str(member.value): member for member in enum_class})
        self[None] = None
        self.name = enum_class.__name__

    def __missing__(self, key: Any) -> Any:
        raise LookupError(f"{key!r} is not a stored value of {self.name}")


def _autoflush(session: Session) -> None:
    if session.autoflush:
        session.flush()  # what a query's autoflush does; a no-op when nothing is pending
