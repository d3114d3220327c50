"""The serial-base driver against the RoboClaw emulator on a real pseudo-terminal.

Motion is checked against the emulator's true wheel travel; the stop requirement (wheels
stopped ≤ 0.5 s after the last command, for a silent host and for a killed one) is measured
on the emulator's clock; link failures (port vanishing, controller going silent, power
cycle, noise both ways) must be counted and recovered from, never raised.
"""
from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from navkit.common.errors import NavkitError, ParameterError
from navkit.common.interfaces import RobotBackend
from navkit.common.params import config_from_params
from navkit.common.sensor_data import VelocityCommand
from navkit.hardware import roboclaw_protocol as rp
from navkit.hardware.roboclaw_emulator import EmulatorConfig, EmulatorSnapshot, RoboClawEmulator, RoboClawModel
from navkit.hardware.serial_base import LinkState, SerialBase, SerialBaseConfig, SerialBaseConfigError

SPEC_STOP_S = 0.5  # wheels stopped at most this long after the last command
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None)


# -------------------------------------------------------------------------------------- fixtures


@pytest.fixture()
def make_emulator(tmp_path: Path) -> Iterator[Callable[..., RoboClawEmulator]]:
    made: list[RoboClawEmulator] = []

    def make(**kwargs: object) -> RoboClawEmulator:
        kwargs.setdefault("link", str(tmp_path / f"roboclaw{len(made)}"))
        emu = RoboClawEmulator(EmulatorConfig(**kwargs))
        emu.start()
        made.append(emu)
        return emu

    yield make
    for emu in made:
        emu.close()


@pytest.fixture()
def make_base() -> Iterator[Callable[..., SerialBase]]:
    made: list[SerialBase] = []

    def make(emu: RoboClawEmulator, **kwargs: object) -> SerialBase:
        kwargs.setdefault("reconnect_period_s", 0.1)
        base = SerialBase(SerialBaseConfig(port=emu.port, **kwargs))
        made.append(base)
        assert base.link_state is LinkState.CONNECTED, base.last_error
        base.reset()
        return base

    yield make
    for base in made:
        base.close()


def drive(base: SerialBase, v: float, omega: float, seconds: float, period: float = 0.05) -> None:
    """Command (v, ω), freshly stamped, every ``period`` for ``seconds``, as a control loop does."""
    end = base.now() + seconds
    while base.now() < end:
        base.apply_command(VelocityCommand(base.now(), v, omega))
        base.advance(period)


def true_travel_m(before: EmulatorSnapshot, after: EmulatorSnapshot, base: SerialBase) -> tuple[float, float]:
    """(M1, M2) true wheel travel between two snapshots, metres."""
    cpm = base.config.counts_per_m
    return ((after.travel_counts[0] - before.travel_counts[0]) / cpm,
            (after.travel_counts[1] - before.travel_counts[1]) / cpm)


def first_stop_after(emu: RoboClawEmulator, since: float) -> float:
    """Emulator time of the first zero setpoint following a non-zero one, after ``since``."""
    moving = False
    for t, m1, m2 in emu.setpoint_changes(since):
        if (m1, m2) != (0, 0):
            moving = True
        elif moving:
            return t
    raise AssertionError(f"the wheels never stopped after moving: {emu.setpoint_changes(since)[-5:]}")


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(("kwargs", "field", "match"), [
    ({"wheel_radius_m": 0.0}, "wheel_radius_m", "must be > 0"),
    ({"wheel_separation_m": float("nan")}, "wheel_separation_m", "finite"),
    ({"address": 0x10}, "address", "0x80..0x87"),
    ({"baud": 0}, "baud", "> 0"),
    ({"send_period_s": 0.2}, "send_period_s", "10 Hz"),
    ({"controller_timeout_s": 0.0}, "controller_timeout_s", "would disable"),
    ({"controller_timeout_s": 0.25}, "controller_timeout_s", "multiple of 0.1"),
    ({"controller_timeout_s": 0.1, "poll_period_s": 0.08}, "controller_timeout_s", "stops between refreshes"),
    ({"reply_timeout_s": 0.001}, "reply_timeout_s", "10 ms"),
    ({"max_qpps": -1}, "max_qpps", "count rate"),
    ({"encoder_counts_per_rev": "2048"}, "encoder_counts_per_rev", "finite number"),
    ({"invert_m1": 1}, "invert_m1", "true or false"),
    ({"port": ""}, "port", "device path"),
])
def test_config_rejects_bad_values_in_one_line(kwargs: dict[str, object], field: str, match: str) -> None:
    with pytest.raises(SerialBaseConfigError, match=match) as err:
        SerialBaseConfig(**kwargs)
    assert isinstance(err.value, ParameterError) and isinstance(err.value, NavkitError)
    assert err.value.field == field and "\n" not in str(err.value) and str(err.value).startswith("SerialBaseConfig")


