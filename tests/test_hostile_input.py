"""Hostile and bad input: only this package's exceptions escape, and a refused call changes nothing.

Property-based tests drive the query and import entry points with arbitrary text,
huge strings, NUL bytes, unicode, SQL fragments and LIKE wildcards. Values that do
not fit their column (too long, wrong type) are refused with a ``ValidationError``
naming the field on every backend, before SQLite could store them or MariaDB
could truncate them. YAML is read with the safe loader only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, insert, select, text

from cardlink.database import (
    Base,
    CardProfile,
    CommDirection,
    DatabaseError,
    DatabaseManager,
    DataImporter,
    Device,
    DeviceType,
    OTASession,
    UnitOfWork,
    ValidationError,
)

HUGE = "A" * 1_000_000
SQL_FRAGMENTS = [
    "'; DROP TABLE devices; --",
    "' OR '1'='1",
    '"; DELETE FROM cards; --',
    "1; UPDATE settings SET value = NULL",
    "Robert'); DROP TABLE sessions;--",
]
WILDCARDS = ["%", "_", "%%", "a%", "%b", "a_b", "\\", "\\%", "[a]", "*", "?"]
NASTY = [*SQL_FRAGMENTS, *WILDCARDS, "\x00", "a\x00b", "", " ", "ü", "𝄞", "\u202e", "\ufeff"]

#: Devices every property runs against; their names hold the characters searches must respect.
DEVICE_NAMES = {
    "D-PCT": "50% off",
    "D-UND": "a_b modem",
    "D-BSL": "back\\slash",
    "D-QUO": "O'Brien; DROP",
    "D-PLN": "plain ab",
    "D-UNI": "Müller 𝄞",
}
ADMIN_URLS = {
    "8901000000000000011": "https://ota.example:8443/admin%20path",
    "8901000000000000012": "https://ota_example:8443/admin",
    "8901000000000000013": "HTTPS://OTA.EXAMPLE:8443/Admin",
}
hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=80),
    st.text(alphabet="ab%_\\' ;-", max_size=8),
)
settings_for_db = settings(
    max_examples=40,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: keeps the file bounded
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def seeded(manager: DatabaseManager) -> DatabaseManager:
    """The manager with a few devices, one card, one session and some logs."""
    with UnitOfWork(manager) as uow:
        for device_id, name in DEVICE_NAMES.items():
            uow.devices.create(Device(id=device_id, device_type=DeviceType.PHONE, name=name))
        uow.cards.create(CardProfile(iccid="8901000000000000001", psk_identity="id_1%"))
        for iccid, url in ADMIN_URLS.items():
            uow.cards.create(CardProfile(iccid=iccid, admin_url=url))
        session = uow.sessions.create_session(device_id="D-PCT", card_iccid="8901000000000000001")
        uow.logs.add_log_batch(
            [
                (session.id, CommDirection.COMMAND, "00A4040008A000000151000000"),
                (session.id, CommDirection.RESPONSE, "6F108407A0000001510000A5049F6501FF9000"),
            ]
        )
        uow.settings.set_value("log_retention_days", 30)
        uow.commit()
    return manager


def fingerprint(manager: DatabaseManager) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for "unchanged" comparisons (the test data set is tiny)."""
    state = {}
    with manager.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            state[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return state


def assert_documented(call: Callable[[], Any]) -> Any:
    """Run ``call``; anything it raises must be one of this package's exceptions."""
    try:
        return call()
    except DatabaseError as error:
        assert str(error).strip(), "an error must say what is wrong"
        assert "\n" not in str(error).strip() or len(str(error)) < 2000
        return error


def _contains(haystack: str | None, needle: str) -> bool:
    return haystack is not None and needle.lower() in haystack.lower()


# -- search, search_hex, find_by, paginate ---------------------------------------------


@settings_for_db
@given(text=hostile_text)
@example(text=HUGE)
@example(text="\x00")
def test_device_search_raises_only_documented_errors_and_treats_wildcards_literally(
    seeded: DatabaseManager, text: str
) -> None:
    with UnitOfWork(seeded) as uow:
        result = assert_documented(lambda: uow.devices.search(text))
    if "\x00" in text or len(text) > 1000:
        assert isinstance(result, ValidationError)
        return
    assert isinstance(result, list)
    found = {device.id for device in result}
    if text.isascii():  # beyond ASCII, case folding and accents differ by collation
        expected = {key for key, name in DEVICE_NAMES.items() if _contains(name, text)}
        expected |= {key for key in DEVICE_NAMES if _contains(key, text)}
        assert found == expected
    else:
        assert found <= set(DEVICE_NAMES)


@settings_for_db
@given(pattern=hostile_text)
@example(pattern="a4" * 500_000)
@example(pattern="%")
def test_hex_search_accepts_only_hex_and_never_matches_wildcards(
    seeded: DatabaseManager, pattern: str
) -> None:
    with UnitOfWork(seeded) as uow:
        result = assert_documented(lambda: uow.logs.search_hex(pattern))
    compact = pattern.replace(" ", "")
    is_hex = bool(compact) and all(char in "0123456789abcdefABCDEF" for char in compact)
    if not is_hex or len(compact) % 2 or len(compact) > 1000:
        assert isinstance(result, ValidationError)
        return
    raw = ["00A4040008A000000151000000", "6F108407A0000001510000A5049F6501FF9000"]
    needle = bytes.fromhex(compact)
    assert sorted(log.raw_data for log in result) == sorted(
        data for data in raw if needle in bytes.fromhex(data)
    )


@settings_for_db
@given(
    prefix=st.one_of(hostile_text, st.sampled_from(["https://ota_", "https://ota%", "HTTPS://"]))
)
@example(prefix="https://ota.example:8443/admin%")
def test_admin_url_prefix_search_is_literal_and_case_insensitive(
    seeded: DatabaseManager, prefix: str
) -> None:
    with UnitOfWork(seeded) as uow:
        result = assert_documented(lambda: uow.cards.find_by_admin_url(prefix))
    if not prefix or "\x00" in prefix or len(prefix) > 1000:
        assert isinstance(result, ValidationError)
        return
    assert isinstance(result, list)
    if prefix.isascii():
        expected = {
            iccid for iccid, url in ADMIN_URLS.items() if url.lower().startswith(prefix.lower())
        }
        assert {card.iccid for card in result} == expected


FIELDS = ["id", "name", "device_type", "is_active", "last_seen", "imei", "notes", "created_at"]
filter_values = st.one_of(
    hostile_text,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.just(HUGE),
    st.lists(st.integers(), max_size=2),
)


@settings_for_db
@given(
    filters=st.dictionaries(
        st.one_of(st.sampled_from(FIELDS), hostile_text), filter_values, max_size=3
    )
)
def test_find_by_raises_only_documented_errors_and_matches_exactly(
    seeded: DatabaseManager, filters: dict[str, Any]
) -> None:
    with UnitOfWork(seeded) as uow:
        result = assert_documented(lambda: uow.devices.find_by(**filters))
        if isinstance(result, list):
            assert {device.id for device in result} <= set(DEVICE_NAMES)
            for device in result:
                for field, value in filters.items():
                    if isinstance(value, str) and field in ("id", "name"):
                        assert getattr(device, field).lower().rstrip() == value.lower().rstrip()


def test_a_filter_value_of_the_wrong_type_is_a_validation_error_naming_the_field(
    seeded: DatabaseManager,
) -> None:
    """Found by hypothesis: a huge int for a text field reached sqlite3, which overflowed."""
    with UnitOfWork(seeded) as uow:
        expected = r"^devices\.imei: expected text, got an integer$"
        with pytest.raises(ValidationError, match=expected):
            uow.devices.find_by(imei=-28049013682362310656)
        with pytest.raises(ValidationError, match=r"devices\.name: expected text"):
            uow.devices.count_by(name=3.5)
        assert uow.devices.find_by(imei="not stored") == []


@settings_for_db
@given(
    page=st.integers(min_value=-3, max_value=2**80),
    per_page=st.integers(min_value=-3, max_value=100_000),
    order_by=st.one_of(st.none(), st.sampled_from(FIELDS), hostile_text),
    descending=st.booleans(),
    filters=st.dictionaries(st.sampled_from(["name", "device_type"]), hostile_text, max_size=1),
)
def test_paginate_raises_only_documented_errors(
    seeded: DatabaseManager,
    page: int,
    per_page: int,
    order_by: str | None,
    descending: bool,
    filters: dict[str, Any],
) -> None:
    with UnitOfWork(seeded) as uow:
        result = assert_documented(
            lambda: uow.devices.paginate(
                page=page, per_page=per_page, order_by=order_by, descending=descending, **filters
            )
        )
    if not isinstance(result, DatabaseError):
        assert len(result.items) <= per_page
        assert result.total_items <= len(DEVICE_NAMES)


@settings_for_db
@given(name=st.text(max_size=255).filter(lambda text: "\x00" not in text))
@example(name="𝄞" * 255)
@example(name="'; DROP TABLE devices; --")
def test_unicode_and_sql_text_round_trip_unchanged(manager: DatabaseManager, name: str) -> None:
    device_id = f"U-{uuid.uuid4().hex[:12]}"
    with UnitOfWork(manager) as uow:
        uow.devices.create(
            Device(id=device_id, device_type=DeviceType.PHONE, name=name, notes=name)
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id(device_id)
        assert (device.name, device.notes) == (name, name)
        uow.devices.delete(device)
        uow.commit()


# -- settings YAML import ----------------------------------------------------------------

yaml_documents = st.one_of(
    hostile_text,
    st.builds(lambda key, value: f"{key}: {value}\n", hostile_text, hostile_text),
    st.builds(
        lambda key, value: f"settings:\n  {key}:\n    value: {value}\n    category: x\n",
        hostile_text,
        hostile_text,
    ),
    st.sampled_from(
        [
            "!!python/object/apply:os.system ['echo pwned']",
            "a: !!python/object/apply:subprocess.check_output [['id']]",
            "!!python/name:os.system",
            "a: &x [*x]",
            "- 1\n- 2",
            "{a: 1, b: [",
            f"{'k' * 129}: 1",
            "good: 1\n" + "k" * 129 + ": 2",
            "good: 1\nbad: {value: 1, description: 5}",
            "good: 1\nnan: .nan",
        ]
    ),
)


@settings_for_db
@given(document=yaml_documents)
def test_settings_yaml_import_is_all_or_nothing_and_raises_only_validation_errors(
    seeded: DatabaseManager, document: str
) -> None:
    before = fingerprint(seeded)
    with UnitOfWork(seeded) as uow:
        result = assert_documented(lambda: uow.settings.import_yaml(document))
        if isinstance(result, DatabaseError):
            assert isinstance(result, ValidationError)
            uow.commit()  # commit whatever the failed call may have left behind: nothing
    if isinstance(result, DatabaseError):
        assert fingerprint(seeded) == before


@pytest.mark.parametrize(
    "document",
    [
        "!!python/object/apply:os.system ['touch /tmp/cardlink-pwned']",
        "x: !!python/object/new:cardlink.database.Device {}",
        "x: !!python/object/apply:builtins.exec ['import os']",
    ],
)
def test_yaml_that_builds_python_objects_is_rejected(
    manager: DatabaseManager, document: str
) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match="YAML"):
            uow.settings.import_yaml(document)
        with pytest.raises(ValidationError):
            DataImporter(uow).import_data(document, format="yaml")
        with pytest.raises(ValidationError):
            DataImporter(uow).import_data(f"format: cardlink-database-export\n{document}", "yaml")
        assert uow.settings.count() == 0
    assert not Path("/tmp/cardlink-pwned").exists()


# -- values that do not fit their column ---------------------------------------------------


def _device(**fields: Any) -> Device:
    return Device(**{"id": "V-1", "device_type": DeviceType.PHONE, **fields})


def _session_writes(uow: UnitOfWork, **fields: Any) -> None:
    uow.devices.create(_device())
    uow.sessions.create_session(device_id="V-1", **fields)


def _log_batch(uow: UnitOfWork, **fields: Any) -> None:
    uow.devices.create(_device())
    session = uow.sessions.create_session(device_id="V-1")
    uow.logs.add_log_batch([{"session_id": session.id, "direction": "command", **fields}])
    uow.logs.flush_batch()


def _log_tuple(uow: UnitOfWork, position: int, value: Any) -> None:
    """A batch tuple (the fast path) with ``value`` at ``position``."""
    uow.devices.create(_device())
    session = uow.sessions.create_session(device_id="V-1")
    row: list[Any] = [session.id, CommDirection.COMMAND, "00A4", None, None, None, None, None]
    row[position] = value
    uow.logs.add_log_batch([tuple(row)])
    uow.logs.flush_batch()


def _single_log(uow: UnitOfWork, **fields: Any) -> None:
    uow.devices.create(_device())
    session = uow.sessions.create_session(device_id="V-1")
    uow.logs.add_log(session.id, "response", **fields)


BAD_VALUES: list[tuple[str, Callable[[UnitOfWork], Any]]] = [
    ("devices.name", lambda uow: uow.devices.create(_device(name="x" * 256))),
    ("devices.id", lambda uow: uow.devices.create(_device(id="x" * 65))),
    ("devices.name", lambda uow: uow.devices.create(_device(name=12345))),
    ("devices.is_active", lambda uow: uow.devices.create(_device(is_active="yes"))),
    ("devices.last_seen", lambda uow: uow.devices.create(_device(last_seen="yesterday"))),
    ("devices.imei", lambda uow: uow.devices.create(_device(imei="3" * 21))),
    ("devices.notes", lambda uow: uow.devices.create(_device(notes="nul\x00byte"))),
    (
        "devices.connection_settings",
        lambda uow: uow.devices.create(_device(connection_settings={"socket": object()})),
    ),
    ("devices.device_type", lambda uow: uow.devices.create(_device(device_type="toaster"))),
    ("cards.iccid", lambda uow: uow.cards.create(CardProfile(iccid="8" * 23))),
    (
        "cards.admin_url",
        lambda uow: uow.cards.create(CardProfile(iccid="8901", admin_url="https://" + "a" * 600)),
    ),
    ("sessions.session_type", lambda uow: _session_writes(uow, session_type="t" * 65)),
    ("sessions.duration_ms", lambda uow: _session_writes(uow, duration_ms="12")),
    ("sessions.duration_ms", lambda uow: _session_writes(uow, duration_ms=2**63)),
    ("status_message", lambda uow: _log_batch(uow, status_message="m" * 256)),
    ("latency_ms", lambda uow: _log_batch(uow, latency_ms="fast")),
    ("raw_data", lambda uow: _log_batch(uow, raw_data=0x9000)),
    ("timestamp", lambda uow: _log_batch(uow, timestamp="2024-01-01")),
    ("latency_ms", lambda uow: _log_batch(uow, latency_ms=float("nan"))),
    ("latency_ms", lambda uow: _log_tuple(uow, 6, float("inf"))),
    ("status_message", lambda uow: _log_tuple(uow, 5, "m" * 256)),
    ("raw_data", lambda uow: _log_tuple(uow, 2, b"\x90\x00")),
    ("decoded_data", lambda uow: _log_tuple(uow, 3, "nul\x00")),
    ("status_message", lambda uow: _single_log(uow, status_message="m" * 256)),
    ("settings.key", lambda uow: uow.settings.set_value("k" * 129, 1)),
    ("settings.category", lambda uow: uow.settings.set_value("k", 1, category="c" * 65)),
    ("value", lambda uow: uow.settings.set_value("k", float("nan"))),
]


@pytest.mark.parametrize(
    ("field", "write"), BAD_VALUES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_VALUES)]
)
def test_a_value_that_does_not_fit_its_column_raises_validation_error_naming_the_field(
    manager: DatabaseManager, field: str, write: Callable[[UnitOfWork], Any]
) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError) as raised:
            write(uow)
        assert field.split(".")[-1] in str(raised.value)
        uow.commit()  # the unit of work stays usable; what was accepted before the refusal commits
    with manager.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(OTASession)).scalar() <= 1
        stored = connection.execute(select(Device.name, Device.notes)).all()
    assert all(len(name or "") <= 255 for name, _ in stored)


