"""MuJoCo scenes that play a robot trajectory: a pair of floating hands, or a humanoid.

:func:`build_scene` turns a robot folder into a :class:`SimScene`:

* **pair** (``allegro``, ``inspire``): both member hands' MJCF (:mod:`handx_ros.sim.mjcf`)
  attached to one world with the prefixes ``left/`` and ``right/``. Each hand's root gets a
  free joint, and a mocap body per hand pulls the hand's base link onto the trajectory's
  ``base_poses`` through a soft weld equality: the wrist follows the command, and a contact
  can still push it back (a commanded overlap becomes a measured penetration and force, not
  a teleport through the other hand).
* **humanoid** (``g1_hands``, ``gr1``): the URDF's root (the pelvis) stays fixed to the
  world; every arm and hand joint the trajectory drives gets a position actuator, the legs and
  waist are held at the folder's ``locked_joints`` by stiffer position actuators.

Common to both: a position actuator on every driven joint (joint range as control range,
damping from a damping ratio, a force limit), the URDF's ``<mimic>`` equality constraints kept,
gravity off and no floor. The URDFs' ``<dynamics>`` values are not motor models (the Allegro
URDF's friction of 5-10 N m exceeds what its motors can exert) and are replaced by the
config's armature; the actuators supply the damping. Collision geometry stays on, between the
hands and within the robot, except for the pairs that only touch where they are joined: MuJoCo
filters a link and its parent; the scene also excludes a link and the link two joints above
it, within a hand the pairs the retargeter's collision model leaves out (links of one finger;
the palm with a finger's first two links) and any pair touching in the rest pose. A hand whose
URDF has no collision geometry (the Inspire hand, alone or on the GR1's arms) collides with its
visual meshes (their convex hulls).

The wrist welds are stiff: a command that drives one hand into the other is resisted by
contact forces of hundreds of newtons or more, and the simulated penetration stays at a few
millimetres; the commanded overlap itself is measured by :mod:`handx_ros.sim.evaluate`.

Joint names: the scene's :attr:`SimScene.joint_names` are controller names (the trajectory's),
mapped to MJCF joints by name through each folder's ``controller_names`` and the hand prefix.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, SimulationError
from handx_gen.hand.parts import FINGER_PARTS, FINGERTIP_PARTS, HandPart, PartRef
from handx_gen.hand.rotations import axis_angle_to_quaternion, quaternion_multiply
from handx_gen.hand.topology import Finger, HandSide
from handx_ros.retarget.spec import RobotKind, RobotSpec, load_robot_spec
from handx_ros.sim.mjcf import generate_mjcf

__all__ = [
    'HAND_PREFIXES',
    'JointKind',
    'SceneConfig',
    'SimScene',
    'build_scene',
]

HAND_PREFIXES = ('left/', 'right/')
_APART_M = 1.0  # hands this far from the origin when looking for rest-pose overlaps


class JointKind(str, enum.Enum):
    """How a joint is actuated in the scene."""

    FINGER = 'finger'  # a hand joint the trajectory drives
    ARM = 'arm'  # a humanoid arm joint the trajectory drives
    HELD = 'held'  # a humanoid joint held at its locked value (legs, waist)


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """Settings of a simulation scene. Defaults and why:

    Attributes:
        timestep_s: 0.002 s physics step (500 Hz): the hands' contacts and servos are stable
            well below it, and a 30 fps frame is 16-17 steps.
        gravity_off: True: a floor-free workspace; the real arms compensate gravity.
        finger_kp: 10 N m/rad finger servo stiffness: 0.1 rad of error gives 1 N m, about the
            Allegro motors' peak torque.
        finger_dampratio: 1.0, critically damped servos (damping from each joint's inertia).
        finger_armature: 0.001 kg m^2 reflected rotor inertia per finger joint: geared motors
            carry one, and it keeps the light phalanges stable at the servo stiffness.
        finger_force_limit_nm: 1.5 N m per finger joint (``None``: unlimited).
        arm_kp: 400 N m/rad per humanoid arm joint.
        arm_dampratio: 1.0.
        arm_armature: 0.05 kg m^2 per arm joint.
        arm_force_limit_nm: 80 N m per arm joint (``None``: unlimited).
        held_kp: 1000 N m/rad holding the humanoid's legs and waist at their locked values.
        wrist_solref: (0.01, 1.0) weld time constant (s) and damping ratio pulling each
            floating hand onto its commanded base pose: stiff enough to follow a clap, soft
            enough that contacts push back.
        wrist_solimp: Weld impedance (MuJoCo's solimp).
        velocity_feedforward: Feed the commanded velocity to the servos (joint controls lead by
            ``kv / kp`` times the velocity, the wrist targets by the weld's lag), so a moving
            command is tracked without the servo's velocity lag.
        contact_solref: (0.005, 1.0) contact time constant (s) and damping ratio.
        contact_solimp: Contact impedance: 0.95 to 0.99 within 1 mm of penetration.
        friction: Sliding, torsional and rolling friction of the hands' collision geoms.
        contact_margin_m: 0.0: contacts become active at touch (distances are measured
            separately).
        mesh_collision_fallback: True: a hand without collision geometry collides with its
            visual meshes.
        self_collision_exclusions: True: the self-collision pairs the retargeter leaves out
            (links of one finger; the palm with a finger's first two links) and body pairs
            touching in the rest pose (the joints at 0, clipped to their ranges: built-in
            overlaps) never collide.
    """

    timestep_s: float = 0.002
    gravity_off: bool = True
    finger_kp: float = 10.0
    finger_dampratio: float = 1.0
    finger_armature: float = 0.001
    finger_force_limit_nm: float | None = 1.5
    arm_kp: float = 400.0
    arm_dampratio: float = 1.0
    arm_armature: float = 0.05
    arm_force_limit_nm: float | None = 80.0
    held_kp: float = 1000.0
    wrist_solref: tuple[float, float] = (0.01, 1.0)
    wrist_solimp: tuple[float, float, float, float, float] = (0.95, 0.99, 0.001, 0.5, 2.0)
    velocity_feedforward: bool = True
    contact_solref: tuple[float, float] = (0.005, 1.0)
    contact_solimp: tuple[float, float, float, float, float] = (0.95, 0.99, 0.001, 0.5, 2.0)
    friction: tuple[float, float, float] = (1.0, 0.005, 0.0001)
    contact_margin_m: float = 0.0
    mesh_collision_fallback: bool = True
    self_collision_exclusions: bool = True

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == 'bool':
                if not isinstance(value, bool):
                    raise ConfigError(f'scene config {field.name!r} must be a bool, got '
                                      f'{value!r}')
                continue
            if value is None and field.name.endswith('force_limit_nm'):
                continue
            if field.type.startswith('tuple'):
                numbers = _numbers(field.name, value, len(field.default))
                object.__setattr__(self, field.name, numbers)
                if field.name in ('wrist_solref', 'contact_solref') \
                        and numbers[0] < 2.0 * self.timestep_s:
                    raise ConfigError(
                        f'scene config {field.name!r} time constant {numbers[0]} s must be at '
                        f'least twice timestep_s ({self.timestep_s} s)')
                continue
            number = _numbers(field.name, (value,), 1)[0]
            if number < 0.0 or (number == 0.0 and field.name not in (
                    'contact_margin_m', 'finger_armature', 'arm_armature')):
                raise ConfigError(f'scene config {field.name!r} must be > 0, got {value!r}')
            object.__setattr__(self, field.name, number)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> SceneConfig:
        """Settings from a mapping (YAML); unknown keys are rejected.

        Raises:
            ConfigError: An unknown key (valid keys listed) or a bad value.
        """
        kwargs = config_kwargs(cls, values, 'scene')
        for key, value in kwargs.items():
            if isinstance(value, list):
                kwargs[key] = tuple(value)
        return cls(**kwargs)

    def servo(self, kind: JointKind) -> tuple[float, float, float, float | None]:
        """(kp, damping ratio, armature, force limit) of a joint kind."""
        if kind == JointKind.FINGER:
            return (self.finger_kp, self.finger_dampratio, self.finger_armature,
                    self.finger_force_limit_nm)
        if kind == JointKind.ARM:
            return self.arm_kp, self.arm_dampratio, self.arm_armature, self.arm_force_limit_nm
        return self.held_kp, self.arm_dampratio, self.arm_armature, None


def _numbers(name: str, value: Any, count: int) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
            or len(value) != count:
        raise ConfigError(f'scene config {name!r} must hold {count} numbers, got {value!r}')
    numbers = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) \
                or not math.isfinite(item):
            raise ConfigError(f'scene config {name!r} must hold finite numbers, got {value!r}')
        numbers.append(float(item))
    return tuple(numbers)


@dataclasses.dataclass(frozen=True, eq=False)
class SimScene:
    """A compiled scene and how trajectory commands reach it.

    Attributes:
        robot: The robot folder name.
        spec: Its spec.
        model: The compiled MuJoCo model (``model.opt.timestep`` is the physics step).
        config: The settings it was built with.
        joint_names: Controller names of the driven joints, in command order.
        mjcf_joint_names: The MJCF joint of each, same order (prefixed in a pair).
        joint_kinds: :class:`JointKind` of each driven joint.
        hand_geoms: Colliding geom ids of the left and of the right hand (a humanoid's hand:
            the geoms of its base link's subtree).
        geom_link: Link (body) name of every geom id, prefixed per hand in a pair.
        geom_part: The hand part of every geom id (``None`` outside the hands): palm (palm
            and back are one link), a fingertip, or a finger's shaft.
        fingertip_sites: Site ids of each hand's fingertips, thumb first.
        fingertip_names: Site names, same layout.
        base_bodies: Body ids of the left and right base links.
        floating: True for a pair (wrists follow ``base_poses``).
        max_velocity: (n,) velocity limit of each driven joint, from the robot model (URDF
            ``velocity``, the folder's ``limits:`` overrides), rad/s or m/s.
        max_acceleration: (n,) acceleration limit of each driven joint (the folder's).
    """

    robot: str
    spec: RobotSpec
    model: mujoco.MjModel
    config: SceneConfig
    joint_names: tuple[str, ...]
    mjcf_joint_names: tuple[str, ...]
    joint_kinds: tuple[JointKind, ...]
    hand_geoms: tuple[np.ndarray, np.ndarray]
    geom_link: list[str]
    geom_part: tuple[PartRef | None, ...]
    fingertip_sites: tuple[np.ndarray, np.ndarray]
    fingertip_names: tuple[tuple[str, ...], tuple[str, ...]]
    base_bodies: tuple[int, int]
    floating: bool
    max_velocity: np.ndarray
    max_acceleration: np.ndarray
    _qpos_adr: np.ndarray  # (n,) qpos address of each driven joint
    _actuators: np.ndarray  # (n,) actuator of each driven joint
    _lead_s: np.ndarray  # (n,) kv / kp of each driven joint's servo
    _held: tuple[np.ndarray, np.ndarray, np.ndarray]  # actuator ids, qpos adr, values
    _mimics: tuple[tuple[int, int, np.ndarray], ...]  # (qadr, leader qadr, polycoef)
    _free_adr: tuple[int, ...]  # qpos address of each floating hand's free joint
    _mocap: np.ndarray  # (2,) mocap id of each floating hand's target (empty: none)
    _T_base_root: np.ndarray  # (2, 7) root pose in the base link frame (floating hands)
    _wrist_lead_s: float

    @property
    def num_joints(self) -> int:
        """Number of driven joints (the trajectory's nq)."""
        return len(self.joint_names)

    @property
    def timestep_s(self) -> float:
        return float(self.model.opt.timestep)

    @property
    def hand_body_ids(self) -> np.ndarray:
        """Ids of the bodies carrying the hands' colliding geoms (what a video frames)."""
        geoms = np.concatenate([np.asarray(g, dtype=int) for g in self.hand_geoms])
        return np.unique(self.model.geom_bodyid[geoms])

    def make_data(self) -> mujoco.MjData:
        """A fresh :class:`mujoco.MjData` of the scene's model."""
        return mujoco.MjData(self.model)

    # ------------------------------------------------------------------ commands

    def full_qpos(self, qpos_cmd: np.ndarray, base_poses: np.ndarray | None = None
                  ) -> np.ndarray:
        """(model.nq,) the full MuJoCo configuration of a command: driven joints as commanded,
        mimic joints following them, held joints at their values, floating hands at their
        base poses.

        Raises:
            SimulationError: Wrong shapes or non-finite values.
        """
        qpos_cmd, base_poses = self._check_command(qpos_cmd, base_poses)
        qpos = self.model.qpos0.copy()
        qpos[self._qpos_adr] = qpos_cmd
        qpos[self._held[1]] = self._held[2]
        for adr, leader, coef in self._mimics:
            qpos[adr] = np.polyval(coef[::-1], qpos[leader])
        for side, adr in enumerate(self._free_adr):
            qpos[adr:adr + 7] = self._root_pose(side, base_poses[side])
        return qpos

    def apply_command(self, data: mujoco.MjData, qpos_cmd: np.ndarray,
                      base_poses: np.ndarray | None = None, *,
                      qvel_cmd: np.ndarray | None = None,
                      base_velocity: np.ndarray | None = None) -> None:
        """Set the servo targets (and the wrist targets of floating hands).

        Args:
            data: The scene's data.
            qpos_cmd: (n,) driven joint positions in :attr:`joint_names` order.
            base_poses: (2, 7) base link poses (xyz, quaternion wxyz); required for a pair.
            qvel_cmd: (n,) commanded joint velocities, fed forward when the config says so.
            base_velocity: (2, 6) commanded base velocities (linear in the world frame,
                angular in the base link frame), fed forward likewise.

        Raises:
            SimulationError: Wrong shapes or non-finite values (the message says which).
        """
        qpos_cmd, base_poses = self._check_command(qpos_cmd, base_poses)
        if qvel_cmd is not None:
            qvel_cmd = _finite('qvel_cmd', qvel_cmd, (self.num_joints,))[None]
        if base_velocity is not None and self.floating:
            base_velocity = _finite('base_velocity', base_velocity, (2, 6))[None]
        ctrl, mocap_pos, mocap_quat = self.command_arrays(
            qpos_cmd[None], None if base_poses is None else base_poses[None], qvel_cmd,
            base_velocity)
        self.write_command(data, ctrl[0], None if mocap_pos is None else mocap_pos[0],
                           None if mocap_quat is None else mocap_quat[0])

    def command_arrays(self, qpos_cmd: np.ndarray, base_poses: np.ndarray | None,
                       qvel_cmd: np.ndarray | None = None,
                       base_velocity: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Controls and mocap targets of k commands at once (no checks: the caller's inputs
        are finite and shaped).

        Args:
            qpos_cmd: (k, n) joint targets.
            base_poses: (k, 2, 7) base poses (floating hands) or ``None``.
            qvel_cmd: (k, n) joint velocities to feed forward, or ``None``.
            base_velocity: (k, 2, 6) base velocities to feed forward, or ``None``.

        Returns:
            ctrl (k, n) for the driven joints' actuators, mocap positions (k, 2, 3) and
            quaternions (k, 2, 4) (``None`` without floating hands).
        """
        feed = self.config.velocity_feedforward
        ctrl = qpos_cmd + self._lead_s * qvel_cmd if feed and qvel_cmd is not None \
            else qpos_cmd
        if not self.floating or base_poses is None:
            return ctrl, None, None
        pos, quat = base_poses[..., :3], base_poses[..., 3:]
        if feed and base_velocity is not None:
            pos = pos + self._wrist_lead_s * base_velocity[..., :3]
            turn = axis_angle_to_quaternion(self._wrist_lead_s * base_velocity[..., 3:])
            quat = quaternion_multiply(quat, turn)
            quat = quat / np.linalg.norm(quat, axis=-1, keepdims=True)
        return ctrl, pos, quat

    def write_command(self, data: mujoco.MjData, ctrl: np.ndarray,
                      mocap_pos: np.ndarray | None = None,
                      mocap_quat: np.ndarray | None = None) -> None:
        """Write one row of :meth:`command_arrays` into ``data`` (no checks)."""
        data.ctrl[self._actuators] = ctrl
        data.ctrl[self._held[0]] = self._held[2]
        if mocap_pos is not None and mocap_quat is not None:
            data.mocap_pos[self._mocap] = mocap_pos
            data.mocap_quat[self._mocap] = mocap_quat

    def reset(self, data: mujoco.MjData, qpos: np.ndarray,
              base_poses: np.ndarray | None = None) -> None:
        """Teleport the scene to a command at rest (velocities zero) and run forward
        kinematics and collision detection.

        Raises:
            SimulationError: Wrong shapes or non-finite values.
        """
        full = self.full_qpos(qpos, base_poses)
        mujoco.mj_resetData(self.model, data)
        data.qpos[:] = full
        self.apply_command(data, qpos, base_poses)
        mujoco.mj_forward(self.model, data)

    def joint_positions(self, data: mujoco.MjData) -> np.ndarray:
        """(n,) simulated positions of the driven joints, in :attr:`joint_names` order."""
        return data.qpos[self._qpos_adr].copy()

    def base_poses(self, data: mujoco.MjData) -> np.ndarray | None:
        """(2, 7) simulated base link poses of floating hands (``None`` for a humanoid)."""
        if not self.floating:
            return None
        return np.stack([np.concatenate([data.xpos[b], data.xquat[b]])
                         for b in self.base_bodies])

    # ------------------------------------------------------------------ internals

    def _root_pose(self, side: int, base_pose: np.ndarray) -> np.ndarray:
        """(7,) root body pose in the world that puts the base link at ``base_pose``."""
        pos, quat = np.zeros(3), np.zeros(4)
        mujoco.mju_mulPose(pos, quat, base_pose[:3], base_pose[3:], self._T_base_root[side, :3],
                           self._T_base_root[side, 3:])
        return np.concatenate([pos, quat])

    def _check_command(self, qpos_cmd: Any, base_poses: Any
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        qpos_cmd = _finite('qpos_cmd', qpos_cmd, (self.num_joints,))
        if not self.floating:
            return qpos_cmd, None
        if base_poses is None:
            raise SimulationError(f'robot {self.robot!r} has floating hands: base_poses (2, 7) '
                                  'are required')
        base_poses = _finite('base_poses', base_poses, (2, 7)).copy()
        norm = np.linalg.norm(base_poses[:, 3:], axis=1)
        if np.any(norm < 1e-9):
            raise SimulationError(f'base_poses hold a zero quaternion: {base_poses.tolist()}')
        base_poses[:, 3:] /= norm[:, None]
        return qpos_cmd, base_poses


def _finite(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SimulationError(f'{name} must be numeric: {exc}') from None
    if array.shape != shape:
        raise SimulationError(f'{name} must have shape {shape}, got {array.shape}')
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array.ravel()))
        raise SimulationError(f'{name} holds {bad.size} non-finite values (first at flat '
                              f'index {int(bad[0])}): {array.ravel()[bad[:5]].tolist()}')
    return array


# ============================================================================== building


@dataclasses.dataclass
class _Hand:
    """One hand while building: its spec, the folder holding it and its name prefix."""

    side: HandSide
    folder: RobotSpec
    prefix: str  # '' in a humanoid


def build_scene(robot: str | RobotSpec, config: SceneConfig | None = None, *,
                root: Path | None = None) -> SimScene:
    """Build the simulation scene of a pair or humanoid folder.

    Args:
        robot: Folder name (``'allegro'``, ``'inspire'``, ``'g1_hands'``, ``'gr1'``) or its
            spec.
        config: Scene settings (default :class:`SceneConfig`).
        root: Folder of robot folders, when ``robot`` is a name (default: the installed one).

    Raises:
        RobotModelError: Unknown robot (the known ones listed) or an invalid folder.
        SimulationError: A single-hand folder, or a model MuJoCo cannot compile.
    """
    spec = robot if isinstance(robot, RobotSpec) else load_robot_spec(robot, root)
    config = config or SceneConfig()
    if not isinstance(config, SceneConfig):
        raise SimulationError(f'config must be a SceneConfig, got {type(config).__name__}')
    if spec.kind == RobotKind.PAIR:
        world, hands = _pair_world(spec, config)
    elif spec.kind == RobotKind.HUMANOID:
        world, hands = _humanoid_world(spec)
    else:
        raise SimulationError(f'robot {spec.name!r} is a single hand; simulate its pair (e.g. '
                              'allegro, inspire) or a humanoid (g1_hands, gr1)')
    world.modelname = spec.name
    world.option.timestep = config.timestep_s
    world.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    if config.gravity_off:
        world.option.gravity = [0.0, 0.0, 0.0]
    driven = _driven_joints(spec, hands)  # (controller, mjcf, kind)
    mimics = {eq.name1 for eq in world.equalities if eq.type == mujoco.mjtEq.mjEQ_JOINT}
    taken = {mjcf for _, mjcf, _ in driven} | mimics
    held = [(joint.name, float(spec.locked_joints.get(joint.name, 0.0)))
            for joint in world.joints
            if joint.type in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
            and joint.name not in taken]
    _tune_joints(world, driven, held, mimics, config)
    _contact_params(world, hands, config)
    model = _compile(world, spec)
    if config.self_collision_exclusions:
        pairs = _excluded_pairs(model, hands, dict(held))
        for body1, body2 in pairs:
            world.add_exclude(bodyname1=body1, bodyname2=body2)
        if pairs:
            model = _compile(world, spec)
    return _scene(spec, config, model, hands, driven, held)


def _pair_world(spec: RobotSpec, config: SceneConfig) -> tuple[mujoco.MjSpec, list[_Hand]]:
    world = mujoco.MjSpec()
    hands = []
    for side, (prefix, name) in enumerate(zip(HAND_PREFIXES, spec.members, strict=True)):
        member = load_robot_spec(name, spec.folder.parent)
        child = mujoco.MjSpec.from_file(str(generate_mjcf(member)))
        world.worldbody.add_body(name=f'{prefix}target', mocap=True)
        body = world.worldbody.add_frame().attach_body(child.worldbody.first_body(), prefix, '')
        body.add_freejoint(name=f'{prefix}floating_base')
        data = np.zeros(mujoco.mjNEQDATA)
        data[6] = 1.0  # relpose: the base link on the target (identity quaternion)
        data[10] = 1.0  # torquescale
        world.add_equality(name=f'{prefix}wrist', type=mujoco.mjtEq.mjEQ_WELD,
                           objtype=mujoco.mjtObj.mjOBJ_BODY, name1=f'{prefix}target',
                           name2=f'{prefix}{member.hands[0].base_link}', data=data,
                           solref=list(config.wrist_solref), solimp=list(config.wrist_solimp))
        hands.append(_Hand(HandSide(side), member, prefix))
    return world, hands


def _humanoid_world(spec: RobotSpec) -> tuple[mujoco.MjSpec, list[_Hand]]:
    # The generated MJCF keeps the URDF root (the pelvis) fixed to the world.
    world = mujoco.MjSpec.from_file(str(generate_mjcf(spec)))
    return world, [_Hand(HandSide.LEFT, spec, ''), _Hand(HandSide.RIGHT, spec, '')]


def _driven_joints(spec: RobotSpec, hands: list[_Hand]) -> list[tuple[str, str, JointKind]]:
    """(controller name, MJCF name, kind) of the driven joints, in the retargeter's order."""
    driven: list[tuple[str, str, JointKind]] = []
    if spec.kind == RobotKind.HUMANOID:
        for arm in spec.arm_joints:
            driven += [(spec.controller_names.get(j, j), j, JointKind.ARM) for j in arm]
    for hand in hands:
        joints = hand.folder.hand(hand.side).joints
        driven += [(hand.folder.controller_names.get(j, j), hand.prefix + j, JointKind.FINGER)
                   for j in joints]
    return driven


def _tune_joints(world: mujoco.MjSpec, driven: list[tuple[str, str, JointKind]],
                 held: list[tuple[str, float]], mimics: set[str], config: SceneConfig) -> None:
    """Replace the URDF dynamics and add a position servo per driven and held joint."""
    kinds = {mjcf: kind for _, mjcf, kind in driven}
    kinds.update({name: JointKind.HELD for name, _ in held})
    for joint in world.joints:
        if joint.type not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            continue
        kind = kinds.get(joint.name, JointKind.FINGER if joint.name in mimics else None)
        if kind is None:
            continue
        joint.damping = np.zeros_like(joint.damping)
        joint.frictionloss = 0.0
        joint.armature = config.servo(kind)[2]
    for name, kind in kinds.items():
        kp, dampratio, _, force_limit = config.servo(kind)
        joint = world.joint(name)
        actuator = world.add_actuator(name=name, target=name,
                                      trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.set_to_position(kp=kp, dampratio=dampratio)
        if joint.limited != mujoco.mjtLimited.mjLIMITED_FALSE and joint.range[1] > joint.range[0]:
            actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            actuator.ctrlrange = joint.range.copy()
        if force_limit is not None:
            actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            actuator.forcerange = [-force_limit, force_limit]


def _contact_params(world: mujoco.MjSpec, hands: list[_Hand], config: SceneConfig) -> None:
    """Contact parameters on every colliding geom; visual meshes collide for a hand that has
    no collision geometry (a pair's member folder, or a humanoid's base link subtree)."""
    geoms = list(world.geoms)
    if config.mesh_collision_fallback:
        for hand in hands:
            if hand.prefix:
                own = [g for g in geoms if _body_name(g).startswith(hand.prefix)]
            else:
                base = world.body(hand.folder.hand(hand.side).base_link)
                own = list(base.find_all(mujoco.mjtObj.mjOBJ_GEOM))
            if not any(g.contype or g.conaffinity for g in own):
                for geom in own:
                    geom.contype, geom.conaffinity = 1, 1
    for geom in geoms:
        if geom.contype or geom.conaffinity:
            geom.solref = list(config.contact_solref)
            geom.solimp = list(config.contact_solimp)
            geom.friction = list(config.friction)
            geom.margin = config.contact_margin_m
            geom.condim = 3


def _body_name(geom: Any) -> str:
    parent = geom.parent
    return parent.name if parent is not None else ''


def _compile(world: mujoco.MjSpec, spec: RobotSpec) -> mujoco.MjModel:
    try:
        return world.compile()
    except ValueError as exc:
        raise SimulationError(f'MuJoCo cannot compile the scene of robot {spec.name!r}: '
                              f'{exc}') from exc


def _hand_bodies(model: mujoco.MjModel, hands: list[_Hand]) -> list[tuple[int, np.ndarray]]:
    """(base link body, body ids) of each hand: the subtree of its floating root (a pair) or
    of its base link (a humanoid)."""
    result = []
    for hand in hands:
        base = model.body(hand.prefix + hand.folder.hand(hand.side).base_link).id
        top = base
        if hand.prefix:
            top = int(model.jnt_bodyid[model.joint(f'{hand.prefix}floating_base').id])
        ids = [b for b in range(model.nbody) if _descends(model, b, top)]
        result.append((base, np.array(ids, dtype=int)))
    return result


def _descends(model: mujoco.MjModel, body: int, ancestor: int) -> bool:
    while body > 0:
        if body == ancestor:
            return True
        body = int(model.body_parentid[body])
    return ancestor == 0


def _rest_qpos(model: mujoco.MjModel, held: Mapping[str, float]) -> np.ndarray:
    """Every joint at 0 (or its held value) clipped to its range; floating hands apart."""
    qpos = model.qpos0.copy()
    offset = -_APART_M
    for j in range(model.njnt):
        adr = model.jnt_qposadr[j]
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            qpos[adr:adr + 7] = [offset, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
            offset = -offset
            continue
        value = held.get(model.joint(j).name, 0.0)
        if model.jnt_limited[j]:
            value = float(np.clip(value, *model.jnt_range[j]))
        qpos[adr] = value
    return qpos


def _excluded_pairs(model: mujoco.MjModel, hands: list[_Hand], held: Mapping[str, float]
                   ) -> list[tuple[str, str]]:
    """Body pairs that never collide, sorted: a link and the rigid body two joints above it
    (MuJoCo already filters the one joint above; links two joints apart meet only around the
    short link between them), within a hand those the retargeter's collision model leaves out
    (:mod:`handx_ros.retarget.collision`: links of one finger, which meet only at their joints,
    and the palm with a finger's first two links, which sit on it), and any pair touching in
    the rest pose (built-in overlaps)."""
    pairs = set()
    weld, parent = model.body_weldid, model.body_parentid
    for body in range(1, model.nbody):
        above = int(weld[parent[weld[body]]])
        second = int(weld[parent[above]]) if above > 0 else 0
        if second > 0:
            for other in np.flatnonzero(weld == second):
                pairs.add(tuple(sorted((model.body(body).name, model.body(int(other)).name))))
    for base, bodies in _hand_bodies(model, hands):
        finger, depth = {}, {}
        for body in bodies:
            chain = []  # jointed bodies from the base down to this one
            walk = int(body)
            while walk not in (base, 0):
                if model.body_jntnum[walk] > 0 and \
                        model.jnt_type[model.body_jntadr[walk]] != mujoco.mjtJoint.mjJNT_FREE:
                    chain.append(walk)
                walk = int(model.body_parentid[walk])
            finger[int(body)] = chain[-1] if chain else 0
            depth[int(body)] = len(chain)
        for i, a in enumerate(bodies):
            for b in bodies[i + 1:]:
                a, b = int(a), int(b)
                same_finger = finger[a] == finger[b] != 0
                palm_proximal = min(depth[a], depth[b]) == 0 and max(depth[a], depth[b]) <= 2
                if same_finger or palm_proximal:
                    pairs.add(tuple(sorted((model.body(a).name, model.body(b).name))))
    data = mujoco.MjData(model)
    data.qpos[:] = _rest_qpos(model, held)
    mujoco.mj_forward(model, data)
    for contact in data.contact[:data.ncon]:
        b1, b2 = (model.body(int(model.geom_bodyid[g])).name for g in contact.geom)
        pairs.add(tuple(sorted((b1, b2))))
    return sorted(pairs)


def _scene(spec: RobotSpec, config: SceneConfig, model: mujoco.MjModel, hands: list[_Hand],
           driven: list[tuple[str, str, JointKind]], held: list[tuple[str, float]]
           ) -> SimScene:
    names = [controller for controller, _, _ in driven]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SimulationError(f'robot {spec.name!r}: controller names repeat: {repeated}')
    qpos_adr = np.array([model.jnt_qposadr[model.joint(m).id] for _, m, _ in driven])
    actuators = np.array([model.actuator(m).id for _, m, _ in driven])
    kp = model.actuator_gainprm[actuators, 0]
    lead = -model.actuator_biasprm[actuators, 2] / kp  # kv / kp
    held_act = np.array([model.actuator(n).id for n, _ in held], dtype=int)
    held_adr = np.array([model.jnt_qposadr[model.joint(n).id] for n, _ in held], dtype=int)
    held_val = np.array([v for _, v in held], dtype=np.float64)
    mimics = []
    for e in range(model.neq):
        if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and model.eq_obj2id[e] >= 0:
            mimics.append((int(model.jnt_qposadr[model.eq_obj1id[e]]),
                           int(model.jnt_qposadr[model.eq_obj2id[e]]),
                           model.eq_data[e, :5].copy()))
    bodies = [ids for _, ids in _hand_bodies(model, hands)]
    colliding = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    hand_geoms = tuple(np.flatnonzero(colliding & np.isin(model.geom_bodyid, b))
                       for b in bodies)
    geom_link = [model.body(int(b)).name for b in model.geom_bodyid]
    body_part = _body_parts(model, hands, bodies)
    geom_part = tuple(body_part.get(int(b)) for b in model.geom_bodyid)
    tips, tip_names = [], []
    for hand in hands:
        site_names = tuple(hand.prefix + f for f in hand.folder.hand(hand.side).fingertips
                           .values())
        tips.append(np.array([model.site(n).id for n in site_names], dtype=int))
        tip_names.append(site_names)
    base_bodies = tuple(model.body(h.prefix + h.folder.hand(h.side).base_link).id
                        for h in hands)
    floating = spec.kind == RobotKind.PAIR
    free_adr, mocap, T_base_root = (), np.zeros(0, dtype=int), np.zeros((2, 7))
    if floating:
        free_adr = tuple(int(model.jnt_qposadr[model.joint(f'{h.prefix}floating_base').id])
                         for h in hands)
        mocap = np.array([model.body_mocapid[model.body(f'{h.prefix}target').id]
                          for h in hands], dtype=int)
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        for side, hand in enumerate(hands):
            root = int(model.jnt_bodyid[model.joint(f'{hand.prefix}floating_base').id])
            base = base_bodies[side]
            inv_pos, inv_quat = np.zeros(3), np.zeros(4)
            mujoco.mju_negPose(inv_pos, inv_quat, data.xpos[base], data.xquat[base])
            pos, quat = np.zeros(3), np.zeros(4)
            mujoco.mju_mulPose(pos, quat, inv_pos, inv_quat, data.xpos[root], data.xquat[root])
            T_base_root[side] = np.concatenate([pos, quat])
    from handx_ros.retarget.retime import robot_motion_limits

    max_velocity, max_acceleration = robot_motion_limits(spec).columns(tuple(names))
    tc, dampratio = config.wrist_solref
    return SimScene(
        robot=spec.name, spec=spec, model=model, config=config,
        joint_names=tuple(names), mjcf_joint_names=tuple(m for _, m, _ in driven),
        joint_kinds=tuple(k for _, _, k in driven), hand_geoms=hand_geoms,  # type: ignore
        geom_link=geom_link, geom_part=geom_part,
        fingertip_sites=(tips[0], tips[1]), fingertip_names=(tip_names[0], tip_names[1]),
        base_bodies=(base_bodies[0], base_bodies[1]), floating=floating,
        max_velocity=max_velocity, max_acceleration=max_acceleration,
        _qpos_adr=qpos_adr, _actuators=actuators, _lead_s=lead,
        _held=(held_act, held_adr, held_val), _mimics=tuple(mimics), _free_adr=free_adr,
        _mocap=mocap, _T_base_root=T_base_root, _wrist_lead_s=2.0 * tc * dampratio**2)


def _body_parts(model: mujoco.MjModel, hands: list[_Hand], bodies: list[np.ndarray]
                ) -> dict[int, PartRef]:
    """The hand part of each hand body: the links of the mapped keypoints give the fingers
    (a link holding a fingertip frame is that fingertip), other links take their nearest
    mapped ancestor's part, and the base link's the palm."""
    result: dict[int, PartRef] = {}
    for hand, ids in zip(hands, bodies, strict=True):
        hand_spec = hand.folder.hand(hand.side)
        extra = {f.name: f.parent for f in hand.folder.frames}
        assigned: dict[int, HandPart] = {model.body(hand.prefix + hand_spec.base_link).id:
                                         HandPart.PALM}
        for keypoint, frame in sorted(hand_spec.keypoints.items(),
                                      key=lambda item: item[0].endswith('_tip')):
            finger_name = keypoint.split('_')[0].upper()
            if finger_name not in Finger.__members__:
                continue
            finger = Finger[finger_name]
            link = extra.get(frame, frame)
            part = FINGERTIP_PARTS[finger] if keypoint.endswith('_tip') else \
                FINGER_PARTS[finger]
            assigned[model.body(hand.prefix + link).id] = part
        for body in ids:
            walk = int(body)
            while walk > 0 and walk not in assigned:
                walk = int(model.body_parentid[walk])
            result[int(body)] = PartRef(hand.side, assigned.get(walk, HandPart.PALM))
    return result
