"""Pairing APDU responses with the commands they answer, in wire order, batch after batch.

The rule (pySim-trace and Wireshark read traces the same way): a response answers
the newest unanswered command of its logical channel. A response whose channel is
unknown answers the newest unanswered command of any channel; one that finds no
command is kept, unpaired. Two T=0 habits are followed as chains: after ``61xx``
(or GSM's ``9Fxx``) a GET RESPONSE on the same channel continues the command, and
after ``6Cxx`` the same command re-sent continues it. ``ApduPairer`` holds only the
open commands per channel and the chain marks, so a log writer can feed it one batch
at a time, or save its ``state`` and resume later.

>>> pairer = ApduPairer()
>>> pairer.add(WireApdu("command", "00A4040007A0000001510000", key=1)).command_key
>>> pairer.add(WireApdu("response", "6114", key=2)).command_key
1
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

from .apdu import decode_apdu

#: Unanswered commands kept per channel; older ones can no longer be answered.
MAX_OPEN_PER_CHANNEL = 32

_CONTINUE_AFTER = {0x61: "get-response", 0x9F: "get-response", 0x6C: "re-issue"}


@dataclass(frozen=True)
class WireApdu:
    """One APDU as seen on the wire; ``key`` is the caller's handle (a log id, an index)."""

    direction: str
    hex: str
    channel: int | None = None
    timestamp: datetime | None = None
    latency_ms: float | None = None
    key: Hashable | None = None

    @property
    def is_command(self) -> bool:
        return str(getattr(self.direction, "value", self.direction)).lower() == "command"


@dataclass(frozen=True)
class PairLink:
    """What the pairer decided about one APDU.

    On a response, ``command_key`` is the command it answers (``None``: no command).
    On a command, ``continues`` is the first command of the chain it belongs to (a GET
    RESPONSE after ``61xx``, a re-issue after ``6Cxx``), else ``None``.
    """

    key: Hashable | None
    channel: int | None
    command_key: Hashable | None = None
    continues: Hashable | None = None


class OpenCommand(NamedTuple):
    """A command waiting for its response: enough to pair it and to follow its chain.

    A named tuple, not a dataclass: a log writer makes one per command it stores.
    """

    key: Hashable | None
    channel: int
    header: bytes  # CLA INS P1 P2
    sequence: int
    chain_head: Hashable | None = None


@dataclass(frozen=True)
class ChainMark:
    """A channel's last answer asked for a follow-up: GET RESPONSE or a re-issue."""

    head: Hashable | None
    follow_up: str
    header: bytes


@dataclass(frozen=True)
class PairingState:
    """Everything the pairer remembers; plain data, to save between batches."""

    open_commands: tuple[OpenCommand, ...] = ()
    chain_marks: tuple[tuple[int, ChainMark], ...] = ()
    sequence: int = 0


