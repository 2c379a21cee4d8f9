"""Both hands per frame: a pair of floating robot hands, or a humanoid's arms and hands.

* :class:`PairRetargeter` (``kind: pair``): each robot hand follows its human hand's wrist
  pose (``base_poses``) and its fingers are retargeted; with ``avoid_collisions`` the two hands'
  collision geometry is kept apart (and each hand's own links, see
  :mod:`handx_ros.retarget.collision`).
* :class:`HumanoidRetargeter` (``kind: humanoid``): the arm joints come from the human wrist
  poses by damped least-squares IK of the palm pose on each 7-joint arm chain (through the
  folder's ``operator`` mapping), the hand joints as for a pair; one trajectory carries both.
  The IK keeps each arm's links, fingers included, clear of the body
  (:mod:`handx_ros.retarget.body_collision`; ``RetargetConfig.body_collision``); a wrist out
  of reach tilts for position within ``arm_tilt_rad`` (:class:`_ArmIK`); where the human palms
  meet, both arms are solved together and the wrists' relative pose counts too
  (``relative_within_m``: palm facing palm even where a wrist cannot turn to its target).

Both run a clip in batch (:meth:`retarget_motion`) or frame by frame (:meth:`step`, with
:meth:`reset`), and return trajectories whose every frame says whether it converged.

Every joint, hand or arm, moves at most ``max_velocity / fps`` per frame after a clip's first
frame (see :mod:`handx_ros.retarget.retargeter`): the hands and the arm IK solve inside that
bound; dex-retargeting's output is clipped to it after the fact. A frame that cannot reach
its target within it lags and says so (``BimanualFrame.velocity_limited``); a clip's
``RobotTrajectory.info['lag']`` counts the lagging frames, the longest lagging stretch and the
largest fingertip residual and wrist error while lagging.

A hand absent from the clip (``BimanualMotion.present``, a tracker that sees one hand) is not
retargeted: its robot hand holds a fixed rest pose, its joints constant at their neutral
values (zero clipped to the limits) and, for a pair, its floating base on the rest hand's
wrist (:func:`~handx_gen.motion.container.rest_hand`: in front of the chest on its side); a
humanoid's absent arm holds its neutral pose too. Nothing is solved for it, so it never
converges badly or lags; contacts between the hands are not kept (there is no human contact
to keep), and the clip's ``info['absent']`` names the hand.

A humanoid wrist further than ``RetargetConfig.reach_tolerance_m`` from its target (out of
the arm's reach, or behind the body the arm keeps clear of) is flagged: ``info['reach']`` says
per hand on how many frames, how far at worst and when (:func:`reach_summary`), and
``info['wrist_error_m_per_hand']`` keeps the error of every frame for the simulation gate.

Offline, a clip too fast for the robot is played slower rather than lagged
(:meth:`retarget_retimed`, what ``handx retarget`` does): the joint path is solved with the
per-frame bound widened to :data:`RETIME_PATH_SCALE` times the velocity limits (still no
flips across a joint's range in one frame), then retimed to the limits themselves
(:mod:`handx_ros.retarget.retime`: same poses, new times). Where retiming cannot help (the
path has a jump), the clip is solved again inside the limits and lags as above.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pinocchio as pin

from handx_gen.errors import RetargetError, unknown_choice
from handx_gen.hand.topology import KEYPOINT_NAMES, HandSide
from handx_gen.motion import BimanualMotion
from handx_ros.retarget.frames import (
    base_poses,
    keypoints_in_wrist_frame,
    wrist_poses_from_motion,
)
from handx_ros.retarget.retargeter import (
    FIRST_FRAME_ITERATIONS,
    ExtraResiduals,
    FrameResult,
    HandRetargeter,
    RetargetConfig,
    levenberg_marquardt,
    on_velocity_bound,
    velocity_bounded,
    velocity_box,
)
from handx_ros.retarget.robot import ChainKinematics, load_urdf_model
from handx_ros.retarget.spec import RobotKind, RobotSpec, load_robot_spec
from handx_ros.retarget.trajectory import RobotTrajectory

if TYPE_CHECKING:
    from handx_ros.retarget.contact import ContactCorrection, ContactKeeper, ContactTargets
    from handx_ros.retarget.retime import JointMotionLimits, RetimeResult

# The per-frame bound of the path solve before retiming, in multiples of the velocity limits.
RETIME_PATH_SCALE = 2.0
# A humanoid arm's first frame under the body barrier (_ArmIK._first): random starts tried
# while no start reaches the target clear of the body, and the cost (0.5 |r|^2, r in metres)
# within which solutions count as equally good: 1e-6 is a 1.4 mm wrist error.
FIRST_FRAME_STARTS = 8
FIRST_FRAME_COST_TIE = 1e-6
# Humanoids: a contact shift larger than this moves the arm again.
CONTACT_RESOLVE_M = 1e-4
# A humanoid wrist further than this from its target orientation counts as tilted in
# info['reach'] (about 6 degrees).
TILTED_RAD = 0.1

__all__ = [
    'Backend',
    'BimanualFrame',
    'HumanoidRetargeter',
    'PairRetargeter',
    'RETIME_PATH_SCALE',
    'build_retargeter',
    'lag_summary',
    'reach_summary',
    'retarget_motion',
]


@dataclasses.dataclass(frozen=True)
class BimanualFrame:
    """One retargeted frame of both hands.

    Attributes:
        qpos: (nq,) joint positions in the trajectory's joint order.
        base_poses: (2, 7) floating base poses (pairs) or ``None`` (humanoids).
        converged: (2,) per hand (for a humanoid: hand and arm both converged).
        residual_m: (2,) fingertip RMS error per hand, metres at robot scale.
        wrist_error_m: (2,) humanoid wrist position error (0 for floating hands).
        time_s: Wall time for the frame.
        velocity_limited: (2,) per hand (humanoid: hand or arm), a joint ended on its
            velocity bound: the frame lags its target.
        contact: What keeping the hands' contacts did to the wrists (``None``: off).
        wrist_rotation_error_rad: (2,) humanoid wrist orientation error, the angle between
            the wrist and its target (0 for floating hands).
    """

    qpos: np.ndarray
    base_poses: np.ndarray | None
    converged: np.ndarray
    residual_m: np.ndarray
    wrist_error_m: np.ndarray
    time_s: float
    velocity_limited: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(2, dtype=bool))
    contact: ContactCorrection | None = None
    wrist_rotation_error_rad: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(2))


def _controller_names(spec: RobotSpec, names: tuple[str, ...]) -> list[str]:
    return [spec.controller_names.get(name, name) for name in names]


def _present(present: Any) -> np.ndarray:
    """(2,) bool of a ``present`` argument (default both hands), at least one hand."""
    if present is None:
        return np.ones(2, dtype=bool)
    flags = np.asarray(present)
    if flags.shape != (2,) or flags.dtype != np.bool_ or not flags.any():
        raise RetargetError(f'present must be two bools (left, right), at least one true; got '
                            f'{flags.tolist()!r}')
    return flags


_EYE = np.eye(3)


def _check_frame(keypoints: Any, R_world_wrist: Any, p_world_wrist: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        kp = np.asarray(keypoints, dtype=np.float64)
        R = np.asarray(R_world_wrist, dtype=np.float64)
        p = np.asarray(p_world_wrist, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RetargetError(f'frame is not numeric ({exc})') from None
    for name, array, shape in (('keypoints', kp, (2, 21, 3)), ('R_world_wrist', R, (2, 3, 3)),
                               ('p_world_wrist', p, (2, 3))):
        if array.shape != shape:
            raise RetargetError(f'{name} must have shape {shape}, got {array.shape}')
    if not (np.all(np.isfinite(R)) and np.all(np.isfinite(p))):
        raise RetargetError('non-finite wrist pose')
    # np.allclose(R R^T, I, atol=1e-4) (its default rtol 1e-5), without its wrapper's cost
    if not np.all(np.abs(R @ np.swapaxes(R, -1, -2) - _EYE) <= 1e-4 + 1e-5 * _EYE):
        raise RetargetError('R_world_wrist is not a rotation matrix')
    return kp, R, p


class _TwoHands:
    """What pairs and humanoids share: two hand retargeters and clip handling."""

    spec: RobotSpec
    hands: tuple[HandRetargeter, HandRetargeter]
    joint_names: tuple[str, ...]
    contact: ContactKeeper | None
    # How near the human palms are measured (None: as far as the finger clearance needs).
    _palm_within_m: float | None = None

    def reset(self) -> None:
        for hand in self.hands:
            hand.reset()
        if self.contact is not None:
            self.contact.reset()

    def _chains(self) -> list[tuple[RobotSpec, ChainKinematics]]:
        """Every kinematic chain with the folder whose controller names it uses."""
        raise NotImplementedError

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Position limits of every joint from the URDF: ``lower`` and ``upper`` (nq,), in
        :attr:`joint_names` order (radians, metres for prismatic joints)."""
        return self._per_joint('lower'), self._per_joint('upper')

    def joint_velocity_limits(self) -> np.ndarray:
        """(nq,) velocity limits in :attr:`joint_names` order (rad/s; m/s for prismatic
        joints): the URDF's, or the robot folder's ``limits`` where it gives one."""
        return self._per_joint('max_velocity')

    def joint_acceleration_limits(self) -> np.ndarray:
        """(nq,) acceleration limits in :attr:`joint_names` order (the folder's ``limits``)."""
        return self._per_joint('max_acceleration')

    def motion_limits(self) -> JointMotionLimits:
        """Velocity and acceleration limits of every joint by controller name: what
        retiming, the gate and the command safety read."""
        from handx_ros.retarget.retime import JointMotionLimits

        return JointMotionLimits(self.joint_names, self.joint_velocity_limits(),
                                 self.joint_acceleration_limits())

    def _per_joint(self, attribute: str) -> np.ndarray:
        """A per-joint array attribute of every chain, in :attr:`joint_names` order."""
        values = np.full(len(self.joint_names), np.nan)
        for spec, chain in self._chains():
            for joint, value in zip(chain.joint_names, getattr(chain, attribute), strict=True):
                values[self.joint_names.index(spec.controller_names.get(joint, joint))] = value
        return values

    def neutral_qpos(self) -> np.ndarray:
        """(nq,) the neutral pose in :attr:`joint_names` order: zero clipped to the limits."""
        lower, upper = self.joint_limits()
        return np.clip(np.zeros(len(self.joint_names)), lower, upper)

    def step(self, keypoints: np.ndarray, R_world_wrist: np.ndarray,
             p_world_wrist: np.ndarray, *, human_distance_m: float | None = None,
             human_palm_m: float | None = None, present: np.ndarray | None = None
             ) -> BimanualFrame:
        raise NotImplementedError

    def _human_distances(self, keypoints: np.ndarray, human_distance_m: float | None,
                         human_palm_m: float | None) -> tuple[float, float]:
        """The human hands' and palms' distances of one frame (2, 21, 3), computed where the
        caller did not give them (contacts are kept)."""
        assert self.contact is not None
        if human_distance_m is None:
            human_distance_m = float(self.contact.human_distance(keypoints))
        if human_palm_m is None:
            human_palm_m = float(self.contact.palm_distance(keypoints, self._palm_within_m))
        return float(human_distance_m), float(human_palm_m)

    def _finger_clearance(self, present: np.ndarray, human_palm_m: float
                          ) -> list[ExtraResiduals | None]:
        """Each hand's finger clearance this frame (:meth:`ContactKeeper.finger_clearance`),
        ``None`` where contacts are not kept."""
        if self.contact is None or not present.all():
            return [None, None]
        return [self.contact.finger_clearance(i, human_palm_m) for i in range(2)]

    def _reach(self, wrist_error_m: np.ndarray, fps: float,
               wrist_rotation_error_rad: np.ndarray) -> dict[str, Any] | None:
        """``info['reach']`` of a clip with wrist position and orientation errors (T, 2);
        ``None``: the wrists float and always reach."""
        return None

    def _bounded(self) -> list[Any]:
        """The solvers whose per-frame step is bounded (``max_step``): hands, then arms."""
        return [*self.hands, *getattr(self, 'arms', ())]

    @contextlib.contextmanager
    def _velocity_bound_scaled(self, scale: float) -> Iterator[None]:
        """Within the block, every per-frame bound is ``scale`` times the velocity limits."""
        saved = [(solver, solver.max_step) for solver in self._bounded()]
        try:
            for solver, step in saved:
                solver.max_step = step * scale
            yield
        finally:
            for solver, step in saved:
                solver.max_step = step

    def retarget_retimed(self, motion: BimanualMotion, *, progress: bool = False
                         ) -> tuple[RobotTrajectory, RobotTrajectory, RetimeResult]:
        """Retarget a clip and retime it to the robot's velocity and acceleration limits.

        The path is solved with the per-frame bound at :data:`RETIME_PATH_SCALE` times the
        limits, then retimed (played slower where it is too fast). Where the path cannot be
        retimed (a jump, or more than ``MAX_RETIME_FACTOR`` times slower), the clip is solved
        again inside the limits (it lags there instead) and that solution is retimed for its
        accelerations, or left as it is for the gate to judge.

        Returns:
            ``(path, retimed, result)``: the solved clip frame for frame with ``motion``, the
            clip to play (``info['retime']`` maps its frames to the path's) and what the
            retiming did.
        """
        from handx_ros.retarget.retime import RetimeStatus, retime

        limits = self.motion_limits()
        with self._velocity_bound_scaled(RETIME_PATH_SCALE):
            path = self.retarget_motion(motion, progress=progress)
        retimed, result = retime(path, limits)
        if result.status == RetimeStatus.INFEASIBLE:  # a jump, or only a crawl would do
            path = self.retarget_motion(motion, progress=progress)
            retimed, result = retime(path, limits)
        return path, retimed, result

    def retarget_motion(self, motion: BimanualMotion, *, progress: bool = False
                        ) -> RobotTrajectory:
        """Retarget a whole clip (resets first).

        A hand absent from the clip holds its rest pose (module doc); ``info['absent']``
        lists it (``[]`` when both hands are present) and ``info['contact']`` is ``None``.

        Raises:
            RetargetError: Non-finite keypoints (the frames are listed).
        """
        if not isinstance(motion, BimanualMotion):
            raise RetargetError(f'expected a BimanualMotion, got {type(motion).__name__}')
        present = np.asarray(motion.present)
        R, p = wrist_poses_from_motion(motion)
        keypoints = np.asarray(motion.keypoints, dtype=np.float64)
        bad = np.flatnonzero(~np.all(np.isfinite(keypoints), axis=(1, 2, 3)))
        if bad.size:
            raise RetargetError(f'{bad.size} frames have non-finite keypoints (first: '
                                f'{", ".join(map(str, bad[:10]))})')
        self.reset()
        frames: list[BimanualFrame] = []
        iterator = range(motion.num_frames)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=f'retarget {self.spec.name}', unit='frame')
        keeper = self.contact if present.all() else None  # one hand: no contact to keep
        human = keeper.human_distance(keypoints) if keeper is not None \
            else np.full(motion.num_frames, np.inf)  # (T,) in one batch: far cheaper
        palms = keeper.palm_distance(keypoints, self._palm_within_m) if keeper is not None \
            else np.full(motion.num_frames, np.inf)
        for t in iterator:
            frames.append(self.step(keypoints[t], R[t], p[t],
                                    human_distance_m=float(human[t]),
                                    human_palm_m=float(palms[t]), present=present))
        qpos = np.array([f.qpos for f in frames])
        poses = None if frames[0].base_poses is None else np.array([f.base_poses
                                                                    for f in frames])
        converged = np.array([f.converged for f in frames])  # (T, 2)
        residual = np.array([f.residual_m for f in frames])  # (T, 2)
        wrist_error = np.array([f.wrist_error_m for f in frames])
        wrist_rotation = np.array([f.wrist_rotation_error_rad for f in frames])  # (T, 2)
        times = np.array([f.time_s for f in frames])
        limited = np.array([f.velocity_limited for f in frames], dtype=bool)  # (T, 2)
        info = {
            'backend': getattr(self, 'backend', Backend.HANDX).value,
            'objective': self.hands[0].config.objective.value,
            'converged_per_hand': converged.tolist(),
            'residual_m_per_hand': residual.tolist(),
            'wrist_error_m_per_hand': wrist_error.tolist(),
            'velocity_limited_per_hand': limited.tolist(),
            'lag': lag_summary(limited.any(axis=1), residual.max(axis=1),
                               wrist_error.max(axis=1), motion.fps),
            'contact': None if keeper is None else contact_summary(
                [f.contact for f in frames], keeper.targets.human_touch_m),
            'time_s': times.tolist(),
            'texts': list(motion.texts),
            'absent': [side.name.lower() for side in motion.absent_sides],
        }
        reach = self._reach(wrist_error, motion.fps, wrist_rotation)
        if reach is not None:
            info['reach'] = reach
            info['wrist_rotation_error_rad_per_hand'] = wrist_rotation.tolist()
        return RobotTrajectory(robot=self.spec.name, fps=motion.fps,
                               joint_names=self.joint_names, qpos=qpos, base_poses=poses,
                               converged=converged.all(axis=1),
                               residual_m=residual.max(axis=1), info=info)


