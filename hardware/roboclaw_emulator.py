"""A RoboClaw with two wheel motors, speaking packet serial on a pseudo-terminal.

Why it exists: the serial-base driver must be tested (and a user's stack brought up)
without a motor controller on the desk, and the failures that matter on a robot (a host
that dies, a controller that power-cycles, noise on the line, a USB adapter that vanishes)
must be reproducible on demand. The emulator is both the test fixture and a tool:

    python -m navkit.hardware.roboclaw_emulator --link /tmp/roboclaw

prints the pty path to point ``serial_base`` at (``port: /tmp/roboclaw`` follows restarts).

What it models (see :class:`RoboClawModel`): the command subset of
:mod:`navkit.hardware.roboclaw_protocol` (14-21, 24, 35-37, 78, 79, 90, 108); a
first-order velocity response of each motor to its speed setpoint (time constant
``time_constant_s``, setpoint saturated at ``max_qpps``); encoder counters integrated
exactly over that response and wrapping at 2**32; the controller's serial timeout
(command 14), which zeroes both setpoints when no valid packet has arrived for the set
time (0 = disabled, the power-on value unless configured, as on a controller whose
setting was not written to EEPROM); the 10 ms inter-byte packet timeout; counters of
every bad frame; optional fault injection (replies with a flipped bit) and optional byte
timing at a modelled baud rate.

What it does not model: the speed PID (the lag is an ideal first-order response, no
overshoot, no load or slip), current, voltage sag and temperature (battery voltage and
status are constants you set), the 1/300 s window of command 79 and the one-second window
of command 108 (both return the modelled instantaneous speed), buffered and position
commands, EEPROM, other addresses sharing the line, and, unless ``model_baud`` is set,
the wire time of bytes (a pty moves them as fast as the host writes).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import select
import signal
import threading
import time
import tty
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from navkit.hardware.roboclaw_protocol import (
    ACK,
    COMMANDS,
    PACKET_TIMEOUT_S,
    Cmd,
    FrameKind,
    encode_firmware_reply,
    encode_reply,
    parse_request,
    valid_address,
)

__all__ = ["EmulatorConfig", "EmulatorSnapshot", "EmulatorStats", "RoboClawEmulator", "RoboClawModel", "main"]

_COUNT_MODULUS = 1 << 32


@dataclass
class EmulatorConfig:
    """What kind of controller and motors to emulate; defaults resemble a small AGV drive."""

    address: int = 0x80
    """Packet-serial address (0x80-0x87); bytes for any other address are stray bytes."""
    time_constant_s: float = 0.05
    """First-order lag of each wheel's speed behind its setpoint (motor, gearbox and PID together)."""
    max_qpps: int = 40_000
    """Setpoints are saturated at +-this many counts/s (the controller's configured QPPS)."""
    power_on_serial_timeout_s: float = 0.0
    """Serial timeout after power-up; 0 disables it (a driver must set it on every connect)."""
    main_battery_v: float = 24.3
    status: int = 0
    """The status bit mask command 90 returns (0 = normal)."""
    firmware: str = "RoboClaw emulator (navkit) v4.2.8"
    packet_timeout_s: float = PACKET_TIMEOUT_S
    """A partial packet older than this (inter-byte silence) is dropped and counted as truncated."""
    tick_s: float = 0.002
    """How often the idle emulator wakes to integrate the motors and check its watchdog."""
    model_baud: int | None = None
    """When set, a frame takes effect only after its wire time at this baud (10 bits a byte) and a
    reply leaves after its own; None moves bytes at pty speed."""
    reply_corruption: float = 0.0
    """Probability that a reply gets one flipped bit (fault injection for the host's decoder)."""
    seed: int = 0
    """Seeds the fault injection."""
    encoder_start: tuple[int, int] = (0, 0)
    """Counter values at power-up (set near 2**32 to exercise wraparound)."""
    link: str | None = None
    """A symlink kept pointing at the current pty (like a udev by-id name): restarts on a new pty
    keep the same path for the host."""

    def __post_init__(self) -> None:
        if not valid_address(self.address):
            raise ValueError(f"address: must be 0x80..0x87, got {self.address!r}")
        for name in ("time_constant_s", "packet_timeout_s", "tick_s"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0.0):
                raise ValueError(f"{name}: must be a finite number > 0, got {getattr(self, name)!r}")
        if self.max_qpps <= 0:
            raise ValueError(f"max_qpps: must be > 0, got {self.max_qpps!r}")
        if not 0.0 <= self.power_on_serial_timeout_s <= 25.5:
            raise ValueError(f"power_on_serial_timeout_s: must be 0..25.5, got {self.power_on_serial_timeout_s!r}")
        if not 0.0 <= self.reply_corruption <= 1.0:
            raise ValueError(f"reply_corruption: must be 0..1, got {self.reply_corruption!r}")
        if self.model_baud is not None and self.model_baud <= 0:
            raise ValueError(f"model_baud: must be > 0 or None, got {self.model_baud!r}")


