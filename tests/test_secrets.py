"""Secrets: a PSK key's plaintext and the Fernet key are found nowhere but in the caller's hands.

PSK keys are written through every path (``create_with_psk``, ``update_psk``,
import); then the database file (or a server dump and a SELECT of every row),
every export, the DEBUG log output with ``echo=True``, the reprs and the error
messages are scanned for the plaintext key bytes (raw, hex, base64) and for the
Fernet key (text, raw, hex). A new SQLite file is readable by its owner only.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import select

from cardlink.database import (
    Base,
    CardProfile,
    ConflictMode,
    DatabaseConfig,
    DatabaseError,
    DatabaseManager,
    DataExporter,
    DataImporter,
    EncryptionError,
    ExportFormat,
    UnitOfWork,
    get_emitter,
)

PSK_CREATED = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
PSK_REPLACED = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
PSK_UPDATED = bytes.fromhex("5ec7e75ec7e75ec7e75ec7e75ec7e7ff")
PSK_IMPORTED = bytes.fromhex("1a2b3c4d5e6f708192a3b4c5d6e7f801")
PLAINTEXTS = (PSK_CREATED, PSK_REPLACED, PSK_UPDATED, PSK_IMPORTED)


def secret_forms(fernet_key: str) -> dict[str, bytes]:
    """Every spelling of a secret worth searching for, by a name for the failure message."""
    forms: dict[str, bytes] = {}
    for index, plaintext in enumerate(PLAINTEXTS):
        forms[f"psk{index} raw"] = plaintext
        forms[f"psk{index} hex"] = plaintext.hex().encode()
        forms[f"psk{index} HEX"] = plaintext.hex().upper().encode()
        forms[f"psk{index} base64"] = base64.b64encode(plaintext).rstrip(b"=")
        forms[f"psk{index} urlsafe base64"] = base64.urlsafe_b64encode(plaintext).rstrip(b"=")
    raw_key = base64.urlsafe_b64decode(fernet_key)
    forms["fernet key"] = fernet_key.encode()
    forms["fernet key raw"] = raw_key
    forms["fernet key hex"] = raw_key.hex().encode()
    forms["fernet signing half"] = base64.urlsafe_b64encode(raw_key[:16]).rstrip(b"=")
    forms["fernet encryption half"] = base64.urlsafe_b64encode(raw_key[16:]).rstrip(b"=")
    return forms


def assert_no_secret(where: str, data: bytes | str, forms: dict[str, bytes]) -> None:
    blob = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    for name, form in forms.items():
        assert form not in blob, f"{name} found in {where}"


def store_secrets_through_every_path(manager: DatabaseManager) -> list[str]:
    """Write the four PSK keys (create, create then update, import); returns what was said."""
    said: list[str] = []
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(
            CardProfile(iccid="8901000000000000001", psk_identity="created"), PSK_CREATED
        )
        uow.cards.create_with_psk(
            CardProfile(iccid="8901000000000000002", psk_identity="updated"), PSK_REPLACED
        )
        uow.commit()
    with UnitOfWork(manager) as uow:
        card = uow.cards.update_psk("8901000000000000002", key=PSK_UPDATED)
        said += [repr(card), str(card.to_dict()), repr(uow), repr(manager), repr(manager.config)]
        said += [repr(manager.cipher), str(uow.cards.export_profile("8901000000000000002"))]
        uow.commit()
    # The import path: a document exported elsewhere under the same key.
    elsewhere = DatabaseManager(DatabaseConfig(database_url="sqlite://"))
    elsewhere.create_tables()
    with UnitOfWork(elsewhere) as uow:
        uow.cards.create_with_psk(
            CardProfile(iccid="8901000000000000003", psk_identity="imported"), PSK_IMPORTED
        )
        uow.commit()
    with UnitOfWork(elsewhere) as uow:
        document = DataExporter(uow).export_selective(["cards"], ExportFormat.JSON)
    elsewhere.close()
    with UnitOfWork(manager) as uow:
        result = DataImporter(uow).import_data(
            document, format=ExportFormat.JSON, conflict_mode=ConflictMode.SKIP
        )
        said.append(repr(result))
        uow.commit()
    with UnitOfWork(manager) as uow:  # every key reads back through the one door
        keys = [uow.cards.get_psk_key(f"890100000000000000{n}") for n in (1, 2, 3)]
    assert keys == [PSK_CREATED, PSK_UPDATED, PSK_IMPORTED]
    return said


def provoke_errors(manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Error messages of the PSK paths gone wrong (duplicate, wrong key, bad input)."""
    messages: list[str] = []

    def capture(action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except DatabaseError as error:
            messages.append(f"{type(error).__name__}: {error} / {error!r}")
            if error.__cause__ is not None:
                messages.append(str(error.__cause__))
        else:
            raise AssertionError("expected an error")

    with UnitOfWork(manager) as uow:
        capture(
            lambda: uow.cards.create_with_psk(CardProfile(iccid="8901000000000000001"), PSK_CREATED)
        )
        capture(lambda: uow.cards.create_with_psk(CardProfile(iccid="8902"), PSK_CREATED.hex()))
        capture(lambda: uow.cards.update_psk("no-such-card", key=PSK_UPDATED))
        capture(lambda: uow.cards.create_with_psk(CardProfile(iccid="8" * 30), PSK_UPDATED))
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", Fernet.generate_key().decode())
    with UnitOfWork(manager) as uow:
        capture(lambda: uow.cards.get_psk_key("8901000000000000001"))
        capture(lambda: uow.cards.rotate_keys())
    return messages


def database_bytes(manager: DatabaseManager, tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    """The stored database as bytes: SQLite's files, or a server dump and every row."""
    if manager.config.is_sqlite:
        path = manager.config.sqlite_path
        assert path is not None
        for suffix in ("", "-wal", "-shm", "-journal"):
            candidate = Path(f"{path}{suffix}")
            if candidate.exists():
                yield candidate.name, candidate.read_bytes()
        return
    url = manager.config.url
    if manager.config.is_postgresql:
        command = ["pg_dump", "-h", "127.0.0.1", "-U", url.username or "postgres", url.database]
    else:
        command = ["mysqldump", "-h", "127.0.0.1", "-u", url.username or "root", url.database]
    if shutil.which(command[0]):
        dump = subprocess.run(command, capture_output=True, timeout=60, check=True)
        yield command[0], dump.stdout
    with manager.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = connection.execute(select(table)).all()
            yield f"SELECT * FROM {table.name}", repr(rows).encode()


@pytest.fixture
def echo_manager(
    manager: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> Iterator[DatabaseManager]:
    """A second manager on the same database, with ``echo=True`` and every logger at DEBUG."""
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "cardlink"):
        caplog.set_level(logging.DEBUG, logger=name)
    noisy = DatabaseManager(DatabaseConfig(database_url=manager.config.url, echo=True))
    noisy.initialize()
    yield noisy
    noisy.close()


def test_psk_plaintext_and_fernet_key_are_found_nowhere(
    echo_manager: DatabaseManager,
    encryption_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forms = secret_forms(encryption_key)
    events: list[str] = []
    get_emitter().on("*", lambda event: events.append(f"{event!r} {event.data}"))
    said = store_secrets_through_every_path(echo_manager)

    with UnitOfWork(echo_manager) as uow:
        exports = {
            "JSON export": DataExporter(uow).export_all(ExportFormat.JSON),
            "YAML export": DataExporter(uow).export_all(ExportFormat.YAML),
            "cards JSON export": DataExporter(uow).export_selective(["cards"], "json"),
            "export without keys": DataExporter(uow, include_psk=False).export_all("yaml"),
        }
        said.append(uow.settings.export_yaml())
    for name, text in exports.items():
        assert_no_secret(name, text, forms)
    assert "gAAAAA" in exports["JSON export"]  # the key travels, as Fernet ciphertext only
    assert "gAAAAA" not in exports["export without keys"]

    for where, data in database_bytes(echo_manager, tmp_path):
        assert_no_secret(where, data, forms)

    said += provoke_errors(echo_manager, monkeypatch)
    for text in said:
        assert_no_secret("a repr or error message", text, forms)
    assert len(events) >= 4  # card created x2, updated, import batch
    for text in events:
        assert_no_secret("an event", text, forms)

    output = capsys.readouterr()
    logged = caplog.text + output.out + output.err
    assert "INSERT INTO cards" in logged  # echo really was on
    assert "psk_key_encrypted" in logged and "Row (" in logged  # ... at DEBUG: rows logged too
    with pytest.raises(AssertionError):  # and the scan would see a leak
        assert_no_secret("self-check", f"...{PSK_IMPORTED.hex()}...", forms)
    assert_no_secret("the DEBUG log and echo output", logged, forms)


def test_a_wrong_key_error_names_no_key_and_no_ciphertext(
    manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    with UnitOfWork(manager) as uow:
        card = uow.cards.create_with_psk(CardProfile(iccid="8901"), PSK_CREATED)
        token = card.psk_key_encrypted
        uow.commit()
    wrong = Fernet.generate_key().decode()
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", wrong)
    with UnitOfWork(manager) as uow, pytest.raises(EncryptionError) as raised:
        uow.cards.get_psk_key("8901")
    assert str(raised.value) == "Invalid key or corrupted data"
    assert token is not None and token not in str(raised.value)
    assert wrong not in repr(raised.value)


@pytest.mark.parametrize("bad_key", ["not-a-fernet-key", "x" * 44, "c2hvcnQ="])
def test_a_malformed_key_is_refused_without_echoing_it(bad_key: str) -> None:
    from cardlink.database.crypto import PSKCipher

    with pytest.raises(EncryptionError) as raised:
        PSKCipher(f"{Fernet.generate_key().decode()},{bad_key}")
    assert "key #2 is malformed" in str(raised.value)
    assert bad_key not in str(raised.value)


def test_database_passwords_stay_out_of_reprs_and_connection_errors() -> None:
    password = "s3cr3t-Pa55word"
    config = DatabaseConfig(database_url=f"postgresql://cardlink:{password}@127.0.0.1:1/cardlink")
    manager = DatabaseManager(config)
    texts = [repr(config), str(config), config.database_url, repr(manager)]
    with pytest.raises(DatabaseError) as raised:
        manager.initialize()
    texts += [str(raised.value), repr(raised.value)]
    for text in texts:
        assert password not in text


# -- file permissions --------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)  # the mode must not depend on the caller's umask
    try:
        yield
    finally:
        os.umask(previous)


def _modes(paths: Iterable[Path]) -> dict[str, str]:
    return {path.name: oct(stat.S_IMODE(path.stat().st_mode)) for path in paths if path.exists()}


def test_a_new_sqlite_database_file_is_readable_by_its_owner_only(
    tmp_path: Path, permissive_umask: None, encryption_key: str
) -> None:
    path = tmp_path / "nested" / "cardlink.db"
    manager = DatabaseManager(DatabaseConfig.from_sqlite_path(path))
    manager.create_tables()
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(CardProfile(iccid="8901"), PSK_CREATED)
        uow.commit()
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        modes = _modes(files)  # while the WAL files exist
    manager.close()
    assert modes[path.name] == "0o600"
    assert set(modes.values()) == {"0o600"}, modes


def test_an_existing_sqlite_file_keeps_the_mode_its_owner_chose(
    tmp_path: Path, encryption_key: str
) -> None:
    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)
    manager = DatabaseManager(DatabaseConfig.from_sqlite_path(path))
    manager.create_tables()
    manager.close()
    assert _modes([path]) == {"shared.db": "0o640"}


def test_cli_output_of_an_export_carries_no_secret(
    manager: DatabaseManager, encryption_key: str, tmp_path: Path
) -> None:
    from cardlink.database.cli import cli

    store_secrets_through_every_path(manager)
    url = manager.config.url.render_as_string(hide_password=False)
    target = tmp_path / "backup.yaml"
    runner = CliRunner()
    for arguments in (
        ["export"],
        ["export", "--format", "yaml", "--output", str(target)],
        ["status", "--verbose"],
        ["stats", "--json"],
    ):
        result = runner.invoke(cli, ["--database-url", url, *arguments])
        assert result.exit_code == 0, result.output
        assert_no_secret(
            f"cardlink-db {' '.join(arguments)}", result.output, secret_forms(encryption_key)
        )
    assert_no_secret("exported file", target.read_bytes(), secret_forms(encryption_key))
