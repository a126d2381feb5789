"""Export and import of the whole database (or some tables) as one JSON or YAML document.

JSON is written and read incrementally, a page of rows at a time, so memory stays
bounded whatever the size of the database; YAML is loaded whole on import and is
meant for small databases. See ``formats`` for the document layout and how values
are read back, ``encoding`` for how they are written.
"""

from .exporter import DataExporter
from .formats import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TABLE_NAMES,
    ConflictMode,
    ExportFormat,
    detect_format,
)
from .importer import DataImporter, ImportResult, announced_row_counts

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "TABLE_NAMES",
    "ConflictMode",
    "DataExporter",
    "DataImporter",
    "ExportFormat",
    "ImportResult",
    "announced_row_counts",
    "detect_format",
]
