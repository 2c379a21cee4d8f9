"""Tests for handx_gen.data.sources: AMASS, MANO and keypoint readers and detection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handx_gen.data.frames import AxesMap
from handx_gen.data.kinds import Placement
from handx_gen.data.smplh import (
    LEFT_WRIST,
    RIGHT_WRIST,
    SMPLH_JOINT_NAMES,
    SMPLH_REST_JOINTS_M,
    body_forward_kinematics,
)
from handx_gen.data.sources import (
    SourceKind,
    UpAxis,
    detect_kind,
    format_frame_ranges,
    load_source,
    read_amass_smplh,
    read_amass_unified,
    read_keypoint_sequence,
    read_mano_sequence,
    read_source,
)
from handx_gen.data.workspace import CANONICAL_WRIST_M
from handx_gen.errors import ConfigError, DataSourceError, HandxError
from handx_gen.hand.limits import anatomical_bounds, anatomical_to_pose
from handx_gen.hand.rotations import axis_angle_to_matrix
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion

R_X90 = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # y -> z, z -> -y


def _amass(path: Path, poses: np.ndarray, trans: np.ndarray, **extra: object) -> Path:
    np.savez(path, poses=poses, trans=trans, mocap_framerate=np.array(60.0),
             gender=np.array('neutral'), **extra)
    return path


def _mano_params(rng: np.random.Generator, num_frames: int) -> dict[str, np.ndarray]:
    return {
        'global_orient': rng.normal(scale=0.5, size=(num_frames, 2, 3)),
        'hand_pose': rng.normal(scale=0.2, size=(num_frames, 2, 15, 3)),
        'transl': rng.normal(scale=0.2, size=(num_frames, 2, 3)),
    }


# ---------------------------------------------------------------------------- AMASS


def test_amass_y_up_upright_body_stands_along_z(tmp_path: Path) -> None:
    poses = np.zeros((3, 156))
    trans = np.zeros((3, 3))
    trans[:, 1] = [0.0, 0.5, 1.0]  # rising along the file's up axis (y)
    path = _amass(tmp_path / 'a.npz', poses, trans, betas=np.arange(16.0))
    unified = read_amass_unified(path, up_axis='y')
    assert unified.fps == 60.0 and unified.has_body
    np.testing.assert_array_equal(unified.betas, np.arange(16.0))
    body = body_forward_kinematics(unified.poses, unified.trans).positions_m
    head, pelvis = SMPLH_JOINT_NAMES.index('head'), 0
    rest = SMPLH_REST_JOINTS_M
    height = rest[head, 1] - rest[pelvis, 1]
    dx, _, dz = rest[head] - rest[pelvis]
    np.testing.assert_allclose(body[:, head] - body[:, pelvis], [[dx, -dz, height]] * 3,
                               atol=1e-12)
    assert height > 0.5  # the head is well above the pelvis, along +z
    np.testing.assert_allclose(body[:, pelvis, 2] - body[0, pelvis, 2], [0.0, 0.5, 1.0],
                               atol=1e-12)
    # Every rest joint p maps to (x, -z, y).
    x, y, z = rest[LEFT_WRIST]
    np.testing.assert_allclose(body[0, LEFT_WRIST], [x, -z, y], atol=1e-12)

    motion = read_amass_smplh(path, up_axis=UpAxis.Y)
    np.testing.assert_allclose(motion.keypoints[0, 0, 0], [x, -z, y], atol=1e-5)
    x, y, z = rest[RIGHT_WRIST]
    np.testing.assert_allclose(motion.keypoints[2, 1, 0], [x, -z, y + 1.0], atol=1e-5)
    # The wrists' global rotation is the body's tilt.
    np.testing.assert_allclose(axis_angle_to_matrix(motion.global_orient),
                               np.broadcast_to(R_X90, (3, 2, 3, 3)), atol=1e-10)


def test_amass_z_up_is_the_default_and_left_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    poses = rng.normal(scale=0.3, size=(4, 156))
    trans = rng.normal(size=(4, 3))
    path = _amass(tmp_path / 'z.npz', poses, trans)
    unified = read_amass_unified(path)
    np.testing.assert_allclose(unified.poses, poses.reshape(4, 52, 3), atol=0)
    np.testing.assert_allclose(unified.trans, trans, atol=0)
    # Y-up reading rotates the whole body about the origin, every joint and rotation alike.
    rotated = read_amass_unified(path, up_axis=UpAxis.Y)
    body_z = body_forward_kinematics(unified.poses, unified.trans)
    body_y = body_forward_kinematics(rotated.poses, rotated.trans)
    np.testing.assert_allclose(body_y.positions_m, body_z.positions_m @ R_X90.T, atol=1e-10)
    np.testing.assert_allclose(body_y.rotations, R_X90 @ body_z.rotations, atol=1e-10)


def test_amass_hand_joints_and_smplx_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    hands = rng.normal(scale=0.3, size=(2, 90))
    smplh_poses = np.concatenate([np.zeros((2, 66)), hands], axis=1)
    smplx_poses = np.concatenate([np.zeros((2, 66)), np.ones((2, 9)), hands], axis=1)  # 165
    a = read_amass_smplh(_amass(tmp_path / 'h.npz', smplh_poses, np.zeros((2, 3))))
    np.testing.assert_allclose(a.hand_pose[:, 0].reshape(2, 45), hands[:, :45])
    np.testing.assert_allclose(a.hand_pose[:, 1].reshape(2, 45), hands[:, 45:])
    path = tmp_path / 'x.npz'
    np.savez(path, poses=smplx_poses, trans=np.zeros((2, 3)), mocap_frame_rate=np.array(120.0))
    b = read_amass_smplh(path)
    assert b.fps == 120.0
    np.testing.assert_allclose(b.hand_pose, a.hand_pose)


def test_amass_errors_name_file_and_problem(tmp_path: Path) -> None:
    path = _amass(tmp_path / 'bad.npz', np.zeros((2, 150)), np.zeros((2, 3)))
    with pytest.raises(DataSourceError, match=r'bad\.npz.*\(T, 156\).*\(2, 150\)'):
        read_amass_smplh(path)
    path = tmp_path / 'nofps.npz'
    np.savez(path, poses=np.zeros((2, 156)), trans=np.zeros((2, 3)))
    with pytest.raises(DataSourceError, match=r'nofps\.npz.*frame rate'):
        read_amass_smplh(path)
    path = _amass(tmp_path / 'trans.npz', np.zeros((2, 156)), np.zeros((3, 3)))
    with pytest.raises(DataSourceError, match=r"'trans'.*\(2, 3\).*\(3, 3\)"):
        read_amass_smplh(path)
    with pytest.raises(DataSourceError, match="up axis 'w'"):
        read_amass_smplh(path, up_axis='w')


# ---------------------------------------------------------------------------- MANO


def test_mano_sequence_flat_45_and_split_layouts_agree(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    params = _mano_params(rng, 5)
    betas = rng.normal(size=(2, 10))
    np.savez(tmp_path / 'm.npz', fps=np.array(30.0), betas=betas, **params)
    flat = dict(params, hand_pose=params['hand_pose'].reshape(5, 2, 45))
    np.savez(tmp_path / 'flat.npz', fps=np.array(30.0), **flat)
    split = {f'{side}_{name}': value[:, i] for name, value in flat.items()
             for i, side in enumerate(('left', 'right'))}
    np.savez(tmp_path / 'split.npz', fps=np.array(30), **split)

    a = read_mano_sequence(tmp_path / 'm.npz')
    expected = BimanualMotion.from_mano(30.0, **params)
    np.testing.assert_array_equal(a.hand_pose, params['hand_pose'])
    np.testing.assert_array_equal(a.betas, betas)
    np.testing.assert_allclose(a.keypoints, expected.keypoints, atol=1e-6)
    for name in ('flat.npz', 'split.npz'):
        b = read_mano_sequence(tmp_path / name)
        np.testing.assert_array_equal(b.hand_pose, a.hand_pose)
        np.testing.assert_array_equal(b.global_orient, a.global_orient)
        np.testing.assert_array_equal(b.transl, a.transl)


def test_mano_sequence_rejects_mean_relative_and_pca(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    params = _mano_params(rng, 3)
    np.savez(tmp_path / 'mean.npz', fps=np.array(30.0), hand_pose_is_mean_relative=np.array(True),
             **params)
    with pytest.raises(DataSourceError, match=r'mean\.npz.*flat-hand-relative'):
        read_mano_sequence(tmp_path / 'mean.npz')
    pca = dict(params, hand_pose=rng.normal(size=(3, 2, 12)))
    np.savez(tmp_path / 'pca.npz', fps=np.array(30.0), **pca)
    with pytest.raises(DataSourceError, match=r'12 numbers per hand.*PCA'):
        read_mano_sequence(tmp_path / 'pca.npz')
    np.savez(tmp_path / 'flag.npz', fps=np.array(30.0), flat_hand_mean=np.array(False), **params)
    with pytest.raises(DataSourceError, match='flat_hand_mean'):
        read_mano_sequence(tmp_path / 'flag.npz')


def test_non_finite_frames_are_reported_or_marked(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    params = _mano_params(rng, 8)
    params['hand_pose'][2:4, 1, 3, 0] = np.nan
    params['transl'][6, 0, 2] = np.inf
    path = tmp_path / 'nan.npz'
    np.savez(path, fps=np.array(30.0), **params)
    with pytest.raises(DataSourceError, match=r'nan\.npz: 3 of 8 frames.*frames 2-3, 6\)'):
        read_mano_sequence(path)
    reading = load_source(path, fill_invalid=True)
    np.testing.assert_array_equal(np.flatnonzero(reading.invalid_frames), [2, 3, 6])
    # Filled frames hold the nearest good frame.
    np.testing.assert_array_equal(reading.motion.hand_pose[2], params['hand_pose'][1])
    np.testing.assert_array_equal(reading.motion.hand_pose[3], params['hand_pose'][4])
    np.testing.assert_array_equal(reading.motion.transl[6], params['transl'][5])


# ---------------------------------------------------------------------------- keypoints


def _fk_motion(num_frames: int, seed: int) -> BimanualMotion:
    """Two hands of different sizes moving through anatomical poses (joints inside their
    ranges, PIP and DIP joints hinges, no twist)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    orient = rng.normal(scale=0.5, size=(1, 2, 3)) + 0.3 * t
    skeletons = (default_skeleton(HandSide.LEFT, 0.18), default_skeleton(HandSide.RIGHT, 0.19))
    lower, upper = anatomical_bounds()
    start, end = (rng.uniform(0.8 * lower + 0.2 * upper, 0.2 * lower + 0.8 * upper,
                              size=(2, 15, 3)) for _ in range(2))
    angles = start + (end - start) * t[..., None]  # (T, 2, 15, 3)
    angles[..., 2] = 0.0
    angles[..., [r for r in range(12) if r % 3], 1] = 0.0  # PIP and DIP rows of the fingers
    pose = np.stack([anatomical_to_pose(angles[:, s], skeletons[s]) for s in HandSide], axis=1)
    transl = np.array([[0.2, 0.0, 1.0], [-0.2, 0.0, 1.0]]) + 0.1 * t
    return BimanualMotion.from_mano(30.0, orient, pose, transl, skeletons=skeletons)


