"""Tests for handx_gen.data.smplh: the 52-joint layout, body FK and UnifiedMotion."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.data import smplh
from handx_gen.data.smplh import (
    LEFT_HAND_SLICE,
    LEFT_WRIST,
    RIGHT_HAND_SLICE,
    RIGHT_WRIST,
    SMPLH_JOINT_NAMES,
    SMPLH_PARENTS,
    SMPLH_REST_JOINTS_M,
    UnifiedMotion,
    body_forward_kinematics,
    from_bimanual,
    to_bimanual,
    wrist_global_rotations,
)
from handx_gen.errors import DataSourceError
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import MANO_JOINT_NAMES, MANO_PARENTS, HandSide
from handx_gen.motion import BimanualMotion

HALF_PI = np.pi / 2
R_Y90 = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # x -> -z, z -> x
R_Z90 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # x -> y


def _rest(num_frames: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((num_frames, 52, 3)), np.zeros((num_frames, 3))


def _index(name: str) -> int:
    return SMPLH_JOINT_NAMES.index(name)


def test_layout_names_parents_and_constants() -> None:
    assert len(SMPLH_JOINT_NAMES) == 52 and len(SMPLH_PARENTS) == 52
    assert SMPLH_JOINT_NAMES[LEFT_WRIST] == 'left_wrist'
    assert SMPLH_JOINT_NAMES[RIGHT_WRIST] == 'right_wrist'
    assert (LEFT_HAND_SLICE.start, LEFT_HAND_SLICE.stop) == (22, 37)
    assert (RIGHT_HAND_SLICE.start, RIGHT_HAND_SLICE.stop) == (37, 52)
    assert all(SMPLH_PARENTS[j] < j for j in range(1, 52)) and SMPLH_PARENTS[0] == -1
    assert SMPLH_PARENTS[_index('right_elbow')] == _index('right_shoulder')
    assert SMPLH_PARENTS[_index('left_collar')] == _index('spine3')
    # Hand joints follow MANO's order and tree (MANO calls the pinky 'little').
    for side, hand_slice, wrist in (('left', LEFT_HAND_SLICE, LEFT_WRIST),
                                    ('right', RIGHT_HAND_SLICE, RIGHT_WRIST)):
        for k in range(1, 16):
            joint = hand_slice.start + k - 1
            mano_name = MANO_JOINT_NAMES[k].replace('little', 'pinky')
            assert SMPLH_JOINT_NAMES[joint] == f'{side}_{mano_name}'
            parent = wrist if MANO_PARENTS[k] == 0 else hand_slice.start + MANO_PARENTS[k] - 1
            assert SMPLH_PARENTS[joint] == parent


def test_rest_skeleton_is_a_plausible_t_pose() -> None:
    rest = SMPLH_REST_JOINTS_M
    assert rest[_index('head'), 1] > rest[_index('neck'), 1] > rest[0, 1]  # Y up
    assert rest[LEFT_WRIST, 0] > 0.5 and rest[RIGHT_WRIST, 0] < -0.5  # arms along +-x
    # Left and right are near mirror images.
    np.testing.assert_allclose(rest[LEFT_WRIST, 0], -rest[RIGHT_WRIST, 0], atol=0.01)


def test_rest_pose_wrists_are_rest_joints_plus_trans() -> None:
    poses, trans = _rest(3)
    trans[:] = [0.1, -0.2, 0.3]
    body = body_forward_kinematics(poses, trans)
    np.testing.assert_allclose(body.positions_m, SMPLH_REST_JOINTS_M + trans[:, None], atol=1e-12)
    np.testing.assert_allclose(wrist_global_rotations(poses), np.broadcast_to(np.eye(3),
                               (3, 2, 3, 3)), atol=1e-12)


def test_right_elbow_bent_90_deg_about_y() -> None:
    poses, trans = _rest(1)
    poses[0, _index('right_elbow')] = [0.0, HALF_PI, 0.0]
    rotations = wrist_global_rotations(poses)[0]
    np.testing.assert_allclose(rotations[HandSide.RIGHT], R_Y90, atol=1e-12)
    np.testing.assert_allclose(rotations[HandSide.LEFT], np.eye(3), atol=1e-12)
    # The forearm swings: (dx, dy, dz) -> (dz, dy, -dx) about the elbow.
    elbow, wrist = SMPLH_REST_JOINTS_M[_index('right_elbow')], SMPLH_REST_JOINTS_M[RIGHT_WRIST]
    dx, dy, dz = wrist - elbow
    expected = elbow + np.array([dz, dy, -dx])
    body = body_forward_kinematics(poses, trans)
    np.testing.assert_allclose(body.positions_m[0, RIGHT_WRIST], expected, atol=1e-12)
    np.testing.assert_allclose(body.positions_m[0, LEFT_WRIST], SMPLH_REST_JOINTS_M[LEFT_WRIST],
                               atol=1e-12)


def test_root_rotation_turns_both_wrists() -> None:
    poses, trans = _rest(1)
    poses[0, 0] = [0.0, 0.0, HALF_PI]
    trans[0] = [1.0, 2.0, 3.0]
    rotations = wrist_global_rotations(poses)[0]
    np.testing.assert_allclose(rotations, np.stack([R_Z90, R_Z90]), atol=1e-12)
    pelvis = SMPLH_REST_JOINTS_M[0]
    for wrist in (LEFT_WRIST, RIGHT_WRIST):
        x, y, z = SMPLH_REST_JOINTS_M[wrist] - pelvis
        expected = pelvis + trans[0] + np.array([-y, x, z])
        got = body_forward_kinematics(poses, trans).positions_m[0, wrist]
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_wrist_rotation_composes_the_chain_and_ignores_other_joints() -> None:
    rng = np.random.default_rng(0)
    poses = rng.normal(scale=0.6, size=(4, 52, 3))
    rotations = wrist_global_rotations(poses)
    local = axis_angle_to_matrix(poses)
    for side, chain in enumerate(smplh.BODY_CHAIN_TO_WRIST):
        expected = np.broadcast_to(np.eye(3), (4, 3, 3))
        for joint in chain:
            expected = expected @ local[:, joint]
        np.testing.assert_allclose(rotations[:, side], expected, atol=1e-12)
        # FK's global rotation agrees with the chain product.
        body = body_forward_kinematics(poses, np.zeros((4, 3)))
        np.testing.assert_allclose(body.rotations[:, chain[-1]], expected, atol=1e-12)
    changed = poses.copy()
    off_chain = [_index(n) for n in ('left_hip', 'right_knee', 'neck', 'head', 'left_ankle')]
    changed[:, off_chain] = rng.normal(size=(4, len(off_chain), 3))
    changed[:, 22:] = rng.normal(size=(4, 30, 3))
    np.testing.assert_allclose(wrist_global_rotations(changed), rotations, atol=1e-12)


def test_to_bimanual_places_hands_on_the_body_wrists() -> None:
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.3, size=(5, 52, 3))
    trans = rng.normal(scale=0.5, size=(5, 3))
    unified = UnifiedMotion(fps=30.0, poses=poses, trans=trans, source='test')
    motion = to_bimanual(unified)
    assert motion.fps == 30.0 and motion.num_frames == 5
    body = body_forward_kinematics(poses, trans)
    np.testing.assert_allclose(motion.keypoints[:, 0, 0], body.positions_m[:, LEFT_WRIST],
                               atol=1e-5)
    np.testing.assert_allclose(motion.keypoints[:, 1, 0], body.positions_m[:, RIGHT_WRIST],
                               atol=1e-5)
    np.testing.assert_allclose(axis_angle_to_matrix(motion.global_orient),
                               wrist_global_rotations(poses), atol=1e-10)
    np.testing.assert_array_equal(motion.hand_pose[:, 0], poses[:, 22:37])
    np.testing.assert_array_equal(motion.hand_pose[:, 1], poses[:, 37:52])
    for side in HandSide:
        rest_wrist = default_skeleton(side).joints_rest[0]
        np.testing.assert_allclose(motion.transl[:, side],
                                   body.positions_m[:, smplh.WRIST_JOINTS[side]] - rest_wrist,
                                   atol=1e-12)


def test_bimanual_round_trip() -> None:
    rng = np.random.default_rng(2)
    skeletons = (default_skeleton(HandSide.LEFT, 0.17), default_skeleton(HandSide.RIGHT, 0.2))
    motion = BimanualMotion.from_mano(
        24.0, rng.normal(size=(6, 2, 3)), rng.normal(scale=0.3, size=(6, 2, 15, 3)),
        rng.normal(scale=0.4, size=(6, 2, 3)), skeletons=skeletons)
    unified = from_bimanual(motion, skeletons=skeletons)
    assert not unified.has_body and unified.fps == 24.0
    back = to_bimanual(unified, skeletons=skeletons)
    np.testing.assert_allclose(axis_angle_to_matrix(back.global_orient),
                               axis_angle_to_matrix(motion.global_orient), atol=1e-10)
    np.testing.assert_array_equal(back.hand_pose, motion.hand_pose)
    np.testing.assert_allclose(back.transl, motion.transl, atol=1e-12)
    np.testing.assert_allclose(back.keypoints, motion.keypoints, atol=1e-5)
    # Without the skeletons the wrist keypoints (float32) place the hands.
    loose = to_bimanual(from_bimanual(motion), skeletons=skeletons)
    np.testing.assert_allclose(loose.transl, motion.transl, atol=1e-6)


def test_unified_motion_validates_and_copies() -> None:
    poses, trans = _rest(2)
    with pytest.raises(DataSourceError, match=r'\(T>=1, 52, 3\)'):
        UnifiedMotion(fps=30.0, poses=np.zeros((2, 51, 3)), trans=trans)
    with pytest.raises(DataSourceError, match='trans'):
        UnifiedMotion(fps=30.0, poses=poses, trans=np.zeros((3, 3)))
    with pytest.raises(DataSourceError, match='fps'):
        UnifiedMotion(fps=0.0, poses=poses, trans=trans)
    with pytest.raises(DataSourceError, match='wrist_positions_m'):
        UnifiedMotion(fps=30.0, poses=poses, trans=trans, has_body=False)
    bad = poses.copy()
    bad[1, 5, 0] = np.nan
    with pytest.raises(DataSourceError, match='non-finite'):
        UnifiedMotion(fps=30.0, poses=bad, trans=trans)
    unified = UnifiedMotion(fps=30.0, poses=poses, trans=trans)
    poses[0, 0, 0] = 1.0
    assert unified.poses[0, 0, 0] == 0.0
    with pytest.raises(ValueError):
        unified.poses[0, 0, 0] = 1.0
