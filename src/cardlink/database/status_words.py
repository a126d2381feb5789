"""Classes of APDU status words (SW1 SW2), after ISO/IEC 7816-4 and ETSI TS 102 221.

| SW pattern | class        | meaning                                                    |
|------------|--------------|------------------------------------------------------------|
| 9000       | success      | normal ending of the command                               |
| 91xx       | success      | normal ending; a proactive command of xx bytes is pending  |
| 9240       | error        | memory problem (GSM 11.11)                                 |
| 92xx       | success      | normal ending with extra information (TS 102 221; retries) |
| 61xx       | intermediate | xx response bytes still available (GET RESPONSE)           |
| 6Cxx       | intermediate | wrong Le; re-issue the command with Le = xx                |
| 9Fxx       | intermediate | 2G SIM: xx response bytes available                        |
| 62xx       | warning      | state of non-volatile memory unchanged                     |
| 63xx       | warning      | state of non-volatile memory changed (e.g. 63Cx counters)  |
| other      | error        | 64xx-6Fxx execution/checking errors, 93xx, 94xx, 98xx ...  |

``find_errors`` returns responses whose status word is in the *error* class.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from sqlalchemy import and_, not_, or_

#: (class, prefix) pairs; the first matching prefix decides. Prefixes are upper-case hex.
STATUS_WORD_CLASSES: tuple[tuple[str, str], ...] = (
    ("success", "9000"),
    ("success", "91"),
    ("error", "9240"),
    ("success", "92"),
    ("intermediate", "61"),
    ("intermediate", "6C"),
    ("intermediate", "9F"),
    ("warning", "62"),
    ("warning", "63"),
)


class StatusClass(str, Enum):
    """What a status word says about the command it answers."""

    SUCCESS = "success"
    INTERMEDIATE = "intermediate"
    WARNING = "warning"
    ERROR = "error"


def classify(status_word: str) -> StatusClass:
    """The class of a four-hex-digit status word (any case)."""
    word = status_word.strip().upper()
    for status_class, prefix in STATUS_WORD_CLASSES:
        if word.startswith(prefix):
            return StatusClass(status_class)
    return StatusClass.ERROR


def class_condition(column: Any, status_class: StatusClass | str) -> Any:
    """SQL condition on a status-word column that is true exactly for ``status_class``
    (``classify`` in SQL: the first matching prefix decides, no match is an error)."""
    wanted = StatusClass(status_class).value
    decided: list[Any] = []
    found: list[Any] = []
    for each_class, prefix in STATUS_WORD_CLASSES:
        matches = column.like(f"{prefix}%")
        if each_class == wanted:
            found.append(and_(matches, *(not_(earlier) for earlier in decided)))
        decided.append(matches)
    if wanted == StatusClass.ERROR.value:
        found.append(and_(*(not_(match) for match in decided)))
    return or_(*found)


def error_condition(column: Any) -> Any:
    """SQL condition on a status-word column that is true exactly for the *error* class."""
    return class_condition(column, StatusClass.ERROR)


_HEX_DIGITS = frozenset("0123456789ABCDEF")


def normalize_status_word(status_word: Any) -> str:
    """The stored form of a status word: four upper-case hex digits (``"90 00"`` -> ``"9000"``).

    Raises ``ValueError`` for anything else; the codec names the field.
    """
    if not isinstance(status_word, str):
        raise ValueError(f"must be text like '9000', got {type(status_word).__name__}")
    word = status_word.replace(" ", "").upper()
    if len(word) != 4 or not _HEX_DIGITS.issuperset(word):
        raise ValueError(f"must be four hex digits like '9000', got {status_word[:16]!r}")
    return word


def derive_status_word(raw_response: str | None) -> str | None:
    """SW1 SW2, the last two bytes of a response APDU, or None when it does not end in them."""
    if not raw_response:
        return None
    tail = raw_response.replace(" ", "")[-4:].upper()
    return tail if len(tail) == 4 and _HEX_DIGITS.issuperset(tail) else None
