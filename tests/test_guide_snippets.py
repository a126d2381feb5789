"""Every Python snippet of the user guide runs as written, on every backend.

``GUIDE`` holds the snippets' text copied verbatim from the guide (placeholders
such as ``"8901..."`` and ``"RF8M..."`` included). Each test supplies the context
a snippet implies (a manager, an existing device, card or session, the imports,
``datetime``), executes the text unchanged, and checks what a user would
notice: the rows that come back, counts, printed lines. Sections: Database
Configuration, Data Models, Repository Pattern, Unit of Work, Best Practices,
Troubleshooting and Advanced Usage.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import junitparser
import pytest
import yaml
from sqlalchemy import create_engine, inspect, text

import cardlink.database as api
from cardlink.database import (
    CardProfile,
    CardType,
    CommDirection,
    DatabaseConfig,
    DatabaseManager,
    Device,
    DeviceType,
    SessionStatus,
    UnitOfWork,
)

GUIDE: dict[str, str] = {
    # guide lines 229-249
    "programmatic_configuration": """\
from cardlink.database import DatabaseConfig, DatabaseManager

# Using defaults (SQLite)
config = DatabaseConfig()
print(f"Database URL: {config.database_url}")

# Custom SQLite path
config = DatabaseConfig.from_sqlite_path("my_database.db")

# MySQL
config = DatabaseConfig(
    database_url="mysql://user:pass@localhost/cardlink"
)

# Check backend
if config.is_mysql:
    print("Using MySQL backend")

# Create manager
manager = DatabaseManager(config)
manager.initialize()
""",
    # guide lines 255-260
    "connection_pooling": """\
config = DatabaseConfig(
    database_url="postgresql://user:pass@localhost/cardlink",
    pool_size=10,         # Maximum connections in pool
    max_overflow=20,      # Additional connections when pool full
    pool_timeout=30,      # Seconds to wait for connection
)
""",
    # guide lines 272-298
    "device_model": """\
from cardlink.database import Device, DeviceType

device = Device(
    id="RF8M33XXXXX",             # Device serial/IMEI
    device_type=DeviceType.PHONE, # PHONE or MODEM
    name="Test Phone 1",
    manufacturer="Samsung",
    model="Galaxy S21",
    firmware_version="Android 12",

    # Optional identifiers
    imei="123456789012345",
    imsi="310120987654321",
    iccid="89011234567890123456",

    # Connection settings (JSON)
    connection_settings={
        "adb_serial": "RF8M33XXXXX",
        "port": 5037,
    },

    # Status tracking
    is_active=True,
    last_seen=datetime.now(),

    notes="Primary test device",
)
""",
    # guide lines 316-347
    "card_model": """\
from cardlink.database import CardProfile, CardType

card = CardProfile(
    iccid="89011234567890123456",  # Primary key
    imsi="310120987654321",
    card_type=CardType.USIM,        # SIM, USIM, ISIM, EUICC
    atr="3B9F96801F478031E073...",  # Card ATR

    # PSK credentials (encrypted)
    psk_identity="card_001",
    # psk_key_encrypted stored via repository method

    # OTA configuration
    admin_url="https://admin.example.com:8443/api",

    # JSON configurations
    trigger_config={
        "sms": {
            "tar": "000001",
            "kic": "01",
            "kid": "01",
        }
    },
    bip_config={
        "bearer": "GPRS",
        "apn": "internet",
        "buffer_size": 1024,
    },
    security_domains={
        "isd_aid": "A000000151000000",
    },
)
""",
    # guide lines 364-386
    "session_model": """\
from cardlink.database import OTASession, SessionStatus
import uuid

session = OTASession(
    id=uuid.uuid4(),
    device_id="RF8M33XXXXX",
    card_iccid="89011234567890123456",
    session_type="profile_download",
    status=SessionStatus.ACTIVE,

    # TLS information
    cipher_suite="TLS_PSK_WITH_AES_128_CBC_SHA256",
    psk_identity="card_001",

    # Timestamps
    started_at=datetime.now(),
    # ended_at set on completion
    # duration_ms calculated automatically

    # Error tracking
    error_code=None,
    error_message=None,
)
""",
    # guide lines 403-417
    "log_model": """\
from cardlink.database import CommLog, CommDirection

log = CommLog(
    session_id=session.id,
    timestamp=datetime.now(),
    direction=CommDirection.COMMAND,

    raw_data="00A4040008A000000151000000",
    decoded_data="SELECT ISD AID=A000000151000000",

    # Response fields (for responses only)
    status_word="9000",
    status_message="Success",
    latency_ms=15.2,
)
""",
    # guide lines 434-460
    "test_result_model": """\
