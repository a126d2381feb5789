"""The fast loaders leave a unit of work exactly as the plain ORM query does.

Each log reader that builds entities itself (``repositories/fast_load.py``) is run
twice on identical data: once with ``CARDLINK_DB_FAST_PATH=0`` (the plain ORM
query) and once with the fast path on. What a caller can see is compared: every
column, identity-map membership, attribute state, expire and refresh, change
tracking that persists on commit, lazy relationships and delete.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, update

from cardlink.database import CommDirection, CommLog, DatabaseManager, UnitOfWork
from cardlink.database._sa_internals import FAST_PATH_VARIABLE

Loader = Callable[[Any, uuid.UUID], list[CommLog]]

#: Every reader that goes through the fast loaders when a session id is given.
LOADERS: dict[str, Loader] = {
    "find_by_session": lambda uow, sid: uow.logs.find_by_session(sid),
    "find_by_session page": lambda uow, sid: uow.logs.find_by_session(sid, limit=4, offset=1),
    "find_commands": lambda uow, sid: uow.logs.find_commands(sid),
    "find_responses": lambda uow, sid: uow.logs.find_responses(sid),
    "find_by_status": lambda uow, sid: uow.logs.find_by_status(sid, "9000"),
    "find_errors": lambda uow, sid: uow.logs.find_errors(sid),
    "search_hex": lambda uow, sid: uow.logs.search_hex("a4", session_id=sid),
}

START = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def _rows(session_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """Logs with every column filled or empty somewhere; two share a timestamp."""
    return [
        (session_id, CommDirection.COMMAND, "00A4040008A000000151000000", "SELECT", None, None,
         None, START),
        (session_id, CommDirection.RESPONSE, "6A82", None, "6A82", "not found", 1.25,
         START + timedelta(milliseconds=5)),
        (session_id, CommDirection.COMMAND, "80F2", "GET STATUS", None, None, None,
         START + timedelta(seconds=1)),
        (session_id, CommDirection.RESPONSE, "01029000", None, None, None, 0.5,
         START + timedelta(seconds=1)),
        (session_id, CommDirection.COMMAND, "00A40000023F00", None, None, None, None,
         START + timedelta(seconds=2, microseconds=7)),
        (session_id, CommDirection.RESPONSE, "9000", "ok", "9000", "success", 12.0,
         START + timedelta(seconds=3)),
    ]  # fmt: skip


@pytest.fixture
def two_sessions(manager: DatabaseManager) -> tuple[uuid.UUID, uuid.UUID]:
    """Two OTA sessions with identical logs, written in one batch (same created_at)."""
    with UnitOfWork(manager) as uow:
        first = uow.sessions.create_session(session_type="fast-path-test").id
        second = uow.sessions.create_session(session_type="fast-path-test").id
        uow.logs.add_log_batch(_rows(first) + _rows(second))
        uow.commit()
    return first, second


@contextmanager
def _fast_path(monkeypatch: pytest.MonkeyPatch, on: bool) -> Iterator[None]:
    with monkeypatch.context() as patch:
        patch.setenv(FAST_PATH_VARIABLE, "1" if on else "0")
        yield


class _Normalizer:
    """Replaces what differs between the two sessions by design: their ids."""

    def __init__(self, manager: DatabaseManager, session_id: uuid.UUID) -> None:
        with UnitOfWork(manager) as uow:
            statement = select(CommLog.id).where(CommLog.session_id == session_id)
            ids = sorted(uow.session.scalars(statement))
        self.session_id = session_id
        self.rank = {log_id: f"log#{index}" for index, log_id in enumerate(ids)}

    def __call__(self, value: Any) -> Any:
        if value == self.session_id:
            return "SID"
        if isinstance(value, tuple):
            return tuple(self(item) for item in value)
        if isinstance(value, int) and not isinstance(value, bool) and value in self.rank:
            return self.rank[value]
        return value


def _columns(entity: CommLog, normal: _Normalizer) -> dict[str, Any]:
    """Every mapped column, with its value and type (an aware UTC datetime, an enum...)."""
    values = {}
    for attribute in inspect(CommLog).column_attrs:
        value = getattr(entity, attribute.key)
        zone = value.tzinfo if isinstance(value, datetime) else None
        (column,) = attribute.columns
        # Only a log's own key and links to logs are ids; P1 = 4 is not log #4.
        is_log_id = column.primary_key or any(
            key.column.table is column.table for key in column.foreign_keys
        )
        shown = normal(value) if is_log_id or not isinstance(value, int) else value
        values[attribute.key] = (shown, type(value).__name__, zone)
    return values


def _state(uow: Any, entity: CommLog, normal: _Normalizer) -> dict[str, Any]:
    """What the unit of work knows about ``entity``: identity, membership, attribute state."""
    state = inspect(entity)
    identity_map = uow.session.identity_map
    return {
        "persistent": state.persistent,
        "key": normal(state.key[1]) if state.key else None,
        "in session": entity in uow.session,
        "session is the unit's": state.session is uow.session,
        "in identity map": state.key in identity_map and identity_map[state.key] is entity,
        "get returns it": uow.session.get(CommLog, entity.id) is entity,
        "unloaded": sorted(state.unloaded),
        "expired": sorted(state.expired_attributes),
        "modified": state.modified,
        "dirty": entity in uow.session.dirty,
        "history": {attribute.key: tuple(map(len, attribute.history)) for attribute in state.attrs},
    }


def _orm_queries(session: Any) -> list[Any]:
    """Statements run through the ORM's query machinery in ``session`` (a plain ORM read)."""
    seen: list[Any] = []
    event.listen(session, "do_orm_execute", seen.append)
    return seen


