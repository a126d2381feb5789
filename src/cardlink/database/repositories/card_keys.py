"""PSK key rotation: re-encrypt every stored key under the newest ``CARDLINK_ENCRYPTION_KEY``.

``CARDLINK_ENCRYPTION_KEY`` may hold several comma-separated Fernet keys, newest
first: every configured key decrypts, only the newest encrypts. To retire an old
key, put the new one in front, run the rotation, then drop the old key.

The rotation reads the cards in keyset-ordered chunks (memory stays bounded) and
runs in two passes inside the caller's transaction: the first checks that a
configured key opens every stored token, the second rewrites the ones not yet
under the newest key. A token no key opens stops it before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm.attributes import set_committed_value

from ..crypto import PSKCipher
from ..events import EventType
from ..exceptions import EncryptionError, translated_errors
from ..models import CardProfile
from ..sqlite_locking import lock_for_writing

if TYPE_CHECKING:
    from ..unit_of_work import UnitOfWork

_CARDS = cast(Table, CardProfile.__table__)
_REWRITE = (
    update(_CARDS)
    .where(_CARDS.c.iccid == bindparam("card_iccid"))
    .values(psk_key_encrypted=bindparam("new_token"))
)


def _stored_tokens(uow: UnitOfWork, chunk_size: int) -> Iterator[list[tuple[str, str]]]:
    """(iccid, token) of every card holding a PSK key, in ICCID order, chunk by chunk."""
    last: str | None = None
    while True:
        statement = (
            select(_CARDS.c.iccid, _CARDS.c.psk_key_encrypted)
            .where(_CARDS.c.psk_key_encrypted.is_not(None))
            .order_by(_CARDS.c.iccid)
            .limit(chunk_size)
        )
        if last is not None:
            statement = statement.where(_CARDS.c.iccid > last)
        if not uow.manager.config.is_sqlite:
            statement = statement.with_for_update()  # no concurrent rewrite of a checked row
        with translated_errors():
            chunk = [(iccid, token) for iccid, token in uow.session.execute(statement)]
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def _opens(cipher: PSKCipher, token: str) -> bool:
    try:
        cipher.decrypt(token)
    except EncryptionError:
        return False
    return True


def rotate_psk_keys(uow: UnitOfWork, *, chunk_size: int = 500) -> int:
    """Re-encrypt every stored PSK key under the newest configured key; returns how many changed.

    Runs in ``uow``'s transaction (commit it to keep the result). Raises
    ``EncryptionError`` - naming how many cards, never a key - without writing
    anything if some stored key opens under none of the configured keys.

    Example::

        with UnitOfWork(manager) as uow:
            rotated = uow.cards.rotate_keys()
            uow.commit()
    """
    cipher = uow.manager.cipher
    with translated_errors():
        uow.session.flush()  # rotate what this unit of work has written too
    checked = unreadable = stale = 0
    for chunk in _stored_tokens(uow, chunk_size):
        for _iccid, token in chunk:
            checked += 1
            if cipher.is_current(token):
                continue
            if _opens(cipher, token):
                stale += 1
            else:
                unreadable += 1
    if unreadable:
        raise EncryptionError(
            f"{unreadable} of {checked} stored PSK key(s) open under none of the configured "
            "keys; nothing was re-encrypted (add the key they were written with to "
            "CARDLINK_ENCRYPTION_KEY, after the newest)"
        )
    if not stale:
        return 0
    held = {
        card.iccid: card
        for card in uow.session.identity_map.values()
        if isinstance(card, CardProfile)
    }
    rotated = 0
    lock_for_writing(uow.session)
    with translated_errors(), uow.session.begin_nested():
        for chunk in _stored_tokens(uow, chunk_size):
            rewrites = [
                {"card_iccid": iccid, "new_token": cipher.rotate(token)}
                for iccid, token in chunk
                if not cipher.is_current(token)
            ]
            if rewrites:
                uow.session.connection().execute(_REWRITE, rewrites)
                rotated += len(rewrites)
            for rewrite in rewrites:
                card = held.get(rewrite["card_iccid"])
                if card is not None:
                    set_committed_value(card, "psk_key_encrypted", rewrite["new_token"])
    uow.record(
        EventType.BATCH_COMPLETED,
        "card",
        None,
        {"operation": "rotate_keys", "rotated": rotated, "checked": checked},
    )
    return rotated
