"""Declarative base: naming convention, timestamps, and the checks run before every flush."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Enum as EnumType
from sqlalchemy import MetaData, event, inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, Session, mapped_column

from ..codec import FieldError, codec_for, enum_rule
from ..exceptions import ValidationError
from ..types import GUID, UTCDateTime, to_plain, to_uuid, utcnow

#: Constraint names fixed from the first migration, so SQLite batch migrations can find them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


#: MySQL/MariaDB tables compare text byte for byte, as SQLite and PostgreSQL do: with the
#: server's usual case-insensitive collation, "rf8m..." would find (and collide with) "RF8M...".
MYSQL_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


class Base(DeclarativeBase):
    """Base of every CardLink entity."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    #: Attributes a repr may show (never a secret).
    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        state = inspect(self)
        shown = []
        for name in self._repr_fields:
            value = state.dict.get(name)
            shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def to_dict(self) -> dict[str, Any]:
        """Column values by attribute name (JSON values as plain dicts/lists)."""
        mapper = inspect(type(self))
        return {attr.key: to_plain(getattr(self, attr.key)) for attr in mapper.column_attrs}


class TimestampMixin:
    """``created_at`` and ``updated_at``, kept by the layer in UTC."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


def check_value(column: Any, value: Any) -> Any:
    """The accepted form of ``value`` for ``column`` (the codec's rule); ValidationError naming
    the field, also for a missing required value."""
    if value is None:
        if not column.nullable and column.default is None and not column.primary_key:
            raise ValidationError(f"{column.table.name}.{column.name}: required field is missing")
        return None
    return codec_for(column.table).check(str(column.name), value)  # type: ignore[arg-type]


def _table_name(mapper: Mapper[Any]) -> str:
    table: Any = mapper.local_table
    return str(table.name)


def validate_entity(entity: Base) -> None:
    """Check every column value of ``entity`` against its column; store normalised forms."""
    mapper = inspect(type(entity))
    state = inspect(entity)
    for attr in mapper.column_attrs:
        column = attr.columns[0]
        if attr.key not in state.dict and state.key is not None:
            continue  # not loaded and not changed
        value = state.dict.get(attr.key)
        if (
            value is None
            and state.key is None
            and (column.default is not None or column.primary_key)
        ):
            continue  # filled in by a default at INSERT
        accepted = check_value(column, value)
        if accepted is not value and column.info.get("normalise") is not None:
            setattr(entity, attr.key, accepted)


def coerce_enum(enum_class: type[enum.Enum], value: Any, field: str) -> Any:
    """The member of ``enum_class`` for a member, its value or its name (any case)."""
    if value is None or isinstance(value, enum_class):
        return value
    try:
        return enum_rule(enum_class)(value)
    except FieldError as error:
        raise ValidationError(f"{field}: {error}") from None


def _coercing_listener(coerce: Any) -> Any:
    def on_set(target: Any, value: Any, oldvalue: Any, initiator: Any) -> Any:
        return coerce(value)

    return on_set


@event.listens_for(Mapper, "mapper_configured")
def _install_coercions(mapper: Mapper[Any], cls: type) -> None:
    """Let enum and UUID attributes accept their text forms and hold the proper Python type."""
    if not issubclass(cls, Base):
        return
    table = _table_name(mapper)
    for attr in mapper.column_attrs:
        column_type = attr.columns[0].type
        field = f"{table}.{attr.columns[0].key}"
        if isinstance(column_type, EnumType) and column_type.enum_class is not None:
            enum_class = column_type.enum_class

            def coerce_member(value: Any, enum_class: Any = enum_class, field: str = field) -> Any:
                return coerce_enum(enum_class, value, field)

            coerce: Any = coerce_member
        elif isinstance(column_type, GUID):

            def coerce_uuid(value: Any, field: str = field) -> Any:
                try:
                    return None if value is None else to_uuid(value)
                except ValidationError:
                    raise ValidationError(
                        f"{field} is not a valid UUID: {str(value)[:64]!r}"
                    ) from None

            coerce = coerce_uuid
        else:
            continue
        event.listen(getattr(cls, attr.key), "set", _coercing_listener(coerce), retval=True)


@event.listens_for(Session, "before_flush")
def _validate_before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    for entity in list(session.new) + list(session.dirty):
        if isinstance(entity, Base):
            validate_entity(entity)