class ApduPairer:
    """Pairs each response with the newest unanswered command of its channel."""

    def __init__(self, state: PairingState | None = None) -> None:
        self._open: dict[int, list[OpenCommand]] = {}
        self._marks: dict[int, ChainMark] = {}
        self._sequence = 0
        if state is None:
            return
        for command in state.open_commands:
            self._open.setdefault(command.channel, []).append(command)
        self._marks = dict(state.chain_marks)
        self._sequence = state.sequence

    @property
    def state(self) -> PairingState:
        """The open commands (oldest first) and chain marks, to resume from later."""
        commands = sorted(
            (command for stack in self._open.values() for command in stack),
            key=lambda command: command.sequence,
        )
        return PairingState(tuple(commands), tuple(sorted(self._marks.items())), self._sequence)

    def add(self, apdu: WireApdu) -> PairLink:
        """Take the next APDU in wire order and say what it pairs with."""
        if apdu.is_command:
            return self._command(apdu)
        return self._response(apdu)

    def add_all(self, apdus: Iterable[WireApdu]) -> list[PairLink]:
        return [self.add(apdu) for apdu in apdus]

    def _command(self, apdu: WireApdu) -> PairLink:
        channel = apdu.channel
        if channel is None:
            channel = decode_apdu(apdu.hex).channel or 0
        head = self.add_command(apdu.key, channel, header_of(apdu.hex))
        return PairLink(apdu.key, channel, continues=head)

    def _response(self, apdu: WireApdu) -> PairLink:
        channel, command_key = self.add_response(apdu.key, sw1_of(apdu.hex), apdu.channel)
        return PairLink(apdu.key, channel, command_key=command_key)

    def add_command(self, key: Hashable | None, channel: int, header: bytes) -> Hashable | None:
        """``add`` for a command already read: its channel and CLA INS P1 P2. Returns the
        chain's first command when it continues one (see ``PairLink.continues``)."""
        head = None
        if self._marks:
            mark = self._marks.pop(channel, None)
            if mark is not None and len(header) == 4:
                get_response = mark.follow_up == "get-response" and header[1] == 0xC0
                reissue = mark.follow_up == "re-issue" and header == mark.header
                head = mark.head if get_response or reissue else None
        self._sequence += 1
        stack = self._open.get(channel)
        if stack is None:
            stack = self._open[channel] = []
        stack.append(OpenCommand(key, channel, header, self._sequence, head))
        if len(stack) > MAX_OPEN_PER_CHANNEL:
            del stack[:-MAX_OPEN_PER_CHANNEL]
        return head

    def add_response(
        self, key: Hashable | None, sw1: int | None, channel: int | None = None
    ) -> tuple[int | None, Hashable | None]:
        """``add`` for a response already read: its SW1 (None if it has none) and channel,
        if known. Returns (the channel, the key of the command it answers or None)."""
        if channel is None:
            tops = [stack[-1] for stack in self._open.values() if stack]
            if not tops:
                return None, None
            channel = max(tops, key=lambda command: command.sequence).channel
        stack = self._open.get(channel)
        if not stack:
            return channel, None
        command = stack.pop()
        follow_up = _CONTINUE_AFTER.get(sw1) if sw1 is not None else None
        if follow_up is not None:
            head = command.chain_head if command.chain_head is not None else command.key
            self._marks[channel] = ChainMark(head, follow_up, command.header)
        elif self._marks:
            self._marks.pop(channel, None)
        return channel, command.key


@dataclass(frozen=True)
class ApduPair:
    """A command and its response in wire order; either may be missing."""

    command: WireApdu | None
    response: WireApdu | None
    continues: int | None = None  # index in the pair list of the chain's first command


def pair_apdus(apdus: Iterable[WireApdu]) -> list[ApduPair]:
    """Pairs in the order their commands went out; an unpaired response stands alone.

    ``continues`` points at the pair of the chain's first command (see ``ApduPairer``).
    """
    pairer = ApduPairer()
    pairs: list[ApduPair] = []
    pair_of_command: dict[Hashable, int] = {}
    for position, apdu in enumerate(apdus):
        link = pairer.add(replace(apdu, key=position))
        if apdu.is_command:
            pair_of_command[position] = len(pairs)
            continues = None if link.continues is None else pair_of_command[link.continues]
            pairs.append(ApduPair(apdu, None, continues))
        elif link.command_key is None:
            pairs.append(ApduPair(None, apdu))
        else:
            index = pair_of_command[link.command_key]
            pairs[index] = replace(pairs[index], response=apdu)
    return pairs


def header_of(hex_text: str) -> bytes:
    """CLA INS P1 P2 of a hex command APDU (fewer bytes when shorter, none when not hex)."""
    try:
        header = bytes.fromhex(hex_text[:8])
    except (ValueError, TypeError):
        header = b""
    return header if len(header) == 4 else _bytes(hex_text)[:4]


def sw1_of(hex_text: str) -> int | None:
    """SW1 of a hex response APDU (its last two bytes), or None when it has none."""
    if len(hex_text) >= 4:
        try:
            return int(hex_text[-4:-2], 16) if hex_text[-4:].isalnum() else _sw1(hex_text)
        except ValueError:
            return None
    return _sw1(hex_text)


def _sw1(hex_text: str) -> int | None:
    status = _bytes(hex_text)[-2:]
    return status[0] if len(status) == 2 else None


def _bytes(hex_text: str) -> bytes:
    """The bytes of a hex APDU, or empty when it is not hex."""
    try:
        return bytes.fromhex("".join(hex_text.split()))
    except (ValueError, AttributeError):
        return b""
