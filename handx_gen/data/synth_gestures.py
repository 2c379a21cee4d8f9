"""Synthetic motion types: single-hand gestures and bimanual coordination without contact.

Motion types (registered with :func:`handx_gen.data.synth_base.register`):

* single hand (:attr:`MotionCategory.SINGLE_HAND`; the dominant hand performs, the other rests
  relaxed and lower): ``fist``, ``counting``, ``pointing``, ``thumbs_up``, ``ok_sign``,
  ``pinch``, ``finger_tapping``, ``finger_wave``, ``wrist_rotation``, ``wave``,
  ``peace_sign``, ``spread_fingers``, ``beckon``, ``grasp_air``;
* bimanual coordination (:attr:`MotionCategory.BIMANUAL_COORDINATION`; both hands move, never
  closer than :data:`MIN_CLEARANCE_M` surface to surface): ``mirrored_movement``,
  ``alternating_movement``, ``conducting``, ``showing_size``, ``rolling_hands``, ``typing``.

**Postures** (importable by the other synthesizers): :class:`Posture` names hand shapes and
:func:`posture` returns a shape as (15, 3) anatomical angles ``[flexion, abduction, twist]``
(radians, rows in MANO pose order, the same for both hands), inside
:func:`handx_gen.hand.limits.synthesis_bounds`. Finger flexion follows the usual coupling
(DIP about 2/3 of PIP, Rijpkema and Girard 1991) and a relaxed hand's cascade (the little
finger the most flexed); thumb placements (across the fist, against the index tip in the OK
sign and the pinch) were solved for the default skeleton and scale with it.
:func:`finger_rows` gives a finger's rows of the angle arrays.

**Motion** is keyframed per finger and per wrist (:class:`_HandScript`): minimum-jerk moves
between keys (:func:`handx_gen.data.synth_motion.minimum_jerk`), holds, durations divided by
the context's tempo and jittered, repetitions from the context, neighbouring fingers following
a tapping finger in part (the ring and little fingers the most), postural sway on the wrists.
The plan's finger actions are read off the keys: a finger bends or extends where its mean joint
flexion (:func:`handx_gen.data.synth_motion.finger_flexion`) changes by at least 15 degrees
between two keys, and holds where it stays within 3 degrees for 0.3 s or more (only fingers that
bend or extend somewhere in the primitive get holds). The plan's contacts are the touches within
a hand that the annotation reports, the thumb tip on another fingertip, found on the clip's own
geometry with :func:`handx_gen.annotate.surface.contact_intervals` (the pinch and the OK sign by
design; the fist closes the thumb over the index finger's distal joint). Tucked thumbs rest on a
curled finger clear of its tip, and keep out of the fingers' way while they move (they lift off
them, lead when released and follow when tucked in), so they neither graze the fingertips nor
pass through them.

**World placement** (Z up, metres): the person stands at the origin facing +y, their right
towards +x; hands work in front of the body at 0.95-1.3 m height and 0.2-0.5 m in front, each
on its own side of the midline. Wrist orientations come from where the fingers point and where
the palm faces (:func:`handx_gen.data.synth_motion.wrist_rotation`). Every motion type is
written for a right-dominant person; a left-dominant clip is its exact mirror image through the
body's midline (x -> -x), with the hands swapped.
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Callable, Mapping

import numpy as np

from handx_gen.annotate.surface import (
    SELF_CONTACT_PAIRS,
    ContactConfig,
    contact_intervals,
    hand_surface,
    part_distance,
)
from handx_gen.data.plan import FingerAction, MotionCategory, PlannedContact, PlannedFingerAction
from handx_gen.data.synth_base import PrimitiveClip, SynthContext, register
from handx_gen.data.synth_motion import (
    clip_to_bounds,
    jittered,
    local_keypoints,
    minimum_jerk,
    rotation_about,
    sway,
    wrist_rotation,
)
from handx_gen.errors import ConfigError, unknown_choice
from handx_gen.hand.limits import POSE_JOINT_NAMES
from handx_gen.hand.parts import PartRef
from handx_gen.hand.skeleton import DEFAULT_HAND_LENGTH_M, HandSkeleton
from handx_gen.hand.topology import FINGER_MANO_JOINTS, Finger, HandSide

__all__ = [
    'MIN_CLEARANCE_M',
    'POSTURE_ANGLES',
    'Posture',
    'finger_rows',
    'posture',
]

# Smallest surface-to-surface distance between the hands in the coordination types.
MIN_CLEARANCE_M = 0.02


# ---------------------------------------------------------------------------- postures


class Posture(str, enum.Enum):
    """Named hand shapes."""

    RELAXED = 'relaxed'  # resting hand: a gentle flexion cascade, thumb relaxed
    OPEN = 'open'  # fingers extended (a little natural flexion), together
    FLAT = 'flat'  # fingers straight and adducted, thumb alongside
    SPREAD = 'spread'  # fingers extended and spread wide, thumb out
    FIST = 'fist'  # fingers curled into the palm, thumb across the middle phalanges
    POINT = 'point'  # index extended, others curled, thumb over the middle finger
    HOOK = 'hook'  # index bent into a hook (beckoning), others curled
    THUMBS_UP = 'thumbs_up'  # fist with the thumb extended
    OK = 'ok'  # thumb tip on index tip, other fingers extended and a little spread
    PINCH = 'pinch'  # thumb tip on index tip, other fingers relaxed-curled
    PINCH_OPEN = 'pinch_open'  # as PINCH with thumb and index about 6 cm apart
    V_SIGN = 'v_sign'  # index and middle extended and spread, thumb over the ring finger
    THREE = 'three'  # index, middle, ring extended, thumb holding the little finger
    FOUR = 'four'  # four fingers extended, thumb folded across the palm
    THUMB_INDEX = 'thumb_index'  # thumb and index extended, others curled (continental 2)
    THUMB_TWO = 'thumb_two'  # thumb, index and middle extended (continental 3)
    THUMB_THREE = 'thumb_three'  # thumb, index, middle, ring extended (continental 4)
    CLAW = 'claw'  # fingers hooked (PIP/DIP flexed, MCP nearly straight), thumb opposed
    PIANO = 'piano'  # fingers rounded as on a keyboard


def _finger(mcp: float, pip: float, dip: float | None = None, abduction: float = 0.0,
            ) -> tuple[tuple[float, float, float], ...]:
    """Degrees of one finger's MCP, PIP, DIP rows; DIP = 2/3 PIP unless given."""
    dip = 2.0 * pip / 3.0 if dip is None else dip
    return ((mcp, abduction, 0.0), (pip, 0.0, 0.0), (dip, 0.0, 0.0))


def _thumb(cmc: tuple[float, float, float], mcp: float, ip: float,
           ) -> tuple[tuple[float, float, float], ...]:
    """Degrees of the thumb's CMC (flexion, abduction, twist), MCP and IP flexion rows."""
    return (cmc, (mcp, 0.0, 0.0), (ip, 0.0, 0.0))


_NAMES = {Finger.THUMB: 'thumb', Finger.INDEX: 'index', Finger.MIDDLE: 'middle',
          Finger.RING: 'ring', Finger.LITTLE: 'little'}


