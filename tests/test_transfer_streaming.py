"""Streaming: export writes page by page, import reads JSON incrementally, memory stays bounded."""

from __future__ import annotations

import io
import json
import sqlite3
import tracemalloc
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import event

from cardlink.database import (
    CommDirection,
    DataExporter,
    DataImporter,
    ExportFormat,
    OTASession,
    UnitOfWork,
    ValidationError,
)
from cardlink.database.models import Base
from cardlink.database.transfer.jsonstream import JSONStreamReader
from transfer_helpers import populate, snapshot, wipe, without_export_time

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


def test_export_writes_each_page_to_the_stream_as_it_goes(manager):
    populate(manager)
    stream = io.StringIO()
    seen: list[tuple[str, int, int]] = []
    with UnitOfWork(manager) as uow:
        counts = DataExporter(uow, page_size=2).write(
            stream, progress=lambda table, done: seen.append((table, done, len(stream.getvalue())))
        )
    assert counts == {
        "devices": 3,
        "cards": 2,
        "sessions": 3,
        "http_exchanges": 2,
        "logs": 6,
        "test_runs": 1,
        "tests": 2,
        "settings": 6,
    }
    assert [(table, done) for table, done, _ in seen if table == "logs"] == [
        ("logs", 2),
        ("logs", 4),
        ("logs", 6),
    ]
    sizes = [size for _, _, size in seen]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] < len(stream.getvalue())
    log_ids = [row["id"] for row in json.loads(stream.getvalue())["tables"]["logs"]]
    assert len(log_ids) == 6 and log_ids == sorted(log_ids)


def test_the_page_size_does_not_change_the_document(manager):
    populate(manager)
    with UnitOfWork(manager) as uow:
        one_by_one = DataExporter(uow, page_size=1).export_all()
        in_pages = DataExporter(uow, page_size=2).export_all(ExportFormat.YAML)
        whole = DataExporter(uow).export_all()
        whole_yaml = DataExporter(uow).export_all(ExportFormat.YAML)
    assert without_export_time(one_by_one) == without_export_time(whole)
    assert without_export_time(in_pages) == without_export_time(whole_yaml)
    lines = whole.splitlines()
    assert sum(line.startswith('      {"id": ') for line in lines) == 16  # one row per line


@sqlite_only
@pytest.mark.parametrize("chunk_size", [1, 7, 65536])
@pytest.mark.parametrize("layout", ["as exported", "compact", "indented", "sorted keys"])
def test_the_json_reader_takes_any_layout_in_any_chunk_size(
    manager, monkeypatch, chunk_size, layout
):
    populate(manager)
    with UnitOfWork(manager) as uow:
        exported = DataExporter(uow).export_all()
    before = snapshot(manager)
    document = json.loads(exported)
    text = {
        "as exported": exported,
        "compact": json.dumps(document, separators=(",", ":")),
        "indented": json.dumps(document, indent=4, ensure_ascii=False),
        "sorted keys": json.dumps(document, sort_keys=True, indent="\t"),
    }[layout]
    wipe(manager)
    monkeypatch.setattr(JSONStreamReader, "chunk_size", chunk_size)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_stream(io.StringIO(text))
        uow.commit()
    assert result.created == 25
    assert snapshot(manager) == before


@sqlite_only
@pytest.mark.parametrize("announced", [True, False])
def test_tables_may_come_in_any_order_children_wait_for_their_parents(manager, announced):
    populate(manager)
    with UnitOfWork(manager) as uow:
        document = json.loads(DataExporter(uow).export_all())
    before = snapshot(manager)
    document["tables"] = dict(reversed(list(document["tables"].items())))
    if not announced:
        del document["table_names"]
    wipe(manager)
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow, batch_size=2).import_data(json.dumps(document))
        uow.commit()
    assert list(result.per_table) == [
        "settings",
        "tests",
        "test_runs",
        "logs",
        "http_exchanges",
        "sessions",
        "cards",
        "devices",
    ]
    assert result.created == 25
    assert snapshot(manager) == before


@sqlite_only
def test_import_stream_reads_text_and_binary_files_and_reports_progress(manager, tmp_path):
    populate(manager)
    path = tmp_path / "backup.json"
    with UnitOfWork(manager) as uow, path.open("w", encoding="utf-8") as stream:
        DataExporter(uow).write(stream)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    progress: list[tuple[str, int]] = []
    with UnitOfWork(manager) as uow:
        importer = DataImporter(uow, batch_size=4)
        with path.open("rb") as binary:
            result = importer.import_stream(binary, progress=lambda *step: progress.append(step))
        with path.open(encoding="utf-8") as text:
            assert importer.import_stream(text, dry_run=True).skipped == 25
        with (tmp_path / "bom.json").open("rb") as binary:
            assert importer.import_stream(binary).skipped == 25
    assert result.skipped == 25
    assert progress[:3] == [("devices", 3), ("cards", 2), ("sessions", 3)]
    assert ("logs", 4) in progress and ("logs", 6) in progress and progress[-1] == ("settings", 6)
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="not valid UTF-8"):
        DataImporter(uow).import_data(b'{"format_version": 1, "x": "\xff"}')


