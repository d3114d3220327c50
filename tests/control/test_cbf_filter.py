"""The CBF safety filter: guarantees on random scans, refusals of bad input, closed-loop safety."""
from __future__ import annotations

import math

import numpy as np
import pytest

from navkit.common.observation import Observation
from navkit.common.sensor_data import LaserScan, VelocityCommand
from navkit.common.interfaces import FilterStatus
from navkit.control.cbf_filter import CbfFilterConfig, CbfSafetyFilter
from navkit.control.qp_reference import solve_reference

N_RAYS = 360


def make_scan(ranges: np.ndarray, stamp: float = 0.0, range_min: float = 0.12, range_max: float = 12.0) -> LaserScan:
    ranges = np.asarray(ranges, dtype=float)
    return LaserScan(
        stamp=stamp,
        angle_min=-math.pi,
        angle_increment=2.0 * math.pi / len(ranges),
        range_min=range_min,
        range_max=range_max,
        ranges=ranges,
    )


def scan_of_points(points: list[tuple[float, float]], stamp: float = 0.0) -> LaserScan:
    """A scan with one return per given base-frame point (nearest ray), all else 'no return'."""
    ranges = np.full(N_RAYS, np.inf)
    inc = 2.0 * math.pi / N_RAYS
    for x, y in points:
        i = int(round((math.atan2(y, x) + math.pi) / inc)) % N_RAYS
        ranges[i] = math.hypot(x, y)
    return make_scan(ranges, stamp)


def cmd(v: float, omega: float, stamp: float = 0.0) -> VelocityCommand:
    return VelocityCommand(stamp=stamp, v=v, omega=omega)


@pytest.mark.parametrize(
    ("field", "value"),
    [("alpha", 0.0), ("lookahead_m", -0.1), ("robot_radius_m", -1.0), ("margin_m", -0.01), ("v_min", 0.1),
     ("v_max", -0.1), ("omega_max", 0.0), ("omega_weight", 0.0), ("sensing_range_m", 0.0),
     ("max_constraints", 0), ("stale_timeout_s", 0.0), ("alpha", math.nan)],
)
def test_config_validation_names_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        CbfFilterConfig(**{field: value})


def test_random_scans_output_satisfies_constraints_and_is_optimal() -> None:
    rng = np.random.default_rng(7)
    filt = CbfSafetyFilter(CbfFilterConfig())
    statuses: dict[FilterStatus, int] = {}
    for i in range(150):
        nearest = 0.3 if rng.random() < 0.1 else rng.uniform(0.5, 1.5)  # some scans intrude
        ranges = rng.uniform(nearest, 4.0, N_RAYS)
        ranges[rng.random(N_RAYS) < 0.4] = np.inf
        scan = make_scan(ranges, stamp=float(i))
        nominal = cmd(rng.uniform(-0.5, 1.2), rng.uniform(-2.0, 2.0), stamp=float(i))
        result = filt.filter(nominal, Observation(0.0, scan=scan), now=float(i))
        statuses[result.status] = statuses.get(result.status, 0) + 1
        A, b = filt.constraints(scan.points_xy(too_close_as_hits=True))
        assert result.num_constraints == A.shape[0]
        u = np.array([result.command.v, result.command.omega])
        assert result.command.stamp == float(i)
        ref = solve_reference(np.array([1.0, filt.config.omega_weight]), np.array([nominal.v, nominal.omega]), A, b)
        if result.status is FilterStatus.INFEASIBLE_BRAKE:
            assert not ref.feasible
            np.testing.assert_array_equal(u, [0.0, 0.0])
            continue
        assert ref.feasible
        assert np.all(A @ u >= b - 1e-7)
        np.testing.assert_allclose(u, ref.u, atol=1e-5)
    # The scans must exercise every regime, or the checks above prove little.
    assert statuses.get(FilterStatus.MODIFIED, 0) >= 30
    assert statuses.get(FilterStatus.PASS, 0) >= 5
    assert statuses.get(FilterStatus.INFEASIBLE_BRAKE, 0) >= 3
    assert filt.stats.ticks == 150
    assert filt.stats.interventions == statuses.get(FilterStatus.MODIFIED, 0) + statuses.get(
        FilterStatus.INFEASIBLE_BRAKE, 0
    )


