"""Play a robot trajectory in its MuJoCo scene and measure what the robot would do.

:func:`simulate` resets the scene to the first frame's command and plays the clip at its frame
rate: each frame period is split into physics sub-steps (the scene's timestep, adjusted so a
whole number of steps fills a frame), the command is interpolated linearly between frames
(wrist orientations by slerp) and its velocity fed forward. After each frame it measures:

* **tracking**: joint error (commanded minus simulated, radians), fingertip error (the
  fingertip sites in a kinematic copy at the commanded configuration against the simulated
  ones, metres) and, for floating hands, the wrist position error;
* **contacts**: MuJoCo's contacts grouped per link pair (between the hands or within the
  robot), with penetration depth and normal force (``mj_contactForce``); the signed distance
  between the two hands from ``mj_geomDistance`` on the geom pairs whose bounding spheres come
  within ``distance_cutoff_m`` (negative: penetration), and the closest link pair;
* **reach**: how far the retargeting left each humanoid wrist from its target (from the
  trajectory's info, :func:`reach_errors`), for the gate;
* **stability**: non-finite state, MuJoCo's instability warnings, joint speed and kinetic
  energy against bounds. An unstable run stops at that frame with
  :attr:`SimStatus.UNSTABLE` and a message; the arrays then hold the frames simulated.

The robot's contact events between the hands are the intervals where the hands' signed
distance is within ``touch_distance_m`` (released beyond ``release_distance_m``, at least
``min_contact_s`` long, gaps under ``merge_gap_s`` joined: the human feature extractor's rules
with robot-sized thresholds). With the human ``motion``, its between-hands contact events
(:func:`~handx_gen.annotate.features.extract_features`, any part of one hand touching the other
hand) are matched to the robot's by interval overlap: precision, recall, onset timing error,
and how often the touching parts agree (the robot links mapped to hand parts, see
:attr:`~handx_ros.sim.scene.SimScene.geom_part`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from handx_gen.annotate.surface import ContactConfig, contact_intervals
from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, SimulationError, unknown_choice
from handx_gen.hand.parts import HandPart, PartRef
from handx_gen.hand.rotations import (
    quaternion_multiply,
    quaternion_slerp,
    quaternion_to_axis_angle,
)
from handx_gen.motion import BimanualMotion
from handx_ros.retarget.trajectory import RobotTrajectory
from handx_ros.sim.scene import SimScene

__all__ = [
    'ContactFidelity',
    'LinkContact',
    'SimConfig',
    'SimResult',
    'SimStatus',
    'command_velocity',
    'human_contact_intervals',
    'match_intervals',
    'reach_errors',
    'retimed_source_frames',
    'simulate',
]

Interval = tuple[int, int]


class SimStatus(str, enum.Enum):
    """How a simulation ended."""

    OK = 'ok'  # every frame simulated, state finite and bounded
    UNSTABLE = 'unstable'  # stopped early: non-finite state, a MuJoCo warning or a blow-up


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Settings of :func:`simulate`. Defaults and why:

    Attributes:
        distance_cutoff_m: 0.02 m: geom pairs of the two hands whose bounding spheres come
            closer than this get an exact signed distance; farther hands read as at least this
            far apart. Covers ``release_distance_m`` with room to spare.
        touch_distance_m: 0.001 m: the robot's hands touch when their collision geometry is
            this close (robot geometry is exact, unlike the human surface proxy's 5 mm).
        release_distance_m: 0.005 m: a touch lasts while the hands stay this close.
        min_contact_s: 0.05 s, as the human contact events.
        merge_gap_s: 0.1 s, as the human contact events: touches closer in time are one.
        match_tolerance_s: 0.1 s: a human and a robot contact event match when they overlap
            after widening each by this on both sides.
        penetration_tolerance_m: 0.002 m: a frame counts as penetrating beyond this depth
            (soft contacts always sink a fraction of a millimetre).
        max_joint_speed_rad_s: 100 rad/s (or m/s for a free joint's translation): beyond it
            the simulation has blown up.
        max_kinetic_energy_j: 100 J, likewise (a humanoid's arms swinging fast hold a few J).
        velocity_window: 1: commanded joint velocities are finite differences over this many
            frames (the gate's joint velocity check).
        keep_contacts: Keep the per-frame contact lists (for reports and plots).
        settle_s: 0.1 s of physics after the reset, holding the first frame's command, before
            the first measurement: a start pose that overlaps itself or the other hand is
            pushed apart first, as a robot that approached it would be (not counted in the
            clip's time).
    """

    distance_cutoff_m: float = 0.02
    touch_distance_m: float = 0.001
    release_distance_m: float = 0.005
    min_contact_s: float = 0.05
    merge_gap_s: float = 0.1
    match_tolerance_s: float = 0.1
    penetration_tolerance_m: float = 0.002
    max_joint_speed_rad_s: float = 100.0
    max_kinetic_energy_j: float = 100.0
    velocity_window: int = 1
    keep_contacts: bool = True
    settle_s: float = 0.1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == 'keep_contacts':
                if not isinstance(value, bool):
                    raise ConfigError(f'sim config keep_contacts must be a bool, got {value!r}')
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0.0:
                raise ConfigError(f'sim config {field.name!r} must be a finite number >= 0, '
                                  f'got {value!r}')
            if field.name == 'velocity_window':
                if int(value) != value or value < 1:
                    raise ConfigError(f'sim config velocity_window must be an integer >= 1, '
                                      f'got {value!r}')
                object.__setattr__(self, field.name, int(value))
            else:
                object.__setattr__(self, field.name, float(value))
        if self.release_distance_m < self.touch_distance_m:
            raise ConfigError(f'sim config release_distance_m ({self.release_distance_m}) must '
                              f'be >= touch_distance_m ({self.touch_distance_m})')
        if self.distance_cutoff_m <= self.release_distance_m:
            raise ConfigError(f'sim config distance_cutoff_m ({self.distance_cutoff_m}) must '
                              f'exceed release_distance_m ({self.release_distance_m})')

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SimConfig:
        """Settings from a mapping (YAML); unknown keys are rejected."""
        return cls(**config_kwargs(cls, values, 'sim'))

    @property
    def contact(self) -> ContactConfig:
        """The robot's touch thresholds, in the shape the contact-interval rules take."""
        return ContactConfig(touch_gap_m=self.touch_distance_m,
                             apart_gap_m=self.release_distance_m,
                             min_contact_s=self.min_contact_s)


