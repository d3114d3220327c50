"""The RoboClaw "packet serial" protocol as pure functions: CRC, request frames, reply decoding.

No I/O here, so the driver (:mod:`navkit.hardware.serial_base`), the emulator
(:mod:`navkit.hardware.roboclaw_emulator`) and the fuzz tests all share one definition of a
frame, and a malformed reply is a typed :class:`ProtocolError` rather than a ``struct.error``
deep inside the driver.

Source: BasicMicro, *RoboClaw Series User Manual* (the public PDF; the chapters "Packet
Serial", "CRC16 Checksum Calculation", "Advanced Packet Serial" and "Encoders"). The
command numbers and frame layouts below were checked against the manual's command pages;
the wording of the ``90 - Read Status`` page differs between manual editions (see below).

Frames (every multi-byte value is big-endian, most significant byte first):

* **write**: ``[address, command, payload..., crc_hi, crc_lo]``. The controller answers one
  byte ``0xFF`` when the packet was valid and nothing at all when it was not (bad CRC,
  unknown command), so a missing ACK is the only failure signal a host gets.
* **read**: ``[address, command]`` without a CRC. The reply is ``[data..., crc_hi, crc_lo]``
  and its CRC covers the *sent* address and command followed by the data, so a reply that
  belongs to another request fails the check.
* **CRC16**: polynomial 0x1021, initial value 0, bits most-significant first, no final XOR
  (the manual's C routine; in the usual catalogue these are the CRC-16/XMODEM parameters).
* **packet timeout**: a gap of more than 10 ms between two bytes makes the controller drop
  the partial packet. That is how a host resynchronises after noise: wait ≥ 10 ms (any
  reply timeout does) and send the next packet whole.
* **address**: 0x80-0x87 (set on the controller; 0x80 is the factory default).

The subset implemented (all speeds and counts are quadrature encoder counts, "QPPS" =
counts per second):

=====  ==================================  ======================  ==============================================
cmd    name                                request payload         reply data (before the 2 CRC bytes)
=====  ==================================  ======================  ==============================================
14     set serial timeout                  value u8 (× 100 ms)     ACK 0xFF (no CRC)
15     read serial timeout                 --                      value u8 (× 100 ms)
16     read encoder count M1               --                      count u32, status u8 (bit0 underflow,
                                                                   bit1 backwards, bit2 overflow)
17     read encoder count M2               --                      count u32, status u8
18     read encoder speed M1               --                      speed i32 (counts/s), status u8 (1 = backwards)
19     read encoder speed M2               --                      speed i32, status u8
20     reset quadrature encoders           --                      ACK 0xFF
21     read firmware version               --                      ASCII text, then 10 (LF), 0 (NUL); ≤ 48 bytes
24     read main battery voltage           --                      value u16 (tenths of a volt)
35     drive M1 with signed speed          speed i32 (counts/s)    ACK 0xFF
36     drive M2 with signed speed          speed i32               ACK 0xFF
37     drive M1 / M2 with signed speed     speed M1 i32, M2 i32    ACK 0xFF
78     read encoder counters (both)        --                      count M1 u32, count M2 u32
79     read instantaneous speeds (both)    --                      speed M1 i32, speed M2 i32 (last 1/300 s)
90     read status                         --                      status u32 (bit mask; 0 = normal)
108    read average speeds (both)          --                      speed M1 i32, speed M2 i32 (last second)
=====  ==================================  ======================  ==============================================

Notes on the manual: command 35 drives M1 only; the two-motor speed command is 37. The
serial timeout (14) stops both motors when no packet arrives for the set time; 0 disables
it, and the setting is lost at power-up unless written to EEPROM, so a driver must set it
after every (re)connection. ``90 - Read Status`` is shown as a 16-bit mask in older editions
and as a mask up to 0x02000000 (4 bytes) in newer ones; :func:`decode_status` takes the
width, 4 by default. Commands 18/19 also give the direction in their status byte; the
speed itself is decoded as a signed 32-bit value (negative backwards), as 79 and 108 send
it. Encoder counters are unsigned 32-bit and wrap; differences must be taken modulo 2**32
(:func:`count_delta`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum, IntEnum

from navkit.common.errors import FieldError

__all__ = ["ACK", "COMMANDS", "CommandSpec", "Cmd", "FrameKind", "MAX_FIRMWARE_REPLY", "PACKET_TIMEOUT_S",
           "ParsedFrame", "ProtocolError", "count_delta", "crc16", "decode_ack", "decode_encoder",
           "decode_encoders", "decode_firmware", "decode_main_battery_v", "decode_reply", "decode_serial_timeout_s",
           "decode_speeds", "decode_status", "drive_speeds", "encode_firmware_reply", "encode_read", "encode_reply",
           "encode_write", "parse_request", "read_request", "reply_size", "reset_encoders", "set_serial_timeout",
           "valid_address"]

ACK = b"\xff"
"""The one-byte answer to a valid write packet."""

PACKET_TIMEOUT_S = 0.010
"""An inter-byte gap longer than this makes the controller discard a partial packet."""

MAX_FIRMWARE_REPLY = 48
"""Command 21 returns at most this many bytes of text (with its LF and NUL), then the CRC."""

_COUNT_MODULUS = 1 << 32


class Cmd(IntEnum):
    """Command numbers of the implemented subset (manual numbering)."""

    SET_SERIAL_TIMEOUT = 14
    READ_SERIAL_TIMEOUT = 15
    READ_ENCODER_M1 = 16
    READ_ENCODER_M2 = 17
    READ_SPEED_M1 = 18
    READ_SPEED_M2 = 19
    RESET_ENCODERS = 20
    READ_FIRMWARE = 21
    READ_MAIN_BATTERY = 24
    DRIVE_M1_SPEED = 35
    DRIVE_M2_SPEED = 36
    DRIVE_M1M2_SPEED = 37
    READ_ENCODERS = 78
    READ_ISPEEDS = 79
    READ_STATUS = 90
    READ_AVG_SPEEDS = 108


@dataclass(frozen=True)
class CommandSpec:
    """How one command is framed: ``struct`` formats (big-endian) of its payload and reply data."""

    name: str
    request: str
    """Payload of the request; ``""`` when the request is only ``[address, command]``."""
    reply: str | None
    """Data of the reply; None for a write (answered by :data:`ACK`), ``"text"`` for firmware."""

    @property
    def is_write(self) -> bool:
        return self.reply is None


COMMANDS: dict[int, CommandSpec] = {
    Cmd.SET_SERIAL_TIMEOUT: CommandSpec("set serial timeout", ">B", None),
    Cmd.READ_SERIAL_TIMEOUT: CommandSpec("read serial timeout", "", ">B"),
    Cmd.READ_ENCODER_M1: CommandSpec("read encoder count M1", "", ">IB"),
    Cmd.READ_ENCODER_M2: CommandSpec("read encoder count M2", "", ">IB"),
    Cmd.READ_SPEED_M1: CommandSpec("read encoder speed M1", "", ">iB"),
    Cmd.READ_SPEED_M2: CommandSpec("read encoder speed M2", "", ">iB"),
    Cmd.RESET_ENCODERS: CommandSpec("reset quadrature encoders", "", None),
    Cmd.READ_FIRMWARE: CommandSpec("read firmware version", "", "text"),
    Cmd.READ_MAIN_BATTERY: CommandSpec("read main battery voltage", "", ">H"),
    Cmd.DRIVE_M1_SPEED: CommandSpec("drive M1 with signed speed", ">i", None),
    Cmd.DRIVE_M2_SPEED: CommandSpec("drive M2 with signed speed", ">i", None),
    Cmd.DRIVE_M1M2_SPEED: CommandSpec("drive M1 / M2 with signed speed", ">ii", None),
    Cmd.READ_ENCODERS: CommandSpec("read encoder counters", "", ">II"),
    Cmd.READ_ISPEEDS: CommandSpec("read instantaneous speeds", "", ">ii"),
    Cmd.READ_STATUS: CommandSpec("read status", "", ">I"),
    Cmd.READ_AVG_SPEEDS: CommandSpec("read average speeds", "", ">ii"),
}
"""The implemented subset, by command number (see the module table)."""


class ProtocolError(FieldError):
    """A frame that is not what the protocol allows; names the command and what was wrong.

    The driver counts these as bad replies and carries on: on a serial line, noise and a
    controller that resets mid-reply are normal events, not bugs.
    """

    def __init__(self, command: int, field: str, problem: str) -> None:
        spec = COMMANDS.get(command)
        label = f"{command} ({spec.name})" if spec else str(command)
        super().__init__(f"RoboClaw reply to command {label}", field, problem)
        self.command = command


# ---------------------------------------------------------------------------------------------- CRC


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC16 of ``data`` as the manual defines it (poly 0x1021, init 0, MSB first, no final XOR).

    ``crc`` continues a running value, so a reply can be checked as
    ``crc16(data, crc16(bytes([address, command])))`` without concatenating.
    """
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "big")


