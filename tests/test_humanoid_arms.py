"""The humanoid arm IK: the wrist's tilt traded for position, and both arms solved together
where the palms meet (``handx_ros.retarget.bimanual``)."""

from __future__ import annotations

import numpy as np
import pinocchio as pin
import pytest

from handx_ros.retarget.bimanual import (
    build_retargeter,
    hinged_residual,
    relative_pose_residual,
    rotation_angle,
)
from handx_ros.retarget.retargeter import RetargetConfig

# Elbow bent, hand in front of the chest (G1 and GR1 left arm order: shoulder pitch, roll,
# yaw, elbow, then three wrist joints); the right arm mirrors it.
ARM_POSE = np.array([-0.6, 0.2, -0.4, -1.3, 0.0, 0.0, 0.0])
MIRROR = np.array([1.0, -1.0, -1.0, 1.0, -1.0, -1.0, 1.0])


def _numeric_jacobian(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    columns = []
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = eps
        columns.append((f(x + step) - f(x - step)) / (2 * eps))
    return np.stack(columns, axis=-1)


@pytest.mark.parametrize(('size', 'dim'), [(0.3, 3), (0.59, 3), (0.61, 3), (1.2, 3),
                                           (0.02, 2)])
def test_hinged_residual_length_and_jacobian(size, dim):
    rng = np.random.default_rng(int(size * 100))
    direction = rng.normal(size=dim)
    error = size * direction / np.linalg.norm(direction)
    J_error = rng.normal(size=(dim, 4))  # the error's Jacobian in 4 joints
    weight, knee, beyond = 0.1, 0.6 if dim == 3 else 0.01, 0.5
    r, A = hinged_residual(error, J_error, weight, knee, beyond)
    expected = weight * size if size <= knee else weight * knee + beyond * (size - knee)
    assert np.linalg.norm(r) == pytest.approx(expected, rel=1e-12)
    assert np.allclose(r / np.linalg.norm(r), error / size)
    q = rng.normal(size=4)  # the error linear in the joints, J_error its Jacobian

    def residual(x: np.ndarray) -> np.ndarray:
        return hinged_residual(error + J_error @ (x - q), J_error, weight, knee, beyond)[0]

    assert np.allclose(A, _numeric_jacobian(residual, q), atol=1e-7)
    # Continuous at the knee: just below and just above it, the same residual.
    unit = error / size
    below = hinged_residual(unit * (knee - 1e-9), J_error, weight, knee, beyond)[0]
    above = hinged_residual(unit * (knee + 1e-9), J_error, weight, knee, beyond)[0]
    assert np.linalg.norm(below - above) < 1e-9


def test_relative_pose_residual_jacobian_matches_finite_differences():
    retargeter = build_retargeter('g1_hands')
    left, right = retargeter.arms
    rng = np.random.default_rng(3)
    n = left.chain.nu
    u = np.concatenate([ARM_POSE + rng.normal(0.0, 0.2, n),
                        ARM_POSE * MIRROR + rng.normal(0.0, 0.2, n)])
    T_goal = pin.SE3(pin.exp3(rng.normal(0.0, 0.3, 3)), rng.normal(0.0, 0.1, 3))

    def residual(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        T_l, J_l = left.chain.pose_and_jacobian(x[:n], left.frame_id)
        T_r, J_r = right.chain.pose_and_jacobian(x[n:], right.frame_id)
        return relative_pose_residual(T_l, J_l, T_r, J_r, T_goal)

    r, A = residual(u)
    T_l, T_r = left.wrist_pose(u[:n]), right.wrist_pose(u[n:])
    assert np.allclose(r, pin.log6(T_goal.actInv(T_l.actInv(T_r))).vector)
    assert np.allclose(A, _numeric_jacobian(lambda x: residual(x)[0], u), atol=1e-5)


def _solve(retargeter, side: int, goal: pin.SE3, frames: int = 4) -> pin.SE3:
    arm = retargeter.arms[side]
    for _ in range(frames):
        arm.solve(goal)
    return arm.wrist_pose(arm.u)


def test_a_wrist_out_of_reach_trades_its_tilt_for_position():
    """A target the G1's left wrist can reach only turned away: with the reach knee the
    wrist comes to the knee's distance of it, turned further but within the tilt; weighed as
    a reachable target (``arm_reach_gain`` 1), it stays nearer the orientation and misses
    the position by centimetres."""
    tilted = build_retargeter('g1_hands', fps=1.0)
    upright = build_retargeter('g1_hands', RetargetConfig(arm_reach_gain=1.0), fps=1.0)
    arm = tilted.arms[0]
    T = arm.wrist_pose(np.clip(ARM_POSE, arm.chain.lower, arm.chain.upper))
    goal = pin.SE3(pin.exp3(np.array([0.0, 0.0, -0.6])) @ T.rotation, T.translation)
    with_tilt, without = _solve(tilted, 0, goal), _solve(upright, 0, goal)
    miss = [float(np.linalg.norm(W.translation - goal.translation)) for W in (with_tilt,
                                                                              without)]
    turn = [rotation_angle(W.rotation, goal.rotation) for W in (with_tilt, without)]
    knee = tilted.config.arm_reach_knee_m
    assert miss[0] < knee + 0.002 and miss[1] > 2 * knee
    assert turn[1] + np.radians(10.0) < turn[0] <= tilted.config.arm_tilt_rad


def test_palms_meeting_turn_both_wrists_alike():
    """Two GR1 wrist goals whose common turn is beyond the wrists' range: each arm alone
    turns its wrist as far as it can, and the two hands' relative orientation is lost; solved
    together, they keep it."""
    retargeter = build_retargeter('gr1', fps=1.0)
    left, right = retargeter.arms
    poses = [left.wrist_pose(np.clip(ARM_POSE, left.chain.lower, left.chain.upper)),
             right.wrist_pose(np.clip(ARM_POSE * MIRROR, right.chain.lower,
                                      right.chain.upper))]
    turn = pin.exp3(np.array([0.0, 0.0, -1.5]))  # the same turn of both hands in the world
    goals = [pin.SE3(turn @ T.rotation, T.translation) for T in poses]
    T_goal = goals[0].actInv(goals[1])

    def relative_error(wrists: list[pin.SE3]) -> float:
        return rotation_angle(wrists[0].actInv(wrists[1]).rotation, T_goal.rotation)

    alone = [_solve(retargeter, side, goal) for side, goal in enumerate(goals)]
    for _ in range(4):
        retargeter._solve_together(goals, [None, None], 1.0)
    together = [arm.wrist_pose(arm.u) for arm in retargeter.arms]
    assert relative_error(alone) > np.radians(10.0)
    assert relative_error(together) < min(np.radians(4.0), relative_error(alone) / 4)
    # Still near their goals' positions: the relative pose does not buy the turn with reach.
    for wrist, goal in zip(together, goals, strict=True):
        assert np.linalg.norm(wrist.translation - goal.translation) < 0.03
