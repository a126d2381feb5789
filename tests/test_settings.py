"""SettingRepository: JSON values over built-in defaults, YAML export and merge-import."""

from __future__ import annotations

import pytest
import yaml

from cardlink.database import DEFAULT_SETTINGS, DatabaseManager, UnitOfWork, ValidationError


def test_get_value_prefers_stored_then_the_callers_default_then_the_builtin(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        assert uow.settings.get_value("log_retention_days") == 90  # built-in
        assert uow.settings.get_value("log_retention_days", default=7) == 7
        assert uow.settings.get_value("unknown") is None
        assert uow.settings.get_value("unknown", default="x") == "x"
        uow.settings.set_value("log_retention_days", 30)
        assert uow.settings.get_value("log_retention_days", default=7) == 30


def test_set_value_stores_any_json_value_and_replaces_it(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("servers", ["a", "b"], description="OTA servers", category="net")
        uow.settings.set_value("servers", {"primary": "a"})
        uow.settings.set_value("log_retention_days", 60)
        uow.commit()
    with UnitOfWork(manager) as uow:
        servers = uow.settings.get_by_id("servers")
        assert servers.value == {"primary": "a"}
        assert (servers.description, servers.category) == ("OTA servers", "net")
        builtin = uow.settings.get_by_id("log_retention_days")
        assert (builtin.description, builtin.category) == ("Days to retain APDU logs", "retention")
        with pytest.raises(ValidationError, match="not JSON"):
            uow.settings.set_value("bad", object())
        with pytest.raises(ValidationError, match="key"):
            uow.settings.set_value("", 1)


def test_get_by_category_and_get_all_settings_merge_stored_over_defaults(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("log_retention_days", 30, category="retention")
        uow.settings.set_value("archive_days", 900, category="retention")
        uow.settings.set_value("theme", "dark", category="ui")
        assert uow.settings.get_by_category("retention") == {
            "archive_days": 900,
            "log_retention_days": 30,
            "session_retention_days": 365,
            "test_retention_days": 365,
        }
        everything = uow.settings.get_all_settings()
    defaults = {key: builtin.value for key, builtin in DEFAULT_SETTINGS.items()}
    assert everything == {
        **defaults,
        "log_retention_days": 30,
        "archive_days": 900,
        "theme": "dark",
    }


def test_export_yaml_lists_every_effective_setting(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("theme", "dark", description="Colours", category="ui")
        document = yaml.safe_load(uow.settings.export_yaml())["settings"]
    assert document["theme"] == {"value": "dark", "description": "Colours", "category": "ui"}
    assert document["log_retention_days"]["value"] == 90
    assert set(DEFAULT_SETTINGS) <= set(document)


def test_import_yaml_merges_and_round_trips(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("theme", "dark", category="ui")
        uow.settings.set_value("kept", 1)
        exported = uow.settings.export_yaml()
        uow.commit()
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("theme", "light")
        assert uow.settings.import_yaml(exported) == len(DEFAULT_SETTINGS) + 2
        assert uow.settings.import_yaml("theme: blue\nnew_one: [1, 2]\n") == 2
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.settings.get_value("theme") == "blue"
        assert uow.settings.get_by_id("theme").category == "ui"  # plain form keeps the category
        assert uow.settings.get_value("new_one") == [1, 2]
        assert uow.settings.get_value("kept") == 1  # a merge never deletes


def test_import_yaml_refuses_malformed_documents_and_changes_nothing(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match="malformed"):
            uow.settings.import_yaml("a: [1,\n")
        with pytest.raises(ValidationError, match="mapping"):
            uow.settings.import_yaml("- 1\n- 2\n")
        with pytest.raises(ValidationError, match="unknown field"):
            uow.settings.import_yaml("settings:\n  a: {value: 1, colour: red}\n")
        assert uow.settings.import_yaml("") == 0
        assert uow.settings.count() == 0


def test_reset_to_defaults_of_one_category_or_all(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.settings.set_value("log_retention_days", 30, category="retention")
        uow.settings.set_value("max_sessions_per_device", 3)
        uow.settings.set_value("theme", "dark", category="ui")
        assert uow.settings.reset_to_defaults(category="retention") == 1
        assert uow.settings.get_value("log_retention_days") == 90
        assert uow.settings.get_value("max_sessions_per_device") == 3
        assert uow.settings.reset_to_defaults() == 2
        uow.commit()
    with UnitOfWork(manager) as uow:
        assert uow.settings.count() == 0
        assert uow.settings.get_value("max_sessions_per_device") == 10
