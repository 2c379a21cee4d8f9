"""Condition masks: the one definition of which parts of a clip are given.

A condition mask is a boolean (T, D) array over the model feature layout
(:data:`~handx_gen.motion.features.FEATURE_LAYOUT`): true where the value is given (observed,
fixed), false where the model generates it. Masks are built per hand, per frame and per
feature group from a named :class:`MaskMode`:

    mode         given
    text         nothing (text-to-motion)
    reaction     every feature of one hand (``side``), every frame; the other hand is generated
    inbetween    every feature of the first ``k`` and the last ``k`` frames
    keyframes    every feature of the listed ``frames``
    trajectory   the wrist path: the transl group (and, with ``include_orient``, the
                 global_orient group) of one hand (``side``) or of both (``side=None``)

:class:`ConditionMask` keeps the mode and its arguments (the autoregressive model needs them to
fix tokens: the other hand's, a prefix and a suffix) next to the dense array;
:func:`make_mask` gives the array alone. :func:`sample_masks` draws random masks for training
with the mode probabilities of a :class:`MaskSamplerConfig`.
"""

from __future__ import annotations

import dataclasses
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, unknown_choice
from handx_gen.hand.topology import HandSide
from handx_gen.models.mask_mode import MaskMode
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup, FeatureLayout

__all__ = [
    'ConditionMask',
    'MaskBatch',
    'MaskMode',
    'MaskSamplerConfig',
    'apply_condition',
    'make_mask',
    'sample_masks',
]

Array = Any  # np.ndarray or torch.Tensor


def _as_side(side: HandSide | int | str) -> HandSide:
    if isinstance(side, HandSide):
        return side
    if isinstance(side, str):
        try:
            return HandSide[side.strip().upper()]
        except KeyError:
            pass
    elif isinstance(side, (int, np.integer)) and not isinstance(side, bool):
        if int(side) in (0, 1):
            return HandSide(int(side))
    raise ConfigError(unknown_choice('hand side', side, [s.name.lower() for s in HandSide]))


def _check_num_frames(num_frames: Any) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
            or num_frames < 1:
        raise ConfigError(f'num_frames must be a positive integer, got {num_frames!r}')
    return int(num_frames)


def _check_k(k: Any, num_frames: int) -> int:
    k_max = (num_frames - 1) // 2  # at least one frame stays to be generated
    if k_max < 1:
        raise ConfigError(
            f'inbetween needs at least 3 frames (k given at each end, one generated), got '
            f'num_frames={num_frames}')
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= k_max:
        raise ConfigError(
            f'inbetween k must be an integer in [1, {k_max}] for {num_frames} frames, got {k!r}')
    return int(k)


def _check_frames(frames: Any, num_frames: int) -> tuple[int, ...]:
    if frames is None or isinstance(frames, (str, bytes)):
        raise ConfigError(f'keyframes needs frames, a sequence of frame indices, got {frames!r}')
    try:
        values = list(np.asarray(frames).reshape(-1))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'keyframes frames must be frame indices, got {frames!r}') from exc
    if not values:
        raise ConfigError('keyframes needs at least one frame index, got none')
    checked = set()
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f'keyframes frames must be integers, got {value!r} in {frames!r}')
        if not 0 <= value < num_frames:
            raise ConfigError(
                f'keyframe {int(value)} is out of range [0, {num_frames}) for {num_frames} '
                f'frames')
        checked.add(int(value))
    return tuple(sorted(checked))


