"""Export and import: the guide's snippets, typed round trips, PSK handling, table selection."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest
import yaml
from cryptography.fernet import Fernet
from sqlalchemy import text

from cardlink.database import (
    TABLE_NAMES,
    ConflictMode,
    DatabaseEvent,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    EventType,
    ExportFormat,
    ImportResult,
    UnitOfWork,
    ValidationError,
    detect_format,
    get_emitter,
)
from cardlink.database.transfer import FORMAT_VERSION
from transfer_helpers import PSK_KEY, SESSION_ID, populate, snapshot, wipe, without_export_time


def test_the_guides_export_snippet_runs_as_written(manager, tmp_path, monkeypatch):
    populate(manager)
    monkeypatch.chdir(tmp_path)
    from cardlink.database import DataExporter, ExportFormat

    with UnitOfWork(manager) as uow:
        exporter = DataExporter(uow)

        # Export all tables
        json_data = exporter.export_all(ExportFormat.JSON)
        yaml_data = exporter.export_all(ExportFormat.YAML)

        # Selective export
        device_data = exporter.export_selective(
            tables=["devices", "cards"], format=ExportFormat.JSON
        )

        # Save to file
        with open("backup.json", "w") as f:
            f.write(json_data)

    document = json.loads((tmp_path / "backup.json").read_text())
    assert list(document["tables"]) == list(TABLE_NAMES)
    assert len(document["tables"]["logs"]) == 6
    assert yaml.safe_load(yaml_data)["tables"] == document["tables"]
    assert list(json.loads(device_data)["tables"]) == ["devices", "cards"]


def test_the_guides_import_snippet_runs_as_written(manager, tmp_path, monkeypatch, capsys):
    populate(manager)
    monkeypatch.chdir(tmp_path)
    with UnitOfWork(manager) as uow:
        (tmp_path / "backup.json").write_text(DataExporter(uow).export_all())
    before = snapshot(manager)
    wipe(manager)
    from cardlink.database import (
        ConflictMode,
        DataImporter,
        ExportFormat,
    )

    with UnitOfWork(manager) as uow:
        importer = DataImporter(uow)

        # Read backup
        with open("backup.json") as f:
            data = f.read()

        # Import with conflict resolution
        result = importer.import_data(
            data,
            format=ExportFormat.JSON,
            conflict_mode=ConflictMode.SKIP,  # or OVERWRITE, MERGE
        )

        print(f"Created: {result.created}")
        print(f"Updated: {result.updated}")
        print(f"Skipped: {result.skipped}")
        print(f"Errors: {result.errors}")

        uow.commit()

    assert capsys.readouterr().out == "Created: 25\nUpdated: 0\nSkipped: 0\nErrors: 0\n"
    assert snapshot(manager) == before


def test_quick_start_step_6_exports_the_database_to_backup_json(
    manager, database_url, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database_url)
    from cardlink.database import (
        CardProfile,
        CardType,
        DatabaseManager,
        Device,
        DeviceType,
        UnitOfWork,
    )

    # 1. Initialize database
    manager = DatabaseManager()
    manager.initialize()
    manager.create_tables()

    # 2. Create a device
    with UnitOfWork(manager) as uow:
        device = Device(
            id="RF8M33XXXXX",
            device_type=DeviceType.PHONE,
            name="Test Phone",
            manufacturer="Samsung",
            model="Galaxy S21",
            imei="123456789012345",
        )
        uow.devices.create(device)
        uow.commit()
        print(f"Created device: {device.id}")

    # 3. Create a card profile
    with UnitOfWork(manager) as uow:
        card = CardProfile(
            iccid="89011234567890123456",
            imsi="310120987654321",
            card_type=CardType.USIM,
            psk_identity="card_001",
            admin_url="https://admin.example.com:8443/api",
        )
        # Store PSK with encryption
        uow.cards.create_with_psk(card, b"my_secret_psk_key_16")
        uow.commit()
        print(f"Created card: {card.iccid}")

    # 4. Query devices
    with UnitOfWork(manager) as uow:
        # Find all phones
        phones = uow.devices.find_phones()
        print(f"Found {len(phones)} phone(s)")

        # Search devices
        results = uow.devices.search("Samsung")
        for device in results:
            print(f"  - {device.name}: {device.model}")

    # 5. Query sessions
    with UnitOfWork(manager) as uow:
        # Get recent sessions
        sessions = uow.sessions.find_by_date_range(
            start=datetime.now() - timedelta(days=7), end=datetime.now()
        )
        print(f"Sessions in last 7 days: {len(sessions)}")

        # Get statistics
        stats = uow.sessions.get_statistics(days=30)
        print(f"Success rate: {stats['success_rate']:.1f}%")
        print(f"Avg duration: {stats['avg_duration_ms']:.0f}ms")

    # 6. Export database
    from cardlink.database import DataExporter, ExportFormat

    with UnitOfWork(manager) as uow:
        exporter = DataExporter(uow)
        data = exporter.export_all(ExportFormat.JSON)

        with open("backup.json", "w") as f:
            f.write(data)
        print("Database exported to backup.json")

    # Cleanup
    manager.close()

    output = capsys.readouterr().out
    assert output.endswith("Avg duration: 0ms\nDatabase exported to backup.json\n")
    backup = json.loads((tmp_path / "backup.json").read_text())
    assert [row["id"] for row in backup["tables"]["devices"]] == ["RF8M33XXXXX"]
    card_row = backup["tables"]["cards"][0]
    assert card_row["psk_key_encrypted"].startswith("gAAAAA")
    assert "my_secret_psk_key_16" not in (tmp_path / "backup.json").read_text()


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_every_column_round_trips_with_its_type(manager, export_format):
    populate(manager)
    before = snapshot(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all(export_format)
    wipe(manager)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(document, format=export_format)
        uow.commit()
    after = snapshot(manager)
    assert after == before
    assert result.created == sum(len(rows) for rows in before.values())
    log_row = after["logs"][0]
    assert isinstance(log_row["latency_ms"], float) and log_row["timestamp"].microsecond == 123456
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key("89011234567890123456") == PSK_KEY
        assert uow.devices.get_by_id("Zulu").connection_settings["z"]["nested"][1] == 2.5
        again = DataExporter(uow).export_all(export_format)
    assert without_export_time(again) == without_export_time(document)


def test_the_document_has_format_version_schema_revision_export_time_and_rows(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all())
    from cardlink.database.migrate import get_current_revision

    assert document["format"] == "cardlink-database-export"
    assert document["format_version"] == FORMAT_VERSION
    assert document["schema_revision"] == get_current_revision(manager=manager)
    assert datetime.fromisoformat(document["exported_at"]).tzinfo is not None
    assert document["psk_keys"] == "encrypted"
    (session_row,) = [row for row in document["tables"]["sessions"] if row["id"] == str(SESSION_ID)]
    assert session_row["started_at"] == "2024-03-09T13:45:07.123456+00:00"
    assert session_row["status"] == "completed" and session_row["duration_ms"] == 1234
    assert [row["id"] for row in document["tables"]["devices"]] == ["Zulu", "alpha", "Ωmega"]


def test_psk_keys_are_exported_as_fernet_ciphertext_never_plaintext(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        text = DataExporter(uow).export_all() + DataExporter(uow).export_all("yaml")
        stored = uow.cards.get_by_id("89011234567890123456").psk_key_encrypted
    assert stored in text
    for plain in (PSK_KEY.decode(), PSK_KEY.hex(), PSK_KEY.hex().upper(), repr(PSK_KEY)):
        assert plain not in text


def test_exporting_without_psk_keys_leaves_them_out_and_an_overwrite_keeps_stored_keys(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow, include_psk=False).export_all()
    assert "psk_key_encrypted" not in document and "gAAAAA" not in document
    assert json.loads(document)["psk_keys"] == "omitted"
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document, conflict_mode=ConflictMode.OVERWRITE)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key("89011234567890123456") == PSK_KEY
    wipe(manager)
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document)
        uow.commit()
        assert uow.cards.get_by_id("89011234567890123456").psk_key_encrypted is None


def test_a_plaintext_key_in_the_psk_column_is_refused(manager):
    document = _document(cards=[{"iccid": "8901", "psk_key_encrypted": PSK_KEY.hex()}])
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError) as error:
        DataImporter(uow).import_data(document)
    assert "cards[0].psk_key_encrypted: not a Fernet token" in str(error.value)
    assert PSK_KEY.hex() not in str(error.value)


def test_keys_exported_under_another_fernet_key_are_refused(manager, monkeypatch):
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_selective(["cards"])
    wipe(manager)
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", Fernet.generate_key().decode())
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError) as error:
        DataImporter(uow).import_data(document)
    assert "cards[1].psk_key_encrypted: the configured CARDLINK_ENCRYPTION_KEY cannot" in str(
        error.value
    )


def test_selective_export_takes_tables_in_any_order_and_refuses_unknown_names(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        exporter = DataExporter(uow)
        document = json.loads(exporter.export_selective(["settings", "devices"]))
        assert list(document["tables"]) == ["devices", "settings"]
        with pytest.raises(ValidationError) as error:
            exporter.export_selective(["devices", "widgets"])
    assert str(error.value) == (
        "unknown table 'widgets'; valid tables: devices, cards, sessions, http_exchanges, logs, "
        "test_runs, tests, settings"
    )


def test_format_is_detected_from_the_file_extension():
    assert detect_format("backup.json") is ExportFormat.JSON
    assert detect_format("dir/backup.YAML") is ExportFormat.YAML
    assert detect_format("backup.yml") is ExportFormat.YAML
    with pytest.raises(ValidationError, match=r"use \.json, \.yaml or \.yml"):
        detect_format("backup.txt")
    assert [member.value for member in ConflictMode] == ["skip", "overwrite", "merge"]


def test_an_import_announces_one_batch_completed_event_after_commit_only(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all()
    events: list[DatabaseEvent] = []
    get_emitter().on("*", events.append)
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document, conflict_mode="merge")
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document, dry_run=True)
        uow.commit()
    assert events == []
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(document, conflict_mode="merge")
        uow.commit()
    assert [event.event_type for event in events] == [EventType.BATCH_COMPLETED]
    assert events[0].data["updated"] == result.updated == 25
    assert events[0].data["per_table"]["logs"]["updated"] == 6
    json.dumps(events[0].data)


def test_import_result_counts_per_table(manager):
    result = ImportResult()
    assert (result.created, result.updated, result.skipped, result.errors) == (0, 0, 0, 0)
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_selective(["devices", "settings"])
        result = DataImporter(uow).import_data(document)
    assert result.per_table == {
        "devices": {"created": 0, "updated": 0, "skipped": 3, "errors": 0},
        "settings": {"created": 0, "updated": 0, "skipped": 6, "errors": 0},
    }
    assert result.skipped == 9 and result.total == 9 and result.dry_run is False


def _document(**tables: list) -> str:
    counts = {name: len(rows) for name, rows in tables.items()}
    trailer = {"row_counts": counts}
    return json.dumps({"format_version": FORMAT_VERSION, "tables": tables, "trailer": trailer})


def test_an_export_includes_writes_of_its_own_unit_of_work_not_yet_committed(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch([(SESSION_ID, "command", "80CA9F7F00")] * 3)
        uow.devices.create(Device(id="pending", device_type=DeviceType.MODEM))
        document = json.loads(DataExporter(uow).export_selective(["devices", "logs"]))
    assert len(document["tables"]["logs"]) == 9
    assert "pending" in [row["id"] for row in document["tables"]["devices"]]
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 6 and not uow.devices.exists("pending")


def test_keys_and_times_written_by_other_tools_export_in_the_canonical_form(manager):
    """The export writes stored values straight out when they are in the package's own
    form; any other form (upper-case hex, no microseconds) is read as its type first."""
    session_id = uuid.uuid4()
    stored = str(session_id) if manager.config.is_postgresql else session_id.hex.upper()
    with manager.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO sessions (id, session_type, status, started_at, created_at, "
                "updated_at) VALUES (:id, 'other tool', 'active', :at, :at, :at)"
            ),
            {"id": stored, "at": "2026-01-02 03:04:05"},
        )
    with UnitOfWork(manager) as uow:
        ours = uow.sessions.create_session(session_type="ours")
        uow.commit()
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all())
    rows = {row["session_type"]: row for row in document["tables"]["sessions"]}
    assert rows["other tool"]["id"] == str(session_id)
    assert rows["other tool"]["started_at"] == "2026-01-02T03:04:05.000000+00:00"
    assert rows["ours"]["id"] == str(ours.id)
    assert rows["ours"]["created_at"] == ours.created_at.isoformat(timespec="microseconds")
