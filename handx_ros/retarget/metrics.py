"""Retargeting quality metrics: pure functions on arrays (numpy only).

Every function takes arrays the caller computed (forward kinematics, collision distances,
solve times) and returns errors in stated units; nothing here loads a robot. Units: metres,
radians, seconds (times reported in milliseconds where the name says ``_ms``).

* :func:`fingertip_error`: robot fingertips against the human fingertips mapped into the
  robot's base-link frame (``target = R_base_hand @ (scale * p_hand) + p_base_wrist``).
* :func:`keyvector_error`: robot key vectors against their (already scaled) targets.
* :func:`joint_limit_violation` / :func:`limit_violation_count`: how far joints go beyond
  their limits.
* :func:`collision_rate`: the fraction of frames with a signed distance below a margin.
* :func:`normalised_jerk`: the dimensionless smoothness measure of Flash and Hogan.
* :func:`timing_summary`: per-frame solve-time percentiles.
* :func:`summarize`: all of the above for one clip, as a :class:`RetargetMetrics`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from handx_gen.errors import RetargetError

__all__ = [
    'RetargetMetrics',
    'collision_rate',
    'fingertip_error',
    'joint_limit_violation',
    'keyvector_error',
    'limit_violation_count',
    'normalised_jerk',
    'summarize',
    'timing_summary',
]

# A joint whose range of motion over the clip is below this (rad, or m) counts as still:
# its normalised jerk is 0 rather than a ratio of two vanishing numbers.
STILL_AMPLITUDE = 1e-9

# Fewest frames a third finite difference (jerk) needs.
MIN_JERK_FRAMES = 4


def fingertip_error(
    robot_tips_base: np.ndarray,
    human_tips_wrist: np.ndarray,
    R_base_hand: np.ndarray,
    scale: float,
    p_base_wrist: np.ndarray,
    *,
    in_human_units: bool = False,
) -> np.ndarray:
    """Distance between robot fingertips and the mapped human fingertips.

    The human fingertips, in the canonical human hand frame with the wrist at the origin, are
    scaled to robot size and moved into the robot's base-link frame::

        target = R_base_hand @ (scale * human_tips_wrist) + p_base_wrist

    and compared with the robot's fingertips in the same frame.

    Args:
        robot_tips_base: (T, k, 3) robot fingertip positions in the base-link frame, metres.
        human_tips_wrist: (T, k, 3) human fingertip positions in the human wrist frame, metres.
        R_base_hand: (3, 3) rotation from the human hand frame to the base link.
        scale: Robot size over human size, > 0.
        p_base_wrist: (3,) position of the robot's wrist point in the base-link frame, metres.
        in_human_units: Divide the distances by ``scale``, giving the error at human size.

    Returns:
        (T, k) distances in robot metres (human metres with ``in_human_units``).
        :func:`summarize` reports robot metres.

    Raises:
        RetargetError: Shapes disagree, values are non-finite or ``scale`` is not > 0.
    """
    robot = _finite('robot_tips_base', robot_tips_base)
    human = _finite('human_tips_wrist', human_tips_wrist)
    if robot.ndim != 3 or robot.shape[-1] != 3:
        raise RetargetError(f'robot_tips_base: expected shape (T, k, 3), got {robot.shape}')
    if human.shape != robot.shape:
        raise RetargetError(
            f'human_tips_wrist: expected shape {robot.shape} (as robot_tips_base), got '
            f'{human.shape}')
    R_base_hand = _finite('R_base_hand', R_base_hand)
    if R_base_hand.shape != (3, 3):
        raise RetargetError(f'R_base_hand: expected shape (3, 3), got {R_base_hand.shape}')
    p_base_wrist = _finite('p_base_wrist', p_base_wrist)
    if p_base_wrist.shape != (3,):
        raise RetargetError(f'p_base_wrist: expected shape (3,), got {p_base_wrist.shape}')
    scale = _positive('scale', scale)
    target_base = scale * human @ R_base_hand.T + p_base_wrist  # (T, k, 3)
    error = np.linalg.norm(robot - target_base, axis=-1)  # (T, k)
    return error / scale if in_human_units else error


def keyvector_error(robot_vectors: np.ndarray, target_vectors: np.ndarray) -> np.ndarray:
    """Length of the difference between robot key vectors and their targets.

    Args:
        robot_vectors: (T, m, 3) robot key vectors (e.g. wrist to fingertip, thumb tip to
            fingertip), metres, in any one frame.
        target_vectors: (T, m, 3) the same vectors from the human, already scaled and
            expressed in the same frame, metres.

    Returns:
        (T, m) distances, metres.

    Raises:
        RetargetError: Shapes disagree or values are non-finite.
    """
    robot = _finite('robot_vectors', robot_vectors)
    target = _finite('target_vectors', target_vectors)
    if robot.ndim != 3 or robot.shape[-1] != 3:
        raise RetargetError(f'robot_vectors: expected shape (T, m, 3), got {robot.shape}')
    if target.shape != robot.shape:
        raise RetargetError(
            f'target_vectors: expected shape {robot.shape} (as robot_vectors), got '
            f'{target.shape}')
    return np.linalg.norm(robot - target, axis=-1)


def joint_limit_violation(
    qpos: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """How far each joint is beyond its limits.

    Args:
        qpos: (T, n) joint positions, radians (metres for prismatic joints).
        lower: (n,) lower limits; ``-inf`` for none.
        upper: (n,) upper limits, >= ``lower``; ``+inf`` for none.

    Returns:
        (T, n) ``max(lower - q, q - upper, 0)``: 0 inside the limits, else the excess in the
        joints' units.

    Raises:
        RetargetError: Shapes disagree, ``qpos`` is non-finite, a limit is NaN or
            ``lower > upper``.
    """
    qpos = _finite('qpos', qpos)
    if qpos.ndim != 2:
        raise RetargetError(f'qpos: expected shape (T, n), got {qpos.shape}')
    lower, upper = _limits(lower, upper, qpos.shape[1])
    return np.maximum(np.maximum(lower - qpos, qpos - upper), 0.0)


def limit_violation_count(
    qpos: np.ndarray, lower: np.ndarray, upper: np.ndarray, *, tolerance: float = 0.0
) -> int:
    """Number of (frame, joint) entries beyond the limits by more than ``tolerance``.

    Args:
        qpos: (T, n) joint positions.
        lower: (n,) lower limits.
        upper: (n,) upper limits.
        tolerance: Excess allowed before an entry counts, in the joints' units, >= 0.

    Raises:
        RetargetError: As :func:`joint_limit_violation`, or a negative tolerance.
    """
    tolerance = _tolerance(tolerance)
    return int(np.count_nonzero(joint_limit_violation(qpos, lower, upper) > tolerance))


def collision_rate(min_distance: np.ndarray, *, margin_m: float = 0.0) -> float:
    """Fraction of frames where any signed distance is below ``margin_m``.

    The caller computes the distances (e.g. Pinocchio + coal between collision geometries:
    negative means penetration). With the default margin 0 a frame counts when any pair
    penetrates; with a positive margin, when any pair comes closer than it.

    Args:
        min_distance: (T,) or (T, p) signed distances in metres, one per frame or per frame
            and collision pair; ``+inf`` allowed (no pair in range).
        margin_m: Distance below which a frame counts as colliding, metres.

    Returns:
        Fraction of the T frames in collision, in [0, 1].

    Raises:
        RetargetError: Wrong shape, no frame, NaN distances or a non-finite margin.
    """
    distance = np.asarray(min_distance, dtype=np.float64)
    if distance.ndim not in (1, 2) or distance.shape[0] < 1:
        raise RetargetError(
            f'min_distance: expected shape (T,) or (T, p) with T >= 1, got {distance.shape}')
    if np.any(np.isnan(distance)):
        raise RetargetError(
            f'min_distance has {int(np.isnan(distance).sum())} NaN values, shape '
            f'{distance.shape}')
    if not math.isfinite(margin_m):
        raise RetargetError(f'margin_m must be finite, got {margin_m!r}')
    colliding = distance < margin_m
    if distance.ndim == 2:
        colliding = np.any(colliding, axis=1)
    return float(np.mean(colliding))


def normalised_jerk(qpos: np.ndarray, fps: float) -> float | np.ndarray:
    """Dimensionless normalised jerk of each joint (Flash and Hogan, 1985).

    ``NJ = sqrt(0.5 * integral(jerk(t)^2 dt) * D^5 / A^2)``, where the jerk is the third
    finite difference ``(q[i+3] - 3 q[i+2] + 3 q[i+1] - q[i]) * fps^3``, the integral is
    ``sum(jerk^2) / fps``, ``D = (T - 1) / fps`` is the duration and ``A = max(q) - min(q)``
    is the joint's range of motion over the clip. The value does not change with the
    amplitude or the duration of a movement, only with its shape: a minimum-jerk
    point-to-point movement scores ``sqrt(360)`` (about 18.97) in the continuum; noise raises
    it. The sampled estimate misses about one frame of jerk at each end, so it reads a little
    lower at low frame rates (about 17.5 for that movement in 61 frames at 30 fps) and
    converges as the rate grows; compare values at the same frame rate. A joint whose range is
    below :data:`STILL_AMPLITUDE` is still and scores 0.

    Args:
        qpos: (T,) or (T, n) joint positions sampled at ``fps``, T >= 4.
        fps: Sampling rate, frames per second, > 0.

    Returns:
        A float for (T,) input, else (n,) float64.

    Raises:
        RetargetError: Fewer than 4 frames, non-finite values or a bad ``fps``.
    """
    q = _finite('qpos', qpos)
    if q.ndim not in (1, 2):
        raise RetargetError(f'qpos: expected shape (T,) or (T, n), got {q.shape}')
    if q.shape[0] < MIN_JERK_FRAMES:
        raise RetargetError(
            f'normalised jerk needs at least {MIN_JERK_FRAMES} frames, got qpos of shape '
            f'{q.shape}')
    fps = _positive('fps', fps)
    jerk = np.diff(q, n=3, axis=0) * fps**3  # (T - 3, ...)
    integral = np.sum(jerk**2, axis=0) / fps
    duration_s = (q.shape[0] - 1) / fps
    amplitude = np.ptp(q, axis=0)
    still = amplitude < STILL_AMPLITUDE
    value = np.sqrt(0.5 * integral * duration_s**5 / np.where(still, 1.0, amplitude) ** 2)
    value = np.where(still, 0.0, value)
    return float(value) if q.ndim == 1 else value


def timing_summary(time_s: np.ndarray) -> dict[str, float]:
    """Percentiles of per-frame times.

    Args:
        time_s: (T,) times in seconds, finite and >= 0, T >= 1.

    Returns:
        ``{'p50_ms', 'p95_ms', 'p99_ms', 'mean_ms', 'max_ms'}`` in milliseconds (percentiles
        by linear interpolation).

    Raises:
        RetargetError: Wrong shape, no frame, or a non-finite or negative time.
    """
    time_s = _finite('time_s', time_s)
    if time_s.ndim != 1 or time_s.shape[0] < 1:
        raise RetargetError(f'time_s: expected shape (T,) with T >= 1, got {time_s.shape}')
    if np.any(time_s < 0.0):
        raise RetargetError(f'time_s must be >= 0, got minimum {time_s.min()!r}')
    time_ms = time_s * 1e3
    p50, p95, p99 = np.percentile(time_ms, [50.0, 95.0, 99.0])
    return {
        'p50_ms': float(p50),
        'p95_ms': float(p95),
        'p99_ms': float(p99),
        'mean_ms': float(np.mean(time_ms)),
        'max_ms': float(np.max(time_ms)),
    }


@dataclasses.dataclass(frozen=True)
class RetargetMetrics:
    """Summary of one retargeted clip; a field is ``None`` when its input was not given.

    Errors pool every frame and every fingertip (or vector) of the clip.

    Attributes:
        num_frames: Frames T of the clip.
        fingertip_error_median_m: Median fingertip error, robot metres.
        fingertip_error_p95_m: 95th percentile fingertip error, robot metres.
        fingertip_error_max_m: Largest fingertip error, robot metres.
        keyvector_error_median_m: Median key-vector error, metres.
        keyvector_error_p95_m: 95th percentile key-vector error, metres.
        limit_violation_count: (frame, joint) entries beyond the limits by more than the
            tolerance.
        limit_violation_max: Largest excess beyond a limit, radians (metres for prismatic).
        collision_rate: Fraction of frames with a distance below the collision margin.
        normalised_jerk_median: Median over joints of the normalised jerk (dimensionless);
            ``None`` also for clips shorter than 4 frames.
        normalised_jerk_max: Largest normalised jerk of any joint.
        converged_fraction: Fraction of frames the solver flagged as converged.
        time_p50_ms, time_p95_ms, time_p99_ms, time_mean_ms, time_max_ms: Per-frame time.
    """

    num_frames: int
    fingertip_error_median_m: float | None = None
    fingertip_error_p95_m: float | None = None
    fingertip_error_max_m: float | None = None
    keyvector_error_median_m: float | None = None
    keyvector_error_p95_m: float | None = None
    limit_violation_count: int | None = None
    limit_violation_max: float | None = None
    collision_rate: float | None = None
    normalised_jerk_median: float | None = None
    normalised_jerk_max: float | None = None
    converged_fraction: float | None = None
    time_p50_ms: float | None = None
    time_p95_ms: float | None = None
    time_p99_ms: float | None = None
    time_mean_ms: float | None = None
    time_max_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-compatible Python numbers (or ``None``)."""
        return dataclasses.asdict(self)