@dataclasses.dataclass(frozen=True)
class LinkContact:
    """Contact between two links at one frame (MuJoCo's contacts of their geoms, grouped).

    Attributes:
        a: One link (the left hand's, between the hands).
        b: The other link.
        inter_hand: True between the two hands; False within the robot (self contact).
        distance_m: Smallest contact distance; negative is penetration depth.
        force_n: Sum of the contacts' normal forces, newtons.
    """

    a: str
    b: str
    inter_hand: bool
    distance_m: float
    force_n: float

    def to_dict(self) -> dict[str, Any]:
        return {'a': self.a, 'b': self.b, 'inter_hand': self.inter_hand,
                'distance_m': _round(self.distance_m), 'force_n': _round(self.force_n)}


@dataclasses.dataclass(frozen=True)
class ContactFidelity:
    """Human between-hands contact events against the robot's, matched by interval overlap.

    Attributes:
        human: Human events, robot frame ranges ``[start, stop)``.
        robot: Robot events, likewise.
        matches: (human index, robot index) of each matched human event (its robot event of
            largest overlap).
        precision: Robot events overlapping a human event, over robot events (``None`` with no
            robot event).
        recall: Human events overlapping a robot event, over human events (``None`` with no
            human event).
        onset_errors_s: Robot onset minus human onset per match, seconds.
        part_agreement: Of the matched human events, the fraction where the robot touches with
            a part pair the human touches with (palm and back as one; a finger's tip and shaft
            as one); ``None`` without matches.
    """

    human: tuple[Interval, ...]
    robot: tuple[Interval, ...]
    matches: tuple[tuple[int, int], ...]
    precision: float | None
    recall: float | None
    onset_errors_s: tuple[float, ...]
    part_agreement: float | None

    @property
    def mean_abs_onset_error_s(self) -> float | None:
        if not self.onset_errors_s:
            return None
        return float(np.mean(np.abs(self.onset_errors_s)))

    def to_dict(self) -> dict[str, Any]:
        return {'human': [list(i) for i in self.human], 'robot': [list(i) for i in self.robot],
                'matches': [list(m) for m in self.matches], 'precision': self.precision,
                'recall': self.recall,
                'onset_errors_s': [_round(e) for e in self.onset_errors_s],
                'mean_abs_onset_error_s': _round(self.mean_abs_onset_error_s),
                'part_agreement': self.part_agreement}


