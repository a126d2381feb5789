"""APDU decoding and status-word meanings (ISO/IEC 7816-4, ETSI TS 102 221/223, GlobalPlatform).

``decode_apdu`` reads a command APDU's header, lengths, logical channel and
instruction name; ``describe_status_word`` says what a response's SW1 SW2 means.
Both are a few byte reads and table look-ups, cheap enough to run on every log row.
The status-word *classes* (success, warning, error ...) stay in ``status_words``.

>>> decode_apdu("00A4040007A000000151000000").name
'SELECT'
>>> describe_status_word("6A88")
'referenced data not found'
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import NamedTuple

from .exceptions import ValidationError
from .status_words import normalize_status_word


@dataclass(frozen=True)
class DecodedApdu:
    """A command APDU read field by field; every field is ``None`` when it cannot be read.

    ``lc`` is the length of ``data`` (upper-case hex, ``""`` without a body); ``le`` is
    the number of response bytes asked for, with ISO's encoding undone (``00`` means
    256, extended ``0000`` means 65,536). ``case`` is ISO's 1-4, ``extended`` tells
    short from extended lengths.
    """

    cla: int | None = None
    ins: int | None = None
    p1: int | None = None
    p2: int | None = None
    lc: int | None = None
    data: str | None = None
    le: int | None = None
    case: int | None = None
    extended: bool = False
    channel: int | None = None
    secure_messaging: bool = False
    name: str | None = None

    @property
    def decoded(self) -> bool:
        """Whether the header could be read at all (``False`` for garbage)."""
        return self.ins is not None


#: What ``decode_apdu`` returns for text that is not a command APDU.
UNDECODED = DecodedApdu()

# -- instruction names -------------------------------------------------------------

#: ISO/IEC 7816-4 (and TS 102 221 for the UICC) names, used with any class byte.
_ISO_NAMES: dict[int, str] = {
    0x04: "DEACTIVATE FILE",
    0x0C: "ERASE RECORD",
    0x0E: "ERASE BINARY",
    0x0F: "ERASE BINARY",
    0x20: "VERIFY",
    0x21: "VERIFY",
    0x22: "MANAGE SECURITY ENVIRONMENT",
    0x24: "CHANGE REFERENCE DATA",
    0x25: "CHANGE REFERENCE DATA",
    0x26: "DISABLE VERIFICATION REQUIREMENT",
    0x28: "ENABLE VERIFICATION REQUIREMENT",
    0x2A: "PERFORM SECURITY OPERATION",
    0x2C: "RESET RETRY COUNTER",
    0x2D: "RESET RETRY COUNTER",
    0x44: "ACTIVATE FILE",
    0x46: "GENERATE ASYMMETRIC KEY PAIR",
    0x70: "MANAGE CHANNEL",
    0x73: "MANAGE SECURE CHANNEL",
    0x75: "TRANSACT DATA",
    0x82: "EXTERNAL AUTHENTICATE",
    0x84: "GET CHALLENGE",
    0x86: "GENERAL AUTHENTICATE",
    0x87: "GENERAL AUTHENTICATE",
    0x88: "INTERNAL AUTHENTICATE",
    0x89: "AUTHENTICATE",
    0xA0: "SEARCH BINARY",
    0xA1: "SEARCH BINARY",
    0xA2: "SEARCH RECORD",
    0xA4: "SELECT",
    0xB0: "READ BINARY",
    0xB1: "READ BINARY",
    0xB2: "READ RECORD",
    0xB3: "READ RECORD",
    0xC0: "GET RESPONSE",
    0xC2: "ENVELOPE",
    0xC3: "ENVELOPE",
    0xCA: "GET DATA",
    0xCB: "GET DATA",
    0xD0: "WRITE BINARY",
    0xD1: "WRITE BINARY",
    0xD2: "WRITE RECORD",
    0xD6: "UPDATE BINARY",
    0xD7: "UPDATE BINARY",
    0xDA: "PUT DATA",
    0xDB: "PUT DATA",
    0xDC: "UPDATE RECORD",
    0xDD: "UPDATE RECORD",
    0xE0: "CREATE FILE",
    0xE2: "APPEND RECORD",
    0xE4: "DELETE FILE",
    0xE6: "TERMINATE DF",
    0xE8: "TERMINATE EF",
    0xFE: "TERMINATE CARD USAGE",
}

#: Proprietary-class (CLA 8x, Cx, Ex) names: TS 102 221, TS 102 223 (CAT) and GlobalPlatform.
_PROPRIETARY_NAMES: dict[int, str] = {
    0x10: "TERMINAL PROFILE",
    0x12: "FETCH",
    0x14: "TERMINAL RESPONSE",
    0x32: "INCREASE",
    0x50: "INITIALIZE UPDATE",
    0x76: "SUSPEND UICC",
    0x78: "GET IDENTITY",
    0xAA: "TERMINAL CAPABILITY",
    0xCB: "RETRIEVE DATA",
    0xD8: "PUT KEY",
    0xDB: "SET DATA",
    0xE2: "STORE DATA",
    0xE4: "DELETE",
    0xE6: "INSTALL",
    0xE8: "LOAD",
    0xF0: "SET STATUS",
    0xF2: "STATUS",
}

#: GlobalPlatform INSTALL, P1 without its "more commands" bit (b8): what the command is for.
_INSTALL_PURPOSES: dict[int, str] = {
    0x02: "for load",
    0x04: "for install",
    0x08: "for make selectable",
    0x0C: "for install and make selectable",
    0x0E: "for load, install and make selectable",
    0x10: "for extradition",
    0x20: "for personalization",
    0x40: "for registry update",
}

#: GSM 11.11 / 11.14 (class A0) names where they differ from ISO's, or ISO has none.
_GSM_NAMES: dict[int, str] = {
    0x04: "INVALIDATE",
    0x10: "TERMINAL PROFILE",
    0x12: "FETCH",
    0x14: "TERMINAL RESPONSE",
    0x20: "VERIFY CHV",
    0x24: "CHANGE CHV",
    0x26: "DISABLE CHV",
    0x28: "ENABLE CHV",
    0x2C: "UNBLOCK CHV",
    0x32: "INCREASE",
    0x44: "REHABILITATE",
    0x88: "RUN GSM ALGORITHM",
    0xF2: "STATUS",
    0xFA: "SLEEP",
}

_GET_STATUS_P1 = frozenset({0x80, 0x40, 0x20, 0x10})
_UICC_STATUS_P1 = frozenset({0x00, 0x01, 0x02})


def _channel_and_sm(cla: int) -> tuple[int | None, bool]:
    """Logical channel and secure-messaging flag from the class byte (ISO 7816-4 5.4.1).

    CLA 0x-1x and the proprietary 8x-9x use the first interindustry coding (channels
    0-3 in b2-b1, SM in b4-b3); 4x-7x and the proprietary Cx-Fx the further one
    (channels 4-19 in b4-b1, SM in b6). GSM's A0 is channel 0; 2x-3x are RFU.
    """
    if cla & 0x60 == 0x00:  # 000x xxxx or 100x xxxx
        return cla & 0x03, bool(cla & 0x0C)
    if cla & 0x40:  # 01xx xxxx or 11xx xxxx
        return 4 + (cla & 0x0F), bool(cla & 0x20)
    if cla & 0xE0 == 0xA0:
        return 0, False
    return None, False


def _name(cla: int, ins: int, p1: int, p2: int, data: bytes, secure: bool) -> str | None:
    """The command's name; an INS with two meanings is decided from CLA, P1 and the data."""
    proprietary = cla & 0x80 != 0 and cla != 0xA0
    if proprietary and ins in _PROPRIETARY_NAMES:
        if ins == 0xE6:
            purpose = _INSTALL_PURPOSES.get(p1 & 0x7F)
            return f"INSTALL [{purpose}]" if purpose else "INSTALL"
        if ins == 0xF2:
            # GP GET STATUS: P1 80/40/20/10 with a search criterion (4F...); under SM it
            # can only be GP. UICC STATUS (TS 102 221): P1 00/01/02, no data.
            if secure or p1 in _GET_STATUS_P1 or data[:1] == b"\x4f":
                return "GET STATUS"
            return "STATUS" if p1 in _UICC_STATUS_P1 else None
        if ins == 0xCB and (secure or p1 != 0x00):
            return "GET DATA"  # GP's odd GET DATA; TS 102 221's RETRIEVE DATA has P1 00
        return _PROPRIETARY_NAMES[ins]
    if cla == 0xA0 and ins in _GSM_NAMES:
        return _GSM_NAMES[ins]
    if ins == 0x88 and p1 == 0x00 and p2 in (0x80, 0x81):
        return "AUTHENTICATE"  # TS 102 221 / TS 31.102: GSM or 3G security context
    return _ISO_NAMES.get(ins)