def _shape(**fingers: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    """(15, 3) radians from per-finger rows in degrees (keys: thumb, index, ..., little)."""
    angles = np.zeros((15, 3))
    for name, rows in fingers.items():
        for depth, row in enumerate(rows):
            angles[POSE_JOINT_NAMES.index(f'{name}{depth + 1}')] = np.radians(row)
    return angles


_CURLED = _finger(85.0, 100.0, 65.0)  # a finger curled into a fist
_EXTENDED = _finger(3.0, 5.0, 3.0)
# Thumb placements solved for the default skeleton with the surface proxy of
# :mod:`handx_gen.annotate.surface`: tucked thumbs rest on a curled finger's shaft and stay at
# least 18 mm (surface to surface) from every fingertip, so they are clearly not touching one;
# in the fist the thumb closes over the index finger's distal joint (clearly touching).
_THUMB_OVER_FIST = _thumb((-16.0, 24.5, -8.0), 58.0, 84.0)
_THUMB_OVER_MIDDLE = _thumb((11.0, 14.0, 2.0), 50.0, 54.0)
_THUMB_OVER_RING = _thumb((23.0, 18.5, -2.5), 51.0, 53.5)
_THUMB_OVER_LITTLE = _thumb((32.0, 20.0, -6.0), 55.0, 50.5)
_THUMB_IN_PALM = _thumb((35.0, 10.0, -20.0), 50.0, 55.0)
_THUMB_OUT = _thumb((-15.0, 5.0, 0.0), 0.0, -5.0)
_RELAXED_THUMB = _thumb((10.0, 15.0, -10.0), 15.0, 15.0)

_POSTURES_DEG = {
    Posture.RELAXED: dict(
        thumb=_RELAXED_THUMB, index=_finger(15.0, 25.0), middle=_finger(20.0, 30.0),
        ring=_finger(25.0, 35.0), little=_finger(28.0, 38.0)),
    Posture.OPEN: dict(
        thumb=_thumb((0.0, 5.0, 0.0), 5.0, 5.0), index=_finger(3.0, 5.0, 3.0),
        middle=_finger(3.0, 5.0, 3.0), ring=_finger(4.0, 6.0, 4.0),
        little=_finger(5.0, 7.0, 4.0)),
    Posture.FLAT: dict(
        thumb=_thumb((15.0, 0.0, 0.0), 5.0, 5.0), index=_finger(3.0, 5.0, 3.0, -4.0),
        middle=_finger(3.0, 5.0, 3.0), ring=_finger(3.0, 5.0, 3.0, -4.0),
        little=_finger(3.0, 5.0, 3.0, -8.0)),
    Posture.SPREAD: dict(
        thumb=_thumb((-20.0, 10.0, 0.0), 0.0, 0.0), index=_finger(0.0, 3.0, 2.0, 15.0),
        middle=_finger(0.0, 3.0, 2.0), ring=_finger(0.0, 3.0, 2.0, 12.0),
        little=_finger(0.0, 3.0, 2.0, 18.0)),
    Posture.FIST: dict(
        thumb=_THUMB_OVER_FIST, index=_CURLED, middle=_CURLED, ring=_CURLED, little=_CURLED),
    Posture.POINT: dict(
        thumb=_THUMB_OVER_MIDDLE, index=_finger(3.0, 5.0, 3.0), middle=_CURLED, ring=_CURLED,
        little=_CURLED),
    Posture.HOOK: dict(
        thumb=_THUMB_OVER_MIDDLE, index=_finger(0.0, 100.0), middle=_CURLED, ring=_CURLED,
        little=_CURLED),
    Posture.THUMBS_UP: dict(
        thumb=_THUMB_OUT, index=_CURLED, middle=_CURLED, ring=_CURLED, little=_CURLED),
    Posture.OK: dict(
        thumb=_thumb((0.0, 14.5, 6.0), 41.0, 28.5), index=_finger(45.0, 55.0, 35.0),
        middle=_finger(10.0, 12.0, 8.0, -3.0), ring=_finger(15.0, 18.0, abduction=6.0),
        little=_finger(20.0, 22.0, abduction=12.0)),
    Posture.PINCH: dict(
        thumb=_thumb((24.5, 28.5, 0.0), 1.0, 0.0), index=_finger(35.0, 40.0, 27.0),
        middle=_finger(35.0, 50.0), ring=_finger(45.0, 60.0), little=_finger(55.0, 65.0)),
    Posture.PINCH_OPEN: dict(
        thumb=_thumb((-5.0, 10.0, 0.0), 0.0, -5.0), index=_finger(15.0, 15.0, 10.0),
        middle=_finger(30.0, 40.0), ring=_finger(40.0, 50.0), little=_finger(50.0, 60.0)),
    Posture.V_SIGN: dict(
        thumb=_THUMB_OVER_RING, index=_finger(3.0, 5.0, 3.0, 12.0),
        middle=_finger(3.0, 5.0, 3.0, -10.0), ring=_CURLED, little=_CURLED),
    Posture.THREE: dict(
        thumb=_THUMB_OVER_LITTLE, index=_finger(3.0, 5.0, 3.0, 8.0),
        middle=_finger(3.0, 5.0, 3.0, -2.0), ring=_finger(12.0, 18.0, 12.0, 6.0),
        little=_CURLED),
    Posture.FOUR: dict(
        thumb=_THUMB_IN_PALM, index=_finger(3.0, 5.0, 3.0, 8.0), middle=_finger(3.0, 5.0, 3.0),
        ring=_finger(5.0, 8.0, abduction=6.0), little=_finger(6.0, 10.0, abduction=10.0)),
    Posture.THUMB_INDEX: dict(
        thumb=_THUMB_OUT, index=_finger(3.0, 5.0, 3.0, 5.0), middle=_CURLED, ring=_CURLED,
        little=_CURLED),
    Posture.THUMB_TWO: dict(
        thumb=_THUMB_OUT, index=_finger(3.0, 5.0, 3.0, 10.0),
        middle=_finger(3.0, 5.0, 3.0, -5.0), ring=_CURLED, little=_CURLED),
    Posture.THUMB_THREE: dict(
        thumb=_THUMB_OUT, index=_finger(3.0, 5.0, 3.0, 8.0), middle=_finger(3.0, 5.0, 3.0),
        ring=_finger(12.0, 18.0, 12.0, 6.0), little=_finger(75.0, 90.0, 60.0)),
    Posture.CLAW: dict(
        thumb=_thumb((11.5, 30.5, -15.0), 20.0, 29.0), index=_finger(20.0, 70.0, abduction=6.0),
        middle=_finger(20.0, 70.0), ring=_finger(22.0, 72.0, abduction=6.0),
        little=_finger(25.0, 75.0, abduction=8.0)),
    Posture.PIANO: dict(
        thumb=_thumb((10.0, 15.0, -10.0), 10.0, 10.0), index=_finger(25.0, 35.0),
        middle=_finger(25.0, 38.0), ring=_finger(28.0, 40.0), little=_finger(30.0, 40.0)),
}


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


POSTURE_ANGLES: Mapping[Posture, np.ndarray] = types.MappingProxyType(
    {name: _frozen(_shape(**rows)) for name, rows in _POSTURES_DEG.items()})


def posture(name: Posture | str) -> np.ndarray:
    """A named hand shape as anatomical angles.

    Args:
        name: A :class:`Posture` or its value.

    Returns:
        (15, 3) float64 ``[flexion, abduction, twist]`` radians (a writable copy).

    Raises:
        ConfigError: Unknown name (the message lists the postures).
    """
    try:
        key = Posture(name)
    except ValueError:
        raise ConfigError(unknown_choice('posture', name, [p.value for p in Posture])) from None
    return POSTURE_ANGLES[key].copy()


def finger_rows(finger: Finger) -> tuple[int, int, int]:
    """Rows of ``hand_pose`` / anatomical angles that belong to ``finger``, base to distal."""
    joints = FINGER_MANO_JOINTS[finger]
    return (joints[0] - 1, joints[1] - 1, joints[2] - 1)


# ---------------------------------------------------------------------------- world frame


def _mirror_rotation(R_world_hand: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the orientation of the mirror-image hand through the x = 0 plane
    (``M R M`` with ``M = diag(-1, 1, 1)``; the left canonical hand is the right one's mirror)."""
    return R_world_hand * _FLIP_X[:, None] * _FLIP_X[None, :]


# ---------------------------------------------------------------------------- scripting

# A finger moves meaningfully (gets a BEND / EXTEND action) when its flexion (the mean of its
# three joints' flexion, :func:`finger_flexion`) changes by at least _ACTION_MIN_RAD between two
# keys (45 deg summed over the joints; the feature extractor detects 12 deg of mean flexion); it
# holds when it changes by less than _HOLD_TOLERANCE_RAD over at least _MIN_HOLD_S (recorded
# only for fingers that move meaningfully somewhere in the primitive).
_ACTION_MIN_RAD = math.radians(15.0)
_HOLD_TOLERANCE_RAD = math.radians(3.0)
_MIN_HOLD_S = 0.3
_FINGERS = tuple(Finger)
# A thumb whose mean joint flexion is at least this is tucked over the fingers or into the palm
# (the tucked postures are at 38-47 deg, the relaxed and extended ones below 25 deg).
_THUMB_TUCKED_RAD = math.radians(30.0)
_THUMB_CMC_ABDUCTION_MAX_RAD = math.radians(55.0)
# How far a tucked thumb lifts off the fingers while they move beneath it: CMC flexion (towards
# the radial side), CMC palmar abduction, MCP and IP extension; degrees.
_THUMB_LIFT_DEG = (20.0, 25.0, 15.0)
# Peak joint angular speed of the keyed finger moves (minimum-jerk peaks are 1.875 times the
# mean speed): brisk, below the 1000 deg/s and more of the fastest voluntary finger movements.
_MAX_JOINT_SPEED_RAD_S = math.radians(600.0)


def _min_move_s(change_rad: float) -> float:
    """The shortest minimum-jerk move of a joint angle change within the peak speed."""
    return 1.875 * change_rad / _MAX_JOINT_SPEED_RAD_S


class _HandScript:
    """Keyframes of one hand: per finger (its three joints' angles) and for the wrist.

    Keys are ``(time_s, value)``; between consecutive keys the value follows a minimum-jerk
    profile, before the first and after the last it holds. Fingers have separate key lists so
    that they can move on their own timing (taps, waves); :meth:`shape` moves several at once.
    """

    def __init__(self, angles: np.ndarray, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray):
        self.finger_keys: dict[Finger, list[tuple[float, np.ndarray]]] = {
            f: [(0.0, np.array(angles[list(finger_rows(f))], dtype=np.float64))]
            for f in _FINGERS}
        self.wrist_keys: list[tuple[float, np.ndarray, np.ndarray]] = [
            (0.0, np.array(R_world_wrist, dtype=np.float64),
             np.array(p_world_wrist, dtype=np.float64))]
        # Continuous wrist paths added to the keyed positions: f(times_s (T,)) -> (T, 3).
        self.offsets: list[Callable[[np.ndarray], np.ndarray]] = []

    # --------------------------------------------------------------- fingers

    def finger_now(self, finger: Finger) -> np.ndarray:
        """(3, 3) the finger's angles at its last key."""
        return self.finger_keys[finger][-1][1].copy()

    def angles_now(self) -> np.ndarray:
        """(15, 3) every finger at its last key."""
        angles = np.zeros((15, 3))
        for f in _FINGERS:
            angles[list(finger_rows(f))] = self.finger_now(f)
        return angles

    def finger_end(self, finger: Finger) -> float:
        return self.finger_keys[finger][-1][0]

    def move_finger(self, finger: Finger, start_s: float, duration_s: float,
                    rows: np.ndarray) -> float:
        """Move one finger to ``rows`` (3, 3) over ``[start_s, start_s + duration_s]``;
        holds its last value until ``start_s``. Returns the end time."""
        keys = self.finger_keys[finger]
        start_s = max(start_s, keys[-1][0])
        if start_s > keys[-1][0]:
            keys.append((start_s, keys[-1][1].copy()))
        keys.append((start_s + duration_s, np.array(rows, dtype=np.float64)))
        return start_s + duration_s

    def shape(self, start_s: float, duration_s: float, angles: np.ndarray,
              fingers: tuple[Finger, ...] = _FINGERS) -> float:
        """Move ``fingers`` to their rows of ``angles`` (15, 3) together. Returns the end.

        The thumb keeps out of the fingers' way, as a hand does: tucking it in (over curled
        fingers or into the palm) it follows the fingers, releasing it it leads, and moving it
        from one tucked place to another it lifts off the fingers in between.
        """
        start_s = max([start_s] + [self.finger_end(f) for f in fingers])
        others = [f for f in fingers if f != Finger.THUMB]
        change = {f: float(np.abs(angles[list(finger_rows(f))] - self.finger_now(f)).max())
                  for f in fingers}  # largest joint angle change of each finger, radians
        if Finger.THUMB not in fingers or not others:
            duration_s = max([duration_s] + [_min_move_s(change[f]) for f in fingers])
            for f in fingers:
                self.move_finger(f, start_s, duration_s, angles[list(finger_rows(f))])
            return start_s + duration_s
        rows = list(finger_rows(Finger.THUMB))
        now, target = self.finger_now(Finger.THUMB), angles[rows]
        tucked_now = now[:, 0].mean() >= _THUMB_TUCKED_RAD
        tucked_then = target[:, 0].mean() >= _THUMB_TUCKED_RAD
        # Fractions of the duration in which the other fingers and the thumb move.
        fingers_span, thumb_span = (0.0, 1.0), (0.0, 1.0)
        if tucked_then and not tucked_now:
            fingers_span, thumb_span = (0.0, 0.75), (0.3, 1.0)
        elif tucked_now and not tucked_then:
            fingers_span, thumb_span = (0.25, 1.0), (0.0, 0.7)
        elif tucked_now and tucked_then:
            fingers_span, thumb_span = (0.3, 0.8), (0.0, 0.45)
        duration_s = max(
            [duration_s, _min_move_s(change[Finger.THUMB]) / (thumb_span[1] - thumb_span[0])]
            + [_min_move_s(change[f]) / (fingers_span[1] - fingers_span[0]) for f in others])
        for f in others:
            self.move_finger(f, start_s + fingers_span[0] * duration_s,
                             (fingers_span[1] - fingers_span[0]) * duration_s,
                             angles[list(finger_rows(f))])
        if tucked_now and tucked_then:
            # Off the fingers: out of the palm (palmar abduction) and to the radial side.
            lifted = 0.5 * (now + target)
            lifted[0, 0] -= math.radians(_THUMB_LIFT_DEG[0])
            lifted[0, 1] = min(lifted[0, 1] + math.radians(_THUMB_LIFT_DEG[1]),
                               _THUMB_CMC_ABDUCTION_MAX_RAD)
            lifted[1:, 0] = np.maximum(lifted[1:, 0] - math.radians(_THUMB_LIFT_DEG[2]), 0.0)
            self.move_finger(Finger.THUMB, start_s, 0.45 * duration_s, lifted)
            self.move_finger(Finger.THUMB, start_s + 0.6 * duration_s, 0.4 * duration_s, target)
        else:
            self.move_finger(Finger.THUMB, start_s + thumb_span[0] * duration_s,
                             (thumb_span[1] - thumb_span[0]) * duration_s, target)
        return start_s + duration_s

    # --------------------------------------------------------------- wrist

    def wrist_now(self) -> tuple[np.ndarray, np.ndarray]:
        _, R, p = self.wrist_keys[-1]
        return R.copy(), p.copy()

    def wrist_end(self) -> float:
        return self.wrist_keys[-1][0]

    def end(self) -> float:
        """The time of the last key of any track."""
        return max([self.wrist_end()] + [self.finger_end(f) for f in _FINGERS])

    def move_wrist(self, start_s: float, duration_s: float, R: np.ndarray | None = None,
                   p: np.ndarray | None = None) -> float:
        """Move the wrist to ``R`` / ``p`` (unchanged where None) over the interval; holds
        until ``start_s``. Returns the end time."""
        t_last, R_last, p_last = self.wrist_keys[-1]
        start_s = max(start_s, t_last)
        if start_s > t_last:
            self.wrist_keys.append((start_s, R_last.copy(), p_last.copy()))
        self.wrist_keys.append((start_s + duration_s,
                                R_last.copy() if R is None else np.array(R, dtype=np.float64),
                                p_last.copy() if p is None else np.array(p, dtype=np.float64)))
        return start_s + duration_s

    # --------------------------------------------------------------- sampling

    def sample(self, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(T, 15, 3) angles, (T, 3, 3) wrist rotations, (T, 3) wrist positions."""
        from handx_gen.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

        angles = np.zeros((times_s.size, 15, 3))
        for f in _FINGERS:
            key_t = [k[0] for k in self.finger_keys[f]]
            values = np.stack([k[1] for k in self.finger_keys[f]])  # (K, 3, 3)
            angles[:, list(finger_rows(f))] = _interpolate(key_t, values, times_s)
        key_t = [k[0] for k in self.wrist_keys]
        p = _interpolate(key_t, np.stack([k[2] for k in self.wrist_keys]), times_s)
        for offset in self.offsets:
            p = p + offset(times_s)
        Rs = np.stack([k[1] for k in self.wrist_keys])  # (K, 3, 3)
        if len(Rs) < 2:
            return angles, np.broadcast_to(Rs[0], (times_s.size, 3, 3)).copy(), p
        # Along the geodesic of each segment: R_k exp(w log(R_k^T R_k+1)).
        relative = matrix_to_axis_angle(np.swapaxes(Rs[:-1], -1, -2) @ Rs[1:])  # (K-1, 3)
        segment, weight = _segments(key_t, times_s)  # (T,), (T,)
        R = Rs[segment] @ axis_angle_to_matrix(relative[segment] * weight[:, None])
        return angles, R, p

    def finger_actions(self, side: HandSide, fps: float, num_frames: int,
                       ) -> list[PlannedFingerAction]:
        """Bend / extend / hold intervals of every finger that moves meaningfully."""
        actions: list[PlannedFingerAction] = []
        for f in _FINGERS:
            keys = self.finger_keys[f]
            flex = [float(k[1][:, 0].mean()) for k in keys]
            moves = any(abs(b - a) >= _ACTION_MIN_RAD for a, b in zip(flex[:-1], flex[1:],
                                                                     strict=True))
            if not moves:
                continue
            spans: list[tuple[int, int, FingerAction]] = []
            for i in range(len(keys) - 1):
                delta = flex[i + 1] - flex[i]
                duration = keys[i + 1][0] - keys[i][0]
                if abs(delta) >= _ACTION_MIN_RAD:
                    action = FingerAction.BEND if delta > 0 else FingerAction.EXTEND
                elif abs(delta) < _HOLD_TOLERANCE_RAD and duration >= _MIN_HOLD_S:
                    action = FingerAction.HOLD
                else:
                    continue
                start = int(round(keys[i][0] * fps))
                stop = min(int(round(keys[i + 1][0] * fps)), num_frames)
                if stop <= start:
                    continue
                if spans and spans[-1][2] is action and spans[-1][1] == start:
                    spans[-1] = (spans[-1][0], stop, action)
                else:
                    spans.append((start, stop, action))
            actions += [PlannedFingerAction(side, f, a, b, action) for a, b, action in spans]
        return actions


def _segments(key_t: list[float], times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each time, the key segment it falls in and the minimum-jerk weight inside it."""
    key_t = np.asarray(key_t, dtype=np.float64)
    if key_t.size < 2:
        return np.zeros(times_s.size, dtype=np.int64), np.zeros(times_s.size)
    segment = np.clip(np.searchsorted(key_t, times_s, side='right') - 1, 0, key_t.size - 2)
    t0, t1 = key_t[segment], key_t[segment + 1]
    s = np.clip((times_s - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
    return segment, minimum_jerk(s)


def _interpolate(key_t: list[float], values: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """(T, ...) minimum-jerk interpolation of ``values`` (K, ...) keyed at ``key_t``."""
    if len(key_t) < 2:
        return np.broadcast_to(values[0], (times_s.size,) + values.shape[1:]).copy()
    segment, weight = _segments(key_t, times_s)
    w = weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return values[segment] + w * (values[segment + 1] - values[segment])


def _ramped_phase(times_s: np.ndarray, start_s: float, stop_s: float, total: float,
                  ramp_s: float) -> np.ndarray:
    """(T,) a phase going from 0 to ``total`` over ``[start_s, stop_s]`` at a steady rate,
    easing in and out over ``ramp_s`` (minimum-jerk ramps of the rate)."""
    fine = np.linspace(start_s, stop_s, 512)
    ramp = max(min(ramp_s, 0.5 * (stop_s - start_s)), 1e-6)
    rate = minimum_jerk((fine - start_s) / ramp) * minimum_jerk((stop_s - fine) / ramp)
    phase = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine))])
    return total * np.interp(times_s, fine, phase / phase[-1])


# ---------------------------------------------------------------------------- placement

# Poses written for a right-dominant person (x to their right, y forward, z up); the left
# hand's are mirror images. Each is (wrist position, finger direction, palm direction).
_Pose = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]
_READY: _Pose = ((0.17, 0.30, 1.06), (-0.2, 1.0, 0.15), (-0.7, 0.0, -0.7))  # palm down-medial
_DISPLAY: _Pose = ((0.18, 0.33, 1.13), (-0.1, 0.2, 1.0), (-0.15, 1.0, 0.0))  # up, palm forward
_FIST_UP: _Pose = ((0.17, 0.32, 1.08), (-0.1, 1.0, -0.5), (-1.0, 0.0, 0.0))  # palm medial
_TABLE: _Pose = ((0.15, 0.29, 0.99), (-0.1, 1.0, -0.25), (0.0, 0.0, -1.0))  # palm down
_PALM_UP: _Pose = ((0.16, 0.33, 1.05), (-0.1, 1.0, 0.35), (0.0, 0.0, 1.0))
_REST_OTHER: _Pose = ((0.20, 0.20, 0.95), (-0.2, 0.75, -0.6), (-0.8, 0.0, -0.6))  # low, relaxed
_FLIP_X = np.array([-1.0, 1.0, 1.0])  # the mirror through the body's midline


def _place(pose: _Pose, side: HandSide = HandSide.RIGHT, shift=(0.0, 0.0, 0.0),
           ) -> tuple[np.ndarray, np.ndarray]:
    """(R_world_wrist, p_world_wrist) of a right-hand pose, mirrored for the left hand."""
    p, fingers, palm = (np.asarray(v, dtype=np.float64) for v in pose)
    p = p + np.asarray(shift, dtype=np.float64)
    if side == HandSide.LEFT:
        p, fingers, palm = p * _FLIP_X, fingers * _FLIP_X, palm * _FLIP_X
    return wrist_rotation(fingers, palm, side), p


class _Scene:
    """One primitive under construction, written for a right-dominant person.

    ``self.dom`` is the dominant hand's script (placed as a right hand), ``self.aux`` the other
    hand's (placed as a left hand); :meth:`finish` mirrors the result through the midline when
    the context's dominant hand is the left one.
    """

    def __init__(self, ctx: SynthContext, dom_pose: tuple[np.ndarray, np.ndarray],
                 aux_pose: tuple[np.ndarray, np.ndarray] | None = None,
                 approach: tuple[float, float, float] | None = (0.0, -0.03, -0.06),
                 both_approach: bool = False):
        """Start the scripts.

        Args:
            ctx: The context.
            dom_pose: (R, p) where the dominant hand works (placed as a right hand).
            aux_pose: (R, p) of the other hand (placed as a left hand); the low resting pose
                if None.
            approach: Where the dominant hand starts relative to ``dom_pose``: it moves into
                place during the first half second (None: it starts there).
            both_approach: The other hand approaches too (mirrored offset).
        """
        self.ctx = ctx
        self.rng = ctx.rng
        self.fps = float(ctx.fps)
        self.tempo = float(np.clip(ctx.tempo, 0.5, 2.0))
        self.amp = float(np.clip(ctx.amplitude, 0.5, 1.5))
        self.reps = int(np.clip(ctx.repetitions, 1, 6))
        self.dominant = HandSide(ctx.dominant)
        self.scale = ctx.skeletons[self.dominant].hand_length_m / DEFAULT_HAND_LENGTH_M
        start = np.asarray(ctx.start_angles, dtype=np.float64)
        aux_pose = _place(_REST_OTHER, HandSide.LEFT) if aux_pose is None else aux_pose
        self.dom = _HandScript(clip_to_bounds(start[self.dominant], 0.0), *dom_pose)
        self.aux = _HandScript(clip_to_bounds(start[self.dominant.other], 0.0), *aux_pose)
        if approach is not None:
            offset = np.asarray(approach, dtype=np.float64)
            move = self.dur(0.5)
            for script, shift in ((self.dom, offset), (self.aux, offset * _FLIP_X)):
                if script is self.aux and not both_approach:
                    continue
                _, R, p = script.wrist_keys[0]
                script.wrist_keys[0] = (0.0, R, p + shift)
                script.move_wrist(0.0, move, R, p)

    @property
    def hand(self) -> str:
        """The dominant hand's name for labels."""
        return self.dominant.name.lower()

    def side_word(self, right_dominant_word: str) -> str:
        """A direction word ('left' / 'right') as seen after mirroring."""
        if self.dominant == HandSide.RIGHT:
            return right_dominant_word
        return {'left': 'right', 'right': 'left'}.get(right_dominant_word, right_dominant_word)

    def dur(self, seconds: float, jitter: float = 0.12) -> float:
        """A duration: ``seconds`` at typical tempo, divided by the tempo, jittered."""
        return jittered(seconds / self.tempo, self.rng, jitter)

    def choice(self, options: list, p: list[float] | None = None):
        return options[int(self.rng.choice(len(options), p=p))]

    def relax_aux(self, start_s: float = 0.0) -> None:
        """The other hand settles into the relaxed posture (it stays where it was placed)."""
        self.aux.shape(start_s, self.dur(0.6), posture(Posture.RELAXED))

    def finish(self, label: str, params: dict, both_settle: bool = False,
               sway_m: float = 0.0025, min_duration_s: float = 2.5) -> PrimitiveClip:
        """Sample the scripts into a :class:`PrimitiveClip` (mirrored for a left-dominant
        person), with postural sway on the wrists and the finger actions of the keys.

        At the end the dominant hand (both hands if ``both_settle``) settles: it sinks a few
        centimetres, slowly enough to last until the clip is at least ``min_duration_s`` long.
        """
        end_s = max(self.dom.end(), self.aux.end())
        start_s = max(end_s - 0.15, self.dom.wrist_end(),
                      self.aux.wrist_end() if both_settle else 0.0)
        settle_s = max(self.dur(0.45), min_duration_s - start_s)
        drop = np.array([0.0, -0.015, -0.05])
        for script in (self.dom, self.aux) if both_settle else (self.dom,):
            script.move_wrist(start_s, settle_s, p=script.wrist_now()[1] + drop)
        end_s = max(self.dom.end(), self.aux.end())
        num_frames = int(math.ceil(end_s * self.fps)) + int(round(0.15 * self.fps))
        times = np.arange(num_frames) / self.fps
        angles = np.zeros((num_frames, 2, 15, 3))
        R = np.zeros((num_frames, 2, 3, 3))
        p = np.zeros((num_frames, 2, 3))
        # Written as right = dominant, left = other; swapped and mirrored below if needed.
        for side, script in ((HandSide.RIGHT, self.dom), (HandSide.LEFT, self.aux)):
            angles[:, side], R[:, side], p[:, side] = script.sample(times)
            p[:, side] += sway(num_frames, self.fps, self.rng, amplitude_m=sway_m)
        actions = (self.dom.finger_actions(self.dominant, self.fps, num_frames)
                   + self.aux.finger_actions(self.dominant.other, self.fps, num_frames))
        if self.dominant == HandSide.LEFT:
            angles = angles[:, ::-1]
            R = _mirror_rotation(R[:, ::-1])
            p = p[:, ::-1] * _FLIP_X
        angles = clip_to_bounds(np.ascontiguousarray(angles), 0.0)
        contacts = [c for side in HandSide for c in _self_contacts(
            angles[:, side], self.ctx.skeletons[side], side, self.fps)]
        return PrimitiveClip(
            angles=angles, R_world_wrist=np.ascontiguousarray(R),
            p_world_wrist=np.ascontiguousarray(p),
            contacts=tuple(sorted(contacts, key=lambda c: (c.start, c.a.side, c.b.part.value))),
            finger_actions=tuple(sorted(actions, key=lambda a: (a.start, a.side, a.finger))),
            label=label, params=params)


def _self_contacts(angles: np.ndarray, skeleton: HandSkeleton, side: HandSide, fps: float,
                   ) -> list[PlannedContact]:
    """The thumb-tip-on-fingertip contacts a hand's angles (T, 15, 3) realise.

    These are the touches within one hand that the annotation reports
    (:data:`~handx_gen.annotate.surface.SELF_CONTACT_PAIRS`): the pinch and the OK sign by
    design, and wherever a posture brings the thumb tip onto a fingertip (a fist, the thumb
    holding a curled finger). Events are :func:`~handx_gen.annotate.surface.contact_intervals`
    of the surface distance, the definition the feature extractor uses.
    """
    surface = hand_surface(local_keypoints(angles, skeleton), side)
    config = ContactConfig()
    contacts = []
    for part_a, part_b in SELF_CONTACT_PAIRS:
        distance = part_distance(surface, part_a, surface, part_b).distance  # (T,)
        if distance.min() > config.touch_gap_m:
            continue
        contacts += [PlannedContact(start, stop, PartRef(side, part_a), PartRef(side, part_b))
                     for start, stop in contact_intervals(distance, fps, config)]
    return contacts


_NUMBER_WORDS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight')


def _times(count: int) -> str:
    return {1: 'once', 2: 'twice'}.get(count, f'{_NUMBER_WORDS[count]} times')


def _blend(a: Posture, b: Posture, weight: float) -> np.ndarray:
    """(15, 3) ``a + weight (b - a)``, inside the bounds."""
    return clip_to_bounds(posture(a) + weight * (posture(b) - posture(a)), 0.0)


def _with_flexion(angles: np.ndarray, finger: Finger, mcp_deg: float, pip_deg: float,
                  ) -> np.ndarray:
    """``angles`` (15, 3) with one finger's flexion increased (DIP by 2/3 of the PIP)."""
    out = angles.copy()
    rows = finger_rows(finger)
    out[rows[0], 0] += math.radians(mcp_deg)
    out[rows[1], 0] += math.radians(pip_deg)
    out[rows[2], 0] += math.radians(pip_deg) * 2.0 / 3.0
    return clip_to_bounds(out, 0.0)


# Fraction of a finger's flexion its neighbours follow (an isolated tap or curl): the ring and
# little fingers are the most tightly linked (juncturae tendinum, shared flexor slips), the index
# the most independent (Hager-Ross and Schieber 2000, "Quantifying the independence of human
# finger movements").
_NEIGHBOUR_COUPLING: dict[Finger, dict[Finger, float]] = {
    Finger.INDEX: {Finger.MIDDLE: 0.2},
    Finger.MIDDLE: {Finger.INDEX: 0.15, Finger.RING: 0.3},
    Finger.RING: {Finger.MIDDLE: 0.25, Finger.LITTLE: 0.4},
    Finger.LITTLE: {Finger.RING: 0.45},
    Finger.THUMB: {},
}


def _tap(script: _HandScript, finger: Finger, start_s: float, press_s: float, release_s: float,
         mcp_deg: float, pip_deg: float) -> float:
    """One finger presses (flexes) and releases, its free neighbours following partly.

    Returns:
        The end of the release.
    """
    base = script.angles_now()
    start_s = max(start_s, script.finger_end(finger))
    pressed = (_thumb_press(base, mcp_deg) if finger == Finger.THUMB
               else _with_flexion(base, finger, mcp_deg, pip_deg))
    rows = list(finger_rows(finger))
    script.move_finger(finger, start_s, press_s, pressed[rows])
    end = script.move_finger(finger, start_s + press_s, release_s, base[rows])
    for neighbour, share in _NEIGHBOUR_COUPLING[finger].items():
        if script.finger_end(neighbour) > start_s + 1e-9:
            continue  # busy with its own movement
        n_rows = list(finger_rows(neighbour))
        follow = _with_flexion(base, neighbour, share * mcp_deg, share * pip_deg)
        script.move_finger(neighbour, start_s, press_s, follow[n_rows])
        script.move_finger(neighbour, start_s + press_s, release_s, base[n_rows])
    return end


def _thumb_press(angles: np.ndarray, degrees: float) -> np.ndarray:
    """The thumb pressing down on a key by about ``degrees``: out of the palm's plane (CMC
    palmar abduction) and bending at the MCP, not across the palm towards the fingertips."""
    out = angles.copy()
    rows = finger_rows(Finger.THUMB)
    out[rows[0], 0] += math.radians(0.1 * degrees)
    out[rows[0], 1] += math.radians(0.6 * degrees)
    out[rows[1], 0] += math.radians(0.6 * degrees)
    out[rows[2], 0] += math.radians(0.3 * degrees)
    return clip_to_bounds(out, 0.0)


# ---------------------------------------------------------------------------- single hand

_SINGLE = MotionCategory.SINGLE_HAND
_COORDINATION = MotionCategory.BIMANUAL_COORDINATION


@register('fist', _SINGLE, 'the dominant hand clenches into a fist and opens again')
def _fist(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_READY))
    s.relax_aux()
    count = min(s.reps, 2)
    release = s.choice([Posture.OPEN, Posture.RELAXED])
    t = s.dom.shape(0.0, s.dur(0.45), posture(release))
    R0, p0 = s.dom.wrist_now()
    for _ in range(count):
        t += s.dur(0.25)
        t_end = s.dom.shape(t, s.dur(0.45), posture(Posture.FIST))
        s.dom.move_wrist(t, t_end - t, p=p0 + np.array([0.0, 0.01, 0.025]) * s.amp)
        t = t_end + s.dur(0.5)
        t_end = s.dom.shape(t, s.dur(0.5), posture(release))
        s.dom.move_wrist(t, t_end - t, p=p0)
        t = t_end
    label = (f'the {s.hand} hand makes a fist' if count == 1 else
             f'the {s.hand} hand clenches into a fist and opens {_times(count)}')
    return s.finish(label, {'count': count, 'release': release.value})


_COUNT_SEQUENCES = {
    'index_first': (Posture.POINT, Posture.V_SIGN, Posture.THREE, Posture.FOUR,
                    Posture.SPREAD),
    'thumb_first': (Posture.THUMBS_UP, Posture.THUMB_INDEX, Posture.THUMB_TWO,
                    Posture.THUMB_THREE, Posture.SPREAD),
}


@register('counting', _SINGLE, 'the dominant hand counts from one up to a number on its '
                               'fingers, one finger at a time')
def _counting(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_DISPLAY, shift=(0.0, -0.03, -0.08)), approach=None)
    s.relax_aux()
    count = int(s.rng.integers(1, 6))
    style = s.choice(['index_first', 'thumb_first'], p=[0.7, 0.3])
    R0, p0 = _place(_DISPLAY)
    t = s.dom.shape(0.0, s.dur(0.45), posture(Posture.FIST))
    s.dom.move_wrist(0.0, s.dur(0.6), R0, p0)
    t = max(t, s.dom.wrist_end())
    for number in range(count):
        t += s.dur(0.3 if number == 0 else 0.4)
        t_end = s.dom.shape(t, s.dur(0.4), posture(_COUNT_SEQUENCES[style][number]))
        # A small forward beat of the hand with each number.
        s.dom.move_wrist(t, 0.5 * (t_end - t), p=p0 + np.array([0.0, 0.015, 0.005]) * s.amp)
        s.dom.move_wrist(s.dom.wrist_end(), 0.6 * (t_end - t), p=p0)
        t = t_end
    s.dom.move_wrist(t + s.dur(0.45), s.dur(0.45), p=p0 + np.array([0.0, -0.02, -0.06]))
    label = (f'the {s.hand} hand holds up one finger' if count == 1 else
             f'the {s.hand} hand counts to {_NUMBER_WORDS[count]} on its fingers')
    return s.finish(label, {'count': count, 'style': style})


