"""The one model feature layout, and its normaliser.

A frame of a :class:`~handx_gen.motion.container.BimanualMotion` becomes one vector of
``D = 324`` float32 features: per hand, left first, four groups in this order::

    group           size  content
    transl             3  MANO translation, metres, world frame
    global_orient      6  root rotation, continuous 6D (first two matrix columns)
    hand_pose         90  15 joint rotations in MANO joint order, 6D each
    keypoints         63  21 keypoints minus the wrist keypoint, world orientation, metres

so the left hand takes ``[0, 162)`` and the right hand ``[162, 324)``. Every slice is defined
here once (:class:`FeatureLayout`); other modules ask the layout, never hard-code offsets.

The keypoint group is redundant with the parameters: it gives models a direct positional
signal (and a target for keypoint losses). :meth:`FeatureLayout.decode` rebuilds a motion
from the parameter groups alone and recomputes keypoints by forward kinematics.

:class:`Normalizer` holds per-feature mean and standard deviation, fitted in one streaming
pass, and travels with checkpoints through :meth:`Normalizer.state_dict`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from handx_gen.errors import ConfigError, MotionError, MotionFormatError, unknown_choice
from handx_gen.hand import rotations
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import (
    KEYPOINT_NAMES,
    MANO_JOINT_NAMES,
    NUM_KEYPOINTS,
    NUM_POSE_JOINTS,
    HandSide,
)
from handx_gen.motion.container import BimanualMotion

__all__ = [
    'FEATURE_LAYOUT',
    'FEATURE_LAYOUT_VERSION',
    'FeatureGroup',
    'FeatureLayout',
    'FeatureSlice',
    'Normalizer',
]

FEATURE_LAYOUT_VERSION = 'handx-features/1'
DEFAULT_STD_FLOOR = 1e-2

Array = Any  # np.ndarray or torch.Tensor

_ROT6D_NAMES = ('r00', 'r10', 'r20', 'r01', 'r11', 'r21')  # column 0, then column 1
_XYZ = ('x', 'y', 'z')


class FeatureGroup(enum.Enum):
    """The feature groups of one hand, in layout order. The value is the group's name."""

    TRANSL = 'transl'
    GLOBAL_ORIENT = 'global_orient'
    HAND_POSE = 'hand_pose'
    KEYPOINTS = 'keypoints'

    @property
    def size(self) -> int:
        """Number of features of this group for one hand."""
        return _GROUP_SIZES[self]


_GROUP_SIZES = {
    FeatureGroup.TRANSL: 3,
    FeatureGroup.GLOBAL_ORIENT: 6,
    FeatureGroup.HAND_POSE: 6 * NUM_POSE_JOINTS,
    FeatureGroup.KEYPOINTS: 3 * NUM_KEYPOINTS,
}


class FeatureSlice(NamedTuple):
    """Where one group of one hand lies in the feature vector."""

    side: HandSide
    group: FeatureGroup
    slice: slice


# ---------------------------------------------------------------------- helpers


def _as_side(side: HandSide | int | str) -> HandSide:
    if isinstance(side, HandSide):
        return side
    if isinstance(side, str):
        try:
            return HandSide[side.upper()]
        except KeyError:
            pass
    elif isinstance(side, (int, np.integer)) and not isinstance(side, bool):
        try:
            return HandSide(int(side))
        except ValueError:
            pass
    raise ConfigError(unknown_choice('hand side', side, [s.name.lower() for s in HandSide]))


def _as_group(group: FeatureGroup | str) -> FeatureGroup:
    if isinstance(group, FeatureGroup):
        return group
    try:
        return FeatureGroup(group)
    except ValueError:
        raise ConfigError(
            unknown_choice('feature group', group, [g.value for g in FeatureGroup])) from None


def _feature_names(entries: Iterable[FeatureSlice]) -> list[str]:
    names = []
    for side, group, _ in entries:
        prefix = f'{side.name.lower()}.{group.value}'
        if group is FeatureGroup.TRANSL:
            names += [f'{prefix}.{axis}' for axis in _XYZ]
        elif group is FeatureGroup.GLOBAL_ORIENT:
            names += [f'{prefix}.{c}' for c in _ROT6D_NAMES]
        elif group is FeatureGroup.HAND_POSE:
            names += [f'{prefix}.{joint}.{c}' for joint in MANO_JOINT_NAMES[1:]
                      for c in _ROT6D_NAMES]
        else:
            names += [f'{prefix}.{kp}.{axis}' for kp in KEYPOINT_NAMES for axis in _XYZ]
    return names


