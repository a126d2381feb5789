"""Deterministic benchmark data: devices, cards, OTA sessions and their APDU logs.

Everything comes from a seeded ``random.Random``, so two runs (and the raw and the
package side of one run) see exactly the same rows. Values are the Python values an
application holds: UUIDs, aware UTC datetimes, enum members.
"""

from __future__ import annotations

import functools
import operator
import random
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from cardlink.database import CommDirection, SessionStatus, describe_status_word
from cardlink.database.apdu import StoredFields, stored_fields
from cardlink.database.models.log import DECODED_FIELDS
from cardlink.database.pairing import ApduPairer, WireApdu

#: The moment "now" of the data set; sessions start up to 60 days before it.
ANCHOR = datetime.now(timezone.utc).replace(microsecond=0)
SPREAD_DAYS = 60

DEVICES = 20
CARDS = 50

# Status words with their weights: mostly success, some errors and intermediates.
_STATUS_WORDS = (
    ("9000", 80),
    ("6A82", 5),
    ("6982", 4),
    ("6110", 3),
    ("6120", 2),
    ("9110", 3),
    ("9120", 3),
)
_SW_CHOICES = [word for word, weight in _STATUS_WORDS for _ in range(weight)]
_COMMANDS = ("SELECT", "GET STATUS", "INSTALL", "LOAD", "STORE DATA", "PUT KEY", "GET DATA")
_SESSION_STATUSES = (
    [SessionStatus.COMPLETED] * 80
    + [SessionStatus.FAILED] * 10
    + [SessionStatus.TIMEOUT] * 5
    + [SessionStatus.ACTIVE] * 5
)


class SessionRow(NamedTuple):
    """One OTA session as the application would hold it."""

    id: uuid.UUID
    device_id: str
    card_iccid: str
    session_type: str
    status: SessionStatus
    started_at: datetime
    ended_at: datetime | None
    duration_ms: int | None


def device_ids() -> list[str]:
    return [f"RF8M{index:07d}" for index in range(DEVICES)]


def card_iccids() -> list[str]:
    return [f"8901{index:015d}" for index in range(CARDS)]


