"""SQLite -> PostgreSQL -> MariaDB -> SQLite: every hop exports the same document."""

from __future__ import annotations

import json

import pytest

from cardlink.database import (
    DatabaseConfig,
    DatabaseManager,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    ExportFormat,
    UnitOfWork,
)
from conftest import _ensure_server_database, _reset_schema, backend_url
from transfer_helpers import SESSION_ID, populate, snapshot, without_export_time


def empty_server_database(backend: str, tmp_path) -> str:
    """A second, empty server database (``<test db name>2``); the matrix DB is left alone."""
    url = backend_url(backend, tmp_path)
    base, name = url.rsplit("/", 1)
    target = f"{base}/{name}2"
    _ensure_server_database(target)
    _reset_schema(target)
    return target


def open_empty(url: str) -> DatabaseManager:
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.initialize()
    manager.create_tables()
    return manager


@pytest.mark.parametrize("export_format", list(ExportFormat))
def test_an_export_travels_sqlite_postgresql_mariadb_sqlite_and_comes_back_identical(
    tmp_path, encryption_key, export_format
):
    urls = [
        f"sqlite:///{tmp_path / 'first.db'}",
        empty_server_database("postgresql", tmp_path),
        empty_server_database("mysql", tmp_path),
        f"sqlite:///{tmp_path / 'last.db'}",
    ]
    managers = [open_empty(url) for url in urls]
    try:
        first = managers[0]
        populate(first)
        with UnitOfWork(first) as uow:
            # Keys whose order differs between binary and case-insensitive collations,
            # and more rows than one export page.
            for name in ("b", "B", "a", "A-1", "_x", "~y", "é", "e", "E", "0"):
                uow.devices.create(Device(id=f"dev-{name}", device_type=DeviceType.MODEM))
            uow.commit()
        documents = []
        for position, manager in enumerate(managers):
            if position:
                with UnitOfWork(manager) as uow:
                    result = DataImporter(uow).import_data(documents[-1], format=export_format)
                    uow.commit()
                assert result.created == 35 and result.skipped == 0
            with UnitOfWork(manager) as uow:
                documents.append(DataExporter(uow, page_size=4).export_all(export_format))
        stripped = [without_export_time(document) for document in documents]
        assert stripped[0] != documents[0]
        for hop, document in enumerate(stripped[1:], start=1):
            assert document == stripped[0], f"document changed at hop {hop} ({urls[hop]})"
        assert snapshot(managers[-1]) == snapshot(first)
        with UnitOfWork(managers[2]) as uow:
            assert uow.cards.get_psk_key("89011234567890123456") == b"my_secret_psk_key_16"
        with UnitOfWork(managers[-1]) as uow:  # the SCP81 record made the whole trip
            post, script = uow.exchanges.find_by_session(SESSION_ID)
            assert ["X-Note", "café"] in post.headers and post.resume is True
            assert (script.body_length, script.targeted_application) == (2**40, "A0000000180001")
            session = uow.sessions.get_by_id(SESSION_ID)
            assert (session.client_address, session.tls_alert_description) == (
                "[2001:db8::7]:49152",
                "close_notify",
            )
            assert session.agent_id == post.agent_id
            assert [log.exchange_id for log in uow.logs.find_by_session(SESSION_ID)][:2] == [
                script.id,
                None,
            ]
    finally:
        for manager in managers:
            manager.close()


def test_the_psk_key_version_and_id_travel_with_the_card(manager) -> None:
    """KVN and KID are in the export and come back on import (the columns come from the model)."""
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all(ExportFormat.JSON)
    (card,) = [row for row in json.loads(document)["tables"]["cards"] if row["psk_identity"]]
    assert (card["psk_key_version"], card["psk_key_id"]) == (0x30, 1)
    with UnitOfWork(manager) as uow:
        uow.cards.delete_by_id(card["iccid"], cascade=True)
        uow.commit()
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document, format=ExportFormat.JSON)
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = uow.cards.get_by_id(card["iccid"])
        assert (stored.psk_key_version, stored.psk_key_id) == (0x30, 1)
        assert uow.cards.get_psk_key_by_identity("card_001") == b"my_secret_psk_key_16"
