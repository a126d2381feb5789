"""Bad input never half-writes: each kind gives a ValidationError naming table, row and field."""

from __future__ import annotations

import copy
import json
import uuid

import pytest

from cardlink.database import (
    ConflictMode,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    ExportFormat,
    UnitOfWork,
    ValidationError,
)
from transfer_helpers import populate, snapshot


@pytest.fixture
def exported(manager) -> dict:
    """A populated database and its export, as a dict to spoil."""
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all())
    # Valid changes ahead of the bad row: a half-written import would show them.
    document["tables"]["devices"][0]["name"] = "CHANGED"
    document["tables"]["devices"].append({"id": "added", "device_type": "phone"})
    return document


def assert_refused(manager, data, message: str, *, format=ExportFormat.JSON) -> None:
    """The import fails with ``message`` and leaves the database, and the unit of work, usable."""
    before = snapshot(manager)
    marker = f"after-{uuid.uuid4().hex[:8]}"
    with UnitOfWork(manager) as uow:
        importer = DataImporter(uow, batch_size=2)
        with pytest.raises(ValidationError) as error:
            importer.import_data(data, format=format, conflict_mode=ConflictMode.OVERWRITE)
        uow.devices.create(Device(id=marker, device_type=DeviceType.MODEM))
        uow.commit()
    assert message in str(error.value), str(error.value)
    assert "\n" not in str(error.value)
    after = snapshot(manager)
    assert [row["id"] for row in after["devices"]] == sorted(
        [row["id"] for row in before["devices"]] + [marker], key=str
    )
    after["devices"] = [row for row in after["devices"] if row["id"] != marker]
    assert after == before


def test_malformed_json_is_refused_with_its_line(manager, exported):
    text = json.dumps(exported, indent=1)
    broken = text.replace('"raw_data": "6F108408A0000001519000"', '"raw_data" "6F10"', 1)
    line = broken[: broken.index('"raw_data" "6F10"')].count("\n") + 1
    assert_refused(manager, broken, f"import: malformed JSON at line {line} column")
    assert_refused(manager, text[: len(text) * 2 // 3], "import: malformed JSON at line")
    assert_refused(manager, text + "\n{}", "unexpected text after the end of the document")
    assert_refused(manager, "", "import: the document is empty")
    assert_refused(manager, "[1, 2]", "the document must be a JSON object")


def test_malformed_yaml_is_refused_with_its_line(manager, exported):
    assert_refused(
        manager,
        "format_version: 1\ntables:\n  devices: [\n",
        "import: malformed YAML at line 4",
        format=ExportFormat.YAML,
    )
    assert_refused(manager, "- a\n- b\n", "must be a mapping", format=ExportFormat.YAML)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (3, "import: unsupported format_version 3; this version reads 1 and 2"),
        ("1", "import: unsupported format_version '1'"),
        (None, "import: not a CardLink export: format_version is missing"),
    ],
)
def test_a_wrong_format_version_is_refused(manager, exported, version, message):
    if version is None:
        del exported["format_version"]
    else:
        exported["format_version"] = version
    assert_refused(manager, json.dumps(exported), message)


def test_a_foreign_document_is_refused(manager, exported):
    exported["format"] = "someone-elses-backup"
    assert_refused(manager, json.dumps(exported), "not a CardLink export (format is")
    del exported["tables"]
    exported["format"] = "cardlink-database-export"
    assert_refused(manager, json.dumps(exported), 'the document has no "tables"')


def test_a_missing_required_field_is_named(manager, exported):
    exported["tables"]["devices"].append({"id": "no-type", "name": "x"})
    assert_refused(
        manager, json.dumps(exported), "import: devices[4].device_type: required field is missing"
    )
    del exported["tables"]["devices"][4]
    exported["tables"]["tests"][1]["suite_name"] = None
    assert_refused(
        manager, json.dumps(exported), "import: tests[1].suite_name: required field is null"
    )
    exported["tables"]["tests"][1]["suite_name"] = "scp81"
    del exported["tables"]["cards"][0]["iccid"]
    assert_refused(
        manager, json.dumps(exported), "import: cards[0].iccid: required field is missing"
    )


