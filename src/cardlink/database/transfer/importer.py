"""DataImporter: reads an export document back, parents first, inside the caller's transaction."""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from os import PathLike
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

from ..events import EventType
from ..exceptions import EncryptionError, ValidationError, translated_errors
from ..log_backfill import backfill_logs
from ..models import CommLog
from ..models.log import DECODED_FIELDS
from ..repositories.test_run import add_missing_runs
from ..safe_yaml import load_yaml
from ..sqlite_locking import lock_for_writing
from ..types import to_uuid
from .formats import (
    FORMAT_NAME,
    PRE_TRAILER_VERSION,
    READABLE_VERSIONS,
    TABLE_NAMES,
    TRAILER,
    ConflictMode,
    ExportFormat,
    check_psk_ciphertext,
    check_trailer,
    coerce_conflict_mode,
    coerce_format,
    detect_format,
    table_for,
    trailer_row_counts,
)
from .jsonstream import DocumentEvent, read_json_document
from .rows import TableWriter

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

COUNT_NAMES = ("created", "updated", "skipped", "errors")
_MISSING: Any = object()
#: A logs row without this field comes from before the decoded columns: they are filled.
_DECODED_MARK = "command_id"
logger = logging.getLogger(__name__)


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
    #: Rows per table the document's trailer announced (None for a pre-trailer document).
    expected: dict[str, int] | None = None
    #: What the import accepted but the caller should know (a pre-trailer document).
    warnings: list[str] = field(default_factory=list)

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
        if key not in ("tables", TRAILER):
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
    if TRAILER in document:
        yield ("trailer", "", document[TRAILER])


#: How much of a file's end :func:`announced_row_counts` reads to find the trailer.
_TRAILER_TAIL_BYTES = 64 << 10


