"""Tests for handx_gen.hand.skeleton."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.errors import HandModelError
from handx_gen.hand.skeleton import DEFAULT_HAND_LENGTH_M, HandSkeleton, default_skeleton
from handx_gen.hand.topology import (
    FINGER_MANO_JOINTS,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    TIP_KEYPOINTS,
    Finger,
    HandSide,
    finger_keypoints,
)


def _finger_length(skeleton: HandSkeleton, finger: Finger) -> float:
    """Sum of the three bones from the finger's base keypoint to its tip."""
    bones = skeleton.bone_lengths()
    keypoints = finger_keypoints(finger)
    return float(sum(bones[k - 1] for k in keypoints[1:]))


def test_default_hand_length_is_adult_sized():
    skeleton = default_skeleton()
    assert 0.17 <= skeleton.hand_length_m <= 0.20
    assert skeleton.hand_length_m == pytest.approx(DEFAULT_HAND_LENGTH_M, abs=1e-12)
    np.testing.assert_array_equal(skeleton.joints_rest[0], np.zeros(3))  # wrist at the origin
    assert skeleton.joints_rest.shape == (16, 3) and skeleton.joints_rest.dtype == np.float64
    assert skeleton.tips_rest.shape == (5, 3)
    assert skeleton.keypoints_rest().shape == (21, 3)


def test_requested_hand_length_and_scaling():
    skeleton = default_skeleton(hand_length_m=0.17)
    assert skeleton.hand_length_m == pytest.approx(0.17, abs=1e-12)
    big = skeleton.scaled(1.25)
    assert big.hand_length_m == pytest.approx(0.2125, abs=1e-12)
    np.testing.assert_allclose(big.bone_lengths(), 1.25 * skeleton.bone_lengths(), rtol=1e-12)
    # Proportions do not depend on the length requested.
    np.testing.assert_allclose(default_skeleton(hand_length_m=0.2).keypoints_rest() / 0.2,
                               skeleton.keypoints_rest() / 0.17, atol=1e-14)


def test_scaling_is_about_the_wrist():
    moved = HandSkeleton(HandSide.RIGHT, default_skeleton().joints_rest + [0.1, -0.2, 0.3],
                         default_skeleton().tips_rest + [0.1, -0.2, 0.3])
    scaled = moved.scaled(2.0)
    np.testing.assert_allclose(scaled.joints_rest[0], [0.1, -0.2, 0.3])
    np.testing.assert_allclose(scaled.keypoints_rest() - scaled.joints_rest[0],
                               2.0 * (moved.keypoints_rest() - moved.joints_rest[0]), atol=1e-14)


@pytest.mark.parametrize('factor', [0.0, -1.0, float('nan'), float('inf')])
def test_bad_scale_factor(factor):
    with pytest.raises(HandModelError, match='scale factor'):
        default_skeleton().scaled(factor)


def test_canonical_frame_orientation_right_hand():
    kp = default_skeleton(HandSide.RIGHT).keypoints_rest()
    name = {n: i for i, n in enumerate(KEYPOINT_NAMES)}
    # Fingers point -x: every tip is distal (more negative x) than its MCP.
    for finger in ('index', 'middle', 'ring', 'little'):
        assert kp[name[f'{finger}_tip'], 0] < kp[name[f'{finger}_mcp'], 0] - 0.05
    # Thumb towards +z, radial side: index on +z of middle, little on -z.
    assert kp[name['thumb_tip'], 2] > kp[name['index_tip'], 2] + 0.03
    assert kp[name['index_mcp'], 2] > kp[name['middle_mcp'], 2] > kp[name['ring_mcp'], 2]
    assert kp[name['ring_mcp'], 2] > kp[name['little_mcp'], 2]
    # Thumb CMC sits near the wrist; the thumb points forward (-x), outward (+z), palmar (-y).
    assert np.linalg.norm(kp[name['thumb_cmc']]) < 0.05
    thumb = kp[name['thumb_tip']] - kp[name['thumb_cmc']]
    assert thumb[0] < 0 and thumb[2] > 0 and thumb[1] < 0
    assert abs(thumb[1]) < 0.5 * min(abs(thumb[0]), thumb[2])  # only slightly palmar
    # Middle fingertip is straight ahead of the wrist.
    np.testing.assert_allclose(kp[name['middle_tip']], [-DEFAULT_HAND_LENGTH_M, 0.0, 0.0],
                               atol=1e-12)


def test_left_is_x_mirror_of_right():
    right = default_skeleton(HandSide.RIGHT)
    left = default_skeleton(HandSide.LEFT)
    assert left.side == HandSide.LEFT
    np.testing.assert_array_equal(left.joints_rest[:, 0], -right.joints_rest[:, 0])
    np.testing.assert_array_equal(left.joints_rest[:, 1:], right.joints_rest[:, 1:])
    np.testing.assert_array_equal(left.tips_rest[:, 0], -right.tips_rest[:, 0])
    np.testing.assert_array_equal(left.tips_rest[:, 1:], right.tips_rest[:, 1:])
    # Left fingers point +x, the thumb is still towards +z.
    assert left.tips_rest[Finger.MIDDLE, 0] > 0.15
    assert left.tips_rest[Finger.THUMB, 2] > 0.05
    np.testing.assert_allclose(left.bone_lengths(), right.bone_lengths(), rtol=1e-15)


