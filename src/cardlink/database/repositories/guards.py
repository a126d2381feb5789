"""Deleting an owner of OTA sessions (a device or a card): refused unless asked to cascade."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import delete, func, select

from ..exceptions import IntegrityError
from ..models import OTASession
from ..sqlite_locking import lock_for_writing


class SessionOwnerMixin:
    """``delete(entity, cascade=False)`` for entities that OTA sessions point at."""

    session_foreign_key: ClassVar[str]

    def _owned_sessions(self, identity: Any) -> Any:
        return getattr(OTASession, self.session_foreign_key) == identity

    def delete(self, entity: Any, cascade: bool = False) -> None:  # type: ignore[override]
        """Delete ``entity``; with sessions it is refused unless ``cascade=True`` (logs go too)."""
        identity = self._identity(entity)  # type: ignore[attr-defined]
        session = self.session  # type: ignore[attr-defined]
        lock_for_writing(session)  # the count below must still hold when the rows go
        owned = session.execute(
            select(func.count()).select_from(OTASession).where(self._owned_sessions(identity))
        ).scalar_one()
        if owned and not cascade:
            raise IntegrityError(
                f"{self.entity_type} {identity!r} has {owned} session(s); "  # type: ignore[attr-defined]
                "delete them first or pass cascade=True"
            )
        if owned:
            # Ids first: after the DELETE, reading an expired session object would fail.
            doomed = session.scalars(select(OTASession.id).where(self._owned_sessions(identity)))
            doomed_ids = set(doomed.all())
            session.execute(
                delete(OTASession)
                .where(self._owned_sessions(identity))
                .execution_options(synchronize_session=False)
            )
            for key, stale in list(session.identity_map.items()):
                if isinstance(stale, OTASession) and key[1][0] in doomed_ids:
                    session.expunge(stale)
        super().delete(entity)  # type: ignore[misc]

    def delete_by_id(self, entity_id: Any, cascade: bool = False) -> bool:  # type: ignore[override]
        """Delete by key; returns whether a row was deleted."""
        entity = self.find_by_id(entity_id)  # type: ignore[attr-defined]
        if entity is None:
            return False
        self.delete(entity, cascade=cascade)
        return True
