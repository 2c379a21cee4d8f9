"""Hand retargeting: human keypoints to robot hand joint angles, by Pinocchio kinematics.

Objectives (:class:`Objective`), all as sums of squared vector errors between robot frame
pairs and the scaled human keypoint vectors, expressed in the robot hand's base link frame:

* ``FINGERTIP``: wrist -> each mapped fingertip (fingertip positions relative to the wrist).
* ``KEYVECTOR``: the fingertip vectors, plus wrist -> middle finger joints (PIP/DIP level)
  and thumb tip -> each other fingertip (the vectors that carry pinches and grasps).
* ``DEXPILOT``: the key vectors with DexPilot's pinch projection: as the human thumb-finger
  distance falls from ``pinch_off_m`` to ``pinch_on_m``, that vector's target shrinks towards
  ``pinch_gap_m`` along its direction and its weight rises to ``pinch_weight`` (a smooth ramp,
  where DexPilot switches; a switch makes the solution jump).

Solver. Projected Levenberg-Marquardt: every iteration takes analytic Jacobians from Pinocchio
(``computeJointJacobians``), solves the damped normal equations under the joint-limit box with
a small active set, and accepts the step only if the cost falls (else the damping grows). The
problems are small (at most ~20 joints, ~40 residuals), smooth and warm-started, where
Gauss-Newton converges in a few iterations; an SQP (what dex-retargeting runs through nlopt)
pays for generality this problem does not need. Joint limits hold exactly: every iterate is
inside the box by construction.

Motion the robot can make. After the first frame of a clip (after :meth:`HandRetargeter.reset`,
where there is no previous command and the streaming side leads in), each frame's solve runs
over the joint-limit box intersected with ``u_prev +- max_velocity * dt`` (the chain's
per-joint velocity limits, ``dt = 1 / fps``): no joint ever moves further in one frame than the
robot can. A target out of reach within that bound is not jumped to but lags: the frame says
so (``FrameResult.velocity_limited``, a joint ends on its velocity bound), and the solution
keeps slewing towards it at the limit in the frames after. Directions the objective barely
sees (abduction of a flexed finger, the thumb's redundant rotation) are held by a posture
term, ``0.5 posture_weight |u - u_neutral|^2``, small enough that fingertip error barely
changes; with the velocity term it keeps such joints on one branch of the solution instead of
letting them wander to the other bound.

Smoothing. Instead of filtering the output (an EMA with alpha 0.2 lags ~130 ms at 30 fps),
the cost has a velocity term that pulls the solution towards the prediction
``u_prev + prediction * (u_prev - u_prev2)``, and a hold term towards ``u_prev``. With
``prediction`` 1 (constant velocity) it follows steady motion without delay, but on a joint the
objective barely determines it carries the last step on: inside the per-frame velocity bound
the Allegro thumb IP then swung by 0.2 rad every frame on a held pose. The default pulls
towards the previous pose (``prediction`` 0, ``hold_weight`` 3e-5): a held pose stays still
(< 0.01 rad per frame), at the same fingertip error on the benchmark clips (4.9 mm median,
``benchmarks/bench_retarget.py --clips 2``). An optional One-Euro filter
(:mod:`handx_ros.retarget.filters`) smooths the input keypoints for noisy trackers.

Honesty. Each frame reports whether it converged (a stationarity test, not "ran out of
iterations"), its fingertip residual in metres and its iteration count; nothing falls back
silently to the previous pose.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, RetargetError, unknown_choice
from handx_gen.hand.topology import KEYPOINT_NAMES, NUM_KEYPOINTS, HandSide
from handx_ros.retarget.filters import OneEuroFilter
from handx_ros.retarget.robot import hand_kinematics
from handx_ros.retarget.spec import HandSpec, RobotSpec

__all__ = [
    'ExtraResiduals',
    'FrameResult',
    'HandRetargeter',
    'Objective',
    'RetargetConfig',
    'RetargetResult',
    'VectorTerm',
    'levenberg_marquardt',
    'objective_terms',
    'on_velocity_bound',
    'velocity_bounded',
    'velocity_box',
]


# Iterations of a clip's first frame, in multiples of ``RetargetConfig.max_iterations``.
FIRST_FRAME_ITERATIONS = 3

ExtraResiduals = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``u (n,) -> (r (e,), A (e, n))``: weighted residuals added to the cost and their Jacobian."""


class Objective(enum.Enum):
    """What the retargeter matches (see the module docstring)."""

    FINGERTIP = 'fingertip'
    KEYVECTOR = 'keyvector'
    DEXPILOT = 'dexpilot'


