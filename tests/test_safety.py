"""Tests for handx_ros.sim.safety: the bounds hold for any input, and clean input is untouched."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from handx_gen.errors import ConfigError, MotionError, SimulationError
from handx_ros.retarget.robot import hand_kinematics
from handx_ros.retarget.spec import load_robot_spec
from handx_ros.sim.safety import (
    DEFAULT_MAX_ACCELERATION_RAD_S2,
    DEFAULT_MAX_VELOCITY_RAD_S,
    INTERVENTION_KINDS,
    LATE_TICK_PERIODS,
    MIN_TICK_INTERVAL_S,
    CommandSafety,
    Intervention,
    RejectReason,
    SafeCommand,
    SafetyConfig,
    filter_trajectory,
)

RATE_HZ = 100.0
DT = 1.0 / RATE_HZ
POSITION_TOL = 1e-12  # rad, rounding of q + v dt
RELATIVE_TOL = 1e-9  # of a bound over dt
# A velocity is a difference of two rounded positions over dt: it is known to within a few
# units in the last place of the positions (times their scale), divided by dt.
VELOCITY_ROUNDING = 8.0 * np.finfo(np.float64).eps


def _allegro_limits() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    spec = load_robot_spec('allegro_left')
    kinematics = hand_kinematics(spec, 'left')
    chain = kinematics[0] if isinstance(kinematics, tuple) else kinematics
    names = tuple(f'allegro_joint_{j}' for j in range(len(chain.lower)))
    return names, np.array(chain.lower), np.array(chain.upper)


def _random_limits(rng: np.random.Generator, n: int) -> tuple[tuple[str, ...], np.ndarray,
                                                                np.ndarray]:
    lower = rng.uniform(-2.0, 0.5, size=n)
    upper = lower + rng.uniform(0.2, 3.0, size=n)
    return tuple(f'j{j}' for j in range(n)), lower, upper


class _Checker:
    """Asserts the guarantees on every command of one filter, over the commands' own times."""

    def __init__(self, safety: CommandSafety) -> None:
        self.safety = safety
        self.q_prev = safety.qpos
        self.v_prev = np.zeros(safety.num_joints)
        self.t_prev: float | None = None  # no command since the reset
        self.ticks = 0
        self.skipped = 0

    def check(self, command: SafeCommand | None, now: float) -> None:
        """Check the command of a tick at ``now``: none exactly when ``now`` is not finite or
        not far enough after the last command."""
        safety = self.safety
        dt = safety.dt_s if self.t_prev is None else now - self.t_prev
        if not math.isfinite(now) or (self.t_prev is not None and not dt >= MIN_TICK_INTERVAL_S):
            assert command is None, f'tick {self.ticks}: a command at {now} after {self.t_prev}'
            self.skipped += 1
            assert safety.skipped_ticks >= self.skipped
            return
        assert command is not None, f'tick {self.ticks}: no command at {now} after {self.t_prev}'
        assert command.time_s == now and safety.time_s == now
        q = command.qpos
        assert q.shape == (safety.num_joints,)
        assert np.all(np.isfinite(q)) and np.all(np.isfinite(command.qvel))
        assert np.all(q >= safety.safe_lower) and np.all(q <= safety.safe_upper)
        step = np.abs(q - self.q_prev)
        bound = safety.max_velocity * dt
        assert np.all(step <= bound * (1.0 + RELATIVE_TOL) + POSITION_TOL), \
            f'tick {self.ticks}: step {step} above {bound} over {dt} s'
        v = (q - self.q_prev) / dt
        assert np.array_equal(command.qvel, v), (command.qvel, v)  # the velocity actually done
        dv = np.abs(v - self.v_prev)
        bound = safety.max_acceleration * dt
        rounding = VELOCITY_ROUNDING * (1.0 + np.abs(q).max()) / dt  # of a position difference
        assert np.all(dv <= bound * (1.0 + RELATIVE_TOL) + rounding), \
            f'tick {self.ticks}: velocity change {dv} above {bound} over {dt} s'
        assert command.stale == (Intervention.STALE_HALT in command.interventions)
        self.q_prev, self.v_prev, self.t_prev = q, v, now
        self.ticks += 1