def summarize(
    *,
    fingertip_error_m: np.ndarray | None = None,
    keyvector_error_m: np.ndarray | None = None,
    qpos: np.ndarray | None = None,
    fps: float | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    limit_tolerance: float = 0.0,
    min_distance_m: np.ndarray | None = None,
    collision_margin_m: float = 0.0,
    converged: np.ndarray | None = None,
    time_s: np.ndarray | None = None,
) -> RetargetMetrics:
    """Summarise one clip's metrics; every input is optional, all share the frame count T.

    Args:
        fingertip_error_m: (T, k) from :func:`fingertip_error` (robot metres), or (T, 2, k)
            for both hands.
        keyvector_error_m: (T, m) from :func:`keyvector_error`, or (T, 2, m).
        qpos: (T, n) joint positions; with ``fps`` gives the normalised jerk, with ``lower``
            and ``upper`` the limit violations.
        fps: Frame rate of ``qpos``; required with ``qpos``.
        lower: (n,) lower joint limits; given together with ``upper``.
        upper: (n,) upper joint limits.
        limit_tolerance: Excess beyond a limit that does not count as a violation.
        min_distance_m: (T,) or (T, p) signed collision distances for :func:`collision_rate`.
        collision_margin_m: Margin for :func:`collision_rate`.
        converged: (T,) bool solver flags.
        time_s: (T,) per-frame times, seconds.

    Returns:
        The summary; ``num_frames`` is the common T (0 when nothing was given).

    Raises:
        RetargetError: Inputs disagree on T, ``fps`` or one limit is missing, or any input
            is invalid for its metric function.
    """
    frames: dict[str, int] = {}

    def frames_of(name: str, array: np.ndarray, ndim: tuple[int, ...]) -> np.ndarray:
        array = np.asarray(array)
        if array.ndim not in ndim:
            raise RetargetError(
                f'{name}: expected {" or ".join(f"{n}-D" for n in ndim)} with frames first, '
                f'got shape {array.shape}')
        frames[name] = int(array.shape[0])
        return array

    values: dict[str, Any] = {}
    if fingertip_error_m is not None:
        error = _finite('fingertip_error_m', frames_of('fingertip_error_m', fingertip_error_m,
                                                       (2, 3)))
        values.update(
            fingertip_error_median_m=_stat(np.median, error),
            fingertip_error_p95_m=_stat(lambda a: np.percentile(a, 95.0), error),
            fingertip_error_max_m=_stat(np.max, error))
    if keyvector_error_m is not None:
        error = _finite('keyvector_error_m', frames_of('keyvector_error_m', keyvector_error_m,
                                                       (2, 3)))
        values.update(
            keyvector_error_median_m=_stat(np.median, error),
            keyvector_error_p95_m=_stat(lambda a: np.percentile(a, 95.0), error))
    if qpos is not None:
        qpos = frames_of('qpos', qpos, (2,))
        if fps is None:
            raise RetargetError('summarize: fps is required with qpos (for the normalised jerk)')
        if qpos.shape[0] >= MIN_JERK_FRAMES:
            jerk = np.asarray(normalised_jerk(qpos, fps))
            values.update(normalised_jerk_median=_stat(np.median, jerk),
                          normalised_jerk_max=_stat(np.max, jerk))
    if (lower is None) != (upper is None):
        raise RetargetError('summarize: give both lower and upper joint limits, or neither')
    if lower is not None:
        if qpos is None:
            raise RetargetError('summarize: joint limits need qpos')
        violation = joint_limit_violation(qpos, lower, upper)  # (T, n)
        values.update(
            limit_violation_count=int(np.count_nonzero(violation > _tolerance(limit_tolerance))),
            limit_violation_max=_stat(np.max, violation))
    if min_distance_m is not None:
        distance = frames_of('min_distance_m', min_distance_m, (1, 2))
        values['collision_rate'] = collision_rate(distance, margin_m=collision_margin_m)
    if converged is not None:
        flags = frames_of('converged', converged, (1,))
        if flags.dtype != np.bool_:
            raise RetargetError(f'converged must be a bool array, got dtype {flags.dtype}')
        values['converged_fraction'] = _stat(np.mean, flags)
    if time_s is not None:
        timing = timing_summary(frames_of('time_s', time_s, (1,)))
        values.update({f'time_{key}': value for key, value in timing.items()})
    if len(set(frames.values())) > 1:
        raise RetargetError(f'summarize: inputs disagree on the number of frames: {frames}')
    num_frames = next(iter(frames.values()), 0)
    return RetargetMetrics(num_frames=num_frames, **values)