@dataclasses.dataclass(frozen=True, eq=False)
class SimResult:
    """What :func:`simulate` measured. F frames were simulated (all T unless unstable).

    Attributes:
        robot: Robot folder name.
        fps: Frame rate.
        joint_names: Driven joints (controller names), the columns of the joint arrays.
        fingertip_names: Fingertip sites, the columns of ``fingertip_error_m`` (left first).
        status: :class:`SimStatus`.
        message: Why the run stopped, when it did ('' otherwise).
        num_frames: Frames of the trajectory T.
        times_s: (F,) frame times.
        qpos_cmd: (F, n) commanded joint positions.
        qpos_joints: (F, n) simulated joint positions.
        qpos_sim: (F, model.nq) full simulated MuJoCo configuration (for rendering).
        joint_error_rad: (F, n) absolute joint tracking error.
        fingertip_error_m: (F, k) fingertip position error.
        wrist_error_m: (F, 2) base link position error of floating hands, else ``None``.
        inter_hand_distance_m: (F,) signed distance between the hands' collision geometry
            (capped at ``distance_cutoff_m``).
        command_distance_m: (F,) the same at the commanded configuration (a kinematic copy):
            negative where the command itself puts one hand into the other (the simulated
            hands then push each other back: the penetration the command asks for shows here,
            the resulting force and tracking error in the simulated series).
        command_pair: Per frame the closest link pair at the commanded configuration.
        closest_pair: Per frame the closest link pair between the hands, or ``None`` beyond
            the cutoff.
        penetration_m: (F,) deepest penetration (inter-hand or self), >= 0.
        penetration_pair: Per frame the link pair of that penetration (``None`` at 0).
        peak_force_n: (F,) largest contact normal force.
        kinetic_energy_j: (F,) kinetic energy.
        contacts: Per frame the link contacts (empty lists unless ``keep_contacts``).
        robot_contacts: Robot between-hands contact events, frame ranges.
        fidelity: Against the human motion, when it was given.
        command_velocity_rad_s: (n,) peak commanded speed of each joint.
        max_velocity_rad_s: (n,) each joint's velocity limit from the robot model (the
            scene's), what the gate holds the commanded speeds to unless configured otherwise.
        wall_time_s: Wall time of the run.
        config: The settings used.
        reach_error_m: (F, 2) how far the retargeting left each humanoid wrist from its
            target (the arm IK's position error, the trajectory's
            ``info['wrist_error_m_per_hand']``; a retimed frame takes the worse of the two
            frames it lies between), for the gate's reach check; zeros for floating wrists,
            ``None`` when the trajectory does not carry it.
    """

    robot: str
    fps: float
    joint_names: tuple[str, ...]
    fingertip_names: tuple[str, ...]
    status: SimStatus
    message: str
    num_frames: int
    times_s: np.ndarray
    qpos_cmd: np.ndarray
    qpos_joints: np.ndarray
    qpos_sim: np.ndarray
    joint_error_rad: np.ndarray
    fingertip_error_m: np.ndarray
    wrist_error_m: np.ndarray | None
    inter_hand_distance_m: np.ndarray
    command_distance_m: np.ndarray
    command_pair: list[tuple[str, str] | None]
    closest_pair: list[tuple[str, str] | None]
    penetration_m: np.ndarray
    penetration_pair: list[tuple[str, str] | None]
    peak_force_n: np.ndarray
    kinetic_energy_j: np.ndarray
    contacts: list[list[LinkContact]]
    robot_contacts: tuple[Interval, ...]
    fidelity: ContactFidelity | None
    command_velocity_rad_s: np.ndarray
    max_velocity_rad_s: np.ndarray
    wall_time_s: float
    config: SimConfig
    reach_error_m: np.ndarray | None = None

    @property
    def frames_simulated(self) -> int:
        return int(self.times_s.shape[0])

    @property
    def stable(self) -> bool:
        return self.status == SimStatus.OK

    @property
    def duration_s(self) -> float:
        """Simulated time: frames simulated over the frame rate."""
        return self.frames_simulated / self.fps

    @property
    def realtime_factor(self) -> float:
        """Simulated time over wall time (how many times faster than real time)."""
        return self.duration_s / max(self.wall_time_s, 1e-9)

    def penetrating_fraction(self, tolerance_m: float | None = None) -> float:
        """Fraction of the frames (of T) penetrating deeper than ``tolerance_m`` (default the
        config's)."""
        tolerance = self.config.penetration_tolerance_m if tolerance_m is None else tolerance_m
        return float(np.count_nonzero(self.penetration_m > tolerance)) / self.num_frames

    def summary(self) -> dict[str, Any]:
        """The headline numbers, JSON-compatible (see :meth:`to_dict`)."""
        frame_joint = self.joint_error_rad.max(axis=1) if self.joint_error_rad.size else \
            np.zeros(self.frames_simulated)
        frame_tip = self.fingertip_error_m.max(axis=1) if self.fingertip_error_m.size else \
            np.zeros(self.frames_simulated)
        worst = int(np.argmax(self.penetration_m)) if self.frames_simulated else 0
        pen = float(self.penetration_m[worst]) if self.frames_simulated else 0.0
        vel = int(np.argmax(self.command_velocity_rad_s / self.max_velocity_rad_s))
        joint_worst = int(np.argmax(self.joint_error_rad.max(axis=0))) \
            if self.joint_error_rad.size else 0
        self_contacts = sorted({(c.a, c.b) for frame in self.contacts for c in frame
                                if not c.inter_hand})
        cmd_frame = int(np.argmin(self.command_distance_m)) if self.frames_simulated else 0
        cmd_pen = max(0.0, -_min(self.command_distance_m))
        summary = {
            'status': self.status.value,
            'stable': self.stable,
            'message': self.message,
            'num_frames': self.num_frames,
            'frames_simulated': self.frames_simulated,
            'duration_s': _round(self.duration_s),
            'wall_time_s': _round(self.wall_time_s),
            'realtime_factor': _round(self.realtime_factor),
            'joint_error_mean_rad': _round(_mean(self.joint_error_rad)),
            'joint_error_p95_rad': _round(_percentile(frame_joint, 95)),
            'joint_error_max_rad': _round(_max(frame_joint)),
            'joint_error_worst_joint': self.joint_names[joint_worst],
            'fingertip_error_mean_m': _round(_mean(self.fingertip_error_m)),
            'fingertip_error_p95_m': _round(_percentile(frame_tip, 95)),
            'fingertip_error_max_m': _round(_max(frame_tip)),
            'wrist_error_p95_m': None if self.wrist_error_m is None else
            _round(_percentile(self.wrist_error_m.max(axis=1), 95)),
            'reach_error_max_m': None if self.reach_error_m is None else
            _round(_max(self.reach_error_m)),
            'penetration_max_m': _round(pen),
            'penetration_pair': None if pen <= 0.0 else list(self.penetration_pair[worst]),
            'penetration_time_s': None if pen <= 0.0 else _round(worst / self.fps),
            'penetration_tolerance_m': self.config.penetration_tolerance_m,
            'penetrating_fraction': _round(self.penetrating_fraction()),
            'min_inter_hand_distance_m': _round(_min(self.inter_hand_distance_m)),
            'min_command_distance_m': _round(_min(self.command_distance_m)),
            'command_penetration_m': _round(max(0.0, -_min(self.command_distance_m))),
            'command_penetration_pair': None if cmd_pen <= 0.0 else
            list(self.command_pair[cmd_frame]),
            'command_penetration_time_s': None if cmd_pen <= 0.0 else
            _round(cmd_frame / self.fps),
            'peak_force_n': _round(_max(self.peak_force_n)),
            'robot_contact_events': len(self.robot_contacts),
            'self_contact_pairs': [list(p) for p in self_contacts],
            'command_velocity_max_rad_s': _round(float(self.command_velocity_rad_s[vel])),
            'command_velocity_joint': self.joint_names[vel],
            'command_velocity_limit_rad_s': _round(float(self.max_velocity_rad_s[vel])),
            'kinetic_energy_max_j': _round(_max(self.kinetic_energy_j)),
        }
        if self.fidelity is not None:
            summary.update({
                'human_contact_events': len(self.fidelity.human),
                'contact_precision': self.fidelity.precision,
                'contact_recall': self.fidelity.recall,
                'contact_onset_error_s': _round(self.fidelity.mean_abs_onset_error_s),
                'contact_part_agreement': self.fidelity.part_agreement,
            })
        return summary

    def to_dict(self, *, frames: bool = True) -> dict[str, Any]:
        """JSON-compatible report: the robot, the summary, the contact events and (with
        ``frames``) the per-frame series (``qpos_sim`` is left out: it is for rendering)."""
        out: dict[str, Any] = {
            'robot': self.robot, 'fps': self.fps, 'joint_names': list(self.joint_names),
            'fingertip_names': list(self.fingertip_names), 'summary': self.summary(),
            'robot_contacts': [list(i) for i in self.robot_contacts],
            'fidelity': None if self.fidelity is None else self.fidelity.to_dict(),
            'command_velocity_rad_s': _rounded(self.command_velocity_rad_s),
            'max_velocity_rad_s': _rounded(self.max_velocity_rad_s),
            'config': dataclasses.asdict(self.config),
        }
        if frames:
            out['frames'] = {
                'times_s': _rounded(self.times_s),
                'joint_error_rad': _rounded(self.joint_error_rad),
                'fingertip_error_m': _rounded(self.fingertip_error_m),
                'wrist_error_m': None if self.wrist_error_m is None else
                _rounded(self.wrist_error_m),
                'reach_error_m': None if self.reach_error_m is None else
                _rounded(self.reach_error_m),
                'inter_hand_distance_m': _rounded(self.inter_hand_distance_m),
                'command_distance_m': _rounded(self.command_distance_m),
                'command_pair': [None if p is None else list(p) for p in self.command_pair],
                'closest_pair': [None if p is None else list(p) for p in self.closest_pair],
                'penetration_m': _rounded(self.penetration_m),
                'penetration_pair': [None if p is None else list(p)
                                     for p in self.penetration_pair],
                'peak_force_n': _rounded(self.peak_force_n),
                'kinetic_energy_j': _rounded(self.kinetic_energy_j),
                'contacts': [[c.to_dict() for c in frame] for frame in self.contacts],
            }
        return out


