"""TestRun: one run of a test suite, with its span, environment and totals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..types import JSONDict, UTCDateTime
from .base import MYSQL_TABLE_OPTIONS, Base, TimestampMixin


class TestRun(TimestampMixin, Base):
    """A test run, keyed by the ``run_id`` its results carry.

    ``environment`` holds what the run ran against (device, card, server version,
    revision, tags); the totals are counted from the results by ``finish_run`` and
    count each test once, by its last attempt.
    """

    __test__ = False  # not a pytest test class
    __tablename__ = "test_runs"
    __table_args__ = (Index(None, "started_at"), MYSQL_TABLE_OPTIONS)
    _repr_fields = ("run_id", "started_at", "ended_at")

    run_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    environment: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    total: Mapped[int | None] = mapped_column(Integer)
    passed: Mapped[int | None] = mapped_column(Integer)
    failed: Mapped[int | None] = mapped_column(Integer)
    skipped: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