@dataclasses.dataclass(frozen=True)
class RetargetConfig:
    """Settings of the hand retargeter; every robot folder may override some (``retarget:``).

    Attributes:
        objective: What to match.
        max_iterations: Levenberg-Marquardt iterations per frame at most.
        step_tolerance_rad: Converged when the accepted step is shorter than this ...
        cost_tolerance: ... or a step lowers the cost (or, rejected, would have lowered it)
            by less than this fraction of it.
        damping: Initial Levenberg-Marquardt damping (relative to the Hessian's diagonal).
        damping_floor: Added to the Hessian's diagonal under the damping, in squared metres
            per squared radian: it bounds steps along directions the objective barely sees
            (a four-joint finger has one for its three-dimensional tip).
        posture_weight: Weight of the pull towards the neutral pose, in squared metres of
            residual per squared radian: it settles joints the objective barely determines
            (0: off).
        hold_weight: Weight of the pull towards the previous frame's solution, same units:
            with the posture term it keeps joints the objective barely determines where they
            were (0: off; see "Smoothing" in the module docstring).
        smoothing_weight: Weight of the velocity term, in squared metres of residual per
            squared radian of deviation from the constant-velocity prediction (0: off).
        prediction: Fraction of the last velocity the prediction extrapolates (0, the
            default: pull towards the previous pose, which keeps a held pose still; 1:
            constant velocity, no lag on steady motion but swings on weakly determined
            joints).
        tip_weight: Weight of wrist -> fingertip vectors.
        middle_weight: Weight of wrist -> PIP/DIP-level vectors (key vectors).
        thumb_weight: Weight of thumb tip -> fingertip vectors (key vectors).
        pinch_on_m: Human thumb-finger distance at which the pinch projection is complete.
        pinch_off_m: Distance at which it starts.
        pinch_gap_m: Robot thumb-finger distance the projection aims at.
        pinch_weight: Weight of a fully projected pinch vector.
        huber_delta_m: Vector errors beyond this (metres, robot scale) count linearly, not
            quadratically (Huber loss), so that one unreachable fingertip (a thumb a robot
            cannot place where the human's is) does not pull the others away (``None``, the
            default: plain least squares; 0.02 lowered the median fingertip error on the
            benchmark clips from 0.65 to 0.47 mm at ~35% more time per frame).
        one_euro_min_cutoff_hz: Cut-off of the One-Euro filter on the input keypoints at rest
            (``None``: no input filter).
        one_euro_beta: Speed coefficient of the One-Euro filter.
        self_collision: Keep the hand's own links apart (capsule and box proxies with a barrier
            residual, :mod:`handx_ros.retarget.self_collision`).
        self_collision_margin_m: Proxy pairs closer than this are pushed apart.
        self_collision_weight: Weight of the barrier, in squared metres of residual per
            squared metre of intrusion into the margin. 100: on two synthetic clips
            (``benchmarks/bench_retarget.py --clips 2``) the fingertip error median is 4.9 mm
            against 3.8 mm without the barrier, at 2.3 ms against 0.7 ms per bimanual frame;
            300 gave 9.1 mm and 2.7 ms, 30 let a thumb into a fingertip in the fist test.
        body_collision: Humanoids: keep each arm's links clear of the body (torso, pelvis,
            legs, head) in the arm IK, with a barrier residual on the collision hulls
            (:mod:`handx_ros.retarget.body_collision`).
        body_collision_margin_m: Arm-body pairs closer than this are pushed apart. 5 mm: the
            simulated arm servos trail their commands by a few millimetres at the elbow.
        body_collision_weight: Weight of that barrier, squared metres of wrist position
            residual per squared metre of intrusion into the margin: 100 keeps a link out of
            the body even when the wrist target lies half a metre inside it.
        reach_tolerance_m: Humanoids: a wrist further than this from its target (the arm
            cannot reach it, or the body is in the way) is flagged per frame, in the
            trajectory's ``info['reach']``; 0.03 m is ten times what the IK leaves on a
            reachable target.
        arm_rotation_weight_m: Humanoids: weight of the wrist orientation error in the arm
            IK against its position error, metres of position per radian: 0.1 (a 10 degree
            miss weighs as much as 17 mm).
        arm_reach_knee_m: Humanoids: a wrist further than this from its target position
            cannot reach it as turned: beyond it the position error weighs
            ``arm_reach_gain`` times more, and the wrist's orientation yields (the palm
            tilts) to bring it nearer. 0.01 m.
        arm_reach_gain: 5: that factor. Up to ``arm_tilt_rad`` of orientation error, a wrist
            out of reach trades orientation for position at ``arm_rotation_weight_m /
            arm_reach_gain`` (0.02 m per radian).
        arm_tilt_rad: The most orientation traded so: an orientation error beyond it weighs
            ``arm_reach_gain`` times more too. 0.8 rad (46 degrees): the G1's left wrist,
            palm up at full reach ("count 5 fingers"), comes within 13 mm of its target with
            about 45 degrees of tilt. The tilt used is reported (``info['reach']``), and a
            wrist still beyond ``reach_tolerance_m`` stays flagged.
        relative_within_m: Humanoids keeping contacts: where the human palms are closer than
            this (their surface distance), the two arms are solved together, and the pose of
            one wrist in the other's frame (palm facing palm) counts beside each wrist's own
            pose, fading in from this distance to a human touch. 0.05 m. An arm that cannot
            turn its wrist to the target (the GR1's wrist pitch, palms pressed fingers up)
            then turns both hands alike, so that they still face each other.
        relative_rotation_weight_m: Weight of that relative orientation at a touch, metres
            per radian (its position weighs 1): 0.3, three times a wrist's own orientation.
    """

    objective: Objective = Objective.FINGERTIP
    max_iterations: int = 40
    step_tolerance_rad: float = 5e-4
    cost_tolerance: float = 1e-3
    damping: float = 1e-2
    damping_floor: float = 1e-5
    posture_weight: float = 1e-6
    hold_weight: float = 3e-5
    smoothing_weight: float = 1e-5
    prediction: float = 0.0
    tip_weight: float = 1.0
    middle_weight: float = 0.3
    thumb_weight: float = 0.5
    pinch_on_m: float = 0.02
    pinch_off_m: float = 0.04
    pinch_gap_m: float = 0.005
    pinch_weight: float = 4.0
    huber_delta_m: float | None = None
    one_euro_min_cutoff_hz: float | None = None
    one_euro_beta: float = 0.5
    self_collision: bool = True
    self_collision_margin_m: float = 0.003
    self_collision_weight: float = 100.0
    body_collision: bool = True
    body_collision_margin_m: float = 0.005
    body_collision_weight: float = 100.0
    reach_tolerance_m: float = 0.03
    arm_rotation_weight_m: float = 0.1
    arm_reach_knee_m: float = 0.01
    arm_reach_gain: float = 5.0
    arm_tilt_rad: float = 0.8
    relative_within_m: float = 0.05
    relative_rotation_weight_m: float = 0.3

    def __post_init__(self) -> None:
        if not isinstance(self.objective, Objective):
            raise ConfigError(unknown_choice('objective', self.objective,
                                             [o.value for o in Objective]))
        if not (isinstance(self.max_iterations, int) and self.max_iterations >= 1):
            raise ConfigError(f'max_iterations must be a positive integer, got '
                              f'{self.max_iterations!r}')
        for name in ('step_tolerance_rad', 'cost_tolerance', 'damping',
                     'damping_floor', 'posture_weight', 'hold_weight',
                     'smoothing_weight', 'prediction', 'tip_weight', 'middle_weight',
                     'thumb_weight', 'pinch_on_m', 'pinch_off_m', 'pinch_gap_m',
                     'pinch_weight', 'one_euro_beta', 'self_collision_margin_m',
                     'self_collision_weight', 'body_collision_margin_m',
                     'body_collision_weight', 'reach_tolerance_m', 'arm_rotation_weight_m',
                     'arm_reach_knee_m', 'arm_reach_gain', 'arm_tilt_rad', 'relative_within_m',
                     'relative_rotation_weight_m'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f'{name} must be a finite number >= 0, got {value!r}')
        if self.pinch_off_m <= self.pinch_on_m:
            raise ConfigError('pinch_off_m must exceed pinch_on_m')
        if self.huber_delta_m is not None and not self.huber_delta_m > 0:
            raise ConfigError('huber_delta_m must be > 0 or null')
        if self.one_euro_min_cutoff_hz is not None and not self.one_euro_min_cutoff_hz > 0:
            raise ConfigError('one_euro_min_cutoff_hz must be > 0 or null')
        for name in ('self_collision', 'body_collision'):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f'{name} must be true or false, got {getattr(self, name)!r}')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> RetargetConfig:
        kwargs = config_kwargs(cls, values, 'retarget')
        if 'objective' in kwargs and not isinstance(kwargs['objective'], Objective):
            value = kwargs['objective']
            try:
                kwargs['objective'] = Objective(value)
            except ValueError:
                raise ConfigError(unknown_choice('objective', value,
                                                 [o.value for o in Objective])) from None
        for key in ('max_iterations',):
            if key in kwargs and isinstance(kwargs[key], float) and kwargs[key].is_integer():
                kwargs[key] = int(kwargs[key])
        return cls(**kwargs)

    def merged(self, overrides: Mapping[str, Any] | None) -> RetargetConfig:
        """This config with ``overrides`` (a robot folder's ``retarget:`` section) applied."""
        if not overrides:
            return self
        base = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        base.update(config_kwargs(type(self), overrides, 'retarget'))
        return type(self).from_dict(base)