def _direction_words(azimuth_deg: float, elevation_deg: float, scene: _Scene) -> str:
    horizontal = ('to the ' + scene.side_word('right') if azimuth_deg > 12.0 else
                  'to the ' + scene.side_word('left') if azimuth_deg < -12.0 else 'ahead')
    if elevation_deg > 12.0:
        return 'upwards' if horizontal == 'ahead' else f'up {horizontal}'
    return horizontal


@register('pointing', _SINGLE, 'the dominant hand points with the index finger at one or two '
                               'places in front')
def _pointing(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_READY))
    s.relax_aux()
    shoulder = np.array([0.2, 0.05, 1.2])
    reach = 0.33 * float(np.clip(s.amp, 0.8, 1.2))
    azimuth = float(s.rng.uniform(-30.0, 35.0))
    targets = [(azimuth, float(s.rng.uniform(-10.0, 20.0)))]
    if s.rng.random() < 0.5:
        second = azimuth + float(s.rng.choice([-1.0, 1.0]) * s.rng.uniform(25.0, 45.0))
        if not -30.0 <= second <= 40.0:  # the other way round, inside the reach
            second = float(np.clip(2.0 * azimuth - second, -30.0, 40.0))
        targets.append((second, float(s.rng.uniform(-10.0, 20.0))))
    t = 0.0
    for index, (az, el) in enumerate(targets):
        a, e = math.radians(az), math.radians(el)
        direction = np.array([math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)])
        R, _ = _place(((0, 0, 0), tuple(direction), (-0.35, 0.0, -1.0)))
        move = s.dur(0.55)
        s.dom.move_wrist(t, move, R, shoulder + reach * direction)
        if index == 0:
            s.dom.shape(t + 0.1 * move, s.dur(0.4), posture(Posture.POINT))
        t = max(s.dom.end(), t + move) + s.dur(0.75)
    R, p = _place(_READY)
    t_end = s.dom.move_wrist(t, s.dur(0.55), R, p)
    s.dom.shape(t + 0.1, t_end - t - 0.1, posture(Posture.RELAXED))
    words = [_direction_words(az, el, s) for az, el in targets]
    label = f'the {s.hand} hand points {words[0]}' + (f', then {words[1]}' if len(words) > 1
                                                      else '')
    return s.finish(label, {'targets_deg': [[round(az, 1), round(el, 1)] for az, el in targets]})