from cardlink.database import TestResult, TestStatus
import uuid

result = TestResult(
    id=uuid.uuid4(),
    run_id="test_run_2024_11_29_001",
    suite_name="integration_tests",
    test_name="test_profile_download",

    device_id="RF8M33XXXXX",
    card_iccid="89011234567890123456",

    status=TestStatus.PASSED,

    started_at=datetime.now(),
    # ended_at, duration_ms set on completion

    assertions={
        "connection_established": True,
        "profile_downloaded": True,
        "apdu_count": 15,
    },
    metadata={
        "test_env": "staging",
        "test_runner": "pytest",
    },
)
""",
    # guide lines 477-484
    "setting_model": """\
from cardlink.database import Setting

setting = Setting(
    key="max_sessions_per_device",
    value=10,
    description="Maximum concurrent sessions per device",
    category="limits",
)
""",
    # guide lines 498-526
    "base_repository": """\
# Common CRUD operations
device = repository.get_by_id("RF8M33XXXXX")
all_devices = repository.get_all(limit=100)
phones = repository.find_by(device_type=DeviceType.PHONE)
phone = repository.find_one_by(name="Test Phone")

# Create/Update/Delete
repository.create(device)
repository.create_all([device1, device2, device3])
repository.update(device)
repository.delete(device)
repository.delete_by_id("RF8M33XXXXX")

# Utilities
exists = repository.exists("RF8M33XXXXX")
count = repository.count()
count_phones = repository.count_by(device_type=DeviceType.PHONE)

# Pagination
page = repository.paginate(
    page=1,
    per_page=20,
    order_by="created_at",
    descending=True
)
print(f"Page {page.page} of {page.total_pages}")
print(f"Total: {page.total_items}")
for item in page.items:
    print(item)
""",
    # guide lines 532-554
    "device_repository": """\
with UnitOfWork(manager) as uow:
    # Find by type
    phones = uow.devices.find_phones()
    modems = uow.devices.find_modems()

    # Find active devices
    active = uow.devices.find_active()

    # Find recently seen (within hours)
    recent = uow.devices.find_recent(hours=24)

    # Search (name, ID, IMEI, IMSI)
    results = uow.devices.search("Samsung")

    # Update last seen
    uow.devices.update_last_seen("RF8M33XXXXX")

    # Find by ICCID
    device = uow.devices.find_by_iccid("89011234567890123456")

    # Deactivate
    uow.devices.deactivate("RF8M33XXXXX")
    uow.commit()
""",
    # guide lines 560-588
    "card_repository": """\
with UnitOfWork(manager) as uow:
    # Create with encrypted PSK
    card = CardProfile(iccid="8901...", psk_identity="card_001")
    uow.cards.create_with_psk(card, b"my_16_byte_psk_key")

    # Get decrypted PSK key
    psk_key = uow.cards.get_psk_key("8901...")
    print(f"PSK Key: {psk_key.hex()}")

    # Update PSK
    uow.cards.update_psk(
        "8901...",
        identity="new_identity",
        key=b"new_psk_key_here"
    )

    # Find by type
    usim_cards = uow.cards.find_by_type(CardType.USIM)

    # Find cards with PSK configured
    cards_with_psk = uow.cards.find_with_psk()

    # Find by admin URL
    cards = uow.cards.find_by_admin_url("https://admin.example.com")

    # Export profile (without key by default)
    profile_dict = uow.cards.export_profile("8901...", include_key=False)

    uow.commit()
""",
    # guide lines 594-640
    "session_repository": """\
with UnitOfWork(manager) as uow:
    # Create session
    session = uow.sessions.create_session(
        device_id="RF8M33XXXXX",
        card_iccid="8901...",
        session_type="profile_download"
    )

    # Start session (sets timestamp)
    uow.sessions.start_session(session.id)

    # Set TLS info
    uow.sessions.set_tls_info(
        session.id,
        cipher="TLS_PSK_WITH_AES_128_CBC_SHA256",
        psk_identity="card_001"
    )

    # Complete session (calculates duration)
    uow.sessions.complete_session(session.id)

    # Or mark as failed
    uow.sessions.fail_session(
        session.id,
        error_code="E001",
        message="Connection timeout"
    )

    # Query sessions
    device_sessions = uow.sessions.find_by_device("RF8M33XXXXX", limit=10)
    card_sessions = uow.sessions.find_by_card("8901...", limit=10)
    active = uow.sessions.find_active()
    failed = uow.sessions.find_by_status(SessionStatus.FAILED)

    # Date range
    sessions = uow.sessions.find_by_date_range(
        start=datetime(2024, 11, 1),
        end=datetime(2024, 11, 30)
    )

    # Statistics
    stats = uow.sessions.get_statistics(days=30)
    print(f"Total: {stats['total']}")
    print(f"Success rate: {stats['success_rate']:.1f}%")
    print(f"Avg duration: {stats['avg_duration_ms']:.0f}ms")

    uow.commit()