def test_keypoint_sequence_recovers_fk_keypoints(tmp_path: Path) -> None:
    truth = _fk_motion(6, seed=8)
    np.savez(tmp_path / 'k.npz', keypoints=truth.keypoints, fps=np.array(30.0))
    np.savez(tmp_path / 'k42.npz', keypoints=truth.keypoints.reshape(6, 42, 3), fps=np.array(30.0))
    reading = load_source(tmp_path / 'k.npz')
    assert reading.kind is SourceKind.KEYPOINTS
    assert reading.ik_residual_m.shape == (6, 2) and reading.ik_residual_m.max() < 2e-4
    np.testing.assert_allclose(reading.motion.keypoints, truth.keypoints, atol=5e-4)
    np.testing.assert_array_equal(reading.observed_keypoints, truth.keypoints)
    other = read_keypoint_sequence(tmp_path / 'k42.npz')
    np.testing.assert_allclose(other.keypoints, reading.motion.keypoints, atol=1e-6)


def test_keypoint_sequence_nan_frames(tmp_path: Path) -> None:
    truth = _fk_motion(6, seed=9)
    keypoints = np.array(truth.keypoints)
    keypoints[4, 1, 7] = np.nan
    path = tmp_path / 'kn.npz'
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    with pytest.raises(DataSourceError, match=r'kn\.npz: 1 of 6 frames.*frames 4\)'):
        read_keypoint_sequence(path)
    reading = load_source(path, fill_invalid=True)
    np.testing.assert_array_equal(np.flatnonzero(reading.invalid_frames), [4])
    assert np.isnan(reading.observed_keypoints[4, 1, 7]).all()
    assert np.isfinite(reading.motion.keypoints).all()
    keypoints[:, 1] = np.nan  # a hand seen in no frame is absent, not a fault
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    reading = load_source(path, fill_invalid=True)
    assert reading.motion.absent_sides == (HandSide.RIGHT,)
    np.testing.assert_array_equal(np.flatnonzero(reading.invalid_frames), [])
    keypoints[:, 0] = np.nan
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    with pytest.raises(DataSourceError, match='neither hand has a frame with finite'):
        load_source(path, fill_invalid=True)