# ============================================================================== simulate


def simulate(scene: SimScene, trajectory: RobotTrajectory, motion: BimanualMotion | None = None,
             config: SimConfig | None = None, *, max_wall_s: float | None = None) -> SimResult:
    """Play ``trajectory`` in ``scene`` and measure tracking, contacts and stability.

    Args:
        scene: The robot's scene (:func:`~handx_ros.sim.scene.build_scene`).
        trajectory: The clip; its joints are matched to the scene's by name.
        motion: The human clip it was retargeted from, for contact fidelity. A retimed
            trajectory (``info['retime']``, :mod:`~handx_ros.retarget.retime`) is compared
            with the human clip at the times its frames came from.
        config: Measurement settings (default :class:`SimConfig`).
        max_wall_s: If given, the most wall-clock time the simulation may take: it is
            checked after settling and after every frame, and past it the run stops (a
            server's bound on one clip, whatever its length or frame rate).

    Returns:
        The measurements; an unstable run returns early with its status and message (it does
        not raise).

    Raises:
        SimulationError: The trajectory is for another robot, names joints the scene lacks or
            lacks joints the scene drives (both listed), or a floating-hand scene gets no
            ``base_poses``; or it ran past ``max_wall_s`` (the message names the limit and
            the frame reached).
        MotionError: ``motion`` is not the clip the trajectory records as its source (frame
            rate, length or fingerprint, :meth:`RobotTrajectory.check_source`).
    """
    config = config or SimConfig()
    if max_wall_s is not None and not max_wall_s > 0.0:
        raise SimulationError(f'max_wall_s must be > 0 or None, got {max_wall_s!r}')
    if not isinstance(trajectory, RobotTrajectory):
        raise SimulationError(f'expected a RobotTrajectory, got {type(trajectory).__name__}')
    if trajectory.robot != scene.robot:
        raise SimulationError(f'trajectory is for robot {trajectory.robot!r}, the scene is '
                              f'{scene.robot!r}')
    cmd = _command_columns(scene, trajectory)  # (T, n)
    poses = trajectory.base_poses
    if scene.floating and poses is None:
        raise SimulationError(f'robot {scene.robot!r} has floating hands; the trajectory has '
                              'no base_poses')
    if not scene.floating:
        poses = None
    fps = trajectory.fps
    if motion is not None:
        trajectory.check_source(motion)
    source = retimed_source_frames(trajectory)
    reach = reach_errors(trajectory, source)
    human = None if motion is None else human_contact_intervals(
        motion, fps, trajectory.num_frames, source_frames=source)
    runner = _Runner(scene, config, fps)
    start = time.perf_counter()
    frames, status, message = runner.run(cmd, poses, max_wall_s)
    wall = time.perf_counter() - start
    distance = np.array(runner.distance)
    robot_events = tuple((int(a), int(b)) for a, b in _merge(
        contact_intervals(distance, fps, config.contact), _frames(config.merge_gap_s, fps)))
    joints = np.array(runner.joints).reshape(frames, scene.num_joints)
    fidelity = None
    if human is not None:
        fidelity = _fidelity(human, robot_events, runner, fps, config)
    return SimResult(
        robot=scene.robot, fps=fps, joint_names=scene.joint_names,
        fingertip_names=scene.fingertip_names[0] + scene.fingertip_names[1],
        status=status, message=message, num_frames=trajectory.num_frames,
        times_s=np.arange(frames) / fps, qpos_cmd=cmd[:frames].copy(),
        qpos_joints=joints, qpos_sim=np.array(runner.qpos).reshape(frames, scene.model.nq),
        joint_error_rad=np.abs(joints - cmd[:frames]),
        fingertip_error_m=np.array(runner.tip_error).reshape(frames, runner.tips.size),
        wrist_error_m=None if poses is None else np.array(runner.wrist_error).reshape(frames, 2),
        inter_hand_distance_m=distance, command_distance_m=np.array(runner.command_distance),
        command_pair=runner.command_pair, closest_pair=runner.closest,
        penetration_m=np.array(runner.penetration), penetration_pair=runner.penetration_pair,
        peak_force_n=np.array(runner.peak_force), kinetic_energy_j=np.array(runner.energy),
        contacts=runner.contacts, robot_contacts=robot_events, fidelity=fidelity,
        command_velocity_rad_s=command_velocity(cmd, fps, config.velocity_window),
        max_velocity_rad_s=np.array(scene.max_velocity, dtype=np.float64),
        wall_time_s=wall, config=config,
        reach_error_m=None if reach is None else reach[:frames].copy())