def announced_row_counts(
    path: str | PathLike[str], format: ExportFormat | str | None = None
) -> dict[str, int] | None:
    """The rows per table a document file's trailer announces, read from its end.

    For a progress bar's totals before the import starts; None when the file has no
    readable trailer (a pre-trailer or damaged document: the import itself says which).
    The import checks the trailer against the rows it reads in any case.
    """
    chosen = coerce_format(format) if format is not None else detect_format(path)
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - _TRAILER_TAIL_BYTES))
        tail = handle.read().decode("utf-8", errors="replace")
    found: Any = None
    if chosen is ExportFormat.JSON:
        start = tail.rfind(json.dumps(TRAILER))
        if start >= 0:
            value = tail[tail.find(":", start) + 1 :].lstrip()
            with contextlib.suppress(ValueError):
                found = json.JSONDecoder().raw_decode(value)[0]
    else:
        start = tail.rfind(f"\n{TRAILER}:")
        if start >= 0:
            with contextlib.suppress(ValidationError):
                document = load_yaml(tail[start + 1 :], what="trailer")
                found = document.get(TRAILER) if isinstance(document, dict) else None
    return trailer_row_counts(found)


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
    if type(version) is not int or version not in READABLE_VERSIONS:
        readable = " and ".join(str(number) for number in READABLE_VERSIONS)
        raise ValidationError(
            f"import: unsupported format_version {repr(version)[:64]}; "
            f"this version reads {readable}"
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
        try:
            self._run(events, mode, result, progress, dry_run=bool(dry_run))
            if "tests" in result.per_table:
                add_missing_runs(session)  # results imported without their run get one
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

    @staticmethod
    def _check_complete(
        header: dict[str, Any], found_trailer: Any, read: dict[str, int], result: ImportResult
    ) -> None:
        """Refuse a document whose trailer is missing or disagrees with the rows read.

        Runs before the last tables are written and long before any commit: a document
        cut short (even at a line boundary, which YAML cannot tell) imports nothing.
        """
        if found_trailer is _MISSING:
            if header.get("format_version") == PRE_TRAILER_VERSION:
                warning = (
                    f"format_version {PRE_TRAILER_VERSION} document (from before the trailer): "
                    "imported without checking that it is complete"
                )
                logger.warning("import: %s", warning)
                result.warnings.append(warning)
                return
            raise ValidationError(
                f"import: the document has no {TRAILER!r} (its row counts); it was cut short "
                "or damaged, nothing was imported"
            )
        result.expected = check_trailer(found_trailer, read)

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
        found_trailer: Any = _MISSING
        read: dict[str, int] = {}  # rows read per table, to hold against the trailer
        keep_stored_psk: bool | None = None
        written: set[str] = set()  # tables written so far (not waiting)
        waiting: list[tuple[str, IO[str]]] = []
        writer: TableWriter | None = None
        spill: IO[str] | None = None
        index = 0
        undecoded: set[Any] = set()  # sessions whose logs came without the decoded columns

        writers: list[TableWriter] = []

        def new_writer(name: str) -> TableWriter:
            writers.append(
                TableWriter(
                    self._uow.session,
                    name,
                    mode=mode,
                    keep_stored_psk=bool(keep_stored_psk),
                    psk_check=self._psk_check(),
                    counts=result.table_counts(name),
                    batch_size=self.batch_size,
                    progress=progress,
                )
            )
            return writers[-1]

        def abandon_on_error(kind: Any, error: BaseException | None, trace: Any) -> None:
            if error is not None:  # a writer's COPY may still be ending (rows.TableWriter)
                for opened in writers:
                    opened.abandon()

        with ExitStack() as files:
            files.push(abandon_on_error)
            for kind, name, payload in events:
                if kind == "header":
                    header[name] = payload
                    continue
                if kind == "trailer":
                    found_trailer = payload
                    continue
                if keep_stored_psk is None:
                    keep_stored_psk = check_header(header)
                if kind == "table":
                    if writer is not None:
                        writer.finish(dry_run=dry_run)
                    name = _check_table_name(name)
                    result.table_counts(name)
                    read[name] = 0
                    writer, spill, index = None, None, 0
                    if parent_tables(name) & coming(header) - written:
                        spill = files.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8"))
                        waiting.append((name, spill))
                    else:
                        writer = new_writer(name)
                        written.add(name)
                elif kind == "row":
                    undecoded_log = name == "logs" and isinstance(payload, dict)
                    if undecoded_log and _DECODED_MARK not in payload:
                        undecoded.add(payload.get("session_id"))
                    if writer is not None:
                        writer.add(index, payload)
                    elif spill is not None:
                        spill.write(json.dumps(payload, default=_spill_value) + "\n")
                    index += 1
                    read[name] += 1
            if keep_stored_psk is None:
                check_header(header)
                raise ValidationError('import: the document has no "tables"')
            self._check_complete(header, found_trailer, read, result)
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
            if undecoded:
                self._fill_decoded(undecoded)

    def _fill_decoded(self, session_ids: set[Any]) -> None:
        """Decode the commands and link the responses of logs written without those columns."""
        keys = sorted({to_uuid(key) for key in session_ids if key is not None}, key=str)
        with translated_errors():
            connection = self._uow.session.connection()
            backfill_logs(connection, CommLog.__table__, DECODED_FIELDS, session_ids=keys)  # type: ignore[arg-type]


def coming(header: dict[str, Any]) -> set[str]:
    """The tables the header says the document holds (all of them, if it does not say)."""
    names = header.get("table_names")
    if isinstance(names, list) and all(isinstance(name, str) for name in names):
        return set(names)
    return set(TABLE_NAMES)


def parent_tables(name: str) -> set[str]:
    """The tables whose rows ``name``'s rows point at (itself left out: a response's command
    comes before it in the same table)."""
    return {key.column.table.name for key in table_for(name).foreign_keys} - {name}


def _spill_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot hold a {type(value).__name__} while waiting for parent tables")