# ---------------------------------------------------------------------------- axes, frame, place


def test_axes_turn_every_kind_alike(tmp_path: Path) -> None:
    """One axes map gives the same world keypoints from a keypoint file, a MANO file and a
    motion file of the same hands, and ``up_axis`` is its shorthand for bodies."""
    truth = _fk_motion(5, seed=11)
    truth.save(tmp_path / 'motion.npz')
    np.savez(tmp_path / 'mano.npz', fps=np.array(30.0), global_orient=truth.global_orient,
             hand_pose=truth.hand_pose, transl=truth.transl)
    np.savez(tmp_path / 'k.npz', keypoints=truth.keypoints, fps=np.array(30.0))
    axes = AxesMap.parse('right,down,forward')
    expected = np.asarray(truth.keypoints, dtype=np.float64) @ axes.R_world_source.T
    for name in ('motion', 'k'):
        reading = load_source(tmp_path / f'{name}.npz', axes=axes)
        np.testing.assert_allclose(reading.motion.keypoints, expected, atol=3e-3)
        assert reading.frame_change.axes == axes
    mano = load_source(tmp_path / 'mano.npz', axes='right,down,forward',
                       skeletons=(default_skeleton(HandSide.LEFT, 0.18),
                                  default_skeleton(HandSide.RIGHT, 0.19)))
    np.testing.assert_allclose(mano.motion.keypoints, expected, atol=1e-6)
    assert load_source(tmp_path / 'mano.npz').frame_change is None  # read as it is
    with pytest.raises(DataSourceError, match=r'mano\.npz: axes right,down,back are a reflection'):
        load_source(tmp_path / 'mano.npz', axes='right,down,back')
    with pytest.raises(ConfigError, match='give the axes or the up axis, not both'):
        load_source(tmp_path / 'mano.npz', axes=axes, up_axis='z')

    rng = np.random.default_rng(12)
    body = _amass(tmp_path / 'a.npz', rng.normal(scale=0.3, size=(3, 156)),
                  rng.normal(size=(3, 3)))
    by_axes = read_amass_smplh(body, axes='right,up,back')
    np.testing.assert_array_equal(by_axes.keypoints, read_amass_smplh(body, up_axis='y').keypoints)
    with pytest.raises(DataSourceError, match=r"frame 'wrist' does not apply"):
        load_source(body, frame='wrist')


