"""Shared data for the export/import tests: a database using every column type, and snapshots."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from cardlink.database import (
    TABLE_NAMES,
    CardProfile,
    CardType,
    CommDirection,
    DatabaseManager,
    Device,
    DeviceType,
    SessionStatus,
    TestStatus,
    UnitOfWork,
)
from cardlink.database.models import Base

PSK_KEY = b"my_secret_psk_key_16"
SESSION_ID = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")
T0 = datetime(2024, 3, 9, 13, 45, 7, 123456, tzinfo=timezone.utc)
LATENCIES = (0.1, 12.345678901234567, 1e-7, 3.0, 2.5e300)


def populate(manager: DatabaseManager) -> None:
    """Rows in every table, with every column type and awkward values.

    The completed session also has its TLS side, two HTTP exchanges (one carries its
    first log) and so an agent id.
    """
    with UnitOfWork(manager) as uow:
        uow.devices.create(
            Device(
                id="Zulu",
                device_type=DeviceType.PHONE,
                name="Test Phone ✓",
                manufacturer="Samsung",
                model="Galaxy S21",
                imei="123456789012345",
                connection_settings={"z": {"nested": [1, 2.5, None, True]}, "a": "ü", "port": 5555},
                is_active=True,
                last_seen=T0,
                notes="line one\nline two",
            )
        )
        uow.devices.create(Device(id="alpha", device_type=DeviceType.MODEM, is_active=False))
        uow.devices.create(Device(id="Ωmega", device_type="modem", imsi="001010123456789"))
        uow.cards.create_with_psk(
            CardProfile(
                iccid="89011234567890123456",
                imsi="310120987654321",
                card_type=CardType.USIM,
                atr="3B9F96801FC78031A073BE21136743200718000001A5",
                psk_identity="card_001",
                psk_key_version=0x30,
                psk_key_id=1,
                admin_url="https://admin.example.com:8443/api",
                trigger_config={"sms": {"tar": "B00010", "counter": 0}},
                bip_config={"apn": "internet", "buffer": 1500},
                security_domains={"ISD": {"aid": "A000000151000000"}},
            ),
            PSK_KEY,
        )
        uow.cards.create(CardProfile(iccid="8901", card_type=CardType.EUICC))
        session = uow.sessions.create_session(
            device_id="Zulu",
            card_iccid="89011234567890123456",
            session_type="triggered",
            id=SESSION_ID,
            cipher_suite="TLS_PSK_WITH_AES_128_CBC_SHA256",
            psk_identity="card_001",
        )
        uow.sessions.start_session(session.id, at=T0)
        uow.sessions.complete_session(
            session.id, at=T0 + timedelta(milliseconds=1234, microseconds=5)
        )
        uow.sessions.set_tls_info(
            session.id,
            tls_version="TLSv1.2",
            client_address="[2001:db8::7]:49152",
            handshake_ms=38,
            tls_alert=0,
            close_reason="close_notify ✓",
        )
        post = uow.exchanges.record_http(
            session.id,
            "POST /server/adminagent?cmd=1 HTTP/1.1\r\nHost: 10.10.10.10\r\n"
            "X-Admin-Protocol: globalplatform-remote-admin/1.0\r\n"
            "X-Admin-From: //se-id/eid/1234;//aa-id/aid/A000000151/000000\r\n"
            "X-Admin-Resume: true\r\nX-Note: caf\xe9\r\nContent-Length: 0\r\n\r\n",
            timestamp=T0 + timedelta(microseconds=1),
        )
        script = uow.exchanges.record_http(
            session.id,
            "HTTP/1.1 200 OK\nX-Admin-Protocol: globalplatform-remote-admin/1.0\n"
            "X-Admin-Next-URI: /server/adminagent?cmd=2\n"
            "X-Admin-Targeted-Application: //aid/A000000018/0001\n"
            "Content-Type: application/vnd.globalplatform.card-content-mgt;version=1.0\n",
            body_length=2**40,
            timestamp=T0 + timedelta(microseconds=2),
        )
        assert post.resume and script.command_session == 1
        failed = uow.sessions.create_session(device_id="alpha", card_iccid="8901")
        uow.sessions.fail_session(failed.id, error_code="E042", message="TLS alert 40", at=T0)
        uow.sessions.create_session()
        for index, latency in enumerate(LATENCIES):
            log = uow.logs.add_log(
                session_id=session.id,
                direction=CommDirection.COMMAND if index % 2 == 0 else CommDirection.RESPONSE,
                raw_data="00A4040008A000000151000000"
                if index % 2 == 0
                else "6F108408A0000001519000",
                decoded_data=f"step {index}",
                status_word=None if index % 2 == 0 else "9000",
                status_message=None if index % 2 == 0 else "Success",
                latency_ms=latency,
                timestamp=T0 + timedelta(microseconds=index * 7),
            )
            if index == 0:
                log.exchange_id = script.id  # the APDU the script carried
        uow.logs.add_log_batch([(failed.id, "response", "6A82", None, "6A82", "File not found")])
        uow.tests.create_result(
            "run-1",
            "scp81",
            "psk_handshake",
            TestStatus.PASSED,
            device_id="Zulu",
            card_iccid="89011234567890123456",
            started_at=T0,
            ended_at=T0 + timedelta(seconds=1.5),
            assertions={"checks": [{"name": "sw", "ok": True}], "ratio": 0.75},
            metadata={"env": "lab", "tags": ["a", "b"], "build": 17},
        )
        uow.tests.create_result("run-1", "scp81", "bad_key", TestStatus.FAILED, error_message="x")
        uow.settings.set_value("log_retention_days", 30)
        uow.settings.set_value("ratio", 0.3333333333333333, description="a float", category="misc")
        uow.settings.set_value("name", "Zürich", category="misc")
        uow.settings.set_value("flags", [True, False, None, 1, "x"])
        uow.settings.set_value("nested", {"b": {"c": [1, {"d": 2}]}, "a": 1})
        uow.settings.set_value("enabled", False)
        uow.commit()


def snapshot(manager: DatabaseManager, tables: tuple[str, ...] = TABLE_NAMES) -> dict[str, list]:
    """Every row of every table as typed values, sorted by key (an independent reader)."""
    result: dict[str, list] = {}
    with manager.engine.connect() as connection:
        for name in tables:
            table = Base.metadata.tables[name]
            rows = [dict(row._mapping) for row in connection.execute(select(table))]
            (key,) = table.primary_key.columns
            result[name] = sorted(rows, key=lambda row, key=key.name: str(row[key]))
    return result


def wipe(manager: DatabaseManager) -> None:
    """Delete every row, children first."""
    with manager.engine.begin() as connection:
        for name in reversed(TABLE_NAMES):
            connection.execute(Base.metadata.tables[name].delete())


def without_export_time(document: str) -> str:
    """The document with its export time blanked out (JSON or YAML)."""
    return re.sub(r"(exported_at\"?: ?)\"?'?[0-9T:.+-]+'?\"?", r"\1-", document, count=1)


def statuses(manager: DatabaseManager) -> dict[str, Any]:
    """A quick look at a few values the conflict tests care about."""
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("Zulu")
        return {
            "name": device.name,
            "model": device.model,
            "sessions": uow.sessions.count(),
            "logs": uow.logs.count(),
            "status": uow.sessions.get_by_id(SESSION_ID).status,
        }


__all__ = [
    "LATENCIES",
    "PSK_KEY",
    "SESSION_ID",
    "T0",
    "SessionStatus",
    "populate",
    "snapshot",
    "statuses",
    "wipe",
    "without_export_time",
]