def test_constraints_keep_at_most_one_point_per_sector() -> None:
    filt = CbfSafetyFilter(CbfFilterConfig(max_constraints=8))
    rng = np.random.default_rng(3)
    points = rng.uniform(-2.0, 2.0, size=(500, 2))
    A, b = filt.constraints(points)
    assert 4 < A.shape[0] <= 8 + 4
    np.testing.assert_array_equal(A[-4:], [[1, 0], [-1, 0], [0, 1], [0, -1]])
    far = filt.constraints(np.array([[5.0, 0.0], [0.0, -4.0]]))[0]
    assert far.shape[0] == 4  # beyond sensing range: box rows only


def test_pass_when_nothing_is_near() -> None:
    filt = CbfSafetyFilter()
    ranges = np.full(N_RAYS, np.inf)
    ranges[::7] = 3.5  # returns beyond the sensing range
    result = filt.filter(cmd(0.6, 0.4), Observation(0.0, scan=make_scan(ranges)), now=0.0)
    assert result.status is FilterStatus.PASS
    assert (result.command.v, result.command.omega) == (0.6, 0.4)
    assert result.min_h == math.inf
    assert filt.stats.interventions == 0


def test_output_is_clipped_into_the_box() -> None:
    filt = CbfSafetyFilter()
    result = filt.filter(cmd(2.0, -3.0), Observation(0.0, scan=make_scan(np.full(N_RAYS, np.inf))), now=0.0)
    assert result.status is FilterStatus.MODIFIED
    assert (result.command.v, result.command.omega) == (0.8, -1.5)


def test_obstacle_ahead_slows_the_robot() -> None:
    filt = CbfSafetyFilter()
    result = filt.filter(cmd(0.8, 0.0), Observation(0.0, scan=scan_of_points([(0.7, 0.0)])), now=0.0)
    assert result.status is FilterStatus.MODIFIED
    assert result.command.v < 0.8
    assert result.min_h > 0.0


def test_brakes_and_counts_when_infeasible() -> None:
    # Inside D both ahead of and behind the look-ahead point: no (v, ω) can raise both h.
    filt = CbfSafetyFilter()
    result = filt.filter(cmd(0.5, 0.0), Observation(0.0, scan=scan_of_points([(0.4, 0.0), (-0.3, 0.0)])), now=0.0)
    assert result.status is FilterStatus.INFEASIBLE_BRAKE
    assert (result.command.v, result.command.omega) == (0.0, 0.0)
    assert result.min_h < 0.0
    assert filt.stats.infeasible == 1 and filt.stats.interventions == 1


def test_single_intrusion_backs_out() -> None:
    # Inside D on one side only: feasible, and the filter must move away (reverse).
    filt = CbfSafetyFilter()
    result = filt.filter(cmd(0.5, 0.0), Observation(0.0, scan=scan_of_points([(0.4, 0.0)])), now=0.0)
    assert result.status is FilterStatus.MODIFIED
    assert result.command.v < 0.0


