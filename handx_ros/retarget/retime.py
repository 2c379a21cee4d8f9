"""Retiming: play a clip slower where it is too fast for the robot, never change its path.

A retargeted clip can ask a joint for more speed than its motor has (a quick human gesture on
a slow hand: the Inspire's fingers do 0.5 rad/s). Rejecting it loses the gesture; streaming it
makes the robot lag behind its own command. :func:`retime` keeps the joint path and changes
only the timing:

* **Path.** The clip's frames in order, joined by straight segments in joint space: the path
  parameter ``s`` is the source frame index (``0 .. T-1``). Every new frame lies on it (the
  first and last frames are the clip's own), in the same order, so the robot passes through the
  same poses; between two source frames it is the linear blend the simulation and the command
  streamer already use.
* **Timing.** The time-optimal parameterisation under per-joint velocity and acceleration
  limits (TOPP-RA, ``toppra``, on a spline through the frames over ``s``), capped at the
  clip's own rate (never faster than the original: ``ds/dt <= fps``), then sampled at the
  clip's own fps. The samples are checked with finite differences, as the gate measures them
  (``|q[k+1] - q[k]| * fps`` and ``|q[k+1] - 2 q[k] + q[k-1]| * fps^2``); where the linear
  segments' corners or the sampling push a value over a limit, the whole time map is
  stretched by the excess and sampled again, until every value is within the limits.
* **Wrist poses** (``base_poses``) follow the same time map: positions linearly, orientations
  by slerp between the two source frames.

A clip within the limits is returned as it is (factor 1.0). A clip whose path itself jumps (a
frame-to-frame step beyond what the joint can do in one frame and more than
:data:`JUMP_RATIO` times its steps on the two frames either side: a discontinuity in the
retargeted command, whose straight-line blend is no retargeted pose) is not retimed: it goes
to the gate as it is and fails there with its reason. So does a clip whose retimed length
would exceed ``max_duration_s``.

The source frame (float ``s``) of every new frame is stored in the trajectory's ``info`` under
``'retime'`` (:data:`RETIME_INFO_KEY`), so that later stages (contact fidelity against the
human clip) can map a retimed frame back to the time it came from; retiming a retimed clip
composes the maps.

Units: radians (metres for prismatic joints), seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from typing import Any

import numpy as np

from handx_gen.errors import MotionError, RetargetError
from handx_gen.hand.rotations import quaternion_slerp
from handx_gen.rates import MAX_DURATION_S
from handx_ros.retarget.trajectory import RobotTrajectory

__all__ = [
    'JUMP_RATIO',
    'MAX_RETIME_FACTOR',
    'RETIME_INFO_KEY',
    'JointMotionLimits',
    'RetimeResult',
    'RetimeStatus',
    'retime',
    'robot_motion_limits',
]

# A step more than this many times a joint's steps on the two frames either side of it (and
# beyond what it can do in one frame) is a jump in the path, not a fast motion. Ten: a smooth
# motion at 30 fps changes its per-frame step by a few percent to a few times between frames
# (from rest, onto full speed; a solver's stair steps alternate within two frames); a solver
# flipping to another solution steps tens of times further.
JUMP_RATIO = 10.0
# The key of the retiming record in RobotTrajectory.info.
RETIME_INFO_KEY = 'retime'
# Finite differences may exceed a limit by this fraction (rounding), no more.
_TOLERANCE = 1e-6
_MAX_STRETCHES = 30
# How many times slower a retimed clip may play at most (retime's max_factor).
MAX_RETIME_FACTOR = 8.0


class RetimeStatus(str, enum.Enum):
    """What :func:`retime` did."""

    UNCHANGED = 'unchanged'  # within the limits already
    RETIMED = 'retimed'  # played slower
    INFEASIBLE = 'infeasible'  # the path jumps, or the retimed clip would be too long


@dataclasses.dataclass(frozen=True, eq=False)
class JointMotionLimits:
    """Velocity and acceleration limits of named joints.

    Attributes:
        joint_names: (n,) controller joint names.
        max_velocity: (n,) rad/s (m/s for prismatic joints), > 0.
        max_acceleration: (n,) rad/s^2, > 0.
    """

    joint_names: tuple[str, ...]
    max_velocity: np.ndarray
    max_acceleration: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for name in ('max_velocity', 'max_acceleration'):
            array = np.array(getattr(self, name), dtype=np.float64)
            if array.shape != (n,) or not np.all(np.isfinite(array)) or np.any(array <= 0.0):
                raise RetargetError(f'{name}: expected ({n},) finite values > 0, got '
                                    f'{array.tolist()}')
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, 'joint_names', tuple(self.joint_names))

    def columns(self, joint_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Velocity and acceleration limits (n,) in the order of ``joint_names``.

        Raises:
            RetargetError: A name without limits (the known ones listed).
        """
        missing = [name for name in joint_names if name not in self.joint_names]
        if missing:
            raise RetargetError(f'no motion limits for joints {missing}; known: '
                                f'{", ".join(self.joint_names)}')
        index = [self.joint_names.index(name) for name in joint_names]
        return self.max_velocity[index], self.max_acceleration[index]

    def velocity_of(self, joint: str) -> float:
        """The velocity limit of one joint."""
        return float(self.columns((joint,))[0][0])


