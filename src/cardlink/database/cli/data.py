"""Backup commands: ``export`` and ``import``, thin over DataExporter / DataImporter.

A file name ending in ``.gz`` (``backup.json.gz``) is written and read through gzip,
streaming, as Django's dumpdata/loaddata do.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

import click

from ..maintenance import table_counts
from ..transfer import TABLE_NAMES, ConflictMode, DataExporter, DataImporter, ExportFormat
from ..transfer import detect_format as detect_file_format
from ..transfer.formats import is_gzip_name
from ..unit_of_work import UnitOfWork
from . import console
from .app import CliState, cli, fail
from .console import ByteProgress, RowProgress

FORMATS = click.Choice([member.value for member in ExportFormat], case_sensitive=False)
COUNTS = ("created", "updated", "skipped")
CONFLICTS = click.Choice([member.value for member in ConflictMode], case_sensitive=False)
#: How a YAML export begins when it was saved under a .json name.
_YAML_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:---|%YAML|[A-Za-z_][\w.-]*\s*:)")


def parse_tables(value: str | None) -> list[str] | None:
    """``a,b`` -> ["a", "b"] in the order given; an unknown name stops the command."""
    if value is None:
        return None
    names = [part.strip().lower() for part in value.split(",") if part.strip()]
    unknown = [name for name in names if name not in TABLE_NAMES]
    if unknown or not names:
        fail(
            f"unknown table {', '.join(unknown) or repr(value)}; "
            f"choose from {', '.join(TABLE_NAMES)}",
            exit_code=2,
        )
    return list(dict.fromkeys(names))


@cli.command()
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout (.gz: gzip).")
@click.option(
    "--format", "-f", "format_name", type=FORMATS, help="json or yaml (default: from FILE or json)."
)
@click.option("--tables", "-t", metavar="A,B", help="Only these tables (comma-separated).")
@click.pass_obj
def export(
    state: CliState, output: str | None, format_name: str | None, tables: str | None
) -> None:
    """Export the database (or some tables) as one JSON or YAML document.

    PSK keys are exported as their Fernet ciphertext, never in clear; the file is
    written to a temporary name (mode 600) and renamed when complete. A FILE
    ending in .gz is gzip-compressed.

    \b
    Example:
      cardlink-db export --output backup.json
      cardlink-db export --output backup.json.gz
      cardlink-db export --format yaml --tables devices,cards
    """
    names = parse_tables(tables)
    to_stdout = output in (None, "-")
    if format_name is not None:
        chosen = ExportFormat(format_name.lower())
    elif not to_stdout:
        assert output is not None
        chosen = detect_file_format(output)
    else:
        chosen = ExportFormat.JSON
    if not to_stdout:
        assert output is not None
        _check_folder(Path(output))
    with state.manager(tables=True) as manager, UnitOfWork(manager) as uow:
        totals = None
        show_progress = not (to_stdout and sys.stdout.isatty())
        if show_progress and console.stderr_is_terminal():
            counts = table_counts(manager)
            totals = {name: counts[name] or 0 for name in names or TABLE_NAMES}
        with RowProgress("Exporting", totals=totals, enabled=show_progress) as progress:
            exporter = DataExporter(uow)
            if to_stdout:
                written = exporter.write(sys.stdout, chosen, tables=names, progress=progress)
            else:
                assert output is not None
                written = _write_atomically(Path(output), exporter, chosen, names, progress)
    if not to_stdout:
        summary = ", ".join(f"{name} {count:,}" for name, count in written.items())
        click.echo(f"Exported {sum(written.values()):,} rows ({summary}) to {output}", err=True)


def _check_folder(path: Path) -> None:
    """Stop, naming the user's own path, when its folder is missing or not writable."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        fail(f"cannot write {path}: it is a folder (hint: give a file name)")
    if not folder.is_dir():
        fail(f"cannot write {path}: folder {folder} does not exist (hint: create it first)")
    if not os.access(folder, os.W_OK):
        fail(f"cannot write {path}: folder {folder} is not writable")