@dataclasses.dataclass(frozen=True)
class ConditionMask:
    """A named condition: the mode, its arguments and the (T, D) mask they define.

    Build with :meth:`make` (which checks and normalises the arguments) rather than the
    constructor. Arguments a mode does not use are ``None``.

    Attributes:
        mode: The :class:`MaskMode`.
        num_frames: T.
        side: The given hand (reaction), or the hand whose wrist path is given (trajectory;
            ``None`` for both hands).
        k: Frames given at each end (inbetween).
        frames: Sorted, unique given frame indices (keyframes).
        include_orient: Trajectory also gives the global orientation group.
        layout: The feature layout the mask covers.
    """

    mode: MaskMode
    num_frames: int
    side: HandSide | None = None
    k: int | None = None
    frames: tuple[int, ...] | None = None
    include_orient: bool = False
    layout: FeatureLayout = FEATURE_LAYOUT

    @classmethod
    def make(
        cls,
        mode: MaskMode | str,
        num_frames: int,
        *,
        side: HandSide | int | str | None = None,
        k: int | None = None,
        frames: Iterable[int] | None = None,
        include_orient: bool = False,
        layout: FeatureLayout = FEATURE_LAYOUT,
    ) -> ConditionMask:
        """Check the arguments of ``mode`` and build the condition.

        Args:
            mode: A :class:`MaskMode` or its value.
            num_frames: T, the clip length in frames.
            side: Reaction: the given hand (required). Trajectory: the hand whose wrist path is
                given, or ``None`` for both. A :class:`HandSide`, 0/1 or 'left'/'right'.
            k: Inbetween: frames given at each end, in ``[1, (T - 1) // 2]``.
            frames: Keyframes: given frame indices in ``[0, T)`` (duplicates merged).
            include_orient: Trajectory: also give the global orientation group.
            layout: The feature layout.

        Raises:
            ConfigError: Unknown mode or side, a missing or out-of-range argument, or an
                argument the mode does not take.
        """
        mode = MaskMode.parse(mode)
        num_frames = _check_num_frames(num_frames)
        unused = []
        if side is not None and mode not in (MaskMode.REACTION, MaskMode.TRAJECTORY):
            unused.append('side')
        if k is not None and mode is not MaskMode.INBETWEEN:
            unused.append('k')
        if frames is not None and mode is not MaskMode.KEYFRAMES:
            unused.append('frames')
        if include_orient and mode is not MaskMode.TRAJECTORY:
            unused.append('include_orient')
        if unused:
            raise ConfigError(f'mask mode {mode.value!r} takes no {", ".join(unused)}')
        values: dict[str, Any] = {}
        if mode is MaskMode.REACTION:
            if side is None:
                raise ConfigError("mask mode 'reaction' needs side, the given hand: "
                                  "'left' or 'right'")
            values['side'] = _as_side(side)
        elif mode is MaskMode.TRAJECTORY:
            values['side'] = None if side is None else _as_side(side)
            values['include_orient'] = bool(include_orient)
        elif mode is MaskMode.INBETWEEN:
            if k is None:
                raise ConfigError("mask mode 'inbetween' needs k, the frames given at each end")
            values['k'] = _check_k(k, num_frames)
        elif mode is MaskMode.KEYFRAMES:
            values['frames'] = _check_frames(frames, num_frames)
        return cls(mode, num_frames, layout=layout, **values)

    @property
    def array(self) -> np.ndarray:
        """The mask, (T, D) bool, true where given. A fresh array on each call."""
        layout = self.layout
        mask = np.zeros((self.num_frames, layout.dim), dtype=bool)  # (T, D)
        if self.mode is MaskMode.REACTION:
            mask[:, layout.group_mask((self.side, g) for g in FeatureGroup)] = True
        elif self.mode is MaskMode.INBETWEEN:
            mask[:self.k] = True
            mask[self.num_frames - self.k:] = True
        elif self.mode is MaskMode.KEYFRAMES:
            mask[list(self.frames)] = True
        elif self.mode is MaskMode.TRAJECTORY:
            sides = list(HandSide) if self.side is None else [self.side]
            groups = [FeatureGroup.TRANSL]
            if self.include_orient:
                groups.append(FeatureGroup.GLOBAL_ORIENT)
            mask[:, layout.group_mask((s, g) for s in sides for g in groups)] = True
        return mask

    def tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """The mask as a (T, D) bool tensor on ``device``."""
        return torch.from_numpy(self.array).to(device)

    @property
    def given_frames(self) -> np.ndarray:
        """(T,) bool: frames with at least one given feature."""
        return self.array.any(axis=1)

    @property
    def given_dims(self) -> np.ndarray:
        """(D,) bool: features given in at least one frame."""
        return self.array.any(axis=0)

    @property
    def given_fraction(self) -> float:
        """Fraction of the (T, D) entries that are given."""
        return float(self.array.mean())

    def hand_given(self, side: HandSide | int | str) -> bool:
        """Whether every feature of hand ``side`` is given in every frame."""
        hand = self.layout.group_mask((_as_side(side), g) for g in FeatureGroup)
        return bool(self.array[:, hand].all())

    def to_dict(self) -> dict[str, Any]:
        """The mode and its arguments, with plain types (for logs and metadata)."""
        return {
            'mode': self.mode.value,
            'num_frames': self.num_frames,
            'side': None if self.side is None else self.side.name.lower(),
            'k': self.k,
            'frames': None if self.frames is None else list(self.frames),
            'include_orient': self.include_orient,
        }


