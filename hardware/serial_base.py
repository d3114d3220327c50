"""``robot:=serial_base``: a differential-drive base behind a RoboClaw motor controller on a serial line.

The driver implements :class:`navkit.common.interfaces.RobotBackend` with wall time: ``now()``
is ``time.monotonic()`` and ``advance(d)`` spends ``d`` seconds servicing the line. All serial
I/O happens inside ``advance`` (and ``reset``/``close``), on the caller's thread, so a
stack that stops calling ``advance`` stops talking to the controller, and the controller's
own watchdog then stops the wheels. Nothing here raises out of ``advance``: on a robot the
port vanishing, a controller power-cycling and noise on the wire are events to count and
recover from, not crashes.

Safety, in the order it acts:

1. **Host watchdog**: a command older than ``cmd_timeout_s`` (stamped in this driver's
   clock, checked as :func:`~navkit.common.sensor_data.is_fresh` does) is replaced by zero
   the moment it expires (``advance`` wakes for it), and ``watchdog_trips`` counts it.
   Non-finite commands stop at once; so does :meth:`SerialBase.set_estop`, which latches.
2. **Controller watchdog**: at every connection the RoboClaw's serial timeout (command 14)
   is set to ``controller_timeout_s``, and read back every ``config_check_period_s`` (a
   power-cycled controller forgets it; it is restored and counted). A host that dies,
   hangs or loses the cable therefore stops the wheels ``controller_timeout_s`` after its
   last packet. The driver keeps the controller fed by re-sending the current wheel speeds
   every ``send_period_s`` (≥ 10 Hz) and polling the encoders every ``poll_period_s``.
3. **Limits**: |v| ≤ ``v_max``, |ω| ≤ ``omega_max``, then acceleration limits on both,
   then (with ``max_qpps``) both wheels scaled by one factor so the path's curvature is
   kept. Commanded slow-downs ramp at ``decel_max`` (3× the start-up ramp by default); safety
   stops (stale, non-finite, e-stop, link loss) do not wait for the ramp.

With the defaults, a dead host's base stops ``controller_timeout_s`` = 0.3 s after its last
packet (≤ 0.35 s after its last drive packet); a live host that stops commanding stops the
base ``cmd_timeout_s`` = 0.5 s after the stamp of its last command, which is ≤
``send_period_s`` after the controller received the last non-zero drive packet. Lower
``cmd_timeout_s`` if "0.5 s after the last command" must hold from the command's stamp.

Odometry is dead reckoning from the two 32-bit encoder counters (command 78), with
differences taken modulo 2**32 so a counter wrapping is not a jump, midpoint integration,
and the sample time taken halfway through the request. A change no wheel could make in
the elapsed time (the controller reset its counters) is skipped, counted, and the
counters re-based. The odometry stamp is the time of the last successful encoder read, so
a consumer sees a stale stamp while the link is down.

Protocol: BasicMicro RoboClaw packet serial (:mod:`navkit.hardware.roboclaw_protocol`);
try it without hardware against :mod:`navkit.hardware.roboclaw_emulator`.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum
from typing import Protocol

import serial

from navkit.common.errors import ParameterError, brief
from navkit.common.geometry import Pose2D, wrap_angle
from navkit.common.sensor_data import CameraImage, LaserScan, Odometry, VelocityCommand, is_fresh
from navkit.hardware.roboclaw_protocol import (
    MAX_FIRMWARE_REPLY,
    Cmd,
    ProtocolError,
    count_delta,
    decode_ack,
    decode_encoders,
    decode_firmware,
    decode_main_battery_v,
    decode_serial_timeout_s,
    decode_status,
    drive_speeds,
    encode_read,
    reply_size,
    set_serial_timeout,
    valid_address,
)

try:  # pyserial's POSIX backend lets termios errors through (e.g. flushing a vanished pty)
    import termios

    _IO_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # pragma: no cover - not POSIX
    _IO_ERRORS = (serial.SerialException, OSError)

_OPEN_ERRORS: tuple[type[BaseException], ...] = (*_IO_ERRORS, ValueError)
"""pyserial raises ValueError for a malformed port setting."""

__all__ = ["LinkState", "SerialBase", "SerialBaseConfig", "SerialBaseConfigError", "SerialBaseStats", "SerialPort",
           "open_serial_port"]

_INT32_MAX = 2**31 - 1


class SerialBaseConfigError(ParameterError, ValueError):
    """A bad :class:`SerialBaseConfig` value; one line naming the field.

    Also a ValueError, so :func:`navkit.common.params.config_from_params` re-raises it with
    the parameter file's name in front.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__("SerialBaseConfig", field, problem)