def valid_address(address: int) -> bool:
    """True for a packet-serial address the controller can be set to (0x80-0x87)."""
    return 0x80 <= address <= 0x87


def _check_address(address: int) -> None:
    if not valid_address(address):
        raise ValueError(f"RoboClaw address must be 0x80..0x87, got {address!r}")


def _spec(command: int) -> CommandSpec:
    spec = COMMANDS.get(command)
    if spec is None:
        raise ValueError(f"RoboClaw command {command!r} is not in the implemented subset")
    return spec


# ------------------------------------------------------------------------------------------ encoders


def encode_write(address: int, command: int, *values: int) -> bytes:
    """A write packet: address, command, packed ``values``, CRC. Raises ValueError on bad arguments."""
    _check_address(address)
    spec = _spec(command)
    if not spec.is_write:
        raise ValueError(f"RoboClaw command {command} ({spec.name}) is a read; use encode_read")
    if not spec.request and values:
        raise ValueError(f"RoboClaw command {command} ({spec.name}) takes no arguments, got {values!r}")
    try:
        payload = struct.pack(spec.request, *values) if spec.request else b""
    except struct.error as exc:
        raise ValueError(f"RoboClaw command {command} ({spec.name}): bad arguments {values!r}: {exc}") from None
    return _with_crc(bytes((address, command)) + payload)


