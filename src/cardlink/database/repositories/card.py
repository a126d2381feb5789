"""Queries for card profiles, and the only door through which PSK keys go in and out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, inspect, select

from ..events import EventType
from ..exceptions import IntegrityError, ValidationError, translated_errors
from ..keystore import identities_query, key_lookup, matching_token, stored_identity
from ..models import CardProfile, CardType
from .base import BaseRepository, check_search_text, snapshot
from .card_keys import rotate_psk_keys
from .guards import SessionOwnerMixin


class CardRepository(SessionOwnerMixin, BaseRepository[CardProfile]):
    """Cards by type, PSK and admin URL; PSK keys stored Fernet-encrypted."""

    model = CardProfile
    entity_type = "card"
    created_event = EventType.CARD_CREATED
    updated_event = EventType.CARD_UPDATED
    deleted_event = EventType.CARD_DELETED
    session_foreign_key = "card_iccid"

    def create_with_psk(self, card: CardProfile, psk_key: bytes) -> CardProfile:
        """Store ``card`` with ``psk_key`` encrypted under the configured Fernet key."""
        card.psk_key_encrypted = self._encrypt(psk_key)
        return self.create(card)

    def get_psk_key(self, iccid: str) -> bytes | None:
        """The decrypted PSK key of the card, or None if it has none."""
        card = self.get_by_id(iccid)
        if card.psk_key_encrypted is None:
            return None
        return self._uow.manager.cipher.decrypt(card.psk_key_encrypted)

    def update_psk(
        self, iccid: str, identity: str | None = None, key: bytes | None = None
    ) -> CardProfile:
        """Replace the PSK identity and/or key of a card."""
        if identity is None and key is None:
            raise ValidationError("update_psk needs a new identity, a new key, or both")
        card = self.get_by_id(iccid)
        if identity is not None:
            self._refuse_identity_held_elsewhere(identity, card.iccid)  # before any change
        if key is not None:
            card.psk_key_encrypted = self._encrypt(key)
        if identity is not None:
            card.psk_identity = identity
        return self.update(card)

    def rotate_keys(self) -> int:
        """Re-encrypt every stored PSK key under the newest configured key; returns the count.

        All or nothing, in this unit of work (commit to keep it); a stored key that no
        configured key opens raises ``EncryptionError`` before anything is rewritten.
        """
        return rotate_psk_keys(self._uow)

    def clear_psk(self, iccid: str) -> CardProfile:
        """Remove the PSK identity and key of a card."""
        card = self.get_by_id(iccid)
        card.psk_identity = None
        card.psk_key_encrypted = None
        return self.update(card)

    def find_by_type(self, card_type: CardType | str) -> list[CardProfile]:
        return self.find_by(card_type=card_type)

    def find_with_psk(self) -> list[CardProfile]:
        """Cards that have both a PSK identity and a key."""
        statement = (
            select(CardProfile)
            .where(
                CardProfile.psk_identity.is_not(None), CardProfile.psk_key_encrypted.is_not(None)
            )
            .order_by(CardProfile.iccid)
        )
        return self._scalars(statement)

    def count_with_stored_key(self) -> int:
        """Cards that have a stored (encrypted) PSK key: what ``rotate_keys`` would look at."""
        statement = select(func.count()).where(CardProfile.psk_key_encrypted.is_not(None))
        with translated_errors():
            return int(self.session.execute(statement).scalar_one())

    def find_by_psk_identity(self, identity: str) -> CardProfile | None:
        """The card that answers to this TLS-PSK identity."""
        return self.find_one_by(psk_identity=identity)

    # -- the TLS-PSK server's questions (see keystore.PSKKeyStore for the thread-safe store) --

    def get_psk_key_by_identity(self, identity: object) -> bytes | None:
        """The decrypted PSK key of the card holding ``identity``, or None (never raises for
        an unknown or impossible identity)."""
        token = self._token_for(identity)
        return None if token is None else self._uow.manager.cipher.decrypt(token)

    def psk_identity_exists(self, identity: object) -> bool:
        """Whether a card holds ``identity`` together with a PSK key."""
        return self._token_for(identity) is not None

    def get_all_psk_identities(self) -> list[str]:
        """Every identity held with a PSK key, sorted by code point (in SQL)."""
        statement = identities_query(self.session.get_bind().dialect.name)
        return list(self.session.scalars(statement))

    def _token_for(self, identity: object) -> str | None:
        wanted = stored_identity(identity)
        if wanted is None:
            return None
        self.session.flush()  # cards written in this unit of work count too
        rows = self.session.execute(key_lookup(), {"identity": wanted})
        return matching_token(rows, wanted)

    def find_by_admin_url(self, url: str) -> list[CardProfile]:
        """Cards whose admin URL starts with ``url`` (a server address finds all its paths).

        Case-insensitive on every backend (SQLite and MySQL LIKE already are, PostgreSQL's is not).
        """
        if not isinstance(url, str) or not url:
            raise ValidationError("admin URL prefix must be a non-empty string")
        check_search_text(url, what="admin URL prefix")
        escaped = url.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = (
            select(CardProfile)
            .where(func.lower(CardProfile.admin_url).like(f"{escaped}%", escape="\\"))
            .order_by(CardProfile.iccid)
        )
        return self._scalars(statement)

    def export_profile(self, iccid: str, include_key: bool = False) -> dict[str, Any]:
        """The card as a JSON-safe dict; the PSK key (hex) only with ``include_key=True``."""
        card = self.get_by_id(iccid)
        profile = snapshot(card)
        profile["has_psk"] = card.has_psk
        if include_key:
            key = self.get_psk_key(iccid)
            profile["psk_key"] = key.hex() if key is not None else None
        return profile

    def _write(self, action: Callable[[], Any]) -> Any:
        """As the base's, but a PSK identity another card holds is refused naming both ICCIDs.

        Checked before the flush (which would otherwise poison the transaction); the
        unique index still refuses a card written at the same moment by another process.
        """
        self._refuse_shared_identity()  # changes already pending (an update)

        def checked() -> Any:
            result = action()
            self._refuse_shared_identity()  # the cards this action adds
            return result

        return super()._write(checked)

    def _refuse_shared_identity(self) -> None:
        """Among new cards and changed identities: two that share one, or one held elsewhere."""
        wanted: dict[str, str] = {}
        for card in (*self.session.new, *self.session.dirty):
            if not isinstance(card, CardProfile) or card.psk_identity is None:
                continue
            state = inspect(card)
            if state.key is not None and not state.attrs.psk_identity.history.has_changes():
                continue
            holder = wanted.setdefault(card.psk_identity, card.iccid)
            if holder != card.iccid:
                raise IntegrityError(_shared_identity(card.psk_identity, holder, card.iccid))
        # MariaDB's collation matches 'id ' to 'id', so its unique index would refuse those too.
        unpadded = {identity.rstrip(" "): iccid for identity, iccid in wanted.items()}
        identities = list(wanted)
        for start in range(0, len(identities), 500):
            with self.session.no_autoflush:
                held = self.session.execute(
                    select(CardProfile.psk_identity, CardProfile.iccid).where(
                        CardProfile.psk_identity.in_(identities[start : start + 500])
                    )
                ).all()
            for identity, iccid in held:
                assert identity is not None  # matched by IN
                newcomer = wanted.get(identity) or unpadded.get(identity.rstrip(" "), iccid)
                if newcomer != iccid:
                    raise IntegrityError(_shared_identity(identity, iccid, newcomer))

    def _refuse_identity_held_elsewhere(self, identity: str, iccid: str) -> None:
        """``IntegrityError`` naming both cards if one other than ``iccid`` holds ``identity``."""
        with self.session.no_autoflush:
            other = self.session.scalar(
                select(CardProfile.iccid)
                .where(CardProfile.psk_identity == identity, CardProfile.iccid != iccid)
                .limit(1)
            )
        if other is not None:
            raise IntegrityError(_shared_identity(identity, other, iccid))

    def _encrypt(self, psk_key: bytes) -> str:
        if isinstance(psk_key, str):
            raise ValidationError("psk_key must be bytes (e.g. bytes.fromhex(...)), not str")
        return self._uow.manager.cipher.encrypt(psk_key)


def _shared_identity(identity: str, holder: str, newcomer: str) -> str:
    return (
        f"PSK identity {identity[:128]!r} already names card {holder!r}; "
        f"card {newcomer!r} cannot have it too (an identity names one card)"
    )