def command_velocity(qpos: np.ndarray, fps: float, window: int = 1) -> np.ndarray:
    """(n,) peak speed of each joint of a (T, n) command: finite differences over ``window``
    frames, times the frame rate over ``window``."""
    qpos = np.asarray(qpos, dtype=np.float64)
    if qpos.shape[0] <= window:
        return np.zeros(qpos.shape[1])
    return np.abs(qpos[window:] - qpos[:-window]).max(axis=0) * fps / window


def human_contact_intervals(motion: BimanualMotion, fps: float, num_frames: int, *,
                            source_frames: np.ndarray | None = None
                            ) -> list[tuple[Interval, set[tuple[str, str]]]]:
    """Between-hands contact events of a human clip, in the frames of a ``fps`` clip of
    ``num_frames``, with the part groups touching in each (overlapping events joined).

    ``source_frames`` (num_frames,), for a retimed clip: the frame (at ``fps``, before
    retiming) each of its frames came from, nondecreasing; a human event then spans the
    retimed frames whose source lies in it.

    Raises:
        SimulationError: ``motion`` is not a :class:`BimanualMotion`.
    """
    from handx_gen.annotate.features import FeatureConfig, extract_features

    if not isinstance(motion, BimanualMotion):
        raise SimulationError(f'motion must be a BimanualMotion, got {type(motion).__name__}')
    features = extract_features(motion)
    scale = fps / motion.fps
    events = []
    for event in features.contacts:
        if not event.inter_hand:
            continue
        left, right = (event.a, event.b) if event.a.side < event.b.side else (event.b, event.a)
        start, stop = event.start * scale, event.stop * scale
        if source_frames is not None:
            start, stop = (float(np.searchsorted(source_frames, x - 0.5)) for x in (start, stop))
        start = min(int(round(start)), num_frames)
        stop = min(max(int(round(stop)), start + 1), num_frames)
        if stop > start:
            events.append(((start, stop), {(_group(left), _group(right))}))
    events.sort(key=lambda e: e[0])
    merge = _frames(FeatureConfig().contact_merge_gap_s, fps)
    joined: list[tuple[Interval, set[tuple[str, str]]]] = []
    for (start, stop), parts in events:
        if joined and start - joined[-1][0][1] < merge:
            (first, last), known = joined[-1]
            joined[-1] = ((first, max(last, stop)), known | parts)
        else:
            joined.append(((start, stop), set(parts)))
    return joined


def match_intervals(human: Sequence[Interval], robot: Sequence[Interval], tolerance: int
                    ) -> tuple[list[tuple[int, int]], float | None, float | None]:
    """Match events by overlap (each widened by ``tolerance`` frames on both sides).

    Returns:
        (human index, robot index of largest overlap) per matched human event, precision
        (robot events matching any human event, over robot events; ``None`` without robot
        events) and recall (matched human events over human events; ``None`` without any).
    """
    def overlap(a: Interval, b: Interval) -> int:
        return min(a[1], b[1]) + 2 * tolerance - max(a[0], b[0])

    matches = []
    for h, event in enumerate(human):
        scores = [overlap(event, other) for other in robot]
        if scores and max(scores) > 0:
            matches.append((h, int(np.argmax(scores))))
    precise = sum(any(overlap(event, other) > 0 for event in human) for other in robot)
    precision = precise / len(robot) if robot else None
    recall = len(matches) / len(human) if human else None
    return matches, precision, recall


# ============================================================================== internals


