"""Values that used to break the layer get a ValidationError naming the field and the limit.

Lone surrogates, timestamps that leave the calendar once moved to UTC, time windows
past any timestamp, numbers past a double, NaN and infinities, and JSON nested
deeper than ``JSON_MAX_DEPTH`` (under MariaDB's own depth check): refused the same
way on every backend and every write path, and nothing is written.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from cardlink.database import (
    CardProfile,
    CommDirection,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.codec import JSON_MAX_DEPTH
from test_hostile_input import mangled

SURROGATE = "a\ud800"
PLUS_14 = timezone(timedelta(hours=14))
MINUS_12 = timezone(timedelta(hours=-12))


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.fixture
def session_id(manager) -> Any:
    with UnitOfWork(manager) as uow:
        uow.devices.create(Device(id="D1", device_type=DeviceType.PHONE))
        uow.cards.create(CardProfile(iccid="8901"))
        session = uow.sessions.create_session(device_id="D1", card_iccid="8901")
        uow.commit()
        return session.id


@pytest.fixture
def east_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local zone is UTC+14 (naive datetimes are local time)."""
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def refused(action: Any, *named: str) -> str:
    with pytest.raises(ValidationError) as error:
        action()
    message = str(error.value)
    for word in named:
        assert word in message, message
    assert "\n" not in message
    return message


def log_count(manager) -> int:
    with UnitOfWork(manager) as uow:
        return uow.logs.count()


# -- lone surrogates -----------------------------------------------------------------------


def test_a_lone_surrogate_in_any_text_field_is_refused_naming_the_field(manager, session_id):
    with UnitOfWork(manager) as uow:
        refused(
            lambda: uow.devices.create(Device(id="D2", device_type="phone", name=SURROGATE)),
            "devices.name",
            "surrogate",
        )
    with UnitOfWork(manager) as uow:
        refused(lambda: uow.logs.add_log(session_id, "command", SURROGATE), "raw_data")
        refused(
            lambda: uow.logs.add_log_batch([(session_id, "command", "00", SURROGATE)]),
            "log #0: decoded_data",
            "surrogate",
        )
        refused(lambda: uow.devices.search(SURROGATE), "search text", "surrogate")
        refused(lambda: uow.devices.find_by(name=SURROGATE), "devices.name")
        refused(lambda: uow.settings.set_value("k", {"text": SURROGATE}), "setting 'k' value")
        uow.commit()
    assert log_count(manager) == 0


def test_a_lone_surrogate_in_an_import_is_refused_naming_the_field(manager):
    document = mangled(("devices", 0, "notes"), "x").replace('"x"', '"a\\ud800"')
    with UnitOfWork(manager) as uow:
        refused(lambda: DataImporter(uow).import_data(document), "devices[0].notes", "surrogate")
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.devices.count() == 0


# -- timestamps at the calendar's edges ----------------------------------------------------


def test_a_timestamp_that_leaves_the_calendar_in_utc_is_refused_naming_the_field(
    manager, session_id
):
    early = datetime(1, 1, 1, 5, tzinfo=PLUS_14)
    late = datetime(9999, 12, 31, 20, tzinfo=MINUS_12)
    with UnitOfWork(manager) as uow:
        for moment in (early, late):
            refused(
                lambda moment=moment: uow.logs.add_log(session_id, "command", timestamp=moment),
                "timestamp",
            )
            refused(
                lambda moment=moment: uow.logs.add_log_batch(
                    [(session_id, "command", None, None, None, None, None, moment)]
                ),
                "log #0: timestamp",
                "0001-01-01 and 9999-12-31",
            )
            refused(
                lambda moment=moment: uow.devices.update_last_seen("D1", moment),
                "when",
                "9999-12-31",
            )
            refused(
                lambda moment=moment: uow.sessions.find_by_date_range(
                    moment, datetime.now(timezone.utc)
                ),
                "start",
            )
        uow.commit()
    assert log_count(manager) == 0


def test_naive_year_one_east_of_utc_is_refused_and_the_calendar_edges_still_fit(
    manager, session_id, east_of_utc
):
    naive_first = datetime(1, 1, 1, 5)  # local time at UTC+14: before year 1 in UTC
    with UnitOfWork(manager) as uow:
        refused(lambda: uow.logs.add_log(session_id, "command", timestamp=naive_first), "timestamp")
        refused(
            lambda: uow.logs.add_log_batch(
                [{"session_id": session_id, "direction": "command", "timestamp": naive_first}]
            ),
            "log #0: timestamp",
        )
        refused(lambda: uow.devices.update_last_seen("D1", naive_first), "when")
        refused(lambda: uow.sessions.find_by_date_range(naive_first, datetime.now()), "start")
        refused(lambda: uow.sessions.find_by_date_range(datetime.min, datetime.max), "start")
        # The first and last instants that exist in UTC are stored as they are.
        first = datetime(1, 1, 1, tzinfo=timezone.utc)
        last = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
        uow.logs.add_log_batch([(session_id, "command", None, None, None, None, None, first)])
        uow.logs.add_log(session_id, CommDirection.RESPONSE, "9000", timestamp=last)
        uow.commit()
    with UnitOfWork(manager) as uow:
        stamps = [log.timestamp for log in uow.logs.find_by_session(session_id)]
    assert stamps == [first, last]


