"""ROS messages to HandX arrays and back: the only module that does either.

Every node is thin (message -> these conversions -> library -> these conversions -> message),
so every check on what arrives over the wire lives here. A message that cannot be turned into
the arrays it should carry raises :class:`~handx_gen.errors.MessageError`, whose text names
the bad value (or shape) and what was expected; nothing here crashes on hostile input (wrong
counts, oversized payloads, NaN/inf, absurd values, wrong frame ids or names). Sizes are
checked before anything large is converted.

Encodings (topics in :mod:`handx_ros.graph`):

* prompt: ``std_msgs/String``, stripped text.
* motion clip: ``trajectory_msgs/MultiDOFJointTrajectory`` with joint names
  :data:`MOTION_JOINT_NAMES` (42 keypoints ``'<side>/<keypoint>'``, left first, then the two
  ``'<side>/mano_root'``), one point per frame at ``time_from_start = frame / fps``. Keypoint
  transforms carry the world keypoint as translation and, as rotation, the wrist's
  ``global_orient``, each MANO joint's local ``hand_pose`` rotation, identity for the tips;
  ``mano_root`` carries ``(transl, global_orient)``. ROS quaternions are ``(x, y, z, w)``;
  the arrays here are ``(w, x, y, z)`` (:mod:`handx_gen.hand.rotations`). Betas, texts and
  the annotation do not travel.
* observed hands: ``geometry_msgs/PoseArray`` of 42 keypoint positions, left first, identity
  orientations, NaN positions for an absent hand.
* robot trajectory: ``trajectory_msgs/JointTrajectory``; a clip has >= 2 points at
  ``frame / fps``, a live target exactly one. Floating wrist bases travel as 12 virtual joints
  ``'<side>/<suffix>'`` (:data:`BASE_JOINT_SUFFIXES`: position in metres, then the rotation
  vector of the wxyz quaternion in radians) after the robot joints.
* controller command: a one-point ``JointTrajectory`` at ``time_from_start = horizon_s``;
  joint state: ``sensor_msgs/JointState``.
* sim report: ``diagnostic_msgs/DiagnosticArray`` with one status named
  :data:`SIM_REPORT_NAME`.
* markers: ``visualization_msgs/MarkerArray`` of bones and joints per present hand.

Times: a ``builtin_interfaces/Time`` is a float of seconds here (:func:`stamp_to_s`,
:func:`stamp_from_s`). Converting a stamp to seconds and back is stable:
``stamp_to_s(stamp_from_s(stamp_to_s(s))) == stamp_to_s(s)``, so a stamp passed along as a
float and re-published compares equal downstream.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point, Pose, PoseArray, Quaternion, Transform, Vector3
from sensor_msgs.msg import JointState
from std_msgs.msg import ColorRGBA, Header, String
from trajectory_msgs.msg import (
    JointTrajectory,
    JointTrajectoryPoint,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)
from visualization_msgs.msg import Marker, MarkerArray

from handx_gen.errors import HandxError, MessageError
from handx_gen.hand import rotations
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
)
from handx_gen.motion.container import BimanualMotion
from handx_gen.rates import MAX_FPS, MIN_FPS, check_fps
from handx_ros.retarget.trajectory import RobotTrajectory

__all__ = [
    'BASE_JOINT_NAMES',
    'BASE_JOINT_SUFFIXES',
    'KEYPOINT_JOINT_NAMES',
    'MANO_ROOT_JOINT_NAMES',
    'MAX_ABS_JOINT_VALUE',
    'MAX_ABS_POSITION_M',
    'MAX_FPS',
    'MAX_MOTION_FRAMES',
    'MAX_PROMPT_CHARS',
    'MAX_TRAJECTORY_POINTS',
    'MOTION_JOINT_NAMES',
    'QUAT_NORM_TOLERANCE',
    'SIDES',
    'SIM_REPORT_NAME',
    'MAX_OBSERVED_BYTES',
    'ObservedFrame',
    'controller_command_msg',
    'hand_markers_msg',
    'is_live_target',
    'joint_state_msg',
    'keypoints_to_pose_array',
    'live_target_from_msg',
    'motion_from_msg',
    'motion_to_msg',
    'observed_from_cdr',
    'observed_from_msg',
    'sim_report_from_msg',
    'sim_report_msg',
    'stamp_from_s',
    'stamp_to_s',
    'text_from_msg',
    'trajectory_from_msg',
    'trajectory_to_msg',
]

MAX_PROMPT_CHARS = 2000
MAX_MOTION_FRAMES = 9000
MAX_TRAJECTORY_POINTS = 9000
MAX_ABS_POSITION_M = 10.0  # any position (keypoint, translation, base) farther is absurd
MAX_ABS_JOINT_VALUE = 1000.0  # rad or m; a joint value beyond is garbage, not a pose
# Quaternions whose norm is within this of 1 are normalised; others are rejected.
QUAT_NORM_TOLERANCE = 1e-3
# Wrist keypoint and mano_root rotations of one frame must agree within this angle (rad).
_ROOT_AGREEMENT_RAD = 1e-3
# Frame times may deviate from uniform by this fraction of the period (or 2 ns, if more).
_TIMING_TOLERANCE = 1e-4
_TIMING_TOLERANCE_NS = 2

SIDES: tuple[str, str] = ('left', 'right')
KEYPOINT_JOINT_NAMES: tuple[str, ...] = tuple(
    f'{side}/{name}' for side in SIDES for name in KEYPOINT_NAMES)  # 42
MANO_ROOT_JOINT_NAMES: tuple[str, str] = ('left/mano_root', 'right/mano_root')
MOTION_JOINT_NAMES: tuple[str, ...] = KEYPOINT_JOINT_NAMES + MANO_ROOT_JOINT_NAMES  # 44
BASE_JOINT_SUFFIXES: tuple[str, ...] = (
    'base_x', 'base_y', 'base_z', 'base_rx', 'base_ry', 'base_rz')
BASE_JOINT_NAMES: tuple[str, ...] = tuple(
    f'{side}/{suffix}' for side in SIDES for suffix in BASE_JOINT_SUFFIXES)  # 12
SIM_REPORT_NAME = 'handx/sim_gate'

_NUM_HAND_POSES = 2 * NUM_KEYPOINTS  # 42
_NUM_MOTION_TRANSFORMS = len(MOTION_JOINT_NAMES)  # 44
_MOTION_NAME_INDEX = {name: i for i, name in enumerate(MOTION_JOINT_NAMES)}
_BASE_NAME_SET = frozenset(BASE_JOINT_NAMES)
_POSE_KEYPOINTS = np.asarray(KEYPOINT_FROM_MANO_JOINT[1:])  # (15,) keypoint of each pose row
_BONE_CHILDREN = np.arange(1, NUM_KEYPOINTS)  # (20,)
_BONE_PARENTS = np.asarray(KEYPOINT_PARENTS[1:])  # (20,)
_SIM_RESERVED_KEYS = ('passed', 'motion_stamp', 'reasons')
_MARKER_COLORS = ((0.2, 0.5, 1.0), (1.0, 0.45, 0.2))  # left, right (rgb)
_MARKER_LINE_WIDTH_M = 0.004
_MARKER_SPHERE_M = 0.01
_MAX_SHOWN = 80  # characters of a bad value shown in an error message


# ---------------------------------------------------------------------------- time


def stamp_to_s(stamp: Time) -> float:
    """Seconds of a ``builtin_interfaces/Time`` (or ``Duration``)."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def stamp_from_s(t: float) -> Time:
    """A ``builtin_interfaces/Time`` for ``t`` seconds, rounded to the nearest nanosecond.

    Raises:
        MessageError: ``t`` is not finite, negative or beyond the int32 seconds of a stamp.
    """
    sec, nanosec = _split_seconds('stamp', t)
    return Time(sec=sec, nanosec=nanosec)