def encode_read(address: int, command: int) -> bytes:
    """A read request: only ``[address, command]`` (the manual puts no CRC on read requests)."""
    _check_address(address)
    spec = _spec(command)
    if spec.is_write:
        raise ValueError(f"RoboClaw command {command} ({spec.name}) is a write; use encode_write")
    return bytes((address, command))


def drive_speeds(address: int, m1_qpps: int, m2_qpps: int) -> bytes:
    """Command 37: both motors at signed speeds (counts/s); the controller's PID holds them."""
    return encode_write(address, Cmd.DRIVE_M1M2_SPEED, m1_qpps, m2_qpps)


def set_serial_timeout(address: int, timeout_s: float) -> bytes:
    """Command 14: stop both motors when no packet arrives for ``timeout_s`` (0.1 s steps, ≤ 25.5 s).

    The value is rounded to the nearest 100 ms; 0 would disable the controller's own
    watchdog, so it is refused here (use :func:`encode_write` to send it on purpose).
    """
    units = round(timeout_s * 10.0)
    if not 1 <= units <= 255:
        raise ValueError(f"serial timeout must be 0.1..25.5 s, got {timeout_s!r}")
    return encode_write(address, Cmd.SET_SERIAL_TIMEOUT, units)


def reset_encoders(address: int) -> bytes:
    """Command 20: both quadrature counters to zero."""
    return encode_write(address, Cmd.RESET_ENCODERS)


def read_request(address: int, command: int) -> bytes:
    """Alias of :func:`encode_read`, for symmetry with the write helpers."""
    return encode_read(address, command)


def reply_size(command: int) -> int | None:
    """Bytes the controller sends back for ``command``: 1 for a write, data + 2 CRC for a read, None
    for the firmware text (variable length, ended by LF NUL)."""
    spec = _spec(command)
    if spec.reply is None:
        return 1
    if spec.reply == "text":
        return None
    return struct.calcsize(spec.reply) + 2