def test_config_errors_from_a_parameter_file_name_the_file() -> None:
    with pytest.raises(ParameterError, match=r"robot.params.yaml: .*wheel_radius_m: must be > 0"):
        config_from_params(SerialBaseConfig, {"wheel_radius_m": -1.0}, "robot.params.yaml")
    assert config_from_params(SerialBaseConfig, {"port": "/dev/ttyUSB1"}, "x.yaml").port == "/dev/ttyUSB1"


def test_missing_port_is_reported_not_raised(tmp_path: Path) -> None:
    base = SerialBase(SerialBaseConfig(port=str(tmp_path / "nope"), reconnect_period_s=0.05))
    assert base.link_state is LinkState.DISCONNECTED and "cannot open" in base.last_error
    base.apply_command(VelocityCommand(base.now(), 0.2, 0.0))
    base.advance(0.12)  # keeps trying, never raises
    assert base.stats.dropped_commands == 1 and base.stats.connect_attempts >= 3
    assert base.read_odometry().is_finite()
    base.close()
    assert base.link_state is LinkState.CLOSED


# ---------------------------------------------------------------------------------- kinematics


def test_is_a_robot_backend_without_sensors(make_emulator, make_base) -> None:
    base = make_base(make_emulator())
    assert isinstance(base, RobotBackend)
    assert base.read_scan() is None and base.read_camera() is None
    assert base.firmware == EmulatorConfig().firmware and base.read_battery_voltage() == pytest.approx(24.3)
    assert base.read_status() == 0
    assert abs(base.now() - time.monotonic()) < 0.1


def test_driving_forward_one_second_matches_the_true_wheel_travel(make_emulator, make_base) -> None:
    # Counters start just below 2**32, so they wrap during the drive: odometry must not notice.
    emu = make_emulator(encoder_start=(2**32 - 500, 2**32 - 700))
    base = make_base(emu)
    before = emu.snapshot()
    drive(base, 0.3, 0.0, 1.0)
    v_moving = base.read_odometry().v
    drive(base, 0.0, 0.0, 0.5)  # ramp down and let the wheels settle before the last encoder read
    after = emu.snapshot()
    left, right = true_travel_m(before, after, base)
    odom = base.read_odometry()
    assert left > 0.2 and right > 0.2, "the wheels did not move"
    assert after.encoder_counts[0] < before.encoder_counts[0], "the counters were meant to wrap"
    assert odom.pose.x == pytest.approx((left + right) / 2.0, rel=0.01, abs=0.002)
    assert abs(odom.pose.y) < 1e-3 and abs(odom.pose.yaw) < 1e-3
    assert v_moving == pytest.approx(0.3, abs=0.03)
    assert base.stats.encoder_jumps == 0 and base.stats.bad_replies == 0
    assert odom.stamp <= base.now() and base.now() - odom.stamp < 0.2