@register('thumbs_up', _SINGLE, 'the dominant hand raises a thumbs up')
def _thumbs_up(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_FIST_UP, shift=(0.0, -0.05, -0.09)), approach=None)
    s.relax_aux()
    R0, p0 = _place(_FIST_UP)
    s.dom.move_wrist(0.0, s.dur(0.6), R0, p0)
    t = s.dom.shape(0.05, s.dur(0.5), posture(Posture.THUMBS_UP))
    t = max(t, s.dom.wrist_end()) + s.dur(0.35)
    pumps = int(np.clip(s.reps - 1, 0, 2))
    for _ in range(pumps):
        s.dom.move_wrist(t, s.dur(0.22), p=p0 + np.array([0.0, 0.015, -0.045]) * s.amp)
        t = s.dom.move_wrist(s.dom.wrist_end(), s.dur(0.25), p=p0)
    if not pumps:  # held out towards the viewer
        t = s.dom.move_wrist(t, s.dur(0.6), p=p0 + np.array([0.0, 0.04, 0.015])) + s.dur(0.1)
    t += s.dur(0.3)
    t_end = s.dom.shape(t, s.dur(0.5), posture(Posture.RELAXED))
    s.dom.move_wrist(t, t_end - t + 0.1, p=p0 + np.array([0.0, -0.04, -0.07]))
    label = f'the {s.hand} hand gives a thumbs up' + (' and pumps it' if pumps else '')
    return s.finish(label, {'pumps': pumps})