def lag_summary(lagging: np.ndarray, residual_m: np.ndarray, wrist_error_m: np.ndarray,
                fps: float) -> dict[str, Any]:
    """How a clip lagged behind its targets under the velocity bound.

    Args:
        lagging: (T,) frames on a velocity bound.
        residual_m: (T,) fingertip residual per frame (the worse hand).
        wrist_error_m: (T,) wrist position error per frame (the worse arm; 0 for pairs).
        fps: Frame rate.

    Returns:
        ``frames`` (lagging frames), ``longest_s`` and ``longest_start_s`` (the longest run
        of consecutive lagging frames, in seconds), ``max_residual_m`` and
        ``max_wrist_error_m`` (the largest over the lagging frames; 0 without lag).
    """
    lagging = np.asarray(lagging, dtype=bool)
    longest, start, run = 0, 0, 0
    for t, lag in enumerate(lagging):
        run = run + 1 if lag else 0
        if run > longest:
            longest, start = run, t - run + 1
    return {
        'frames': int(np.count_nonzero(lagging)),
        'longest_s': longest / fps,
        'longest_start_s': start / fps if longest else 0.0,
        'max_residual_m': float(np.max(residual_m[lagging])) if lagging.any() else 0.0,
        'max_wrist_error_m': float(np.max(wrist_error_m[lagging])) if lagging.any() else 0.0,
    }


