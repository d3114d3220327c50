"""RoboClaw packet-serial frames: the CRC against published check values and an independent
implementation, encode/decode round trips, and fuzzing of both sides' parsers (the host's reply
decoders and the controller's request parser): malformed input is a ProtocolError or a counted
frame, never another exception."""
from __future__ import annotations

import binascii
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navkit.common.errors import NavkitError
from navkit.hardware import roboclaw_protocol as rp
from navkit.hardware.roboclaw_protocol import Cmd, FrameKind, ProtocolError

FUZZ = settings(max_examples=200, derandomize=True, database=None, deadline=None)
PER_COMMAND = settings(max_examples=50, derandomize=True, database=None, deadline=None)
ADDR = 0x80

READS = [c for c, spec in rp.COMMANDS.items() if spec.reply not in (None, "text")]
WRITES = [c for c, spec in rp.COMMANDS.items() if spec.reply is None]


def _values_for(fmt: str) -> st.SearchStrategy[tuple[int, ...]]:
    """Hypothesis values that fit a struct format (big-endian, codes B H I i)."""
    ranges = {"B": (0, 255), "H": (0, 0xFFFF), "I": (0, 2**32 - 1), "i": (-(2**31), 2**31 - 1)}
    return st.tuples(*[st.integers(*ranges[code]) for code in fmt.lstrip(">")])


# ------------------------------------------------------------------------------------------ CRC


def test_crc_matches_the_catalogue_check_value() -> None:
    # The manual's routine (poly 0x1021, init 0, MSB first, no final XOR) is the catalogued
    # CRC-16/XMODEM, whose published check value over ASCII "123456789" is 0x31C3.
    assert rp.crc16(b"123456789") == 0x31C3
    assert rp.crc16(b"") == 0
    # The address byte 0x80 by hand, eight shifts of the register: 0x8000 -> 0x1021 (top bit out,
    # XOR poly) -> 0x2042 -> 0x4084 -> 0x8108 -> 0x1231 (top bit out, XOR poly) -> 0x2462 -> 0x48c4 -> 0x9188.
    assert rp.crc16(b"\x80") == 0x9188


@FUZZ
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_crc_agrees_with_stdlib_and_chains(a: bytes, b: bytes) -> None:
    assert rp.crc16(a) == binascii.crc_hqx(a, 0)  # the stdlib's CRC-CCITT, an independent implementation
    assert rp.crc16(b, rp.crc16(a)) == rp.crc16(a + b)


def test_drive_frame_layout_follows_the_manual() -> None:
    # Send: [Address, 37, SpeedM1(4 bytes), SpeedM2(4 bytes), CRC(2 bytes)], big-endian, signed.
    frame = rp.drive_speeds(ADDR, 1000, -1000)
    body = bytes.fromhex("80 25 000003e8 fffffc18")
    assert frame[:-2] == body and frame[-2:] == binascii.crc_hqx(body, 0).to_bytes(2, "big")
    assert rp.set_serial_timeout(ADDR, 0.3)[:3] == bytes((0x80, 14, 3))
    assert rp.reset_encoders(0x81)[:2] == bytes((0x81, 20)) and len(rp.reset_encoders(0x81)) == 4
    assert rp.encode_read(ADDR, Cmd.READ_ENCODERS) == b"\x80\x4e"  # reads carry no CRC


# ------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("command", READS)
def test_every_read_reply_round_trips(command: int) -> None:
    fmt = rp.COMMANDS[command].reply
    assert fmt is not None

    @PER_COMMAND
    @given(_values_for(fmt), st.integers(0x80, 0x87))
    def check(values: tuple[int, ...], address: int) -> None:
        reply = rp.encode_reply(address, command, *values)
        assert len(reply) == rp.reply_size(command)
        assert rp.decode_reply(address, command, reply) == values

    check()