def test_turning_in_place(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)
    before = emu.snapshot()
    drive(base, 0.0, 1.0, 1.0)
    omega_moving = base.read_odometry().omega
    drive(base, 0.0, 0.0, 0.3)
    left, right = true_travel_m(before, emu.snapshot(), base)
    true_yaw = (right - left) / base.config.wheel_separation_m
    odom = base.read_odometry()
    assert left < -0.05 and right > 0.05 and left == pytest.approx(-right, rel=1e-3)
    assert true_yaw > 0.5
    assert odom.pose.yaw == pytest.approx(true_yaw, abs=0.01)
    assert math.hypot(odom.pose.x, odom.pose.y) < 1e-3
    assert omega_moving == pytest.approx(1.0, abs=0.1)


def test_limits_clamp_speed_acceleration_and_wheel_rate(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu, v_max=0.5, omega_max=1.0, accel_max=2.0, alpha_max=4.0)
    cpm = base.config.counts_per_m
    t0 = base.now()
    drive(base, 5.0, 0.0, 0.6)
    assert base.stats.clamped_commands > 0
    assert base.last_wheel_qpps == (round(0.5 * cpm), round(0.5 * cpm))
    changes = [(t, m1) for t, m1, _ in emu.setpoint_changes(t0) if m1 != 0]
    assert changes[-1][1] == round(0.5 * cpm)
    steps = [b - a for (_, a), (_, b) in zip(changes, changes[1:])]
    max_step = 2.0 * 2.0 * base.config.send_period_s * cpm + 2  # accel_max × the longest ramp step
    assert changes[0][1] <= max_step and max(steps) <= max_step
    assert changes[-1][0] - changes[0][0] >= 0.5 / 2.0 - 2 * base.config.send_period_s  # it took a ramp
    drive(base, 0.0, -10.0, 0.6)  # turn rate clamped too
    wheel = round(1.0 * base.config.wheel_separation_m / 2.0 * cpm)
    assert base.last_wheel_qpps == (wheel, -wheel)
    base.close()

    # A wheel-rate limit scales both wheels by one factor: the path's curvature is kept.
    base = make_base(emu, max_qpps=2000)
    drive(base, 0.4, 1.0, 0.8)
    m1, m2 = base.last_wheel_qpps
    half = base.config.wheel_separation_m / 2.0
    assert max(abs(m1), abs(m2)) == 2000
    assert m1 / m2 == pytest.approx((0.4 - half) / (0.4 + half), abs=2e-3)


# ----------------------------------------------------------------------------------- safety


def test_silent_host_stops_the_wheels_within_spec(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)
    stamp = base.now()
    base.apply_command(VelocityCommand(stamp, 0.3, 0.0))
    while base.now() < stamp + 1.0:  # the loop keeps running, but nothing new is commanded
        base.advance(0.05)
    t_stop = first_stop_after(emu, stamp)
    snap = emu.snapshot()
    assert snap.last_motion_frame_t is not None
    assert t_stop - snap.last_motion_frame_t <= SPEC_STOP_S  # the requirement, on the emulator's clock
    # The host watchdog acted, on time: not before cmd_timeout_s, and right after it.
    assert base.config.cmd_timeout_s <= t_stop - stamp <= base.config.cmd_timeout_s + 0.25
    assert base.watchdog_trips == 1 and snap.stats.watchdog_trips == 0
    assert max(abs(s) for s in snap.speed_qpps) < 1.0  # and the wheels really came to rest


_DYING_HOST = """
import sys
from navkit.common.sensor_data import VelocityCommand
from navkit.hardware.serial_base import SerialBase, SerialBaseConfig
base = SerialBase(SerialBaseConfig(port=sys.argv[1]))
print(base.link_state.value, flush=True)
while True:
    base.apply_command(VelocityCommand(base.now(), 0.3, 0.0))
    base.advance(0.05)
"""