@dataclasses.dataclass(frozen=True)
class VectorTerm:
    """One vector of the objective: robot ``origin -> task`` against human keypoints."""

    origin: str  # robot frame
    task: str  # robot frame
    human_origin: int  # keypoint index
    human_task: int
    weight: float
    pinch: bool = False  # thumb-finger vector subject to the DexPilot projection


def objective_terms(hand: HandSpec, config: RetargetConfig) -> list[VectorTerm]:
    """The vector terms of ``config.objective`` for ``hand``."""
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    wrist = hand.keypoints['wrist']
    tips = hand.fingertips
    terms = [VectorTerm(wrist, frame, 0, index[name], config.tip_weight)
             for name, frame in tips.items()]
    if config.objective == Objective.FINGERTIP:
        return terms
    for name, frame in hand.keypoints.items():
        if name.endswith(('_pip', '_dip', '_ip')):
            terms.append(VectorTerm(wrist, frame, 0, index[name], config.middle_weight))
    if 'thumb_tip' in tips:
        pinch = config.objective == Objective.DEXPILOT
        for name, frame in tips.items():
            if name != 'thumb_tip':
                terms.append(VectorTerm(tips['thumb_tip'], frame, index['thumb_tip'],
                                        index[name], config.thumb_weight, pinch=pinch))
    return terms