def _show_posture(ctx: SynthContext, shape: Posture, hold_s: float,
                  wiggle_deg: float) -> tuple[_Scene, float]:
    """Raise the hand palm forward into ``shape``, hold it (a small tilt), release it."""
    s = _Scene(ctx, _place(_DISPLAY, shift=(0.0, -0.04, -0.1)), approach=None)
    s.relax_aux()
    R0, p0 = _place(_DISPLAY)
    s.dom.move_wrist(0.0, s.dur(0.6), R0, p0)
    t = s.dom.shape(0.05, s.dur(0.5), posture(shape))
    t = max(t, s.dom.wrist_end())
    hold = s.dur(hold_s, 0.2)
    tilt = rotation_about((0.0, 1.0, 0.0), math.radians(wiggle_deg * s.amp)) @ R0
    s.dom.move_wrist(t + 0.2 * hold, 0.35 * hold, R=tilt)
    s.dom.move_wrist(s.dom.wrist_end(), 0.35 * hold, R=R0)
    t += hold
    t_end = s.dom.shape(t, s.dur(0.5), posture(Posture.RELAXED))
    s.dom.move_wrist(t, t_end - t + 0.1, p=p0 + np.array([0.0, -0.04, -0.08]))
    return s, hold


@register('ok_sign', _SINGLE, 'the dominant hand makes an OK sign, thumb and index forming a '
                              'ring')
def _ok_sign(ctx: SynthContext) -> PrimitiveClip:
    s, hold = _show_posture(ctx, Posture.OK, 1.0, 8.0)
    return s.finish(f'the {s.hand} hand makes an OK sign', {'hold_s': round(hold, 3)})


@register('peace_sign', _SINGLE, 'the dominant hand shows a V (peace) sign with index and '
                                 'middle finger')
def _peace_sign(ctx: SynthContext) -> PrimitiveClip:
    s, hold = _show_posture(ctx, Posture.V_SIGN, 1.0, -10.0)
    return s.finish(f'the {s.hand} hand shows a peace sign', {'hold_s': round(hold, 3)})


@register('pinch', _SINGLE, 'the dominant thumb and index finger pinch together repeatedly')
def _pinch(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_READY))
    s.relax_aux()
    count = int(np.clip(s.reps + 1, 2, 4))
    opened = _blend(Posture.PINCH, Posture.PINCH_OPEN, float(np.clip(s.amp, 0.8, 1.0)))
    t = s.dom.shape(0.0, s.dur(0.45), opened) + s.dur(0.2)
    for _ in range(count):
        t = s.dom.shape(t, s.dur(0.3), posture(Posture.PINCH)) + s.dur(0.15, 0.3)
        t = s.dom.shape(t, s.dur(0.3), opened) + s.dur(0.15, 0.3)
    R0, p0 = s.dom.wrist_now()
    s.dom.move_wrist(0.0, t, p=p0 + np.array([-0.02, 0.03, 0.02]) * s.amp)
    label = f'the {s.hand} thumb and index finger pinch together {_times(count)}'
    return s.finish(label, {'count': count})


@register('finger_tapping', _SINGLE, 'the dominant hand taps its fingers one after another, as '
                                     'if playing the piano')