# ---------------------------------------------------------------------- helpers


def _finite(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array, rejecting non-numeric and non-finite input."""
    raw = np.asarray(value)
    if raw.dtype.kind not in 'fiub':
        raise RetargetError(
            f'{name} must be a numeric array, got dtype {raw.dtype} with shape {raw.shape}')
    array = raw.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))
        first = tuple(int(i) for i in bad[0]) if array.ndim else ()
        raise RetargetError(
            f'{name} has {len(bad) if array.ndim else 1} non-finite values (first at index '
            f'{first}), shape {array.shape}')
    return array


def _positive(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)) or np.ndim(value) != 0:
        raise RetargetError(f'{name} must be a positive finite number, got {value!r}')
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number <= 0.0:
        raise RetargetError(f'{name} must be a positive finite number, got {number!r}')
    return number


def _tolerance(tolerance: float) -> float:
    if isinstance(tolerance, (bool, np.bool_)) or np.ndim(tolerance) != 0 \
            or not math.isfinite(float(tolerance)) or float(tolerance) < 0.0:
        raise RetargetError(f'tolerance must be a finite number >= 0, got {tolerance!r}')
    return float(tolerance)


def _limits(lower: object, upper: object, n: int) -> tuple[np.ndarray, np.ndarray]:
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    for name, limit in (('lower', lower), ('upper', upper)):
        if limit.shape != (n,):
            raise RetargetError(f'{name}: expected shape ({n},) (one per joint), got '
                                f'{limit.shape}')
        if np.any(np.isnan(limit)):
            raise RetargetError(f'{name} has NaN limits at joints '
                                f'{np.flatnonzero(np.isnan(limit)).tolist()}')
    if np.any(lower > upper):
        bad = np.flatnonzero(lower > upper).tolist()
        raise RetargetError(f'lower > upper at joints {bad}')
    return lower, upper


def _stat(function: Any, array: np.ndarray) -> float | None:
    """``function(array)`` as a float, or ``None`` for an empty array."""
    if np.size(array) == 0:
        return None
    return float(function(array))