def test_mirroring_twice_is_identity():
    right = default_skeleton(hand_length_m=0.18)
    twice = right.mirrored().mirrored()
    assert twice == right
    assert right.mirrored() != right
    assert right.mirrored() == default_skeleton(HandSide.LEFT, hand_length_m=0.18)


def test_bone_lengths_positive_and_anatomically_ordered():
    skeleton = default_skeleton()
    bones = skeleton.bone_lengths()
    assert bones.shape == (20,)
    assert np.all(bones > 0.01)
    # Bone k joins keypoint k + 1 to its parent.
    kp = skeleton.keypoints_rest()
    assert bones[8] == pytest.approx(np.linalg.norm(kp[9] - kp[KEYPOINT_PARENTS[9]]))
    # Fingers (MCP to tip): middle longest, then ring, index, little (Buchholz et al. 1992).
    lengths = {f: _finger_length(skeleton, f) for f in Finger}
    assert lengths[Finger.MIDDLE] > lengths[Finger.RING] > lengths[Finger.INDEX]
    assert lengths[Finger.INDEX] > lengths[Finger.LITTLE]
    # Within each long finger, phalanges shorten distally.
    for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
        b = [bones[k - 1] for k in finger_keypoints(finger)[1:]]
        assert b[0] > b[1] > b[2]
    # Thumb: distinct, three segments from the CMC, metacarpal the longest; its tip is the
    # farthest-out point on the radial side.
    thumb = [bones[k - 1] for k in finger_keypoints(Finger.THUMB)[1:]]
    assert thumb[0] > thumb[1] > thumb[2]
    assert bones[0] < 0.05  # wrist to thumb CMC: short
    assert np.argmax(kp[:, 2]) == TIP_KEYPOINTS[Finger.THUMB]
    # Metacarpal (wrist to MCP) bones are the long palm bones, 35-50 % of hand length.
    for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
        mcp = finger_keypoints(finger)[0]
        assert 0.35 < bones[mcp - 1] / skeleton.hand_length_m < 0.5


def test_finger_chains_are_straight_at_rest():
    # A flat hand: each finger's joints and tip are collinear.
    skeleton = default_skeleton()
    for finger in Finger:
        pts = np.vstack([skeleton.joints_rest[list(FINGER_MANO_JOINTS[finger])],
                         skeleton.tips_rest[finger]])
        d = pts[1:] - pts[:-1]
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        np.testing.assert_allclose(d, np.broadcast_to(d[0], d.shape), atol=1e-12)


def test_arrays_are_copied_and_read_only():
    joints = default_skeleton().joints_rest.copy()
    tips = default_skeleton().tips_rest.copy()
    skeleton = HandSkeleton(HandSide.RIGHT, joints, tips)
    joints[0] = 5.0
    assert skeleton.joints_rest[0, 0] == 0.0
    with pytest.raises(ValueError):
        skeleton.joints_rest[0, 0] = 1.0
    assert hash(skeleton) == hash(default_skeleton())


def test_validation_names_the_shape():
    good = default_skeleton()
    with pytest.raises(HandModelError, match=r'got shape \(15, 3\)'):
        HandSkeleton(HandSide.RIGHT, good.joints_rest[:15], good.tips_rest)
    with pytest.raises(HandModelError, match=r'got shape \(5, 2\)'):
        HandSkeleton(HandSide.RIGHT, good.joints_rest, good.tips_rest[:, :2])
    with pytest.raises(HandModelError, match='non-finite'):
        HandSkeleton(HandSide.RIGHT, good.joints_rest * np.nan, good.tips_rest)
    with pytest.raises(HandModelError, match='hand side'):
        HandSkeleton('right', good.joints_rest, good.tips_rest)  # type: ignore[arg-type]
    with pytest.raises(HandModelError, match='hand_length_m'):
        default_skeleton(hand_length_m=1.9)
    with pytest.raises(HandModelError, match='valid options'):
        default_skeleton(side=2)  # type: ignore[arg-type]


def test_side_accepts_its_bimanual_index():
    assert default_skeleton(side=0) == default_skeleton(HandSide.LEFT)  # type: ignore[arg-type]
    assert default_skeleton(side=np.int64(1)).side is HandSide.RIGHT  # type: ignore[arg-type]


def test_bone_lengths_of_posed_keypoints_match_the_skeleton():
    """Rigid bones: FK keeps every keypoint bone at its rest length, batched."""
    from handx_gen.hand.kinematics import forward_kinematics
    from handx_gen.hand.topology import bone_lengths

    rng = np.random.default_rng(2)
    skeleton = default_skeleton(HandSide.RIGHT).scaled(1.1)
    keypoints = forward_kinematics(rng.normal(size=(3, 4, 3)), rng.normal(size=(3, 4, 15, 3)),
                                   rng.normal(size=(3, 4, 3)), skeleton)
    lengths = bone_lengths(keypoints)
    assert lengths.shape == (3, 4, 20)
    np.testing.assert_allclose(lengths, np.broadcast_to(skeleton.bone_lengths(), (3, 4, 20)),
                               atol=1e-12)
    # Bone 7 joins the index tip (keypoint 8) to the index DIP (keypoint 7).
    rest = skeleton.keypoints_rest()
    assert skeleton.bone_lengths()[7] == pytest.approx(np.linalg.norm(rest[8] - rest[7]))
