"""pairs(), find_by_command() and command_stats() on the stored decoded columns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cardlink.database import (
    CommandStats,
    CommDirection,
    DatabaseManager,
    UnitOfWork,
    ValidationError,
)
from test_log_decoded import START, new_session, rows

C, R = CommDirection.COMMAND, CommDirection.RESPONSE
INSTALL_FOR_LOAD = "80E602001507A00000015100000000000000"
INSTALL_FOR_INSTALL = "80E60C00220CA0000001510000A0000001510000"


def timed(session_id: str, *apdus: tuple[CommDirection, str, float | None]) -> list[tuple]:
    """Batch tuples one millisecond apart; a response carries its latency."""
    return [
        (
            session_id,
            direction,
            hex_text,
            None,
            None,
            None,
            latency,
            START + timedelta(milliseconds=number),
        )
        for number, (direction, hex_text, latency) in enumerate(apdus)
    ]


def test_pairs_gives_every_command_with_its_response_in_wire_order(
    manager: DatabaseManager,
) -> None:
    session_id = new_session(manager)
    trace = [
        (C, "00A4040000"),
        (C, "01B0000004"),
        (R, "010203049000"),  # channel 1's
        (R, "6A82"),  # the SELECT's
        (C, "80CA9F7F00"),  # never answered
        (R, "6D00"),  # answers GET DATA
        (R, "9000"),  # answers nothing: in no pair
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(rows(session_id, *trace[:3]))
        uow.logs.flush_batch()
        uow.logs.add_log_batch(rows(session_id, *trace[3:], start=3))
        found = [
            (command.raw_data, response.raw_data if response else None)
            for command, response in uow.logs.pairs(session_id)
        ]
    assert found == [
        ("00A4040000", "6A82"),
        ("01B0000004", "010203049000"),
        ("80CA9F7F00", "6D00"),
    ]


def test_pairs_of_an_unknown_or_empty_session_is_empty(manager: DatabaseManager) -> None:
    session_id = new_session(manager)
    with UnitOfWork(manager) as uow:
        assert uow.logs.pairs(session_id) == []
        uow.logs.add_log(session_id, "command", "00A4040000")
        ((command, response),) = uow.logs.pairs(session_id)
    assert (command.command_name, response) == ("SELECT", None)


def test_find_by_command_takes_a_name_or_an_ins(manager: DatabaseManager) -> None:
    first, second = new_session(manager), new_session(manager)
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(
            rows(first, (C, "00A4040000"), (C, "80CA9F7F00"), (C, INSTALL_FOR_LOAD))
        )
        uow.logs.add_log_batch(
            rows(second, (C, "01A4000C023F00"), (C, INSTALL_FOR_INSTALL), start=3)
        )
        uow.logs.add_log_batch(rows(second, (R, "A4A4"), start=5))  # a response never matches
        uow.commit()
    with UnitOfWork(manager) as uow:

        def found(name_or_ins: object, session_id: str | None = None) -> list[str | None]:
            return [log.raw_data for log in uow.logs.find_by_command(name_or_ins, session_id)]

        assert found("SELECT") == ["00A4040000", "01A4000C023F00"]
        assert found("select", first) == ["00A4040000"]
        assert found("A4") == found(0xA4) == found("0xa4") == found("SELECT")
        assert found("CA") == ["80CA9F7F00"]  # not the SELECTs, whose bytes hold CA nowhere
        assert found("INSTALL") == [INSTALL_FOR_LOAD, INSTALL_FOR_INSTALL]
        assert found("INSTALL [for load]") == [INSTALL_FOR_LOAD]
        assert found("GET STATUS") == []
        assert found("%") == []  # a LIKE wildcard is a plain character
        for bad in ("", "  ", 256, -1, None, True, "x" * 65):
            with pytest.raises(ValidationError):
                uow.logs.find_by_command(bad)


def test_command_stats_counts_errors_warnings_and_latencies_per_command(
    manager: DatabaseManager,
) -> None:
    session_id, other = new_session(manager), new_session(manager)
    latencies = [float(value) for value in range(1, 21)]  # SELECT: 1..20 ms
    trace: list[tuple[CommDirection, str, float | None]] = []
    for number, latency in enumerate(latencies):
        word = "6A82" if number % 5 == 0 else ("6283" if number % 7 == 0 else "9000")
        trace += [(C, "00A4040000", None), (R, word, latency)]
    trace += [
        (C, "00B0000004", None),
        (R, "6120", 4.5),  # intermediate: neither error nor warning
        (C, "00C0000020", None),
        (R, "63C2", None),  # a warning, no latency logged
        (C, "00B0000004", None),  # unanswered
        (C, "garbage", None),  # no name: not counted
    ]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(timed(session_id, *trace))
        uow.logs.add_log_batch(timed(other, (C, "00A4040000", None), (R, "6F00", 500.0)))
        uow.commit()
    with UnitOfWork(manager) as uow:
        stats = uow.logs.command_stats(session_id)
        everywhere = uow.logs.command_stats()
        recent = uow.logs.command_stats(days=1)
    assert stats == [
        CommandStats("SELECT", 20, 4, 2, 10.5, 19.0),
        CommandStats("READ BINARY", 2, 0, 0, 4.5, 4.5),
        CommandStats("GET RESPONSE", 1, 0, 1, None, None),
    ]
    assert everywhere[0] == CommandStats("SELECT", 21, 5, 2, pytest.approx(710 / 21), 20.0)
    assert recent == []  # START lies days back


@pytest.mark.parametrize(
    ("count", "p95"),
    [(1, 1.0), (2, 2.0), (19, 19.0), (20, 19.0), (21, 20.0), (100, 95.0), (101, 96.0)],
)
def test_the_p95_is_the_nearest_rank_on_every_backend(
    manager: DatabaseManager, count: int, p95: float
) -> None:
    session_id = new_session(manager)
    trace: list[tuple[CommDirection, str, float | None]] = []
    for latency in reversed(range(1, count + 1)):  # inserted out of order
        trace += [(C, "80F21000024F0000", None), (R, "9000", float(latency))]
    with UnitOfWork(manager) as uow:
        uow.logs.add_log_batch(timed(session_id, *trace))
        ((stats),) = uow.logs.command_stats(session_id)
    assert (stats.command_name, stats.count, stats.p95_latency_ms) == ("GET STATUS", count, p95)


def test_command_stats_refuses_a_bad_window(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="days"):
        uow.logs.command_stats(days=-1)
