"""CardLink database layer: every name the user guide imports lives here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .apdu import DecodedApdu, decode_apdu, describe_status_word
from .config import DatabaseConfig
from .events import DatabaseEvent, EventEmitter, EventType, get_emitter
from .exceptions import (
    ConfigurationError,
    ConnectionError,
    DatabaseError,
    DatabaseNotFoundError,
    EncryptionError,
    IntegrityError,
    MigrationError,
    NotFoundError,
    RetryableError,
    SchemaOutOfDateError,
    ValidationError,
)
from .keystore import PSKKeyStore
from .maintenance import DatabaseStats, PurgeResult
from .manager import DatabaseManager
from .models import (
    Base,
    CardProfile,
    CardType,
    CommDirection,
    CommLog,
    Device,
    DeviceType,
    HttpExchange,
    OTASession,
    SessionStatus,
    Setting,
    TestResult,
    TestRun,
    TestStatus,
)
from .repositories import (
    DEFAULT_SETTINGS,
    BaseRepository,
    CardRepository,
    DeviceRepository,
    ExchangeRepository,
    LogRepository,
    Page,
    SessionRepository,
    SettingRepository,
    TestRepository,
)
from .repositories.card_keys import rotate_psk_keys
from .repositories.log_queries import CommandStats
from .scp81 import CommandSessions, HttpDirection, HttpHead, ScriptStatus, parse_http_head
from .timeline import TimelineEntry
from .transfer import (
    TABLE_NAMES,
    ConflictMode,
    DataExporter,
    DataImporter,
    ExportFormat,
    ImportResult,
    detect_format,
)
from .unit_of_work import UnitOfWork

if TYPE_CHECKING:
    from .migrate import downgrade, get_current_revision, get_pending_revisions, run_migrations

#: Loaded on first use: ``migrate`` imports Alembic, a sixth of the command line's start-up.
_MIGRATION_NAMES = frozenset(
    {"downgrade", "get_current_revision", "get_pending_revisions", "run_migrations"}
)


def __getattr__(name: str) -> Any:
    """The migration API, imported when first asked for (``from cardlink.database import ...``)."""
    if name in _MIGRATION_NAMES:
        from . import migrate  # Alembic: a sixth of the CLI's start-up, loaded on first use

        value = getattr(migrate, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MIGRATION_NAMES})


__all__ = [
    "DEFAULT_SETTINGS",
    "TABLE_NAMES",
    "Base",
    "BaseRepository",
    "CardProfile",
    "CardRepository",
    "CardType",
    "CommDirection",
    "CommLog",
    "CommandSessions",
    "CommandStats",
    "ConfigurationError",
    "ConflictMode",
    "ConnectionError",
    "DataExporter",
    "DataImporter",
    "DatabaseConfig",
    "DatabaseError",
    "DatabaseEvent",
    "DatabaseManager",
    "DatabaseNotFoundError",
    "DatabaseStats",
    "DecodedApdu",
    "Device",
    "DeviceRepository",
    "DeviceType",
    "EncryptionError",
    "EventEmitter",
    "EventType",
    "ExchangeRepository",
    "ExportFormat",
    "HttpDirection",
    "HttpExchange",
    "HttpHead",
    "ImportResult",
    "IntegrityError",
    "LogRepository",
    "MigrationError",
    "NotFoundError",
    "OTASession",
    "PSKKeyStore",
    "Page",
    "PurgeResult",
    "RetryableError",
    "SchemaOutOfDateError",
    "ScriptStatus",
    "SessionRepository",
    "SessionStatus",
    "Setting",
    "SettingRepository",
    "TestRepository",
    "TestResult",
    "TestRun",
    "TestStatus",
    "TimelineEntry",
    "UnitOfWork",
    "ValidationError",
    "decode_apdu",
    "describe_status_word",
    "detect_format",
    "downgrade",
    "get_current_revision",
    "get_emitter",
    "get_pending_revisions",
    "parse_http_head",
    "rotate_psk_keys",
    "run_migrations",
]