def test_negative_infinity_range_is_an_obstacle() -> None:
    filt = CbfSafetyFilter()
    ranges = np.full(N_RAYS, np.inf)
    free = filt.filter(cmd(0.5, 0.0), Observation(0.0, scan=make_scan(ranges)), now=0.0)
    ranges[N_RAYS // 2] = -np.inf  # straight ahead, too close to measure
    blocked = filt.filter(cmd(0.5, 0.0), Observation(0.0, scan=make_scan(ranges)), now=0.0)
    assert free.status is FilterStatus.PASS
    assert blocked.status is not FilterStatus.PASS
    assert blocked.command.v <= 0.0
    assert blocked.num_constraints == 5


def _assert_refused(result, status: FilterStatus) -> None:
    assert result.status is status
    assert (result.command.v, result.command.omega) == (0.0, 0.0)
    assert math.isfinite(result.command.stamp)


def test_bad_inputs_give_zero_command_and_are_counted() -> None:
    filt = CbfSafetyFilter()
    clear = make_scan(np.full(N_RAYS, np.inf), stamp=10.0)
    _assert_refused(filt.filter(cmd(math.nan, 0.0, 10.0), Observation(0.0, scan=clear), now=10.0), FilterStatus.INVALID_INPUT)
    _assert_refused(filt.filter(cmd(0.3, math.inf, 10.0), Observation(0.0, scan=clear), now=10.0), FilterStatus.INVALID_INPUT)
    _assert_refused(filt.filter(cmd(0.3, 0.0, math.nan), Observation(0.0, scan=clear), now=10.0), FilterStatus.INVALID_INPUT)
    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.0), Observation(0.0, scan=clear), now=math.nan), FilterStatus.INVALID_INPUT)
    nan_ranges = np.full(N_RAYS, np.inf)
    nan_ranges[17] = np.nan
    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.0), Observation(0.0, scan=make_scan(nan_ranges, 10.0)), now=10.0), FilterStatus.INVALID_INPUT)
    assert filt.stats.invalid_input == 5

    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.0), Observation(0.0, scan=make_scan(np.full(N_RAYS, np.inf), 9.4)), now=10.0),
                    FilterStatus.STALE_INPUT)  # stale scan
    _assert_refused(filt.filter(cmd(0.3, 0.0, 9.4), Observation(0.0, scan=clear), now=10.0), FilterStatus.STALE_INPUT)  # stale command
    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.6), Observation(0.0, scan=clear), now=10.0), FilterStatus.STALE_INPUT)  # future command
    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.0), Observation(0.0, scan=make_scan(np.full(N_RAYS, np.inf), 10.6)), now=10.0),
                    FilterStatus.STALE_INPUT)  # future scan
    assert filt.stats.stale_input == 4

    _assert_refused(filt.filter(cmd(0.3, 0.0, 10.0), Observation(0.0, scan=None), now=10.0), FilterStatus.NO_SCAN)
    assert filt.stats.no_scan == 1
    assert filt.stats.ticks == 10
    assert filt.stats.interventions == 0

    # Just inside the timeout is fine.
    ok = filt.filter(cmd(0.3, 0.0, 9.6), Observation(0.0, scan=make_scan(np.full(N_RAYS, np.inf), 9.6)), now=10.0)
    assert ok.status is FilterStatus.PASS
    filt.reset_stats()
    assert filt.stats.ticks == 0 and filt.stats.stale_input == 0


def _scan(ranges: list[float] | np.ndarray, **overrides: object) -> LaserScan:
    fields: dict[str, object] = dict(stamp=10.0, angle_min=-math.pi, angle_increment=2.0 * math.pi / N_RAYS,
                                     range_min=0.12, range_max=12.0, ranges=np.asarray(ranges, dtype=float))
    fields.update(overrides)
    return LaserScan(**fields)  # type: ignore[arg-type]


UNUSABLE_SCANS = {
    "no rays": _scan([]),
    "all ranges negative": _scan(np.full(N_RAYS, -1.0)),
    "range_max below range_min": _scan(np.full(N_RAYS, 2.0), range_min=5.0, range_max=1.0),
    "zero angle increment": _scan(np.full(N_RAYS, 2.0), angle_increment=0.0),
    "rays overlapping more than a turn": _scan(np.full(N_RAYS, 2.0), angle_increment=0.1),
    "header NaN": _scan(np.full(N_RAYS, 2.0), angle_min=math.nan),
    "all ranges beyond range_max": _scan(np.full(N_RAYS, 50.0)),
    "half the rays invalid": _scan(np.where(np.arange(N_RAYS) % 2 == 0, 2.0, -1.0)),
    "wrong frame": _scan(np.full(N_RAYS, np.inf), frame_id="camera_link"),
}


@pytest.mark.parametrize("name", sorted(UNUSABLE_SCANS))
def test_a_scan_that_cannot_show_obstacles_stops_the_robot(name: str) -> None:
    """Issue 6 (1): an empty or malformed scan is not evidence of free space."""
    filt = CbfSafetyFilter()
    result = filt.filter(cmd(0.5, 0.2, 10.0), Observation(0.0, scan=UNUSABLE_SCANS[name]), now=10.0)
    _assert_refused(result, FilterStatus.INVALID_INPUT)
    assert result.detail  # the node logs why
    assert filt.stats.invalid_input == 1
    # The same filter drives again as soon as a usable scan arrives.
    assert filt.filter(cmd(0.5, 0.2, 10.0), Observation(0.0, scan=_scan(np.full(N_RAYS, np.inf))), now=10.0).status is FilterStatus.PASS


def test_a_few_invalid_rays_are_tolerated_up_to_the_configured_share() -> None:
    ranges = np.full(N_RAYS, np.inf)
    ranges[:30] = -1.0  # 30 of 360 rays (8 %) invalid
    assert CbfSafetyFilter().filter(cmd(0.5, 0.0, 10.0), Observation(0.0, scan=_scan(ranges)), now=10.0).status is FilterStatus.PASS
    strict = CbfSafetyFilter(CbfFilterConfig(max_invalid_ray_fraction=0.05))
    _assert_refused(strict.filter(cmd(0.5, 0.0, 10.0), Observation(0.0, scan=_scan(ranges)), now=10.0), FilterStatus.INVALID_INPUT)