def _finger_tapping(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_TABLE))
    s.relax_aux()
    fingers = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)
    count = int(np.clip(2 * s.reps + s.rng.integers(1, 4), 4, 10))
    pattern = s.choice(['scale', 'random'])
    if pattern == 'scale':
        run = [Finger.THUMB, *fingers] if s.rng.random() < 0.5 else list(fingers)
        if s.rng.random() < 0.5:
            run = run[::-1]
        order = [run[i % len(run)] for i in range(count)]
    else:
        order = []
        for _ in range(count):
            options = [f for f in (Finger.THUMB, *fingers) if not order or f != order[-1]]
            weights = np.array([0.4 if f == Finger.THUMB else 1.0 for f in options])
            order.append(options[int(s.rng.choice(len(options), p=weights / weights.sum()))])
    t = s.dom.shape(0.0, s.dur(0.45), posture(Posture.PIANO)) + s.dur(0.15)
    depth = float(np.clip(s.amp, 0.9, 1.2))
    for finger in order:
        t = _tap(s.dom, finger, t, s.dur(0.17), s.dur(0.2), 32.0 * depth, 15.0 * depth)
        t += s.dur(0.06, 0.5)
    R0, p0 = s.dom.wrist_now()
    s.dom.move_wrist(0.3, max(t - 0.3, 0.5), p=p0 + np.array([-0.025, 0.01, 0.0]) * s.amp)
    label = f'the {s.hand} hand taps its fingers as if playing the piano'
    return s.finish(label, {'taps': count, 'pattern': pattern,
                            'order': [f.name.lower() for f in order]})


@register('finger_wave', _SINGLE, 'the dominant hand ripples its fingers in a wave, one finger '
                                  'after the other')
def _finger_wave(ctx: SynthContext) -> PrimitiveClip:
    palm_down = bool(ctx.rng.random() < 0.5)
    s = _Scene(ctx, _place(_TABLE if palm_down else _DISPLAY))
    s.relax_aux()
    direction = s.choice(['index_to_little', 'little_to_index'])
    fingers = [Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE]
    if direction == 'little_to_index':
        fingers = fingers[::-1]
    waves = int(np.clip(s.reps, 1, 3))
    t = s.dom.shape(0.0, s.dur(0.45), posture(Posture.OPEN)) + s.dur(0.2)
    base = posture(Posture.OPEN)
    lag = s.dur(0.14, 0.15)
    for _ in range(waves):
        bend, release = s.dur(0.3), s.dur(0.3)
        for order, finger in enumerate(fingers):
            start = t + order * lag
            curled = _with_flexion(base, finger, 55.0 * s.amp, 55.0 * s.amp)
            rows = list(finger_rows(finger))
            s.dom.move_finger(finger, start, bend, curled[rows])
            s.dom.move_finger(finger, start + bend, release, base[rows])
        t = max(s.dom.finger_end(f) for f in fingers) + s.dur(0.2)
    R0, p0 = s.dom.wrist_now()
    s.dom.move_wrist(0.2, t, p=p0 + np.array([-0.02, 0.02, 0.015]) * s.amp)
    words = 'from index to little finger' if direction == 'index_to_little' else \
        'from little finger to index'
    label = f'the {s.hand} hand ripples its fingers {words}' + (
        '' if waves == 1 else f' {_times(waves)}')
    return s.finish(label, {'waves': waves, 'direction': direction,
                            'palm': 'down' if palm_down else 'forward'})


@register('wrist_rotation', _SINGLE, 'the dominant forearm turns the hand palm up and palm down')
def _wrist_rotation(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_READY))
    s.relax_aux()
    shape = s.choice([Posture.RELAXED, Posture.OPEN])
    s.dom.shape(0.0, s.dur(0.4), posture(shape))
    p0 = np.array([0.17, 0.32, 1.08])
    forearm = np.array([-0.1, 1.0, 0.1])

    def pose(roll_deg: float) -> np.ndarray:
        """Palm down at 0, medial at 90, up at 180 degrees of supination."""
        r = math.radians(roll_deg)
        palm = math.cos(r) * np.array([0.0, 0.0, -1.0]) + math.sin(r) * np.array([-1.0, 0, 0])
        return wrist_rotation(forearm, palm, HandSide.RIGHT)

    low = 35.0 - 35.0 * s.amp
    high = min(35.0 + 125.0 * s.amp, 170.0)
    turns = int(np.clip(s.reps + 1, 2, 5))
    t = s.dom.move_wrist(0.0, s.dur(0.45), pose(low), p0)
    for turn in range(turns):
        t = s.dom.move_wrist(t + s.dur(0.1, 0.5), s.dur(0.55), pose(high if turn % 2 == 0
                                                                   else low))
    label = f'the {s.hand} hand turns palm up and palm down'
    if turns > 2:
        label = f'the {s.hand} hand turns over and back {_times(turns)}'
    return s.finish(label, {'turns': turns, 'range_deg': [round(low, 1), round(high, 1)],
                            'posture': shape.value})


@register('wave', _SINGLE, 'the dominant hand waves, from the elbow, at the wrist or with the '
                           'fingers')
def _wave(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_DISPLAY, shift=(0.0, -0.04, -0.12)), approach=None)
    s.relax_aux()
    style = s.choice(['arm', 'wrist', 'fingers'], p=[0.5, 0.25, 0.25])
    R0, p0 = _place(_DISPLAY)
    s.dom.move_wrist(0.0, s.dur(0.55), R0, p0)
    shape = s.choice([Posture.OPEN, Posture.SPREAD])
    t = max(s.dom.shape(0.05, s.dur(0.4), posture(shape)), s.dom.wrist_end())
    swings = int(np.clip(2 * s.reps + 1, 3, 7))
    if style == 'arm':
        forearm = np.array([-0.05, 0.25, 1.0]) / np.linalg.norm([-0.05, 0.25, 1.0])
        elbow = p0 - 0.27 * forearm
        for swing in range(swings):
            angle = math.radians(15.0 * s.amp) * (1.0 if swing % 2 == 0 else -1.0)
            Rz = rotation_about((0.0, 1.0, 0.0), angle)
            t = s.dom.move_wrist(t, s.dur(0.38, 0.08), Rz @ R0, elbow + Rz @ (p0 - elbow))
        t = s.dom.move_wrist(t, s.dur(0.35), R0, p0)
    elif style == 'wrist':
        thumb_axis = R0[:, 2]
        for swing in range(swings):
            angle = math.radians(25.0 * s.amp) * (1.0 if swing % 2 == 0 else -1.0)
            t = s.dom.move_wrist(t, s.dur(0.27, 0.08), rotation_about(thumb_axis, angle) @ R0)
        t = s.dom.move_wrist(t, s.dur(0.3), R0)
    else:
        base = posture(shape)
        folded = base.copy()
        for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
            folded = _with_flexion(folded, finger, 65.0 * s.amp, 20.0 * s.amp)
        fingers = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)
        for _ in range(swings // 2 + 1):
            t = s.dom.shape(t, s.dur(0.25, 0.08), folded, fingers)
            t = s.dom.shape(t, s.dur(0.25, 0.08), base, fingers)
        s.dom.move_wrist(s.dom.wrist_end(), t - s.dom.wrist_end(),
                         p=p0 + np.array([0.0, 0.01, 0.02]))
    t += s.dur(0.2)
    s.dom.move_wrist(t, s.dur(0.5), p=p0 + np.array([0.0, -0.03, -0.08]))
    s.dom.shape(t, s.dur(0.5), posture(Posture.RELAXED))
    words = {'arm': 'waves', 'wrist': 'waves at the wrist',
             'fingers': 'waves by bending its fingers'}[style]
    return s.finish(f'the {s.hand} hand {words}', {'style': style, 'swings': swings,
                                                    'posture': shape.value})


@register('spread_fingers', _SINGLE, 'the dominant hand spreads its fingers wide and closes them')
def _spread_fingers(ctx: SynthContext) -> PrimitiveClip:
    palm_forward = bool(ctx.rng.random() < 0.6)
    s = _Scene(ctx, _place(_DISPLAY if palm_forward else _TABLE))
    s.relax_aux()
    count = int(np.clip(s.reps, 1, 3))
    R0, p0 = s.dom.wrist_now()
    push = np.array([0.0, 0.02, 0.0]) if palm_forward else np.array([0.0, 0.0, 0.02])
    t = s.dom.shape(0.0, s.dur(0.45), posture(Posture.FLAT)) + s.dur(0.2)
    for _ in range(count):
        t_end = s.dom.shape(t, s.dur(0.4), posture(Posture.SPREAD))
        s.dom.move_wrist(t, t_end - t, p=p0 + push * s.amp)
        t = t_end + s.dur(0.35)
        t_end = s.dom.shape(t, s.dur(0.4), posture(Posture.FLAT))
        s.dom.move_wrist(t, t_end - t, p=p0)
        t = t_end + s.dur(0.25)
    label = f'the {s.hand} hand spreads its fingers wide' + (
        '' if count == 1 else f' and closes them {_times(count)}')
    return s.finish(label, {'count': count, 'palm': 'forward' if palm_forward else 'down'})


@register('beckon', _SINGLE, 'the dominant hand beckons, palm up, curling the index finger or '
                             'all fingers')
def _beckon(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_PALM_UP, shift=(0.0, -0.03, -0.05)), approach=None)
    s.relax_aux()
    style = s.choice(['index', 'fingers'])
    R0, p0 = _place(_PALM_UP)
    s.dom.move_wrist(0.0, s.dur(0.5), R0, p0)
    if style == 'index':
        extended, curled = posture(Posture.POINT), posture(Posture.HOOK)
        moving: tuple[Finger, ...] = (Finger.INDEX,)
    else:
        extended = posture(Posture.OPEN)
        curled = extended.copy()
        for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
            curled = _with_flexion(curled, finger, 40.0 * s.amp, 75.0 * s.amp)
        moving = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)
    t = max(s.dom.shape(0.05, s.dur(0.45), extended), s.dom.wrist_end()) + s.dur(0.15)
    count = int(np.clip(s.reps + 1, 2, 4))
    for _ in range(count):
        t = s.dom.shape(t, s.dur(0.35), curled, moving) + s.dur(0.06, 0.5)
        t = s.dom.shape(t, s.dur(0.35), extended, moving) + s.dur(0.08, 0.5)
    s.dom.move_wrist(s.dom.wrist_end(), t - s.dom.wrist_end(),
                     p=p0 + np.array([0.0, -0.02, 0.01]))
    words = 'with its index finger' if style == 'index' else 'with all its fingers'
    return s.finish(f'the {s.hand} hand beckons {words}', {'style': style, 'count': count})


