"""Every column of every model goes through every path and comes back as it went in.

The sample values are derived from ``Base.metadata``: a column added to a model is
walked by this test with no edit here, so a path that drops or changes a column fails.
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Enum,
    Float,
    Integer,
    String,
    Table,
    delete,
    inspect,
)

from cardlink.database import (
    ConflictMode,
    DatabaseEvent,
    DataExporter,
    DataImporter,
    ExportFormat,
    UnitOfWork,
    get_emitter,
)
from cardlink.database.codec import TABLE_NAMES, integer_bounds
from cardlink.database.models import Base, CommDirection, CommLog
from cardlink.database.types import GUID, JSONDict, UTCDateTime, json_safe

MODELS = {mapper.local_table.name: mapper.class_ for mapper in Base.registry.mappers}
BASE_TIME = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)


#: The unit of work's repository of each table, where its name differs from the table's.
REPOSITORY_NAMES = {"http_exchanges": "exchanges"}


def repository(uow: Any, name: str) -> Any:
    return getattr(uow, REPOSITORY_NAMES.get(name, name))


def table(name: str) -> Table:
    return Base.metadata.tables[name]  # type: ignore[return-value]


def attribute(model: type, column: Column[Any]) -> str:
    return str(inspect(model).get_property_by_column(column).key)


def sample(column: Column[Any], variant: int, keys: dict[tuple[str, str], Any], cipher: Any) -> Any:
    """A value for ``column`` that differs from its default and between ``variant`` 0 and 1."""
    for foreign_key in column.foreign_keys:
        target = foreign_key.column
        return keys[(target.table.name, target.name)]
    column_type = column.type
    position = list(column.table.columns).index(column)
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        members = list(column_type.enum_class)
        default = column.default.arg if column.default is not None else None  # type: ignore[attr-defined]
        choices = [member for member in members if member is not default]
        return choices[variant % len(choices)]
    if column.name == "psk_key_encrypted":
        return cipher.encrypt(f"key-{variant}".encode())
    if column.name == "status_word":
        return ("9000", "6A82")[variant]
    if isinstance(column_type, JSON):
        value: Any = {"n": position, "list": [1, "two", None, 2.5], "nested": {"v": variant}}
        return value if column_type is JSONDict else [value, variant]
    if isinstance(column_type, Boolean):
        return bool(variant)
    if isinstance(column_type, Integer):
        low, high, _ = integer_bounds(column)
        wanted = 2**40 if isinstance(column_type, BigInteger) else 1000
        value = min(high, max(low, wanted)) - position * 2 - variant
        return value if value >= low else low + (value - low) % (high - low + 1)  # narrow range
    if isinstance(column_type, Float):
        return 12.25 + position + variant
    if isinstance(column_type, GUID):
        return uuid.uuid4()
    if isinstance(column_type, String):
        text = f"{column.name}-{variant}-é"
        return text[: column_type.length] if column_type.length else text * 3
    if isinstance(column_type, UTCDateTime):
        return BASE_TIME + timedelta(days=position, seconds=variant)
    raise AssertionError(f"no sample for {column.table.name}.{column.name} ({column_type!r})")


def rows_for(manager: Any, variant: int) -> dict[str, dict[str, Any]]:
    """One row per table, by column name, every column given, parents first."""
    keys: dict[tuple[str, str], Any] = {}
    rows: dict[str, dict[str, Any]] = {}
    for each in Base.metadata.sorted_tables:
        row = {}
        for column in each.columns:
            row[column.name] = sample(column, variant, keys, manager.cipher)
            keys[(each.name, column.name)] = row[column.name]
        rows[each.name] = row
    return rows


def as_document(value: Any) -> Any:
    """A value as the comparisons see it: JSON-safe, enums by value, UTC instants."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, enum.Enum):
        return value.value
    return json_safe(value)


def stored(manager: Any, name: str) -> list[dict[str, Any]]:
    """Every row of a table read back through the ORM, by column name, as documents."""
    model = MODELS[name]
    with UnitOfWork(manager) as uow:
        entities = repository(uow, name).get_all()
        return [
            {
                column.name: as_document(getattr(entity, attribute(model, column)))
                for column in table(name).columns
            }
            for entity in entities
        ]