def _garbage(rng: np.random.Generator, n: int, lower: np.ndarray,
             upper: np.ndarray) -> tuple[object, RejectReason]:
    """A target that must be rejected, and why."""
    valid = rng.uniform(lower, upper)
    kind = int(rng.integers(0, 12))
    if kind < 4:
        bad = valid.copy()
        bad[rng.integers(0, n)] = (np.nan, np.inf, -np.inf, np.nan)[kind]
        return bad, RejectReason.NON_FINITE
    if kind < 6:
        bad = valid.copy()
        bad[rng.integers(0, n)] = (1e300, -1e300)[kind - 4]
        return bad, RejectReason.OUT_OF_RANGE
    if kind == 6:
        bad = valid.copy()
        j = int(rng.integers(0, n))
        bad[j] = upper[j] + rng.uniform(0.6, 50.0)  # a jump far outside the limits
        return bad, RejectReason.OUT_OF_RANGE
    if kind == 7:
        return np.degrees(valid) + 40.0, RejectReason.OUT_OF_RANGE  # degrees, not radians
    if kind == 8:
        shape = ((n + 1,), (n - 1,), (n, 1), (1, n), (), (0,))[int(rng.integers(0, 6))]
        return np.zeros(shape), RejectReason.WRONG_SHAPE
    if kind == 9:
        return (None, 'joint', [1.0, 'a'] * n, valid.astype(complex))[int(rng.integers(0, 4))], \
            RejectReason.NOT_NUMERIC
    if kind == 10:
        return [[1.0, 2.0], [3.0]], RejectReason.NOT_NUMERIC  # ragged
    return np.full(n, np.longdouble('1e400')), RejectReason.NON_FINITE  # inf as float64


