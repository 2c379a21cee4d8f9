"""Tests for handx_gen.annotate.features: features of constructed clips with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from handx_gen.annotate.features import (
    MOTION_FEATURES_FORMAT,
    ContactEvent,
    Coordination,
    FeatureConfig,
    FlexionBin,
    MotionFeatures,
    PalmFacing,
    PalmPair,
    RelativePosition,
    RepetitionSource,
    SpeedPhase,
    _dominant,
    extract_features,
    reportable_contacts,
)
from handx_gen.annotate.surface import hand_surface
from handx_gen.data.plan import FingerAction, PlannedContact
from handx_gen.data.smplh import NUM_SMPLH_JOINTS
from handx_gen.data.sources import SourceKind, load_source
from handx_gen.errors import ConfigError, MotionError, MotionFormatError
from handx_gen.hand import (
    Finger,
    HandSide,
    anatomical_to_pose,
    axis_angle_to_matrix,
    default_skeleton,
    matrix_to_axis_angle,
)
from handx_gen.hand.limits import POSE_JOINT_NAMES
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.motion import BimanualMotion

FPS = 30.0
LEFT, RIGHT = HandSide.LEFT, HandSide.RIGHT


def _rotation(*turns: tuple[int, float]) -> np.ndarray:
    """Axis-angle of a product of rotations about world axes ((axis, degrees), applied last
    first)."""
    matrix = np.eye(3)
    for axis, degrees in turns:
        vector = np.zeros(3)
        vector[axis] = math.radians(degrees)
        matrix = matrix @ axis_angle_to_matrix(vector)
    return matrix_to_axis_angle(matrix)


# Palms facing each other, fingers forward (+y), thumbs up (as in the demo clip).
FACING = np.stack([_rotation((2, 90.0)), _rotation((2, -90.0))])  # (2, 3)
# Palms down, fingers forward.
PALMS_DOWN = np.stack([_rotation((2, 90.0), (0, 90.0)), _rotation((2, -90.0), (0, 90.0))])


def _angles(num_frames: int, **degrees: tuple[float, float, float]) -> np.ndarray:
    """(T, 15, 3) anatomical angles in radians, the named joints set for every frame."""
    angles = np.zeros((num_frames, 15, 3))
    for name, values in degrees.items():
        angles[:, POSE_JOINT_NAMES.index(name)] = np.radians(values)
    return angles


def _motion(num_frames: int, *, angles: np.ndarray | None = None,
            transl: np.ndarray | None = None, orient: np.ndarray = FACING) -> BimanualMotion:
    """A clip from anatomical angles (T, 2, 15, 3) radians; default: flat hands, palms facing
    each other 0.3 m apart at 1 m height."""
    if angles is None:
        angles = np.zeros((num_frames, 2, 15, 3))
    if transl is None:
        transl = np.tile([[-0.15, 0.3, 1.0], [0.15, 0.3, 1.0]], (num_frames, 1, 1))
    pose = np.stack([anatomical_to_pose(angles[:, side], default_skeleton(side))
                     for side in HandSide], axis=1)
    orient = np.broadcast_to(orient, (num_frames, 2, 3))
    return BimanualMotion.from_mano(FPS, orient, pose, transl)


def _minimum_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _spans(spans) -> list[tuple[int, int, str]]:
    return [(s.start, s.stop, s.label.value) for s in spans]


def _inter(features: MotionFeatures) -> list[ContactEvent]:
    return [c for c in features.contacts if c.inter_hand]


# ---------------------------------------------------------------------------- contacts


def test_palms_pressed_together_are_one_palm_palm_contact() -> None:
    num_frames = 40
    gap = np.full(num_frames, 0.10)  # wrist (and palm mid plane) distance from x = 0
    gap[10:20] = 0.019  # the thenar eminences (part of the palm) meet, within a mm
    transl = np.zeros((num_frames, 2, 3))
    transl[:, LEFT, 0], transl[:, RIGHT, 0] = -gap, gap
    transl[:, :, 1:] = [0.3, 1.0]
    angles = np.zeros((num_frames, 2, 15, 3))
    angles[:, :] = _angles(num_frames, thumb1=(0.0, -10.0, 0.0))[:, None]  # thumbs in plane
    features = extract_features(_motion(num_frames, angles=angles, transl=transl))

    (event,) = features.contacts
    assert (event.a, event.b) == (PartRef(LEFT, HandPart.PALM), PartRef(RIGHT, HandPart.PALM))
    assert abs(event.start - 10) <= 1 and abs(event.stop - 20) <= 1
    assert abs(event.min_distance_m) < 0.003
    assert event.inter_hand


def test_fingertips_meeting_are_finger_level_contacts() -> None:
    # Canonical orientation: left fingers along +x, right fingers along -x, palms down; the
    # middle fingertips (the longest fingers) meet at x = 0.
    num_frames = 30
    transl = np.tile([[-0.185, 0.3, 1.0], [0.185, 0.3, 1.0]], (num_frames, 1, 1))
    transl[:10, LEFT, 0] -= 0.05
    features = extract_features(_motion(num_frames, transl=transl, orient=np.zeros((2, 3))))
    events = _inter(features)
    pairs = {(e.a.part, e.b.part) for e in events}
    assert (HandPart.MIDDLE_TIP, HandPart.MIDDLE_TIP) in pairs
    assert not any(part in (HandPart.PALM, HandPart.BACK) for pair in pairs for part in pair)
    assert not any(HandPart(p).finger is not None and not HandPart(p).is_tip
                   for pair in pairs for p in pair)  # tips, not shafts
    middle = next(e for e in events if e.a.part == HandPart.MIDDLE_TIP
                  and e.b.part == HandPart.MIDDLE_TIP)
    assert abs(middle.start - 10) <= 1 and middle.stop == num_frames


def test_index_tip_pressing_the_other_palm_is_one_tip_palm_contact() -> None:
    num_frames = 40
    angles = np.zeros((num_frames, 2, 15, 3))
    curled = {f'{finger}{k}': (deg, 0.0, 0.0) for finger in ('middle', 'ring', 'little')
              for k, deg in ((1, 80.0), (2, 95.0), (3, 60.0))}
    angles[:, RIGHT] = _angles(1, thumb1=(30.0, 0.0, 0.0), thumb2=(40.0, 0.0, 0.0),
                               thumb3=(40.0, 0.0, 0.0), **curled)[0]  # pointing
    # Left palm up, fingers forward; right index pointing down onto it.
    orient = np.stack([_rotation((2, 90.0), (0, -90.0)), _rotation((1, -90.0))])
    transl = np.tile([[0.0, 0.3, 1.0], [0.0, 0.0, 0.0]], (num_frames, 1, 1))
    first = _motion(1, angles=angles[:1], transl=transl[:1], orient=orient)
    left = hand_surface(first.keypoints[0, LEFT].astype(np.float64), LEFT)
    assert left.palm_normal[2] > 0.99
    # Index fingertip keypoint (skin at the end of the finger) 1 mm into the palm's face.
    target = left.palm_centre + (left.palm_half_thickness - 0.001) * left.palm_normal
    transl[:, RIGHT] += target - first.keypoints[0, RIGHT, 8]
    transl[:10, RIGHT, 2] += 0.03
    transl[20:, RIGHT, 2] += 0.03
    features = extract_features(_motion(num_frames, angles=angles, transl=transl,
                                        orient=orient))
    (event,) = features.contacts
    assert (event.a, event.b) == (PartRef(LEFT, HandPart.PALM),
                                  PartRef(RIGHT, HandPart.INDEX_TIP))
    assert abs(event.start - 10) <= 1 and abs(event.stop - 20) <= 1


def test_dominance_rules_keep_the_specific_event() -> None:
    palm = ContactEvent(10, 20, PartRef(LEFT, HandPart.PALM), PartRef(RIGHT, HandPart.PALM),
                        -0.001)
    fingers = ContactEvent(9, 21, PartRef(LEFT, HandPart.INDEX), PartRef(RIGHT, HandPart.INDEX),
                           0.002)
    tip = ContactEvent(30, 40, PartRef(LEFT, HandPart.PALM),
                       PartRef(RIGHT, HandPart.INDEX_TIP), 0.0)
    shaft = ContactEvent(31, 40, PartRef(LEFT, HandPart.PALM), PartRef(RIGHT, HandPart.INDEX),
                         0.001)
    late = ContactEvent(50, 60, PartRef(LEFT, HandPart.INDEX_TIP),
                        PartRef(RIGHT, HandPart.PALM), 0.0)
    assert _dominant([palm, fingers, tip, shaft, late], 0.5) == [palm, tip, late]
    # A finger touch mostly outside the palm-palm contact stays.
    early = ContactEvent(0, 14, PartRef(LEFT, HandPart.INDEX_TIP),
                         PartRef(RIGHT, HandPart.INDEX_TIP), 0.0)
    assert _dominant([palm, early], 0.5) == [palm, early]


def test_reportable_contacts_filters_a_plan_like_list() -> None:
    palm = PlannedContact(10, 20, PartRef(LEFT, HandPart.PALM), PartRef(RIGHT, HandPart.PALM))
    thumbs = PlannedContact(10, 19, PartRef(RIGHT, HandPart.THUMB),  # right hand first
                            PartRef(LEFT, HandPart.THUMB_TIP))
    side_by_side = PlannedContact(0, 40, PartRef(LEFT, HandPart.INDEX_TIP),
                                  PartRef(LEFT, HandPart.MIDDLE_TIP))
    pinch = PlannedContact(25, 30, PartRef(RIGHT, HandPart.THUMB_TIP),
                           PartRef(RIGHT, HandPart.INDEX_TIP))
    fist = PlannedContact(25, 30, PartRef(RIGHT, HandPart.RING_TIP),
                          PartRef(RIGHT, HandPart.PALM))
    assert reportable_contacts([palm, thumbs, side_by_side, pinch, fist]) == [palm, pinch]


def test_thumb_index_pinch_is_a_same_hand_contact() -> None:
    num_frames = 40
    angles = np.zeros((num_frames, 2, 15, 3))
    pinch = _angles(1, thumb1=(25.0, 32.0, -30.0), thumb2=(21.0, 0.0, 0.0),
                    thumb3=(20.0, 0.0, 0.0), index1=(50.0, 0.0, 0.0), index2=(47.0, 0.0, 0.0),
                    index3=(22.0, 0.0, 0.0))[0]
    angles[10:30, RIGHT] = pinch
    features = extract_features(_motion(num_frames, angles=angles))
    (event,) = features.contacts
    assert (event.a, event.b) == (PartRef(RIGHT, HandPart.THUMB_TIP),
                                  PartRef(RIGHT, HandPart.INDEX_TIP))
    assert not event.inter_hand
    assert abs(event.start - 10) <= 1 and abs(event.stop - 30) <= 1
    right = features.hand(RIGHT)
    assert right.finger(Finger.INDEX).thumb_distance_min_m < 0.03  # pads meet, ends apart
    assert right.finger(Finger.LITTLE).thumb_distance_min_m > 0.04
    assert right.finger(Finger.THUMB).thumb_distance_min_m is None


# ---------------------------------------------------------------------------- fingers


def test_finger_bending_over_one_second_is_a_bend_event() -> None:
    num_frames = 120
    w = _minimum_jerk((np.arange(num_frames) - 30) / 30.0)  # 0 -> 1 over frames 30-60
    angles = np.zeros((num_frames, 2, 15, 3))
    for name, degrees in (('index1', 70.0), ('index2', 90.0), ('index3', 50.0)):
        angles[:, RIGHT, POSE_JOINT_NAMES.index(name), 0] = np.radians(degrees) * w
    features = extract_features(_motion(num_frames, angles=angles))

    index = features.hand(RIGHT).finger(Finger.INDEX)
    actions = [e.action for e in index.events]
    assert actions == [FingerAction.HOLD, FingerAction.BEND, FingerAction.HOLD]
    bend = index.events[1]
    assert abs(bend.start - 30) <= 4 and abs(bend.stop - 60) <= 4
    assert bend.start_deg < 5.0 and bend.stop_deg > 65.0
    assert 100.0 < bend.peak_speed_deg_s < 150.0  # 70 deg min-jerk over 1 s: 131 deg/s
    # The quick pass through 'bent' (30-60 deg) is shorter than min_span_s and absorbed.
    assert [b.label for b in index.bins] == [FlexionBin.EXTENDED, FlexionBin.CURLED]
    assert abs(index.bins[1].start - 45) <= 3
    assert index.max_deg == pytest.approx(70.0, abs=0.5)
    for hand in features.hands:
        for finger in hand.fingers:
            if (hand.side, finger.finger) != (RIGHT, Finger.INDEX):
                assert [(e.start, e.stop, e.action) for e in finger.events] == \
                    [(0, num_frames, FingerAction.HOLD)]
    # The events of every finger cover the clip.
    assert len(features.flexion_events) == 3 + 9


def test_spread_fingers() -> None:
    num_frames = 30
    spread = _angles(num_frames, index1=(0.0, 20.0, 0.0), middle1=(0.0, 0.0, 0.0),
                     ring1=(0.0, 20.0, 0.0), little1=(0.0, 20.0, 0.0))
    angles = np.stack([np.zeros_like(spread), spread], axis=1)
    features = extract_features(_motion(num_frames, angles=angles))
    assert _spans(features.hand(LEFT).spread) == [(0, num_frames, 'together')]
    assert _spans(features.hand(RIGHT).spread) == [(0, num_frames, 'spread')]
    assert features.hand(RIGHT).spread_pairs_deg[1] == pytest.approx(25.0, abs=1.0)


# ---------------------------------------------------------------------------- relations


@pytest.mark.parametrize(('dz', 'expected'), [(0.25, RelativePosition.ABOVE),
                                              (-0.25, RelativePosition.BELOW)])
def test_right_hand_above_or_below_the_left(dz: float, expected: RelativePosition) -> None:
    num_frames = 30
    transl = np.tile([[-0.1, 0.3, 1.0], [0.1, 0.3, 1.0 + dz]], (num_frames, 1, 1))
    relations = extract_features(_motion(num_frames, transl=transl)).relations
    assert _spans(relations.vertical) == [(0, num_frames, expected.value)]
    assert _spans(relations.lateral) == [(0, num_frames, 'right')]
    assert _spans(relations.depth) == [(0, num_frames, 'level')]
    assert relations.distance_mean_m == pytest.approx(math.hypot(0.2, dz), abs=1e-3)


def test_palm_facing() -> None:
    num_frames = 30
    facing = extract_features(_motion(num_frames))
    for hand in facing.hands:
        assert [s.label for s in hand.palm_facing] == [PalmFacing.TOWARDS_OTHER]
    assert [s.label for s in facing.relations.palm_pair] == [PalmPair.FACING_EACH_OTHER]

    down = extract_features(_motion(num_frames, orient=PALMS_DOWN))
    for hand in down.hands:
        assert [s.label for s in hand.palm_facing] == [PalmFacing.DOWN]
    assert [s.label for s in down.relations.palm_pair] == [PalmPair.SAME_DIRECTION]

    up = extract_features(_motion(num_frames, orient=np.stack(
        [_rotation((2, 90.0), (0, -90.0)), _rotation((2, -90.0), (0, -90.0))])))
    assert [s.label for s in up.hand(LEFT).palm_facing] == [PalmFacing.UP]


def test_hands_approaching_and_separating() -> None:
    num_frames = 90
    t = np.arange(num_frames)
    gap = 0.20 - 0.12 * _minimum_jerk((t - 15) / 20.0) + 0.12 * _minimum_jerk((t - 55) / 20.0)
    transl = np.zeros((num_frames, 2, 3))
    transl[:, LEFT, 0], transl[:, RIGHT, 0] = -gap, gap
    transl[:, :, 1:] = [0.3, 1.0]
    relations = extract_features(_motion(num_frames, transl=transl)).relations
    labels = [s.label.value for s in relations.distance_trend]
    assert labels == ['steady', 'approaching', 'steady', 'separating', 'steady']
    approach = relations.distance_trend[1]
    assert abs(approach.start - 15) <= 4 and abs(approach.stop - 35) <= 4
    assert relations.distance_min_m == pytest.approx(0.16, abs=0.005)


# ---------------------------------------------------------------------------- dynamics


def _moving_transl(num_frames: int, left_x: np.ndarray, right_x: np.ndarray,
                   left_z: np.ndarray | float = 0.0, right_z: np.ndarray | float = 0.0
                   ) -> np.ndarray:
    transl = np.tile([[-0.2, 0.3, 1.0], [0.2, 0.3, 1.0]], (num_frames, 1, 1))
    transl[:, LEFT, 0] += left_x
    transl[:, RIGHT, 0] += right_x
    transl[:, LEFT, 2] += left_z
    transl[:, RIGHT, 2] += right_z
    return transl


def test_wave_at_two_hz_is_a_repetition() -> None:
    num_frames = 120
    t = np.arange(num_frames) / FPS
    active = (t >= 0.5) & (t < 3.5)
    wave = np.where(active, 0.05 * np.sin(2 * math.pi * 2.0 * (t - 0.5)), 0.0)
    features = extract_features(_motion(
        num_frames, transl=_moving_transl(num_frames, np.zeros(num_frames), wave)))
    right = features.hand(RIGHT)
    (repetition,) = right.repetitions
    assert repetition.source is RepetitionSource.WRIST
    assert repetition.rate_hz == pytest.approx(2.0, abs=0.1)
    assert 5 <= repetition.count <= 7
    assert abs(repetition.start - 15) <= 6 and abs(repetition.stop - 105) <= 6
    assert repetition.strength > 0.8
    assert features.hand(LEFT).repetitions == ()
    assert features.coordination.one_hand
    assert features.coordination is Coordination.RIGHT_ONLY


def test_turning_the_hand_is_a_repetition() -> None:
    # Palm down, fingers forward; the right forearm turns the palm +-45 deg about the finger
    # direction (world y) at 1 Hz for 3 s: the knuckles barely move, the palm normal swings.
    num_frames = 90
    t = np.arange(num_frames) / FPS
    angle = 45.0 * np.sin(2 * math.pi * 1.0 * t)
    orient = np.broadcast_to(PALMS_DOWN, (num_frames, 2, 3)).copy()
    orient[:, RIGHT] = [_rotation((1, a), (2, -90.0), (0, 90.0)) for a in angle]
    features = extract_features(_motion(num_frames, orient=orient))
    (repetition,) = features.hand(RIGHT).repetitions
    assert repetition.source is RepetitionSource.WRIST
    assert repetition.rate_hz == pytest.approx(1.0, abs=0.1)
    assert repetition.count == 3
    assert features.hand(LEFT).repetitions == ()


def test_finger_tapping_is_a_finger_repetition() -> None:
    num_frames = 90
    t = np.arange(num_frames) / FPS
    tap = np.radians(40.0) * 0.5 * (1 - np.cos(2 * math.pi * 1.5 * t))  # 1.5 Hz
    angles = np.zeros((num_frames, 2, 15, 3))
    angles[:, LEFT, POSE_JOINT_NAMES.index('middle1'), 0] = tap
    angles[:, LEFT, POSE_JOINT_NAMES.index('middle2'), 0] = tap
    features = extract_features(_motion(num_frames, angles=angles))
    repetitions = [r for r in features.hand(LEFT).repetitions
                   if r.source is RepetitionSource.FINGERS]
    (repetition,) = repetitions
    assert repetition.fingers == (Finger.MIDDLE,)
    assert repetition.rate_hz == pytest.approx(1.5, abs=0.1)
    assert repetition.count in (4, 5)
    assert features.coordination is Coordination.LEFT_ONLY


def test_one_hand_only() -> None:
    num_frames = 90
    t = np.arange(num_frames)
    reach = 0.2 * _minimum_jerk((t - 10) / 30.0) - 0.2 * _minimum_jerk((t - 50) / 30.0)
    transl = _moving_transl(num_frames, np.zeros(num_frames), np.zeros(num_frames))
    transl[:, RIGHT, 1] += reach
    features = extract_features(_motion(num_frames, transl=transl))
    assert features.coordination is Coordination.RIGHT_ONLY
    assert [s.label for s in features.hand(LEFT).speed_phases] == [SpeedPhase.PAUSE]
    phases = _spans(features.hand(RIGHT).speed_phases)
    assert [p[2] for p in phases] == ['pause', 'moving', 'pause', 'moving', 'pause']
    assert abs(phases[1][0] - 10) <= 4 and abs(phases[3][1] - 80) <= 4
    assert features.hand(RIGHT).peak_speed_m_s == pytest.approx(1.875 * 0.2 / 1.0, rel=0.1)


@pytest.mark.parametrize('mode', ['mirrored', 'together', 'alternating', 'antiphase'])
def test_coordination_modes(mode: str) -> None:
    num_frames = 120
    t = np.arange(num_frames) / FPS
    swing = 0.06 * np.sin(2 * math.pi * 1.0 * t)
    zeros = np.zeros(num_frames)
    if mode == 'mirrored':  # apart and together again (like clapping without the touch)
        transl = _moving_transl(num_frames, -swing, swing)
    elif mode == 'together':  # both sway to the same side
        transl = _moving_transl(num_frames, swing, swing)
    elif mode == 'antiphase':  # one up while the other goes down
        transl = _moving_transl(num_frames, zeros, zeros, swing, -swing)
    else:  # turn taking: each hand lifts and lowers in every other half second
        bump = 0.08 * np.sin(2 * math.pi * t) ** 2  # zero at every half second
        phase = (t // 0.5).astype(int) % 2 == 0
        transl = _moving_transl(num_frames, zeros, zeros, np.where(phase, bump, 0.0),
                                np.where(phase, 0.0, bump))
    features = extract_features(_motion(num_frames, transl=transl))
    expected = {'mirrored': Coordination.MIRRORED, 'together': Coordination.TOGETHER,
                'alternating': Coordination.ALTERNATING,
                'antiphase': Coordination.ALTERNATING}[mode]
    assert features.coordination is expected, _spans(features.coordination_spans)


def test_still_clip() -> None:
    features = extract_features(_motion(20))
    assert features.coordination is Coordination.STILL
    assert features.contacts == ()
    assert all(h.repetitions == () for h in features.hands)


# ---------------------------------------------------------------------------- sources


def _bend_clip(num_frames: int = 60) -> BimanualMotion:
    """Both hands bend the index finger over frames 15-40, palms facing each other."""
    w = _minimum_jerk((np.arange(num_frames) - 15) / 25.0)
    angles = np.zeros((num_frames, 2, 15, 3))
    for name, degrees in (('index1', 70.0), ('index2', 90.0), ('index3', 50.0)):
        angles[:, :, POSE_JOINT_NAMES.index(name), 0] = np.radians(degrees) * w[:, None]
    return _motion(num_frames, angles=angles)


def test_features_of_every_source_kind(tmp_path: Path) -> None:
    clip = _bend_clip()
    num_frames = clip.num_frames
    paths = {SourceKind.MOTION: clip.save(tmp_path / 'clip.handx.npz')}
    paths[SourceKind.MANO] = tmp_path / 'clip.mano.npz'
    np.savez(paths[SourceKind.MANO], fps=np.array(FPS), global_orient=clip.global_orient,
             hand_pose=clip.hand_pose, transl=clip.transl)
    poses = np.zeros((num_frames, NUM_SMPLH_JOINTS, 3))  # standing body, T-pose
    poses[:, 0] = [math.pi / 2, 0.0, 0.0]
    poses[:, 22:37] = clip.hand_pose[:, LEFT]
    poses[:, 37:52] = clip.hand_pose[:, RIGHT]
    paths[SourceKind.AMASS_SMPLH] = tmp_path / 'clip.smplh.npz'
    np.savez(paths[SourceKind.AMASS_SMPLH], poses=poses.reshape(num_frames, -1),
             trans=np.tile([0.0, 0.0, 0.95], (num_frames, 1)), mocap_framerate=np.array(FPS),
             betas=np.zeros(16))
    rng = np.random.default_rng(0)
    noisy = clip.keypoints + rng.normal(scale=0.001, size=clip.keypoints.shape)
    paths[SourceKind.KEYPOINTS] = tmp_path / 'clip.tracker.npz'
    np.savez(paths[SourceKind.KEYPOINTS], fps=np.array(FPS), keypoints=noisy.astype(np.float32))

    for kind, path in paths.items():
        reading = load_source(path)
        assert reading.kind is kind
        features = extract_features(reading.motion)
        assert MotionFeatures.from_dict(json.loads(json.dumps(features.to_dict()))) == features
        for side in HandSide:
            index = features.hand(side).finger(Finger.INDEX)
            bends = [e for e in index.events if e.action is FingerAction.BEND]
            assert len(bends) == 1, (kind, side, index.events)
            assert abs(bends[0].start - 15) <= 5 and abs(bends[0].stop - 40) <= 5, kind
            middle = features.hand(side).finger(Finger.MIDDLE)
            assert all(e.action is FingerAction.HOLD for e in middle.events), kind
        if kind is not SourceKind.AMASS_SMPLH:  # the body's T-pose puts the hands elsewhere
            assert [s.label for s in features.relations.palm_pair] == \
                [PalmPair.FACING_EACH_OTHER], kind


# ---------------------------------------------------------------------------- record


def test_json_round_trip_with_curves() -> None:
    clip = _bend_clip()
    features = extract_features(clip, FeatureConfig(keep_curves=True))
    data = json.loads(json.dumps(features.to_dict()))
    assert data['format'] == MOTION_FEATURES_FORMAT
    again = MotionFeatures.from_dict(data)
    assert again == features
    index = again.hand(RIGHT).finger(Finger.INDEX)
    assert len(index.flexion_deg) == clip.num_frames
    assert len(again.hand(LEFT).speed_m_s) == clip.num_frames
    assert len(again.relations.distance_m) == clip.num_frames
    plain = extract_features(clip)
    assert plain.hand(RIGHT).finger(Finger.INDEX).flexion_deg == ()
    assert plain.hand(RIGHT).finger(Finger.INDEX).events == index.events

    with pytest.raises(MotionFormatError, match='handx-motion-features/1'):
        MotionFeatures.from_dict(dict(data, format='handx-features/0'))
    broken = dict(data)
    del broken['relations']
    with pytest.raises(MotionFormatError, match='malformed'):
        MotionFeatures.from_dict(broken)


def test_config_validation() -> None:
    config = FeatureConfig.from_dict({'min_flexion_change_deg': 15,
                                      'contact': {'touch_gap_m': 0.004}})
    assert config.min_flexion_change_deg == 15 and config.contact.touch_gap_m == 0.004
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown feature config key 'bogus'.*'keep_curves'"):
        FeatureConfig.from_dict({'bogus': 1})
    with pytest.raises(ConfigError, match='moving_speed_m_s'):
        FeatureConfig(moving_speed_m_s=-1.0)
    with pytest.raises(ConfigError, match='extended_below_deg'):
        FeatureConfig(extended_below_deg=70.0)
    with pytest.raises(MotionError, match='BimanualMotion'):
        extract_features('clip.npz')  # type: ignore[arg-type]
    with pytest.raises(MotionError, match='at least 2 frames'):
        extract_features(_motion(1))


# ---------------------------------------------------------------------------- one hand absent


def _without(motion: BimanualMotion, side: HandSide) -> BimanualMotion:
    present = np.ones(2, dtype=bool)
    present[side] = False
    return BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose, motion.transl,
                          motion.keypoints, present=present)


def test_an_absent_hand_is_measured_nowhere() -> None:
    """Palms pressed together, a right-hand pinch and a left-hand wave: with the left hand
    absent only the right hand's pinch and its own features remain; no contact between the
    hands, no relations, no palm facing the other hand, and the coordination is the right
    hand's alone."""
    num_frames = 60
    gap = np.full(num_frames, 0.10)
    gap[10:20] = 0.019  # the palms meet
    transl = np.zeros((num_frames, 2, 3))
    transl[:, LEFT, 0], transl[:, RIGHT, 0] = -gap, gap
    transl[:, :, 1:] = [0.3, 1.0]
    transl[:, LEFT, 2] += 0.05 * np.sin(2 * math.pi * 2.0 * np.arange(num_frames) / FPS)
    angles = np.zeros((num_frames, 2, 15, 3))
    angles[:, :] = _angles(num_frames, thumb1=(0.0, -10.0, 0.0))[:, None]
    angles[30:50, RIGHT] = _angles(1, thumb1=(25.0, 32.0, -30.0), thumb2=(21.0, 0.0, 0.0),
                                   thumb3=(20.0, 0.0, 0.0), index1=(50.0, 0.0, 0.0),
                                   index2=(47.0, 0.0, 0.0), index3=(22.0, 0.0, 0.0))[0]
    both = _motion(num_frames, angles=angles, transl=transl)
    full = extract_features(both)
    assert _inter(full) and full.relations is not None and full.hand(LEFT).repetitions
    assert any(s.label is PalmFacing.TOWARDS_OTHER for s in full.hand(RIGHT).palm_facing)

    features = extract_features(_without(both, LEFT))
    assert features.present == (False, True) and features.present_sides == (RIGHT,)
    assert _inter(features) == [] and features.relations is None
    (pinch,) = features.contacts
    assert (pinch.a.side, pinch.b.side) == (RIGHT, RIGHT)
    left = features.hand(LEFT)
    assert left.repetitions == () and left.speed_phases == () and left.palm_facing == ()
    assert all(f.bins == () and f.events == () for f in left.fingers)
    assert not any(s.label in (PalmFacing.TOWARDS_OTHER, PalmFacing.AWAY_FROM_OTHER)
                   for s in features.hand(RIGHT).palm_facing)
    assert features.hand(RIGHT).fingers == full.hand(RIGHT).fingers  # the right hand as it is
    assert features.coordination in (Coordination.RIGHT_ONLY, Coordination.STILL)
    assert all(s.label in (Coordination.RIGHT_ONLY, Coordination.STILL)
               for s in features.coordination_spans)


def test_one_hand_records_round_trip_and_old_records_hold_both_hands() -> None:
    features = extract_features(_without(_bend_clip(), RIGHT))
    data = json.loads(json.dumps(features.to_dict()))
    assert data['present'] == [True, False] and data['relations'] is None
    assert MotionFeatures.from_dict(data) == features
    old = json.loads(json.dumps(extract_features(_bend_clip()).to_dict()))
    del old['present']  # a record written before one-hand clips
    assert MotionFeatures.from_dict(old).present == (True, True)
    with pytest.raises(MotionFormatError, match='present'):
        MotionFeatures.from_dict(dict(data, present=[False, False]))