def test_killed_host_stops_the_wheels_within_spec(make_emulator) -> None:
    """A host killed mid-drive (no close, no last packet): the controller's own serial timeout stops it."""
    emu = make_emulator()
    child = subprocess.Popen([sys.executable, "-c", _DYING_HOST, emu.port], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        deadline = time.monotonic() + 10.0
        while emu.snapshot().setpoint_qpps == (0, 0):
            assert time.monotonic() < deadline, "the child never drove"
            time.sleep(0.02)
        time.sleep(0.3)
        t_kill = time.monotonic()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5.0)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    time.sleep(0.8)
    snap = emu.snapshot()
    t_stop = first_stop_after(emu, t_kill - 1.0)
    assert snap.last_motion_frame_t is not None and snap.last_motion_frame_t <= t_kill
    assert t_stop - snap.last_motion_frame_t <= SPEC_STOP_S
    assert snap.stats.watchdog_trips == 1 and snap.serial_timeout_s == pytest.approx(0.3)
    # It was the controller's timeout: exactly controller_timeout_s after the last packet.
    assert t_stop - snap.last_valid_frame_t == pytest.approx(0.3, abs=0.01)
    assert max(abs(s) for s in snap.speed_qpps) < 1.0


def test_estop_latches_until_released_and_does_not_resume(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)
    drive(base, 0.3, 0.0, 0.3)
    t_estop = base.now()
    base.set_estop(True)
    assert first_stop_after(emu, t_estop - 0.5) - t_estop < 0.05  # sent at once, no ramp
    drive(base, 0.3, 0.0, 0.3)  # refused while latched
    assert all((m1, m2) == (0, 0) for _, m1, m2 in emu.setpoint_changes(t_estop + 0.05))
    assert base.stats.estop_refused >= 3 and base.estop_engaged
    base.reset()  # a reset does not release it either
    drive(base, 0.3, 0.0, 0.1)
    assert emu.snapshot().setpoint_qpps == (0, 0)
    base.set_estop(False)
    base.advance(0.2)
    assert emu.snapshot().setpoint_qpps == (0, 0), "the old command must not resume on release"
    drive(base, 0.3, 0.0, 0.2)
    assert emu.snapshot().setpoint_qpps[0] > 0


def test_non_finite_and_stale_commands_stop_at_once(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)
    drive(base, 0.3, 0.0, 0.4)
    t_bad = base.now()
    base.apply_command(VelocityCommand(base.now(), float("nan"), 0.0))
    base.advance(0.1)
    after = emu.setpoint_changes(t_bad)
    assert after and (after[0][1], after[0][2]) == (0, 0), "the first setpoint after NaN must be zero (no ramp)"
    assert base.stats.nonfinite_commands == 1
    t_stale = base.now()
    for stamp in (base.now() - 2.0, base.now() + 2.0):  # too old, and from the future
        base.apply_command(VelocityCommand(stamp, 0.3, 0.0))
        base.advance(0.1)
    assert all((m1, m2) == (0, 0) for _, m1, m2 in emu.setpoint_changes(t_stale))
    assert base.watchdog_trips == 2


# ------------------------------------------------------------------------------------- link


def test_reconnects_after_the_port_vanishes_and_returns_on_a_new_pty(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)  # opens the stable link, like /dev/serial/by-id
    drive(base, 0.3, 0.0, 0.3)
    old_pty = emu.pty_path
    emu.close()
    drive(base, 0.3, 0.0, 0.3)
    assert base.link_state is LinkState.DISCONNECTED
    assert base.stats.link_losses == 1 and base.stats.dropped_commands > 0
    blocker = os.openpty()  # holds the freed pty number, so the emulator comes back on another
    try:
        emu.restart()
        assert emu.pty_path != old_pty
        deadline = base.now() + 3.0
        while base.link_state is not LinkState.CONNECTED:
            assert base.now() < deadline, base.last_error
            drive(base, 0.3, 0.0, 0.05)
        drive(base, 0.3, 0.0, 0.3)
    finally:
        os.close(blocker[0])
        os.close(blocker[1])
    snap = emu.snapshot()
    assert base.stats.reconnects == 1 and snap.setpoint_qpps[0] > 0
    assert snap.serial_timeout_s == pytest.approx(0.3), "the new controller's watchdog must be set again"