@dataclasses.dataclass(frozen=True)
class FrameResult:
    """One retargeted frame.

    Attributes:
        qpos: (n,) driven joint angles, inside the limits.
        converged: The solver reached a stationary point within its iterations.
        residual_m: RMS fingertip error (robot wrist -> tip against the scaled human vector),
            metres at robot scale.
        iterations: Levenberg-Marquardt iterations used.
        time_s: Wall time of the solve.
        velocity_limited: Some joint ended on its velocity bound (``max_velocity * dt`` from
            the previous frame): the frame lags its target, and ``residual_m`` says by how
            much.
        held: The hand is absent: nothing was solved and the joints stay where they were
            (:meth:`HandRetargeter.hold`); ``converged`` is true and ``residual_m`` 0.
    """

    qpos: np.ndarray
    converged: bool
    residual_m: float
    iterations: int
    time_s: float
    velocity_limited: bool = False
    held: bool = False


@dataclasses.dataclass(frozen=True)
class RetargetResult:
    """A retargeted clip: (T, n) joint angles and per-frame solver reports."""

    joint_names: tuple[str, ...]
    qpos: np.ndarray  # (T, n)
    converged: np.ndarray  # (T,) bool
    residual_m: np.ndarray  # (T,)
    iterations: np.ndarray  # (T,) int
    time_s: np.ndarray  # (T,)
    velocity_limited: np.ndarray  # (T,) bool: the frame lags its target

    @property
    def num_frames(self) -> int:
        return int(self.qpos.shape[0])

    @property
    def failed_frames(self) -> np.ndarray:
        """Indices of the frames that did not converge."""
        return np.flatnonzero(~self.converged)