""",
    # guide lines 646-684
    "log_repository": """\
with UnitOfWork(manager) as uow:
    # Add single log
    uow.logs.add_log(
        session_id=session.id,
        direction=CommDirection.COMMAND,
        raw_data="00A4040008A000000151000000",
        decoded_data="SELECT ISD",
    )

    # Batch logging (high performance)
    logs = [
        (session.id, CommDirection.COMMAND, "00A4...", "SELECT"),
        (session.id, CommDirection.RESPONSE, "9000", "Success"),
    ]
    uow.logs.add_log_batch(logs)
    uow.logs.flush_batch()  # Explicit flush

    # Query logs
    all_logs = uow.logs.find_by_session(session.id)
    commands = uow.logs.find_commands(session.id)
    responses = uow.logs.find_responses(session.id)

    # Find by status word
    success_logs = uow.logs.find_by_status(session.id, "9000")

    # Find errors (non-9000)
    errors = uow.logs.find_errors(session.id)

    # Search hex pattern
    select_commands = uow.logs.search_hex("A4", session_id=session.id)

    # Purge old logs (retention policy)
    deleted_count = uow.logs.purge_old(days=90)
    print(f"Deleted {deleted_count} old logs")

    # Export session logs
    log_data = uow.logs.export_session_logs(session.id)

    uow.commit()
""",
    # guide lines 690-727
    "test_repository": """\
with UnitOfWork(manager) as uow:
    # Create test result
    result = uow.tests.create_result(
        run_id="test_run_001",
        suite_name="integration",
        test_name="test_ota_session",
        device_id="RF8M33XXXXX",
        card_iccid="8901...",
        status=TestStatus.PASSED,
        started_at=datetime.now(),
        ended_at=datetime.now(),
        duration_ms=1500,
        assertions={"connected": True},
        metadata={"env": "staging"}
    )

    # Query results
    run_results = uow.tests.find_by_run("test_run_001")
    suite_results = uow.tests.find_by_suite("integration", limit=50)
    failures = uow.tests.find_failures("test_run_001")

    # Get run summary
    summary = uow.tests.get_run_summary("test_run_001")
    print(f"Passed: {summary['passed']}")
    print(f"Failed: {summary['failed']}")
    print(f"Success rate: {summary['success_rate']:.1f}%")

    # Compare runs (regression detection)
    comparison = uow.tests.compare_runs("run_001", "run_002")
    print(f"New failures: {len(comparison['new_failures'])}")
    print(f"Fixed tests: {len(comparison['fixed'])}")

    # Export JUnit XML
    junit_xml = uow.tests.export_junit_xml("test_run_001")
    with open("results.xml", "w") as f:
        f.write(junit_xml)

    uow.commit()
""",
    # guide lines 733-767
    "settings_repository": """\
with UnitOfWork(manager) as uow:
    # Get setting with default fallback
    max_sessions = uow.settings.get_value(
        "max_sessions_per_device",
        default=10
    )

    # Set setting
    uow.settings.set_value(
        key="log_retention_days",
        value=90,
        description="Days to retain APDU logs",
        category="retention"
    )

    # Get by category
    retention_settings = uow.settings.get_by_category("retention")

    # Get all settings (merged with defaults)
    all_settings = uow.settings.get_all_settings()

    # Export to YAML
    yaml_str = uow.settings.export_yaml()
    with open("settings.yaml", "w") as f:
        f.write(yaml_str)

    # Import from YAML
    with open("settings.yaml") as f:
        yaml_str = f.read()
    uow.settings.import_yaml(yaml_str)

    # Reset to defaults
    uow.settings.reset_to_defaults(category="retention")

    uow.commit()
""",
    # guide lines 777-799
    "unit_of_work": """\
from cardlink.database import UnitOfWork

# Context manager (recommended)
with UnitOfWork(manager) as uow:
    device = Device(id="RF8M...", device_type=DeviceType.PHONE)
    uow.devices.create(device)

    card = CardProfile(iccid="8901...")
    uow.cards.create_with_psk(card, b"psk_key")

    uow.commit()  # Commit transaction
# Automatic rollback on exception

# Manual management
uow = UnitOfWork(manager)
try:
    uow.devices.create(device)
    uow.commit()
