"""DataImporter: reads an export document back, parents first, inside the caller's transaction."""

from __future__ import annotations

import codecs
import io
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

from sqlalchemy import text

from ..events import EventType
from ..exceptions import EncryptionError, ValidationError, translated_errors
from ..safe_yaml import load_yaml
from ..sqlite_locking import lock_for_writing
from .formats import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TABLE_NAMES,
    ConflictMode,
    ExportFormat,
    check_psk_ciphertext,
    coerce_conflict_mode,
    coerce_format,
    table_for,
)
from .jsonstream import DocumentEvent, read_json_document
from .rows import TableWriter

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

COUNT_NAMES = ("created", "updated", "skipped", "errors")


@dataclass
class ImportResult:
    """What an import did (or, with ``dry_run``, would do), in total and per table.

    ``errors`` is always 0 in a returned result: a bad row aborts the whole import
    with a ``ValidationError`` and leaves the database as it was.
    """

    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: int = 0
    per_table: dict[str, dict[str, int]] = field(default_factory=dict)
    dry_run: bool = False

    @property
    def total(self) -> int:
        """Rows read from the document."""
        return self.created + self.updated + self.skipped + self.errors

    def table_counts(self, name: str) -> dict[str, int]:
        return self.per_table.setdefault(name, dict.fromkeys(COUNT_NAMES, 0))

    def _sum(self) -> None:
        for name in COUNT_NAMES:
            setattr(self, name, sum(counts[name] for counts in self.per_table.values()))


class _TextReader:
    """``read(n)`` as text from a text or binary stream (UTF-8, an optional BOM skipped)."""

    def __init__(self, stream: TextIO | BinaryIO) -> None:
        self._stream = stream
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()

    def read(self, size: int = -1) -> str:
        data = self._stream.read(size)
        if isinstance(data, str):
            return data
        try:
            return self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise ValidationError("import: the document is not valid UTF-8 text") from None


def read_yaml_document(stream: Any) -> Iterator[DocumentEvent]:
    """The events of a YAML document (loaded whole: YAML is for small databases), parents first."""
    document = load_yaml(stream, what="import")
    if document is None:
        raise ValidationError("import: the document is empty")
    if not isinstance(document, dict):
        raise ValidationError(
            "import: the document must be a mapping (format_version, tables, ...)"
        )
    for key, value in document.items():
        if key != "tables":
            yield ("header", str(key), value)
    if "tables" not in document:
        return
    tables = document["tables"]
    if not isinstance(tables, dict):
        raise ValidationError('import: "tables" must be a mapping of table name to rows')
    yield ("tables", "", None)
    for name in tables:
        _check_table_name(name)
    for name in TABLE_NAMES:
        if name not in tables:
            continue
        rows = tables[name]
        if rows is None:
            rows = []
        if not isinstance(rows, list):
            raise ValidationError(f'import: "tables.{name}" must be a list of rows')
        yield ("table", name, None)
        for row in rows:
            yield ("row", name, row)


def _check_table_name(name: Any) -> str:
    if name not in TABLE_NAMES:
        raise ValidationError(
            f"import: unknown table {name!r}; valid tables: {', '.join(TABLE_NAMES)}"
        )
    return str(name)


