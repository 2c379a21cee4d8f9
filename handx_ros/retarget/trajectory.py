"""Robot joint trajectories and their file format, ``handx-robot-trajectory/1``.

A :class:`RobotTrajectory` is what retargeting produces: joint positions for one robot folder
at a fixed frame rate, with the floating wrist poses of hand robots, per-frame solver status
and free-form metadata. Joints are named, never positional: ``joint_names`` are the robot's
controller names, in the column order of ``qpos``.

Units: radians (metres for prismatic joints), metres for positions, seconds.

File entries (``.npz``, read without pickle):

* ``format`` (str) ``'handx-robot-trajectory/1'``; ``robot`` (str); ``fps`` (float64);
* ``joint_names`` (nq,) str; ``qpos`` (T, nq) float64;
* optional ``base_poses`` (T, 2, 7) float64 (xyz, quaternion wxyz; left hand first),
  ``converged`` (T,) bool, ``residual_m`` (T,) float64;
* ``info`` (str): the metadata as JSON. A trajectory retargeted from a motion file records it
  (:meth:`RobotTrajectory.with_source`): ``source_motion`` (the path) and ``source_clip``
  (``fps``, ``frames`` and ``fingerprint`` of the clip), so a simulation against a human clip
  can check it is the one (:meth:`RobotTrajectory.check_source`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.errors import MotionError, MotionFormatError, unknown_choice
from handx_gen.npz import check_entries, decode_json, read_npz, write_npz
from handx_gen.rates import MAX_FRAMES, check_clip_size, check_fps

__all__ = ['SOURCE_CLIP_INFO_KEY', 'TRAJECTORY_FORMAT', 'RobotTrajectory']

TRAJECTORY_FORMAT = 'handx-robot-trajectory/1'

# info entry of the clip a trajectory was retargeted from: fps, frames, fingerprint
SOURCE_CLIP_INFO_KEY = 'source_clip'

# Quaternions whose norm is within this of 1 are normalised; others are rejected as not
# rotations (a float32 round trip stays far inside it, a zero or unnormalised one does not).
QUAT_NORM_TOLERANCE = 1e-3

# Norm error left by normalising in float64 (a few ulp); below it a quaternion is left as is.
_QUAT_ROUNDING = 1e-12

PathLike = str | os.PathLike


@dataclasses.dataclass(frozen=True, eq=False)
class RobotTrajectory:
    """Joint positions of one robot over time.

    The constructor validates and copies every input; the stored arrays are read-only.

    Attributes:
        robot: Robot folder name in ``robot_models/`` (e.g. ``'allegro'``).
        fps: Frames per second, > 0 and finite.
        joint_names: (nq,) unique controller joint names, the columns of ``qpos``.
        qpos: (T, nq) float64 joint positions, radians (metres for prismatic joints), T >= 1.
        base_poses: (T, 2, 7) float64 floating wrist (base link) poses, left hand first, each
            xyz in metres then a unit quaternion wxyz; ``None`` for robots without floating
            wrists. Quaternions within :data:`QUAT_NORM_TOLERANCE` of unit norm are normalised.
        converged: (T,) bool, whether the solver converged on each frame, or ``None``.
        residual_m: (T,) float64 final residual of each frame, metres, >= 0, or ``None``.
        info: JSON-compatible metadata (source motion, backend, configuration...). Kept as a
            JSON round trip of what was given (tuples become lists, keys strings), so a saved
            and loaded trajectory has an equal ``info``.
    """

    robot: str
    fps: float
    joint_names: tuple[str, ...]
    qpos: np.ndarray
    base_poses: np.ndarray | None = None
    converged: np.ndarray | None = None
    residual_m: np.ndarray | None = None
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate, copy and freeze the fields.

        Raises:
            MotionError: A field has the wrong type, shape or dtype, holds non-finite values,
                repeated joint names, a non-unit quaternion or a negative residual; the
                message names the field, the shape received and the shape expected.
        """
        if not isinstance(self.robot, str) or not self.robot:
            raise MotionError(f'robot must be a non-empty str, got {self.robot!r}')
        joint_names = _check_joint_names(self.joint_names)
        qpos = _float_array('qpos', self.qpos)
        if qpos.ndim != 2 or qpos.shape[1] != len(joint_names) or qpos.shape[0] < 1:
            raise MotionError(
                f'qpos: expected shape (T, {len(joint_names)}) with T >= 1 (one column per '
                f'joint name), got {qpos.shape}')
        num_frames = qpos.shape[0]
        fps = check_fps(self.fps)
        check_clip_size(num_frames, fps, what='trajectory')
        base_poses = None
        if self.base_poses is not None:
            base_poses = _check_shape(
                'base_poses', _float_array('base_poses', self.base_poses), (num_frames, 2, 7))
            base_poses = _normalised_quaternions(base_poses)
        converged = None
        if self.converged is not None:
            converged = np.array(self.converged, copy=True)
            if converged.dtype != np.bool_:
                raise MotionError(
                    f'converged must be a bool array, got dtype {converged.dtype} with shape '
                    f'{converged.shape}')
            converged = _check_shape('converged', converged, (num_frames,))
        residual_m = None
        if self.residual_m is not None:
            residual_m = _check_shape(
                'residual_m', _float_array('residual_m', self.residual_m), (num_frames,))
            if np.any(residual_m < 0.0):
                first = int(np.argmax(residual_m < 0.0))
                raise MotionError(
                    f'residual_m must be >= 0, got {residual_m[first]!r} at frame {first}')
        set_field = object.__setattr__
        set_field(self, 'fps', fps)
        set_field(self, 'joint_names', joint_names)
        set_field(self, 'qpos', _frozen(qpos))
        set_field(self, 'base_poses', None if base_poses is None else _frozen(base_poses))
        set_field(self, 'converged', None if converged is None else _frozen(converged))
        set_field(self, 'residual_m', None if residual_m is None else _frozen(residual_m))
        set_field(self, 'info', json.loads(_info_to_json(self.info)))

    # ------------------------------------------------------------------ accessors

    @property
    def num_frames(self) -> int:
        """Number of frames T."""
        return int(self.qpos.shape[0])

    @property
    def num_joints(self) -> int:
        """Number of joints nq."""
        return len(self.joint_names)

    @property
    def duration_s(self) -> float:
        """Clip length ``num_frames / fps``: each frame covers one frame period."""
        return self.num_frames / self.fps

    @property
    def times_s(self) -> np.ndarray:
        """(T,) float64 time of each frame from the first, seconds."""
        return np.arange(self.num_frames, dtype=np.float64) / self.fps

    def __len__(self) -> int:
        return self.num_frames

    def __repr__(self) -> str:
        extras = [name for name in ('base_poses', 'converged', 'residual_m')
                  if getattr(self, name) is not None]
        return (f'RobotTrajectory(robot={self.robot!r}, frames={self.num_frames}, '
                f'joints={self.num_joints}, fps={self.fps:g}, '
                f'extras=[{", ".join(extras)}])')

    def joint_index(self, name: str) -> int:
        """Column of ``qpos`` holding joint ``name``.

        Raises:
            MotionError: No joint has that name; the message lists every joint name.
        """
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise MotionError(unknown_choice('joint', name, self.joint_names)) from None

    def column(self, name: str) -> np.ndarray:
        """(T,) read-only positions of joint ``name`` over time.

        Raises:
            MotionError: No joint has that name.
        """
        return self.qpos[:, self.joint_index(name)]

    def __getitem__(self, frames: slice) -> RobotTrajectory:
        """Frames selected by a slice, as a trajectory.

        A step ``k > 1`` keeps every k-th frame and divides the fps by ``k``. Joint names,
        robot and info are kept.

        Raises:
            TypeError: ``frames`` is not a slice.
            MotionError: A step < 1, or the slice selects no frame.
        """
        if not isinstance(frames, slice):
            raise TypeError(
                f'RobotTrajectory indices must be slices over frames, got '
                f'{type(frames).__name__}')
        step = 1 if frames.step is None else frames.step
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) \
                or step < 1:
            raise MotionError(f'frame slice step must be an integer >= 1, got {frames.step!r}')
        if len(range(self.num_frames)[frames]) == 0:
            raise MotionError(
                f'frame slice {frames} selects no frame of a {self.num_frames}-frame trajectory')

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[frames]

        return RobotTrajectory(
            robot=self.robot, fps=self.fps / int(step), joint_names=self.joint_names,
            qpos=self.qpos[frames], base_poses=pick(self.base_poses),
            converged=pick(self.converged), residual_m=pick(self.residual_m), info=self.info)

    # ------------------------------------------------------------------ files

    def with_info(self, **entries: Any) -> RobotTrajectory:
        """A copy with ``entries`` added to :attr:`info` (JSON-compatible values)."""
        return dataclasses.replace(self, info={**self.info, **entries})

    def with_source(self, motion: Any, path: PathLike) -> RobotTrajectory:
        """A copy that records the clip it was retargeted from: ``info['source_motion']`` (the
        path) and ``info['source_clip']`` (its ``fps``, ``frames`` and
        :meth:`~handx_gen.motion.container.BimanualMotion.fingerprint`)."""
        return self.with_info(source_motion=str(path), **{SOURCE_CLIP_INFO_KEY: {
            'fps': float(motion.fps), 'frames': int(motion.num_frames),
            'fingerprint': motion.fingerprint()}})

    def check_source(self, motion: Any, name: str = 'the motion') -> None:
        """Refuse a human clip that is not the one this trajectory was retargeted from.

        Compared with ``info['source_clip']``: frame rate, frame count and fingerprint (a
        different clip of the same length differs there). A trajectory without the record
        (written before it, or not from a file) is not checked.

        Args:
            motion: The human clip (a :class:`~handx_gen.motion.container.BimanualMotion`).
            name: What to call it in the message (its file).

        Raises:
            MotionError: One line naming what differs and the recorded source.
        """
        record = self.info.get(SOURCE_CLIP_INFO_KEY)
        if not isinstance(record, Mapping):
            return
        source = self.info.get('source_motion')
        source = f' ({source})' if isinstance(source, str) else ''
        fps, frames = record.get('fps'), record.get('frames')
        if isinstance(fps, (int, float)) and abs(float(motion.fps) - fps) > 1e-9 * fps:
            raise MotionError(f'{name} is at {motion.fps:g} fps; the trajectory was retargeted '
                              f'from a clip at {fps:g} fps{source}')
        if isinstance(frames, int) and motion.num_frames != frames:
            raise MotionError(f'{name} has {motion.num_frames} frames; the trajectory was '
                              f'retargeted from a clip of {frames}{source}')
        expected = record.get('fingerprint')
        if isinstance(expected, str) and motion.fingerprint() != expected:
            raise MotionError(f'{name} is not the clip the trajectory was retargeted '
                              f'from{source}: same rate and length, different keypoints '
                              f'(fingerprint {motion.fingerprint()}, recorded {expected})')

    def save(self, path: PathLike) -> Path:
        """Write the trajectory as a ``handx-robot-trajectory/1`` ``.npz`` file.

        The file is written to a temporary name beside ``path`` and moved into place, so a
        crash never leaves a half-written file under ``path``. A ``.npz`` suffix is appended
        when ``path`` lacks it (as :func:`numpy.savez` does); missing parent folders are
        created.

        Returns:
            The path written.
        """
        path = Path(path)
        if path.suffix != '.npz':
            path = path.with_name(path.name + '.npz')
        entries: dict[str, np.ndarray] = {
            'format': np.array(TRAJECTORY_FORMAT),
            'robot': np.array(self.robot),
            'fps': np.array(self.fps, dtype=np.float64),
            'joint_names': np.array(self.joint_names, dtype=np.str_),
            'qpos': self.qpos,
            'info': np.array(_info_to_json(self.info)),
        }
        for name in ('base_poses', 'converged', 'residual_m'):
            value = getattr(self, name)
            if value is not None:
                entries[name] = value
        return write_npz(path, entries)

    @classmethod
    def load(cls, path: PathLike) -> RobotTrajectory:
        """Read a ``handx-robot-trajectory/1`` ``.npz`` file (never unpickles).

        Unknown extra entries are ignored.

        Raises:
            MotionFormatError: The file is missing, not an ``.npz`` archive, corrupt or
                truncated, of another format, lacks an entry, or holds an entry of the wrong
                shape, type or with invalid values. The message names the file and what was
                wrong.
        """
        entries = read_npz(path, MotionFormatError, TRAJECTORY_FORMAT, _ENTRY_NAMES,
                           max_frames=MAX_FRAMES)
        return cls._from_entries(entries, str(path))

    @classmethod
    def _from_entries(cls, entries: Mapping[str, np.ndarray], source: str) -> RobotTrajectory:
        check_entries(entries, TRAJECTORY_FORMAT, ('robot', 'fps', 'joint_names', 'qpos'),
                      source, 'robot trajectory', MotionFormatError)
        robot = _string_entry(entries, 'robot', source)
        fps = entries['fps']
        if fps.shape != () or fps.dtype.kind not in 'fiu':
            raise MotionFormatError(
                f'{source}: "fps" must be a numeric scalar, got dtype {fps.dtype} shape '
                f'{fps.shape}')
        names = entries['joint_names']
        if names.ndim != 1 or names.dtype.kind != 'U':
            raise MotionFormatError(
                f'{source}: "joint_names" must be a 1-D array of str, got dtype {names.dtype} '
                f'shape {names.shape}')
        info: Any = {}
        if 'info' in entries:
            info = decode_json(entries['info'], 'info', source, MotionFormatError)
            if not isinstance(info, dict):
                raise MotionFormatError(
                    f'{source}: "info" must hold a JSON object, got {type(info).__name__}')
        try:
            return cls(
                robot=robot, fps=float(fps), joint_names=tuple(str(n) for n in names),
                qpos=entries['qpos'], base_poses=entries.get('base_poses'),
                converged=entries.get('converged'), residual_m=entries.get('residual_m'),
                info=info)
        except MotionError as exc:
            raise MotionFormatError(f'{source}: {exc}') from exc


