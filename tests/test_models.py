"""The models on every backend: JSON, UUIDs, timestamps, enums, metadata=, cascades, validation."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy import exc as sa_exc

from cardlink.database import (
    CardProfile,
    CardType,
    CommDirection,
    CommLog,
    DatabaseManager,
    Device,
    DeviceType,
    IntegrityError,
    OTASession,
    SessionStatus,
    Setting,
    TestResult,
    TestStatus,
    UnitOfWork,
    ValidationError,
)


def add(manager: DatabaseManager, *entities: object) -> None:
    with UnitOfWork(manager) as uow:
        uow.session.add_all(entities)
        uow.commit()


def session_with_logs(manager: DatabaseManager, logs: int = 3) -> uuid.UUID:
    add(
        manager,
        Device(id="DEV", device_type=DeviceType.PHONE),
        CardProfile(iccid="8901", card_type=CardType.USIM),
    )
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create_session(device_id="DEV", card_iccid="8901")
        uow.logs.add_log_batch([(session.id, "command", f"00A4{n:04X}") for n in range(logs)])
        uow.tests.create_result("run", "suite", "case", TestStatus.PASSED, device_id="DEV")
        uow.commit()
    return session.id


# -- JSON ------------------------------------------------------------------------------


NESTED = {
    "sms": {"tar": "000001", "keys": {"kic": "01", "kid": "01"}},
    "list": [1, {"a": [True, None, 2.5]}],
    "unicode": "Grüße ✓",
}


def test_nested_json_round_trips(manager: DatabaseManager) -> None:
    add(manager, CardProfile(iccid="8901", trigger_config=NESTED, bip_config=None))
    with UnitOfWork(manager) as uow:
        card = uow.cards.get_by_id("8901")
        assert card.trigger_config == NESTED
        assert card.bip_config is None
    with manager.engine.connect() as connection:
        assert (
            connection.execute(text("SELECT COUNT(*) FROM cards WHERE bip_config IS NULL")).scalar()
            == 1
        )


def test_in_place_edits_of_nested_json_are_saved(manager: DatabaseManager) -> None:
    add(manager, CardProfile(iccid="8901", trigger_config=NESTED))
    with UnitOfWork(manager) as uow:
        card = uow.cards.get_by_id("8901")
        card.trigger_config["sms"]["keys"]["kic"] = "02"
        card.trigger_config["list"][1]["a"].append("new")
        card.trigger_config.setdefault("added", {})["x"] = 1
        uow.commit()
    with UnitOfWork(manager) as uow:
        config = uow.cards.get_by_id("8901").trigger_config
        assert config["sms"]["keys"]["kic"] == "02"
        assert config["list"][1]["a"] == [True, None, 2.5, "new"]
        assert config["added"] == {"x": 1}


def test_a_json_object_column_refuses_a_non_dict(manager: DatabaseManager) -> None:
    with pytest.raises(ValidationError, match="trigger_config"):
        CardProfile(iccid="8901", trigger_config=[1, 2])  # type: ignore[arg-type]


def test_a_setting_holds_any_json_value(manager: DatabaseManager) -> None:
    values = {"n": 10, "f": 1.5, "s": "text", "b": False, "l": [1, "two"], "d": {"k": {"v": 1}}}
    add(manager, *(Setting(key=key, value=value) for key, value in values.items()))
    with UnitOfWork(manager) as uow:
        assert {key: uow.settings.get_value(key) for key in values} == values


def test_in_place_edits_of_a_setting_value_are_saved(manager: DatabaseManager) -> None:
    add(manager, Setting(key="servers", value={"hosts": ["a"]}), Setting(key="ports", value=[1]))
    with UnitOfWork(manager) as uow:
        servers = uow.settings.get_by_id("servers")
        servers.value["hosts"].append("b")
        servers.value["primary"] = "a"
        ports = uow.settings.get_by_id("ports")
        ports.value.append(2)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.settings.get_value("servers") == {"hosts": ["a", "b"], "primary": "a"}
        assert uow.settings.get_value("ports") == [1, 2]


# -- UUIDs -----------------------------------------------------------------------------


def test_uuid_keys_accept_uuid_or_text_and_come_back_as_uuid(manager: DatabaseManager) -> None:
    as_text, as_uuid = str(uuid.uuid4()), uuid.uuid4()
    add(manager, OTASession(id=as_text), OTASession(id=as_uuid))
    with UnitOfWork(manager) as uow:
        by_text = uow.sessions.get_by_id(as_text)
        assert isinstance(by_text.id, uuid.UUID) and by_text.id == uuid.UUID(as_text)
        assert uow.sessions.get_by_id(str(as_uuid)).id == as_uuid
        assert uow.sessions.exists(as_text) and uow.sessions.find_by(id=str(as_uuid))
        assert all(isinstance(s.id, uuid.UUID) for s in uow.sessions.get_all())
        with pytest.raises(ValidationError, match="UUID"):
            uow.sessions.get_by_id("not-a-uuid")


def test_a_new_session_gets_a_uuid_without_asking() -> None:
    session = OTASession(id="6f1c7a36-1f43-4c3e-9a51-2b1c0e7f0a11")
    assert isinstance(session.id, uuid.UUID)


# -- timestamps --------------------------------------------------------------------------


def test_timestamps_keep_microseconds_and_come_back_aware_utc(manager: DatabaseManager) -> None:
    moment = datetime(2024, 11, 29, 12, 30, 45, 123456, tzinfo=timezone.utc)
    session_id = uuid.uuid4()
    add(manager, OTASession(id=session_id, started_at=moment))
    add(manager, CommLog(session_id=session_id, direction="command", timestamp=moment))
    with UnitOfWork(manager) as uow:
        session = uow.sessions.get_by_id(session_id)
        assert session.started_at == moment and session.started_at.tzinfo == timezone.utc
        assert session.started_at.microsecond == 123456
        [log] = uow.logs.find_by_session(session_id)
        assert log.timestamp == moment


def test_an_aware_time_in_another_zone_is_stored_as_the_same_instant(
    manager: DatabaseManager,
) -> None:
    kiritimati = timezone(timedelta(hours=14))
    moment = datetime(2024, 11, 30, 1, 0, 0, 500, tzinfo=kiritimati)
    session_id = uuid.uuid4()
    add(manager, OTASession(id=session_id, started_at=moment))
    with UnitOfWork(manager) as uow:
        stored = uow.sessions.get_by_id(session_id).started_at
    assert stored == moment
    assert stored.replace(tzinfo=None) == datetime(2024, 11, 29, 11, 0, 0, 500)


def test_created_at_and_updated_at_are_kept(manager: DatabaseManager) -> None:
    before = datetime.now(timezone.utc)
    add(manager, Device(id="DEV", device_type=DeviceType.PHONE))
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("DEV")
        created, updated = device.created_at, device.updated_at
        assert before - timedelta(seconds=1) <= created <= datetime.now(timezone.utc)
        assert updated >= created
    time.sleep(0.01)
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("DEV")
        device.name = "renamed"
        uow.devices.update(device)
        uow.commit()
    with UnitOfWork(manager) as uow:
        device = uow.devices.get_by_id("DEV")
        assert device.created_at == created and device.updated_at > updated


def test_every_table_has_created_at_and_updated_at() -> None:
    for model in (Device, CardProfile, OTASession, CommLog, TestResult, Setting):
        columns = model.__table__.c  # type: ignore[attr-defined]
        assert "created_at" in columns and "updated_at" in columns, model.__name__


# -- enums -------------------------------------------------------------------------------


def test_enums_are_stored_as_lower_case_text_and_read_back_as_members(
    manager: DatabaseManager,
) -> None:
    add(
        manager,
        Device(id="DEV", device_type=DeviceType.MODEM),
        CardProfile(iccid="8901", card_type="EUICC"),  # type: ignore[arg-type]
    )
    with manager.engine.connect() as connection:
        assert connection.execute(text("SELECT device_type FROM devices")).scalar() == "modem"
        assert connection.execute(text("SELECT card_type FROM cards")).scalar() == "euicc"
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("DEV").device_type is DeviceType.MODEM
        assert uow.cards.get_by_id("8901").card_type is CardType.EUICC
    assert f"{DeviceType.PHONE}" == "phone" and str(SessionStatus.FAILED) == "failed"


def test_a_value_outside_an_enum_names_the_field_and_the_members() -> None:
    with pytest.raises(ValidationError, match=r"devices\.device_type.*PHONE, MODEM"):
        Device(id="DEV", device_type="tablet")  # type: ignore[arg-type]


def test_the_guide_enums_have_exactly_the_guide_members() -> None:
    assert [m.name for m in DeviceType] == ["PHONE", "MODEM"]
    assert [m.name for m in CardType] == ["SIM", "USIM", "ISIM", "EUICC"]
    assert [m.name for m in SessionStatus] == [
        "PENDING",
        "ACTIVE",
        "COMPLETED",
        "FAILED",
        "TIMEOUT",
    ]
    assert [m.name for m in CommDirection] == ["COMMAND", "RESPONSE"]
    assert [m.name for m in TestStatus] == ["PASSED", "FAILED", "SKIPPED", "ERROR"]


# -- text keys --------------------------------------------------------------------------


def test_text_keys_are_case_sensitive_on_every_backend(manager: DatabaseManager) -> None:
    add(
        manager,
        Device(id="RF8M33XXXXX", device_type=DeviceType.PHONE, name="upper"),
        Device(id="rf8m33xxxxx", device_type=DeviceType.PHONE, name="lower"),
    )
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("rf8m33xxxxx").name == "lower"
        assert uow.devices.find_one_by(name="UPPER") is None
        assert not uow.devices.exists("Rf8m33xxxxx")
        assert len(uow.devices.search("RF8M")) == 2  # search stays case-insensitive


@pytest.mark.parametrize("how", ["create_tables", "run_migrations"])
def test_mysql_tables_use_a_binary_collation_however_created(
    empty_database_url: str, backend: str, how: str
) -> None:
    if backend != "mysql":
        pytest.skip("collations are a MySQL/MariaDB matter")
    from cardlink.database import DatabaseConfig, run_migrations

    with DatabaseManager(DatabaseConfig(database_url=empty_database_url)) as manager:
        if how == "create_tables":
            manager.create_tables()
        else:
            run_migrations(manager=manager)
        with manager.engine.connect() as connection:
            collations = dict(
                connection.execute(
                    text(
                        "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME <> 'alembic_version'"
                    )
                ).all()
            )
    assert collations == dict.fromkeys(
        (
            "cards",
            "devices",
            "http_exchanges",
            "logs",
            "sessions",
            "settings",
            "test_runs",
            "tests",
        ),
        "utf8mb4_bin",
    )


# -- TestResult(metadata=...) --------------------------------------------------------------


def test_test_result_takes_and_returns_metadata_as_the_guide_writes_it(
    manager: DatabaseManager,
) -> None:
    result = TestResult(
        run_id="r", suite_name="s", test_name="t", status=TestStatus.PASSED, metadata={"env": "x"}
    )
    assert result.metadata == {"env": "x"}
    assert isinstance(TestResult.metadata, MetaData)  # the class still has its table MetaData
    add(manager, result)
    with UnitOfWork(manager) as uow:
        stored = uow.tests.get_by_id(result.id)
        assert stored.metadata == {"env": "x"}
        stored.metadata["env"] = "y"
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.tests.get_by_id(result.id).metadata == {"env": "y"}
    with manager.engine.connect() as connection:
        assert "metadata" in list(connection.execute(text("SELECT * FROM tests")).keys())


# -- deletes and foreign keys ---------------------------------------------------------------


def test_deleting_a_session_deletes_its_logs(manager: DatabaseManager) -> None:
    session_id = session_with_logs(manager)
    with UnitOfWork(manager) as uow:
        assert uow.sessions.delete_by_id(session_id)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 0


def test_the_database_itself_cascades_a_session_delete_to_its_logs(
    manager: DatabaseManager,
) -> None:
    session_with_logs(manager)
    with manager.engine.begin() as connection:
        connection.execute(text("DELETE FROM sessions"))
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 0


@pytest.mark.parametrize(("repository", "key"), [("devices", "DEV"), ("cards", "8901")])
def test_deleting_an_owner_of_sessions_is_refused_unless_cascading(
    manager: DatabaseManager, repository: str, key: str
) -> None:
    session_with_logs(manager)
    with UnitOfWork(manager) as uow:
        repo = getattr(uow, repository)
        with pytest.raises(IntegrityError, match=r"has 1 session\(s\).*cascade=True"):
            repo.delete_by_id(key)
        with pytest.raises(IntegrityError, match="cascade=True"):
            repo.delete(repo.get_by_id(key))
        assert repo.exists(key)
        assert repo.delete_by_id(key, cascade=True) is True
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert not getattr(uow, repository).exists(key)
        assert (uow.sessions.count(), uow.logs.count()) == (0, 0)
        assert uow.tests.count() == 1  # test results outlive their device/card


def test_the_database_itself_refuses_to_delete_a_device_with_sessions(
    manager: DatabaseManager,
) -> None:
    session_with_logs(manager)
    with pytest.raises(sa_exc.IntegrityError), manager.engine.begin() as connection:
        connection.execute(text("DELETE FROM devices"))


def test_deleting_a_device_leaves_its_test_results_without_it(manager: DatabaseManager) -> None:
    add(manager, Device(id="DEV", device_type=DeviceType.PHONE))
    with UnitOfWork(manager) as uow:
        result = uow.tests.create_result("r", "s", "t", TestStatus.PASSED, device_id="DEV")
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.devices.delete_by_id("DEV")
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.tests.get_by_id(result.id).device_id is None


# -- validation and secrets ------------------------------------------------------------------


def test_values_that_do_not_fit_are_refused_naming_the_field(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match=r"devices\.imei: 25 characters long"):
            uow.devices.create(Device(id="DEV", device_type=DeviceType.PHONE, imei="1" * 25))
        with pytest.raises(ValidationError, match=r"devices\.device_type: required field"):
            uow.devices.create(Device(id="DEV2"))
        with pytest.raises(ValidationError, match=r"devices\.is_active: expected true or false"):
            uow.devices.create(Device(id="DEV3", device_type="phone", is_active="yes"))  # type: ignore[arg-type]
        uow.devices.create(Device(id="OK", device_type="phone"))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [d.id for d in uow.devices.get_all()] == ["OK"]


def test_a_card_repr_never_shows_the_psk(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        card = uow.cards.create_with_psk(CardProfile(iccid="8901", psk_identity="id"), b"k" * 16)
        assert card.psk_key_encrypted and card.psk_key_encrypted not in repr(card)
        assert "kkkk" not in repr(card) and repr(card).startswith("CardProfile(iccid='8901'")