def test_canonical_placement_of_a_body_moves_the_body_with_its_hands(tmp_path: Path) -> None:
    trans = np.zeros((4, 3))
    trans[:, 0] = 3.0  # standing 3 m to the side, in a motion-capture room
    path = _amass(tmp_path / 'a.npz', np.zeros((4, 156)), trans)
    as_is = load_source(path)
    placed = load_source(path, place='canonical')
    offsets = placed.frame_change.offsets_m
    np.testing.assert_array_equal(offsets[0], offsets[1])
    np.testing.assert_allclose(placed.motion.keypoints, as_is.motion.keypoints + offsets[0],
                               atol=1e-5)
    np.testing.assert_allclose(placed.unified.trans, as_is.unified.trans + offsets[0])
    wrists = np.asarray(placed.motion.keypoints[:, :, 0], dtype=np.float64)
    np.testing.assert_allclose(wrists.mean(axis=(0, 1)), CANONICAL_WRIST_M.mean(axis=0),
                               atol=1e-6)


def test_wrist_frame_keypoints_are_placed_per_hand_around_missing_frames(
        tmp_path: Path) -> None:
    """Each hand is placed from the frames it is seen in; the observed keypoints are moved
    with it and keep their gaps."""
    truth = _fk_motion(6, seed=13)
    keypoints = np.array(truth.keypoints, dtype=np.float64)
    keypoints -= keypoints[:, :, :1]  # wrist-centred
    keypoints[1:3, 1] = np.nan  # the right hand lost for two frames
    path = tmp_path / 'wc.npz'
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    reading = load_source(path, frame='wrist', fill_invalid=True)
    assert reading.frame_change.place is Placement.CANONICAL
    np.testing.assert_allclose(reading.motion.keypoints[:, :, 0],
                               np.broadcast_to(CANONICAL_WRIST_M, (6, 2, 3)), atol=2e-3)
    assert np.isnan(reading.observed_keypoints[1:3, 1]).all()
    np.testing.assert_allclose(reading.observed_keypoints[0, 1] - CANONICAL_WRIST_M[1],
                               keypoints[0, 1], atol=1e-12)


