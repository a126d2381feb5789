"""The enumerations of the guide; each member is stored as its lower-case value."""

from __future__ import annotations

from ..types import LabelledEnum


class DeviceType(LabelledEnum):
    """What kind of device carries the card under test."""

    PHONE = "phone"
    MODEM = "modem"


class CardType(LabelledEnum):
    """The UICC application type of a card profile."""

    SIM = "sim"
    USIM = "usim"
    ISIM = "isim"
    EUICC = "euicc"


class SessionStatus(LabelledEnum):
    """Lifecycle of an OTA session: PENDING → ACTIVE → COMPLETED | FAILED | TIMEOUT."""

    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"

    @property
    def is_final(self) -> bool:
        """True once the session has ended, whatever the outcome."""
        return self in (SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.TIMEOUT)


class CommDirection(LabelledEnum):
    """Which way an APDU went: a command to the card or the card's response."""

    COMMAND = "command"
    RESPONSE = "response"


class TestStatus(LabelledEnum):
    """Outcome of one test case."""

    __test__ = False  # not a pytest test class

    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"
