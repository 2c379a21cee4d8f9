"""Pinocchio models of robot folders: the thin kinematic layer under the retargeter.

:func:`load_urdf_model` reads a folder's URDF into Pinocchio, adds the folder's extra frames
and reads the URDF's ``<mimic>`` tags. On top of it:

* :class:`ChainKinematics` -- a sub-problem of the model: a set of driven joints is free, every
  other joint is locked (mimic joints follow their leader). It maps the driven coordinates
  ``u`` (n,) to the full configuration and gives frame positions, rotations and analytic
  Jacobians (``pin.computeJointJacobians``) with respect to ``u``.
* :func:`hand_kinematics` -- the chain of one hand (its driven joints), positions expressed in
  the hand's base link frame, which makes hand retargeting independent of whatever carries the
  hand (a floating wrist or a humanoid arm).

Mimic joints are kept as ordinary joints in the Pinocchio model and expressed through the
linear map ``q = q0 + M u`` (``q_mimic = offset + multiplier * q_leader``), so Jacobians with
respect to the driven joints are ``J_q M``.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pinocchio as pin

from handx_gen.errors import RetargetError, RobotModelError, unknown_choice
from handx_gen.hand.topology import HandSide
from handx_ros.retarget.spec import HandSpec, RobotSpec

__all__ = [
    'ChainKinematics',
    'Mimic',
    'UrdfModel',
    'hand_kinematics',
    'load_urdf_model',
]


@dataclasses.dataclass(frozen=True)
class Mimic:
    """``q[joint] = offset + multiplier * q[leader]`` (URDF ``<mimic>``)."""

    joint: str
    leader: str
    multiplier: float
    offset: float


@dataclasses.dataclass(frozen=True)
class UrdfModel:
    """A robot folder's URDF in Pinocchio, with its extra frames and mimic joints."""

    spec: RobotSpec
    path: Path
    model: pin.Model
    mimics: Mapping[str, Mimic]

    def joint_names(self) -> list[str]:
        """Names of the model's joints (without the universe)."""
        return list(self.model.names)[1:]

    def frame_names(self) -> list[str]:
        return [frame.name for frame in self.model.frames]

    def check_frames(self, names: Sequence[str], what: str) -> None:
        """Raise a :class:`RobotModelError` naming any frame of ``names`` the model lacks."""
        known = set(self.frame_names())
        missing = [n for n in names if n not in known]
        if missing:
            raise RobotModelError(
                f'robot {self.spec.name!r}: {what} names {", ".join(map(repr, missing))}, '
                f'not a link or frame of {self.path.name}; links: '
                f'{", ".join(sorted(n for n in known if n != "universe"))}')

    def check_joints(self, names: Sequence[str], what: str) -> None:
        """Raise a :class:`RobotModelError` naming any joint of ``names`` the model lacks."""
        known = self.joint_names()
        for name in names:
            if name not in known:
                raise RobotModelError(f'robot {self.spec.name!r}: {what}: '
                                      + unknown_choice('joint', name, known))


def load_urdf_model(spec: RobotSpec) -> UrdfModel:
    """Read ``spec``'s URDF into Pinocchio and add its extra frames (cached per spec file).

    Raises:
        RobotModelError: The spec has no URDF (a pair), the URDF is missing or unreadable, or
            an extra frame's parent is not a link.
    """
    if spec.urdf is None:
        raise RobotModelError(f'robot {spec.name!r} is a {spec.kind.value}; load its members '
                              f'{", ".join(spec.members)} instead')
    path = spec.urdf.resolve()
    spec_file = spec.folder / 'robot.yaml'
    key = (str(spec_file), _mtime(spec_file), str(path), _mtime(path))
    cached = _CACHE.get(key)
    if cached is None:
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        cached = _CACHE[key] = _load(spec, path)
    return cached


_CACHE: dict[tuple[str, int, str, int], UrdfModel] = {}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


def _load(spec: RobotSpec, path: Path) -> UrdfModel:
    try:
        model = pin.buildModelFromUrdf(str(path))
    except (RuntimeError, ValueError) as exc:
        raise RobotModelError(f'robot {spec.name!r}: Pinocchio cannot read {path}: {exc}'
                              ) from exc
    for frame in spec.frames:
        parent_name = frame.parent
        if not model.existFrame(parent_name):
            raise RobotModelError(f'robot {spec.name!r}: frame {frame.name!r} has parent '
                                  f'{parent_name!r}, not a link of {path.name}')
        if model.existFrame(frame.name):
            raise RobotModelError(f'robot {spec.name!r}: extra frame {frame.name!r} already '
                                  f'exists in {path.name}')
        parent = model.frames[model.getFrameId(parent_name)]
        placement = parent.placement * pin.SE3(np.eye(3), np.asarray(frame.xyz))
        model.addFrame(pin.Frame(frame.name, parent.parentJoint, model.getFrameId(parent_name),
                                 placement, pin.FrameType.OP_FRAME))
    mimics = _read_mimics(path)
    for mimic in mimics.values():
        for name in (mimic.joint, mimic.leader):
            if not model.existJointName(name):
                raise RobotModelError(f'robot {spec.name!r}: mimic joint {name!r} is not a '
                                      f'joint Pinocchio built from {path.name}')
    return UrdfModel(spec=spec, path=path, model=model, mimics=mimics)