def _to_numpy(value: Any) -> np.ndarray:
    if rotations.is_torch(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _stat_vector(name: str, value: Array, dim: int) -> np.ndarray:
    array = np.array(_to_numpy(value), dtype=np.float64, copy=True)
    if array.shape != (dim,):
        raise MotionError(f'{name}: expected shape ({dim},), got {array.shape}')
    if not np.all(np.isfinite(array)):
        raise MotionError(f'{name} has non-finite values')
    return array


class FeatureLayout:
    """The model feature layout: named slices per hand and group (see the module docstring).

    The layout has no options; use the shared instance :data:`FEATURE_LAYOUT`. Instances
    compare equal.
    """

    version = FEATURE_LAYOUT_VERSION

    def __init__(self) -> None:
        entries = []
        start = 0
        for side in HandSide:
            for group in FeatureGroup:
                entries.append(FeatureSlice(side, group, slice(start, start + group.size)))
                start += group.size
        self._entries: tuple[FeatureSlice, ...] = tuple(entries)
        self._slices = {(e.side, e.group): e.slice for e in entries}
        self._dim = start
        self._names = tuple(_feature_names(entries))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureLayout) and other.version == self.version

    def __hash__(self) -> int:
        return hash(self.version)

    def __repr__(self) -> str:
        return f'FeatureLayout(version={self.version!r}, dim={self._dim})'

    @property
    def dim(self) -> int:
        """Total feature dimension D (324)."""
        return self._dim

    @property
    def names(self) -> tuple[str, ...]:
        """One name per feature, e.g. ``'left.hand_pose.index1.r00'``, ``'right.transl.x'``."""
        return self._names

    @property
    def entries(self) -> tuple[FeatureSlice, ...]:
        """Every (side, group, slice), in layout order; together they cover ``[0, dim)``."""
        return self._entries

    def slice(self, side: HandSide | int | str, group: FeatureGroup | str) -> slice:
        """The slice of ``group`` for hand ``side``.

        Args:
            side: A :class:`HandSide`, its index (0 left, 1 right) or its name.
            group: A :class:`FeatureGroup` or its value (e.g. ``'keypoints'``).

        Raises:
            ConfigError: Unknown side or group (the message lists the valid ones).
        """
        return self._slices[(_as_side(side), _as_group(group))]

    def group_mask(
        self, groups: Iterable[tuple[HandSide | int | str, FeatureGroup | str]]
    ) -> np.ndarray:
        """Boolean (D,) mask, true on the features of the given (side, group) pairs.

        Example: ``FEATURE_LAYOUT.group_mask([(s, FeatureGroup.KEYPOINTS) for s in HandSide])``.
        """
        mask = np.zeros(self._dim, dtype=bool)
        for pair in groups:
            try:
                side, group = pair
            except (TypeError, ValueError) as exc:
                raise ConfigError(f'group_mask takes (side, group) pairs, got {pair!r}') \
                    from exc
            mask[self.slice(side, group)] = True
        return mask

    def encode(self, motion: BimanualMotion) -> np.ndarray:
        """Features of every frame of ``motion``.

        Returns:
            (T, D) float32.
        """
        if not isinstance(motion, BimanualMotion):
            raise MotionError(f'encode takes a BimanualMotion, got {type(motion).__name__}')
        num_frames = motion.num_frames
        features = np.empty((num_frames, self._dim), dtype=np.float32)
        orient_6d = rotations.axis_angle_to_rot6d(motion.global_orient)  # (T, 2, 6)
        pose_6d = rotations.axis_angle_to_rot6d(motion.hand_pose)  # (T, 2, 15, 6)
        keypoints = motion.keypoints.astype(np.float64)
        local = keypoints - keypoints[:, :, :1]  # (T, 2, 21, 3), wrist-relative
        for side in HandSide:
            features[:, self.slice(side, FeatureGroup.TRANSL)] = motion.transl[:, side]
            features[:, self.slice(side, FeatureGroup.GLOBAL_ORIENT)] = orient_6d[:, side]
            features[:, self.slice(side, FeatureGroup.HAND_POSE)] = (
                pose_6d[:, side].reshape(num_frames, -1))
            features[:, self.slice(side, FeatureGroup.KEYPOINTS)] = (
                local[:, side].reshape(num_frames, -1))
        return features

    def decode(
        self,
        features: Array,
        fps: float,
        *,
        skeletons: Sequence[HandSkeleton] | None = None,
        betas: np.ndarray | None = None,
        texts: Iterable[str] | str = (),
        annotation: Mapping[str, Any] | None = None,
    ) -> BimanualMotion:
        """Rebuild a motion from features.

        Uses the transl, global_orient and hand_pose groups (6D rotations are projected onto
        rotations by Gram-Schmidt, so any model output decodes); the keypoint group is
        ignored and keypoints are recomputed by forward kinematics, like
        :meth:`BimanualMotion.from_mano`.

        Args:
            features: (T, D) numpy array or torch tensor.
            fps: Frame rate of the result.
            skeletons: (left, right) skeletons for forward kinematics; default skeletons if
                ``None``.
            betas, texts, annotation: Passed to the motion.

        Raises:
            MotionError: Wrong shape or non-finite values.
        """
        if rotations.is_torch(features):
            features = features.detach().cpu().numpy()
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self._dim or features.shape[0] < 1:
            raise MotionError(
                f'features: expected shape (T, {self._dim}) with T >= 1, got {features.shape}')
        if not np.all(np.isfinite(features)):
            raise MotionError(f'features has non-finite values, shape {features.shape}')
        num_frames = features.shape[0]
        transl = np.stack(
            [features[:, self.slice(s, FeatureGroup.TRANSL)] for s in HandSide], axis=1)
        orient_6d = np.stack(
            [features[:, self.slice(s, FeatureGroup.GLOBAL_ORIENT)] for s in HandSide], axis=1)
        pose_6d = np.stack(
            [features[:, self.slice(s, FeatureGroup.HAND_POSE)].reshape(
                num_frames, NUM_POSE_JOINTS, 6) for s in HandSide], axis=1)
        return BimanualMotion.from_mano(
            fps,
            rotations.rot6d_to_axis_angle(orient_6d),  # (T, 2, 3)
            rotations.rot6d_to_axis_angle(pose_6d),  # (T, 2, 15, 3)
            transl,
            betas=betas, skeletons=skeletons, texts=texts, annotation=annotation)


