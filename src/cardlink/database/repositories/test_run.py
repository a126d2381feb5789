"""Run records as rows: the plain create/read/update/delete of ``test_runs``.

``uow.tests`` starts, finishes and reports runs; this repository gives the table the
same generic paths (create, get_by_id, find_by, update, delete, events) every other
table has, so a run record can be written and read like any row.
"""

from __future__ import annotations

from ..events import EventType
from ..models import TestRun
from .base import BaseRepository


class TestRunRepository(BaseRepository[TestRun]):
    """Test runs by run id: span, environment and totals.

    Example::

        run = uow.test_runs.get_by_id("nightly-42")
    """

    __test__ = False  # not a pytest test class
    model = TestRun
    entity_type = "test_run"
    created_event = EventType.TEST_RUN_CREATED
    updated_event = EventType.TEST_RUN_UPDATED
    deleted_event = EventType.TEST_RUN_DELETED