def contact_summary(corrections: list[ContactCorrection], touch_m: float) -> dict[str, Any]:
    """What keeping contacts did over a clip: the frames where the human hands touch (their
    distance at most ``touch_m``), the wrist shifts and the robot hands' distance there and
    elsewhere, and the per-frame shift of each wrist (m)."""
    human = np.array([c.human_m for c in corrections])
    after = np.array([c.after_m for c in corrections])
    shift = np.array([np.linalg.norm(c.shift_m, axis=1) for c in corrections])  # (T, 2)
    touching = human <= touch_m

    def extreme(values: np.ndarray, fn: Any) -> float | None:
        values = values[np.isfinite(values)]
        return round(float(fn(values)), 6) if values.size else None

    return {
        'human_touch_frames': int(touching.sum()),
        'shifted_frames': int((shift.max(axis=1) > 1e-4).sum()),
        'max_shift_m': round(float(shift.max()), 6),
        'robot_distance_m_touching': [extreme(after[touching], np.min),
                                      extreme(after[touching], np.max)],
        'robot_min_distance_m_apart': extreme(after[~touching], np.min),
        'shift_m_per_hand': np.round(shift, 5).tolist(),
    }


def reach_summary(wrist_error_m: np.ndarray, tolerance_m: float, fps: float,
                  wrist_rotation_error_rad: np.ndarray | None = None,
                  tilt_rad: float | None = None) -> dict[str, Any]:
    """Where each humanoid wrist was further than ``tolerance_m`` from its target, and how
    far its orientation was from the target's.

    Args:
        wrist_error_m: (T, 2) wrist position error per frame, left hand first.
        tolerance_m: The error beyond which a frame is out of reach.
        fps: Frame rate (times are seconds of the clip as retargeted, before any retiming).
        wrist_rotation_error_rad: (T, 2) the wrist's orientation error per frame (the tilt
            the arm IK traded for position, or what it could not turn), if known.
        tilt_rad: The tilt the arm IK may trade for position
            (``RetargetConfig.arm_tilt_rad``), if known.

    Returns:
        ``tolerance_m``, ``frames`` (frames with either wrist out of reach) and per hand
        (``left``, ``right``): ``frames`` out of reach, ``max_error_m`` and ``max_error_s``
        (the largest error and when), ``first_s`` (the first frame out of reach, ``None`` if
        none); with the orientation errors, ``tilted_rad`` (:data:`TILTED_RAD`) and per
        hand ``max_rotation_error_rad`` and ``max_rotation_error_s`` (the largest and when)
        and ``tilted_frames`` (frames whose orientation error exceeds ``tilted_rad``); with
        ``tilt_rad``, that too.
    """
    error = np.asarray(wrist_error_m, dtype=np.float64).reshape(-1, 2)
    rotation = None if wrist_rotation_error_rad is None else np.asarray(
        wrist_rotation_error_rad, dtype=np.float64).reshape(error.shape)
    beyond = error > tolerance_m  # (T, 2)
    hands = {}
    for side in HandSide:
        column, out = error[:, side], beyond[:, side]
        worst = int(np.argmax(column)) if column.size else 0
        hands[side.name.lower()] = hand = {
            'frames': int(np.count_nonzero(out)),
            'max_error_m': float(column[worst]) if column.size else 0.0,
            'max_error_s': worst / fps,
            'first_s': float(np.argmax(out)) / fps if out.any() else None,
        }
        if rotation is not None:
            turned = rotation[:, side]
            worst = int(np.argmax(turned)) if turned.size else 0
            hand['max_rotation_error_rad'] = float(turned[worst]) if turned.size else 0.0
            hand['max_rotation_error_s'] = worst / fps
            hand['tilted_frames'] = int(np.count_nonzero(turned > TILTED_RAD))
    summary = {'tolerance_m': float(tolerance_m),
               'frames': int(np.count_nonzero(beyond.any(axis=1))), **hands}
    if rotation is not None:
        summary['tilted_rad'] = TILTED_RAD
    if tilt_rad is not None:
        summary['tilt_rad'] = float(tilt_rad)
    return summary


