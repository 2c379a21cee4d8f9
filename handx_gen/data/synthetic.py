"""The synthetic bimanual corpus: clips composed from motion-type primitives, built in parallel.

A clip is 2-3 primitives (:mod:`handx_gen.data.synth_base`; the motion types live in
:mod:`handx_gen.data.synth_gestures` and :mod:`handx_gen.data.synth_interactions`) joined by
smooth transitions. Two seeds decide a clip:

* the **composition seed** chooses which motion types, in which order. Several clips share one
  (:attr:`SynthConfig.clips_per_composition`), and the train/val/test split is a hash of it, so
  a composition never appears in two splits;
* the **clip seed** draws the variation: hand size, handedness, start posture, per primitive
  tempo, amplitude, repetitions and a timing warp, and the transition lengths. Each primitive
  gets its own generator derived from the clip seed and its slot.

Composition (:func:`synthesize_clip`):

1. each primitive is built with a :class:`~handx_gen.data.synth_base.SynthContext` whose
   ``start_angles`` are the previous primitive's final posture (a drawn relaxed posture for the
   first), then time-warped by a smooth monotone map (timing jitter; its plan frames follow);
2. consecutive primitives are joined by a transition of ``transition_s`` seconds: joint angles
   blend linearly in angle space and wrist orientations by slerp, both with a minimum-jerk
   profile, wrist positions along a minimum-jerk path. Where the hands touch at either end of a
   transition they first move apart (a smooth retreat, the fingers and wrists turning only once
   the hands have separated), and every transition is checked with the surface proxy of
   :mod:`handx_gen.annotate.surface`: the hands keep a clearance, so a transition adds neither
   overlap nor unplanned contacts; one that comes too close is redone with a larger, slower
   retreat;
3. plan entries are shifted into clip frames, clips longer than ``clip_duration_s`` drop their
   last primitive (down to the minimum count) or are cut; angles become MANO ``hand_pose``
   through :func:`~handx_gen.hand.limits.anatomical_to_pose` with the clip's skeletons, wrist
   poses become ``global_orient`` and ``transl``.

Angles stay inside the anatomical ranges: primitives keep them there (checked here), and the
blends are convex combinations of in-range angles.

Corpus (:func:`build_corpus`): one ``handx-motion/1`` file per clip under
``DIR/<split>/shard-NNNNN/clip-NNNNNNN.npz`` (shards of :attr:`SynthConfig.clips_per_shard`
clips by clip number), ``DIR/config.yaml`` (the config with the motion types resolved, enough
to rebuild) and ``DIR/index.json`` (one row per clip: file, split, frames, motion types,
seeds, the file's SHA-256), written last; the corpus is built in a hidden folder beside
``DIR`` and moved into place once complete, so an interrupted run leaves nothing in ``DIR``.
Worker processes (``spawn``, so safe anywhere) build
and write clips themselves; the parent keeps only index rows. Every clip is a function of the
config, the corpus seed and its number, and files are written byte-deterministically, so the
corpus does not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import importlib
import json
import math
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.annotate.surface import (
    ContactConfig,
    hand_surface,
    part_distance,
    part_distance_matrix,
)
from handx_gen.config import config_from_yaml, config_kwargs
from handx_gen.data.plan import (
    ClipPlan,
    FingerAction,
    PlannedContact,
    PlannedFingerAction,
    PlannedPrimitive,
)
from handx_gen.data.synth_base import PRIMITIVES, PrimitiveClip, SynthContext, get_primitive
from handx_gen.errors import ConfigError, HandxError, SynthesisError, unknown_choice
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.limits import POSE_JOINT_NAMES, anatomical_to_pose, synthesis_bounds
from handx_gen.hand.rotations import (
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
)
from handx_gen.hand.skeleton import DEFAULT_HAND_LENGTH_M, HandSkeleton, default_skeleton
from handx_gen.hand.topology import FINGER_MANO_JOINTS, Finger, HandSide
from handx_gen.motion import BimanualMotion

__all__ = [
    'CORPUS_FORMAT',
    'DEFAULT_PRIMITIVE_MODULES',
    'Annotator',
    'CorpusIndex',
    'CorpusSummary',
    'IndexRow',
    'Split',
    'SynthClip',
    'SynthConfig',
    'SynthesisError',
    'build_corpus',
    'clip_seeds',
    'iter_clips',
    'load_index',
    'load_primitives',
    'resolve_motion_types',
    'split_of',
    'synthesize_clip',
]

CORPUS_FORMAT = 'handx-synth-corpus/1'
INDEX_FILE = 'index.json'
CONFIG_FILE = 'config.yaml'

# Modules whose import registers the motion types (synth_base.register).
DEFAULT_PRIMITIVE_MODULES: tuple[str, ...] = (
    'handx_gen.data.synth_gestures',
    'handx_gen.data.synth_interactions',
)

# (motion, plan) -> (texts, extra annotation entries); must be a module-level function so that
# worker processes can receive it.
Annotator = Callable[[BimanualMotion, ClipPlan], tuple[tuple[str, ...], dict[str, Any]]]

_ANGLE_TOLERANCE_RAD = 1e-6  # primitives' angles may exceed the ranges by rounding only
# A transition's change of a finger's total flexion (sum over its three joints) that the plan
# records as bend/extend, when all three joints move the same way (or barely move).
_TRANSITION_ACTION_MIN_RAD = math.radians(30.0)
_TRANSITION_JOINT_STILL_RAD = math.radians(5.0)
_TRANSITION_RETRIES = 2  # redo a transition whose hands come too close, retreat doubled
_TRANSITION_SLACK_M = 0.001  # tolerance of the transition clearance


class Split(str, enum.Enum):
    TRAIN = 'train'
    VAL = 'val'
    TEST = 'test'


# ---------------------------------------------------------------------------- config


def _pair(name: str, value: object, kind: type, lower: float, upper: float = math.inf
          ) -> tuple[Any, Any]:
    """A (low, high) pair of ``kind`` within [lower, upper] with low <= high."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f'synth config {name!r} must be a [low, high] pair, got {value!r}')
    out = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or (
                kind is int and not float(item).is_integer()):
            raise ConfigError(f'synth config {name!r} must hold {kind.__name__} values, got '
                              f'{value!r}')
        item = kind(item)
        if not math.isfinite(item) or not lower <= item <= upper:
            raise ConfigError(f'synth config {name!r} values must be in [{lower}, {upper}], got '
                              f'{value!r}')
        out.append(item)
    if out[0] > out[1]:
        raise ConfigError(f'synth config {name!r} must be [low, high] with low <= high, got '
                          f'{value!r}')
    return out[0], out[1]


