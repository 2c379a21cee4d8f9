"""The simulation gate: pass a clip to the robot only when its simulation says it is safe.

:func:`judge` checks a :class:`~handx_ros.sim.evaluate.SimResult` against the thresholds of a
:class:`GateConfig` (``config/sim_gate.yaml``) and returns a :class:`GateVerdict` with every
failed criterion as a reason naming the measured value, the threshold and where it happened:

* penetration depth in the simulation (between the hands or within the robot) and the
  penetration the command itself asks for between the hands (the simulated hands push each
  other back, so a command through the other hand shows there), with the link pair and time;
* the fraction of frames penetrating deeper than the simulation's tolerance;
* joint and fingertip tracking error (95th percentile over frames of the worst joint or tip);
* reach: a humanoid wrist the retargeting left further than ``max_reach_error_m`` from its
  target (the arm could not get there, or the body was in the way), with the hand, the error
  and when; the simulation tracks the command faithfully, so only the retargeting knows;
* stability (a run that stopped early fails, with its message);
* commanded joint velocity (finite differences of the command times the frame rate) against
  each joint's own limit from the robot model (:attr:`SimResult.max_velocity_rad_s`), or one
  configured bound for every joint;
* optionally, the peak contact force and the contact recall against the human motion.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.config import config_from_yaml, config_kwargs
from handx_gen.errors import ConfigError
from handx_ros.sim.evaluate import SimResult

__all__ = [
    'GATE_CONFIG_FILE',
    'GateCheck',
    'GateConfig',
    'GateVerdict',
    'judge',
    'load_gate_config',
]

GATE_CONFIG_FILE = 'sim_gate.yaml'


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """Thresholds of the simulation gate. Defaults and why:

    Attributes:
        max_penetration_m: 0.005 m: soft contacts sink a fraction of a millimetre; 5 mm means
            the command drives one link into another harder than the contact can resist.
        max_command_penetration_m: 0.01 m: how far the commanded configuration may put one
            hand into the other (a press with a small preload passes; a hand driven through
            the other, whose simulation shows contact forces instead, fails).
        max_penetrating_fraction: 0.05: at most 5 % of the frames deeper than the
            simulation's ``penetration_tolerance_m``.
        max_joint_error_p95_rad: 0.1 rad (5.7 deg): the servos track a free motion to a few
            hundredths of a radian; more means a joint is blocked (a collision) or the command
            is faster than the servo.
        max_fingertip_error_p95_m: 0.015 m: a fingertip further than this from its commanded
            place would miss a contact the human made (contacts count from 2 cm, HandX).
        require_stable: True: a run that diverged or stopped early fails.
        max_joint_velocity_rad_s: ``None`` (default): every joint is held to its own velocity
            limit from the robot model (the URDF's ``velocity``, or the robot folder's
            ``limits:``), the limit retiming plays a clip within; a number replaces it with one
            bound for every joint (rad/s). Faster means a jump in the retargeted command that
            retiming could not smooth (:mod:`~handx_ros.retarget.retime`).
        max_contact_force_n: Largest contact normal force allowed; ``None`` (default): not
            checked (forces depend on the wrist compliance the scene assumes).
        min_contact_recall: Smallest share of the human contact events the robot must
            reproduce when the human motion was simulated along; ``None`` (default): not
            checked.
        max_reach_error_m: 0.03 m: a humanoid wrist further than this from where the human
            wrist puts it (its retargeted target) is a clip the robot does not perform: a
            hand 3 cm off misses the other hand or the object. The retargeting leaves a few
            millimetres on a reachable target. ``None``: not checked.
    """

    max_penetration_m: float = 0.005
    max_command_penetration_m: float = 0.01
    max_penetrating_fraction: float = 0.05
    max_joint_error_p95_rad: float = 0.1
    max_fingertip_error_p95_m: float = 0.015
    require_stable: bool = True
    max_joint_velocity_rad_s: float | None = None
    max_contact_force_n: float | None = None
    min_contact_recall: float | None = None
    max_reach_error_m: float | None = 0.03

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == 'require_stable':
                if not isinstance(value, bool):
                    raise ConfigError(f'gate config require_stable must be a bool, got '
                                      f'{value!r}')
                continue
            if value is None and field.name in ('max_contact_force_n', 'min_contact_recall',
                                                'max_joint_velocity_rad_s',
                                                'max_reach_error_m'):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0.0:
                raise ConfigError(f'gate config {field.name!r} must be a finite number >= 0, '
                                  f'got {value!r}')
            object.__setattr__(self, field.name, float(value))
        for name in ('max_penetrating_fraction', 'min_contact_recall'):
            value = getattr(self, name)
            if value is not None and value > 1.0:
                raise ConfigError(f'gate config {name!r} is a fraction in [0, 1], got {value!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> GateConfig:
        """Thresholds from a mapping (YAML); unknown keys are rejected (valid ones listed).

        Raises:
            ConfigError: An unknown key or a bad value.
        """
        return cls(**config_kwargs(cls, values, 'gate'))


def load_gate_config(path: str | Path | None = None) -> GateConfig:
    """The gate thresholds from a YAML file (default: the installed ``config/sim_gate.yaml``).

    Raises:
        ConfigError: Unreadable file, invalid YAML, unknown keys or bad values.
    """
    if path is None:
        from handx_ros.paths import config_dir

        path = config_dir() / GATE_CONFIG_FILE
    return config_from_yaml(GateConfig, path, 'gate')


@dataclasses.dataclass(frozen=True)
class GateCheck:
    """One criterion: its measured value, its threshold and whether it passed.

    Attributes:
        name: ``'penetration'``, ``'command_penetration'``, ``'penetrating_fraction'``,
            ``'joint_error'``, ``'fingertip_error'``, ``'joint_velocity'``, ``'reach'``,
            ``'stability'``, ``'contact_force'`` or ``'contact_recall'``.
        value: The measured value (SI units; 1.0 / 0.0 for stability).
        threshold: The limit it is held to.
        passed: Whether it is within the limit.
        reason: Why it failed ('' when it passed).
    """

    name: str
    value: float | None
    threshold: float
    passed: bool
    reason: str = ''

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class GateVerdict:
    """The gate's answer: ``passed`` only if every check passed; one reason per failed one."""

    passed: bool
    reasons: list[str]
    checks: tuple[GateCheck, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {'passed': self.passed, 'verdict': 'pass' if self.passed else 'fail',
                'reasons': list(self.reasons), 'checks': [c.to_dict() for c in self.checks]}


def judge(result: SimResult, gate: GateConfig | None = None) -> GateVerdict:
    """Hold a simulation result to the gate's thresholds.

    Args:
        result: What :func:`~handx_ros.sim.evaluate.simulate` measured.
        gate: Thresholds (default :class:`GateConfig`).

    Returns:
        The verdict, with a reason for every failed criterion.
    """
    gate = gate or GateConfig()
    summary = result.summary()
    checks = [
        _penetration(result, gate),
        _command_penetration(result, gate),
        _penetrating_fraction(result, gate),
        _tracking('joint_error', summary['joint_error_p95_rad'], gate.max_joint_error_p95_rad,
                  lambda v, t: f'joint tracking error p95 {_beyond(v, t, "rad", 3)} (worst '
                               f'joint {summary["joint_error_worst_joint"]})'),
        _tracking('fingertip_error', summary['fingertip_error_p95_m'],
                  gate.max_fingertip_error_p95_m,
                  lambda v, t: 'fingertip tracking error p95 '
                               f'{_beyond(v, t, "mm", 1, scale=1e3)}'),
        _velocity(result, gate),
    ]
    if gate.max_reach_error_m is not None and result.reach_error_m is not None:
        checks.append(_reach(result, gate.max_reach_error_m))
    if gate.require_stable:
        checks.append(GateCheck('stability', 1.0 if result.stable else 0.0, 1.0, result.stable,
                                '' if result.stable else
                                f'unstable: {result.message} ({result.frames_simulated} of '
                                f'{result.num_frames} frames simulated)'))
    if gate.max_contact_force_n is not None:
        force = float(summary['peak_force_n'] or 0.0)
        ok = force <= gate.max_contact_force_n
        checks.append(GateCheck('contact_force', force, gate.max_contact_force_n, ok,
                                '' if ok else 'peak contact force '
                                f'{_beyond(force, gate.max_contact_force_n, "N", 1)}'))
    if gate.min_contact_recall is not None and result.fidelity is not None \
            and result.fidelity.recall is not None:
        recall = result.fidelity.recall
        ok = recall >= gate.min_contact_recall
        checks.append(GateCheck('contact_recall', recall, gate.min_contact_recall, ok,
                                '' if ok else 'contact recall '
                                f'{_beyond(recall, gate.min_contact_recall, "", 2, op="<")} '
                                f'({len(result.fidelity.human)} human contact events)'))
    reasons = [c.reason for c in checks if not c.passed]
    return GateVerdict(passed=not reasons, reasons=reasons, checks=tuple(checks))


# ----------------------------------------------------------------------------- checks

def _beyond(value: float, bound: float, unit: str, digits: int, *, scale: float = 1.0,
            op: str = '>') -> str:
    """``'{value} {unit} {op} {bound} {unit}'``, both with ``digits`` decimals, or as many more
    as it takes for a value beyond its bound not to print equal to it (``0.1004 rad > 0.1000
    rad``, never ``0.100 rad > 0.100 rad``)."""
    value, bound = value * scale, bound * scale
    for places in range(digits, digits + 12):
        shown, limit = f'{value:.{places}f}', f'{bound:.{places}f}'
        if shown != limit:
            break
    else:  # closer than any fixed number of places shows: the shortest exact repr
        shown, limit = repr(value), repr(bound)
    unit = f' {unit}' if unit else ''
    return f'{shown}{unit} {op} {limit}{unit}'

def _penetration(result: SimResult, gate: GateConfig) -> GateCheck:
    depth = result.penetration_m
    if depth.size == 0:
        return GateCheck('penetration', 0.0, gate.max_penetration_m, True)
    frame = int(np.argmax(depth))
    value = float(depth[frame])
    if value <= gate.max_penetration_m:
        return GateCheck('penetration', value, gate.max_penetration_m, True)
    pair = result.penetration_pair[frame] or ('?', '?')
    deep = np.flatnonzero(depth > gate.max_penetration_m)
    pairs = sorted({result.penetration_pair[t] for t in deep if result.penetration_pair[t]})
    others = [f'{a}-{b}' for a, b in pairs if (a, b) != tuple(pair)]
    also = f'; also {", ".join(others[:4])}' if others else ''
    return GateCheck(
        'penetration', value, gate.max_penetration_m, False,
        f'penetration {_beyond(value, gate.max_penetration_m, "mm", 1, scale=1e3)} between '
        f'{pair[0]} and {pair[1]} at {frame / result.fps:.2f} s in the simulation '
        f'({deep.size} frames deeper '
        f'than {gate.max_penetration_m * 1e3:.1f} mm{also})')


def _command_penetration(result: SimResult, gate: GateConfig) -> GateCheck:
    threshold = gate.max_command_penetration_m
    distance = result.command_distance_m
    if distance.size == 0 or -float(distance.min()) <= threshold:
        value = max(0.0, -float(distance.min())) if distance.size else 0.0
        return GateCheck('command_penetration', value, threshold, True)
    frame = int(np.argmin(distance))
    value = -float(distance[frame])
    pair = result.command_pair[frame] or ('?', '?')
    deep = int(np.count_nonzero(-distance > threshold))
    force = float(result.peak_force_n.max()) if result.peak_force_n.size else 0.0
    return GateCheck(
        'command_penetration', value, threshold, False,
        f'commanded penetration {_beyond(value, threshold, "mm", 1, scale=1e3)} between '
        f'{pair[0]} and {pair[1]} at {frame / result.fps:.2f} s ({deep} frames; the '
        f'simulated hands push back: deepest {float(result.penetration_m.max()) * 1e3:.1f} mm, '
        f'peak contact force {force:.0f} N)')


def _penetrating_fraction(result: SimResult, gate: GateConfig) -> GateCheck:
    fraction = result.penetrating_fraction()
    ok = fraction <= gate.max_penetrating_fraction
    tolerance = result.config.penetration_tolerance_m
    return GateCheck('penetrating_fraction', fraction, gate.max_penetrating_fraction, ok,
                     '' if ok else 'penetrating frames '
                     f'{_beyond(fraction, gate.max_penetrating_fraction, "%", 1, scale=100)} '
                     f'(frames deeper than {tolerance * 1e3:.1f} mm)')


def _tracking(name: str, value: float | None, threshold: float,
              reason: Callable[[float, float], str]) -> GateCheck:
    value = float(value or 0.0)
    ok = value <= threshold
    return GateCheck(name, value, threshold, ok, '' if ok else reason(value, threshold))


# Relative tolerance of the velocity check: floating-point rounding, not motion.
_LIMIT_RTOL = 1e-6


def _velocity(result: SimResult, gate: GateConfig) -> GateCheck:
    qpos, fps = result.qpos_cmd, result.fps
    window = result.config.velocity_window
    limit = result.max_velocity_rad_s if gate.max_joint_velocity_rad_s is None \
        else np.full(len(result.joint_names), gate.max_joint_velocity_rad_s)  # (n,)
    if qpos.shape[0] <= window:
        joint = int(np.argmin(limit))
        return GateCheck('joint_velocity', 0.0, float(limit[joint]), True)
    speed = np.abs(qpos[window:] - qpos[:-window]) * fps / window  # (F - w, n)
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(limit > 0.0, speed / limit, np.where(speed > 0.0, np.inf, 0.0))
    frame, joint = np.unravel_index(int(np.argmax(ratio)), speed.shape)
    value, threshold = float(speed[frame, joint]), float(limit[joint])
    # A command exactly at its limit passes: the solver steps up to max_velocity * dt, and the
    # difference of two stored positions can exceed that by rounding.
    ok = value <= threshold * (1.0 + _LIMIT_RTOL)
    return GateCheck('joint_velocity', value, threshold, ok, '' if ok else
                     f'commanded joint velocity {_beyond(value, threshold, "rad/s", 2)} '
                     f'limit of {result.joint_names[joint]} at {(frame + window) / fps:.2f} s')


def _reach(result: SimResult, threshold: float) -> GateCheck:
    error = result.reach_error_m  # (F, 2)
    if error is None or error.size == 0:
        return GateCheck('reach', 0.0, threshold, True)
    worst = error.max(axis=0)  # (2,)
    value = float(worst.max())
    if value <= threshold:
        return GateCheck('reach', value, threshold, True)
    hands = []
    for side in np.flatnonzero(worst > threshold):
        frame = int(np.argmax(error[:, side]))
        beyond = int(np.count_nonzero(error[:, side] > threshold))
        name = ('left', 'right')[side]
        hands.append(f'{name} wrist off its target by '
                     f'{_beyond(float(worst[side]), threshold, "mm", 1, scale=1e3)} at '
                     f'{frame / result.fps:.2f} s ({beyond} of {error.shape[0]} frames beyond)')
    return GateCheck('reach', value, threshold, False, f'out of reach: {"; ".join(hands)}')