@pytest.mark.parametrize("command", WRITES)
def test_every_write_round_trips_through_the_controller_parser(command: int) -> None:
    fmt = rp.COMMANDS[command].request

    @PER_COMMAND
    @given(_values_for(fmt) if fmt else st.just(()), st.integers(0x80, 0x87))
    def check(values: tuple[int, ...], address: int) -> None:
        frame = rp.encode_write(address, command, *values)
        parsed = rp.parse_request(frame, address)
        assert parsed == rp.ParsedFrame(FrameKind.VALID, len(frame), command, values)
        assert rp.parse_request(frame[:-1], address) is None  # incomplete, not an error
        assert rp.reply_size(command) == 1

    check()


def test_typed_decoders() -> None:
    assert rp.decode_encoders(ADDR, rp.encode_reply(ADDR, 78, 7, 2**32 - 1)) == (7, 2**32 - 1)
    assert rp.decode_speeds(ADDR, rp.encode_reply(ADDR, 79, -5, 6)) == (-5, 6)
    assert rp.decode_speeds(ADDR, rp.encode_reply(ADDR, 108, 1, -1), Cmd.READ_AVG_SPEEDS) == (1, -1)
    assert rp.decode_encoder(ADDR, 16, rp.encode_reply(ADDR, 16, 123, 0b010)) == (123, 0b010)
    assert rp.decode_main_battery_v(ADDR, rp.encode_reply(ADDR, 24, 243)) == pytest.approx(24.3)
    assert rp.decode_serial_timeout_s(ADDR, rp.encode_reply(ADDR, 15, 3)) == pytest.approx(0.3)
    assert rp.decode_status(ADDR, rp.encode_reply(ADDR, 90, 0x02000001)) == 0x02000001
    short = bytes((0x00, 0x04))  # a 16-bit status, as older firmware sends it
    assert rp.decode_status(ADDR, short + rp.crc16(short, rp.crc16(bytes((ADDR, 90)))).to_bytes(2, "big"),
                            width=2) == 4
    assert rp.decode_firmware(ADDR, rp.encode_firmware_reply(ADDR, "USB Roboclaw 2x15a v4.2.8")) \
        == "USB Roboclaw 2x15a v4.2.8"
    long_reply = rp.encode_firmware_reply(ADDR, "x" * 100)
    assert len(long_reply) == rp.MAX_FIRMWARE_REPLY + 2 and rp.decode_firmware(ADDR, long_reply) == "x" * 46
    rp.decode_ack(37, b"\xff")


def test_count_delta_handles_wraparound() -> None:
    top = 2**32
    assert rp.count_delta(5, top - 3) == 8  # forward across the wrap
    assert rp.count_delta(top - 3, 5) == -8  # backward across it
    assert rp.count_delta(1000, 10) == 990 and rp.count_delta(10, 1000) == -990


# ---------------------------------------------------------------------------------- bad replies


def test_decoders_name_what_is_wrong() -> None:
    good = rp.encode_reply(ADDR, 78, 1, 2)
    with pytest.raises(ProtocolError, match=r"command 78 \(read encoder counters\): crc: CRC mismatch") as err:
        rp.decode_encoders(ADDR, good[:-1] + bytes([good[-1] ^ 1]))
    assert isinstance(err.value, NavkitError) and err.value.command == 78 and "\n" not in str(err.value)
    with pytest.raises(ProtocolError, match="length: expected 10 bytes, got 9 bytes"):
        rp.decode_encoders(ADDR, good[:-1])
    with pytest.raises(ProtocolError, match="no reply"):
        rp.decode_encoders(ADDR, b"")
    with pytest.raises(ProtocolError, match="crc"):  # the CRC covers the sent address ...
        rp.decode_encoders(0x81, good)
    with pytest.raises(ProtocolError, match="crc"):  # ... and the sent command: a reply to 79 is not one to 108
        rp.decode_speeds(ADDR, rp.encode_reply(ADDR, 79, 1, 2), Cmd.READ_AVG_SPEEDS)
    with pytest.raises(ProtocolError, match="ack: expected ACK 0xff, got 00"):
        rp.decode_ack(37, b"\x00")
    with pytest.raises(ProtocolError, match="ack: no reply"):
        rp.decode_ack(37, b"")
    with pytest.raises(ProtocolError, match="ack"):
        rp.decode_ack(37, b"\xff\xff")
    with pytest.raises(ProtocolError, match="text"):
        body = b"v1\x00\n\x00"
        rp.decode_firmware(ADDR, body + rp.crc16(body, rp.crc16(bytes((ADDR, 21)))).to_bytes(2, "big"))