# ---------------------------------------------------------------------------- one hand


def _right_hand_in_camera_axes(num_frames: int = 6) -> tuple[BimanualMotion, np.ndarray]:
    """A right hand, and its keypoints (T, 21, 3) relative to its wrist in the axes of a camera
    facing the person ('left,down,back'), as a one-hand tracker writes them."""
    truth = _fk_motion(num_frames, seed=21)
    right = np.array(truth.keypoints[:, 1], dtype=np.float64)
    right -= right[:, :1]
    return truth, right @ AxesMap.parse('left,down,back').R_world_source  # p_cam = R^T p_world


@pytest.mark.parametrize('layout', ['nan', 'zeros', 'one'])
def test_a_hand_absent_from_every_frame_gives_a_one_hand_motion(tmp_path: Path,
                                                                layout: str) -> None:
    """A right-hand recording, the left hand NaN, all zeros, or not in the file at all (one
    hand's (T, 21, 3) with its side), reads as the same motion of the right hand alone; axes,
    wrist frame and placement apply to the hand that is there."""
    truth, right = _right_hand_in_camera_axes()
    if layout == 'one':
        keypoints = right
    else:
        keypoints = np.full((6, 2, 21, 3), np.nan if layout == 'nan' else 0.0)
        keypoints[:, 1] = right
    path = tmp_path / f'{layout}.npz'
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    reading = load_source(path, axes='left,down,back', frame='wrist',
                          side='right' if layout == 'one' else None)
    motion = reading.motion
    np.testing.assert_array_equal(motion.present, [False, True])
    assert reading.num_invalid_frames == 0
    # the right hand: its shape as recorded, its mean wrist on the right canonical spot
    expected = truth.keypoints[:, 1] - truth.keypoints[:, 1, :1]
    got = motion.keypoints[:, 1] - motion.keypoints[:, 1].mean(axis=0)[0]
    np.testing.assert_allclose(got, expected - expected.mean(axis=0)[0], atol=2e-3)
    np.testing.assert_allclose(motion.keypoints[:, 1, 0].mean(axis=0), CANONICAL_WRIST_M[1],
                               atol=2e-3)
    np.testing.assert_allclose(reading.frame_change.offsets_m[0], 0.0)
    assert reading.frame_change.describe().endswith('(moved right 1.10 m)')
    assert np.isnan(reading.observed_keypoints[:, 0]).all()
    assert np.isnan(reading.ik_residual_m[:, 0]).all()
    assert np.isfinite(reading.ik_residual_m[:, 1]).all()


def test_all_zero_frames_of_a_present_hand_are_dropouts(tmp_path: Path) -> None:
    truth = _fk_motion(6, seed=22)
    keypoints = np.array(truth.keypoints)
    keypoints[2, 0] = 0.0  # the tracker lost the left hand in frame 2
    path = tmp_path / 'z.npz'
    np.savez(path, keypoints=keypoints, fps=np.array(30.0))
    with pytest.raises(DataSourceError, match=r'1 of 6 frames have non-finite keypoints '
                                              r'\(frames 2\)'):
        load_source(path)
    reading = load_source(path, fill_invalid=True)
    np.testing.assert_array_equal(np.flatnonzero(reading.invalid_frames), [2])
    np.testing.assert_array_equal(reading.motion.present, [True, True])