except Exception as e:
    uow.rollback()
    raise
finally:
    uow.close()
""",
    # guide lines 1122-1125
    "transaction_management": """\
with UnitOfWork(manager) as uow:
    uow.devices.create(device)
    uow.cards.create(card)
    uow.commit()
""",
    # guide lines 1138-1143
    "resource_cleanup": """\
try:
    manager = DatabaseManager()
    manager.initialize()
    # Use database
finally:
    manager.close()
""",
    # guide lines 1150-1157
    "error_handling": """\
from cardlink.database import NotFoundError, IntegrityError

try:
    device = uow.devices.get_by_id("invalid")
except NotFoundError:
    print("Device not found")
except IntegrityError as e:
    print(f"Constraint violation: {e}")
""",
    # guide lines 1164-1168
    "encryption": """\
# Use repository method
uow.cards.create_with_psk(card, psk_key)

# NOT direct assignment
# card.psk_key_encrypted = psk_key  # WRONG!
""",
    # guide lines 1180-1182
    "batch_logs": """\
# Batch log inserts
uow.logs.add_log_batch(logs)
uow.logs.flush_batch()
""",
    # guide lines 1187-1187
    "pagination": """\
page = uow.devices.paginate(page=1, per_page=50)
""",
    # guide lines 1192-1192
    "load_all_logs": """\
all_logs = uow.logs.find_by_session(session_id)  # Could be thousands!
""",
    # guide lines 1233-1240
    "connection_test": """\
from cardlink.database import DatabaseManager

manager = DatabaseManager()
try:
    manager.initialize()
    print("Connection successful!")
except Exception as e:
    print(f"Connection failed: {e}")
""",
    # guide lines 1287-1287
    "echo": """\
config = DatabaseConfig(echo=True)  # Logs all SQL
""",
    # guide lines 1291-1295
    "index_list": """\
# Indexes should exist on:
# - devices: device_type, iccid, last_seen
# - cards: card_type, psk_identity
# - sessions: device_id, card_iccid, status, created_at
# - logs: session_id, timestamp, direction
""",
    # guide lines 1299-1299
    "troubleshooting_pagination": """\
page = repository.paginate(page=1, per_page=50)
""",
    # guide lines 1323-1334
    "custom_queries": """\
from sqlalchemy import select, and_, or_

with UnitOfWork(manager) as uow:
    # Raw SQLAlchemy query
    stmt = select(Device).where(
        and_(
            Device.device_type == DeviceType.PHONE,
            Device.is_active == True,
            Device.manufacturer.like('%Samsung%')
        )
    )
    results = uow.session.execute(stmt).scalars().all()
""",
    # guide lines 1340-1346
    "bulk_operations": """\
# Bulk insert
devices = [
    Device(id=f"device_{i}", device_type=DeviceType.PHONE)
    for i in range(100)
]
uow.devices.create_all(devices)
uow.commit()
""",
    # guide lines 1352-1362
    "statistics_queries": """\
from sqlalchemy import func

with UnitOfWork(manager) as uow:
    # Count by type
    stats = uow.session.query(
        Device.device_type,
        func.count(Device.id)
    ).group_by(Device.device_type).all()

    for device_type, count in stats:
        print(f"{device_type}: {count}")
