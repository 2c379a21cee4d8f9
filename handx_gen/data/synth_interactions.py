"""Synthetic motion types: bimanual interactions in which the hands touch.

Motion types (:attr:`MotionCategory.BIMANUAL_CONTACT`): ``clap``, ``rub_palms``, ``steeple``,
``interlace_fingers``, ``tap_palm``, ``stroke_back``, ``grasp_wrist``, ``count_on_fingers``,
``press_palms``, ``heart_shape``, ``frame_shape`` (:data:`CONTACT_TYPES`).

Contacts are realised geometrically with the surface proxy of
:mod:`handx_gen.annotate.surface`: each type fixes the hand postures first, then solves where
the hands go. The basic solve moves a hand (or both, symmetrically) along an approach direction
until an intended pair of parts is :data:`CONTACT_GAP_M` apart, or the hands overlap by
:data:`MAX_SOLVE_PENETRATION_M`, or their keypoint bones come :data:`MIN_BONE_CLEARANCE_M` close
(the quality filter judges interpenetration on those bones, so fingertips meet pad to pad, not
end to end), whichever comes first (a grid search refined a few times). Per type:

* ``clap``, ``press_palms``: flat hands, palms facing across the midline, mirror images; the
  half distance between them is solved for palm contact (the thenar eminences, part of the
  palm, meet first). Claps repeat the approach; pressing holds it while the joined hands push
  sideways and tilt as one rigid pair.
* ``rub_palms``: as the clap, with the hands sliding in opposition along the fingers; the
  touching distance is solved at five points of the stroke and interpolated.
* ``steeple``: palms facing, leaning in a little, fingers straight; the middle fingertips are
  brought together, then the index, ring and little fingers' knuckle flexion is fitted so that
  each pad lies on the midline plane (the index, middle and ring pads always meet).
* ``heart_shape``: palms away from the body, index fingers up and thumbs down towards the
  midline, bent forward; mirror images brought together, the index spread and the thumb
  (abduction, then its tip bend for a pad parallel to the midline) fitted to the midline plane.
* ``frame_shape``: two L shapes, the left hand the point reflection of the right through the
  frame's centre, so one solve (the depth offset between the hands) closes both thumb-index
  corners at once.
* ``interlace_fingers``: palms facing, fingers spread and bent towards the other hand, one
  hand half a finger spacing lower (three offsets tried, the deepest kept); the hands come
  together until the fingers press; the joined hands rock as one rigid pair.
* ``tap_palm``, ``count_on_fingers``: the other hand held still (palm up; held up with spread
  fingers), the dominant pointing index approaches the target (palm centre; each fingertip's
  pad) along the target's palm normal.
* ``stroke_back``: the stroking hand rolled until its index and middle fingertips are level,
  lowered onto the back of the other hand, each finger's knuckle fitted to the back's plane,
  then slid along it towards the knuckles and lifted back.
* ``grasp_wrist``: the open dominant hand lands its palm on the back of the other wrist, then
  each finger (knuckle, middle and distal joints together) and the thumb curl until they touch
  the other hand.

A drawn clip whose hands overlap deeper than 4.5 mm, whose bones come closer than the filter
allows, or which misses an intended contact is drawn again (:func:`_contact_type`, from the
same generator). The plan's contacts are those the final geometry realises, per pair of parts,
as :func:`handx_gen.annotate.surface.contact_intervals` finds them (between the hands, and the
thumb tip on a fingertip within a hand): the intended ones by construction, incidental ones (a
thumb resting on the other palm) as they happen; the intended pairs are listed in the params
(``'intended'``, ``'left.part~right.part'``). Finger actions come from the keyframe schedule
(:func:`handx_gen.data.synth_motion.schedule_finger_actions`). Motions use minimum-jerk
keyframes, a slow common sway of both wrists, and start and end with the hands apart.

World placement as in :mod:`handx_gen.data.synth_gestures`: Z up, the person faces +y with
their right towards +x, hands in front of the chest. Asymmetric types are written for a
right-dominant person (the right hand taps, strokes, grasps, counts) and mirrored through the
midline for a left-dominant one.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np

from handx_gen.annotate.surface import (
    HAND_PARTS,
    SELF_CONTACT_PAIRS,
    ContactConfig,
    HandSurface,
    bone_distance,
    contact_intervals,
    hand_surface,
    inter_hand_penetration,
    part_distance,
    part_distance_matrix,
)
from handx_gen.data.plan import MotionCategory, PlannedContact, PlannedFingerAction
from handx_gen.data.synth_base import PrimitiveClip, SynthContext, register
from handx_gen.data.synth_motion import (
    Schedule,
    Step,
    clip_keypoints,
    clip_to_bounds,
    couple_fingers,
    jittered,
    local_keypoints,
    place_keypoints,
    rotation_about,
    schedule_finger_actions,
    set_finger,
    set_thumb,
    sway,
    wrist_rotation,
)
from handx_gen.hand.parts import FINGER_PARTS, FINGERTIP_PARTS, HandPart, PartRef
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import Finger, HandSide

__all__ = [
    'CONTACT_GAP_M',
    'CONTACT_TYPES',
    'MAX_SOLVE_PENETRATION_M',
    'MIN_BONE_CLEARANCE_M',
    'contacts_from_keypoints',
]

CONTACT_TYPES: tuple[str, ...] = (
    'clap', 'rub_palms', 'steeple', 'interlace_fingers', 'tap_palm', 'stroke_back',
    'grasp_wrist', 'count_on_fingers', 'press_palms', 'heart_shape', 'frame_shape',
)

# Surface gap the solvers aim for between touching parts (skin resting on skin; the contact
# threshold, ContactConfig.touch_gap_m, is 5 mm).
CONTACT_GAP_M = 0.001
# The solvers stop bringing the hands together when any two parts overlap this much (soft
# tissue gives; the corpus' limit is 5 mm).
MAX_SOLVE_PENETRATION_M = 0.003
# Keypoint bones of the two hands stay this far apart: the quality filter flags frames whose
# bone capsules (9 mm) overlap by more than 8 mm, i.e. bones closer than 10 mm. Touching
# fingertips therefore meet pad to pad, not end to end.
MIN_BONE_CLEARANCE_M = 0.0106

_CONTACT_CONFIG = ContactConfig()
_CENTRE = np.array([0.0, 0.32, 1.08])  # in front of the chest
_X, _Y, _Z = np.eye(3)
_MIRROR = np.diag([-1.0, 1.0, 1.0])
_LONG = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)
L, R = HandSide.LEFT, HandSide.RIGHT


# ============================================================================ geometry


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _mirrored(R_world_wrist: np.ndarray, p_world_wrist: np.ndarray, centre: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """The other hand's wrist pose that mirrors this one through the plane x = centre_x."""
    return (_MIRROR @ R_world_wrist @ _MIRROR,
            centre + (p_world_wrist - centre) @ _MIRROR)