@pytest.mark.parametrize(
    ("table", "index", "field", "value", "message"),
    [
        ("devices", 1, "is_active", "yes", "expected true or false, got text"),
        ("logs", 4, "latency_ms", "fast", "expected a number, got text"),
        ("sessions", 0, "duration_ms", 1.5, "expected an integer, got a number"),
        ("sessions", 1, "started_at", "yesterday", "not an ISO 8601 timestamp: 'yesterday'"),
        ("tests", 0, "id", "not-a-uuid", "not a valid UUID: 'not-a-uuid'"),
        ("cards", 1, "trigger_config", [1, 2], "expected a JSON object, got a list"),
        ("settings", 2, "category", 7, "expected text, got an integer"),
        ("devices", 0, "imei", "1" * 21, "21 characters long; at most 20 fit"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(manager, exported, table, index, field, value, message):
    exported["tables"][table][index][field] = value
    assert_refused(manager, json.dumps(exported), f"import: {table}[{index}].{field}: {message}")


def test_the_first_refused_field_of_a_row_is_the_one_named(manager, exported):
    session = exported["tables"]["sessions"][1]
    first, *_, last = list(session)
    session[last] = "not valid here"
    session[first] = None
    assert_refused(
        manager, json.dumps(exported), f"import: sessions[1].{first}: required field is null"
    )
    session[first] = "also-not-a-uuid"
    session["colour"] = None
    assert_refused(manager, json.dumps(exported), f"import: sessions[1].{first}: not a valid UUID")
    session[first] = str(uuid.uuid4())
    assert_refused(manager, json.dumps(exported), f"import: sessions[1].{last}: ")


def test_an_unknown_enum_value_is_named_with_the_valid_ones(manager, exported):
    exported["tables"]["devices"][2]["device_type"] = "tablet"
    assert_refused(
        manager,
        json.dumps(exported),
        "import: devices[2].device_type: unknown value 'tablet'; valid values: phone, modem",
    )


def test_a_dangling_foreign_key_is_named(manager, exported):
    ghost = "00000000-0000-4000-8000-000000000000"
    exported["tables"]["logs"][5]["session_id"] = ghost
    assert_refused(
        manager,
        json.dumps(exported),
        f"import: logs[5].session_id: sessions '{ghost}' does not exist (dangling foreign key)",
    )
    exported["tables"]["logs"][5]["session_id"] = exported["tables"]["logs"][0]["session_id"]
    exported["tables"]["sessions"][2]["device_id"] = "ghost-device"
    assert_refused(
        manager, json.dumps(exported), "import: sessions[2].device_id: devices 'ghost-device'"
    )


def test_an_unknown_table_or_field_is_named_with_the_valid_ones(manager, exported):
    spoiled = copy.deepcopy(exported)
    spoiled["tables"]["widgets"] = []
    assert_refused(
        manager,
        json.dumps(spoiled),
        "import: unknown table 'widgets'; "
        "valid tables: devices, cards, sessions, http_exchanges, logs, test_runs, tests, settings",
    )
    exported["tables"]["cards"][1]["colour"] = "red"
    assert_refused(
        manager, json.dumps(exported), "import: cards[1].colour: unknown field; valid fields: iccid"
    )


def test_a_row_that_is_not_an_object_is_named(manager, exported):
    exported["tables"]["settings"].append(["key", "value"])
    assert_refused(
        manager, json.dumps(exported), "import: settings[6]: expected an object, got list"
    )


def test_bad_yaml_rows_are_named_like_json_ones(manager, exported):
    import yaml

    exported["tables"]["devices"][1]["device_type"] = "tablet"
    assert_refused(
        manager,
        yaml.safe_dump(exported, sort_keys=False),
        "import: devices[1].device_type: unknown value 'tablet'",
        format=ExportFormat.YAML,
    )


def test_error_messages_never_echo_a_psk_key(manager, exported):
    cards = exported["tables"]["cards"]
    (index,) = [number for number, card in enumerate(cards) if card["psk_key_encrypted"]]
    token = cards[index]["psk_key_encrypted"]
    cards[index]["psk_key_encrypted"] = token[:-8]
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError) as error:
        DataImporter(uow).import_data(json.dumps(exported))
    assert token[:20] not in str(error.value)
    assert f"import: cards[{index}].psk_key_encrypted: " in str(error.value)


def test_a_row_the_database_itself_refuses_rolls_back_the_whole_import(
    manager, exported, monkeypatch
):
    from cardlink.database.transfer.rows import TableWriter

    # Hide the existing keys from the importer so that the INSERT (a COPY on PostgreSQL)
    # hits the primary key: the database's refusal must be handled like a bad row.
    monkeypatch.setattr(TableWriter, "_existing", lambda self, keys: set())
    assert_refused(manager, json.dumps(exported), "import: devices rows 0..1: duplicate key")


def test_a_log_row_the_database_refuses_is_named_by_its_batch(manager, exported, monkeypatch):
    from cardlink.database.transfer.rows import TableWriter

    # Logs go in by COPY on PostgreSQL, each batch's ending while the next is read: the
    # refusal (the logs are there already) comes later, and still names its batch's rows.
    monkeypatch.setattr(TableWriter, "_existing", lambda self, keys: set())
    logs = exported["tables"]["logs"]
    assert len(logs) >= 2
    exported["table_names"] = ["logs"]
    exported["tables"] = {"logs": logs}
    exported["trailer"] = {"row_counts": {"logs": len(logs)}}
    assert_refused(manager, json.dumps(exported), "import: logs rows 0..1: duplicate key")