#: (case, Lc, data, Le, extended) of a command body.
_Lengths = tuple[int, int, bytes, int | None, bool]


def _lengths(body: bytes) -> _Lengths | None:
    """(case, Lc, data, Le, extended) of a command body after the header, or None."""
    size = len(body)
    if size == 0:
        return 1, 0, b"", None, False
    first = body[0]
    if size == 1:
        return 2, 0, b"", first or 256, False
    if first:
        if size == 1 + first:
            return 3, first, body[1:], None, False
        if size == 2 + first:
            return 4, first, body[1:-1], body[-1] or 256, False
        return None
    if size == 3:
        return 2, 0, b"", int.from_bytes(body[1:3], "big") or 65536, True
    if size < 3:
        return None
    lc = int.from_bytes(body[1:3], "big")
    if lc == 0:
        return None
    if size == 3 + lc:
        return 3, lc, body[3:], None, True
    if size == 5 + lc:
        return 4, lc, body[3:-2], int.from_bytes(body[-2:], "big") or 65536, True
    return None


class StoredFields(NamedTuple):
    """The fields of a command the ``logs`` table stores: ``decode_apdu`` without the data
    and the flags, as a named tuple (cheap enough for every row a batch writes)."""

    cla: int
    ins: int
    p1: int
    p2: int
    lc: int | None
    le: int | None
    channel: int | None
    name: str | None