def retimed_source_frames(trajectory: RobotTrajectory) -> np.ndarray | None:
    """(T,) the retiming's map from a trajectory's frames to the frames of the clip it was
    retimed from (``info['retime']``), ``None`` when not retimed.

    Raises:
        SimulationError: A map that is not T nondecreasing frame numbers.
    """
    from handx_ros.retarget.retime import RETIME_INFO_KEY

    record = trajectory.info.get(RETIME_INFO_KEY)
    if not isinstance(record, Mapping):
        return None
    source = np.asarray(record.get('source_frames', ()), dtype=np.float64)
    if source.shape != (trajectory.num_frames,) or not np.all(np.isfinite(source)) \
            or np.any(np.diff(source) < 0.0):
        raise SimulationError(f"trajectory info['retime']['source_frames'] must be "
                              f'{trajectory.num_frames} nondecreasing frame numbers, got shape '
                              f'{source.shape}')
    return source


def reach_errors(trajectory: RobotTrajectory, source_frames: np.ndarray | None = None
                 ) -> np.ndarray | None:
    """(T, 2) the retargeting's wrist position error at each frame of ``trajectory``, from
    its ``info['wrist_error_m_per_hand']`` (one row per frame of the clip as retargeted);
    ``None`` when the info lacks it.

    A retimed trajectory's frames lie between the retargeted ones (``source_frames``,
    :func:`retimed_source_frames`): each takes the larger error of the two.

    Raises:
        SimulationError: The errors are not one finite, non-negative pair per retargeted
            frame.
    """
    errors = trajectory.info.get('wrist_error_m_per_hand')
    if errors is None:
        return None
    errors = np.asarray(errors, dtype=np.float64)
    rows = trajectory.num_frames if source_frames is None else \
        int(math.floor(float(source_frames[-1]))) + 1
    if errors.ndim != 2 or errors.shape[1] != 2 or errors.shape[0] < rows \
            or not np.all(np.isfinite(errors)) or np.any(errors < 0.0):
        raise SimulationError(f"trajectory info['wrist_error_m_per_hand'] must hold a finite, "
                              f'non-negative error per hand for each of the {rows} retargeted '
                              f'frames, got shape {errors.shape}')
    if source_frames is None:
        return errors[:trajectory.num_frames]
    last = errors.shape[0] - 1
    below = np.clip(np.floor(source_frames).astype(int), 0, last)
    above = np.clip(np.ceil(source_frames).astype(int), 0, last)
    return np.maximum(errors[below], errors[above])