def test_recovers_when_the_controller_goes_silent_on_the_same_pty(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu, max_consecutive_failures=3)
    drive(base, 0.3, 0.0, 0.2)
    emu.pause()  # a controller rebooting on a UART line: the port stays, the answers stop
    drive(base, 0.3, 0.0, 0.5)
    assert base.stats.reply_timeouts >= 3 and base.stats.link_losses == 1
    assert base.link_state is LinkState.DISCONNECTED
    emu.resume(power_cycle=True)
    deadline = base.now() + 3.0
    while base.link_state is not LinkState.CONNECTED:
        assert base.now() < deadline, base.last_error
        drive(base, 0.3, 0.0, 0.05)
    drive(base, 0.3, 0.0, 0.2)
    snap = emu.snapshot()
    assert base.stats.reconnects == 1 and snap.setpoint_qpps[0] > 0 and snap.serial_timeout_s == pytest.approx(0.3)


def test_power_cycle_restores_the_timeout_and_odometry_does_not_jump(make_emulator, make_base) -> None:
    emu = make_emulator()
    base = make_base(emu)
    before = emu.snapshot()
    drive(base, 0.4, 0.0, 0.6)
    drive(base, 0.0, 0.0, 0.6)  # ramped down (0.4 s at accel_max) and settled
    x_before = base.read_odometry().pose.x
    emu.power_cycle()  # same line, counters back to 0, serial timeout back to "off"
    drive(base, 0.0, 0.0, 0.4)
    assert base.stats.controller_resets == 1 and emu.snapshot().serial_timeout_s == pytest.approx(0.3)
    assert base.read_odometry().pose.x == pytest.approx(x_before, abs=1e-3)
    drive(base, 0.3, 0.0, 0.4)
    drive(base, 0.0, 0.0, 0.5)
    left, right = true_travel_m(before, emu.snapshot(), base)
    assert base.read_odometry().pose.x == pytest.approx((left + right) / 2.0, rel=0.01, abs=0.002)


# ------------------------------------------------------------------------------------- noise


def _accounted(stats) -> int:
    return (stats.valid_bytes + stats.not_addressed + 2 * stats.unknown_command + stats.bad_crc_bytes
            + stats.truncated_bytes)


def test_garbage_over_the_pty_is_counted_and_the_emulator_carries_on(make_emulator, make_base) -> None:
    emu = make_emulator()
    rng = random.Random(1234)
    garbage = rng.randbytes(4000)
    fd = os.open(emu.port, os.O_RDWR | os.O_NOCTTY)
    try:
        i = 0
        while i < len(garbage):
            n = rng.randint(1, 200)
            os.write(fd, garbage[i:i + n])
            i += n
            time.sleep(rng.choice([0.0, 0.0, 0.015]))  # some gaps longer than the packet timeout
        time.sleep(0.05)
    finally:
        os.close(fd)
    snap = emu.snapshot()
    assert snap.stats.rx_bytes == len(garbage)
    assert _accounted(snap.stats) + snap.pending_bytes == len(garbage)
    assert snap.stats.bad_frames > 100 and snap.stats.internal_errors == 0 and emu.running
    base = make_base(emu)  # and it still serves a host
    drive(base, 0.2, 0.0, 0.2)
    assert emu.snapshot().setpoint_qpps[0] > 0


