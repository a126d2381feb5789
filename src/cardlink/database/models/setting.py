"""Setting: a named server setting holding any JSON value."""

from __future__ import annotations

import weakref
from typing import Any

from sqlalchemy import Index, String, Text, event
from sqlalchemy.orm import InstanceState, Mapped, attributes, mapped_column

from ..types import JSONType, _track
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin


class Setting(TimestampMixin, Base):
    """A key-value setting; ``value`` is any JSON value (number, text, list, object)."""

    __tablename__ = "settings"
    __table_args__ = (Index(None, "category"), MYSQL_TABLE_OPTIONS)
    _repr_fields = ("key", "value", "category")

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))


class _ValueOwner:
    """Marks ``Setting.value`` modified when a dict or list inside it is edited in place."""

    def __init__(self, state: InstanceState[Setting]) -> None:
        self._state = weakref.ref(state)

    def changed(self) -> None:
        state = self._state()
        entity = state.obj() if state is not None else None
        if entity is not None and "value" in state.dict:  # type: ignore[union-attr]
            attributes.flag_modified(entity, "value")


def _tracked(state: InstanceState[Setting], value: Any) -> Any:
    return _track(value, _ValueOwner(state))  # type: ignore[arg-type]


@event.listens_for(Setting, "load")
def _track_loaded_value(target: Setting, context: Any) -> None:
    state = attributes.instance_state(target)
    if "value" in state.dict:
        state.dict["value"] = _tracked(state, state.dict["value"])


@event.listens_for(Setting, "refresh")
def _track_refreshed_value(target: Setting, context: Any, keys: Any) -> None:
    _track_loaded_value(target, context)


@event.listens_for(Setting.value, "set", retval=True)
def _track_assigned_value(target: Setting, value: Any, oldvalue: Any, initiator: Any) -> Any:
    return _tracked(attributes.instance_state(target), value)
