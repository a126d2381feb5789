"""Property: whatever text, numbers and JSON a row holds, export then import gives it back."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardlink.database import (
    CommDirection,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    ExportFormat,
    OTASession,
    UnitOfWork,
)
from transfer_helpers import snapshot, wipe

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(-1e6, 1e6, allow_nan=False).map(lambda number: round(number, 6))
    | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=text,
    notes=text,
    settings_value=st.dictionaries(text, json_values, max_size=4),
    latency=st.floats(allow_nan=False, allow_infinity=False),
    seen=moments,
    export_format=st.sampled_from(ExportFormat),
)
def test_any_values_survive_export_and_import(
    manager, name, notes, settings_value, latency, seen, export_format
):
    wipe(manager)
    session_id = uuid.uuid4()
    with UnitOfWork(manager) as uow:
        uow.devices.create(
            Device(
                id="D1",
                device_type=DeviceType.PHONE,
                name=name,
                notes=notes,
                last_seen=seen,
                connection_settings=settings_value,
            )
        )
        uow.sessions.create(OTASession(id=session_id, device_id="D1", started_at=seen))
        uow.logs.add_log(
            session_id,
            CommDirection.RESPONSE,
            raw_data=notes,
            latency_ms=latency,
            timestamp=seen + timedelta(microseconds=1),
        )
        uow.settings.set_value("any", settings_value)
        uow.commit()
    before = snapshot(manager)
    with UnitOfWork(manager) as uow:
        document = DataExporter(uow).export_all(export_format)
    wipe(manager)
    with UnitOfWork(manager) as uow:
        DataImporter(uow).import_data(document, format=export_format)
        uow.commit()
    assert snapshot(manager) == before
