from datetime import datetime, timedelta

from cardlink.database import (
    CardProfile, CardType, CommDirection, Device, DeviceType, IntegrityError, NotFoundError,
    SessionStatus, TestStatus, UnitOfWork,
)
import pytest


def test_core_flow(manager):
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="RF8M33XXXXX", device_type=DeviceType.PHONE, name="Test Phone",
                                  manufacturer="Samsung", connection_settings={"a": {"b": 1}}))
        uow.cards.create_with_psk(CardProfile(iccid="8901", card_type=CardType.USIM, psk_identity="c1",
                                              admin_url="https://admin.example.com:8443/api"), b"0123456789abcdef")
        uow.commit()
    with UnitOfWork(manager) as uow:
        d = uow.devices.get_by_id("RF8M33XXXXX")
        d.connection_settings["a"]["b"] = 2
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.get_by_id("RF8M33XXXXX").connection_settings == {"a": {"b": 2}}
        assert [x.id for x in uow.devices.search("samsung")] == ["RF8M33XXXXX"]
        assert uow.devices.search("%") == []
        assert uow.cards.get_psk_key("8901") == b"0123456789abcdef"
        assert len(uow.cards.find_by_admin_url("https://admin.example.com")) == 1
        s = uow.sessions.create_session(device_id="RF8M33XXXXX", card_iccid="8901", session_type="x")
        uow.sessions.start_session(s.id)
        uow.logs.add_log(session_id=s.id, direction=CommDirection.COMMAND, raw_data="00A4040008A000000151000000")
        uow.logs.add_log_batch([(s.id, CommDirection.COMMAND, "00A4...", "SELECT"),
                                (s.id, CommDirection.RESPONSE, "9000", "Success"),
                                (s.id, "response", "6A82", "nf")])
        uow.logs.flush_batch()
        uow.sessions.complete_session(s.id)
        uow.sessions.fail_session(s.id, error_code="E001", message="x")
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert len(uow.logs.find_by_session(s.id)) == 4
        assert len(uow.logs.find_by_status(s.id, "9000")) == 1
        assert [l.status_word for l in uow.logs.find_errors(s.id)] == ["6A82"]
        assert len(uow.logs.search_hex("a4", session_id=s.id)) == 2
        got = uow.sessions.find_by_date_range(start=datetime.now() - timedelta(days=7), end=datetime.now())
        assert [x.id for x in got] == [s.id]
        assert got[0].status is SessionStatus.FAILED
        st = uow.sessions.get_statistics(days=30)
        assert st["total"] == 1 and st["failed"] == 1
        with pytest.raises(IntegrityError):
            uow.devices.delete_by_id("RF8M33XXXXX")
        with pytest.raises(NotFoundError):
            uow.devices.get_by_id("nope")
        with pytest.raises(IntegrityError):
            uow.devices.create(Device(id="RF8M33XXXXX", device_type=DeviceType.PHONE))
        assert uow.devices.count() == 1
        uow.tests.create_result(run_id="r1", suite_name="s", test_name="t", status=TestStatus.PASSED,
                                metadata={"env": "x"})
        assert "testsuites" in uow.tests.export_junit_xml("r1")
        uow.settings.set_value("log_retention_days", 30, category="retention")
        assert uow.settings.get_value("log_retention_days") == 30
        assert uow.devices.delete_by_id("RF8M33XXXXX", cascade=True)
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 0
        assert uow.tests.find_by_run("r1")[0].metadata == {"env": "x"}
