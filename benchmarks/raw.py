"""The raw side of the benchmark: the same work through the bare DB-API driver.

stdlib ``sqlite3``, ``psycopg`` 3 and ``PyMySQL``, each the fastest plain way for
the statement kind the package uses: ``executemany`` in one transaction per chunk
on SQLite and MariaDB, ``COPY`` on PostgreSQL. The raw side starts from the same
Python values as the package (UUIDs, aware UTC datetimes, enum members) and does
only the conversion its driver needs, inside the timed part: timestamps go as text
where text is what the column reads fastest (SQLite's TEXT, MariaDB's DATETIME(6)).
Values are stored exactly as the package's column types store them, so either side
can read what the other wrote.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the transfer worker imports this module without SQLAlchemy or the package
    from data import SessionRow, StoredLogs
    from sqlalchemy.engine import URL

LOG_COLUMNS = (
    "session_id",
    "direction",
    "raw_data",
    "decoded_data",
    "status_word",
    "status_message",
    "latency_ms",
    "timestamp",
    "created_at",
    "updated_at",
)
SESSION_COLUMNS = (
    "id",
    "device_id",
    "card_iccid",
    "session_type",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "created_at",
    "updated_at",
)


class RawDatabase:
    """A plain driver connection to one benchmark database, plus the SQL it needs."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.backend = {"mariadb": "mysql"}.get(url.get_backend_name(), url.get_backend_name())
        self.connection = self._connect()
        mark = "?" if self.backend == "sqlite" else "%s"
        self.mark = mark
        self.quote = "`" if self.backend == "mysql" else '"'

    # -- connection ----------------------------------------------------------------

    def _connect(self) -> Any:
        url = self.url
        if self.backend == "sqlite":
            connection = sqlite3.connect(url.database, isolation_level=None)
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            return connection
        if self.backend == "postgresql":
            import psycopg

            return psycopg.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 5432,
                user=url.username,
                password=url.password,
                dbname=url.database,
            )
        import pymysql

        return pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            database=url.database,
            charset="utf8mb4",
            local_infile=True,  # setup bulk loads use LOAD DATA (W1 stays executemany)
        )

    def close(self) -> None:
        self.connection.close()

    def begin(self) -> None:
        if self.backend == "sqlite":
            self.connection.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.backend == "sqlite":
            self.connection.execute("COMMIT")
        else:
            self.connection.commit()

    def execute(self, sql: str, params: Any = ()) -> list[tuple]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def write(self, sql: str, params: Any = ()) -> None:
        self.begin()
        self.execute(sql, params)
        self.commit()

    # -- value conversion ----------------------------------------------------------------

    def uuid_value(self, value: Any) -> Any:
        return value if self.backend == "postgresql" else value.hex

    def time_value(self, value: datetime) -> Any:
        """Naive UTC: as text on SQLite and MariaDB (the text DATETIME(6) parses, sparing
        PyMySQL's datetime escaping), as a datetime for psycopg."""
        if value.tzinfo is not timezone.utc:
            value = value.astimezone(timezone.utc)
        naive = datetime.combine(value, value.time())  # the zone dropped, as the package does
        return naive if self.backend == "postgresql" else naive.isoformat(" ", "microseconds")

    def insert_sql(self, table: str, columns: Iterable[str]) -> str:
        names = list(columns)
        quoted = ", ".join(f"{self.quote}{name}{self.quote}" for name in names)
        marks = ", ".join([self.mark] * len(names))
        return f"INSERT INTO {table} ({quoted}) VALUES ({marks})"

    # -- workloads -----------------------------------------------------------------------

    def insert_logs(
        self,
        rows: list[tuple],
        *,
        chunk: int,
        copy: bool = False,
        derive: StoredLogs | None = None,
    ) -> int:
        """W1 raw: insert the guide's tuples, one transaction per ``chunk`` rows.

        ``derive``: what the package stores beyond the tuples (the key, the decoded
        command fields, the command link, a response's status meaning), derived from
        each chunk before it is written.
        """
        now = datetime.now(timezone.utc)
        stamp = self.time_value(now)
        uuid_value, time_value = self.uuid_value, self.time_value
        names = (*LOG_COLUMNS[:-2], *(derive.columns if derive else ()), *LOG_COLUMNS[-2:])
        sql = self.insert_sql("logs", names)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            part, extras = derive(part) if derive is not None else (part, [()] * len(part))
            prepared = [
                (
                    uuid_value(row[0]),
                    row[1].value,
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    time_value(row[7]),
                    *values,
                    stamp,
                    stamp,
                )
                for row, values in zip(part, extras, strict=True)
            ]
            self.begin()
            cursor = self.connection.cursor()
            if copy:
                quoted = ", ".join(f'"{name}"' for name in names)
                with cursor.copy(f"COPY logs ({quoted}) FROM STDIN") as copier:
                    for row in prepared:
                        copier.write_row(row)
            else:
                cursor.executemany(sql, prepared)
            cursor.close()
            self.commit()
        return len(rows)

    def find_by_session(self, session_id: Any, names: Sequence[str]) -> list[tuple]:
        """W2 raw: one session's logs in time order, the columns ``names``."""
        columns = ", ".join(f"{self.quote}{name}{self.quote}" for name in names)
        sql = (
            f"SELECT {columns} FROM logs WHERE session_id = {self.mark} "
            f"ORDER BY {self.quote}timestamp{self.quote}, id"
        )
        rows = self.execute(sql, (self.uuid_value(session_id),))
        if self.backend != "sqlite":
            self.connection.commit()  # end the read transaction the driver opened
        return rows

    def statistics(self, since: datetime) -> tuple:
        """W3 raw: the 30-day aggregate in one statement."""

        def tally(status: str) -> str:
            return f"COALESCE(SUM(CASE WHEN status = '{status}' THEN 1 ELSE 0 END), 0)"

        sql = (
            f"SELECT COUNT(*), {tally('completed')}, {tally('failed')}, {tally('timeout')}, "
            f"{tally('active')}, AVG(duration_ms) FROM sessions WHERE started_at >= {self.mark}"
        )
        (row,) = self.execute(sql, (self.time_value(since),))
        if self.backend != "sqlite":
            self.connection.commit()
        return row

    # -- checks (not timed) ---------------------------------------------------------------

    def count(self, table: str) -> int:
        """Rows in ``table``."""
        ((total,),) = self.execute(f"SELECT COUNT(*) FROM {table}")
        if self.backend != "sqlite":
            self.connection.commit()
        return int(total)

    def logs_digest(self, extra: Iterable[str] = ()) -> str:
        """A digest of every log's content in insertion (id) order, ids and stamps left out:
        two databases loaded with the same rows give the same digest. ``extra`` columns are
        included; a link to another log (``command_id``) as its distance back in ids."""
        import hashlib

        names = [name for name in LOG_COLUMNS if name not in ("created_at", "updated_at")]
        names += [name for name in extra if name != "id"]
        columns = ", ".join(
            f"id - {self.quote}{name}{self.quote}"
            if name == "command_id"
            else f"{self.quote}{name}{self.quote}"
            for name in names
        )
        cursor = self.connection.cursor()
        digest = hashlib.sha256()
        try:
            cursor.execute(f"SELECT {columns} FROM logs ORDER BY id")
            while rows := cursor.fetchmany(10_000):
                digest.update(repr(rows).encode())
        finally:
            cursor.close()
        if self.backend != "sqlite":
            self.connection.commit()
        return digest.hexdigest()

    # -- setup (not timed) -----------------------------------------------------------------

    def clear_logs(self) -> None:
        if self.backend == "sqlite":
            self.write("DELETE FROM logs")
        else:
            self.write("DELETE FROM logs" if self.backend == "mysql" else "TRUNCATE logs")

    def load_parents(self) -> None:
        """The devices and cards the sessions point at."""
        from data import card_iccids, device_ids

        stamp = self.time_value(datetime.now(timezone.utc))
        true = 1 if self.backend != "postgresql" else True
        devices = [(name, "phone", f"Phone {name}", true, stamp, stamp) for name in device_ids()]
        cards = [(iccid, "usim", f"card_{iccid[-4:]}", stamp, stamp) for iccid in card_iccids()]
        self.begin()
        cursor = self.connection.cursor()
        cursor.executemany(
            self.insert_sql(
                "devices", ("id", "device_type", "name", "is_active", "created_at", "updated_at")
            ),
            devices,
        )
        cursor.executemany(
            self.insert_sql(
                "cards", ("iccid", "card_type", "psk_identity", "created_at", "updated_at")
            ),
            cards,
        )
        cursor.close()
        self.commit()

    def load_sessions(self, sessions: Iterable[SessionRow], *, chunk: int = 20_000) -> int:
        """Bulk-load sessions (setup only)."""
        sql = self.insert_sql("sessions", SESSION_COLUMNS)
        total = 0
        for batch in _chunks(sessions, chunk):
            rows = [
                (
                    self.uuid_value(row.id),
                    row.device_id,
                    row.card_iccid,
                    row.session_type,
                    row.status.value,
                    self.time_value(row.started_at),
                    None if row.ended_at is None else self.time_value(row.ended_at),
                    row.duration_ms,
                    self.time_value(row.started_at),
                    self.time_value(row.ended_at or row.started_at),
                )
                for row in batch
            ]
            self._bulk(sql, "sessions", SESSION_COLUMNS, rows)
            total += len(rows)
        return total

    def load_logs(self, rows: Iterable[tuple], *, chunk: int = 20_000) -> int:
        """Bulk-load logs (setup only; W6 growth data)."""
        sql = self.insert_sql("logs", LOG_COLUMNS)
        total = 0
        for batch in _chunks(rows, chunk):
            stamp = self.time_value(datetime.now(timezone.utc))  # a batch shares its created_at
            prepared = [
                (
                    self.uuid_value(row[0]),
                    row[1].value,
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    self.time_value(row[7]),
                    stamp,
                    stamp,
                )
                for row in batch
            ]
            self._bulk(sql, "logs", LOG_COLUMNS, prepared)
            total += len(prepared)
        return total

    def _bulk(self, sql: str, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
        self.begin()
        cursor = self.connection.cursor()
        if self.backend == "postgresql":
            names = ", ".join(f'"{name}"' for name in columns)
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copier:
                for row in rows:
                    copier.write_row(row)
        elif self.backend == "mysql":
            _load_data(cursor, table, columns, rows)
        else:
            cursor.executemany(sql, rows)
        cursor.close()
        self.commit()

    def analyze(self) -> None:
        """Fresh planner statistics after a bulk load, as a DBA would run."""
        if self.backend == "sqlite":
            self.execute("ANALYZE")
        elif self.backend == "postgresql":
            self.connection.commit()
            self.connection.autocommit = True
            self.execute("VACUUM ANALYZE")
            self.connection.autocommit = False
        else:
            self.execute("ANALYZE TABLE sessions, logs")
            self.connection.commit()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tsv(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat(" ", "microseconds")
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _load_data(cursor: Any, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """MariaDB setup load: LOAD DATA LOCAL INFILE, the server's bulk loader, for the 10x data."""
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False, encoding="utf-8") as out:
        for row in rows:
            out.write("\t".join(_tsv(value) for value in row) + "\n")
        path = out.name
    try:
        names = ", ".join(f"`{name}`" for name in columns)
        cursor.execute(
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} "
            f"CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ({names})"
        )
    finally:
        os.unlink(path)
