"""Queries on the stored decoded columns: command/response pairs, commands by name or INS,
and per-command statistics, in SQL on every backend.

A pair comes from ``command_id`` (set on insert, see ``log_links``); a command's
status word and latency are its response's. ``command_stats`` computes the 95th
percentile by nearest rank with window functions (``ROW_NUMBER`` and ``COUNT``
over the command name), which SQLite (3.25+), MariaDB and PostgreSQL all run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from ..exceptions import ValidationError, translated_errors
from ..models import CommDirection, CommLog
from ..status_words import StatusClass, class_condition
from ..types import to_uuid
from .base import _slice, cutoff_before

if TYPE_CHECKING:
    from .log import LogRepository

_COMMAND = CommDirection.COMMAND
#: An instruction byte as text: ``A4``, ``a4``, ``0xA4``.
_INS_TEXT = re.compile(r"^(?:0[xX])?([0-9A-Fa-f]{2})$")
#: The percentile ``command_stats`` reports, as a whole percentage (nearest rank).
PERCENTILE = 95


@dataclass(frozen=True)
class CommandStats:
    """One command name's figures: how often it was sent and how its responses went.

    ``errors`` and ``warnings`` count responses by status-word class (``status_words``);
    latencies are the responses' ``latency_ms`` (None when none was logged).
    """

    command_name: str
    count: int
    errors: int
    warnings: int
    mean_latency_ms: float | None
    p95_latency_ms: float | None


def pairs(logs: LogRepository, session_id: Any) -> list[tuple[CommLog, CommLog | None]]:
    """The session's commands in wire order, each with the response that answers it.

    One read of the session's logs (``find_by_session``'s prepared statement), put
    together by ``command_id``; a command linked twice keeps its first response.
    """
    session_logs = logs.find_by_session(session_id)
    answers: dict[int, CommLog] = {}
    for log in session_logs:
        if log.command_id is not None and log.direction is not _COMMAND:
            answers.setdefault(log.command_id, log)
    return [(log, answers.get(log.id)) for log in session_logs if log.direction is _COMMAND]


def command_condition(name_or_ins: Any, logs: Any = CommLog) -> Any:
    """The SQL condition for ``find_by_command``: an INS (int, or two hex digits) or a name.

    ``logs`` is the entity it tests: ``CommLog`` or an alias of it.
    """
    if isinstance(name_or_ins, bool):
        raise ValidationError(f"command must be a name or an INS byte, got {name_or_ins!r}")
    if isinstance(name_or_ins, int):
        if not 0 <= name_or_ins <= 0xFF:
            raise ValidationError(f"INS must be between 0x00 and 0xFF, got {name_or_ins}")
        return logs.ins == name_or_ins
    if not isinstance(name_or_ins, str) or not name_or_ins.strip():
        shown = repr(name_or_ins)[:32]
        raise ValidationError(
            f"command must be a name like 'SELECT' or an INS like 'A4', got {shown}"
        )
    text = name_or_ins.strip()
    matched = _INS_TEXT.match(text)
    if matched:
        return logs.ins == int(matched.group(1), 16)
    # Stored names are upper case, an INSTALL's purpose lower case: "INSTALL [for load]".
    head, bracket, purpose = " ".join(text.split()).partition(" [")
    name = head.upper() + bracket + purpose.lower()
    if len(name) > 64:
        raise ValidationError(f"command name is longer than 64 characters: {text[:32]!r}...")
    # "INSTALL" also finds "INSTALL [for load]" and the other purposes.
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(logs.command_name == name, logs.command_name.like(f"{escaped} [%", escape="\\"))


def find_by_command(
    logs: LogRepository,
    name_or_ins: Any,
    session_id: Any = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[CommLog]:
    """Commands by name (``"SELECT"``, any case) or INS (``0xA4``, ``"A4"``), in time order."""
    condition = (CommLog.direction == _COMMAND) & command_condition(name_or_ins)
    if session_id is not None:
        condition = condition & (CommLog.session_id == to_uuid(session_id))
    logs.flush_batch()
    statement = select(CommLog).where(condition).order_by(CommLog.timestamp, CommLog.id)
    return logs._scalars(_slice(statement, limit, offset))


def command_stats(
    logs: LogRepository, session_id: Any = None, days: float | None = None
) -> list[CommandStats]:
    """Per command name: count, error and warning responses, mean and p95 latency (in SQL).

    Commands without a name (undecodable, unknown INS) are left out. Most sent first.
    """
    command = CommLog
    response = aliased(CommLog, name="response")
    conditions = [command.direction == _COMMAND, command.command_name.is_not(None)]
    if session_id is not None:
        conditions.append(command.session_id == to_uuid(session_id))
    if days is not None:
        conditions.append(command.timestamp >= cutoff_before(days, unit="days", name="days"))
    latency = response.latency_ms
    name = command.command_name
    word = response.status_word
    answered = (
        select(
            name.label("name"),
            case((class_condition(word, StatusClass.ERROR), 1), else_=0).label("error"),
            case((class_condition(word, StatusClass.WARNING), 1), else_=0).label("warning"),
            latency.label("latency"),
            func.row_number()
            .over(partition_by=(name, latency.is_(None)), order_by=latency)
            .label("rank"),
            func.count(latency).over(partition_by=name).label("timed"),
        )
        .select_from(command)
        .outerjoin(response, response.command_id == command.id)
        .where(and_(*conditions))
        .subquery("answered")
    )
    row = answered.c
    nearest = row.rank * 100 >= row.timed * PERCENTILE
    count = func.count()
    statement = (
        select(
            row.name,
            count,
            func.coalesce(func.sum(row.error), 0),
            func.coalesce(func.sum(row.warning), 0),
            func.avg(row.latency),
            func.min(case((and_(row.latency.is_not(None), nearest), row.latency))),
        )
        .group_by(row.name)
        .order_by(count.desc(), row.name)
    )
    logs.flush_batch()
    with translated_errors():
        found = logs.session.execute(statement).all()
    return [
        CommandStats(
            str(command_name),
            int(total),
            int(errors),
            int(warnings),
            None if mean is None else float(mean),
            None if p95 is None else float(p95),
        )
        for command_name, total, errors, warnings, mean, p95 in found
    ]


__all__ = ["PERCENTILE", "CommandStats", "command_stats", "find_by_command", "pairs"]