def _duration_from_s(t: float) -> Duration:
    sec, nanosec = _split_seconds('duration', t)
    return Duration(sec=sec, nanosec=nanosec)


def _split_seconds(what: str, t: float) -> tuple[int, int]:
    """(sec, nanosec) of ``t`` seconds; the integer part is split off exactly first."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)):
        raise MessageError(f'{what} must be a number of seconds, got {_shown(t)}')
    t = float(t)
    if not math.isfinite(t) or t < 0.0 or t >= 2.0 ** 31:
        raise MessageError(f'{what} must be finite and in [0, 2**31) s, got {t!r}')
    sec = math.floor(t)
    nanosec = round((t - sec) * 1e9)  # t - sec is exact for a float
    if nanosec >= 1_000_000_000:
        sec, nanosec = sec + 1, nanosec - 1_000_000_000
    return int(sec), int(nanosec)


def _frame_times_ns(num_frames: int, fps: float) -> np.ndarray:
    """(T,) int64 nanoseconds of frame ``i`` at ``i / fps``; the one formula both ways."""
    return np.rint(np.arange(num_frames, dtype=np.float64) * (1e9 / fps)).astype(np.int64)


def _times_ns(points: Sequence[Any]) -> np.ndarray:
    """(T,) int64 ``time_from_start`` of each point, nanoseconds."""
    count = len(points)
    sec = np.fromiter((p.time_from_start.sec for p in points), np.int64, count)
    nanosec = np.fromiter((p.time_from_start.nanosec for p in points), np.int64, count)
    return sec * 1_000_000_000 + nanosec


def _fps_from_times(times_ns: np.ndarray, what: str) -> float:
    """Frame rate of points at ``i / fps`` (the first at 0), recovered exactly when possible.

    Raises:
        MessageError: The first time is not 0, the times do not rise uniformly, or the rate
            is outside [MIN_FPS, MAX_FPS] (:mod:`handx_gen.rates`).
    """
    num = times_ns.shape[0]
    span = int(times_ns[-1] - times_ns[0])
    period = span / (num - 1) if span > 0 else 0.0
    tolerance = max(_TIMING_TOLERANCE_NS, _TIMING_TOLERANCE * period)
    if abs(int(times_ns[0])) > tolerance:
        raise MessageError(
            f'{what}: time_from_start of the first point must be 0, got '
            f'{times_ns[0] * 1e-9!r} s')
    steps = np.diff(times_ns)  # (T - 1,)
    if period <= 0.0 or np.any(steps <= 0):
        first = int(np.argmax(steps <= 0)) if np.any(steps <= 0) else 0
        raise MessageError(
            f'{what}: time_from_start must rise strictly, got {times_ns[first] * 1e-9!r} s '
            f'then {times_ns[first + 1] * 1e-9!r} s at points {first} and {first + 1}')
    deviation = np.abs(times_ns - times_ns[0] - np.arange(num) * period)  # (T,)
    worst = int(np.argmax(deviation))
    if deviation[worst] > tolerance:
        raise MessageError(
            f'{what}: time_from_start must be uniform (frame / fps); point {worst} is at '
            f'{times_ns[worst] * 1e-9!r} s, {deviation[worst] * 1e-9:.3g} s off a period of '
            f'{period * 1e-9:.6g} s')
    fps = check_fps(1e9 / period, what=f'{what}: frame rate', error=MessageError)
    for decimals in range(7):  # the rate that produced exactly these nanoseconds, if short
        candidate = round(fps, decimals)
        if MIN_FPS <= candidate <= MAX_FPS and np.array_equal(
                _frame_times_ns(num, candidate), times_ns):
            return candidate
    return fps


# ---------------------------------------------------------------------------- checks


def _shown(value: object) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else f'{text[:_MAX_SHOWN]}... ({len(text)} chars)'


def _check_frame_id(msg: Any, frame_id: str, what: str) -> None:
    got = msg.header.frame_id
    if got != frame_id:
        raise MessageError(f'{what}: frame_id must be {frame_id!r}, got {_shown(got)}')


def _check_count(what: str, count: int, low: int, high: int, unit: str) -> None:
    if not low <= count <= high:
        expected = f'exactly {low}' if low == high else f'{low} to {high}'
        raise MessageError(f'{what}: expected {expected} {unit}, got {count}')


def _check_finite(what: str, values: np.ndarray, labels: Sequence[str] | None = None) -> None:
    """Raise naming the first non-finite entry (by label along the last-but-one axis)."""
    bad = ~np.isfinite(values)
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad)), values.shape)
        where = f'index {tuple(int(i) for i in index)}'
        if labels is not None and values.ndim >= 2:
            where += f' ({labels[index[-2]]})'
        raise MessageError(
            f'{what}: values must be finite, got {float(values[index])!r} at {where}')


def _first_over(values: np.ndarray, bound: float) -> tuple[int, ...] | None:
    """Index of the first value with ``|value| > bound``, ``None`` if there is none."""
    over = np.abs(values) > bound
    if not over.any():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(over)), values.shape))


def _check_bound(what: str, values: np.ndarray, bound: float, unit: str) -> None:
    index = _first_over(values, bound)
    if index is not None:
        raise MessageError(f'{what}: |value| must be <= {bound:g} {unit}, got '
                           f'{float(values[index])!r} at index {index}')


def _checked_names(what: str, names: Sequence[str]) -> tuple[str, ...]:
    """Joint names as a tuple of unique, non-empty strings."""
    if isinstance(names, str):
        raise MessageError(f'{what}: joint names must be a sequence of str, got a str')
    names = tuple(names)
    if not all(isinstance(n, str) and n for n in names):
        bad = next(n for n in names if not isinstance(n, str) or not n)
        raise MessageError(f'{what}: joint names must be non-empty str, got {_shown(bad)}')
    if len(set(names)) != len(names):
        raise MessageError(f'{what}: joint name {_first_repeated(names)!r} appears more than '
                           'once')
    return names


def _first_repeated(names: Sequence[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    raise AssertionError('no repeated name')


def _names_mismatch(what: str, got: Sequence[str], expected: Sequence[str]) -> MessageError:
    got_set, expected_set = set(got), set(expected)
    missing = [n for n in expected if n not in got_set]
    unexpected = [n for n in got if n not in expected_set]
    return MessageError(
        f'{what}: joint names must be the {len(expected)} names {_shown(list(expected))}; '
        f'missing {_shown(missing)}, unexpected {_shown(unexpected)}')


def _unit_quaternions(what: str, quat: np.ndarray) -> np.ndarray:
    """Normalise (..., 4) quaternions whose norm is within QUAT_NORM_TOLERANCE of 1."""
    norm = np.linalg.norm(quat, axis=-1, keepdims=True)  # (..., 1)
    bad = np.abs(norm[..., 0] - 1.0) > QUAT_NORM_TOLERANCE
    if bad.any():
        index = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise MessageError(
            f'{what}: quaternions must have unit norm (within {QUAT_NORM_TOLERANCE:g}), got '
            f'norm {float(norm[index][0])!r} at index {tuple(int(i) for i in index)}')
    return quat / norm


def _float_vector(what: str, values: object, length: int) -> np.ndarray:
    """A finite (length,) float64 vector from the caller's arrays."""
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise MessageError(f'{what}: expected {length} numbers, got {_shown(values)}') from error
    if vector.shape != (length,):
        raise MessageError(f'{what}: expected shape ({length},), got {vector.shape}')
    _check_finite(what, vector)
    return vector