def make_mask(
    mode: MaskMode | str,
    num_frames: int,
    *,
    side: HandSide | int | str | None = None,
    k: int | None = None,
    frames: Iterable[int] | None = None,
    include_orient: bool = False,
    as_tensor: bool = False,
    device: torch.device | str | None = None,
    layout: FeatureLayout = FEATURE_LAYOUT,
) -> Array:
    """The (T, D) boolean mask of a named mode; see :meth:`ConditionMask.make` for arguments.

    Args:
        as_tensor: Give a torch bool tensor (on ``device``) instead of a numpy array.

    Returns:
        (T, D) bool, true where given.

    Raises:
        ConfigError: As :meth:`ConditionMask.make`.
    """
    condition = ConditionMask.make(mode, num_frames, side=side, k=k, frames=frames,
                                   include_orient=include_orient, layout=layout)
    return condition.tensor(device) if as_tensor else condition.array


def apply_condition(mask: Array, known: Array, generated: Array) -> Array:
    """``known`` where ``mask`` is true, ``generated`` elsewhere (numpy or torch alike).

    The final projection that makes the given parts exact.

    Args:
        mask: (..., T, D) bool, broadcastable to the others.
        known: (..., T, D) given values (anything where not given).
        generated: (..., T, D) model output.
    """
    if isinstance(generated, torch.Tensor):
        mask = torch.as_tensor(mask, device=generated.device)
        known = torch.as_tensor(known, dtype=generated.dtype, device=generated.device)
        return torch.where(mask, known, generated)
    return np.where(mask, known, generated)


# ============================================================================== sampling

_DEFAULT_PROBABILITIES = types.MappingProxyType({
    MaskMode.TEXT: 0.4,
    MaskMode.REACTION: 0.2,
    MaskMode.INBETWEEN: 0.15,
    MaskMode.KEYFRAMES: 0.15,
    MaskMode.TRAJECTORY: 0.1,
})


