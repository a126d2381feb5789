"""One export or import in its own process, so its time and peak memory are its own.

    python transfer_worker.py raw-export URL FILE SCHEMA   # the raw driver, streaming
    python transfer_worker.py raw-import URL FILE SCHEMA
    python transfer_worker.py api-export URL FILE SCHEMA   # DataExporter(uow).write(...)
    python transfer_worker.py api-import URL FILE SCHEMA   # DataImporter(uow).import_stream(...)

SCHEMA is a JSON file written from ``schema()`` (column kinds per table, from the
models), so the raw worker imports neither SQLAlchemy nor the package.

Prints one JSON line: ``{"seconds": ..., "rows": ..., "tables": {name: rows}}`` (time
from connect to close).

The raw side does the package's work the fastest plain way. Export: the same
document byte for byte (header, rows, key order, number and text forms), read with
one streaming query per table sorted by the package's key (text keys byte-wise,
MariaDB's UUIDs as text), timestamps read as text where the package reads them as
text (SQLite, MariaDB), UUIDs as the server's text on PostgreSQL, converted a
column at a time, a thousand rows per fetch and per ``write``. Import: the document
read line by line (a layout it knows), one ``COPY`` per table on PostgreSQL,
``executemany`` of 5,000 rows elsewhere, one transaction.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

TABLES = (
    "devices",
    "cards",
    "sessions",
    "http_exchanges",
    "logs",
    "test_runs",
    "tests",
    "settings",
)
#: Rows per fetch and document rows per ``write`` of the raw export.
ROWS_PER_WRITE = 1000

#: Per table: ``{"columns": [[name, kind], ...], "key": name, "key_kind": kind}``.
Schema = dict[str, dict[str, Any]]


def schema() -> Schema:
    """Column names and kinds per table (uuid, time, json, bool, text, other), from the models."""
    from sqlalchemy import JSON, Boolean, Enum, String

    from cardlink.database.models import Base
    from cardlink.database.types import GUID, UTCDateTime

    kinds: Schema = {}
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
            elif isinstance(column.type, String) and not isinstance(column.type, Enum):
                kind = "text"
            columns.append((column.name, kind))
        (key,) = Base.metadata.tables[name].primary_key.columns
        kinds[name] = {"columns": columns, "key": key.name, "key_kind": dict(columns)[key.name]}
    return kinds


# -- export ---------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """A JSON value with object keys sorted, as the package writes every JSON column."""
    if isinstance(value, dict):
        return {str(key): _canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def _encoder(backend: str, kind: str) -> Any:
    """Value as read (see ``_selected``) -> document value, per column kind; None: as it is."""
    if kind == "uuid":
        if backend == "sqlite":  # CHAR(32) hex
            return lambda v: f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}"
        return None  # the server's canonical text (PostgreSQL's cast, MariaDB's UUID)
    if kind == "time":
        if backend == "postgresql":
            return lambda value: value.isoformat("T", "microseconds") + "+00:00"
        return lambda value: f"{value[:10]}T{value[11:]}+00:00"  # naive UTC text
    if kind == "json":
        if backend == "postgresql":
            return _canonical
        return lambda value: _canonical(json.loads(value))
    if kind == "bool":
        return bool
    return None


def _selected(backend: str, name: str, kind: str) -> str:
    """The select-list entry of one column: timestamps as text on MariaDB, UUIDs on PostgreSQL."""
    quote = "`" if backend == "mysql" else '"'
    column = f"{quote}{name}{quote}"
    if backend == "mysql" and kind == "time":
        return f"CAST({column} AS CHAR)"
    if backend == "postgresql" and kind == "uuid":
        return f"{column}::text"
    return column


def _order_by(backend: str, name: str, kind: str) -> str:
    """The package's sort key: text byte-wise, MariaDB's native UUIDs by their text."""
    quote = "`" if backend == "mysql" else '"'
    column = f"{quote}{name}{quote}"
    if backend == "postgresql" and kind == "text":
        return f'{column} COLLATE "C"'
    if backend == "mysql" and kind == "text":
        return f"CAST({column} AS BINARY)"
    if backend == "mysql" and kind == "uuid":
        return f"CAST({column} AS CHAR(36))"
    return column


def _schema_revision(database: Any) -> str | None:
    """The Alembic revision(s) recorded in the database, as the package's header gives it."""
    try:
        found = database.execute("SELECT version_num FROM alembic_version")
    except Exception:  # no version table: the header says null
        if database.backend == "postgresql":
            database.connection.rollback()
        return None
    revisions = sorted(row[0] for row in found)
    return ", ".join(revisions) if revisions else None


