"""Damaged or hostile export documents import nothing and fail fast and bounded.

Every export ends with a trailer (rows per table); a document cut short or edited
so the counts no longer hold is refused before anything is committed. Repeated keys
are refused with their line, and YAML aliases are refused in every YAML path, so a
"billion laughs" document costs nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from cardlink.database import (
    ConflictMode,
    DatabaseManager,
    DataExporter,
    DataImporter,
    Device,
    DeviceType,
    ExportFormat,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.transfer import announced_row_counts
from transfer_helpers import populate, snapshot, wipe


def _export(manager: DatabaseManager, format: ExportFormat) -> str:
    with UnitOfWork(manager) as uow:
        return DataExporter(uow).export_all(format)


def _refused(manager: DatabaseManager, data: str, format: ExportFormat) -> str:
    """The import's ValidationError text; the database is left exactly as it was."""
    before = snapshot(manager)
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError) as raised:
            DataImporter(uow, batch_size=2).import_data(
                data, format=format, conflict_mode=ConflictMode.OVERWRITE
            )
        uow.commit()
    assert snapshot(manager) == before
    assert "\n" not in str(raised.value)
    return str(raised.value)


@pytest.mark.parametrize("format", list(ExportFormat))
def test_every_export_ends_with_a_trailer_counting_each_tables_rows(
    manager: DatabaseManager, format: ExportFormat, tmp_path: Path
) -> None:
    populate(manager)
    text = _export(manager, format)
    document = json.loads(text) if format is ExportFormat.JSON else yaml.safe_load(text)
    assert list(document)[-1] == "trailer"
    counts = {name: len(rows or []) for name, rows in document["tables"].items()}
    assert document["trailer"] == {"row_counts": counts}
    assert counts["logs"] > 0
    path = tmp_path / f"export.{format.value}"
    path.write_text(text)
    assert announced_row_counts(path) == counts
    wipe(manager)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(text, format=format)
        uow.commit()
    assert result.expected == counts and result.warnings == []
    assert result.created == sum(counts.values())


@pytest.mark.parametrize("format", list(ExportFormat))
@pytest.mark.parametrize("lines_cut", [1, 2, 3, 5, 8, 13])
def test_an_export_cut_short_at_a_line_boundary_imports_nothing(
    manager: DatabaseManager, format: ExportFormat, lines_cut: int
) -> None:
    populate(manager)
    lines = _export(manager, format).splitlines(keepends=True)
    wipe(manager)
    message = _refused(manager, "".join(lines[:-lines_cut]), format)
    assert "import:" in message


@pytest.mark.parametrize("format", list(ExportFormat))
def test_a_trailer_that_disagrees_with_the_rows_is_refused_naming_the_table(
    manager: DatabaseManager, format: ExportFormat
) -> None:
    populate(manager)
    text = _export(manager, format)
    document = json.loads(text) if format is ExportFormat.JSON else yaml.safe_load(text)
    document["trailer"]["row_counts"]["logs"] += 1
    wipe(manager)
    spoiled = json.dumps(document) if format is ExportFormat.JSON else yaml.safe_dump(document)
    message = _refused(manager, spoiled, format)
    assert "trailer says 'logs' has" in message and "nothing was imported" in message


@pytest.mark.parametrize("format", list(ExportFormat))
def test_a_current_document_without_its_trailer_is_refused(
    manager: DatabaseManager, format: ExportFormat
) -> None:
    document = {"format_version": 2, "tables": {"devices": [{"id": "D1", "device_type": "phone"}]}}
    text = json.dumps(document) if format is ExportFormat.JSON else yaml.safe_dump(document)
    assert "has no 'trailer'" in _refused(manager, text, format)


@pytest.mark.parametrize("format", list(ExportFormat))
def test_a_document_from_before_the_trailer_is_imported_with_a_warning(
    manager: DatabaseManager, format: ExportFormat
) -> None:
    document = {"format_version": 1, "tables": {"devices": [{"id": "D1", "device_type": "phone"}]}}
    text = json.dumps(document) if format is ExportFormat.JSON else yaml.safe_dump(document)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(text, format=format)
        uow.commit()
        assert uow.devices.find_by_id("D1") is not None
    assert result.created == 1 and result.expected is None
    assert len(result.warnings) == 1 and "before the trailer" in result.warnings[0]


TRAILER = '"trailer": {"row_counts": {"devices": 1}}'
DEVICE = '{"id": "D1", "device_type": "phone"}'
REPEATED_JSON = {
    "format_version": (
        f'{{\n"format_version": 2,\n"format_version": 2,\n"tables": {{"devices": [{DEVICE}]}},'
        f"\n{TRAILER}\n}}",
        "line 3",
    ),
    "tables": (
        f'{{\n"format_version": 2,\n"tables": {{"devices": []}},\n"tables": {{"devices": '
        f"[{DEVICE}]}},\n{TRAILER}\n}}",
        "line 4",
    ),
    "a table": (
        f'{{"format_version": 2,\n"tables": {{\n"devices": [],\n"devices": [{DEVICE}]\n}},'
        f"\n{TRAILER}\n}}",
        "line 4",
    ),
    "a row's field": (
        '{"format_version": 2,\n"tables": {"devices": [\n'
        '{"id": "D1", "device_type": "phone", "id": "D2"}\n]},\n'
        f"{TRAILER}\n}}",
        "line 3",
    ),
}