# Every entry a trajectory file may hold; others are never read.
_ENTRY_NAMES = ('format', 'robot', 'fps', 'joint_names', 'qpos', 'info', 'base_poses',
                'converged', 'residual_m')


# ---------------------------------------------------------------------- validation


def _check_joint_names(names: object) -> tuple[str, ...]:
    if isinstance(names, str):
        raise MotionError(f'joint_names must be a sequence of str, got the str {names!r}')
    if isinstance(names, np.ndarray):
        names = names.tolist()
    if not isinstance(names, Sequence):
        raise MotionError(
            f'joint_names must be a sequence of str, got {type(names).__name__}')
    names = tuple(names)
    if not names:
        raise MotionError('joint_names must name at least one joint, got none')
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise MotionError(f'joint_names[{index}] must be a non-empty str, got {name!r}')
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MotionError(f'joint_names must be unique; repeated: {repeated}')
    return names


def _float_array(name: str, value: object) -> np.ndarray:
    """Copy ``value`` into a finite float64 array."""
    raw = np.asarray(value)
    if raw.dtype.kind not in 'fiu':
        raise MotionError(
            f'{name} must be a numeric array, got dtype {raw.dtype} with shape {raw.shape}')
    array = np.array(raw, dtype=np.float64, copy=True)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        first = tuple(int(i) for i in bad[0])
        raise MotionError(
            f'{name} has {len(bad)} non-finite values (first at index {first}), '
            f'shape {array.shape}')
    return array


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if array.shape != shape:
        raise MotionError(f'{name}: expected shape {shape}, got {array.shape}')
    return array