def _header(database: Any) -> str:
    """The document's header lines up to the opening of ``tables``, as the package writes."""
    exported = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    fields = {
        "format": "cardlink-database-export",
        "format_version": 2,
        "schema_revision": _schema_revision(database),
        "exported_at": exported,
        "psk_keys": "encrypted",
        "table_names": list(TABLES),
    }
    lines = "".join(f"  {json.dumps(key)}: {json.dumps(value)},\n" for key, value in fields.items())
    return "{\n" + lines + '  "tables": {'


def raw_export(url: Any, path: str, schema: Schema) -> dict[str, int]:
    from raw import RawDatabase

    database = RawDatabase(url)
    backend = database.backend
    counts: dict[str, int] = {}
    dumps = json.dumps
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(_header(database))
        for position, table in enumerate(TABLES):
            columns = schema[table]["columns"]
            names = [name for name, _ in columns]
            encoders = [(index, _encoder(backend, kind)) for index, (_, kind) in enumerate(columns)]
            encoders = [(index, encode) for index, encode in encoders if encode is not None]
            selected = ", ".join(_selected(backend, name, kind) for name, kind in columns)
            order = _order_by(backend, schema[table]["key"], schema[table]["key_kind"])
            sql = f"SELECT {selected} FROM {table} ORDER BY {order}"
            stream.write(("," if position else "") + f'\n    "{table}": [')
            done = 0
            for rows in _stream_batches(database, sql):
                # Column by column: one comprehension per converted column, not a loop per row.
                values = list(zip(*rows, strict=True))
                for index, encode in encoders:
                    values[index] = [None if v is None else encode(v) for v in values[index]]
                documents = [
                    dumps(dict(zip(names, row, strict=True))) for row in zip(*values, strict=True)
                ]
                stream.write(("," if done else "") + "\n      " + ",\n      ".join(documents))
                done += len(documents)
            stream.write("\n    ]" if done else "]")
            counts[table] = done
        trailer = json.dumps({"row_counts": counts})
        stream.write(f'\n  }},\n  "trailer": {trailer}\n}}\n')
    database.close()
    return counts


def _stream_batches(database: Any, sql: str) -> Any:
    """Batches of ``ROWS_PER_WRITE`` rows without holding the table in memory: a
    server-side cursor on the servers, fetched a batch at a time."""
    connection = database.connection
    if database.backend == "postgresql":
        cursor = connection.cursor(name="export")
    elif database.backend == "mysql":
        import pymysql.cursors

        cursor = connection.cursor(pymysql.cursors.SSCursor)
    else:
        cursor = connection.cursor()
    cursor.execute(sql)
    while rows := cursor.fetchmany(ROWS_PER_WRITE):
        yield rows
    cursor.close()
    if database.backend == "postgresql":
        connection.commit()


# -- import ---------------------------------------------------------------------------------


def _decoder(backend: str, kind: str) -> Any:
    """Document value -> driver value, per column kind; None: as it is."""
    if kind == "uuid":
        if backend == "postgresql":
            return None  # text is cast by the server
        return lambda value: value.replace("-", "")
    if kind == "time":
        # 'YYYY-MM-DDTHH:MM:SS.ffffff+00:00' -> 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC)
        return lambda value: f"{value[:10]} {value[11:26]}"
    if kind == "json":
        return json.dumps
    return None


