"""Backup commands: ``export`` and ``import``, thin over DataExporter / DataImporter."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from ..transfer import TABLE_NAMES, ConflictMode, DataExporter, DataImporter, ExportFormat
from ..transfer import detect_format as detect_file_format
from ..unit_of_work import UnitOfWork
from .app import CliState, cli, fail
from .console import RowProgress, stderr_is_terminal
from .queries import row_counts

FORMATS = click.Choice([member.value for member in ExportFormat], case_sensitive=False)
COUNTS = ("created", "updated", "skipped")
CONFLICTS = click.Choice([member.value for member in ConflictMode], case_sensitive=False)


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
@click.option("--output", "-o", metavar="FILE", help="Write to FILE instead of stdout.")
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
    written to a temporary name (mode 600) and renamed when complete.

    \b
    Example:
      cardlink-db export --output backup.json
      cardlink-db export --format yaml --tables devices,cards
    """
    names = parse_tables(tables)
    if format_name is not None:
        chosen = ExportFormat(format_name.lower())
    elif output not in (None, "-"):
        chosen = detect_file_format(output)
    else:
        chosen = ExportFormat.JSON
    to_stdout = output in (None, "-")
    with state.manager() as manager, UnitOfWork(manager) as uow:
        totals = None
        show_progress = not (to_stdout and sys.stdout.isatty())
        if show_progress and stderr_is_terminal():
            counts = row_counts(uow.session.connection())
            wanted = names or TABLE_NAMES
            totals = {name: counts[name] or 0 for name in wanted}
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


def _write_atomically(
    path: Path,
    exporter: DataExporter,
    chosen: ExportFormat,
    names: list[str] | None,
    progress: RowProgress,
) -> dict[str, int]:
    """Write next to ``path`` and rename, so a failed export never leaves half a backup."""
    folder = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            written = exporter.write(stream, chosen, tables=names, progress=progress)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return written


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
    help="For rows whose key exists: skip them, overwrite them, or merge non-empty fields.",
)
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.pass_obj
def import_(
    state: CliState, file: str, format_name: str | None, conflict: str, dry_run: bool
) -> None:
    """Import a JSON or YAML export in one transaction: all rows or none.

    FILE may be - to read standard input (JSON unless --format says otherwise).

    \b
    Example:
      cardlink-db import backup.json
      cardlink-db import --format yaml --conflict merge backup.yaml
      cardlink-db import --dry-run backup.json
    """
    mode = ConflictMode(conflict.lower())
    with _open_input(file) as stream:
        if format_name is not None:
            chosen = ExportFormat(format_name.lower())
        elif file == "-":
            chosen = ExportFormat.JSON
        else:
            chosen = detect_file_format(file)
        with (
            state.manager() as manager,
            UnitOfWork(manager) as uow,
            RowProgress("Importing", totals=None, enabled=True) as progress,
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
def _open_input(file: str) -> Iterator[BinaryIO]:
    """The export to read, as bytes (the importer decodes it incrementally)."""
    if file == "-":
        yield sys.stdin.buffer
        return
    if os.path.isdir(file):
        fail(f"{file} is a folder, not an export file")
    with open(file, "rb") as stream:
        yield stream