def encode_reply(address: int, command: int, *values: int) -> bytes:
    """What a controller answers to read ``command`` (data + CRC over address, command, data); the emulator's half."""
    spec = _spec(command)
    if spec.reply is None or spec.reply == "text":
        raise ValueError(f"RoboClaw command {command} ({spec.name}) has no fixed-format reply")
    data = struct.pack(spec.reply, *values)
    crc = crc16(data, crc16(bytes((address, command))))
    return data + crc.to_bytes(2, "big")


def encode_firmware_reply(address: int, text: str) -> bytes:
    """Command 21's reply: ASCII ``text``, LF, NUL, CRC; text cut so the whole stays ≤ 48 bytes."""
    body = text.encode("ascii", "replace")[: MAX_FIRMWARE_REPLY - 2] + b"\n\x00"
    crc = crc16(body, crc16(bytes((address, Cmd.READ_FIRMWARE))))
    return body + crc.to_bytes(2, "big")


# ------------------------------------------------------------------------------------------ decoders


def _check_crc(address: int, command: int, reply: bytes) -> bytes:
    data, sent = reply[:-2], int.from_bytes(reply[-2:], "big")
    expected = crc16(data, crc16(bytes((address, command))))
    if sent != expected:
        raise ProtocolError(command, "crc", f"CRC mismatch (received 0x{sent:04x}, computed 0x{expected:04x} "
                                            f"over address 0x{address:02x}, command and {len(data)} data bytes)")
    return data


def decode_ack(command: int, reply: bytes | bytearray) -> None:
    """Accept exactly one ``0xFF``; anything else (nothing, another byte, extra bytes) raises."""
    reply = bytes(reply)
    if reply != ACK:
        problem = "no reply (timeout)" if not reply else f"expected ACK 0xff, got {reply[:8].hex()}"
        raise ProtocolError(command, "ack", problem)


def decode_reply(address: int, command: int, reply: bytes | bytearray) -> tuple[int, ...]:
    """The values of a fixed-format read reply, after checking its length and CRC."""
    reply = bytes(reply)
    spec = _spec(command)
    if spec.reply is None or spec.reply == "text":
        raise ValueError(f"RoboClaw command {command} ({spec.name}) has no fixed-format reply")
    size = struct.calcsize(spec.reply) + 2
    if len(reply) != size:
        what = "no reply (timeout)" if not reply else f"{len(reply)} bytes"
        raise ProtocolError(command, "length", f"expected {size} bytes, got {what}")
    return struct.unpack(spec.reply, _check_crc(address, command, reply))


def decode_firmware(address: int, reply: bytes | bytearray) -> str:
    """Command 21: the version text, checked for its LF NUL ending, length and CRC."""
    reply = bytes(reply)
    command = int(Cmd.READ_FIRMWARE)
    if len(reply) > MAX_FIRMWARE_REPLY + 2:
        raise ProtocolError(command, "length", f"at most {MAX_FIRMWARE_REPLY + 2} bytes allowed, got {len(reply)}")
    if len(reply) < 4:
        raise ProtocolError(command, "length", f"at least 4 bytes (LF, NUL, CRC) expected, got {len(reply)}")
    data = _check_crc(address, command, reply)
    if not data.endswith(b"\n\x00") or b"\x00" in data[:-1]:
        raise ProtocolError(command, "text", "version text must end with LF, NUL and hold no other NUL")
    return data[:-2].decode("ascii", "replace")


def decode_encoders(address: int, reply: bytes | bytearray) -> tuple[int, int]:
    """Command 78: the two raw counters (0 .. 2**32 - 1; they wrap)."""
    m1, m2 = decode_reply(address, Cmd.READ_ENCODERS, reply)
    return m1, m2


def decode_speeds(address: int, reply: bytes | bytearray, command: int = Cmd.READ_ISPEEDS) -> tuple[int, int]:
    """Command 79 (instantaneous) or 108 (one-second average): signed counts/s of M1 and M2."""
    if command not in (Cmd.READ_ISPEEDS, Cmd.READ_AVG_SPEEDS):
        raise ValueError(f"decode_speeds: command must be 79 or 108, got {command!r}")
    m1, m2 = decode_reply(address, command, reply)
    return m1, m2


