"""Import conflict modes (SKIP, OVERWRITE, MERGE), dry runs, and the caller's transaction."""

from __future__ import annotations

import json

import pytest

from cardlink.database import (
    CommDirection,
    ConflictMode,
    DataExporter,
    DataImporter,
    SessionStatus,
    UnitOfWork,
)
from cardlink.database.transfer import FORMAT_VERSION
from transfer_helpers import SESSION_ID, T0, populate, snapshot, statuses, wipe


def document(**tables: list) -> str:
    counts = {name: len(rows) for name, rows in tables.items()}
    trailer = {"row_counts": counts}
    return json.dumps({"format_version": FORMAT_VERSION, "tables": tables, "trailer": trailer})


def run_import(manager, data: str, mode: ConflictMode, *, dry_run: bool = False):
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(data, conflict_mode=mode, dry_run=dry_run)
        uow.commit()
    return result


INCOMING = document(
    devices=[
        {"id": "Zulu", "device_type": "modem", "name": "Renamed"},
        {"id": "new-device", "device_type": "phone"},
    ],
    sessions=[{"id": str(SESSION_ID), "status": "failed", "error_code": "E9"}],
)


def test_skip_keeps_existing_rows_and_adds_new_ones(manager):
    populate(manager)
    result = run_import(manager, INCOMING, ConflictMode.SKIP)
    assert (result.created, result.updated, result.skipped) == (1, 0, 2)
    state = statuses(manager)
    assert state["name"] == "Test Phone ✓" and state["status"] is SessionStatus.COMPLETED
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("new-device").is_active is True


def test_overwrite_replaces_the_row_in_place_without_cascading_to_children(manager):
    populate(manager)
    result = run_import(manager, INCOMING, ConflictMode.OVERWRITE)
    assert (result.created, result.updated, result.skipped) == (1, 2, 0)
    state = statuses(manager)
    assert state["name"] == "Renamed"
    assert state["model"] is None  # absent from the incoming row: the row is replaced
    assert state["status"] is SessionStatus.FAILED
    assert (state["sessions"], state["logs"]) == (3, 6)  # no delete-and-insert cascade
    with UnitOfWork(manager) as uow:
        session = uow.sessions.get_by_id(SESSION_ID)
        assert session.device_id is None and session.started_at is None
        assert len(uow.logs.find_by_session(SESSION_ID)) == 5
        assert uow.tests.find_by_run("run-1")[1].device_id == "Zulu"


def test_merge_updates_only_the_fields_present_in_the_incoming_row(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        updated_before = uow.devices.get_by_id("Zulu").updated_at
    result = run_import(manager, INCOMING, ConflictMode.MERGE)
    assert (result.created, result.updated, result.skipped) == (1, 2, 0)
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("Zulu")
        assert (device.name, device.model, device.device_type.value) == (
            "Renamed",
            "Galaxy S21",
            "modem",
        )
        assert device.last_seen == T0 and device.connection_settings["port"] == 5555
        assert device.updated_at > updated_before
        session = uow.sessions.get_by_id(SESSION_ID)
        assert (session.status, session.error_code) == (SessionStatus.FAILED, "E9")
        assert session.device_id == "Zulu" and session.duration_ms == 1234


@pytest.mark.parametrize("mode", list(ConflictMode))
def test_a_dry_run_reports_the_same_counts_and_writes_nothing(manager, mode):
    populate(manager)
    with UnitOfWork(manager) as uow:
        full = DataExporter(uow).export_all()
    before = snapshot(manager)
    for data in (INCOMING, full):
        rehearsal = run_import(manager, data, mode, dry_run=True)
        assert rehearsal.dry_run is True
        assert snapshot(manager) == before
    wipe(manager)
    empty_rehearsal = run_import(manager, full, mode, dry_run=True)
    assert snapshot(manager)["devices"] == []
    real = run_import(manager, full, mode)
    assert (real.created, real.updated, real.skipped) == (
        empty_rehearsal.created,
        empty_rehearsal.updated,
        empty_rehearsal.skipped,
    )
    assert real.per_table == empty_rehearsal.per_table and real.dry_run is False
    assert snapshot(manager) == before
    again = run_import(manager, INCOMING, mode, dry_run=True)
    assert again.per_table == run_import(manager, INCOMING, mode).per_table


def test_the_importer_never_commits_by_itself(manager):
    populate(manager)
    before = snapshot(manager)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(INCOMING, conflict_mode=ConflictMode.OVERWRITE)
        assert result.updated == 2
        assert uow.devices.get_by_id("Zulu").name == "Renamed"  # visible inside the transaction
    assert snapshot(manager) == before


def test_a_key_repeated_in_the_document_is_a_conflict_with_itself(manager):
    rows = [
        {"id": "dup", "device_type": "phone", "name": "first"},
        {"id": "dup", "device_type": "phone", "name": "second"},
    ]
    skipped = run_import(manager, document(devices=rows), ConflictMode.SKIP, dry_run=True)
    assert (skipped.created, skipped.skipped) == (1, 1)
    overwritten = run_import(manager, document(devices=rows), ConflictMode.OVERWRITE)
    assert (overwritten.created, overwritten.updated) == (1, 1)
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("dup").name == "second"


def test_rows_without_generated_keys_get_new_ones_and_new_logs_still_get_fresh_ids(manager):
    data = document(
        devices=[{"id": "D1", "device_type": "phone"}],
        sessions=[{"id": str(SESSION_ID), "device_id": "D1"}, {"device_id": "D1"}],
        logs=[
            {"id": 500, "session_id": str(SESSION_ID), "direction": "command"},
            {"session_id": str(SESSION_ID), "direction": "response", "raw_data": "9000"},
        ],
        tests=[{"run_id": "r", "suite_name": "s", "test_name": "t", "status": "passed"}],
    )
    result = run_import(manager, data, ConflictMode.SKIP)
    assert result.created == 6
    with UnitOfWork(manager) as uow:
        assert uow.sessions.count() == 2 and uow.tests.count() == 1
        assert uow.sessions.get_by_id(SESSION_ID).status is SessionStatus.PENDING
        added = uow.logs.add_log(session_id=SESSION_ID, direction=CommDirection.COMMAND)
        uow.commit()
        ids = sorted(log.id for log in uow.logs.find_by_session(SESSION_ID))
    assert 500 in ids and added.id > 500 and len(set(ids)) == 3
    low = document(logs=[{"id": 7, "session_id": str(SESSION_ID), "direction": "command"}])
    assert run_import(manager, low, ConflictMode.SKIP).created == 1
    with UnitOfWork(manager) as uow:
        later = uow.logs.add_log(session_id=SESSION_ID, direction=CommDirection.RESPONSE)
        uow.commit()
    assert later.id > added.id  # importing a low id never winds the id sequence back