FEATURE_LAYOUT = FeatureLayout()


class Normalizer:
    """Per-feature standardisation ``(x - mean) / std``.

    ``std`` has a floor (default 1e-2, in feature units: metres or 6D components) so that
    nearly constant features are not blown up into noise. Works on numpy arrays and torch
    tensors (the statistics follow the input's dtype and device).

    Attributes:
        mean: (D,) float64.
        std: (D,) float64, already floored.
        count: Number of frames the statistics were fitted on.
    """

    def __init__(
        self,
        mean: Array,
        std: Array,
        *,
        count: int = 0,
        std_floor: float = DEFAULT_STD_FLOOR,
        layout: FeatureLayout = FEATURE_LAYOUT,
    ) -> None:
        """Hold given statistics (stored copies; ``std`` is floored).

        Raises:
            MotionError: Shapes other than (D,), non-finite values, or a bad floor.
        """
        self.layout = layout
        if not (math.isfinite(std_floor) and std_floor > 0.0):
            raise MotionError(f'std_floor must be positive and finite, got {std_floor!r}')
        self.std_floor = float(std_floor)
        self.mean = _stat_vector('mean', mean, layout.dim)
        self.std = np.maximum(_stat_vector('std', std, layout.dim), self.std_floor)
        self.mean.setflags(write=False)
        self.std.setflags(write=False)
        self.count = int(count)
        self._torch_stats: dict[Any, tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return (f'Normalizer(dim={self.layout.dim}, count={self.count}, '
                f'std_floor={self.std_floor:g})')

    @classmethod
    def fit(
        cls,
        batches: Iterable[Array],
        *,
        std_floor: float = DEFAULT_STD_FLOOR,
        layout: FeatureLayout = FEATURE_LAYOUT,
    ) -> Normalizer:
        """Fit mean and std over every frame of ``batches`` in one streaming pass.

        Each batch (..., D) is reduced to its count, mean and sum of squared deviations, and
        merged into running totals (Chan et al.'s parallel update, float64), so a corpus is
        never held in memory and large offsets do not cancel.

        Args:
            batches: Iterable of (..., D) feature arrays (numpy or torch), e.g. the
                :meth:`FeatureLayout.encode` output of each clip.
            std_floor: Lower bound on std.
            layout: The layout the features follow.

        Raises:
            MotionError: No frames, a wrong last dimension or non-finite values.
        """
        dim = layout.dim
        count = 0
        mean = np.zeros(dim)
        m2 = np.zeros(dim)
        for index, batch in enumerate(batches):
            if rotations.is_torch(batch):
                batch = batch.detach().cpu().numpy()
            batch = np.asarray(batch, dtype=np.float64)
            if batch.ndim < 1 or batch.shape[-1] != dim:
                raise MotionError(
                    f'batch {index}: expected shape (..., {dim}), got {batch.shape}')
            batch = batch.reshape(-1, dim)
            if not np.all(np.isfinite(batch)):
                raise MotionError(f'batch {index} has non-finite values')
            n = batch.shape[0]
            if n == 0:
                continue
            batch_mean = batch.mean(axis=0)
            batch_m2 = np.sum((batch - batch_mean) ** 2, axis=0)
            total = count + n
            delta = batch_mean - mean
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if count == 0:
            raise MotionError('Normalizer.fit got no frames')
        std = np.sqrt(m2 / count)
        return cls(mean, std, count=count, std_floor=std_floor, layout=layout)

    def normalize(self, features: Array) -> Array:
        """``(features - mean) / std`` over the last axis (D); numpy or torch."""
        mean, std = self._stats_like(features)
        return (features - mean) / std

    def denormalize(self, features: Array) -> Array:
        """``features * std + mean``, the inverse of :meth:`normalize`."""
        mean, std = self._stats_like(features)
        return features * std + mean

    def _stats_like(self, features: Array) -> tuple[Array, Array]:
        shape = tuple(features.shape)
        if len(shape) < 1 or shape[-1] != self.layout.dim:
            raise MotionError(f'features: expected shape (..., {self.layout.dim}), got {shape}')
        if rotations.is_torch(features):
            import torch

            dtype = features.dtype if features.is_floating_point() else torch.float32
            key = (dtype, features.device)
            if key not in self._torch_stats:  # one host-to-device copy per dtype and device
                self._torch_stats[key] = (
                    torch.tensor(self.mean, dtype=dtype, device=features.device),
                    torch.tensor(self.std, dtype=dtype, device=features.device))
            return self._torch_stats[key]
        dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
        return self.mean.astype(dtype), self.std.astype(dtype)

    def state_dict(self, *, tensors: bool = False) -> dict[str, Any]:
        """Statistics for a checkpoint: arrays plus the layout version string.

        Keys: ``mean`` and ``std`` (D,) float64, ``count`` (int64) and ``std_floor``
        (float64) 0-d arrays, ``layout_version`` (str).

        Args:
            tensors: Give torch tensors instead of numpy arrays. ``torch.load(...,
                weights_only=True)`` refuses numpy arrays, so use this for checkpoints.
        """
        state: dict[str, Any] = {
            'mean': self.mean.copy(),
            'std': self.std.copy(),
            'count': np.array(self.count, dtype=np.int64),
            'std_floor': np.array(self.std_floor, dtype=np.float64),
            'layout_version': self.layout.version,
        }
        if tensors:
            import torch

            for key in ('mean', 'std', 'count', 'std_floor'):
                state[key] = torch.from_numpy(state[key])
        return state

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Any], *, layout: FeatureLayout = FEATURE_LAYOUT
    ) -> Normalizer:
        """Rebuild from :meth:`state_dict` (numpy arrays or torch tensors).

        Raises:
            MotionFormatError: Missing keys, or statistics made for another feature layout
                (the message names the version found and the one supported).
        """
        required = ('mean', 'std', 'layout_version')
        missing = [key for key in required if key not in state]
        if missing:
            raise MotionFormatError(
                f'normalizer state lacks {missing}; has {sorted(state)}, needs {list(required)}')
        found = state['layout_version']
        if str(found) != layout.version:
            raise MotionFormatError(
                f'normalizer statistics are for feature layout {str(found)!r}; this code '
                f'supports {layout.version!r}')
        try:
            return cls(
                state['mean'], state['std'], count=int(_to_numpy(state.get('count', 0))),
                std_floor=float(_to_numpy(state.get('std_floor', DEFAULT_STD_FLOOR))),
                layout=layout)
        except MotionError as exc:
            raise MotionFormatError(f'normalizer state: {exc}') from exc
