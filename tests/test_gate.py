"""Tests for the gate's joint velocity check: each joint is held to its own limit from the
robot model (the URDF's velocity, robot.yaml limits:), the configured value only overrides;
for its reasons, whose numbers never print a failing value equal to its bound; and for its
reach check: a humanoid wrist the retargeting left far from its target fails."""

from __future__ import annotations

import re

import numpy as np
import pytest

from handx_gen.data.synthetic import SynthConfig, synthesize_clip
from handx_gen.errors import SimulationError
from handx_gen.motion import BimanualMotion
from handx_ros.retarget import build_retargeter
from handx_ros.retarget.trajectory import RobotTrajectory
from handx_ros.sim.evaluate import reach_errors, simulate
from handx_ros.sim.gate import GateConfig, judge
from handx_ros.sim.scene import build_scene

FPS = 30.0
FRAMES = 24


def _ramp(robot: str, joint: str, speed: float) -> RobotTrajectory:
    """The neutral pose with ``joint`` moving at ``speed`` rad/s from frame 8 to 16, the
    wrists held apart."""
    retargeter = build_retargeter(robot)
    names = retargeter.joint_names
    lower, upper = retargeter.joint_limits()
    qpos = np.tile(retargeter.neutral_qpos(), (FRAMES, 1))  # (T, n)
    column = names.index(joint)
    start = lower[column] + 0.1 * (upper[column] - lower[column])
    ramp = np.clip(np.arange(FRAMES) - 8, 0, 8) / FPS * speed  # (T,)
    qpos[:, column] = start + ramp
    pose = np.array([0.0, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
    poses = np.tile(pose, (FRAMES, 2, 1))
    poses[:, 0, 0], poses[:, 1, 0] = -0.25, 0.25
    return RobotTrajectory(robot=robot, fps=FPS, joint_names=names, qpos=qpos,
                           base_poses=poses)


def _velocity_check(trajectory: RobotTrajectory, gate: GateConfig | None = None):
    result = simulate(build_scene(trajectory.robot), trajectory)
    verdict = judge(result, gate)
    return next(c for c in verdict.checks if c.name == 'joint_velocity'), verdict


@pytest.mark.parametrize('robot, joint, speed, limit', [
    ('inspire', 'inspire_right/index', 1.0, 0.5),
    ('allegro', 'allegro_right/index_abduction', 8.0, 7.0),
])
def test_gate_holds_each_joint_to_the_robots_own_limit(robot, joint, speed, limit):
    check, verdict = _velocity_check(_ramp(robot, joint, speed))
    assert not check.passed and check.threshold == pytest.approx(limit)
    assert check.value == pytest.approx(speed, rel=1e-6)
    reason = f'commanded joint velocity {speed:.2f} rad/s > {limit:.2f} rad/s limit of {joint} at '
    assert check.reason.startswith(reason) and check.reason in verdict.reasons


def test_gate_passes_a_joint_within_its_limit_and_the_yaml_value_overrides():
    trajectory = _ramp('allegro', 'allegro_right/index_abduction', 6.5)
    check, _ = _velocity_check(trajectory)
    assert check.passed and check.threshold == pytest.approx(7.0)
    check, _ = _velocity_check(trajectory, GateConfig(max_joint_velocity_rad_s=5.0))
    assert not check.passed and '> 5.00 rad/s limit of allegro_right/index_abduction' in \
        check.reason


# "0.10004 rad > 0.1 rad", "5.3 % > 5.0 %": a measured value, its unit, the comparison, the bound
_COMPARISON = re.compile(r'(\d+\.\d+)( \S+)? ([<>]) (\d+\.\d+)')


def test_a_failing_value_never_prints_equal_to_its_bound():
    """Bounds a hair below what was measured: every reason still shows value > bound."""
    result = simulate(build_scene('inspire'), _ramp('inspire', 'inspire_right/index', 1.0))
    summary = result.summary()
    hair = 1.0 - 1e-5
    gate = GateConfig(max_joint_error_p95_rad=summary['joint_error_p95_rad'] * hair,
                      max_fingertip_error_p95_m=summary['fingertip_error_p95_m'] * hair,
                      max_joint_velocity_rad_s=1.0 * hair)
    verdict = judge(result, gate)
    failed = {c.name: c.reason for c in verdict.checks if not c.passed}
    assert set(failed) == {'joint_error', 'fingertip_error', 'joint_velocity'}
    for name, reason in failed.items():
        value, unit, op, bound = _COMPARISON.search(reason).groups()
        assert op == '>' and float(value) > float(bound), (name, reason)
        assert f'{value}{unit} > {bound}{unit}' in reason


@pytest.mark.parametrize('value, bound, digits, expected', [
    (0.1000004, 0.1, 3, '0.1000004 rad > 0.1000000 rad'),
    (0.25, 0.1, 3, '0.250 rad > 0.100 rad'),
    (1.0 + 2e-16, 1.0, 2, '1.0000000000000002 rad > 1.0 rad'),
])
def test_comparison_shows_as_many_digits_as_it_takes(value, bound, digits, expected):
    from handx_ros.sim.gate import _beyond

    assert _beyond(value, bound, 'rad', digits) == expected
    assert _beyond(0.5, 0.6, '', 2, op='<') == '0.50 < 0.60'


def _held_g1(wrist_error_m: np.ndarray, **info) -> RobotTrajectory:
    """The G1 held at its neutral pose, with the retargeting's wrist errors (T, 2)."""
    retargeter = build_retargeter('g1_hands')
    qpos = np.tile(retargeter.neutral_qpos(), (len(wrist_error_m), 1))
    return RobotTrajectory(robot='g1_hands', fps=FPS, joint_names=retargeter.joint_names,
                           qpos=qpos, info={'wrist_error_m_per_hand': wrist_error_m.tolist(),
                                            **info})


def test_gate_fails_a_wrist_out_of_reach_naming_the_hand():
    error = np.full((12, 2), 0.002)
    error[4:10, 1] = np.linspace(0.1, 0.625, 6)  # the right wrist, up to 625 mm off
    result = simulate(build_scene('g1_hands'), _held_g1(error))
    np.testing.assert_allclose(result.reach_error_m, error)
    verdict = judge(result)
    check = next(c for c in verdict.checks if c.name == 'reach')
    assert not check.passed and check.value == pytest.approx(0.625)
    assert check.threshold == pytest.approx(0.03)
    assert check.reason == ('out of reach: right wrist off its target by 625.0 mm > 30.0 mm '
                            'at 0.30 s (6 of 12 frames beyond)')
    assert check.reason in verdict.reasons and not verdict.passed
    # Within the threshold it passes; without one there is no reach check.
    assert judge(result, GateConfig(max_reach_error_m=0.7)).passed
    assert 'reach' not in {c.name for c in judge(result, GateConfig(
        max_reach_error_m=None)).checks}


def test_reach_errors_follow_the_retiming():
    error = np.array([[0.0, 0.01], [0.0, 0.2], [0.0, 0.02]])
    source = np.array([0.0, 0.5, 1.0, 1.5, 2.0])  # played twice slower
    trajectory = _held_g1(np.zeros((5, 2)))
    trajectory = trajectory.with_info(wrist_error_m_per_hand=error.tolist())
    np.testing.assert_allclose(reach_errors(trajectory, source)[:, 1],
                               [0.01, 0.2, 0.2, 0.2, 0.02])
    assert reach_errors(trajectory.with_info(wrist_error_m_per_hand=None)) is None
    with pytest.raises(SimulationError, match='wrist_error_m_per_hand'):
        reach_errors(trajectory)  # three rows for five frames, not retimed


def test_a_clip_beyond_the_g1_arms_fails_the_gate_after_retargeting():
    motion = synthesize_clip(SynthConfig(), 2, 5).motion[:20]
    shift = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # the right hand a metre forward
    far = BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose,
                         np.asarray(motion.transl) + shift,
                         (np.asarray(motion.keypoints) + shift[:, None]).astype(np.float32))
    _, trajectory, _ = build_retargeter('g1_hands').retarget_retimed(far)
    verdict = judge(simulate(build_scene('g1_hands'), trajectory, far))
    reason = next(r for r in verdict.reasons if r.startswith('out of reach: '))
    assert reason.startswith('out of reach: right wrist off its target by ')
    assert ' mm > 30.0 mm at ' in reason and 'left wrist' not in reason