def test_the_side_of_a_one_hand_file_is_asked_for_and_checked(tmp_path: Path) -> None:
    truth, right = _right_hand_in_camera_axes()
    np.savez(tmp_path / 'one.npz', keypoints=right, fps=np.array(30.0))
    with pytest.raises(DataSourceError, match=r'one\.npz: .*shape \(6, 21, 3\), one hand: say '
                                              r'which \(`--side left` or `--side right`'):
        load_source(tmp_path / 'one.npz')
    with pytest.raises(ConfigError, match="unknown hand side 'up'"):
        load_source(tmp_path / 'one.npz', side='up')
    left = load_source(tmp_path / 'one.npz', side='left', frame='wrist').motion
    np.testing.assert_array_equal(left.present, [True, False])
    np.savez(tmp_path / 'two.npz', keypoints=truth.keypoints, fps=np.array(30.0))
    with pytest.raises(DataSourceError, match=r'side right is for a file of one hand'):
        load_source(tmp_path / 'two.npz', side='right')
    truth.save(tmp_path / 'motion.npz')
    with pytest.raises(DataSourceError, match='side right is for a keypoints file of one hand'):
        load_source(tmp_path / 'motion.npz', side='right')
    np.savez(tmp_path / 'none.npz', keypoints=np.zeros((6, 2, 21, 3)), fps=np.array(30.0))
    with pytest.raises(DataSourceError, match='neither hand has a frame'):
        load_source(tmp_path / 'none.npz')


def test_a_one_hand_motion_file_is_moved_and_placed_by_its_hand(tmp_path: Path) -> None:
    truth, right = _right_hand_in_camera_axes()
    np.savez(tmp_path / 'one.npz', keypoints=right, fps=np.array(30.0))
    motion = load_source(tmp_path / 'one.npz', side='right').motion  # at the origin
    motion.save(tmp_path / 'motion.npz')
    placed = load_source(tmp_path / 'motion.npz', place='canonical')
    np.testing.assert_array_equal(placed.motion.present, [False, True])
    np.testing.assert_allclose(placed.motion.keypoints[:, 1, 0].mean(axis=0),
                               CANONICAL_WRIST_M[1], atol=1e-6)
    np.testing.assert_allclose(placed.frame_change.offsets_m[0], 0.0)


# ---------------------------------------------------------------------------- dispatch


def test_detection_and_dispatch(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    motion = BimanualMotion.from_mano(30.0, **_mano_params(rng, 3))
    motion.save(tmp_path / 'motion.npz')
    np.savez(tmp_path / 'mano.npz', fps=np.array(30.0), **_mano_params(rng, 3))
    _amass(tmp_path / 'amass.npz', np.zeros((3, 156)), np.zeros((3, 3)))
    assert detect_kind(tmp_path / 'motion.npz') is SourceKind.MOTION
    assert detect_kind(tmp_path / 'mano.npz') is SourceKind.MANO
    assert detect_kind(tmp_path / 'amass.npz') is SourceKind.AMASS_SMPLH
    loaded = read_source(tmp_path / 'motion.npz')
    np.testing.assert_array_equal(loaded.keypoints, motion.keypoints)
    assert read_source(tmp_path / 'amass.npz', 'amass-smplh').num_frames == 3

    np.savez(tmp_path / 'other.npz', foo=np.zeros(3))
    with pytest.raises(DataSourceError, match=r"other\.npz.*'foo'.*'amass-smplh'.*'keypoints'"):
        read_source(tmp_path / 'other.npz')
    with pytest.raises(DataSourceError, match="unknown source kind 'bvh'"):
        read_source(tmp_path / 'mano.npz', kind='bvh')
    with pytest.raises(DataSourceError, match=r'missing entry .poses.'):
        read_source(tmp_path / 'mano.npz', kind='amass-smplh')


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match='not found'):
        read_source(tmp_path / 'missing.npz')
    (tmp_path / 'text.npz').write_text('not a zip')
    with pytest.raises(DataSourceError,
                       match=r'text\.npz: not a data source \.npz \(zip\) archive'):
        read_source(tmp_path / 'text.npz')
    np.save(tmp_path / 'single.npy', np.zeros(3))
    with pytest.raises(DataSourceError, match=r'starts with a single \.npy array'):
        read_source(tmp_path / 'single.npy')
    np.savez(tmp_path / 'obj.npz', poses=np.array([{'a': 1}], dtype=object),
             trans=np.zeros((1, 3)))
    with pytest.raises(HandxError, match='unpickling'):
        read_source(tmp_path / 'obj.npz')
    (tmp_path / 'wrongformat.npz').write_bytes(b'')
    with pytest.raises(DataSourceError):
        read_source(tmp_path / 'wrongformat.npz')


def test_format_frame_ranges() -> None:
    mask = np.zeros(20, dtype=bool)
    mask[[1, 2, 3, 7, 10, 11]] = True
    assert format_frame_ranges(mask) == '1-3, 7, 10-11'
    assert format_frame_ranges(np.zeros(4, dtype=bool)) == 'none'
    assert format_frame_ranges(mask, limit=1) == '1-3, ... (2 more ranges)'