def _header(stamp_s: float, frame_id: str = '') -> Header:
    return Header(stamp=stamp_from_s(stamp_s), frame_id=frame_id)


# ---------------------------------------------------------------------------- text


def text_from_msg(msg: String, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """The stripped prompt of a ``std_msgs/String``.

    Raises:
        MessageError: The text is empty or whitespace only, longer than ``max_chars`` after
            stripping, or contains a NUL character.
    """
    text = msg.data
    if not isinstance(text, str):
        raise MessageError(f'prompt: expected a str, got {type(text).__name__}')
    text = text.strip()
    if not text:
        raise MessageError(f'prompt: empty or whitespace-only text {_shown(msg.data)}')
    if len(text) > max_chars:
        raise MessageError(
            f'prompt: at most {max_chars} characters allowed, got {len(text)}: {_shown(text)}')
    if '\x00' in text:
        raise MessageError(f'prompt: contains a NUL character at {text.index(chr(0))}: '
                           f'{_shown(text)}')
    return text


# ---------------------------------------------------------------------------- motion


def motion_to_msg(
    motion: BimanualMotion, *, stamp_s: float, frame_id: str = 'world',
) -> MultiDOFJointTrajectory:
    """Encode a motion clip, one point per frame (see the module docstring).

    Args:
        motion: The clip.
        stamp_s: Header stamp, seconds.
        frame_id: World frame name.

    Returns:
        The message; :func:`motion_from_msg` gives the motion back (float32 keypoints exact,
        rotations to ~1e-12 rad for angles below pi; betas, texts and annotation dropped).
    """
    num_frames = motion.num_frames
    translation = np.empty((num_frames, _NUM_MOTION_TRANSFORMS, 3))  # (T, 44, 3)
    translation[:, :_NUM_HAND_POSES] = motion.keypoints.reshape(num_frames, _NUM_HAND_POSES, 3)
    translation[:, _NUM_HAND_POSES:] = motion.transl
    rotvec = np.zeros((num_frames, 2, NUM_KEYPOINTS, 3))  # (T, 2, 21, 3), tips identity
    rotvec[:, :, 0] = motion.global_orient
    rotvec[:, :, _POSE_KEYPOINTS] = motion.hand_pose
    quat = np.empty((num_frames, _NUM_MOTION_TRANSFORMS, 4))  # (T, 44, 4) wxyz
    quat[:, :_NUM_HAND_POSES] = rotations.axis_angle_to_quaternion(rotvec).reshape(
        num_frames, _NUM_HAND_POSES, 4)
    quat[:, _NUM_HAND_POSES:] = rotations.axis_angle_to_quaternion(motion.global_orient)
    values = np.concatenate([translation, quat[..., 1:], quat[..., :1]], -1).tolist()
    times_ns = _frame_times_ns(num_frames, motion.fps).tolist()
    points = [
        MultiDOFJointTrajectoryPoint(
            transforms=[
                Transform(translation=Vector3(x=x, y=y, z=z),
                          rotation=Quaternion(x=qx, y=qy, z=qz, w=qw))
                for x, y, z, qx, qy, qz, qw in frame
            ],
            time_from_start=Duration(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000))
        for frame, t in zip(values, times_ns, strict=True)
    ]
    return MultiDOFJointTrajectory(
        header=_header(stamp_s, frame_id), joint_names=list(MOTION_JOINT_NAMES), points=points)


def motion_from_msg(
    msg: MultiDOFJointTrajectory, *, frame_id: str = 'world',
    max_frames: int = MAX_MOTION_FRAMES,
) -> BimanualMotion:
    """Decode a motion clip made by :func:`motion_to_msg`.

    Joint names may come in any order but must be exactly :data:`MOTION_JOINT_NAMES`.

    Raises:
        MessageError: Wrong frame id, names, point count (2 to ``max_frames``) or transforms
            per point (44); non-finite values; a position beyond MAX_ABS_POSITION_M; a
            quaternion not of unit norm; a wrist rotation that disagrees with its mano_root;
            time_from_start not uniform from 0, or a rate outside [MIN_FPS, MAX_FPS].
    """
    what = 'motion'
    _check_frame_id(msg, frame_id, what)
    points = msg.points
    num_frames = len(points)
    _check_count(what, num_frames, 2, max_frames, 'points (frames)')
    names = msg.joint_names
    _check_count(what, len(names), _NUM_MOTION_TRANSFORMS, _NUM_MOTION_TRANSFORMS, 'joint names')
    names = tuple(names)
    if names == MOTION_JOINT_NAMES:
        order = None
    elif set(names) == set(MOTION_JOINT_NAMES):
        position = {name: i for i, name in enumerate(names)}
        order = np.asarray([position[name] for name in MOTION_JOINT_NAMES])
    else:
        raise _names_mismatch(what, names, MOTION_JOINT_NAMES)
    counts = [len(p.transforms) for p in points]
    if any(c != _NUM_MOTION_TRANSFORMS for c in counts):
        first = next(i for i, c in enumerate(counts) if c != _NUM_MOTION_TRANSFORMS)
        raise MessageError(
            f'{what}: expected {_NUM_MOTION_TRANSFORMS} transforms per point, got '
            f'{counts[first]} at point {first}')
    fps = _fps_from_times(_times_ns(points), what)
    flat = np.fromiter(
        (v for p in points for tf in p.transforms
         for v in (tf.translation.x, tf.translation.y, tf.translation.z,
                   tf.rotation.w, tf.rotation.x, tf.rotation.y, tf.rotation.z)),
        np.float64, num_frames * _NUM_MOTION_TRANSFORMS * 7)
    values = flat.reshape(num_frames, _NUM_MOTION_TRANSFORMS, 7)  # (T, 44, xyz + wxyz)
    if order is not None:
        values = values[:, order]
    _check_finite(what, values, MOTION_JOINT_NAMES)
    translation = values[..., :3]  # (T, 44, 3)
    _check_bound(f'{what} translation', translation, MAX_ABS_POSITION_M, 'm')
    quat = _unit_quaternions(f'{what} rotation', values[..., 3:])  # (T, 44, 4) wxyz
    hand_quat = quat[:, :_NUM_HAND_POSES].reshape(num_frames, 2, NUM_KEYPOINTS, 4)
    root_quat = quat[:, _NUM_HAND_POSES:]  # (T, 2, 4)
    agreement = np.abs(np.sum(hand_quat[:, :, 0] * root_quat, axis=-1))  # (T, 2) |cos(a/2)|
    disagree = agreement < math.cos(0.5 * _ROOT_AGREEMENT_RAD)
    if disagree.any():
        frame, side = (int(i) for i in np.unravel_index(int(np.argmax(disagree)),
                                                        disagree.shape))
        angle = 2.0 * math.acos(min(1.0, float(agreement[frame, side])))
        raise MessageError(
            f'{what}: {SIDES[side]}/wrist rotation must equal {SIDES[side]}/mano_root rotation '
            f'(global_orient), they differ by {angle:.3g} rad at point {frame}')
    global_orient = rotations.quaternion_to_axis_angle(root_quat)  # (T, 2, 3)
    hand_pose = rotations.quaternion_to_axis_angle(hand_quat[:, :, _POSE_KEYPOINTS])
    keypoints = translation[:, :_NUM_HAND_POSES].reshape(num_frames, 2, NUM_KEYPOINTS, 3)
    try:
        return BimanualMotion(
            fps, global_orient, hand_pose, translation[:, _NUM_HAND_POSES:],
            keypoints.astype(np.float32))
    except HandxError as error:
        raise MessageError(f'{what}: {error}') from error


# ---------------------------------------------------------------------------- observed hands


@dataclasses.dataclass(frozen=True, eq=False)
class ObservedFrame:
    """One frame of observed hand keypoints.

    Attributes:
        stamp_s: Capture time, seconds (the message's header stamp).
        keypoints: (2, 21, 3) float64 world keypoints, left first; NaN for an absent hand.
        present: (2,) bool, whether each hand was observed.
    """

    stamp_s: float
    keypoints: np.ndarray
    present: np.ndarray

    @property
    def num_present(self) -> int:
        """How many hands were observed (1 or 2)."""
        return int(np.count_nonzero(self.present))


def _observed_keypoints(what: str, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check (2, 21, 3) keypoints: each hand all finite (present) or all not (absent, NaN).

    Returns:
        (2, 21, 3) float64 keypoints with NaN for absent hands, and (2,) bool presence.
    """
    finite = np.isfinite(keypoints).all(axis=-1)  # (2, 21)
    present = finite.all(axis=-1)  # (2,)
    for side in range(2):
        if not present[side] and finite[side].any():
            missing = [KEYPOINT_NAMES[k] for k in np.flatnonzero(~finite[side])]
            raise MessageError(
                f'{what}: the {SIDES[side]} hand is partly non-finite (keypoints '
                f'{_shown(missing)}); a hand must be all finite (present) or all NaN (absent)')
    if not present.any():
        raise MessageError(f'{what}: no hand present (every position is non-finite)')
    keypoints = keypoints.copy()
    keypoints[~present] = np.nan
    _check_bound(f'{what} position', keypoints[present], MAX_ABS_POSITION_M, 'm')
    return keypoints, present


def keypoints_to_pose_array(
    keypoints: np.ndarray, *, stamp_s: float, frame_id: str = 'world',
) -> PoseArray:
    """Encode observed keypoints as 42 poses, left hand first, identity orientations.

    Args:
        keypoints: (2, 21, 3) world keypoints; NaN for an absent hand.
        stamp_s: Capture time, seconds.
        frame_id: World frame name.

    Raises:
        MessageError: Wrong shape, a hand partly non-finite, no hand present or a position
            beyond MAX_ABS_POSITION_M (the checks of :func:`observed_from_msg`).
    """
    what = 'observed hands'
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (2, NUM_KEYPOINTS, 3):
        raise MessageError(f'{what}: expected keypoints of shape (2, 21, 3), got '
                           f'{keypoints.shape}')
    keypoints, _ = _observed_keypoints(what, keypoints)
    poses = [Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(w=1.0))
             for x, y, z in keypoints.reshape(_NUM_HAND_POSES, 3).tolist()]
    return PoseArray(header=_header(stamp_s, frame_id), poses=poses)


def observed_from_msg(msg: PoseArray, *, frame_id: str = 'world') -> ObservedFrame:
    """Decode observed hands (orientations are ignored).

    Raises:
        MessageError: Wrong frame id or pose count (42), a hand partly non-finite, no hand
            present, or a position beyond MAX_ABS_POSITION_M.
    """
    what = 'observed hands'
    poses = msg.poses
    _check_count(what, len(poses), _NUM_HAND_POSES, _NUM_HAND_POSES, 'poses')
    _check_frame_id(msg, frame_id, what)
    flat = np.fromiter(
        (v for pose in poses
         for v in (pose.position.x, pose.position.y, pose.position.z)),
        np.float64, _NUM_HAND_POSES * 3)
    keypoints, present = _observed_keypoints(what, flat.reshape(2, NUM_KEYPOINTS, 3))
    keypoints.flags.writeable = False
    present.flags.writeable = False
    return ObservedFrame(stamp_s=stamp_to_s(msg.header.stamp), keypoints=keypoints,
                         present=present)


MAX_OBSERVED_BYTES = 65536  # 42 poses take 2.4 kB; the rest would be a frame id


def observed_from_cdr(data: bytes, *, frame_id: str = 'world') -> ObservedFrame:
    """:func:`observed_from_msg` for a serialized ``PoseArray`` (a raw subscription's bytes),
    read in place: no 42 ``Pose`` objects are built (0.05 ms instead of 0.9 ms here).

    Raises:
        MessageError: As :func:`observed_from_msg`, more than :data:`MAX_OBSERVED_BYTES`
            (refused before anything is read), and bytes that are not a whole XCDR1
            ``PoseArray``.
    """
    from handx_ros.nodes.wire import read_header

    what = 'observed hands'
    if len(data) > MAX_OBSERVED_BYTES:
        raise MessageError(f'{what}: {len(data)} bytes > {MAX_OBSERVED_BYTES}')
    header = read_header(data, what=what)
    count, offset = header.uint32(header.end, what)
    _check_count(what, count, _NUM_HAND_POSES, _NUM_HAND_POSES, 'poses')
    if header.frame_id != frame_id:
        raise MessageError(f'{what}: frame_id must be {frame_id!r}, got '
                           f'{_shown(header.frame_id)}')
    offset = (offset + 7) & ~7  # Pose: float64 position (3) and orientation (4), aligned to 8
    if offset + count * 56 > len(header.body):
        raise MessageError(f'{what}: truncated inside its {count} poses')
    poses = np.frombuffer(header.body, dtype=f'{header.order}f8', count=count * 7,
                          offset=offset).reshape(count, 7)
    flat = poses[:, :3].astype(np.float64)  # (42, 3), native byte order, a copy
    keypoints, present = _observed_keypoints(what, flat.reshape(2, NUM_KEYPOINTS, 3))
    keypoints.flags.writeable = False
    present.flags.writeable = False
    return ObservedFrame(stamp_s=float(header.sec) + float(header.nanosec) * 1e-9,
                         keypoints=keypoints, present=present)


# ---------------------------------------------------------------------------- robot trajectory


def trajectory_to_msg(
    trajectory: RobotTrajectory, *, stamp_s: float, frame_id: str = 'world',
) -> JointTrajectory:
    """Encode a robot trajectory clip, one point per frame at ``frame / fps``.

    Floating wrist bases (``trajectory.base_poses``) become the 12 virtual joints
    :data:`BASE_JOINT_NAMES` after the robot joints.

    Args:
        trajectory: The clip.
        stamp_s: Header stamp: the stamp of the motion it was retargeted from.
        frame_id: World frame name.

    Raises:
        MessageError: A robot joint is named like a virtual base joint.
    """
    names = trajectory.joint_names
    positions = trajectory.qpos  # (T, nq)
    if trajectory.base_poses is not None:
        clash = _BASE_NAME_SET.intersection(names)
        if clash:
            raise MessageError(
                f'trajectory: robot joint names {sorted(clash)} clash with the virtual base '
                'joints')
        base = trajectory.base_poses  # (T, 2, 7)
        rotvec = rotations.quaternion_to_axis_angle(base[..., 3:])  # (T, 2, 3)
        base_values = np.concatenate([base[..., :3], rotvec], -1).reshape(-1, 12)
        names = names + BASE_JOINT_NAMES
        positions = np.concatenate([positions, base_values], -1)  # (T, nq + 12)
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    times_ns = _frame_times_ns(trajectory.num_frames, trajectory.fps).tolist()
    points = [
        JointTrajectoryPoint(
            positions=array.array('d', row.tobytes()),
            time_from_start=Duration(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000))
        for row, t in zip(positions, times_ns, strict=True)
    ]
    return JointTrajectory(header=_header(stamp_s, frame_id), joint_names=list(names),
                           points=points)


def is_live_target(msg: JointTrajectory) -> bool:
    """Whether a robot trajectory message is a live target (exactly one point), not a clip."""
    return len(msg.points) == 1


def _joint_columns(
    what: str, msg_names: Sequence[str], joint_names: tuple[str, ...],
) -> tuple[list[int], list[int] | None]:
    """Columns of ``joint_names`` (and of the base joints, if all present) in a message.

    Raises:
        MessageError: The message names are not exactly ``joint_names`` plus, optionally,
            all 12 base joints.
    """
    expected = len(joint_names)
    if len(msg_names) not in (expected, expected + len(BASE_JOINT_NAMES)):
        raise MessageError(
            f'{what}: expected {expected} joint names (+ {len(BASE_JOINT_NAMES)} virtual base '
            f'joints optionally), got {len(msg_names)}: {_shown(list(msg_names[:20]))}')
    column = {name: i for i, name in enumerate(msg_names)}
    if len(column) != len(msg_names):
        raise MessageError(f'{what}: joint name {_first_repeated(msg_names)!r} appears more '
                           'than once')
    try:
        columns = [column[name] for name in joint_names]
        base = [column[name] for name in BASE_JOINT_NAMES] if len(msg_names) > expected else None
    except KeyError:
        allowed = joint_names + (BASE_JOINT_NAMES if len(msg_names) > expected else ())
        raise _names_mismatch(what, list(msg_names), allowed) from None
    return columns, base


def _positions(what: str, points: Sequence[Any], width: int) -> np.ndarray:
    """(T, width) float64 positions of trajectory points, each checked for its length."""
    lengths = [len(p.positions) for p in points]
    if any(n != width for n in lengths):
        first = next(i for i, n in enumerate(lengths) if n != width)
        raise MessageError(
            f'{what}: expected {width} positions per point (one per joint name), got '
            f'{lengths[first]} at point {first}')
    flat = np.fromiter(itertools.chain.from_iterable(p.positions for p in points),
                       np.float64, len(points) * width)
    return flat.reshape(len(points), width)


def _check_joint_values(what: str, values: np.ndarray, names: Sequence[str]) -> None:
    _check_finite(what, values[None] if values.ndim == 1 else values, None)
    index = _first_over(values, MAX_ABS_JOINT_VALUE)
    if index is not None:
        raise MessageError(
            f'{what}: joint {names[index[-1]]!r} value {float(values[index])!r} exceeds '
            f'{MAX_ABS_JOINT_VALUE:g} (rad or m)')


def _base_poses(what: str, base_values: np.ndarray) -> np.ndarray:
    """(T, 2, 7) xyz + wxyz base poses from (T, 12) virtual base joint values."""
    base = base_values.reshape(-1, 2, 6)
    _check_bound(f'{what} base position', base[..., :3], MAX_ABS_POSITION_M, 'm')
    quat = rotations.axis_angle_to_quaternion(base[..., 3:])  # (T, 2, 4)
    return np.concatenate([base[..., :3], quat], -1)


def trajectory_from_msg(
    msg: JointTrajectory, *, robot: str, joint_names: Sequence[str], frame_id: str = 'world',
    max_points: int = MAX_TRAJECTORY_POINTS,
) -> RobotTrajectory:
    """Decode a robot trajectory clip made by :func:`trajectory_to_msg`.

    Args:
        msg: The message.
        robot: Robot folder name of the result.
        joint_names: The robot's controller joint names: the message must name exactly these
            (any order) plus, optionally, all 12 virtual base joints; ``qpos`` columns follow
            this order.
        frame_id: World frame name.
        max_points: Most points accepted.

    Returns:
        The trajectory (``converged``, ``residual_m`` and ``info`` do not travel).

    Raises:
        MessageError: Wrong frame id, names, point count (2 to ``max_points``; a 1-point
            message is a live target) or positions per point; non-finite or absurd values;
            time_from_start not uniform from 0.
    """
    what = 'trajectory'
    joint_names = _checked_names(what, joint_names)
    _check_frame_id(msg, frame_id, what)
    points = msg.points
    if len(points) == 1:
        raise MessageError(f'{what}: a 1-point message is a live target, not a clip '
                           '(use live_target_from_msg)')
    _check_count(what, len(points), 2, max_points, 'points')
    msg_names = tuple(msg.joint_names)
    columns, base_columns = _joint_columns(what, msg_names, joint_names)
    values = _positions(what, points, len(msg_names))  # (T, n)
    _check_joint_values(what, values, msg_names)
    fps = _fps_from_times(_times_ns(points), what)
    base_poses = None if base_columns is None else _base_poses(what, values[:, base_columns])
    try:
        return RobotTrajectory(robot=robot, fps=fps, joint_names=joint_names,
                               qpos=values[:, columns], base_poses=base_poses)
    except HandxError as error:
        raise MessageError(f'{what}: {error}') from error


def live_target_from_msg(
    msg: JointTrajectory, *, joint_names: Sequence[str], frame_id: str = 'world',
) -> tuple[float, np.ndarray]:
    """Decode a live target: a one-point robot trajectory message.

    Args:
        msg: The message.
        joint_names: The robot's controller joint names (any order in the message; virtual
            base joints, if all present, are ignored).
        frame_id: World frame name.

    Returns:
        The header stamp in seconds and (n,) float64 positions in ``joint_names`` order.

    Raises:
        MessageError: Wrong frame id, point count (1), names or positions length; non-finite
            or absurd values.
    """
    what = 'live target'
    joint_names = tuple(joint_names)
    _check_count(what, len(msg.points), 1, 1, 'point')
    _check_frame_id(msg, frame_id, what)
    msg_names = msg.joint_names
    columns, _ = _joint_columns(what, msg_names, joint_names)
    point = msg.points[0]
    if len(point.positions) != len(msg_names):
        raise MessageError(
            f'{what}: expected {len(msg_names)} positions (one per joint name), got '
            f'{len(point.positions)}')
    values = np.asarray(point.positions, dtype=np.float64)  # (n_msg,)
    qpos = values[columns]  # (n,)
    _check_joint_values(what, qpos, joint_names)
    return stamp_to_s(msg.header.stamp), qpos


# ---------------------------------------------------------------------------- commands


def joint_state_msg(
    names: Sequence[str], qpos: np.ndarray, qvel: np.ndarray, *, stamp_s: float,
) -> JointState:
    """A ``sensor_msgs/JointState`` of commanded positions and velocities.

    Raises:
        MessageError: Lengths differ from ``names`` or a value is not finite.
    """
    names = list(names)
    qpos = _float_vector('joint state position', qpos, len(names))
    qvel = _float_vector('joint state velocity', qvel, len(names))
    return JointState(header=_header(stamp_s), name=names,
                      position=array.array('d', qpos.tobytes()),
                      velocity=array.array('d', qvel.tobytes()))


def controller_command_msg(
    names: Sequence[str], qpos: np.ndarray, qvel: np.ndarray, *, stamp_s: float,
    horizon_s: float,
) -> JointTrajectory:
    """A one-point ``JointTrajectory`` for a ros2_control joint trajectory controller.

    Args:
        names: Controller joint names.
        qpos: (n,) target positions.
        qvel: (n,) target velocities.
        stamp_s: Header stamp (the trajectory starts then).
        horizon_s: ``time_from_start`` of the point, > 0.

    Raises:
        MessageError: Lengths differ from ``names``, a value is not finite, or the horizon is
            not positive.
    """
    names = list(names)
    qpos = _float_vector('controller command position', qpos, len(names))
    qvel = _float_vector('controller command velocity', qvel, len(names))
    if not (isinstance(horizon_s, (int, float)) and math.isfinite(horizon_s) and horizon_s > 0):
        raise MessageError(f'controller command: horizon_s must be > 0 s, got {horizon_s!r}')
    point = JointTrajectoryPoint(positions=array.array('d', qpos.tobytes()),
                                 velocities=array.array('d', qvel.tobytes()),
                                 time_from_start=_duration_from_s(horizon_s))
    return JointTrajectory(header=_header(stamp_s), joint_names=names, points=[point])


# ---------------------------------------------------------------------------- sim report


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f'{prefix}/{key}' if prefix else str(key), item, out)
    else:
        out[prefix] = str(value)


def sim_report_msg(
    *, robot: str, passed: bool, reasons: Sequence[str], summary: Mapping[str, Any],
    stamp_s: float, motion_stamp_s: float,
) -> DiagnosticArray:
    """The simulation gate's verdict on one clip, as a ``DiagnosticArray``.

    One status named :data:`SIM_REPORT_NAME`, ``hardware_id`` the robot, level OK (pass) or
    ERROR (fail), message ``'pass'`` or ``'fail: <first reason>'``; values ``passed``
    (``'true'``/``'false'``), ``motion_stamp`` (``repr`` of the float), ``reasons``
    (newline-joined; newlines inside a reason become spaces), then ``summary`` flattened
    (nested keys joined by ``'/'``, values as ``str``).

    Raises:
        MessageError: A summary key collides with a reserved value key.
    """
    reasons = [' '.join(str(r).splitlines()) for r in reasons]
    flat: dict[str, str] = {}
    _flatten('', summary, flat)
    clash = [key for key in flat if key in _SIM_RESERVED_KEYS]
    if clash:
        raise MessageError(f'sim report: summary keys {clash} are reserved')
    values = [
        KeyValue(key='passed', value='true' if passed else 'false'),
        KeyValue(key='motion_stamp', value=repr(float(motion_stamp_s))),
        KeyValue(key='reasons', value='\n'.join(reasons)),
    ] + [KeyValue(key=key, value=value) for key, value in flat.items()]
    if passed:
        level, message = DiagnosticStatus.OK, 'pass'
    else:
        level = DiagnosticStatus.ERROR
        message = f'fail: {reasons[0]}' if reasons else 'fail'
    status = DiagnosticStatus(level=level, name=SIM_REPORT_NAME, message=message,
                              hardware_id=robot, values=values)
    return DiagnosticArray(header=_header(stamp_s), status=[status])


def sim_report_from_msg(msg: DiagnosticArray) -> dict[str, Any]:
    """Decode a report made by :func:`sim_report_msg`.

    Returns:
        ``{'robot': str, 'passed': bool, 'reasons': list[str], 'motion_stamp_s': float,
        'summary': dict[str, str]}`` (summary keys flattened).

    Raises:
        MessageError: Not exactly one status named SIM_REPORT_NAME, or a missing or malformed
            ``passed``, ``motion_stamp`` or ``reasons`` value.
    """
    what = 'sim report'
    statuses = msg.status
    if len(statuses) != 1 or statuses[0].name != SIM_REPORT_NAME:
        raise MessageError(
            f'{what}: expected one status named {SIM_REPORT_NAME!r}, got '
            f'{_shown([s.name for s in statuses[:5]])} ({len(statuses)} statuses)')
    status = statuses[0]
    values = {kv.key: kv.value for kv in status.values}
    missing = [key for key in _SIM_RESERVED_KEYS if key not in values]
    if missing:
        raise MessageError(f'{what}: missing values {missing}')
    if values['passed'] not in ('true', 'false'):
        raise MessageError(
            f"{what}: 'passed' must be 'true' or 'false', got {_shown(values['passed'])}")
    try:
        motion_stamp_s = float(values['motion_stamp'])
    except ValueError:
        raise MessageError(
            f"{what}: 'motion_stamp' must be a float, got {_shown(values['motion_stamp'])}"
        ) from None
    if not math.isfinite(motion_stamp_s):
        raise MessageError(f"{what}: 'motion_stamp' must be finite, got {motion_stamp_s!r}")
    reasons = values['reasons'].split('\n') if values['reasons'] else []
    summary = {key: value for key, value in values.items() if key not in _SIM_RESERVED_KEYS}
    return {'robot': status.hardware_id, 'passed': values['passed'] == 'true',
            'reasons': reasons, 'motion_stamp_s': motion_stamp_s, 'summary': summary}


# ---------------------------------------------------------------------------- markers


def hand_markers_msg(
    keypoints: np.ndarray, *, stamp_s: float, frame_id: str = 'world', ns: str = 'handx',
) -> MarkerArray:
    """RViz markers of one frame of hand keypoints.

    Per hand, marker ``id = 2 * side`` is a LINE_LIST of the 20 bones (child then parent
    keypoint) and ``id = 2 * side + 1`` a SPHERE_LIST of the 21 keypoints; for an absent hand
    (all NaN) both ids are sent with action DELETE, so stale markers disappear.

    Args:
        keypoints: (2, 21, 3) world keypoints, left first; NaN for an absent hand.
        stamp_s: Header stamp, seconds.
        frame_id: World frame name.
        ns: Marker namespace.

    Raises:
        MessageError: Wrong shape, a hand partly non-finite, no hand present, or a position
            beyond MAX_ABS_POSITION_M.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape != (2, NUM_KEYPOINTS, 3):
        raise MessageError(f'hand markers: expected keypoints of shape (2, 21, 3), got '
                           f'{keypoints.shape}')
    keypoints, present = _observed_keypoints('hand markers', keypoints)
    header = _header(stamp_s, frame_id)
    markers = []
    for side in range(2):
        bones_id, joints_id = 2 * side, 2 * side + 1
        if not present[side]:
            markers += [Marker(header=header, ns=ns, id=i, action=Marker.DELETE)
                        for i in (bones_id, joints_id)]
            continue
        r, g, b = _MARKER_COLORS[side]
        color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        hand = keypoints[side]  # (21, 3)
        bones = np.stack([hand[_BONE_CHILDREN], hand[_BONE_PARENTS]], 1).reshape(-1, 3)  # (40, 3)
        for marker_id, marker_type, points, scale in (
                (bones_id, Marker.LINE_LIST, bones, Vector3(x=_MARKER_LINE_WIDTH_M)),
                (joints_id, Marker.SPHERE_LIST, hand,
                 Vector3(x=_MARKER_SPHERE_M, y=_MARKER_SPHERE_M, z=_MARKER_SPHERE_M))):
            markers.append(Marker(
                header=header, ns=ns, id=marker_id, type=marker_type, action=Marker.ADD,
                pose=Pose(orientation=Quaternion(w=1.0)), scale=scale, color=color,
                points=[Point(x=x, y=y, z=z) for x, y, z in points.tolist()]))
    return MarkerArray(markers=markers)
