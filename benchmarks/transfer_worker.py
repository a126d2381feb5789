"""One export or import in its own process, so its time and peak memory are its own.

    python transfer_worker.py raw-export URL FILE SCHEMA   # the raw driver, streaming
    python transfer_worker.py raw-import URL FILE SCHEMA
    python transfer_worker.py api-export URL FILE SCHEMA   # DataExporter(uow).write(...)
    python transfer_worker.py api-import URL FILE SCHEMA   # DataImporter(uow).import_stream(...)

SCHEMA is a JSON file written by ``write_schema`` (column kinds per table), so the raw
worker imports neither SQLAlchemy nor the package.

Prints one JSON line: ``{"seconds": ..., "rows": ...}`` (time from connect to close).
The raw side writes the same document layout as the package (one row per line)
and reads it back line by line: the fastest plain way for a known layout.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TABLES = ("devices", "cards", "sessions", "logs", "tests", "settings")


Schema = dict[str, list[tuple[str, str]]]


def schema() -> Schema:
    """Column names and kinds per table (uuid, time, json, bool, other), from the models.

    The primary key is listed under the pseudo-kind ``key`` as the table's last entry.
    """
    from sqlalchemy import JSON, Boolean

    from cardlink.database.models import Base
    from cardlink.database.types import GUID, UTCDateTime

    kinds: dict[str, list[tuple[str, str]]] = {}
    for name in TABLES:
        columns = []
        for column in Base.metadata.tables[name].columns:
            kind = "other"
            if isinstance(column.type, GUID):
                kind = "uuid"
            elif isinstance(column.type, UTCDateTime):
                kind = "time"
            elif isinstance(column.type, JSON) or "JSON" in type(column.type).__name__:
                kind = "json"
            elif isinstance(column.type, Boolean):
                kind = "bool"
            columns.append((column.name, kind))
        (key,) = Base.metadata.tables[name].primary_key.columns
        kinds[name] = [*columns, (key.name, "key")]
    return kinds


def _encoder(backend: str, kind: str) -> Any:
    """Stored value -> document value, per column kind."""
    if kind == "uuid":
        if backend == "postgresql":
            return lambda value: None if value is None else str(value)
        return lambda value: None if value is None else str(uuid.UUID(str(value)))
    if kind == "time":
        if backend == "sqlite":
            return lambda value: None if value is None else f"{value[:10]}T{value[11:]}+00:00"
        return lambda value: (
            None if value is None else value.isoformat("T", "microseconds") + "+00:00"
        )
    if kind == "json":
        if backend == "postgresql":
            return lambda value: value
        return lambda value: None if value is None else json.loads(value)
    if kind == "bool":
        return lambda value: None if value is None else bool(value)
    return None


def raw_export(url: Any, path: str, schema: Schema) -> int:
    from raw import RawDatabase

    database = RawDatabase(url)
    backend, quote = database.backend, database.quote
    total = 0
    counts: dict[str, int] = {}
    with open(path, "w", encoding="utf-8") as stream:
        stream.write('{\n  "format": "cardlink-database-export",\n  "format_version": 2,\n')
        stream.write('  "psk_keys": "encrypted",\n  "tables": {')
        for position, table in enumerate(TABLES):
            columns, key = schema[table][:-1], schema[table][-1][0]
            names = [name for name, _ in columns]
            encoders = [(index, _encoder(backend, kind)) for index, (_, kind) in enumerate(columns)]
            encoders = [(index, encode) for index, encode in encoders if encode is not None]
            selected = ", ".join(f"{quote}{name}{quote}" for name in names)
            sql = f"SELECT {selected} FROM {table} ORDER BY {quote}{key}{quote}"
            stream.write(("," if position else "") + f'\n    "{table}": [')
            done = 0
            dumps = json.dumps
            for row in _stream_rows(database, sql):
                values = list(row)
                for index, encode in encoders:
                    values[index] = encode(values[index])
                document = dumps(dict(zip(names, values, strict=True)))
                stream.write(("," if done else "") + "\n      " + document)
                done += 1
            stream.write("\n    ]" if done else "]")
            total += done
            counts[table] = done
        trailer = json.dumps({"row_counts": counts})
        stream.write(f'\n  }},\n  "trailer": {trailer}\n}}\n')
    database.close()
    return total


def _stream_rows(database: Any, sql: str) -> Any:
    """Rows without holding the table in memory: a server-side cursor on the servers."""
    connection = database.connection
    if database.backend == "sqlite":
        yield from connection.execute(sql)
    elif database.backend == "postgresql":
        with connection.cursor(name="export") as cursor:
            cursor.itersize = 2000
            cursor.execute(sql)
            yield from cursor
        connection.commit()
    else:
        import pymysql.cursors

        cursor = connection.cursor(pymysql.cursors.SSCursor)
        cursor.execute(sql)
        yield from cursor
        cursor.close()


def _decoder(backend: str, kind: str) -> Any:
    """Document value -> driver value, per column kind."""
    if kind == "uuid":
        if backend == "postgresql":
            return None  # text is cast by the server
        return lambda value: None if value is None else value.replace("-", "")
    if kind == "time":
        # 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00' -> 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC)
        return lambda value: None if value is None else f"{value[:10]} {value[11:26]}"
    if kind == "json":
        return lambda value: None if value is None else json.dumps(value)
    return None


def raw_import(url: Any, path: str, schema: Schema, *, batch: int = 5_000) -> int:
    from raw import RawDatabase

    database = RawDatabase(url)
    backend = database.backend
    total = 0
    table = None
    rows: list[tuple[Any, ...]] = []
    loads = json.loads
    database.begin()
    cursor = database.connection.cursor()

    def write() -> None:
        if rows:
            names = list(rows[0][0])
            sql = database.insert_sql(table, names)
            decoders = [_decoders[table].get(name) for name in names]
            prepared = []
            for document, _ in rows:
                values = list(document.values())
                for index, decode in enumerate(decoders):
                    if decode is not None:
                        values[index] = decode(values[index])
                prepared.append(tuple(values))
            cursor.executemany(sql, prepared)
            rows.clear()

    _decoders = {
        name: {column: _decoder(backend, kind) for column, kind in columns[:-1]}
        for name, columns in schema.items()
    }
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            text = line.strip()
            if text.startswith("{") and table is not None:
                rows.append((loads(text.rstrip(",")), None))
                total += 1
                if len(rows) >= batch:
                    write()
            elif text.endswith(": [") or text.endswith(": []") or text.endswith(": [],"):
                write()
                name = text.split(":")[0].strip('"')
                table = name if name in schema else None
            elif text.startswith("]"):
                write()
                table = None
    write()
    cursor.close()
    database.commit()
    database.close()
    return total


def api_export(url: Any, path: str, schema: Any) -> int:
    from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork
    from cardlink.database.transfer import DataExporter

    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with UnitOfWork(manager) as uow, open(path, "w", encoding="utf-8") as stream:
        counts = DataExporter(uow).write(stream, "json")
    manager.close()
    return sum(counts.values())


def api_import(url: Any, path: str, schema: Any) -> int:
    from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork
    from cardlink.database.transfer import DataImporter

    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with UnitOfWork(manager) as uow, open(path, encoding="utf-8") as stream:
        result = DataImporter(uow).import_stream(stream, "json", "skip", False)
        uow.commit()
    manager.close()
    return int(result.created)


class PlainURL:
    """The parts of a database URL the raw driver needs, without importing SQLAlchemy."""

    def __init__(self, text: str) -> None:
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(text)
        self.backend = parts.scheme.split("+")[0]
        self.host, self.port = parts.hostname, parts.port
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        self.database = unquote(path)

    def get_backend_name(self) -> str:
        return self.backend


def main() -> int:
    mode, url, path, schema_file = sys.argv[1:5]
    schema = json.loads(Path(schema_file).read_text())
    if mode.startswith("raw"):
        import raw  # noqa: F401 - the driver import is not timed either

        target: Any = PlainURL(url)
    else:
        from cardlink.database import DatabaseConfig

        target = DatabaseConfig(database_url=url).url
    action = {
        "raw-export": raw_export,
        "raw-import": raw_import,
        "api-export": api_export,
        "api-import": api_import,
    }[mode]
    started = time.perf_counter()
    rows = action(target, path, schema)
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