def test_encoders_refuse_bad_arguments() -> None:
    with pytest.raises(ValueError, match="address"):
        rp.drive_speeds(0x10, 0, 0)
    with pytest.raises(ValueError, match="bad arguments"):
        rp.drive_speeds(ADDR, 2**31, 0)
    with pytest.raises(ValueError, match="0.1..25.5"):
        rp.set_serial_timeout(ADDR, 0.0)  # 0 would silently disable the controller's watchdog
    with pytest.raises(ValueError, match="is a read"):
        rp.encode_write(ADDR, Cmd.READ_ENCODERS)
    with pytest.raises(ValueError, match="is a write"):
        rp.encode_read(ADDR, Cmd.DRIVE_M1M2_SPEED)
    with pytest.raises(ValueError, match="not in the implemented subset"):
        rp.encode_read(ADDR, 200)


_DECODERS = [
    lambda r: rp.decode_encoders(ADDR, r),
    lambda r: rp.decode_speeds(ADDR, r),
    lambda r: rp.decode_speeds(ADDR, r, Cmd.READ_AVG_SPEEDS),
    lambda r: rp.decode_encoder(ADDR, 16, r),
    lambda r: rp.decode_main_battery_v(ADDR, r),
    lambda r: rp.decode_serial_timeout_s(ADDR, r),
    lambda r: rp.decode_status(ADDR, r),
    lambda r: rp.decode_status(ADDR, r, width=2),
    lambda r: rp.decode_firmware(ADDR, r),
    lambda r: rp.decode_ack(37, r),
]


@FUZZ
@given(st.binary(max_size=80))
def test_reply_decoders_survive_random_bytes(reply: bytes) -> None:
    for decode in _DECODERS:
        try:
            decode(reply)
        except ProtocolError:
            pass  # the only exception allowed


@FUZZ
@given(st.sampled_from(READS), st.data())
def test_every_corrupted_reply_is_refused(command: int, data: st.DataObject) -> None:
    """A flipped bit anywhere, a lost byte or an extra byte: always a ProtocolError, never a wrong value."""
    fmt = rp.COMMANDS[command].reply
    assert fmt is not None
    good = rp.encode_reply(ADDR, command, *data.draw(_values_for(fmt)))
    kind = data.draw(st.sampled_from(["flip", "drop", "extra"]))
    if kind == "flip":
        bit = data.draw(st.integers(0, 8 * len(good) - 1))
        bad = bytearray(good)
        bad[bit // 8] ^= 1 << (bit % 8)
    elif kind == "drop":
        i = data.draw(st.integers(0, len(good) - 1))
        bad = bytearray(good[:i] + good[i + 1:])
    else:
        bad = bytearray(good + data.draw(st.binary(min_size=1, max_size=4)))
    with pytest.raises(ProtocolError):
        rp.decode_reply(ADDR, command, bytes(bad))


@FUZZ
@given(st.binary(max_size=200))
def test_request_parser_always_makes_progress(buf: bytes) -> None:
    """The controller side: any buffer is consumed frame by frame to an incomplete tail, never raising."""
    rest = buf
    while True:
        parsed = rp.parse_request(rest, ADDR)
        if parsed is None:
            break
        assert 1 <= parsed.consumed <= len(rest)
        if parsed.kind is FrameKind.VALID and parsed.command is not None and rp.COMMANDS[parsed.command].is_write:
            frame = rest[:parsed.consumed]
            assert rp.crc16(frame[:-2]) == struct.unpack(">H", frame[-2:])[0]
        rest = rest[parsed.consumed:]
    # What is left can only be the start of a frame for this address.
    assert not rest or rest[0] == ADDR