def check_header(header: dict[str, Any]) -> bool:
    """Refuse a document this version cannot read; returns whether PSK keys were left out."""
    name = header.get("format", FORMAT_NAME)
    if name != FORMAT_NAME:
        raise ValidationError(f"import: not a CardLink export (format is {str(name)[:64]!r})")
    if "format_version" not in header:
        raise ValidationError("import: not a CardLink export: format_version is missing")
    version = header["format_version"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ValidationError(
            f"import: unsupported format_version {version!r}; this version reads {FORMAT_VERSION}"
        )
    psk_keys = header.get("psk_keys", "encrypted")
    if psk_keys not in ("encrypted", "omitted"):
        raise ValidationError(
            f"import: psk_keys must be 'encrypted' or 'omitted', got {psk_keys!r}"
        )
    return psk_keys == "omitted"


class DataImporter:
    """Imports an export document into the unit of work's transaction; the caller commits.

    Example::

        with UnitOfWork(manager) as uow:
            result = DataImporter(uow).import_data(data, conflict_mode=ConflictMode.MERGE)
            uow.commit()
    """

    def __init__(self, uow: UnitOfWork, *, batch_size: int = 5000) -> None:
        if batch_size < 1:
            raise ValidationError(f"batch_size must be at least 1, got {batch_size!r}")
        self._uow = uow
        self.batch_size = batch_size

    def import_data(
        self,
        data: str | bytes,
        format: ExportFormat | str = ExportFormat.JSON,
        conflict_mode: ConflictMode | str = ConflictMode.SKIP,
        dry_run: bool = False,
    ) -> ImportResult:
        """Import a whole document held in memory (text or UTF-8 bytes)."""
        if isinstance(data, bytes | bytearray):
            stream: TextIO | BinaryIO = io.BytesIO(bytes(data))
        elif isinstance(data, str):
            stream = io.StringIO(data)
        else:
            raise ValidationError(f"import: data must be text or bytes, got {type(data).__name__}")
        return self.import_stream(stream, format, conflict_mode, dry_run)

    def import_stream(
        self,
        stream: TextIO | BinaryIO,
        format: ExportFormat | str = ExportFormat.JSON,
        conflict_mode: ConflictMode | str = ConflictMode.SKIP,
        dry_run: bool = False,
        progress: Callable[[str, int], Any] | None = None,
    ) -> ImportResult:
        """Import from a file-like object, reading JSON incrementally; never commits.

        Everything happens inside a SAVEPOINT: a bad row rolls back every row this
        import wrote and raises ``ValidationError``; ``dry_run`` rolls back even on
        success, after counting exactly what a real import would do.
        """
        chosen_format = coerce_format(format)
        mode = coerce_conflict_mode(conflict_mode)
        reader = _TextReader(stream)
        if chosen_format is ExportFormat.JSON:
            events = read_json_document(reader)  # type: ignore[arg-type]
        else:
            events = read_yaml_document(reader)
        result = ImportResult(dry_run=bool(dry_run))
        self._uow.flush()
        session = self._uow.session
        lock_for_writing(session)  # a dry run writes too, then rolls back
        with translated_errors():
            savepoint = session.begin_nested()
            if session.get_bind().dialect.name == "postgresql":
                # The key lookups run as prepared statements; a generic plan made while the
                # table was small seq-scans it for every batch's keys (an import of
                # 100,000 sessions took minutes). Plan each execution instead.
                session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        try:
            self._run(events, mode, result, progress, dry_run=bool(dry_run))
        except BaseException:
            with translated_errors():
                savepoint.rollback()
                session.expire_all()
            raise
        with translated_errors():
            if dry_run:
                savepoint.rollback()
            else:
                savepoint.commit()
            session.expire_all()
        result._sum()
        if not dry_run:
            self._uow.record(
                EventType.BATCH_COMPLETED,
                "import",
                None,
                {
                    "operation": "import",
                    "conflict_mode": mode.value,
                    "created": result.created,
                    "updated": result.updated,
                    "skipped": result.skipped,
                    "per_table": result.per_table,
                },
            )
        return result

    def _psk_check(self) -> Callable[[str, str], None]:
        """Token shape always; with a key configured, also that the key opens the token."""
        manager = self._uow.manager
        if not manager.config.encryption_key:
            return check_psk_ciphertext
        cipher = manager.cipher

        def check(token: str, where: str) -> None:
            check_psk_ciphertext(token, where)
            try:
                cipher.decrypt(token)
            except EncryptionError:
                raise ValidationError(
                    f"{where}: the configured CARDLINK_ENCRYPTION_KEY cannot decrypt this key "
                    "(exported under another key?)"
                ) from None

        return check

    def _run(
        self,
        events: Iterator[DocumentEvent],
        mode: ConflictMode,
        result: ImportResult,
        progress: Callable[[str, int], Any] | None,
        *,
        dry_run: bool,
    ) -> None:
        """Write each table as it streams by; a table ahead of its parents waits on disk."""
        header: dict[str, Any] = {}
        keep_stored_psk: bool | None = None
        written: set[str] = set()  # tables written so far (not waiting)
        waiting: list[tuple[str, IO[str]]] = []
        writer: TableWriter | None = None
        spill: IO[str] | None = None
        index = 0

        def new_writer(name: str) -> TableWriter:
            return TableWriter(
                self._uow.session,
                name,
                mode=mode,
                keep_stored_psk=bool(keep_stored_psk),
                psk_check=self._psk_check(),
                counts=result.table_counts(name),
                batch_size=self.batch_size,
                progress=progress,
            )

        with ExitStack() as files:
            for kind, name, payload in events:
                if kind == "header":
                    header[name] = payload
                    continue
                if keep_stored_psk is None:
                    keep_stored_psk = check_header(header)
                if kind == "table":
                    if writer is not None:
                        writer.finish(dry_run=dry_run)
                    name = _check_table_name(name)
                    result.table_counts(name)
                    writer, spill, index = None, None, 0
                    if parent_tables(name) & coming(header) - written:
                        spill = files.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))
                        waiting.append((name, spill))
                    else:
                        writer = new_writer(name)
                        written.add(name)
                elif kind == "row":
                    if writer is not None:
                        writer.add(index, payload)
                    elif spill is not None:
                        spill.write(json.dumps(payload, default=_spill_value) + "\n")
                    index += 1
            if keep_stored_psk is None:
                check_header(header)
                raise ValidationError('import: the document has no "tables"')
            if writer is not None:
                writer.finish(dry_run=dry_run)
            for name in TABLE_NAMES:
                for spilled_name, spilled in waiting:
                    if spilled_name != name:
                        continue
                    spilled.seek(0)
                    writer = new_writer(name)
                    for row_index, line in enumerate(spilled):
                        writer.add(row_index, json.loads(line))
                    writer.finish(dry_run=dry_run)


def coming(header: dict[str, Any]) -> set[str]:
    """The tables the header says the document holds (all of them, if it does not say)."""
    names = header.get("table_names")
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return set(names)
    return set(TABLE_NAMES)


def parent_tables(name: str) -> set[str]:
    """The tables whose rows ``name``'s rows point at."""
    return {key.column.table.name for key in table_for(name).foreign_keys}


def _spill_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot hold a {type(value).__name__} while waiting for parent tables")
