"""Tests for handx_gen.hand.kinematics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform

from handx_gen.errors import HandModelError
from handx_gen.hand import kinematics
from handx_gen.hand.kinematics import (
    forward_kinematics,
    forward_kinematics_matrices_torch,
    forward_kinematics_torch,
    mirror_axis_angle,
    mirror_points,
)
from handx_gen.hand.skeleton import HandSkeleton, default_skeleton
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    MANO_PARENTS,
    TIP_PARENT_MANO_JOINT,
    HandSide,
    keypoints_from_mano_joints,
)

KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def _random_pose(rng: np.random.Generator, batch: tuple[int, ...]):
    global_orient = rng.normal(size=batch + (3,))
    hand_pose = rng.normal(scale=0.6, size=batch + (15, 3))
    transl = rng.normal(scale=0.3, size=batch + (3,))
    return global_orient, hand_pose, transl


def _shifted_skeleton(offset: tuple[float, float, float]) -> HandSkeleton:
    base = default_skeleton(hand_length_m=0.19)
    return HandSkeleton(HandSide.RIGHT, base.joints_rest + offset, base.tips_rest + offset)


def test_zero_pose_gives_rest_keypoints_plus_transl():
    skeleton = _shifted_skeleton((0.01, -0.02, 0.03))
    transl = np.array([[0.5, -0.25, 1.0], [0.0, 0.0, 0.0]])
    kp = forward_kinematics(np.zeros((2, 3)), np.zeros((2, 15, 3)), transl, skeleton)
    assert kp.shape == (2, 21, 3) and kp.dtype == np.float64
    np.testing.assert_allclose(kp, skeleton.keypoints_rest() + transl[:, None, :], atol=1e-15)


def test_zero_pose_hand_length_is_adult_sized():
    kp = forward_kinematics(np.zeros(3), np.zeros((15, 3)), np.zeros(3), default_skeleton())
    length = np.linalg.norm(kp[KP['middle_tip']] - kp[KP['wrist']])
    assert 0.17 <= length <= 0.20


def test_hand_computed_index_mcp_flexion():
    # +90 deg about +z maps (x, y, z) to (-y, x, z): a finger along -x turns to -y, i.e. curls
    # towards the palm of the right hand. Only index1 (hand_pose row 0) rotates.
    skeleton = default_skeleton()
    hand_pose = np.zeros((15, 3))
    hand_pose[0] = [0.0, 0.0, np.pi / 2]
    transl = np.array([0.1, 0.2, 0.3])
    kp = forward_kinematics(np.zeros(3), hand_pose, transl, skeleton)
    rest = skeleton.keypoints_rest()
    mcp = rest[KP['index_mcp']]
    for name in ('index_pip', 'index_dip', 'index_tip'):
        vx, vy, vz = rest[KP[name]] - mcp
        assert abs(vy) < 1e-12  # the flat default finger lies in the palm plane
        expected = mcp + np.array([-vy, vx, vz]) + transl
        np.testing.assert_allclose(kp[KP[name]], expected, atol=1e-15)
    # The tip now hangs below the MCP by the finger length (about 9.3 cm here).
    finger_length = np.linalg.norm(rest[KP['index_tip']] - mcp)
    drop = (kp[KP['index_mcp']] - kp[KP['index_tip']])[1]
    assert drop == pytest.approx(finger_length * np.cos(np.radians(5.0)), abs=1e-12)
    others = [i for i, n in enumerate(KEYPOINT_NAMES) if n not in
              ('index_pip', 'index_dip', 'index_tip')]
    np.testing.assert_allclose(kp[others], rest[others] + transl, atol=1e-15)


def test_hand_computed_chain_of_two_flexions():
    # index1 and index2 both +90 deg about z: the distal part turns by 180 deg in total,
    # so DIP and tip point back along +x from the PIP.
    skeleton = default_skeleton()
    hand_pose = np.zeros((15, 3))
    hand_pose[0] = hand_pose[1] = [0.0, 0.0, np.pi / 2]
    kp = forward_kinematics(np.zeros(3), hand_pose, np.zeros(3), skeleton)
    rest = skeleton.keypoints_rest()
    pip_rest = rest[KP['index_pip']] - rest[KP['index_mcp']]
    pip = rest[KP['index_mcp']] + [-pip_rest[1], pip_rest[0], pip_rest[2]]
    tip_rel = rest[KP['index_tip']] - rest[KP['index_pip']]
    expected_tip = pip + [-tip_rel[0], -tip_rel[1], tip_rel[2]]  # 180 deg about z
    np.testing.assert_allclose(kp[KP['index_pip']], pip, atol=1e-15)
    np.testing.assert_allclose(kp[KP['index_tip']], expected_tip, atol=1e-15)


def test_root_rotates_about_the_wrist_joint_then_translates():
    skeleton = _shifted_skeleton((0.1, 0.2, -0.3))  # wrist joint away from the origin
    global_orient = np.array([0.3, -1.2, 0.5])
    transl = np.array([-0.4, 0.05, 0.7])
    kp = forward_kinematics(global_orient, np.zeros((15, 3)), transl, skeleton)
    wrist = skeleton.joints_rest[0]
    rot = Rotation.from_rotvec(global_orient).as_matrix()
    expected = wrist + transl + (skeleton.keypoints_rest() - wrist) @ rot.T
    np.testing.assert_allclose(kp, expected, atol=1e-15)
    np.testing.assert_allclose(kp[0], wrist + transl, atol=1e-15)


def test_matches_smplx_rigid_transform():
    # smplx's own chain (the one its MANO layer uses), applied to our skeleton; tips ride on
    # their distal joint through the relative transforms, as a skinned vertex would.
    rng = np.random.default_rng(3)
    skeleton = _shifted_skeleton((0.09, 0.006, 0.005))
    go, hp, tr = _random_pose(rng, (6,))
    kp = forward_kinematics(go, hp, tr, skeleton)

    aa = torch.from_numpy(np.concatenate([go[:, None], hp], axis=1))  # (6, 16, 3)
    rot_mats = torch.from_numpy(Rotation.from_rotvec(aa.reshape(-1, 3).numpy()).as_matrix())
    rot_mats = rot_mats.reshape(6, 16, 3, 3)
    joints = torch.from_numpy(skeleton.joints_rest.copy()).expand(6, 16, 3)
    posed, rel = batch_rigid_transform(rot_mats, joints, torch.tensor(MANO_PARENTS),
                                       dtype=torch.float64)
    rel = rel.numpy()
    tip_parent = list(TIP_PARENT_MANO_JOINT)
    tips = (np.einsum('bnij,nj->bni', rel[:, tip_parent, :3, :3], skeleton.tips_rest)
            + rel[:, tip_parent][:, :, :3, 3])
    expected = keypoints_from_mano_joints(posed.numpy(), tips) + tr[:, None, :]
    np.testing.assert_allclose(kp, expected, atol=1e-14)


def test_numpy_and_torch_agree_on_batched_poses():
    rng = np.random.default_rng(11)
    go, hp, tr = _random_pose(rng, (3, 4))
    skeleton = default_skeleton(HandSide.LEFT, hand_length_m=0.175)
    kp = forward_kinematics(go, hp, tr, skeleton)
    assert kp.shape == (3, 4, 21, 3)
    kp64 = forward_kinematics_torch(*(torch.from_numpy(v) for v in (go, hp, tr)), skeleton)
    assert kp64.dtype == torch.float64 and kp64.shape == (3, 4, 21, 3)
    np.testing.assert_allclose(kp64.numpy(), kp, atol=1e-12)
    kp32 = forward_kinematics_torch(*(torch.from_numpy(v).float() for v in (go, hp, tr)),
                                    skeleton)
    assert kp32.dtype == torch.float32
    np.testing.assert_allclose(kp32.numpy(), kp, atol=1e-6)
    # Batched evaluation equals frame-by-frame evaluation.
    single = forward_kinematics(go[1, 2], hp[1, 2], tr[1, 2], skeleton)
    np.testing.assert_allclose(kp[1, 2], single, atol=1e-15)


def test_leading_dims_broadcast():
    rng = np.random.default_rng(5)
    go, hp, tr = _random_pose(rng, (4,))
    skeleton = default_skeleton()
    kp = forward_kinematics(go[0], hp, tr[:1], skeleton)  # (3,), (4, 15, 3), (1, 3)
    assert kp.shape == (4, 21, 3)
    for i in range(4):
        np.testing.assert_allclose(kp[i], forward_kinematics(go[0], hp[i], tr[0], skeleton),
                                   atol=1e-15)
    kp_t = forward_kinematics_torch(torch.from_numpy(go[0]), torch.from_numpy(hp),
                                    torch.from_numpy(tr[:1]), skeleton)
    np.testing.assert_allclose(kp_t.numpy(), kp, atol=1e-14)


def test_torch_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    go, hp, tr = (torch.tensor(v, requires_grad=True) for v in _random_pose(rng, (2,)))
    skeleton = default_skeleton()
    assert torch.autograd.gradcheck(
        lambda a, b, c: forward_kinematics_torch(a, b, c, skeleton), (go, hp, tr))
    # Also at the rest pose, where the axis-angle Taylor branch is active.
    zeros = (torch.zeros(3, dtype=torch.float64, requires_grad=True),
             torch.zeros(15, 3, dtype=torch.float64, requires_grad=True),
             torch.zeros(3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(
        lambda a, b, c: forward_kinematics_torch(a, b, c, skeleton), zeros)


def test_mirrored_pose_and_skeleton_give_mirrored_keypoints():
    rng = np.random.default_rng(8)
    go, hp, tr = _random_pose(rng, (5,))
    right = default_skeleton(HandSide.RIGHT, hand_length_m=0.19)
    kp_right = forward_kinematics(go, hp, tr, right)
    kp_left = forward_kinematics(mirror_axis_angle(go), mirror_axis_angle(hp), mirror_points(tr),
                                 right.mirrored())
    np.testing.assert_allclose(kp_left, mirror_points(kp_right), atol=1e-14)
    # The default left skeleton is that mirror.
    kp_left_default = forward_kinematics(mirror_axis_angle(go), mirror_axis_angle(hp),
                                         mirror_points(tr), default_skeleton(HandSide.LEFT, 0.19))
    np.testing.assert_allclose(kp_left_default, kp_left, atol=1e-15)


def test_mirror_functions():
    aa = np.array([[0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(mirror_axis_angle(aa), [[0.1, -0.2, -0.3]])
    np.testing.assert_array_equal(mirror_points(aa), [[-0.1, 0.2, 0.3]])
    # Mirroring a rotation is conjugation by the reflection diag(-1, 1, 1).
    rng = np.random.default_rng(4)
    aa = rng.normal(size=(10, 3))
    reflect = np.diag([-1.0, 1.0, 1.0])
    expected = reflect @ Rotation.from_rotvec(aa).as_matrix() @ reflect
    np.testing.assert_allclose(Rotation.from_rotvec(mirror_axis_angle(aa)).as_matrix(), expected,
                               atol=1e-14)
    t = torch.tensor(aa, dtype=torch.float32)
    assert mirror_axis_angle(t).dtype == torch.float32
    np.testing.assert_allclose(mirror_points(t).numpy(), mirror_points(aa), atol=1e-7)
    np.testing.assert_array_equal(mirror_points(mirror_points(aa)), aa)
    with pytest.raises(HandModelError, match=r'got shape \(4,\)'):
        mirror_points(np.zeros(4))


@pytest.mark.parametrize(('go_shape', 'hp_shape', 'tr_shape', 'pattern'), [
    ((3,), (45,), (3,), r'hand_pose .*got shape \(45,\); reshape'),
    ((3,), (16, 3), (3,), r'hand_pose .*got shape \(16, 3\)'),
    ((4,), (15, 3), (3,), r'global_orient .*got shape \(4,\)'),
    ((3,), (15, 3), (2,), r'transl .*got shape \(2,\)'),
    ((2, 3), (3, 15, 3), (3,), r'do not broadcast: global_orient \(2, 3\)'),
])
def test_bad_shapes_raise_naming_the_shape(go_shape, hp_shape, tr_shape, pattern):
    skeleton = default_skeleton()
    with pytest.raises(HandModelError, match=pattern):
        forward_kinematics(np.zeros(go_shape), np.zeros(hp_shape), np.zeros(tr_shape), skeleton)
    with pytest.raises(HandModelError, match=pattern):
        forward_kinematics_torch(torch.zeros(go_shape), torch.zeros(hp_shape),
                                 torch.zeros(tr_shape), skeleton)


def test_bad_arguments():
    with pytest.raises(HandModelError, match='HandSkeleton'):
        forward_kinematics(np.zeros(3), np.zeros((15, 3)), np.zeros(3), 'right')
    with pytest.raises(HandModelError, match='forward_kinematics_torch'):
        forward_kinematics(torch.zeros(3), np.zeros((15, 3)), np.zeros(3), default_skeleton())


def test_joint_world_rotations_chain_and_agree_with_fk():
    """Each joint's world rotation turns its rest bone into the posed bone FK produces."""
    rng = np.random.default_rng(5)
    skeleton = default_skeleton(HandSide.LEFT)
    global_orient = rng.normal(scale=0.7, size=(4, 3))
    hand_pose = rng.normal(scale=0.4, size=(4, 15, 3))
    world = kinematics.joint_world_rotations(global_orient, hand_pose)  # (4, 16, 3, 3)
    assert world.shape == (4, 16, 3, 3)
    keypoints = kinematics.forward_kinematics(global_orient, hand_pose, np.zeros(3), skeleton)
    rest = skeleton.keypoints_rest()
    for joint, kp in enumerate(KEYPOINT_FROM_MANO_JOINT):
        children = [c for c, parent in enumerate(KEYPOINT_PARENTS) if parent == kp]
        for child in children:
            posed = keypoints[:, child] - keypoints[:, kp]
            expected = np.einsum('bij,j->bi', world[:, joint], rest[child] - rest[kp])
            np.testing.assert_allclose(posed, expected, atol=1e-12)
    world_torch = kinematics.joint_world_rotations(
        torch.from_numpy(global_orient), torch.from_numpy(hand_pose))
    np.testing.assert_allclose(world_torch.numpy(), world, atol=1e-12)