class Backend(enum.Enum):
    """Which solver retargets the hands of a pair."""

    HANDX = 'handx'
    DEX_VECTOR = 'dex-vector'
    DEX_DEXPILOT = 'dex-dexpilot'


class PairRetargeter(_TwoHands):
    """A left and a right robot hand with floating wrists.

    Args:
        spec: A ``pair`` folder.
        config: Hand retargeter settings (each member folder's overrides apply on top).
        fps: Input frame rate.
        avoid_collisions: Keep the two hands' (and each hand's own) collision geometry at
            least ``collision_margin_m`` apart, through extra residuals in the solve.
        contact: Keep the hands' contacts (:mod:`handx_ros.retarget.contact`): the wrists are
            moved so that the robot hands touch where the human hands do and stay apart
            elsewhere. Default: on, unless ``avoid_collisions`` (which keeps them apart).
        contact_targets: Its distance targets.
        backend: Our solver, or dex-retargeting (vector or DexPilot) configured from the same
            folders; dex's joints may exceed their limits by up to 1e-3 rad, and it reports
            no convergence, only NLopt failures.
    """

    def __init__(self, spec: RobotSpec, config: RetargetConfig | None = None, *,
                 fps: float = 30.0, avoid_collisions: bool = False,
                 collision_margin_m: float = 0.005, collision_weight: float = 10.0,
                 backend: Backend = Backend.HANDX, contact: bool | None = None,
                 contact_targets: ContactTargets | None = None) -> None:
        if spec.kind != RobotKind.PAIR:
            raise RetargetError(f'robot {spec.name!r} is a {spec.kind.value}, not a pair')
        self.backend = Backend(backend)
        if avoid_collisions and self.backend != Backend.HANDX:
            raise RetargetError('collision avoidance needs the handx backend; dex-retargeting '
                                'has no collision model')
        self.spec = spec
        root = spec.folder.parent
        self.members = tuple(load_robot_spec(name, root) for name in spec.members)
        config = (config or RetargetConfig()).merged(spec.retarget)
        self.hands = tuple(HandRetargeter(member, None, config, fps=fps)
                           for member in self.members)  # type: ignore[assignment]
        self.joint_names = tuple(
            name for member, hand in zip(self.members, self.hands, strict=True)
            for name in _controller_names(member, hand.joint_names))
        self._dex = None
        self._dex_prev = [None, None]
        if self.backend != Backend.HANDX:
            from handx_ros.retarget.dex_backend import DexHandRetargeter

            kind = 'vector' if self.backend == Backend.DEX_VECTOR else 'dexpilot'
            self._dex = tuple(DexHandRetargeter(member, member.hands[0].side, kind,
                                                low_pass_alpha=None)
                              for member in self.members)
        self.avoid_collisions = avoid_collisions
        self.collision_margin_m = collision_margin_m
        self.collision_weight = collision_weight
        self._colliders = None
        if avoid_collisions:
            from handx_ros.retarget.collision import HandCollisionModel

            self._colliders = tuple(HandCollisionModel(hand.chain) for hand in self.hands)
        self.contact = _contact_keeper(self.hands, contact, avoid_collisions, contact_targets,
                                       fps)
        self._R_base_hand = np.stack([hand.hand.R_base_hand for hand in self.hands])
        self._p_base_wrist = np.stack([hand.p_base_wrist for hand in self.hands])

    def step(self, keypoints: np.ndarray, R_world_wrist: np.ndarray,
             p_world_wrist: np.ndarray, *, human_distance_m: float | None = None,
             human_palm_m: float | None = None, present: np.ndarray | None = None
             ) -> BimanualFrame:
        """One frame: world keypoints (2, 21, 3) and wrist frames (2, 3, 3), (2, 3).

        ``human_distance_m`` and ``human_palm_m``: the human hands' and palms' surface
        distances, when the caller computed them for many frames at once
        (:meth:`ContactKeeper.human_distance`, :meth:`ContactKeeper.palm_distance`); else
        they are computed here when contacts are kept. ``present``: (2,) bool, which hands
        are there (default both); an absent hand's robot hand holds its joints
        (:meth:`HandRetargeter.hold`), its base on the given wrist pose, and contacts are
        not kept.

        Raises:
            RetargetError: Bad shapes or values; the retargeters' state is unchanged.
        """
        start = time.perf_counter()
        present = _present(present)
        kp, R, p = _check_frame(keypoints, R_world_wrist, p_world_wrist)
        kp_wrist = keypoints_in_wrist_frame(kp, R, p)  # (2, 21, 3)
        poses = base_poses(R, p, self._R_base_hand, self._p_base_wrist)  # (2, 7)
        for i, hand in enumerate(self.hands):
            if present[i]:
                hand._check(kp_wrist[i], f'{HandSide(i).name.lower()} hand')
        if self.contact is not None and present.all():
            human_distance_m, human_palm_m = self._human_distances(kp, human_distance_m,
                                                                   human_palm_m)
        results = []
        if self._dex is not None:
            results = [self._dex_step(i, kp_wrist[i]) if present[i] else self._dex_hold(i)
                       for i in range(2)]
        elif self._colliders is None:
            clearance = self._finger_clearance(present, human_palm_m)
            results = [hand.step(kp_wrist[i], extra=clearance[i]) if present[i] else hand.hold()
                       for i, hand in enumerate(self.hands)]
        else:
            results = self._step_avoiding(kp_wrist, poses, present)
        correction = None
        if self.contact is not None and present.all():
            correction = self.contact.correct([r.qpos for r in results],
                                              [_se3(pose) for pose in poses],
                                              human_distance_m, p)
            poses[:, :3] += correction.shift_m
        qpos = np.concatenate([r.qpos for r in results])
        return BimanualFrame(qpos=qpos, base_poses=poses,
                             converged=np.array([r.converged for r in results]),
                             residual_m=np.array([r.residual_m for r in results]),
                             wrist_error_m=np.zeros(2), time_s=time.perf_counter() - start,
                             velocity_limited=np.array([r.velocity_limited for r in results]),
                             contact=correction)

    def reset(self) -> None:
        super().reset()
        for dex in self._dex or ():
            dex.reset()
        self._dex_prev: list[np.ndarray | None] = [None, None]

    def _chains(self) -> list[tuple[RobotSpec, ChainKinematics]]:
        return [(member, hand.chain)
                for member, hand in zip(self.members, self.hands, strict=True)]

    def _dex_hold(self, side: int) -> FrameResult:
        """An absent hand under the dex backend: held where it was (or at the rest pose)."""
        result = self.hands[side].hold()
        if self._dex_prev[side] is not None:
            result = dataclasses.replace(result, qpos=self._dex_prev[side].copy())
        self._dex_prev[side] = result.qpos
        return result

    def _dex_step(self, side: int, kp_wrist: np.ndarray) -> FrameResult:
        """A dex-retargeting solve, reported like ours: NLopt failures count as not
        converged, the residual comes from our kinematics. dex knows no velocity limits: its
        output is clipped to the bound after the fact (dex itself warm-starts from its own,
        unclipped, solution)."""
        start = time.perf_counter()
        result = self._dex[side].step(kp_wrist)
        hand = self.hands[side]
        qpos, limited = velocity_bounded(np.asarray(result.qpos, dtype=np.float64),
                                         self._dex_prev[side], hand.max_step, hand.lower,
                                         hand.upper)  # (n,)
        self._dex_prev[side] = qpos
        robot = hand.robot_keypoints(qpos)
        target = hand.human_targets(kp_wrist)
        tips = [np.linalg.norm(robot[k] - target[KEYPOINT_NAMES.index(k)])
                for k in hand.hand.fingertips]
        return FrameResult(qpos=qpos, converged=not result.solver_failed,
                           residual_m=float(np.sqrt(np.mean(np.square(tips)))),
                           iterations=int(result.evaluations),
                           time_s=time.perf_counter() - start, velocity_limited=limited)

    def _step_avoiding(self, kp_wrist: np.ndarray, poses: np.ndarray,
                       present: np.ndarray) -> list[FrameResult]:
        """Left hand first against the right hand's previous pose, then the right hand
        against the left hand's new pose; each also avoids its own links. The first frame of
        a clip starts each hand from its solution without collision terms: from the rest pose,
        the left hand would avoid a right hand that is nowhere near the motion, and the solve
        could settle elsewhere than the frames after it (a jump at the clip's start)."""
        from handx_ros.retarget import collision

        for i, hand in enumerate(self.hands):
            if not hand.started and present[i]:
                hand.reset(hand.preview(kp_wrist[i]))
        T_world_base = [_se3(pose) for pose in poses]
        results: list[FrameResult] = []
        for i, hand in enumerate(self.hands):
            if not present[i]:  # held; the other hand avoids it where it holds
                results.append(hand.hold())
                continue
            other = 1 - i
            u_other = results[other].qpos if other < len(results) else \
                self.hands[other]._u_prev
            T_base_other = T_world_base[i].actInv(T_world_base[other])
            extra = collision.stack_residuals(
                self._colliders[i].self_collision_residuals(self.collision_margin_m,
                                                            self.collision_weight),
                self._colliders[i].inter_hand_residuals(self._colliders[other], u_other,
                                                        T_base_other, self.collision_margin_m,
                                                        self.collision_weight))
            results.append(hand.step(kp_wrist[i], extra=extra))
        return results


