"""Key rotation: several keys newest first, old tokens still open, one all-or-nothing rewrite.

``CARDLINK_ENCRYPTION_KEY`` may hold several comma-separated Fernet keys, newest
first. ``uow.cards.rotate_keys()`` (and ``cardlink-db rotate-key``) re-encrypts
every stored PSK key under the newest one in the caller's transaction and
reports the count; a stored key no configured key opens stops it before
anything is rewritten.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from cardlink.database import (
    CardProfile,
    DatabaseManager,
    EncryptionError,
    EventType,
    UnitOfWork,
    get_emitter,
    rotate_psk_keys,
)

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
STRANGER_KEY = Fernet.generate_key().decode()


def psk(number: int) -> bytes:
    return bytes([number % 256]) * 16


def stored_tokens(manager: DatabaseManager) -> dict[str, str | None]:
    with manager.engine.connect() as connection:
        rows = connection.execute(select(CardProfile.iccid, CardProfile.psk_key_encrypted))
        return dict(rows.all())  # type: ignore[arg-type]


def use_keys(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    monkeypatch.setenv("CARDLINK_ENCRYPTION_KEY", ",".join(keys))


@pytest.fixture
def old_cards(manager: DatabaseManager, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Five cards whose PSK keys were written under OLD_KEY, and one card without a key."""
    use_keys(monkeypatch, OLD_KEY)
    iccids = [f"89000000000000000{number:02d}" for number in range(5)]
    with UnitOfWork(manager) as uow:
        for number, iccid in enumerate(iccids):
            uow.cards.create_with_psk(
                CardProfile(iccid=iccid, psk_identity=f"id{number}"), psk(number)
            )
        uow.cards.create(CardProfile(iccid="8900000000000000099"))
        uow.commit()
    return iccids


