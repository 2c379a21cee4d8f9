"""Tests for handx_gen.hand.fit: faithful fits of tracked keypoints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handx_gen.data.synthetic import SynthConfig, clip_seeds, synthesize_clip
from handx_gen.data.tracker_noise import TrackerNoiseConfig, track
from handx_gen.errors import ConfigError, HandModelError
from handx_gen.hand.fit import FitConfig, HandFit, _fit_root, _problem, fit_hand
from handx_gen.hand.ik import fit_skeleton, inverse_kinematics
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.limits import (
    POSE_JOINT_NAMES,
    anatomical_bounds,
    anatomical_to_pose,
    pose_to_anatomical,
)
from handx_gen.hand.skeleton import HandSkeleton, default_skeleton
from handx_gen.hand.topology import TIP_KEYPOINTS, HandSide

SIDES = [HandSide.RIGHT, HandSide.LEFT]
FINGER_ROWS = [r for r, name in enumerate(POSE_JOINT_NAMES) if not name.startswith('thumb')]
PIP_DIP_ROWS = [r for r in FINGER_ROWS if r % 3]
THUMB_IP = POSE_JOINT_NAMES.index('thumb3')
INDEX_PIP = POSE_JOINT_NAMES.index('index2')
TOLERANCE_RAD = 0.26  # FilterConfig().joint_limit_tolerance_rad


def _anatomical_clip(rng: np.random.Generator, skeleton: HandSkeleton, num_frames: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of a hand moving through poses inside the joint ranges, with hinge PIP, DIP
    and thumb IP joints and no twist, and those poses' angles."""
    lower, upper = anatomical_bounds()
    start, end = (rng.uniform(0.85 * lower + 0.15 * upper, 0.15 * lower + 0.85 * upper,
                              size=(15, 3)) for _ in range(2))
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    angles = start + (end - start) * t
    angles[..., 2] = 0.0
    angles[:, PIP_DIP_ROWS + [THUMB_IP], 1] = 0.0
    orient = rng.normal(scale=1.0, size=3) + 0.5 * t[:, 0]
    transl = rng.normal(scale=0.3, size=3) + 0.1 * t[:, 0]
    keypoints = forward_kinematics(orient, anatomical_to_pose(angles, skeleton), transl,
                                   skeleton)
    return keypoints, angles


@pytest.mark.parametrize('side', SIDES)
def test_fit_reproduces_keypoints_of_anatomical_poses(side):
    skeleton = default_skeleton(side, 0.17)
    keypoints, angles = _anatomical_clip(np.random.default_rng(3), skeleton, 30)
    fit = fit_hand(keypoints, side)
    assert isinstance(fit, HandFit)
    assert fit.hand_pose.shape == (30, 15, 3) and fit.residual_m.shape == (30, 21)
    assert fit.residual_m.max() < 1e-4
    np.testing.assert_allclose(fit.skeleton.bone_lengths(), skeleton.bone_lengths(), atol=1e-5)
    np.testing.assert_allclose(pose_to_anatomical(fit.hand_pose, fit.skeleton), angles,
                               atol=2e-3)
    refit = forward_kinematics(fit.global_orient, fit.hand_pose, fit.transl, fit.skeleton)
    np.testing.assert_allclose(refit, fit.keypoints, atol=1e-12)
    # Integer sides work as they do for skeletons.
    assert fit_hand(keypoints[:3], int(side)).skeleton.side == side


