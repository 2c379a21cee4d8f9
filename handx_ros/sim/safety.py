"""Command safety: the last filter between a joint target and the robot (numpy only).

:class:`CommandSafety` is ticked by a timer at a nominal rate, but its bounds hold over the
time that really passes. Targets arrive whenever they arrive (:meth:`CommandSafety.submit`,
e.g. from a ROS subscription callback, stamped with the time they were received); the
controller's timer calls :meth:`CommandSafety.tick` with the current time ``now_s`` and
publishes the :class:`SafeCommand` it returns, stamped with that command's ``time_s``
(``now_s``). Ticks on a loaded machine come late, early or bunched; whatever is submitted and
whenever the ticks come, every two consecutive commands ``k - 1``, ``k`` that
:meth:`~CommandSafety.tick` returns, with ``dt_k = t_k - t_{k-1}`` the time between their
stamps, satisfy per joint:

* ``t_k > t_{k-1}``: stamps strictly increase, at least :data:`MIN_TICK_INTERVAL_S` apart;
* ``lower + margin <= q_k <= upper - margin`` (the *safe range*);
* ``|q_k - q_{k-1}| <= max_velocity * dt_k``;
* ``|v_k - v_{k-1}| <= max_acceleration * dt_k``, where ``v_k = (q_k - q_{k-1}) / dt_k`` is
  the command's ``qvel``;
* every value is finite.

The state set by :meth:`~CommandSafety.reset` has ``v = 0`` and no time: the first command
after it counts as one nominal period ``dt = 1 / rate_hz`` after the reset state. Up to
rounding: a velocity is a difference of rounded positions divided by ``dt``.

A tick whose time is not finite, or not at least :data:`MIN_TICK_INTERVAL_S` after the last
command (a repeated time, a clock stepped back), returns ``None``: there is no command to
send on that tick, and the caller sends nothing (counted in
:attr:`CommandSafety.skipped_ticks`). The robot keeps the last command; commands resume once
the clock passes it. A clock reset for good (e.g. a simulated clock restarting) needs
:meth:`~CommandSafety.reset` from the measured state.

How one tick chooses the velocity of the interval ``dt`` that ends now, per joint:

1. **Target.** The latest accepted target, clamped to the safe range, extrapolated along the
   target's own velocity (estimated from the last two accepted targets) for at most one
   interval between them, so that targets arriving slower than the tick rate are followed
   between arrivals.
2. **Watchdog.** If no target was accepted within ``watchdog_timeout_s`` of now, the target is
   *stale*: the desired velocity is zero, reached by decelerating at
   ``halt_deceleration_rad_s2`` over the real time (then holding). A fresh target resumes
   tracking.
3. **Braking law.** Otherwise the desired velocity is the fastest one from which the joint can
   still come to rest relative to the (moving) target at ``max_acceleration`` without
   overshooting it, whatever the later ticks (the stopping bound below, relative to the
   target). A target tracked at its own speed within the bounds is thus reproduced exactly;
   a still target is approached with a gap that shrinks quadratically once it is small.
4. **Bounds.** The velocity is clipped to ``+-max_velocity`` (on a late tick, see below,
   lower), then to ``v_prev +- max_acceleration * dt`` (the halt rate when stale), then to the
   fastest velocity from which the joint can stop at ``max_acceleration`` before the edge of
   the safe range: the limits win over the halt rate. The final position clamp only removes
   rounding, and the velocity kept is the one actually done.

**The stopping bound.** The next intervals ``dt_1, dt_2, ...`` are unknown. Braking at
``a = max_acceleration`` from ``v`` lowers the velocity by ``a dt_i`` before each interval, so
it covers ``sum_i (v - a (dt_1 + ... + dt_i)) dt_i`` (while positive): a lower Riemann sum of
the ramp ``v - a s``, at most its integral ``v^2 / (2 a)``, for every schedule. A velocity
``v`` for the current interval ``dt`` is therefore safe with ``distance`` left if
``v dt + v^2 / (2 a) <= distance``, i.e. ``v <= 2 distance / (dt + sqrt(dt^2 + 2 distance /
a))``. By induction the bound never conflicts with the acceleration bound: after such a
choice ``v^2 / (2 a) <= distance'`` is left, and one interval ``dt'`` of full braking,
``v' = v - a dt'``, satisfies ``v' dt' + v'^2 / (2 a) = v^2 / (2 a) - a dt'^2 / 2``, so it is
admissible again; the limits are kept without a jump under any tick schedule.

**Late ticks.** A tick more than :data:`LATE_TICK_PERIODS` nominal periods after the last
command is not a licence for a long stride: a controller that received nothing in between is
still near the last command. Its velocity is limited to ``max_velocity * LATE_TICK_PERIODS *
(1 / rate_hz) / dt``, so it moves no further than a tick ``LATE_TICK_PERIODS`` periods late,
unless the acceleration bound over ``dt`` asks for more (a fast joint cannot slow that much
within ``dt``). All the bounds above still hold over the stamps: this only lowers a velocity
limit, and the acceleration bound is applied after it.

Rejected inputs (:class:`RejectReason`): values that are not real numbers, an array of the
wrong shape, NaN or infinity, a joint more than ``max_limit_excess_rad`` outside its limits
(garbage, wrong units or wrong joint order, not a command to clamp), and stamps that are not
finite numbers or arrive out of order. A rejected target changes nothing: the filter
keeps following the last accepted target, and the watchdog keeps counting from it.

Every intervention is counted by :class:`Intervention` kind (:meth:`CommandSafety.counters`):
``rejected_input`` counts rejected submissions; every other kind counts the commands on which
it acted. Each :class:`SafeCommand` carries the kinds that acted on it. :func:`filter_trajectory`
runs the same filter over a whole trajectory, one tick per frame at ``t / fps``, before it is
streamed.

**Where each joint's bounds come from**, in order of precedence:

1. ``joint_max_velocity_rad_s`` / ``joint_max_acceleration_rad_s2`` of :class:`SafetyConfig`,
   by joint name: replace everything below for that joint;
2. the robot model's limits, given to :class:`CommandSafety` (``max_velocity`` /
   ``max_acceleration``, e.g. a retargeter's ``joint_velocity_limits()``: the URDF's
   ``velocity`` and the robot folder's ``limits:``), each capped by the global
   ``max_velocity_rad_s`` / ``max_acceleration_rad_s2`` where that is set (not ``None``);
3. without robot limits, the global value, or when that is ``None`` too
   :data:`DEFAULT_MAX_VELOCITY_RAD_S` / :data:`DEFAULT_MAX_ACCELERATION_RAD_S2`.

The shipped ``config/safety.yaml`` sets no global value: the robot's own limits bound every
joint, the same numbers the retiming and the gate use.

Units: radians (metres for prismatic joints), seconds.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.config import config_from_yaml, config_kwargs
from handx_gen.errors import ConfigError, MotionError, SimulationError, unknown_choice

__all__ = [
    'DEFAULT_MAX_ACCELERATION_RAD_S2',
    'DEFAULT_MAX_VELOCITY_RAD_S',
    'INTERVENTION_KINDS',
    'LATE_TICK_PERIODS',
    'MIN_TICK_INTERVAL_S',
    'CommandSafety',
    'Intervention',
    'RejectReason',
    'SafeCommand',
    'SafetyConfig',
    'SafetyReport',
    'filter_trajectory',
]


# A tick later than this many nominal periods moves no further than a tick this late (module
# docstring, "Late ticks"). Two periods: ordinary jitter (p99 1.2-3.4 ms on a 5 ms period in
# sim_node) is left alone, and it matches the default two-tick controller horizon.
LATE_TICK_PERIODS = 2.0
# Bounds of a filter given neither robot limits nor global values (module docstring, "Where
# each joint's bounds come from"). 6 rad/s: below every motor's rated speed in the G1 URDF
# (7-37 rad/s) and above the joint speeds of retargeted gestures (a synthetic clap on
# ``g1_hands`` at 30 fps: 99th percentile 5.7 rad/s). 100 rad/s^2: from rest to full speed in
# 60 ms; at 30 fps a velocity change of 3.3 rad/s between frames.
DEFAULT_MAX_VELOCITY_RAD_S = 6.0
DEFAULT_MAX_ACCELERATION_RAD_S2 = 100.0
# Commands are at least this far apart in time (s): message stamps have nanosecond resolution,
# and a velocity over a shorter interval would be mostly the rounding of the positions.
MIN_TICK_INTERVAL_S = 1e-6


class Intervention(enum.Flag):
    """What the filter did to a command (a tick can carry several kinds)."""

    NONE = 0
    POSITION_CLAMPED = enum.auto()  # the target lay outside the safe range, or a joint was
    #                                 slowed to stop before the edge of the safe range
    VELOCITY_LIMITED = enum.auto()  # the target asked for more than max_velocity
    ACCELERATION_LIMITED = enum.auto()  # the velocity change was bounded by max_acceleration
    STALE_HALT = enum.auto()  # no fresh target: halting (decelerating, then holding)
    REJECTED_INPUT = enum.auto()  # a submission since the previous tick was rejected


# The kinds, in the order of counters() and reports.
INTERVENTION_KINDS: tuple[Intervention, ...] = (
    Intervention.POSITION_CLAMPED, Intervention.VELOCITY_LIMITED,
    Intervention.ACCELERATION_LIMITED, Intervention.STALE_HALT, Intervention.REJECTED_INPUT)


class RejectReason(enum.Enum):
    """Why :meth:`CommandSafety.submit` ignored a target."""

    NOT_NUMERIC = 'not_numeric'  # not an array of real numbers
    WRONG_SHAPE = 'wrong_shape'  # not of shape (n,)
    NON_FINITE = 'non_finite'  # NaN or infinity
    OUT_OF_RANGE = 'out_of_range'  # more than max_limit_excess_rad outside the joint limits
    BAD_STAMP = 'bad_stamp'  # stamp not a finite number, or out of order


@dataclasses.dataclass(frozen=True)
class SafetyConfig:
    """Bounds of :class:`CommandSafety`. Defaults and where they come from:

    Attributes:
        max_velocity_rad_s: A cap on every joint's velocity bound, rad/s; ``None`` (default):
            the robot model's own limits (module docstring, "Where each joint's bounds come
            from"; :data:`DEFAULT_MAX_VELOCITY_RAD_S` for a filter without them).
        max_acceleration_rad_s2: Likewise for accelerations, rad/s^2 (the robot folders give
            100 rad/s^2 unless their ``limits:`` say otherwise: from rest to 6 rad/s in 60 ms).
        watchdog_timeout_s: 0.25 s without an accepted target makes the input stale (7 frames
            at 30 fps: a few late or lost messages do not stop the robot, a dead sender does
            within a quarter of a second).
        halt_deceleration_rad_s2: Deceleration of a stale halt; ``None`` (default) halts at
            ``max_acceleration`` (the shortest smooth stop). A smaller value halts more gently,
            except where a joint must brake harder to stay inside its limits.
        limit_margin_rad: 0.02 rad (~1.1 deg): commands stay this far inside the URDF limits,
            off the hard stops. Must be less than half of every joint's range.
        max_limit_excess_rad: 0.5 rad (~29 deg): a target further outside a joint's limits is
            rejected as garbage (degrees sent as radians, swapped joints) rather than clamped;
            retargeting keeps targets within the limits up to solver tolerance.
        joint_max_velocity_rad_s: Per-joint velocity bounds by joint name, replacing the
            robot's limit and the cap for that joint.
        joint_max_acceleration_rad_s2: Likewise for accelerations.
    """

    max_velocity_rad_s: float | None = None
    max_acceleration_rad_s2: float | None = None
    watchdog_timeout_s: float = 0.25
    halt_deceleration_rad_s2: float | None = None
    limit_margin_rad: float = 0.02
    max_limit_excess_rad: float = 0.5
    joint_max_velocity_rad_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    joint_max_acceleration_rad_s2: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check every value.

        Raises:
            ConfigError: A value is not a finite number, or is out of its range; the message
                names the key.
        """
        set_field = object.__setattr__
        set_field(self, 'watchdog_timeout_s', _number(
            'watchdog_timeout_s', self.watchdog_timeout_s, allow_zero=False))
        for name in ('max_velocity_rad_s', 'max_acceleration_rad_s2'):
            if getattr(self, name) is not None:
                set_field(self, name, _number(name, getattr(self, name), allow_zero=False))
        for name in ('limit_margin_rad', 'max_limit_excess_rad'):
            set_field(self, name, _number(name, getattr(self, name), allow_zero=True))
        if self.halt_deceleration_rad_s2 is not None:
            set_field(self, 'halt_deceleration_rad_s2', _number(
                'halt_deceleration_rad_s2', self.halt_deceleration_rad_s2, allow_zero=False))
        for name in ('joint_max_velocity_rad_s', 'joint_max_acceleration_rad_s2'):
            values = getattr(self, name)
            if not isinstance(values, Mapping):
                raise ConfigError(f'safety config {name!r} must be a mapping of joint name to '
                                  f'value, got {values!r}')
            checked = {}
            for joint, value in values.items():
                if not isinstance(joint, str):
                    raise ConfigError(f'safety config {name!r}: joint names must be str, got '
                                      f'{joint!r}')
                checked[joint] = _number(f'{name}[{joint!r}]', value, allow_zero=False)
            set_field(self, name, dict(sorted(checked.items())))

    def __hash__(self) -> int:
        return hash(tuple(
            tuple(value.items()) if isinstance(value, Mapping) else value
            for value in dataclasses.astuple(self)))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SafetyConfig:
        """Build a config from a mapping (e.g. parsed YAML), rejecting unknown keys.

        Raises:
            ConfigError: An unknown key (the message lists the valid ones) or a bad value.
        """
        kwargs = config_kwargs(cls, values, 'safety')
        for name in ('joint_max_velocity_rad_s', 'joint_max_acceleration_rad_s2'):
            if kwargs.get(name, ...) is None:  # an empty YAML mapping written as `key:`
                kwargs[name] = {}
        return cls(**kwargs)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SafetyConfig:
        """Read a config from a YAML file holding a mapping of settings (``yaml.safe_load``).

        Raises:
            ConfigError: Unreadable file, invalid YAML, unknown keys or bad values.
        """
        return config_from_yaml(cls, path, 'safety')

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (the inverse of :meth:`from_dict`)."""
        out = dataclasses.asdict(self)
        for name in ('joint_max_velocity_rad_s', 'joint_max_acceleration_rad_s2'):
            out[name] = dict(getattr(self, name))
        return out


def _number(name: str, value: Any, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f'safety config {name!r} must be a number, got {value!r}')
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or (value == 0.0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise ConfigError(f'safety config {name!r} must be finite and {bound}, got {value!r}')
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class SafeCommand:
    """One command of :meth:`CommandSafety.tick`.

    Attributes:
        qpos: (n,) joint positions to send, in the filter's joint order (read-only).
        qvel: (n,) joint velocities, ``(qpos - previous qpos) / dt`` with ``dt`` the time since
            the previous command (read-only).
        time_s: The command's time, as given to :meth:`CommandSafety.tick`: its stamp.
        stale: No fresh target: the robot is halting or holding.
        interventions: The kinds of :class:`Intervention` that acted on this command.
    """

    qpos: np.ndarray
    qvel: np.ndarray
    time_s: float
    stale: bool
    interventions: Intervention

    @property
    def intervened(self) -> bool:
        """Whether the filter changed anything on this tick."""
        return self.interventions is not Intervention.NONE


class CommandSafety:
    """Safety filter for the joint commands of one robot, ticked at about ``rate_hz``.

    Use: :meth:`reset` with the measured joint state, then :meth:`submit` targets as they
    arrive and call :meth:`tick` once per period with the current time; publish the command it
    returns stamped with its ``time_s``, or nothing when it returns ``None``. See the module
    docstring for what every two consecutive commands are guaranteed to satisfy: the motion
    bounds hold over the real time between their stamps, not per nominal period. The nominal
    period ``1 / rate_hz`` only sets the interval before the first command after a reset and
    what counts as a late tick.

    Args:
        joint_names: (n,) unique joint names, the order of every array.
        lower, upper: (n,) joint position limits (e.g. from the URDF), finite, lower <= upper.
        config: Bounds; ``None``: the defaults.
        rate_hz: Nominal tick rate, Hz.
        max_velocity: (n,) the robot model's velocity limits, > 0 (``None``: none; module
            docstring, "Where each joint's bounds come from").
        max_acceleration: (n,) the robot model's acceleration limits, > 0, likewise.

    Raises:
        ConfigError: Bad names, limits, rate, a joint range narrower than twice the margin, or
            a per-joint override naming an unknown joint (the message lists the joints).
    """

    def __init__(self, joint_names: Sequence[str], lower: np.ndarray, upper: np.ndarray,
                 config: SafetyConfig | None = None, *, rate_hz: float,
                 max_velocity: np.ndarray | None = None,
                 max_acceleration: np.ndarray | None = None) -> None:
        config = SafetyConfig() if config is None else config
        names = tuple(joint_names) if not isinstance(joint_names, str) else ()
        if not names or not all(isinstance(name, str) and name for name in names):
            raise ConfigError(f'joint_names must be a non-empty sequence of non-empty str, got '
                              f'{joint_names!r}')
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ConfigError(f'joint_names must be unique, repeated: {repeated}')
        n = len(names)
        lower = _limits('lower', lower, n)
        upper = _limits('upper', upper, n)
        if np.any(lower > upper):
            j = int(np.argmax(lower > upper))
            raise ConfigError(f'joint {names[j]!r}: lower limit {lower[j]!r} > upper limit '
                              f'{upper[j]!r}')
        margin = config.limit_margin_rad
        if np.any(upper - lower < 2.0 * margin):
            j = int(np.argmax(upper - lower < 2.0 * margin))
            raise ConfigError(f'joint {names[j]!r}: range {upper[j] - lower[j]!r} is narrower '
                              f'than twice the limit margin {margin!r}')
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) \
                or not (math.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f'rate_hz must be finite and > 0, got {rate_hz!r}')
        self.joint_names = names
        self.config = config
        self.rate_hz = float(rate_hz)
        self.dt_s = 1.0 / self.rate_hz
        self.lower = _frozen(lower)
        self.upper = _frozen(upper)
        self.safe_lower = _frozen(lower + margin)  # (n,)
        self.safe_upper = _frozen(upper - margin)  # (n,)
        self.max_velocity = _frozen(_per_joint(
            names, _bounds('max_velocity', max_velocity, config.max_velocity_rad_s,
                           DEFAULT_MAX_VELOCITY_RAD_S, n),
            config.joint_max_velocity_rad_s, 'joint_max_velocity_rad_s'))  # (n,)
        self.max_acceleration = _frozen(_per_joint(
            names, _bounds('max_acceleration', max_acceleration, config.max_acceleration_rad_s2,
                           DEFAULT_MAX_ACCELERATION_RAD_S2, n),
            config.joint_max_acceleration_rad_s2, 'joint_max_acceleration_rad_s2'))  # (n,)
        halt = config.halt_deceleration_rad_s2
        self.halt_deceleration = _frozen(
            self.max_acceleration.copy() if halt is None
            else np.minimum(halt, self.max_acceleration))  # (n,)
        self._counts = dict.fromkeys(INTERVENTION_KINDS, 0)
        self._q: np.ndarray | None = None  # (n,) last command
        self._v = np.zeros(n)  # (n,) last velocity
        self._t: float | None = None  # time of the last command; None: none since the reset
        self._skipped = 0
        self._clear_target()
        self._rejected_since_tick = False

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def qpos(self) -> np.ndarray | None:
        """(n,) the last command (or the reset state); ``None`` before :meth:`reset`."""
        return None if self._q is None else self._q.copy()

    @property
    def qvel(self) -> np.ndarray:
        """(n,) the velocity of the last command."""
        return self._v.copy()

    @property
    def time_s(self) -> float | None:
        """The time of the last command; ``None`` before the first command after a reset."""
        return self._t

    @property
    def skipped_ticks(self) -> int:
        """Ticks that returned no command (time not finite or not after the last command)."""
        return self._skipped

    def reset(self, qpos: np.ndarray) -> None:
        """Start from the measured joint state, at rest, with no target and no time.

        A measured position outside the safe range starts at the nearest safe position (counted
        as ``position_clamped``): commands never leave the safe range, so the first one moves
        such a joint inwards. The next :meth:`tick` at any finite time returns a command, one
        nominal period after this state: a new stream of commands. Counters are kept.

        Raises:
            MotionError: ``qpos`` is not (n,) finite numbers.
        """
        q = np.asarray(qpos)
        if q.dtype.kind not in 'iuf' or q.shape != (self.num_joints,):
            raise MotionError(f'reset qpos: expected ({self.num_joints},) real numbers, got '
                              f'shape {q.shape} dtype {q.dtype}')
        q = q.astype(np.float64)
        if not np.all(np.isfinite(q)):
            raise MotionError(f'reset qpos must be finite, got {q.tolist()}')
        clamped = np.clip(q, self.safe_lower, self.safe_upper)
        if np.any(clamped != q):
            self._counts[Intervention.POSITION_CLAMPED] += 1
        self._q = clamped
        self._v = np.zeros(self.num_joints)
        self._t = None
        self._clear_target()

    def _clear_target(self) -> None:
        self._target: np.ndarray | None = None  # (n,) clamped to the safe range
        self._target_clamped = False
        self._target_stamp_s = -math.inf
        self._target_velocity = np.zeros(self.num_joints)  # (n,)
        self._target_interval_s = 0.0

    def submit(self, qpos_target: Any, stamp_s: float) -> RejectReason | None:
        """Offer a joint target, received at ``stamp_s`` (the clock of :meth:`tick`).

        Args:
            qpos_target: (n,) joint positions in the filter's joint order.
            stamp_s: When the target was received. A stamp earlier than the current target's
                by at most the watchdog timeout is out of order and rejected; an older one is
                taken as a clock reset and accepted. Every tick judges the target by its age:
                it is fresh while ``|now - stamp| <= watchdog_timeout_s``, so a stamp far in
                the past or the future makes the input stale (a halt), never fresh for long.

        Returns:
            ``None`` if the target was accepted; otherwise why it was ignored (counted as
            ``rejected_input``, reported on the next command).
        """
        reason = self._check(qpos_target, stamp_s)
        if reason is not None:
            self._counts[Intervention.REJECTED_INPUT] += 1
            self._rejected_since_tick = True
            return reason
        target = np.asarray(qpos_target).astype(np.float64)  # (n,)
        stamp_s = float(stamp_s)
        clamped = np.clip(target, self.safe_lower, self.safe_upper)
        interval = stamp_s - self._target_stamp_s
        if self._target is not None and 0.0 < interval <= self.config.watchdog_timeout_s:
            velocity = np.clip((clamped - self._target) / interval, -self.max_velocity,
                               self.max_velocity)
        else:
            velocity, interval = np.zeros(self.num_joints), 0.0
        self._target = clamped
        self._target_clamped = bool(np.any(clamped != target))
        self._target_stamp_s = stamp_s
        self._target_velocity = velocity
        self._target_interval_s = interval
        return None

    def _check(self, qpos_target: Any, stamp_s: Any) -> RejectReason | None:
        try:
            target = np.asarray(qpos_target)
        except (TypeError, ValueError):  # ragged sequences
            return RejectReason.NOT_NUMERIC
        if target.dtype.kind not in 'iuf':
            return RejectReason.NOT_NUMERIC
        if target.shape != (self.num_joints,):
            return RejectReason.WRONG_SHAPE
        with np.errstate(over='ignore'):  # float128 beyond float64 becomes inf: rejected
            target = target.astype(np.float64)
        if not np.all(np.isfinite(target)):
            return RejectReason.NON_FINITE
        excess = self.config.max_limit_excess_rad
        if np.any((target < self.lower - excess) | (target > self.upper + excess)):
            return RejectReason.OUT_OF_RANGE
        if isinstance(stamp_s, bool) \
                or not isinstance(stamp_s, (int, float, np.integer, np.floating)):
            return RejectReason.BAD_STAMP
        stamp_s = float(stamp_s)
        timeout = self.config.watchdog_timeout_s
        if not math.isfinite(stamp_s):
            return RejectReason.BAD_STAMP
        if self._target_stamp_s - timeout <= stamp_s < self._target_stamp_s:
            return RejectReason.BAD_STAMP
        return None

    def tick(self, now_s: float) -> SafeCommand | None:
        """Compute the command for now, or ``None`` when there is none to send.

        Args:
            now_s: The current time (the clock of the stamps), the returned command's
                ``time_s``. A time that is not finite, or less than
                :data:`MIN_TICK_INTERVAL_S` after the last command, gives ``None`` and changes
                nothing (the rejections since the last command are still reported on the next
                one).

        Returns:
            The command, to be stamped with its ``time_s``; ``None``: send nothing this tick.

        Raises:
            SimulationError: :meth:`reset` was never called (no measured state to start from).
        """
        if self._q is None:
            raise SimulationError('no joint state to start from: call reset(qpos) with the '
                                  'measured joint positions before tick()')
        now_s = float(now_s)
        # The real time since the last command; one nominal period after a reset.
        dt = self.dt_s if self._t is None else now_s - self._t
        if not math.isfinite(now_s) or (self._t is not None and not dt >= MIN_TICK_INTERVAL_S):
            self._skipped += 1
            return None
        q, v = self._q, self._v
        vmax, amax = self.max_velocity, self.max_acceleration
        flags = Intervention.REJECTED_INPUT if self._rejected_since_tick else Intervention.NONE
        self._rejected_since_tick = False
        age = now_s - self._target_stamp_s
        stale = self._target is None or not abs(age) <= self.config.watchdog_timeout_s
        if stale:
            flags |= Intervention.STALE_HALT
            desired = np.zeros_like(q)
            step = self.halt_deceleration * dt
        else:
            if self._target_clamped:
                flags |= Intervention.POSITION_CLAMPED
            # Extrapolate along the target's velocity for at most one interval between targets.
            ahead = min(max(age, 0.0), self._target_interval_s)
            moving = age < self._target_interval_s
            target_velocity = self._target_velocity if moving else np.zeros_like(q)
            target = np.clip(self._target + self._target_velocity * ahead, self.safe_lower,
                             self.safe_upper)
            gap = target - q - target_velocity * dt  # (n,) left after moving with the target
            desired = target_velocity + np.sign(gap) * _stopping_speed(np.abs(gap), amax, dt)
            # A late tick moves no further than one LATE_TICK_PERIODS periods late.
            limit = vmax * min(1.0, LATE_TICK_PERIODS * self.dt_s / dt)  # (n,)
            if np.any(np.abs(desired) > limit):
                flags |= Intervention.VELOCITY_LIMITED
                desired = np.clip(desired, -limit, limit)
            step = amax * dt
        velocity = np.clip(desired, v - step, v + step)
        if not stale and np.any(velocity != desired):
            flags |= Intervention.ACCELERATION_LIMITED
        # Limits win: never faster than what can stop at max acceleration inside the range,
        # whatever the later ticks.
        reach_up = _stopping_speed(self.safe_upper - q, amax, dt)
        reach_down = _stopping_speed(q - self.safe_lower, amax, dt)
        bounded = np.clip(velocity, -reach_down, reach_up)
        if np.any(bounded != velocity):
            flags |= Intervention.POSITION_CLAMPED
        q_new = np.clip(q + bounded * dt, self.safe_lower, self.safe_upper)
        v_new = (q_new - q) / dt
        self._q, self._v, self._t = q_new, v_new, now_s
        for kind in INTERVENTION_KINDS:
            if kind is not Intervention.REJECTED_INPUT and kind in flags:
                self._counts[kind] += 1
        return SafeCommand(qpos=_frozen(q_new.copy()), qvel=_frozen(v_new.copy()), time_s=now_s,
                           stale=stale, interventions=flags)

    def counters(self) -> dict[str, int]:
        """Interventions so far by kind (lower-case names of :data:`INTERVENTION_KINDS`):
        ``rejected_input`` counts rejected submissions, the others count ticks."""
        return {kind.name.lower(): count for kind, count in self._counts.items()}


def _stopping_speed(distance: np.ndarray, max_acceleration: np.ndarray,
                    dt: float) -> np.ndarray:
    """Largest speed ``s >= 0`` to move at for ``dt`` and still stop within ``distance``,
    whatever the intervals of the later ticks.

    Braking at ``a = max_acceleration`` over any later intervals covers less than
    ``s^2 / (2 a)`` (module docstring, "The stopping bound"), so ``s`` is the root of
    ``s dt + s^2 / (2 a) = distance``, written without cancellation as
    ``2 distance / (dt + sqrt(dt^2 + 2 distance / a))``. Distances much shorter than
    ``a dt^2`` give about ``distance / dt``: what is left shrinks quadratically.

    Args:
        distance: (n,) distance available, clipped at 0.
        max_acceleration: (n,) deceleration, > 0.
        dt: The coming interval, > 0.

    Returns:
        (n,) speeds.
    """
    distance = np.maximum(distance, 0.0)
    return 2.0 * distance / (dt + np.sqrt(dt * dt + 2.0 * distance / max_acceleration))


def _limits(name: str, values: Any, n: int) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in 'iuf' or array.shape != (n,):
        raise ConfigError(f'{name}: expected ({n},) joint limits, got shape {array.shape} '
                          f'dtype {array.dtype}')
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ConfigError(f'{name} limits must be finite, got {array.tolist()}')
    return array


def _bounds(name: str, robot: Any, cap: float | None, default: float, n: int) -> np.ndarray:
    """(n,) a bound per joint before the per-joint overrides: the robot's capped by ``cap``,
    else ``cap``, else ``default``."""
    if robot is None:
        return np.full(n, default if cap is None else cap)
    array = _limits(name, robot, n)
    if np.any(array <= 0.0):
        raise ConfigError(f'{name} limits must be > 0, got {array.tolist()}')
    return array if cap is None else np.minimum(array, cap)


def _per_joint(names: tuple[str, ...], bounds: np.ndarray, overrides: Mapping[str, float],
               what: str) -> np.ndarray:
    for name in overrides:
        if name not in names:
            raise ConfigError(unknown_choice(f'joint in safety config {what!r}', name, names))
    return np.array([overrides.get(name, bound) for name, bound in zip(names, bounds,
                                                                        strict=True)],
                    dtype=np.float64)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class SafetyReport:
    """What :func:`filter_trajectory` did to a trajectory.

    Attributes:
        joint_names: (n,) joint names.
        counts: Interventions by kind, as :meth:`CommandSafety.counters`.
        frame_flags: (T,) int, the :class:`Intervention` value of each frame's command.
        max_deviation_rad: Largest ``|safe - input|`` over the finite input values, 0 if none.
        worst_joint: The joint of ``max_deviation_rad`` (``None`` if it is 0).
        rejected_frames: Indices of the frames whose target was rejected.
    """

    joint_names: tuple[str, ...]
    counts: Mapping[str, int]
    frame_flags: np.ndarray
    max_deviation_rad: float
    worst_joint: str | None
    rejected_frames: tuple[int, ...]

    @property
    def unchanged(self) -> bool:
        """Whether no frame needed any intervention."""
        return not np.any(self.frame_flags)

    def frames_with(self, kind: Intervention) -> np.ndarray:
        """(k,) indices of the frames on which ``kind`` acted."""
        return np.flatnonzero(self.frame_flags & kind.value)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-compatible values."""
        return {
            'counts': dict(self.counts),
            'frames': int(self.frame_flags.shape[0]),
            'frames_with_interventions': int(np.count_nonzero(self.frame_flags)),
            'frames_by_kind': {kind.name.lower(): int(self.frames_with(kind).size)
                               for kind in INTERVENTION_KINDS},
            'max_deviation_rad': self.max_deviation_rad,
            'worst_joint': self.worst_joint,
            'rejected_frames': list(self.rejected_frames),
        }


