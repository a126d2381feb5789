"""CardRepository and PSK encryption: the key is only ever stored, shown and exported encrypted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from cardlink.database import (
    CardProfile,
    CardType,
    DatabaseManager,
    EncryptionError,
    EventType,
    NotFoundError,
    UnitOfWork,
    ValidationError,
    get_emitter,
)

PSK = b"my_secret_psk_key_16"


@pytest.fixture
def cards(manager: DatabaseManager) -> DatabaseManager:
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(
            CardProfile(
                iccid="89011234567890123456",
                card_type=CardType.USIM,
                psk_identity="card_001",
                admin_url="https://admin.example.com:8443/api",
            ),
            PSK,
        )
        uow.cards.create(
            CardProfile(
                iccid="8902", card_type=CardType.SIM, admin_url="https://other.example.com/x"
            )
        )
        uow.cards.create(
            CardProfile(
                iccid="8903", card_type=CardType.USIM, admin_url="https://admin_example.com/"
            )
        )
        uow.commit()
    return manager


def raw_rows(manager: DatabaseManager) -> str:
    with manager.engine.connect() as connection:
        return repr([tuple(row) for row in connection.execute(text("SELECT * FROM cards"))])


def test_create_with_psk_stores_only_a_fernet_token(cards: DatabaseManager) -> None:
    rows = raw_rows(cards)
    assert PSK.decode() not in rows and PSK.hex() not in rows and PSK.hex().upper() not in rows
    with UnitOfWork(cards) as uow:
        card = uow.cards.get_by_id("89011234567890123456")
        assert card.psk_key_encrypted and card.psk_key_encrypted.startswith("gAAAA")
        assert card.has_psk


def test_get_psk_key_returns_the_bytes_or_none(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow:
        assert uow.cards.get_psk_key("89011234567890123456") == PSK
        assert uow.cards.get_psk_key("8902") is None
        with pytest.raises(NotFoundError):
            uow.cards.get_psk_key("0000")


def test_update_psk_replaces_identity_key_or_both(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow:
        uow.cards.update_psk("89011234567890123456", identity="new_identity")
        uow.cards.update_psk("8902", key=b"fresh-key")
        uow.commit()
    with UnitOfWork(cards) as uow:
        first = uow.cards.get_by_id("89011234567890123456")
        assert first.psk_identity == "new_identity" and uow.cards.get_psk_key(first.iccid) == PSK
        assert uow.cards.get_psk_key("8902") == b"fresh-key"
        with pytest.raises(ValidationError, match="identity, a new key"):
            uow.cards.update_psk("8902")


def test_a_psk_given_as_text_is_refused(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow, pytest.raises(ValidationError, match="bytes"):
        uow.cards.create_with_psk(CardProfile(iccid="8909"), "text-key")  # type: ignore[arg-type]


def test_find_by_type_and_find_with_psk(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow:
        assert [c.iccid for c in uow.cards.find_by_type(CardType.USIM)] == [
            "89011234567890123456",
            "8903",
        ]
        assert [c.iccid for c in uow.cards.find_by_type("sim")] == ["8902"]
        assert [c.iccid for c in uow.cards.find_with_psk()] == ["89011234567890123456"]


def test_find_by_admin_url_matches_a_prefix_literally(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow:
        assert [c.iccid for c in uow.cards.find_by_admin_url("https://admin.example.com")] == [
            "89011234567890123456"
        ]
        assert [c.iccid for c in uow.cards.find_by_admin_url("https://admin_")] == ["8903"]
        assert len(uow.cards.find_by_admin_url("https://")) == 3
        assert uow.cards.find_by_admin_url("https://admin.example.com:9999") == []
        # Case-insensitive on every backend (PostgreSQL's LIKE alone is not).
        assert len(uow.cards.find_by_admin_url("HTTPS://Admin.Example.com")) == 1


def test_export_profile_leaves_the_key_out_unless_asked(cards: DatabaseManager) -> None:
    with UnitOfWork(cards) as uow:
        profile = uow.cards.export_profile("89011234567890123456")
        assert profile["iccid"] == "89011234567890123456" and profile["card_type"] == "usim"
        assert profile["has_psk"] is True
        assert "psk_key" not in profile and "psk_key_encrypted" not in profile
        assert PSK.hex() not in repr(profile)
        with_key = uow.cards.export_profile("89011234567890123456", include_key=True)
        assert with_key["psk_key"] == PSK.hex()


def test_card_events_never_carry_the_key(cards: DatabaseManager) -> None:
    seen: list[Any] = []
    get_emitter().on("*", seen.append)
    with UnitOfWork(cards) as uow:
        uow.cards.create_with_psk(CardProfile(iccid="8999", psk_identity="x"), PSK)
        uow.cards.update_psk("8999", key=b"another-key")
        uow.commit()
    assert [event.event_type for event in seen] == [EventType.CARD_CREATED, EventType.CARD_UPDATED]
    shown = repr([event.data for event in seen])
    # An update names the changed field, never its value.
    assert "gAAAA" not in shown and PSK.decode() not in shown and "another-key" not in shown
    assert all("psk_key_encrypted" not in event.data for event in seen)


def test_the_psk_plaintext_never_reaches_sql_logs(
    cards: DatabaseManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cards.engine.echo = True
    try:
        with UnitOfWork(cards) as uow:
            uow.cards.create_with_psk(CardProfile(iccid="8999"), PSK)
            uow.cards.get_psk_key("8999")
            uow.commit()
    finally:
        cards.engine.echo = False
    assert "INSERT INTO cards" in caplog.text
    assert PSK.decode() not in caplog.text and PSK.hex() not in caplog.text


# -- EncryptionError ----------------------------------------------------------------------


def test_no_key_set_is_the_guides_encryption_error(
    manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDLINK_ENCRYPTION_KEY")
    with UnitOfWork(manager) as uow, pytest.raises(EncryptionError) as caught:
        uow.cards.create_with_psk(CardProfile(iccid="8901"), PSK)
    assert str(caught.value) == "CARDLINK_ENCRYPTION_KEY not set"


def test_a_malformed_key_is_an_encryption_error_without_the_key(
    manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", "not-a-fernet-key-SECRETPART")
    with UnitOfWork(manager) as uow, pytest.raises(EncryptionError, match="malformed") as caught:
        uow.cards.create_with_psk(CardProfile(iccid="8901"), PSK)
    assert "SECRETPART" not in str(caught.value)


def test_a_wrong_key_is_invalid_key_or_corrupted_data(
    cards: DatabaseManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", Fernet.generate_key().decode())
    with UnitOfWork(cards) as uow, pytest.raises(EncryptionError) as caught:
        uow.cards.get_psk_key("89011234567890123456")
    assert str(caught.value) == "Invalid key or corrupted data"


def test_a_new_key_listed_first_still_reads_keys_stored_under_the_old_one(
    cards: DatabaseManager, monkeypatch: pytest.MonkeyPatch, encryption_key: str
) -> None:
    newest = Fernet.generate_key().decode()
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", f"{newest},{encryption_key}")
    with UnitOfWork(cards) as uow:
        assert uow.cards.get_psk_key("89011234567890123456") == PSK
        uow.cards.update_psk("8902", key=b"under-newest")
        uow.commit()
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", newest)
    with UnitOfWork(cards) as uow:
        assert uow.cards.get_psk_key("8902") == b"under-newest"