def _point_reflected(R_world_wrist: np.ndarray, p_world_wrist: np.ndarray, centre: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The other hand's wrist pose that is this one reflected through the point ``centre``."""
    return -R_world_wrist @ _MIRROR, 2.0 * centre - p_world_wrist


class _Hands:
    """Both hands' wrist-frame keypoints for fixed postures, placed by wrist poses."""

    def __init__(self, angles: np.ndarray, skeletons: Sequence[HandSkeleton]) -> None:
        self.angles = np.asarray(angles, dtype=np.float64)  # (2, 15, 3)
        self.skeletons = tuple(skeletons)
        self.local = np.stack([local_keypoints(self.angles[s], self.skeletons[s])
                               for s in HandSide])  # (2, 21, 3)

    def keypoints(self, side: HandSide, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray
                  ) -> np.ndarray:
        return place_keypoints(self.local[side], R_world_wrist, p_world_wrist)

    def surface(self, side: HandSide, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray
                ) -> HandSurface:
        return hand_surface(self.keypoints(side, R_world_wrist, p_world_wrist), side)


def _bisect(f: Callable[[np.ndarray], np.ndarray], lo: float, hi: float,
            rounds: int = 4, points: int = 7) -> float:
    """The first ``x`` going from ``lo`` towards ``hi`` at which ``f`` turns negative (the last
    value found with ``f >= 0`` before it), or ``hi`` if it never does on the first grid.

    A grid of ``2 * points + 2`` values, then ``rounds - 1`` refinements of ``points`` values
    in the bracketing cell (``f`` takes and returns (n,) arrays).
    """
    lo_x, hi_x = float(lo), float(hi)
    count = 2 * points + 2
    for k in range(rounds):
        xs = lo_x + (hi_x - lo_x) * np.arange(1, count + 1) / count
        if k > 0:
            xs = xs[:-1]  # hi_x itself is known to be negative
        bad = np.flatnonzero(f(xs) < 0.0)
        if bad.size == 0:
            return float(xs[-1]) if k > 0 else hi_x
        first = int(bad[0])
        lo_x, hi_x = (float(xs[first - 1]) if first > 0 else lo_x), float(xs[first])
        count = points + 1
    return lo_x


def _room(keypoints_left: np.ndarray, keypoints_right: np.ndarray,
          pairs: Sequence[tuple[HandPart, HandPart]], gap: float = CONTACT_GAP_M) -> np.ndarray:
    """(n,) positive while the hands may come closer: every (left part, right part) pair
    further apart than ``gap``, the hands overlapping less than
    :data:`MAX_SOLVE_PENETRATION_M` and their keypoint bones at least
    :data:`MIN_BONE_CLEARANCE_M` apart."""
    sl, sr = hand_surface(keypoints_left, L), hand_surface(keypoints_right, R)
    room = MAX_SOLVE_PENETRATION_M - inter_hand_penetration(sl, sr)
    if pairs:
        room = np.minimum(room, _pair_distance(sl, sr, pairs) - gap)
    return np.minimum(room, bone_distance(keypoints_left, keypoints_right)
                      - MIN_BONE_CLEARANCE_M)


def _pair_distance(sl: HandSurface, sr: HandSurface,
                   pairs: Sequence[tuple[HandPart, HandPart]]) -> np.ndarray:
    """(...,) the smallest distance over (left part, right part) pairs."""
    return np.min([part_distance(sl, a, sr, b).distance for a, b in pairs], axis=0)


def _distal_plane_distance(surface: HandSurface, finger: Finger, point: np.ndarray,
                           normal: np.ndarray) -> np.ndarray:
    """(...,) signed distance from a plane to the surface of a finger's distal segment."""
    i = 3 * int(finger) + 2
    s0 = np.sum((surface.capsule_start[..., i, :] - point) * normal, -1)
    s1 = np.sum((surface.capsule_end[..., i, :] - point) * normal, -1)
    return np.minimum(s0, s1) - surface.capsule_radius[..., i]


def _fit_finger(angles: np.ndarray, skeleton: HandSkeleton, side: HandSide,
                R_world_wrist: np.ndarray, p_world_wrist: np.ndarray,
                measure: Callable[[HandSurface], np.ndarray], target: float,
                joint: tuple[int, int], lo: float, hi: float,
                follow: Sequence[tuple[int, int, float]] = ()) -> np.ndarray:
    """Solve one angle so that ``measure(surface)`` equals ``target`` (bisection).

    Args:
        angles: (15, 3) the hand's posture (not modified).
        skeleton: Its skeleton.
        side: Which hand.
        R_world_wrist: (3, 3) wrist orientation.
        p_world_wrist: (3,) wrist position.
        measure: Surface -> (n,) the quantity to match (monotone in the angle).
        target: Its wanted value.
        joint: (row, column) of the angle to solve.
        lo: Lower end of the search, radians.
        hi: Upper end.
        follow: (row, column, ratio) angles set to ``ratio`` times the solved one.

    Returns:
        (15, 3) the posture with the solved angle (unchanged if already within 0.2 mm; the
        closest of the current value and the two ends if ``target`` is not bracketed).
    """
    def posture(values: np.ndarray) -> np.ndarray:
        out = np.repeat(angles[None], values.size, axis=0)
        out[:, joint[0], joint[1]] = values
        for row, col, ratio in follow:
            out[:, row, col] = ratio * values
        return out

    def value(values: np.ndarray) -> np.ndarray:
        kp = place_keypoints(local_keypoints(posture(values), skeleton), R_world_wrist,
                             p_world_wrist)
        return measure(hand_surface(kp, side)) - target

    current = float(angles[joint])
    now, *ends = value(np.array([current, lo, hi]))
    if abs(now) < 2e-4:  # already there (0.2 mm)
        return angles
    if ends[0] * ends[1] > 0.0:  # not bracketed: the closest of the ends and the current
        best = int(np.argmin(np.abs([now, *ends])))
        return posture(np.array([(current, lo, hi)[best]]))[0]
    sign = 1.0 if ends[0] > 0.0 else -1.0
    x = _bisect(lambda v: sign * value(v), lo, hi, rounds=3, points=7)
    return posture(np.array([x]))[0]


# ============================================================================ postures


def _flat(rng: np.random.Generator, spread_deg: float = 0.0) -> np.ndarray:
    """Fingers straight and together, the thumb alongside (its web closed, a little behind
    the palm plane so that it does not stand out towards the other hand)."""
    a = np.zeros((15, 3))
    for finger in _LONG:
        set_finger(a, finger, rng.uniform(-4.0, 0.0), rng.uniform(0.0, 4.0),
                   abduction_deg=spread_deg * rng.uniform(0.7, 1.0))
    set_thumb(a, cmc_flexion_deg=rng.uniform(5.0, 12.0), cmc_abduction_deg=-12.0,
              mcp_deg=rng.uniform(3.0, 8.0), ip_deg=rng.uniform(3.0, 8.0))
    return a


def _curled(a: np.ndarray, fingers: Sequence[Finger], rng: np.random.Generator,
            amount: float = 1.0) -> np.ndarray:
    """Curl ``fingers`` into the palm (a fist's flexion times ``amount``), in place."""
    for finger in fingers:
        set_finger(a, finger, amount * rng.uniform(75.0, 85.0), amount * rng.uniform(90.0, 100.0))
    return a


def _pointing(rng: np.random.Generator) -> np.ndarray:
    """Index extended, the other fingers curled, the thumb resting on the middle finger."""
    a = np.zeros((15, 3))
    set_finger(a, Finger.INDEX, rng.uniform(0.0, 8.0), rng.uniform(0.0, 8.0))
    _curled(a, (Finger.MIDDLE, Finger.RING, Finger.LITTLE), rng)
    set_thumb(a, cmc_flexion_deg=35.0, cmc_abduction_deg=25.0, cmc_twist_deg=-20.0,
              mcp_deg=30.0, ip_deg=25.0)
    return a


def _relaxed_open(rng: np.random.Generator) -> np.ndarray:
    """An open, relaxed hand: a gentle flexion cascade towards the little finger."""
    a = np.zeros((15, 3))
    for k, finger in enumerate(_LONG):
        set_finger(a, finger, rng.uniform(5.0, 12.0) + 3.0 * k, rng.uniform(8.0, 15.0) + 3.0 * k,
                   abduction_deg=2.0)
    set_thumb(a, cmc_flexion_deg=5.0, cmc_abduction_deg=10.0, mcp_deg=8.0, ip_deg=8.0)
    return a


def _finish(angles: np.ndarray) -> np.ndarray:
    """Coupled (ring and little drag each other) and inside the anatomical bounds."""
    return clip_to_bounds(couple_fingers(angles, dip_ratio=None))


# ============================================================================ the plan


def contacts_from_keypoints(keypoints: np.ndarray, fps: float,
                            config: ContactConfig = _CONTACT_CONFIG
                            ) -> tuple[PlannedContact, ...]:
    """Every contact event the keypoints realise, as plan entries.

    Between the hands: every pair of parts (left part as ``a``). Within a hand: the pairs of
    :data:`~handx_gen.annotate.surface.SELF_CONTACT_PAIRS` (thumb tip on a fingertip).
    Events are :func:`~handx_gen.annotate.surface.contact_intervals` of each pair's surface
    distance.

    Args:
        keypoints: (T, 2, 21, 3) world keypoints.
        fps: Frame rate.
        config: Contact thresholds.

    Returns:
        Contacts sorted by start frame, then parts.
    """
    return _contacts(keypoints, fps, config)[0]


def _contacts(keypoints: np.ndarray, fps: float, config: ContactConfig = _CONTACT_CONFIG
              ) -> tuple[tuple[PlannedContact, ...], np.ndarray]:
    """The contacts and the (T, 12, 12) distances between the hands' parts."""
    sl = hand_surface(keypoints[:, L], L)
    sr = hand_surface(keypoints[:, R], R)
    out = []
    between = part_distance_matrix(sl, sr)  # (T, 12, 12)
    for i, j in zip(*np.nonzero(between.min(axis=0) <= config.touch_gap_m), strict=True):
        for start, stop in contact_intervals(between[:, i, j], fps, config):
            out.append(PlannedContact(start, stop, PartRef(L, HAND_PARTS[i]),
                                      PartRef(R, HAND_PARTS[j])))
    for side, surface in ((L, sl), (R, sr)):
        for a, b in SELF_CONTACT_PAIRS:
            within = part_distance(surface, a, surface, b).distance  # (T,)
            if within.min() > config.touch_gap_m:
                continue
            for start, stop in contact_intervals(within, fps, config):
                out.append(PlannedContact(start, stop, PartRef(side, a), PartRef(side, b)))
    contacts = tuple(sorted(out, key=lambda c: (c.start, c.a.to_json(), c.b.to_json())))
    return contacts, between


@dataclasses.dataclass
class _Track:
    """Per-frame targets being assembled, and the schedule that produced them."""

    schedule: Schedule
    angles: np.ndarray  # (T, 2, 15, 3)
    R: np.ndarray  # (T, 2, 3, 3)
    p: np.ndarray  # (T, 2, 3)


def _track(schedule: Schedule, angles: Sequence[np.ndarray], rotations: Sequence[np.ndarray],
           positions: Sequence[np.ndarray]) -> _Track:
    """Blend per-key (2, 15, 3) angles, (2, 3, 3) rotations and (2, 3) positions."""
    rot = np.stack([schedule.rotation_track(np.stack([r[s] for r in rotations]))
                    for s in HandSide], axis=1)
    return _Track(schedule, schedule.track(np.stack(angles)), rot,
                  schedule.track(np.stack(positions)))


def _common_sway(track: _Track, ctx: SynthContext, amplitude_m: float = 0.004) -> None:
    """Add the same slow drift to both wrists (keeps every contact), in place."""
    drift = sway(track.p.shape[0], ctx.fps, ctx.rng, amplitude_m)
    track.p += drift[:, None, :]


def _common_turn(track: _Track, key_angles: Sequence[float], axis: np.ndarray,
                 pivot: np.ndarray) -> None:
    """Turn both hands together about ``axis`` through ``pivot`` by a per-key angle blended
    with the track's schedule (a rigid motion of the pair: contacts stay), in place."""
    angle = track.schedule.track(np.asarray(key_angles, dtype=np.float64))  # (T,)
    turn = rotation_about(axis, angle)[:, None]  # (T, 1, 3, 3)
    track.R = turn @ track.R
    track.p = pivot + ((track.p - pivot)[..., None, :] @ np.swapaxes(turn, -1, -2))[..., 0, :]


def _mirror_track(track: _Track) -> _Track:
    """The track mirrored through x = 0 with the hands swapped (a left-dominant version)."""
    swap = [R, L]
    return _Track(track.schedule, track.angles[:, swap].copy(),
                  (_MIRROR @ track.R @ _MIRROR)[:, swap], (track.p @ _MIRROR)[:, swap])


class _Rejected(Exception):
    """A built clip misses its quality bar; the motion type draws again."""


# Set while building the last allowed attempt, which is accepted whatever its quality.
_ACCEPT_ANY: contextvars.ContextVar[bool] = contextvars.ContextVar('accept_any', default=False)
_MAX_PENETRATION_M = 0.0045  # a drawn clip overlapping deeper than this is drawn again
_FILTER_BONE_CLEARANCE_M = 0.0102  # the quality filter flags bones closer than 10 mm


def _clip(track: _Track, ctx: SynthContext, label: str, intended: Sequence[str],
          params: dict | None = None) -> PrimitiveClip:
    """The primitive: angles bounded, contacts from the geometry, actions from the schedule.

    Raises:
        _Rejected: the hands overlap deeper than :data:`_MAX_PENETRATION_M` or their bones come
            closer than the quality filter allows, or an intended contact is not realised
            (unless this is the last attempt).
    """
    angles = clip_to_bounds(track.angles)
    keypoints = clip_keypoints(angles, track.R, track.p, ctx.skeletons)
    contacts, between = _contacts(keypoints, ctx.fps)
    if not _ACCEPT_ANY.get():
        realised = {f'{c.a.to_json()}~{c.b.to_json()}' for c in contacts}
        if (-between.min() > _MAX_PENETRATION_M
                or bone_distance(keypoints[:, L], keypoints[:, R]).min()
                < _FILTER_BONE_CLEARANCE_M
                or not intended or not set(intended) <= realised):
            raise _Rejected(label)
    actions: list[PlannedFingerAction] = schedule_finger_actions(track.schedule, angles)
    return PrimitiveClip(angles=angles, R_world_wrist=track.R, p_world_wrist=track.p,
                         contacts=contacts, finger_actions=tuple(actions), label=label,
                         params={'intended': list(intended), **(params or {})})


def _contact_type(name: str, description: str
                  ) -> Callable[[Callable[[SynthContext], PrimitiveClip]],
                                Callable[[SynthContext], PrimitiveClip]]:
    """Register a contact motion type; a drawn clip that misses the quality bar of
    :func:`_clip` is drawn again (from the same generator, so still deterministic), up to
    :data:`_ATTEMPTS` times."""
    def decorate(build: Callable[[SynthContext], PrimitiveClip]
                 ) -> Callable[[SynthContext], PrimitiveClip]:
        @functools.wraps(build)
        def drawn(ctx: SynthContext) -> PrimitiveClip:
            for _ in range(_ATTEMPTS - 1):
                try:
                    return build(ctx)
                except _Rejected:
                    continue
            token = _ACCEPT_ANY.set(True)
            try:
                return build(ctx)
            finally:
                _ACCEPT_ANY.reset(token)

        register(name, MotionCategory.BIMANUAL_CONTACT, description)(drawn)
        return drawn

    return decorate


def _centre(ctx: SynthContext) -> np.ndarray:
    return _CENTRE + ctx.rng.uniform([-0.03, -0.03, -0.05], [0.03, 0.04, 0.05])


def _times(word: str, count: int) -> str:
    return {1: f'{word} once', 2: f'{word} twice'}.get(count, f'{word} {count} times')


def _dominant_words(ctx: SynthContext) -> tuple[str, str]:
    return (('right', 'left') if ctx.dominant == R else ('left', 'right'))


# ============================================================================ palm to palm


def _palms_facing(ctx: SynthContext, hands: _Hands, fingers: np.ndarray, centre: np.ndarray,
                  slide: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Right wrist pose for palms facing across the midline (palm -x, fingers along
    ``fingers``), its palm centre on the midline, and the half distance between the palm
    centres at which the palms touch (mirror-symmetric; ``slide`` shifts the right hand along
    its fingers and the left hand the other way).

    Returns:
        (R_right, p_right at zero half distance, touching half distance).
    """
    R_r = wrist_rotation(fingers, -_X, R)
    centre_local = hand_surface(hands.local[R], R).palm_centre  # wrist frame
    p0 = centre - R_r @ centre_local + slide * _unit(fingers)

    def room(half: np.ndarray) -> np.ndarray:
        p_r = p0 + half[:, None] * _X
        R_l, p_l = _mirrored(R_r, p_r - 2.0 * slide * _unit(fingers), centre)
        return _room(hands.keypoints(L, R_l[None], p_l), hands.keypoints(R, R_r[None], p_r),
                     [(HandPart.PALM, HandPart.PALM)])

    # Moving the half distance from large to small brings the hands together.
    touch = _bisect(lambda h: room(0.2 - h), 0.0, 0.2)
    return R_r, p0, 0.2 - touch


def _palm_keys(R_r: np.ndarray, p0: np.ndarray, halves: Sequence[float], centre: np.ndarray,
               slides: Sequence[float] = (), fingers: np.ndarray | None = None
               ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per key (2, 3, 3) rotations and (2, 3) positions of mirrored palms-facing hands."""
    rotations, positions = [], []
    slides = list(slides) or [0.0] * len(halves)
    for half, slide in zip(halves, slides, strict=True):
        shift = slide * _unit(fingers) if fingers is not None else 0.0
        p_r = p0 + half * _X + shift
        R_l, p_l = _mirrored(R_r, p0 + half * _X - shift, centre)
        rotations.append(np.stack([R_l, R_r]))
        positions.append(np.stack([p_l, p_r]))
    return rotations, positions


@_contact_type('clap',
               'the flat hands clap together, palm to palm, one or more times')
def clap(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    posture = _finish(_flat(rng))
    angles = np.stack([posture, posture])
    hands = _Hands(angles, ctx.skeletons)
    elevation = math.radians(rng.uniform(25.0, 55.0))
    fingers = np.array([0.0, math.cos(elevation), math.sin(elevation)])
    R_r, p0, touch = _palms_facing(ctx, hands, fingers, centre)
    apart = touch + 0.5 * ctx.amplitude * rng.uniform(0.12, 0.22)
    count = int(np.clip(ctx.repetitions, 1, 6))
    period = 0.5 / ctx.tempo
    steps = [Step(jittered(0.35, rng))]
    halves = [apart * 1.25, apart]
    for k in range(count):
        steps.append(Step(jittered(0.45 * period, rng), jittered(0.1, rng, 0.3)))
        steps.append(Step(jittered(0.5 * period, rng),
                          jittered(0.05 if k < count - 1 else 0.25, rng, 0.5)))
        halves += [touch, apart]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    rotations, positions = _palm_keys(R_r, p0, halves, centre)
    # The joined hands dip a little on each clap.
    dip = [np.zeros(3) if h > touch else -0.01 * rng.uniform(0.5, 1.5) * _Z for h in halves]
    dip[0] = dip[-1] = -rng.uniform(0.04, 0.06) * _Z  # the hands rise to clap and sink after
    positions = [p + d for p, d in zip(positions, dip, strict=True)]
    track = _track(schedule, [angles] * len(halves), rotations, positions)
    _common_sway(track, ctx)
    return _clip(track, ctx, f'clap the hands {_times("", count).strip()}',
                 ['left.palm~right.palm'], {'claps': count})


@_contact_type('press_palms',
               'the palms press together in front of the chest, fingers up, and push side to side')
def press_palms(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    posture = _finish(_flat(rng))
    angles = np.stack([posture, posture])
    hands = _Hands(angles, ctx.skeletons)
    lean = math.radians(rng.uniform(5.0, 30.0))
    fingers = np.array([0.0, math.sin(lean), math.cos(lean)])
    R_r, p0, touch = _palms_facing(ctx, hands, fingers, centre)
    apart = touch + 0.5 * ctx.amplitude * rng.uniform(0.10, 0.18)
    pushes = int(np.clip(ctx.repetitions, 1, 4))
    push = ctx.amplitude * rng.uniform(0.02, 0.045)
    steps = [Step(jittered(0.6 / ctx.tempo, rng), jittered(0.3, rng))]
    halves = [apart, touch]
    shifts = [0.0, 0.0]
    for k in range(pushes):
        steps.append(Step(jittered(0.5 / ctx.tempo, rng), jittered(0.2, rng)))
        shifts.append(push if k % 2 == 0 else -push)
        halves.append(touch)
    steps += [Step(jittered(0.45 / ctx.tempo, rng), jittered(0.15, rng)),
              Step(jittered(0.5 / ctx.tempo, rng), 0.2)]
    halves += [touch, apart]
    shifts += [0.0, 0.0]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    rotations, positions = _palm_keys(R_r, p0, halves, centre)
    # Pushing: the joined hands move sideways together and tilt with the push.
    tilt = math.radians(rng.uniform(8.0, 15.0))
    positions = [p + shift * _X for p, shift in zip(positions, shifts, strict=True)]
    track = _track(schedule, [angles] * len(halves), rotations, positions)
    _common_turn(track, [-tilt * np.sign(shift) for shift in shifts], _Y, centre)
    _common_sway(track, ctx)
    return _clip(track, ctx, 'press the palms together and push from side to side',
                 ['left.palm~right.palm'], {'pushes': pushes})


@_contact_type('rub_palms',
               'the palms rub against each other, sliding back and forth in opposition')
def rub_palms(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    posture = _finish(_flat(rng))
    angles = np.stack([posture, posture])
    hands = _Hands(angles, ctx.skeletons)
    elevation = math.radians(rng.uniform(10.0, 40.0))
    fingers = np.array([0.0, math.cos(elevation), math.sin(elevation)])
    stroke = ctx.amplitude * rng.uniform(0.015, 0.03)  # each hand, so 2x relative
    # The palms' touching distance changes as the thenar eminences slide past each other:
    # solve it along the stroke and interpolate.
    samples = np.linspace(-stroke, stroke, 5)
    touches = []
    for slide in samples:
        R_r, p0, touch = _palms_facing(ctx, hands, fingers, centre, slide=float(slide))
        touches.append(touch)
    R_r, p0, _ = _palms_facing(ctx, hands, fingers, centre)
    touches = np.asarray(touches)
    apart = touches.max() + 0.5 * ctx.amplitude * rng.uniform(0.08, 0.14)
    strokes = 2 * int(np.clip(ctx.repetitions, 1, 4)) + 1
    steps = [Step(jittered(0.5 / ctx.tempo, rng), jittered(0.15, rng)),
             Step(jittered(0.2 / ctx.tempo, rng))]
    slides = [0.0, 0.0, stroke]
    for k in range(strokes - 1):
        steps.append(Step(jittered(0.32 / ctx.tempo, rng, 0.15)))
        slides.append(-stroke if k % 2 == 0 else stroke)
    steps += [Step(jittered(0.2 / ctx.tempo, rng), jittered(0.1, rng)),
              Step(jittered(0.45 / ctx.tempo, rng), 0.2)]
    slides += [0.0, 0.0]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    slide = schedule.track(np.asarray(slides))  # (T,)
    # In contact from key 1 to key -2: the half distance follows the stroke.
    contact = (schedule.segment >= 1) & (schedule.segment < len(steps) - 1)
    contact[schedule.frames[0].arrive] = True
    half = np.interp(slide, samples, touches)
    rest = float(np.interp(0.0, samples, touches))
    approach = schedule.track(np.array([apart, rest] + [rest] * (len(steps) - 1)))
    half = np.where(contact, half, approach)
    leave = schedule.segment == len(steps) - 1
    out = schedule.progress[leave]
    half[leave] = rest + out * (apart - rest)
    u = _unit(fingers)
    p_r = p0[None] + half[:, None] * _X + slide[:, None] * u
    R_l, p_l = _mirrored(R_r, p0[None] + half[:, None] * _X - slide[:, None] * u, centre)
    num = schedule.num_frames
    track = _Track(schedule, np.broadcast_to(angles, (num, 2, 15, 3)).copy(),
                   np.stack([np.broadcast_to(R_l, (num, 3, 3)),
                             np.broadcast_to(R_r, (num, 3, 3))], axis=1).copy(),
                   np.stack([p_l, p_r], axis=1))
    _common_sway(track, ctx)
    return _clip(track, ctx, 'rub the palms together', ['left.palm~right.palm'],
                 {'strokes': strokes})


# ============================================================================ shared solvers


def _approach(hands: _Hands, mover: HandSide, R_mover: np.ndarray, p_from: np.ndarray,
              direction: np.ndarray, R_other: np.ndarray, p_other: np.ndarray,
              pairs: Sequence[tuple[HandPart, HandPart]], reach: float = 0.15,
              gap: float = CONTACT_GAP_M) -> np.ndarray:
    """Move one hand from ``p_from`` along ``direction`` until one of ``pairs`` (mover's part,
    other hand's part) is ``gap`` apart or the hands overlap by the solver's limit.

    Returns:
        (3,) the mover's wrist position.
    """
    direction = _unit(direction)
    other = hands.keypoints(mover.other, R_other[None], p_other[None])

    def room(lam: np.ndarray) -> np.ndarray:
        moved = hands.keypoints(mover, R_mover[None], p_from + lam[:, None] * direction)
        if mover == L:
            return _room(moved, np.broadcast_to(other, moved.shape), pairs)
        return _room(np.broadcast_to(other, moved.shape), moved, [(b, a) for a, b in pairs])

    return p_from + _bisect(room, 0.0, reach) * direction


def _pad_steps(steps: list[Step], min_s: float = 2.6) -> list[Step]:
    """Stretch the first and the last move so the sequence lasts at least ``min_s`` (the
    quality filters keep clean runs of 2 s or more, and find still stretches of 2 s
    inactive)."""
    total = sum(s.move_s + s.hold_s for s in steps)
    if total >= min_s:
        return steps
    extra = min_s - total
    first = min(extra, 0.6)
    steps = [Step(steps[0].move_s + first, steps[0].hold_s)] + steps[1:]
    last = steps[-1]
    steps[-1] = Step(last.move_s + extra - first, last.hold_s)
    return steps


_ATTEMPTS = 8  # draws of a contact shape before taking the last one
_SURE_TOUCH_M = 0.003  # a solved contact counts when this close (the threshold is 5 mm)


def _touching(hands: _Hands, rotations: Sequence[np.ndarray], positions: Sequence[np.ndarray],
              pairs: Sequence[tuple[HandPart, HandPart]]) -> bool:
    """Whether every (left part, right part) pair is within :data:`_SURE_TOUCH_M`."""
    sl = hands.surface(L, rotations[L], positions[L])
    sr = hands.surface(R, rotations[R], positions[R])
    return all(float(part_distance(sl, a, sr, b).distance) <= _SURE_TOUCH_M for a, b in pairs)


def _static(value: np.ndarray, count: int) -> list[np.ndarray]:
    return [value] * count


# ============================================================================ fingertips


def _mirror_touch(hands: _Hands, R_r: np.ndarray, p_r: np.ndarray, centre: np.ndarray,
                  pairs: Sequence[tuple[HandPart, HandPart]], reach: float = 0.12
                  ) -> np.ndarray:
    """Right wrist position (mirror-symmetric hands) moved from ``p_r`` towards the midline
    (-x) until one of ``pairs`` touches (or the overlap limit)."""
    def room(lam: np.ndarray) -> np.ndarray:
        p = p_r - lam[:, None] * _X
        R_l, p_l = _mirrored(R_r, p, centre)
        return _room(hands.keypoints(L, R_l[None], p_l), hands.keypoints(R, R_r[None], p),
                     pairs)

    return p_r - _bisect(room, 0.0, reach) * _X


def _distal_across(surface: HandSurface, finger: Finger) -> np.ndarray:
    """(...,) x component of a finger's distal segment direction (0: parallel to the
    midline plane)."""
    i = 3 * int(finger) + 2
    return _unit(surface.capsule_end[..., i, :] - surface.capsule_start[..., i, :])[..., 0]


def _pad_to_midline(angles: np.ndarray, skeleton: HandSkeleton, R_r: np.ndarray,
                    p_r: np.ndarray, centre: np.ndarray, finger: Finger,
                    reach: tuple[tuple[int, int], float, float],
                    turn: tuple[tuple[int, int], float, float], rounds: int = 3
                    ) -> np.ndarray:
    """Fit a right-hand finger so that its distal pad lies along the midline plane, half the
    contact gap from it: ``turn`` (joint, lo, hi in degrees) makes the distal segment parallel
    to the plane, ``reach`` brings it to the plane; alternated ``rounds`` times."""
    for _ in range(rounds):
        joint, lo, hi = turn
        angles = _fit_finger(angles, skeleton, R, R_r, p_r,
                             lambda s: _distal_across(s, finger), 0.0, joint,
                             math.radians(lo), math.radians(hi))
        joint, lo, hi = reach
        angles = _fit_finger(angles, skeleton, R, R_r, p_r,
                             lambda s: _distal_plane_distance(s, finger, centre, _X),
                             0.5 * CONTACT_GAP_M, joint, math.radians(lo), math.radians(hi))
    return angles


_MCP = {f: (3 * k, 0) for k, f in enumerate((Finger.INDEX, Finger.MIDDLE, Finger.LITTLE,
                                             Finger.RING))}
_THUMB_CMC_ABD, _THUMB_IP = (12, 1), (14, 0)


@_contact_type('steeple',
               'the fingertips of both hands touch in a steeple, palms apart')
def steeple(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    # A narrow tent: palms facing the midline, leaning in a little, the fingers bent at the
    # knuckles just enough that their pads stand out of the palm towards the other hand and
    # meet nearly upright (the bones stay apart); the thumbs swing back out of the way. Each
    # finger's knuckle is then fitted so that its pad reaches the midline.
    lean_deg = rng.uniform(4.0, 10.0)
    posture = np.zeros((15, 3))
    spread = {Finger.INDEX: 10.0, Finger.MIDDLE: 0.0, Finger.RING: 9.0, Finger.LITTLE: 16.0}
    for finger in _LONG:
        set_finger(posture, finger, 11.0 - lean_deg, rng.uniform(0.0, 3.0),
                   abduction_deg=spread[finger] + rng.uniform(-2.0, 2.0))
    set_thumb(posture, cmc_flexion_deg=-25.0, cmc_abduction_deg=-15.0, mcp_deg=-5.0,
              ip_deg=-5.0)
    lean = math.radians(lean_deg)
    fingers = np.array([-math.sin(lean), rng.uniform(-0.15, 0.15), math.cos(lean)])
    R_r = wrist_rotation(fingers, -_X, R)
    sk = ctx.skeletons[R]
    hands = _Hands(np.stack([posture, posture]), ctx.skeletons)
    p_r = _mirror_touch(hands, R_r, centre + 0.2 * _X, centre,
                        [(HandPart.MIDDLE_TIP, HandPart.MIDDLE_TIP)], reach=0.2)
    for finger in (Finger.INDEX, Finger.RING, Finger.LITTLE):
        mcp = posture[_MCP[finger]]
        posture = _finish(_fit_finger(
            posture, sk, R, R_r, p_r,
            lambda s, f=finger: _distal_plane_distance(s, f, centre, _X),
            0.5 * CONTACT_GAP_M, _MCP[finger], mcp - math.radians(6.0),
            mcp + math.radians(6.0)))
    touching = (Finger.INDEX, Finger.MIDDLE, Finger.RING)  # the little finger: if it can
    tips = [(FINGERTIP_PARTS[f], FINGERTIP_PARTS[f]) for f in touching]
    hands = _Hands(np.stack([posture, posture]), ctx.skeletons)
    p_r = _mirror_touch(hands, R_r, p_r + 0.02 * _X, centre, tips)
    taps = int(np.clip(ctx.repetitions, 1, 4))
    apart = ctx.amplitude * rng.uniform(0.025, 0.045)
    far = 0.08
    offsets = [far, 0.0]
    steps = [Step(jittered(0.7 / ctx.tempo, rng), jittered(0.4, rng))]
    for _ in range(taps - 1):
        steps += [Step(jittered(0.3 / ctx.tempo, rng)), Step(jittered(0.3 / ctx.tempo, rng),
                                                             jittered(0.3, rng))]
        offsets += [apart, 0.0]
    steps.append(Step(jittered(0.6 / ctx.tempo, rng), 0.3))
    offsets.append(far)
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    rotations, positions = [], []
    for off in offsets:
        R_l, p_l = _mirrored(R_r, p_r + off * _X, centre)
        rotations.append(np.stack([R_l, R_r]))
        positions.append(np.stack([p_l, p_r + off * _X]))
    angles = np.stack([posture, posture])
    track = _track(schedule, _static(angles, len(offsets)), rotations, positions)
    _common_sway(track, ctx)
    return _clip(track, ctx, 'touch the fingertips together in a steeple',
                 [f'left.{p.value}~right.{p.value}' for p, _ in tips], {'taps': taps})


def _heart_posture(rng: np.random.Generator) -> np.ndarray:
    """Index bent forward at the middle joints, the other fingers curled, the thumb out
    towards the midline with its tip bent forward."""
    a = np.zeros((15, 3))
    set_finger(a, Finger.INDEX, rng.uniform(10.0, 20.0), rng.uniform(45.0, 60.0))
    for finger in (Finger.MIDDLE, Finger.RING, Finger.LITTLE):
        set_finger(a, finger, rng.uniform(78.0, 85.0), rng.uniform(95.0, 105.0))
    set_thumb(a, cmc_flexion_deg=-10.0, cmc_abduction_deg=rng.uniform(15.0, 25.0),
              mcp_deg=rng.uniform(15.0, 25.0), ip_deg=rng.uniform(20.0, 30.0))
    return _finish(a)


@_contact_type('heart_shape',
               'the hands form a heart: index fingers curled and touching on top, thumbs touching '
               'below')
def heart_shape(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx) + np.array([0.0, 0.0, 0.05])
    # Palms away from the body, fingers up and in: each thumb points down towards the
    # midline, the index fingers up towards it, both bent forward so that their tips meet
    # side by side (the index tips at the top of the heart, the thumb tips at its point).
    # Drawn shapes that cannot close (a short thumb) are drawn again.
    open_hand = _finish(_relaxed_open(rng))
    index = (FINGERTIP_PARTS[Finger.INDEX],) * 2
    thumb = (FINGERTIP_PARTS[Finger.THUMB],) * 2
    sk = ctx.skeletons[R]
    for _ in range(_ATTEMPTS):
        posture = _heart_posture(rng)
        slant = math.radians(rng.uniform(38.0, 50.0))
        fingers = np.array([-math.sin(slant), 0.0, math.cos(slant)])
        R_r = wrist_rotation(fingers, _Y + rng.uniform(-0.15, 0.15) * _Z, R)
        p_r = centre + 0.2 * _X
        for _ in range(2):
            hands = _Hands(np.stack([posture, posture]), ctx.skeletons)
            p_r = _mirror_touch(hands, R_r, p_r + 0.01 * _X, centre, [index, thumb],
                                reach=0.2)
            posture = _finish(_fit_finger(
                posture, sk, R, R_r, p_r,
                lambda s: _distal_plane_distance(s, Finger.INDEX, centre, _X),
                0.5 * CONTACT_GAP_M, (0, 1), math.radians(-15.0), math.radians(20.0)))
            posture = _finish(_pad_to_midline(
                posture, sk, R_r, p_r, centre, Finger.THUMB, (_THUMB_CMC_ABD, -15.0, 60.0),
                (_THUMB_IP, -10.0, 60.0)))
        hands = _Hands(np.stack([posture, posture]), ctx.skeletons)
        p_r = _mirror_touch(hands, R_r, p_r + 0.01 * _X, centre, [index, thumb])
        R_l, p_l = _mirrored(R_r, p_r, centre)
        if _touching(hands, (R_l, R_r), (p_l, p_r), [index, thumb]):
            break
    far = 0.07 * ctx.amplitude
    holds = int(np.clip(ctx.repetitions, 1, 3))
    # Open hands apart -> shape the heart apart -> join -> show it (a small lift, together)
    # -> part -> open.
    steps = [Step(jittered(0.5 / ctx.tempo, rng), jittered(0.2, rng)),
             Step(jittered(0.5 / ctx.tempo, rng), jittered(0.1, rng))]
    keys = [(open_hand, far, 0.0), (posture, far, 0.0), (posture, 0.0, 0.0)]
    for k in range(holds):
        steps.append(Step(jittered(0.6 / ctx.tempo, rng), jittered(0.25, rng)))
        keys.append((posture, 0.0, (k + 1) % 2 * rng.uniform(0.03, 0.06)))
    steps += [Step(jittered(0.4 / ctx.tempo, rng)), Step(jittered(0.5 / ctx.tempo, rng), 0.2)]
    keys += [(posture, far, 0.0), (open_hand, far, 0.0)]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    rotations, positions, angles = [], [], []
    for post, off, lift in keys:
        R_l, p_l = _mirrored(R_r, p_r + off * _X, centre)
        rotations.append(np.stack([R_l, R_r]))
        positions.append(np.stack([p_l, p_r + off * _X]) + lift * _Z)
        angles.append(np.stack([post, post]))
    track = _track(schedule, angles, rotations, positions)
    _common_sway(track, ctx)
    return _clip(track, ctx, 'make a heart shape with both hands',
                 ['left.index_tip~right.index_tip', 'left.thumb_tip~right.thumb_tip'],
                 {'holds': holds})


def _l_posture(rng: np.random.Generator) -> np.ndarray:
    """Index straight up, thumb out at about a right angle, the other fingers curled."""
    a = np.zeros((15, 3))
    set_finger(a, Finger.INDEX, rng.uniform(0.0, 5.0), rng.uniform(0.0, 5.0))
    _curled(a, (Finger.MIDDLE, Finger.RING, Finger.LITTLE), rng)
    set_thumb(a, cmc_flexion_deg=-22.0, cmc_abduction_deg=5.0, mcp_deg=-5.0, ip_deg=0.0)
    return _finish(a)


@_contact_type('frame_shape',
               'thumbs and index fingers form a rectangular frame, each thumb touching the other '
               'index fingertip')
def frame_shape(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx) + np.array([0.0, 0.03, 0.08])
    posture = _l_posture(rng)
    open_hand = _finish(_relaxed_open(rng))
    angles = np.stack([posture, posture])
    hands = _Hands(angles, ctx.skeletons)
    # Right hand: palm away from the body, index up, thumb towards the midline; the left hand
    # is its point reflection through the frame's centre (index down, thumb to the right).
    tilt = math.radians(rng.uniform(-12.0, 12.0))
    up = np.array([math.sin(tilt), 0.0, math.cos(tilt)])
    R_r = wrist_rotation(up, _Y + 0.2 * _Z, R)
    local = hands.local[R]
    mid_local = 0.5 * (local[4] + local[8])  # thumb tip and index tip, wrist frame
    # The thumb tip passes behind the other index tip (towards the body), overlapping a little.
    depth = -_Y

    def place(d: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = centre - R_r @ mid_local - 0.5 * d * depth + 0.004 * (R_r @ -_X)
        R_l, p_l = _point_reflected(R_r, p, centre)
        return p, R_l, p_l

    def room(ds: np.ndarray) -> np.ndarray:
        placed = [place(float(d)) for d in ds]
        return _room(np.stack([hands.keypoints(L, R_l, p_l) for _, R_l, p_l in placed]),
                     np.stack([hands.keypoints(R, R_r, p) for p, _, _ in placed]),
                     [(HandPart.INDEX_TIP, HandPart.THUMB_TIP),
                      (HandPart.THUMB_TIP, HandPart.INDEX_TIP)])

    d = 0.06 - _bisect(lambda x: room(0.06 - x), 0.0, 0.06)
    p_r, R_l, p_l = place(d)
    away = 0.06 * ctx.amplitude
    pans = int(np.clip(ctx.repetitions, 1, 3))
    steps = [Step(jittered(0.5 / ctx.tempo, rng)), Step(jittered(0.6 / ctx.tempo, rng),
                                                        jittered(0.3, rng))]
    keys = [(open_hand, away, np.zeros(3)), (posture, away, np.zeros(3)),
            (posture, 0.0, np.zeros(3))]
    for k in range(pans):
        steps.append(Step(jittered(0.7 / ctx.tempo, rng), jittered(0.3, rng)))
        pan = rng.uniform(0.03, 0.06) * (1 if k % 2 == 0 else -1) * _X
        keys.append((posture, 0.0, pan + rng.uniform(-0.02, 0.02) * _Z))
    steps += [Step(jittered(0.5 / ctx.tempo, rng)), Step(jittered(0.5 / ctx.tempo, rng), 0.2)]
    keys += [(posture, away, np.zeros(3)), (open_hand, away, np.zeros(3))]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    rotations, positions, key_angles = [], [], []
    outward = _unit(p_r - centre) * np.array([1.0, 0.0, 1.0])
    for post, off, shift in keys:
        rotations.append(np.stack([R_l, R_r]))
        positions.append(np.stack([p_l - off * outward, p_r + off * outward]) + shift)
        key_angles.append(np.stack([post, post]))
    track = _track(schedule, key_angles, rotations, positions)
    _common_sway(track, ctx)
    return _clip(track, ctx, 'frame a picture with the thumbs and index fingers',
                 ['left.index_tip~right.thumb_tip', 'left.thumb_tip~right.index_tip'],
                 {'pans': pans})


# ============================================================================ one hand acts


def _lead(track: _Track, ctx: SynthContext) -> _Track:
    """The track as written (right hand leading) or mirrored for a left-dominant person."""
    return track if ctx.dominant == R else _mirror_track(track)


def _keyed(schedule: Schedule, keys: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
           ) -> _Track:
    """A track from per-key (angles (2, 15, 3), rotations (2, 3, 3), positions (2, 3))."""
    return _track(schedule, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])


@_contact_type('tap_palm',
               'the index finger of the dominant hand taps the palm of the other hand')
def tap_palm(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    taps = int(np.clip(ctx.repetitions + 1, 2, 5))
    pair = [(HandPart.INDEX_TIP, HandPart.PALM)]  # (right part, left part)
    for _ in range(_ATTEMPTS):
        other = np.zeros((15, 3))
        for finger in _LONG:
            set_finger(other, finger, rng.uniform(0.0, 6.0), rng.uniform(4.0, 10.0),
                       abduction_deg=2.0)
        set_thumb(other, cmc_abduction_deg=rng.uniform(5.0, 15.0), mcp_deg=5.0, ip_deg=5.0)
        angles = np.stack([_finish(other), _finish(_pointing(rng))])
        hands = _Hands(angles, ctx.skeletons)
        # The left palm faces up, fingers forward and a little inwards; the right index points
        # down at it from above and behind.
        R_o = wrist_rotation(_unit([rng.uniform(0.1, 0.35), 1.0, rng.uniform(-0.1, 0.1)]), _Z, L)
        p_o = centre + np.array([-0.03, -0.08, -0.08])
        s_o = hands.surface(L, R_o, p_o)
        target = s_o.palm_centre + R_o @ np.array([rng.uniform(-0.012, 0.012), 0.0,
                                                   rng.uniform(-0.01, 0.01)])
        point = _unit([-rng.uniform(0.15, 0.35), rng.uniform(0.3, 0.5), -1.0])
        R_d = wrist_rotation(point, np.array([0.0, -0.6, -1.0]), R)
        tip = hands.local[R][8]
        hover = ctx.amplitude * rng.uniform(0.03, 0.045)
        p_hover = target + (hover + 0.02) * s_o.palm_normal - R_d @ tip
        p_touch = _approach(hands, R, R_d, p_hover, -s_o.palm_normal, R_o, p_o, pair,
                            reach=hover + 0.05)
        if _touching(hands, (R_o, R_d), (p_o, p_touch), [(HandPart.PALM, HandPart.INDEX_TIP)]):
            break
    rotations = np.stack([R_o, R_d])
    start = p_hover + np.array([0.03, -0.05, 0.06])
    steps = [Step(jittered(0.6 / ctx.tempo, rng), jittered(0.15, rng))]
    positions = [start, p_hover]
    for _ in range(taps):
        steps += [Step(jittered(0.18 / ctx.tempo, rng), jittered(0.08, rng, 0.4)),
                  Step(jittered(0.2 / ctx.tempo, rng), jittered(0.05, rng, 0.5))]
        positions += [p_touch, p_hover]
    steps.append(Step(jittered(0.5 / ctx.tempo, rng), 0.2))
    positions.append(start)
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    keys = [(angles, rotations, np.stack([p_o, p])) for p in positions]
    track = _keyed(schedule, keys)
    _common_sway(track, ctx)
    lead, other_word = _dominant_words(ctx)
    return _clip(_lead(track, ctx), ctx,
                 f'tap the {other_word} palm with the {lead} index finger '
                 f'{_times("", taps).strip()}',
                 [f'{other_word}.palm~{lead}.index_tip' if other_word == 'left'
                  else f'{lead}.index_tip~{other_word}.palm'], {'taps': taps})


def _pair_name(lead_part: HandPart, other_part: HandPart, ctx: SynthContext) -> str:
    """``'left.x~right.y'`` for a contact between the leading hand's part and the other's."""
    lead = PartRef(ctx.dominant, lead_part).to_json()
    other = PartRef(ctx.dominant.other, other_part).to_json()
    return f'{other}~{lead}' if ctx.dominant == R else f'{lead}~{other}'


_COUNT_ORDERS = {
    'thumb_first': (Finger.THUMB, Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE),
    'index_first': (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE, Finger.THUMB),
    'little_first': (Finger.LITTLE, Finger.RING, Finger.MIDDLE, Finger.INDEX, Finger.THUMB),
}


@_contact_type('count_on_fingers',
               'the dominant index finger touches the fingertips of the other hand one after '
               'another, counting them')
def count_on_fingers(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    count = int(np.clip(ctx.repetitions + 1, 2, 5))
    order_name = str(rng.choice(list(_COUNT_ORDERS)))
    order = _COUNT_ORDERS[order_name][:count]
    other = np.zeros((15, 3))
    spread = {Finger.INDEX: 12.0, Finger.MIDDLE: 2.0, Finger.RING: 10.0, Finger.LITTLE: 18.0}
    for finger in _LONG:
        set_finger(other, finger, rng.uniform(0.0, 8.0), rng.uniform(5.0, 12.0),
                   abduction_deg=spread[finger])
    set_thumb(other, cmc_flexion_deg=-20.0, cmc_abduction_deg=rng.uniform(10.0, 20.0),
              mcp_deg=5.0, ip_deg=5.0)
    angles = np.stack([_finish(other), _finish(_pointing(rng))])
    hands = _Hands(angles, ctx.skeletons)
    # The left hand is held up, fingers spread and pointing up and forward, palm towards the
    # body and the right hand; the right index touches each fingertip's pad.
    R_o = wrist_rotation(_unit([0.15, 0.45, 0.88]), _unit([0.45, -1.0, 0.0]), L)
    p_o = centre + np.array([-0.06, 0.04, -0.12])
    s_o = hands.surface(L, R_o, p_o)
    n_o = s_o.palm_normal
    R_d = wrist_rotation(_unit(-n_o - 0.5 * _Z), -_Z - 0.3 * _Y, R)
    tip = hands.local[R][8]
    hover = ctx.amplitude * rng.uniform(0.02, 0.03)
    rotations = np.stack([R_o, R_d])
    steps = [Step(jittered(0.6 / ctx.tempo, rng), jittered(0.1, rng))]
    positions = []
    for k, finger in enumerate(order):
        i = 3 * int(finger) + 2
        pad = 0.5 * (s_o.capsule_start[i] + s_o.capsule_end[i])
        p_hover = pad + (hover + 0.02) * n_o - R_d @ tip
        p_touch = _approach(hands, R, R_d, p_hover, -n_o, R_o, p_o,
                            [(HandPart.INDEX_TIP, FINGERTIP_PARTS[finger])], reach=hover + 0.04)
        if k > 0:
            steps.append(Step(jittered(0.3 / ctx.tempo, rng)))
        steps += [Step(jittered(0.22 / ctx.tempo, rng), jittered(0.15, rng, 0.4)),
                  Step(jittered(0.2 / ctx.tempo, rng))]
        positions += [p_hover, p_touch, p_hover]
    start = positions[0] + np.array([0.04, -0.06, -0.04])
    steps.append(Step(jittered(0.5 / ctx.tempo, rng), 0.2))
    positions = [start] + positions + [start]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    keys = [(angles, rotations, np.stack([p_o, p])) for p in positions]
    track = _keyed(schedule, keys)
    _common_sway(track, ctx)
    lead, other_word = _dominant_words(ctx)
    names = ' '.join(f.name.lower() for f in order)
    return _clip(_lead(track, ctx), ctx,
                 f'count {count} fingers of the {other_word} hand with the {lead} index finger',
                 [_pair_name(HandPart.INDEX_TIP, FINGERTIP_PARTS[f], ctx) for f in order],
                 {'count': count, 'order': order_name, 'fingers': names})


@_contact_type('stroke_back',
               'the index and middle fingertips of the dominant hand stroke the back of the other '
               'hand')
def stroke_back(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    strokes = int(np.clip(ctx.repetitions, 1, 4))
    fingers = (Finger.INDEX, Finger.MIDDLE)
    other = np.zeros((15, 3))
    for finger in _LONG:
        set_finger(other, finger, rng.uniform(0.0, 8.0), rng.uniform(5.0, 12.0))
    set_thumb(other, cmc_abduction_deg=5.0, mcp_deg=5.0, ip_deg=5.0)
    stroker = np.zeros((15, 3))
    for finger in fingers:
        set_finger(stroker, finger, rng.uniform(20.0, 30.0), rng.uniform(20.0, 30.0))
    _curled(stroker, (Finger.RING, Finger.LITTLE), rng, amount=0.8)
    set_thumb(stroker, cmc_flexion_deg=25.0, cmc_abduction_deg=-10.0, mcp_deg=20.0, ip_deg=10.0)
    stroker = _finish(stroker)
    other = _finish(other)
    # The left hand rests palm down, fingers forward; the right hand above it, fingers
    # forward and down, strokes along the back of the left hand from the wrist towards the
    # knuckles with the pads of its index and middle fingers.
    R_o = wrist_rotation(_unit([rng.uniform(0.05, 0.25), 1.0, 0.0]), -_Z, L)
    p_o = centre + np.array([-0.04, 0.0, -0.12])
    R_d = wrist_rotation(_unit([-0.1, 1.0, -rng.uniform(0.35, 0.55)]), -_Z, R)
    skel = ctx.skeletons[R]
    hands = _Hands(np.stack([other, stroker]), ctx.skeletons)
    s_o = hands.surface(L, R_o, p_o)
    along = R_o @ _X  # the left hand's finger direction
    back_normal = -s_o.palm_normal
    face = s_o.palm_centre + s_o.palm_half_thickness * back_normal  # a point on the back
    wrist_o = hands.keypoints(L, R_o, p_o)[0]
    length = float(np.dot(s_o.palm_centre - wrist_o, along))  # wrist to palm centre
    stroke = min(ctx.amplitude * rng.uniform(0.03, 0.045), 1.2 * length)
    first = face + (-0.5 * length + 0.2 * stroke) * along  # where the fingertips land
    # Roll the stroking hand about its fingers until the two fingertips are level.
    axis = R_d @ -_X
    best = None
    for roll in np.radians(np.arange(-30.0, 30.5, 1.0)):
        R_try = rotation_about(axis, roll) @ R_d
        step = R_try @ (hands.local[R][8] - hands.local[R][12])
        if best is None or abs(step @ back_normal) < best[0]:
            best = (abs(step @ back_normal), R_try)
    R_d = best[1]
    tips_local = 0.5 * (hands.local[R][8] + hands.local[R][12])
    lift = rng.uniform(0.02, 0.03)
    p_land = first + lift * back_normal - R_d @ tips_local
    pairs = [(HandPart.INDEX_TIP, HandPart.BACK), (HandPart.MIDDLE_TIP, HandPart.BACK)]
    p_touch = _approach(hands, R, R_d, p_land, -back_normal, R_o, p_o, pairs,
                        reach=lift + 0.04)
    # Both pads on the back: the finger left above comes down to it.
    for finger in fingers:
        stroker = _finish(_fit_finger(
            stroker, skel, R, R_d, p_touch,
            lambda s, f=finger: _distal_plane_distance(s, f, face, back_normal),
            CONTACT_GAP_M, _MCP[finger], math.radians(0.0), math.radians(60.0)))
    angles = np.stack([other, stroker])
    rotations = np.stack([R_o, R_d])
    p_end = p_touch + stroke * along
    start = p_land + np.array([0.04, -0.06, 0.06])
    steps = [Step(jittered(0.6 / ctx.tempo, rng), jittered(0.1, rng))]
    positions = [start, p_land]
    for _ in range(strokes):
        steps += [Step(jittered(0.2 / ctx.tempo, rng)),
                  Step(jittered(0.5 / ctx.tempo, rng)),
                  Step(jittered(0.2 / ctx.tempo, rng)),
                  Step(jittered(0.4 / ctx.tempo, rng))]
        positions += [p_touch, p_end, p_end + lift * back_normal, p_land]
    steps.append(Step(jittered(0.5 / ctx.tempo, rng), 0.2))
    positions.append(start)
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    track = _keyed(schedule, [(angles, rotations, np.stack([p_o, p])) for p in positions])
    _common_sway(track, ctx)
    lead, other_word = _dominant_words(ctx)
    return _clip(_lead(track, ctx), ctx,
                 f'stroke the back of the {other_word} hand with the {lead} fingers '
                 f'{_times("", strokes).strip()}',
                 [_pair_name(FINGERTIP_PARTS[f], HandPart.BACK, ctx) for f in fingers],
                 {'strokes': strokes})


def _grip_measure(other: HandSurface, parts: Sequence[HandPart]
                  ) -> Callable[[HandSurface], np.ndarray]:
    """Surface -> the smallest distance from its ``parts`` to the other hand's palm slab."""
    def measure(surface: HandSurface) -> np.ndarray:
        return np.min([part_distance(surface, p, other, q).distance
                       for p in parts for q in (HandPart.PALM, HandPart.BACK)], axis=0)
    return measure


@_contact_type('grasp_wrist',
               'the dominant hand grasps the other hand at the wrist, holds and lets go')
def grasp_wrist(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    other = np.zeros((15, 3))
    for k, finger in enumerate(_LONG):
        set_finger(other, finger, rng.uniform(5.0, 12.0) + 3 * k, rng.uniform(8.0, 15.0) + 3 * k)
    set_thumb(other, cmc_abduction_deg=5.0, mcp_deg=5.0, ip_deg=5.0)
    other = _finish(other)
    open_hand = np.zeros((15, 3))
    for finger in _LONG:
        set_finger(open_hand, finger, rng.uniform(0.0, 5.0), rng.uniform(0.0, 5.0))
    set_thumb(open_hand, cmc_flexion_deg=-15.0, cmc_abduction_deg=45.0, mcp_deg=0.0, ip_deg=0.0)
    open_hand = _finish(open_hand)
    # The left hand is held out palm down; the right hand comes from above, fingers pointing
    # across the left wrist, lands its palm on the back of the wrist, then wraps the fingers
    # round its far side and the thumb round the near side.
    R_o = wrist_rotation(_unit([rng.uniform(0.0, 0.2), 1.0, 0.0]), -_Z, L)
    p_o = centre + np.array([-0.02, -0.02, -0.1])
    R_d = wrist_rotation(_unit([-1.0, rng.uniform(0.1, 0.3), -0.15]), -_Z, R)
    hands = _Hands(np.stack([other, open_hand]), ctx.skeletons)
    s_o = hands.surface(L, R_o, p_o)
    wrist_o = hands.keypoints(L, R_o, p_o)[0]
    along = R_o @ _X
    grip = wrist_o + rng.uniform(0.01, 0.02) * along + s_o.palm_half_thickness * -s_o.palm_normal
    palm_local = hand_surface(hands.local[R], R).palm_centre
    above = rng.uniform(0.04, 0.06)
    p_above = grip + above * _Z - R_d @ palm_local
    p_land = _approach(hands, R, R_d, p_above, -_Z, R_o, p_o, [(HandPart.PALM, HandPart.BACK)],
                       reach=above + 0.04)
    skel = ctx.skeletons[R]
    measure_tips = lambda f: _grip_measure(s_o, (FINGER_PARTS[f], FINGERTIP_PARTS[f]))  # noqa: E731
    grip_pose = open_hand.copy()
    for finger in _LONG:
        mcp = _MCP[finger]
        grip_pose = _fit_finger(grip_pose, skel, R, R_d, p_land, measure_tips(finger),
                                CONTACT_GAP_M, mcp, 0.0, math.radians(85.0),
                                follow=[(mcp[0] + 1, 0, 1.1), (mcp[0] + 2, 0, 0.75)])
    grip_pose = _fit_finger(grip_pose, skel, R, R_d, p_land, measure_tips(Finger.THUMB),
                            CONTACT_GAP_M, _THUMB_IP, 0.0, math.radians(80.0),
                            follow=[(13, 0, 0.8)])
    grip_pose = _finish(grip_pose)
    squeeze = int(np.clip(ctx.repetitions, 1, 3))
    lift = rng.uniform(0.04, 0.06) * ctx.amplitude
    start = p_above + np.array([0.05, -0.05, 0.05])
    R_keys = np.stack([R_o, R_d])
    keys = [(open_hand, p_o, start), (open_hand, p_o, p_above), (open_hand, p_o, p_land),
            (grip_pose, p_o, p_land)]
    steps = [Step(jittered(0.6 / ctx.tempo, rng)), Step(jittered(0.4 / ctx.tempo, rng)),
             Step(jittered(0.4 / ctx.tempo, rng), jittered(0.1, rng))]
    # Holding on: the grasped arm is lifted and lowered together with the grasping hand.
    for k in range(squeeze):
        up = lift * (1 if k % 2 == 0 else 0) * _Z
        steps.append(Step(jittered(0.6 / ctx.tempo, rng), jittered(0.2, rng)))
        keys.append((grip_pose, p_o + up, p_land + up))
    if squeeze % 2 == 1:
        steps.append(Step(jittered(0.5 / ctx.tempo, rng), jittered(0.1, rng)))
        keys.append((grip_pose, p_o, p_land))
    steps += [Step(jittered(0.4 / ctx.tempo, rng)), Step(jittered(0.4 / ctx.tempo, rng)),
              Step(jittered(0.5 / ctx.tempo, rng), 0.2)]
    keys += [(open_hand, p_o, p_land), (open_hand, p_o, p_above), (open_hand, p_o, start)]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    track = _keyed(schedule, [(np.stack([other, a]), R_keys, np.stack([po, pd]))
                              for a, po, pd in keys])
    _common_sway(track, ctx)
    lead, other_word = _dominant_words(ctx)
    return _clip(_lead(track, ctx), ctx, f'grasp the {other_word} wrist with the {lead} hand',
                 [_pair_name(HandPart.PALM, HandPart.BACK, ctx)], {'lifts': squeeze})


@_contact_type('interlace_fingers',
               'the hands come together with the fingers interlaced, rock together and part')
def interlace_fingers(ctx: SynthContext) -> PrimitiveClip:
    rng = ctx.rng
    centre = _centre(ctx)
    # Palms face each other, fingers spread and bent at the knuckles towards the other hand;
    # one hand sits half a finger spacing lower, so its fingers slide between the other
    # hand's. The hands come together along the line between them until the fingers press
    # against each other.
    posture = np.zeros((15, 3))
    spread = {Finger.INDEX: 16.0, Finger.MIDDLE: 0.0, Finger.RING: 12.0, Finger.LITTLE: 20.0}
    for finger in _LONG:
        set_finger(posture, finger, rng.uniform(55.0, 70.0), rng.uniform(20.0, 35.0),
                   abduction_deg=spread[finger])
    set_thumb(posture, cmc_flexion_deg=10.0, cmc_abduction_deg=-10.0, mcp_deg=10.0, ip_deg=10.0)
    posture = _finish(posture)
    open_hand = np.zeros((15, 3))
    for finger in _LONG:
        set_finger(open_hand, finger, rng.uniform(0.0, 8.0), rng.uniform(0.0, 8.0),
                   abduction_deg=spread[finger])
    set_thumb(open_hand, cmc_abduction_deg=5.0, mcp_deg=5.0, ip_deg=5.0)
    open_hand = _finish(open_hand)
    angles = np.stack([posture, posture])
    hands = _Hands(angles, ctx.skeletons)
    elevation = math.radians(rng.uniform(0.0, 20.0))
    R_r = wrist_rotation(np.array([0.0, math.cos(elevation), math.sin(elevation)]), -_X, R)
    R_l, _ = _mirrored(R_r, centre, centre)
    palm_local = hand_surface(hands.local[R], R).palm_centre
    lower = R if ctx.dominant == L else L  # the dominant hand's fingers end up on top
    scale = ctx.skeletons[R].hand_length_m / 0.185
    best = None
    for offset in scale * np.array([0.009, 0.011, 0.013]):
        shift = np.where(np.arange(2) == lower, -offset, offset)[:, None] * _Z  # (2, 3)

        def room(half: np.ndarray, shift: np.ndarray = shift) -> np.ndarray:
            p_r = centre + (0.15 - half)[:, None] * _X - R_r @ palm_local + shift[R]
            p_l = centre - (0.15 - half)[:, None] * _X - R_l @ (palm_local * [-1, 1, 1]) \
                + shift[L]
            return _room(hands.keypoints(L, R_l[None], p_l), hands.keypoints(R, R_r[None], p_r),
                         [])

        depth = _bisect(room, 0.0, 0.15)
        if best is None or depth > best[0]:
            best = (depth, shift)
    half = 0.15 - best[0]
    shift = best[1]
    p_r = centre + half * _X - R_r @ palm_local + shift[R]
    p_l = centre - half * _X - R_l @ (palm_local * [-1, 1, 1]) + shift[L]
    away = 0.06 * ctx.amplitude
    rocks = int(np.clip(ctx.repetitions, 1, 3))
    rock = math.radians(rng.uniform(12.0, 25.0))
    apart = (np.stack([p_l - away * _X, p_r + away * _X]))
    joined = np.stack([p_l, p_r])
    rotations = np.stack([R_l, R_r])
    keys = [(np.stack([open_hand, open_hand]), rotations, apart),
            (angles, rotations, apart), (angles, rotations, joined)]
    steps = [Step(jittered(0.5 / ctx.tempo, rng)), Step(jittered(0.6 / ctx.tempo, rng),
                                                        jittered(0.2, rng))]
    turns = [0.0, 0.0, 0.0]
    # Rocking: the joined hands turn together about the forearms' direction (y).
    for k in range(rocks):
        steps.append(Step(jittered(0.6 / ctx.tempo, rng), jittered(0.15, rng)))
        keys.append((angles, rotations, joined))
        turns.append(rock * (1 if k % 2 == 0 else -1))
    steps += [Step(jittered(0.5 / ctx.tempo, rng), jittered(0.1, rng)),
              Step(jittered(0.6 / ctx.tempo, rng)), Step(jittered(0.5 / ctx.tempo, rng), 0.2)]
    keys += [(angles, rotations, joined), (angles, rotations, apart),
             (np.stack([open_hand, open_hand]), rotations, apart)]
    turns += [0.0, 0.0, 0.0]
    schedule = Schedule(_pad_steps(steps), ctx.fps)
    track = _keyed(schedule, keys)
    _common_turn(track, turns, _Y, centre)
    _common_sway(track, ctx)
    # The intended contacts: the finger pairs the solve pressed together.
    sl, sr = hands.surface(L, R_l, p_l), hands.surface(R, R_r, p_r)
    intended = []
    for a in HAND_PARTS:
        for b in HAND_PARTS:
            if a.finger in (None, Finger.THUMB) or b.finger in (None, Finger.THUMB):
                continue
            if float(part_distance(sl, a, sr, b).distance) <= _SURE_TOUCH_M:
                intended.append(f'left.{a.value}~right.{b.value}')
    return _clip(track, ctx, 'interlace the fingers of both hands', intended,
                 {'rocks': rocks})