def test_several_keys_newest_first_open_old_tokens_and_encrypt_with_the_newest(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key(old_cards[0]) == psk(0)
        uow.cards.create_with_psk(CardProfile(iccid="8911"), b"fresh key 16 byt")
        uow.commit()
    token = stored_tokens(manager)["8911"]
    assert token is not None
    assert Fernet(NEW_KEY.encode()).decrypt(token.encode()) == b"fresh key 16 byt"


def test_rotation_rewrites_every_stored_key_under_the_newest_and_reports_the_count(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored_tokens(manager)
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        uow.cards.create_with_psk(CardProfile(iccid="8911"), b"already current!")
        assert uow.cards.rotate_keys() == len(old_cards)  # the new card was already current
        uow.commit()
    after = stored_tokens(manager)
    assert after["8900000000000000099"] is None
    for iccid in old_cards:
        assert after[iccid] != before[iccid]
    use_keys(monkeypatch, NEW_KEY)  # the old key can now be dropped
    with UnitOfWork(manager) as uow:
        assert [uow.cards.get_psk_key(iccid) for iccid in old_cards] == [psk(n) for n in range(5)]
        assert uow.cards.get_psk_key("8911") == b"already current!"
        assert uow.cards.rotate_keys() == 0  # nothing left to rotate


def test_rotation_in_small_chunks_covers_every_card(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        assert rotate_psk_keys(uow, chunk_size=2) == len(old_cards)
        uow.commit()
    use_keys(monkeypatch, NEW_KEY)
    with UnitOfWork(manager) as uow:
        assert all(uow.cards.get_psk_key(iccid) is not None for iccid in old_cards)


def test_rotation_is_undone_when_the_unit_of_work_is_not_committed(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = stored_tokens(manager)
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        assert uow.cards.rotate_keys() == len(old_cards)
    assert stored_tokens(manager) == before


def test_a_card_held_by_the_unit_of_work_sees_its_new_token(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        card = uow.cards.get_by_id(old_cards[1])
        uow.cards.rotate_keys()
        assert card.psk_key_encrypted == stored_tokens_in(uow, old_cards[1])
        uow.commit()
    use_keys(monkeypatch, NEW_KEY)
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key(old_cards[1]) == psk(1)


def stored_tokens_in(uow: UnitOfWork, iccid: str) -> str:
    statement = select(CardProfile.psk_key_encrypted).where(CardProfile.iccid == iccid)
    return str(uow.session.execute(statement).scalar_one())


def test_rotation_announces_one_batch_event_after_commit(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    get_emitter().on(EventType.BATCH_COMPLETED, seen.append)
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        uow.cards.rotate_keys()
        assert seen == []
        uow.commit()
    assert [event.data["operation"] for event in seen] == ["rotate_keys"]
    assert seen[0].data["rotated"] == len(old_cards)
    assert OLD_KEY not in repr(seen[0].data) and NEW_KEY not in repr(seen[0].data)


@pytest.mark.parametrize(
    "configured",
    [(NEW_KEY,), (NEW_KEY, STRANGER_KEY)],
    ids=["old key missing", "wrong key instead of the old one"],
)
def test_a_key_that_opens_no_stored_token_is_caught_before_anything_is_rewritten(
    manager: DatabaseManager,
    old_cards: list[str],
    monkeypatch: pytest.MonkeyPatch,
    configured: tuple[str, ...],
) -> None:
    before = stored_tokens(manager)
    use_keys(monkeypatch, *configured)
    with UnitOfWork(manager) as uow:
        with pytest.raises(EncryptionError) as raised:
            uow.cards.rotate_keys()
        uow.commit()  # even committing afterwards writes nothing
    message = str(raised.value)
    assert f"{len(old_cards)} of {len(old_cards)} stored PSK key(s)" in message
    assert "nothing was re-encrypted" in message
    for secret in (OLD_KEY, NEW_KEY, STRANGER_KEY, *before.values()):
        assert secret is None or secret not in message
    assert stored_tokens(manager) == before


def test_one_unreadable_token_among_good_ones_stops_the_whole_rotation(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = Fernet(STRANGER_KEY.encode()).encrypt(b"written elsewhere").decode()
    with manager.engine.begin() as connection:
        connection.execute(
            update(CardProfile.__table__)
            .where(CardProfile.__table__.c.iccid == old_cards[-1])
            .values(psk_key_encrypted=foreign)
        )
    before = stored_tokens(manager)
    use_keys(monkeypatch, NEW_KEY, OLD_KEY)
    with UnitOfWork(manager) as uow:
        with pytest.raises(EncryptionError, match=r"^1 of 5 stored PSK key\(s\)"):
            rotate_psk_keys(uow, chunk_size=2)  # the bad token is in the last chunk
        uow.commit()
    assert stored_tokens(manager) == before


# -- the command line ---------------------------------------------------------------------


def run_rotate_key(manager: DatabaseManager, *arguments: str, keys: str) -> Result:
    from cardlink.database.cli import cli

    url = manager.config.url.render_as_string(hide_password=False)
    return CliRunner().invoke(
        cli,
        ["--database-url", url, "rotate-key", *arguments],
        env={"CARDLINK_ENCRYPTION_KEY": keys},
    )


def test_rotate_key_command_re_encrypts_and_reports_the_count(
    manager: DatabaseManager, old_cards: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_rotate_key(manager, "--yes", keys=f"{NEW_KEY},{OLD_KEY}")
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 5 PSK key(s) under the newest key (0 already current)" in result.output
    assert OLD_KEY not in result.output and NEW_KEY not in result.output
    use_keys(monkeypatch, NEW_KEY)
    with UnitOfWork(manager) as uow:
        assert uow.cards.get_psk_key(old_cards[4]) == psk(4)
    again = run_rotate_key(manager, "--yes", keys=NEW_KEY)
    assert "Re-encrypted 0 PSK key(s) under the newest key (5 already current)" in again.output


def test_rotate_key_command_with_a_wrong_key_fails_in_one_line_and_changes_nothing(
    manager: DatabaseManager, old_cards: list[str]
) -> None:
    before = stored_tokens(manager)
    result = run_rotate_key(manager, "--yes", keys=f"{NEW_KEY},{STRANGER_KEY}")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert lines == [
        "Error: 5 of 5 stored PSK key(s) open under none of the configured keys; nothing was "
        "re-encrypted (add the key they were written with to CARDLINK_ENCRYPTION_KEY, after "
        "the newest)"
    ]
    assert all(key not in result.output for key in (OLD_KEY, NEW_KEY, STRANGER_KEY))
    assert stored_tokens(manager) == before


def test_rotate_key_command_asks_first_and_refuses_without_a_terminal(
    manager: DatabaseManager, old_cards: list[str]
) -> None:
    before = stored_tokens(manager)
    result = run_rotate_key(manager, keys=f"{NEW_KEY},{OLD_KEY}")
    assert result.exit_code == 1
    assert "pass --yes" in result.output
    assert stored_tokens(manager) == before


def test_rotate_key_command_without_a_key_says_so(manager: DatabaseManager) -> None:
    result = run_rotate_key(manager, "--yes", keys="")
    assert result.exit_code == 1
    assert "CARDLINK_ENCRYPTION_KEY not set" in result.output