def _number(name: str, value: object, lower: float, upper: float = math.inf, *,
            open_lower: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'synth config {name!r} must be a number, got {value!r}')
    value = float(value)
    low_ok = value > lower if open_lower else value >= lower
    if not math.isfinite(value) or not low_ok or value > upper:
        bracket = '(' if open_lower else '['
        raise ConfigError(f'synth config {name!r} must be in {bracket}{lower}, {upper}], got '
                          f'{value!r}')
    return value


def _count(name: str, value: object, lower: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lower:
        raise ConfigError(f'synth config {name!r} must be an integer >= {lower}, got {value!r}')
    return int(value)


def _names(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f'synth config {name!r} must be a list of names, got {value!r}')
    return tuple(dict.fromkeys(value))  # de-duplicated, order kept


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Settings of the synthetic corpus. Defaults and why:

    Attributes:
        fps: 30 frames per second (HandX's rate).
        clip_duration_s: (4, 12) s. Clips are composed until they reach the lower bound (up
            to the largest primitive count); above the upper bound the last primitive is
            dropped (down to the smallest count, or further when it would start past the
            bound) and a clip still too long is cut inside its last primitive.
        primitives_per_clip: (2, 3) primitives per clip, drawn by the composition seed.
        transition_s: (0.4, 0.8) s between primitives: a comfortable re-posture of the hand
            and a wrist movement of 10-30 cm at peak speeds under 1.5 m/s.
        hand_length_mean_m, hand_length_std_m: N(0.185, 0.01) m wrist to middle fingertip,
            the adult distribution between the US Army female and male medians (Greiner 1991),
            the same for both hands of a clip.
        hand_length_range_m: (0.165, 0.205) m, where the drawn length is clipped (two standard
            deviations).
        tempo: (0.8, 1.25), speed factors drawn log-uniformly per primitive (durations divide
            by it), symmetric about 1 in ratio.
        amplitude: (0.8, 1.2), size factor of the movement per primitive.
        repetitions: (1, 4), repetitions of a repeated action per primitive.
        timing_jitter: 0.06: local speed varies by up to +-6 % within a primitive through a
            smooth monotone time warp (one or two slow/fast phases), so repetitions and
            approaches are not metronomic.
        left_dominant_fraction: 0.12: left-handed people are about 10-13 % of adults; this
            fraction of clips lead with the left hand.
        motion_types: Motion types to draw from; empty means every registered type.
        split_fractions: (0.8, 0.1, 0.1) of compositions in train, val, test.
        clips_per_composition: 4 clips (variations) per composition seed.
        clips_per_shard: 1000 clip files per shard folder, by clip number.
        transition_clearance_m: 0.015 m between the hands' surface proxies
            (:mod:`handx_gen.annotate.surface`; the ``apart_gap_m`` of its ContactConfig,
            "clearly not touching"). Hands closer than this at either end of a transition
            (touching) first move apart; in between, the hands keep at least this distance
            (or the smaller distance of the ends, interpolated), so transitions add neither
            overlap nor unplanned contacts.
        transition_retreat_m: 0.06 m that each wrist moves away from the other hand at the
            middle of a transition from or to touching hands (doubled, up to twice, for a
            transition that still comes too close).
        primitive_modules: Modules imported (also in every worker process) to register the
            motion types.
    """

    fps: float = 30.0
    clip_duration_s: tuple[float, float] = (4.0, 12.0)
    primitives_per_clip: tuple[int, int] = (2, 3)
    transition_s: tuple[float, float] = (0.4, 0.8)
    hand_length_mean_m: float = DEFAULT_HAND_LENGTH_M
    hand_length_std_m: float = 0.01
    hand_length_range_m: tuple[float, float] = (0.165, 0.205)
    tempo: tuple[float, float] = (0.8, 1.25)
    amplitude: tuple[float, float] = (0.8, 1.2)
    repetitions: tuple[int, int] = (1, 4)
    timing_jitter: float = 0.06
    left_dominant_fraction: float = 0.12
    motion_types: tuple[str, ...] = ()
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    clips_per_composition: int = 4
    clips_per_shard: int = 1000
    transition_clearance_m: float = 0.015
    transition_retreat_m: float = 0.06
    primitive_modules: tuple[str, ...] = DEFAULT_PRIMITIVE_MODULES

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        put('fps', _number('fps', self.fps, 0.0, 1000.0, open_lower=True))
        put('clip_duration_s', _pair('clip_duration_s', self.clip_duration_s, float, 0.1))
        put('primitives_per_clip', _pair('primitives_per_clip', self.primitives_per_clip, int, 1,
                                         16))
        put('transition_s', _pair('transition_s', self.transition_s, float, 0.0, 10.0))
        put('hand_length_range_m', _pair('hand_length_range_m', self.hand_length_range_m, float,
                                         0.05, 0.5))
        put('hand_length_mean_m', _number('hand_length_mean_m', self.hand_length_mean_m,
                                          *self.hand_length_range_m))
        put('hand_length_std_m', _number('hand_length_std_m', self.hand_length_std_m, 0.0, 0.1))
        put('tempo', _pair('tempo', self.tempo, float, 0.1, 10.0))
        put('amplitude', _pair('amplitude', self.amplitude, float, 0.1, 10.0))
        put('repetitions', _pair('repetitions', self.repetitions, int, 1, 100))
        put('timing_jitter', _number('timing_jitter', self.timing_jitter, 0.0, 0.5))
        put('left_dominant_fraction', _number('left_dominant_fraction',
                                              self.left_dominant_fraction, 0.0, 1.0))
        put('motion_types', _names('motion_types', self.motion_types))
        fractions = self.split_fractions
        if isinstance(fractions, Mapping):
            unknown = [key for key in fractions if key not in [s.value for s in Split]]
            if unknown:
                raise ConfigError(unknown_choice('split', unknown[0], [s.value for s in Split]))
            fractions = [fractions.get(s.value, 0.0) for s in Split]
        if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence) or \
                len(fractions) != len(Split):
            raise ConfigError(f"synth config 'split_fractions' must be three fractions (train, "
                              f'val, test), got {self.split_fractions!r}')
        fractions = tuple(_number('split_fractions', f, 0.0, 1.0) for f in fractions)
        if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise ConfigError(f"synth config 'split_fractions' must sum to 1, got {fractions}")
        put('split_fractions', fractions)
        put('clips_per_composition', _count('clips_per_composition', self.clips_per_composition,
                                            1))
        put('clips_per_shard', _count('clips_per_shard', self.clips_per_shard, 1))
        put('transition_clearance_m', _number('transition_clearance_m',
                                              self.transition_clearance_m, 0.0, 1.0))
        put('transition_retreat_m', _number('transition_retreat_m', self.transition_retreat_m,
                                            0.0, 1.0))
        put('primitive_modules', _names('primitive_modules', self.primitive_modules))

    @property
    def split_names(self) -> tuple[str, ...]:
        return tuple(s.value for s in Split)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SynthConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys.

        ``split_fractions`` may be a list (train, val, test) or a mapping by split name.

        Raises:
            ConfigError: An unknown key (the message lists the valid ones) or a bad value.
        """
        return cls(**config_kwargs(cls, values, 'synth'))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> SynthConfig:
        """Read a config from a YAML mapping of settings (``yaml.safe_load``).

        Raises:
            ConfigError: Unreadable file, invalid YAML, unknown keys or bad values.
        """
        return config_from_yaml(cls, path, 'synth')

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (the inverse of :meth:`from_dict`)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = list(value) if isinstance(value, tuple) else value
        out['split_fractions'] = dict(zip(self.split_names, self.split_fractions, strict=True))
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# ---------------------------------------------------------------------------- registry


def load_primitives(modules: Sequence[str] = DEFAULT_PRIMITIVE_MODULES) -> dict[str, Any]:
    """Import the modules that register motion types; return the registry.

    Raises:
        ConfigError: A listed module does not exist (errors inside a module propagate).
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + '.')):
                raise
            raise ConfigError(f'motion-type module {name!r} does not exist') from exc
    return PRIMITIVES


def resolve_motion_types(config: SynthConfig) -> tuple[str, ...]:
    """The motion types a config draws from: its list, or every type its ``primitive_modules``
    register (sorted). Types registered elsewhere in the process are not drawn by default, so
    a corpus depends on its config alone (worker processes import only those modules).

    Raises:
        ConfigError: A listed type is not registered (the message lists the registered ones),
            or the modules register no type at all.
    """
    load_primitives(config.primitive_modules)
    if not config.motion_types:
        names = sorted(name for name, spec in PRIMITIVES.items()
                       if spec.build.__module__ in config.primitive_modules)
        if not names:
            raise ConfigError(f'no motion types are registered by the modules '
                              f'{", ".join(config.primitive_modules) or "(none)"}')
        return tuple(names)
    for name in config.motion_types:
        get_primitive(name)  # raises ConfigError listing the registered types
    return config.motion_types


# ---------------------------------------------------------------------------- seeds, splits


def _seed_int(*words: int) -> int:
    """A 63-bit seed from a SeedSequence over ``words`` (JSON-safe, non-negative)."""
    state = np.random.SeedSequence([int(w) for w in words]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def clip_seeds(seed: int, index: int, clips_per_composition: int = 4) -> tuple[int, int]:
    """(composition seed, clip seed) of clip ``index`` of a corpus built with ``seed``.

    Clips ``k * clips_per_composition ... (k + 1) * clips_per_composition - 1`` share the
    composition seed of composition ``k``.
    """
    composition = index // clips_per_composition
    return _seed_int(seed, 0, composition), _seed_int(seed, 1, index)


def split_of(composition_seed: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> Split:
    """The split of a composition: a hash of its seed mapped onto the split fractions."""
    digest = hashlib.blake2b(str(int(composition_seed)).encode(), digest_size=8).digest()
    u = int.from_bytes(digest, 'big') / 2.0**64  # uniform in [0, 1)
    edge = 0.0
    for split, fraction in zip(Split, fractions, strict=True):
        edge += fraction
        if u < edge:
            return split
    return [s for s, f in zip(Split, fractions, strict=True) if f > 0][-1]  # rounding


# ---------------------------------------------------------------------------- pieces


@dataclasses.dataclass(frozen=True)
class _Piece:
    """One primitive placed in a clip, its frames relative to its own start."""

    name: str
    angles: np.ndarray  # (T, 2, 15, 3)
    R_world_wrist: np.ndarray  # (T, 2, 3, 3)
    p_world_wrist: np.ndarray  # (T, 2, 3)
    primitive: PlannedPrimitive
    contacts: tuple[PlannedContact, ...]
    finger_actions: tuple[PlannedFingerAction, ...]
    transition_frames: int  # length of the transition before it (0 for the first piece)

    @property
    def num_frames(self) -> int:
        return int(self.angles.shape[0])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _check_primitive(name: str, clip: object) -> PrimitiveClip:
    """Validate a primitive's output; angles within rounding of the ranges are clamped."""
    if not isinstance(clip, PrimitiveClip):
        raise SynthesisError(f'motion type {name!r} returned {type(clip).__name__}, expected '
                             'PrimitiveClip')
    angles = np.asarray(clip.angles, dtype=np.float64)
    num_frames = angles.shape[0] if angles.ndim == 4 else -1
    expected = {'angles': (num_frames, 2, 15, 3), 'R_world_wrist': (num_frames, 2, 3, 3),
                'p_world_wrist': (num_frames, 2, 3)}
    arrays = {}
    for field, shape in expected.items():
        arr = np.asarray(getattr(clip, field), dtype=np.float64)
        if arr.shape != shape or num_frames < 2:
            raise SynthesisError(f'motion type {name!r}: {field} has shape {arr.shape}, '
                                 f'expected {shape} with T >= 2 (from angles (T, 2, 15, 3))')
        if not np.all(np.isfinite(arr)):
            raise SynthesisError(f'motion type {name!r}: {field} holds non-finite values')
        arrays[field] = arr
    rot = arrays['R_world_wrist']
    error = np.abs(np.swapaxes(rot, -1, -2) @ rot - np.eye(3)).max()
    if error > 1e-6 or np.any(np.linalg.det(rot) <= 0.0):
        raise SynthesisError(f'motion type {name!r}: R_world_wrist is not a rotation '
                             f'(|R^T R - I| up to {error:.2g})')
    bounds = synthesis_bounds()
    excess = np.maximum(bounds.lower - angles, angles - bounds.upper).max(axis=(0, 1))  # (15,3)
    if excess.max() > _ANGLE_TOLERANCE_RAD:
        joint, axis = np.unravel_index(int(np.argmax(excess)), excess.shape)
        raise SynthesisError(
            f'motion type {name!r}: {POSE_JOINT_NAMES[joint]} '
            f'{("flexion", "abduction", "twist")[axis]} exceeds its range by '
            f'{math.degrees(excess.max()):.2f} deg')
    arrays['angles'] = np.clip(angles, bounds.lower, bounds.upper)
    for entry in (*clip.contacts, *clip.finger_actions):
        if not 0 <= entry.start < entry.stop <= num_frames:
            raise SynthesisError(f'motion type {name!r}: plan entry {entry} lies outside '
                                 f'[0, {num_frames}) or is empty')
    return dataclasses.replace(clip, **arrays)


def _time_warp(num_frames: int, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """(T,) monotone source positions ``s(j)`` with ``s(0) = 0`` and ``s(T-1) = T-1``.

    ``s = (T-1) g(j / (T-1))`` with ``g(x) = x + e sin(2 pi k x) / (2 pi k)``, ``|e| <=
    jitter``, ``k`` in {1, 2}: the local speed ``g' = 1 + e cos(2 pi k x)`` stays within
    ``1 +- jitter``.
    """
    eps = rng.uniform(-jitter, jitter)
    cycles = int(rng.integers(1, 3))
    x = np.arange(num_frames) / max(num_frames - 1, 1)
    g = x + eps * np.sin(2.0 * math.pi * cycles * x) / (2.0 * math.pi * cycles)
    s = g * (num_frames - 1)
    s[0], s[-1] = 0.0, num_frames - 1.0
    return s


def _resample(clip: PrimitiveClip, source: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """Angles, wrist rotations and positions at fractional source frames ``source`` (T,)."""
    i0 = np.minimum(np.floor(source).astype(np.int64), clip.num_frames - 2)
    alpha = source - i0  # (T,)
    i1 = i0 + 1
    a4 = alpha[:, None, None, None]
    angles = (1.0 - a4) * clip.angles[i0] + a4 * clip.angles[i1]
    a2 = alpha[:, None, None]
    position = (1.0 - a2) * clip.p_world_wrist[i0] + a2 * clip.p_world_wrist[i1]
    quat = matrix_to_quaternion(clip.R_world_wrist)  # (T, 2, 4)
    rotation = quaternion_to_matrix(quaternion_slerp(quat[i0], quat[i1], a2))
    nearest = np.round(source).astype(np.int64)
    exact = np.abs(source - nearest) < 1e-9  # keep the primitive's own frames bit for bit
    angles[exact] = clip.angles[nearest[exact]]
    position[exact] = clip.p_world_wrist[nearest[exact]]
    rotation[exact] = clip.R_world_wrist[nearest[exact]]
    return angles, rotation, position


def _warp_interval(source: np.ndarray, start: int, stop: int) -> tuple[int, int]:
    """Frames ``[j0, j1)`` whose source positions lie in ``[start, stop - 1]``; at least one."""
    tol = 1e-9
    j0 = int(np.searchsorted(source, start - tol, side='left'))
    j1 = int(np.searchsorted(source, stop - 1 + tol, side='right'))
    if j1 <= j0:
        j0 = int(np.argmin(np.abs(source - 0.5 * (start + stop - 1))))
        j1 = j0 + 1
    return j0, j1


def _build_piece(name: str, slot: int, clip_seed: int, config: SynthConfig,
                 skeletons: tuple[HandSkeleton, HandSkeleton], dominant: HandSide,
                 start_angles: np.ndarray) -> _Piece:
    spec = get_primitive(name)
    draw = np.random.default_rng(np.random.SeedSequence([clip_seed, 1, slot]))
    tempo = float(math.exp(draw.uniform(*np.log(config.tempo))))
    amplitude = float(draw.uniform(*config.amplitude))
    repetitions = int(draw.integers(config.repetitions[0], config.repetitions[1] + 1))
    transition = 0 if slot == 0 else max(2, int(round(draw.uniform(*config.transition_s)
                                                      * config.fps)))
    ctx = SynthContext(
        rng=np.random.default_rng(np.random.SeedSequence([clip_seed, 2, slot])),
        fps=config.fps, skeletons=skeletons, dominant=dominant, tempo=tempo,
        amplitude=amplitude, repetitions=repetitions, start_angles=start_angles.copy())
    try:
        built = spec.build(ctx)
    except HandxError as exc:
        raise SynthesisError(f'motion type {name!r} (clip seed {clip_seed}): {exc}') from exc
    except Exception as exc:  # a bug in the primitive: keep its traceback, add where
        if hasattr(exc, 'add_note'):  # Python >= 3.11
            exc.add_note(f'while building motion type {name!r} for clip seed {clip_seed}')
        raise
    clip = _check_primitive(name, built)
    source = _time_warp(clip.num_frames, config.timing_jitter, draw)
    angles, rotation, position = _resample(clip, source)

    def warped(entry):
        start, stop = _warp_interval(source, entry.start, entry.stop)
        return dataclasses.replace(entry, start=start, stop=stop)

    params = _jsonable({'tempo': round(tempo, 6), 'amplitude': round(amplitude, 6),
                        'repetitions': repetitions, **dict(clip.params)})
    primitive = PlannedPrimitive(name, spec.category, 0, clip.num_frames, clip.label, params)
    return _Piece(name, angles, rotation, position, primitive,
                  tuple(warped(c) for c in clip.contacts),
                  tuple(warped(f) for f in clip.finger_actions), transition)


# ---------------------------------------------------------------------------- transitions


def _minimum_jerk(s: np.ndarray) -> np.ndarray:
    """The minimum-jerk profile on [0, 1]: zero velocity and acceleration at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (10.0 - 15.0 * s + 6.0 * s**2)


def _to_mano(angles: np.ndarray, rotation: np.ndarray, position: np.ndarray,
             skeletons: Sequence[HandSkeleton]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(global_orient (T,2,3), hand_pose (T,2,15,3), transl (T,2,3)) of angles and wrist poses."""
    hand_pose = np.stack([anatomical_to_pose(angles[:, side], skeletons[side])
                          for side in HandSide], axis=1)
    global_orient = matrix_to_axis_angle(rotation)
    transl = position - np.stack([sk.joints_rest[0] for sk in skeletons])  # wrist = J0 + transl
    return global_orient, hand_pose, transl


def _keypoints(angles: np.ndarray, rotation: np.ndarray, position: np.ndarray,
               skeletons: Sequence[HandSkeleton]) -> np.ndarray:
    """(T, 2, 21, 3) keypoints of angles and wrist poses."""
    global_orient, hand_pose, transl = _to_mano(angles, rotation, position, skeletons)
    return np.stack([forward_kinematics(global_orient[:, s], hand_pose[:, s], transl[:, s],
                                        skeletons[s]) for s in HandSide], axis=1)


def _hand_distance(keypoints: np.ndarray) -> np.ndarray:
    """(T,) signed distance between the two hands' surface proxies, metres (negative: the
    depth of their deepest overlap)."""
    left = hand_surface(keypoints[:, HandSide.LEFT], HandSide.LEFT)
    right = hand_surface(keypoints[:, HandSide.RIGHT], HandSide.RIGHT)
    return part_distance_matrix(left, right).min(axis=(-2, -1))


def _penetration(keypoints: np.ndarray) -> np.ndarray:
    """(T,) deepest inter-hand overlap of the surface proxy, metres (>= 0)."""
    return np.maximum(-_hand_distance(keypoints), 0.0)


def _transition(a: _Piece, b: _Piece, config: SynthConfig,
                skeletons: tuple[HandSkeleton, HandSkeleton]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames joining the end of ``a`` to the start of ``b`` (both excluded).

    The hands must keep apart: their surface distance may not fall below
    ``min(transition_clearance_m, the distance interpolated linearly between the two ends)``
    (less 1 mm), so a transition neither makes the hands overlap nor touch where no contact is
    planned. A transition that breaks this is redone with a larger retreat, re-posturing only
    while the hands are apart, and more slowly; the best attempt is kept.

    Returns:
        angles (n, 2, 15, 3), R_world_wrist (n, 2, 3, 3), p_world_wrist (n, 2, 3), where ``n``
        is ``b.transition_frames`` or longer when a transition had to be slowed down.
    """
    ends = (
        np.stack([a.angles[-1], b.angles[0]]),
        np.stack([a.R_world_wrist[-1], b.R_world_wrist[0]]),
        np.stack([a.p_world_wrist[-1], b.p_world_wrist[0]]),
    )
    end_distance = _hand_distance(_keypoints(*ends, skeletons))  # (2,)
    clearance = config.transition_clearance_m
    close = end_distance < clearance
    wrists = ends[2]  # (2 ends, 2 hands, 3)
    away = wrists - wrists[:, ::-1]  # each wrist minus the other one
    away = np.einsum('e,ehk->hk', close.astype(float) if close.any() else np.ones(2), away)
    norm = np.linalg.norm(away, axis=-1, keepdims=True)
    fallback = np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # left to -x, right to +x
    away = np.where(norm > 1e-6, away / np.maximum(norm, 1e-12), fallback)  # (2, 3)
    # Re-posture (fingers, wrist turn) only once touching hands are apart.
    begin = 0.3 if close[0] else 0.0
    end = 0.7 if close[1] else 1.0
    q_ends = matrix_to_quaternion(ends[1])  # (2, 2, 4)
    retreat = config.transition_retreat_m if close.any() else 0.0
    best = None
    frames = b.transition_frames
    for _ in range(_TRANSITION_RETRIES + 1):
        u = np.arange(1, frames + 1) / (frames + 1)  # (n,)
        pose_s = _minimum_jerk((u - begin) / (end - begin))
        path_s = _minimum_jerk(u)
        bump = np.sin(math.pi * u) ** 2  # zero velocity at both ends
        angles = ends[0][0] + pose_s[:, None, None, None] * (ends[0][1] - ends[0][0])
        rotation = quaternion_to_matrix(
            quaternion_slerp(q_ends[0], q_ends[1], pose_s[:, None, None]))
        position = (ends[2][0] + path_s[:, None, None] * (ends[2][1] - ends[2][0])
                    + retreat * bump[:, None, None] * away[None])
        distance = _hand_distance(_keypoints(angles, rotation, position, skeletons))  # (n,)
        required = np.minimum(clearance, (1.0 - u) * end_distance[0] + u * end_distance[1])
        shortfall = float(np.max(required - distance))
        if best is None or shortfall < best[0]:
            best = (shortfall, angles, rotation, position)
        if shortfall <= _TRANSITION_SLACK_M:
            break
        # Too close: move further apart, re-posture only while apart, and more slowly.
        retreat = max(2.0 * retreat, config.transition_retreat_m)
        begin, end = max(begin, 0.3), min(end, 0.7)
        frames = int(round(frames * 1.5))
    return best[1], best[2], best[3]


def _transition_actions(before: np.ndarray, after: np.ndarray, start: int, stop: int
                        ) -> list[PlannedFingerAction]:
    """Bend/extend of the four fingers between two postures (2, 15, 3), for a transition."""
    actions = []
    for side in HandSide:
        for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
            rows = [joint - 1 for joint in FINGER_MANO_JOINTS[finger]]
            change = after[side, rows, 0] - before[side, rows, 0]  # (3,) flexion change
            total = float(change.sum())
            if abs(total) < _TRANSITION_ACTION_MIN_RAD:
                continue
            agree = np.all((np.sign(change) == np.sign(total))
                           | (np.abs(change) < _TRANSITION_JOINT_STILL_RAD))
            if agree:
                action = FingerAction.BEND if total > 0 else FingerAction.EXTEND
                actions.append(PlannedFingerAction(side, finger, start, stop, action))
    return actions


# ---------------------------------------------------------------------------- clips


@dataclasses.dataclass(frozen=True)
class SynthClip:
    """A synthesized clip and its plan (also stored in the motion's annotation)."""

    motion: BimanualMotion
    plan: ClipPlan


def _relaxed_posture(rng: np.random.Generator) -> np.ndarray:
    """(2, 15, 3) a relaxed hand: fingers slightly curled, more so towards the little finger."""
    angles = np.zeros((2, 15, 3))
    cascade = {'index': 0.0, 'middle': 3.0, 'ring': 6.0, 'little': 9.0}
    for side in HandSide:
        for finger, extra in cascade.items():
            for level, base in zip((1, 2, 3), (10.0, 18.0, 8.0), strict=True):
                row = POSE_JOINT_NAMES.index(f'{finger}{level}')
                angles[side, row, 0] = math.radians(base + extra + rng.normal(0.0, 4.0))
        for level, base in zip((1, 2, 3), (5.0, 10.0, 10.0), strict=True):
            angles[side, POSE_JOINT_NAMES.index(f'thumb{level}'), 0] = math.radians(
                base + rng.normal(0.0, 3.0))
    bounds = synthesis_bounds()
    return np.clip(angles, bounds.lower, bounds.upper)


def _draw_types(rng: np.random.Generator, types: Sequence[str], count: int) -> list[str]:
    """``count`` motion types: distinct where possible, never the same twice in a row."""
    if len(types) >= count:
        return [types[i] for i in rng.permutation(len(types))[:count]]
    out: list[str] = []
    for _ in range(count):
        options = [t for t in types if not out or t != out[-1]] or list(types)
        out.append(options[int(rng.integers(len(options)))])
    return out


def synthesize_clip(config: SynthConfig, composition_seed: int, clip_seed: int, *,
                    motion_types: Sequence[str] | None = None,
                    annotate: Annotator | None = None) -> SynthClip:
    """Compose one clip (see the module docstring).

    Args:
        config: The settings.
        composition_seed: Chooses the motion types and their order.
        clip_seed: Draws the variation.
        motion_types: The types to draw from; default :func:`resolve_motion_types`.
        annotate: Optional ``annotate(motion, plan) -> (texts, extra)``; ``extra`` entries
            join the annotation beside ``'plan'``.

    Returns:
        The motion (annotation ``{'plan': ..., **extra}``, texts from ``annotate``) and plan.

    Raises:
        SynthesisError: A primitive's output is invalid, or ``annotate`` returned something
            else than ``(texts, dict)`` or a ``'plan'`` entry.
        ConfigError: A motion type is not registered.
    """
    types = tuple(motion_types) if motion_types else resolve_motion_types(config)
    composition = np.random.default_rng(np.random.SeedSequence([composition_seed]))
    low, high = config.primitives_per_clip
    count = int(composition.integers(low, high + 1))
    candidates = _draw_types(composition, types, high)

    variation = np.random.default_rng(np.random.SeedSequence([clip_seed, 0]))
    lo, hi = config.hand_length_range_m
    hand_length = float(np.clip(variation.normal(config.hand_length_mean_m,
                                                 config.hand_length_std_m), lo, hi))
    dominant = HandSide.LEFT if variation.random() < config.left_dominant_fraction \
        else HandSide.RIGHT
    skeletons = (default_skeleton(HandSide.LEFT, hand_length),
                 default_skeleton(HandSide.RIGHT, hand_length))
    posture = _relaxed_posture(variation)

    min_frames = config.clip_duration_s[0] * config.fps
    max_frames = int(round(config.clip_duration_s[1] * config.fps))
    pieces: list[_Piece] = []
    length = 0
    for slot, name in enumerate(candidates):
        if len(pieces) >= count and length >= min_frames:
            break
        piece = _build_piece(name, slot, clip_seed, config, skeletons, dominant, posture)
        pieces.append(piece)
        length += piece.num_frames + piece.transition_frames
        posture = piece.angles[-1]
    while len(pieces) > 1 and (length - pieces[-1].num_frames >= max_frames or (
            len(pieces) > low and length > max_frames)):
        dropped = pieces.pop()  # too long: a clip never ends inside a transition
        length -= dropped.num_frames + dropped.transition_frames

    angles, rotation, position = [], [], []
    planned_primitives, contacts, finger_actions = [], [], []
    offset = 0
    for k, piece in enumerate(pieces):
        if k > 0:
            t_angles, t_rotation, t_position = _transition(pieces[k - 1], piece, config,
                                                           skeletons)
            angles.append(t_angles)
            rotation.append(t_rotation)
            position.append(t_position)
            finger_actions.extend(_transition_actions(
                pieces[k - 1].angles[-1], piece.angles[0], offset, offset + len(t_angles)))
            offset += len(t_angles)
        angles.append(piece.angles)
        rotation.append(piece.R_world_wrist)
        position.append(piece.p_world_wrist)
        planned_primitives.append(piece.primitive.shifted(offset))
        contacts.extend(c.shifted(offset) for c in piece.contacts)
        finger_actions.extend(f.shifted(offset) for f in piece.finger_actions)
        offset += piece.num_frames
    angles = np.concatenate(angles)
    rotation = np.concatenate(rotation)
    position = np.concatenate(position)

    num_frames = min(len(angles), max_frames)
    if num_frames < len(angles):  # cut: keep what starts before the cut, clipped
        angles, rotation, position = angles[:num_frames], rotation[:num_frames], \
            position[:num_frames]

        def cut(entries):
            return [dataclasses.replace(e, stop=min(e.stop, num_frames))
                    for e in entries if e.start < num_frames]

        planned_primitives = cut([
            dataclasses.replace(p, params={**p.params, 'cut': True}) if p.stop > num_frames
            else p for p in planned_primitives])
        contacts, finger_actions = cut(contacts), cut(finger_actions)

    plan = ClipPlan(
        seed=int(clip_seed), composition_seed=int(composition_seed), fps=config.fps,
        num_frames=num_frames, primitives=tuple(planned_primitives), contacts=tuple(contacts),
        finger_actions=tuple(sorted(finger_actions, key=lambda f: (f.start, f.side, f.finger))),
        dominant=dominant, hand_scale=hand_length / DEFAULT_HAND_LENGTH_M)
    global_orient, hand_pose, transl = _to_mano(angles, rotation, position, skeletons)
    motion = BimanualMotion.from_mano(config.fps, global_orient, hand_pose, transl,
                                      skeletons=skeletons)
    plan = dataclasses.replace(plan, contacts=_bridge_contacts(plan.contacts, motion.keypoints))
    motion = motion.with_annotation({'plan': plan.to_dict()})
    if annotate is not None:
        motion = _annotated(motion, plan, annotate)
    return SynthClip(motion, plan)


def _bridge_contacts(contacts: Sequence[PlannedContact],
                     keypoints: np.ndarray) -> tuple[PlannedContact, ...]:
    """Join the planned contacts of one pair that a single touch carries across a boundary.

    A touch held through a transition (the thumb resting on the curled index as one primitive
    ends and the next begins) is one event of the shared contact definition
    (:func:`handx_gen.annotate.surface.contact_intervals`: a contact lasts while the parts stay
    within ``apart_gap_m``), but the two primitives plan it as two. Where the parts stay that
    close on every frame between two planned contacts of the same pair, they become one.

    Args:
        contacts: The clip's planned contacts, clip frames.
        keypoints: (T, 2, 21, 3) the clip's keypoints.

    Returns:
        The contacts, joined where one touch spans them, sorted by start.
    """
    apart_m = ContactConfig().apart_gap_m
    joined: list[PlannedContact] = []
    for contact in sorted(contacts, key=lambda c: (c.a, c.b, c.start)):
        previous = joined[-1] if joined else None
        if previous is not None and (previous.a, previous.b) == (contact.a, contact.b):
            gap = slice(previous.stop, max(previous.stop, contact.start))
            if gap.stop == gap.start or _pair_distance(keypoints[gap], contact).max() <= apart_m:
                joined[-1] = dataclasses.replace(previous, stop=max(previous.stop, contact.stop))
                continue
        joined.append(contact)
    return tuple(sorted(joined, key=lambda c: (c.start, c.a, c.b)))


def _pair_distance(keypoints: np.ndarray, contact: PlannedContact) -> np.ndarray:
    """(n,) surface distance of the contact's two parts over (n, 2, 21, 3) keypoints."""
    keypoints = keypoints.astype(np.float64)
    surface_a = hand_surface(keypoints[:, contact.a.side], contact.a.side)
    surface_b = hand_surface(keypoints[:, contact.b.side], contact.b.side)
    return part_distance(surface_a, contact.a.part, surface_b, contact.b.part).distance


def _annotated(motion: BimanualMotion, plan: ClipPlan, annotate: Annotator) -> BimanualMotion:
    result = annotate(motion, plan)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping)):
        raise SynthesisError(f'annotate must return (texts, dict), got {type(result).__name__}')
    texts, extra = result
    if 'plan' in extra:
        raise SynthesisError("annotate must not return a 'plan' entry (the plan is the "
                             "builder's)")
    return BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose, motion.transl,
                          motion.keypoints, texts=tuple(texts),
                          annotation={'plan': plan.to_dict(), **extra})


# ---------------------------------------------------------------------------- corpus


@dataclasses.dataclass(frozen=True)
class IndexRow:
    """One clip of a corpus, as listed in ``index.json``."""

    index: int
    file: str  # relative to the corpus folder, POSIX separators
    split: Split
    num_frames: int
    motion_types: tuple[str, ...]
    seed: int
    composition_seed: int
    dominant: HandSide
    hand_scale: float
    sha256: str  # of the file

    @property
    def clip_id(self) -> str:
        return f'clip-{self.index:07d}'

    def to_dict(self) -> dict[str, Any]:
        return {'id': self.clip_id, 'index': self.index, 'file': self.file,
                'split': self.split.value, 'frames': self.num_frames,
                'motion_types': list(self.motion_types), 'seed': self.seed,
                'composition_seed': self.composition_seed,
                'dominant': self.dominant.name.lower(), 'hand_scale': self.hand_scale,
                'sha256': self.sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexRow:
        return cls(int(data['index']), str(data['file']), Split(data['split']),
                   int(data['frames']), tuple(data['motion_types']), int(data['seed']),
                   int(data['composition_seed']), HandSide[str(data['dominant']).upper()],
                   float(data['hand_scale']), str(data['sha256']))


@dataclasses.dataclass(frozen=True)
class CorpusIndex:
    """The contents of a corpus' ``index.json``."""

    root: Path
    seed: int
    fps: float
    motion_types: tuple[str, ...]
    rows: tuple[IndexRow, ...]

    @property
    def num_frames(self) -> int:
        return sum(row.num_frames for row in self.rows)

    def split(self, split: Split | str) -> tuple[IndexRow, ...]:
        split = Split(split)
        return tuple(row for row in self.rows if row.split is split)

    def path(self, row: IndexRow) -> Path:
        return self.root / row.file


@dataclasses.dataclass(frozen=True)
class CorpusSummary:
    """What :func:`build_corpus` built, and how fast."""

    out_dir: Path
    num_clips: int
    num_frames: int
    split_clips: dict[str, int]
    split_frames: dict[str, int]
    wall_s: float
    workers: int

    @property
    def frames_per_s(self) -> float:
        return self.num_frames / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def clips_per_s(self) -> float:
        return self.num_clips / self.wall_s if self.wall_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {'out_dir': str(self.out_dir), 'clips': self.num_clips,
                'frames': self.num_frames, 'split_clips': dict(self.split_clips),
                'split_frames': dict(self.split_frames), 'wall_s': self.wall_s,
                'workers': self.workers, 'frames_per_s': self.frames_per_s,
                'clips_per_s': self.clips_per_s}


@dataclasses.dataclass(frozen=True)
class _Job:
    index: int
    composition_seed: int
    clip_seed: int
    split: Split
    file: str


class _ClipWriter:
    """Builds and writes clips; one per process."""

    def __init__(self, config: SynthConfig, out_dir: str, annotate: Annotator | None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.annotate = annotate
        self.types = resolve_motion_types(config)

    def __call__(self, job: _Job) -> IndexRow:
        clip = synthesize_clip(self.config, job.composition_seed, job.clip_seed,
                               motion_types=self.types, annotate=self.annotate)
        path = self.out_dir / job.file
        clip.motion.save(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        return IndexRow(job.index, job.file, job.split, clip.plan.num_frames,
                        tuple(p.motion_type for p in clip.plan.primitives), job.clip_seed,
                        job.composition_seed, clip.plan.dominant, clip.plan.hand_scale, digest)


_WRITER: _ClipWriter | None = None


_INIT_ERROR: BaseException | None = None


def _init_worker(config: SynthConfig, out_dir: str, annotate: Annotator | None) -> None:
    # An exception escaping a pool initializer kills the worker and the pool starts another,
    # forever; keep it and raise it from the first job instead, so the parent sees it.
    global _WRITER, _INIT_ERROR
    try:
        _WRITER = _ClipWriter(config, out_dir, annotate)
    except Exception as error:  # re-raised in _run_job
        _INIT_ERROR = error


def _run_job(job: _Job) -> IndexRow:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WRITER is not None, 'worker not initialised'
    return _WRITER(job)


def _jobs(config: SynthConfig, num_clips: int, seed: int) -> list[_Job]:
    jobs = []
    for index in range(num_clips):
        composition_seed, clip_seed = clip_seeds(seed, index, config.clips_per_composition)
        split = split_of(composition_seed, config.split_fractions)
        shard = index // config.clips_per_shard
        jobs.append(_Job(index, composition_seed, clip_seed, split,
                         f'{split.value}/shard-{shard:05d}/clip-{index:07d}.npz'))
    return jobs


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse, before anything is built, an ``out_dir`` that is a file, or that holds a corpus
    (unless ``overwrite``) or files in split folders that no index lists."""
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthesisError(f'output {out_dir} exists and is not a directory')
    index_path = out_dir / INDEX_FILE
    previous = [out_dir / s.value for s in Split if (out_dir / s.value).exists()]
    if not (index_path.exists() or previous):
        return
    if not overwrite:
        raise SynthesisError(f'{out_dir} already holds a corpus (index.json or split '
                             'folders); choose another folder or overwrite it')
    listed = ({(out_dir / row.file).resolve() for row in load_index(out_dir).rows}
              if index_path.exists() else set())
    for folder in previous:
        for path in folder.rglob('*'):
            if path.is_file() and not path.name.startswith('.') and path.resolve() not in listed:
                raise SynthesisError(f'{path} is not part of the earlier corpus index; remove '
                                     'it or choose another folder')


def _remove_corpus(out_dir: Path) -> None:
    """Remove the earlier corpus in ``out_dir``: the files its index lists, its index, and the
    split and shard folders left empty (checked by :func:`_check_out_dir`)."""
    index_path = out_dir / INDEX_FILE
    if index_path.exists():
        for row in load_index(out_dir).rows:
            (out_dir / row.file).unlink(missing_ok=True)
        index_path.unlink()
    for split in Split:
        folder = out_dir / split.value
        if not folder.is_dir():
            continue
        for shard in sorted(folder.glob('shard-*')):
            for tmp in shard.glob('.*.tmp'):
                tmp.unlink()
            if shard.is_dir() and not any(shard.iterdir()):
                shard.rmdir()
        if not any(folder.iterdir()):
            folder.rmdir()
        else:
            raise SynthesisError(f'{folder} holds files that are not part of the earlier '
                                 'corpus index; remove them or choose another folder')


def _staging_dir(out_dir: Path) -> Path:
    """A new hidden folder beside ``out_dir`` where the corpus is built."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.partial-', dir=out_dir.parent))
    except OSError as exc:
        raise SynthesisError(f'cannot create a folder beside {out_dir}: '
                             f'{exc.strerror or exc}') from exc


def _publish(staging: Path, out_dir: Path, overwrite: bool) -> None:
    """Move the finished corpus from ``staging`` to ``out_dir``: a rename when ``out_dir`` is
    absent or empty; otherwise (an earlier corpus, with ``overwrite``, or other files) the
    earlier corpus is removed and the new entries moved in, ``index.json`` last."""
    _check_out_dir(out_dir, overwrite)  # nothing appeared there while building
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    _remove_corpus(out_dir)
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == INDEX_FILE):
        os.replace(entry, out_dir / entry.name)
    staging.rmdir()


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(text, encoding='utf-8')
    os.replace(tmp, path)


def build_corpus(
    out_dir: str | os.PathLike,
    num_clips: int,
    seed: int = 0,
    config: SynthConfig | None = None,
    *,
    workers: int | None = None,
    annotate: Annotator | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> CorpusSummary:
    """Build a corpus of ``num_clips`` clips into ``out_dir`` (see the module docstring).

    Args:
        out_dir: The corpus folder (created).
        num_clips: Number of clips, >= 1.
        seed: Corpus seed, >= 0; clip ``i`` depends only on it, ``i`` and the config.
        config: Settings; defaults if None.
        workers: Worker processes; default ``os.cpu_count()``; 1 builds in this process.
        annotate: Optional ``annotate(motion, plan) -> (texts, extra)``, a module-level
            function (it is sent to the worker processes by reference).
        progress: Show a progress bar (tqdm, on stderr).
        overwrite: Replace an earlier corpus in ``out_dir`` (once the new one is complete).

    Returns:
        Counts and the measured build rate.

    Raises:
        ConfigError: Bad arguments or an unregistered motion type.
        SynthesisError: ``out_dir`` holds a corpus (and not ``overwrite``), or a primitive
            failed.

    The corpus is built in a hidden folder beside ``out_dir`` (``.NAME.partial-*``) and moved
    into place once ``index.json`` is written: a failed or interrupted run removes that folder
    and leaves ``out_dir`` as it was (an earlier corpus it overwrites included), so a re-run
    is never blocked by half a corpus.
    """
    config = SynthConfig() if config is None else config
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
        raise ConfigError(f'number of clips must be an integer >= 1, got {num_clips!r}')
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f'seed must be an integer >= 0, got {seed!r}')
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f'workers must be an integer >= 1, got {workers!r}')
    config = dataclasses.replace(config, motion_types=resolve_motion_types(config))
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    staging = _staging_dir(out_dir)
    try:
        summary = _build_into(staging, config, num_clips, seed, workers, annotate, progress)
        _publish(staging, out_dir, overwrite)
    except BaseException:  # an interrupted or failed run leaves nothing behind
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dataclasses.replace(summary, out_dir=out_dir)


def _build_into(out_dir: Path, config: SynthConfig, num_clips: int, seed: int, workers: int,
                annotate: Annotator | None, progress: bool) -> CorpusSummary:
    """Build the corpus into the (new, empty) folder ``out_dir``."""
    from tqdm import tqdm

    _write_text(out_dir / CONFIG_FILE, config.to_yaml())

    jobs = _jobs(config, num_clips, seed)
    workers = min(workers, num_clips)
    rows: list[IndexRow] = []
    start = time.perf_counter()
    bar = tqdm(total=num_clips, unit='clip', disable=not progress, dynamic_ncols=True,
               desc='synth')
    frames = 0

    def record(row: IndexRow) -> None:
        nonlocal frames
        rows.append(row)
        frames += row.num_frames
        bar.update(1)
        elapsed = time.perf_counter() - start
        bar.set_postfix_str(f'{frames / max(elapsed, 1e-9):,.0f} frames/s', refresh=False)

    try:
        if workers == 1:
            writer = _ClipWriter(config, str(out_dir), annotate)
            for job in jobs:
                record(writer(job))
        else:
            chunk = max(1, min(8, num_clips // (workers * 8)))
            context = multiprocessing.get_context('spawn')
            with context.Pool(workers, initializer=_init_worker,
                              initargs=(config, str(out_dir), annotate)) as pool:
                for row in pool.imap_unordered(_run_job, jobs, chunksize=chunk):
                    record(row)
    finally:
        bar.close()
    wall_s = time.perf_counter() - start

    rows.sort(key=lambda row: row.index)
    split_clips = {s.value: 0 for s in Split}
    split_frames = {s.value: 0 for s in Split}
    for row in rows:
        split_clips[row.split.value] += 1
        split_frames[row.split.value] += row.num_frames
    index = {
        'format': CORPUS_FORMAT, 'seed': seed, 'fps': config.fps, 'num_clips': len(rows),
        'num_frames': frames, 'config': CONFIG_FILE,
        'motion_types': list(config.motion_types),
        'splits': {s: {'clips': split_clips[s], 'frames': split_frames[s]} for s in split_clips},
        'clips': [row.to_dict() for row in rows],
    }
    _write_text(out_dir / INDEX_FILE, json.dumps(index, indent=1) + '\n')
    return CorpusSummary(out_dir, len(rows), frames, split_clips, split_frames, wall_s, workers)


def load_index(corpus_dir: str | os.PathLike) -> CorpusIndex:
    """Read a corpus' ``index.json``.

    Raises:
        SynthesisError: Missing or unreadable index, or another format.
    """
    root = Path(corpus_dir)
    path = root / INDEX_FILE
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise SynthesisError(f'{root} holds no corpus: {path} not found') from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SynthesisError(f'{path}: cannot read it ({exc})') from exc
    if not isinstance(data, dict) or data.get('format') != CORPUS_FORMAT:
        found = data.get('format') if isinstance(data, dict) else None
        raise SynthesisError(f'{path}: format {found!r}, expected {CORPUS_FORMAT!r}')
    try:
        rows = tuple(IndexRow.from_dict(row) for row in data['clips'])
        return CorpusIndex(root, int(data['seed']), float(data['fps']),
                           tuple(data['motion_types']), rows)
    except (KeyError, TypeError, ValueError) as exc:
        raise SynthesisError(f'{path}: malformed index ({type(exc).__name__}: {exc})') from exc


def iter_clips(corpus_dir: str | os.PathLike, split: Split | str | None = None
               ) -> Iterator[tuple[IndexRow, BimanualMotion]]:
    """Yield ``(row, motion)`` for every clip of a corpus (or of one split), in index order,
    loading one file at a time."""
    index = load_index(corpus_dir)
    rows = index.rows if split is None else index.split(split)
    for row in rows:
        yield row, BimanualMotion.load(index.path(row))
