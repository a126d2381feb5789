"""W1, W2, W3 and W6: each measured through the package and through the raw driver, interleaved."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import package
from data import STORED_EXTRAS, SessionRow, StoredLogs, bulk_sessions, copied_logs, sessions
from raw import RawDatabase

from cardlink.database import CommLog, DatabaseManager

#: The target of a figure shown for information only (not judged, not counted).
INFO = "(info)"
#: W1: package rows/s over the raw side's fastest plain way.
W1_LIMIT = 0.85


@dataclass
class Figure:
    """One printed line: a measured value on both sides, their ratio and the target."""

    backend: str
    workload: str
    name: str
    unit: str
    package: float
    raw: float | None
    ratio: float
    target: str
    ok: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        """Whether the figure has a target (info rows are shown, never judged)."""
        return self.target != INFO


@dataclass
class Sizes:
    """How much data each workload uses (the issue's defaults; --quick and --scale change them)."""

    logs_per_session: int = 200
    log_sessions: int = 1_000
    sessions: int = 100_000
    chunk: int = 10_000
    w2_calls: int = 200
    w3_calls: int = 15
    growth: int = 10
    repeats: int = 3
    #: W1 inserts this many times a side: a server still writing out the last side's rows
    #: (InnoDB's background flushing) moves a single insert's time by as much as 20 %.
    w1_repeats: int = 5
    #: W2 takes the best of this many tries per session (see ``interleaved``).
    best_of: int = 5
    #: W4/W5 start a process per run; --quick does one run of each (CI only checks it works).
    transfer_repeats: int = 3
    #: W4/W5 also export/import a near-empty database, to show memory does not grow with rows.
    flatness: bool = True

    @property
    def logs(self) -> int:
        return self.logs_per_session * self.log_sessions


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


# -- data ---------------------------------------------------------------------------------


def load_base_data(sides: list[RawDatabase], sizes: Sizes, *, seed: int) -> list[SessionRow]:
    """Devices, cards and sessions in every database; returns the sessions that get logs."""
    log_sessions = list(sessions(sizes.log_sessions, seed=seed))
    for side in sides:
        side.load_parents()
        side.load_sessions(log_sessions)
        side.load_sessions(
            sessions(sizes.sessions - sizes.log_sessions, seed=seed, start=sizes.log_sessions)
        )
    return log_sessions


def grow(
    reader: RawDatabase, base: list[SessionRow], sizes: Sizes, *, seed: int
) -> list[SessionRow]:
    """W6 data: add sessions and logs until the database holds ``growth`` times as much."""
    factor = sizes.growth - 1
    start = sizes.sessions
    log_sessions = list(bulk_sessions(sizes.log_sessions * factor, seed=seed, start=start))
    reader.load_sessions(log_sessions)
    reader.load_sessions(
        bulk_sessions(
            sizes.sessions * factor - len(log_sessions),
            seed=seed,
            start=start + len(log_sessions),
        )
    )
    reader.load_logs(copied_logs(base, log_sessions, sizes.logs_per_session, seed=seed))
    reader.analyze()
    return log_sessions


# -- W1 -----------------------------------------------------------------------------------


def w1_batch_insert(
    backend: str,
    manager: DatabaseManager,
    package_db: RawDatabase,
    raw_db: RawDatabase,
    rows: list[tuple],
    sizes: Sizes,
) -> list[Figure]:
    """Insert every log through each side, ``w1_repeats`` times, alternating who goes first.

    Judged against the raw side's fastest plain way: ``executemany`` on SQLite and
    MariaDB, ``COPY`` on PostgreSQL (its ``executemany`` figure is info only). Both sides
    do the same work in their timing: from the guide's tuples to stored rows with the
    decoded command fields, each response linked to its command and given its status
    meaning (the raw side derives these per chunk with the package's own decoder, see
    ``data.StoredLogs``). What the raw side spent deriving is also taken off its time
    for an info figure of the writes alone. After every insert the row count is
    checked, and at the end the rows both databases hold.
    """
    times: dict[str, list[float]] = {"package": [], "executemany": [], "copy": []}
    deriving: dict[str, list[float]] = {"executemany": [], "copy": []}

    def raw_insert(name: str) -> None:
        derive = StoredLogs()
        raw_db.insert_logs(rows, chunk=sizes.chunk, copy=name == "copy", derive=derive)
        deriving[name].append(derive.seconds)

    sides: list[tuple[str, Callable[[], Any]]] = [
        ("package", lambda: package.insert_logs(manager, rows, chunk=sizes.chunk)),
        ("executemany", lambda: raw_insert("executemany")),
    ]
    if backend == "postgresql":
        sides.append(("copy", lambda: raw_insert("copy")))
    count = len(rows)
    for repeat in range(sizes.w1_repeats):
        order = sides if repeat % 2 == 0 else list(reversed(sides))
        for name, action in order:
            database = package_db if name == "package" else raw_db
            database.clear_logs()
            elapsed, _ = _timed(action)
            times[name].append(elapsed)
            stored = database.count("logs")
            if stored != count:
                raise AssertionError(f"W1 {name}: {stored} logs stored of {count}")
    if package_db.logs_digest(STORED_EXTRAS) != raw_db.logs_digest(STORED_EXTRAS):
        raise AssertionError("W1: the package stored other log rows than the raw driver")
    package_rate = count / _median(times["package"])
    judged_side = "copy" if backend == "postgresql" else "executemany"
    runs = {key: value for key, value in times.items() if value}
    figures = []
    for name in ("executemany", "copy"):
        if not times[name]:
            continue
        judged = name == judged_side
        writes_alone = [
            total - spent for total, spent in zip(times[name], deriving[name], strict=True)
        ]
        for label, raw_times, is_judged in (
            (f"batch insert vs {name}", times[name], judged),
            (f"batch insert vs {name} writes only", writes_alone, False),
        ):
            raw_rate = count / _median(raw_times)
            ratio = package_rate / raw_rate
            figures.append(
                Figure(
                    backend,
                    "W1",
                    label,
                    "rows/s",
                    package_rate,
                    raw_rate,
                    ratio,
                    f">= {W1_LIMIT}" if is_judged else INFO,
                    ratio >= W1_LIMIT if is_judged else True,
                    {"rows": count, "times_s": runs, "raw_deriving_s": deriving[name]},
                )
            )
    return figures


# -- W2 / W3 ------------------------------------------------------------------------------


def interleaved(
    package_call: Callable[[Any], Any],
    raw_call: Callable[[Any], Any],
    arguments: list[Any],
    repeats: int,
    check: Callable[[Any, Any], None],
    *,
    best_of: int = 5,
) -> tuple[float, float]:
    """Latency of each side: per argument the best of ``best_of`` tries (sides alternating),
    the median of those over ``arguments`` per round, and the median of ``repeats`` rounds.

    The best-of step keeps a shared machine's scheduling hiccups out of the figures;
    it applies to both sides alike. In the first round every argument's two results go
    through ``check`` first, untimed; it raises when they differ.
    """
    rounds: dict[str, list[float]] = {"package": [], "raw": []}
    for argument in arguments[:3]:  # warm both sides up (pool, caches, statement plans)
        check(package_call(argument), raw_call(argument))
    for repeat in range(repeats):
        package_times: list[float] = []
        raw_times: list[float] = []
        for index, argument in enumerate(arguments):
            if repeat == 0:  # untimed; the best-of tries below are warm in any case
                check(package_call(argument), raw_call(argument))
            best = {"package": float("inf"), "raw": float("inf")}
            for attempt in range(best_of):
                sides = [("package", package_call), ("raw", raw_call)]
                if (index + repeat + attempt) % 2:
                    sides.reverse()
                for name, call in sides:
                    started = time.perf_counter()
                    call(argument)
                    best[name] = min(best[name], time.perf_counter() - started)
            package_times.append(best["package"])
            raw_times.append(best["raw"])
        rounds["package"].append(_median(package_times))
        rounds["raw"].append(_median(raw_times))
    return _median(rounds["package"]), _median(rounds["raw"])


def _stored_time(value: Any) -> str:
    """A timestamp as naive UTC text, whether an aware datetime, a naive one or text."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(" ", "microseconds")
    return str(value)


#: What W2 reads on both sides: every column of ``logs`` but ``session_id``, the value
#: asked for; taken from the model, so a new column is read (and compared) on both sides.
W2_COLUMNS = tuple(
    column.name for column in CommLog.__table__.columns if column.name != "session_id"
)
#: Columns the two sides hand back in different Python types, compared as stored text.
_TIMES = frozenset({"timestamp", "created_at", "updated_at"})


def _log_values(log: Any) -> tuple:
    values = []
    for name in W2_COLUMNS:
        value = getattr(log, name)
        value = getattr(value, "value", value)  # an enum: its stored value
        values.append(_stored_time(value) if name in _TIMES else value)
    return tuple(values)


def _same_logs(found: list[Any], rows: list[tuple]) -> None:
    """W2's check: the package's objects hold exactly the raw rows, in the same order."""
    package_rows = [_log_values(log) for log in found]
    raw_rows = [
        tuple(
            _stored_time(value) if name in _TIMES else value
            for name, value in zip(W2_COLUMNS, row, strict=True)
        )
        for row in rows
    ]
    if package_rows != raw_rows:
        raise AssertionError(
            f"W2: the package read other logs than the raw driver "
            f"({len(package_rows)} rows, raw {len(raw_rows)})"
        )


def w2_latency(
    manager: DatabaseManager,
    reader: RawDatabase,
    session_ids: list[Any],
    sizes: Sizes,
    *,
    seed: int,
) -> tuple[float, float]:
    """Median latency of one session's logs on each side, over ``w2_calls`` sessions."""
    picked = random.Random(f"{seed}:w2").sample(session_ids, min(sizes.w2_calls, len(session_ids)))
    return interleaved(
        lambda session_id: package.find_by_session(manager, session_id),
        lambda session_id: reader.find_by_session(session_id, W2_COLUMNS),
        picked,
        sizes.repeats,
        _same_logs,
        best_of=sizes.best_of,
    )


def _same_statistics(found: dict[str, Any], row: tuple) -> None:
    # Both sides take "30 days ago" a few microseconds apart: a session may sit on the edge.
    edge = max(2, row[0] // 10_000)
    if abs(found["total"] - row[0]) > edge or abs(found["completed"] - row[1]) > edge:
        raise AssertionError(f"W3: package counted {found['total']}, raw {row[0]}")


def w3_latency(
    manager: DatabaseManager, reader: RawDatabase, sizes: Sizes, *, calls: int = 0
) -> tuple[float, float, int]:
    """Median latency of the 30-day statistics on each side; also the sessions in the window."""

    def raw_call(_: Any) -> tuple:
        return reader.statistics(datetime.now(timezone.utc) - timedelta(days=30))

    package_time, raw_time = interleaved(
        lambda _: package.statistics(manager),
        raw_call,
        list(range(calls or sizes.w3_calls)),
        sizes.repeats,
        _same_statistics,
        best_of=3,
    )
    return package_time, raw_time, int(raw_call(None)[0])


def latency_figure(
    backend: str, workload: str, name: str, package_time: float, raw_time: float, limit: float
) -> Figure:
    ratio = package_time / raw_time
    return Figure(
        backend,
        workload,
        name,
        "ms",
        package_time * 1000,
        raw_time * 1000,
        ratio,
        f"<= {limit}",
        ratio <= limit,
    )