@sqlite_only
def test_a_single_oversized_value_is_refused_without_reading_the_rest(manager, monkeypatch):
    monkeypatch.setattr(JSONStreamReader, "max_value_size", 1000)
    monkeypatch.setattr(JSONStreamReader, "chunk_size", 100)
    row = json.dumps({"key": "k", "value": "x" * 5000})
    text = '{"format_version": 1, "tables": {"settings": [' + row + "]}}"
    with UnitOfWork(manager) as uow, pytest.raises(ValidationError, match="larger than 1000"):
        DataImporter(uow).import_data(text)


@sqlite_only
def test_memory_stays_bounded_while_exporting_and_importing_many_logs(manager, tmp_path):
    rows = 6_000
    session_id = uuid.uuid4()
    now = datetime.now(timezone.utc)
    with UnitOfWork(manager) as uow:
        uow.sessions.create(OTASession(id=session_id))
        uow.commit()
    apdu = "00D6000080" + "AB" * 800
    with manager.engine.begin() as connection:
        connection.execute(
            Base.metadata.tables["logs"].insert(),
            [
                {
                    "session_id": session_id,
                    "timestamp": now,
                    "direction": CommDirection.COMMAND,
                    "raw_data": apdu,
                    "latency_ms": 0.5,
                    "created_at": now,
                    "updated_at": now,
                }
                for _ in range(rows)
            ],
        )
    path = tmp_path / "big.json"
    tracemalloc.start()
    try:
        with UnitOfWork(manager) as uow, path.open("w") as stream:
            assert DataExporter(uow).write(stream, tables=["sessions", "logs"])["logs"] == rows
        export_peak = tracemalloc.get_traced_memory()[1]
        with manager.engine.begin() as connection:
            connection.execute(Base.metadata.tables["logs"].delete())
        tracemalloc.reset_peak()
        with UnitOfWork(manager) as uow, path.open("rb") as stream:
            result = DataImporter(uow).import_stream(stream)
            uow.commit()
        import_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 10_000_000
    assert result.created == rows
    # Bounded by a page of rows, not by the document: well under its size.
    assert export_peak < size / 2 and export_peak < 8_000_000, (export_peak, size)
    assert import_peak < size / 2 and import_peak < 8_000_000, (import_peak, size)


@sqlite_only
@pytest.mark.skipif(not hasattr(sqlite3.Connection, "setlimit"), reason="needs Python 3.11")
def test_batches_of_thousands_of_keys_work_on_a_sqlite_limited_to_999_parameters(manager):
    # SQLite builds before 3.32 take at most 999 parameters per statement.
    def limit(connection: sqlite3.Connection, _record: object) -> None:
        connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    event.listen(manager.engine, "connect", limit)
    manager.engine.dispose()
    rows = [{"key": f"setting.{number}", "value": number} for number in range(2_500)]
    data = json.dumps({"format_version": 1, "tables": {"settings": rows}})
    with UnitOfWork(manager) as uow:
        assert DataImporter(uow).import_data(data).created == 2_500
        assert DataImporter(uow).import_data(data).skipped == 2_500
        uow.commit()


ODD_ARRAYS = [
    "[1,\n2\n, 3]",
    '[{"a": 1},\n{"b": [1,\n2]},\n{"c": "x"}\n]',
    '[\n  {"a": 1}\n  ,\n  {"a": 2}\n]',
    '[{"a": 1}, {"a": 2},\n{"a": 3}]',
    '[\n"one",\n"two",\n"th\\nree"\n]',
    "[\n1\n]",
    "[[1,\n2],\n[3]]",
]


@pytest.mark.parametrize("text", ODD_ARRAYS)
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1 << 16])
def test_an_array_reads_the_same_however_its_values_fall_on_lines(text, chunk_size, monkeypatch):
    """Whole lines are decoded as one run where they can be; a value spread over lines,
    a comma on its own line or the array's end mid-line reads as JSON says."""
    monkeypatch.setattr(JSONStreamReader, "chunk_size", chunk_size)
    reader = JSONStreamReader(io.StringIO(text + "\n"))
    assert list(reader.items("the array")) == json.loads(text)
    assert reader.at_end()


@pytest.mark.parametrize("chunk_size", [5, 1 << 16])
def test_a_bad_row_among_whole_lines_is_reported_at_its_own_line(chunk_size, monkeypatch):
    monkeypatch.setattr(JSONStreamReader, "chunk_size", chunk_size)
    text = '[\n{"a": 1},\n{"a": 2},\n{"a": 3, "a": 4},\n{"a": 5}\n]\n'
    reader = JSONStreamReader(io.StringIO(text))
    with pytest.raises(ValidationError, match=r"line 4 .*'a' appears twice"):
        list(reader.items("the array"))