def _normalised_quaternions(base_poses: np.ndarray) -> np.ndarray:
    """Normalise the wxyz quaternions of (T, 2, 7) poses, rejecting non-unit ones."""
    norm = np.linalg.norm(base_poses[..., 3:], axis=-1)  # (T, 2)
    bad = np.abs(norm - 1.0) > QUAT_NORM_TOLERANCE
    if np.any(bad):
        frame, hand = (int(i) for i in np.argwhere(bad)[0])
        raise MotionError(
            f'base_poses[{frame}, {hand}, 3:] must be a unit quaternion (wxyz), got norm '
            f'{norm[frame, hand]:.6g} ({int(bad.sum())} non-unit quaternions in all)')
    # Only quaternions off by more than rounding: normalising is not exactly idempotent, and a
    # save/load round trip must give back the same numbers.
    off = np.abs(norm - 1.0) > _QUAT_ROUNDING
    base_poses[off, 3:] /= norm[off, None]
    return base_poses


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _info_to_json(info: object) -> str:
    if not isinstance(info, Mapping):
        raise MotionError(f'info must be a mapping, got {type(info).__name__}')
    try:
        return json.dumps(dict(info), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MotionError(f'info is not JSON-serialisable: {exc}') from exc


def _string_entry(entries: Mapping[str, np.ndarray], name: str, source: str) -> str:
    value = entries[name]
    if value.dtype.kind != 'U' or value.ndim != 0:
        raise MotionFormatError(
            f'{source}: "{name}" must be a string, got dtype {value.dtype} shape {value.shape}')
    return str(value)
