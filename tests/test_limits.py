"""Tests for handx_gen.hand.limits: anatomical frames, angles and joint limits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from handx_gen.errors import HandModelError
from handx_gen.hand.kinematics import forward_kinematics, mirror_axis_angle
from handx_gen.hand.limits import (
    JOINT_RANGES,
    POSE_JOINT_NAMES,
    anatomical_bounds,
    anatomical_to_pose,
    clamp_to_limits,
    joint_frames,
    limit_violation,
    pose_to_anatomical,
)
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import KEYPOINT_FROM_MANO_JOINT, HandSide

SIDES = [HandSide.RIGHT, HandSide.LEFT]
DEG = math.pi / 180.0
ROW = {name: i for i, name in enumerate(POSE_JOINT_NAMES)}
PALM_NORMAL = np.array([0.0, -1.0, 0.0])  # canonical frame, both hands at rest


def _random_poses(rng: np.random.Generator, n: int, max_angle: float = 3.0) -> np.ndarray:
    """(n, 15, 3) rotation vectors with angles uniform in [0, max_angle] (< pi)."""
    axes = rng.normal(size=(n, 15, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return axes * rng.uniform(0.0, max_angle, size=(n, 15, 1))


def _fk(hand_pose: np.ndarray, skeleton) -> np.ndarray:
    return forward_kinematics(np.zeros(3), hand_pose, np.zeros(3), skeleton)


def _fist_angles() -> np.ndarray:
    """A closed fist in anatomical angles, hand-chosen from typical grasp postures."""
    angles = np.zeros((15, 3))
    for finger in ('index', 'middle', 'ring', 'little'):
        angles[ROW[f'{finger}1'], 0] = 80 * DEG
        angles[ROW[f'{finger}2'], 0] = 100 * DEG
        angles[ROW[f'{finger}3'], 0] = 60 * DEG
    angles[ROW['index1'], 1] = -5 * DEG  # fingers pressed together
    angles[ROW['little1'], 1] = -10 * DEG
    angles[ROW['thumb1']] = (30 * DEG, 35 * DEG, -20 * DEG)
    angles[ROW['thumb2'], 0] = 40 * DEG
    angles[ROW['thumb3'], 0] = 50 * DEG
    return angles


def test_ranges_table_is_complete_and_ordered():
    assert tuple(JOINT_RANGES) == POSE_JOINT_NAMES
    assert len(JOINT_RANGES) == 15
    bounds = anatomical_bounds()
    assert bounds.lower.shape == bounds.upper.shape == (15, 3)
    assert np.all(bounds.lower < bounds.upper)
    assert np.all(np.abs(bounds.lower) < math.pi) and np.all(np.abs(bounds.upper) < math.pi)
    # The literature ranges: PIP flexes further than MCP, MCP hyperextends, PIP does not.
    assert JOINT_RANGES['index2'].flexion[1] > JOINT_RANGES['index1'].flexion[1]
    assert JOINT_RANGES['index1'].flexion[0] < 0.0
    assert JOINT_RANGES['index2'].flexion[0] == 0.0
    # The middle finger abducts less than the index finger.
    assert JOINT_RANGES['middle1'].abduction[1] < JOINT_RANGES['index1'].abduction[1]
    # anatomical_bounds returns copies.
    bounds.lower[:] = 0.0
    assert anatomical_bounds().lower[0, 0] < 0.0


@pytest.mark.parametrize('side', SIDES)
def test_frames_are_orthonormal_with_twist_along_the_bone(side):
    skeleton = default_skeleton(side)
    frames = joint_frames(skeleton)
    assert frames.shape == (15, 3, 3)
    np.testing.assert_allclose(np.swapaxes(frames, -1, -2) @ frames,
                               np.broadcast_to(np.eye(3), (15, 3, 3)), atol=1e-12)
    kp = skeleton.keypoints_rest()
    sign = 1.0 if side == HandSide.RIGHT else -1.0
    # index1 twist axis is the index1 -> index2 bone direction (negated for the left hand).
    bone = kp[KEYPOINT_FROM_MANO_JOINT[2]] - kp[KEYPOINT_FROM_MANO_JOINT[1]]
    np.testing.assert_allclose(frames[ROW['index1'], :, 2], sign * bone / np.linalg.norm(bone),
                               atol=1e-12)


def test_left_frames_are_mirrored_axial_vectors_of_the_right():
    right = joint_frames(default_skeleton(HandSide.RIGHT))
    left = joint_frames(default_skeleton(HandSide.LEFT))
    mirror = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left, -mirror @ right, atol=1e-12)


@pytest.mark.parametrize('side', SIDES)
def test_pose_angles_pose_round_trip(side):
    rng = np.random.default_rng(0)
    skeleton = default_skeleton(side).scaled(1.1)
    poses = _random_poses(rng, 400)
    back = anatomical_to_pose(pose_to_anatomical(poses, skeleton), skeleton)
    # Rotation angles < pi: the axis-angle vectors themselves come back.
    np.testing.assert_allclose(back, poses, atol=1e-10)


def test_equivalent_rotation_vectors_give_equal_angles():
    rng = np.random.default_rng(5)
    skeleton = default_skeleton()
    poses = _random_poses(rng, 200, max_angle=3.0)
    angle = np.linalg.norm(poses, axis=-1, keepdims=True)
    # The same rotations written with angles above pi: (angle - 2 pi) about the same axis.
    long_way = poses / np.maximum(angle, 1e-12) * (angle - 2.0 * math.pi)
    angles = pose_to_anatomical(long_way, skeleton)
    np.testing.assert_allclose(angles, pose_to_anatomical(poses, skeleton), atol=1e-10)
    assert np.all(np.abs(angles[..., 2]) <= math.pi)


@pytest.mark.parametrize('side', SIDES)
def test_angles_pose_angles_round_trip_beyond_the_limits(side):
    rng = np.random.default_rng(1)
    skeleton = default_skeleton(side)
    bounds = anatomical_bounds()
    angles = rng.uniform(1.5 * bounds.lower, 1.5 * bounds.upper, size=(400, 15, 3))
    np.testing.assert_allclose(pose_to_anatomical(anatomical_to_pose(angles, skeleton), skeleton),
                               angles, atol=1e-10)


@pytest.mark.parametrize('side', SIDES)
def test_pure_index_flexion_hand_computed(side):
    skeleton = default_skeleton(side)
    kp_rest = skeleton.keypoints_rest()
    mcp, pip, tip = kp_rest[5], kp_rest[6], kp_rest[8]
    bone = (pip - mcp) / np.linalg.norm(pip - mcp)
    # Positive flexion moves the tip towards the palm normal: axis = bone x palm normal.
    axis = np.cross(bone, PALM_NORMAL)
    axis /= np.linalg.norm(axis)
    hand_pose = np.zeros((15, 3))
    hand_pose[ROW['index1']] = 30 * DEG * axis
    angles = pose_to_anatomical(hand_pose, skeleton)
    expected = np.zeros((15, 3))
    expected[ROW['index1'], 0] = 30 * DEG
    np.testing.assert_allclose(angles, expected, atol=1e-12)
    np.testing.assert_allclose(anatomical_to_pose(expected, skeleton), hand_pose, atol=1e-12)
    # The straight index finger swings 30 deg about the MCP: the tip drops by L sin(30 deg)
    # towards the palm side (-y) and nothing else moves.
    moved = _fk(hand_pose, skeleton)
    length = np.linalg.norm(tip - mcp)
    assert moved[8, 1] - tip[1] == pytest.approx(-0.5 * length, abs=1e-12)
    np.testing.assert_allclose(moved[9:], kp_rest[9:], atol=1e-15)


@pytest.mark.parametrize('side', SIDES)
def test_thumb_and_abduction_directions(side):
    skeleton = default_skeleton(side)
    rest = skeleton.keypoints_rest()

    def tip_shift(row: int, component: int, keypoint: int) -> np.ndarray:
        angles = np.zeros((15, 3))
        angles[row, component] = 20 * DEG
        return _fk(anatomical_to_pose(angles, skeleton), skeleton)[keypoint] - rest[keypoint]

    # Thumb is towards +z for both hands; positive abduction spreads away from the middle
    # finger, and the middle finger's own positive abduction is towards the thumb.
    assert tip_shift(ROW['index1'], 1, 8)[2] > 0.0
    assert tip_shift(ROW['middle1'], 1, 12)[2] > 0.0
    assert tip_shift(ROW['ring1'], 1, 16)[2] < 0.0
    assert tip_shift(ROW['little1'], 1, 20)[2] < 0.0
    # Thumb CMC: flexion across the palm towards the little finger (-z), in the palm plane;
    # abduction out of the palm on its palmar side (-y).
    shift = tip_shift(ROW['thumb1'], 0, 4)
    assert shift[2] < 0.0 and abs(shift[1]) < 0.1 * abs(shift[2])
    shift = tip_shift(ROW['thumb1'], 1, 4)
    assert shift[1] < 0.0 and abs(shift[2]) < abs(shift[1])
    # Thumb IP flexion curls towards the palm and across it.
    shift = tip_shift(ROW['thumb3'], 0, 4)
    assert shift[1] < 0.0 and shift[2] < 0.0


@pytest.mark.parametrize('side', SIDES)
def test_positive_twist_turns_the_palmar_side_radially(side):
    skeleton = default_skeleton(side)
    angles = np.zeros((15, 3))
    angles[ROW['index1'], 2] = 20 * DEG
    rotation = axis_angle_to_matrix(anatomical_to_pose(angles, skeleton)[ROW['index1']])
    turned = rotation @ PALM_NORMAL
    assert turned[2] == pytest.approx(math.sin(20 * DEG), abs=0.01)  # towards the thumb (+z)


def test_angles_are_equal_for_mirrored_poses():
    rng = np.random.default_rng(2)
    right = default_skeleton(HandSide.RIGHT)
    poses = _random_poses(rng, 300)
    angles_right = pose_to_anatomical(poses, right)
    angles_left = pose_to_anatomical(mirror_axis_angle(poses), right.mirrored())
    np.testing.assert_allclose(angles_left, angles_right, atol=1e-12)
    np.testing.assert_allclose(limit_violation(mirror_axis_angle(poses), right.mirrored()),
                               limit_violation(poses, right), atol=1e-12)


@pytest.mark.parametrize('side', SIDES)
def test_zero_and_fist_poses_are_within_limits(side):
    skeleton = default_skeleton(side)
    bounds = anatomical_bounds()
    assert np.all(bounds.lower <= 0.0) and np.all(bounds.upper >= 0.0)
    np.testing.assert_array_equal(limit_violation(np.zeros((15, 3)), skeleton), np.zeros(15))
    fist = anatomical_to_pose(_fist_angles(), skeleton)
    np.testing.assert_array_equal(limit_violation(fist, skeleton), np.zeros(15))
    # The fist really is closed: every fingertip ends below the palm (-y) and near the wrist.
    kp = _fk(fist, skeleton)
    rest = skeleton.keypoints_rest()
    for tip in (8, 12, 16, 20):
        assert kp[tip, 1] < -0.02
        assert np.linalg.norm(kp[tip]) < 0.6 * np.linalg.norm(rest[tip])


@pytest.mark.parametrize('side', SIDES)
def test_backwards_bent_finger_violates_by_the_excess(side):
    skeleton = default_skeleton(side)
    kp_rest = skeleton.keypoints_rest()
    bone = kp_rest[7] - kp_rest[6]  # index PIP -> DIP
    axis = np.cross(bone / np.linalg.norm(bone), PALM_NORMAL)
    axis /= np.linalg.norm(axis)
    hand_pose = np.zeros((15, 3))
    hand_pose[ROW['index2']] = -40 * DEG * axis  # PIP bent 40 deg backwards
    violation = limit_violation(hand_pose, skeleton)
    expected = np.zeros(15)
    expected[ROW['index2']] = 40 * DEG  # the PIP range starts at 0
    np.testing.assert_allclose(violation, expected, atol=1e-12)
    clamped = clamp_to_limits(hand_pose, skeleton)
    np.testing.assert_allclose(clamped, np.zeros((15, 3)), atol=1e-12)


@pytest.mark.parametrize('side', SIDES)
def test_clamp_gives_zero_violation_and_keeps_valid_joints(side):
    rng = np.random.default_rng(3)
    skeleton = default_skeleton(side)
    poses = _random_poses(rng, 300, max_angle=2.5).reshape(3, 100, 15, 3)
    violation = limit_violation(poses, skeleton)
    assert violation.shape == (3, 100, 15)
    assert np.mean(violation > 0) > 0.5  # random poses mostly violate
    clamped = clamp_to_limits(poses, skeleton)
    assert clamped.shape == poses.shape
    assert np.max(limit_violation(clamped, skeleton)) < 1e-12
    inside = violation == 0.0
    assert np.any(inside)
    np.testing.assert_allclose(clamped[inside], poses[inside], atol=1e-10)


def test_torch_matches_numpy_and_is_differentiable():
    rng = np.random.default_rng(4)
    skeleton = default_skeleton(HandSide.LEFT)
    poses = _random_poses(rng, 50, max_angle=2.0)
    tensor = torch.tensor(poses, dtype=torch.float64, requires_grad=True)
    angles = pose_to_anatomical(tensor, skeleton)
    assert isinstance(angles, torch.Tensor) and angles.dtype == torch.float64
    np.testing.assert_allclose(angles.detach().numpy(), pose_to_anatomical(poses, skeleton),
                               atol=1e-12)
    back = anatomical_to_pose(angles, skeleton)
    np.testing.assert_allclose(back.detach().numpy(), poses, atol=1e-10)
    loss = limit_violation(tensor, skeleton).sum()
    loss.backward()
    assert torch.all(torch.isfinite(tensor.grad)) and tensor.grad.abs().sum() > 0
    # At the rest pose the angles are the rotation vector's components on the frame columns,
    # so the gradient of a flexion angle is its flexion axis.
    frames = joint_frames(skeleton)
    zero = torch.zeros(15, 3, dtype=torch.float64, requires_grad=True)
    pose_to_anatomical(zero, skeleton)[ROW['ring2'], 0].backward()
    np.testing.assert_allclose(zero.grad[ROW['ring2']].numpy(), frames[ROW['ring2'], :, 0],
                               atol=1e-9)
    clamped = clamp_to_limits(tensor.detach().float(), skeleton)
    assert clamped.dtype == torch.float32
    assert float(limit_violation(clamped.double(), skeleton).max()) < 1e-5


def test_invalid_inputs_raise_hand_model_error():
    skeleton = default_skeleton()
    with pytest.raises(HandModelError, match=r'\(\.\.\., 15, 3\)'):
        pose_to_anatomical(np.zeros((15, 2)), skeleton)
    with pytest.raises(HandModelError, match='non-finite'):
        limit_violation(np.full((15, 3), np.nan), skeleton)
    with pytest.raises(HandModelError, match='HandSkeleton'):
        anatomical_to_pose(np.zeros((15, 3)), 'right')
    with pytest.raises(HandModelError, match='HandSkeleton'):
        joint_frames(None)


def test_synthesis_bounds_keep_the_average_thumb_inside_the_reachable_ranges():
    from handx_gen.hand.limits import anatomical_bounds, synthesis_bounds

    reach, synth = anatomical_bounds(), synthesis_bounds()
    thumb = [POSE_JOINT_NAMES.index(name) for name in ('thumb2', 'thumb3')]
    others = [i for i in range(len(POSE_JOINT_NAMES)) if i not in thumb]
    np.testing.assert_array_equal(synth.lower[others], reach.lower[others])
    np.testing.assert_array_equal(synth.upper[others], reach.upper[others])
    assert np.all(synth.lower[thumb] >= reach.lower[thumb])
    assert np.all(synth.upper[thumb] <= reach.upper[thumb])
    assert np.degrees(synth.upper[thumb[0], 0]) == pytest.approx(60.0)  # MCP flexion
    assert np.degrees(reach.upper[thumb[0], 0]) == pytest.approx(90.0)
