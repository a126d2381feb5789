"""Queries for settings: typed values over a table of built-in defaults, YAML in and out."""

from __future__ import annotations

from typing import Any, NamedTuple

import yaml
from sqlalchemy import Table, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..codec import codec_for
from ..events import EventType
from ..exceptions import ValidationError, translated_errors
from ..models import Setting
from ..models.base import check_value
from ..safe_yaml import load_yaml
from ..sqlite_locking import lock_for_writing
from ..types import to_plain, utcnow
from .base import BaseRepository


class DefaultSetting(NamedTuple):
    value: Any
    description: str
    category: str


#: Built-in defaults; a stored setting of the same key overrides its value.
DEFAULT_SETTINGS: dict[str, DefaultSetting] = {
    "log_retention_days": DefaultSetting(90, "Days to retain APDU logs", "retention"),
    "session_retention_days": DefaultSetting(365, "Days to retain OTA sessions", "retention"),
    "test_retention_days": DefaultSetting(365, "Days to retain test results", "retention"),
    "max_sessions_per_device": DefaultSetting(
        10, "Maximum concurrent sessions per device", "limits"
    ),
    "session_timeout_seconds": DefaultSetting(
        300, "Seconds before an OTA session times out", "limits"
    ),
    "log_batch_size": DefaultSetting(
        1000, "APDU logs buffered before a batch is written", "performance"
    ),
}

_MISSING: Any = object()


def _check_json_value(key: str, value: Any) -> None:
    """Refuse a setting value the ``value`` column cannot hold (the codec's JSON rule)."""
    codec_for(Setting.__table__).check("value", value, where=f"setting {key[:128]!r} value")  # type: ignore[arg-type]