class _TableLoader:
    """Writes one table's rows in batches: into one COPY on PostgreSQL, executemany elsewhere."""

    def __init__(self, database: Any, table: str, schema: Schema, batch: int) -> None:
        self.database, self.table, self.batch = database, table, batch
        columns = schema[table]["columns"]
        self.names = [name for name, _ in columns]
        decoders = [(i, _decoder(database.backend, kind)) for i, (_, kind) in enumerate(columns)]
        self.decoders = [(index, decode) for index, decode in decoders if decode is not None]
        self.rows: list[list[Any]] = []
        self.total = 0
        self.cursor = database.connection.cursor()
        self.copy: Any = None
        self.copy_context: Any = None
        if database.backend == "postgresql":
            quoted = ", ".join(f'"{name}"' for name in self.names)
            self.copy_context = self.cursor.copy(f'COPY "{table}" ({quoted}) FROM STDIN')
            self.copy = self.copy_context.__enter__()

    def add(self, document: dict[str, Any]) -> None:
        values = list(document.values())
        if len(values) != len(self.names):
            raise ValueError(f"{self.table}: a row has {len(values)} fields, not {len(self.names)}")
        self.rows.append(values)
        if len(self.rows) >= self.batch:
            self._write()

    def _write(self) -> None:
        """Decode the collected rows a column at a time and write them."""
        if not self.rows:
            return
        columns = list(zip(*self.rows, strict=True))
        for index, decode in self.decoders:
            columns[index] = [None if v is None else decode(v) for v in columns[index]]
        rows = list(zip(*columns, strict=True))
        if self.copy is not None:
            write_row = self.copy.write_row
            for row in rows:
                write_row(row)
        else:
            self.cursor.executemany(self.database.insert_sql(self.table, self.names), rows)
        self.total += len(rows)
        self.rows.clear()

    def close(self) -> int:
        self._write()
        if self.copy_context is not None:
            self.copy_context.__exit__(None, None, None)
        if self.database.backend == "postgresql" and self.total and self.table == "logs":
            # As the package does after explicit ids: move the id sequence past them.
            self.cursor.execute(
                "SELECT setval(pg_get_serial_sequence('logs', 'id'), (SELECT MAX(id) FROM logs))"
            )
        self.cursor.close()
        return self.total


def raw_import(url: Any, path: str, schema: Schema, *, batch: int = 5_000) -> dict[str, int]:
    from raw import RawDatabase

    database = RawDatabase(url)
    counts: dict[str, int] = {}
    loads = json.loads
    loader: _TableLoader | None = None
    database.begin()
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            text = line.strip()
            if loader is not None and text.startswith("{"):
                loader.add(loads(text.rstrip(",")))
            elif text.startswith('"') and text.rstrip(",").endswith(("[", "[]")):
                if loader is not None:
                    counts[loader.table] = loader.close()
                name = text.split(":")[0].strip('"')
                loader = None
                if name in schema:
                    loader = _TableLoader(database, name, schema, batch)
                    if text.rstrip(",").endswith("[]"):
                        counts[name] = loader.close()
                        loader = None
            elif loader is not None and text.startswith("]"):
                counts[loader.table] = loader.close()
                loader = None
    if loader is not None:
        counts[loader.table] = loader.close()
    database.commit()
    database.close()
    return counts


# -- the package ----------------------------------------------------------------------------


def api_export(url: Any, path: str, schema: Any) -> dict[str, int]:
    from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork
    from cardlink.database.transfer import DataExporter

    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with UnitOfWork(manager) as uow, open(path, "w", encoding="utf-8") as stream:
        counts = DataExporter(uow).write(stream, "json")
    manager.close()
    return counts


def api_import(url: Any, path: str, schema: Any) -> dict[str, int]:
    from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork
    from cardlink.database.transfer import DataImporter

    manager = DatabaseManager(DatabaseConfig(database_url=url))
    with UnitOfWork(manager) as uow, open(path, encoding="utf-8") as stream:
        result = DataImporter(uow).import_stream(stream, "json", "skip", False)
        uow.commit()
    manager.close()
    return {name: counts.get("created", 0) for name, counts in result.per_table.items()}


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
        import raw  # noqa: F401 - the module import is not timed

        target: Any = PlainURL(url)
    else:
        from cardlink.database import DatabaseConfig

        target = DatabaseConfig(database_url=url).url
    # Neither side's time includes importing the driver (psycopg takes a few tenths).
    drivers = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
    importlib.import_module(drivers.get(url.split(":")[0].split("+")[0], "sqlite3"))
    action = {
        "raw-export": raw_export,
        "raw-import": raw_import,
        "api-export": api_export,
        "api-import": api_import,
    }[mode]
    started = time.perf_counter()
    tables = action(target, path, schema)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": sum(tables.values()), "tables": tables}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