class HandRetargeter:
    """Retargets one human hand onto one robot hand, frame by frame (stateful).

    Args:
        spec: A hand or humanoid robot folder.
        side: Which hand of ``spec`` (a hand folder has one).
        config: Solver settings; ``spec.retarget`` overrides are applied on top.
        fps: Frame rate of the input: the input filter's, and ``dt = 1 / fps`` of the
            per-frame velocity bound (default 30).

    Keypoints are given in the human wrist frame (the canonical hand frame of ``side``, wrist
    at the origin, metres; :mod:`handx_ros.retarget.frames` computes them). Unmapped keypoints
    (e.g. the little finger for a four-finger hand) may be NaN.
    """

    def __init__(self, spec: RobotSpec, side: HandSide | str | int | None = None,
                 config: RetargetConfig | None = None, *, fps: float = 30.0) -> None:
        if side is None:
            if len(spec.hands) != 1:
                raise RetargetError(f'robot {spec.name!r} has two hands; say which side')
            side = spec.hands[0].side
        self.spec = spec
        self.config = (config or RetargetConfig()).merged(spec.retarget)
        self.chain, self.hand = hand_kinematics(spec, side)
        self.side = self.hand.side
        self.fps = float(fps)
        self.terms = objective_terms(self.hand, self.config)
        frames = sorted({t.origin for t in self.terms} | {t.task for t in self.terms},
                        key=lambda name: list(self.hand.keypoints.values()).index(name))
        ids = self.chain.frame_ids(frames, f'{self.side.name.lower()} hand objective')
        position = {name: i for i, name in enumerate(frames)}
        self._frame_ids = ids
        self._origin = np.array([position[t.origin] for t in self.terms])
        self._task = np.array([position[t.task] for t in self.terms])
        self._h_origin = np.array([t.human_origin for t in self.terms])
        self._h_task = np.array([t.human_task for t in self.terms])
        self._weights = np.array([t.weight for t in self.terms])
        self._pinch = np.array([t.pinch for t in self.terms])
        self._tip_terms = np.array([t.origin == self.hand.wrist and t.task in
                                    self.hand.fingertips.values() for t in self.terms])
        self._used_keypoints = np.array(sorted(set(self._h_origin) | set(self._h_task)))
        self._keypoint_ids = self.chain.frame_ids(list(self.hand.keypoints.values()))
        wrist_id = self.chain.frame_ids([self.hand.wrist])
        self.p_base_wrist = self.chain.positions(self.chain.neutral(), wrist_id)[0]  # (3,)
        self.joint_names = self.chain.joint_names
        self.lower, self.upper = self.chain.lower, self.chain.upper
        self.max_step = self.chain.max_velocity / self.fps  # (n,) per frame at most
        self._rest = self.chain.neutral()  # (n,) where the posture term pulls
        self._filter: OneEuroFilter | None = None
        # Self-collision barrier (handx_ros.retarget.self_collision), added in _solve.
        self.self_collision = None
        if self.config.self_collision:
            from handx_ros.retarget.self_collision import self_collision_for

            self.self_collision = self_collision_for(
                self.chain, self.config.self_collision_margin_m,
                self.config.self_collision_weight, self.hand.fingertips.get('thumb_tip'))
        self.reset()

    # ------------------------------------------------------------------------- state

    def reset(self, qpos: np.ndarray | None = None) -> None:
        """Forget the motion so far; the next frame starts from ``qpos`` (default neutral)."""
        start = self.chain.neutral() if qpos is None else self.chain.clip(
            np.asarray(qpos, dtype=np.float64).reshape(self.chain.nu))
        self._u_prev = start
        self._u_prev2: np.ndarray | None = None
        self._started = False
        if self.config.one_euro_min_cutoff_hz is not None:
            self._filter = OneEuroFilter(self.fps, self.config.one_euro_min_cutoff_hz,
                                         self.config.one_euro_beta)
        else:
            self._filter = None

    # ------------------------------------------------------------------------- targets

    def targets(self, keypoints_wrist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Target vectors (m, 3) in the robot base frame and their weights (m,)."""
        kp = keypoints_wrist
        v_human = kp[self._h_task] - kp[self._h_origin]  # (m, 3)
        targets = (self.hand.scale * v_human) @ self.hand.R_base_hand.T
        weights = self._weights.copy()
        if self._pinch.any():
            cfg = self.config
            d = np.linalg.norm(v_human[self._pinch], axis=1)
            s = np.clip((cfg.pinch_off_m - d) / (cfg.pinch_off_m - cfg.pinch_on_m), 0.0, 1.0)
            s = s * s * (3.0 - 2.0 * s)  # smoothstep
            direction = targets[self._pinch] / np.maximum(
                np.linalg.norm(targets[self._pinch], axis=1, keepdims=True), 1e-9)
            targets[self._pinch] = ((1.0 - s)[:, None] * targets[self._pinch]
                                    + (s * cfg.pinch_gap_m)[:, None] * direction)
            weights[self._pinch] *= 1.0 + s * (cfg.pinch_weight - 1.0)
        return targets, weights

    def _check(self, keypoints: Any, what: str) -> np.ndarray:
        try:
            kp = np.asarray(keypoints, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RetargetError(f'{what}: keypoints are not numeric ({exc})') from None
        if kp.shape != (NUM_KEYPOINTS, 3):
            raise RetargetError(f'{what}: keypoints must have shape (21, 3), got {kp.shape}')
        if not np.isfinite(kp[self._used_keypoints]).all():
            bad = [KEYPOINT_NAMES[i] for i in self._used_keypoints
                   if not np.all(np.isfinite(kp[i]))]
            raise RetargetError(f'{what}: non-finite keypoints {", ".join(bad)}')
        return kp

    # ------------------------------------------------------------------------- solving

    def step(self, keypoints_wrist: np.ndarray, extra: ExtraResiduals | None = None
             ) -> FrameResult:
        """Retarget one frame (keypoints (21, 3) in the human wrist frame).

        Args:
            keypoints_wrist: (21, 3) keypoints in the human wrist frame.
            extra: More weighted residuals for this frame (e.g. collision avoidance), as a
                function of the driven joints.

        Raises:
            RetargetError: Wrong shape or non-finite keypoints the objective uses; the state
                is left as it was.
        """
        kp = self._check(keypoints_wrist, f'{self.side.name.lower()} hand frame')
        start = time.perf_counter()
        if self._filter is not None:
            kp = self._filter(kp)
        targets, weights = self.targets(kp)
        if self._started and self._u_prev2 is not None:
            u_pred = self._u_prev + self.config.prediction * (self._u_prev - self._u_prev2)
        else:
            u_pred = self._u_prev
        u_pred = self.chain.clip(u_pred)
        lower, upper = self.step_bounds()
        u_pred = np.minimum(np.maximum(u_pred, lower), upper)
        centre, prior = self._prior(u_pred)
        u, converged, residual, iterations = self._solve(u_pred, targets, weights, centre,
                                                         prior, extra, lower, upper)
        limited = self._started and on_velocity_bound(u, lower, upper, self.lower, self.upper)
        self._u_prev2 = self._u_prev if self._started else None
        self._u_prev = u
        self._started = True
        return FrameResult(qpos=u, converged=converged, residual_m=residual,
                           iterations=iterations, time_s=time.perf_counter() - start,
                           velocity_limited=limited)

    def hold(self) -> FrameResult:
        """A frame of an absent hand: its joints stay where they are (the previous frame's,
        or the rest pose, the neutral, before the first), at zero velocity. The next solved
        frame starts from there within the velocity bound, as from any other frame."""
        self._u_prev2 = self._u_prev
        self._started = True
        return FrameResult(qpos=self._u_prev.copy(), converged=True, residual_m=0.0,
                           iterations=0, time_s=0.0, held=True)

    def _prior(self, u_pred: np.ndarray) -> tuple[np.ndarray, float]:
        """The velocity, hold and posture terms as one quadratic ``0.5 weight |u - centre|^2``
        (plus a constant): ``centre`` (n,) and ``weight``. Before the first frame only the
        posture term applies."""
        cfg = self.config
        terms = [(cfg.posture_weight, self._rest)]
        if self._started:
            terms += [(cfg.smoothing_weight, u_pred), (cfg.hold_weight, self._u_prev)]
        weight = sum(w for w, _ in terms)
        if weight <= 0.0:
            return u_pred, 0.0
        return sum(w * c for w, c in terms) / weight, weight

    def step_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The box the next frame is solved over, ``lower`` and ``upper`` (n,): the joint
        limits, intersected with ``u_prev +- max_step`` once a frame was solved."""
        if not self._started:
            return self.lower, self.upper
        return velocity_box(self._u_prev, self.max_step, self.lower, self.upper)

    @property
    def started(self) -> bool:
        """Whether a frame was solved since the last :meth:`reset`."""
        return self._started

    def preview(self, keypoints_wrist: np.ndarray) -> np.ndarray:
        """The joints of one frame solved from the current state without extra residuals,
        filtering or smoothing; the state is left as it was. A start for a frame whose full
        objective may settle elsewhere from the current state, e.g. a clip's first frame under
        collision avoidance (:class:`~handx_ros.retarget.bimanual.PairRetargeter`).

        Raises:
            RetargetError: Wrong shape or non-finite keypoints the objective uses.
        """
        kp = self._check(keypoints_wrist, f'{self.side.name.lower()} hand frame')
        targets, weights = self.targets(kp)
        u0 = self.chain.clip(self._u_prev)
        w = self.config.posture_weight
        return self._solve(u0, targets, weights, self._rest, w, None, self.lower, self.upper)[0]

    def retarget(self, keypoints_wrist: np.ndarray, *, reset: bool = True) -> RetargetResult:
        """Retarget a clip (keypoints (T, 21, 3) in the human wrist frame).

        Raises:
            RetargetError: Wrong shape, or frames with non-finite keypoints (all listed).
        """
        kp = np.asarray(keypoints_wrist, dtype=np.float64)
        if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
            raise RetargetError(f'keypoints must have shape (T, 21, 3), got {kp.shape}')
        used = kp[:, self._used_keypoints]
        bad = np.flatnonzero(~np.all(np.isfinite(used), axis=(1, 2)))
        if bad.size:
            shown = ', '.join(map(str, bad[:10])) + (' ...' if bad.size > 10 else '')
            raise RetargetError(f'{bad.size} frames have non-finite keypoints the '
                                f'{self.side.name.lower()} hand uses (frames {shown})')
        if reset:
            self.reset()
        results = [self.step(frame) for frame in kp]
        n = self.chain.nu
        return RetargetResult(
            joint_names=self.joint_names,
            qpos=np.array([r.qpos for r in results]).reshape(len(results), n),
            converged=np.array([r.converged for r in results], dtype=bool),
            residual_m=np.array([r.residual_m for r in results]),
            iterations=np.array([r.iterations for r in results], dtype=int),
            time_s=np.array([r.time_s for r in results]),
            velocity_limited=np.array([r.velocity_limited for r in results], dtype=bool))

    def _evaluate(self, u: np.ndarray, targets: np.ndarray, sqrt_w: np.ndarray,
                  extra: ExtraResiduals | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted residuals (3m [+ e],) and their Jacobian (3m [+ e], n); the objective's
        vector residuals come first."""
        p, J = self.chain.positions_and_jacobians(u, self._frame_ids)  # (k, 3), (k, 3, n)
        error = (p[self._task] - p[self._origin]) - targets  # (m, 3)
        J_vec = J[self._task] - J[self._origin]  # (m, 3, n)
        delta = self.config.huber_delta_m
        if delta is not None:
            # Huber loss on each vector's error norm, as a least-squares residual of the same
            # cost: r = phi(|e|) e/|e| with phi = sqrt(2 huber(|e|)); exact Jacobian.
            norm = np.sqrt(np.einsum('mi,mi->m', error, error))  # (m,)
            far = norm > delta
            if far.any():
                n_far = norm[far]
                phi = np.sqrt(2.0 * delta * n_far - delta * delta)
                unit = error[far] / n_far[:, None]  # (f, 3)
                b = phi / n_far  # scale across the direction
                a = delta / phi  # slope along it
                J_far = J_vec[far]  # (f, 3, n)
                along = np.einsum('fi,fin->fn', unit, J_far)  # (f, n)
                # (b I + (a - b) u u^T) J without forming the 3 x 3 matrices
                J_vec[far] = (b[:, None, None] * J_far
                              + ((a - b)[:, None] * along)[:, None, :] * unit[:, :, None])
                error[far] *= b[:, None]
        r = (sqrt_w[:, None] * error).ravel()
        A = (sqrt_w[:, None, None] * J_vec).reshape(-1, self.chain.nu)
        if extra is not None:
            r_extra, A_extra = extra(u)
            if r_extra.size:
                r = np.concatenate([r, r_extra])
                A = np.concatenate([A, A_extra])
        return r, A

    def _solve(self, u0: np.ndarray, targets: np.ndarray, weights: np.ndarray,
               centre: np.ndarray, prior: float, extra: ExtraResiduals | None,
               lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, bool, float, int]:
        """Solve over the box ``[lower, upper]`` from ``u0``, with ``0.5 prior |u - centre|^2``
        added to the cost (:meth:`_prior`)."""
        sqrt_w = np.sqrt(weights)
        barrier = None
        if self.self_collision is not None:
            # Within a frame's velocity bound the finger pairs are linearised at its start;
            # a clip's first frame may go anywhere and takes them exact.
            barrier = extra = self.self_collision.combined(extra, linear_fingers=self._started)
        # A clip's first frame starts far from its solution (the neutral pose, with the
        # self-collision barrier in the way): it may take a few times the usual iterations.
        first = FIRST_FRAME_ITERATIONS * self.config.max_iterations if not self._started \
            else None
        u, r, converged, iterations = levenberg_marquardt(
            lambda x: self._evaluate(x, targets, sqrt_w, extra), u0, lower, upper,
            self.config, u_pred=centre, smooth=prior, max_iterations=first)
        if barrier is not None and barrier.refine(u):
            # The solve stepped into a finger pair it had not linearised: again, with it.
            u, r, converged, more = levenberg_marquardt(
                lambda x: self._evaluate(x, targets, sqrt_w, extra), u0, lower, upper,
                self.config, u_pred=centre, smooth=prior, max_iterations=first)
            iterations += more
        if self.config.huber_delta_m is None:  # the residuals are the weighted errors
            error = (r[:3 * sqrt_w.size] / np.repeat(sqrt_w, 3)).reshape(-1, 3)
        else:
            p = self.chain.positions(u, self._frame_ids)
            error = (p[self._task] - p[self._origin]) - targets  # (m, 3)
        error = error[self._tip_terms]  # (tips, 3)
        residual = float(np.sqrt(np.mean(np.sum(error * error, axis=1))))
        return u, converged, residual, iterations

    # ------------------------------------------------------------------------- helpers

    def robot_keypoints(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """Mapped robot frames (human keypoint name -> (3,) position in the base frame)."""
        p = self.chain.positions(np.asarray(qpos, dtype=np.float64), self._keypoint_ids)
        return dict(zip(self.hand.keypoints, p, strict=True))

    def human_targets(self, keypoints_wrist: np.ndarray) -> np.ndarray:
        """(21, 3) human keypoints mapped into the robot base frame (scale and rotation,
        wrist placed on the robot's wrist frame)."""
        kp = np.asarray(keypoints_wrist, dtype=np.float64)
        return (self.hand.scale * kp) @ self.hand.R_base_hand.T + self.p_base_wrist

    def keypoints_from_robot(self, robot_points: Mapping[str, np.ndarray]) -> np.ndarray:
        """Human wrist-frame keypoints (21, 3) that map exactly onto given robot frame
        positions (base frame); keypoints the hand lacks are NaN. The inverse of
        :meth:`human_targets`, used by round-trip checks."""
        kp = np.full((NUM_KEYPOINTS, 3), np.nan)
        for name, point in robot_points.items():
            kp[KEYPOINT_NAMES.index(name)] = (
                (np.asarray(point) - self.p_base_wrist) @ self.hand.R_base_hand) / self.hand.scale
        return kp


def levenberg_marquardt(evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                        u0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        config: RetargetConfig, *, u_pred: np.ndarray | None = None,
                        smooth: float = 0.0, max_iterations: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """Minimise ``0.5 |r(u)|^2 + 0.5 smooth |u - u_pred|^2`` over the box ``[lower, upper]``.

    Args:
        evaluate: ``u -> (r (m,), A (m, n))``, residuals and their Jacobian.
        u0: (n,) start, inside the box.
        lower, upper: (n,) the box (joint limits).
        config: Iteration limit, tolerances and initial damping.
        u_pred: Where the smoothing term pulls (default ``u0``).
        smooth: Weight of the smoothing term.
        max_iterations: Iteration limit (default ``config.max_iterations``).

    Returns:
        The solution (inside the box), its residuals, whether it converged and the number of
        iterations.
    """
    # np.clip(x, lower, upper) is np.minimum(np.maximum(x, lower), upper) at a higher cost
    u = np.minimum(np.maximum(u0, lower), upper)
    u_pred = u if u_pred is None else u_pred
    r, A = evaluate(u)
    cost = 0.5 * (r @ r) + 0.5 * smooth * float((u - u_pred) @ (u - u_pred))
    lam = config.damping
    converged = False
    iterations = 0
    diagonal = np.diag_indices(u.shape[0])
    limit = config.max_iterations if max_iterations is None else max_iterations
    while iterations < limit:
        iterations += 1
        tolerance = config.cost_tolerance * max(cost, 1e-12)
        g = A.T @ r + smooth * (u - u_pred)  # (n,)
        H = A.T @ A  # (n, n), then + smooth I, then damped in place
        H[diagonal] += smooth
        H_diagonal = H[diagonal]
        H[diagonal] = H_diagonal + lam * (H_diagonal + config.damping_floor)
        u_new = np.minimum(np.maximum(u + _box_newton_step(H, g, lower - u, upper - u),
                                      lower), upper)
        step_norm = float(np.max(np.abs(u_new - u)))
        if step_norm < config.step_tolerance_rad:
            converged = True  # the next step would change next to nothing: stationary
            break
        r_new, A_new = evaluate(u_new)
        cost_new = 0.5 * (r_new @ r_new) + 0.5 * smooth * float(
            (u_new - u_pred) @ (u_new - u_pred))
        if cost_new <= cost:
            decrease = cost - cost_new
            u, r, A, cost = u_new, r_new, A_new, cost_new
            lam = max(lam / 3.0, 1e-9)
            if step_norm < config.step_tolerance_rad or decrease <= tolerance:
                converged = True
                break
        else:
            lam *= 8.0  # the next, shorter step is caught by the step test when it is tiny
    return u, r, converged, iterations


def velocity_box(u_prev: np.ndarray, max_step: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint-limit box ``[lower, upper]`` (n,) intersected with ``u_prev +- max_step``
    (n,); not empty when ``u_prev`` is inside the limits."""
    return np.maximum(lower, u_prev - max_step), np.minimum(upper, u_prev + max_step)


def on_velocity_bound(u: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                      joint_lower: np.ndarray, joint_upper: np.ndarray) -> bool:
    """Whether some joint of ``u`` (n,) sits on a side of the box ``[lower, upper]`` that is
    its velocity bound, not its joint limit ``[joint_lower, joint_upper]``: the projected
    solver leaves a joint exactly there only when the cost pushes it outward."""
    return bool(np.any(((u <= lower) & (lower > joint_lower))
                       | ((u >= upper) & (upper < joint_upper))))


def velocity_bounded(u: np.ndarray, u_prev: np.ndarray | None, max_step: np.ndarray,
                     lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, bool]:
    """``u`` clipped to the joint limits and to ``u_prev +- max_step`` (no bound without a
    previous command), and whether the velocity bound cut it: for solvers that cannot take
    the bound inside (dex-retargeting).

    Args:
        u: (n,) a solution.
        u_prev: (n,) the previous command, inside the limits, or ``None``.
        max_step: (n,) the largest change per frame (velocity limit x dt).
        lower, upper: (n,) joint limits.
    """
    u = np.clip(u, lower, upper)
    if u_prev is None:
        return u, False
    lo, hi = velocity_box(u_prev, max_step, lower, upper)
    limited = bool(np.any((u < lo) | (u > hi)))
    return np.clip(u, lo, hi), limited


def _box_newton_step(H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray
                     ) -> np.ndarray:
    """Approximately minimise ``0.5 d'Hd + g'd`` subject to ``lo <= d <= hi`` (``lo <= 0 <=
    hi``): variables at a bound that the gradient pushes outward, and then those the Newton
    step would carry past a bound, are fixed there and the rest re-solved, until the step is
    feasible (at most n rounds)."""
    n = g.shape[0]
    fixed = ((lo >= 0) & (g > 0)) | ((hi <= 0) & (g < 0))
    d = np.zeros(n)
    for _ in range(n + 1):
        if fixed.all():
            return d
        if fixed.any():
            free = ~fixed
            rhs = -g[free] - H[free][:, fixed] @ d[fixed]
            H_free = H[free][:, free]
        else:
            free, rhs, H_free = slice(None), -g, H
        try:
            d[free] = np.linalg.solve(H_free, rhs)
        except np.linalg.LinAlgError:
            d[free] = np.linalg.lstsq(H_free, rhs, rcond=None)[0]
        outside = (d < lo) | (d > hi)
        if not outside.any():
            return d
        np.minimum(np.maximum(d, lo, out=d), hi, out=d)
        fixed = fixed | outside
    return np.clip(d, lo, hi)