# -- arguments past any timestamp ---------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (
            lambda uow: uow.logs.purge_old(days=10**10),
            "days must be a number between 0 and 365,000",
        ),
        (lambda uow: uow.logs.purge_old(days=float("nan")), "days must be a number between"),
        (lambda uow: uow.logs.purge_old(days=float("inf")), "days must be a number between"),
        (lambda uow: uow.sessions.get_statistics(days=10**9), "days must be a number between"),
        (lambda uow: uow.sessions.get_statistics(days=float("nan")), "days"),
        (lambda uow: uow.devices.find_recent(hours=1e12), "hours must be a number between 0 and"),
        (lambda uow: uow.devices.find_recent(hours=float("nan")), "hours"),
    ],
    ids=[
        "purge 1e10 days",
        "purge NaN",
        "purge inf",
        "stats 1e9 days",
        "stats NaN",
        "recent 1e12 hours",
        "recent NaN",
    ],
)
def test_a_time_window_past_any_timestamp_is_refused_naming_the_argument_and_limit(
    manager, call, named
):
    with UnitOfWork(manager) as uow:
        refused(lambda: call(uow), named)
        assert uow.logs.purge_old(days=365_000) == 0  # the limit itself is fine
        assert uow.devices.find_recent(hours=24) == []


# -- numbers --------------------------------------------------------------------------------


def test_a_number_past_a_double_or_not_finite_is_refused_in_a_batch_naming_the_field(
    manager, session_id
):
    with UnitOfWork(manager) as uow:
        for latency in (10**30, -(10**400), float("nan"), float("inf")):
            refused(
                lambda latency=latency: uow.logs.add_log_batch(
                    [(session_id, "command", "00", None, None, None, 1.0)] * 3
                    + [(session_id, "command", "00", None, None, None, latency)]
                ),
                "log #3: latency_ms",
            )
            refused(
                lambda latency=latency: uow.logs.add_log(session_id, "command", latency_ms=latency),
                "latency_ms",
            )
        assert uow.logs.pending_count == 0
        uow.logs.add_log_batch([(session_id, "command", "00", None, None, None, 1e300)])
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert [log.latency_ms for log in uow.logs.find_by_session(session_id)] == [1e300]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("NaN", "latency_ms: must be a finite number"),
        ("Infinity", "latency_ms: must be a finite number"),
        ("1e400", "latency_ms: must be a finite number"),
        ("1" * 401, "latency_ms: an integer beyond"),
    ],
)
def test_import_refuses_nan_infinities_and_huge_numbers_in_float_columns(manager, text, named):
    document = mangled(("logs", 0, "latency_ms"), "__number__").replace('"__number__"', text)
    with UnitOfWork(manager) as uow:
        refused(lambda: DataImporter(uow).import_data(document), "logs[0]", named)
        uow.commit()
    assert log_count(manager) == 0


def test_import_refuses_a_401_digit_integer_naming_the_field_and_the_range(manager):
    document = mangled(("sessions", 0, "duration_ms"), "__n__").replace('"__n__"', "9" * 401)
    with UnitOfWork(manager) as uow:
        refused(
            lambda: DataImporter(uow).import_data(document),
            "sessions[0].duration_ms",
            "a 401-digit number is out of range",
        )


# -- JSON nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [JSON_MAX_DEPTH + 1, 40, 500, 10_000])
def test_json_nested_past_the_limit_is_refused_by_set_value_and_by_import(manager, depth):
    value = nested(depth)
    with UnitOfWork(manager) as uow:
        refused(
            lambda: uow.settings.set_value("deep", value),
            "setting 'deep' value",
            f"nested more than {JSON_MAX_DEPTH} deep",
        )
        uow.commit()
    text = mangled(("settings", 0, "value"), "__deep__").replace(
        '"__deep__"', "[" * depth + "]" * depth
    )
    with UnitOfWork(manager) as uow:
        refused(lambda: DataImporter(uow).import_data(text), str(JSON_MAX_DEPTH))
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.settings.count() == 0


def test_json_at_the_limit_is_stored_exported_and_imported_on_every_backend(manager):
    value = nested(JSON_MAX_DEPTH)
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("deep", value)
        uow.devices.create(
            Device(id="D9", device_type="modem", connection_settings={"k": nested(19)})
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all()
        assert uow.settings.get_value("deep") == value
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(document, conflict_mode="overwrite")
        uow.commit()
    assert result.updated == 2
    assert json.loads(document)["tables"]["settings"][0]["value"] == value


def test_infinite_and_nan_json_numbers_are_refused_in_settings(manager):
    with UnitOfWork(manager) as uow:
        for number in (math.nan, math.inf):
            refused(
                lambda number=number: uow.settings.set_value("k", {"n": [number]}),
                "setting 'k' value",
            )


def test_a_range_the_model_narrows_is_refused_by_import_and_the_orm_alike(manager):
    """``psk_key_version`` is one byte on the card: ``Column.info["range"]`` holds on import."""
    document = mangled(("cards", 0, "psk_key_version"), 256)
    with UnitOfWork(manager) as uow:
        refused(
            lambda: DataImporter(uow).import_data(document),
            "cards[0].psk_key_version",
            "256 must be between 0 and 255",
        )
        refused(
            lambda: uow.cards.create(CardProfile(iccid="8902", psk_key_id=-1)),
            "cards.psk_key_id: -1 must be between 0 and 255",
        )