def _random_run(safety: CommandSafety, seed: int, num_ticks: int) -> dict[str, int]:
    """Drive the filter with random, often hostile input; check every command."""
    rng = np.random.default_rng(seed)
    n = safety.num_joints
    lower, upper = safety.lower, safety.upper
    excess = safety.config.max_limit_excess_rad
    safety.reset(rng.uniform(lower - 0.3, upper + 0.3))  # may start outside: clamped
    checker = _Checker(safety)
    now = 0.0
    last_accepted = -math.inf
    target = rng.uniform(lower, upper)
    rejected = 0
    seen = {reason: 0 for reason in RejectReason}
    silent_until = -math.inf
    for _ in range(num_ticks):
        # Time: mostly regular, sometimes jittered, jumping forward or back, or not a number.
        u = rng.random()
        if u < 0.93:
            now += DT * rng.uniform(0.8, 1.2)
        elif u < 0.96:
            now += rng.uniform(0.3, 2.0)
        elif u < 0.98:
            now -= rng.uniform(0.0, 1.0)
        tick_time = math.nan if rng.random() < 0.005 else now
        if rng.random() < 0.01:
            silent_until = now + rng.uniform(0.1, 1.0)  # the sender goes quiet for a while
        for _ in range(int(rng.choice([0, 1, 1, 1, 2, 3]))):
            if now < silent_until:
                break
            v = rng.random()
            if v < 0.25:  # garbage
                value, reason = _garbage(rng, n, lower, upper)
                got = safety.submit(value, now)
                assert got is reason, (value, got, reason)
            elif v < 0.3:  # a good target with a bad stamp
                stamp = (math.nan, math.inf, -math.inf, 'now')[int(rng.integers(0, 4))]
                got = safety.submit(target, stamp)
                assert got is RejectReason.BAD_STAMP
            else:  # a valid target: small moves, jumps, or clamped just outside the limits
                w = rng.random()
                if w < 0.6:
                    target = np.clip(target + rng.normal(0, 0.05, n), lower, upper)
                elif w < 0.9:
                    target = rng.uniform(lower, upper)
                else:
                    target = rng.uniform(lower - 0.9 * excess, upper + 0.9 * excess)
                got = safety.submit(target, now)
                if now >= last_accepted:
                    assert got is None
                else:  # out of order after a backward time jump, or a clock reset
                    assert got in (None, RejectReason.BAD_STAMP)
                if got is None:
                    last_accepted = now
            if got is not None:
                rejected += 1
                seen[got] += 1
        command = safety.tick(tick_time)
        checker.check(command, tick_time)
    assert safety.counters()['rejected_input'] == rejected
    assert seen[RejectReason.NON_FINITE] and seen[RejectReason.OUT_OF_RANGE]
    assert seen[RejectReason.WRONG_SHAPE] and seen[RejectReason.NOT_NUMERIC]
    assert seen[RejectReason.BAD_STAMP]
    return safety.counters()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_hostile_input_never_breaks_the_bounds(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    names, lower, upper = _random_limits(rng, 5)
    config = SafetyConfig(
        max_velocity_rad_s=float(rng.uniform(0.5, 8.0)),
        max_acceleration_rad_s2=float(rng.uniform(5.0, 200.0)),
        watchdog_timeout_s=0.1, limit_margin_rad=0.02,
        halt_deceleration_rad_s2=(None, 3.0)[seed % 2],
        joint_max_velocity_rad_s={'j1': 0.3}, joint_max_acceleration_rad_s2={'j2': 400.0})
    safety = CommandSafety(names, lower, upper, config, rate_hz=RATE_HZ)
    assert safety.max_velocity[1] == 0.3 and safety.max_acceleration[2] == 400.0
    counts = _random_run(safety, seed, 4000)
    # Every kind of intervention happened on this input.
    assert all(counts[kind.name.lower()] > 0 for kind in INTERVENTION_KINDS), counts


def test_random_hostile_input_on_allegro_limits() -> None:
    names, lower, upper = _allegro_limits()
    safety = CommandSafety(names, lower, upper, SafetyConfig(), rate_hz=RATE_HZ)
    _random_run(safety, 7, 3000)


def _tick_interval(rng: np.random.Generator, period: float) -> float:
    """The time to the next tick of a timer at ``period`` on a loaded machine."""
    u = rng.random()
    if u < 0.5:
        return period * rng.uniform(0.6, 1.4)  # jitter
    if u < 0.68:
        return rng.uniform(1e-5, 1e-3)  # bunched: a late tick and the punctual one after it
    if u < 0.72:
        return rng.uniform(0.0, 3.0 * MIN_TICK_INTERVAL_S)  # about as close as allowed
    if u < 0.76:
        return 0.0  # the same time again
    if u < 0.9:
        return rng.uniform(0.01, 0.5)  # late
    if u < 0.95:
        return -rng.uniform(0.0, 0.05)  # the clock steps back
    return period


def _schedule_run(rng: np.random.Generator, num_ticks: int) -> tuple[int, int, Intervention]:
    """One filter with random limits and bounds, driven by a random tick schedule and random
    targets; every command checked against the previous one. Returns the commands, the skipped
    ticks and the kinds of intervention seen."""
    n = int(rng.integers(1, 4))
    names, lower, upper = _random_limits(rng, n)
    vmax = rng.uniform(0.3, 10.0, size=n)
    amax = rng.uniform(2.0, 500.0, size=n)
    config = SafetyConfig(
        max_velocity_rad_s=float(vmax[0]), max_acceleration_rad_s2=float(amax[0]),
        watchdog_timeout_s=float(rng.uniform(0.03, 0.3)),
        halt_deceleration_rad_s2=float(rng.uniform(1.0, 300.0)) if rng.random() < 0.5 else None,
        joint_max_velocity_rad_s=dict(zip(names[1:], vmax[1:].tolist(), strict=True)),
        joint_max_acceleration_rad_s2=dict(zip(names[1:], amax[1:].tolist(), strict=True)))
    period = 1.0 / float(rng.choice([30.0, 100.0, 200.0, 500.0]))
    safety = CommandSafety(names, lower, upper, config, rate_hz=1.0 / period)
    safety.reset(rng.uniform(lower - 0.1, upper + 0.1))
    checker = _Checker(safety)
    excess = config.max_limit_excess_rad
    now = float(rng.uniform(-1.0, 1e3))
    silent_until = -math.inf
    target = rng.uniform(lower, upper)
    flags = Intervention.NONE
    for _ in range(num_ticks):
        now += _tick_interval(rng, period)
        tick_time = math.nan if rng.random() < 0.003 else now
        if rng.random() < 0.02:
            silent_until = now + rng.uniform(0.05, 1.0)  # the input goes stale for a while
        if now >= silent_until and rng.random() < 0.8:
            w = rng.random()
            if w < 0.5:
                target = np.clip(target + rng.normal(0.0, 0.05, n), lower, upper)
            elif w < 0.85:
                target = rng.uniform(lower, upper)  # a jump across the range
            else:
                target = rng.uniform(lower - 0.9 * excess, upper + 0.9 * excess)  # clamped
            safety.submit(target, now)  # may be out of order after the clock stepped back
        command = safety.tick(tick_time)
        checker.check(command, tick_time)
        if command is not None:
            flags |= command.interventions
    return checker.ticks, checker.skipped, flags


def test_any_tick_schedule_keeps_the_bounds_over_the_stamps() -> None:
    rng = np.random.default_rng(2024)
    commands = skipped = 0
    kinds = set()
    for _ in range(1000):
        ticks, skips, flags = _schedule_run(rng, 100)
        commands += ticks
        skipped += skips
        kinds |= {kind for kind in INTERVENTION_KINDS if kind in flags}
    assert commands > 70_000 and skipped > 5000
    assert kinds == set(INTERVENTION_KINDS)  # rejected: out of order after the clock stepped back


def test_commands_close_in_time_move_little() -> None:
    # Measured on the sim node before: after ordinary motion at 200 Hz, two commands 0.64 ms
    # apart moved a joint as far as one 5 ms period at full speed (47 rad/s over the stamps).
    config = SafetyConfig(max_velocity_rad_s=DEFAULT_MAX_VELOCITY_RAD_S)
    period = 1.0 / 200.0
    safety = CommandSafety(('a',), np.array([-3.0]), np.array([3.0]), config, rate_hz=200.0)
    safety.reset(np.array([-2.9]))
    checker = _Checker(safety)
    now = 100.0
    for _ in range(40):
        safety.submit(np.array([2.9]), now)
        checker.check(safety.tick(now), now)
        now += period
    assert checker.v_prev[0] == pytest.approx(config.max_velocity_rad_s)
    before = safety.qpos
    now += 0.64e-3 - period
    safety.submit(np.array([2.9]), now)
    command = safety.tick(now)
    checker.check(command, now)
    step = command.qpos[0] - before[0]
    assert 0.0 < step <= config.max_velocity_rad_s * 0.64e-3 * (1 + RELATIVE_TOL)
    assert command.qvel[0] == pytest.approx(config.max_velocity_rad_s)
    # A tick 2 s late moves no further than one LATE_TICK_PERIODS periods late, and the
    # commands after it speed up again within the acceleration bound.
    before = safety.qpos
    now += 2.0
    safety.submit(np.array([2.9]), now)
    command = safety.tick(now)
    checker.check(command, now)
    step = command.qpos[0] - before[0]
    assert step == pytest.approx(config.max_velocity_rad_s * LATE_TICK_PERIODS * period)
    assert Intervention.VELOCITY_LIMITED in command.interventions
    for _ in range(20):
        now += period
        safety.submit(np.array([2.9]), now)
        checker.check(safety.tick(now), now)
    assert checker.v_prev[0] == pytest.approx(config.max_velocity_rad_s)
    # Repeated, earlier or non-finite times give no command and change nothing.
    last = safety.qpos
    for bad in (now, now - 1e-3, now + 0.5 * MIN_TICK_INTERVAL_S, math.nan, math.inf):
        assert safety.tick(bad) is None
    assert safety.skipped_ticks == 5 and safety.time_s == now
    np.testing.assert_array_equal(safety.qpos, last)


@pytest.mark.parametrize('halt', [None, 30.0])
def test_stale_input_halts_at_the_halt_rate_over_real_time(halt: float | None) -> None:
    config = SafetyConfig(max_velocity_rad_s=3.0, max_acceleration_rad_s2=60.0,
                          watchdog_timeout_s=0.1, halt_deceleration_rad_s2=halt)
    safety, checker, now = _moving_filter(config)
    rng = np.random.default_rng(5)
    deceleration = halt or config.max_acceleration_rad_s2
    last_fresh = None
    for _ in range(300):  # no submissions: ticks jittered, bunched and late
        now += _tick_interval(rng, DT) if rng.random() < 0.8 else rng.uniform(1e-4, 1e-3)
        command = safety.tick(now)
        checker.check(command, now)
        if command is None:
            continue
        if not command.stale:
            last_fresh = (now, command.qvel[0])
            continue
        assert last_fresh is not None
        t_fresh, v_fresh = last_fresh
        # Exactly the ramp of the halt rate since the last fresh command, then at rest.
        expected = max(v_fresh - deceleration * (now - t_fresh), 0.0)
        assert command.qvel[0] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert command.qvel[0] == 0.0


def test_rejected_input_changes_nothing() -> None:
    names, lower, upper = ('a', 'b'), np.array([-1.0, 0.0]), np.array([1.0, 2.0])
    safety = CommandSafety(names, lower, upper, SafetyConfig(), rate_hz=RATE_HZ)
    safety.reset(np.array([0.0, 1.0]))
    assert safety.submit(np.array([0.5, 1.5]), 0.0) is None
    reference = CommandSafety(names, lower, upper, SafetyConfig(), rate_hz=RATE_HZ)
    reference.reset(np.array([0.0, 1.0]))
    reference.submit(np.array([0.5, 1.5]), 0.0)
    for k in range(10):
        now = k * DT
        assert safety.submit(np.array([np.nan, 1.0]), now) is RejectReason.NON_FINITE
        assert safety.submit(np.array([0.5, 1e300]), now) is RejectReason.OUT_OF_RANGE
        assert safety.submit(np.array([0.5]), now) is RejectReason.WRONG_SHAPE
        command = safety.tick(now)
        expected = reference.tick(now)
        np.testing.assert_array_equal(command.qpos, expected.qpos)
        assert Intervention.REJECTED_INPUT in command.interventions
    assert safety.counters()['rejected_input'] == 30
    # The watchdog still counts from the last accepted target: garbage does not keep it alive.
    for k in range(10, 40):
        safety.submit(np.array([np.inf, 1.0]), k * DT)
        command = safety.tick(k * DT)
    assert command.stale


def _moving_filter(config: SafetyConfig) -> tuple[CommandSafety, _Checker, float]:
    """A filter driven to full speed towards a far target; returns it and the time."""
    safety = CommandSafety(('a',), np.array([-10.0]), np.array([10.0]), config, rate_hz=RATE_HZ)
    safety.reset(np.array([-9.0]))
    checker = _Checker(safety)
    now = 0.0
    for _ in range(100):
        safety.submit(np.array([9.0]), now)
        command = safety.tick(now)
        checker.check(command, now)
        now += DT
    assert command.qvel[0] == pytest.approx(config.max_velocity_rad_s)
    assert Intervention.VELOCITY_LIMITED in command.interventions
    return safety, checker, now


@pytest.mark.parametrize('halt', [None, 10.0])
def test_stale_input_halts_smoothly_then_resumes(halt: float | None) -> None:
    config = SafetyConfig(max_velocity_rad_s=2.0, max_acceleration_rad_s2=20.0,
                          watchdog_timeout_s=0.1, halt_deceleration_rad_s2=halt)
    safety, checker, now = _moving_filter(config)
    last_stamp = now - DT
    speeds, stale = [], []
    for _ in range(60):  # no submissions
        command = safety.tick(now)
        checker.check(command, now)
        speeds.append(abs(command.qvel[0]))
        stale.append(command.stale)
        assert command.stale == (now - last_stamp > config.watchdog_timeout_s)
        now += DT
    first_stale = stale.index(True)
    assert 5 < first_stale < 60 and all(stale[first_stale:])
    halting = np.array(speeds[first_stale - 1:])
    assert np.all(np.diff(halting) <= 1e-12)  # monotonically slower
    deceleration = halt or config.max_acceleration_rad_s2
    ticks_to_stop = math.ceil(config.max_velocity_rad_s / (deceleration * DT)) + 1
    assert np.all(halting[ticks_to_stop:] == 0.0)
    assert halting[ticks_to_stop - 2] > 0.0  # and not faster than the halt rate
    held = safety.qpos
    counts = safety.counters()
    assert counts['stale_halt'] == 60 - first_stale
    # A fresh target resumes tracking.
    safety.submit(np.array([-9.5]), now)
    command = safety.tick(now)
    checker.check(command, now)
    assert not command.stale and command.qvel[0] < 0.0 and command.qpos[0] < held[0]


def test_unreachable_and_far_targets_are_clamped_and_approached_without_overshoot() -> None:
    config = SafetyConfig(max_velocity_rad_s=1.0, max_acceleration_rad_s2=10.0)
    safety = CommandSafety(('a', 'b'), np.array([-1.0, -1.0]), np.array([1.0, 1.0]), config,
                           rate_hz=RATE_HZ)
    safety.reset(np.array([0.0, 0.0]))
    checker = _Checker(safety)
    history = []
    flags = Intervention.NONE
    for k in range(400):
        assert safety.submit(np.array([1.3, -0.5]), k * DT) is None  # a: 0.3 rad beyond
        command = safety.tick(k * DT)
        checker.check(command, k * DT)
        history.append(command.qpos)
        flags |= command.interventions
    history = np.array(history)
    assert history[-1] == pytest.approx([1.0 - config.limit_margin_rad, -0.5], abs=1e-12)
    assert history[:, 0].max() <= 1.0 - config.limit_margin_rad  # no overshoot
    assert history[:, 1].min() >= -0.5 - 1e-12
    assert {Intervention.POSITION_CLAMPED, Intervention.VELOCITY_LIMITED,
            Intervention.ACCELERATION_LIMITED} <= {k for k in INTERVENTION_KINDS if k in flags}


def _smooth_trajectory(num_frames: int, fps: float, lower: np.ndarray, upper: np.ndarray,
                       seed: int) -> np.ndarray:
    """Joint motion that starts at rest and stays well inside the limits and the bounds."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None] / fps  # (T, 1)
    mid, half = (lower + upper) / 2, (upper - lower) / 2
    omega = 2 * np.pi * rng.uniform(0.3, 1.0, size=lower.shape)
    amplitude = 0.35 * half
    return mid - amplitude + amplitude * (1.0 - np.cos(omega * t))  # (T, n)


def test_smooth_trajectory_passes_unchanged() -> None:
    names, lower, upper = _allegro_limits()
    fps = 30.0
    qpos = _smooth_trajectory(300, fps, lower, upper, seed=3)
    v = np.diff(qpos, axis=0) * fps
    config = SafetyConfig(max_velocity_rad_s=DEFAULT_MAX_VELOCITY_RAD_S,
                          max_acceleration_rad_s2=DEFAULT_MAX_ACCELERATION_RAD_S2)
    assert np.abs(v).max() < 0.5 * config.max_velocity_rad_s
    assert np.abs(np.diff(v, axis=0) * fps).max() < 0.5 * config.max_acceleration_rad_s2
    safe, report = filter_trajectory(qpos, fps, lower, upper, config, joint_names=names)
    np.testing.assert_allclose(safe, qpos, rtol=0, atol=1e-12)
    assert report.unchanged and not any(report.counts.values())
    assert report.max_deviation_rad < 1e-12 and report.rejected_frames == ()
    # Ticking three times faster than the targets arrive: the filter extrapolates along the
    # targets' velocity between them. Each kink of that path asks for the acceleration of one
    # target interval within one tick, which may be bounded; the targets are still met.
    safety = CommandSafety(names, lower, upper, config, rate_hz=3 * fps)
    safety.reset(qpos[0])
    checker = _Checker(safety)
    for k in range(3 * len(qpos)):
        if k % 3 == 0:
            assert safety.submit(qpos[k // 3], k / (3 * fps)) is None
        command = safety.tick(k / (3 * fps))
        checker.check(command, k / (3 * fps))
        assert command.interventions in (Intervention.NONE, Intervention.ACCELERATION_LIMITED)
        if k % 3 == 0:
            np.testing.assert_allclose(command.qpos, qpos[k // 3], atol=0.005)


def test_filter_trajectory_equals_ticking_the_class() -> None:
    rng = np.random.default_rng(11)
    names, lower, upper = _random_limits(rng, 4)
    fps = 50.0
    qpos = _smooth_trajectory(500, fps, lower, upper, seed=4)
    qpos[100:110] += 3.0  # a jump, partly beyond the limits
    qpos[200, 1] = np.nan
    qpos[201, 2] = np.inf
    qpos[202] = 1e300
    qpos[300:330] = rng.uniform(lower - 0.4, upper + 0.4, size=(30, 4))
    config = SafetyConfig(max_velocity_rad_s=2.0, max_acceleration_rad_s2=30.0)
    safe, report = filter_trajectory(qpos, fps, lower, upper, config, joint_names=names)
    safety = CommandSafety(names, lower, upper, config, rate_hz=fps)
    safety.reset(qpos[0])
    checker = _Checker(safety)
    flags = []
    for t in range(len(qpos)):
        safety.submit(qpos[t], t / fps)
        command = safety.tick(t / fps)
        checker.check(command, t / fps)
        np.testing.assert_array_equal(command.qpos, safe[t])
        flags.append(command.interventions.value)
    np.testing.assert_array_equal(report.frame_flags, flags)
    assert report.counts == safety.counters()
    assert set(report.rejected_frames) >= {200, 201, 202}
    assert report.counts['rejected_input'] == len(report.rejected_frames)
    assert report.worst_joint in names and report.max_deviation_rad > 0.5
    assert not report.unchanged
    summary = report.to_dict()
    assert summary['frames'] == 500 and summary['counts'] == report.counts
    assert set(report.frames_with(Intervention.REJECTED_INPUT)) == set(report.rejected_frames)
    # A given start state (the robot's measured state) is where the commands start from.
    start = (lower + upper) / 2
    safe2, _ = filter_trajectory(qpos, fps, lower, upper, config, joint_names=names,
                                 initial_qpos=start)
    assert np.all(np.abs(safe2[0] - start) <= 2.0 / fps + 1e-12)


def test_stamps_out_of_order_are_rejected_and_odd_stamps_are_stale() -> None:
    config = SafetyConfig(watchdog_timeout_s=0.2)
    safety = CommandSafety(('a',), np.array([-1.0]), np.array([1.0]), config, rate_hz=RATE_HZ)
    safety.reset(np.array([0.0]))
    assert safety.submit(np.array([0.1]), 1.0 + 0.1) is None  # slightly ahead: clock skew
    assert not safety.tick(1.0).stale
    assert safety.submit(np.array([0.2]), 1.05) is RejectReason.BAD_STAMP  # out of order
    assert safety.submit(np.array([0.2]), 0.5) is None  # much older: a clock reset
    assert safety.tick(1.01).stale  # judged by its age
    assert safety.submit(np.array([0.3]), 1e12) is None  # far in the future
    assert safety.tick(1.02).stale  # is never fresh
    assert safety.submit(np.array([0.2]), True) is RejectReason.BAD_STAMP
    assert safety.submit(np.array([0.2]), math.nan) is RejectReason.BAD_STAMP
    assert safety.counters()['rejected_input'] == 3


def test_reset_and_construction_errors() -> None:
    names, lower, upper = ('a', 'b'), np.array([-1.0, 0.0]), np.array([1.0, 0.03])
    with pytest.raises(ConfigError, match=r"joint 'b': range .* narrower than twice"):
        CommandSafety(names, lower, upper, SafetyConfig(), rate_hz=RATE_HZ)
    upper = np.array([1.0, 1.0])
    with pytest.raises(ConfigError, match='joint_names must be unique'):
        CommandSafety(('a', 'a'), lower, upper, rate_hz=RATE_HZ)
    with pytest.raises(ConfigError, match=r'upper: expected \(2,\)'):
        CommandSafety(names, lower, upper[:1], rate_hz=RATE_HZ)
    with pytest.raises(ConfigError, match='lower limits must be finite'):
        CommandSafety(names, np.array([np.nan, 0.0]), upper, rate_hz=RATE_HZ)
    with pytest.raises(ConfigError, match='rate_hz'):
        CommandSafety(names, lower, upper, rate_hz=0.0)
    with pytest.raises(ConfigError, match=r"unknown joint .* 'c'; valid options: 'a', 'b'"):
        CommandSafety(names, lower, upper, SafetyConfig(joint_max_velocity_rad_s={'c': 1.0}),
                      rate_hz=RATE_HZ)
    safety = CommandSafety(names, lower, upper, rate_hz=RATE_HZ)
    with pytest.raises(SimulationError, match=r'call reset\(qpos\)'):
        safety.tick(0.0)
    with pytest.raises(MotionError, match='finite'):
        safety.reset(np.array([np.nan, 0.5]))
    with pytest.raises(MotionError, match=r'expected \(2,\)'):
        safety.reset(np.zeros(3))
    safety.reset(np.array([5.0, 0.5]))  # measured outside the safe range: starts inside
    assert safety.qpos.tolist() == [1.0 - 0.02, 0.5]
    assert safety.counters()['position_clamped'] == 1
    command = safety.tick(0.0)
    assert command.stale and command.qvel.tolist() == [0.0, 0.0]  # no target yet: hold
    with pytest.raises(ValueError):
        command.qpos[0] = 0.0  # read-only
    with pytest.raises(MotionError, match=r'qpos: expected shape \(T, 2\)'):
        filter_trajectory(np.zeros((5, 3)), 30.0, lower, upper)


def test_config_from_dict_and_yaml(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / 'config' / 'safety.yaml'
    assert SafetyConfig.from_yaml(shipped) == SafetyConfig()
    config = SafetyConfig.from_dict({'max_velocity_rad_s': 2, 'joint_max_velocity_rad_s':
                                     {'b': 1.0, 'a': 0.5}, 'halt_deceleration_rad_s2': 5})
    assert config.max_velocity_rad_s == 2.0 and isinstance(config.max_velocity_rad_s, float)
    assert SafetyConfig.from_dict(config.to_dict()) == config
    assert hash(config) == hash(SafetyConfig.from_dict(config.to_dict()))
    with pytest.raises(ConfigError, match=r"unknown safety config key 'max_vel'; valid options"):
        SafetyConfig.from_dict({'max_vel': 1.0})
    for key, value in [('max_velocity_rad_s', 0.0), ('max_acceleration_rad_s2', -1.0),
                       ('watchdog_timeout_s', math.inf), ('limit_margin_rad', 'x'),
                       ('halt_deceleration_rad_s2', 0.0), ('max_limit_excess_rad', True),
                       ('joint_max_velocity_rad_s', {'a': math.nan}),
                       ('joint_max_acceleration_rad_s2', [1.0])]:
        with pytest.raises(ConfigError, match=key):
            SafetyConfig.from_dict({key: value})
    bad = tmp_path / 'bad.yaml'
    bad.write_text('max_velocity_rad_s: 1.0\nwatchdog: 0.1\n', encoding='utf-8')
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown safety config key 'watchdog'"):
        SafetyConfig.from_yaml(bad)


def test_bounds_come_from_the_robot_capped_by_the_globals_and_replaced_per_joint() -> None:
    names = ('a', 'b', 'c')
    lower, upper = np.full(3, -1.0), np.full(3, 1.0)
    robot_v, robot_a = np.array([0.5, 7.0, 30.0]), np.array([100.0, 50.0, 200.0])
    safety = CommandSafety(names, lower, upper, SafetyConfig(), rate_hz=RATE_HZ,
                           max_velocity=robot_v, max_acceleration=robot_a)
    np.testing.assert_array_equal(safety.max_velocity, robot_v)
    np.testing.assert_array_equal(safety.max_acceleration, robot_a)
    config = SafetyConfig(max_velocity_rad_s=6.0, max_acceleration_rad_s2=80.0,
                          joint_max_velocity_rad_s={'c': 10.0},
                          joint_max_acceleration_rad_s2={'a': 120.0})
    safety = CommandSafety(names, lower, upper, config, rate_hz=RATE_HZ,
                           max_velocity=robot_v, max_acceleration=robot_a)
    np.testing.assert_array_equal(safety.max_velocity, [0.5, 6.0, 10.0])
    np.testing.assert_array_equal(safety.max_acceleration, [120.0, 50.0, 80.0])
    # Without robot limits: the globals, else the defaults.
    safety = CommandSafety(names, lower, upper, rate_hz=RATE_HZ)
    np.testing.assert_array_equal(safety.max_velocity, DEFAULT_MAX_VELOCITY_RAD_S)
    np.testing.assert_array_equal(safety.max_acceleration, DEFAULT_MAX_ACCELERATION_RAD_S2)
    with pytest.raises(ConfigError, match='max_velocity limits must be > 0'):
        CommandSafety(names, lower, upper, rate_hz=RATE_HZ, max_velocity=np.zeros(3))
    with pytest.raises(ConfigError, match=r'max_acceleration: expected \(3,\)'):
        CommandSafety(names, lower, upper, rate_hz=RATE_HZ, max_acceleration=np.ones(2))
    # The robot's bound is what the commands keep to.
    safety = CommandSafety(names, lower, upper, rate_hz=RATE_HZ, max_velocity=robot_v,
                           max_acceleration=robot_a)
    safety.reset(np.zeros(3))
    checker = _Checker(safety)
    for k in range(60):
        safety.submit(np.full(3, 0.9), k * DT)
        checker.check(safety.tick(k * DT), k * DT)
    assert checker.v_prev[0] == pytest.approx(0.5)
