"""The time-zone rule, checked in processes whose local zone is far from UTC, on every backend.

Rule: a naive ``datetime`` (``datetime.now()``) is the machine's local time; everything
is stored in UTC and comes back aware in UTC. So the guide's
``find_by_date_range(start=datetime.now() - timedelta(days=7), end=datetime.now())``
finds a session started "now" however it was started and whatever the zone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from cardlink.database import DatabaseManager, OTASession, UnitOfWork

#: Zone -> its UTC offset in hours (Adak is -10 or -9 with daylight saving time).
ZONES = {"Pacific/Kiritimati": (14,), "Etc/GMT+11": (-11,), "America/Adak": (-10, -9)}

CHECK = r"""
import sys, time
from datetime import datetime, timedelta, timezone
from sqlalchemy import text
from cardlink.database import DatabaseConfig, DatabaseManager, OTASession, UnitOfWork

url = sys.argv[1]
print("offset", time.localtime().tm_gmtoff / 3600)
manager = DatabaseManager(DatabaseConfig(database_url=url))
manager.initialize()
with UnitOfWork(manager) as uow:
    # The Data Models way: started_at=datetime.now() (naive, local).
    uow.sessions.create(OTASession(session_type="model", started_at=datetime.now()))
    # The repository way: start_session stamps the current time itself.
    started = uow.sessions.create_session(session_type="repository")
    uow.sessions.start_session(started.id)
    # Outside the window, on either side.
    for kind, shift in (("old", timedelta(days=-8)), ("future", timedelta(hours=2))):
        uow.sessions.create(OTASession(session_type=kind, started_at=datetime.now() + shift))
    uow.commit()

with UnitOfWork(manager) as uow:
    # The guide's Quick Start query, as written.
    sessions = uow.sessions.find_by_date_range(
        start=datetime.now() - timedelta(days=7),
        end=datetime.now()
    )
    print("found", ",".join(sorted(s.session_type for s in sessions)))
    print("zones", ",".join(sorted({str(s.started_at.tzinfo) for s in sessions})))
    stats = uow.sessions.get_statistics(days=30)
    print("stats", stats["total"])
    aware = uow.sessions.find_by_date_range(
        start=datetime.now(timezone.utc) - timedelta(days=7), end=datetime.now(timezone.utc)
    )
    print("aware", ",".join(sorted(s.session_type for s in aware)))

with manager.engine.connect() as connection:
    stored = connection.execute(
        text("SELECT started_at FROM sessions WHERE session_type = 'model'")
    ).scalar_one()
if isinstance(stored, str):
    stored = datetime.fromisoformat(stored)
utc_now = datetime.now(timezone.utc).replace(tzinfo=None)
print("stored_is_utc", abs((utc_now - stored).total_seconds()) < 120)
manager.close()
"""


def run_in_zone(zone: str, url: str) -> dict[str, str]:
    env = {**os.environ, "TZ": zone}
    result = subprocess.run(
        [sys.executable, "-c", CHECK, url], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return dict(line.split(" ", 1) for line in result.stdout.splitlines())


@pytest.mark.parametrize("zone", list(ZONES))
def test_the_guides_last_seven_days_query_finds_a_session_started_now(
    manager: DatabaseManager, database_url: str, zone: str
) -> None:
    seen = run_in_zone(zone, database_url)
    assert float(seen["offset"]) in ZONES[zone]  # the zone really was in force
    assert seen["found"] == "model,repository"
    assert seen["zones"] == "UTC"
    assert seen["stats"] == "4"  # all four started within the last 30 days
    assert seen["aware"] == "model,repository"
    assert seen["stored_is_utc"] == "True"


def test_sessions_written_in_one_zone_are_found_from_another(
    manager: DatabaseManager, database_url: str
) -> None:
    run_in_zone("Pacific/Kiritimati", database_url)
    # This process (whatever its zone) sees the same instants, through aware datetimes.
    with UnitOfWork(manager) as uow:
        now = datetime.now(timezone.utc)
        found = uow.sessions.find_by_date_range(start=now - timedelta(days=7), end=now)
        assert sorted(s.session_type for s in found) == ["model", "repository"]
        kiritimati = timezone(timedelta(hours=14))
        local_there = uow.sessions.find_by_date_range(
            start=datetime.now(kiritimati) - timedelta(days=7), end=datetime.now(kiritimati)
        )
        assert len(local_there) == 2


def test_an_aware_datetime_is_kept_as_the_same_instant(manager: DatabaseManager) -> None:
    adak = timezone(timedelta(hours=-10))
    started = datetime.now(adak)
    with UnitOfWork(manager) as uow:
        session = uow.sessions.create(OTASession(started_at=started))
        uow.commit()
    with UnitOfWork(manager) as uow:
        stored = uow.sessions.get_by_id(session.id).started_at
        assert stored == started and stored.utcoffset() == timedelta(0)
        found = uow.sessions.find_by_date_range(
            start=started - timedelta(seconds=1), end=started + timedelta(seconds=1)
        )
        assert [s.id for s in found] == [session.id]
