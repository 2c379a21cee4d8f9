"""Readers that turn data-source files into :class:`~handx_gen.motion.BimanualMotion`.

One file at a time (nothing keeps a corpus in memory). Supported kinds (:class:`SourceKind`):

``motion``
    A ``handx-motion/1`` file, read with :meth:`BimanualMotion.load`.
``amass-smplh``
    AMASS-style SMPL-H ``.npz``: ``poses`` (T, 156) axis-angle = root (3), 21 body joints
    (63), 15 left-hand and 15 right-hand joints (90); ``trans`` (T, 3); ``mocap_framerate``
    (or ``mocap_frame_rate``); optional ``betas``. SMPL-X style (T, 165) poses are accepted too
    (jaw and eyes are skipped). Hand joints are read as flat-hand-relative axis-angle, as
    stored by AMASS. The body goes through :class:`~handx_gen.data.smplh.UnifiedMotion`.
``mano``
    Per-hand MANO parameter sequences: ``global_orient`` (T, 2, 3), ``hand_pose`` (T, 2, 15, 3)
    or (T, 2, 45), ``transl`` (T, 2, 3), ``fps``, optional ``betas`` (2, 10) or (T, 2, 10);
    or the same per hand under ``left_`` / ``right_`` prefixes (``left_global_orient`` (T, 3),
    ``left_hand_pose`` (T, 45) or (T, 15, 3), ``left_transl``, ``left_betas`` (10,)).
    Left is hand 0. ``hand_pose`` must be full axis-angle relative to the *flat* hand
    (smplx ``flat_hand_mean=True``): files that say otherwise (``hand_pose_is_mean_relative``
    true, ``flat_hand_mean`` false, ``use_pca`` true, any ``*pca*`` entry, or a hand pose that
    is not 45 numbers per hand) are rejected, since converting them needs the licensed MANO
    model's mean pose and PCA basis.
``keypoints``
    21-keypoint sequences: ``keypoints`` (T, 2, 21, 3) or (T, 42, 3) (left 21 then right 21)
    in the world frame, metres, 21-keypoint order; ``fps``. A file of one hand holds
    ``keypoints`` (T, 21, 3), and the reader is told which hand it is (``side``). A hand whose
    21 keypoints are all exactly zero in a frame is not observed there (trackers write zeros
    for a hand they lost), as if they were NaN; a hand observed in no frame at all is
    *absent*: the motion holds the other hand only
    (:attr:`~handx_gen.motion.BimanualMotion.present`). Each present hand's skeleton (palm
    shape and bone lengths, per clip) and MANO parameters are fitted by
    :func:`handx_gen.hand.fit.fit_hand`, which puts the fingertips first and keeps the joints
    in their ranges unless the keypoints insist; the motion's keypoints are the forward
    kinematics of that fit, the raw observations stay in
    :attr:`SourceReading.observed_keypoints`.

Frames whose data are not finite (NaN, inf) are reported (an absent hand's are not a fault):
by default the read fails with a
:class:`~handx_gen.errors.DataSourceError` listing them; with ``fill_invalid=True`` each bad
frame holds the nearest good frame's values (a keypoint source: each hand's keypoints
interpolated between its good frames around it, then fitted) and is marked in
:attr:`SourceReading.invalid_frames`, so :func:`handx_gen.data.filters.filter_motion` can cut
it out, or keep it inside a short gap (``handx data filter`` does this).

Axes, frame and placement (:mod:`handx_gen.data.frames`): every kind can be read in other
axes (``axes``, e.g. ``'left,down,back'``: where the file's x, y, z point in the world), as
positions relative to each hand's wrist (``frame='wrist'``, not for ``amass-smplh``, whose
bodies place their wrists) and moved to the corpus' usual wrist spots (``place='canonical'``,
the default for wrist-frame data). Keypoints are moved before the fit, so
:attr:`SourceReading.observed_keypoints` are in the world frame too; parameter sources are
moved as motions (:func:`~handx_gen.data.frames.move_motion`), and only keypoints can be read
through a reflection (left-handed file axes). What was done is in
:attr:`SourceReading.frame_change`.

World frame: the project's world is Z up, and so is AMASS: its bodies stand in a Z-up world
(the tilt from the SMPL body frame is part of the root orientation), so AMASS-style files are read
as they are by default (:attr:`UpAxis.Z`). Files exported in the Y-up SMPL body frame (as many
animation tools and HumanML3D-style pipelines write them) are read with ``up_axis=UpAxis.Y``: the
whole body is rotated by +90 degrees about x, which takes +y to +z (and +z to -y), applied to the
root orientation and, about the world origin, to the root position; ``up_axis`` is a shorthand for
``axes`` (``y`` is ``'right,up,back'``) and applies to every kind. Read with the wrong axis, an
upright body lies along -y or +z leans forward; ``handx data inspect`` shows it in the wrist
ranges, and :func:`handx_gen.data.workspace.check_workspace` names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from handx_gen.data.frames import (
    IDENTITY,
    AxesMap,
    FrameChange,
    default_placement,
    move_motion,
    move_points,
    place_offsets,
    placement,
    source_frame,
)
from handx_gen.data.kinds import Placement, SourceFrame, SourceKind, UpAxis
from handx_gen.data.smplh import (
    NUM_SMPLH_JOINTS,
    SMPLH_REST_JOINTS_M,
    UnifiedMotion,
    to_bimanual,
)
from handx_gen.errors import ConfigError, DataSourceError, HandxError, unknown_choice
from handx_gen.hand.topology import NUM_KEYPOINTS, NUM_POSE_JOINTS, HandSide
from handx_gen.npz import NpzArchive
from handx_gen.rates import MAX_FRAMES, check_clip_size, check_fps

if TYPE_CHECKING:
    from handx_gen.hand.fit import FitConfig
    from handx_gen.hand.skeleton import HandSkeleton
    from handx_gen.motion import BimanualMotion

__all__ = [
    'SourceKind',
    'SourceReading',
    'UpAxis',
    'Y_UP_TO_Z_UP',
    'detect_kind',
    'format_frame_ranges',
    'load_source',
    'read_amass_smplh',
    'read_amass_unified',
    'read_keypoint_sequence',
    'read_mano_sequence',
    'read_source',
]

PathLike = str | Path

# Rotation taking a Y-up world to the project's Z-up world: +90 degrees about x.
# Columns are the images of x, y, z: x -> x, y -> z, z -> -y.
Y_UP_TO_Z_UP: np.ndarray = np.array(
    [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=np.float64
)
Y_UP_TO_Z_UP.setflags(write=False)


# What identifies each kind, for error messages.
_KIND_KEYS: dict[SourceKind, str] = {
    SourceKind.MOTION: "'format' = 'handx-motion/1'",
    SourceKind.AMASS_SMPLH: "'poses', 'trans', 'mocap_framerate'",
    SourceKind.MANO: "'global_orient', 'hand_pose', 'transl', 'fps' (or left_/right_ prefixed)",
    SourceKind.KEYPOINTS: "'keypoints', 'fps'",
}
_MANO_KEYS = (
    'hand_pose', 'global_orient', 'left_hand_pose', 'right_hand_pose', 'left_global_orient',
    'right_global_orient',
)
_FPS_KEYS = ('fps', 'mocap_framerate', 'mocap_frame_rate', 'framerate', 'frame_rate')


@dataclasses.dataclass(frozen=True)
class SourceReading:
    """A source file read into a motion, with what was found on the way.

    Attributes:
        motion: The converted motion (every frame finite).
        kind: The kind the file was read as.
        path: The file.
        invalid_frames: (T,) bool, frames whose source data were not finite and hold the
            nearest good frame's values instead (keypoint sources: interpolated keypoints).
        observed_keypoints: (T, 2, 21, 3) raw keypoints of a keypoint source (non-finite
            values kept), else ``None``.
        ik_residual_m: (T, 2) per-hand mean distance of the fitted keypoints from the observed
            ones of a keypoint source, metres,
            else ``None``.
        unified: The 52-joint form of a body source, else ``None``.
        skeletons: (left, right) skeletons the motion's keypoints were computed with, when
            not the default ones (a keypoint source's fitted skeletons), else ``None``.
        frame_change: The axes map, frame and placement applied
            (:mod:`handx_gen.data.frames`), else ``None`` (the file was read as it is).

    A hand absent from the whole file is absent from the motion
    (``motion.absent_sides``); its ``observed_keypoints`` are NaN and its
    ``ik_residual_m`` NaN.
    """

    motion: BimanualMotion
    kind: SourceKind
    path: Path
    invalid_frames: np.ndarray
    observed_keypoints: np.ndarray | None = None
    ik_residual_m: np.ndarray | None = None
    unified: UnifiedMotion | None = None
    skeletons: tuple[HandSkeleton, HandSkeleton] | None = None
    frame_change: FrameChange | None = None

    @property
    def num_invalid_frames(self) -> int:
        return int(np.count_nonzero(self.invalid_frames))


# ---------------------------------------------------------------------------- npz access


class _Entries:
    """The entries of one open ``.npz`` file, each read on first use, never unpickled.

    A context manager: the archive is closed on exit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._archive = NpzArchive(path, DataSourceError, 'data source')
        self._cache: dict[str, np.ndarray] = {}

    def __enter__(self) -> _Entries:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._archive.close()

    @property
    def names(self) -> list[str]:
        return self._archive.names

    def __contains__(self, name: str) -> bool:
        return name in self._archive

    def error(self, message: str) -> DataSourceError:
        return DataSourceError(f'{self.path}: {message}')

    def get(self, name: str) -> np.ndarray | None:
        """Entry ``name``, or ``None``; checked from its header (no more than
        :data:`~handx_gen.rates.MAX_FRAMES` frames) before it is decompressed."""
        if name not in self._archive:
            return None
        if name not in self._cache:
            self._cache[name] = self._archive.read(name, max_frames=MAX_FRAMES)
        return self._cache[name]

    def require(self, name: str, what: str) -> np.ndarray:
        value = self.get(name)
        if value is None:
            raise self.error(f'missing entry {name!r} ({what}); entries present: {self.names}')
        return value

    def numeric(self, name: str, value: np.ndarray) -> np.ndarray:
        if value.dtype.kind not in 'fiub':
            raise self.error(f'entry {name!r} must be numeric, got dtype {value.dtype}')
        return np.asarray(value, dtype=np.float64)

    def fps(self) -> float:
        for name in _FPS_KEYS:
            value = self.get(name)
            if value is None:
                continue
            if value.size != 1 or value.dtype.kind not in 'fiu':
                raise self.error(f'entry {name!r} must be a number, got dtype {value.dtype} '
                                 f'shape {value.shape}')
            return check_fps(value.reshape(()).item(), what=f'{self.path}: frame rate {name!r}',
                             error=DataSourceError)
        raise self.error(f'no frame rate entry (one of {list(_FPS_KEYS)}); '
                         f'entries present: {self.names}')

    def flag(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None:
            return None
        if value.size != 1 or value.dtype.kind not in 'biuf':
            raise self.error(f'entry {name!r} must be a single boolean, got dtype '
                             f'{value.dtype} shape {value.shape}')
        return bool(value.reshape(()))


def _open(path: PathLike) -> _Entries:
    return _Entries(Path(path))


# ---------------------------------------------------------------------------- helpers


def format_frame_ranges(mask: np.ndarray, limit: int = 6) -> str:
    """Describe the true frames of a (T,) mask as ranges, e.g. ``'3-7, 20, 31-33'``.

    Args:
        mask: (T,) boolean.
        limit: At most this many ranges are listed; the rest are counted.
    """
    frames = np.flatnonzero(np.asarray(mask, dtype=bool))
    if frames.size == 0:
        return 'none'
    breaks = np.flatnonzero(np.diff(frames) > 1)
    starts = np.concatenate([[frames[0]], frames[breaks + 1]])
    stops = np.concatenate([frames[breaks], [frames[-1]]])
    parts = [f'{a}' if a == b else f'{a}-{b}' for a, b in zip(starts, stops, strict=True)]
    if len(parts) > limit:
        parts = parts[:limit] + [f'... ({len(parts) - limit} more ranges)']
    return ', '.join(parts)


def _nearest_valid_index(valid: np.ndarray) -> np.ndarray:
    """(T,) index of the nearest valid frame for every frame (ties go to the earlier one)."""
    valid_idx = np.flatnonzero(valid)
    frames = np.arange(valid.shape[0])
    right = np.clip(np.searchsorted(valid_idx, frames), 0, valid_idx.size - 1)
    left = np.clip(right - 1, 0, valid_idx.size - 1)
    use_left = np.abs(frames - valid_idx[left]) <= np.abs(valid_idx[right] - frames)
    return np.where(use_left, valid_idx[left], valid_idx[right])


def _interpolate_gaps(points: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(T, ...) ``points`` with every invalid frame linearly interpolated between the valid
    frames around it (the nearest valid frame's values before the first and after the last)."""
    valid_idx = np.flatnonzero(valid)
    frames = np.arange(valid.shape[0])
    right = np.clip(np.searchsorted(valid_idx, frames), 0, valid_idx.size - 1)
    left = np.clip(right - 1, 0, valid_idx.size - 1)
    right = np.where(valid, frames, valid_idx[right])
    left = np.where(valid, frames, valid_idx[left])
    span = right - left
    weight = np.where(span > 0, (frames - left) / np.maximum(span, 1), 0.0)
    weight = np.clip(weight, 0.0, 1.0).reshape((-1,) + (1,) * (points.ndim - 1))
    out = (1.0 - weight) * points[left] + weight * points[right]
    before, after = frames < valid_idx[0], frames > valid_idx[-1]
    out[before], out[after] = points[valid_idx[0]], points[valid_idx[-1]]
    return out


def _fill_invalid(
    entries: _Entries,
    arrays: dict[str, np.ndarray],
    fill_invalid: bool,
    what: str,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Find frames with non-finite values in any of ``arrays`` (each (T, ...)) and fill them.

    Returns:
        The (filled) arrays and the (T,) invalid mask.
    """
    num_frames = next(iter(arrays.values())).shape[0]
    invalid = np.zeros(num_frames, dtype=bool)
    for value in arrays.values():
        invalid |= ~np.isfinite(value.reshape(num_frames, -1)).all(axis=1)
    if not invalid.any():
        return arrays, invalid
    if invalid.all():
        raise entries.error(f'every one of the {num_frames} frames has non-finite {what}')
    _report_invalid(entries, invalid, fill_invalid, what)
    nearest = _nearest_valid_index(~invalid)
    return {name: value[nearest] for name, value in arrays.items()}, invalid


def _report_invalid(entries: _Entries, invalid: np.ndarray, fill_invalid: bool,
                    what: str) -> None:
    """Fail with the list of invalid frames unless they are to be filled."""
    if invalid.any() and not fill_invalid:
        raise entries.error(
            f'{int(invalid.sum())} of {invalid.shape[0]} frames have non-finite {what} (frames '
            f'{format_frame_ranges(invalid)}); fill them from the nearest good frame with '
            f'`handx data convert FILE OUT.npz --fill-invalid` (in Python: load_source(..., '
            f'fill_invalid=True)), or cut them out with `handx data filter FILE --out DIR`'
        )


def _check_frames(entries: _Entries, name: str, value: np.ndarray, num_frames: int) -> None:
    if value.shape[0] != num_frames:
        raise entries.error(f'entry {name!r} has {value.shape[0]} frames, expected {num_frames} '
                            f'(shape {value.shape})')


def _build(entries: _Entries, build: Callable[..., BimanualMotion], *args: Any,
           **kwargs: Any) -> BimanualMotion:
    """Call a motion constructor, naming the file in any error it raises."""
    try:
        return build(*args, **kwargs)
    except HandxError as exc:
        raise entries.error(f'cannot build a motion: {exc}') from exc


# ---------------------------------------------------------------------------- AMASS


def read_amass_unified(path: PathLike, *, up_axis: UpAxis | str | None = None,
                       fill_invalid: bool = False,
                       axes: AxesMap | str | None = None) -> UnifiedMotion:
    """Read an AMASS-style SMPL-H ``.npz`` into the 52-joint form, in the Z-up world.

    For ``up_axis=Y`` the root rotation becomes ``Y_UP_TO_Z_UP @ R_root`` and the translation is
    chosen so that the pelvis lands at ``Y_UP_TO_Z_UP @ (J_pelvis + trans)``, i.e. the whole body
    (with the approximate rest skeleton) is rotated about the world origin; other ``axes`` the
    same way with their rotation.

    Args:
        path: The file.
        up_axis: The file's up axis (:class:`UpAxis` or ``'y'`` / ``'z'``; default z).
        fill_invalid: Fill non-finite frames with the nearest good frame instead of failing
            (see the module doc); the mask is then lost, so prefer :func:`load_source`.
        axes: The file's axes (:class:`~handx_gen.data.frames.AxesMap` or e.g.
            ``'right,up,back'``), in place of ``up_axis``; a rotation.

    Returns:
        The :class:`UnifiedMotion` (``has_body=True``).

    Raises:
        DataSourceError: The file is unreadable or its entries have the wrong shape.
    """
    axes_map = _axes(axes, up_axis)
    with _open(path) as entries:
        unified, _ = _read_amass(entries, _body_rotation(entries, axes_map), fill_invalid)
    return unified


def _up_axis(value: UpAxis | str) -> UpAxis:
    if isinstance(value, UpAxis):
        return value
    try:
        return UpAxis(str(value).lower())
    except ValueError:
        raise DataSourceError(unknown_choice('up axis', value, [a.value for a in UpAxis])) \
            from None


def _axes(axes: AxesMap | str | None, up_axis: UpAxis | str | None) -> AxesMap:
    """The axes map of ``axes`` or its shorthand ``up_axis`` (default: the world's axes)."""
    if axes is not None and up_axis is not None:
        raise ConfigError(f'give the axes or the up axis, not both (axes {str(axes)!r}, up axis '
                          f'{getattr(up_axis, "value", up_axis)!r})')
    if axes is not None:
        return AxesMap.parse(axes)
    return IDENTITY if up_axis is None else AxesMap.from_up_axis(_up_axis(up_axis))


def _body_rotation(entries: _Entries, axes: AxesMap) -> np.ndarray:
    """(3, 3) rotation of a body source's axes; a reflection would mirror the body."""
    if axes.is_reflection:
        raise entries.error(f'axes {axes} are a reflection (left-handed file axes): a body '
                            f'cannot be mirrored into the world; only keypoint files can be '
                            f'read in left-handed axes')
    return axes.R_world_source


def _read_amass(entries: _Entries, R_world_source: np.ndarray,
                fill_invalid: bool) -> tuple[UnifiedMotion, np.ndarray]:
    raw = entries.numeric('poses', entries.require('poses', 'axis-angle pose per frame'))
    num_frames = raw.shape[0] if raw.ndim >= 1 else 0
    if num_frames < 1:
        raise entries.error(f"entry 'poses' holds no frame (shape {raw.shape})")
    flat = raw.reshape(num_frames, -1) if raw.ndim == 3 and raw.shape[2] == 3 else raw
    if flat.ndim != 2 or flat.shape[1] not in (156, 165):
        raise entries.error(
            f"entry 'poses' must have shape (T, 156) (SMPL-H: root, 21 body, 30 hand joints "
            f'x 3) or (T, 165) (SMPL-X), got {raw.shape}'
        )
    if flat.shape[1] == 156:
        poses = flat.reshape(num_frames, NUM_SMPLH_JOINTS, 3)
    else:  # SMPL-X: body 0:66, jaw 66:69, eyes 69:75, left hand 75:120, right hand 120:165
        poses = np.concatenate([flat[:, :66], flat[:, 75:165]], axis=1).reshape(
            num_frames, NUM_SMPLH_JOINTS, 3)
    trans = entries.numeric('trans', entries.require('trans', 'root translation, metres'))
    if trans.shape != (num_frames, 3):
        raise entries.error(f"entry 'trans' must have shape ({num_frames}, 3), got {trans.shape}")
    fps = entries.fps()
    betas = entries.get('betas')
    if betas is not None:
        betas = entries.numeric('betas', betas).reshape(-1)
    filled, invalid = _fill_invalid(
        entries, {'poses': poses, 'trans': trans}, fill_invalid, 'poses or trans')
    poses, trans = filled['poses'], filled['trans']
    if not np.array_equal(R_world_source, np.eye(3)):
        poses, trans = _rotate_body_world(poses, trans, R_world_source)
    try:
        unified = UnifiedMotion(fps=fps, poses=poses, trans=trans, betas=betas, has_body=True,
                                source=f'amass-smplh:{entries.path.name}')
    except DataSourceError as exc:
        raise entries.error(str(exc)) from exc
    return unified, invalid


def _rotate_body_world(poses: np.ndarray, trans: np.ndarray,
                       R_new_old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a whole SMPL body about the world origin: root rotation and pelvis position."""
    from handx_gen.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    poses = np.array(poses, dtype=np.float64)
    R_root = axis_angle_to_matrix(poses[:, 0])  # (T, 3, 3)
    poses[:, 0] = matrix_to_axis_angle(R_new_old @ R_root)
    pelvis_rest = SMPLH_REST_JOINTS_M[0]
    pelvis_old = pelvis_rest + trans  # (T, 3)
    trans_new = pelvis_old @ R_new_old.T - pelvis_rest
    return poses, trans_new


def read_amass_smplh(
    path: PathLike,
    *,
    up_axis: UpAxis | str | None = None,
    skeletons: Sequence[HandSkeleton] | None = None,
    axes: AxesMap | str | None = None,
) -> BimanualMotion:
    """Read an AMASS-style SMPL-H ``.npz`` as a bimanual motion.

    Args:
        path: The file (entries in the module doc).
        up_axis: The file's up axis, see :class:`UpAxis` (default z).
        skeletons: (left, right) hand skeletons; default skeletons if None.
        axes: The file's axes in place of ``up_axis`` (:mod:`handx_gen.data.frames`).

    Returns:
        The motion: each hand's global orientation is its wrist's global rotation, its
        translation puts the hand's wrist on the body's wrist.

    Raises:
        DataSourceError: Unreadable file, wrong shapes, or non-finite frames (listed).
    """
    return load_source(path, SourceKind.AMASS_SMPLH, up_axis=up_axis, skeletons=skeletons,
                       axes=axes).motion


# ---------------------------------------------------------------------------- MANO


def _mano_hand_pose(entries: _Entries, name: str, value: np.ndarray,
                    lead: tuple[int, ...]) -> np.ndarray:
    """Check a hand pose of shape lead + (15, 3) or lead + (45,)."""
    value = entries.numeric(name, value)
    if value.shape == lead + (NUM_POSE_JOINTS, 3):
        return value
    if value.shape == lead + (3 * NUM_POSE_JOINTS,):
        return value.reshape(lead + (NUM_POSE_JOINTS, 3))
    if value.ndim == len(lead) + 1 and value.shape[:-1] == lead:
        raise entries.error(
            f'entry {name!r} has {value.shape[-1]} numbers per hand, expected 45 (15 joints x '
            f'axis-angle); PCA coefficients are not supported: convert to full flat-hand-'
            f'relative axis-angle first'
        )
    shown = ', '.join(str(n) for n in lead)
    raise entries.error(f'entry {name!r} must have shape ({shown}, 15, 3) or ({shown}, 45), '
                        f'got {value.shape}')


def _check_mano_convention(entries: _Entries) -> None:
    if entries.flag('hand_pose_is_mean_relative'):
        raise entries.error(
            'hand_pose_is_mean_relative is set: only flat-hand-relative axis-angle is supported '
            '(adding the MANO mean pose needs the licensed model)')
    if entries.flag('flat_hand_mean') is False:
        raise entries.error(
            'flat_hand_mean is false: only flat-hand-relative axis-angle is supported')
    if entries.flag('use_pca'):
        raise entries.error('use_pca is set: PCA hand poses are not supported; store the full '
                            'flat-hand-relative axis-angle hand_pose')
    pca = [name for name in entries.names if 'pca' in name.lower() and name != 'use_pca']
    if pca:
        raise entries.error(f'PCA entries {pca} found: PCA hand poses are not supported; store '
                            f'the full flat-hand-relative axis-angle hand_pose')


def _read_mano_arrays(entries: _Entries) -> dict[str, np.ndarray]:
    """Return global_orient (T,2,3), hand_pose (T,2,15,3), transl (T,2,3), betas (2,10)?"""
    _check_mano_convention(entries)
    stacked = [n for n in ('global_orient', 'hand_pose', 'transl') if n in entries]
    split = [n for n in entries.names if n.startswith(('left_', 'right_')) and n.split('_', 1)[1]
             in ('global_orient', 'hand_pose', 'transl', 'betas')]
    if stacked and split:
        raise entries.error(f'both two-hand entries {stacked} and per-hand entries {split}: '
                            f'use one layout')
    out: dict[str, np.ndarray] = {}
    if not split:
        orient = entries.numeric('global_orient', entries.require(
            'global_orient', 'axis-angle wrist rotation per hand, (T, 2, 3)'))
        if orient.ndim != 3 or orient.shape[1:] != (2, 3) or orient.shape[0] < 1:
            raise entries.error(
                f"entry 'global_orient' must have shape (T, 2, 3), got {orient.shape}")
        num_frames = orient.shape[0]
        out['global_orient'] = orient
        out['hand_pose'] = _mano_hand_pose(entries, 'hand_pose', entries.require(
            'hand_pose', '(T, 2, 15, 3) or (T, 2, 45)'), (num_frames, 2))
        transl = entries.numeric('transl', entries.require('transl', '(T, 2, 3) metres'))
        if transl.shape != (num_frames, 2, 3):
            raise entries.error(f"entry 'transl' must have shape ({num_frames}, 2, 3), "
                                f'got {transl.shape}')
        out['transl'] = transl
        betas = entries.get('betas')
        if betas is not None:
            out['betas'] = _mano_betas(entries, 'betas', entries.numeric('betas', betas),
                                       num_frames)
        return out
    per_hand: dict[str, list[np.ndarray]] = {'global_orient': [], 'hand_pose': [], 'transl': []}
    betas_per_hand: list[np.ndarray | None] = []
    num_frames = None
    for side in ('left', 'right'):
        name = f'{side}_global_orient'
        orient = entries.numeric(name, entries.require(name, 'axis-angle wrist rotation (T, 3)'))
        if orient.ndim != 2 or orient.shape[1] != 3 or orient.shape[0] < 1:
            raise entries.error(f'entry {name!r} must have shape (T, 3), got {orient.shape}')
        if num_frames is None:
            num_frames = orient.shape[0]
        _check_frames(entries, name, orient, num_frames)
        per_hand['global_orient'].append(orient)
        name = f'{side}_hand_pose'
        per_hand['hand_pose'].append(_mano_hand_pose(
            entries, name, entries.require(name, '(T, 15, 3) or (T, 45)'), (num_frames,)))
        name = f'{side}_transl'
        transl = entries.numeric(name, entries.require(name, '(T, 3) metres'))
        if transl.shape != (num_frames, 3):
            raise entries.error(f'entry {name!r} must have shape ({num_frames}, 3), '
                                f'got {transl.shape}')
        per_hand['transl'].append(transl)
        betas = entries.get(f'{side}_betas')
        betas_per_hand.append(None if betas is None else entries.numeric(f'{side}_betas', betas))
    out = {name: np.stack(values, axis=1) for name, values in per_hand.items()}
    if any(b is not None for b in betas_per_hand):
        if any(b is None for b in betas_per_hand):
            raise entries.error('betas given for one hand only; give left_betas and right_betas')
        shapes = {b.shape for b in betas_per_hand}  # type: ignore[union-attr]
        if len(shapes) != 1:
            raise entries.error(f'left_betas and right_betas differ in shape: {sorted(shapes)}')
        out['betas'] = _mano_betas(entries, 'left_/right_betas',
                                   np.stack(betas_per_hand, axis=-2), num_frames)
    return out


def _mano_betas(entries: _Entries, name: str, betas: np.ndarray, num_frames: int) -> np.ndarray:
    """(2, 10) betas from (2, 10) or per-frame (T, 2, 10) (averaged over frames)."""
    if betas.shape == (num_frames, 2, 10):
        betas = betas.mean(axis=0)
    if betas.shape != (2, 10):
        raise entries.error(f'entry {name!r} must have shape (2, 10) or ({num_frames}, 2, 10), '
                            f'got {betas.shape}')
    if not np.all(np.isfinite(betas)):
        raise entries.error(f'entry {name!r} has non-finite values')
    return betas


def read_mano_sequence(
    path: PathLike,
    *,
    skeletons: Sequence[HandSkeleton] | None = None,
) -> BimanualMotion:
    """Read per-hand MANO parameter sequences (layouts in the module doc).

    Args:
        path: The file.
        skeletons: (left, right) hand skeletons for the keypoints; default skeletons if None.

    Returns:
        The motion, parameters as stored (flat-hand-relative axis-angle, smplx ``transl``).

    Raises:
        DataSourceError: Unreadable file, missing or misshapen entries, mean-relative or PCA
            hand poses, or non-finite frames (listed).
    """
    return load_source(path, SourceKind.MANO, skeletons=skeletons).motion


# ---------------------------------------------------------------------------- keypoints


def read_keypoint_sequence(path: PathLike, *, side: HandSide | str | None = None
                           ) -> BimanualMotion:
    """Read a 21-keypoint sequence and fit MANO parameters to it.

    Per hand: :func:`~handx_gen.hand.fit.fit_hand`, its skeleton from the finite frames, a pose
    for every frame. The residuals and raw observations are available through
    :func:`load_source`.

    Args:
        path: The file (``keypoints`` (T, 2, 21, 3) or (T, 42, 3), or (T, 21, 3) of the
            ``side`` hand; ``fps``).
        side: The hand of a one-hand file.

    Returns:
        The motion, with keypoints recomputed by forward kinematics of the fit; a hand absent
        from every frame is absent from it.

    Raises:
        DataSourceError: Unreadable file, misshapen entries, or frames with non-finite keypoints
            (listed; use ``load_source(path, fill_invalid=True)`` to mark them instead).
    """
    return load_source(path, SourceKind.KEYPOINTS, side=side).motion


def _read_keypoints(entries: _Entries, fill_invalid: bool, fit_config: FitConfig | None,
                    axes: AxesMap, frame: SourceFrame, place: Placement,
                    one_side: HandSide | None) -> dict[str, Any]:
    from handx_gen.hand.fit import fit_hand
    from handx_gen.hand.skeleton import default_skeleton

    raw = entries.numeric('keypoints', entries.require('keypoints', '(T, 2, 21, 3) metres'))
    if raw.ndim == 3 and raw.shape[1:] == (2 * NUM_KEYPOINTS, 3):
        raw = raw.reshape(raw.shape[0], 2, NUM_KEYPOINTS, 3)
    one_hand = raw.ndim == 3 and raw.shape[1:] == (NUM_KEYPOINTS, 3)
    if one_hand and one_side is None:
        raise entries.error(f"entry 'keypoints' has shape {raw.shape}, one hand: say which "
                            f"(`--side left` or `--side right`; load_source(..., side='right'))")
    if one_side is not None and not one_hand:
        raise entries.error(f"side {one_side.name.lower()} is for a file of one hand, keypoints "
                            f"(T, 21, 3); entry 'keypoints' has shape {raw.shape}")
    if one_hand:
        both = np.full((raw.shape[0], 2, NUM_KEYPOINTS, 3), np.nan)
        both[:, one_side] = raw
        raw = both
    if raw.ndim != 4 or raw.shape[1:] != (2, NUM_KEYPOINTS, 3) or raw.shape[0] < 1:
        raise entries.error(f"entry 'keypoints' must have shape (T, 2, 21, 3) or (T, 42, 3) "
                            f'(both hands) or (T, 21, 3) (one hand, with its side) with T >= 1, '
                            f'got {raw.shape}')
    # A hand written as all zeros in a frame was not seen there (a tracker's "no hand").
    raw = np.where(np.all(raw == 0.0, axis=(-2, -1), keepdims=True), np.nan, raw)
    fps = entries.fps()
    num_frames = raw.shape[0]
    # Before the per-frame fit, which takes time in proportion to the frames.
    check_clip_size(num_frames, fps, what=f'{entries.path}: keypoint sequence',
                    error=DataSourceError)
    # Into the world frame before the fit (a reflection is fine for points), per hand.
    if not axes.is_identity:
        raw = move_points(raw, axes.R_world_source, np.zeros((2, 3)))
    offsets = place_offsets(raw[:, :, 0], frame, place)
    if np.any(offsets):
        raw = move_points(raw, np.eye(3), offsets)
    valid_hand = np.isfinite(raw).all(axis=(-2, -1))  # (T, 2)
    present = valid_hand.any(axis=0)  # (2,): a hand seen in no frame is absent
    if not present.any():
        raise entries.error('neither hand has a frame with finite (and not all-zero) '
                            'keypoints')
    invalid = ~valid_hand[:, present].all(axis=1)
    _report_invalid(entries, invalid, fill_invalid, 'keypoints')
    filled = np.full_like(raw, np.nan)
    for side in HandSide:
        if present[side]:
            filled[:, side] = _interpolate_gaps(raw[:, side], valid_hand[:, side])
    skeletons = []
    orient = np.full((num_frames, 2, 3), np.nan)
    hand_pose = np.full((num_frames, 2, NUM_POSE_JOINTS, 3), np.nan)
    transl = np.full((num_frames, 2, 3), np.nan)
    residual = np.full((num_frames, 2), np.nan)
    try:
        for side in HandSide:
            if not present[side]:
                skeletons.append(default_skeleton(side))
                continue
            result = fit_hand(filled[:, side], side, valid=valid_hand[:, side],
                              config=fit_config)
            skeletons.append(result.skeleton)
            orient[:, side] = result.global_orient
            hand_pose[:, side] = result.hand_pose
            transl[:, side] = result.transl
            residual[:, side] = result.residual_m.mean(axis=-1)
    except HandxError as exc:
        if isinstance(exc, DataSourceError):
            raise
        raise entries.error(f'cannot fit the hand model to the keypoints: {exc}') from exc
    return {
        'fps': fps, 'global_orient': orient, 'hand_pose': hand_pose, 'transl': transl,
        'skeletons': tuple(skeletons), 'invalid': invalid, 'observed': raw, 'residual': residual,
        'change': FrameChange(axes, frame, place, offsets, tuple(bool(v) for v in present)),
        'present': present,
    }


# ---------------------------------------------------------------------------- dispatch


def _optional_skeletons(
    skeletons: Sequence[HandSkeleton] | None,
) -> tuple[HandSkeleton, HandSkeleton] | None:
    return None if skeletons is None else tuple(skeletons)  # type: ignore[return-value]


def _kind(value: SourceKind | str) -> SourceKind:
    if isinstance(value, SourceKind):
        return value
    try:
        return SourceKind(str(value))
    except ValueError:
        raise DataSourceError(unknown_choice('source kind', value, [k.value for k in SourceKind])
                              ) from None


def _detect(entries: _Entries) -> SourceKind:
    names = set(entries.names)
    if 'format' in names:
        return SourceKind.MOTION
    if 'poses' in names:
        return SourceKind.AMASS_SMPLH
    if names & set(_MANO_KEYS):
        return SourceKind.MANO
    if 'keypoints' in names:
        return SourceKind.KEYPOINTS
    kinds = '; '.join(f'{kind.value!r} (entries {keys})' for kind, keys in _KIND_KEYS.items())
    raise entries.error(f'cannot tell the source kind from the entries {sorted(names)}; '
                        f'known kinds: {kinds}')


def detect_kind(path: PathLike) -> SourceKind:
    """Tell a source file's kind from its entries.

    Raises:
        DataSourceError: Unreadable file, or no known kind matches (the message lists the
            kinds and the entries each needs).
    """
    with _open(path) as entries:
        return _detect(entries)


def load_source(
    path: PathLike,
    kind: SourceKind | str | None = None,
    *,
    fill_invalid: bool = False,
    up_axis: UpAxis | str | None = None,
    skeletons: Sequence[HandSkeleton] | None = None,
    fit_config: FitConfig | None = None,
    axes: AxesMap | str | None = None,
    frame: SourceFrame | str = SourceFrame.WORLD,
    place: Placement | str | None = None,
    side: HandSide | str | None = None,
) -> SourceReading:
    """Read any supported source file into a motion, with a report.

    Args:
        path: The file.
        kind: The kind (:class:`SourceKind` or its value); detected from the entries if None.
        fill_invalid: Mark non-finite frames (filled from the nearest good frame) instead of
            failing.
        up_axis: The file's up axis, a shorthand for ``axes`` (``'z'``: the world's axes,
            ``'y'``: ``'right,up,back'``); default z.
        skeletons: (left, right) hand skeletons for parameter sources (default skeletons if
            None); keypoint sources fit their own.
        fit_config: Weights of the fit of a ``keypoints`` source
            (:class:`~handx_gen.hand.fit.FitConfig`); the defaults if None.
        axes: Where the file's x, y and z axes point in the world
            (:class:`~handx_gen.data.frames.AxesMap` or e.g. ``'left,down,back'``); in place of
            ``up_axis``. A reflection (left-handed file axes) only for ``keypoints`` files.
        frame: ``'world'`` (default): world positions; ``'wrist'``: each hand relative to its
            own wrist (not for ``amass-smplh`` files).
        place: ``'canonical'``: move the hands to the usual wrist spots; ``'none'``: leave
            them. Default: canonical for wrist-frame data, none for world data
            (:mod:`handx_gen.data.frames`).
        side: The hand of a ``keypoints`` file of one hand (``keypoints`` (T, 21, 3)),
            ``'left'`` or ``'right'``; the other hand is absent from the motion.

    Returns:
        The :class:`SourceReading`.

    Raises:
        DataSourceError: The file cannot be read as ``kind`` (the message names the file), or
            cannot be moved as asked (a reflection of a parameter source, wrist-frame body),
            or ``side`` is given for a file that is not of one hand's keypoints.
        MotionFormatError: A ``motion`` file is unreadable or of another format version.
        ConfigError: ``axes``, ``up_axis``, ``frame``, ``place`` or ``side`` is not a valid
            value, or both ``axes`` and ``up_axis`` are given.
    """
    from handx_gen.motion import BimanualMotion

    path = Path(path)
    axes_map = _axes(axes, up_axis)
    source = source_frame(frame)
    where = default_placement(source) if place is None else placement(place)
    hand = None if side is None else _side(side)
    with _open(path) as entries:
        source_kind = _detect(entries) if kind is None else _kind(kind)
        if hand is not None and source_kind is not SourceKind.KEYPOINTS:
            raise entries.error(f'side {hand.name.lower()} is for a keypoints file of one hand '
                                f'(keypoints (T, 21, 3)); this is a {source_kind.value} file')
        if source_kind is SourceKind.KEYPOINTS:
            fit = _read_keypoints(entries, fill_invalid, fit_config, axes_map, source, where,
                                  hand)
            motion = _build(entries, BimanualMotion.from_mano, fit['fps'], fit['global_orient'],
                            fit['hand_pose'], fit['transl'], skeletons=fit['skeletons'],
                            present=fit['present'])
            return SourceReading(motion=motion, kind=source_kind, path=path,
                                 invalid_frames=fit['invalid'],
                                 observed_keypoints=fit['observed'],
                                 ik_residual_m=fit['residual'], skeletons=fit['skeletons'],
                                 frame_change=_applied(fit['change']))
        if source_kind is SourceKind.AMASS_SMPLH:
            if source is SourceFrame.WRIST:
                raise entries.error(
                    "frame 'wrist' does not apply to an amass-smplh file: its body places the "
                    "wrists in the world (frame 'world'; place 'canonical' moves the body)")
            unified, invalid = _read_amass(entries, _body_rotation(entries, axes_map),
                                           fill_invalid)
            motion = _build(entries, to_bimanual, unified, skeletons=skeletons)
            offsets = place_offsets(np.asarray(motion.keypoints[:, :, 0]), source, where)
            if np.any(offsets):  # one translation for both hands: the body moves with them
                motion = move_motion(motion, np.eye(3), offsets)
                unified = dataclasses.replace(unified, trans=unified.trans + offsets[0])
            return SourceReading(motion=motion, kind=source_kind, path=path,
                                 invalid_frames=invalid, unified=unified,
                                 skeletons=_optional_skeletons(skeletons),
                                 frame_change=_applied(FrameChange(axes_map, source, where,
                                                                   offsets)))
        if axes_map.is_reflection:
            raise entries.error(
                f'axes {axes_map} are a reflection (left-handed file axes): the file holds hand '
                f"rotations, which a mirror would turn into the other hand's; only keypoint "
                f'files can be read in left-handed axes')
        if source_kind is SourceKind.MOTION:
            motion = BimanualMotion.load(path)
            invalid = np.zeros(motion.num_frames, dtype=bool)
            used_skeletons = None
        else:
            arrays = _read_mano_arrays(entries)
            fps = entries.fps()
            betas = arrays.pop('betas', None)
            arrays, invalid = _fill_invalid(entries, arrays, fill_invalid, 'MANO parameters')
            motion = _build(entries, BimanualMotion.from_mano, fps, betas=betas,
                            skeletons=skeletons, **arrays)
            used_skeletons = _optional_skeletons(skeletons)
        R_world_source = axes_map.R_world_source
        wrists = np.asarray(motion.keypoints[:, :, 0], dtype=np.float64) @ R_world_source.T
        wrists[:, ~motion.present] = np.nan  # an absent hand is placed nowhere
        offsets = place_offsets(wrists, source, where)
        change = FrameChange(axes_map, source, where, offsets,
                             tuple(bool(v) for v in motion.present))
        if not change.is_identity:
            motion = move_motion(motion, R_world_source, offsets)
        return SourceReading(motion=motion, kind=source_kind, path=path, invalid_frames=invalid,
                             skeletons=used_skeletons, frame_change=_applied(change))


def _side(value: HandSide | str) -> HandSide:
    if isinstance(value, HandSide):
        return value
    try:
        return HandSide[str(value).strip().upper()]
    except KeyError:
        raise ConfigError(unknown_choice('hand side', value,
                                         [s.name.lower() for s in HandSide])) from None


def _applied(change: FrameChange) -> FrameChange | None:
    """The change, or None when the file was read as it is (world axes and frame, not moved)."""
    if change.is_identity and change.frame is SourceFrame.WORLD:
        return None
    return change


def read_source(
    path: PathLike,
    kind: SourceKind | str | None = None,
    *,
    up_axis: UpAxis | str | None = None,
    axes: AxesMap | str | None = None,
    frame: SourceFrame | str = SourceFrame.WORLD,
    place: Placement | str | None = None,
    side: HandSide | str | None = None,
) -> BimanualMotion:
    """Read any supported source file (kind detected from its entries when not given); the
    axes, frame, placement and the side of a one-hand keypoints file as in
    :func:`load_source`.

    Raises:
        DataSourceError: The file cannot be read; when the kind cannot be detected, the
            message lists every kind and the entries it needs.
        MotionFormatError: A ``motion`` file is unreadable or of another format version.
    """
    return load_source(path, kind, up_axis=up_axis, axes=axes, frame=frame, place=place,
                       side=side).motion