def _write_atomically(
    path: Path,
    exporter: DataExporter,
    chosen: ExportFormat,
    names: list[str] | None,
    progress: RowProgress,
) -> dict[str, int]:
    """Write next to ``path`` and rename, so a failed export never leaves half a backup."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as error:
        fail(f"cannot write {path}: {error.strerror or error}")
    try:
        with (
            os.fdopen(descriptor, "wb") as raw,
            _text_writer(raw, compressed=is_gzip_name(path), name=path.name) as stream,
        ):
            written = exporter.write(stream, chosen, tables=names, progress=progress)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return written


@contextlib.contextmanager
def _text_writer(raw: BinaryIO, *, compressed: bool, name: str) -> Iterator[TextIO]:
    """UTF-8 text onto ``raw``, through gzip when the file name asks for it."""
    if not compressed:
        with io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as text:
            yield text
        return
    inner = name.removesuffix(".gz")
    with (
        gzip.GzipFile(filename=inner, mode="wb", fileobj=raw) as packed,
        io.TextIOWrapper(packed, encoding="utf-8", newline="\n") as text,
    ):
        yield text


@cli.command("import")
@click.argument("file", metavar="FILE")
@click.option(
    "--format", "-f", "format_name", type=FORMATS, help="json or yaml (default: FILE's extension)."
)
@click.option(
    "--conflict",
    type=CONFLICTS,
    default=ConflictMode.SKIP.value,
    show_default=True,
    help=(
        "For rows whose key exists: skip them, overwrite them (absent fields take their "
        "default), or merge (update only the fields the file has; a null there is written)."
    ),
)
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.pass_obj
def import_(
    state: CliState, file: str, format_name: str | None, conflict: str, dry_run: bool
) -> None:
    """Import a JSON or YAML export in one transaction: all rows or none.

    FILE may be - to read standard input (JSON unless --format says otherwise).
    A FILE ending in .gz (or any gzip data) is decompressed while it is read.

    \b
    Example:
      cardlink-db import backup.json
      cardlink-db import backup.json.gz
      cardlink-db import --format yaml --conflict merge backup.yaml
      cardlink-db import --dry-run backup.json
    """
    mode = ConflictMode(conflict.lower())
    with _open_input(file) as (stream, raw, size):
        if format_name is not None:
            chosen = ExportFormat(format_name.lower())
        elif file == "-":
            chosen = ExportFormat.JSON
        else:
            chosen = detect_file_format(file)
        if chosen is ExportFormat.JSON and _looks_like_yaml(stream):
            fail(f"{file}: this looks like YAML; use --format yaml")
        with (
            state.manager(tables=True) as manager,
            UnitOfWork(manager) as uow,
            ByteProgress("Importing", source=raw, total_bytes=size) as progress,
        ):
            result = DataImporter(uow).import_stream(
                stream, chosen, conflict_mode=mode, dry_run=dry_run, progress=progress
            )
            if not dry_run:
                uow.commit()
    prefix = "Dry run, nothing written: would import" if dry_run else "Imported"
    click.echo(
        f"{prefix} {file}: {result.created:,} created, {result.updated:,} updated, "
        f"{result.skipped:,} skipped, {result.errors:,} errors"
    )
    for name, counts in result.per_table.items():
        created, updated, skipped = (counts.get(key, 0) for key in COUNTS)
        click.echo(f"  {name}: {created:,} created, {updated:,} updated, {skipped:,} skipped")


@contextlib.contextmanager
def _open_input(file: str) -> Iterator[tuple[BinaryIO, BinaryIO | None, int | None]]:
    """The export to read as bytes (decompressed), the file under it, and its size.

    The importer decodes the bytes incrementally; progress reads the position in
    the file under it, so a total and an ETA are known even through gzip.
    """
    if file == "-":
        yield sys.stdin.buffer, None, None
        return
    if os.path.isdir(file):
        fail(f"{file} is a folder, not an export file")
    with open(file, "rb") as raw:
        size = os.fstat(raw.fileno()).st_size
        if raw.peek(2)[:2] == b"\x1f\x8b" or is_gzip_name(file):
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                yield unpacked, raw, size  # type: ignore[misc]
        else:
            yield raw, raw, size


def _looks_like_yaml(stream: BinaryIO) -> bool:
    """True when a stream meant to be JSON starts like YAML (a seekable file only)."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return False
    try:
        start = peek(256)[:256]
    except (OSError, EOFError, gzip.BadGzipFile):
        return False
    return bool(_YAML_START.match(start))