def test_any_frame_is_accepted_when_none_is_configured() -> None:
    filt = CbfSafetyFilter(CbfFilterConfig(scan_frame_id=""))
    result = filt.filter(cmd(0.5, 0.0, 10.0), Observation(0.0, scan=_scan(np.full(N_RAYS, np.inf), frame_id="laser")), now=10.0)
    assert result.status is FilterStatus.PASS


def _wall_scan(x: float, y: float, yaw: float, wall_x: float, stamp: float) -> LaserScan:
    angles = -math.pi + 2.0 * math.pi / N_RAYS * np.arange(N_RAYS)
    cos_world = np.cos(yaw + angles)
    with np.errstate(divide="ignore"):
        ranges = np.where(cos_world > 1e-9, (wall_x - x) / cos_world, np.inf)
    ranges = np.where(ranges < 12.0, ranges, np.inf)
    return make_scan(ranges, stamp)


def _drive_at_wall(yaw0: float, use_filter: bool) -> float:
    """Unicycle with nominal (0.8, 0) towards the wall x = 2; returns min base-to-wall distance."""
    filt = CbfSafetyFilter()
    wall_x, dt = 2.0, 0.02
    x, y, yaw = 0.0, 0.0, yaw0
    min_dist = math.inf
    for step in range(int(10.0 / dt)):
        t = step * dt
        v, omega = 0.8, 0.0
        if use_filter:
            out = filt.filter(cmd(v, omega, t), Observation(0.0, scan=_wall_scan(x, y, yaw, wall_x, t)), now=t)
            assert out.status in (FilterStatus.PASS, FilterStatus.MODIFIED)
            v, omega = out.command.v, out.command.omega
        if abs(omega) > 1e-9:  # exact unicycle step
            x += v / omega * (math.sin(yaw + omega * dt) - math.sin(yaw))
            y -= v / omega * (math.cos(yaw + omega * dt) - math.cos(yaw))
        else:
            x += v * dt * math.cos(yaw)
            y += v * dt * math.sin(yaw)
        yaw += omega * dt
        min_dist = min(min_dist, wall_x - x)
    return min_dist


@pytest.mark.parametrize("yaw0", [0.0, 0.5])
def test_closed_loop_never_hits_the_wall(yaw0: float) -> None:
    config = CbfFilterConfig()
    clearance = config.robot_radius_m + config.margin_m
    assert _drive_at_wall(yaw0, use_filter=False) < config.robot_radius_m  # without it: collision
    filtered = _drive_at_wall(yaw0, use_filter=True)
    assert filtered >= clearance - 1e-6
    assert filtered < 1.0  # safe by getting close and stopping, not by never moving


def test_the_batched_filter_outputs_what_the_filter_outputs_robot_by_robot() -> None:
    """filter_batch (training simulators) and filter (every robot) must be one filter, ties and all."""
    rng = np.random.default_rng(7)
    f = CbfSafetyFilter(CbfFilterConfig())
    e, r = 40, 72
    angles = -math.pi + 2 * math.pi / r * np.arange(r)
    ranges = rng.uniform(0.3, 4.0, (e, r))
    ranges[rng.random((e, r)) < 0.3] = np.inf  # no return
    ranges[:, 10] = ranges[:, 11]  # equal distances: the earlier ray wins in both
    points = np.stack([ranges * np.cos(angles), ranges * np.sin(angles)], axis=-1)
    u_nom = rng.uniform([-0.2, -1.5], [0.8, 1.5], (e, 2))
    got = f.filter_batch(u_nom, np.where(np.isfinite(points), points, 0.0), np.isfinite(ranges))
    modified = 0
    for i in range(e):
        scan = LaserScan(0.0, -math.pi, 2 * math.pi / r, 0.05, 6.0, ranges[i], frame_id=f.config.scan_frame_id)
        want = f.filter(VelocityCommand(0.0, *u_nom[i]), Observation(0.0, scan=scan), 0.0)
        np.testing.assert_allclose(got[i], [want.command.v, want.command.omega], atol=1e-9)
        modified += want.status != FilterStatus.PASS
    assert modified >= 10  # the constraints were exercised, not only pass-through