@dataclass
class SerialBaseConfig:
    """Everything the serial base needs; the defaults suit a small AGV on a RoboClaw at 38400 baud."""

    port: str = "/dev/ttyACM0"
    """Serial device; prefer a stable name (/dev/serial/by-id/...) so a re-enumerated adapter is found again.
    A pyserial URL also works (``socket://host:port`` for a serial-to-TCP bridge)."""
    baud: int = 38400
    """Must match the controller's packet-serial baud setting (ignored by USB-CDC and ptys)."""
    address: int = 0x80
    """Packet-serial address set on the controller, 0x80-0x87."""
    wheel_radius_m: float = 0.05
    wheel_separation_m: float = 0.30
    """Distance between the wheels' contact points (track width)."""
    encoder_counts_per_rev: float = 2048.0
    """Quadrature counts per *wheel* revolution (encoder CPR × 4 × gear ratio when on the motor shaft)."""
    v_max: float = 0.8
    """Forward/backward speed limit, m/s."""
    omega_max: float = 2.0
    """Turn-rate limit, rad/s."""
    accel_max: float = 1.0
    """Linear acceleration limit, m/s², when speeding up."""
    decel_max: float = 3.0
    """Linear deceleration limit, m/s², when slowing down (towards zero). Larger than ``accel_max`` on
    purpose: a zero or reduced command is usually the safety filter braking, and its barrier counts
    on the base stopping quickly, not coasting ~0.3 m at the gentle start-up ramp. Safety stops
    (stale, non-finite, e-stop, link loss) skip the ramp altogether."""
    alpha_max: float = 4.0
    """Angular acceleration limit, rad/s² (both ways)."""
    max_qpps: int = 0
    """Wheel speed limit in counts/s (the controller's QPPS); 0 = only v_max/omega_max limit."""
    m1_is_left: bool = True
    """Which motor channel drives the left wheel."""
    invert_m1: bool = False
    """Flip M1's direction (mirrored motor mounting): both its command and its encoder."""
    invert_m2: bool = False
    cmd_timeout_s: float = 0.5
    """Host watchdog: a command older than this is replaced by zero."""
    controller_timeout_s: float = 0.3
    """The RoboClaw's own serial timeout (100 ms steps), set at every connection: stops a dead host's base."""
    send_period_s: float = 0.05
    """Wheel speeds are re-sent at least this often (≤ 0.1 s: ≥ 10 Hz) so the controller stays fed."""
    poll_period_s: float = 0.05
    """Encoder read period (odometry rate)."""
    reply_timeout_s: float = 0.05
    """How long to wait for a reply; ≥ 10 ms, so a timeout also clears the controller's partial packet."""
    reconnect_period_s: float = 1.0
    """While disconnected, how often to try opening the port and re-running the handshake."""
    max_consecutive_failures: int = 5
    """Bad or missing replies in a row after which the port is closed and re-opened."""
    config_check_period_s: float = 0.25
    """How often the controller's serial timeout is read back: a power-cycled controller has lost it
    (restored at once) and has zeroed its counters (odometry re-bases instead of jumping)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                               or not math.isfinite(value)):
                raise SerialBaseConfigError(f.name, f"must be a finite number, got {brief(value)}")
            if f.type in ("int", int) and (isinstance(value, bool) or not isinstance(value, int)):
                raise SerialBaseConfigError(f.name, f"must be an integer, got {brief(value)}")
            if f.type in ("bool", bool) and not isinstance(value, bool):
                raise SerialBaseConfigError(f.name, f"must be true or false, got {brief(value)}")
        if not isinstance(self.port, str) or not self.port:
            raise SerialBaseConfigError("port", f"must be a device path, got {brief(self.port)}")
        if self.baud <= 0:
            raise SerialBaseConfigError("baud", f"must be > 0, got {self.baud}")
        if not valid_address(self.address):
            raise SerialBaseConfigError("address", f"must be 0x80..0x87 (128..135), got {self.address}")
        for name in ("wheel_radius_m", "wheel_separation_m", "encoder_counts_per_rev", "v_max", "omega_max",
                     "accel_max", "decel_max", "alpha_max", "cmd_timeout_s", "send_period_s", "poll_period_s",
                     "reconnect_period_s", "config_check_period_s"):
            if getattr(self, name) <= 0.0:
                raise SerialBaseConfigError(name, f"must be > 0, got {getattr(self, name)}")
        if not 0 <= self.max_qpps <= _INT32_MAX:
            raise SerialBaseConfigError("max_qpps", f"must be 0 (no limit) or a count rate > 0, got {self.max_qpps}")
        if self.send_period_s > 0.1:
            raise SerialBaseConfigError("send_period_s", f"must be ≤ 0.1 (≥ 10 Hz), got {self.send_period_s}")
        if not 0.010 <= self.reply_timeout_s <= 1.0:
            raise SerialBaseConfigError("reply_timeout_s", f"must be 0.01..1.0 s (the controller drops a partial "
                                                           f"packet after 10 ms), got {self.reply_timeout_s}")
        units = self.controller_timeout_s * 10.0
        if not (1 <= round(units) <= 255 and abs(units - round(units)) < 1e-6):
            raise SerialBaseConfigError("controller_timeout_s", f"must be a multiple of 0.1 s in 0.1..25.5 (0 "
                                                                f"would disable it), got {self.controller_timeout_s}")
        if self.controller_timeout_s < 2.0 * max(self.send_period_s, self.poll_period_s):
            raise SerialBaseConfigError("controller_timeout_s", f"must be ≥ 2 × max(send_period_s, poll_period_s) "
                                                                f"or the controller stops between refreshes, got "
                                                                f"{self.controller_timeout_s}")
        if self.max_consecutive_failures < 1:
            raise SerialBaseConfigError("max_consecutive_failures", f"must be ≥ 1, got {self.max_consecutive_failures}")

    @property
    def counts_per_m(self) -> float:
        """Encoder counts per metre of wheel travel."""
        return self.encoder_counts_per_rev / (2.0 * math.pi * self.wheel_radius_m)


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the driver uses (so a test or a bridge can stand in for it)."""

    def reset_input_buffer(self) -> None: ...

    def write(self, data: bytes, /) -> int | None: ...

    def read(self, size: int = 1, /) -> bytes: ...

    def read_until(self, expected: bytes = b"\n", size: int | None = None, /) -> bytes: ...

    def close(self) -> None: ...


