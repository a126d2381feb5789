"""Where an OTA session went wrong: its first error response and the command it answered.

Used by the JUnit export (``<system-out>``) and the run report. The pair is the
stored one: an error response and the command its ``command_id`` names.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from ..exceptions import ValidationError
from ..models import CommDirection, CommLog
from ..reports.inputs import FailingExchange
from ..status_words import error_condition


def failing_exchanges(
    session: Session, session_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, FailingExchange]:
    """The first failing command/response pair of each session that has one."""
    if not session_ids:
        return {}
    command = aliased(CommLog, name="command")
    errors = (
        select(
            CommLog.session_id,
            command.raw_data.label("command_apdu"),
            CommLog.status_word,
            func.row_number()
            .over(partition_by=CommLog.session_id, order_by=(CommLog.timestamp, CommLog.id))
            .label("nth"),
        )
        .join(command, CommLog.command_id == command.id)
        .where(
            CommLog.session_id.in_(list(session_ids)),
            CommLog.direction == CommDirection.RESPONSE,
            CommLog.status_word.is_not(None),
            error_condition(CommLog.status_word),
        )
        .subquery("errors")
    )
    statement = select(errors.c.session_id, errors.c.command_apdu, errors.c.status_word).where(
        errors.c.nth == 1
    )
    found: dict[uuid.UUID, FailingExchange] = {}
    for session_id, command_apdu, status_word in session.execute(statement):
        try:
            found[session_id] = FailingExchange.from_apdu(
                command_apdu or "", status_word, session_id=str(session_id)
            )
        except ValidationError:  # a command logged as text that is not hex
            found[session_id] = FailingExchange(
                "?", status_word, "unreadable command", session_id=str(session_id)
            )
    return found