def _parts(
    raw: bytes,
) -> tuple[int, int, int, int, int | None, bool, _Lengths | None, str | None] | None:
    """A command's header, channel, secure messaging, body lengths (None when the body fits
    none of ISO's four cases) and name; None for fewer than four bytes or CLA FF (PPS)."""
    if len(raw) < 4 or raw[0] == 0xFF:
        return None
    cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
    channel, secure = _channel_and_sm(cla)
    lengths = _lengths(raw[4:])
    name = _name(cla, ins, p1, p2, lengths[2] if lengths else b"", secure)
    return cla, ins, p1, p2, channel, secure, lengths, name


def stored_fields(apdu: str) -> StoredFields | None:
    """The stored fields of a hex command APDU, or None where ``decode_apdu`` reads nothing;
    each field equals ``decode_apdu``'s."""
    try:
        raw = binascii.unhexlify(apdu)
    except (binascii.Error, ValueError, TypeError):
        try:  # spaces between the bytes
            raw = binascii.unhexlify("".join(apdu.split()))
        except (binascii.Error, ValueError, AttributeError):
            return None
    parts = _parts(raw)
    if parts is None:
        return None
    cla, ins, p1, p2, channel, _, lengths, name = parts
    if lengths is None:
        return StoredFields(cla, ins, p1, p2, None, None, channel, name)
    return StoredFields(cla, ins, p1, p2, lengths[1], lengths[3], channel, name)


def decode_apdu(apdu: object) -> DecodedApdu:
    """Decode a command APDU given as hex (spaces and any case accepted) or bytes; never raises.

    Text that is not hex or is shorter than the four header bytes, and a class byte of
    FF (reserved for PPS), give ``UNDECODED``: every field ``None``. A header whose
    body fits none of ISO's four cases keeps ``cla``..``p2``, ``channel`` and ``name``
    with ``lc``, ``data``, ``le`` and ``case`` left ``None``.
    """
    if isinstance(apdu, bytes | bytearray):
        raw = bytes(apdu)
    elif isinstance(apdu, str):
        try:
            raw = binascii.unhexlify("".join(apdu.split()))
        except (binascii.Error, ValueError):
            return UNDECODED
    else:
        return UNDECODED
    parts = _parts(raw)
    if parts is None:
        return UNDECODED
    cla, ins, p1, p2, channel, secure, lengths, name = parts
    if lengths is None:
        return DecodedApdu(cla, ins, p1, p2, channel=channel, secure_messaging=secure, name=name)
    case, lc, data, le, extended = lengths
    return DecodedApdu(
        cla, ins, p1, p2, lc, data.hex().upper(), le, case, extended, channel, secure, name
    )


# -- status words --------------------------------------------------------------------

