"""Pairing responses with commands: same channel, newest first, chains, across batches."""

from __future__ import annotations

from cardlink.database.pairing import ApduPairer, PairingState, WireApdu, pair_apdus


def command(hex_text: str, key: int, channel: int | None = None) -> WireApdu:
    return WireApdu("command", hex_text, channel, key=key)


def response(hex_text: str, key: int, channel: int | None = None) -> WireApdu:
    return WireApdu("response", hex_text, channel, key=key)


def answers(pairer: ApduPairer, *apdus: WireApdu) -> dict[object, object]:
    """Response key -> command key for the responses among ``apdus``."""
    links = pairer.add_all(apdus)
    pairs = zip(links, apdus, strict=True)
    return {link.key: link.command_key for link, apdu in pairs if not apdu.is_command}


def test_a_response_answers_the_newest_unanswered_command_of_its_channel() -> None:
    pairer = ApduPairer()
    paired = answers(
        pairer,
        command("00A4040007A0000000871002", 1),  # channel 0
        command("01B0000010", 2),  # channel 1, from its CLA
        response("9000", 3, channel=0),
        response("AABB9000", 4, channel=1),
        command("00B0000002", 5),
        command("00B0000004", 6),
        response("01029000", 7, channel=0),
        response("0102030400", 8, channel=0),
    )
    assert paired == {3: 1, 4: 2, 7: 6, 8: 5}


def test_a_response_without_a_channel_answers_the_newest_command_of_any_channel() -> None:
    pairer = ApduPairer()
    paired = answers(
        pairer, command("00B0000001", 1), command("02B0000001", 2), response("6A82", 3)
    )
    assert paired == {3: 2}
    assert answers(pairer, response("9000", 4)) == {4: 1}


def test_a_response_with_no_command_stays_unpaired() -> None:
    pairer = ApduPairer()
    assert answers(pairer, response("9000", 1)) == {1: None}
    assert answers(pairer, command("01B0000001", 2), response("9000", 3, channel=0)) == {3: None}


def test_get_response_after_61xx_continues_the_chain_of_the_first_command() -> None:
    pairer = ApduPairer()
    links = pairer.add_all(
        [
            command("00A4040007A0000000871002", 1),
            response("6120", 2),
            command("00C0000020", 3),
            response("6110", 4),
            command("00C0000010", 5),
            response("62" * 16 + "9000", 6),
            command("00C0000010", 7),  # no 61xx before: not part of the chain
        ]
    )
    assert [link.command_key for link in links[1::2]] == [1, 3, 5]
    assert [link.continues for link in links[::2]] == [None, 1, 1, None]


def test_a_6cxx_reissue_continues_the_chain_and_other_commands_do_not() -> None:
    pairer = ApduPairer()
    links = pairer.add_all(
        [
            command("00B0000000", 1),
            response("6C10", 2),
            command("00B0000010", 3),  # same header, the right Le
            response("00" * 16 + "9000", 4),
            command("00B2010400", 5),
            response("6C08", 6),
            command("00A40004023F00", 7),  # something else: the chain is dropped
        ]
    )
    assert [link.continues for link in links[::2]] == [None, 1, None, None]


def test_chains_stay_on_their_channel() -> None:
    pairer = ApduPairer()
    links = pairer.add_all(
        [
            command("01A4040007A0000000871002", 1),
            response("6120", 2, channel=1),
            command("00C0000020", 3),  # channel 0: not the chain's
            response("6D00", 4, channel=0),
            command("01C0000020", 5),
        ]
    )
    assert [link.continues for link in links[::2]] == [None, None, 1]


def test_state_resumes_across_batches_and_rebuilds_from_plain_data() -> None:
    first = ApduPairer()
    first.add_all([command("00A4040007A0000000871002", 10), command("01B0000010", 11)])
    first.add(response("6120", 12, channel=0))
    state = first.state
    assert [open_command.key for open_command in state.open_commands] == [11]
    resumed = ApduPairer(PairingState(state.open_commands, state.chain_marks, state.sequence))
    links = resumed.add_all(
        [command("00C0000020", 13), response("9000", 14, 0), response("AA9000", 15, 1)]
    )
    assert [(link.continues, link.command_key) for link in links] == [
        (10, None),
        (None, 13),
        (None, 11),
    ]


def test_open_commands_are_bounded_per_channel() -> None:
    pairer = ApduPairer()
    pairer.add_all(command("00B0000001", key) for key in range(1000))
    assert len(pairer.state.open_commands) == 32


def test_pair_apdus_gives_pairs_in_wire_order_of_their_commands() -> None:
    apdus = [
        response("9000", 0),
        command("00A4040007A0000000871002", 0),
        response("6120", 0),
        command("00C0000020", 0),
        command("01B0000001", 0),
        response("AA9000", 0, channel=1),
        response("FF" * 32 + "9000", 0, channel=0),
        command("00B0000001", 0),
    ]
    pairs = pair_apdus(apdus)
    shape = [
        (
            pair.command.hex if pair.command else None,
            pair.response.hex if pair.response else None,
            pair.continues,
        )
        for pair in pairs
    ]
    assert shape == [
        (None, "9000", None),
        ("00A4040007A0000000871002", "6120", None),
        ("00C0000020", "FF" * 32 + "9000", 1),
        ("01B0000001", "AA9000", None),
        ("00B0000001", None, None),
    ]
