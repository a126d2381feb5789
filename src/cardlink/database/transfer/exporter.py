"""DataExporter: writes the database as one JSON or YAML document, a page of rows at a time."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import yaml
from sqlalchemy import Connection, Enum, String, Table, cast, inspect, literal, select, text
from sqlalchemy.dialects import mysql

from ..exceptions import ValidationError, translated_errors
from ..schema_version import VERSION_TABLE
from ..types import GUID, utcnow
from .encoding import RowEncoder, format_datetime
from .formats import (
    FORMAT_NAME,
    FORMAT_VERSION,
    PSK_COLUMN,
    TRAILER,
    ExportFormat,
    coerce_format,
    primary_key,
    resolve_tables,
    table_for,
    trailer,
)

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

#: Document rows joined into one ``write`` of the JSON export (bounded text, few calls).
ROWS_PER_WRITE = 64

#: ``progress(table, rows_done)`` after every page written.
Progress = Callable[[str, int], Any]


def schema_revision(connection: Connection) -> str | None:
    """The Alembic revision recorded in the database, or None.

    Read with plain SQL (so the CLI need not import Alembic) on the unit of work's
    own connection: a second connection would wait for SQLite's write lock, which the
    unit of work may hold.
    """
    with translated_errors():
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        heads = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        revisions = sorted(heads)
    return ", ".join(revisions) if revisions else None


def _sort_key(table: Table, dialect_name: str) -> Any:
    """The expression to page by, so every backend lists rows in the same order.

    Text keys compare byte-wise (not by the server's collation); MariaDB's native
    UUID type has its own order, so there the key is compared as its text.
    """
    key = primary_key(table)
    mysql_family = dialect_name in ("mysql", "mariadb")
    if isinstance(key.type, GUID):
        return cast(key, String(36)) if mysql_family else key
    if not isinstance(key.type, String) or isinstance(key.type, Enum):
        return key
    if dialect_name == "postgresql":
        return key.collate("C")
    if mysql_family:
        return cast(key, mysql.BINARY())
    return key  # SQLite compares text with BINARY already


class DataExporter:
    """Exports tables as a document the :class:`DataImporter` reads back on any backend.

    Example::

        with UnitOfWork(manager) as uow:
            data = DataExporter(uow).export_all(ExportFormat.JSON)
    """

    def __init__(self, uow: UnitOfWork, *, include_psk: bool = True, page_size: int = 1000) -> None:
        if page_size < 1:
            raise ValidationError(f"page_size must be at least 1, got {page_size!r}")
        self._uow = uow
        self.include_psk = include_psk
        self.page_size = page_size

    # -- the guide's API -------------------------------------------------------------

    def export_all(self, format: ExportFormat | str = ExportFormat.JSON) -> str:
        """Every table as one document (text)."""
        buffer = io.StringIO()
        self.write(buffer, format)
        return buffer.getvalue()

    def export_selective(
        self, tables: Iterable[str] | str, format: ExportFormat | str = ExportFormat.JSON
    ) -> str:
        """Only the named tables (see ``TABLE_NAMES``), e.g. ``["devices", "cards"]``."""
        buffer = io.StringIO()
        self.write(buffer, format, tables=tables)
        return buffer.getvalue()

    # -- streaming -------------------------------------------------------------------

    def write(
        self,
        stream: TextIO,
        format: ExportFormat | str = ExportFormat.JSON,
        *,
        tables: Iterable[str] | str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Write the document to ``stream`` page by page; returns the rows written per table."""
        chosen_format = coerce_format(format)
        names = resolve_tables(tables)
        self._uow.flush()
        header = self.header(names)
        if chosen_format is ExportFormat.JSON:
            return self._write_json(stream, header, names, progress)
        return self._write_yaml(stream, header, names, progress)

    def header(self, tables: Iterable[str] | str | None = None) -> dict[str, Any]:
        """The header: format, version, schema revision, export time, PSK policy, table names."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "schema_revision": schema_revision(self._uow.session.connection()),
            "exported_at": format_datetime(utcnow()),
            "psk_keys": "encrypted" if self.include_psk else "omitted",
            "table_names": resolve_tables(tables),
        }

    def iter_rows(self, name: str) -> Iterator[list[dict[str, Any]]]:
        """The table's rows as document rows, one page at a time, in key order."""
        (name,) = resolve_tables([name])
        table = table_for(name)
        skip = (
            frozenset({PSK_COLUMN[1]})
            if name == PSK_COLUMN[0] and not self.include_psk
            else frozenset()
        )
        session = self._uow.session
        dialect = session.get_bind().dialect
        encode = RowEncoder(table, dialect, skip=skip)
        sort_key = _sort_key(table, dialect.name)
        key = primary_key(table)
        connection = session.connection()
        if sort_key is not key and isinstance(key.type, GUID):
            # MariaDB's native UUID: no index holds its text order, so a page query would
            # sort the whole table each time. Sort once and stream the rows instead.
            statement = select(*encode.columns).order_by(sort_key)
            yield from self._streamed_pages(connection, statement, encode)
            return
        if sort_key is key:  # read as it is or in its stored form: either binds back as the key
            columns, last_position = encode.columns, encode.names.index(key.name)
        else:
            columns, last_position = [*encode.columns, sort_key.label("_sort_key")], -1
        last: Any = None
        while True:
            statement = select(*columns).order_by(sort_key).limit(self.page_size)
            if last is not None:
                statement = statement.where(sort_key > literal(last, sort_key.type))
            with translated_errors():
                rows = connection.execute(statement).all()
            if not rows:
                return
            page = encode.page(rows)
            more, last = len(rows) == self.page_size, rows[-1][last_position]
            del rows  # the driver's rows are not needed while the page is written
            yield page
            if not more:
                return

    def _streamed_pages(
        self, connection: Connection, statement: Any, encode: RowEncoder
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of one statement read through a server-side cursor, a page at a time."""
        streamed = statement.execution_options(stream_results=True, yield_per=self.page_size)
        with translated_errors():
            result = connection.execute(streamed)
        try:
            while True:
                with translated_errors():
                    rows = result.fetchmany(self.page_size)
                if not rows:
                    return
                yield encode.page(rows)
        finally:
            result.close()  # also when the reader stops early: the connection is needed again

    def _write_json(
        self, stream: TextIO, header: dict[str, Any], names: list[str], progress: Progress | None
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        dumps = json.dumps
        stream.write("{\n")
        for key, value in header.items():
            stream.write(f"  {json.dumps(key)}: {json.dumps(value)},\n")
        stream.write('  "tables": {')
        for position, name in enumerate(names):
            stream.write(("," if position else "") + f"\n    {json.dumps(name)}: [")
            done = 0
            for page in self.iter_rows(name):
                # A few rows per write: one call per row cost more than encoding it.
                for start in range(0, len(page), ROWS_PER_WRITE):
                    rows = page[start : start + ROWS_PER_WRITE]
                    stream.write(("," if done else "") + "\n      ")
                    stream.write(",\n      ".join([dumps(row) for row in rows]))
                    done += len(rows)
                if progress is not None:
                    progress(name, done)
            stream.write("\n    ]" if done else "]")
            counts[name] = done
        stream.write(f"\n  }},\n  {json.dumps(TRAILER)}: {json.dumps(trailer(counts))}\n}}\n")
        return counts

    def _write_yaml(
        self, stream: TextIO, header: dict[str, Any], names: list[str], progress: Progress | None
    ) -> dict[str, int]:
        counts: dict[str, int] = {}
        stream.write(yaml.safe_dump(header, sort_keys=False))
        stream.write("tables:\n")
        for name in names:
            done = 0
            stream.write(f"  {name}:")
            for page in self.iter_rows(name):
                for row in page:
                    text = yaml.safe_dump([row], sort_keys=False, default_flow_style=False)
                    stream.write("\n" + "\n".join("  " + line for line in text.splitlines()))
                    done += 1
                if progress is not None:
                    progress(name, done)
            stream.write("\n" if done else " []\n")
            counts[name] = done
        stream.write(yaml.safe_dump({TRAILER: trailer(counts)}, sort_keys=False))
        return counts