@dataclass
class EmulatorStats:
    """Every byte the emulator received ends up in exactly one of these (or is still pending)."""

    rx_bytes: int = 0
    valid_frames: int = 0
    valid_bytes: int = 0
    not_addressed: int = 0
    """Stray bytes: a byte where a frame should start that is not this controller's address."""
    unknown_command: int = 0
    """Address followed by a command outside the subset (2 bytes each)."""
    bad_crc: int = 0
    bad_crc_bytes: int = 0
    truncated: int = 0
    """Partial frames dropped after the inter-byte packet timeout."""
    truncated_bytes: int = 0
    replies_sent: int = 0
    replies_corrupted: int = 0
    replies_dropped: int = 0
    """Replies the pty would not take (the host stopped reading)."""
    watchdog_trips: int = 0
    """Times the serial timeout zeroed a non-zero setpoint."""
    power_cycles: int = 0
    internal_errors: int = 0
    """Exceptions caught in the I/O thread (a bug if ever non-zero; the thread carries on)."""

    @property
    def bad_frames(self) -> int:
        return self.not_addressed + self.unknown_command + self.bad_crc + self.truncated


@dataclass(frozen=True)
class EmulatorSnapshot:
    """A consistent copy of the emulated controller at ``t`` (time.monotonic seconds)."""

    t: float
    setpoint_qpps: tuple[int, int]
    speed_qpps: tuple[float, float]
    encoder_counts: tuple[int, int]
    travel_counts: tuple[float, float]
    """True wheel travel since the emulator was made, unwrapped, unaffected by command 20 or power cycles."""
    serial_timeout_s: float
    last_valid_frame_t: float
    last_motion_frame_t: float | None
    """When the last drive packet with a non-zero speed arrived (None: none since power-up)."""
    pending_bytes: int
    stats: EmulatorStats


