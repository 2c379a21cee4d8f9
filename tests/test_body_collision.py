"""A humanoid's arms against its body: hull distances and their Jacobians, the barrier in the
arm IK, and the same clearance in the MuJoCo scene."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.errors import ConfigError, RobotModelError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_ros.retarget import build_retargeter
from handx_ros.retarget.body_collision import ArmBodyCollision, BodyPairExclusion
from handx_ros.retarget.retargeter import RetargetConfig
from handx_ros.retarget.trajectory import RobotTrajectory
from handx_ros.sim.evaluate import simulate
from handx_ros.sim.scene import build_scene

# Human wrists (world: x right, y forward, z up, metres): the left hand out of the way, the
# right one 15 cm right of the midline, 25 cm forward, 30 cm below the shoulders, turned a
# quarter about the vertical. The free IK reaches it with the right upper arm rolled 2 cm
# into the torso.
R_WORLD_WRIST = np.stack([np.eye(3), axis_angle_to_matrix(np.array([0.0, 0.0, -np.pi / 2]))])
P_WORLD_WRIST = np.array([[-0.2, 0.3, 1.1], [0.15, 0.25, 1.1]])
# The same wrist 30 cm further back, behind the chest: the hand would have to be in the torso.
P_WORLD_INSIDE = P_WORLD_WRIST - np.array([[0.0, 0.0, 0.0], [0.0, 0.3, 0.0]])
BODY = ('torso_link', 'pelvis', 'pelvis_contour_link', 'head_link', 'logo_link')


@pytest.fixture(scope='module')
def retargeters():
    return (build_retargeter('g1_hands', RetargetConfig(body_collision=False)),
            build_retargeter('g1_hands'))


@pytest.fixture(scope='module')
def right_arm(retargeters):
    return retargeters[1].arms[1]


def _solve(retargeter, p_world_wrist: np.ndarray = P_WORLD_WRIST):
    """The right arm's first frame for the test wrists, the hand at its neutral pose: joints
    and wrist error."""
    arm = retargeter.arms[1]
    arm.reset()
    u, _, error, _ = arm.solve(retargeter.wrist_targets(R_WORLD_WRIST, p_world_wrist)[1],
                               retargeter.hands[1].chain.neutral())
    return u, error


def test_arm_and_body_pairs(right_arm):
    body = right_arm.body
    names = set(body.pair_names)
    assert ('right_shoulder_yaw_link_0', 'torso_link_0') in names
    assert ('right_hand_palm_link_0', 'pelvis_contour_link_0') in names
    assert ('right_hand_thumb_2_link_0', 'torso_link_0') in names  # fingers too
    # The first shoulder links sit on the torso; the other arm is not the body.
    assert body.excluded[('right_shoulder_pitch_link_0', 'torso_link_0')] == \
        BodyPairExclusion.MOUNT
    assert not any(b.startswith(('left_shoulder', 'left_elbow', 'left_wrist', 'left_hand'))
                   for _, b in names)
    # At rest the upper arm hangs 9 mm from the torso's hull: outside the 5 mm margin.
    u = right_arm.chain.neutral()
    d = dict(zip(body.pair_names, body.distances(u), strict=True))
    assert d[('right_shoulder_yaw_link_0', 'torso_link_0')] == pytest.approx(0.0092, abs=5e-4)
    assert body.min_distance(u) > body.margin_m
    r, A = body.residuals(u)
    assert r.size == 0 and A.shape == (0, 7)


def test_distance_jacobian_matches_finite_differences(right_arm):
    body, chain = right_arm.body, right_arm.chain
    rng = np.random.default_rng(5)
    h = 1e-6
    for _ in range(3):
        u = chain.clip(chain.neutral() + rng.normal(scale=0.4, size=chain.nu))
        d, A = body.distances_and_jacobian(u)
        numeric = np.zeros_like(A)
        for k in range(chain.nu):
            e = np.zeros(chain.nu)
            e[k] = h
            numeric[:, k] = (body.distances(u + e) - body.distances(u - e)) / (2 * h)
        np.testing.assert_allclose(d, body.distances(u))
        np.testing.assert_allclose(A, numeric, atol=1e-6)


def test_barrier_residuals_are_the_pairs_within_the_margin(right_arm):
    body, chain = right_arm.body, right_arm.chain
    u = chain.neutral()
    u[1] = 0.3  # right shoulder roll towards the body: the upper arm into the torso
    d, A = body.distances_and_jacobian(u)
    inside = d < body.margin_m
    assert inside.any() and d.min() < 0.0
    for _ in range(2):  # the second call reuses what the first measured
        r, J = body.residuals(u)
        np.testing.assert_allclose(np.sort(r), np.sort(10.0 * (body.margin_m - d[inside])))
        assert J.shape == (inside.sum(), chain.nu)
    order = np.argsort(r)
    np.testing.assert_allclose(J[order], -10.0 * A[inside][np.argsort(
        10.0 * (body.margin_m - d[inside]))], atol=1e-9)


def test_arm_ik_keeps_the_upper_arm_out_of_the_torso(retargeters, right_arm):
    plain, safe = retargeters
    u_plain, error_plain = _solve(plain)
    u_safe, error_safe = _solve(safe)
    body = right_arm.body
    # The free IK places the palm exactly, with the upper arm 2 cm into the torso ...
    assert error_plain < 1e-3 and body.min_distance(u_plain) < -0.015
    worst = body.pair_names[int(np.argmin(body.distances(u_plain)))]
    assert worst == ('right_shoulder_yaw_link_0', 'torso_link_0')
    # ... the barrier swings the elbow out instead: as exact, and clear of the body.
    assert error_safe < 1e-3 and body.min_distance(u_safe) >= -1e-4


def test_a_target_inside_the_body_is_missed_not_penetrated(retargeters, right_arm):
    u, error = _solve(retargeters[1], P_WORLD_INSIDE)
    assert right_arm.body.min_distance(u) >= -1e-4
    # Missed: beyond the reach knee, where the wrist starts to tilt to come nearer (here
    # 18 mm from the target, the palm turned). A target out of reach by more than
    # reach_tolerance_m is flagged (test_bimanual, test_gate).
    assert error > retargeters[1].config.arm_reach_knee_m


def _hold(retargeter, u_right_arm: np.ndarray) -> RobotTrajectory:
    """The neutral pose with the right arm at ``u_right_arm``, held for 12 frames."""
    names = retargeter.joint_names
    qpos = retargeter.neutral_qpos()
    for name, value in zip(retargeter.arms[1].chain.joint_names, u_right_arm, strict=True):
        qpos[names.index(name)] = value
    return RobotTrajectory(robot='g1_hands', fps=30.0, joint_names=names,
                           qpos=np.tile(qpos, (12, 1)))


def test_mujoco_sees_the_same_clearance(retargeters):
    scene = build_scene('g1_hands')
    for retargeter, touches in zip(retargeters, (True, False), strict=True):
        result = simulate(scene, _hold(retargeter, _solve(retargeter)[0]))
        pairs = {(c.a, c.b) for frame in result.contacts for c in frame}
        arm_body = {p for p in pairs if set(p) & set(BODY)}
        assert bool(arm_body) == touches, arm_body


def test_bad_settings_are_refused(right_arm):
    joints = right_arm.chain.joint_names
    with pytest.raises(ConfigError, match='margin_m'):
        ArmBodyCollision(right_arm.chain, joints, margin_m=0.0)
    with pytest.raises(ConfigError, match='weight'):
        ArmBodyCollision(right_arm.chain, joints, weight=float('nan'))
    with pytest.raises(RobotModelError, match='elbow_jiont'):
        ArmBodyCollision(right_arm.chain, ['right_elbow_jiont'])