def test_fk_from_matrices_matches_axis_angle_fk_and_has_gradients():
    from handx_gen.hand.rotations import axis_angle_to_matrix

    g = torch.Generator().manual_seed(4)
    go = torch.randn(3, 5, 3, generator=g, dtype=torch.float64)
    hp = torch.randn(3, 5, 15, 3, generator=g, dtype=torch.float64)
    tr = torch.randn(3, 5, 3, generator=g, dtype=torch.float64)
    skeleton = default_skeleton(HandSide.LEFT).scaled(1.1)
    root = axis_angle_to_matrix(go).requires_grad_()
    local = axis_angle_to_matrix(hp)
    out = forward_kinematics_matrices_torch(root, local, tr, skeleton)
    torch.testing.assert_close(out, forward_kinematics_torch(go, hp, tr, skeleton), rtol=0,
                               atol=1e-12)
    out[..., 20, :].sum().backward()
    assert root.grad is not None and torch.isfinite(root.grad).all() and root.grad.abs().sum() > 0
    with pytest.raises(HandModelError, match='expected'):
        forward_kinematics_matrices_torch(root.detach(), local[..., :14, :, :], tr, skeleton)
    with pytest.raises(HandModelError, match='torch tensors'):
        forward_kinematics_matrices_torch(root.detach().numpy(), local, tr, skeleton)