def test_an_update_with_a_too_long_value_is_refused_and_the_row_is_unchanged(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(_device(name="original"))
        uow.commit()
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("V-1")
        device.name = "y" * 300
        with pytest.raises(ValidationError, match=r"devices\.name"):
            uow.devices.update(device)
        uow.rollback()
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("V-1").name == "original"


def test_a_batch_with_one_bad_row_writes_nothing(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.devices.create(_device())
        session = uow.sessions.create_session(device_id="V-1")
        good = [(session.id, "command", "00A4")] * 10
        with pytest.raises(ValidationError, match="log #10"):
            uow.logs.add_log_batch([*good, (session.id, "command", "00A4", None, None, "m" * 256)])
        assert uow.logs.pending_count == 0
        uow.commit()
        assert uow.logs.count() == 0


def test_timestamps_of_any_zone_round_trip_as_the_same_instant(manager: DatabaseManager) -> None:
    moment = datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=timezone.utc)
    with UnitOfWork(manager) as uow:
        uow.devices.create(_device(last_seen=moment))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("V-1").last_seen == moment


# -- import_data -----------------------------------------------------------------------------

IMPORT_SESSION = "6f1c2b1e-0d5e-4c8a-9a57-3f1f3c9b2a11"
STAMP = "2024-05-01T10:00:00.000000+00:00"


def base_document() -> dict[str, Any]:
    """A small valid export: one row per table, new keys (``D-PCT`` exists: a conflict)."""
    stamps = {"created_at": STAMP, "updated_at": STAMP}
    return {
        "format": "cardlink-database-export",
        "format_version": 1,
        "psk_keys": "encrypted",
        "tables": {
            "devices": [
                {"id": "IMP-1", "device_type": "phone", "name": "imported", **stamps},
                {"id": "D-PCT", "device_type": "modem", "name": "conflict", **stamps},
            ],
            "cards": [{"iccid": "8902000000000000001", "psk_identity": "imp", **stamps}],
            "sessions": [
                {"id": IMPORT_SESSION, "device_id": "IMP-1", "status": "completed", **stamps}
            ],
            "logs": [
                {
                    "id": 900001,
                    "session_id": IMPORT_SESSION,
                    "timestamp": STAMP,
                    "direction": "response",
                    "raw_data": "9000",
                    "status_word": "9000",
                    **stamps,
                }
            ],
            "tests": [],
            "settings": [{"key": "imported", "value": [1, "two", None], **stamps}],
        },
    }


def mangled(place: tuple[str, int, str], value: Any) -> str:
    """The base document as JSON, with ``value`` at ``(table, row, field)``."""
    document = base_document()
    table, index, field = place
    document["tables"][table][index][field] = value
    return json.dumps(document)


ROW_FIELDS = [
    ("devices", 0, "id"),
    ("devices", 0, "name"),
    ("devices", 0, "device_type"),
    ("devices", 0, "is_active"),
    ("devices", 0, "connection_settings"),
    ("devices", 1, "last_seen"),
    ("devices", 0, "created_at"),
    ("cards", 0, "iccid"),
    ("cards", 0, "psk_key_encrypted"),
    ("sessions", 0, "id"),
    ("sessions", 0, "device_id"),
    ("sessions", 0, "duration_ms"),
    ("sessions", 0, "status"),
    ("logs", 0, "id"),
    ("logs", 0, "raw_data"),
    ("logs", 0, "latency_ms"),
    ("logs", 0, "status_word"),
    ("settings", 0, "key"),
    ("settings", 0, "value"),
    ("settings", 0, "unknown_column"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def import_documents(draw: st.DrawFn) -> tuple[str, str]:
    """(format, text) of a document: mangled text, random JSON, or a valid one with a bad value."""
    kind = draw(st.sampled_from(["text", "json", "field", "header", "yaml", "valid", "valid"]))
    if kind == "text":
        return draw(st.sampled_from(["json", "yaml"])), draw(hostile_text)
    if kind == "json":
        return "json", json.dumps(draw(json_values))
    document = base_document()
    if kind == "valid":  # hostile but storable text: the import must succeed
        text = draw(hostile_text.filter(lambda value: "\x00" not in value))
        document["tables"]["devices"][draw(st.sampled_from([0, 1]))]["name"] = text
        document["tables"]["logs"][0]["raw_data"] = text
        document["tables"]["settings"][0]["value"] = {text: [text]}
        return "json", json.dumps(document)
    if kind == "header":
        key = draw(st.sampled_from(["format", "format_version", "psk_keys", "tables"]))
        document[key] = draw(json_values)
    else:
        table, index, field = draw(st.sampled_from(ROW_FIELDS))
        document["tables"][table][index][field] = draw(
            st.one_of(json_values, st.just(HUGE), st.just("\x00"), st.just(2**70))
        )
    if kind == "yaml":
        return "yaml", yaml.safe_dump(document, allow_unicode=True)
    return "json", json.dumps(document, ensure_ascii=draw(st.booleans()))


@settings_for_db
@given(
    document=import_documents(),
    conflict_mode=st.sampled_from(["skip", "overwrite", "merge"]),
)
@example(document=("json", json.dumps(base_document())), conflict_mode="overwrite")
@example(document=("json", mangled(("logs", 0, "id"), 2**70)), conflict_mode="skip")
@example(document=("json", mangled(("sessions", 0, "duration_ms"), 2**40)), conflict_mode="skip")
@example(document=("json", mangled(("settings", 0, "value"), {"a": "\x00"})), conflict_mode="skip")
@example(document=("json", mangled(("devices", 0, "notes"), "nul\x00")), conflict_mode="merge")
@example(document=("yaml", "!!python/object/apply:os.system ['echo pwned']"), conflict_mode="skip")
def test_import_raises_only_documented_errors_and_a_failed_import_changes_nothing(
    seeded: DatabaseManager, document: tuple[str, str], conflict_mode: str
) -> None:
    data_format, text = document
    before = fingerprint(seeded)
    with UnitOfWork(seeded) as uow:
        importer = DataImporter(uow)
        result = assert_documented(
            lambda: importer.import_data(text, format=data_format, conflict_mode=conflict_mode)
        )
        event(f"{data_format}: {type(result).__name__}")
        if isinstance(result, DatabaseError):
            uow.commit()  # nothing of the failed import may be left to commit
    assert fingerprint(seeded) == before
    if not isinstance(result, DatabaseError) and '"IMP-1"' in text:
        rows = sum(len(table) for table in base_document()["tables"].values())
        assert result.created + result.updated + result.skipped == rows


def test_a_valid_import_of_hostile_text_round_trips_it(manager: DatabaseManager) -> None:
    document = base_document()
    nasty = "'; DROP TABLE devices; -- %_\\ 𝄞 \u202e"
    document["tables"]["devices"][0]["name"] = nasty
    document["tables"]["settings"][0]["value"] = {"sql": nasty, "list": [nasty]}
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(json.dumps(document), conflict_mode="skip")
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("IMP-1").name == nasty
        assert uow.settings.get_value("imported") == {"sql": nasty, "list": [nasty]}
        assert uow.logs.count_by_session(IMPORT_SESSION) == 1


@pytest.mark.parametrize(
    ("place", "value", "named"),
    [
        (("logs", 0, "id"), 2**70, "id"),
        (("sessions", 0, "duration_ms"), 2**63, "duration_ms"),
        (("settings", 0, "value"), {"a": "\x00"}, "value"),
        (("devices", 0, "notes"), "nul\x00", "notes"),
        (("devices", 0, "name"), "n" * 256, "name"),
        (("devices", 0, "is_active"), "yes", "is_active"),
        (("logs", 0, "latency_ms"), "fast", "latency_ms"),
    ],
    ids=["bigint overflow", "int overflow", "JSON NUL", "text NUL", "too long", "bool", "number"],
)
def test_import_refuses_a_value_that_does_not_fit_naming_the_field(
    manager: DatabaseManager, place: tuple[str, int, str], value: Any, named: str
) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match=named):
            DataImporter(uow).import_data(mangled(place, value), conflict_mode="skip")
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0 and uow.logs.count() == 0


@pytest.mark.parametrize("backend", ["mysql"])
def test_mariadb_connections_are_strict_so_even_raw_sql_cannot_truncate(
    manager: DatabaseManager,
) -> None:
    """Behind the layer's own checks, the server refuses too: whatever its default sql_mode."""
    with manager.engine.connect() as connection:
        mode = connection.execute(text("SELECT @@SESSION.sql_mode")).scalar_one()
    assert "STRICT_ALL_TABLES" in mode
    raw = insert(Device.__table__).values(
        id="RAW", device_type="phone", name="x" * 300, is_active=True
    )
    with manager.engine.connect() as connection, pytest.raises(sa_exc.DataError):
        connection.execute(raw)
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0