def robot_motion_limits(robot: Any) -> JointMotionLimits:
    """The limits of a pair or humanoid folder (name or spec), in controller-name order:
    the URDF's velocities and the folder's accelerations, with its ``limits:`` overrides.

    Raises:
        RobotModelError: Unknown robot or invalid folder.
        RetargetError: A single-hand folder.
    """
    from handx_ros.retarget.bimanual import build_retargeter

    return build_retargeter(robot).motion_limits()


@dataclasses.dataclass(frozen=True, eq=False)
class RetimeResult:
    """What :func:`retime` did to a clip.

    Attributes:
        status: :class:`RetimeStatus`.
        duration_before_s: The clip's length, ``T / fps``.
        duration_after_s: The returned clip's length (equal unless retimed).
        source_frames: (T',) the source frame (path parameter, float) of every returned frame.
        reason: Why it was not retimed when it was infeasible ('' otherwise).
        peak_velocity_ratio: Largest finite-difference joint speed of the returned clip over
            its joint's limit.
        peak_acceleration_ratio: Likewise for accelerations.
    """

    status: RetimeStatus
    duration_before_s: float
    duration_after_s: float
    source_frames: np.ndarray
    reason: str = ''
    peak_velocity_ratio: float = 0.0
    peak_acceleration_ratio: float = 0.0

    @property
    def factor(self) -> float:
        """How many times longer the clip plays (1.0: unchanged)."""
        return self.duration_after_s / self.duration_before_s

    @property
    def retimed(self) -> bool:
        return self.status == RetimeStatus.RETIMED

    def describe(self) -> str:
        """One line: ``retimed: 4.00 s -> 4.62 s (x1.16)``, or why not."""
        if self.retimed:
            return (f'retimed: {self.duration_before_s:.2f} s -> {self.duration_after_s:.2f} s '
                    f'(x{self.factor:.2f})')
        if self.status == RetimeStatus.INFEASIBLE:
            return f'not retimed: {self.reason}'
        return f'within the motion limits: {self.duration_before_s:.2f} s, not retimed'

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible summary (without the per-frame map)."""
        return {'status': self.status.value,
                'duration_before_s': round(self.duration_before_s, 6),
                'duration_after_s': round(self.duration_after_s, 6),
                'factor': round(self.factor, 6), 'reason': self.reason,
                'peak_velocity_ratio': round(self.peak_velocity_ratio, 6),
                'peak_acceleration_ratio': round(self.peak_acceleration_ratio, 6)}


def retime(trajectory: RobotTrajectory, limits: JointMotionLimits | None = None, *,
           max_duration_s: float = MAX_DURATION_S, max_factor: float = MAX_RETIME_FACTOR
           ) -> tuple[RobotTrajectory, RetimeResult]:
    """Slow a clip down to its robot's velocity and acceleration limits (module docstring).

    Args:
        trajectory: The clip.
        limits: Limits of (at least) its joints; ``None``: its robot's
            (:func:`robot_motion_limits`).
        max_duration_s: Longest retimed clip; a longer one is left as it is (infeasible).
        max_factor: Most times slower a clip may play; a clip that would need more is left
            as it is (infeasible): a path that only a crawl makes feasible (a tracker's jitter
            turning over at every frame) is better lagged than played for minutes.

    Returns:
        ``(clip, result)``: the retimed clip (the input itself when unchanged or infeasible)
        with the retiming in ``info['retime']`` when retimed, and what was done.

    Raises:
        RetargetError: No limits for one of its joints.
    """
    if not isinstance(trajectory, RobotTrajectory):
        raise RetargetError(f'expected a RobotTrajectory, got {type(trajectory).__name__}')
    limits = robot_motion_limits(trajectory.robot) if limits is None else limits
    vmax, amax = limits.columns(trajectory.joint_names)  # (n,)
    q, fps = np.asarray(trajectory.qpos), trajectory.fps  # (T, n)
    frames = np.arange(trajectory.num_frames, dtype=np.float64)
    before = trajectory.duration_s
    v_ratio, a_ratio = _peak_ratios(q, fps, vmax, amax)

    def same(status: RetimeStatus, reason: str = '') -> tuple[RobotTrajectory, RetimeResult]:
        return trajectory, RetimeResult(status, before, before, frames, reason, v_ratio, a_ratio)

    if max(v_ratio, a_ratio) <= 1.0 + _TOLERANCE:
        return same(RetimeStatus.UNCHANGED)
    jump = _jump(q, fps, vmax, trajectory.joint_names)
    if jump:
        return same(RetimeStatus.INFEASIBLE, jump)
    t_grid, s_grid = _time_map(q, fps, vmax, amax)
    for _ in range(_MAX_STRETCHES):
        duration = t_grid[-1] + 1.0 / fps  # the last frame also lasts one period
        if duration > max_duration_s:
            return same(RetimeStatus.INFEASIBLE,
                        f'the retimed clip would last {duration:.1f} s > {max_duration_s:g} s')
        if duration > max_factor * before * (1.0 + _TOLERANCE):
            return same(RetimeStatus.INFEASIBLE,
                        f'it would play {duration / before:.1f} times slower (at most '
                        f'{max_factor:g})')
        source = _sample(t_grid, s_grid, fps)  # (T',)
        q_new = _on_path(q, source)
        v_new, a_new = _peak_ratios(q_new, fps, vmax, amax)
        excess = max(v_new, a_new)
        if excess <= 1.0 + _TOLERANCE:
            break
        t_grid = t_grid * min(excess, 2.0) * (1.0 + 1e-3)
    else:
        return same(RetimeStatus.INFEASIBLE, 'the retimed samples did not meet the limits')
    result = RetimeResult(RetimeStatus.RETIMED, before, source.shape[0] / fps, source, '',
                          v_new, a_new)
    return _resampled(trajectory, source, q_new, result), result


# ----------------------------------------------------------------------------- internals


def _peak_ratios(q: np.ndarray, fps: float, vmax: np.ndarray, amax: np.ndarray
                 ) -> tuple[float, float]:
    """Largest finite-difference speed and acceleration over each joint's limit."""
    if q.shape[0] < 2:
        return 0.0, 0.0
    step = np.diff(q, axis=0)  # (T-1, n)
    velocity = float((np.abs(step) * fps / vmax).max())
    if q.shape[0] < 3:
        return velocity, 0.0
    acceleration = float((np.abs(np.diff(step, axis=0)) * fps * fps / amax).max())
    return velocity, acceleration