@register('grasp_air', _SINGLE, 'the dominant hand reaches out, grabs at the air and pulls back')
def _grasp_air(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_READY))
    s.relax_aux()
    count = int(np.clip(s.reps, 1, 2))
    R0, p0 = s.dom.wrist_now()
    t = 0.0
    for _ in range(count):
        reach = float(s.rng.uniform(0.12, 0.18)) * s.amp
        target = p0 + np.array([float(s.rng.uniform(-0.05, 0.05)), reach,
                                float(s.rng.uniform(0.0, 0.08))])
        move = s.dur(0.5)
        s.dom.move_wrist(t, move, p=target)
        s.dom.shape(t, 0.8 * move, posture(Posture.SPREAD))
        t = s.dom.shape(t + move - 0.05, s.dur(0.32), posture(Posture.FIST))
        t = s.dom.move_wrist(t + s.dur(0.1), s.dur(0.5), p=p0) + s.dur(0.2)
        t = s.dom.shape(t, s.dur(0.45), posture(Posture.RELAXED)) + s.dur(0.2)
    label = f'the {s.hand} hand grabs at the air' + ('' if count == 1 else ' twice')
    return s.finish(label, {'count': count})


# ---------------------------------------------------------------------------- coordination


def _both(pose: _Pose, shift=(0.0, 0.0, 0.0)) -> tuple[tuple[np.ndarray, np.ndarray],
                                                       tuple[np.ndarray, np.ndarray]]:
    """A pose for the right hand and its mirror image for the left."""
    return _place(pose, HandSide.RIGHT, shift), _place(pose, HandSide.LEFT, shift)


def _mirror_offset(offset: np.ndarray) -> np.ndarray:
    return offset * _FLIP_X


def _shape_both(s: _Scene, start_s: float, duration_s: float, angles: np.ndarray) -> float:
    s.dom.shape(start_s, duration_s, angles)
    return s.aux.shape(start_s, duration_s, angles)


@register('mirrored_movement', _COORDINATION, 'both hands make the same movement at the same '
                                              'time, in mirror image')
def _mirrored_movement(ctx: SynthContext) -> PrimitiveClip:
    pattern = ['apart_together', 'up_down', 'circles', 'open_close'][int(ctx.rng.integers(4))]
    poses = {
        'apart_together': ((0.17, 0.32, 1.08), (-0.15, 1.0, 0.0), (0.0, 0.0, -1.0)),
        'up_down': ((0.2, 0.3, 1.05), (-0.1, 1.0, 0.0), (-0.3, 0.0, -1.0)),
        'circles': ((0.26, 0.32, 1.1), (-0.1, 1.0, 0.1), (-0.3, 0.0, -1.0)),
        'open_close': ((0.2, 0.33, 1.12), (-0.1, 0.2, 1.0), (-0.15, 1.0, 0.0)),
    }
    right, left = _both(poses[pattern])
    s = _Scene(ctx, right, left, both_approach=True)
    p_r, p_l = right[1], left[1]
    shape = posture(Posture.OPEN if pattern != 'up_down' else Posture.RELAXED)
    t = _shape_both(s, 0.0, s.dur(0.45), shape) + s.dur(0.15)
    count = int(np.clip(s.reps, 1, 3))
    if pattern in ('apart_together', 'up_down'):
        delta = (np.array([0.12, 0.03, 0.0]) if pattern == 'apart_together'
                 else np.array([0.0, 0.0, 0.08])) * s.amp
        cycles = count if pattern == 'apart_together' else max(count, 2)
        for _ in range(cycles):
            for target in (delta, -0.3 * delta if pattern == 'up_down' else 0.0 * delta):
                move = s.dur(0.55)
                s.dom.move_wrist(t, move, p=p_r + target)
                t = s.aux.move_wrist(t, move, p=p_l + _mirror_offset(target)) + s.dur(0.1, 0.5)
        move = s.dur(0.4)
        s.dom.move_wrist(t, move, p=p_r)
        t = s.aux.move_wrist(t, move, p=p_l)
    elif pattern == 'circles':
        radius = 0.07 * s.amp
        outward = bool(s.rng.random() < 0.5)
        period = s.dur(1.0, 0.1)
        start, stop = t, t + count * period + 0.3
        sign = 1.0 if outward else -1.0

        def circle(times: np.ndarray, flip: np.ndarray) -> np.ndarray:
            phi = _ramped_phase(times, start, stop, 2.0 * math.pi * count, 0.3)
            out = radius * np.stack([sign * np.sin(phi), np.zeros_like(phi), 1.0 - np.cos(phi)],
                                    axis=-1)
            return out * flip

        s.dom.offsets.append(lambda times: circle(times, np.ones(3)))
        s.aux.offsets.append(lambda times: circle(times, _FLIP_X))
        s.dom.move_wrist(stop, 0.05)
        s.aux.move_wrist(stop, 0.05)
        t = stop
    else:
        for _ in range(max(count, 2)):
            t = _shape_both(s, t, s.dur(0.4), posture(Posture.FIST)) + s.dur(0.2, 0.3)
            t = _shape_both(s, t, s.dur(0.4), posture(Posture.SPREAD)) + s.dur(0.2, 0.3)
        s.dom.move_wrist(0.2, t - 0.2, p=p_r + np.array([0.0, 0.04, 0.0]))
        s.aux.move_wrist(0.2, t - 0.2, p=p_l + np.array([0.0, 0.04, 0.0]))
    words = {'apart_together': 'move apart and back together',
             'up_down': 'move up and down together',
             'circles': 'draw circles',
             'open_close': 'close into fists and open together'}[pattern]
    return s.finish(f'both hands {words} in mirror image', {'pattern': pattern, 'count': count},
                    both_settle=True)


@register('alternating_movement', _COORDINATION, 'the hands take turns: one moves while the other '
                                                 'moves the opposite way')
def _alternating_movement(ctx: SynthContext) -> PrimitiveClip:
    pattern = ['up_down', 'push', 'open_close'][int(ctx.rng.integers(3))]
    poses = {
        'up_down': ((0.21, 0.32, 1.04), (-0.1, 1.0, 0.15), (-0.2, 0.0, 1.0)),  # palms up
        'push': ((0.2, 0.28, 1.1), (-0.1, 0.3, 1.0), (-0.1, 1.0, 0.0)),  # palms forward
        'open_close': ((0.2, 0.32, 1.08), (-0.15, 1.0, 0.1), (-0.5, 0.0, -0.8)),
    }
    right, left = _both(poses[pattern])
    s = _Scene(ctx, right, left, both_approach=True)
    p_r, p_l = right[1], left[1]
    shape = posture(Posture.OPEN)
    t = _shape_both(s, 0.0, s.dur(0.45), shape) + s.dur(0.15)
    turns = int(np.clip(2 * s.reps, 3, 6))
    if pattern == 'open_close':
        fist, spread = posture(Posture.FIST), posture(Posture.SPREAD)
        for turn in range(turns):
            closing, opening = (s.dom, s.aux) if turn % 2 == 0 else (s.aux, s.dom)
            move = s.dur(0.45)
            closing.shape(t, move, fist)
            t = opening.shape(t, move, spread) + s.dur(0.2, 0.3)
        t = _shape_both(s, t, s.dur(0.4), shape)
        s.dom.move_wrist(0.2, t - 0.2, p=p_r + np.array([0.0, 0.03, 0.02]))
        s.aux.move_wrist(0.2, t - 0.2, p=p_l + np.array([0.0, 0.03, 0.02]))
    else:
        delta = (np.array([0.0, 0.0, 0.075]) if pattern == 'up_down'
                 else np.array([0.0, 0.12, 0.01])) * s.amp
        for turn in range(turns):
            first = turn % 2 == 0
            if pattern == 'up_down':  # one hand up while the other goes down
                offset_r = 0.5 * delta if first else -0.5 * delta
                offset_l = -offset_r
            else:  # one hand pushes forward while the other comes back
                offset_r, offset_l = (delta, 0.0 * delta) if first else (0.0 * delta, delta)
            move = s.dur(0.5)
            s.dom.move_wrist(t, move, p=p_r + offset_r)
            t = s.aux.move_wrist(t, move, p=p_l + _mirror_offset(offset_l)) + s.dur(0.08, 0.5)
        move = s.dur(0.45)
        s.dom.move_wrist(t, move, p=p_r)
        t = s.aux.move_wrist(t, move, p=p_l)
    words = {'up_down': 'move up and down in alternation, palms up',
             'push': 'push forward one after the other',
             'open_close': 'take turns closing into a fist and opening'}[pattern]
    return s.finish(f'the hands {words}', {'pattern': pattern, 'turns': turns},
                    both_settle=True)


# Beat patterns (x lateral for the right hand, z up; normalised), per meter: ictus and rebound
# points of each beat, ending high for the next downbeat.
_BEAT_PATTERNS = {
    2: [(0.0, -1.0), (0.25, -0.45), (0.3, -0.8), (0.0, 0.4)],
    3: [(0.0, -1.0), (0.1, -0.5), (0.6, -0.8), (0.5, -0.4), (0.25, -0.3), (0.0, 0.4)],
    4: [(0.0, -1.0), (-0.1, -0.5), (-0.6, -0.8), (-0.5, -0.4), (0.6, -0.8), (0.5, -0.4),
        (0.25, -0.3), (0.0, 0.4)],
}


@register('conducting', _COORDINATION, 'the dominant hand conducts a beat pattern, the other '
                                       'hand mirrors it or holds')
