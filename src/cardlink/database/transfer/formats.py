"""The export document: its formats, tables, and how each column's value is read back.

Values are typed by the schema, not by tags in the document: a UUID is its
canonical text, a timestamp ISO 8601 in UTC with microseconds, an enum its stored
value, a JSON column its JSON (object keys sorted, so every backend writes the
same text), numbers and booleans as JSON numbers and booleans.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from os import PathLike
from pathlib import PurePath
from typing import Any

from sqlalchemy import Column, Table

from ..codec import TABLE_NAMES, FieldError
from ..exceptions import ValidationError
from ..models import Base
from ..models.base import coerce_enum
from ..types import LabelledEnum

#: Written as ``format``; a document without it is not a CardLink export.
FORMAT_NAME = "cardlink-database-export"
#: Bumped when the document layout changes; version 2 added the trailer.
FORMAT_VERSION = 2
#: Documents written before the trailer existed: read, with a warning, without the check.
PRE_TRAILER_VERSION = 1
#: The key of the trailer, the document's last member.
TRAILER = "trailer"
#: The versions the importer reads.
READABLE_VERSIONS = (PRE_TRAILER_VERSION, FORMAT_VERSION)

#: The one secret column: Fernet ciphertext of the PSK key, left out on request.
PSK_COLUMN = ("cards", "psk_key_encrypted")


class ExportFormat(LabelledEnum):
    """The document formats: JSON (any size, streamed) and YAML (small databases)."""

    JSON = "json"
    YAML = "yaml"


class ConflictMode(LabelledEnum):
    """What an import does with a row whose key already exists."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    MERGE = "merge"


_EXTENSIONS = {".json": ExportFormat.JSON, ".yaml": ExportFormat.YAML, ".yml": ExportFormat.YAML}


#: A file name ending in this is gzip-compressed: ``backup.json.gz``.
GZIP_SUFFIX = ".gz"


def is_gzip_name(path: str | PathLike[str]) -> bool:
    """True for a file name ending in ``.gz`` (any case)."""
    return PurePath(path).suffix.lower() == GZIP_SUFFIX


def detect_format(path: str | PathLike[str]) -> ExportFormat:
    """The format a file name implies: ``.json``, ``.yaml`` or ``.yml``, each maybe ``.gz``."""
    name = PurePath(path)
    if is_gzip_name(name):
        name = name.with_suffix("")
    suffix = name.suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise ValidationError(
            f"cannot tell the format of {str(path)!r} from its extension; "
            "use .json, .yaml or .yml (each may end in .gz), or give the format explicitly"
        ) from None


def coerce_format(value: ExportFormat | str) -> ExportFormat:
    """The ``ExportFormat`` for a member or its name/value in any case."""
    return coerce_enum(ExportFormat, value, "format")  # type: ignore[no-any-return]


def coerce_conflict_mode(value: ConflictMode | str) -> ConflictMode:
    """The ``ConflictMode`` for a member or its name/value in any case."""
    return coerce_enum(ConflictMode, value, "conflict_mode")  # type: ignore[no-any-return]


def table_for(name: str) -> Table:
    """The ``Table`` of an exported table name."""
    return Base.metadata.tables[name]  # type: ignore[return-value]


def resolve_tables(tables: Iterable[str] | str | None) -> list[str]:
    """Validated table names in export order; ``None`` means all; text may list several."""
    if tables is None:
        return list(TABLE_NAMES)
    if isinstance(tables, str):
        tables = [part for part in (piece.strip() for piece in tables.split(",")) if part]
    wanted = []
    for name in tables:
        if not isinstance(name, str) or name.strip().lower() not in TABLE_NAMES:
            raise ValidationError(f"unknown table {name!r}; valid tables: {', '.join(TABLE_NAMES)}")
        wanted.append(name.strip().lower())
    if not wanted:
        raise ValidationError(f"no table selected; valid tables: {', '.join(TABLE_NAMES)}")
    return [name for name in TABLE_NAMES if name in wanted]


def trailer(row_counts: dict[str, int]) -> dict[str, Any]:
    """The document's last member: the rows written per table, so a cut-short copy shows."""
    return {"row_counts": dict(row_counts)}


def trailer_row_counts(found: Any) -> dict[str, int] | None:
    """The row counts of a trailer value, or None if it is not shaped as one."""
    counts = found.get("row_counts") if isinstance(found, dict) else None
    if not isinstance(counts, dict) or not all(
        isinstance(count, int) and not isinstance(count, bool) for count in counts.values()
    ):
        return None
    return dict(counts)


def check_trailer(found: Any, read: dict[str, int]) -> dict[str, int]:
    """The trailer's row counts; refused if it is not one or they differ from the rows ``read``."""
    counts = trailer_row_counts(found)
    if counts is None:
        raise ValidationError(
            'import: the trailer must be {"row_counts": {table: rows}}; '
            "the document is damaged, nothing was imported"
        )
    for name in sorted(set(counts) | set(read), key=str):
        expected, got = counts.get(name), read.get(name)
        if expected != got:
            said = "no rows" if expected is None else f"{expected} row(s)"
            raise ValidationError(
                f"import: the trailer says {str(name)[:64]!r} has {said}, the document holds "
                f"{got or 0}; it was cut short or damaged, nothing was imported"
            )
    return counts


def primary_key(table: Table) -> Column[Any]:
    """The single-column primary key every CardLink table has."""
    (column,) = table.primary_key.columns
    return column


# A document value becomes a checked value through ``codec.document_decoder``.


def check_psk_ciphertext(value: str, where: str) -> None:
    """Refuse anything but a Fernet token, so a plaintext key can never be imported as one."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raw = b""
    if len(raw) < 57 or raw[0] != 0x80:
        raise ValidationError(f"{where}: not a Fernet token (PSK keys are imported encrypted only)")


__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PSK_COLUMN",
    "TABLE_NAMES",
    "ConflictMode",
    "ExportFormat",
    "FieldError",
    "check_psk_ciphertext",
    "coerce_conflict_mode",
    "coerce_format",
    "detect_format",
    "primary_key",
    "resolve_tables",
    "table_for",
]
