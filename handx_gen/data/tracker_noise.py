"""A hand tracker's view of a clean motion: the errors real keypoint trackers make, seeded.

What real trackers get wrong (measured on monocular and RGB-D hand trackers, the kind that
feed ``handx data convert``), and how :func:`track` imitates each, per hand:

* **depth along the view axis.** A single camera judges depth worst: offsets of keypoints
  from the wrist along the camera's view axis come out scaled, by a per-clip bias
  (``depth_scale_bias``: a factor drawn in ``1 +- bias``) that drifts slowly
  (``depth_scale_drift``, a smooth random process of that standard deviation and a
  correlation time of ``depth_drift_time_s``). A bone across the view keeps its length; a bone
  along it looks tens of percent longer or shorter, so bone lengths vary with the hand's
  orientation. The view axis is a world direction (``view_axis``; default: a camera in front
  of the person, looking along y).
* **jitter**: independent Gaussian noise of ``jitter_m`` per axis on every keypoint, every
  frame.
* **single-frame glitches** (Poisson, ``glitch_rate_hz``): for one frame either the whole
  hand or one finger's four keypoints jump ``glitch_range_m`` in a random direction and come
  back the next frame.
* **dropouts** (Poisson, ``dropout_rate_hz``): the hand is lost for ``dropout_frames`` frames
  (NaN keypoints).
* **a hand missing for stretches** (Poisson, ``missing_rate_hz``): lost for
  ``missing_range_s`` seconds, as when it leaves the view or is hidden by the other.
* **wrist-centred output** (``wrist_centred``): each hand's keypoints relative to its own
  observed wrist, so where the hands are is not in the data (read them with
  ``handx data convert --frame wrist``).

Fast real motion is not an error and is left alone: fingers fold 40 degrees between two
frames at 30 fps in real recordings, and the clean motion keeps whatever speed it has.

Everything is drawn from one ``numpy`` generator seeded by ``seed``, in a fixed order: the
same motion, config and seed give identical keypoints. :class:`TrackedClip` keeps what was
done (frames of glitches, lost frames, the depth scale), so tests and benchmarks can check a
filter or a fit against it; :meth:`TrackedClip.save` writes a ``keypoints`` source file.

Implausible segments, which a quality filter must drop, are a separate matter:
:func:`inject_implausible` writes one of :class:`Implausible` into a clean motion's keypoints
before the tracker sees them (a finger bent backwards, fingers swapped by the tracker, a hand
teleported, a finger's keypoints written as zeros).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, DataSourceError, unknown_choice
from handx_gen.hand.topology import NUM_KEYPOINTS, Finger, HandSide, finger_keypoints

if TYPE_CHECKING:
    from handx_gen.motion import BimanualMotion

__all__ = [
    'Implausible',
    'TrackedClip',
    'TrackerNoiseConfig',
    'inject_implausible',
    'track',
]


@dataclasses.dataclass(frozen=True)
class TrackerNoiseConfig:
    """How a tracker errs; rates are per hand. Defaults and their grounds:

    Attributes:
        jitter_m: 0.003 m of Gaussian noise per axis per keypoint (a good monocular tracker
            scatters by 2-3 mm; the demo's stream uses 2 mm).
        view_axis: (0, 1, 0): the world direction the camera looks along (a camera in front of
            the person); only its line matters.
        depth_scale_bias: 0.2: each hand's depth scale for the clip is drawn uniformly in
            [0.8, 1.2], so a bone along the view axis is up to 20 % longer or shorter.
        depth_scale_drift: 0.08: standard deviation of the slow drift of that scale about its
            bias.
        depth_drift_time_s: 1.0 s correlation time of the drift.
        glitch_rate_hz: 0.2 single-frame glitches per second per hand.
        glitch_range_m: (0.02, 0.05) m: smallest and largest glitch jump.
        dropout_rate_hz: 0.1 dropouts per second per hand.
        dropout_frames: (1, 3): shortest and longest dropout, frames.
        missing_rate_hz: 0.03 stretches per second per hand with the hand missing.
        missing_range_s: (0.3, 1.0) s: shortest and longest stretch.
        wrist_centred: False: world positions; True: each hand relative to its observed
            wrist.
    """

    jitter_m: float = 0.003
    view_axis: tuple[float, float, float] = (0.0, 1.0, 0.0)
    depth_scale_bias: float = 0.2
    depth_scale_drift: float = 0.08
    depth_drift_time_s: float = 1.0
    glitch_rate_hz: float = 0.2
    glitch_range_m: tuple[float, float] = (0.02, 0.05)
    dropout_rate_hz: float = 0.1
    dropout_frames: tuple[int, int] = (1, 3)
    missing_rate_hz: float = 0.03
    missing_range_s: tuple[float, float] = (0.3, 1.0)
    wrist_centred: bool = False

    def __post_init__(self) -> None:
        for name in ('jitter_m', 'depth_scale_bias', 'depth_scale_drift', 'glitch_rate_hz',
                     'dropout_rate_hz', 'missing_rate_hz'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0.0):
                raise ConfigError(f'tracker noise {name!r} must be a finite number >= 0, got '
                                  f'{value!r}')
            object.__setattr__(self, name, float(value))
        if not self.depth_scale_bias < 1.0:
            raise ConfigError(f"tracker noise 'depth_scale_bias' must be < 1 (a scale stays "
                              f'positive), got {self.depth_scale_bias!r}')
        if not (isinstance(self.depth_drift_time_s, (int, float))
                and math.isfinite(self.depth_drift_time_s) and self.depth_drift_time_s > 0.0):
            raise ConfigError(f"tracker noise 'depth_drift_time_s' must be > 0, got "
                              f'{self.depth_drift_time_s!r}')
        axis = np.asarray(self.view_axis, dtype=np.float64)
        if axis.shape != (3,) or not np.all(np.isfinite(axis)) or not np.linalg.norm(axis) > 0:
            raise ConfigError(f"tracker noise 'view_axis' must be three finite numbers, not "
                              f'all zero, got {self.view_axis!r}')
        object.__setattr__(self, 'view_axis', tuple(float(v) for v in axis))
        for name, cast in (('glitch_range_m', float), ('dropout_frames', int),
                           ('missing_range_s', float)):
            pair = getattr(self, name)
            try:
                low, high = (cast(v) for v in pair)
            except (TypeError, ValueError):
                raise ConfigError(f'tracker noise {name!r} must be a pair (low, high), got '
                                  f'{pair!r}') from None
            if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high) or (
                    cast is int and low < 1):
                raise ConfigError(f'tracker noise {name!r} must be 0 < low <= high, got '
                                  f'{pair!r}')
            object.__setattr__(self, name, (low, high))
        object.__setattr__(self, 'wrist_centred', bool(self.wrist_centred))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TrackerNoiseConfig:
        """Build a config from a mapping, rejecting unknown keys (the message lists them)."""
        return cls(**config_kwargs(cls, values, 'tracker noise'))

    @classmethod
    def clean(cls) -> TrackerNoiseConfig:
        """No noise at all: the tracker reports the motion's keypoints as they are."""
        return cls(jitter_m=0.0, depth_scale_bias=0.0, depth_scale_drift=0.0,
                   glitch_rate_hz=0.0, dropout_rate_hz=0.0, missing_rate_hz=0.0)


@dataclasses.dataclass(frozen=True)
class TrackedClip:
    """A motion as the tracker reported it, and what the tracker did.

    Attributes:
        keypoints: (T, 2, 21, 3) float64, metres, NaN where a hand was lost; world frame, or
            each hand relative to its own observed wrist (``wrist_centred``).
        fps: Frame rate.
        glitches: (T, 2) bool, frames with a single-frame glitch.
        lost: (T, 2) bool, frames where the hand was lost (a dropout or a stretch missing).
        depth_scale: (T, 2) the scale of offsets from the wrist along the view axis.
        wrist_centred: Whether the keypoints are relative to each hand's wrist.
    """

    keypoints: np.ndarray
    fps: float
    glitches: np.ndarray
    lost: np.ndarray
    depth_scale: np.ndarray
    wrist_centred: bool

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    def save(self, path: str | Path) -> Path:
        """Write a ``keypoints`` source file (``keypoints``, ``fps``) that
        ``handx data convert`` reads (with ``--frame wrist`` if wrist-centred)."""
        path = Path(path)
        np.savez(path, keypoints=self.keypoints.astype(np.float32), fps=np.array(self.fps))
        return path


def _smooth_noise(rng: np.random.Generator, num_frames: int, fps: float,
                  time_s: float) -> np.ndarray:
    """(T,) a smooth random process of unit standard deviation and correlation time
    ``time_s``: white noise through a Gaussian filter, rescaled."""
    from scipy.ndimage import gaussian_filter1d

    sigma = max(time_s * fps / 2.0, 0.5)
    pad = int(4 * sigma) + 1
    white = rng.normal(size=num_frames + 2 * pad)
    smooth = gaussian_filter1d(white, sigma, mode='wrap')[pad:pad + num_frames]
    # A Gaussian filter of width sigma leaves white noise of variance 1 / (2 sqrt(pi) sigma).
    return smooth * math.sqrt(2.0 * math.sqrt(math.pi) * sigma)


def _poisson_starts(rng: np.random.Generator, num_frames: int, rate_per_frame: float
                    ) -> np.ndarray:
    """Frames where events start: each frame independently with ``rate_per_frame``."""
    return np.flatnonzero(rng.random(num_frames) < rate_per_frame)


def track(motion: BimanualMotion, config: TrackerNoiseConfig | None = None, *,
          seed: int = 0, keypoints: np.ndarray | None = None) -> TrackedClip:
    """What a hand tracker reports for ``motion`` (see the module docstring).

    Args:
        motion: The clean clip (its keypoints and frame rate are used).
        config: The tracker's errors; defaults if None.
        seed: Seed of every random draw.
        keypoints: (T, 2, 21, 3) keypoints to use instead of the motion's (e.g. after
            :func:`inject_implausible`).

    Returns:
        The :class:`TrackedClip`.

    Raises:
        DataSourceError: ``keypoints`` of another shape than the motion's.
    """
    config = TrackerNoiseConfig() if config is None else config
    clean = np.asarray(motion.keypoints if keypoints is None else keypoints, dtype=np.float64)
    if clean.shape != tuple(motion.keypoints.shape):
        raise DataSourceError(f'keypoints must have shape {tuple(motion.keypoints.shape)}, got '
                              f'{clean.shape}')
    fps = float(motion.fps)
    num_frames = clean.shape[0]
    rng = np.random.default_rng(seed)
    out = clean.copy()
    glitches = np.zeros((num_frames, 2), dtype=bool)
    lost = np.zeros((num_frames, 2), dtype=bool)
    depth_scale = np.ones((num_frames, 2))
    view = np.asarray(config.view_axis) / np.linalg.norm(config.view_axis)
    for side in HandSide:
        hand = out[:, side]  # (T, 21, 3) a view
        bias = 1.0 + rng.uniform(-config.depth_scale_bias, config.depth_scale_bias)
        drift = config.depth_scale_drift * _smooth_noise(rng, num_frames, fps,
                                                         config.depth_drift_time_s)
        scale = np.maximum(bias + drift, 0.2)  # (T,)
        depth_scale[:, side] = scale
        offsets = hand - hand[:, :1]  # (T, 21, 3) from the wrist
        along = offsets @ view  # (T, 21)
        hand += ((scale[:, None] - 1.0) * along)[..., None] * view
        hand += rng.normal(scale=config.jitter_m, size=hand.shape) if config.jitter_m else 0.0
        for frame in _poisson_starts(rng, num_frames, config.glitch_rate_hz / fps):
            direction = rng.normal(size=3)
            jump = rng.uniform(*config.glitch_range_m) * direction / np.linalg.norm(direction)
            if rng.random() < 0.5:
                hand[frame] += jump
            else:
                finger = Finger(int(rng.integers(len(Finger))))
                hand[frame, list(finger_keypoints(finger))] += jump
            glitches[frame, side] = True
        low, high = config.dropout_frames
        for frame in _poisson_starts(rng, num_frames, config.dropout_rate_hz / fps):
            lost[frame:frame + int(rng.integers(low, high + 1)), side] = True
        low_s, high_s = config.missing_range_s
        for frame in _poisson_starts(rng, num_frames, config.missing_rate_hz / fps):
            length = max(1, int(round(rng.uniform(low_s, high_s) * fps)))
            lost[frame:frame + length, side] = True
    if config.wrist_centred:
        out -= out[:, :, :1]
    out[lost] = np.nan
    glitches &= ~lost
    return TrackedClip(keypoints=out, fps=fps, glitches=glitches, lost=lost,
                       depth_scale=depth_scale, wrist_centred=config.wrist_centred)


class Implausible(enum.Enum):
    """Segments no real hand makes, which a quality filter must drop.

    ``BENT_BACK``: the index finger bent 90 degrees backwards at its PIP joint;
    ``SWAPPED``: the tracker swaps the index and little fingers' PIP, DIP and tip;
    ``TELEPORT``: the whole hand 0.3 m away, and back at the end;
    ``ZEROED``: the index finger's PIP, DIP and tip at the wrist (a tracker writing zeros,
    relative to the wrist, for keypoints it did not find).

    A bone longer or shorter than the rest of the clip is not among them: that is what a
    tracker's depth errors do to every bone along the view axis (:func:`track`).
    """

    BENT_BACK = 'bent_back'
    SWAPPED = 'swapped'
    TELEPORT = 'teleport'
    ZEROED = 'zeroed'


def inject_implausible(keypoints: np.ndarray, kind: Implausible | str, side: HandSide,
                       frames: slice) -> np.ndarray:
    """A copy of ``keypoints`` with one implausible segment written into ``frames``.

    Args:
        keypoints: (T, 2, 21, 3) clean keypoints.
        kind: The :class:`Implausible` kind (or its value).
        side: The hand.
        frames: The frames of the segment.

    Returns:
        (T, 2, 21, 3) float64, the segment changed, every other frame as given.

    Raises:
        DataSourceError: An unknown kind, a wrong shape or an empty segment.
    """
    if not isinstance(kind, Implausible):
        try:
            kind = Implausible(str(kind))
        except ValueError:
            raise DataSourceError(unknown_choice('implausible segment', kind,
                                                 [k.value for k in Implausible])) from None
    out = np.array(keypoints, dtype=np.float64)
    if out.ndim != 4 or out.shape[1:] != (2, NUM_KEYPOINTS, 3):
        raise DataSourceError(f'keypoints must have shape (T, 2, 21, 3), got {out.shape}')
    hand = out[frames, HandSide(side)]  # (n, 21, 3) a view
    if hand.shape[0] == 0:
        raise DataSourceError(f'the segment {frames} holds no frame of {out.shape[0]}')
    mcp, pip, dip, tip = finger_keypoints(Finger.INDEX)
    if kind is Implausible.BENT_BACK:
        # Rotate DIP and tip about the PIP by 90 degrees past straight: reflect the middle
        # phalanx's direction to point back along the proximal one, turned 90 degrees away
        # from the palm side of the finger.
        proximal = hand[:, pip] - hand[:, mcp]
        proximal /= np.linalg.norm(proximal, axis=-1, keepdims=True)
        palm_normal = np.cross(hand[:, finger_keypoints(Finger.LITTLE)[0]] - hand[:, mcp],
                               hand[:, 0] - hand[:, mcp])  # palm side, right hand
        palm_normal /= np.linalg.norm(palm_normal, axis=-1, keepdims=True)
        back = -palm_normal if HandSide(side) is HandSide.RIGHT else palm_normal
        back = back - np.sum(back * proximal, axis=-1, keepdims=True) * proximal
        back /= np.linalg.norm(back, axis=-1, keepdims=True)
        lengths = [np.linalg.norm(hand[:, b] - hand[:, a], axis=-1, keepdims=True)
                   for a, b in ((pip, dip), (dip, tip))]
        hand[:, dip] = hand[:, pip] + lengths[0] * back
        hand[:, tip] = hand[:, dip] + lengths[1] * back
    elif kind is Implausible.SWAPPED:
        little = finger_keypoints(Finger.LITTLE)
        index_part, little_part = [pip, dip, tip], list(little[1:])
        hand[:, index_part + little_part] = hand[:, little_part + index_part]
    elif kind is Implausible.TELEPORT:
        hand += np.array([0.0, 0.0, 0.3])
    else:  # ZEROED
        hand[:, [pip, dip, tip]] = hand[:, :1]
    return out