class RoboClawModel:
    """The controller's logic without I/O: feed it bytes with their arrival time, get its reply bytes.

    Time is explicit (``now`` in seconds) so tests can drive it deterministically; the
    pty wrapper passes ``time.monotonic()``.
    """

    def __init__(self, config: EmulatorConfig, now: float) -> None:
        self.config = config
        self.stats = EmulatorStats()
        self._rng = random.Random(config.seed)
        self.setpoint_log: deque[tuple[float, int, int]] = deque(maxlen=100_000)
        """(t, m1, m2) at every setpoint change, for latency measurements."""
        self._travel = [0.0, 0.0]  # the wheels' real travel survives a controller reset
        self._reset_state(now)

    def _reset_state(self, now: float) -> None:
        self._t = now
        self._setpoint = [0, 0]
        self._speed = [0.0, 0.0]
        self._position = [float(c % _COUNT_MODULUS) for c in self.config.encoder_start]
        self._wrap_ref = [0, 0]
        self.serial_timeout_s = self.config.power_on_serial_timeout_s
        self.last_valid_frame_t = now
        self.last_motion_frame_t: float | None = None
        self._buf = bytearray()
        self._last_rx_t = now
        self.setpoint_log.append((now, 0, 0))

    def power_cycle(self, now: float) -> None:
        """Power off and on: motors stop, counters restart, serial timeout back to its power-on value."""
        self.advance_to(now)
        self.stats.power_cycles += 1
        if self._buf:
            self._drop_partial()
        self._reset_state(now)

    # ---------------------------------------------------------------------------- physics

    def advance_to(self, now: float) -> None:
        """Integrate both motors up to ``now``, applying the serial timeout at the instant it expires."""
        while now > self._t:
            t_next = now
            trip = False
            if self.serial_timeout_s > 0.0 and self._setpoint != [0, 0]:
                t_trip = self.last_valid_frame_t + self.serial_timeout_s
                if t_trip < now:
                    t_next, trip = max(t_trip, self._t), True
            self._integrate(t_next - self._t)
            self._t = t_next
            if trip:
                self.stats.watchdog_trips += 1
                self._set_setpoint(0, 0, t_next)

    def _integrate(self, dt: float) -> None:
        if dt <= 0.0:
            return
        decay = math.exp(-dt / self.config.time_constant_s)
        tau = self.config.time_constant_s
        for i in range(2):
            sp, v0 = float(self._setpoint[i]), self._speed[i]
            distance = sp * dt + (v0 - sp) * tau * (1.0 - decay)
            self._position[i] += distance
            self._travel[i] += distance
            self._speed[i] = sp + (v0 - sp) * decay

    def _set_setpoint(self, m1: int, m2: int, now: float) -> None:
        limit = self.config.max_qpps
        new = [max(-limit, min(limit, m1)), max(-limit, min(limit, m2))]
        if new != self._setpoint:
            self._setpoint = new
            self.setpoint_log.append((now, new[0], new[1]))

    # ---------------------------------------------------------------------------- bytes in

    def expire_partial(self, now: float) -> None:
        """Drop a partial frame after the packet timeout, as the controller does."""
        if self._buf and now - self._last_rx_t > self.config.packet_timeout_s:
            self._drop_partial()

    def _drop_partial(self) -> None:
        self.stats.truncated += 1
        self.stats.truncated_bytes += len(self._buf)
        self._buf.clear()

    @property
    def pending_bytes(self) -> int:
        return len(self._buf)

    def receive(self, data: bytes, now: float) -> bytes:
        """Take bytes that arrived at ``now``; return what the controller sends back (maybe nothing)."""
        self.advance_to(now)
        self.expire_partial(now)
        self.stats.rx_bytes += len(data)
        self._buf += data
        self._last_rx_t = now
        out = bytearray()
        while True:
            parsed = parse_request(self._buf, self.config.address)
            if parsed is None:
                break
            frame_len = parsed.consumed
            del self._buf[:frame_len]
            if parsed.kind is FrameKind.NOT_ADDRESSED:
                self.stats.not_addressed += 1
            elif parsed.kind is FrameKind.UNKNOWN_COMMAND:
                self.stats.unknown_command += 1
            elif parsed.kind is FrameKind.BAD_CRC:
                self.stats.bad_crc += 1
                self.stats.bad_crc_bytes += frame_len
            else:
                self.stats.valid_frames += 1
                self.stats.valid_bytes += frame_len
                assert parsed.command is not None
                self.last_valid_frame_t = now
                reply = self._execute(parsed.command, parsed.values, now)
                out += self._maybe_corrupt(reply)
                self.stats.replies_sent += 1
        return bytes(out)

    def _maybe_corrupt(self, reply: bytes) -> bytes:
        if self.config.reply_corruption <= 0.0 or self._rng.random() >= self.config.reply_corruption:
            return reply
        self.stats.replies_corrupted += 1
        out = bytearray(reply)
        bit = self._rng.randrange(8 * len(out))
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    def _execute(self, command: int, values: tuple[int, ...], now: float) -> bytes:
        address = self.config.address
        if command == Cmd.SET_SERIAL_TIMEOUT:
            self.serial_timeout_s = values[0] / 10.0
            return ACK
        if command == Cmd.RESET_ENCODERS:
            self._position = [0.0, 0.0]
            self._wrap_ref = [0, 0]
            return ACK
        if command in (Cmd.DRIVE_M1_SPEED, Cmd.DRIVE_M2_SPEED, Cmd.DRIVE_M1M2_SPEED):
            m1, m2 = self._setpoint
            if command == Cmd.DRIVE_M1_SPEED:
                m1 = values[0]
            elif command == Cmd.DRIVE_M2_SPEED:
                m2 = values[0]
            else:
                m1, m2 = values
            self._set_setpoint(m1, m2, now)
            if values != (0,) and values != (0, 0):
                self.last_motion_frame_t = now
            return ACK
        if command == Cmd.READ_FIRMWARE:
            return encode_firmware_reply(address, self.config.firmware)
        if command == Cmd.READ_SERIAL_TIMEOUT:
            return encode_reply(address, command, round(self.serial_timeout_s * 10.0))
        if command in (Cmd.READ_ENCODER_M1, Cmd.READ_ENCODER_M2):
            i = 0 if command == Cmd.READ_ENCODER_M1 else 1
            wraps = math.floor(self._position[i]) // _COUNT_MODULUS
            status = (1 if wraps < self._wrap_ref[i] else 0) | (2 if self._speed[i] < 0 else 0) \
                | (4 if wraps > self._wrap_ref[i] else 0)
            self._wrap_ref[i] = wraps
            return encode_reply(address, command, self._count(i), status)
        if command in (Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2):
            i = 0 if command == Cmd.READ_SPEED_M1 else 1
            speed = round(self._speed[i])
            return encode_reply(address, command, speed, 1 if speed < 0 else 0)
        if command == Cmd.READ_MAIN_BATTERY:
            return encode_reply(address, command, max(0, min(0xFFFF, round(self.config.main_battery_v * 10.0))))
        if command == Cmd.READ_ENCODERS:
            return encode_reply(address, command, self._count(0), self._count(1))
        if command in (Cmd.READ_ISPEEDS, Cmd.READ_AVG_SPEEDS):
            return encode_reply(address, command, round(self._speed[0]), round(self._speed[1]))
        if command == Cmd.READ_STATUS:
            return encode_reply(address, command, self.config.status & 0xFFFFFFFF)
        raise AssertionError(f"command {command} ({COMMANDS[command].name}) parsed but not executed")

    def _count(self, i: int) -> int:
        return math.floor(self._position[i]) % _COUNT_MODULUS

    # ---------------------------------------------------------------------------- inspection

    def snapshot(self) -> EmulatorSnapshot:
        return EmulatorSnapshot(
            t=self._t,
            setpoint_qpps=(self._setpoint[0], self._setpoint[1]),
            speed_qpps=(self._speed[0], self._speed[1]),
            encoder_counts=(self._count(0), self._count(1)),
            travel_counts=(self._travel[0], self._travel[1]),
            serial_timeout_s=self.serial_timeout_s,
            last_valid_frame_t=self.last_valid_frame_t,
            last_motion_frame_t=self.last_motion_frame_t,
            pending_bytes=len(self._buf),
            stats=replace(self.stats),
        )