class _Runner:
    """The frame loop and its per-frame measurements."""

    def __init__(self, scene: SimScene, config: SimConfig, fps: float) -> None:
        self.scene, self.config = scene, config
        model = copy.copy(scene.model)
        frame_s = 1.0 / fps
        self.substeps = max(1, int(math.ceil(frame_s / scene.timestep_s - 1e-9)))
        model.opt.timestep = frame_s / self.substeps
        self.model = model
        self.data = mujoco.MjData(model)
        self.kin = mujoco.MjData(model)
        self.fps = fps
        left, right = scene.hand_geoms
        pairs = np.array([(a, b) for a in left for b in right], dtype=int).reshape(-1, 2)
        self.pairs = pairs  # (P, 2) candidate geom pairs between the hands
        self.pair_reach = model.geom_rbound[pairs].sum(axis=1) + config.distance_cutoff_m
        side = np.full(model.ngeom, -1)
        side[left], side[right] = 0, 1
        self.geom_side = side
        self.tips = np.concatenate(scene.fingertip_sites)
        self.fromto = np.zeros(6)
        self.warnings = [mujoco.mjtWarning.mjWARN_BADQACC, mujoco.mjtWarning.mjWARN_BADQPOS,
                         mujoco.mjtWarning.mjWARN_BADQVEL]
        self.joints: list[np.ndarray] = []
        self.qpos: list[np.ndarray] = []
        self.tip_error: list[np.ndarray] = []
        self.wrist_error: list[np.ndarray] = []
        self.distance: list[float] = []
        self.command_distance: list[float] = []
        self.command_pair: list[tuple[str, str] | None] = []
        self.closest: list[tuple[str, str] | None] = []
        self.touch_parts: list[set[tuple[str, str]]] = []
        self.penetration: list[float] = []
        self.penetration_pair: list[tuple[str, str] | None] = []
        self.peak_force: list[float] = []
        self.energy: list[float] = []
        self.contacts: list[list[LinkContact]] = []

    def run(self, cmd: np.ndarray, poses: np.ndarray | None, max_wall_s: float | None = None
            ) -> tuple[int, SimStatus, str]:
        """Settle on the first frame, then play every frame; stops early when unstable.

        Raises:
            SimulationError: It took more than ``max_wall_s`` seconds.
        """
        scene, model, data = self.scene, self.model, self.data
        limit = None if max_wall_s is None else (time.perf_counter() + max_wall_s, max_wall_s)
        first = None if poses is None else poses[0]
        scene.reset(data, cmd[0], first)
        settle = int(round(self.config.settle_s / model.opt.timestep))
        for _ in range(settle):
            mujoco.mj_step(model, data)
        self._check_deadline(limit, 0, cmd.shape[0])
        problem = self.check(0)
        if problem:
            return 0, SimStatus.UNSTABLE, problem
        mujoco.mj_forward(model, data)
        self.measure(cmd[0], first)
        alpha = (np.arange(self.substeps) + 1.0) / self.substeps  # (S,)
        for t in range(1, cmd.shape[0]):
            q = cmd[t - 1] + alpha[:, None] * (cmd[t] - cmd[t - 1])  # (S, n)
            qvel = np.broadcast_to((cmd[t] - cmd[t - 1]) * self.fps, q.shape)
            sub_poses = velocity = None
            if poses is not None:
                sub_poses, velocity = _interpolate_poses(poses[t - 1], poses[t], alpha,
                                                         self.fps)
            ctrl, mocap_pos, mocap_quat = scene.command_arrays(q, sub_poses, qvel, velocity)
            for k in range(self.substeps):
                scene.write_command(data, ctrl[k], None if mocap_pos is None else mocap_pos[k],
                                    None if mocap_quat is None else mocap_quat[k])
                mujoco.mj_step(model, data)
            problem = self.check(t)
            if problem:
                return t, SimStatus.UNSTABLE, problem
            mujoco.mj_forward(model, data)
            self.measure(cmd[t], None if poses is None else poses[t])
            self._check_deadline(limit, t, cmd.shape[0])
        return cmd.shape[0], SimStatus.OK, ''

    def _check_deadline(self, limit: tuple[float, float] | None, t: int, num_frames: int
                        ) -> None:
        """Raise if ``limit`` (deadline on ``time.perf_counter()``, seconds allowed) passed."""
        if limit is None or time.perf_counter() <= limit[0]:
            return
        raise SimulationError(
            f'simulation over its wall-time limit of {limit[1]:g} s (max_wall_s): stopped at '
            f'frame {t} of {num_frames} ({t / self.fps:.3g} s of a {num_frames / self.fps:.3g} '
            's clip)')

    def check(self, t: int) -> str:
        """Why the state at frame ``t`` is unstable ('' when it is not)."""
        model, data = self.model, self.data
        when = f'at frame {t} ({t / self.fps:.2f} s)'
        for warning in self.warnings:
            if data.warning[warning].number > 0:
                name = mujoco.mjtWarning(warning).name.removeprefix('mjWARN_')
                return f'MuJoCo reported {name} {when}: the simulation diverged'
        if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
            return f'non-finite state {when}'
        speed = np.abs(data.qvel)
        worst = int(np.argmax(speed)) if speed.size else 0
        if speed.size and speed[worst] > self.config.max_joint_speed_rad_s:
            joint = model.joint(int(model.dof_jntid[worst])).name
            return (f'energy blow-up {when}: speed {speed[worst]:.4g} of {joint!r} > '
                    f'{self.config.max_joint_speed_rad_s:g}')
        energy = self.kinetic_energy()
        if energy > self.config.max_kinetic_energy_j:
            return (f'energy blow-up {when}: kinetic energy {energy:.4g} J > '
                    f'{self.config.max_kinetic_energy_j:g} J')
        return ''

    def kinetic_energy(self) -> float:
        product = np.zeros(self.model.nv)
        mujoco.mj_mulM(self.model, self.data, product, self.data.qvel)
        return 0.5 * float(self.data.qvel @ product)

    def measure(self, cmd: np.ndarray, poses: np.ndarray | None) -> None:
        scene, model, data, kin = self.scene, self.model, self.data, self.kin
        self.joints.append(scene.joint_positions(data))
        self.qpos.append(data.qpos.copy())
        kin.qpos[:] = scene.full_qpos(cmd, poses)
        mujoco.mj_kinematics(model, kin)
        self.tip_error.append(np.linalg.norm(data.site_xpos[self.tips] - kin.site_xpos[self.tips],
                                             axis=1))
        if poses is not None:
            self.wrist_error.append(np.linalg.norm(
                data.xpos[list(scene.base_bodies)] - poses[:, :3], axis=1))
        self.energy.append(self.kinetic_energy())
        self._distances()
        self._contacts()

    def _distances(self) -> None:
        """Signed distance between the hands, simulated and commanded."""
        scene = self.scene
        best, best_pair, parts = self._hand_distance(self.data)
        self.distance.append(best)
        self.touch_parts.append(parts)
        self.closest.append(None if best_pair is None else
                            (scene.geom_link[best_pair[0]], scene.geom_link[best_pair[1]]))
        command, command_pair, _ = self._hand_distance(self.kin)
        self.command_distance.append(command)
        self.command_pair.append(None if command_pair is None else
                                 (scene.geom_link[command_pair[0]],
                                  scene.geom_link[command_pair[1]]))

    def _hand_distance(self, data: mujoco.MjData
                       ) -> tuple[float, tuple[int, int] | None, set[tuple[str, str]]]:
        """Smallest signed distance between the hands' geoms (capped at the cutoff), its geom
        pair and the part groups touching, from the candidate pairs near enough."""
        scene, model = self.scene, self.model
        cutoff = self.config.distance_cutoff_m
        centre = data.geom_xpos[self.pairs]  # (P, 2, 3)
        near = np.linalg.norm(centre[:, 0] - centre[:, 1], axis=1) < self.pair_reach
        best, best_pair = cutoff, None
        parts = set()
        for g1, g2 in self.pairs[near]:
            dist = mujoco.mj_geomDistance(model, data, int(g1), int(g2), cutoff, self.fromto)
            if dist <= self.config.touch_distance_m:
                parts.add((_group(scene.geom_part[g1]), _group(scene.geom_part[g2])))
            if dist < best:
                best, best_pair = dist, (int(g1), int(g2))
        return float(best), best_pair, parts

    def _contacts(self) -> None:
        """MuJoCo's contacts grouped per link pair; penetration and forces."""
        scene, model, data = self.scene, self.model, self.data
        grouped: dict[tuple[str, str], list[float]] = {}
        inter: dict[tuple[str, str], bool] = {}
        force = np.zeros(6)
        peak = 0.0
        for i in range(data.ncon):
            contact = data.contact[i]
            g1, g2 = int(contact.geom[0]), int(contact.geom[1])
            sides = (self.geom_side[g1], self.geom_side[g2])
            between = bool(sides[0] >= 0 and sides[1] >= 0 and sides[0] != sides[1])
            if between and sides[0] > sides[1]:
                g1, g2 = g2, g1
            mujoco.mj_contactForce(model, data, i, force)
            normal = abs(float(force[0]))
            peak = max(peak, normal)
            key = (scene.geom_link[g1], scene.geom_link[g2])
            if not between:
                key = tuple(sorted(key))  # type: ignore[assignment]
            entry = grouped.setdefault(key, [math.inf, 0.0])
            entry[0] = min(entry[0], float(contact.dist))
            entry[1] += normal
            inter[key] = between
        self.peak_force.append(peak)
        links = [LinkContact(a, b, inter[(a, b)], d, f) for (a, b), (d, f) in grouped.items()]
        self.contacts.append(links if self.config.keep_contacts else [])
        depth, pair = 0.0, None
        if self.distance[-1] < 0.0 and self.closest[-1] is not None:
            depth, pair = -self.distance[-1], self.closest[-1]
        for link in links:
            if -link.distance_m > depth:
                depth, pair = -link.distance_m, (link.a, link.b)
        self.penetration.append(depth)
        self.penetration_pair.append(pair)