def test_palm_shape_and_bone_lengths_come_from_the_data():
    # A hand unlike the default one: a broader palm, long fingers, a short thumb.
    default = default_skeleton(HandSide.RIGHT)
    joints = default.joints_rest.copy()
    tips = default.tips_rest.copy()
    joints[[1, 2, 3], 2] += 0.006  # index ray moved radially
    tips[1, 2] += 0.006
    joints[[7, 8, 9], 2] -= 0.008  # little ray moved ulnarly
    tips[4, 2] -= 0.008
    wrist = joints[0]
    for chain, tip in (((2, 3), 1), ((5, 6), 2)):  # index, middle: longer fingers
        base = joints[chain[0] - 1]
        joints[list(chain)] = base + 1.15 * (joints[list(chain)] - base)
        tips[tip] = base + 1.15 * (tips[tip] - base)
    joints[[14, 15]] = joints[13] + 0.9 * (joints[[14, 15]] - joints[13])
    tips[0] = joints[13] + 0.9 * (tips[0] - joints[13])
    truth = HandSkeleton(HandSide.RIGHT, joints - wrist, tips - wrist)
    keypoints, _ = _anatomical_clip(np.random.default_rng(4), truth, 40)
    fit = fit_hand(keypoints, HandSide.RIGHT)
    np.testing.assert_allclose(fit.skeleton.bone_lengths(), truth.bone_lengths(), atol=3e-4)
    assert np.median(fit.residual_m) < 5e-4
    # The analytic peer with the default palm misses the fingertips by millimetres.
    skeleton = fit_skeleton(keypoints, HandSide.RIGHT)
    ik = inverse_kinematics(keypoints, skeleton)
    ik_tips = forward_kinematics(ik.global_orient, ik.hand_pose, ik.transl, skeleton)
    ik_error = np.linalg.norm(ik_tips - keypoints, axis=-1)[:, list(TIP_KEYPOINTS)]
    assert np.median(ik_error) > 10 * np.median(fit.residual_m[:, list(TIP_KEYPOINTS)])


def _tracked_corpus_hand(seed: int) -> tuple[np.ndarray, np.ndarray, HandSide]:
    """A synthetic corpus clip's right hand as a tracker reports it (no dropouts), and its
    clean keypoints."""
    composition, clip = clip_seeds(0, seed)
    motion = synthesize_clip(SynthConfig(), composition, clip).motion
    noise = TrackerNoiseConfig(dropout_rate_hz=0.0, missing_rate_hz=0.0)
    tracked = track(motion, noise, seed=seed)
    return tracked.keypoints[:, 1], np.asarray(motion.keypoints[:, 1]), HandSide.RIGHT


def _pinches(keypoints: np.ndarray) -> np.ndarray:
    """(T, 4) thumb tip to each other fingertip."""
    tips = keypoints[:, list(TIP_KEYPOINTS)]
    return np.linalg.norm(tips[:, 1:] - tips[:, :1], axis=-1)


@pytest.mark.parametrize('seed', [0, 3])
def test_fit_of_tracker_keypoints_is_faithful(seed):
    observed, _, side = _tracked_corpus_hand(seed)
    fit = fit_hand(observed, side)
    tip_error = fit.residual_m[:, list(TIP_KEYPOINTS)]
    pinch_error = np.abs(_pinches(fit.keypoints) - _pinches(observed))
    assert np.median(tip_error) < 0.002
    assert np.median(pinch_error) < 0.003
    # The analytic peer (median bone lengths, hinge IK) on the same keypoints.
    skeleton = fit_skeleton(observed, side)
    ik = inverse_kinematics(observed, skeleton)
    ik_keypoints = forward_kinematics(ik.global_orient, ik.hand_pose, ik.transl, skeleton)
    ik_tip_error = np.linalg.norm(ik_keypoints - observed, axis=-1)[:, list(TIP_KEYPOINTS)]
    assert np.median(ik_tip_error) > 3 * np.median(tip_error)
    # Joints stay near their ranges: the thumb's tip joint bends sideways by at most its
    # range (+-15 deg) and the filter's tolerance in 99 % of the frames, where the swing-only
    # solution of the same keypoints goes far past it.
    angles = pose_to_anatomical(fit.hand_pose, fit.skeleton)
    sideways = np.abs(angles[:, THUMB_IP, 1])
    assert np.percentile(sideways, 99) < math.radians(15.0) + TOLERANCE_RAD
    swing = inverse_kinematics(observed, skeleton, hinge_fingers=False)
    swing_sideways = np.abs(pose_to_anatomical(swing.hand_pose, skeleton)[:, THUMB_IP, 1])
    assert swing_sideways.max() > math.radians(30.0)