def _hex(rng: random.Random, low: int, high: int) -> str:
    """Upper-case hex of an even length between ``low`` and ``high`` characters."""
    length = rng.randrange(low // 2, high // 2 + 1)
    return rng.randbytes(length).hex().upper()


def sessions(count: int, *, seed: int, start: int = 0) -> Iterator[SessionRow]:
    """``count`` sessions (numbered from ``start``) spread uniformly over the last 60 days."""
    devices, cards = device_ids(), card_iccids()
    for number in range(start, start + count):
        rng = random.Random(f"{seed}:session:{number}")
        started = ANCHOR - timedelta(seconds=rng.uniform(60, SPREAD_DAYS * 86_400))
        status = rng.choice(_SESSION_STATUSES)
        duration = None if status is SessionStatus.ACTIVE else rng.randrange(200, 20_000)
        yield SessionRow(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            device_id=devices[number % len(devices)],
            card_iccid=cards[number % len(cards)],
            session_type="ota_admin",
            status=status,
            started_at=started,
            ended_at=None if duration is None else started + timedelta(milliseconds=duration),
            duration_ms=duration,
        )


def bulk_sessions(count: int, *, seed: int, start: int) -> Iterator[SessionRow]:
    """Like ``sessions`` but from one random stream: fast enough for a million (W6 growth)."""
    devices, cards = device_ids(), card_iccids()
    rng = random.Random(f"{seed}:bulk-sessions:{start}")
    span = SPREAD_DAYS * 86_400 - 60
    for number in range(start, start + count):
        started = ANCHOR - timedelta(seconds=60 + rng.random() * span)
        status = _SESSION_STATUSES[rng.randrange(len(_SESSION_STATUSES))]
        duration = None if status is SessionStatus.ACTIVE else rng.randrange(200, 20_000)
        yield SessionRow(
            uuid.UUID(int=rng.getrandbits(128), version=4),
            devices[number % len(devices)],
            cards[number % len(cards)],
            "ota_admin",
            status,
            started,
            None if duration is None else started + timedelta(milliseconds=duration),
            duration,
        )


def copied_logs(
    templates: list[SessionRow], targets: list[SessionRow], per_session: int, *, seed: int
) -> Iterator[tuple]:
    """Logs for ``targets``: each copies a template session's logs, moved to its own start.

    Deterministic and cheap (W6 adds 1.8 million logs).
    """
    made: dict[int, list[tuple]] = {}
    for number, target in enumerate(targets):
        which = number % len(templates)
        template = templates[which]
        if which not in made:
            made[which] = logs(template, per_session, seed=seed)
        shift = target.started_at - template.started_at
        session_id = target.id
        for row in made[which]:
            yield (session_id, row[1], row[2], row[3], row[4], row[5], row[6], row[7] + shift)


def logs(session: SessionRow, count: int, *, seed: int) -> list[tuple]:
    """``count`` logs of one session: the guide's batch tuples, command/response pairs."""
    rng = random.Random(f"{seed}:logs:{session.id}")
    moment = session.started_at
    rows = []
    for index in range(count):
        moment = moment + timedelta(microseconds=rng.randrange(500, 40_000))
        latency = round(rng.uniform(0.5, 120.0), 3)
        if index % 2 == 0:
            name = rng.choice(_COMMANDS)
            rows.append(
                (
                    session.id,
                    CommDirection.COMMAND,
                    _hex(rng, 10, 60),
                    name,
                    None,
                    None,
                    latency,
                    moment,
                )
            )
        else:
            word = rng.choice(_SW_CHOICES)
            raw = _hex(rng, 6, 56) + word
            message = "Success" if word == "9000" else None
            rows.append(
                (session.id, CommDirection.RESPONSE, raw, None, word, message, latency, moment)
            )
    return rows


def logs_for(all_sessions: list[SessionRow], per_session: int, *, seed: int) -> Iterator[tuple]:
    """The logs of many sessions, session after session."""
    for session in all_sessions:
        yield from logs(session, per_session, seed=seed)


#: The columns a log row stores beyond the guide's tuple: the key, the decoded command
#: fields (as the model marks them) and the command a response answers.
STORED_EXTRAS = ("id", *DECODED_FIELDS, "command_id")


class StoredLogs:
    """The raw side's own derivation of what the package stores for the guide's tuples:
    each response with its status word's meaning, and per row the values of
    ``STORED_EXTRAS`` with ids from ``first_id`` on.

    Called chunk by chunk in the raw side's timing (W1), since the package does this work
    in its own: the fastest plain way, with the package's own decoder (``stored_fields``),
    pairer and status-word table, each remembered as the package remembers them. Pairing
    carries from one chunk to the next, as the package's does.
    """

    columns = STORED_EXTRAS

    def __init__(self, *, first_id: int = 1) -> None:
        self.next_id = first_id
        self.pairers: dict[uuid.UUID, ApduPairer] = {}
        self.seconds = 0.0  # spent deriving, for the figure of the writes alone

    def __call__(self, rows: list[tuple]) -> tuple[list[tuple], list[tuple]]:
        started = time.perf_counter()
        stored: list[tuple] = []
        extras: list[tuple] = []
        pairers, decoded, meaning, pick = self.pairers, _decoded, _meaning, _pick
        empty = (None,) * len(DECODED_FIELDS)
        for key, row in enumerate(rows, start=self.next_id):
            session_id, direction, raw_data, _, word, message = row[:6]
            pairer = pairers.get(session_id)
            if pairer is None:
                pairer = pairers[session_id] = ApduPairer()
            if direction is CommDirection.COMMAND:
                fields = decoded(raw_data)
                channel = 0 if fields is None else fields.channel or 0
                pairer.add(WireApdu("command", raw_data, channel, key=key))
                stored.append(row)
                extras.append((key, *(empty if fields is None else pick(fields)), None))
                continue
            link = pairer.add(WireApdu("response", raw_data, key=key)).command_key
            if message is None and word is not None:
                row = (*row[:5], meaning(word), *row[6:])
            stored.append(row)
            extras.append((key, *empty, link))
        self.next_id += len(rows)
        self.seconds += time.perf_counter() - started
        return stored, extras


_decoded = functools.lru_cache(maxsize=4096)(stored_fields)
_meaning = functools.lru_cache(maxsize=1024)(describe_status_word)
#: The decoded fields in the model's column order.
_pick = operator.itemgetter(*(StoredFields._fields.index(name) for name in DECODED_FIELDS.values()))