def test_corrupted_replies_are_counted_by_the_driver(make_emulator, make_base) -> None:
    emu = make_emulator(reply_corruption=0.15, seed=7)
    base = None
    for _ in range(20):  # the handshake itself may meet a corrupted reply; it retries
        try:
            base = make_base(emu, max_consecutive_failures=10)
            break
        except AssertionError:
            continue
    assert base is not None
    before = emu.snapshot()
    drive(base, 0.3, 0.0, 0.8)
    emu.inject_to_host(b"\x00\xff\x80garbage")  # and noise on the controller's TX line
    drive(base, 0.0, 0.0, 0.4)
    after = emu.snapshot()
    corrupted = after.stats.replies_corrupted - before.stats.replies_corrupted
    s = base.stats
    assert corrupted > 5 and s.bad_replies > 0
    # Every corrupted reply was refused (a late reply may also be refused, or time out instead).
    assert s.bad_replies + s.reply_timeouts >= corrupted
    assert s.bad_replies <= corrupted + s.reply_timeouts + 1
    left, right = true_travel_m(before, after, base)
    assert base.read_odometry().pose.x == pytest.approx((left + right) / 2.0, rel=0.02, abs=0.003)


# ------------------------------------------------------------------- fuzzing both parsers


_FRAMES = st.one_of(
    st.tuples(st.just("valid"), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("flip"), st.integers(0, 2**31 - 1), st.integers(16, 8 * 12 - 1)),
    st.tuples(st.just("truncate"), st.integers(0, 2**31 - 1), st.integers(1, 11)),
    st.tuples(st.just("unknown"), st.integers(0, 255), st.integers(0, 0)),
    st.tuples(st.just("read"), st.sampled_from([15, 21, 24, 78, 79, 90, 108]), st.integers(0, 0)),
)