@dataclass
class _Pty:
    master: int
    slave: int
    name: str


class RoboClawEmulator:
    """:class:`RoboClawModel` behind a pseudo-terminal, served by a background thread.

    Use as a context manager or call :meth:`start` / :meth:`close`. :attr:`port` is what the
    host opens: the ``link`` symlink when one is configured, otherwise the pty's own path.
    The emulator keeps its own handle on the pty's terminal side, so the host may open and
    close it (or die) without the emulator seeing an error.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.lock = threading.Lock()
        """Held while the model changes; hold it to read :attr:`model` consistently."""
        self.model = RoboClawModel(self.config, time.monotonic())
        self._pty: _Pty | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._tx_free_t = 0.0

    # ---------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> RoboClawEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pty_path(self) -> str:
        """The current pty's own path (/dev/pts/N); changes at every :meth:`restart`."""
        if self._pty is None:
            raise RuntimeError("the emulator is not running")
        return self._pty.name

    @property
    def port(self) -> str:
        """What a host should open: the stable ``link`` when configured, else :attr:`pty_path`."""
        return self.config.link if self.config.link else self.pty_path

    def start(self) -> None:
        """Serve the pty, opening a new one if there is none (the model keeps its state)."""
        if self.running:
            return
        if self._pty is None:
            self._open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="roboclaw-emulator", daemon=True)
        self._thread.start()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._pty = _Pty(master, slave, os.ttyname(slave))
        if self.config.link:
            tmp = f"{self.config.link}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self._pty.name, tmp)
            os.replace(tmp, self.config.link)

    def pause(self) -> None:
        """Stop answering but keep the pty open: a controller rebooting or hung on a UART line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def resume(self, *, power_cycle: bool = True) -> None:
        """Answer again on the same pty; what the host sent meanwhile is lost, as it would be."""
        if self._pty is not None:
            with contextlib.suppress(OSError):
                while os.read(self._pty.master, 4096):
                    pass
        if power_cycle:
            self.power_cycle()
        self.start()

    def close(self) -> None:
        """Stop serving and close the pty: to the host, the port vanishes (reads and writes fail)."""
        self.pause()
        if self._pty is not None:
            for fd in (self._pty.master, self._pty.slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self.config.link and os.path.islink(self.config.link) \
                    and os.readlink(self.config.link) == self._pty.name:
                with contextlib.suppress(OSError):
                    os.unlink(self.config.link)
            self._pty = None

    def restart(self, *, power_cycle: bool = True) -> None:
        """Close the pty and come back on a new one (a USB adapter re-enumerating); by default
        the controller also power-cycles, as it does when the USB cable feeds its logic."""
        self.close()
        if power_cycle:
            self.power_cycle()
        self.start()

    def power_cycle(self) -> None:
        """Reset the controller on the same pty: motors stop, counters and serial timeout reset."""
        with self.lock:
            self.model.power_cycle(time.monotonic())

    # ---------------------------------------------------------------------------- inspection

    def snapshot(self) -> EmulatorSnapshot:
        """The controller brought up to now, copied under the lock."""
        with self.lock:
            self.model.advance_to(time.monotonic())
            return self.model.snapshot()

    def setpoint_changes(self, since: float = -math.inf) -> list[tuple[float, int, int]]:
        """(t, m1, m2) of every setpoint change at or after ``since`` (time.monotonic seconds)."""
        with self.lock:
            self.model.advance_to(time.monotonic())
            return [entry for entry in self.model.setpoint_log if entry[0] >= since]

    def inject_to_host(self, data: bytes) -> None:
        """Write raw bytes towards the host (noise on the controller's TX line)."""
        if self._pty is not None:
            with contextlib.suppress(OSError):
                os.write(self._pty.master, data)

    # ---------------------------------------------------------------------------- I/O thread

    def _wire_time(self, n_bytes: int) -> float:
        return 0.0 if self.config.model_baud is None else n_bytes * 10.0 / self.config.model_baud

    def _serve(self) -> None:
        pty = self._pty
        assert pty is not None
        rx_free_t = 0.0
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([pty.master], [], [], self.config.tick_s)
                data = b""
                if ready:
                    with contextlib.suppress(BlockingIOError, InterruptedError):
                        data = os.read(pty.master, 4096)
                now = time.monotonic()
                if data and self.config.model_baud is not None:
                    # The bytes left the host at ``now`` at the earliest; on a wire they finish
                    # arriving one wire time later, after whatever was still on the line.
                    done = max(now, rx_free_t) + self._wire_time(len(data))
                    rx_free_t = done
                    time.sleep(max(0.0, done - time.monotonic()))
                    now = done
                with self.lock:
                    if data:
                        reply = self.model.receive(data, now)
                    else:
                        self.model.advance_to(now)
                        self.model.expire_partial(now)
                        reply = b""
                if reply:
                    self._send(pty.master, reply)
            except OSError:
                if self._stop.is_set():
                    break
                with self.lock:
                    self.model.stats.internal_errors += 1
                time.sleep(self.config.tick_s)
            except Exception:  # garbage in must never stop the emulator
                with self.lock:
                    self.model.stats.internal_errors += 1

    def _send(self, fd: int, reply: bytes) -> None:
        if self.config.model_baud is not None:
            time.sleep(self._wire_time(len(reply)))
        try:
            os.write(fd, reply)
        except (BlockingIOError, InterruptedError):
            with self.lock:
                self.model.stats.replies_dropped += 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run an emulator until Ctrl-C, printing its port (and, with --stats, its counters)."""
    parser = argparse.ArgumentParser(prog="python -m navkit.hardware.roboclaw_emulator",
                                     description="A RoboClaw (packet serial) on a pseudo-terminal.")
    parser.add_argument("--link", help="symlink kept pointing at the pty (a stable port name)")
    parser.add_argument("--address", type=lambda s: int(s, 0), default=0x80, help="packet-serial address")
    parser.add_argument("--time-constant", type=float, default=0.05, help="wheel speed lag, s")
    parser.add_argument("--max-qpps", type=int, default=40_000, help="speed saturation, counts/s")
    parser.add_argument("--serial-timeout", type=float, default=0.0, help="power-on serial timeout, s (0 = off)")
    parser.add_argument("--model-baud", type=int, default=None, help="add wire time at this baud rate")
    parser.add_argument("--reply-corruption", type=float, default=0.0, help="probability of a flipped reply bit")
    parser.add_argument("--stats", type=float, default=0.0, help="print counters every N seconds (0 = never)")
    args = parser.parse_args(argv)
    try:
        config = EmulatorConfig(address=args.address, time_constant_s=args.time_constant, max_qpps=args.max_qpps,
                                power_on_serial_timeout_s=args.serial_timeout, model_baud=args.model_baud,
                                reply_corruption=args.reply_corruption, link=args.link)
    except ValueError as exc:
        parser.error(str(exc))
    if args.link and Path(args.link).exists() and not Path(args.link).is_symlink():
        parser.error(f"--link {args.link}: exists and is not a symlink")
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # leave the with-block: the pty closes and the link is removed

    signal.signal(signal.SIGTERM, _terminate)
    with RoboClawEmulator(config) as emu:
        print(f"port: {emu.port}", flush=True)
        if args.link:
            print(f"pty: {emu.pty_path}", flush=True)
        try:
            while True:
                time.sleep(args.stats if args.stats > 0 else 3600.0)
                if args.stats > 0:
                    snap = emu.snapshot()
                    print(f"setpoint {snap.setpoint_qpps} counts {snap.encoder_counts} {snap.stats}", flush=True)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