def _contact_keeper(hands: Sequence[HandRetargeter], contact: bool | None,
                    avoid_collisions: bool, targets: ContactTargets | None, fps: float
                    ) -> ContactKeeper | None:
    """The contact keeper of two hand retargeters, or ``None`` when off."""
    if contact is None:
        contact = not avoid_collisions
    if contact and avoid_collisions:
        raise RetargetError('keeping contacts and avoiding collisions exclude each other: '
                            'collision avoidance keeps the hands apart')
    if not contact:
        return None
    from handx_ros.retarget.collision import HandCollisionModel
    from handx_ros.retarget.contact import ContactKeeper

    return ContactKeeper([HandCollisionModel(hand.chain) for hand in hands], targets, fps=fps)


def rotation_angle(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """The angle (rad) of the rotation between two rotation matrices (3, 3)."""
    cos = 0.5 * (float(np.trace(R_a.T @ R_b)) - 1.0)
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def _se3(pose: np.ndarray) -> pin.SE3:
    """``pin.SE3`` of a pose (7,) xyz + quaternion wxyz."""
    w, x, y, z = pose[3:]
    return pin.SE3(pin.Quaternion(w, x, y, z).normalized().toRotationMatrix(), pose[:3].copy())


def hinged_residual(error: np.ndarray, J_error: np.ndarray, weight: float, knee: float,
                    weight_beyond: float) -> tuple[np.ndarray, np.ndarray]:
    """A residual (k,) along an error vector ``error`` (k,) and its Jacobian (k, n) from the
    error's ``J_error`` (k, n): its length grows at ``weight`` per unit of error up to
    ``knee``, then at ``weight_beyond``. Continuous, and linear in ``error`` up to the knee.

    The arm IK weighs its wrist's position and orientation errors with it
    (:class:`_ArmIK`)."""
    size = float(np.linalg.norm(error))
    if size <= knee:
        return weight * error, weight * J_error
    axis = error / size
    scale = (weight * knee + weight_beyond * (size - knee)) / size
    # d(scale(|e|) e)/de = scale I + (weight_beyond - scale) axis axis^T
    D = scale * np.eye(error.size) + (weight_beyond - scale) * np.outer(axis, axis)
    return scale * error, D @ J_error


class _ArmIK:
    """Damped least-squares IK of one arm: the hand's wrist frame onto a target pose, each
    frame after the first within the arm joints' velocity limits x ``1 / fps``.

    The arm has a joint more than the pose needs; with ``config.body_collision`` a barrier
    keeps its links clear of the body (:mod:`handx_ros.retarget.body_collision`), and the
    elbow goes out where the free IK would have driven it into the torso.

    Position and orientation errors are traded at ``config.arm_rotation_weight_m`` (metres
    per radian) while the wrist misses its position by less than ``config.arm_reach_knee_m``.
    Beyond that the wrist cannot reach: the position error weighs ``config.arm_reach_gain``
    times more, so the orientation yields (the palm tilts) to bring the wrist within reach,
    up to ``config.arm_tilt_rad``; an orientation error beyond that weighs as much more too,
    so further tilt costs what it did before (:func:`hinged_residual`)."""

    def __init__(self, spec: RobotSpec, side: HandSide, config: RetargetConfig, *,
                 fps: float = 30.0) -> None:
        urdf = load_urdf_model(spec)
        hand = spec.hand(side)
        self.chain = ChainKinematics(urdf, spec.arm_joints[int(side)])
        self.frame_id = self.chain.frame_ids([hand.wrist], 'arm IK target')[0]
        self.hand_joints = hand.joints
        model = urdf.model
        rest = [float(np.clip(0.0, model.lowerPositionLimit[model.joints[j].idx_q],
                              model.upperPositionLimit[model.joints[j].idx_q]))
                for j in (model.getJointId(name) for name in hand.joints)]
        self.chain.set_locked(dict(zip(hand.joints, rest, strict=True)))  # the hand's neutral
        self.config = config
        self.max_step = self.chain.max_velocity / float(fps)  # (n,)
        self.body = None
        if config.body_collision:
            from handx_ros.retarget.body_collision import ArmBodyCollision

            self.body = ArmBodyCollision(self.chain, [j for arm in spec.arm_joints for j in arm],
                                         config.body_collision_margin_m,
                                         config.body_collision_weight)
        self.reset()

    def reset(self) -> None:
        self.u = self.chain.neutral()
        self.started = False
        self._before = (self.u, self.started)

    def hold(self) -> tuple[np.ndarray, bool, float, bool]:
        """An absent hand's arm: the joints stay where they are (the neutral pose before the
        first solved frame), as :meth:`solve` returns them: joints, converged, wrist error 0
        (there is no target), not lagging."""
        self._before = (self.u, self.started)
        self.started = True
        return self.u.copy(), True, 0.0, False

    def wrist_pose(self, u: np.ndarray) -> pin.SE3:
        """The wrist frame's pose in the world for arm joints ``u``."""
        model, data = self.chain.model, self.chain.data
        pin.framesForwardKinematics(model, data, self.chain.full_q(u))
        return data.oMf[self.frame_id].copy()

    def begin(self, q_hand: np.ndarray | None, again: bool) -> None:
        """Start a frame's solve: remember the state before it, or (``again``) go back to
        it; lock the hand's joints at ``q_hand`` (where they are this frame)."""
        if again:
            self.u, self.started = self._before
        else:
            self._before = (self.u, self.started)
        if q_hand is not None:
            self.chain.set_locked(dict(zip(self.hand_joints, q_hand, strict=True)))

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """This frame's joint box: the limits, within the velocity bound after the first
        frame."""
        lower, upper = self.chain.lower, self.chain.upper
        if self.started:
            lower, upper = velocity_box(self.u, self.max_step, lower, upper)
        return lower, upper

    def pose_residuals(self, u: np.ndarray, T_world_target: pin.SE3, barrier: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, pin.SE3, np.ndarray]:
        """Residuals (m,) of the wrist on ``T_world_target`` (position, then orientation,
        then the body barrier's), their Jacobian (m, n), the wrist pose and its ``LOCAL``
        Jacobian (6, n)."""
        config = self.config
        T_world_frame, J = self.chain.pose_and_jacobian(u, self.frame_id)  # J (6, n)
        T_frame_target = T_world_frame.actInv(T_world_target)
        error = -pin.log6(T_frame_target).vector  # (6,) frame-local, zero at target
        J_error = pin.Jlog6(T_frame_target.inverse()) @ J
        gain = config.arm_reach_gain
        r_pos, A_pos = hinged_residual(error[:3], J_error[:3], 1.0, config.arm_reach_knee_m,
                                       gain)
        weight = config.arm_rotation_weight_m
        r_rot, A_rot = hinged_residual(error[3:], J_error[3:], weight, config.arm_tilt_rad,
                                       gain * weight)
        r, A = np.concatenate([r_pos, r_rot]), np.concatenate([A_pos, A_rot])
        if barrier and self.body is not None:  # the chain's kinematics are current for u
            r_body, A_body = self.body.residuals(u, self.chain.data)
            if r_body.size:
                r, A = np.concatenate([r, r_body]), np.concatenate([A, A_body])
        return r, A, T_world_frame, J

    def finish(self, u: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               T_world_target: pin.SE3) -> tuple[float, bool]:
        """Keep a frame's solution ``u`` (solved in the box ``[lower, upper]``): its wrist
        position error (m) and whether it lags on a velocity bound."""
        limited = self.started and on_velocity_bound(u, lower, upper, self.chain.lower,
                                                     self.chain.upper)
        self.u = u
        self.started = True
        p_world = self.chain.positions(u, [self.frame_id])[0]  # the arm chain's frame is world
        return float(np.linalg.norm(p_world - T_world_target.translation)), limited

    def solve(self, T_world_target: pin.SE3, q_hand: np.ndarray | None = None, *,
              again: bool = False) -> tuple[np.ndarray, bool, float, bool]:
        """Joints (n,), converged, wrist position error (m) and whether the frame lags on a
        velocity bound; ``q_hand``: the hand's joints this frame (where its fingers are, for
        the body barrier; default: where they were last). ``again``: solve the same frame
        once more for another target (from the state before the frame's first solve, so the
        velocity bound still counts from the previous frame)."""
        self.begin(q_hand, again)

        def evaluate(u: np.ndarray, barrier: bool = True) -> tuple[np.ndarray, np.ndarray]:
            return self.pose_residuals(u, T_world_target, barrier)[:2]

        lower, upper = self.box()
        if self.started:
            u, _, converged, _ = levenberg_marquardt(evaluate, self.u, lower, upper,
                                                     self.config)
        else:
            u, converged = self._first(evaluate, lower, upper)
        error, limited = self.finish(u, lower, upper, T_world_target)
        return u, converged, error, limited

    def _first(self, evaluate: Callable[..., tuple[np.ndarray, np.ndarray]],
               lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, bool]:
        """A clip's first frame, from the neutral pose, with the hands' first-frame iteration
        allowance.

        With the body barrier one start is not enough: from the hanging arm the barrier can
        hold the hand behind the body (the G1's right hand stopped 14 mm short of a target in
        front of the chest that an elbow swung out reaches exactly). The solve also starts
        from the solution without the barrier and, while neither start reaches the target
        clear of the body, from :data:`FIRST_FRAME_STARTS` random poses between the neutral
        pose and the joint limits (seeded: the same clip gives the same frames). Of the
        solutions within :data:`FIRST_FRAME_COST_TIE` of the lowest cost, the nearest to the
        neutral pose is kept.
        """
        limit = FIRST_FRAME_ITERATIONS * self.config.max_iterations
        neutral = self.u

        def solve(u0: np.ndarray, barrier: bool = True) -> tuple[np.ndarray, float, bool]:
            u, r, converged, _ = levenberg_marquardt(
                lambda x: evaluate(x, barrier=barrier), u0, lower, upper, self.config,
                max_iterations=limit)
            return u, 0.5 * float(r @ r), converged

        found = [solve(neutral)]
        if self.body is not None:
            found.append(solve(solve(neutral, barrier=False)[0]))
            rng = np.random.default_rng(0)
            for _ in range(FIRST_FRAME_STARTS):
                if min(cost for _, cost, _ in found) <= FIRST_FRAME_COST_TIE:
                    break
                found.append(solve(neutral + rng.uniform(0.0, 1.0) * (
                    rng.uniform(lower, upper) - neutral)))
        best = min(cost for _, cost, _ in found)
        u, _, converged = min((f for f in found if f[1] <= best + FIRST_FRAME_COST_TIE),
                              key=lambda f: float(np.sum((f[0] - neutral) ** 2)))
        return u, converged


def relative_pose_residual(T_world_a: pin.SE3, J_a: np.ndarray, T_world_b: pin.SE3,
                           J_b: np.ndarray, T_a_b_goal: pin.SE3
                           ) -> tuple[np.ndarray, np.ndarray]:
    """The error (6,) of frame b's pose in frame a against ``T_a_b_goal`` (``log6`` of the
    goal's inverse times the pose: linear, then angular, in b's goal frame) and its Jacobian
    (6, n_a + n_b) in the joints of both chains, from each frame's world pose and ``LOCAL``
    Jacobian (6, n_a), (6, n_b)."""
    T_a_b = T_world_a.actInv(T_world_b)
    T_error = T_a_b_goal.actInv(T_a_b)
    J_log = pin.Jlog6(T_error)
    # b's pose in a, moved by the two frames' local twists: T_a_b exp(xi_b - Ad(T_b_a) xi_a).
    A = np.hstack([-J_log @ T_a_b.inverse().action @ J_a, J_log @ J_b])
    return pin.log6(T_error).vector, A


class HumanoidRetargeter(_TwoHands):
    """Arms by IK from the human wrist poses, hands by retargeting, in one trajectory.

    Args:
        spec: A ``humanoid`` folder (with ``operator`` and ``arm_joints``).
        config: Hand retargeter settings; the arm IK uses its iteration limits and tolerances.
        fps: Input frame rate.
        contact: Keep the hands' contacts (default on), as :class:`PairRetargeter` does, by
            shifting the wrist targets of the arm IK.
        contact_targets: Its distance targets.
    """

    def __init__(self, spec: RobotSpec, config: RetargetConfig | None = None, *,
                 fps: float = 30.0, contact: bool | None = None,
                 contact_targets: ContactTargets | None = None) -> None:
        if spec.kind != RobotKind.HUMANOID or spec.operator is None:
            raise RetargetError(f'robot {spec.name!r} is a {spec.kind.value}, not a humanoid')
        self.spec = spec
        self.config = config = (config or RetargetConfig()).merged(spec.retarget)
        self.hands = (HandRetargeter(spec, HandSide.LEFT, config, fps=fps),
                      HandRetargeter(spec, HandSide.RIGHT, config, fps=fps))
        self.arms = (_ArmIK(spec, HandSide.LEFT, config, fps=fps),
                     _ArmIK(spec, HandSide.RIGHT, config, fps=fps))
        arm_names = [name for arm in self.arms for name in arm.chain.joint_names]
        hand_names = [name for hand in self.hands for name in hand.joint_names]
        self.joint_names = tuple(_controller_names(spec, tuple(arm_names + hand_names)))
        operator = spec.operator
        chain = self.arms[0].chain
        torso = chain.frame_ids([operator.robot_frame], 'operator robot_frame')[0]
        pin.framesForwardKinematics(chain.model, chain.data, chain.full_q(chain.neutral()))
        self.T_world_torso = chain.data.oMf[torso].copy()
        self.contact = _contact_keeper(self.hands, contact, False, contact_targets, fps)
        self._palm_within_m = config.relative_within_m  # the arms are solved together
        # Each hand's base link in its wrist frame (rigidly joined): where the contact keeper
        # sees the hand when the arm puts the wrist on its target.
        self._T_wrist_base = []
        for arm, hand in zip(self.arms, self.hands, strict=True):
            model, data = arm.chain.model, arm.chain.data
            pin.framesForwardKinematics(model, data, arm.chain.full_q(arm.chain.neutral()))
            base = model.getFrameId(hand.chain.reference_frame)
            self._T_wrist_base.append(data.oMf[arm.frame_id].actInv(data.oMf[base]))

    def reset(self) -> None:
        super().reset()
        for arm in self.arms:
            arm.reset()

    def _reach(self, wrist_error_m: np.ndarray, fps: float,
               wrist_rotation_error_rad: np.ndarray) -> dict[str, Any]:
        return reach_summary(wrist_error_m, self.config.reach_tolerance_m, fps,
                             wrist_rotation_error_rad, self.config.arm_tilt_rad)

    def _chains(self) -> list[tuple[RobotSpec, ChainKinematics]]:
        return [(self.spec, chain) for chain in
                [arm.chain for arm in self.arms] + [hand.chain for hand in self.hands]]

    def _together(self, present: np.ndarray, human_palm_m: float | None) -> float:
        """The weight of the wrists' relative pose this frame (0: each arm alone): 1 where
        the human palms touch, falling to 0 at ``relative_within_m`` (linear in their
        distance, :func:`~handx_ros.retarget.contact.human_palm_distance`); 0 where contacts
        are not kept, a hand is absent or an arm has not solved its first frame (that one
        needs its own restarts).

        Palms only: where a finger touches the other hand (counting on the other hand's
        fingers, tapping its palm), a wrist that cannot turn all the way trades the tilt for
        position (``arm_tilt_rad``), and the other wrist, held to the relative pose, would
        swing round it, away from its own target."""
        if self.contact is None or human_palm_m is None or not present.all() \
                or not all(arm.started for arm in self.arms):
            return 0.0
        touch = self.contact.targets.human_touch_m
        within = self.config.relative_within_m
        if within <= touch:
            return 1.0 if human_palm_m <= touch else 0.0
        return float(np.clip((within - human_palm_m) / (within - touch), 0.0, 1.0))

    def _solve_together(self, goals: Sequence[pin.SE3], q_hands: Sequence[np.ndarray],
                        weight: float, *, again: bool = False
                        ) -> list[tuple[np.ndarray, bool, float, bool]]:
        """Both arms in one solve: each wrist onto its goal (as :meth:`_ArmIK.solve`), and
        the right wrist's pose in the left wrist's frame onto the goals' (position weight
        ``weight``, orientation ``weight * relative_rotation_weight_m``). Returns each arm's
        joints, converged, wrist position error and lag, as :meth:`_ArmIK.solve` does."""
        left, right = self.arms
        for arm, q_hand in zip(self.arms, q_hands, strict=True):
            arm.begin(q_hand, again)
        boxes = [arm.box() for arm in self.arms]
        lower = np.concatenate([b[0] for b in boxes])
        upper = np.concatenate([b[1] for b in boxes])
        n = left.chain.nu
        T_goal = goals[0].actInv(goals[1])  # the right wrist in the left's frame
        sqrt_w = weight * np.array([1.0, 1.0, 1.0] + [self.config.relative_rotation_weight_m]
                                   * 3)

        def evaluate(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r_l, A_l, T_l, J_l = left.pose_residuals(u[:n], goals[0])
            r_r, A_r, T_r, J_r = right.pose_residuals(u[n:], goals[1])
            r, A = relative_pose_residual(T_l, J_l, T_r, J_r, T_goal)
            A = sqrt_w[:, None] * A
            rows = np.zeros((r_l.size + r_r.size, 2 * n))  # (m_l + m_r, 2n)
            rows[:r_l.size, :n] = A_l
            rows[r_l.size:, n:] = A_r
            return np.concatenate([r_l, r_r, sqrt_w * r]), np.concatenate([rows, A])

        u, _, converged, _ = levenberg_marquardt(
            evaluate, np.concatenate([left.u, right.u]), lower, upper, self.config)
        results = []
        for i, arm in enumerate(self.arms):
            u_i = u[i * n:(i + 1) * n].copy()
            error, limited = arm.finish(u_i, *boxes[i], goals[i])
            results.append((u_i, converged, error, limited))
        return results

    def wrist_targets(self, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray
                      ) -> list[pin.SE3]:
        """Target poses (robot world) of each hand's wrist frame for human wrist poses."""
        op = self.spec.operator
        assert op is not None
        targets = []
        for i, hand in enumerate(self.hands):
            p_torso = np.asarray(op.robot_origin) + op.scale * op.R_robot_human @ (
                p_world_wrist[i] - np.asarray(op.human_origin))
            R_torso = op.R_robot_human @ R_world_wrist[i] @ hand.hand.R_base_hand.T
            targets.append(self.T_world_torso * pin.SE3(R_torso, p_torso))
        return targets

    def step(self, keypoints: np.ndarray, R_world_wrist: np.ndarray,
             p_world_wrist: np.ndarray, *, human_distance_m: float | None = None,
             human_palm_m: float | None = None, present: np.ndarray | None = None
             ) -> BimanualFrame:
        """One frame: world keypoints (2, 21, 3) and wrist frames (2, 3, 3), (2, 3).

        ``human_distance_m``, ``human_palm_m``: as for :meth:`PairRetargeter.step`.
        ``present``: (2,) bool, which hands are there (default both); an absent hand's arm
        and hand hold their joints (the neutral pose before any frame was solved), its wrist
        error is 0, and contacts are not kept."""
        start = time.perf_counter()
        present = _present(present)
        kp, R, p = _check_frame(keypoints, R_world_wrist, p_world_wrist)
        kp_wrist = keypoints_in_wrist_frame(kp, R, p)
        for i, hand in enumerate(self.hands):
            if present[i]:
                hand._check(kp_wrist[i], f'{HandSide(i).name.lower()} hand')
        if self.contact is not None and present.all():
            human_distance_m, human_palm_m = self._human_distances(kp, human_distance_m,
                                                                   human_palm_m)
        # Hands first: their solve does not depend on the arms, and the arm IK keeps the
        # fingers, where they now are, clear of the body.
        clearance = self._finger_clearance(present, human_palm_m)
        hand_results = [hand.step(kp_wrist[i], extra=clearance[i]) if present[i]
                        else hand.hold() for i, hand in enumerate(self.hands)]
        targets = self.wrist_targets(R, p)
        together = self._together(present, human_palm_m)
        q_hands = [hand.qpos for hand in hand_results]
        if together > 0.0:
            arm_results = self._solve_together(targets, q_hands, together)
        else:
            arm_results = [arm.solve(target, q_hand) if present[i] else arm.hold()
                           for i, (arm, target, q_hand) in
                           enumerate(zip(self.arms, targets, q_hands, strict=True))]
        correction = None
        if self.contact is not None and present.all():
            # The shift from where the arms put the wrists (an arm may miss its target by
            # millimetres and degrees, which matters between two hands), then each arm again:
            # for where it put the wrist, moved by the shift; or, when it lags its target at
            # its velocity limits, for the target moved by the shift (it goes on towards it).
            reached = [arm.wrist_pose(result[0]) for arm, result in
                       zip(self.arms, arm_results, strict=True)]
            correction = self.contact.correct(
                [r.qpos for r in hand_results],
                [wrist * T for wrist, T in zip(reached, self._T_wrist_base, strict=True)],
                human_distance_m, p)
            # Solved together, both arms move again (the relative pose is the shifted
            # goals').
            shift_m = correction.shift_m
            shifted = [float(np.linalg.norm(shift)) > CONTACT_RESOLVE_M for shift in shift_m]
            goals = [pin.SE3(goal.rotation, goal.translation + shift) for goal, shift in
                     zip([targets[i] if arm_results[i][3] else reached[i] for i in range(2)],
                         shift_m, strict=True)]
            moved: list[tuple[np.ndarray, bool, float, bool] | None]
            if together > 0.0 and any(shifted):
                moved = list(self._solve_together(goals, q_hands, together, again=True))
            else:
                moved = [arm.solve(goal, q_hand, again=True) if shift else None
                         for arm, goal, q_hand, shift in
                         zip(self.arms, goals, q_hands, shifted, strict=True)]
            for i, (arm, result) in enumerate(zip(self.arms, moved, strict=True)):
                if result is not None:
                    u, converged, _, limited = result
                    error = float(np.linalg.norm(arm.wrist_pose(u).translation
                                                 - targets[i].translation - shift_m[i]))
                    arm_results[i] = (u, converged, error, limited)
        qpos = np.concatenate([r[0] for r in arm_results] + [r.qpos for r in hand_results])
        converged = np.array([a[1] and h.converged for a, h in
                              zip(arm_results, hand_results, strict=True)])
        rotation = np.array([rotation_angle(arm.wrist_pose(result[0]).rotation,
                                            target.rotation) if present[i] else 0.0
                             for i, (arm, result, target) in
                             enumerate(zip(self.arms, arm_results, targets, strict=True))])
        return BimanualFrame(qpos=qpos, base_poses=None, converged=converged,
                             residual_m=np.array([r.residual_m for r in hand_results]),
                             wrist_error_m=np.array([a[2] for a in arm_results]),
                             wrist_rotation_error_rad=rotation,
                             time_s=time.perf_counter() - start,
                             velocity_limited=np.array([a[3] or h.velocity_limited for a, h in
                                                        zip(arm_results, hand_results,
                                                            strict=True)]),
                             contact=correction)


def build_retargeter(robot: str | RobotSpec, config: RetargetConfig | None = None, *,
                     fps: float = 30.0, avoid_collisions: bool = False,
                     backend: Backend | str = Backend.HANDX, contact: bool | None = None,
                     ) -> PairRetargeter | HumanoidRetargeter:
    """The bimanual retargeter of a pair or humanoid folder.

    Raises:
        RobotModelError: Unknown robot (valid ones listed) or invalid folder.
        RetargetError: A single-hand folder (use its pair, or :class:`HandRetargeter`).
    """
    spec = robot if isinstance(robot, RobotSpec) else load_robot_spec(robot)
    backend = _backend(backend)
    if spec.kind == RobotKind.PAIR:
        return PairRetargeter(spec, config, fps=fps, avoid_collisions=avoid_collisions,
                              backend=backend, contact=contact)
    if spec.kind == RobotKind.HUMANOID:
        if backend != Backend.HANDX or avoid_collisions:
            raise RetargetError('humanoids retarget with the handx backend, without collision '
                                'avoidance')
        return HumanoidRetargeter(spec, config, fps=fps, contact=contact)
    raise RetargetError(f'robot {spec.name!r} is a single hand; retarget a motion onto a pair '
                        '(e.g. allegro, inspire) or a humanoid (g1_hands, gr1)')


def retarget_motion(motion: BimanualMotion, robot: str = 'allegro',
                    config: RetargetConfig | None = None, *, avoid_collisions: bool = False,
                    backend: Backend | str = Backend.HANDX, progress: bool = False,
                    contact: bool | None = None) -> RobotTrajectory:
    """Retarget a clip onto a robot folder (default the Allegro pair)."""
    retargeter = build_retargeter(robot, config, fps=motion.fps,
                                  avoid_collisions=avoid_collisions, backend=backend,
                                  contact=contact)
    return retargeter.retarget_motion(motion, progress=progress)


def _backend(value: Backend | str) -> Backend:
    try:
        return Backend(value)
    except ValueError:
        raise RetargetError(unknown_choice('backend', value, [b.value for b in Backend])
                            ) from None