def open_serial_port(config: SerialBaseConfig) -> SerialPort:
    """Open ``config.port`` with pyserial (a device path or a pyserial URL), raw 8N1 at ``config.baud``.

    Reads time out after ``reply_timeout_s``; writes too, so a controller that stopped
    reading (full buffer) cannot block the control loop.
    """
    port: SerialPort = serial.serial_for_url(config.port, baudrate=config.baud, timeout=config.reply_timeout_s,
                                             write_timeout=max(config.reply_timeout_s, 0.05))
    return port


class LinkState(Enum):
    """Whether the driver currently talks to the controller."""

    CONNECTED = "connected"
    """Port open and handshake done (firmware read, serial timeout set, encoders read)."""
    DISCONNECTED = "disconnected"
    """Port closed; re-tried every ``reconnect_period_s`` inside ``advance``."""
    CLOSED = "closed"
    """:meth:`SerialBase.close` was called; nothing is re-tried."""


@dataclass
class SerialBaseStats:
    """Lifetime counters of the link (``reset`` keeps them; ``watchdog_trips`` is per episode)."""

    commands_sent: int = 0
    """Drive packets the controller acknowledged."""
    dropped_commands: int = 0
    """``apply_command`` calls while disconnected (dropped: the base must not start on reconnect)."""
    estop_refused: int = 0
    """Commands ignored while the e-stop was latched."""
    nonfinite_commands: int = 0
    clamped_commands: int = 0
    """Commands whose v or ω exceeded v_max/omega_max."""
    bad_replies: int = 0
    """Replies of the wrong length, CRC or ACK byte."""
    reply_timeouts: int = 0
    """Requests that got no reply at all within reply_timeout_s."""
    io_errors: int = 0
    """Operating-system errors on the port (it vanished, a write timed out)."""
    connect_attempts: int = 0
    connects: int = 0
    reconnects: int = 0
    """Successful connections after the first."""
    link_losses: int = 0
    controller_resets: int = 0
    """Times the controller's serial timeout was found changed (power cycle) and restored."""
    encoder_polls: int = 0
    encoder_jumps: int = 0
    """Encoder changes no wheel could make in the elapsed time (counter reset): skipped, re-based."""