@FUZZ
@given(st.lists(_FRAMES, max_size=25))
def test_emulator_counts_every_bad_frame(items: list[tuple[str, int, int]]) -> None:
    """Frames sent with a gap between them: each bad one is counted exactly once, in its own counter,
    and none moves the wheels."""
    model = RoboClawModel(EmulatorConfig(), now=0.0)
    t, expected = 0.0, {"valid": 0, "bad_crc": 0, "truncated": 0, "unknown": 0}
    setpoint = (0, 0)
    for kind, a, b in items:
        t += 0.02  # longer than the 10 ms packet timeout
        if kind == "valid":
            model.receive(rp.drive_speeds(0x80, a, b), t)
            setpoint = (max(-40_000, min(40_000, a)), max(-40_000, min(40_000, b)))
            expected["valid"] += 1
        elif kind == "flip":  # one bit of the payload or CRC: the length stays, the CRC must catch it
            frame = bytearray(rp.drive_speeds(0x80, a, a))
            frame[b // 8] ^= 1 << (b % 8)
            model.receive(bytes(frame), t)
            expected["bad_crc"] += 1
        elif kind == "truncate":
            model.receive(rp.drive_speeds(0x80, a, a)[:b], t)
            expected["truncated"] += 1
        elif kind == "unknown":
            if a in rp.COMMANDS:
                continue
            model.receive(bytes((0x80, a)), t)
            expected["unknown"] += 1
        else:
            assert model.receive(rp.encode_read(0x80, a), t)  # a read is answered
            expected["valid"] += 1
        model.expire_partial(t + 0.015)
        assert model.snapshot().setpoint_qpps == setpoint
    s = model.stats
    assert (s.valid_frames, s.bad_crc, s.truncated, s.unknown_command, s.not_addressed) == \
        (expected["valid"], expected["bad_crc"], expected["truncated"], expected["unknown"], 0)
    assert _accounted(s) == s.rx_bytes


@FUZZ
@given(st.lists(st.tuples(st.binary(max_size=40), st.sampled_from([0.0, 0.001, 0.02])), max_size=30))
def test_emulator_survives_random_bytes(chunks: list[tuple[bytes, float]]) -> None:
    model = RoboClawModel(EmulatorConfig(power_on_serial_timeout_s=0.5), now=0.0)
    t = 0.0
    for data, gap in chunks:
        t += gap
        model.receive(data, t)
    model.expire_partial(t + 1.0)
    model.advance_to(t + 2.0)
    assert model.pending_bytes == 0
    assert _accounted(model.stats) == model.stats.rx_bytes == sum(len(d) for d, _ in chunks)
    assert model.snapshot().setpoint_qpps == (0, 0)  # whatever it did, its watchdog has stopped it by now


class _ScriptedPort:
    """A serial port whose replies come from a script, one per request, recorded for an oracle."""

    def __init__(self, script: list[bytes]) -> None:
        self.script = deque(script)
        self.rx = b""
        self.exchanges: list[tuple[bytes, bytes]] = []
        self.closed = False

    def reset_input_buffer(self) -> None:
        self.rx = b""

    def write(self, data: bytes, /) -> int:
        self.rx = self.script.popleft() if self.script else b""
        self.exchanges.append((bytes(data), self.rx))
        return len(data)

    def read(self, size: int = 1, /) -> bytes:
        out, self.rx = self.rx[:size], self.rx[size:]
        self.exchanges[-1] = (self.exchanges[-1][0], out)
        return out

    def read_until(self, expected: bytes = b"\n", size: int | None = None, /) -> bytes:
        end = self.rx.find(expected)
        n = len(self.rx) if end < 0 else end + len(expected)
        n = n if size is None else min(n, size)
        out, self.rx = self.rx[:n], self.rx[n:]
        return out

    def close(self) -> None:
        self.closed = True


def _reply_ok(frame: bytes, reply: bytes) -> bool:
    address, command = frame[0], frame[1]
    try:
        if rp.COMMANDS[command].is_write:
            rp.decode_ack(command, reply)
        else:
            rp.decode_reply(address, command, reply)
    except rp.ProtocolError:
        return False
    return True


_REPLIES = st.one_of(st.binary(max_size=12), st.just(rp.ACK),
                     st.builds(lambda a, b: rp.encode_reply(0x80, 78, a, b), st.integers(0, 99), st.integers(0, 99)))


@FUZZ
@given(st.lists(_REPLIES, max_size=30))
def test_driver_counts_every_bad_reply_and_never_raises(replies: list[bytes]) -> None:
    handshake = [rp.encode_firmware_reply(0x80, "fw"), rp.encode_reply(0x80, 15, 0), rp.ACK]
    port = _ScriptedPort(handshake + replies)
    base = SerialBase(SerialBaseConfig(port="scripted", reconnect_period_s=1e6, max_consecutive_failures=4),
                      port_opener=lambda config: port)
    assert base.connected
    for i in range(len(replies)):
        base.apply_command(VelocityCommand(base.now(), 0.2, 0.1))
        base.advance(0.0)
        if i % 3 == 0:
            base.read_encoder_counts()
        assert base.read_odometry().is_finite()
    bad = sum(not _reply_ok(frame, reply) for frame, reply in port.exchanges[len(handshake):])
    assert base.stats.bad_replies + base.stats.reply_timeouts == bad
    assert port.closed == (base.stats.link_losses == 1)


def test_benchmark_reports_what_it_claims() -> None:
    from navkit.benchmarks import serial_base_bench

    r = serial_base_bench.run(n=5)
    assert set(r["modes"]) == {name for name, _, _ in serial_base_bench.MODES}
    for m in r["modes"].values():
        assert m["latency_samples"] + m["latency_missed"] == 5 and m["encoder_reads_ok"] >= 1
        assert 0.0 < m["latency_ms"]["median"] < 1000.0 and m["emulator"]["internal_errors"] == 0
    # Modelled wire time is there: 12 bytes of drive packet at 38400 baud take 3.1 ms.
    assert r["modes"]["38400 baud"]["latency_ms"]["median"] >= 3.0
    assert "cmd→wheel" in serial_base_bench.format_table(r)
