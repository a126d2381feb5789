"""decode_apdu and describe_status_word against published command examples and spec tables.

Sources: ISO/IEC 7816-4 (interindustry commands, class byte, extended lengths),
ETSI TS 102 221 (UICC commands and status words), ETSI TS 102 223 (CAT), GSM 11.11
(class A0), GlobalPlatform Card Specification 2.3 (chapter 11 commands), ICAO Doc
9303 part 11 (a secure-messaging worked example).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardlink.database import ValidationError, decode_apdu, describe_status_word
from cardlink.database.apdu import UNDECODED, stored_fields

AID = "A0000000871002"  # 3GPP USIM
RAND_AUTN = "10" + "11" * 16 + "10" + "22" * 16
LONG = "AB" * 256

#: (APDU hex, name, fields other than the defaults: channel 0, no SM, short lengths).
DECODE_TABLE: list[tuple[str, str, dict[str, Any]]] = [
    # ISO/IEC 7816-4 and TS 102 221, first interindustry class
    ("00A40004023F00", "SELECT", {"case": 3, "lc": 2, "data": "3F00"}),  # select MF
    ("00A40804047FFF6F07", "SELECT", {"case": 3, "lc": 4, "data": "7FFF6F07"}),  # by path
    (f"00A4040007{AID}", "SELECT", {"case": 3, "lc": 7, "data": AID}),  # by DF name
    (f"00A4040C07{AID}00", "SELECT", {"case": 4, "lc": 7, "data": AID, "le": 256}),
    ("00B0000009", "READ BINARY", {"case": 2, "le": 9}),
    ("00B0830000", "READ BINARY", {"case": 2, "le": 256}),  # SFI 3, Le 00 = 256
    ("00B201040B", "READ RECORD", {"case": 2, "le": 11}),
    ("00D600000401020304", "UPDATE BINARY", {"case": 3, "lc": 4, "data": "01020304"}),
    ("00DC0104031234FF", "UPDATE RECORD", {"case": 3, "lc": 3, "data": "1234FF"}),
    ("00A2010402AABB", "SEARCH RECORD", {"case": 3, "lc": 2, "data": "AABB"}),
    ("002000010831323334FFFFFFFF", "VERIFY", {"case": 3, "lc": 8, "data": "31323334FFFFFFFF"}),
    ("00200001", "VERIFY", {"case": 1, "lc": 0, "data": ""}),  # ask for the retries left
    ("0024000110" + "31323334FFFFFFFF" * 2, "CHANGE REFERENCE DATA", {"lc": 16}),
    ("002600010831323334FFFFFFFF", "DISABLE VERIFICATION REQUIREMENT", {"lc": 8}),
    ("002800010831323334FFFFFFFF", "ENABLE VERIFICATION REQUIREMENT", {"lc": 8}),
    ("002C000110" + "3132333435363738" + "31323334FFFFFFFF", "RESET RETRY COUNTER", {"lc": 16}),
    ("00C0000020", "GET RESPONSE", {"case": 2, "le": 32}),
    ("0084000008", "GET CHALLENGE", {"case": 2, "le": 8}),
    ("0070000001", "MANAGE CHANNEL", {"case": 2, "le": 1}),  # open
    ("00708001", "MANAGE CHANNEL", {"case": 1}),  # close channel 1
    ("002241B603830112", "MANAGE SECURITY ENVIRONMENT", {"case": 3, "lc": 3}),
    (f"0088008122{RAND_AUTN}00", "AUTHENTICATE", {"case": 4, "lc": 34, "le": 256}),
    ("00CB3FFF045C025F5000", "GET DATA", {"case": 4, "lc": 4, "le": 256}),  # odd INS
    # logical channels 1-3 (first interindustry) and 4-19 (further interindustry)
    (f"01A4040007{AID}", "SELECT", {"channel": 1, "lc": 7}),
    ("02B0000010", "READ BINARY", {"channel": 2, "le": 16}),
    ("03C0000010", "GET RESPONSE", {"channel": 3, "le": 16}),
    (f"40A4040007{AID}", "SELECT", {"channel": 4, "lc": 7}),
    ("4AB0000010", "READ BINARY", {"channel": 14, "le": 16}),
    ("4FB2010410", "READ RECORD", {"channel": 19, "le": 16}),
    # secure messaging: ISO SM bits (0C) and ICAO 9303's worked example
    (
        "0CA4020C158709016375432956D6C5E08E08BF8B92D635FF24F800",
        "SELECT",
        {"secure_messaging": True, "case": 4, "lc": 21, "le": 256},
    ),
    ("0CB0000000", "READ BINARY", {"secure_messaging": True, "case": 2, "le": 256}),
    ("6CB0000010", "READ BINARY", {"secure_messaging": True, "channel": 16, "le": 16}),
    # GSM 11.11 (class A0)
    ("A0A40000023F00", "SELECT", {"lc": 2, "data": "3F00"}),
    ("A088000010" + "00" * 16, "RUN GSM ALGORITHM", {"lc": 16}),
    ("A02000010831323334FFFFFFFF", "VERIFY CHV", {"lc": 8}),
    ("A01200000F", "FETCH", {"case": 2, "le": 15}),
    ("A0F2000016", "STATUS", {"case": 2, "le": 22}),
    # TS 102 221 proprietary class
    ("80F2000C00", "STATUS", {"case": 2, "le": 256}),
    ("80F2010000", "STATUS", {"case": 2, "le": 256}),
    ("81F2000000", "STATUS", {"channel": 1, "le": 256}),
    ("8032000003000001", "INCREASE", {"lc": 3, "data": "000001"}),
    ("80AA000005A903830101", "TERMINAL CAPABILITY", {"lc": 5}),
    ("80CB000002DF22", "RETRIEVE DATA", {"case": 3, "lc": 2, "data": "DF22"}),
    ("80DB000003DF2200", "SET DATA", {"lc": 3}),
    ("8076000000", "SUSPEND UICC", {"le": 256}),
    # TS 102 223 (CAT)
    ("8010000014" + "FF" * 20, "TERMINAL PROFILE", {"case": 3, "lc": 20}),
    ("801200000F", "FETCH", {"case": 2, "le": 15}),
    ("801400000C810301218082028281830100", "TERMINAL RESPONSE", {"case": 3, "lc": 12}),
    ("80C2000009D30782020181900102", "ENVELOPE", {"case": 3, "lc": 9}),
    # GlobalPlatform Card Specification
    ("00A4040008A00000015100000000", "SELECT", {"case": 4, "lc": 8, "le": 256}),  # the ISD
    ("80500000081122334455667788" + "00", "INITIALIZE UPDATE", {"case": 4, "lc": 8, "le": 256}),
    (
        "8482010010" + "0011223344556677" + "8899AABBCCDDEEFF",
        "EXTERNAL AUTHENTICATE",
        {
            "secure_messaging": True,
            "case": 3,
            "lc": 16,
        },
    ),
    (
        "80E602001407A00000000300000008A0000001510000000000" + "00",
        "INSTALL [for load]",
        {"case": 4, "lc": 20},
    ),
    (
        "84E60400100000000000000000000000000000000000",
        "INSTALL [for install]",
        {"secure_messaging": True},
    ),
    ("80E6080006" + "00" * 6 + "00", "INSTALL [for make selectable]", {"case": 4, "lc": 6}),
    ("80E60C001A" + "00" * 26, "INSTALL [for install and make selectable]", {"lc": 26}),
    ("80E6100000", "INSTALL [for extradition]", {"case": 2}),
    (
        "80E620000E0000" + "08A000000151000000" + "000000" + "00",
        "INSTALL [for personalization]",
        {"case": 4, "lc": 14},
    ),
    ("80E6400000", "INSTALL [for registry update]", {"case": 2}),
    ("80E68C0000", "INSTALL [for install and make selectable]", {"case": 2}),  # more-commands bit
    ("80E80000FC" + "C4" + "00" * 251, "LOAD", {"case": 3, "lc": 252}),
    ("80E88001040102030400", "LOAD", {"case": 4, "lc": 4, "le": 256}),
    ("80E400000A4F08A00000000300000000", "DELETE", {"case": 4, "lc": 10, "le": 256}),
    ("80F24000024F0000", "GET STATUS", {"case": 4, "lc": 2, "data": "4F00", "le": 256}),
    ("80F28002024F0000", "GET STATUS", {"case": 4, "lc": 2, "le": 256}),
    ("80F21000024F00", "GET STATUS", {"case": 3, "lc": 2}),
    ("84F2200018" + "4F00" + "00" * 22, "GET STATUS", {"secure_messaging": True, "lc": 24}),
    ("C1F24000024F0000", "GET STATUS", {"channel": 5, "lc": 2}),
    ("80D8010143" + "00" * 67, "PUT KEY", {"lc": 67}),
    ("80E2800006DF2003010203", "STORE DATA", {"case": 3, "lc": 6}),
    ("E2E2900003DF2000", "STORE DATA", {"channel": 6, "secure_messaging": True, "lc": 3}),
    ("80F0400708A000000151000000", "SET STATUS", {"lc": 8}),
    ("80CA9F7F00", "GET DATA", {"case": 2, "le": 256}),  # CPLC
    ("80CA006600", "GET DATA", {"case": 2, "le": 256}),  # card data
    ("84CB00E000", "GET DATA", {"secure_messaging": True, "le": 256}),
    # ISO/IEC 7816-4 extended lengths: cases 2E, 3E and 4E
    ("00B00000000100", "READ BINARY", {"case": 2, "extended": True, "le": 256}),
    ("00B00000000000", "READ BINARY", {"case": 2, "extended": True, "le": 65536}),
    ("00D60000000100" + LONG, "UPDATE BINARY", {"case": 3, "extended": True, "lc": 256}),
    (f"00A40400000007{AID}0000", "SELECT", {"case": 4, "extended": True, "lc": 7, "le": 65536}),
    (
        "002A9E9A000100" + LONG + "0200",
        "PERFORM SECURITY OPERATION",
        {"case": 4, "extended": True, "lc": 256, "le": 512},
    ),
]

_DEFAULTS = {"channel": 0, "secure_messaging": False, "extended": False}


@pytest.mark.parametrize(("apdu", "name", "fields"), DECODE_TABLE, ids=lambda v: str(v)[:24])
def test_decode_table(apdu: str, name: str, fields: dict[str, Any]) -> None:
    decoded = decode_apdu(apdu)
    raw = bytes.fromhex(apdu)
    assert decoded.name == name
    assert (decoded.cla, decoded.ins, decoded.p1, decoded.p2) == tuple(raw[:4])
    for field_name, expected in {**_DEFAULTS, **fields}.items():
        assert getattr(decoded, field_name) == expected, field_name
    # the fields account for every byte: header, Lc field, data, Le field
    assert decoded.data is not None and decoded.lc == len(bytes.fromhex(decoded.data))
    assert decoded.case in (1, 2, 3, 4)


def test_the_table_covers_the_acceptance_list() -> None:
    assert len(DECODE_TABLE) >= 40
    decoded = [decode_apdu(apdu) for apdu, _, _ in DECODE_TABLE]
    assert {apdu.channel for apdu in decoded} >= {0, 1, 2, 3, 4, 19}
    assert {(apdu.case, apdu.extended) for apdu in decoded} >= {(2, True), (3, True), (4, True)}
    assert {apdu.cla for apdu in decoded if apdu.secure_messaging} >= {0x84, 0x0C}
    assert {apdu.name for apdu in decoded} >= {"STATUS", "GET STATUS"}


def test_f2_is_get_status_with_a_search_criterion_and_status_with_p1_00_to_02() -> None:
    assert decode_apdu("80F28000024F0000").name == "GET STATUS"
    assert decode_apdu("80F2000000").name == "STATUS"
    assert decode_apdu("80F2020C00").name == "STATUS"
    assert decode_apdu("80F2050000").name is None  # neither command: left unnamed


def test_spaces_and_lower_case_are_accepted() -> None:
    assert decode_apdu("00 a4 04 00 07 a0000000871002") == decode_apdu(f"00A4040007{AID}")


@pytest.mark.parametrize("garbage", ["", "00A4", "SELECT", "0x00A40400", "00A404F", "FFA40400"])
def test_what_cannot_be_decoded_gives_empty_fields(garbage: str) -> None:
    assert decode_apdu(garbage) == UNDECODED
    assert not UNDECODED.decoded and UNDECODED.name is None and UNDECODED.data is None


def test_a_body_that_fits_no_case_keeps_the_header() -> None:
    decoded = decode_apdu("00A4040008A000")  # Lc 8, two data bytes
    assert (decoded.name, decoded.channel, decoded.p1) == ("SELECT", 0, 4)
    assert (decoded.lc, decoded.data, decoded.le, decoded.case) == (None, None, None, None)


@given(st.one_of(st.text(max_size=60), st.binary(max_size=40).map(bytes.hex)))
def test_decode_apdu_never_raises(text: str) -> None:
    decoded = decode_apdu(text)
    assert decoded.decoded == (decoded.ins is not None)
    assert decode_apdu(None) == UNDECODED  # type: ignore[arg-type]


def _stored_by_decode_apdu(apdu: str) -> tuple[Any, ...] | None:
    decoded = decode_apdu(apdu)
    if decoded.ins is None:
        return None
    fields = ("cla", "ins", "p1", "p2", "lc", "le", "channel", "name")
    return tuple(getattr(decoded, field) for field in fields)


@given(
    st.one_of(
        st.sampled_from([row[0] for row in DECODE_TABLE] + ["00 a4 04 00 07 a0000000871002"]),
        st.text(max_size=60),
        st.binary(max_size=40).map(bytes.hex),
    )
)
def test_the_stored_fields_are_decode_apdus(apdu: str) -> None:
    """What the logs table stores of a command is what decode_apdu reads from it."""
    fields = stored_fields(apdu)
    assert (None if fields is None else tuple(fields)) == _stored_by_decode_apdu(apdu)


@pytest.mark.parametrize(
    ("status_word", "meaning"),
    [
        ("9000", "normal ending of the command"),
        ("6A88", "referenced data not found"),
        ("63C2", "verification failed, 2 retries left"),
        ("63c1", "verification failed, 1 retry left"),
        ("6110", "16 response bytes available"),
        ("6100", "256 response bytes available"),
        ("9F22", "34 response bytes available"),
        ("6C10", "wrong Le field, 16 bytes available: re-send with Le=10"),
        ("9120", "normal ending, proactive command of 32 bytes pending"),
        ("6985", "conditions of use not satisfied"),
        ("6982", "security status not satisfied"),
        ("6A82", "file or application not found"),
        ("6A80", "incorrect parameters in the data field"),
        ("6A84", "not enough memory space"),
        ("6D00", "instruction code not supported or invalid"),
        ("6E00", "class not supported"),
        ("6700", "wrong length"),
        ("6581", "memory failure"),
        ("6310", "more data available"),
        ("9484", "algorithm not supported"),
        ("9804", "access condition not fulfilled, or authentication failed"),
        ("9862", "authentication error, application specific"),
        ("9240", "memory problem"),
        ("9201", "command successful after 1 internal update retries"),
        ("6A8F", "wrong parameters P1-P2"),  # by SW1
        ("62 83", "selected file invalidated"),
    ],
)
def test_describe_status_word(status_word: str, meaning: str) -> None:
    assert describe_status_word(status_word) == meaning


def test_an_unknown_status_word_has_no_meaning_and_a_malformed_one_is_refused() -> None:
    assert describe_status_word("0000") is None
    for bad in ("900", "90000", "SW90", ""):
        with pytest.raises(ValidationError, match="status word"):
            describe_status_word(bad)
    with pytest.raises(ValidationError, match="status word"):
        describe_status_word(0x9000)  # type: ignore[arg-type]
