"""Structured motion features of a bimanual clip, measured from keypoints and MANO pose only.

:func:`extract_features` reads a :class:`~handx_gen.motion.BimanualMotion` (keypoints
``(T, 2, 21, 3)`` and ``hand_pose``) and never a synthesis plan, so it annotates real captures
and synthetic clips alike. The result, :class:`MotionFeatures`, is a typed record of frozen
dataclasses that round-trips through JSON (:meth:`MotionFeatures.to_dict`,
:meth:`MotionFeatures.from_dict`); the text writers (``handx_gen.annotate.describe``) work from
it alone. It is stored in a clip's annotation under the key ``'features'``.

Conventions of the record:

* Frames are indices into the clip, intervals half-open ``[start, stop)`` like the plan's.
* World frame (Z up): ``+x`` is "right", ``+y`` is "in front" (away from the person: the
  direction the demo clips' fingers point) and ``+z`` is "above". Relations describe the
  **right hand relative to the left**, measured between palm centres.
* Angles are degrees, distances metres, speeds per second; values are rounded when extracted
  (0.1 deg, 0.1 mm, 0.001 m/s, 0.01 Hz) so the JSON stays compact and round-trips exactly.
* Categories are ``str`` Enums; JSON holds their values.

How each feature is measured (the numbers are :class:`FeatureConfig`'s defaults):

* **Contacts** (:func:`detect_contacts`): the surface proxy of
  :mod:`handx_gen.annotate.surface` and its shared :class:`ContactConfig` (touching = surface
  distance <= 5 mm, hysteresis to 15 mm, at least 0.05 s); touches of one pair less than
  0.1 s apart are merged. Between hands every part pair is tested; within a hand, the thumb
  tip against each other fingertip (pinches). Part specificity: a palm/back touching a
  palm/back makes every other between-hands event it covers (>= 50 % of that event's frames)
  redundant; a fingertip touching X makes the same finger's shaft touching X redundant.
* **Flexion**: per finger the mean anatomical flexion of its three joints from the MANO pose
  (default skeleton per side), smoothed (sigma 0.035 s); bins at 30 and 60 deg; events by
  hysteresis on the flexion rate (start at 20 deg/s, extend while above 10 deg/s), merged
  across slow-downs under 0.15 s, at least 10 deg of change, holds elsewhere. Spread from MCP
  abduction; pinch distance from the fingertip keypoints.
* **Relations**: palm centres and palm normals of the surface proxy, keypoints smoothed
  (sigma 0.07 s); level within 5 cm per axis; palm facing within a 45 deg cone;
  approaching / separating at >= 5 cm/s and >= 3 cm of change.
* **Dynamics**: a hand moves while its fastest wrist or fingertip keypoint exceeds 0.08 m/s;
  repetitions are regular chains of alternating extrema (swings >= 2 cm or >= 10 deg, 0.3 to
  6 Hz, at least 2 cycles) of the knuckles' position and the palm normal along their
  principal directions and of each finger's flexion, confirmed and timed by the
  autocorrelation over the chain;
  coordination from 1 s windows of keypoint velocity correlations (plain and mirrored
  through x = const) and of the hands' speeds.
* State spans shorter than 0.3 s (0.5 s for coordination) are absorbed into a neighbour.

A hand absent from the clip (:attr:`~handx_gen.motion.BimanualMotion.present`) is measured
nowhere: :attr:`MotionFeatures.present` says so, its :class:`HandFeatures` is empty (no spans,
no events, no repetitions; its numbers are zeros that mean nothing,
:meth:`HandFeatures.absent`), there are no contacts between the hands and no relations
(``relations`` is ``None``), and the coordination is that of the present hand alone
(``LEFT_ONLY`` / ``RIGHT_ONLY`` while it moves, ``STILL`` otherwise), which says nothing of the
other hand.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from scipy import ndimage
from scipy.signal import find_peaks

from handx_gen.annotate.surface import (
    HAND_PARTS,
    ContactConfig,
    HandSurface,
    contact_intervals,
    frames_of,
    hand_surface,
    near_frames,
    part_distance,
    part_distance_matrix,
)
from handx_gen.config import config_kwargs
from handx_gen.data.plan import FingerAction
from handx_gen.errors import ConfigError, MotionError, MotionFormatError
from handx_gen.hand.limits import pose_to_anatomical
from handx_gen.hand.parts import FINGER_PARTS, FINGERTIP_PARTS, HandPart, PartRef
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import (
    FINGER_MANO_JOINTS,
    TIP_KEYPOINTS,
    Finger,
    HandSide,
    finger_keypoints,
    keypoints_from_mano_joints,
)
from handx_gen.motion.container import BimanualMotion

__all__ = [
    'MOTION_FEATURES_FORMAT',
    'ContactEvent',
    'Coordination',
    'DistanceTrend',
    'FeatureConfig',
    'FingerFeatures',
    'FlexionBin',
    'FlexionEvent',
    'HandFeatures',
    'InterHandRelations',
    'MotionFeatures',
    'PalmFacing',
    'PalmPair',
    'RelativePosition',
    'Repetition',
    'RepetitionSource',
    'Span',
    'SpeedPhase',
    'SpreadState',
    'detect_contacts',
    'extract_features',
    'reportable_contacts',
]

# The record's format tag. The model feature layout (handx_gen.motion.features) already uses
# 'handx-features/1' for its own version, so the annotation record has its own name.
MOTION_FEATURES_FORMAT = 'handx-motion-features/1'

# ============================================================================== the record


class FlexionBin(str, enum.Enum):
    """How bent a finger is: its mean joint flexion against 30 and 60 degrees (as HandX)."""

    EXTENDED = 'extended'  # < 30 deg
    BENT = 'bent'  # 30 - 60 deg
    CURLED = 'curled'  # > 60 deg


class SpreadState(str, enum.Enum):
    """How far apart the four fingers are: the mean of the index-middle, middle-ring and
    ring-little angles (see :attr:`HandFeatures.spread_pairs_deg`)."""

    TOGETHER = 'together'  # fingers side by side (below FeatureConfig.together_deg)
    NEUTRAL = 'neutral'
    SPREAD = 'spread'  # fanned out (at or above FeatureConfig.spread_deg)


class PalmFacing(str, enum.Enum):
    """Where one palm faces (its normal, out of the palmar side), first rule that holds wins.

    ``TOWARDS_OTHER`` / ``AWAY_FROM_OTHER``: the normal is within ``facing_cone_deg`` of the
    direction to (from) the other palm centre; then ``UP``/``DOWN`` (world z), ``FORWARD``/
    ``BACKWARD`` (world y), ``RIGHT``/``LEFT`` (world x): the largest component of the normal.
    """

    TOWARDS_OTHER = 'towards_other'
    AWAY_FROM_OTHER = 'away_from_other'
    UP = 'up'
    DOWN = 'down'
    FORWARD = 'forward'
    BACKWARD = 'backward'
    RIGHT = 'right'
    LEFT = 'left'


class PalmPair(str, enum.Enum):
    """The two palms' facing, as a pair (from both hands' :class:`PalmFacing`)."""

    FACING_EACH_OTHER = 'facing_each_other'  # both TOWARDS_OTHER
    BACK_TO_BACK = 'back_to_back'  # both AWAY_FROM_OTHER
    SAME_DIRECTION = 'same_direction'  # both UP, both DOWN, both FORWARD, ...
    OTHER = 'other'


class RelativePosition(str, enum.Enum):
    """Where the right hand is relative to the left, along one world axis.

    Lateral (x) spans use RIGHT / LEFT / LEVEL, vertical (z) spans ABOVE / BELOW / LEVEL and
    depth (y) spans IN_FRONT / BEHIND / LEVEL. ``LEVEL`` = within ``level_band_m`` on that axis.
    """

    RIGHT = 'right'
    LEFT = 'left'
    ABOVE = 'above'
    BELOW = 'below'
    IN_FRONT = 'in_front'
    BEHIND = 'behind'
    LEVEL = 'level'


class DistanceTrend(str, enum.Enum):
    """How the distance between the palm centres changes."""

    APPROACHING = 'approaching'
    SEPARATING = 'separating'
    STEADY = 'steady'


class SpeedPhase(str, enum.Enum):
    """Whether a hand moves (wrist and fingertips)."""

    MOVING = 'moving'
    PAUSE = 'pause'


class Coordination(str, enum.Enum):
    """How the two hands move relative to each other over a stretch of time.

    ``TOGETHER``: same direction at the same time (keypoint velocities correlate);
    ``MIRRORED``: mirror images through the body's midplane (x velocities opposite, y and z
    equal) and not equally well explained as ``TOGETHER`` (motions along y/z only are both;
    they count as ``TOGETHER``); ``ALTERNATING``: one moves while the other rests, in turns,
    or the two move in antiphase (opposite along y/z); ``LEFT_ONLY`` / ``RIGHT_ONLY``: only one
    hand moves; ``INDEPENDENT``: both move, with no such relation; ``STILL``: neither moves.
    """

    TOGETHER = 'together'
    MIRRORED = 'mirrored'
    ALTERNATING = 'alternating'
    LEFT_ONLY = 'left_only'
    RIGHT_ONLY = 'right_only'
    INDEPENDENT = 'independent'
    STILL = 'still'

    @property
    def one_hand(self) -> bool:
        """True for ``LEFT_ONLY`` and ``RIGHT_ONLY``."""
        return self in (Coordination.LEFT_ONLY, Coordination.RIGHT_ONLY)


class RepetitionSource(str, enum.Enum):
    """Which signal repeats."""

    WRIST = 'wrist'  # the hand as a whole: knuckle positions and palm turns (not fingers)
    FINGERS = 'fingers'  # finger flexion


L = TypeVar('L', bound=enum.Enum)


@dataclasses.dataclass(frozen=True)
class Span(Generic[L]):
    """A labelled interval: ``label`` holds during frames ``[start, stop)``.

    A list of spans of one kind covers the clip without gaps or overlaps, in time order, and
    neighbouring spans have different labels.
    """

    start: int
    stop: int
    label: L

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {'start': self.start, 'stop': self.stop, 'label': self.label.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], label_type: type[L]) -> Span[L]:
        return cls(int(data['start']), int(data['stop']), label_type(data['label']))


@dataclasses.dataclass(frozen=True)
class ContactEvent:
    """Two hand parts touch during frames ``[start, stop)``.

    Attributes:
        start: First frame of the touch (onset).
        stop: One past the last frame (offset).
        a: One part. Order: between hands ``a`` is the left hand's part; on one hand ``a``
            comes first in :class:`~handx_gen.hand.parts.HandPart` order (palm, back,
            tips thumb..little, shafts thumb..little).
        b: The other part (the right hand's, between hands).
        min_distance_m: Smallest surface distance of the two parts during the event, metres;
            negative means the proxies overlap by that much.
    """

    start: int
    stop: int
    a: PartRef
    b: PartRef
    min_distance_m: float

    @property
    def inter_hand(self) -> bool:
        """True when the parts belong to different hands."""
        return self.a.side != self.b.side

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {'start': self.start, 'stop': self.stop, 'a': self.a.to_json(),
                'b': self.b.to_json(), 'min_distance_m': self.min_distance_m}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContactEvent:
        return cls(int(data['start']), int(data['stop']), PartRef.from_json(data['a']),
                   PartRef.from_json(data['b']), float(data['min_distance_m']))


@dataclasses.dataclass(frozen=True)
class FlexionEvent:
    """One finger bends, extends or holds during frames ``[start, stop)``.

    The events of one finger cover the clip in time order (holds fill the time between
    movements).

    Attributes:
        side: The hand.
        finger: The finger.
        start: First frame.
        stop: One past the last frame.
        action: ``BEND`` (flexion rises by at least ``FeatureConfig.min_flexion_change_deg``),
            ``EXTEND`` (falls by as much) or ``HOLD`` (neither).
        start_deg: Mean joint flexion of the finger (smoothed) at ``start``, degrees.
        stop_deg: The same at ``stop - 1``.
        peak_speed_deg_s: Largest absolute flexion rate during the event, deg/s (how fast: a
            slow curl peaks near 50-100 deg/s, a snap at several hundred).
    """

    side: HandSide
    finger: Finger
    start: int
    stop: int
    action: FingerAction
    start_deg: float
    stop_deg: float
    peak_speed_deg_s: float

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict[str, Any]:
        return {'side': self.side.name.lower(), 'finger': self.finger.name.lower(),
                'start': self.start, 'stop': self.stop, 'action': self.action.value,
                'start_deg': self.start_deg, 'stop_deg': self.stop_deg,
                'peak_speed_deg_s': self.peak_speed_deg_s}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlexionEvent:
        return cls(HandSide[data['side'].upper()], Finger[data['finger'].upper()],
                   int(data['start']), int(data['stop']), FingerAction(data['action']),
                   float(data['start_deg']), float(data['stop_deg']),
                   float(data['peak_speed_deg_s']))


@dataclasses.dataclass(frozen=True)
class FingerFeatures:
    """Flexion of one finger over the clip.

    Attributes:
        side: The hand.
        finger: The finger.
        mean_deg: Mean over the clip of the finger's flexion (the mean of its three joints'
            anatomical flexion, :func:`~handx_gen.hand.limits.pose_to_anatomical`), degrees.
        min_deg: Smallest (smoothed) flexion, degrees.
        max_deg: Largest (smoothed) flexion, degrees.
        bins: :class:`FlexionBin` spans (extended / bent / curled) covering the clip.
        events: Bend / extend / hold events covering the clip.
        thumb_distance_min_m: Smallest distance between this fingertip and the thumb tip
            (keypoints) over the clip, metres; ``None`` for the thumb itself. A pinch shows
            as a same-hand contact event; this is the closest approach either way.
        flexion_deg: The smoothed flexion per frame, degrees, when
            ``FeatureConfig.keep_curves`` is set; else empty.
    """

    side: HandSide
    finger: Finger
    mean_deg: float
    min_deg: float
    max_deg: float
    bins: tuple[Span[FlexionBin], ...]
    events: tuple[FlexionEvent, ...]
    thumb_distance_min_m: float | None
    flexion_deg: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {'side': self.side.name.lower(), 'finger': self.finger.name.lower(),
                'mean_deg': self.mean_deg, 'min_deg': self.min_deg, 'max_deg': self.max_deg,
                'bins': [s.to_dict() for s in self.bins],
                'events': [e.to_dict() for e in self.events],
                'thumb_distance_min_m': self.thumb_distance_min_m,
                'flexion_deg': list(self.flexion_deg)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FingerFeatures:
        thumb = data.get('thumb_distance_min_m')
        return cls(HandSide[data['side'].upper()], Finger[data['finger'].upper()],
                   float(data['mean_deg']), float(data['min_deg']), float(data['max_deg']),
                   _spans(data['bins'], FlexionBin),
                   tuple(FlexionEvent.from_dict(e) for e in data['events']),
                   None if thumb is None else float(thumb),
                   tuple(float(v) for v in data.get('flexion_deg', ())))


@dataclasses.dataclass(frozen=True)
class Repetition:
    """A periodic movement of one hand.

    Attributes:
        side: The hand.
        source: What repeats: the hand as a whole (its knuckles' position or its palm's
            direction), or finger flexion.
        fingers: For ``FINGERS``, the fingers that repeat at this rate over these frames
            (thumb..little order); empty for ``WRIST``.
        start: First frame of the periodic stretch (half a period before its first extreme).
        stop: One past its last frame (half a period after its last extreme).
        count: Number of cycles: the peaks or the troughs of the repeating signal, whichever
            are more (a wave of three swings to each side, or three taps, count 3).
        rate_hz: Repetition rate, cycles per second (from the autocorrelation peak).
        strength: The normalised autocorrelation at one period over the stretch, in (0, 1]:
            1 is perfectly periodic.
    """

    side: HandSide
    source: RepetitionSource
    fingers: tuple[Finger, ...]
    start: int
    stop: int
    count: int
    rate_hz: float
    strength: float

    def to_dict(self) -> dict[str, Any]:
        return {'side': self.side.name.lower(), 'source': self.source.value,
                'fingers': [f.name.lower() for f in self.fingers], 'start': self.start,
                'stop': self.stop, 'count': self.count, 'rate_hz': self.rate_hz,
                'strength': self.strength}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Repetition:
        return cls(HandSide[data['side'].upper()], RepetitionSource(data['source']),
                   tuple(Finger[f.upper()] for f in data['fingers']), int(data['start']),
                   int(data['stop']), int(data['count']), float(data['rate_hz']),
                   float(data['strength']))


@dataclasses.dataclass(frozen=True)
class HandFeatures:
    """Everything measured on one hand.

    Attributes:
        side: The hand.
        fingers: One :class:`FingerFeatures` per finger, thumb to little.
        spread: :class:`SpreadState` spans covering the clip.
        spread_pairs_deg: Mean angle over the clip between adjacent fingers, degrees:
            (thumb-index, index-middle, middle-ring, ring-little). Between fingers it is the
            angle of their proximal phalanges in the flat default hand plus the change of
            their MCP abduction (independent of flexion; ~5-6 deg flat, ~25 deg fully
            spread); thumb-index is the angle between the thumb's and the index finger's
            metacarpals (keypoints CMC -> MCP and wrist -> MCP; ~17 deg at rest).
        palm_facing: :class:`PalmFacing` spans covering the clip.
        speed_phases: :class:`SpeedPhase` spans (moving / pause) covering the clip.
        mean_speed_m_s: Mean activity speed over the clip (mean speed of the wrist and the
            five fingertips, smoothed), m/s.
        peak_speed_m_s: Largest activity speed, m/s.
        repetitions: Periodic movements in time order; those of one
            :class:`RepetitionSource` do not overlap (by half or more).
        speed_m_s: The activity speed per frame when ``FeatureConfig.keep_curves``; else
            empty.
    """

    side: HandSide
    fingers: tuple[FingerFeatures, ...]
    spread: tuple[Span[SpreadState], ...]
    spread_pairs_deg: tuple[float, float, float, float]
    palm_facing: tuple[Span[PalmFacing], ...]
    speed_phases: tuple[Span[SpeedPhase], ...]
    mean_speed_m_s: float
    peak_speed_m_s: float
    repetitions: tuple[Repetition, ...]
    speed_m_s: tuple[float, ...] = ()

    def finger(self, finger: Finger) -> FingerFeatures:
        """The features of one finger."""
        return self.fingers[int(finger)]

    @classmethod
    def absent(cls, side: HandSide) -> HandFeatures:
        """The record of a hand absent from the clip: nothing measured (no spans, events or
        repetitions; zeros for the numbers, which mean nothing)."""
        fingers = tuple(FingerFeatures(side, finger, 0.0, 0.0, 0.0, (), (), None)
                        for finger in Finger)
        return cls(side, fingers, (), (0.0, 0.0, 0.0, 0.0), (), (), 0.0, 0.0, ())

    @property
    def moving_frames(self) -> int:
        """Number of frames in ``MOVING`` phases."""
        return sum(s.num_frames for s in self.speed_phases if s.label == SpeedPhase.MOVING)

    def to_dict(self) -> dict[str, Any]:
        return {'side': self.side.name.lower(), 'fingers': [f.to_dict() for f in self.fingers],
                'spread': [s.to_dict() for s in self.spread],
                'spread_pairs_deg': list(self.spread_pairs_deg),
                'palm_facing': [s.to_dict() for s in self.palm_facing],
                'speed_phases': [s.to_dict() for s in self.speed_phases],
                'mean_speed_m_s': self.mean_speed_m_s, 'peak_speed_m_s': self.peak_speed_m_s,
                'repetitions': [r.to_dict() for r in self.repetitions],
                'speed_m_s': list(self.speed_m_s)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandFeatures:
        pairs = tuple(float(v) for v in data['spread_pairs_deg'])
        if len(pairs) != 4:
            raise MotionFormatError(f'spread_pairs_deg has {len(pairs)} values; expected 4')
        return cls(HandSide[data['side'].upper()],
                   tuple(FingerFeatures.from_dict(f) for f in data['fingers']),
                   _spans(data['spread'], SpreadState), pairs,  # type: ignore[arg-type]
                   _spans(data['palm_facing'], PalmFacing),
                   _spans(data['speed_phases'], SpeedPhase), float(data['mean_speed_m_s']),
                   float(data['peak_speed_m_s']),
                   tuple(Repetition.from_dict(r) for r in data['repetitions']),
                   tuple(float(v) for v in data.get('speed_m_s', ())))


@dataclasses.dataclass(frozen=True)
class InterHandRelations:
    """Spatial relations of the right hand to the left (palm centres, world frame).

    Attributes:
        lateral: Spans of RIGHT / LEFT / LEVEL: the right hand is to the right of the left
            (+x), to its left (hands crossed), or level within ``level_band_m``.
        vertical: Spans of ABOVE / BELOW / LEVEL (world z).
        depth: Spans of IN_FRONT / BEHIND / LEVEL (world y; +y is in front).
        distance_min_m: Smallest palm-centre distance over the clip, metres.
        distance_mean_m: Mean palm-centre distance, metres.
        distance_max_m: Largest palm-centre distance, metres.
        distance_trend: :class:`DistanceTrend` spans covering the clip.
        palm_pair: :class:`PalmPair` spans covering the clip (from the hands' palm facing).
        distance_m: The palm-centre distance per frame when ``FeatureConfig.keep_curves``;
            else empty.
    """

    lateral: tuple[Span[RelativePosition], ...]
    vertical: tuple[Span[RelativePosition], ...]
    depth: tuple[Span[RelativePosition], ...]
    distance_min_m: float
    distance_mean_m: float
    distance_max_m: float
    distance_trend: tuple[Span[DistanceTrend], ...]
    palm_pair: tuple[Span[PalmPair], ...]
    distance_m: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {'lateral': [s.to_dict() for s in self.lateral],
                'vertical': [s.to_dict() for s in self.vertical],
                'depth': [s.to_dict() for s in self.depth],
                'distance_min_m': self.distance_min_m, 'distance_mean_m': self.distance_mean_m,
                'distance_max_m': self.distance_max_m,
                'distance_trend': [s.to_dict() for s in self.distance_trend],
                'palm_pair': [s.to_dict() for s in self.palm_pair],
                'distance_m': list(self.distance_m)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InterHandRelations:
        return cls(_spans(data['lateral'], RelativePosition),
                   _spans(data['vertical'], RelativePosition),
                   _spans(data['depth'], RelativePosition), float(data['distance_min_m']),
                   float(data['distance_mean_m']), float(data['distance_max_m']),
                   _spans(data['distance_trend'], DistanceTrend),
                   _spans(data['palm_pair'], PalmPair),
                   tuple(float(v) for v in data.get('distance_m', ())))


@dataclasses.dataclass(frozen=True)
class MotionFeatures:
    """The feature record of one clip.

    Attributes:
        fps: Frame rate of the clip.
        num_frames: Number of frames.
        hands: (left, right) :class:`HandFeatures` (:meth:`HandFeatures.absent` for a hand
            absent from the clip).
        contacts: Contact events, between the hands and within each hand, sorted by
            ``(start, a, b)``. One event per touching pair of parts and touch; see
            :func:`detect_contacts` for which parts are reported.
        relations: Spatial relations of the right hand to the left; ``None`` when a hand is
            absent.
        coordination: The clip's dominant :class:`Coordination` (the label of most moving
            frames; ``STILL`` when no hand moves).
        coordination_spans: :class:`Coordination` spans covering the clip.
        format: :data:`MOTION_FEATURES_FORMAT`.
        present: (left, right): whether each hand is in the clip (records written before
            this field read as both).
    """

    fps: float
    num_frames: int
    hands: tuple[HandFeatures, HandFeatures]
    contacts: tuple[ContactEvent, ...]
    relations: InterHandRelations | None
    coordination: Coordination
    coordination_spans: tuple[Span[Coordination], ...]
    format: str = MOTION_FEATURES_FORMAT
    present: tuple[bool, bool] = (True, True)

    def hand(self, side: HandSide) -> HandFeatures:
        """The features of one hand."""
        return self.hands[int(side)]

    @property
    def present_sides(self) -> tuple[HandSide, ...]:
        """The hands in the clip, left first."""
        return tuple(side for side in HandSide if self.present[side])

    @property
    def flexion_events(self) -> tuple[FlexionEvent, ...]:
        """All flexion events, both hands, thumb to little, in time order per finger."""
        return tuple(e for h in self.hands for f in h.fingers for e in f.events)

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict (the inverse of :meth:`from_dict`)."""
        return {'format': self.format, 'fps': self.fps, 'num_frames': self.num_frames,
                'hands': [h.to_dict() for h in self.hands],
                'contacts': [c.to_dict() for c in self.contacts],
                'relations': None if self.relations is None else self.relations.to_dict(),
                'coordination': self.coordination.value,
                'coordination_spans': [s.to_dict() for s in self.coordination_spans],
                'present': list(self.present)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MotionFeatures:
        """Read a record written by :meth:`to_dict`.

        Raises:
            MotionFormatError: Another format version, or a malformed record.
        """
        if not isinstance(data, Mapping) or data.get('format') != MOTION_FEATURES_FORMAT:
            found = data.get('format') if isinstance(data, Mapping) else type(data).__name__
            raise MotionFormatError(
                f'feature record format {found!r}; expected {MOTION_FEATURES_FORMAT!r}')
        try:
            hands = tuple(HandFeatures.from_dict(h) for h in data['hands'])
            if len(hands) != 2 or [h.side for h in hands] != [HandSide.LEFT, HandSide.RIGHT]:
                raise MotionFormatError('feature record must hold the left then the right hand')
            present = tuple(bool(v) for v in data.get('present', (True, True)))
            if len(present) != 2 or not any(present):
                raise MotionFormatError(f'feature record "present" must be two booleans, at '
                                        f'least one true; got {data.get("present")!r}')
            relations = data['relations']
            return cls(float(data['fps']), int(data['num_frames']),
                       hands,  # type: ignore[arg-type]
                       tuple(ContactEvent.from_dict(c) for c in data['contacts']),
                       None if relations is None else InterHandRelations.from_dict(relations),
                       Coordination(data['coordination']),
                       _spans(data['coordination_spans'], Coordination),
                       present=present)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise MotionFormatError(f'malformed feature record: {exc!r}') from exc


def _spans(items: Sequence[Mapping[str, Any]], label_type: type[L]) -> tuple[Span[L], ...]:
    return tuple(Span.from_dict(item, label_type) for item in items)



# ============================================================================== configuration


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Thresholds of :func:`extract_features`. Durations are seconds (converted with the clip's
    frame rate, at least one frame), angles degrees, distances metres.

    Attributes:
        contact: When two parts touch (the shared :class:`~handx_gen.annotate.surface.
            ContactConfig`): a pair touches when its surface distance is at most
            ``contact.touch_gap_m`` (5 mm).
        contact_merge_gap_s: 0.1 s (3 frames at 30 fps): touches of the same pair separated
            by fewer frames than this are one event (a gap of 1-2 frames at 30 fps is jitter).
        contact_dominance_overlap: 0.5: an event is left out when a dominating event (see
            :func:`detect_contacts`) covers at least this fraction of its frames.
        flexion_smooth_s: 0.035 s: Gaussian smoothing (sigma, about one frame at 30 fps) of
            the per-finger flexion; light, so that quick taps (a keystroke bends a finger by
            10-15 deg in 0.1 s) keep their amplitude.
        flexion_rate_on_deg_s: 20 deg/s: a bend or extension starts where the smoothed
            flexion rate reaches this (a 30 deg curl over 1 s peaks near 56 deg/s).
        flexion_rate_off_deg_s: 10 deg/s: the movement is extended on both sides while the
            rate keeps its sign and stays above this (hysteresis), so onsets are not late (a
            1 s minimum-jerk curl of 70 deg is above it from 8 % to 92 % of its duration);
            tracker noise keeps a held finger's rate mostly below it.
        min_flexion_change_deg: 10 deg of mean joint flexion (30 deg summed over the three
            joints, the synthesizer's threshold for a planned bend): smaller movements are
            holds. Tracker noise of 2 mm moves the (IK) mean flexion by a few degrees; a
            deliberate bend is 20-90 deg, a keystroke or tap 10-20 deg.
        flexion_merge_gap_s: 0.15 s: movements in the same direction separated by a shorter
            slow-down are one event.
        min_hold_s: 0.1 s: shorter holds are absorbed into the movement before them (the
            turning point of a bend-extend).
        extended_below_deg: 30 deg, bent_below_deg: 60 deg: flexion bins (HandX's).
        together_deg: 8 deg, spread_deg: 16 deg: a hand's fingers are together when the mean
            angle between adjacent fingers (index to little, from MCP abduction) is below
            ``together_deg``, spread at or above ``spread_deg`` (the default skeleton's flat
            hand: ~5.7 deg; every MCP at its abduction limit: ~19 deg).
        position_smooth_s: 0.07 s: Gaussian smoothing (sigma) of the keypoints before
            velocities and relations.
        moving_speed_m_s: 0.08 m/s: a hand moves when the fastest of its wrist and five
            fingertips (smoothed) is at least this fast. A still hand tracked with 2 mm of
            noise per axis peaks near 0.065 m/s (3 mm: 0.095 m/s, but shorter than
            ``min_span_s``); a slow deliberate movement (10 cm in 1 s) peaks near 0.19 m/s.
        min_span_s: 0.3 s: spans of a state (flexion bin, spread, palm facing, relations,
            speed phases, distance trend) shorter than this are absorbed into a neighbour.
        level_band_m: 0.05 m: the right hand is level with the left along an axis when the
            palm centres differ by less than this along it.
        facing_cone_deg: 45 deg: a palm faces the other hand (or away) when its normal is
            within this angle of the direction to (from) the other palm centre.
        distance_rate_m_s: 0.05 m/s: the hands approach / separate while the palm-centre
            distance changes at least this fast (with hysteresis down to a fifth of it).
        min_distance_change_m: 0.03 m: smaller approaches or separations are steady.
        repetition_min_strength: 0.5: the normalised autocorrelation at one period, over the
            repeating stretch, must reach this to call a movement periodic.
        repetition_max_hz: 6 Hz, repetition_min_hz: 0.3 Hz: the rates searched (faster is
            tremor or noise; slower is a sequence of separate movements).
        repetition_min_cycles: 2: fewer peaks are a single movement, not a repetition.
        repetition_min_amplitude_m: 0.02 m: each swing of a repeating hand movement must
            span at least this (finger swings: ``min_flexion_change_deg``).
        repetition_min_turn_deg: 20 deg: each swing of a repeated turn of the hand (its palm
            normal) must be at least this.
        coordination_window_s: 1.0 s: the window over which the hands' velocities are
            compared.
        coordination_min_s: 0.5 s: coordination spans shorter than this are absorbed.
        one_hand_ratio: 0.25: when one hand's mean speed in the window is below this fraction
            of the other's (or it does not move), only the other hand moves.
        coordination_corr: 0.5: velocity correlation needed for ``TOGETHER`` / ``MIRRORED``
            (and, negated, for antiphase ``ALTERNATING``).
        mirror_margin: 0.2: ``MIRRORED`` needs its correlation to exceed the ``TOGETHER`` one
            by this margin.
        alternating_corr: -0.3: turn taking (``ALTERNATING``) when the correlation of the two
            hands' speeds over the window is at most this.
        keep_curves: False: also store per-frame curves (finger flexion, hand speed, palm
            distance) in the record; they make it about 15 times larger.
    """

    contact: ContactConfig = dataclasses.field(default_factory=ContactConfig)
    contact_merge_gap_s: float = 0.1
    contact_dominance_overlap: float = 0.5
    flexion_smooth_s: float = 0.035
    flexion_rate_on_deg_s: float = 20.0
    flexion_rate_off_deg_s: float = 10.0
    min_flexion_change_deg: float = 10.0
    flexion_merge_gap_s: float = 0.15
    min_hold_s: float = 0.1
    extended_below_deg: float = 30.0
    bent_below_deg: float = 60.0
    together_deg: float = 8.0
    spread_deg: float = 16.0
    position_smooth_s: float = 0.07
    moving_speed_m_s: float = 0.08
    min_span_s: float = 0.3
    level_band_m: float = 0.05
    facing_cone_deg: float = 45.0
    distance_rate_m_s: float = 0.05
    min_distance_change_m: float = 0.03
    repetition_min_strength: float = 0.5
    repetition_max_hz: float = 6.0
    repetition_min_hz: float = 0.3
    repetition_min_cycles: int = 2
    repetition_min_amplitude_m: float = 0.02
    repetition_min_turn_deg: float = 20.0
    coordination_window_s: float = 1.0
    coordination_min_s: float = 0.5
    one_hand_ratio: float = 0.25
    coordination_corr: float = 0.5
    mirror_margin: float = 0.2
    alternating_corr: float = -0.3
    keep_curves: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.contact, ContactConfig):
            raise ConfigError(f'feature config contact must be a ContactConfig, got '
                              f'{type(self.contact).__name__}')
        if not isinstance(self.keep_curves, bool):
            raise ConfigError(f'feature config keep_curves must be a bool, got '
                              f'{self.keep_curves!r}')
        signed = ('alternating_corr',)
        for field in dataclasses.fields(self):
            if field.name in ('contact', 'keep_curves'):
                continue
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ConfigError(f'feature config {field.name!r} must be a finite number, '
                                  f'got {value!r}')
            if field.name not in signed and value < 0.0:
                raise ConfigError(f'feature config {field.name!r} must be >= 0, got {value!r}')
        if not self.extended_below_deg < self.bent_below_deg:
            raise ConfigError(f'feature config extended_below_deg ({self.extended_below_deg}) '
                              f'must be below bent_below_deg ({self.bent_below_deg})')
        if not self.together_deg <= self.spread_deg:
            raise ConfigError(f'feature config together_deg ({self.together_deg}) must be at '
                              f'most spread_deg ({self.spread_deg})')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FeatureConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys.

        ``contact`` may be a mapping of :class:`ContactConfig` settings.

        Raises:
            ConfigError: An unknown key (the message lists the valid ones) or a bad value.
        """
        kwargs = config_kwargs(cls, values, 'feature')
        contact = kwargs.get('contact')
        if isinstance(contact, Mapping):
            kwargs['contact'] = ContactConfig(**config_kwargs(ContactConfig, contact, 'contact'))
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    def frames(self, seconds: float, fps: float) -> int:
        """A duration in whole frames at ``fps``, at least 1."""
        return max(1, int(round(seconds * fps)))


# ============================================================================== extraction


def extract_features(motion: BimanualMotion,
                     config: FeatureConfig | None = None) -> MotionFeatures:
    """Measure the structured features of a clip from its keypoints and MANO pose.

    Args:
        motion: The clip (any source: synthetic, MANO, AMASS, tracked keypoints). Its
            annotation, and any synthesis plan in it, is not read.
        config: Thresholds; default :class:`FeatureConfig`.

    Returns:
        The feature record.

    Raises:
        MotionError: ``motion`` is not a :class:`BimanualMotion` or has fewer than 2 frames.
    """
    if not isinstance(motion, BimanualMotion):
        raise MotionError(f'extract_features needs a BimanualMotion, got '
                          f'{type(motion).__name__}')
    if motion.num_frames < 2:
        raise MotionError(f'extract_features needs at least 2 frames, got {motion.num_frames}')
    config = config or FeatureConfig()
    fps = motion.fps
    keypoints = motion.keypoints.astype(np.float64)  # (T, 2, 21, 3)
    surfaces = tuple(hand_surface(keypoints[:, side], side, config.contact.hand_length_m)
                     for side in HandSide)
    smooth = _smooth(keypoints, config.position_smooth_s * fps)  # (T, 2, 21, 3)
    velocity = np.gradient(smooth, axis=0) * fps  # (T, 2, 21, 3) m/s
    centre = _smooth(np.stack([s.palm_centre for s in surfaces], 1),
                     config.position_smooth_s * fps)  # (T, 2, 3)
    normal = np.stack([s.palm_normal for s in surfaces], 1)  # (T, 2, 3)

    flexion, spread = _finger_angles_deg(motion.hand_pose,
                                         config.flexion_smooth_s * fps)  # (T, 2, 5), (T, 2, 3)
    activity = np.linalg.norm(velocity[:, :, _ACTIVITY_POINTS], axis=-1).max(-1)  # (T, 2)
    moving = np.stack([_debounce(activity[:, side] >= config.moving_speed_m_s,
                                 config.frames(config.min_span_s, fps)) for side in HandSide],
                      1)  # (T, 2) bool
    present = tuple(bool(v) for v in motion.present)
    facing = _palm_facing(centre, normal, config, relative=all(present))  # (T, 2) PalmFacing

    if not all(present):  # an absent hand stands still: nothing it does counts
        activity[:, ~motion.present] = 0.0
        moving[:, ~motion.present] = False
    hands = tuple(
        _hand_features(side, keypoints[:, side], smooth[:, side],
                       _smooth(normal[:, side], config.position_smooth_s * fps),
                       flexion[:, side], spread[:, side], activity[:, side], moving[:, side],
                       facing[:, side], fps, config)
        if present[side] else HandFeatures.absent(side)
        for side in HandSide)
    return MotionFeatures(
        fps=float(fps), num_frames=motion.num_frames,
        hands=hands,  # type: ignore[arg-type]
        contacts=detect_contacts(surfaces[HandSide.LEFT], surfaces[HandSide.RIGHT], fps,
                                 config, present=present),
        relations=_relations(centre, facing, fps, config) if all(present) else None,
        **_coordination(velocity, activity, moving, fps, config),
        present=present)  # type: ignore[arg-type]


# Keypoints whose speed measures a hand's activity: the wrist and the five fingertips.
_ACTIVITY_POINTS = (0,) + TIP_KEYPOINTS
_PALM_FACING = tuple(PalmFacing)


def _smooth(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 (edges held); ``sigma_frames < 0.5`` leaves it as is."""
    if sigma_frames < 0.5 or len(values) < 2:
        return values
    return ndimage.gaussian_filter1d(values, sigma_frames, axis=0, mode='nearest')


def _round(value: float, digits: int) -> float:
    return float(round(float(value), digits))


# ------------------------------------------------------------------------------ run helpers


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of equal values of a 1-D array: (starts, stops, values)."""
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(labels)]])
    return starts, stops, labels[starts]


def _debounce(labels: np.ndarray, min_len: int) -> np.ndarray:
    """Absorb runs shorter than ``min_len`` into a neighbour, shortest first.

    A short run takes the label of its longer neighbour (the only one at the clip's ends).
    """
    labels = np.array(labels, copy=True)
    if min_len <= 1:
        return labels
    while True:
        starts, stops, values = _runs(labels)
        if len(starts) == 1:
            return labels
        lengths = stops - starts
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len:
            return labels
        if i == 0:
            new = values[1]
        elif i == len(starts) - 1:
            new = values[-2]
        else:
            new = values[i - 1] if lengths[i - 1] >= lengths[i + 1] else values[i + 1]
        labels[starts[i]:stops[i]] = new


def _spans_of(labels: np.ndarray, choices: Sequence[L]) -> tuple[Span[L], ...]:
    """Spans of a per-frame array of indices into ``choices``."""
    starts, stops, values = _runs(labels)
    return tuple(Span(int(a), int(b), choices[int(v)])
                 for a, b, v in zip(starts, stops, values, strict=True))


def _direction_labels(signal: np.ndarray, rate: np.ndarray, on: float, off: float,
                      min_change: float, merge_gap: int, min_hold: int) -> np.ndarray:
    """Rising (+1) / falling (-1) / steady (0) per frame of a smoothed signal.

    A movement is a run where ``sign * rate >= off`` that somewhere reaches ``on``
    (hysteresis) and changes the signal by at least a third of ``min_change``; movements of
    one direction separated by at most ``merge_gap`` steady frames are joined; movements
    changing the signal by less than ``min_change`` become steady; steady runs shorter than
    ``min_hold`` join the movement before them (after them at the start).
    """
    labels = np.zeros(len(signal), dtype=np.int64)
    for sign in (1, -1):
        trigger = sign * rate >= on
        starts, stops, values = _runs(sign * rate >= off)
        for a, b, v in zip(starts, stops, values, strict=True):
            # Fragments under a third of min_change (noise wiggles) are not joined to others.
            if v and trigger[a:b].any() and abs(signal[b - 1] - signal[a]) >= min_change / 3:
                labels[a:b] = sign
    starts, stops, values = _runs(labels)
    for i in range(1, len(starts) - 1):
        if values[i] == 0 and stops[i] - starts[i] <= merge_gap \
                and values[i - 1] == values[i + 1] != 0:
            labels[starts[i]:stops[i]] = values[i - 1]
    starts, stops, values = _runs(labels)
    for a, b, v in zip(starts, stops, values, strict=True):
        if v and abs(signal[b - 1] - signal[a]) < min_change:
            labels[a:b] = 0
    starts, stops, values = _runs(labels)
    for i, (a, b, v) in enumerate(zip(starts, stops, values, strict=True)):
        if v == 0 and b - a < min_hold and len(starts) > 1:
            labels[a:b] = values[i - 1] if i > 0 else values[i + 1]
    return labels


# ------------------------------------------------------------------------------ contacts

_BROAD = frozenset({HandPart.PALM, HandPart.BACK})
_SHAFT_TIP = {FINGER_PARTS[f]: FINGERTIP_PARTS[f] for f in Finger}
# Same-hand pairs that are reported: the thumb tip with each other fingertip (pinches, as in
# HandX's same-hand contact labels). Other same-hand pairs touch by construction (neighbouring
# shafts, shafts and the palm at the knuckles) or follow from flexion (fingertips on the palm
# of a fist), so they are not contact events.
_SAME_HAND_PAIRS = tuple((HandPart.THUMB_TIP, FINGERTIP_PARTS[f]) for f in Finger
                         if f != Finger.THUMB)
_PART_ROW = {part: i for i, part in enumerate(HAND_PARTS)}


def detect_contacts(surface_left: HandSurface, surface_right: HandSurface, fps: float,
                    config: FeatureConfig | None = None, *,
                    present: Sequence[bool] = (True, True)) -> tuple[ContactEvent, ...]:
    """Contact events between the hands and within each hand, from the surface proxies.

    Per pair of parts, touches are the intervals of
    :func:`~handx_gen.annotate.surface.contact_intervals` (the shared definition, also used by
    the synthesizer): a touch starts where the signed surface distance
    (:func:`~handx_gen.annotate.surface.part_distance_matrix`) is at most
    ``config.contact.touch_gap_m`` (5 mm), lasts while it stays within
    ``config.contact.apart_gap_m`` (15 mm) and is trimmed to its touching frames; touches
    shorter than ``config.contact.min_contact_s`` are dropped. Touches of one pair separated by
    fewer than ``contact_merge_gap_s`` are then joined, so one touch is one event.

    Pairs: between the hands every part of the left hand with every part of the right hand;
    within a hand the thumb tip with each other fingertip (a pinch).

    Specificity (one event per touching pair, without flooding): a between-hands event is left
    out when another event covers at least ``contact_dominance_overlap`` of its frames and
    dominates it:

    * **broad contact**: an event between a palm or back and a palm or back (e.g. palm-palm,
      or a palm on the other hand's back) dominates every other between-hands event that is
      not itself broad-broad: when whole palms touch, the fingers pressed together with them
      are part of that contact, not events of their own;
    * **tip over shaft**: an event of a finger's shaft against part X dominates nothing, but
      is dominated by the event of the same finger's tip against the same X (a finger lying
      on a surface touches it with the tip: the tip is reported).

    So finger-level events appear exactly where fingers make the contact without a palm or
    back touching a palm or back at the same time (a fingertip tapping a palm, steepled
    fingertips, an index stroking the other hand's back). :func:`reportable_contacts` applies
    the same vocabulary and rules to any list of touches (a plan's realised contacts).

    Args:
        surface_left: Surface proxy of the left hand over the frames.
        surface_right: Surface proxy of the right hand.
        fps: Frame rate (for the durations of ``config``).
        config: Thresholds; default :class:`FeatureConfig`.
        present: (left, right): whether each hand is in the clip. With a hand absent there
            are no events between the hands and none within the absent hand.

    Returns:
        Events sorted by ``(start, a, b)``; between hands ``a`` is the left hand's part.
    """
    config = config or FeatureConfig()
    merge_gap = config.frames(config.contact_merge_gap_s, fps)

    events: list[ContactEvent] = []
    if all(present):
        inter = _inter_hand_distances(surface_left, surface_right,
                                      config.contact.apart_gap_m)  # (T, 12, 12)
        candidates: list[ContactEvent] = []
        rows, cols = np.nonzero((inter <= config.contact.touch_gap_m).any(axis=0))
        for i, j in zip(rows, cols, strict=True):
            a = PartRef(HandSide.LEFT, HAND_PARTS[i])
            b = PartRef(HandSide.RIGHT, HAND_PARTS[j])
            candidates += _pair_events(inter[:, i, j], a, b, fps, config.contact, merge_gap)
        events = _dominant(candidates, config.contact_dominance_overlap)
    for surface in (surface_left, surface_right):
        if not present[surface.side]:
            continue
        for part_a, part_b in _SAME_HAND_PAIRS:
            distance = part_distance(surface, part_a, surface, part_b).distance  # (T,)
            events += _pair_events(distance, PartRef(surface.side, part_a),
                                   PartRef(surface.side, part_b), fps, config.contact,
                                   merge_gap)
    return tuple(sorted(events, key=lambda e: (e.start, e.a.to_json(), e.b.to_json())))


def _inter_hand_distances(surface_a: HandSurface, surface_b: HandSurface,
                          within: float) -> np.ndarray:
    """(T, 12, 12) part distances between two hands; ``inf`` on frames where no part can be
    within ``within`` metres (a bounding-sphere test skips the exact distances there)."""
    near = np.flatnonzero(near_frames(surface_a, surface_b, within))
    num_parts = len(HAND_PARTS)
    out = np.full((surface_a.keypoints.shape[0], num_parts, num_parts), np.inf)
    if near.size:
        out[near] = part_distance_matrix(frames_of(surface_a, near), frames_of(surface_b, near))
    return out


def _pair_events(distance: np.ndarray, a: PartRef, b: PartRef, fps: float,
                 contact: ContactConfig, merge_gap: int) -> list[ContactEvent]:
    """Debounced contact events of one pair from its distance per frame (T,)."""
    intervals: list[list[int]] = []
    for start, stop in contact_intervals(distance, fps, contact):
        if intervals and start - intervals[-1][1] < merge_gap:
            intervals[-1][1] = stop
        else:
            intervals.append([start, stop])
    return [ContactEvent(int(start), int(stop), a, b, _round(distance[start:stop].min(), 4))
            for start, stop in intervals]


class _Contact(Protocol):
    """Anything with a frame range and two parts (ContactEvent, a plan's PlannedContact)."""

    @property
    def start(self) -> int: ...

    @property
    def stop(self) -> int: ...

    @property
    def a(self) -> PartRef: ...

    @property
    def b(self) -> PartRef: ...


C = TypeVar('C', bound=_Contact)


def reportable_contacts(contacts: Sequence[C], config: FeatureConfig | None = None) -> list[C]:
    """The contacts that :func:`detect_contacts` would report, among any list of touches.

    A synthesis plan lists every touch its geometry realises (the palms and, incidentally,
    the fingers pressed along with them; fingertips side by side). This applies the feature
    extractor's vocabulary and specificity rules to such a list, so that a checker compares
    like with like: same-hand touches other than the thumb tip with another fingertip are
    left out, and between-hands touches made redundant by a dominating one (the rules of
    :func:`detect_contacts`) are dropped.

    Args:
        contacts: Items with ``start``, ``stop``, ``a`` and ``b`` (e.g.
            :class:`ContactEvent` or ``handx_gen.data.plan.PlannedContact``); between hands,
            either hand's part may come first.
        config: Supplies ``contact_dominance_overlap``; default :class:`FeatureConfig`.

    Returns:
        The kept items, in their original order.
    """
    config = config or FeatureConfig()
    inter = [c for c in contacts if c.a.side != c.b.side]
    kept = {id(c) for c in _dominant(inter, config.contact_dominance_overlap)}
    same = {frozenset(pair) for pair in _SAME_HAND_PAIRS}
    return [c for c in contacts if id(c) in kept
            or (c.a.side == c.b.side and frozenset((c.a.part, c.b.part)) in same)]


def _ordered(c: _Contact) -> tuple[PartRef, PartRef]:
    """The two parts, the left hand's first (between hands)."""
    return (c.a, c.b) if c.a.side <= c.b.side else (c.b, c.a)


def _dominates(d: _Contact, e: _Contact) -> bool:
    """Whether touch ``d``'s parts make ``e`` redundant (the rules of detect_contacts)."""
    (da, db), (ea, eb) = _ordered(d), _ordered(e)
    if da.part in _BROAD and db.part in _BROAD:
        return not (ea.part in _BROAD and eb.part in _BROAD)
    if eb == db and ea.side == da.side and _SHAFT_TIP.get(ea.part) == da.part:
        return True
    return ea == da and eb.side == db.side and _SHAFT_TIP.get(eb.part) == db.part


def _dominant(events: Sequence[C], min_overlap: float) -> list[C]:
    """The between-hands touches not dominated by another one covering ``min_overlap`` of
    their frames."""
    kept = []
    for e in events:
        length = e.stop - e.start
        redundant = False
        for d in events:
            if d is e or not _dominates(d, e):
                continue
            overlap = min(d.stop, e.stop) - max(d.start, e.start)
            if overlap >= min_overlap * length:
                redundant = True
                break
        if not redundant:
            kept.append(e)
    return kept


# ------------------------------------------------------------------------------ one hand

# Pose rows (MANO joint index - 1) of each finger's three joints, thumb to little.
_FINGER_POSE_ROWS = np.array([[j - 1 for j in FINGER_MANO_JOINTS[f]] for f in Finger])  # (5, 3)
# Proximal phalanx of each finger (keypoints base -> next): thumb MCP -> IP, fingers MCP -> PIP.
_PROXIMAL = np.array([finger_keypoints(f)[1:3] if f == Finger.THUMB
                      else finger_keypoints(f)[:2] for f in Finger])  # (5, 2)
# Metacarpals of the thumb (CMC -> MCP) and the index finger (wrist -> MCP), for the thumb's
# spread.
_THUMB_METACARPAL = finger_keypoints(Finger.THUMB)[:2]
_INDEX_METACARPAL = (0, finger_keypoints(Finger.INDEX)[0])
_MCPS = [finger_keypoints(f)[0] for f in Finger if f != Finger.THUMB]
_FLEXION_BINS = tuple(FlexionBin)
_SPREAD_STATES = tuple(SpreadState)
_SPEED_PHASES = (SpeedPhase.PAUSE, SpeedPhase.MOVING)


def _finger_angles_deg(hand_pose: np.ndarray, sigma_frames: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-finger flexion and finger-pair spread from the MANO pose, degrees, smoothed.

    Flexion is the mean anatomical flexion of each finger's three joints
    (:func:`~handx_gen.hand.limits.pose_to_anatomical` with the default skeleton of each side;
    positive curls towards the palm). Spread between adjacent fingers (index-middle,
    middle-ring, ring-little) is their angle at rest plus the change of their MCP abduction,
    so it does not depend on how bent the fingers are.

    Returns:
        flexion (T, 2, 5), thumb to little; spread (T, 2, 3).
    """
    angles = np.degrees(np.stack([
        pose_to_anatomical(hand_pose[:, side], default_skeleton(side))
        for side in HandSide], axis=1))  # (T, 2, 15, 3)
    flexion = angles[..., _FINGER_POSE_ROWS, 0].mean(-1)  # (T, 2, 5)
    abduction = angles[..., _FINGER_POSE_ROWS[1:, 0], 1]  # (T, 2, 4) MCPs index..little
    # Lateral angle of each finger towards the thumb side: + abduction for index and middle
    # (positive = radial), - abduction for ring and little (positive = ulnar).
    lateral = abduction * np.array([1.0, 1.0, -1.0, -1.0])
    spread = _REST_SPREAD_DEG + lateral[..., :-1] - lateral[..., 1:]  # (T, 2, 3)
    return _smooth(flexion, sigma_frames), _smooth(spread, sigma_frames)


def _rest_spread() -> np.ndarray:
    """(3,) angles between adjacent proximal phalanges (index..little) of the default flat
    hand, degrees."""
    skeleton = default_skeleton(HandSide.RIGHT)
    rest = keypoints_from_mano_joints(skeleton.joints_rest, skeleton.tips_rest)  # (21, 3)
    bones = rest[_PROXIMAL[1:, 1]] - rest[_PROXIMAL[1:, 0]]
    bones /= np.linalg.norm(bones, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(bones[:-1] * bones[1:], -1), -1.0, 1.0)))


_REST_SPREAD_DEG = _rest_spread()


def _hand_features(side: HandSide, keypoints: np.ndarray, smooth: np.ndarray,
                   normal: np.ndarray, flexion: np.ndarray, spread: np.ndarray,
                   activity: np.ndarray, moving: np.ndarray, facing: np.ndarray, fps: float,
                   config: FeatureConfig) -> HandFeatures:
    """Features of one hand: keypoints (T, 21, 3) raw and smoothed, palm normal (T, 3),
    flexion (T, 5) deg, finger-pair spread (T, 3) deg, activity (T,) m/s, moving (T,) bool,
    facing (T,) PalmFacing index."""
    min_span = config.frames(config.min_span_s, fps)
    tips = keypoints[:, TIP_KEYPOINTS]  # (T, 5, 3)
    thumb_distance = np.linalg.norm(tips[:, 1:] - tips[:, :1], axis=-1).min(0)  # (4,)
    rate = np.gradient(flexion, axis=0) * fps  # (T, 5) deg/s
    fingers = []
    for finger in Finger:
        curve, finger_rate = flexion[:, finger], rate[:, finger]
        bins = np.searchsorted([config.extended_below_deg, config.bent_below_deg], curve,
                               side='right')
        fingers.append(FingerFeatures(
            side=side, finger=finger, mean_deg=_round(curve.mean(), 1),
            min_deg=_round(curve.min(), 1), max_deg=_round(curve.max(), 1),
            bins=_spans_of(_debounce(bins, min_span), _FLEXION_BINS),
            events=_flexion_events(side, finger, curve, finger_rate, fps, config),
            thumb_distance_min_m=(None if finger == Finger.THUMB
                                  else _round(thumb_distance[finger - 1], 4)),
            flexion_deg=(tuple(_round(v, 1) for v in curve) if config.keep_curves else ())))

    thumb = smooth[:, _THUMB_METACARPAL[1]] - smooth[:, _THUMB_METACARPAL[0]]  # (T, 3)
    index = smooth[:, _INDEX_METACARPAL[1]] - smooth[:, _INDEX_METACARPAL[0]]
    cosine = np.sum(thumb * index, -1) / np.maximum(
        np.linalg.norm(thumb, axis=-1) * np.linalg.norm(index, axis=-1), 1e-12)
    thumb_deg = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))  # (T,)
    pair_deg = np.concatenate([thumb_deg[:, None], spread], axis=-1)  # (T, 4)
    spread = spread.mean(-1)  # (T,)
    spread_labels = np.searchsorted([config.together_deg, config.spread_deg], spread,
                                    side='right')
    return HandFeatures(
        side=side, fingers=tuple(fingers),
        spread=_spans_of(_debounce(spread_labels, min_span), _SPREAD_STATES),
        spread_pairs_deg=tuple(_round(v, 1) for v in pair_deg.mean(0)),  # type: ignore
        palm_facing=_spans_of(_debounce(facing, min_span), _PALM_FACING),
        speed_phases=_spans_of(moving.astype(np.int64), _SPEED_PHASES),
        mean_speed_m_s=_round(activity.mean(), 3), peak_speed_m_s=_round(activity.max(), 3),
        repetitions=_repetitions(side, smooth, normal, flexion, fps, config),
        speed_m_s=tuple(_round(v, 3) for v in activity) if config.keep_curves else ())


def _flexion_events(side: HandSide, finger: Finger, curve: np.ndarray, rate: np.ndarray,
                    fps: float, config: FeatureConfig) -> tuple[FlexionEvent, ...]:
    """Bend / extend / hold events covering the clip (see :func:`_direction_labels`)."""
    labels = _direction_labels(
        curve, rate, config.flexion_rate_on_deg_s, config.flexion_rate_off_deg_s,
        config.min_flexion_change_deg, config.frames(config.flexion_merge_gap_s, fps),
        config.frames(config.min_hold_s, fps))
    actions = {1: FingerAction.BEND, -1: FingerAction.EXTEND, 0: FingerAction.HOLD}
    starts, stops, values = _runs(labels)
    return tuple(
        FlexionEvent(side, finger, int(a), int(b), actions[int(v)], _round(curve[a], 1),
                     _round(curve[b - 1], 1), _round(np.abs(rate[a:b]).max(), 1))
        for a, b, v in zip(starts, stops, values, strict=True))


def _palm_facing(centre: np.ndarray, normal: np.ndarray, config: FeatureConfig, *,
                 relative: bool = True) -> np.ndarray:
    """(T, 2) index into :class:`PalmFacing` per frame and hand (rules on PalmFacing);
    ``relative=False`` (a hand absent): world directions only, no other hand to face."""
    towards = centre[:, ::-1] - centre  # (T, 2, 3) to the other palm centre
    towards /= np.maximum(np.linalg.norm(towards, axis=-1, keepdims=True), 1e-12)
    cosine = np.sum(normal * towards, axis=-1) if relative else np.zeros(normal.shape[:2])
    cone = math.cos(math.radians(config.facing_cone_deg))
    # World directions in PalmFacing order after the two relative ones: up, down, forward,
    # backward, right, left; the largest component of the normal wins.
    world = np.stack([normal[..., 2], -normal[..., 2], normal[..., 1], -normal[..., 1],
                      normal[..., 0], -normal[..., 0]], axis=-1)  # (T, 2, 6)
    labels = 2 + world.argmax(-1)
    labels = np.where(cosine >= cone, 0, np.where(cosine <= -cone, 1, labels))
    return labels.astype(np.int64)


def _repetitions(side: HandSide, smooth: np.ndarray, normal: np.ndarray, flexion: np.ndarray,
                 fps: float, config: FeatureConfig) -> tuple[Repetition, ...]:
    """Periodic movements of one hand: of the hand as a whole, and of its fingers.

    The hand as a whole is followed by its knuckles (the mean of the four MCP keypoints: they
    move with the wrist's translation and rotation, not with the fingers) and by its palm
    normal (turning the hand), each along its three principal directions; the fingers by
    their flexion curves. Oscillations (:func:`_cycles`) of one source that overlap by half
    the shorter are one repetition: the one with the most cycles (then the strongest) gives
    its frames, count and rate; for the fingers, every finger oscillating at a rate within
    20 % over half its frames is listed.

    Returns:
        Repetitions in time order.
    """
    turn = 2.0 * math.sin(math.radians(config.repetition_min_turn_deg) / 2.0)  # chord
    hand = []
    for points, min_swing in ((smooth[:, _MCPS].mean(1), config.repetition_min_amplitude_m),
                              (normal, turn)):
        centred = points - points.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        for axis in vt:
            hand += [(c, None) for c in _cycles(centred @ axis, min_swing, fps, config)]
    fingers = [(c, Finger(f)) for f in range(len(Finger))
               for c in _cycles(flexion[:, f], config.min_flexion_change_deg, fps, config)]
    out = []
    for source, found in ((RepetitionSource.WRIST, hand), (RepetitionSource.FINGERS, fingers)):
        found = sorted(found, key=lambda item: (-item[0][2], -item[0][4], item[0][0]))
        used = [False] * len(found)
        for k, ((start, stop, count, rate, strength), _) in enumerate(found):
            if used[k]:
                continue
            members = []
            for j, (other, finger) in enumerate(found):
                overlap = min(stop, other[1]) - max(start, other[0])
                if not used[j] and overlap >= 0.5 * min(stop - start, other[1] - other[0]):
                    used[j] = True
                    if finger is not None and abs(other[3] - rate) <= 0.2 * rate:
                        members.append(finger)
            out.append(Repetition(side, source, tuple(sorted(set(members))), start, stop,
                                  count, _round(rate, 2), _round(strength, 3)))
    return tuple(sorted(out, key=lambda r: (r.start, r.source.value)))


def _cycles(signal: np.ndarray, min_swing: float, fps: float, config: FeatureConfig
            ) -> list[tuple[int, int, int, float, float]]:
    """The regular oscillations of a 1-D signal.

    Extrema (peaks and troughs with a prominence of at least ``min_swing``, alternating) are
    chained while each swing between neighbours is at least ``min_swing`` and takes between
    half a period at ``repetition_max_hz`` and half a period at ``repetition_min_hz``. A chain
    (see :func:`_continues`) with at least ``repetition_min_cycles`` peaks (or troughs)
    whose peak-to-peak periods
    agree within 35 % (coefficient of variation) is a repetition; its rate comes from the
    normalised autocorrelation of the chain's stretch, highest within 20 % of the median
    period (parabolic refinement), which must reach ``repetition_min_strength``.

    Returns:
        (start, stop, count, rate_hz, strength) per oscillation, in time order.
    """
    min_half = fps / (2.0 * config.repetition_max_hz)
    max_half = fps / (2.0 * config.repetition_min_hz)
    peaks, _ = find_peaks(signal, prominence=min_swing)
    troughs, _ = find_peaks(-signal, prominence=min_swing)
    extrema = sorted([(int(i), 1) for i in peaks] + [(int(i), -1) for i in troughs])
    alternating: list[tuple[int, int]] = []
    for index, kind in extrema:
        if alternating and alternating[-1][1] == kind:
            if kind * signal[index] > kind * signal[alternating[-1][0]]:
                alternating[-1] = (index, kind)
        else:
            alternating.append((index, kind))
    chains: list[list[tuple[int, int]]] = []
    for extremum in alternating:
        if chains and _continues(chains[-1], extremum, signal, min_swing, min_half, max_half):
            chains[-1].append(extremum)
        else:
            chains.append([extremum])
    out = []
    for chain in chains:
        count = max(sum(1 for _, k in chain if k == kind) for kind in (1, -1))
        if count < config.repetition_min_cycles:
            continue
        periods = np.concatenate([np.diff([i for i, k in chain if k == kind])
                                  for kind in (1, -1)])
        period = float(np.median(periods))
        if np.std(periods) > 0.35 * period:
            continue
        half = int(round(period / 2))
        start = max(0, chain[0][0] - half)
        stop = min(len(signal), chain[-1][0] + half + 1)
        found = _autocorrelation_peak(signal[start:stop], period)
        if found is None or found[1] < config.repetition_min_strength:
            continue
        out.append((start, stop, count, fps / found[0], found[1]))
    return out


def _continues(chain: list[tuple[int, int]], extremum: tuple[int, int], signal: np.ndarray,
               min_swing: float, min_half: float, max_half: float) -> bool:
    """Whether ``extremum`` continues the oscillation ``chain``: its swing is at least
    ``min_swing`` and a third of the chain's median swing, its half period within bounds, and
    the full period it closes within 0.65-1.5 times the chain's median full period."""
    last = chain[-1][0]
    gap = extremum[0] - last
    swing = abs(signal[extremum[0]] - signal[last])
    if not (min_half <= gap <= max_half and swing >= min_swing):
        return False
    index = [i for i, _ in chain]
    if len(index) >= 2:
        swings = np.abs(np.diff(signal[index]))
        if swing < np.median(swings) / 3.0:
            return False
        gaps = np.diff(index)
        if len(gaps) >= 2:
            median = float(np.median(gaps[1:] + gaps[:-1]))
            if not 0.65 * median <= gap + gaps[-1] <= 1.5 * median:
                return False
    return True


def _autocorrelation_peak(x: np.ndarray, period: float) -> tuple[float, float] | None:
    """(lag, correlation) of the highest normalised autocorrelation of ``x`` for lags within
    20 % of ``period`` (the lag refined by a parabola through its neighbours)."""
    x = x - x.mean()
    lo = max(1, int(math.floor(0.8 * period)) - 1)
    hi = min(len(x) - 3, int(math.ceil(1.2 * period)) + 1)
    if hi < lo:
        return None
    lags = np.arange(lo, hi + 1)
    corr = np.array([_correlation(x[:-lag], x[lag:]) for lag in lags])
    inner = slice(1, len(lags) - 1) if len(lags) > 2 else slice(0, len(lags))
    k = int(np.argmax(corr[inner])) + inner.start
    lag = float(lags[k])
    if 0 < k < len(lags) - 1:
        denom = corr[k - 1] - 2.0 * corr[k] + corr[k + 1]
        if denom < 0.0:
            lag += float(np.clip(0.5 * (corr[k - 1] - corr[k + 1]) / denom, -0.5, 0.5))
    return lag, float(corr[k])


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equally long signals (0 when one is constant)."""
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    return float(np.dot(a, b)) / denom if denom > 1e-12 else 0.0


# ------------------------------------------------------------------------------ both hands

_LATERAL = (RelativePosition.LEFT, RelativePosition.LEVEL, RelativePosition.RIGHT)
_VERTICAL = (RelativePosition.BELOW, RelativePosition.LEVEL, RelativePosition.ABOVE)
_DEPTH = (RelativePosition.BEHIND, RelativePosition.LEVEL, RelativePosition.IN_FRONT)
_TRENDS = (DistanceTrend.SEPARATING, DistanceTrend.STEADY, DistanceTrend.APPROACHING)
_PALM_PAIRS = tuple(PalmPair)
_COORDINATION = tuple(Coordination)


def _relations(centre: np.ndarray, facing: np.ndarray, fps: float,
               config: FeatureConfig) -> InterHandRelations:
    """Relations of the right palm centre to the left one; centre (T, 2, 3) smoothed."""
    min_span = config.frames(config.min_span_s, fps)
    delta = centre[:, HandSide.RIGHT] - centre[:, HandSide.LEFT]  # (T, 3)
    band = config.level_band_m
    # Per axis: 0 = negative side, 1 = level, 2 = positive side.
    side_of = (np.sign(delta) * (np.abs(delta) >= band)).astype(np.int64) + 1  # (T, 3)
    distance = np.linalg.norm(delta, axis=-1)  # (T,)
    rate = np.gradient(distance) * fps
    trend = _direction_labels(
        distance, -rate, config.distance_rate_m_s, 0.2 * config.distance_rate_m_s,
        config.min_distance_change_m, config.frames(config.flexion_merge_gap_s, fps),
        min_span)  # +1 approaching
    left, right = facing[:, HandSide.LEFT], facing[:, HandSide.RIGHT]
    towards, away = _PALM_FACING.index(PalmFacing.TOWARDS_OTHER), \
        _PALM_FACING.index(PalmFacing.AWAY_FROM_OTHER)
    pair = np.select(
        [(left == towards) & (right == towards), (left == away) & (right == away),
         (left == right) & (left > away)],
        [_PALM_PAIRS.index(p) for p in (PalmPair.FACING_EACH_OTHER, PalmPair.BACK_TO_BACK,
                                        PalmPair.SAME_DIRECTION)],
        _PALM_PAIRS.index(PalmPair.OTHER))
    return InterHandRelations(
        lateral=_spans_of(_debounce(side_of[:, 0], min_span), _LATERAL),
        vertical=_spans_of(_debounce(side_of[:, 2], min_span), _VERTICAL),
        depth=_spans_of(_debounce(side_of[:, 1], min_span), _DEPTH),
        distance_min_m=_round(distance.min(), 4), distance_mean_m=_round(distance.mean(), 4),
        distance_max_m=_round(distance.max(), 4),
        distance_trend=_spans_of(trend + 1, _TRENDS),
        palm_pair=_spans_of(_debounce(pair, min_span), _PALM_PAIRS),
        distance_m=tuple(_round(v, 4) for v in distance) if config.keep_curves else ())


def _coordination(velocity: np.ndarray, activity: np.ndarray, moving: np.ndarray, fps: float,
                  config: FeatureConfig) -> dict[str, Any]:
    """Coordination spans and the clip's dominant mode (rules on :class:`Coordination`).

    Over a centred window per frame: each hand moves when at least a quarter of its window is
    moving; the velocities of the wrist and fingertips (matched keypoint by keypoint) give
    the cosine correlation of the left hand with the right (``TOGETHER``) and with the
    right mirrored through the x = const plane (``MIRRORED``); the two hands' speeds give the
    Pearson correlation that reveals turn taking.
    """
    size = config.frames(config.coordination_window_s, fps)

    def mean(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter1d(x, size, axis=0, mode='nearest')

    v = velocity[:, :, _ACTIVITY_POINTS]  # (T, 2, 6, 3)
    v_left, v_right = v[:, HandSide.LEFT], v[:, HandSide.RIGHT]
    mirrored_right = v_right * np.array([-1.0, 1.0, 1.0])
    energy = np.sqrt(np.maximum(mean(np.sum(v_left ** 2, axis=(1, 2)))
                                * mean(np.sum(v_right ** 2, axis=(1, 2))), 1e-24))  # (T,)
    c_together = mean(np.sum(v_left * v_right, axis=(1, 2))) / energy
    c_mirror = mean(np.sum(v_left * mirrored_right, axis=(1, 2))) / energy
    a_left, a_right = activity[:, HandSide.LEFT], activity[:, HandSide.RIGHT]
    m_left, m_right = mean(a_left), mean(a_right)
    cov = mean(a_left * a_right) - m_left * m_right
    var = np.maximum(mean(a_left ** 2) - m_left ** 2, 0.0) * \
        np.maximum(mean(a_right ** 2) - m_right ** 2, 0.0)
    rho = np.where(var > 1e-12, cov / np.sqrt(np.maximum(var, 1e-24)), 0.0)
    busy = mean(moving.astype(np.float64)) >= 0.25  # (T, 2)
    left_on = busy[:, 0] & (m_left >= config.one_hand_ratio * m_right)
    right_on = busy[:, 1] & (m_right >= config.one_hand_ratio * m_left)
    corr = config.coordination_corr
    both_modes = np.select(
        [rho <= config.alternating_corr,
         (c_mirror >= corr) & (c_mirror - c_together >= config.mirror_margin),
         c_together >= corr,
         (c_together <= -corr) & (c_mirror <= -corr)],
        [_COORDINATION.index(m) for m in (Coordination.ALTERNATING, Coordination.MIRRORED,
                                          Coordination.TOGETHER, Coordination.ALTERNATING)],
        _COORDINATION.index(Coordination.INDEPENDENT))
    labels = np.select(
        [left_on & right_on, left_on, right_on],
        [both_modes, _COORDINATION.index(Coordination.LEFT_ONLY),
         _COORDINATION.index(Coordination.RIGHT_ONLY)],
        _COORDINATION.index(Coordination.STILL))
    labels = _debounce(labels, config.frames(config.coordination_min_s, fps))
    still = _COORDINATION.index(Coordination.STILL)
    counts = np.bincount(labels[labels != still], minlength=len(_COORDINATION))
    dominant = Coordination.STILL if counts.sum() == 0 else _COORDINATION[int(counts.argmax())]
    return {'coordination': dominant,
            'coordination_spans': _spans_of(labels, _COORDINATION)}