def _interpolate_poses(pose0: np.ndarray, pose1: np.ndarray, alpha: np.ndarray, fps: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Sub-step base poses (S, 2, 7) between two frames and the velocity (S, 2, 6): linear
    in the world frame, angular in the base frame."""
    a = alpha[:, None, None]  # (S, 1, 1)
    pos = pose0[None, :, :3] + a * (pose1 - pose0)[None, :, :3]
    quat = quaternion_slerp(np.broadcast_to(pose0[None, :, 3:], (alpha.size, 2, 4)),
                            np.broadcast_to(pose1[None, :, 3:], (alpha.size, 2, 4)), a)
    q0_inv = pose0[:, 3:] * np.array([1.0, -1.0, -1.0, -1.0])
    turn = quaternion_to_axis_angle(quaternion_multiply(q0_inv, pose1[:, 3:]))  # (2, 3) local
    velocity = np.concatenate([(pose1[:, :3] - pose0[:, :3]) * fps, turn * fps], axis=1)
    return np.concatenate([pos, quat], axis=-1), np.broadcast_to(velocity, (alpha.size, 2, 6))


def _command_columns(scene: SimScene, trajectory: RobotTrajectory) -> np.ndarray:
    """(T, n) the trajectory's columns in the scene's joint order, matched by name."""
    names = trajectory.joint_names
    unknown = [n for n in names if n not in scene.joint_names]
    missing = [n for n in scene.joint_names if n not in names]
    if unknown:
        raise SimulationError(
            f'trajectory joints unknown to robot {scene.robot!r}: {unknown}; '
            + unknown_choice('joint', unknown[0], scene.joint_names).split('; ', 1)[1])
    if missing:
        raise SimulationError(f'trajectory lacks joints that robot {scene.robot!r} drives: '
                              f'{missing}')
    index = [names.index(n) for n in scene.joint_names]
    return np.asarray(trajectory.qpos[:, index], dtype=np.float64)


def _fidelity(human: list[tuple[Interval, set[tuple[str, str]]]],
              robot: tuple[Interval, ...], runner: _Runner, fps: float, config: SimConfig
              ) -> ContactFidelity:
    human_intervals = tuple(interval for interval, _ in human)
    matches, precision, recall = match_intervals(human_intervals, robot,
                                                 _frames(config.match_tolerance_s, fps))
    onsets = tuple(float(robot[r][0] - human_intervals[h][0]) / fps for h, r in matches)
    agree = 0
    for h, r in matches:
        start, stop = robot[r]
        touched = set().union(*runner.touch_parts[start:stop]) if stop > start else set()
        agree += bool(touched & human[h][1])
    return ContactFidelity(
        human=human_intervals, robot=robot, matches=tuple(matches),
        precision=None if precision is None else round(precision, 4),
        recall=None if recall is None else round(recall, 4), onset_errors_s=onsets,
        part_agreement=round(agree / len(matches), 4) if matches else None)


def _group(part: PartRef | None) -> str:
    """Part group of a hand part: 'palm' (palm or back) or the finger's name."""
    if part is None:
        return 'arm'
    if part.part in (HandPart.PALM, HandPart.BACK):
        return 'palm'
    finger = part.part.finger
    return finger.name.lower() if finger is not None else part.part.value


def _merge(intervals: Sequence[Interval], gap: int) -> list[Interval]:
    merged: list[Interval] = []
    for start, stop in intervals:
        if merged and start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


def _frames(seconds: float, fps: float) -> int:
    return int(math.ceil(seconds * fps - 1e-9))


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _rounded(array: np.ndarray, digits: int = 6) -> list[Any]:
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


def _mean(array: np.ndarray) -> float:
    return float(np.mean(array)) if array.size else 0.0


def _max(array: np.ndarray) -> float:
    return float(np.max(array)) if array.size else 0.0


def _min(array: np.ndarray) -> float:
    return float(np.min(array)) if array.size else 0.0


def _percentile(array: np.ndarray, q: float) -> float:
    return float(np.percentile(array, q)) if array.size else 0.0