def _conducting(ctx: SynthContext) -> PrimitiveClip:
    centre = ((0.23, 0.35, 1.15), (-0.2, 1.0, 0.0), (-0.4, 0.0, -1.0))
    meter = int(ctx.rng.choice([2, 3, 4]))
    mirrored = bool(ctx.rng.random() < 0.5)
    right, left = _both(centre)
    if not mirrored:
        left = _place(((0.24, 0.3, 1.07), (-0.2, 1.0, 0.3), (-0.6, 0.0, 0.8)), HandSide.LEFT)
    s = _Scene(ctx, _place(centre, shift=(0.0, -0.03, -0.12)),
               _place(_REST_OTHER, HandSide.LEFT), approach=None)
    size = 0.12 * s.amp
    bars = (1 if s.reps <= 2 else 2) * (2 if meter == 2 else 1)
    beat = s.dur(0.6, 0.05)
    p_r = right[1] + np.array([0.0, 0.0, 0.4 * size])  # preparation: above the centre
    s.dom.move_wrist(0.0, s.dur(0.5), right[0], p_r)
    s.aux.move_wrist(0.0, s.dur(0.6), left[0], left[1] + (
        np.array([0.0, 0.0, 0.4 * size]) * _FLIP_X if mirrored else 0.0))
    s.dom.shape(0.0, s.dur(0.45), posture(Posture.OPEN))
    s.aux.shape(0.0, s.dur(0.5), posture(Posture.OPEN if mirrored else Posture.RELAXED))
    t = max(s.dom.end(), s.aux.end()) + s.dur(0.1)
    points = _BEAT_PATTERNS[meter]
    for _ in range(bars):
        for index, (x, z) in enumerate(points):
            # Towards the ictus: 40 % of the beat; the rebound takes the rest.
            move = (0.4 if index % 2 == 0 else 0.6) * jittered(beat, s.rng, 0.04)
            offset = np.array([x * size, 0.02 * z * s.amp, z * size])
            s.dom.move_wrist(t, move, p=right[1] + offset)
            if mirrored:
                s.aux.move_wrist(t, move, p=left[1] + _mirror_offset(offset))
            t += move
    if not mirrored:  # a cue: the other hand lifts, palm up, for the last bar
        cue = t - meter * beat
        s.aux.move_wrist(cue, s.dur(0.4), p=left[1] + np.array([0.0, 0.03, 0.06]))
        s.aux.move_wrist(t - 0.1, s.dur(0.4), p=left[1])
    back = s.dur(0.35)  # the hands come to rest at the centre
    s.dom.move_wrist(t, back, p=right[1])
    if mirrored:
        s.aux.move_wrist(t, back, p=left[1])
    names = {2: 'two-four', 3: 'three-four', 4: 'four-four'}
    label = (f'both hands conduct in {names[meter]} time, mirrored' if mirrored else
             f'the {s.hand} hand conducts in {names[meter]} time')
    return s.finish(label, {'meter': meter, 'bars': bars, 'mirrored': mirrored,
                            'beat_s': round(beat, 3)}, both_settle=mirrored)


# Half thickness of the palm (palmar skin to the wrist-knuckle plane) at the default hand
# length, as in the surface proxy of :mod:`handx_gen.annotate.surface`.
_PALM_HALF_THICKNESS_M = 0.0135


@register('showing_size', _COORDINATION, 'the hands are held apart, palms facing, showing the '
                                         'size of something')
def _showing_size(ctx: SynthContext) -> PrimitiveClip:
    s = _Scene(ctx, _place(_REST_OTHER), _place(_REST_OTHER, HandSide.LEFT), approach=None)
    size = float(s.rng.uniform(0.15, 0.6))
    half = 0.5 * size + _PALM_HALF_THICKNESS_M * s.scale
    pose = ((half, 0.33, 1.1), (0.0, 1.0, 0.15), (-1.0, 0.0, 0.0))  # palms facing, thumbs up
    right, left = _both(pose)
    rise = s.dur(0.65)
    s.dom.move_wrist(0.0, rise, *right)
    s.aux.move_wrist(0.0, rise, *left)
    t = _shape_both(s, 0.1, s.dur(0.45), posture(Posture.OPEN))
    t = max(t, rise) + s.dur(0.3)
    emphasis = s.choice(['pump', 'adjust', 'hold'])
    if emphasis == 'pump':  # two small beats down and up, together
        for _ in range(2):
            move = s.dur(0.22)
            s.dom.move_wrist(t, move, p=right[1] + np.array([0.0, 0.01, -0.045]))
            t = s.aux.move_wrist(t, move, p=left[1] + np.array([0.0, 0.01, -0.045]))
            s.dom.move_wrist(t, move, p=right[1])
            t = s.aux.move_wrist(t, move, p=left[1])
    elif emphasis == 'adjust':  # closer, then back out: "about this big"
        squeeze = min(0.05, 0.2 * size) * s.amp
        move = s.dur(0.4)
        s.dom.move_wrist(t, move, p=right[1] + np.array([-0.5 * squeeze, 0.03, 0.02]))
        t = s.aux.move_wrist(t, move, p=left[1] + np.array([0.5 * squeeze, 0.03, 0.02]))
        t += s.dur(0.25)
        s.dom.move_wrist(t, move, p=right[1])
        t = s.aux.move_wrist(t, move, p=left[1])
    else:  # held out towards the listener
        s.dom.move_wrist(t, s.dur(0.7), p=right[1] + np.array([0.0, 0.045, 0.015]))
        t = s.aux.move_wrist(t, s.dur(0.7), p=left[1] + np.array([0.0, 0.045, 0.015]))
    # Then the hands sink a little and relax.
    t += s.dur(0.35)
    drop = np.array([0.0, -0.02, -0.07])
    s.dom.move_wrist(t, s.dur(0.55), p=right[1] + drop)
    s.aux.move_wrist(t, s.dur(0.55), p=left[1] + drop)
    _shape_both(s, t + 0.1, s.dur(0.45), posture(Posture.RELAXED))
    centimetres = int(5 * round(100 * size / 5))
    return s.finish(f'the hands show a size of about {centimetres} centimetres',
                    {'size_m': round(size, 4), 'emphasis': emphasis}, both_settle=True)


@register('rolling_hands', _COORDINATION, 'the loosely fisted hands roll around each other in '
                                          'front of the chest')
def _rolling_hands(ctx: SynthContext) -> PrimitiveClip:
    s0 = float(ctx.skeletons[ctx.dominant].hand_length_m / DEFAULT_HAND_LENGTH_M)
    pose = ((0.18 * s0, 0.3, 1.1), (-1.0, 0.3, 0.0), (0.0, -0.5, -1.0))  # fingers medial
    right, left = _both(pose)
    s = _Scene(ctx, right, left, both_approach=True)
    t = _shape_both(s, 0.0, s.dur(0.45), posture(Posture.FIST)) + s.dur(0.1)
    circles = int(np.clip(s.reps + 1, 2, 4))
    period = s.dur(0.75, 0.1)
    radius = 0.055 * s.amp * s.scale
    forward = bool(s.rng.random() < 0.5)
    start, stop = t, t + circles * period + 0.4
    sign = 1.0 if forward else -1.0

    def roll(times: np.ndarray, phase0: float) -> np.ndarray:
        phi = sign * _ramped_phase(times, start, stop, 2.0 * math.pi * circles, 0.35) + phase0
        # A circle in the y-z plane about the centre between the hands' start positions.
        out = radius * np.stack([np.zeros_like(phi), np.sin(phi), np.cos(phi)], axis=-1)
        return out - radius * np.array([0.0, math.sin(phase0), math.cos(phase0)])

    s.dom.offsets.append(lambda times: roll(times, 0.0))
    s.aux.offsets.append(lambda times: roll(times, math.pi))
    s.dom.move_wrist(stop, 0.05)
    s.aux.move_wrist(stop, 0.05)
    # The start poses sit half a circle apart: the right hand at the top, the left at the
    # bottom.
    s.dom.wrist_keys = [(k, R, p + np.array([0.0, 0.0, radius])) for k, R, p in s.dom.wrist_keys]
    s.aux.wrist_keys = [(k, R, p - np.array([0.0, 0.0, radius])) for k, R, p in s.aux.wrist_keys]
    words = 'forwards' if forward else 'backwards'
    return s.finish(f'the hands roll around each other {words}',
                    {'circles': circles, 'direction': words, 'radius_m': round(radius, 4)},
                    both_settle=True)


@register('typing', _COORDINATION, 'both hands type on an imaginary keyboard, palms down')
def _typing(ctx: SynthContext) -> PrimitiveClip:
    s0 = float(ctx.skeletons[ctx.dominant].hand_length_m / DEFAULT_HAND_LENGTH_M)
    pose = ((0.14 * s0, 0.29, 0.99), (-0.18, 1.0, -0.2), (0.1, 0.0, -1.0))
    right, left = _both(pose)
    s = _Scene(ctx, right, left, both_approach=True)
    t = _shape_both(s, 0.0, s.dur(0.45), posture(Posture.PIANO)) + s.dur(0.15)
    keys = int(np.clip(5 * s.reps + s.rng.integers(0, 5), 8, 18))
    depth = float(np.clip(s.amp, 0.9, 1.2))
    fingers = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)
    weights = np.array([0.38, 0.3, 0.18, 0.14])
    for _ in range(keys):
        script = s.dom if s.rng.random() < 0.5 else s.aux
        if s.rng.random() < 0.1:
            finger = Finger.THUMB
        else:
            finger = fingers[int(s.rng.choice(4, p=weights))]
        _tap(script, finger, t, s.dur(0.18, 0.15), s.dur(0.2, 0.15), 32.0 * depth,
             16.0 * depth)
        t += s.dur(0.22, 0.3)
    t = max(s.dom.end(), s.aux.end())
    # Small reaches across the keyboard.
    for script, base in ((s.dom, right[1]), (s.aux, left[1])):
        u = 0.3
        while u < t - 0.4:
            move = s.dur(0.5, 0.3)
            shift = np.array([s.rng.uniform(-0.012, 0.015), s.rng.uniform(-0.01, 0.015), 0.0])
            script.move_wrist(u, move, p=base + shift)
            u += move + s.dur(0.2, 0.5)
    return s.finish('both hands type on an imaginary keyboard', {'keys': keys},
                    both_settle=True)