""",
}


def run(name: str, **context: Any) -> dict[str, Any]:
    """Execute the guide snippet ``name`` with the imports the guide implies plus ``context``."""
    namespace: dict[str, Any] = {name: getattr(api, name) for name in api.__all__}
    namespace.update(datetime=datetime, timedelta=timedelta, uuid=uuid)
    namespace.update(context)
    exec(compile(GUIDE[name], f"<guide: {name}>", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snippets write results.xml / settings.yaml / data/ into the current folder."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "CARDLINK_DB_DRIVER"):
        monkeypatch.delenv(name, raising=False)


def store(manager: DatabaseManager, *entities: object) -> None:
    with UnitOfWork(manager) as uow:
        uow.session.add_all(entities)
        uow.commit()


def guide_device(**fields: object) -> Device:
    values: dict[str, object] = {
        "id": "RF8M33XXXXX",
        "device_type": DeviceType.PHONE,
        "name": "Test Phone",
        "manufacturer": "Samsung",
        "model": "Galaxy S21",
        "imei": "123456789012345",
        "iccid": "89011234567890123456",
    }
    values.update(fields)
    return Device(**values)


def stored_session(manager: DatabaseManager, iccid: str = "8901...") -> Any:
    """A device, a card and an ACTIVE session between them (the guide's ``session``)."""
    store(manager, guide_device(), CardProfile(iccid=iccid, card_type=CardType.USIM))
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(device_id="RF8M33XXXXX", card_iccid=iccid)
        uow.sessions.start_session(session.id)
        uow.commit()
    return session


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


# -- Database Configuration ----------------------------------------------------------


@pytest.fixture
def mysql_guide_account() -> Iterator[None]:
    """The guide's ``mysql://user:pass@localhost/cardlink`` made real on the local MariaDB."""
    from conftest import backend_url

    admin_url = backend_url("mysql", Path("."))
    engine = create_engine(DatabaseConfig(database_url=admin_url).url, isolation_level="AUTOCOMMIT")
    hosts = ("localhost", "127.0.0.1", "%")
    with engine.connect() as connection:
        created = not connection.execute(text("SHOW DATABASES LIKE 'cardlink'")).first()
        connection.execute(text("CREATE DATABASE IF NOT EXISTS cardlink"))
        for host in hosts:
            connection.execute(
                text(f"CREATE USER IF NOT EXISTS 'user'@'{host}' IDENTIFIED BY 'pass'")
            )
            connection.execute(text(f"GRANT ALL ON cardlink.* TO 'user'@'{host}'"))
    try:
        yield None
    finally:
        with engine.connect() as connection:
            for host in hosts:
                connection.execute(text(f"DROP USER IF EXISTS 'user'@'{host}'"))
            if created:
                connection.execute(text("DROP DATABASE IF EXISTS cardlink"))
        engine.dispose()


def test_programmatic_configuration_snippet_runs_as_written(
    capsys: pytest.CaptureFixture[str], mysql_guide_account: None
) -> None:
    ns = run("programmatic_configuration")
    manager = ns["manager"]
    try:
        assert printed(capsys) == [
            "Database URL: sqlite:///data/cardlink.db",
            "Using MySQL backend",
        ]
        with manager.engine.connect() as connection:
            assert connection.execute(text("SELECT DATABASE()")).scalar() == "cardlink"
        assert "pass" not in repr(ns["config"]) and ":pass@" not in repr(manager)
    finally:
        manager.close()


def test_custom_sqlite_path_snippet_line_creates_that_file(tmp_path: Path) -> None:
    config = DatabaseConfig.from_sqlite_path("my_database.db")
    with DatabaseManager(config) as manager:
        manager.create_tables()
    assert config.is_sqlite and (tmp_path / "my_database.db").is_file()


def test_connection_pooling_snippet_configures_the_pool() -> None:
    config = run("connection_pooling")["config"]
    options = config.engine_options()
    assert (options["pool_size"], options["max_overflow"], options["pool_timeout"]) == (10, 20, 30)
    assert config.is_postgresql and config.url.drivername == "postgresql+psycopg"
    assert config.database_url == "postgresql+psycopg://user:***@localhost/cardlink"


def test_pooling_options_reach_the_engine_on_the_servers(database_url: str, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no connection pool to size")
    config = DatabaseConfig(
        database_url=database_url, pool_size=10, max_overflow=20, pool_timeout=30
    )
    with DatabaseManager(config) as manager:
        pool: Any = manager.engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (10, 20, 30)


# -- Data Models -------------------------------------------------------------------


def test_data_model_snippets_store_and_read_back(manager: DatabaseManager) -> None:
    ns = run("device_model")
    ns = run("card_model", **ns)
    store(manager, ns["device"], ns["card"])
    ns = run("session_model", **ns)
    store(manager, ns["session"])
    ns = run("log_model", **ns)
    ns = run("test_result_model", **ns)
    ns = run("setting_model", **ns)
    store(manager, ns["log"], ns["result"], ns["setting"])
    session_id = ns["session"].id

    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("RF8M33XXXXX")
        assert device.connection_settings == {"adb_serial": "RF8M33XXXXX", "port": 5037}
        assert device.device_type is DeviceType.PHONE and device.is_active is True
        assert device.last_seen is not None and device.last_seen.tzinfo is not None
        card = uow.cards.get_by_id("89011234567890123456")
        assert card.trigger_config == {"sms": {"tar": "000001", "kic": "01", "kid": "01"}}
        assert card.bip_config["buffer_size"] == 1024 and card.card_type is CardType.USIM
        session = uow.sessions.get_by_id(session_id)
        assert session.status is SessionStatus.ACTIVE and isinstance(session.id, uuid.UUID)
        [log] = uow.logs.find_by_session(session_id)
        assert (log.status_word, log.latency_ms) == ("9000", 15.2)
        assert log.direction is CommDirection.COMMAND
        [result] = uow.tests.find_by_run("test_run_2024_11_29_001")
        assert result.metadata == {"test_env": "staging", "test_runner": "pytest"}
        assert result.assertions["apdu_count"] == 15
        assert uow.settings.get_value("max_sessions_per_device") == 10
        assert uow.settings.get_by_id("max_sessions_per_device").category == "limits"


# -- Repository Pattern --------------------------------------------------------------


def test_base_repository_snippet_runs_as_written(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    store(manager, guide_device())
    device1, device2, device3 = (
        Device(id=f"DEV-{n}", device_type=DeviceType.MODEM, name=f"Modem {n}") for n in (1, 2, 3)
    )
    with UnitOfWork(manager) as uow:
        ns = run(
            "base_repository",
            repository=uow.devices,
            device1=device1,
            device2=device2,
            device3=device3,
        )
        uow.commit()

    assert [d.id for d in ns["all_devices"]] == ["RF8M33XXXXX"]
    assert [d.id for d in ns["phones"]] == ["RF8M33XXXXX"] and ns["phone"] is ns["device"]
    assert (ns["exists"], ns["count"], ns["count_phones"]) == (False, 3, 0)
    lines = printed(capsys)
    assert lines[:2] == ["Page 1 of 1", "Total: 3"]
    assert len(lines) == 5 and all(line.startswith("Device(id='DEV-") for line in lines[2:])
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["DEV-1", "DEV-2", "DEV-3"]


def test_device_repository_snippet_runs_as_written(manager: DatabaseManager) -> None:
    store(
        manager,
        guide_device(),
        Device(id="MODEM-1", device_type=DeviceType.MODEM, name="Quectel", is_active=False),
    )
    ns = run("device_repository", manager=manager)

    assert [d.id for d in ns["phones"]] == ["RF8M33XXXXX"]
    assert [d.id for d in ns["modems"]] == ["MODEM-1"]
    assert [d.id for d in ns["active"]] == ["RF8M33XXXXX"]
    assert ns["recent"] == []  # nothing had been seen yet
    assert [d.name for d in ns["results"]] == ["Test Phone"]
    assert ns["device"].id == "RF8M33XXXXX"
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.find_recent(hours=24)] == ["RF8M33XXXXX"]
        assert uow.devices.find_active() == []


def test_card_repository_snippet_runs_as_written(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    store(
        manager,
        CardProfile(
            iccid="8902", card_type=CardType.USIM, admin_url="https://admin.example.com:8443/api"
        ),
    )
    ns = run("card_repository", manager=manager)

    assert printed(capsys) == [f"PSK Key: {b'my_16_byte_psk_key'.hex()}"]
    assert [c.iccid for c in ns["usim_cards"]] == ["8902"]
    assert [c.iccid for c in ns["cards_with_psk"]] == ["8901..."]
    assert [c.iccid for c in ns["cards"]] == ["8902"]
    profile = ns["profile_dict"]
    assert (profile["iccid"], profile["psk_identity"]) == ("8901...", "new_identity")
    assert "psk_key" not in profile and "psk_key_encrypted" not in profile
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key("8901...") == b"new_psk_key_here"


def test_session_repository_snippet_runs_as_written(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    store(manager, guide_device(), CardProfile(iccid="8901..."))
    ns = run("session_repository", manager=manager)

    session_id = ns["session"].id
    assert [s.id for s in ns["device_sessions"]] == [session_id]
    assert [s.id for s in ns["card_sessions"]] == [session_id]
    assert ns["active"] == [] and ns["sessions"] == []
    [failed] = ns["failed"]
    assert failed.id == session_id and failed.status is SessionStatus.FAILED
    assert failed.ended_at is not None and failed.duration_ms is not None
    assert (failed.error_code, failed.error_message) == ("E001", "Connection timeout")
    assert failed.cipher_suite == "TLS_PSK_WITH_AES_128_CBC_SHA256"
    lines = printed(capsys)
    assert lines[:2] == ["Total: 1", "Success rate: 0.0%"]
    assert lines[2] == f"Avg duration: {failed.duration_ms:.0f}ms"


def test_log_repository_snippet_runs_as_written(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = run("log_repository", manager=manager, session=stored_session(manager))

    assert len(ns["all_logs"]) == 3 and len(ns["commands"]) == 2 and len(ns["responses"]) == 1
    assert [log.raw_data for log in ns["success_logs"]] == ["9000"]
    assert ns["errors"] == []
    assert [log.raw_data for log in ns["select_commands"]] == [
        "00A4040008A000000151000000",
        "00A4...",
    ]
    assert printed(capsys) == ["Deleted 0 old logs"]
    assert [row["decoded_data"] for row in ns["log_data"]] == ["SELECT ISD", "SELECT", "Success"]
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 3


def test_test_repository_snippet_runs_as_written(
    manager: DatabaseManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store(manager, guide_device(), CardProfile(iccid="8901..."))
    ns = run("test_repository", manager=manager)

    assert [r.id for r in ns["run_results"]] == [ns["result"].id]
    assert [r.id for r in ns["suite_results"]] == [ns["result"].id]
    assert ns["failures"] == []
    assert printed(capsys) == [
        "Passed: 1",
        "Failed: 0",
        "Success rate: 100.0%",
        "New failures: 0",
        "Fixed tests: 0",
    ]
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "results.xml"))
    [suite] = list(xml)
    [case] = list(suite)
    assert (suite.name, case.name, case.time, case.is_passed) == (
        "integration",
        "test_ota_session",
        1.5,
        True,
    )


def test_settings_repository_snippet_runs_as_written(
    manager: DatabaseManager, tmp_path: Path
) -> None:
    ns = run("settings_repository", manager=manager)

    assert ns["max_sessions"] == 10
    assert ns["retention_settings"]["log_retention_days"] == 90
    assert ns["all_settings"]["log_retention_days"] == 90
    assert "max_sessions_per_device" in ns["all_settings"]
    exported = yaml.safe_load((tmp_path / "settings.yaml").read_text())
    assert exported["settings"]["log_retention_days"]["value"] == 90
    with UnitOfWork(manager) as uow:
        # The import stored every exported setting; the reset removed the retention ones again.
        assert uow.settings.count_by(category="retention") == 0
        assert uow.settings.count_by(category="limits") == 2
        assert uow.settings.get_by_category("retention") == {
            "log_retention_days": 90,
            "session_retention_days": 365,
            "test_retention_days": 365,
        }


# -- Unit of Work --------------------------------------------------------------------


def test_unit_of_work_snippet_runs_as_written(manager: DatabaseManager) -> None:
    run("unit_of_work", manager=manager)

    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["RF8M..."]
        assert uow.cards.get_psk_key("8901...") == b"psk_key"


def test_unit_of_work_exposes_the_six_repositories_the_guide_lists(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        assert isinstance(uow.devices, api.DeviceRepository)
        assert isinstance(uow.cards, api.CardRepository)
        assert isinstance(uow.sessions, api.SessionRepository)
        assert isinstance(uow.logs, api.LogRepository)
        assert isinstance(uow.tests, api.TestRepository)
        assert isinstance(uow.settings, api.SettingRepository)


# -- Best Practices ------------------------------------------------------------------


def test_best_practice_transaction_snippet_commits_both(manager: DatabaseManager) -> None:
    device, card = guide_device(), CardProfile(iccid="8901...", card_type=CardType.USIM)
    run("transaction_management", manager=manager, device=device, card=card)

    with UnitOfWork(manager) as uow:
        assert uow.devices.exists("RF8M33XXXXX") and uow.cards.exists("8901...")


def test_best_practice_resource_cleanup_snippet_closes_the_manager(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    ns = run("resource_cleanup")
    assert not ns["manager"].is_initialized


def test_resource_cleanup_snippet_uses_the_default_sqlite_file(tmp_path: Path) -> None:
    run("resource_cleanup")
    assert (tmp_path / "data" / "cardlink.db").is_file()


def test_best_practice_error_handling_snippet_reports_not_found(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    with UnitOfWork(manager) as uow:
        run("error_handling", uow=uow)
    assert printed(capsys) == ["Device not found"]


def test_error_handling_snippet_catches_integrity_errors_too(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    store(manager, guide_device())
    snippet = GUIDE["error_handling"].replace(
        'uow.devices.get_by_id("invalid")', "uow.devices.create(duplicate)"
    )
    with UnitOfWork(manager) as uow:
        exec(snippet, {"uow": uow, "duplicate": guide_device()})
    [line] = printed(capsys)
    assert line.startswith("Constraint violation: duplicate key")


def test_best_practice_encryption_snippet_stores_only_the_token(manager: DatabaseManager) -> None:
    psk_key = b"0123456789abcdef"
    with UnitOfWork(manager) as uow:
        run(
            "encryption",
            uow=uow,
            card=CardProfile(iccid="8901...", psk_identity="c"),
            psk_key=psk_key,
        )
        uow.commit()
    with manager.engine.connect() as connection:
        stored = connection.execute(text("SELECT psk_key_encrypted FROM cards")).scalar_one()
    assert psk_key.decode() not in stored and psk_key.hex() not in stored
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key("8901...") == psk_key


def test_best_practice_performance_snippets_run_as_written(manager: DatabaseManager) -> None:
    session_id = stored_session(manager).id
    logs = [(session_id, CommDirection.COMMAND, f"80E2{n:04X}", "STORE DATA") for n in range(120)]
    with UnitOfWork(manager) as uow:
        run("batch_logs", uow=uow, logs=logs)
        page = run("pagination", uow=uow)["page"]
        all_logs = run("load_all_logs", uow=uow, session_id=session_id)["all_logs"]
        uow.commit()
    assert [log.raw_data for log in all_logs] == [f"80E2{n:04X}" for n in range(120)]
    assert [d.id for d in page.items] == ["RF8M33XXXXX"] and page.total_items == 1


# -- Troubleshooting -----------------------------------------------------------------


def test_troubleshooting_connection_test_snippet_says_successful(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    ns = run("connection_test")
    ns["manager"].close()
    assert printed(capsys) == ["Connection successful!"]


def test_troubleshooting_connection_test_snippet_names_the_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://cardlink:s3cret@127.0.0.1:9/cardlink")
    run("connection_test")
    [line] = printed(capsys)
    assert line.startswith("Connection failed: Unable to connect to database ")
    assert "127.0.0.1:9" in line and "s3cret" not in line


def test_troubleshooting_echo_logs_every_sql_statement(
    manager: DatabaseManager,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run("echo")["config"].echo is True
    config = DatabaseConfig(database_url=database_url, echo=True)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    with DatabaseManager(config) as echoing, UnitOfWork(echoing) as uow:
        uow.devices.count()
    logged = caplog.text + capsys.readouterr().out
    assert "SELECT count(*)" in logged and "FROM devices" in logged


def guide_index_list() -> dict[str, list[str]]:
    """The guide's index list (``# - devices: device_type, iccid, last_seen``) as a dict."""
    wanted: dict[str, list[str]] = {}
    for line in GUIDE["index_list"].splitlines():
        if line.startswith("# - "):
            table, _, columns = line[4:].partition(":")
            wanted[table] = [column.strip() for column in columns.split(",")]
    return wanted


def test_troubleshooting_index_list_exists_on_the_database(manager: DatabaseManager) -> None:
    wanted = guide_index_list()
    assert set(wanted) == {"devices", "cards", "sessions", "logs"}
    inspector = inspect(manager.engine)
    for table, columns in wanted.items():
        indexed = [index["column_names"] for index in inspector.get_indexes(table)]
        for column in columns:
            # logs.direction is indexed after session_id: it is only ever asked within a session.
            assert any(column in names for names in indexed), f"{table}.{column} not indexed"
    logs_indexes = [index["column_names"] for index in inspector.get_indexes("logs")]
    assert ["session_id", "timestamp"] in logs_indexes
    assert ["session_id", "direction"] in logs_indexes


def test_troubleshooting_pagination_snippet_pages_through_rows(manager: DatabaseManager) -> None:
    store(manager, *(Device(id=f"D{n:03d}", device_type=DeviceType.PHONE) for n in range(120)))
    with UnitOfWork(manager) as uow:
        page = run("troubleshooting_pagination", repository=uow.devices)["page"]
        assert (len(page.items), page.total_items, page.total_pages, page.has_next) == (
            50,
            120,
            3,
            True,
        )
        assert page.items[0].id == "D000"


# -- Advanced Usage ------------------------------------------------------------------


def test_advanced_custom_query_snippet_runs_as_written(manager: DatabaseManager) -> None:
    store(
        manager,
        guide_device(),
        Device(id="OLD", device_type=DeviceType.PHONE, manufacturer="Samsung", is_active=False),
        Device(id="PIXEL", device_type=DeviceType.PHONE, manufacturer="Google"),
        Device(id="MODEM", device_type=DeviceType.MODEM, manufacturer="Samsung"),
    )
    ns = run("custom_queries", manager=manager)
    assert [d.id for d in ns["results"]] == ["RF8M33XXXXX"]


def test_advanced_bulk_insert_snippet_runs_as_written(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        run("bulk_operations", uow=uow)
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 100
        assert uow.devices.exists("device_0") and uow.devices.exists("device_99")


def test_advanced_statistics_query_snippet_prints_counts_by_type(
    manager: DatabaseManager, capsys: pytest.CaptureFixture[str]
) -> None:
    store(
        manager,
        *(Device(id=f"P{n}", device_type=DeviceType.PHONE) for n in range(3)),
        Device(id="M1", device_type=DeviceType.MODEM),
    )
    run("statistics_queries", manager=manager)
    assert sorted(printed(capsys)) == ["modem: 1", "phone: 3"]