class SettingRepository(BaseRepository[Setting]):
    """Key-value settings holding any JSON value."""

    model = Setting
    entity_type = "setting"
    created_event = EventType.SETTING_UPDATED
    updated_event = EventType.SETTING_UPDATED
    deleted_event = EventType.SETTING_DELETED

    def get_value(self, key: str, default: Any = _MISSING) -> Any:
        """The stored value, else ``default`` if given, else the built-in default, else None."""
        setting = self.find_by_id(key)
        if setting is not None:
            return to_plain(setting.value)
        if default is not _MISSING:
            return default
        builtin = DEFAULT_SETTINGS.get(key)
        return builtin.value if builtin else None

    def set_value(
        self,
        key: str,
        value: Any,
        description: str | None = None,
        category: str | None = None,
    ) -> Setting:
        """Store ``value`` (any JSON value) under ``key``, creating or replacing it."""
        if not isinstance(key, str) or not key.strip():
            raise ValidationError("setting key must be a non-empty string")
        _check_json_value(key, value)
        builtin = DEFAULT_SETTINGS.get(key)
        row = {
            "key": key,
            "value": value,
            "description": description or (builtin.description if builtin else None),
            "category": category or (builtin.category if builtin else None),
        }
        texts = {"description": description, "category": category}
        changed = ["value", *(name for name, text in texts.items() if text is not None)]
        self._upsert(row, [*changed, "updated_at"])
        with translated_errors():
            setting = self.session.get(Setting, key, populate_existing=True)
        assert setting is not None  # just written in this transaction
        self._record(self.updated_event, setting, changed_fields=changed)
        return setting

    def _upsert(self, row: dict[str, Any], replaced: list[str]) -> None:
        """INSERT the row, or update ``replaced`` of the stored one, in one atomic statement.

        Two callers setting a new key at once both succeed and the last one wins: ON
        CONFLICT (PostgreSQL, SQLite) or ON DUPLICATE KEY (MariaDB/MySQL). Never SQLite's
        INSERT OR REPLACE, which deletes the old row first.
        """
        table: Table = Setting.__table__  # type: ignore[assignment]
        now = utcnow()
        row = {**row, "created_at": now, "updated_at": now}
        row = {name: check_value(table.c[name], value) for name, value in row.items()}
        dialect = self.session.get_bind().dialect.name
        statement: Any
        if dialect in ("postgresql", "sqlite"):
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            statement = insert(table).values(row)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.key],
                set_={name: statement.excluded[name] for name in replaced},
            )
        else:
            statement = mysql_insert(table).values(row)
            statement = statement.on_duplicate_key_update(
                {name: statement.inserted[name] for name in replaced}
            )
        lock_for_writing(self.session)
        with translated_errors(), self.session.begin_nested():
            self.session.flush()  # a Core statement does not autoflush: pending rows first
            self.session.execute(statement)

    def get_by_category(self, category: str) -> dict[str, Any]:
        """Values of the category's settings, stored ones over built-in defaults."""
        merged = {
            key: builtin.value
            for key, builtin in DEFAULT_SETTINGS.items()
            if builtin.category == category
        }
        statement = select(Setting.key, Setting.value).where(Setting.category == category)
        merged.update({key: to_plain(value) for key, value in self.session.execute(statement)})
        return dict(sorted(merged.items()))

    def get_all_settings(self) -> dict[str, Any]:
        """Every setting's value: stored values merged over the built-in defaults."""
        merged = {key: builtin.value for key, builtin in DEFAULT_SETTINGS.items()}
        statement = select(Setting.key, Setting.value)
        merged.update({key: to_plain(value) for key, value in self.session.execute(statement)})
        return dict(sorted(merged.items()))

    def export_yaml(self) -> str:
        """Every effective setting with its description and category, as YAML."""
        document: dict[str, dict[str, Any]] = {
            key: {
                "value": builtin.value,
                "description": builtin.description,
                "category": builtin.category,
            }
            for key, builtin in DEFAULT_SETTINGS.items()
        }
        for setting in self._scalars(select(Setting).order_by(Setting.key)):
            document[setting.key] = {
                "value": to_plain(setting.value),
                "description": setting.description,
                "category": setting.category,
            }
        ordered = {"settings": dict(sorted(document.items()))}
        return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)

    def import_yaml(self, text: str) -> int:
        """Merge settings from YAML (export_yaml's shape, or plain key: value); returns a count."""
        if not isinstance(text, str | bytes):
            raise ValidationError(f"settings YAML must be text, got {type(text).__name__}")
        document = load_yaml(text, what="settings YAML")
        if document is None:
            return 0
        if isinstance(document, dict) and set(document) == {"settings"}:
            document = document["settings"]
        if not isinstance(document, dict):
            raise ValidationError("settings YAML must be a mapping of setting names")
        entries = []
        for key, entry in document.items():
            if not isinstance(key, str):
                raise ValidationError(f"setting name {key!r} must be text")
            if isinstance(entry, dict) and "value" in entry:
                unknown = set(entry) - {"value", "description", "category"}
                if unknown:
                    raise ValidationError(f"setting {key!r}: unknown field(s) {sorted(unknown)}")
                entries.append(
                    (key, entry["value"], entry.get("description"), entry.get("category"))
                )
            else:
                entries.append((key, entry, None, None))
        for key, value, description, category in entries:  # check all before writing any
            _check_json_value(key, value)
            for name, text_value in (("description", description), ("category", category)):
                if text_value is not None and not isinstance(text_value, str):
                    raise ValidationError(f"setting {key!r}: {name} must be text")
        # All or nothing: a refused entry rolls back the ones before it, and their events.
        queued = len(self._uow._events)
        lock_for_writing(self.session)
        try:
            with translated_errors(), self.session.begin_nested():
                for key, value, description, category in entries:
                    self.set_value(key, value, description=description, category=category)
        except BaseException:
            del self._uow._events[queued:]
            raise
        return len(entries)

    def reset_to_defaults(self, category: str | None = None) -> int:
        """Delete stored settings (of one category, or all) so the built-in defaults apply again."""
        statement = select(Setting)
        if category is not None:
            statement = statement.where(Setting.category == category)
        removed = 0
        for setting in self._scalars(statement):
            self.delete(setting)
            removed += 1
        return removed
