"""Tests for handx_gen.data.synth_gestures: single-hand gestures and bimanual coordination.

Every motion type is built for a few seeded contexts (both handednesses, hand sizes, tempo,
amplitude and repetitions at the ends of the corpus ranges, different start postures) and
checked as the corpus builder and the annotation check will use it.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from handx_gen.annotate.surface import (
    SELF_CONTACT_PAIRS,
    ContactConfig,
    contact_intervals,
    hand_surface,
    inter_hand_penetration,
    part_distance,
    part_distance_matrix,
)
from handx_gen.data.filters import filter_motion
from handx_gen.data.plan import FingerAction, MotionCategory
from handx_gen.data.synth_base import PRIMITIVES, PrimitiveClip, SynthContext
from handx_gen.data.synth_gestures import (
    MIN_CLEARANCE_M,
    POSTURE_ANGLES,
    Posture,
    finger_rows,
    posture,
)
from handx_gen.data.synth_motion import clip_to_motion, finger_flexion
from handx_gen.errors import ConfigError
from handx_gen.hand.limits import anatomical_bounds
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import FINGER_MANO_JOINTS, TIP_KEYPOINTS, Finger, HandSide
from handx_gen.motion import BimanualMotion

FPS = 30.0
SINGLE = ('fist', 'counting', 'pointing', 'thumbs_up', 'ok_sign', 'pinch', 'finger_tapping',
          'finger_wave', 'wrist_rotation', 'wave', 'peace_sign', 'spread_fingers', 'beckon',
          'grasp_air')
COORDINATION = ('mirrored_movement', 'alternating_movement', 'conducting', 'showing_size',
                'rolling_hands', 'typing')
TYPES = SINGLE + COORDINATION
# (seed, dominant, hand length m, tempo, amplitude, repetitions, start posture per hand)
CASES = (
    (0, HandSide.RIGHT, 0.185, 1.0, 1.0, 2, (Posture.RELAXED, Posture.RELAXED)),
    (1, HandSide.LEFT, 0.165, 1.25, 1.2, 4, (Posture.FIST, Posture.OPEN)),
    (2, HandSide.RIGHT, 0.205, 0.8, 0.8, 1, (Posture.POINT, Posture.RELAXED)),
    (3, HandSide.RIGHT, 0.175, 1.1, 1.1, 3, (Posture.OPEN, Posture.PINCH)),
)
MAX_FINGERTIP_SPEED_M_S = 3.0
# Largest joint angle change per frame: 900 deg/s, below the peaks of fast voluntary finger
# movements (rapid tapping and grasp closure approach 1000 deg/s and more).
MAX_JOINT_STEP_RAD = math.radians(900.0) / FPS
# A planned bend / extension must change the finger's mean joint flexion by at least this over
# its interval; a planned hold by at most HOLD_DEG (peak to peak).
MIN_ACTION_DEG = 10.0
HOLD_DEG = 6.0


def _skeletons(length: float):
    return (default_skeleton(HandSide.LEFT, length), default_skeleton(HandSide.RIGHT, length))


def _context(case_index: int, seed_offset: int = 0) -> SynthContext:
    seed, dominant, length, tempo, amplitude, reps, start = CASES[case_index]
    return SynthContext(
        rng=np.random.default_rng(seed + seed_offset), fps=FPS, skeletons=_skeletons(length),
        dominant=dominant, tempo=tempo, amplitude=amplitude, repetitions=reps,
        start_angles=np.stack([posture(start[0]), posture(start[1])]))


@functools.cache
def _built(name: str, case_index: int) -> tuple[PrimitiveClip, BimanualMotion]:
    ctx = _context(case_index)
    clip = PRIMITIVES[name].build(ctx)
    return clip, clip_to_motion(clip, ctx.skeletons, FPS)


def _cases(name: str):
    for index in range(len(CASES)):
        clip, motion = _built(name, index)
        yield index, clip, motion


def test_registers_every_motion_type() -> None:
    for name in TYPES:
        assert name in PRIMITIVES, name
        expected = MotionCategory.SINGLE_HAND if name in SINGLE else \
            MotionCategory.BIMANUAL_COORDINATION
        assert PRIMITIVES[name].category is expected
        assert PRIMITIVES[name].description
    assert len(SINGLE) >= 13 and len(COORDINATION) == 6


def test_postures_are_anatomical() -> None:
    lower, upper = anatomical_bounds()
    for name, angles in POSTURE_ANGLES.items():
        assert angles.shape == (15, 3)
        assert np.all(angles >= lower) and np.all(angles <= upper), name
        assert not angles.flags.writeable
    fist, open_hand = posture(Posture.FIST), posture('open')
    assert fist.flags.writeable  # a copy
    for finger in Finger:
        assert finger_flexion(fist, finger) > finger_flexion(open_hand, finger)
    # DIP about 2/3 of PIP in the curled fingers; the little finger the most bent at rest.
    relaxed = posture(Posture.RELAXED)
    for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
        mcp, pip, dip = finger_rows(finger)
        assert relaxed[dip, 0] == pytest.approx(2.0 / 3.0 * relaxed[pip, 0])
        assert relaxed[mcp, 0] > 0.0
    assert finger_flexion(relaxed, Finger.LITTLE) > finger_flexion(relaxed, Finger.INDEX)
    assert finger_rows(Finger.THUMB) == tuple(j - 1 for j in FINGER_MANO_JOINTS[Finger.THUMB])
    with pytest.raises(ConfigError, match='relaxed'):
        posture('floppy')


def test_thumb_meets_index_in_ok_and_pinch() -> None:
    from handx_gen.data.synth_motion import local_keypoints

    skeleton = default_skeleton(HandSide.RIGHT)
    for shape in (Posture.OK, Posture.PINCH):
        keypoints = local_keypoints(posture(shape), skeleton)
        gap = np.linalg.norm(keypoints[TIP_KEYPOINTS[0]] - keypoints[TIP_KEYPOINTS[1]])
        assert 0.008 < gap < 0.02, shape  # fingertip pads touching (HandX: < 2 cm)
    keypoints = local_keypoints(posture(Posture.PINCH_OPEN), skeleton)
    assert np.linalg.norm(keypoints[TIP_KEYPOINTS[0]] - keypoints[TIP_KEYPOINTS[1]]) > 0.04


@pytest.mark.parametrize('name', TYPES)
def test_clip_shapes_bounds_and_start(name: str) -> None:
    lower, upper = anatomical_bounds()
    for index, clip, _ in _cases(name):
        frames = clip.num_frames
        assert clip.angles.shape == (frames, 2, 15, 3)
        assert clip.R_world_wrist.shape == (frames, 2, 3, 3)
        assert clip.p_world_wrist.shape == (frames, 2, 3)
        assert 2.5 * FPS <= frames <= 9.0 * FPS, (name, index, frames)
        assert np.all(clip.angles >= lower - 1e-9) and np.all(clip.angles <= upper + 1e-9)
        rotation = clip.R_world_wrist
        np.testing.assert_allclose(np.swapaxes(rotation, -1, -2) @ rotation,
                                   np.broadcast_to(np.eye(3), rotation.shape), atol=1e-9)
        assert np.all(np.linalg.det(rotation) > 0.0)
        # The clip starts from the context's start posture and moves continuously.
        np.testing.assert_allclose(clip.angles[0], _context(index).start_angles, atol=1e-9)
        assert np.abs(np.diff(clip.angles, axis=0)).max() < MAX_JOINT_STEP_RAD
        json.dumps(clip.params)
        assert clip.label


@pytest.mark.parametrize('name', TYPES)
def test_contacts_are_the_realised_thumb_touches(name: str) -> None:
    """The plan lists the thumb-tip-on-fingertip touches the geometry realises (the pinch and
    the OK sign by design, the thumb closing over the index in a fist), nothing between the
    hands, and they match the surface proxy's contact events on the motion's keypoints."""
    config = ContactConfig()
    for index, clip, motion in _cases(name):
        keypoints = motion.keypoints.astype(np.float64)
        for side in HandSide:
            surface = hand_surface(keypoints[:, side], side)
            for thumb, tip in SELF_CONTACT_PAIRS:
                distance = part_distance(surface, thumb, surface, tip).distance
                realised = contact_intervals(distance, FPS, config)
                planned = [(c.start, c.stop) for c in clip.contacts
                           if c.a == PartRef(side, thumb) and c.b == PartRef(side, tip)]
                assert len(planned) == len(realised), (name, index, side, tip)
                for (a0, a1), (b0, b1) in zip(planned, realised, strict=True):
                    assert abs(a0 - b0) <= 1 and abs(a1 - b1) <= 1, (name, index, side, tip)
        for contact in clip.contacts:
            assert contact.a.side == contact.b.side
            assert (contact.a.part, contact.b.part) in SELF_CONTACT_PAIRS
    by_design = {'pinch': HandPart.INDEX_TIP, 'ok_sign': HandPart.INDEX_TIP,
                 'fist': HandPart.INDEX_TIP}
    if name in by_design:
        for index, clip, _ in _cases(name):
            dominant = CASES[index][1]
            assert any(c.a == PartRef(dominant, HandPart.THUMB_TIP)
                       and c.b == PartRef(dominant, by_design[name])
                       and c.stop - c.start >= 3 for c in clip.contacts), (name, index)


@pytest.mark.parametrize('name', TYPES)
def test_wrists_in_front_of_the_body(name: str) -> None:
    for index, _, motion in _cases(name):
        wrists = motion.keypoints[:, :, 0]  # (T, 2, 3)
        assert np.all((wrists[..., 2] > 0.85) & (wrists[..., 2] < 1.4)), (name, index)
        assert np.all((wrists[..., 1] > 0.12) & (wrists[..., 1] < 0.55)), (name, index)
        # Each hand stays on its own side of the body's midline.
        assert np.all(wrists[:, HandSide.LEFT, 0] < -0.03) and \
            np.all(wrists[:, HandSide.RIGHT, 0] > 0.03), (name, index)


@pytest.mark.parametrize('name', SINGLE)
def test_single_hand_types_move_the_dominant_hand(name: str) -> None:
    for index, clip, motion in _cases(name):
        dominant = CASES[index][1]
        assert dominant.name.lower() in clip.label
        wrists = motion.keypoints[:, :, 0]  # (T, 2, 3)
        travel = np.linalg.norm(np.ptp(wrists, axis=0), axis=-1)  # (2,)
        assert travel[dominant.other] < 0.02, (name, index)  # the other hand rests
        tips = motion.keypoints[:, :, list(TIP_KEYPOINTS)]
        fingers_moved = np.linalg.norm(np.ptp(tips - motion.keypoints[:, :, :1], axis=0),
                                       axis=-1)
        assert fingers_moved[dominant].max() > 0.03
        assert all(action.side == dominant for action in clip.finger_actions
                   if action.action is not FingerAction.HOLD and action.start > 0.8 * FPS)


@pytest.mark.parametrize('name', COORDINATION)
def test_coordination_types_keep_the_hands_apart(name: str) -> None:
    for index, _, motion in _cases(name):
        keypoints = motion.keypoints.astype(np.float64)
        left = hand_surface(keypoints[:, HandSide.LEFT], HandSide.LEFT)
        right = hand_surface(keypoints[:, HandSide.RIGHT], HandSide.RIGHT)
        assert inter_hand_penetration(left, right).max() == 0.0
        gap = part_distance_matrix(left, right).min(axis=(-2, -1))  # (T,)
        assert gap.min() > MIN_CLEARANCE_M, (name, index, gap.min())
        wrists = keypoints[:, :, 0]
        travel = np.linalg.norm(np.ptp(wrists, axis=0), axis=-1)  # (2,)
        assert travel.min() > 0.03  # both hands take part


@pytest.mark.parametrize('name', TYPES)
def test_finger_actions_agree_with_the_flexion(name: str) -> None:
    for index, clip, _ in _cases(name):
        for action in clip.finger_actions:
            assert 0 <= action.start < action.stop <= clip.num_frames
            flexion = np.degrees(finger_flexion(clip.angles[:, action.side], action.finger))
            span = flexion[action.start:action.stop]
            # The move ends on the key, at the interval's last frame or the one after it.
            change = flexion[min(action.stop, clip.num_frames - 1)] - flexion[action.start]
            where = (name, index, action)
            if action.action is FingerAction.BEND:
                assert change > MIN_ACTION_DEG, where
            elif action.action is FingerAction.EXTEND:
                assert change < -MIN_ACTION_DEG, where
            else:
                assert np.ptp(span) < HOLD_DEG, where
        # Actions of one finger do not overlap.
        by_finger: dict = {}
        for action in clip.finger_actions:
            by_finger.setdefault((action.side, action.finger), []).append(action)
        for actions in by_finger.values():
            ordered = sorted(actions, key=lambda a: a.start)
            assert all(a.stop <= b.start for a, b in zip(ordered[:-1], ordered[1:], strict=True))


@pytest.mark.parametrize('name', TYPES)
def test_every_large_flexion_change_is_planned(name: str) -> None:
    """A finger whose flexion changes by 25 deg within half a second lies in a planned bend or
    extension of that finger."""
    window = int(0.5 * FPS)
    for index, clip, _ in _cases(name):
        for side in HandSide:
            for finger in Finger:
                flexion = np.degrees(finger_flexion(clip.angles[:, side], finger))
                planned = np.zeros(clip.num_frames, dtype=bool)
                for action in clip.finger_actions:
                    if (action.side, action.finger) == (side, finger) and \
                            action.action is not FingerAction.HOLD:
                        planned[action.start:action.stop] = True
                for start in range(0, clip.num_frames - window):
                    if abs(flexion[start + window] - flexion[start]) > 25.0:
                        assert planned[start:start + window + 1].any(), (name, index, side,
                                                                         finger, start)


@pytest.mark.parametrize('name', TYPES)
def test_filters_keep_the_motion_and_speeds_are_human(name: str) -> None:
    for index, _, motion in _cases(name):
        skeletons = _skeletons(CASES[index][2])
        result = filter_motion(motion, skeletons=skeletons)
        assert result.kept_fraction >= 0.95, (name, index, [d.detail for d in result.dropped])
        tips = motion.keypoints[:, :, list(TIP_KEYPOINTS)].astype(np.float64)
        speed = np.linalg.norm(np.diff(tips, axis=0), axis=-1) * FPS
        assert speed.max() < MAX_FINGERTIP_SPEED_M_S, (name, index, speed.max())


@pytest.mark.parametrize('name', TYPES)
def test_deterministic_and_varied_by_seed(name: str) -> None:
    first, second = PRIMITIVES[name].build(_context(0)), PRIMITIVES[name].build(_context(0))
    np.testing.assert_array_equal(first.angles, second.angles)
    np.testing.assert_array_equal(first.p_world_wrist, second.p_world_wrist)
    assert first.finger_actions == second.finger_actions and first.label == second.label
    others = [PRIMITIVES[name].build(_context(0, offset)) for offset in (1, 2, 3)]
    assert any(o.num_frames != first.num_frames or o.params != first.params for o in others)


@pytest.mark.parametrize('name', TYPES)
def test_left_dominant_clip_is_the_mirror_image(name: str) -> None:
    def build(dominant: HandSide) -> PrimitiveClip:
        ctx = _context(0)
        return PRIMITIVES[name].build(SynthContext(
            rng=np.random.default_rng(7), fps=FPS, skeletons=ctx.skeletons, dominant=dominant,
            tempo=1.0, amplitude=1.0, repetitions=2, start_angles=ctx.start_angles))

    right, left = build(HandSide.RIGHT), build(HandSide.LEFT)
    flip = np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(left.angles, right.angles[:, ::-1], atol=1e-12)
    np.testing.assert_allclose(left.p_world_wrist, right.p_world_wrist[:, ::-1] * flip,
                               atol=1e-12)
    np.testing.assert_allclose(left.R_world_wrist,
                               right.R_world_wrist[:, ::-1] * flip[:, None] * flip[None, :],
                               atol=1e-12)
    assert sorted((a.side.other, a.finger, a.start, a.stop, a.action.value)
                  for a in right.finger_actions) == \
        sorted((a.side, a.finger, a.start, a.stop, a.action.value) for a in left.finger_actions)