def _jump(q: np.ndarray, fps: float, vmax: np.ndarray, names: tuple[str, ...]) -> str:
    """Why the path jumps ('' when it does not): a step beyond one frame's reach, more than
    :data:`JUMP_RATIO` times every step of that joint within two frames on either side (the
    first and last steps, with no frames on one side, are not judged)."""
    step = np.abs(np.diff(q, axis=0))  # (T-1, n)
    count = step.shape[0]
    padded = np.pad(step, ((2, 2), (0, 0)), constant_values=np.inf)
    neighbours = np.max([padded[k:k + count] for k in (0, 1, 3, 4)], axis=0)  # (T-1, n)
    jumps = (step > vmax / fps) & (step > JUMP_RATIO * neighbours)
    if not np.any(jumps):
        return ''
    frame, joint = np.unravel_index(int(np.argmax(np.where(jumps, step, 0.0))), step.shape)
    return (f'the path jumps: {names[joint]} moves {step[frame, joint]:.3f} rad between frames '
            f'{frame} and {frame + 1} (at most {neighbours[frame, joint]:.3f} rad on the frames '
            f'around; {vmax[joint] / fps:.3f} rad in one frame at its velocity limit): a '
            'discontinuity retiming cannot fix')


def _time_map(q: np.ndarray, fps: float, vmax: np.ndarray, amax: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(t, s) of the time-optimal parameterisation on a grid of the path, ``ds/dt <= fps``."""
    import toppra
    import toppra.algorithm as algorithm
    import toppra.constraint as constraint

    count = q.shape[0]
    s_grid = np.linspace(0.0, count - 1.0, 2 * (count - 1) + 1)  # half-frame grid
    path = toppra.SplineInterpolator(np.arange(count, dtype=np.float64), q)
    constraints = [constraint.JointVelocityConstraint(np.stack([-vmax, vmax], axis=1)),
                   constraint.JointAccelerationConstraint(np.stack([-amax, amax], axis=1))]
    sd = None
    log = logging.getLogger('toppra')
    level = log.level
    log.setLevel(logging.ERROR)  # an infeasible boundary speed is tried, then given up, below
    try:
        for boundary in (float(fps), 0.0):  # moving as the clip does at its ends, else at rest
            problem = algorithm.TOPPRA(constraints, path, gridpoints=s_grid,
                                       parametrizer='ParametrizeConstAccel')
            _, sd_vec, _ = problem.compute_parameterization(boundary, boundary)
            if sd_vec is not None and np.all(np.isfinite(sd_vec)):
                sd = np.asarray(sd_vec, dtype=np.float64)
                break
    finally:
        log.setLevel(level)
    if sd is None:  # no parameterisation at all: the slowest joint's pace, everywhere
        step = np.abs(np.diff(q, axis=0)).max(axis=0)
        sd = np.full(s_grid.shape, max(1e-3, float((vmax / np.maximum(step, 1e-12)).min())))
    sd = np.clip(sd, 0.0, fps)  # never faster than the original
    # Constant path acceleration on each grid interval: dt = 2 ds / (sd_i + sd_{i+1}).
    pace = sd[:-1] + sd[1:]
    floor = 1e-9 * fps
    dt = 2.0 * np.diff(s_grid) / np.maximum(pace, floor)
    return np.concatenate([[0.0], np.cumsum(dt)]), s_grid


def _sample(t_grid: np.ndarray, s_grid: np.ndarray, fps: float) -> np.ndarray:
    """(T',) the path parameter at ``k / fps``, the last sample on the last frame."""
    count = int(math.ceil(t_grid[-1] * fps - 1e-9)) + 1
    source = np.interp(np.arange(count) / fps, t_grid, s_grid)
    source[-1] = s_grid[-1]
    return np.maximum.accumulate(source)


def _on_path(values: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (T, ...) blended linearly at fractional frames ``source``."""
    last = values.shape[0] - 1
    i = np.minimum(np.floor(source).astype(int), max(last - 1, 0))
    w = (source - i).reshape(-1, *([1] * (values.ndim - 1)))
    if last == 0:
        return values[np.zeros(source.shape[0], dtype=int)].copy()
    return (1.0 - w) * values[i] + w * values[i + 1]


def _resampled(trajectory: RobotTrajectory, source: np.ndarray, q_new: np.ndarray,
               result: RetimeResult) -> RobotTrajectory:
    last = trajectory.num_frames - 1
    i = np.minimum(np.floor(source).astype(int), max(last - 1, 0))
    w = source - i
    j = np.minimum(i + 1, last)
    base_poses = None
    if trajectory.base_poses is not None:
        poses = trajectory.base_poses  # (T, 2, 7)
        xyz = _on_path(poses[..., :3], source)
        quat = quaternion_slerp(poses[i, :, 3:], poses[j, :, 3:], w[:, None, None])
        base_poses = np.concatenate([xyz, quat], axis=-1)
    converged = None
    if trajectory.converged is not None:
        c = trajectory.converged
        converged = c[i] & np.where(w > 0.0, c[j], True)
    residual = None if trajectory.residual_m is None else _on_path(trajectory.residual_m, source)
    previous = trajectory.info.get(RETIME_INFO_KEY)
    original = source
    before = result.duration_before_s
    if isinstance(previous, dict) and 'source_frames' in previous:
        earlier = np.asarray(previous['source_frames'], dtype=np.float64)
        if earlier.shape == (trajectory.num_frames,):
            original = np.interp(source, np.arange(trajectory.num_frames), earlier)
            before = float(previous.get('duration_before_s', before))
    record = {**result.to_dict(), 'duration_before_s': round(before, 6),
              'factor': round(result.duration_after_s / before, 6),
              'source_frames': [float(s) for s in original]}
    try:
        return RobotTrajectory(
            robot=trajectory.robot, fps=trajectory.fps, joint_names=trajectory.joint_names,
            qpos=q_new, base_poses=base_poses, converged=converged, residual_m=residual,
            info={**trajectory.info, RETIME_INFO_KEY: record})
    except MotionError as error:  # longer than a trajectory may be
        raise RetargetError(f'retimed clip: {error}') from error