#: Exact status words: ISO/IEC 7816-4 5.6, TS 102 221 10.2, GSM 11.11 9.4, GP CS 11.1.3.
_STATUS_WORDS: dict[str, str] = {
    "9000": "normal ending of the command",
    "9240": "memory problem",
    "9300": "SIM Application Toolkit busy, command cannot be executed now",
    "9400": "no EF selected",
    "9402": "out of range (invalid address)",
    "9404": "file ID not found, or pattern not found",
    "9408": "file is inconsistent with the command",
    "9484": "algorithm not supported",
    "9485": "invalid key check value",
    "9802": "no CHV initialized",
    "9804": "access condition not fulfilled, or authentication failed",
    "9808": "in contradiction with CHV status",
    "9810": "in contradiction with invalidation status",
    "9840": "unsuccessful CHV verification, no attempt left",
    "9850": "INCREASE cannot be performed, maximum value reached",
    "9862": "authentication error, application specific",
    "9863": "security session or association expired",
    "9864": "minimum UICC suspension time is too long",
    "6200": "no information given, non-volatile memory unchanged",
    "6281": "part of returned data may be corrupted",
    "6282": "end of file or record reached before reading Le bytes",
    "6283": "selected file invalidated",
    "6284": "selected file is not valid, FCI not formatted",
    "6285": "selected file in termination state",
    "6286": "no input data available from a sensor",
    "62F1": "more data available",
    "62F2": "more data available and proactive command pending",
    "62F3": "response data available",
    "6300": "no information given, non-volatile memory changed "
    "(after EXTERNAL AUTHENTICATE: host cryptogram verification failed)",
    "6310": "more data available",
    "6381": "file filled up by the last write",
    "63F1": "more data expected",
    "63F2": "more data expected and proactive command pending",
    "6400": "execution error, non-volatile memory unchanged",
    "6401": "immediate response required by the card",
    "6500": "no information given, non-volatile memory changed",
    "6581": "memory failure",
    "6600": "security-related issue",
    "6700": "wrong length",
    "6800": "functions in CLA not supported",
    "6881": "logical channel not supported",
    "6882": "secure messaging not supported",
    "6883": "last command of the chain expected",
    "6884": "command chaining not supported",
    "6900": "command not allowed",
    "6981": "command incompatible with file structure",
    "6982": "security status not satisfied",
    "6983": "authentication method blocked",
    "6984": "referenced data invalidated",
    "6985": "conditions of use not satisfied",
    "6986": "command not allowed, no current EF",
    "6987": "expected secure messaging data objects missing",
    "6988": "incorrect secure messaging data objects",
    "6999": "applet selection failed",
    "6A00": "wrong parameters P1-P2",
    "6A80": "incorrect parameters in the data field",
    "6A81": "function not supported",
    "6A82": "file or application not found",
    "6A83": "record not found",
    "6A84": "not enough memory space",
    "6A85": "Lc inconsistent with TLV structure",
    "6A86": "incorrect parameters P1-P2",
    "6A87": "Lc inconsistent with P1-P2",
    "6A88": "referenced data not found",
    "6A89": "file already exists",
    "6A8A": "DF name already exists",
    "6B00": "wrong parameters P1-P2",
    "6D00": "instruction code not supported or invalid",
    "6E00": "class not supported",
    "6F00": "technical problem, no precise diagnosis",
}

#: By SW1 when the exact word is not listed: (SW1, meaning).
_BY_SW1: dict[str, str] = {
    "62": "warning, non-volatile memory unchanged",
    "63": "warning, non-volatile memory changed",
    "64": "execution error, non-volatile memory unchanged",
    "65": "execution error, non-volatile memory changed",
    "66": "security-related issue",
    "67": "wrong length",
    "68": "functions in CLA not supported",
    "69": "command not allowed",
    "6A": "wrong parameters P1-P2",
    "6B": "wrong parameters P1-P2",
    "6D": "instruction code not supported or invalid",
    "6E": "class not supported",
    "6F": "technical problem, no precise diagnosis",
    "92": "normal ending with extra information",
    "93": "SIM Application Toolkit busy",
    "94": "file or referencing error",
    "98": "security or access error",
}


def describe_status_word(status_word: str) -> str | None:
    """The meaning of a status word (four hex digits, any case), or None if none is known.

    Counted words carry their count: ``61xx``/``9Fxx`` response bytes available,
    ``6Cxx`` the right Le, ``91xx`` a pending proactive command, ``63Cx`` the retries
    left, ``92 0x`` the internal retries. Text that is not four hex digits is a
    ValidationError.
    """
    try:
        word = normalize_status_word(status_word)
    except ValueError as error:
        raise ValidationError(f"status word {error}") from None
    known = _STATUS_WORDS.get(word)
    if known:
        return known
    sw1, count = word[:2], int(word[2:], 16)
    if sw1 in ("61", "9F"):
        return f"{count or 256} response bytes available"
    if sw1 == "6C":
        return f"wrong Le field, {count or 256} bytes available: re-send with Le={word[2:]}"
    if sw1 == "91":
        return f"normal ending, proactive command of {count} bytes pending"
    if sw1 == "63" and word[2] == "C":
        retries = count & 0x0F
        return f"verification failed, {retries} {'retry' if retries == 1 else 'retries'} left"
    if sw1 == "92" and word[2] == "0":
        return f"command successful after {count} internal update retries"
    if sw1 == "62" and 0x02 <= count <= 0x80:
        return "warning, triggering by the card"
    return _BY_SW1.get(sw1)
