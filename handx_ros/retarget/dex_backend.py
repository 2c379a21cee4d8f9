"""dex-retargeting as a second backend, configured from our robot folders.

dex-retargeting (AnyTeleop) is the retargeter most people use; here it is the baseline the
benchmark compares against, and an alternative backend. Its retargeters are built
programmatically from a :class:`~handx_ros.retarget.spec.RobotSpec` (never from dex's own
YAML files), so both backends see the same URDF, links, scale and wrist frame:

* **vector**: one vector per mapped fingertip, from the wrist frame to the tip, scaled by
  ``hand.scale`` inside dex (its ``scaling_factor``);
* **DexPilot**: the wrist frame and the fingertips; dex builds the pairwise fingertip vectors
  and its pinch projection itself;
* **position**: fingertip positions in the root link frame (scaled and placed here, since dex
  does not scale positions).

Inputs are human keypoints in the canonical human hand frame of the driving side (wrist at
the origin, see ``handx_gen.hand.skeleton``). They are rotated into the robot's base link with
``hand.R_base_hand`` and, where the base link is not the URDF root (a humanoid's palm), into
the root frame at the fixed joint values, because dex measures every link in the root frame.

The URDF handed to dex is a copy with our extra frames (``spec.frames``, e.g. ``handx_wrist``)
added as fixed joints to empty links and every mesh path made absolute. The copy lives in a
private temporary folder, and so does the copy dex's ``RetargetingConfig.build()`` writes
itself (0.5.0 calls ``tempfile.mkdtemp`` on every build and never removes the folder): the
build runs with :data:`tempfile.tempdir` pointed at the private folder, which is removed as
soon as the model is loaded. Nothing is left in the system temporary folder.

What dex does not tell, this backend does not invent: dex has no notion of convergence or
residual (``converged``, ``residual_m`` and ``iterations`` are ``None``). It does leave the
NLopt optimiser's result code on its public ``opt`` object; that code is reported per frame
(``solver_status``), and a negative code (NLopt failed; dex then prints the error and returns
the previous pose) sets ``solver_failed``. Joint limits are dex's: NLopt bounds widened by
1e-3 rad, so outputs may exceed the URDF limits by up to that much; nothing is clipped here.

``dex_retargeting`` imports torch, so it is imported only when a retargeter is built;
importing this module loads neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib.util
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.errors import ConfigError, RetargetError, RobotModelError, unknown_choice
from handx_gen.hand.topology import KEYPOINT_NAMES, NUM_KEYPOINTS, HandSide
from handx_ros.retarget.spec import (
    HandSpec,
    RobotKind,
    RobotSpec,
    load_robot_spec,
    resolve_mesh_path,
)

__all__ = [
    'DEFAULT_LOW_PASS_ALPHA',
    'DexBackendKind',
    'DexFrameResult',
    'DexHandRetargeter',
    'DexRetargetResult',
    'dex_available',
    'write_urdf_with_frames',
]

# dex-retargeting's shipped teleoperation configs all use 0.2 (its dataclass default is 0.1).
# The benchmark passes ``None`` (no filter) so that every backend sees the same unfiltered
# output; a filter of this strength lags by several frames.
DEFAULT_LOW_PASS_ALPHA = 0.2

# Guards the process-wide ``tempfile.tempdir`` while a dex build redirects it.
_TEMPDIR_LOCK = threading.Lock()


class DexBackendKind(enum.Enum):
    """Which dex-retargeting optimiser to build."""

    VECTOR = 'vector'
    DEXPILOT = 'dexpilot'
    POSITION = 'position'


@dataclasses.dataclass(frozen=True)
class DexFrameResult:
    """One retargeted frame.

    Attributes:
        qpos: (n,) joint values in :attr:`DexHandRetargeter.joint_names` order (radians).
        converged: Always ``None``: dex reports no convergence.
        residual_m: Always ``None``: dex reports no residual in metres.
        iterations: Always ``None``: NLopt does not report SLSQP iterations.
        evaluations: Objective evaluations NLopt spent on the frame.
        solver_status: NLopt's result code (positive: stopped normally, e.g. 3 = ftol
            reached; negative: failed).
        solver_failed: NLopt failed and dex returned the previous pose instead of a solution.
    """

    qpos: np.ndarray
    evaluations: int
    solver_status: int
    solver_failed: bool
    converged: None = None
    residual_m: None = None
    iterations: None = None


@dataclasses.dataclass(frozen=True)
class DexRetargetResult:
    """A retargeted clip; fields as in :class:`DexFrameResult`, one row per frame.

    Attributes:
        qpos: (T, n) joint values.
        evaluations: (T,) objective evaluations.
        solver_status: (T,) NLopt result codes.
        solver_failed: (T,) frames where NLopt failed and dex kept the previous pose.
        time_s: (T,) wall time of each frame's solve, seconds.
        converged: Always ``None``.
        residual_m: Always ``None``.
        iterations: Always ``None``.
    """

    qpos: np.ndarray
    evaluations: np.ndarray
    solver_status: np.ndarray
    solver_failed: np.ndarray
    time_s: np.ndarray
    converged: None = None
    residual_m: None = None
    iterations: None = None


def dex_available() -> bool:
    """Whether dex-retargeting and what it needs (nlopt, torch) are installed.

    Looks the packages up without importing them.
    """
    return all(importlib.util.find_spec(name) is not None
               for name in ('dex_retargeting', 'nlopt', 'torch'))


class DexHandRetargeter:
    """One hand retargeted by dex-retargeting, configured from our robot spec.

    Args:
        spec: A hand, pair or humanoid robot spec (for a pair, the ``side`` member's folder is
            loaded from beside the pair's folder).
        side: The human hand that drives this robot hand.
        kind: Which dex optimiser: vector, DexPilot or position.
        low_pass_alpha: dex's exponential filter on the output, in [0, 1] (1 passes the
            solution through, smaller lags more); ``None`` disables it. Defaults to 0.2, the
            value of dex's shipped configs.
        scale: Robot size over human size; defaults to ``hand.scale`` of the spec.

    Raises:
        RetargetError: dex-retargeting is not installed.
        ConfigError: A bad ``kind``, ``low_pass_alpha`` or ``scale``.
        RobotModelError: The URDF lacks a mapped link, an extra frame's parent or a mesh, or
            dex rejects the model (message says which).
    """

    def __init__(self, spec: RobotSpec, side: HandSide | str | int,
                 kind: DexBackendKind | str = DexBackendKind.VECTOR, *,
                 low_pass_alpha: float | None = DEFAULT_LOW_PASS_ALPHA,
                 scale: float | None = None) -> None:
        if not dex_available():
            raise RetargetError('the dex-retargeting backend needs dex-retargeting, nlopt and '
                                'torch; install them with `pip install dex-retargeting`')
        self._kind = _kind(kind)
        self._alpha = _alpha(low_pass_alpha)
        spec = _hand_spec_owner(spec, side)
        hand = spec.hand(side)
        self._scale = hand.scale if scale is None else _scale(scale)
        self._spec = spec
        self._hand = hand
        self._tips = tuple(hand.fingertips.values())  # robot frames, thumb first
        tip_human = [KEYPOINT_NAMES.index(k) for k in hand.fingertips]
        wrist_human = KEYPOINT_NAMES.index('wrist')

        self._retargeting = _build(spec, hand, self._kind, self._alpha, self._scale)
        optimizer = self._retargeting.optimizer
        robot = optimizer.robot

        # Joint order: dex works in the Pinocchio order of its own model (mimic joints
        # included); ours is ``hand.joints``. Matched by name.
        dex_names = list(self._retargeting.joint_names)
        self._dex_joint_names = tuple(dex_names)
        self._index_ours = np.array([dex_names.index(j) for j in hand.joints])  # (n,)
        limits = np.asarray(robot.joint_limits, dtype=np.float64)[self._index_ours]  # (n, 2)
        self._lower = limits[:, 0].copy()
        self._upper = limits[:, 1].copy()

        # Joints dex does not optimise (a humanoid's arms and body) stay at their locked value.
        fixed_names = optimizer.fixed_joint_names
        self._fixed_qpos = np.array([float(spec.locked_joints.get(n, 0.0))
                                     for n in fixed_names], dtype=np.float64)  # (f,)

        # dex measures links in the URDF root frame; ours are in the hand's base link.
        q = np.zeros(robot.dof)
        q[optimizer.idx_pin2fixed] = self._fixed_qpos
        q[optimizer.idx_pin2target] = np.asarray(robot.joint_limits).mean(1)[
            optimizer.idx_pin2target]
        if optimizer.adaptor is not None:
            q = optimizer.adaptor.forward_qpos(q)
        robot.compute_forward_kinematics(q)
        T_root_base = robot.get_link_pose(robot.get_link_index(hand.base_link))  # (4, 4)
        T_root_wrist = robot.get_link_pose(robot.get_link_index(hand.wrist))  # (4, 4)
        self._R_root_hand = T_root_base[:3, :3] @ hand.R_base_hand  # (3, 3)
        self._p_root_wrist = T_root_wrist[:3, 3].copy()  # (3,)

        # Which human keypoints make dex's reference value.
        if self._kind == DexBackendKind.VECTOR:
            self._origin = np.full(len(tip_human), wrist_human)
            self._task = np.array(tip_human)
        elif self._kind == DexBackendKind.DEXPILOT:
            human = np.array([wrist_human, *tip_human])
            origin, task = optimizer.generate_link_indices(len(tip_human))
            self._origin = human[np.array(origin)]
            self._task = human[np.array(task)]
        else:
            self._origin = np.zeros(0, dtype=int)
            self._task = np.array(tip_human)
        self._last_qpos: np.ndarray | None = None

    # ------------------------------------------------------------------------- properties

    @property
    def spec(self) -> RobotSpec:
        """The hand's robot spec (a pair's member folder, not the pair)."""
        return self._spec

    @property
    def hand(self) -> HandSpec:
        return self._hand

    @property
    def side(self) -> HandSide:
        return self._hand.side

    @property
    def kind(self) -> DexBackendKind:
        return self._kind

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def low_pass_alpha(self) -> float | None:
        return self._alpha

    @property
    def joint_names(self) -> tuple[str, ...]:
        """Driven joints (URDF names) in output order: ``hand.joints``."""
        return self._hand.joints

    @property
    def dex_joint_names(self) -> tuple[str, ...]:
        """dex's own joint order (its Pinocchio model's, mimic joints included)."""
        return self._dex_joint_names

    @property
    def lower(self) -> np.ndarray:
        """(n,) lower joint limits, in :attr:`joint_names` order."""
        return self._lower.copy()

    @property
    def upper(self) -> np.ndarray:
        """(n,) upper joint limits, in :attr:`joint_names` order."""
        return self._upper.copy()

    @property
    def retargeting(self) -> Any:
        """The underlying ``dex_retargeting.seq_retarget.SeqRetargeting``."""
        return self._retargeting

    # ------------------------------------------------------------------------- solving

    def reference(self, kp_wrist: np.ndarray) -> np.ndarray:
        """dex's reference value for one frame of human wrist-frame keypoints.

        Vector and DexPilot: (k, 3) unscaled vectors ``task - origin`` in the root frame (dex
        scales them). Position: (k, 3) fingertip targets in the root frame,
        ``R_root_hand @ (scale * kp) + p_root_wrist``.
        """
        kp = _check_frame(kp_wrist)
        kp_root = kp @ self._R_root_hand.T  # (21, 3)
        if self._kind == DexBackendKind.POSITION:
            return self._scale * kp_root[self._task] + self._p_root_wrist
        return kp_root[self._task] - kp_root[self._origin]

    def step(self, kp_wrist: np.ndarray) -> DexFrameResult:
        """Retarget one frame, warm-started from the previous one.

        Args:
            kp_wrist: (21, 3) human keypoints in the canonical hand frame of :attr:`side`.

        Raises:
            RetargetError: Wrong shape or non-finite keypoints.
        """
        import nlopt

        ref_value = self.reference(kp_wrist)
        opt = self._retargeting.optimizer.opt
        try:
            robot_qpos = self._retargeting.retarget(ref_value, fixed_qpos=self._fixed_qpos)
        except nlopt.RoundoffLimited:
            # dex catches RuntimeError only; NLopt raises this one otherwise. Report it as a
            # failed frame holding the previous output, as dex does for the others.
            return DexFrameResult(qpos=self._fallback(), evaluations=int(opt.get_numevals()),
                                  solver_status=int(nlopt.ROUNDOFF_LIMITED),
                                  solver_failed=True)
        status = int(opt.last_optimize_result())
        qpos = np.asarray(robot_qpos, dtype=np.float64)[self._index_ours]  # (n,)
        self._last_qpos = qpos
        return DexFrameResult(qpos=qpos.copy(), evaluations=int(opt.get_numevals()),
                              solver_status=status, solver_failed=status < 0)

    def retarget(self, kp_wrist: np.ndarray) -> DexRetargetResult:
        """Retarget a clip frame by frame, continuing from the current state.

        Args:
            kp_wrist: (T, 21, 3) human keypoints in the canonical hand frame of :attr:`side`.

        Raises:
            RetargetError: Wrong shape or non-finite keypoints (the message names the frame).
        """
        clip = _check_clip(kp_wrist)
        frames = clip.shape[0]
        qpos = np.zeros((frames, len(self.joint_names)))
        evaluations = np.zeros(frames, dtype=np.int64)
        status = np.zeros(frames, dtype=np.int64)
        failed = np.zeros(frames, dtype=bool)
        time_s = np.zeros(frames)
        for t in range(frames):
            tic = time.perf_counter()
            result = self.step(clip[t])
            time_s[t] = time.perf_counter() - tic
            qpos[t] = result.qpos
            evaluations[t] = result.evaluations
            status[t] = result.solver_status
            failed[t] = result.solver_failed
        return DexRetargetResult(qpos=qpos, evaluations=evaluations, solver_status=status,
                                 solver_failed=failed, time_s=time_s)

    def reset(self) -> None:
        """Forget the previous frames: warm start from mid-range, empty filter.

        dex's own ``reset()`` leaves its low-pass filter and DexPilot's pinch state as they
        were; both are cleared here too so a new clip starts from the same state as a freshly
        built retargeter.
        """
        self._retargeting.reset()
        if self._retargeting.filter is not None:
            self._retargeting.filter.reset()
        projected = getattr(self._retargeting.optimizer, 'projected', None)
        if projected is not None:
            projected[:] = False
        self._last_qpos = None

    def _fallback(self) -> np.ndarray:
        if self._last_qpos is not None:
            return self._last_qpos.copy()
        robot_qpos = self._retargeting.get_qpos(self._fixed_qpos)
        adaptor = self._retargeting.optimizer.adaptor
        if adaptor is not None:
            robot_qpos = adaptor.forward_qpos(robot_qpos)
        return np.asarray(robot_qpos, dtype=np.float64)[self._index_ours]


# ----------------------------------------------------------------------------- building

def write_urdf_with_frames(spec: RobotSpec, folder: Path) -> Path:
    """Write a copy of the spec's URDF with its extra frames and absolute mesh paths.

    Each extra frame becomes an empty link fixed to its parent by a joint named
    ``<frame>_joint``. ``package://<name>/...`` mesh URIs resolve against the installed share
    folders, relative paths against the URDF's folder.

    Args:
        spec: A hand or humanoid spec (one with a URDF).
        folder: Where to write; the file keeps the URDF's name.

    Returns:
        Path of the written URDF.

    Raises:
        RobotModelError: The URDF cannot be parsed, a frame's parent is missing or its name
            is taken, or a mesh is not installed.
    """
    if spec.urdf is None:
        raise RobotModelError(f'robot {spec.name!r} ({spec.kind.value}) has no URDF of its own')
    source = spec.urdf.resolve()
    try:
        tree = ET.parse(source)
    except (OSError, ET.ParseError) as exc:
        raise RobotModelError(f'{source}: cannot read URDF ({exc})') from exc
    robot = tree.getroot()
    links = [link.get('name') for link in robot.findall('link')]
    joints = {joint.get('name') for joint in robot.findall('joint')}
    for frame in spec.frames:
        if frame.parent not in links:
            raise RobotModelError(f'{spec.name}: ' + unknown_choice(
                f'parent link of frame {frame.name!r}', frame.parent, links))
        joint_name = f'{frame.name}_joint'
        if frame.name in links or joint_name in joints:
            raise RobotModelError(f'{spec.name}: frame {frame.name!r} clashes with a link or '
                                  f'joint of {source.name}')
        ET.SubElement(robot, 'link', {'name': frame.name})
        joint = ET.SubElement(robot, 'joint', {'name': joint_name, 'type': 'fixed'})
        ET.SubElement(joint, 'origin', {'xyz': ' '.join(repr(v) for v in frame.xyz),
                                        'rpy': '0 0 0'})
        ET.SubElement(joint, 'parent', {'link': frame.parent})
        ET.SubElement(joint, 'child', {'link': frame.name})
        links.append(frame.name)
    for mesh in robot.iter('mesh'):
        filename = mesh.get('filename')
        if filename:
            mesh.set('filename', str(resolve_mesh_path(filename, source)))
    target = Path(folder) / source.name
    tree.write(target, encoding='utf-8', xml_declaration=True)
    return target


@contextlib.contextmanager
def _private_tempdir() -> Iterator[Path]:
    """A private folder that is also :data:`tempfile.tempdir` inside the block.

    dex-retargeting's ``build()`` creates a temporary folder it never removes; redirecting
    the process-wide default for the duration of the build puts it inside ours. The lock
    keeps concurrent builds apart; a temporary file another thread creates during a build
    (tens of milliseconds) would land in the private folder too and be removed with it.
    """
    folder = Path(tempfile.mkdtemp(prefix='handx-dex-'))
    try:
        with _TEMPDIR_LOCK:
            saved = tempfile.tempdir
            tempfile.tempdir = str(folder)
            try:
                yield folder
            finally:
                tempfile.tempdir = saved
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _build(spec: RobotSpec, hand: HandSpec, kind: DexBackendKind, alpha: float | None,
           scale: float) -> Any:
    # Import before redirecting the temporary folder: torch's import must not see it.
    from dex_retargeting import optimizer as _optimizer  # noqa: F401  (imports torch)
    from dex_retargeting.retargeting_config import RetargetingConfig

    wrist_human = KEYPOINT_NAMES.index('wrist')
    tips = list(hand.fingertips.values())
    tip_human = [KEYPOINT_NAMES.index(k) for k in hand.fingertips]
    common: dict[str, Any] = {
        'type': kind.value,
        'target_joint_names': list(hand.joints),
        'scaling_factor': float(scale),
        # dex applies its filter when 0 <= alpha <= 1; -1 switches it off.
        'low_pass_alpha': -1.0 if alpha is None else float(alpha),
    }
    if kind == DexBackendKind.VECTOR:
        options = {'target_origin_link_names': [hand.wrist] * len(tips),
                   'target_task_link_names': tips,
                   'target_link_human_indices': np.array([[wrist_human] * len(tips),
                                                          tip_human])}
    elif kind == DexBackendKind.DEXPILOT:
        # No human indices: dex prints a warning when given any; the reference is built by
        # DexHandRetargeter.reference() in dex's layout from our own mapping.
        options = {'wrist_link_name': hand.wrist, 'finger_tip_link_names': tips}
    else:
        options = {'target_link_names': tips,
                   'target_link_human_indices': np.array(tip_human)}

    with _private_tempdir() as folder:
        urdf = write_urdf_with_frames(spec, folder)
        _check_links(urdf, [hand.wrist, hand.base_link, *tips], spec.name)
        try:
            config = RetargetingConfig(urdf_path=str(urdf), **common, **options)
            return config.build()
        except (ValueError, NotImplementedError) as exc:  # NotImplementedError: nq != nv
            raise RobotModelError(f'{spec.name}: dex-retargeting rejects the '
                                  f'{kind.value} configuration: {exc}'.replace('\n', ' ')
                                  ) from exc


def _check_links(urdf: Path, names: list[str], robot: str) -> None:
    links = [link.get('name') for link in ET.parse(urdf).getroot().findall('link')]
    for name in names:
        if name not in links:
            raise RobotModelError(f'{robot}: ' + unknown_choice('mapped link', name, links))


def _hand_spec_owner(spec: RobotSpec, side: HandSide | str | int) -> RobotSpec:
    """The spec whose URDF carries the ``side`` hand (a pair's member folder)."""
    if not isinstance(spec, RobotSpec):
        raise RetargetError(f'expected a RobotSpec, got {type(spec).__name__}')
    if spec.kind != RobotKind.PAIR:
        return spec
    hand = spec.hand(side)
    member = spec.members[int(hand.side)]
    return load_robot_spec(member, spec.folder.parent)


# ----------------------------------------------------------------------------- checks

def _kind(value: DexBackendKind | str) -> DexBackendKind:
    if isinstance(value, DexBackendKind):
        return value
    if isinstance(value, str):
        for member in DexBackendKind:
            if value.lower() == member.value:
                return member
    raise ConfigError(unknown_choice('dex-retargeting kind', value,
                                     [m.value for m in DexBackendKind]))


def _alpha(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f'low_pass_alpha must be in [0, 1] or None, got {value!r}')
    return float(value)


def _scale(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not np.isfinite(value) or not 0.1 <= float(value) <= 10.0:
        raise ConfigError(f'scale must be in [0.1, 10], got {value!r}')
    return float(value)


def _as_array(values: Any) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RetargetError(f'keypoints must be numeric, got {type(values).__name__}') from exc


def _check_frame(kp_wrist: Any) -> np.ndarray:
    kp = _as_array(kp_wrist)
    if kp.shape != (NUM_KEYPOINTS, 3):
        raise RetargetError(f'keypoints must have shape ({NUM_KEYPOINTS}, 3), got {kp.shape}')
    bad = ~np.isfinite(kp).all(axis=1)
    if bad.any():
        names = [KEYPOINT_NAMES[i] for i in np.flatnonzero(bad)]
        raise RetargetError(f'keypoints are not finite: {", ".join(names)}')
    return kp


def _check_clip(kp_wrist: Any) -> np.ndarray:
    clip = _as_array(kp_wrist)
    if clip.ndim != 3 or clip.shape[1:] != (NUM_KEYPOINTS, 3) or clip.shape[0] == 0:
        raise RetargetError(f'keypoints must have shape (T, {NUM_KEYPOINTS}, 3) with T >= 1, '
                            f'got {clip.shape}')
    bad = ~np.isfinite(clip).all(axis=(1, 2))
    if bad.any():
        frames = np.flatnonzero(bad)
        raise RetargetError(f'keypoints are not finite in {len(frames)} frame(s), first at '
                            f'frame {int(frames[0])}')
    return clip