class SerialBase:
    """A diff-drive base on a RoboClaw: a :class:`~navkit.common.interfaces.RobotBackend` on wall time.

    Not thread-safe: call it from one thread (the runner's or the ROS bridge's loop). The
    constructor tries to connect once and never raises on a missing port; see
    :attr:`link_state` and :attr:`last_error`.
    """

    def __init__(self, config: SerialBaseConfig | None = None, *,
                 port_opener: Callable[[SerialBaseConfig], SerialPort] = open_serial_port) -> None:
        """``port_opener`` opens the line (default: pyserial); it may raise OSError or
        ``serial.SerialException``, which counts as a failed connection attempt."""
        self.config = config if config is not None else SerialBaseConfig()
        self._port_opener = port_opener
        self.stats = SerialBaseStats()
        self.firmware: str | None = None
        """The controller's version string, read at the last connection."""
        self.last_error = ""
        """The most recent link problem, one line (empty when there has been none)."""
        self.last_wheel_qpps: tuple[int, int] = (0, 0)
        """(M1, M2) counts/s of the last acknowledged drive packet."""
        self._serial: SerialPort | None = None
        self._closed = False
        self._linked = False
        self._estop = False
        self._failures = 0
        self._next_connect_t = -math.inf
        self._enc_prev: tuple[int, int] | None = None
        self._enc_t = 0.0
        self._cmd: VelocityCommand | None = None
        self._reset_motion(self.now())
        self._watchdog_trips = 0
        self._try_connect(self.now())

    # ------------------------------------------------------------------------------ RobotBackend

    def reset(self, seed: int | None = None) -> None:
        """Odometry back to the origin, command to zero (sent at the next ``advance``); ``seed`` is unused.

        The e-stop latch survives a reset: only :meth:`set_estop` releases it.
        """
        del seed  # no simulated noise on hardware
        t = self.now()
        self._reset_motion(t)
        self._watchdog_trips = 0
        self._enc_prev = None  # re-base on the next encoder read
        if self._serial is None and not self._closed:
            self._try_connect(t)

    def now(self) -> float:
        """Wall-clock seconds (monotonic): the clock command stamps and odometry stamps use."""
        return time.monotonic()

    def advance(self, duration_s: float) -> None:
        """Service the line for ``duration_s`` wall seconds (at least once): send, poll, reconnect.

        Sleeps between events; a request waiting for a reply may overrun the end by up to
        ``reply_timeout_s``. Never raises: link problems are counted in :attr:`stats`.
        """
        duration = duration_s if math.isfinite(duration_s) and duration_s > 0.0 else 0.0
        end = self.now() + duration
        while True:
            self._service(self.now())
            t = self.now()
            if t >= end:
                return
            wake = min(self._next_event_t(), end)
            if wake > t:
                time.sleep(wake - t)

    def apply_command(self, cmd: VelocityCommand) -> None:
        """Take (v, ω) to drive with until the next command; no I/O (it is sent in ``advance``).

        Dropped (and counted) while disconnected or e-stopped; non-finite stops at once;
        out-of-range values are clamped to v_max/omega_max.
        """
        if self._estop:
            self.stats.estop_refused += 1
            return
        if self._serial is None:
            self.stats.dropped_commands += 1
            self._safety_stop()
            return
        if not cmd.is_finite():
            self.stats.nonfinite_commands += 1
            self._safety_stop()
            return
        cfg = self.config
        v = min(max(cmd.v, -cfg.v_max), cfg.v_max)
        w = min(max(cmd.omega, -cfg.omega_max), cfg.omega_max)
        if v != cmd.v or w != cmd.omega:
            self.stats.clamped_commands += 1
        self._cmd = VelocityCommand(cmd.stamp, v, w)
        self._dirty = True

    def read_odometry(self) -> Odometry:
        """Dead-reckoned pose in ``odom`` and the twist over the last encoder interval."""
        x, y, yaw = self._pose
        return Odometry(stamp=self._odom_stamp, pose=Pose2D(x, y, yaw), v=self._twist[0], omega=self._twist[1])

    def read_scan(self) -> LaserScan | None:
        """Always None: the lidar has its own driver."""
        return None

    def read_camera(self) -> CameraImage | None:
        """Always None: cameras have their own drivers."""
        return None

    @property
    def watchdog_trips(self) -> int:
        """Times a non-zero command went stale and the host watchdog stopped the base (since ``reset``)."""
        return self._watchdog_trips

    def close(self) -> None:
        """Stop the wheels (best effort) and release the port; the driver does nothing afterwards."""
        if self._closed:
            return
        if self._serial is not None:
            self._send_wheels(0, 0)
            self._close_port()
        self._closed = True

    # ------------------------------------------------------------------------------ extras

    def set_estop(self, engaged: bool) -> None:
        """Latch (True) or release (False) a software e-stop.

        Engaging zeroes the wheels at once (sent now when connected) and refuses commands
        until released. Releasing does not resume the old command: the base waits for a
        new one.
        """
        if engaged:
            self._estop = True
            self._safety_stop()
            if self._serial is not None:
                self._send_drive(self.now())
        else:
            self._estop = False
            self._safety_stop()

    @property
    def estop_engaged(self) -> bool:
        return self._estop

    @property
    def link_state(self) -> LinkState:
        if self._closed:
            return LinkState.CLOSED
        return LinkState.CONNECTED if self._serial is not None else LinkState.DISCONNECTED

    @property
    def connected(self) -> bool:
        return self._serial is not None

    def read_encoder_counts(self) -> tuple[int, int] | None:
        """The raw (M1, M2) counters now, or None when the request failed (diagnostics, benchmarks)."""
        value = self._request(Cmd.READ_ENCODERS)
        return value if isinstance(value, tuple) else None

    def read_battery_voltage(self) -> float | None:
        """Main battery volts, or None when the request failed."""
        value = self._request(Cmd.READ_MAIN_BATTERY)
        return value if isinstance(value, float) else None

    def read_status(self) -> int | None:
        """The controller's status bit mask (command 90, 0 = normal), or None when the request failed."""
        value = self._request(Cmd.READ_STATUS)
        return value if isinstance(value, int) else None

    # ------------------------------------------------------------------------------ scheduling

    def _reset_motion(self, t: float) -> None:
        self._pose = [0.0, 0.0, 0.0]
        self._twist = (0.0, 0.0)
        self._odom_stamp = t
        self._cmd = None
        self._out = (0.0, 0.0)
        self._ramp_t = t
        self._dirty = True
        self._next_send_t = t
        self._next_poll_t = t
        self._next_check_t = t + self.config.config_check_period_s
        self._last_send_ok_t = -math.inf

    def _next_event_t(self) -> float:
        if self._closed:
            return math.inf
        if self._serial is None:
            return self._next_connect_t
        t = min(self._next_send_t, self._next_poll_t, self._next_check_t)
        if self._cmd is not None:
            t = min(t, self._cmd.stamp + self.config.cmd_timeout_s + 1e-3)
        return t

    def _service(self, t: float) -> None:
        if self._closed:
            return
        if self._serial is None:
            self._expire_command(t)
            if t >= self._next_connect_t:
                self._try_connect(t)
            return
        self._expire_command(t)
        if self._dirty or t >= self._next_send_t:
            self._send_drive(t)
        if self._serial is not None and t >= self._next_check_t:
            self._check_controller(t)  # before the poll: a reset controller's counters must not pass for motion
        if self._serial is not None and t >= self._next_poll_t:
            self._poll_encoders()

    def _expire_command(self, t: float) -> None:
        cmd = self._cmd
        if cmd is not None and not is_fresh(cmd.stamp, t, self.config.cmd_timeout_s):
            if cmd.v != 0.0 or cmd.omega != 0.0:
                self._watchdog_trips += 1
            self._safety_stop()

    def _safety_stop(self) -> None:
        """Zero at once, no ramp; sent at the next service."""
        self._cmd = None
        self._out = (0.0, 0.0)
        self._dirty = True

    # ------------------------------------------------------------------------------ driving

    def _send_drive(self, t: float) -> None:
        cfg = self.config
        if t - self._last_send_ok_t > cfg.controller_timeout_s:
            self._out = (0.0, 0.0)  # the controller's own timeout has stopped the wheels meanwhile
        dt = min(max(t - self._ramp_t, 0.0), 2.0 * cfg.send_period_s)
        self._ramp_t = t
        target = (self._cmd.v, self._cmd.omega) if self._cmd is not None and not self._estop else (0.0, 0.0)
        slowing = abs(target[0]) < abs(self._out[0]) or target[0] * self._out[0] < 0.0
        v = _step_towards(self._out[0], target[0], (cfg.decel_max if slowing else cfg.accel_max) * dt)
        w = _step_towards(self._out[1], target[1], cfg.alpha_max * dt)
        self._out = (v, w)
        m1, m2 = self._wheel_qpps(v, w)
        self._dirty = False
        self._next_send_t = t + cfg.send_period_s
        if self._send_wheels(m1, m2):
            self._last_send_ok_t = t

    def _wheel_qpps(self, v: float, w: float) -> tuple[int, int]:
        """Inverse kinematics: body (v, ω) -> (M1, M2) counts/s, curvature kept under max_qpps."""
        cfg = self.config
        half = cfg.wheel_separation_m / 2.0
        left = (v - w * half) * cfg.counts_per_m
        right = (v + w * half) * cfg.counts_per_m
        limit = float(cfg.max_qpps) if cfg.max_qpps > 0 else float(_INT32_MAX)
        peak = max(abs(left), abs(right))
        if peak > limit:
            left, right = left * limit / peak, right * limit / peak
        m1, m2 = (left, right) if cfg.m1_is_left else (right, left)
        if cfg.invert_m1:
            m1 = -m1
        if cfg.invert_m2:
            m2 = -m2
        return round(m1), round(m2)

    def _wheel_travel_m(self, d1: int, d2: int) -> tuple[float, float]:
        """Forward kinematics' first half: counter changes (M1, M2) -> (left, right) metres."""
        cfg = self.config
        if cfg.invert_m1:
            d1 = -d1
        if cfg.invert_m2:
            d2 = -d2
        left, right = (d1, d2) if cfg.m1_is_left else (d2, d1)
        return left / cfg.counts_per_m, right / cfg.counts_per_m

    def _send_wheels(self, m1: int, m2: int) -> bool:
        if self._write(drive_speeds(self.config.address, m1, m2), Cmd.DRIVE_M1M2_SPEED):
            self.stats.commands_sent += 1
            self.last_wheel_qpps = (m1, m2)
            return True
        return False

    # ------------------------------------------------------------------------------ odometry

    def _poll_encoders(self) -> None:
        t0 = self.now()
        self._next_poll_t = t0 + self.config.poll_period_s
        counts = self._request(Cmd.READ_ENCODERS)
        if not isinstance(counts, tuple):
            return
        t = 0.5 * (t0 + self.now())  # the controller latched the counts about halfway through
        self.stats.encoder_polls += 1
        if self._enc_prev is None:
            self._enc_prev, self._enc_t, self._odom_stamp, self._twist = counts, t, t, (0.0, 0.0)
            return
        d1, d2 = count_delta(counts[0], self._enc_prev[0]), count_delta(counts[1], self._enc_prev[1])
        dt = max(t - self._enc_t, 1e-6)
        self._enc_prev, self._enc_t, self._odom_stamp = counts, t, t
        if max(abs(d1), abs(d2)) > self._plausible_counts(dt):
            self.stats.encoder_jumps += 1
            self.last_error = f"{self.config.port}: encoder jump of ({d1}, {d2}) counts in {dt:.3f} s skipped"
            self._twist = (0.0, 0.0)
            return
        dl, dr = self._wheel_travel_m(d1, d2)
        ds = 0.5 * (dl + dr)
        dyaw = (dr - dl) / self.config.wheel_separation_m
        x, y, yaw = self._pose
        mid = yaw + 0.5 * dyaw
        self._pose = [x + ds * math.cos(mid), y + ds * math.sin(mid), wrap_angle(yaw + dyaw)]
        self._twist = (ds / dt, dyaw / dt)

    def _plausible_counts(self, dt: float) -> float:
        """The most counts a wheel can plausibly turn in ``dt``: twice its top speed, plus 5 cm."""
        cfg = self.config
        top_mps = cfg.v_max + cfg.omega_max * cfg.wheel_separation_m / 2.0
        if cfg.max_qpps > 0:
            top_mps = max(top_mps, cfg.max_qpps / cfg.counts_per_m)
        return cfg.counts_per_m * (2.0 * top_mps * dt + 0.05)

    # ------------------------------------------------------------------------------ link

    def _try_connect(self, t: float) -> None:
        cfg = self.config
        self._next_connect_t = t + cfg.reconnect_period_s
        self.stats.connect_attempts += 1
        try:
            self._serial = self._port_opener(cfg)
        except _OPEN_ERRORS as exc:
            self.last_error = f"{cfg.port}: cannot open: {exc}"
            self._serial = None
            return
        self._failures = 0
        previous_firmware = self.firmware
        firmware = self._request(Cmd.READ_FIRMWARE)
        kept = self._request(Cmd.READ_SERIAL_TIMEOUT) if isinstance(firmware, str) else None
        if not isinstance(firmware, str) or not isinstance(kept, float) \
                or not self._write(set_serial_timeout(cfg.address, cfg.controller_timeout_s), Cmd.SET_SERIAL_TIMEOUT):
            if self._serial is not None:
                self.last_error = f"{cfg.port}: no RoboClaw answered at address 0x{cfg.address:02x} ({self.last_error})"
                self._close_port()
            return
        # The counters continue only if this is the same controller and it was not power-cycled
        # (it still holds our serial timeout); otherwise odometry re-bases on the next read.
        if firmware != previous_firmware or abs(kept - cfg.controller_timeout_s) > 0.05:
            self._enc_prev = None
        self.firmware = firmware
        self._linked = True
        if self.stats.connects:
            self.stats.reconnects += 1
        self.stats.connects += 1
        self._safety_stop()
        self._next_send_t = self._next_poll_t = t
        self._next_check_t = t + cfg.config_check_period_s

    def _check_controller(self, t: float) -> None:
        cfg = self.config
        self._next_check_t = t + cfg.config_check_period_s
        kept = self._request(Cmd.READ_SERIAL_TIMEOUT)
        if isinstance(kept, float) and abs(kept - cfg.controller_timeout_s) > 0.05:
            self.stats.controller_resets += 1
            self.last_error = (f"{cfg.port}: controller serial timeout read {kept:g} s, not "
                               f"{cfg.controller_timeout_s:g} s (power-cycled?); restored")
            self._write(set_serial_timeout(cfg.address, cfg.controller_timeout_s), Cmd.SET_SERIAL_TIMEOUT)
            self._enc_prev = None

    def _close_port(self) -> None:
        self._linked = False
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except _IO_ERRORS:
                pass

    def _link_lost(self, reason: str) -> None:
        if self._linked:
            self.stats.link_losses += 1
        self.last_error = reason
        self._close_port()
        self._safety_stop()
        self._next_connect_t = self.now() + self.config.reconnect_period_s

    def _failure(self, problem: str) -> None:
        self.last_error = problem
        self._failures += 1
        if self._failures >= self.config.max_consecutive_failures and self._serial is not None:
            self._link_lost(f"{self.config.port}: {self._failures} failed requests in a row (last: {problem})")

    def _exchange(self, frame: bytes, command: int) -> bytes | None:
        """Send one packet and read its reply (possibly short); None when the port failed."""
        ser = self._serial
        if ser is None:
            return None
        size = reply_size(command)
        try:
            ser.reset_input_buffer()  # a late reply to an earlier request must not pass for this one
            ser.write(frame)
            if size is not None:
                return bytes(ser.read(size))
            text = bytes(ser.read_until(b"\n\x00", MAX_FIRMWARE_REPLY))
            return text + bytes(ser.read(2)) if text.endswith(b"\n\x00") else text
        except serial.SerialTimeoutException as exc:
            self.stats.io_errors += 1
            self._failure(f"{self.config.port}: write timed out: {exc}")
            return None
        except _IO_ERRORS as exc:
            self.stats.io_errors += 1
            self._link_lost(f"{self.config.port}: {exc}")
            return None

    def _decode_failed(self, reply: bytes, exc: ProtocolError) -> None:
        if reply:
            self.stats.bad_replies += 1
        else:
            self.stats.reply_timeouts += 1
        self._failure(str(exc))

    def _write(self, frame: bytes, command: int) -> bool:
        reply = self._exchange(frame, command)
        if reply is None:
            return False
        try:
            decode_ack(command, reply)
        except ProtocolError as exc:
            self._decode_failed(reply, exc)
            return False
        self._failures = 0
        return True

    def _request(self, command: int) -> tuple[int, int] | float | int | str | None:
        reply = self._exchange(encode_read(self.config.address, command), command)
        if reply is None:
            return None
        address = self.config.address
        value: tuple[int, int] | float | int | str
        try:
            if command == Cmd.READ_ENCODERS:
                value = decode_encoders(address, reply)
            elif command == Cmd.READ_FIRMWARE:
                value = decode_firmware(address, reply)
            elif command == Cmd.READ_SERIAL_TIMEOUT:
                value = decode_serial_timeout_s(address, reply)
            elif command == Cmd.READ_MAIN_BATTERY:
                value = decode_main_battery_v(address, reply)
            elif command == Cmd.READ_STATUS:
                value = decode_status(address, reply)
            else:
                raise ValueError(f"SerialBase._request: command {command} is not used by the driver")
        except ProtocolError as exc:
            self._decode_failed(reply, exc)
            return None
        self._failures = 0
        return value


def _step_towards(current: float, target: float, max_step: float) -> float:
    return current + min(max(target - current, -max_step), max_step)
