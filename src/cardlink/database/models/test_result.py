"""TestResult: the outcome of one test case in a test run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..types import GUID, JSONDict, UTCDateTime, enum_column
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin
from .enums import TestStatus


class TestResult(TimestampMixin, Base):
    """One test case's result. ``metadata`` is the guide's name for ``test_metadata``."""

    __test__ = False  # not a pytest test class
    __tablename__ = "tests"
    __table_args__ = (
        # A run's results by test and attempt, with what the history queries read: they
        # group a window of runs from this index alone.
        Index(
            "ix_tests_run_id_outcomes",
            "run_id",
            "suite_name",
            "test_name",
            "attempt",
            "status",
            "duration_ms",
        ),
        Index(None, "suite_name", "test_name"),
        Index(None, "session_id"),
        Index(None, "suite_name", "started_at"),
        Index(None, "status"),
        Index(None, "device_id"),
        Index(None, "card_iccid"),
        Index(None, "created_at"),
        MYSQL_TABLE_OPTIONS,
    )
    _repr_fields = ("id", "run_id", "suite_name", "test_name", "status")

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    run_id: Mapped[str] = mapped_column(String(128), nullable=False)
    suite_name: Mapped[str] = mapped_column(String(255), nullable=False)
    test_name: Mapped[str] = mapped_column(String(255), nullable=False)
    device_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("devices.id", ondelete="SET NULL")
    )
    card_iccid: Mapped[str | None] = mapped_column(
        String(22), ForeignKey("cards.iccid", ondelete="SET NULL")
    )
    status: Mapped[TestStatus] = mapped_column(enum_column(TestStatus), nullable=False)
    #: 1 for the first try; retries of the test in the same run count up.
    attempt: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    #: The OTA session the test drove, so a failure links to its trace.
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, ForeignKey("sessions.id", ondelete="SET NULL")
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    assertions: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    test_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONDict)

    def __init__(self, **kwargs: Any) -> None:
        if "metadata" in kwargs:
            kwargs["test_metadata"] = kwargs.pop("metadata")
        super().__init__(**kwargs)


class _MetadataAttribute:
    """``TestResult.metadata``: the table MetaData on the class, the JSON dict on an instance."""

    def __get__(self, instance: TestResult | None, owner: type) -> Any:
        if instance is None:
            return Base.metadata
        return instance.test_metadata

    def __set__(self, instance: TestResult, value: dict[str, Any] | None) -> None:
        instance.test_metadata = value


# Set after mapping: declarative reserves the name, but only while it scans the class.
TestResult.metadata = _MetadataAttribute()  # type: ignore[assignment]
assert isinstance(TestResult.metadata, MetaData)
