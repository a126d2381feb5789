"""BaseRepository: the CRUD, filtering, counting and pagination every entity repository shares."""

from __future__ import annotations

import functools
import inspect as pyinspect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from sqlalchemy import Enum as EnumType
from sqlalchemy import Select, delete, func, inspect, select
from sqlalchemy.orm import InstrumentedAttribute, Session, make_transient

from ..codec import FieldError, check_datetime, check_text
from ..events import EventType
from ..exceptions import NotFoundError, ValidationError, translated_errors
from ..models import Base
from ..models.base import check_value, coerce_enum
from ..sqlite_locking import lock_for_writing
from ..types import GUID, json_safe, to_uuid, utcnow

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

ModelT = TypeVar("ModelT", bound=Base)
ItemT = TypeVar("ItemT")

#: Columns never copied into an event snapshot or a repr.
SECRET_FIELDS = frozenset({"psk_key_encrypted"})


@dataclass(frozen=True)
class Page(Generic[ItemT]):
    """One page of results, with the totals needed to draw a pager."""

    items: list[ItemT]
    page: int
    per_page: int
    total_items: int

    @property
    def total_pages(self) -> int:
        return max(1, math.ceil(self.total_items / self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def snapshot(entity: Base, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """JSON-safe copy of ``entity``'s columns (or just ``fields``), never a secret."""
    values = entity.to_dict()
    keys = values.keys() if fields is None else [key for key in fields if key in values]
    return {key: json_safe(values[key]) for key in keys if key not in SECRET_FIELDS}


class BaseRepository(Generic[ModelT]):
    """Queries for one entity, run inside the unit of work's transaction."""

    model: ClassVar[type[Base]]
    entity_type: ClassVar[str]
    created_event: ClassVar[EventType | None] = None
    updated_event: ClassVar[EventType | None] = None
    deleted_event: ClassVar[EventType | None] = None

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every public method of a repository (and of its mixins) translates driver errors."""
        super().__init_subclass__(**kwargs)
        for klass in cls.__mro__:
            if klass is not object and (klass is cls or not issubclass(klass, BaseRepository)):
                _translate_public_methods(klass)

    @property
    def session(self) -> Session:
        return self._uow.session

    # -- helpers -------------------------------------------------------------------

    @property
    def _pk(self) -> InstrumentedAttribute[Any]:
        key = str(inspect(self.model).primary_key[0].key)
        return getattr(self.model, self._attribute_for_column(key))  # type: ignore[no-any-return]

    @classmethod
    def _attribute_for_column(cls, column_key: str) -> str:
        mapper = inspect(cls.model)
        for attr in mapper.column_attrs:
            if attr.columns[0].key == column_key:
                return attr.key
        return column_key

    def _coerce_id(self, entity_id: Any) -> Any:
        if isinstance(self._pk.type, GUID):
            return to_uuid(entity_id)
        if entity_id is None:
            raise ValidationError(f"{self.entity_type} id is required")
        return entity_id

    def _column(self, name: str) -> InstrumentedAttribute[Any]:
        """The mapped column attribute ``name`` (the guide's field names are accepted)."""
        mapper = inspect(self.model)
        key = self._attribute_for_column(name)
        if key not in mapper.column_attrs:
            valid = ", ".join(sorted(attr.columns[0].key for attr in mapper.column_attrs))
            raise ValidationError(
                f"unknown {self.entity_type} field {name!r}; valid fields: {valid}"
            )
        return getattr(self.model, key)  # type: ignore[no-any-return]

    def _filter_value(self, column: InstrumentedAttribute[Any], value: Any) -> Any:
        column_type = column.type
        if isinstance(column_type, EnumType) and column_type.enum_class is not None:
            return coerce_enum(column_type.enum_class, value, f"{self.entity_type}.{column.key}")
        if isinstance(column_type, GUID) and value is not None:
            return to_uuid(value)
        if value is not None:  # the wrong type never reaches the driver (it may overflow there)
            return check_value(column.property.columns[0], value)
        return value

    def _where(self, statement: Select[Any], filters: dict[str, Any]) -> Select[Any]:
        for name, value in filters.items():
            column = self._column(name)
            value = self._filter_value(column, value)
            statement = statement.where(column.is_(None) if value is None else column == value)
        return statement

    def _scalars(self, statement: Select[Any]) -> list[ModelT]:
        with translated_errors():
            return list(self.session.scalars(statement).all())

    def _record(self, event_type: EventType | None, entity: Base, **extra: Any) -> None:
        if event_type is None:
            return
        data = snapshot(entity)
        data.update(json_safe(extra))
        self._uow.record(event_type, self.entity_type, json_safe(self._identity(entity)), data)

    def _identity(self, entity: Base) -> Any:
        return getattr(entity, self._pk.key)

    def _write(self, action: Any) -> Any:
        """Run ``action`` and flush inside a SAVEPOINT, so a refused write leaves the UoW usable."""
        lock_for_writing(self.session)
        with translated_errors(), self.session.begin_nested():
            result = action()
            self.session.flush()
        return result

    # -- reads -------------------------------------------------------------------

    def get_by_id(self, entity_id: Any) -> ModelT:
        """The entity with this key; ``NotFoundError`` if there is none."""
        entity = self.find_by_id(entity_id)
        if entity is None:
            raise NotFoundError(f"{self.entity_type} {str(entity_id)[:128]!r} not found")
        return entity

    def find_by_id(self, entity_id: Any) -> ModelT | None:
        """The entity with this key, or None."""
        with translated_errors():
            return self.session.get(self.model, self._coerce_id(entity_id))  # type: ignore[return-value]

    def get_all(self, limit: int | None = None, offset: int = 0) -> list[ModelT]:
        """Entities in key order, optionally one slice of them."""
        statement = select(self.model).order_by(self._pk)
        return self._scalars(_slice(statement, limit, offset))

    def find_by(self, *, limit: int | None = None, offset: int = 0, **filters: Any) -> list[ModelT]:
        """Entities whose fields equal the given values, e.g. ``find_by(device_type=PHONE)``."""
        statement = self._where(select(self.model), filters).order_by(self._pk)
        return self._scalars(_slice(statement, limit, offset))

    def find_one_by(self, **filters: Any) -> ModelT | None:
        """The first entity (in key order) matching the filters, or None."""
        found = self.find_by(limit=1, **filters)
        return found[0] if found else None

    def exists(self, entity_id: Any) -> bool:
        """Whether a row with this key exists."""
        statement = select(self._pk).where(self._pk == self._coerce_id(entity_id)).limit(1)
        with translated_errors():
            return self.session.execute(statement).first() is not None

    def count(self) -> int:
        """Number of rows (a SQL COUNT)."""
        return self.count_by()

    def count_by(self, **filters: Any) -> int:
        """Number of rows matching the filters (a SQL COUNT)."""
        statement = self._where(select(func.count()).select_from(self.model), filters)
        with translated_errors():
            return int(self.session.execute(statement).scalar_one())

    def paginate(
        self,
        page: int = 1,
        per_page: int = 20,
        order_by: str | None = None,
        descending: bool = False,
        **filters: Any,
    ) -> Page[ModelT]:
        """One page of entities, ordered by ``order_by`` (ties broken by key)."""
        if not isinstance(page, int) or page < 1:
            raise ValidationError(f"page must be a whole number >= 1, got {page!r}")
        if not isinstance(per_page, int) or not 1 <= per_page <= 10_000:
            raise ValidationError(f"per_page must be between 1 and 10000, got {per_page!r}")
        if (page - 1) * per_page > MAX_ROW_NUMBER:
            raise ValidationError(f"page {page} is beyond any table's last page")
        order_column = self._column(order_by) if order_by else self._pk
        ordering = [order_column.desc() if descending else order_column.asc()]
        if order_column is not self._pk:
            ordering.append(self._pk.desc() if descending else self._pk.asc())
        total = self.count_by(**filters)
        statement = self._where(select(self.model), filters).order_by(*ordering)
        items = self._scalars(statement.limit(per_page).offset((page - 1) * per_page))
        return Page(items=items, page=page, per_page=per_page, total_items=total)

    # -- writes ------------------------------------------------------------------

    def create(self, entity: ModelT) -> ModelT:
        """Store a new entity; an entity this unit of work already holds is left as it is."""
        if not isinstance(entity, self.model):
            raise ValidationError(
                f"{self.entity_type} repository stores {self.model.__name__}, "
                f"not {type(entity).__name__}"
            )
        if self._already_stored(entity):
            return entity
        self._write(lambda: self.session.add(entity))
        self._record(self.created_event, entity)
        return entity

    def create_all(self, entities: Sequence[ModelT]) -> list[ModelT]:
        """Store several new entities in one flush: all of them, or none."""
        entities = list(entities)
        for entity in entities:
            if not isinstance(entity, self.model):
                raise ValidationError(
                    f"{self.entity_type} repository stores {self.model.__name__}, "
                    f"not {type(entity).__name__}"
                )
        fresh = [entity for entity in entities if not self._already_stored(entity)]
        self._write(lambda: self.session.add_all(fresh))
        for entity in fresh:
            self._record(self.created_event, entity)
        return entities

    def _already_stored(self, entity: ModelT) -> bool:
        """True if the entity's row exists (held here, or detached from an earlier unit of work).

        A detached one is attached to this unit of work; one whose row has gone is made new again.
        """
        state = inspect(entity)
        if not state.has_identity or state.deleted:
            return False
        if state.session is self.session:
            return True
        if self.exists(self._identity(entity)):
            if state.session is None:
                self.session.add(entity)
            return True
        make_transient(entity)
        return False

    def update(self, entity: ModelT) -> ModelT:
        """Save the changes made to ``entity`` (also one loaded by another unit of work)."""
        return self._save(entity, self.updated_event)

    def _save(self, entity: ModelT, event_type: EventType | None) -> ModelT:
        state = inspect(entity)
        if state.session is not self.session:
            if not self.exists(self._identity(entity)):
                raise NotFoundError(
                    f"{self.entity_type} {str(self._identity(entity))[:128]!r} not found"
                )
            entity = self._write(lambda: self.session.merge(entity))
            state = inspect(entity)
        changed = [attr.key for attr in state.attrs if attr.history.has_changes()]
        self._write(lambda: None)
        self._record(event_type, entity, changed_fields=changed)
        return entity

    def delete(self, entity: ModelT) -> None:
        """Delete ``entity``."""
        identity = self._identity(entity)
        data = snapshot(entity)
        state = inspect(entity)
        if state.session is not self.session:
            found = self.find_by_id(identity)
            if found is None:
                raise NotFoundError(f"{self.entity_type} {str(identity)[:128]!r} not found")
            entity = found
        self._write(lambda: self.session.delete(entity))
        if self.deleted_event is not None:
            self._uow.record(self.deleted_event, self.entity_type, json_safe(identity), data)

    def delete_by_id(self, entity_id: Any) -> bool:
        """Delete the entity with this key; returns whether one was deleted."""
        entity = self.find_by_id(entity_id)
        if entity is None:
            return False
        self.delete(entity)
        return True

    def _delete_where(self, *criteria: Any) -> int:
        """Bulk DELETE in SQL; returns the number of rows removed."""
        statement = delete(self.model).where(*criteria).execution_options(synchronize_session=False)
        lock_for_writing(self.session)
        with translated_errors():
            result = self.session.execute(statement)
            self._forget_deleted()
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def _forget_deleted(self) -> None:
        """Drop from the session the held entities whose rows a bulk DELETE removed.

        Only those: expiring everything would leave the caller's other objects
        unreadable once the unit of work closes.
        """
        held = [obj for obj in self.session.identity_map.values() if isinstance(obj, self.model)]
        identities = list({self._identity(obj) for obj in held})
        remaining: set[Any] = set()
        for start in range(0, len(identities), 500):
            chunk = identities[start : start + 500]
            remaining.update(self.session.scalars(select(self._pk).where(self._pk.in_(chunk))))
        for obj in held:
            if self._identity(obj) not in remaining:
                self.session.expunge(obj)
        for owner in list(self.session.identity_map.values()):
            for relationship in inspect(type(owner)).relationships:
                if (
                    relationship.mapper.class_ is self.model
                    and relationship.key in inspect(owner).dict
                ):
                    self.session.expire(owner, [relationship.key])


#: Largest LIMIT/OFFSET every backend takes (a signed 64-bit integer).
MAX_ROW_NUMBER = 2**63 - 1

#: The longest look-back a time window takes (``purge_old(days)``, ``get_statistics(days)``,
#: ``find_recent(hours)``): 1,000 years, well inside what a timestamp holds.
MAX_WINDOW_DAYS = 365_000
_UNIT_DAYS = {"days": 1.0, "hours": 1 / 24}


def cutoff_before(amount: Any, *, unit: str, name: str, positive: bool = False) -> datetime:
    """The instant ``amount`` days or hours before now; ValidationError naming ``name`` and the
    limit for anything but a finite number between 0 (exclusive if ``positive``) and the limit."""
    limit = MAX_WINDOW_DAYS / _UNIT_DAYS[unit]
    lowest = "0 (exclusive)" if positive else "0"
    if (
        isinstance(amount, bool)
        or not isinstance(amount, int | float)
        or not math.isfinite(amount)
        or not 0 <= amount <= limit
        or (positive and amount == 0)
    ):
        shown = (
            repr(amount)
            if isinstance(amount, int | float) and abs(amount) < 10**30
            else ("a larger number" if isinstance(amount, int) else type(amount).__name__)
        )
        raise ValidationError(
            f"{name} must be a number between {lowest} and {limit:,.0f}, got {shown}"
        )
    return utcnow() - timedelta(**{unit: amount})


def instant(value: Any, *, name: str) -> datetime:
    """The aware UTC instant of a ``datetime`` argument; ValidationError naming ``name``."""
    try:
        return check_datetime(value)
    except FieldError as error:
        raise ValidationError(f"{name}: {error}") from None


#: Longest text a LIKE search accepts (SQLite refuses patterns past 50,000 bytes).
MAX_SEARCH_LENGTH = 1000


def check_search_text(text: str, *, what: str) -> None:
    """Refuse text a LIKE pattern cannot carry: NUL (SQLite cuts the pattern there), a lone
    surrogate (no database encodes it), or too long."""
    try:
        check_text(text)
    except FieldError as error:
        raise ValidationError(f"{what} {error}") from None
    if len(text) > MAX_SEARCH_LENGTH:
        raise ValidationError(
            f"{what} is {len(text)} characters long; at most {MAX_SEARCH_LENGTH} are accepted"
        )


def _translate_public_methods(klass: type) -> None:
    """Wrap ``klass``'s public methods in :func:`translated_errors` (once)."""
    for name, member in list(vars(klass).items()):
        if name.startswith("_") or not pyinspect.isfunction(member):
            continue
        if getattr(member, "__translated__", False) or pyinspect.isgeneratorfunction(member):
            continue

        setattr(klass, name, _translating(member))


def _translating(method: Any) -> Any:
    @functools.wraps(method)
    def translating(*args: Any, **kwargs: Any) -> Any:
        with translated_errors():
            return method(*args, **kwargs)

    translating.__translated__ = True  # type: ignore[attr-defined]
    return translating


def like_pattern(text: str) -> str:
    """Lower-case ``%text%`` for LIKE with ``\\`` as escape, so ``%`` and ``_`` match literally."""
    if not isinstance(text, str):
        raise ValidationError(f"search text must be a string, got {type(text).__name__}")
    check_search_text(text, what="search text")
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _is_row_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ROW_NUMBER


def _slice(statement: Select[Any], limit: int | None, offset: int) -> Select[Any]:
    if limit is not None:
        if not _is_row_number(limit):
            raise ValidationError(f"limit must be a whole number >= 0, got {limit!r}")
        statement = statement.limit(limit)
    if offset:
        if not _is_row_number(offset):
            raise ValidationError(f"offset must be a whole number >= 0, got {offset!r}")
        statement = statement.offset(offset)
    return statement


_translate_public_methods(BaseRepository)
