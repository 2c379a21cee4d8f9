"""Tests for handx_gen.eval.metrics: each metric against values worked out by hand on tiny
inputs, and the feature metrics on clips built to do (or not do) what is stated."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from handx_gen.annotate.check import ContactSpan
from handx_gen.annotate.features import Coordination, FlexionEvent, SpreadState
from handx_gen.data.plan import FingerAction
from handx_gen.eval.metrics import (
    EvalError,
    Statement,
    articulation_score,
    contact_score,
    coordination_realised,
    diversity,
    frechet_distance,
    interpenetration,
    matching_distance,
    mean_ci,
    multimodality,
    palm_frame_tips,
    plausibility,
    r_precision,
)
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.topology import Finger, HandSide
from handx_gen.motion import BimanualMotion

L, R = HandSide.LEFT, HandSide.RIGHT


# ---------------------------------------------------------------------------- embeddings


def test_frechet_distance_by_hand() -> None:
    # 1-D: means 1 and 2, variances 2 and 2 -> 1 + 2 + 2 - 2 * sqrt(2 * 2) = 1
    assert frechet_distance([[0.0], [2.0]], [[1.0], [3.0]]) == pytest.approx(1.0)
    # 2-D, equal covariances, means 5 apart: 25
    a = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert frechet_distance(a, a + [3.0, 4.0]) == pytest.approx(25.0, abs=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # variances 2 and 8 (1-D): (sqrt 2 - sqrt 8)^2 = 2
    assert frechet_distance([[-1.0], [1.0]], [[-2.0], [2.0]]) == pytest.approx(2.0)


def test_frechet_distance_refuses_bad_input() -> None:
    with pytest.raises(EvalError, match='N >= 2'):
        frechet_distance([[1.0]], [[1.0], [2.0]])
    with pytest.raises(EvalError, match='widths differ'):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(EvalError, match='NaN'):
        frechet_distance([[np.nan], [1.0]], [[1.0], [2.0]])


def test_r_precision_by_hand() -> None:
    eye = np.eye(32)
    assert r_precision(eye, eye).tolist() == [1.0, 1.0, 1.0]
    # each motion's own text is the next unit vector, and the previous text equals the motion:
    # exactly one text is closer than its own -> rank 2
    shifted = np.roll(eye, 1, axis=0)
    assert r_precision(eye, shifted).tolist() == [0.0, 1.0, 1.0]
    # 40 rows: one batch of 32, the last 8 dropped (whatever they are)
    rows = np.vstack([eye, np.zeros((8, 32))])
    assert r_precision(rows, rows).tolist() == [1.0, 1.0, 1.0]
    # shuffling the rows keeps the pairs together
    got = r_precision(eye, eye, rng=np.random.default_rng(0))
    assert got.tolist() == [1.0, 1.0, 1.0]


def test_r_precision_needs_a_full_batch_of_pairs() -> None:
    with pytest.raises(EvalError, match='at least one batch'):
        r_precision(np.eye(8), np.eye(8))
    with pytest.raises(EvalError, match='differ'):
        r_precision(np.eye(32), np.eye(32)[:, :8])


def test_matching_distance_diversity_and_multimodality_by_hand() -> None:
    motion = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert matching_distance(motion, np.zeros((2, 2))) == pytest.approx(2.5)
    assert diversity(motion, pairs=300) == pytest.approx(5.0)
    square = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])
    # every pair of distinct corners: sides 2 and diagonals 2 sqrt 2
    assert 2.0 <= diversity(square, pairs=4, rng=np.random.default_rng(1)) <= 2 * math.sqrt(2)
    groups = np.array([[[0.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [1.0, 1.0]]])
    assert multimodality(groups, pairs=10) == pytest.approx(1.0)  # (2 + 0) / 2
    with pytest.raises(EvalError, match='samples >= 2'):
        multimodality(np.zeros((3, 1, 2)))


def test_mean_ci_by_hand() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(1.96 * math.sqrt(2 / 3) / math.sqrt(3))
    assert mean_ci([4.0]) == (4.0, 0.0)
    # NaN left out: values 1 and 3, std 1 -> 1.96 / sqrt 2
    assert mean_ci([1.0, float('nan'), 3.0]) == pytest.approx((2.0, 1.96 / math.sqrt(2)))
    assert all(math.isnan(v) for v in mean_ci([]))


# ---------------------------------------------------------------------------- contacts


def _span(start: int, stop: int, a: tuple[HandSide, HandPart], b: tuple[HandSide, HandPart]
          ) -> ContactSpan:
    return ContactSpan(start, stop, PartRef(*a), PartRef(*b))


PALMS = ((L, HandPart.PALM), (R, HandPart.PALM))
INDEX_TIPS = ((L, HandPart.INDEX_TIP), (R, HandPart.INDEX_TIP))
PINCH = ((R, HandPart.THUMB_TIP), (R, HandPart.INDEX_TIP))


def test_contact_score_counts_parts_order_and_timing() -> None:
    stated = Statement(contacts=(_span(0, 30, *PALMS), _span(60, 90, *INDEX_TIPS)), fps=30.0)
    # both found, in the stated order, each 15 frames late at both ends; one extra pinch
    features = SimpleNamespace(contacts=(_span(15, 45, *PALMS), _span(75, 105, *INDEX_TIPS),
                                         _span(40, 50, *PINCH)))
    score = contact_score(stated, features)
    assert (score.stated, score.detected, score.found, score.correct) == (2, 3, 2, 2)
    assert score.recall == 1.0 and score.precision == pytest.approx(2 / 3)
    assert score.all_found
    assert (score.order_pairs, score.order_correct) == (1, 1)
    assert score.timing_error_s == pytest.approx(0.5)
    # reversed order, and a tip touch found on the shaft (same finger) still counts
    shaft = ((L, HandPart.INDEX), (R, HandPart.INDEX_TIP))
    swapped = SimpleNamespace(contacts=(_span(0, 10, *shaft), _span(50, 60, *PALMS)))
    score = contact_score(stated, swapped)
    assert score.found == 2 and (score.order_pairs, score.order_correct) == (1, 0)
    # nothing touches
    none = contact_score(stated, SimpleNamespace(contacts=()))
    assert (none.found, none.recall, none.precision, none.all_found) == (0, 0.0, None, False)
    assert none.timing_error_s is None


def test_interpenetration_of_overlapping_and_separate_hands() -> None:
    flat = _still_motion(20)
    depth, frequency = interpenetration(flat.keypoints)
    assert (depth, frequency) == (0.0, 0.0)  # 0.3 m apart
    keypoints = flat.keypoints.copy()
    keypoints[10:, 1] = keypoints[10:, 0] + [0.01, 0.0, 0.0]  # the right hand inside the left
    depth, frequency = interpenetration(keypoints)
    assert frequency == pytest.approx(0.5)
    assert depth > 0.008
    with pytest.raises(EvalError, match=r'\(T, 2, 21, 3\)'):
        interpenetration(keypoints[:, 0])


# ---------------------------------------------------------------------------- articulation


def _flexion(side: HandSide, finger: Finger, action: FingerAction) -> FlexionEvent:
    return FlexionEvent(side, finger, 0, 10, action, 0.0, 0.0, 0.0)


def _hands(spread_sides: tuple[HandSide, ...] = ()) -> tuple[SimpleNamespace, ...]:
    return tuple(SimpleNamespace(side=side, spread=(SimpleNamespace(
        label=SpreadState.SPREAD if side in spread_sides else SpreadState.NEUTRAL),))
        for side in HandSide)


def test_articulation_score_counts_actions_spread_and_pinches() -> None:
    stated = Statement(contacts=(_span(0, 10, *PINCH), _span(0, 10, *PALMS)),
                       finger_actions=((R, Finger.INDEX, FingerAction.BEND),
                                       (L, Finger.THUMB, FingerAction.EXTEND)),
                       spread=(L,))
    features = SimpleNamespace(
        flexion_events=(_flexion(R, Finger.INDEX, FingerAction.BEND),
                        _flexion(L, Finger.THUMB, FingerAction.BEND)),  # not an extension
        hands=_hands((L,)), contacts=(_span(3, 8, *PINCH),))
    # bend yes, extend no, spread yes, pinch yes; the palm contact is not articulation
    assert articulation_score(stated, features) == (3, 4)
    features = SimpleNamespace(flexion_events=(), hands=_hands(), contacts=())
    assert articulation_score(stated, features) == (0, 4)


def test_coordination_realised() -> None:
    stated = Statement(coordination=Coordination.ALTERNATING)
    assert coordination_realised(stated, SimpleNamespace(
        coordination=Coordination.ALTERNATING)) is True
    assert coordination_realised(stated, SimpleNamespace(
        coordination=Coordination.LEFT_ONLY)) is False
    mirrored = Statement(coordination=Coordination.MIRRORED)
    assert coordination_realised(mirrored, SimpleNamespace(
        coordination=Coordination.TOGETHER)) is True
    assert coordination_realised(Statement(), SimpleNamespace(
        coordination=Coordination.TOGETHER)) is None


def test_statement_from_features_of_a_still_clip() -> None:
    from handx_gen.annotate.features import extract_features

    statement = Statement.from_features(extract_features(_still_motion(40)))
    assert statement.contacts == () and statement.finger_actions == ()
    assert statement.coordination is None  # still hands state no pattern


# ---------------------------------------------------------------------------- plausibility


def _still_motion(num_frames: int, pose: np.ndarray | None = None) -> BimanualMotion:
    orient = np.tile(np.radians([[0.0, 0.0, 90.0], [0.0, 0.0, -90.0]]), (num_frames, 1, 1))
    transl = np.tile([[-0.15, 0.3, 1.0], [0.15, 0.3, 1.0]], (num_frames, 1, 1))
    hand_pose = np.zeros((num_frames, 2, 15, 3)) if pose is None else pose
    return BimanualMotion.from_mano(30.0, orient, hand_pose, transl)


def test_plausibility_of_a_still_rigid_clip_and_a_jittery_bent_one() -> None:
    still = plausibility(_still_motion(20))
    assert still.limit_violation_rate == 0.0 and still.limit_violation_deg == 0.0
    assert still.jitter_m_s3 == pytest.approx(0.0, abs=1e-6)
    assert still.bone_length_cv == pytest.approx(0.0, abs=1e-6)

    pose = np.zeros((20, 2, 15, 3))
    pose[:, 1, 0, 0] = 2.5  # right index MCP turned 143 deg about x: far out of range
    motion = _still_motion(20, pose)
    keypoints = motion.keypoints + np.random.default_rng(0).normal(0, 0.002,
                                                                   motion.keypoints.shape)
    jittery = BimanualMotion(30.0, motion.global_orient, motion.hand_pose, motion.transl,
                             keypoints.astype(np.float32))
    bad = plausibility(jittery)
    assert bad.limit_violation_rate == pytest.approx(1 / 30)  # one joint of 30, every frame
    assert bad.limit_violation_deg > 5.0
    assert bad.jitter_m_s3 > 100.0  # 2 mm noise at 30 fps
    assert bad.bone_length_cv > 0.01


def test_palm_frame_tips_ignore_the_wrist_and_see_the_fingers():
    from handx_gen.hand.kinematics import forward_kinematics
    from handx_gen.hand.rotations import axis_angle_to_matrix
    from handx_gen.hand.skeleton import default_skeleton
    from handx_gen.hand.topology import HandSide

    rng = np.random.default_rng(0)
    skeleton = default_skeleton(HandSide.RIGHT)
    pose = rng.normal(scale=0.2, size=(4, 15, 3))
    kp = np.asarray(forward_kinematics(np.zeros((4, 3)), pose, np.zeros((4, 3)), skeleton))
    R = axis_angle_to_matrix(rng.normal(size=(4, 3)))  # a different wrist pose per frame
    moved = np.einsum('tij,tkj->tki', R, kp) + rng.normal(size=(4, 1, 3))
    np.testing.assert_allclose(palm_frame_tips(moved), palm_frame_tips(kp), atol=1e-9)
    assert np.ptp(palm_frame_tips(kp), axis=0).max() > 0.005  # the fingers moved
    with pytest.raises(EvalError, match='21, 3'):
        palm_frame_tips(np.zeros((4, 20, 3)))
