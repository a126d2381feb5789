"""The PSK key store the TLS-PSK server asks on every handshake, and one card per PSK identity."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, text
from sqlalchemy import exc as sa_exc

from cardlink.database import (
    Base,
    CardProfile,
    CardRepository,
    DatabaseConfig,
    DatabaseManager,
    DataImporter,
    IntegrityError,
    PSKKeyStore,
    UnitOfWork,
    ValidationError,
)

#: Identities that can name no card: unknown, not text, or text no column can hold.
ODD_IDENTITIES: list[object] = [
    "nobody",
    "",
    "x" * 129,
    "x" * 100_000,
    "\ud800",
    "card\x00001",
    b"\xff\xfe",
    None,
    42,
    ["card-001"],
    "card-001 ",  # MariaDB's collation calls this equal to 'card-001'; it is not
    "CARD-001",
]


def key_of(number: int) -> bytes:
    return bytes([number % 256]) * 16 + number.to_bytes(4, "big")


def iccid_of(number: int) -> str:
    return f"8901{number:015d}"


class TLSServerKeys:
    """What the CardLink TLS-PSK server does with a card repository on a handshake."""

    def __init__(self, cards: CardRepository) -> None:
        self.cards = cards

    def psk_for(self, identity: Any) -> bytes | None:
        if not self.cards.psk_identity_exists(identity):
            return None
        return self.cards.get_psk_key_by_identity(identity)

    def identities(self) -> list[str]:
        return self.cards.get_all_psk_identities()


@pytest.fixture
def keyed(manager: DatabaseManager) -> DatabaseManager:
    """Cards 1..5 with keys (identities in no sorted order), one with an identity but no key."""
    identities = ["card-001", "Zeta", "émile", "z10", "z9"]
    with UnitOfWork(manager) as uow:
        for number, identity in enumerate(identities, start=1):
            uow.cards.create_with_psk(
                CardProfile(iccid=iccid_of(number), psk_identity=identity), key_of(number)
            )
        uow.cards.create(CardProfile(iccid=iccid_of(9), psk_identity="keyless"))
        uow.cards.create(CardProfile(iccid=iccid_of(10)))
        uow.commit()
    return manager


def test_the_tls_server_shape_gets_each_key_and_the_sorted_identities(
    keyed: DatabaseManager,
) -> None:
    with UnitOfWork(keyed) as uow:
        server = TLSServerKeys(uow.cards)
        assert server.psk_for("card-001") == key_of(1)
        assert server.psk_for("émile") == key_of(3)
        assert server.psk_for(b"z9") == key_of(5)  # the identity as the TLS layer's bytes
        assert server.identities() == sorted(["card-001", "Zeta", "émile", "z10", "z9"])
        assert server.identities() == ["Zeta", "card-001", "z10", "z9", "émile"]
        assert server.psk_for("keyless") is None
        assert "keyless" not in server.identities()


def test_an_identity_no_card_can_hold_is_unknown_never_an_error(keyed: DatabaseManager) -> None:
    with UnitOfWork(keyed) as uow, PSKKeyStore(keyed) as store:
        for identity in ODD_IDENTITIES:
            assert uow.cards.get_psk_key_by_identity(identity) is None, identity
            assert uow.cards.psk_identity_exists(identity) is False, identity
            assert store.get_key(identity) is None, identity
            assert store.identity_exists(identity) is False, identity
        assert uow.cards.get_psk_key_by_identity("card-001") == key_of(1)  # the unit still works


def test_the_key_store_agrees_with_the_repository(keyed: DatabaseManager) -> None:
    with UnitOfWork(keyed) as uow, PSKKeyStore(keyed) as store:
        assert store.get_all_identities() == uow.cards.get_all_psk_identities()
        for identity in store.get_all_identities():
            assert store.identity_exists(identity)
            assert store.get_key(identity) == uow.cards.get_psk_key_by_identity(identity)
        assert store.get_key("keyless") is None and not store.identity_exists("keyless")


def test_a_card_written_in_the_unit_of_work_is_seen_by_its_own_questions(
    manager: DatabaseManager,
) -> None:
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(CardProfile(iccid=iccid_of(1), psk_identity="new"), key_of(1))
        assert uow.cards.get_psk_key_by_identity("new") == key_of(1)
        assert uow.cards.get_all_psk_identities() == ["new"]
        with PSKKeyStore(manager) as store:  # not committed: other connections do not see it
            assert store.get_key("new") is None


def test_a_second_card_with_the_same_identity_is_refused_naming_both_iccids(
    keyed: DatabaseManager,
) -> None:
    secret = b"\x13" * 16
    with UnitOfWork(keyed) as uow:
        with pytest.raises(IntegrityError) as refused:
            uow.cards.create_with_psk(CardProfile(iccid="8999", psk_identity="card-001"), secret)
        message = str(refused.value)
        assert iccid_of(1) in message and "8999" in message and "'card-001'" in message
        assert secret.hex() not in message and "gAAAA" not in message

        with pytest.raises(IntegrityError, match=f"{iccid_of(1)}.*{iccid_of(9)}"):
            uow.cards.update_psk(iccid_of(9), identity="card-001")
        card = uow.cards.get_by_id(iccid_of(10))
        card.psk_identity = "Zeta"
        with pytest.raises(IntegrityError, match=f"{iccid_of(2)}.*{iccid_of(10)}"):
            uow.cards.update(card)
        uow.rollback()
        with pytest.raises(IntegrityError, match=r"'twin'.*'8001'.*'8002'"):
            uow.cards.create_all(
                [
                    CardProfile(iccid="8001", psk_identity="twin"),
                    CardProfile(iccid="8002", psk_identity="twin"),
                ]
            )
        uow.cards.create(CardProfile(iccid="8003", psk_identity="fresh"))  # the unit goes on
        uow.commit()
    with UnitOfWork(keyed) as uow:
        assert uow.cards.find_by_id("8999") is None and uow.cards.find_by_id("8001") is None
        assert uow.cards.get_by_id(iccid_of(9)).psk_identity == "keyless"
        assert uow.cards.get_by_id(iccid_of(10)).psk_identity is None
        assert uow.cards.get_by_id("8003").psk_identity == "fresh"


def test_the_database_itself_refuses_a_shared_identity_and_lets_nulls_be(
    keyed: DatabaseManager,
) -> None:
    cards = Base.metadata.tables["cards"]
    row = {"created_at": text("CURRENT_TIMESTAMP"), "updated_at": text("CURRENT_TIMESTAMP")}
    with pytest.raises(sa_exc.IntegrityError) as refused, keyed.engine.begin() as connection:
        connection.execute(insert(cards).values(iccid="8100", psk_identity="Zeta", **row))
    assert "psk_identity" in str(refused.value)
    with keyed.engine.begin() as connection:
        for iccid in ("8101", "8102"):
            connection.execute(insert(cards).values(iccid=iccid, psk_identity=None, **row))


def test_the_key_version_and_key_id_are_stored_and_checked(manager: DatabaseManager) -> None:
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(
            CardProfile(iccid=iccid_of(1), psk_identity="k", psk_key_version=0x30, psk_key_id=1),
            key_of(1),
        )
        uow.cards.create(CardProfile(iccid=iccid_of(2), psk_key_version=255, psk_key_id=0))
        uow.commit()
    with UnitOfWork(manager) as uow:
        card = uow.cards.get_by_id(iccid_of(1))
        assert (card.psk_key_version, card.psk_key_id) == (0x30, 1)
        assert uow.cards.export_profile(iccid_of(2))["psk_key_version"] == 255
        for field, value in (("psk_key_version", 256), ("psk_key_id", -1)):
            expected = rf"cards\.{field}: {value} must be between 0 and 255"
            with pytest.raises(ValidationError, match=expected):
                uow.cards.create(CardProfile(iccid="8200", **{field: value}))
        with pytest.raises(ValidationError, match=r"cards\.psk_key_id: expected an integer"):
            uow.cards.create(CardProfile(iccid="8201", psk_key_id="1"))  # type: ignore[arg-type]
    cards = Base.metadata.tables["cards"]
    row = {"created_at": text("CURRENT_TIMESTAMP"), "updated_at": text("CURRENT_TIMESTAMP")}
    # (PyMySQL reports MariaDB's CHECK failure, errno 4025, as an OperationalError.)
    with (
        pytest.raises(sa_exc.DBAPIError, match="psk_key_version"),
        manager.engine.begin() as connection,
    ):
        connection.execute(insert(cards).values(iccid="8202", psk_key_version=300, **row))


@pytest.fixture
def many_keys(manager: DatabaseManager) -> Iterator[tuple[DatabaseManager, int]]:
    count = 200
    with UnitOfWork(manager) as uow:
        uow.cards.create_all(
            [CardProfile(iccid=iccid_of(n), psk_identity=f"id-{n}") for n in range(count)]
        )
        for number in range(count):
            uow.cards.update_psk(iccid_of(number), key=key_of(number))
        uow.devices.create(database_device())
        uow.commit()
    yield manager, count


def database_device() -> Any:
    from cardlink.database import Device, DeviceType

    return Device(id="writer-phone", device_type=DeviceType.PHONE)


def test_eight_threads_get_keys_while_another_writes_logs(
    many_keys: tuple[DatabaseManager, int], backend: str
) -> None:
    manager, count = many_keys
    # On SQLite the writer has no busy timeout at all: if a reader ever held the write lock
    # (or a lock the writer needs), its BEGIN IMMEDIATE or COMMIT would fail at once.
    writer_manager = (
        DatabaseManager(DatabaseConfig(database_url=manager.config.url, sqlite_busy_timeout_ms=0))
        if backend == "sqlite"
        else manager
    )
    store = PSKKeyStore(manager)
    stop = threading.Event()
    errors: list[BaseException] = []
    wrong: list[str] = []
    lookups = [0] * 8
    commit_seconds: list[float] = []

    def reader(slot: int) -> None:
        rng = random.Random(slot)
        try:
            while not stop.is_set():
                number = rng.randrange(count + 20)  # some identities are unknown
                key = store.get_key(f"id-{number}")
                if key != (key_of(number) if number < count else None):
                    wrong.append(f"id-{number}")
                lookups[slot] += 1
        except BaseException as error:
            errors.append(error)

    def writer() -> None:
        try:
            with UnitOfWork(writer_manager) as uow:
                session = uow.sessions.create_session(device_id="writer-phone")
                uow.commit()
            for _ in range(40):
                with UnitOfWork(writer_manager) as uow:
                    uow.logs.add_log_batch(
                        [(session.id, "command", "00A4040007A0000000871002")] * 20
                    )
                    started = time.perf_counter()
                    uow.commit()
                    commit_seconds.append(time.perf_counter() - started)
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=reader, args=(slot,)) for slot in range(8)]
    for thread in readers:
        thread.start()
    time.sleep(0.2)  # readers running before the first write
    writing = threading.Thread(target=writer)
    writing.start()
    writing.join(120)
    stop.set()
    for thread in readers:
        thread.join(30)
    store.close()
    if writer_manager is not manager:
        writer_manager.close()

    assert errors == [] and wrong == []
    assert len(commit_seconds) == 40 and min(lookups) > 0
    commit_seconds.sort()
    print(
        f"{backend}: {sum(lookups)} lookups; writer commit p50 "
        f"{commit_seconds[20] * 1000:.1f} ms, max {commit_seconds[-1] * 1000:.1f} ms"
    )
    # Generous: 8 busy reader threads share the GIL and 2 cores with the writer.
    assert commit_seconds[-1] < 5.0
    with UnitOfWork(manager) as uow:
        assert uow.logs.count() == 40 * 20


def test_readers_answer_while_a_writer_holds_its_transaction_open(
    many_keys: tuple[DatabaseManager, int],
) -> None:
    manager, _ = many_keys
    with PSKKeyStore(manager) as store, UnitOfWork(manager) as writing:
        writing.cards.update_psk(iccid_of(1), key=b"\x99" * 16)
        writing.flush()  # the writer now holds its write transaction (SQLite: the write lock)
        started = time.perf_counter()
        assert store.get_key("id-1") == key_of(1)  # the committed key, not the pending one
        assert store.identity_exists("id-2") and len(store.get_all_identities()) == 200
        assert time.perf_counter() - started < 1.0
        writing.commit()
        assert store.get_key("id-1") == b"\x99" * 16


def test_a_closed_key_store_says_so(keyed: DatabaseManager) -> None:
    from cardlink.database import ConnectionError

    store = PSKKeyStore(keyed)
    assert store.get_key("card-001") == key_of(1)
    store.close()
    with pytest.raises(ConnectionError, match="closed"):
        store.get_key("card-001")
    assert "closed" in repr(store)


def test_an_import_refuses_a_key_version_out_of_range_or_a_shared_identity(
    keyed: DatabaseManager,
) -> None:
    row = {
        "iccid": "8300",
        "psk_key_version": 300,
        "created_at": "2026-12-01T00:00:00+00:00",
        "updated_at": "2026-12-01T00:00:00+00:00",
    }
    for extra, refused in (
        ({}, "psk_key_version"),
        ({"psk_key_version": 1, "psk_identity": "card-001"}, "psk_identity"),
    ):
        document = {
            "format": "cardlink-database-export",
            "format_version": 1,
            "tables": {"cards": [{**row, **extra}]},
        }
        with UnitOfWork(keyed) as uow:
            with pytest.raises(ValidationError, match=f"import: cards.*{refused}"):
                DataImporter(uow).import_data(json.dumps(document))
            assert uow.cards.find_by_id("8300") is None


def test_a_trailing_space_makes_another_identity_except_in_mariadbs_unique_index(
    keyed: DatabaseManager, backend: str
) -> None:
    padded = CardProfile(iccid="8400", psk_identity="card-001 ")
    with UnitOfWork(keyed) as uow:
        if backend == "mysql":  # PAD SPACE collation: the index sees the same identity
            with pytest.raises(IntegrityError, match=f"{iccid_of(1)}.*8400"):
                uow.cards.create_with_psk(padded, b"\x01" * 16)
            return
        uow.cards.create_with_psk(padded, b"\x01" * 16)
        uow.commit()
    with PSKKeyStore(keyed) as store:
        assert store.get_key("card-001") == key_of(1)
        assert store.get_key("card-001 ") == b"\x01" * 16


def test_a_key_store_connection_killed_by_the_server_is_replaced_on_the_next_call(
    keyed: DatabaseManager, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("no server to kill a connection")
    with PSKKeyStore(keyed) as store:
        assert store.get_key("card-001") == key_of(1)  # its connection is now open and idle
        admin = create_engine(keyed.config.url)
        try:
            with admin.connect() as connection:
                if backend == "postgresql":
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                else:
                    others = connection.execute(
                        text(
                            "SELECT id FROM information_schema.processlist "
                            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
                        )
                    ).scalars()
                    for thread_id in list(others):
                        connection.execute(text(f"KILL {int(thread_id)}"))
        finally:
            admin.dispose()
        time.sleep(0.2)
        assert store.get_key("card-001") == key_of(1)
        assert store.get_all_identities()[0] == "Zeta"