def filter_trajectory(qpos: np.ndarray, fps: float, lower: np.ndarray, upper: np.ndarray,
                      config: SafetyConfig | None = None, *,
                      joint_names: Sequence[str] | None = None,
                      initial_qpos: np.ndarray | None = None,
                      max_velocity: np.ndarray | None = None,
                      max_acceleration: np.ndarray | None = None
                      ) -> tuple[np.ndarray, SafetyReport]:
    """Run :class:`CommandSafety` over a whole trajectory, one tick per frame.

    Frame ``t`` is submitted with stamp ``t / fps`` and ticked at the same time, exactly as a
    streaming node at ``fps`` would; the result equals ticking the class by hand.

    Args:
        qpos: (T, n) joint targets; rows with NaN, infinity or absurd values are rejected like
            any submission (the filter keeps to the last valid target).
        fps: Frame rate, the tick rate.
        lower, upper: (n,) joint limits.
        config: Bounds; ``None``: the defaults.
        joint_names: (n,) names, needed for per-joint overrides; default ``joint_0``...
        initial_qpos: (n,) state to start from (the robot's measured state); default: the
            first frame (clamped to the safe range; the start is at rest). Must be finite.
        max_velocity, max_acceleration: (n,) the robot's limits (as :class:`CommandSafety`).

    Returns:
        ``(safe, report)``: (T, n) commands and a :class:`SafetyReport`.

    Raises:
        MotionError: ``qpos`` is not a (T, n) numeric array with T >= 1, or the start state
            is not finite.
        ConfigError: Bad limits, fps or config (as :class:`CommandSafety`).
    """
    targets = np.asarray(qpos)
    n = np.asarray(lower).shape[0] if np.ndim(lower) == 1 else -1
    if targets.dtype.kind not in 'iuf' or targets.ndim != 2 or targets.shape[0] < 1 \
            or targets.shape[1] != n:
        raise MotionError(f'qpos: expected shape (T, {n}) with T >= 1 of real numbers (one '
                          f'column per joint limit), got {targets.shape} dtype {targets.dtype}')
    with np.errstate(over='ignore'):
        targets = targets.astype(np.float64)
    names = tuple(f'joint_{j}' for j in range(n)) if joint_names is None else tuple(joint_names)
    safety = CommandSafety(names, lower, upper, config, rate_hz=fps, max_velocity=max_velocity,
                           max_acceleration=max_acceleration)
    start = targets[0] if initial_qpos is None else initial_qpos
    safety.reset(start)
    safe = np.empty_like(targets)
    flags = np.zeros(targets.shape[0], dtype=np.int64)
    rejected = []
    for t in range(targets.shape[0]):
        stamp_s = t / safety.rate_hz
        if safety.submit(targets[t], stamp_s) is not None:
            rejected.append(t)
        command = safety.tick(stamp_s)
        assert command is not None  # t / fps strictly increases
        safe[t] = command.qpos
        flags[t] = command.interventions.value
    with np.errstate(invalid='ignore', over='ignore'):
        deviation = np.abs(safe - targets)
    deviation[~np.isfinite(deviation)] = 0.0
    worst = np.unravel_index(int(np.argmax(deviation)), deviation.shape)
    max_deviation = float(deviation[worst])
    report = SafetyReport(
        joint_names=safety.joint_names, counts=safety.counters(), frame_flags=_frozen(flags),
        max_deviation_rad=max_deviation,
        worst_joint=safety.joint_names[worst[1]] if max_deviation > 0.0 else None,
        rejected_frames=tuple(rejected))
    return safe, report