def decode_encoder(address: int, command: int, reply: bytes | bytearray) -> tuple[int, int]:
    """Commands 16-19: (count or signed speed, status byte) of one motor."""
    if command not in (Cmd.READ_ENCODER_M1, Cmd.READ_ENCODER_M2, Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2):
        raise ValueError(f"decode_encoder: command must be 16..19, got {command!r}")
    value, status = decode_reply(address, command, reply)
    return value, status


def decode_main_battery_v(address: int, reply: bytes | bytearray) -> float:
    """Command 24: volts (sent in tenths)."""
    (tenths,) = decode_reply(address, Cmd.READ_MAIN_BATTERY, reply)
    return tenths / 10.0


def decode_serial_timeout_s(address: int, reply: bytes | bytearray) -> float:
    """Command 15: the controller's serial timeout in seconds (0.0 = disabled)."""
    (units,) = decode_reply(address, Cmd.READ_SERIAL_TIMEOUT, reply)
    return units / 10.0


def decode_status(address: int, reply: bytes | bytearray, width: int = 4) -> int:
    """Command 90: the status bit mask; ``width`` 2 for firmware whose manual shows a 16-bit mask."""
    reply = bytes(reply)
    command = int(Cmd.READ_STATUS)
    if width not in (2, 4):
        raise ValueError(f"decode_status: width must be 2 or 4, got {width!r}")
    if len(reply) != width + 2:
        what = "no reply (timeout)" if not reply else f"{len(reply)} bytes"
        raise ProtocolError(command, "length", f"expected {width + 2} bytes, got {what}")
    return int.from_bytes(_check_crc(address, command, reply), "big")


def count_delta(new: int, old: int) -> int:
    """Signed change between two wrapping 32-bit counter readings (the shorter way round)."""
    return ((new - old + (_COUNT_MODULUS >> 1)) % _COUNT_MODULUS) - (_COUNT_MODULUS >> 1)


# ------------------------------------------------------------------------------- request parsing


class FrameKind(Enum):
    """What the head of a controller's receive buffer turned out to be."""

    VALID = "valid"
    """A whole, correct request for this address."""
    NOT_ADDRESSED = "not_addressed"
    """The first byte is not this controller's address: one stray byte, skipped."""
    UNKNOWN_COMMAND = "unknown_command"
    """Address then a command outside the subset: both bytes skipped (the length is unknowable)."""
    BAD_CRC = "bad_crc"
    """A write of the right length whose CRC does not match: the whole packet is dropped."""


@dataclass(frozen=True)
class ParsedFrame:
    """One decision of :func:`parse_request`: what the head of the buffer was and how many bytes it used."""

    kind: FrameKind
    consumed: int
    command: int | None = None
    values: tuple[int, ...] = ()


def parse_request(buf: bytes | bytearray, address: int) -> ParsedFrame | None:
    """Classify the head of a controller's receive buffer; None while a frame is still incomplete.

    This is the controller's side of the protocol, used by the emulator: a read request
    is whole after two bytes; a write after its payload and CRC. The caller drops a
    partial frame after :data:`PACKET_TIMEOUT_S` of silence, as the controller does.
    """
    if not buf:
        return None
    if buf[0] != address:
        return ParsedFrame(FrameKind.NOT_ADDRESSED, 1)
    if len(buf) < 2:
        return None
    command = buf[1]
    spec = COMMANDS.get(command)
    if spec is None:
        return ParsedFrame(FrameKind.UNKNOWN_COMMAND, 2, command)
    if not spec.is_write:
        return ParsedFrame(FrameKind.VALID, 2, command)
    size = 2 + (struct.calcsize(spec.request) if spec.request else 0) + 2
    if len(buf) < size:
        return None
    frame = bytes(buf[:size])
    if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "big"):
        return ParsedFrame(FrameKind.BAD_CRC, size, command)
    values = struct.unpack(spec.request, frame[2:-2]) if spec.request else ()
    return ParsedFrame(FrameKind.VALID, size, command, values)