def expected(row: dict[str, Any], *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {name: as_document(value) for name, value in row.items() if name not in skip}


def by_attribute(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row keyed by the model's attribute names (events carry those)."""
    model = MODELS[name]
    return {attribute(model, table(name).c[key]): value for key, value in row.items()}


def entity(name: str, row: dict[str, Any]) -> Any:
    model = MODELS[name]
    return model(**{attribute(model, table(name).c[key]): value for key, value in row.items()})


@pytest.fixture
def events() -> Iterator[list[DatabaseEvent]]:
    seen: list[DatabaseEvent] = []
    get_emitter().on("*", seen.append)
    yield seen
    get_emitter().off("*", seen.append)


def create_all(manager: Any, rows: dict[str, dict[str, Any]]) -> None:
    with UnitOfWork(manager) as uow:
        for name in TABLE_NAMES:
            repository(uow, name).create(entity(name, rows[name]))
        uow.commit()


def test_every_column_goes_through_create_update_filters_and_events(manager, events):
    first, second = rows_for(manager, 0), rows_for(manager, 1)
    create_all(manager, first)
    created: dict[str, Any] = {}
    for event in events:
        created.setdefault(event.entity_type, event.data)
    for name in TABLE_NAMES:
        assert stored(manager, name) == [expected(first[name])], name
    for data in created.values():
        assert "psk_key_encrypted" not in data
    with UnitOfWork(manager) as uow:
        by_entity = {repository(uow, name).entity_type: name for name in TABLE_NAMES}
    for entity_type, name in by_entity.items():
        want = by_attribute(name, expected(first[name], skip=("psk_key_encrypted",)))
        assert created[entity_type] == want, name

    # update: every column but the key takes its second value
    events.clear()
    with UnitOfWork(manager) as uow:
        for name in TABLE_NAMES:
            model, key = MODELS[name], table(name).primary_key.columns.values()[0]
            held = repository(uow, name).get_by_id(first[name][key.name])
            for column in table(name).columns:
                if column.primary_key or column.foreign_keys:
                    continue
                setattr(held, attribute(model, column), second[name][column.name])
            repository(uow, name).update(held)
        uow.commit()
    updated = {event.entity_type: event.data for event in events}
    for name in TABLE_NAMES:
        keep = {c.name for c in table(name).columns if c.primary_key or c.foreign_keys}
        row = {key: first[name][key] if key in keep else second[name][key] for key in first[name]}
        assert stored(manager, name) == [expected(row)], name
        entity_type = next(kind for kind, table_name in by_entity.items() if table_name == name)
        if entity_type in updated:  # logs are written once; their repository has no update event
            want = by_attribute(name, expected(row, skip=("psk_key_encrypted",)))
            data = {key: value for key, value in updated[entity_type].items() if key in want}
            assert data == want, name

        # find_by / count_by on every column (JSON columns have no equality filter)
        with UnitOfWork(manager) as uow:
            repo = repository(uow, name)
            for column in table(name).columns:
                if isinstance(column.type, JSON):
                    continue
                field = attribute(MODELS[name], column)
                found = repo.find_by(**{field: row[column.name]})
                assert len(found) == 1, f"{name}.{column.name}"
                assert repo.count_by(**{field: row[column.name]}) == 1, column.name


def log_rows(manager: Any, parents: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Three log rows with every column but the key the database hands out, pointing at the
    stored ``parents``."""
    rows = []
    for variant in range(3):
        row = rows_for(manager, variant % 2)["logs"]
        row.pop("id")
        for column in table("logs").columns:
            for foreign_key in column.foreign_keys:
                target = foreign_key.column
                row[column.name] = parents[target.table.name][target.name]
        row["timestamp"] = BASE_TIME + timedelta(minutes=variant)
        rows.append(row)
    return rows


def log_documents(manager: Any, session_id: uuid.UUID) -> list[dict[str, Any]]:
    with UnitOfWork(manager) as uow:
        logs = uow.logs.find_by_session(session_id)
        return [
            {
                column.name: as_document(getattr(log, attribute(CommLog, column)))
                for column in table("logs").columns
                if column.name != "id"
            }
            for log in logs
        ]


@pytest.mark.parametrize("path", ["add_log", "add_log_batch"])
def test_every_log_column_goes_through_add_log_and_batch_dicts_and_the_readers(manager, path):
    rows = rows_for(manager, 0)
    with UnitOfWork(manager) as uow:
        for name in TABLE_NAMES[: TABLE_NAMES.index("logs")]:  # the logs' parents
            repository(uow, name).create(entity(name, rows[name]))
        # logs.command_id points at a log: one in another session, out of the readers' way
        other = uow.sessions.create_session()
        rows["logs"] |= {"session_id": other.id, "command_id": None}
        uow.logs.create(entity("logs", rows["logs"]))
        uow.commit()
    session_id = rows["sessions"]["id"]
    given = log_rows(manager, rows)
    with UnitOfWork(manager) as uow:
        if path == "add_log":
            for row in given:
                uow.logs.add_log(**row)
        else:
            uow.logs.add_log_batch(given)
        uow.commit()
    want = [expected(row) for row in given]
    assert log_documents(manager, session_id) == want
    with UnitOfWork(manager) as uow:
        readers = {
            "find_commands": uow.logs.find_commands(session_id),
            "find_responses": uow.logs.find_responses(session_id),
            "find_by_session(limit)": uow.logs.find_by_session(session_id, limit=10),
            "paginate": list(uow.logs.paginate(per_page=10, session_id=session_id)),
        }
        for reader, found in readers.items():
            documents = [
                {
                    c.name: as_document(getattr(log, attribute(CommLog, c)))
                    for c in table("logs").c
                    if c.name != "id"
                }
                for log in found
            ]
            assert all(document in want for document in documents), reader
            assert documents, reader
        exported = uow.logs.export_session_logs(session_id)
        as_csv = uow.logs.export_session_logs(session_id, format="csv")
    assert [set(record) for record in exported] == [set(table("logs").columns.keys())] * 3
    assert [{k: v for k, v in record.items() if k != "id"} for record in exported] == want
    assert as_csv.splitlines()[0].split(",") == list(table("logs").columns.keys())
    assert all(
        record["direction"] in {member.value for member in CommDirection} for record in exported
    )


@pytest.mark.parametrize("format", [ExportFormat.JSON, ExportFormat.YAML])
def test_every_column_survives_export_and_import(manager, format):
    rows = rows_for(manager, 0)
    create_all(manager, rows)
    before = {name: stored(manager, name) for name in TABLE_NAMES}
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all(format)
    parsed = json.loads(document) if format is ExportFormat.JSON else yaml.safe_load(document)
    for name in TABLE_NAMES:
        assert set(parsed["tables"][name][0]) == set(table(name).columns.keys()), name
    with UnitOfWork(manager) as uow:
        for name in reversed(TABLE_NAMES):
            uow.session.execute(delete(table(name)))
        uow.commit()
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(document, format, ConflictMode.SKIP)
        uow.commit()
    assert result.created == len(TABLE_NAMES)
    assert {name: stored(manager, name) for name in TABLE_NAMES} == before