@dataclasses.dataclass(frozen=True)
class MaskSamplerConfig:
    """How :func:`sample_masks` draws training masks.

    Attributes:
        probabilities: Weight of each mode (modes left out weigh 0); normalised to sum to 1.
            Default text 0.4, reaction 0.2, inbetween 0.15, keyframes 0.15, trajectory 0.1.
        inbetween_max_fraction: 0.25: inbetween ``k`` is drawn uniformly from
            ``[1, max(1, floor(fraction * T))]``, capped at ``(T - 1) // 2``.
        keyframes_max_fraction: 0.2: the number of keyframes is drawn uniformly from
            ``[1, max(1, floor(fraction * T))]``.
        trajectory_orient_probability: 0.5: chance that a trajectory mask also gives the
            global orientation.
        trajectory_both_probability: 0.5: chance that a trajectory mask gives both wrist
            paths (else one hand's, left or right with equal chance).
    """

    probabilities: Mapping[MaskMode, float] = dataclasses.field(
        default_factory=lambda: dict(_DEFAULT_PROBABILITIES))
    inbetween_max_fraction: float = 0.25
    keyframes_max_fraction: float = 0.2
    trajectory_orient_probability: float = 0.5
    trajectory_both_probability: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.probabilities, Mapping):
            raise ConfigError(f'probabilities must be a mapping of mask mode to weight, got '
                              f'{type(self.probabilities).__name__}')
        weights = {}
        for mode, weight in self.probabilities.items():
            mode = MaskMode.parse(mode)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f'probability of mask mode {mode.value!r} must be a '
                                  f'non-negative number, got {weight!r}')
            weights[mode] = float(weight)
        total = sum(weights.values())
        if total <= 0:
            raise ConfigError(f'mask mode probabilities must have a positive sum, got '
                              f'{dict(self.probabilities)!r}')
        normalised = {mode: weights.get(mode, 0.0) / total for mode in MaskMode}
        object.__setattr__(self, 'probabilities', types.MappingProxyType(normalised))
        for name in ('inbetween_max_fraction', 'keyframes_max_fraction'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 < value <= 1.0:
                raise ConfigError(f'{name} must be in (0, 1], got {value!r}')
        for name in ('trajectory_orient_probability', 'trajectory_both_probability'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ConfigError(f'{name} must be in [0, 1], got {value!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> MaskSamplerConfig:
        """Build from a mapping (e.g. YAML); ``probabilities`` maps mode names to weights.

        Raises:
            ConfigError: Unknown keys or mode names, or bad values.
        """
        return cls(**config_kwargs(cls, values, 'mask sampler'))

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed settings, the inverse of :meth:`from_dict`."""
        return {
            'probabilities': {mode.value: p for mode, p in self.probabilities.items()},
            'inbetween_max_fraction': self.inbetween_max_fraction,
            'keyframes_max_fraction': self.keyframes_max_fraction,
            'trajectory_orient_probability': self.trajectory_orient_probability,
            'trajectory_both_probability': self.trajectory_both_probability,
        }


class MaskBatch(NamedTuple):
    """Random training masks.

    Attributes:
        masks: (B, T, D) bool tensor, true where given.
        conditions: The B conditions the masks come from.
    """

    masks: torch.Tensor
    conditions: tuple[ConditionMask, ...]


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, (1,), generator=generator).item())


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((1,), generator=generator).item())


def _sample_condition(mode: MaskMode, num_frames: int, config: MaskSamplerConfig,
                      generator: torch.Generator, layout: FeatureLayout) -> ConditionMask:
    if mode is MaskMode.REACTION:
        return ConditionMask.make(mode, num_frames, side=_randint(0, 1, generator),
                                  layout=layout)
    if mode is MaskMode.INBETWEEN:
        k_high = min(max(1, int(config.inbetween_max_fraction * num_frames)),
                     (num_frames - 1) // 2)
        return ConditionMask.make(mode, num_frames, k=_randint(1, k_high, generator),
                                  layout=layout)
    if mode is MaskMode.KEYFRAMES:
        count = _randint(1, max(1, int(config.keyframes_max_fraction * num_frames)), generator)
        frames = torch.randperm(num_frames, generator=generator)[:count].tolist()
        return ConditionMask.make(mode, num_frames, frames=frames, layout=layout)
    if mode is MaskMode.TRAJECTORY:
        both = _uniform(generator) < config.trajectory_both_probability
        side = None if both else _randint(0, 1, generator)
        orient = _uniform(generator) < config.trajectory_orient_probability
        return ConditionMask.make(mode, num_frames, side=side, include_orient=orient,
                                  layout=layout)
    return ConditionMask.make(mode, num_frames, layout=layout)


def sample_masks(
    batch: int,
    num_frames: int,
    generator: torch.Generator,
    probabilities: MaskSamplerConfig | Mapping[MaskMode | str, float] | None = None,
    *,
    device: torch.device | str | None = None,
    layout: FeatureLayout = FEATURE_LAYOUT,
) -> MaskBatch:
    """Draw ``batch`` random condition masks for training.

    Modes are drawn with the configured probabilities, then each mode's arguments (side, k,
    keyframes, trajectory options) from the same generator, so a seeded generator gives the
    same masks on every run. Inbetween needs ``num_frames >= 3``; for shorter clips its
    weight moves to the other modes.

    Args:
        batch: B, the number of masks.
        num_frames: T.
        generator: Seeded CPU ``torch.Generator``, the only source of randomness.
        probabilities: A :class:`MaskSamplerConfig`, a mapping of mode to weight (other
            settings default), or ``None`` for the defaults.
        device: Where the mask tensor goes.
        layout: The feature layout.

    Returns:
        The (B, T, D) masks and their conditions.

    Raises:
        ConfigError: A bad batch size, frame count or configuration.
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ConfigError(f'batch must be a positive integer, got {batch!r}')
    num_frames = _check_num_frames(num_frames)
    if not isinstance(generator, torch.Generator):
        raise ConfigError(f'generator must be a torch.Generator, got {type(generator).__name__}')
    if probabilities is None:
        config = MaskSamplerConfig()
    elif isinstance(probabilities, MaskSamplerConfig):
        config = probabilities
    else:
        config = MaskSamplerConfig(probabilities=probabilities)
    modes: Sequence[MaskMode] = list(MaskMode)
    weights = torch.tensor([config.probabilities[m] for m in modes], dtype=torch.float64)
    if num_frames < 3:
        weights[modes.index(MaskMode.INBETWEEN)] = 0.0
        if weights.sum() <= 0:
            raise ConfigError(f'only inbetween masks are configured, and inbetween needs at '
                              f'least 3 frames; got num_frames={num_frames}')
    drawn = torch.multinomial(weights, int(batch), replacement=True, generator=generator)
    conditions = tuple(
        _sample_condition(modes[i], num_frames, config, generator, layout)
        for i in drawn.tolist())
    masks = torch.from_numpy(np.stack([c.array for c in conditions]))  # (B, T, D)
    return MaskBatch(masks.to(device), conditions)
