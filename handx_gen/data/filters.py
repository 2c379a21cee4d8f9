"""Quality filters: flag bad frames, cut a clip into its clean segments, say why the rest went.

Every judgement is made on the motion as it will be used: its MANO parameters and their
forward kinematics (for a keypoint source, the fit of :func:`handx_gen.hand.fit.fit_hand`),
not on raw tracker output, whose bone lengths vary by tens of percent along the camera's
view axis (:mod:`handx_gen.data.tracker_noise`). Every dropped run names what it found: the
hand, the joint, keypoint or bone, the value and the bound it broke (``right index_pip
flexion -1.04 rad outside [-0.26, 2.18] rad``).

Each criterion (:class:`DropReason`) flags frames independently (vectorised over frames):

``NON_FINITE``
    Frames without observations (marked by a reader, or NaN/inf in the observations), per
    hand. A gap of at most ``max_gap_s`` with observations on both sides is bridged, not
    dropped: a tracker loses a hand for a frame or two all the time, and a keypoint reader
    fills such frames by interpolating the keypoints around them (parameter readers hold the
    nearest frame); the result counts them (:attr:`FilterResult.bridged_frames`).
``JOINT_LIMITS``
    A finger joint's anatomical angle (:func:`handx_gen.hand.limits.pose_to_anatomical`:
    flexion, abduction, twist), as a moving median over ``joint_limit_window_s``, outside its
    range (:data:`handx_gen.hand.limits.JOINT_RANGES`) by more than
    ``joint_limit_tolerance_rad``.
``BONE_LENGTH_DRIFT``
    Not applied by default (see :class:`FilterConfig` ``checks``): a keypoint bone's length
    in the raw observations, as a moving median over ``bone_length_window_s``, off its median
    over the clip by more than ``max_bone_length_deviation`` of that median or
    ``bone_length_floor_m``, whichever is larger. Real trackers' bones change length with the
    hand's orientation to the camera, so this drops good data; a lost or swapped joint shows
    in the fit instead (``FIT_RESIDUAL``, ``JOINT_LIMITS``).
``FIT_RESIDUAL``
    An observed keypoint further than ``max_fit_residual_m`` from the fitted hand (moving
    median over ``fit_residual_window_s``): observations no hand of the clip's skeleton can
    make (a mirrored or collapsed hand, fingers swapped by the tracker). Only for readings
    with observations (keypoint sources).
``VELOCITY_SPIKE`` / ``ACCELERATION_SPIKE``
    A keypoint faster than ``max_speed_m_s`` or accelerating harder than
    ``max_acceleration_m_s2`` (finite differences): teleports and jitter.
``INTERPENETRATION``
    The two hands overlapping: every keypoint bone is a capsule of radius ``capsule_radius_m``,
    and a frame is flagged when two capsules of different hands overlap (``2 r - distance``,
    the deepest pair, as a moving median over ``penetration_window_s``) by more than
    ``max_penetration_m``.
``INACTIVE``
    Neither hand moves over a window of ``inactive_window_s`` centred on the frame: for both
    hands the finger articulation range, the wrist travel and the wrist rotation range are all
    under their thresholds.

Flags are dilated by ``dilate_s`` on each side; the clip is cut into maximal runs of unflagged
frames; runs of at least ``min_segment_s`` are kept, the others are dropped with their reasons
(``TOO_SHORT`` for clean runs that are too short).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handx_gen.config import config_from_yaml, config_kwargs
from handx_gen.errors import ConfigError, DataSourceError, unknown_choice
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
    HandSide,
    bone_lengths,
)

if TYPE_CHECKING:
    from handx_gen.data.sources import SourceReading
    from handx_gen.hand.skeleton import HandSkeleton
    from handx_gen.motion import BimanualMotion

__all__ = [
    'DEFAULT_CHECKS',
    'DropReason',
    'DroppedSegment',
    'FilterConfig',
    'FilterResult',
    'Segment',
    'filter_motion',
    'filter_reading',
]


class DropReason(enum.Enum):
    """Why frames were dropped."""

    NON_FINITE = 'non_finite'
    JOINT_LIMITS = 'joint_limits'
    BONE_LENGTH_DRIFT = 'bone_length_drift'
    FIT_RESIDUAL = 'fit_residual'
    VELOCITY_SPIKE = 'velocity_spike'
    ACCELERATION_SPIKE = 'acceleration_spike'
    INTERPENETRATION = 'interpenetration'
    INACTIVE = 'inactive'
    TOO_SHORT = 'too_short'  # a clean run shorter than min_segment_s


# The criteria that flag frames (TOO_SHORT is decided after segmentation).
FRAME_CRITERIA: tuple[DropReason, ...] = tuple(
    r for r in DropReason if r is not DropReason.TOO_SHORT)
# The criteria applied unless a config says otherwise: all but the raw bone lengths.
DEFAULT_CHECKS: tuple[DropReason, ...] = tuple(
    r for r in FRAME_CRITERIA if r is not DropReason.BONE_LENGTH_DRIFT)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Thresholds of :func:`filter_motion`. Defaults and where they come from:

    Attributes:
        checks: Criteria to apply (default: all but ``bone_length_drift``, which judges raw
            tracker bone lengths).
        joint_limit_tolerance_rad: Allowed excess over the anatomical joint ranges, 0.26 rad
            (15 deg): the ranges are population ranges, and MANO fits / IK of real captures
            routinely overshoot them by several degrees; beyond 15 deg the pose is implausible
            (a finger bent backwards is 60+ deg out).
        joint_limit_window_s: 0.3 s: each anatomical angle is judged as a centred moving
            median over this window (9 frames at 30 fps). Poses solved from tracked keypoints carry
            per-frame noise that no solver removes: a flexion angle is the angle between two
            short bones, so 2 mm of keypoint noise per axis scatters a straight finger's PIP by
            ~9 deg and its DIP by ~13 deg from frame to frame, past the tolerance beyond the
            hyperextension limits in a few % of frames; the median of 9 frames scatters about
            2.4 times less. A real out-of-range pose (a finger bent backwards, a swapped finger)
            that lasts more than half the window (5 frames at 30 fps) is still flagged, frame
            for frame; shorter glitches move keypoints fast and are the spike criteria's. 0
            checks single frames. On tracker keypoints (3 mm jitter, depth errors of 20 %) the
            fit's moving medians stay within 16 degrees of the ranges (the largest of 24
            hands); a finger bent backwards 90 degrees at a glitch is fitted 19-47 degrees
            past its range.
        max_bone_length_deviation: 0.15 (15 %) of the bone's median length. Keypoint detectors
            and marker-based capture keep bone lengths within a few percent; a 15 % change of a
            rigid bone means a mislabelled or lost joint.
        bone_length_floor_m: 0.006 m, the smallest change of a bone's length that counts as
            drift; it decides for bones shorter than 40 mm (floor / max_bone_length_deviation:
            the middle and distal phalanges, 17-31 mm in an adult hand, where 15 % is only
            2.6-4.7 mm). Tracker noise of sigma per axis on both ends of a bone scatters its
            length by ~1.4 sigma per frame and its 7-frame median by ~0.7 sigma, so 6 mm is
            over 4 standard deviations for 2 mm of noise (a 5 mm floor still drops a few
            frames of most 10 s clips with that noise), while a lost or swapped joint moves a
            keypoint by a centimetre or more.
        bone_length_window_s: 0.2 s: bone lengths are compared as centred moving medians over
            this window (7 frames at 30 fps), which suppresses per-frame noise but still
            follows a mislabelled joint that lasts more than half the window (4 frames at
            30 fps); shorter glitches move keypoints fast and are the spike criteria's. 0
            compares single frames.
        max_fit_residual_m: 0.04 m: the farthest an observed keypoint may be from the fitted
            hand (moving median). The fit puts fingertips first, so a tracker's depth errors
            (bones 20 % longer or shorter along the view axis) leave up to 30 mm at the middle
            joints of a finger pointing at the camera; fingers swapped by the tracker leave
            35-50 mm, a mirrored or collapsed hand several centimetres.
        fit_residual_window_s: 0.2 s, the moving median of the residual (7 frames at 30 fps):
            single-frame glitches are the spike criteria's.
        max_gap_s: 0.1 s: the longest run of frames without observations that is bridged
            (3 frames at 30 fps: a dropout, not a lost hand); 0 bridges nothing.
        max_speed_m_s: 5 m/s per keypoint. Fast everyday reaching peaks near 1.5-3 m/s at the
            hand and fast finger tapping stays under about 1-2 m/s; 5 m/s leaves headroom for
            rapid gestures (ballistic throws, well outside this data, go higher) while catching
            teleports (a 17 cm jump between two frames at 30 fps).
        max_acceleration_m_s2: 150 m/s^2 per keypoint. Peak hand accelerations of fast reaching
            and gesturing are a few tens of m/s^2; 150 m/s^2 flags single-frame outliers (at
            30 fps a one-frame outlier of 8 cm already gives 2 * 0.08 * 30^2 = 144 m/s^2).
        capsule_radius_m: 0.009 m: adult finger widths are about 16-20 mm, so bones are
            capsules of 8-10 mm radius (palm bones are thinner than the real palm, which only
            makes the test more lenient).
        max_penetration_m: 0.015 m of capsule overlap: the two bone axes within 3 mm of each
            other, one hand through the other. Touching hands overlap by a few mm in clean
            fitted data (skin compresses, fits are off by ~5 mm; the synthetic corpus' contacts
            by up to 7.4 mm); seen by a tracker (3 mm jitter on both hands, depth errors) the
            deepest of the 400 bone pairs overlaps by 9-12 mm (moving median; 16 mm in 1 of 40
            clips), since the deepest pair picks the noise that brings two bones closer.
        penetration_window_s: 0.3 s: the overlap is a centred moving median over this window
            (9 frames at 30 fps): single frames of touching hands seen by a tracker overlap by
            up to 17 mm; one hand passing through the other lasts longer than half the window.
            0 judges single frames.
        inactive_window_s: 2.0 s, the length of a training clip: a window that long with no
            motion teaches nothing.
        inactive_finger_range_rad: 0.15 rad (~9 deg): the largest change of any finger joint
            rotation entry over the window must exceed this; tracking jitter of a static hand
            is a few degrees.
        inactive_wrist_travel_m: 0.03 m of wrist travel (extent of the wrist's positions over
            the window); static-hand jitter is a few mm.
        inactive_wrist_rotation_rad: 0.15 rad (~9 deg) of wrist rotation over the window.
        dilate_s: 0.1 s of margin around flagged frames, so the frames next to a glitch (often
            already affected by the smoothing of the capture pipeline) go too.
        min_segment_s: 2.0 s: the shortest clean run kept (a training clip is 2 s).
    """

    checks: tuple[DropReason, ...] = DEFAULT_CHECKS
    joint_limit_tolerance_rad: float = 0.26
    joint_limit_window_s: float = 0.3
    max_bone_length_deviation: float = 0.15
    bone_length_floor_m: float = 0.006
    bone_length_window_s: float = 0.2
    max_fit_residual_m: float = 0.04
    fit_residual_window_s: float = 0.2
    max_gap_s: float = 0.1
    max_speed_m_s: float = 5.0
    max_acceleration_m_s2: float = 150.0
    capsule_radius_m: float = 0.009
    max_penetration_m: float = 0.015
    penetration_window_s: float = 0.3
    inactive_window_s: float = 2.0
    inactive_finger_range_rad: float = 0.15
    inactive_wrist_travel_m: float = 0.03
    inactive_wrist_rotation_rad: float = 0.15
    dilate_s: float = 0.1
    min_segment_s: float = 2.0

    def __post_init__(self) -> None:
        checks = self.checks
        if isinstance(checks, (str, DropReason)):
            checks = (checks,)
        parsed = []
        valid = [r.value for r in FRAME_CRITERIA]
        for check in checks:
            try:
                reason = check if isinstance(check, DropReason) else DropReason(str(check))
            except ValueError:
                raise ConfigError(unknown_choice('filter check', check, valid)) from None
            if reason is DropReason.TOO_SHORT:
                raise ConfigError(unknown_choice('filter check', reason.value, valid))
            if reason not in parsed:
                parsed.append(reason)
        object.__setattr__(self, 'checks', tuple(r for r in FRAME_CRITERIA if r in parsed))
        for field in dataclasses.fields(self):
            if field.name == 'checks':
                continue
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f'filter config {field.name!r} must be a number, got {value!r}')
            value = float(value)
            allow_zero = field.name in ('dilate_s', 'min_segment_s', 'joint_limit_tolerance_rad',
                                        'max_penetration_m', 'bone_length_floor_m',
                                        'bone_length_window_s', 'joint_limit_window_s',
                                        'fit_residual_window_s', 'max_gap_s',
                                        'penetration_window_s')
            if not math.isfinite(value) or value < 0.0 or (value == 0.0 and not allow_zero):
                bound = '>= 0' if allow_zero else '> 0'
                raise ConfigError(f'filter config {field.name!r} must be finite and {bound}, '
                                  f'got {value!r}')
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FilterConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys.

        Raises:
            ConfigError: An unknown key (the message lists the valid ones) or a bad value.
        """
        kwargs = config_kwargs(cls, values, 'filter')
        if 'checks' in kwargs:
            checks = kwargs['checks']
            if isinstance(checks, str) or not isinstance(checks, Iterable):
                raise ConfigError(f"filter config 'checks' must be a list of criteria, got "
                                  f'{checks!r}')
            kwargs['checks'] = tuple(checks)
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> FilterConfig:
        """Read a config from a YAML file holding a mapping of settings (``yaml.safe_load``).

        Raises:
            ConfigError: Unreadable file, invalid YAML, unknown keys or bad values.
        """
        return config_from_yaml(cls, path, 'filter')

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (the inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out['checks'] = [r.value for r in self.checks]
        return out


@dataclasses.dataclass(frozen=True)
class Segment:
    """Frames ``start`` (inclusive) to ``stop`` (exclusive) of a clip at ``fps``."""

    start: int
    stop: int
    fps: float

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def start_s(self) -> float:
        return self.start / self.fps

    @property
    def stop_s(self) -> float:
        return self.stop / self.fps

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    @property
    def frames(self) -> slice:
        return slice(self.start, self.stop)

    def to_dict(self) -> dict[str, Any]:
        return {'start': self.start, 'stop': self.stop, 'start_s': self.start_s,
                'duration_s': self.duration_s}


@dataclasses.dataclass(frozen=True)
class DroppedSegment:
    """A dropped run of frames, why, and the measured values behind it."""

    segment: Segment
    reasons: tuple[DropReason, ...]
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.segment.to_dict(), 'reasons': [r.value for r in self.reasons],
                'detail': self.detail}


@dataclasses.dataclass(frozen=True)
class FilterResult:
    """Outcome of :func:`filter_motion`.

    Attributes:
        kept: Clean segments, in time order.
        dropped: Dropped runs, in time order; with ``kept`` they cover every frame once.
        flags: Per criterion applied, the (T,) frames it flagged (before dilation).
        num_frames: Frames of the clip.
        fps: Its frame rate.
        bridged_frames: Frames without observations in gaps short enough to keep
            (``max_gap_s``).
    """

    kept: list[Segment]
    dropped: list[DroppedSegment]
    flags: dict[DropReason, np.ndarray]
    num_frames: int
    fps: float
    bridged_frames: int = 0

    @property
    def kept_fraction(self) -> float:
        return sum(s.num_frames for s in self.kept) / self.num_frames

    def kept_motions(self, motion: BimanualMotion) -> list[BimanualMotion]:
        """The kept segments of ``motion`` (the motion that was filtered) as motions."""
        if motion.num_frames != self.num_frames:
            raise DataSourceError(f'motion has {motion.num_frames} frames, the filter result '
                                  f'{self.num_frames}')
        return [motion[segment.frames] for segment in self.kept]

    def to_dict(self) -> dict[str, Any]:
        return {
            'num_frames': self.num_frames,
            'fps': self.fps,
            'kept': [s.to_dict() for s in self.kept],
            'dropped': [d.to_dict() for d in self.dropped],
            'flagged_frames': {r.value: int(f.sum()) for r, f in self.flags.items()},
            'bridged_frames': self.bridged_frames,
        }


@dataclasses.dataclass
class _Flag:
    """One criterion's per-frame verdict, and how to say what it found.

    Attributes:
        flagged: (T,) bool.
        value: (T,) how bad each frame is (the dropped run's worst frame is described).
        describe: What was found at a frame: the hand, the joint, keypoint or bone, the value
            and its bound.
    """

    flagged: np.ndarray
    value: np.ndarray
    describe: Callable[[int], str]


# ---------------------------------------------------------------------------- criteria

_AXES = ('flexion', 'abduction', 'twist')


def _hand(side: int) -> str:
    return HandSide(int(side)).name.lower()


def _joint_name(row: int) -> str:
    """Anatomical name of a ``hand_pose`` row: the keypoint at the joint (``index_pip``)."""
    return KEYPOINT_NAMES[KEYPOINT_FROM_MANO_JOINT[row + 1]]


def _bone_name(bone: int) -> str:
    """A keypoint bone by its two ends (``index_mcp-index_pip``)."""
    return f'{KEYPOINT_NAMES[KEYPOINT_PARENTS[bone + 1]]}-{KEYPOINT_NAMES[bone + 1]}'


def _worst(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the largest finite entry of ``values`` (T, ...) (-inf where none) and its
    flat index into the trailing axes."""
    flat = np.where(np.isfinite(values), values, -np.inf).reshape(values.shape[0], -1)
    index = flat.argmax(axis=1)
    return flat[np.arange(flat.shape[0]), index], index


def _finite_max(values: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """Max over ``axis`` ignoring non-finite entries (0 where nothing is finite)."""
    return np.where(np.isfinite(values), values, -np.inf).max(axis=axis, initial=0.0)


# The 20 keypoint bones: child keypoint k = 1..20 and its parent.
_BONE_CHILDREN = np.arange(1, NUM_KEYPOINTS)
_BONE_PARENTS = np.asarray(KEYPOINT_PARENTS[1:])


def _moving_nanmedian(values: np.ndarray, half_width: int,
                      chunk_frames: int = 4096) -> np.ndarray:
    """(T, ...) median of each column over a centred window of ``2 * half_width + 1`` frames.

    NaN entries are ignored, the window shrinks at the clip's ends, and a window without a
    finite entry gives NaN.
    """
    if half_width <= 0:
        return values.copy()
    pad = [(half_width, half_width)] + [(0, 0)] * (values.ndim - 1)
    padded = np.pad(values, pad, constant_values=np.nan)  # (T + 2 h, ...)
    windows = np.lib.stride_tricks.sliding_window_view(
        padded, 2 * half_width + 1, axis=0)  # (T, ..., 2 h + 1), a view
    out = np.empty_like(values)
    with warnings.catch_warnings():  # all-NaN windows (long dropouts) give NaN quietly
        warnings.simplefilter('ignore', RuntimeWarning)
        for start in range(0, values.shape[0], chunk_frames):
            out[start:start + chunk_frames] = np.nanmedian(
                windows[start:start + chunk_frames], axis=-1)
    return out


def _unobserved(observed: np.ndarray, invalid: np.ndarray, fps: float, config: FilterConfig,
                absent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames without observations, per hand, and which of them are bridged; a hand
    ``absent`` (2,) from the whole clip is never missing (nothing was to be observed).

    Returns:
        (T, 2) bool hands without observations, (T,) bool frames flagged (a gap longer than
        ``max_gap_s`` or at an end of the clip), (T,) bool frames bridged.
    """
    missing = ~np.isfinite(observed).all(axis=(-2, -1))  # (T, 2)
    missing[:, absent] = False
    if not missing.any():  # no observations to tell the hands apart: both, where invalid
        missing = np.repeat(invalid[:, None], 2, axis=1)
        missing[:, absent] = False
    any_missing = missing.any(axis=1)
    longest = int(math.floor(config.max_gap_s * fps + 1e-9))
    bridged = np.zeros_like(any_missing)
    for start, stop, gap in _runs(any_missing):
        if gap and start > 0 and stop < any_missing.shape[0] and stop - start <= longest:
            bridged[start:stop] = True
    return missing, any_missing & ~bridged, bridged


def _non_finite(missing: np.ndarray, flagged: np.ndarray, observed_given: bool, fps: float,
                config: FilterConfig) -> _Flag:
    def describe(frame: int) -> str:
        run = _run_at(flagged, frame)
        count = run.stop - run.start
        if run.start == 0 or run.stop == flagged.shape[0]:
            why = 'at an end of the clip'
        else:
            why = f'longer than {config.max_gap_s:g} s'
        what = 'keypoints' if observed_given else 'source data'
        text = f'a gap of {count} frame(s) ({count / fps:.2f} s) without {what}, {why}'
        if observed_given:
            lost = missing[run]
            hands = [f'{_hand(side)} {int(lost[:, side].sum())}' for side in HandSide
                     if lost[:, side].any()]
            text += f' (frames lost per hand: {", ".join(hands)})'
        return text

    return _Flag(flagged, flagged.astype(float), describe)


def _run_at(mask: np.ndarray, frame: int) -> slice:
    """The maximal run of True in ``mask`` through ``frame``."""
    start = frame
    while start > 0 and mask[start - 1]:
        start -= 1
    stop = frame + 1
    while stop < mask.shape[0] and mask[stop]:
        stop += 1
    return slice(start, stop)


def _bone_drift(keypoints: np.ndarray, fps: float, config: FilterConfig) -> _Flag:
    lengths = bone_lengths(keypoints)  # (T, 2, 20), NaN where unobserved
    lengths = np.where(np.isfinite(lengths), lengths, np.nan)
    with warnings.catch_warnings():  # a bone never observed has no median: it flags nothing
        warnings.simplefilter('ignore', RuntimeWarning)
        median = np.nanmedian(lengths, axis=0)  # (2, 20)
    half_width = int(round(config.bone_length_window_s * fps / 2.0))
    local = _moving_nanmedian(lengths, half_width)  # (T, 2, 20)
    local[np.isnan(lengths)] = np.nan  # a bone not observed in a frame cannot drift there
    offset = np.abs(local - median)  # (T, 2, 20) metres, NaN where unobserved
    limit = np.maximum(config.max_bone_length_deviation * median, config.bone_length_floor_m)
    with np.errstate(invalid='ignore'):
        over = offset > limit  # NaN compares False
        relative = offset / np.maximum(median, 1e-6)
    value, index = _worst(np.where(over, relative, np.nan))

    def describe(frame: int) -> str:
        side, bone = np.unravel_index(index[frame], (2, NUM_KEYPOINTS - 1))
        return (f'{_hand(side)} bone {_bone_name(bone)} {local[frame, side, bone] * 1000:.0f} '
                f'mm ({config.bone_length_window_s:g} s moving median of the raw keypoints), '
                f'{relative[frame, side, bone]:.0%} off its clip median '
                f'{median[side, bone] * 1000:.0f} mm (limit '
                f'{config.max_bone_length_deviation:.0%}, at least '
                f'{config.bone_length_floor_m * 1000:g} mm)')

    return _Flag(over.any(axis=(1, 2)), value, describe)


def _fit_residual(keypoints: np.ndarray, observed: np.ndarray, fps: float,
                  config: FilterConfig) -> _Flag:
    residual = np.linalg.norm(keypoints - observed, axis=-1)  # (T, 2, 21), NaN unobserved
    half_width = int(round(config.fit_residual_window_s * fps / 2.0))
    local = _moving_nanmedian(residual, half_width)
    local[np.isnan(residual)] = np.nan
    with np.errstate(invalid='ignore'):
        over = local > config.max_fit_residual_m
    value, index = _worst(np.where(over, local, np.nan))

    def describe(frame: int) -> str:
        side, point = np.unravel_index(index[frame], (2, NUM_KEYPOINTS))
        return (f'{_hand(side)} {KEYPOINT_NAMES[point]} observed '
                f'{local[frame, side, point] * 1000:.0f} mm from the fitted hand '
                f'({config.fit_residual_window_s:g} s moving median), above '
                f'{config.max_fit_residual_m * 1000:g} mm')

    return _Flag(over.any(axis=(1, 2)), value, describe)


def _speed_and_acceleration(keypoints: np.ndarray, fps: float,
                            config: FilterConfig) -> tuple[_Flag, _Flag]:
    num_frames = keypoints.shape[0]
    speed = np.full((num_frames, 2, NUM_KEYPOINTS), np.nan)
    accel = np.full((num_frames, 2, NUM_KEYPOINTS), np.nan)
    if num_frames >= 2:
        step = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1) * fps  # (T-1, 2, 21) m/s
        # A frame's speed: the faster of its two adjacent steps.
        speed[:-1] = step
        speed[1:] = np.fmax(speed[1:], step)
    if num_frames >= 3:
        second = keypoints[2:] - 2.0 * keypoints[1:-1] + keypoints[:-2]  # (T-2, 2, 21, 3)
        accel[1:-1] = np.linalg.norm(second, axis=-1) * fps * fps
    flags = []
    for values, limit, what, unit in ((speed, config.max_speed_m_s, 'speed', 'm/s'),
                                      (accel, config.max_acceleration_m_s2, 'acceleration',
                                       'm/s^2')):
        worst, index = _worst(values)
        flagged = worst > limit

        def describe(frame: int, index=index, values=values, limit=limit, what=what,
                     unit=unit) -> str:
            side, point = np.unravel_index(index[frame], (2, NUM_KEYPOINTS))
            return (f'{_hand(side)} {KEYPOINT_NAMES[point]} {what} '
                    f'{values[frame, side, point]:.3g} {unit} above {limit:g} {unit}')

        flags.append(_Flag(flagged, np.where(flagged, worst, 0.0), describe))
    return flags[0], flags[1]


def _segment_distances(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray,
                       q2: np.ndarray) -> np.ndarray:
    """Closest distance between segments p1-q1 and p2-q2 (broadcast over leading axes)."""
    d1 = q1 - p1
    d2 = q2 - p2
    r = p1 - p2
    a = np.einsum('...i,...i->...', d1, d1)
    e = np.einsum('...i,...i->...', d2, d2)
    b = np.einsum('...i,...i->...', d1, d2)
    c = np.einsum('...i,...i->...', d1, r)
    f = np.einsum('...i,...i->...', d2, r)
    tiny = 1e-12
    a_safe = np.maximum(a, tiny)
    e_safe = np.maximum(e, tiny)
    denom = a * e - b * b
    s = np.where(denom > tiny * np.maximum(a * e, tiny),
                 np.clip((b * f - c * e) / np.maximum(denom, tiny), 0.0, 1.0), 0.0)
    t = (b * s + f) / e_safe
    s = np.where(t < 0.0, np.clip(-c / a_safe, 0.0, 1.0),
                 np.where(t > 1.0, np.clip((b - c) / a_safe, 0.0, 1.0), s))
    t = np.clip(t, 0.0, 1.0)
    # Degenerate segments (points): the closest point of the other segment to it.
    point2 = e <= tiny
    s = np.where(point2, np.clip(-c / a_safe, 0.0, 1.0), s)
    t = np.where(point2, 0.0, t)
    point1 = a <= tiny
    s = np.where(point1, 0.0, s)
    t = np.where(point1, np.clip(f / e_safe, 0.0, 1.0), t)
    closest1 = p1 + s[..., None] * d1
    closest2 = p2 + t[..., None] * d2
    return np.linalg.norm(closest1 - closest2, axis=-1)


def _interpenetration(keypoints: np.ndarray, fps: float, config: FilterConfig,
                      chunk_frames: int = 256) -> _Flag:
    num_frames = keypoints.shape[0]
    depth = np.zeros(num_frames)
    pair = np.zeros(num_frames, dtype=np.int64)  # left bone * 20 + right bone
    reach = 2.0 * config.capsule_radius_m
    for start in range(0, num_frames, chunk_frames):
        kp = keypoints[start:start + chunk_frames]  # (C, 2, 21, 3)
        # Cheap rejection: hands whose bounding boxes are apart by more than 2 r cannot touch.
        lo, hi = kp.min(axis=2), kp.max(axis=2)  # (C, 2, 3)
        gap = np.maximum(lo[:, 0] - hi[:, 1], lo[:, 1] - hi[:, 0]).max(axis=-1)  # (C,)
        near = np.flatnonzero(~(gap > reach))
        if near.size == 0:
            continue
        kp = kp[near]
        left_p = kp[:, 0, _BONE_PARENTS][:, :, None]  # (n, 20, 1, 3)
        left_q = kp[:, 0, _BONE_CHILDREN][:, :, None]
        right_p = kp[:, 1, _BONE_PARENTS][:, None]  # (n, 1, 20, 3)
        right_q = kp[:, 1, _BONE_CHILDREN][:, None]
        distance = _segment_distances(left_p, left_q, right_p, right_q)  # (n, 20, 20)
        worst, index = _worst(reach - distance)
        depth[start + near] = np.maximum(worst, 0.0)
        pair[start + near] = index
    half_width = int(round(config.penetration_window_s * fps / 2.0))
    local = _moving_nanmedian(depth, half_width)  # (T,)

    def describe(frame: int) -> str:
        left, right = np.unravel_index(pair[frame], (NUM_KEYPOINTS - 1, NUM_KEYPOINTS - 1))
        return (f'left bone {_bone_name(left)} and right bone {_bone_name(right)} overlap by '
                f'{local[frame] * 1000:.1f} mm ({config.penetration_window_s:g} s moving '
                f'median), above {config.max_penetration_m * 1000:g} mm (bone capsules r = '
                f'{config.capsule_radius_m * 1000:g} mm)')

    return _Flag(local > config.max_penetration_m, local, describe)


def _window_span(values: np.ndarray, window: int) -> np.ndarray:
    """(T, ...) max - min of each column over a centred window of ``window`` frames."""
    from scipy.ndimage import maximum_filter1d, minimum_filter1d

    return (maximum_filter1d(values, size=window, axis=0, mode='nearest')
            - minimum_filter1d(values, size=window, axis=0, mode='nearest'))


def _inactivity(motion: BimanualMotion, config: FilterConfig) -> _Flag:
    from handx_gen.hand.rotations import axis_angle_to_matrix

    num_frames = motion.num_frames
    window = max(2, int(round(config.inactive_window_s * motion.fps)))
    window = min(window, num_frames) if num_frames >= 2 else 1
    finger = axis_angle_to_matrix(np.asarray(motion.hand_pose)).reshape(num_frames, 2, -1)
    wrist_rot = axis_angle_to_matrix(np.asarray(motion.global_orient)).reshape(num_frames, 2, 9)
    wrist_pos = np.asarray(motion.keypoints, dtype=np.float64)[:, :, 0]  # (T, 2, 3)
    finger_range = _window_span(finger, window).max(axis=-1)  # (T, 2)
    rotation_range = _window_span(wrist_rot, window).max(axis=-1)  # (T, 2)
    travel = np.linalg.norm(_window_span(wrist_pos, window), axis=-1)  # (T, 2)
    # Activity relative to each threshold (>= 1 means active), the max over hands and measures.
    activity = np.maximum.reduce([
        finger_range / config.inactive_finger_range_rad,
        rotation_range / config.inactive_wrist_rotation_rad,
        travel / config.inactive_wrist_travel_m,
    ]).max(axis=-1)  # (T,)
    flagged = activity < 1.0

    def describe(frame: int) -> str:
        run = _run_at(flagged, frame)
        return (f'no motion over {config.inactive_window_s:g} s windows (largest change '
                f'{activity[run].max():.0%} of a threshold: finger '
                f'{config.inactive_finger_range_rad:g} rad, wrist '
                f'{config.inactive_wrist_travel_m:g} m / {config.inactive_wrist_rotation_rad:g} '
                f'rad)')

    # The most inactive frame is described (its run's largest change is what is said).
    return _Flag(flagged, 1.0 - np.minimum(activity, 1.0), describe)


def _joint_limits(motion: BimanualMotion, skeletons: Sequence[HandSkeleton],
                  unjudged: np.ndarray, config: FilterConfig) -> _Flag:
    from handx_gen.hand.limits import anatomical_bounds, pose_to_anatomical

    hand_pose = np.asarray(motion.hand_pose, dtype=np.float64)
    angles = np.stack([np.asarray(pose_to_anatomical(hand_pose[:, side], skeletons[side]))
                       for side in HandSide], axis=1)  # (T, 2, 15, 3) radians
    # Frames a reader filled (copies of a neighbour) are no evidence either way; their own
    # verdict comes from the frames around them.
    angles[unjudged] = np.nan
    half_width = int(round(config.joint_limit_window_s * motion.fps / 2.0))
    median = _moving_nanmedian(angles, half_width)  # (T, 2, 15, 3)
    lower, upper = anatomical_bounds()
    low, high = lower - config.joint_limit_tolerance_rad, upper + config.joint_limit_tolerance_rad
    with np.errstate(invalid='ignore'):
        excess = np.maximum(low - median, median - high)  # > 0 outside, NaN unjudged
    value, index = _worst(excess)
    flagged = value > 0.0

    def describe(frame: int) -> str:
        side, row, axis = np.unravel_index(index[frame], excess.shape[1:])
        return (f'{_hand(side)} {_joint_name(row)} {_AXES[axis]} '
                f'{median[frame, side, row, axis]:.2f} rad outside [{low[row, axis]:.2f}, '
                f'{high[row, axis]:.2f}] rad (its range widened by '
                f'{config.joint_limit_tolerance_rad:g} rad; {config.joint_limit_window_s:g} s '
                f'moving median)')

    return _Flag(flagged, np.where(flagged, value, 0.0), describe)


# ---------------------------------------------------------------------------- segmentation


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or not mask.any():
        return mask.copy()
    # 'full' then the centre: 'same' returns the longer of the two, so a clip shorter than
    # the kernel would come back as long as the kernel.
    counts = np.convolve(mask.astype(np.int64), np.ones(2 * radius + 1, dtype=np.int64), 'full')
    return counts[radius:radius + mask.shape[0]] > 0


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    """Maximal runs of equal values: (start, stop, value)."""
    change = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [mask.shape[0]]])
    return [(int(a), int(b), bool(mask[a])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _detail(reason: DropReason, flag: _Flag, frames: slice) -> str:
    """Describe one criterion's flags inside a dropped run (a maximal run of dilated flags
    always contains the flagged frames it grew from): how many, and the worst."""
    hit = flag.flagged[frames]
    count = int(hit.sum())
    values = np.where(hit, flag.value[frames], -np.inf)
    worst = frames.start + int(np.argmax(values))
    return f'{reason.value}: {count} frame(s), {flag.describe(worst)}'


def _default_skeletons() -> tuple[HandSkeleton, HandSkeleton]:
    from handx_gen.hand.skeleton import default_skeleton

    return (default_skeleton(HandSide.LEFT), default_skeleton(HandSide.RIGHT))


def filter_motion(
    motion: BimanualMotion,
    config: FilterConfig | None = None,
    *,
    observed_keypoints: np.ndarray | None = None,
    invalid_frames: np.ndarray | None = None,
    skeletons: Sequence[HandSkeleton] | None = None,
) -> FilterResult:
    """Flag bad frames of a motion and split it into clean segments.

    Args:
        motion: The clip (for a keypoint source, its fit). A hand absent from it
            (``motion.present``) is not judged by any criterion; the present hand is.
        config: Thresholds; defaults if None.
        observed_keypoints: (T, 2, 21, 3) raw observations of a keypoint source (may hold
            NaN). When given, frames without observations are found per hand, the fit's
            residual is judged, and (if asked for) raw bone-length drift; every other
            criterion judges the motion, leaving out the frames without observations.
        invalid_frames: (T,) bool frames whose source data were not finite (a reader filled
            them); flagged ``NON_FINITE`` unless bridged (``max_gap_s``).
        skeletons: (left, right) skeletons of the motion (the joint angles are measured in
            their frames); default skeletons if None.

    Returns:
        The :class:`FilterResult`.

    Raises:
        DataSourceError: ``observed_keypoints`` or ``invalid_frames`` of the wrong shape.
    """
    config = FilterConfig() if config is None else config
    num_frames = motion.num_frames
    fps = motion.fps
    keypoints = np.asarray(motion.keypoints, dtype=np.float64)  # (T, 2, 21, 3)
    observed = keypoints
    if observed_keypoints is not None:
        observed = np.asarray(observed_keypoints, dtype=np.float64)
        if observed.shape != keypoints.shape:
            raise DataSourceError(f'observed_keypoints must have shape {keypoints.shape}, got '
                                  f'{observed.shape}')
    invalid = np.zeros(num_frames, dtype=bool)
    if invalid_frames is not None:
        mask = np.asarray(invalid_frames)
        if mask.shape != (num_frames,):
            raise DataSourceError(f'invalid_frames must have shape ({num_frames},), got '
                                  f'{mask.shape}')
        invalid |= mask.astype(bool)
    skeletons = _default_skeletons() if skeletons is None else tuple(skeletons)
    absent = ~np.asarray(motion.present)  # (2,)
    if absent.any():  # a hand absent from the clip is judged nowhere: its data are a stand-in
        keypoints = keypoints.copy()
        keypoints[:, absent] = np.nan
        observed = observed.copy()
        observed[:, absent] = np.nan

    missing, unobserved, bridged = _unobserved(observed, invalid, fps, config, absent)
    # The motion as judged: frames without observations that are not bridged (filled copies
    # of a neighbour) are no evidence either way.
    judged = keypoints.copy()
    judged[unobserved] = np.nan
    flags: dict[DropReason, _Flag] = {}
    checks = config.checks
    if DropReason.NON_FINITE in checks:
        flags[DropReason.NON_FINITE] = _non_finite(missing, unobserved,
                                                   observed_keypoints is not None, fps, config)
    if DropReason.JOINT_LIMITS in checks:
        flags[DropReason.JOINT_LIMITS] = _joint_limits(motion, skeletons, unobserved, config)
    if DropReason.BONE_LENGTH_DRIFT in checks:
        flags[DropReason.BONE_LENGTH_DRIFT] = _bone_drift(observed, fps, config)
    if DropReason.FIT_RESIDUAL in checks:  # nothing to compare with but observations
        flags[DropReason.FIT_RESIDUAL] = (
            _fit_residual(judged, observed, fps, config) if observed_keypoints is not None
            else _Flag(np.zeros(num_frames, dtype=bool), np.zeros(num_frames), str))
    if DropReason.VELOCITY_SPIKE in checks or DropReason.ACCELERATION_SPIKE in checks:
        speed, accel = _speed_and_acceleration(judged, fps, config)
        if DropReason.VELOCITY_SPIKE in checks:
            flags[DropReason.VELOCITY_SPIKE] = speed
        if DropReason.ACCELERATION_SPIKE in checks:
            flags[DropReason.ACCELERATION_SPIKE] = accel
    if DropReason.INTERPENETRATION in checks:
        flags[DropReason.INTERPENETRATION] = _interpenetration(keypoints, fps, config)
    if DropReason.INACTIVE in checks:
        flags[DropReason.INACTIVE] = _inactivity(motion, config)

    radius = int(round(config.dilate_s * fps))
    dilated = {reason: _dilate(flag.flagged, radius) for reason, flag in flags.items()}
    bad = np.zeros(num_frames, dtype=bool)
    for mask in dilated.values():
        bad |= mask
    min_frames = max(1, math.ceil(config.min_segment_s * fps - 1e-9))

    kept: list[Segment] = []
    dropped: list[DroppedSegment] = []
    for start, stop, is_bad in _runs(bad):
        segment = Segment(start, stop, fps)
        frames = segment.frames
        if not is_bad:
            if segment.num_frames >= min_frames:
                kept.append(segment)
            else:
                dropped.append(DroppedSegment(
                    segment, (DropReason.TOO_SHORT,),
                    f'too_short: clean run of {segment.duration_s:.2f} s < min_segment_s '
                    f'{config.min_segment_s:g} s'))
            continue
        reasons = tuple(r for r in FRAME_CRITERIA if r in dilated and dilated[r][frames].any())
        detail = '; '.join(_detail(r, flags[r], frames) for r in reasons)
        dropped.append(DroppedSegment(segment, reasons, detail))
    return FilterResult(
        kept=kept,
        dropped=dropped,
        flags={reason: flag.flagged.copy() for reason, flag in flags.items()},
        num_frames=num_frames,
        fps=fps,
        bridged_frames=int(bridged.sum()),
    )


def filter_reading(reading: SourceReading, config: FilterConfig | None = None) -> FilterResult:
    """:func:`filter_motion` of a source reading, using its observations and invalid frames."""
    return filter_motion(
        reading.motion,
        config,
        observed_keypoints=reading.observed_keypoints,
        invalid_frames=reading.invalid_frames,
        skeletons=reading.skeletons,
    )