@pytest.mark.parametrize("repeated", sorted(REPEATED_JSON))
def test_a_key_repeated_in_a_json_document_is_refused_with_its_line(
    manager: DatabaseManager, repeated: str
) -> None:
    text, line = REPEATED_JSON[repeated]
    message = _refused(manager, text, ExportFormat.JSON)
    assert "twice" in message and line in message, message


REPEATED_YAML = {
    "format_version": "format_version: 2\nformat_version: 2\ntables: {}\n",
    "tables": "format_version: 2\ntables:\n  devices: []\ntables:\n  devices: []\n",
    "a table": "format_version: 2\ntables:\n  devices: []\n  devices: []\n",
    "a row's field": (
        "format_version: 2\ntables:\n  devices:\n  - id: D1\n    id: D2\n    device_type: phone\n"
    ),
}
REPEATED_YAML_LINES = {"format_version": 2, "tables": 4, "a table": 4, "a row's field": 5}


@pytest.mark.parametrize("repeated", sorted(REPEATED_YAML))
def test_a_key_repeated_in_a_yaml_document_is_refused_with_its_line(
    manager: DatabaseManager, repeated: str
) -> None:
    message = _refused(manager, REPEATED_YAML[repeated], ExportFormat.YAML)
    assert "appears twice" in message and f"line {REPEATED_YAML_LINES[repeated]}" in message


def test_a_setting_repeated_in_settings_yaml_is_refused_with_its_line(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        with pytest.raises(ValidationError, match=r"appears twice.*line 2"):
            uow.settings.import_yaml("a: 1\na: 2\n")
        assert uow.settings.get_value("a") is None


ALIAS = "format_version: 2\nbase: &row {id: D1, device_type: phone}\ntables:\n  devices: [*row]\n"


def test_yaml_aliases_are_refused_by_the_importer_and_settings(manager: DatabaseManager) -> None:
    assert "aliases" in _refused(manager, ALIAS, ExportFormat.YAML)
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="aliases"):
        uow.settings.import_yaml("a: &x [1, 2]\nb: *x\n")


def _laughs(levels: int) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# Runs in its own process under a 1 GB address-space cap and 20 s of CPU: a billion laughs
# sent to settings.import_yaml and to the importer; prints how each one ended.
BOMB = textwrap.dedent(
    r"""
    import json, resource, sys, time
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
    from cardlink.database import DatabaseConfig, DatabaseManager, UnitOfWork, DataImporter
    from cardlink.database import ValidationError
    url, bomb = sys.argv[1], sys.stdin.read()
    manager = DatabaseManager(DatabaseConfig(database_url=url))
    manager.create_tables()
    outcome = {}
    for name, call in (
        ("settings", lambda uow: uow.settings.import_yaml(bomb)),
        ("importer", lambda uow: DataImporter(uow).import_data(
            "format_version: 2\n" + bomb + "tables: {}\n", format="yaml")),
    ):
        started = time.monotonic()
        with UnitOfWork(manager) as uow:
            try:
                call(uow)
                outcome[name] = "accepted"
            except ValidationError as error:
                outcome[name] = str(error)
        outcome[name + "_seconds"] = time.monotonic() - started
    print(json.dumps(outcome))
    """
)


def test_a_billion_laughs_is_refused_at_once_within_a_memory_and_cpu_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bomb.db'}"
    bomb = _laughs(10)
    assert len(bomb) < 1000
    finished = subprocess.run(
        [sys.executable, "-c", BOMB, url],
        input=bomb,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    outcome = json.loads(finished.stdout)
    assert "aliases" in outcome["settings"] and "aliases" in outcome["importer"]
    assert outcome["settings_seconds"] < 2 and outcome["importer_seconds"] < 2


def test_an_import_keeps_nothing_of_a_document_refused_after_its_first_tables(
    manager: DatabaseManager,
) -> None:
    """The trailer is checked last, yet the tables before it are rolled back too."""
    marker = f"m-{uuid.uuid4().hex[:6]}"
    document = {
        "format_version": 2,
        "tables": {"devices": [{"id": marker, "device_type": "phone"}]},
        "trailer": {"row_counts": {"devices": 2}},
    }
    _refused(manager, json.dumps(document), ExportFormat.JSON)
    with UnitOfWork(manager) as uow:
        assert uow.devices.find_by_id(marker) is None
        uow.devices.create(Device(id="still-usable", device_type=DeviceType.MODEM))
        uow.commit()