def test_a_finger_bent_backwards_is_fitted_outside_its_range():
    skeleton = default_skeleton(HandSide.RIGHT)
    keypoints, angles = _anatomical_clip(np.random.default_rng(5), skeleton, 20)
    angles[:, INDEX_PIP] = [math.radians(-70.0), 0.0, 0.0]
    orient = np.array([0.3, -0.2, 0.1])
    keypoints = forward_kinematics(orient, anatomical_to_pose(angles, skeleton), np.zeros(3),
                                   skeleton)
    keypoints += np.random.default_rng(6).normal(scale=0.002, size=keypoints.shape)
    fit = fit_hand(keypoints, HandSide.RIGHT)
    pip = pose_to_anatomical(fit.hand_pose, fit.skeleton)[:, INDEX_PIP, 0]
    assert np.median(pip) < -TOLERANCE_RAD  # past 0 deg by more than the filter tolerates
    assert np.median(fit.residual_m[:, TIP_KEYPOINTS[1]]) < 0.004


def test_frames_left_out_of_the_skeleton_still_get_a_pose():
    skeleton = default_skeleton(HandSide.LEFT)
    keypoints, _ = _anatomical_clip(np.random.default_rng(7), skeleton, 20)
    bad = keypoints.copy()
    bad[5:8] *= 1.5  # a tracker's wrong frames, excluded from the skeleton
    valid = np.ones(20, dtype=bool)
    valid[5:8] = False
    fit = fit_hand(bad, HandSide.LEFT, valid=valid)
    np.testing.assert_allclose(fit.skeleton.bone_lengths(), skeleton.bone_lengths(), atol=1e-5)
    assert fit.residual_m[valid].max() < 1e-4
    assert np.all(np.isfinite(fit.hand_pose[5:8]))


@pytest.mark.parametrize('side', SIDES)
def test_chain_jacobian_matches_finite_differences(side):
    rng = np.random.default_rng(8)
    skeleton = default_skeleton(side)
    keypoints = skeleton.keypoints_rest()[None] + rng.normal(scale=0.01, size=(4, 21, 3))
    rot_root, transl = _fit_root(keypoints, skeleton)
    problem, _ = _problem(keypoints, skeleton, rot_root, transl, FitConfig())
    x = rng.normal(scale=0.8, size=(20, 9))
    _, jac = problem.residuals(x, jacobian=True)
    step = 1e-7
    numeric = np.empty_like(jac)
    for k in range(9):
        up, down = x.copy(), x.copy()
        up[:, k] += step
        down[:, k] -= step
        numeric[:, :, k] = (problem.residuals(up)[0] - problem.residuals(down)[0]) / (2 * step)
    np.testing.assert_allclose(jac, numeric, atol=1e-7)


def test_bad_input_and_config_raise():
    keypoints = default_skeleton(HandSide.RIGHT).keypoints_rest()[None].repeat(3, axis=0)
    with pytest.raises(HandModelError, match=r'shape \(T, 21, 3\)'):
        fit_hand(keypoints[0], HandSide.RIGHT)
    with pytest.raises(HandModelError, match='non-finite'):
        fit_hand(np.full((3, 21, 3), np.nan), HandSide.RIGHT)
    with pytest.raises(HandModelError, match='no valid frame'):
        fit_hand(keypoints, HandSide.RIGHT, valid=np.zeros(3, dtype=bool))
    with pytest.raises(HandModelError, match=r'valid must have shape \(3,\)'):
        fit_hand(keypoints, HandSide.RIGHT, valid=np.ones(4, dtype=bool))
    with pytest.raises(HandModelError, match='hand side'):
        fit_hand(keypoints, 'right')
    with pytest.raises(HandModelError, match='index_mcp -> index_pip'):
        collapsed = keypoints.copy()
        collapsed[:, 6] = collapsed[:, 5]
        fit_hand(collapsed, HandSide.RIGHT)
    # Keypoints in the wrong unit (or garbage) give a fit, not a solver error.
    far = np.random.default_rng(9).normal(scale=1e6, size=(4, 21, 3))
    assert np.all(np.isfinite(fit_hand(far, HandSide.RIGHT).keypoints))
    with pytest.raises(ConfigError, match='tip_weight'):
        FitConfig(tip_weight=0.0)
    with pytest.raises(ConfigError, match='rounds'):
        FitConfig(rounds=1.5)
    with pytest.raises(ConfigError, match='joint_weight'):
        FitConfig(joint_weight=-1.0)