def _read_mimics(path: Path) -> dict[str, Mimic]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise RobotModelError(f'cannot parse {path}: {exc}') from exc
    mimics = {}
    for joint in root.iter('joint'):
        tag = joint.find('mimic')
        if tag is None:
            continue
        name = joint.get('name', '')
        mimics[name] = Mimic(joint=name, leader=tag.get('joint', ''),
                             multiplier=float(tag.get('multiplier', 1.0)),
                             offset=float(tag.get('offset', 0.0)))
    return mimics


class ChainKinematics:
    """Some joints of a model free, the rest locked; kinematics in terms of the free ones.

    Args:
        urdf: The loaded model.
        driven: Names of the free joints (1-DoF revolute or prismatic), in the order of ``u``.
            Mimic joints whose leader is driven follow it.
        q_locked: Full configuration the other joints keep (default: Pinocchio's neutral,
            with mimic joints and ``spec.locked_joints`` applied).
        frame: Frame whose coordinates positions and Jacobians are expressed in (default the
            model's world); it must not move with the driven joints.

    Attributes:
        joint_names: ``driven``.
        lower, upper: (n,) joint limits of the driven joints, from the URDF.
        max_velocity: (n,) velocity limits (rad/s, m/s): the URDF's ``velocity``, replaced
            where the robot folder's ``limits`` says (:class:`~handx_ros.retarget.spec.
            MotionLimits`).
        max_acceleration: (n,) acceleration limits from the robot folder's ``limits``.
        reference_frame: ``frame`` (``None``: the model's world).
        M_v_u: (nv, n) model velocities per driven-joint velocity (mimic followers included);
            Jacobians with respect to ``u`` are ``J_v @ M_v_u``.
        u_is_v: ``M_v_u`` is the identity (the driven joints are the model's velocity
            coordinates, in order): Jacobians with respect to ``u`` are ``J_v``.
    """

    def __init__(self, urdf: UrdfModel, driven: Sequence[str], *,
                 q_locked: np.ndarray | None = None, frame: str | None = None) -> None:
        model = urdf.model
        self.urdf = urdf
        self.model = model
        self.data = model.createData()
        urdf.check_joints(driven, 'driven joints')
        self.joint_names = tuple(driven)
        n = len(driven)
        self._idx_q = np.zeros(n, dtype=int)
        self._idx_v = np.zeros(n, dtype=int)
        for i, name in enumerate(driven):
            joint = model.joints[model.getJointId(name)]
            if joint.nq != 1 or joint.nv != 1:
                raise RobotModelError(f'robot {urdf.spec.name!r}: driven joint {name!r} has '
                                      f'{joint.nq} coordinates; only 1-DoF joints can be driven')
            if name in urdf.mimics:
                raise RobotModelError(f'robot {urdf.spec.name!r}: joint {name!r} mimics '
                                      f'{urdf.mimics[name].leader!r}; drive the leader instead')
            self._idx_q[i] = joint.idx_q
            self._idx_v[i] = joint.idx_v
        self.lower = model.lowerPositionLimit[self._idx_q].copy()
        self.upper = model.upperPositionLimit[self._idx_q].copy()
        if np.any(~np.isfinite(self.lower) | ~np.isfinite(self.upper) | (self.lower > self.upper)):
            raise RobotModelError(f'robot {urdf.spec.name!r}: driven joints need finite limits')
        limits = urdf.spec.limits
        urdf.check_joints(list(limits.joint_velocity_rad_s), 'limits joint_velocity_rad_s')
        urdf.check_joints(list(limits.joint_acceleration_rad_s2),
                          'limits joint_acceleration_rad_s2')
        self.max_velocity = np.array([
            limits.velocity(name, model.velocityLimit[i])
            for name, i in zip(driven, self._idx_v, strict=True)])  # (n,)
        if np.any(~np.isfinite(self.max_velocity) | (self.max_velocity <= 0.0)):
            j = int(np.argmax(~np.isfinite(self.max_velocity) | (self.max_velocity <= 0.0)))
            raise RobotModelError(
                f'robot {urdf.spec.name!r}: joint {driven[j]!r} has no usable velocity limit '
                f'({self.max_velocity[j]!r}); give one in robot.yaml limits: '
                f'joint_velocity_rad_s')
        self.max_acceleration = np.array([limits.acceleration(name) for name in driven])
        self.max_velocity.setflags(write=False)
        self.max_acceleration.setflags(write=False)
        # q = q0 + M u over the full configuration; velocities alike (1-DoF joints).
        self._followers: list[tuple[int, int, int, float, float]] = []  # (idx_q, idx_v, u, k, b)
        position = {name: i for i, name in enumerate(driven)}
        for mimic in urdf.mimics.values():
            if mimic.leader in position:
                joint = model.joints[model.getJointId(mimic.joint)]
                self._followers.append((joint.idx_q, joint.idx_v, position[mimic.leader],
                                        mimic.multiplier, mimic.offset))
        self._follower_ranges(model, driven)
        self.lower.setflags(write=False)
        self.upper.setflags(write=False)
        if q_locked is None:
            q_locked = pin.neutral(model)
            for name, value in urdf.spec.locked_joints.items():
                urdf.check_joints([name], 'locked_joints')
                q_locked[model.joints[model.getJointId(name)].idx_q] = value
        self._q0 = np.array(q_locked, dtype=np.float64)
        # Velocities from driven velocities: v = M u_dot (mimic followers scaled), so J_u = J_v M.
        self.M_v_u = np.zeros((model.nv, n))  # (nv, n), read-only once built
        self.M_v_u[self._idx_v, np.arange(n)] = 1.0
        for _, idx_v, i, gain, _ in self._followers:
            self.M_v_u[idx_v, i] += gain
        self.M_v_u.setflags(write=False)
        # Driven joints that are the model's velocity coordinates in order: J_u = J_v.
        self.u_is_v = bool(np.array_equal(self.M_v_u, np.eye(*self.M_v_u.shape)))
        self.reference_frame = frame
        self._frame_id: int | None = None
        self._R_world_frame = np.eye(3)
        self._p_world_frame = np.zeros(3)
        if frame is not None:
            urdf.check_frames([frame], 'reference frame')
            self._frame_id = model.getFrameId(frame)
            pin.framesForwardKinematics(model, self.data, self._q0)
            placement = self.data.oMf[self._frame_id]
            self._R_world_frame = placement.rotation.copy()
            self._p_world_frame = placement.translation.copy()
        self._frame_is_world = bool(np.allclose(self._R_world_frame, np.eye(3), atol=0.0)
                                    and not np.any(self._p_world_frame))

    @property
    def nu(self) -> int:
        return len(self.joint_names)

    def T_world_reference(self) -> pin.SE3:
        """Pose of the reference frame in the model's world (fixed: ``u`` does not move it)."""
        return pin.SE3(self._R_world_frame.copy(), self._p_world_frame.copy())

    def frame_ids(self, names: Sequence[str], what: str = 'frames') -> list[int]:
        """Pinocchio frame ids of ``names``; a missing name raises a :class:`RobotModelError`."""
        self.urdf.check_frames(names, what)
        return [self.model.getFrameId(name) for name in names]

    def _follower_ranges(self, model: pin.Model, driven: Sequence[str]) -> None:
        """Narrow each driven joint's limits to where its mimic followers stay inside theirs.

        A URDF may give a leader a wider range than its followers allow (the GR1's Inspire
        thumb: pitch from -0.1 rad, its followers ``1.6 x`` and ``2.4 x`` pitch from 0), and a
        simulator enforces the followers' limits: a command below 0 would be held at 0, a
        tracking error the retargeter caused. Velocity limits are left to the leader's own
        (a follower's is the linkage's, not a motor's)."""
        lower, upper = self.lower.copy(), self.upper.copy()
        for idx_q, _, i, gain, offset in self._followers:
            if gain == 0.0:
                continue
            ends = sorted(((model.lowerPositionLimit[idx_q] - offset) / gain,
                           (model.upperPositionLimit[idx_q] - offset) / gain))
            if np.all(np.isfinite(ends)):
                lower[i], upper[i] = max(lower[i], ends[0]), min(upper[i], ends[1])
        if np.any(lower > upper):
            j = int(np.argmax(lower > upper))
            raise RobotModelError(f'robot {self.urdf.spec.name!r}: no position of joint '
                                  f'{driven[j]!r} keeps its mimic joints inside their limits')
        self.lower, self.upper = lower, upper

    def checked(self, u: Any, what: str) -> np.ndarray:
        """``u`` as (n,) finite float64 driven joint angles.

        Raises:
            RetargetError: Not numeric, another shape or non-finite (``what`` says whose).
        """
        try:
            u = np.asarray(u, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise RetargetError(f'{what}: joint angles are not numeric ({exc})') from None
        if u.shape != (self.nu,) or not np.all(np.isfinite(u)):
            raise RetargetError(f'{what}: expected {self.nu} finite joint angles, got shape '
                                f'{u.shape}')
        return u

    def clip(self, u: np.ndarray) -> np.ndarray:
        """``u`` clipped to the joint limits."""
        return np.minimum(np.maximum(u, self.lower), self.upper)  # np.clip, at less cost

    def full_q(self, u: np.ndarray) -> np.ndarray:
        """The model configuration for driven coordinates ``u`` (mimic joints expanded)."""
        q = self._q0.copy()
        q[self._idx_q] = u
        for idx_q, _, i, k, b in self._followers:
            q[idx_q] = b + k * u[i]
        return q

    def set_locked(self, values: Mapping[str, float]) -> None:
        """Move locked joints (mimic joints following them): what carries on the chain's
        links, such as a humanoid's fingers below its arm, where they are now. The reference
        frame must not move with them.

        Raises:
            RobotModelError: A joint the model lacks, a driven joint, or a non-finite value.
        """
        model = self.model
        for name, value in values.items():
            if not model.existJointName(name):
                self.urdf.check_joints([name], 'locked joints to set')
            if name in self.joint_names or not np.isfinite(value):
                raise RobotModelError(f'robot {self.urdf.spec.name!r}: cannot lock joint '
                                      f'{name!r} at {value!r}: a driven joint or not finite')
            self._q0[model.joints[model.getJointId(name)].idx_q] = value
        for mimic in self.urdf.mimics.values():
            if mimic.leader in values and mimic.joint not in self.joint_names:
                self._q0[model.joints[model.getJointId(mimic.joint)].idx_q] = (
                    mimic.offset + mimic.multiplier * values[mimic.leader])

    def neutral(self) -> np.ndarray:
        """A default ``u``: zero clipped to the limits."""
        return self.clip(np.zeros(self.nu))

    def positions(self, u: np.ndarray, frame_ids: Sequence[int]) -> np.ndarray:
        """(k, 3) positions of frames in the reference frame."""
        pin.framesForwardKinematics(self.model, self.data, self.full_q(u))
        p_world = np.array([self.data.oMf[f].translation for f in frame_ids])  # (k, 3)
        return (p_world - self._p_world_frame) @ self._R_world_frame

    def positions_and_jacobians(self, u: np.ndarray, frame_ids: Sequence[int]
                                ) -> tuple[np.ndarray, np.ndarray]:
        """Positions (k, 3) and their Jacobians (k, 3, n) with respect to ``u``, both in the
        reference frame."""
        model, data = self.model, self.data
        q = self.full_q(u)
        pin.computeJointJacobians(model, data, q)
        k = len(frame_ids)
        p = np.empty((k, 3))
        J_v = np.empty((k, 3, model.nv))
        frame = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED
        for row, fid in enumerate(frame_ids):  # only the frames asked for
            p[row] = pin.updateFramePlacement(model, data, fid).translation
            J_v[row] = pin.getFrameJacobian(model, data, fid, frame)[:3]  # (3, nv)
        J = J_v if self.u_is_v else J_v @ self.M_v_u  # (k, 3, n)
        if self._frame_is_world:
            return p, J
        R = self._R_world_frame
        return (p - self._p_world_frame) @ R, np.einsum('ji,kjn->kin', R, J)

    def pose_and_jacobian(self, u: np.ndarray, frame_id: int) -> tuple[pin.SE3, np.ndarray]:
        """Pose of a frame in the model's world and its (6, n) Jacobian with respect to ``u``
        (``LOCAL`` frame: linear then angular velocity in the frame's own axes)."""
        model, data = self.model, self.data
        pin.computeJointJacobians(model, data, self.full_q(u))
        pin.updateFramePlacements(model, data)
        J_v = pin.getFrameJacobian(model, data, frame_id, pin.ReferenceFrame.LOCAL)  # (6, nv)
        return data.oMf[frame_id].copy(), J_v @ self.M_v_u


def hand_kinematics(spec: RobotSpec, side: HandSide | str | int) -> tuple[ChainKinematics,
                                                                             HandSpec]:
    """The kinematic chain of one hand of a hand or humanoid folder, in its base-link frame.

    Raises:
        RobotModelError: A pair folder (use its members), or the spec names a link, frame or
            joint the URDF lacks.
    """
    hand = spec.hand(side)
    urdf = load_urdf_model(spec)
    urdf.check_frames([hand.base_link, hand.wrist, *hand.keypoints.values()],
                      f'the {hand.side.name.lower()} hand')
    chain = ChainKinematics(urdf, hand.joints, frame=hand.base_link)
    return chain, hand