def _scenario(
    manager: DatabaseManager, session_id: uuid.UUID, name: str
) -> tuple[dict[str, Any], int]:
    """Everything a caller sees through one loader; and how many ORM queries it ran."""
    load = LOADERS[name]
    normal = _Normalizer(manager, session_id)
    seen: dict[str, Any] = {}
    orm_queries = 0

    # A fresh unit of work: every column, identity and state; a second call, same objects.
    with UnitOfWork(manager) as uow:
        queries = _orm_queries(uow.session)
        found = load(uow, session_id)
        orm_queries += len(queries)
        seen["columns"] = [_columns(entity, normal) for entity in found]
        seen["state"] = [_state(uow, entity, normal) for entity in found]
        again = load(uow, session_id)
        seen["same objects again"] = [a is b for a, b in zip(found, again, strict=True)]
        seen["lazy session"] = [normal(entity.session.id) for entity in found]

    # Beside a held object with an unflushed edit: the held object comes back as it is.
    with UnitOfWork(manager) as uow:
        first_id = min(normal.rank)
        held = uow.session.get(CommLog, first_id)
        assert held is not None
        held.status_message = "held edit"
        found = load(uow, session_id)
        seen["beside held"] = [
            (entity is held, entity.status_message, _state(uow, entity, normal)) for entity in found
        ]
        uow.rollback()

    # Expire and refresh see a change made behind the ORM's back.
    with UnitOfWork(manager) as uow:
        found = load(uow, session_id)
        if found:
            behind = update(CommLog.__table__).values(decoded_data="changed behind")
            uow.session.connection().execute(behind.where(CommLog.id == found[0].id))
            seen["before refresh"] = found[0].decoded_data
            uow.session.refresh(found[0])
            seen["after refresh"] = found[0].decoded_data
            uow.session.expire(found[-1])
            seen["expired state"] = _state(uow, found[-1], normal)
            uow.session.connection().execute(
                behind.values(decoded_data="expired, reloaded").where(CommLog.id == found[-1].id)
            )
            seen["reloaded on access"] = found[-1].decoded_data
            seen["state after reload"] = _state(uow, found[-1], normal)
        uow.rollback()

    # Change tracking: an edit is seen as a change and persists on commit.
    with UnitOfWork(manager) as uow:
        found = load(uow, session_id)
        for entity in found:
            entity.decoded_data = f"edited {normal(entity.id)}"
            entity.latency_ms = 99.5
        seen["edited state"] = [_state(uow, entity, normal) for entity in found]
        edited = [entity.id for entity in found]
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = [uow.session.get(CommLog, log_id) for log_id in edited]
        seen["persisted"] = [
            (entity.decoded_data, entity.latency_ms) for entity in stored if entity is not None
        ]

    # Delete: the last object found goes, in the database too.
    with UnitOfWork(manager) as uow:
        found = load(uow, session_id)
        if found:
            uow.logs.delete(found[-1])
            seen["deleted state"] = inspect(found[-1]).deleted
            gone = found[-1].id
            uow.commit()
            seen["after delete"] = inspect(found[-1]).detached
    with UnitOfWork(manager) as uow:
        seen["left"] = [normal(entity.id) for entity in uow.logs.find_by_session(session_id)]
        seen["deleted row gone"] = uow.session.get(CommLog, gone) is None if found else None
        queries = _orm_queries(uow.session)
        load(uow, session_id)
        orm_queries += len(queries)
    return seen, orm_queries


@pytest.mark.parametrize("name", list(LOADERS))
def test_fast_loader_leaves_the_unit_of_work_as_the_plain_orm_query_does(
    manager: DatabaseManager,
    two_sessions: tuple[uuid.UUID, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    orm_side, fast_side = two_sessions
    with _fast_path(monkeypatch, on=False):
        through_orm, orm_queries = _scenario(manager, orm_side, name)
    with _fast_path(monkeypatch, on=True):
        through_fast_path, fast_queries = _scenario(manager, fast_side, name)
    # The two sides took different roads: the ORM's query machinery, or none of it.
    assert orm_queries >= 2 and fast_queries == 0
    assert through_orm["columns"], f"{name} found nothing: the data misses the case"
    for aspect in through_orm:
        assert through_fast_path[aspect] == through_orm[aspect], aspect
    assert through_fast_path.keys() == through_orm.keys()
