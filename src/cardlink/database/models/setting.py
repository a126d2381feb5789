"""Setting: a named server setting holding any JSON value."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..types import JSONType
from .base import Base, TimestampMixin


class Setting(TimestampMixin, Base):
    """A key-value setting; ``value`` is any JSON value (number, text, list, object)."""

    __tablename__ = "settings"
    __table_args__ = (Index(None, "category"),)
    _repr_fields = ("key", "value", "category")

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
