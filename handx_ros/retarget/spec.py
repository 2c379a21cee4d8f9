"""Robot folders: what ``robot_models/<name>/robot.yaml`` says and where its assets are.

A robot folder describes one retargeting target. ``kind`` is one of:

* ``hand``: one dexterous hand with a floating wrist. It names the URDF, the link whose pose
  the wrist drives (``base_link``), the rotation from the canonical human hand frame to that
  link (``R_base_hand``), the point that plays the human wrist (``wrist``), the scale from
  human to robot size, and which robot frame stands for which of the 21 human keypoints.
* ``pair``: a left and a right hand folder, retargeted together (``allegro``, ``inspire``).
* ``humanoid``: one URDF carrying two arms and two hands. Each side's ``hands`` entry is a
  hand spec on that URDF; the arm joints are solved from the human wrist poses through the
  ``operator`` mapping, every other joint is locked at ``locked_joints`` (default 0).

Assets are never copied: ``urdf`` names an installed package and a path inside it, and
``package://`` mesh paths resolve against the same installed share folders.

Extra frames (``frames``) add points a URDF lacks (the G1 hand has no fingertip links; no hand
has a link at the human wrist joint); they are fixed to a parent link with an offset.

Only this module reads the YAML; everything else takes a :class:`RobotSpec`. A robot is named
by its folder name only (:func:`load_robot_spec` refuses ``..``, separators and absolute
paths); a folder elsewhere is read only when asked for by path (:func:`load_robot_folder`,
``handx retarget --robot-dir``). A malformed ``robot.yaml`` (not UTF-8, invalid YAML, values of
the wrong type, a pair that names itself) gives one :class:`RobotModelError` line.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import math
import site
import sys
import sysconfig
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from handx_gen.errors import ConfigError, RobotModelError, unknown_choice
from handx_gen.hand.topology import KEYPOINT_NAMES, HandSide

__all__ = [
    'ExtraFrame',
    'HandSpec',
    'MotionLimits',
    'OperatorSpec',
    'RobotKind',
    'RobotSpec',
    'UrdfSource',
    'available_robots',
    'load_robot_folder',
    'load_robot_spec',
    'package_share_dirs',
    'resolve_mesh_path',
    'resolve_package_share',
]

SPEC_FILE = 'robot.yaml'


class RobotKind(enum.Enum):
    """What a robot folder describes."""

    HAND = 'hand'
    PAIR = 'pair'
    HUMANOID = 'humanoid'


@dataclasses.dataclass(frozen=True)
class UrdfSource:
    """Where a URDF lives, inside an installed package.

    Attributes:
        package: ``share:<name>`` for a data package installed to a ``share/<name>`` folder
            (cmeel wheels such as ``example-robot-data``, or a ROS install), or
            ``python:<module>`` for a Python package that carries its assets.
        path: Path of the URDF inside that package.
    """

    package: str
    path: str

    def resolve(self) -> Path:
        """Absolute path of the URDF.

        Raises:
            RobotModelError: The package is not installed, or has no such file.
        """
        root = resolve_package_root(self.package)
        urdf = root / self.path
        if not urdf.is_file():
            raise RobotModelError(f'URDF {self.path!r} not found in package {self.package!r} '
                                  f'(looked in {root})')
        return urdf

    def package_dirs(self) -> list[Path]:
        """Folders that ``package://`` URIs of this URDF resolve against."""
        return package_share_dirs()


@dataclasses.dataclass(frozen=True)
class ExtraFrame:
    """A point fixed to a link, added to the kinematic model as an operational frame."""

    name: str
    parent: str
    xyz: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class HandSpec:
    """One hand: its links, frames and how human keypoints map onto it.

    Attributes:
        side: Which human hand drives it.
        base_link: The link the wrist pose moves (a floating hand's root; a humanoid's last
            wrist link or palm).
        R_base_hand: (3, 3) rotation from the canonical human hand frame of ``side`` (see
            ``handx_gen.hand.skeleton``) to ``base_link``.
        wrist: Robot frame standing for the human wrist keypoint; vectors start there.
        scale: Robot size over human size: human wrist-frame vectors are multiplied by it.
        keypoints: Human keypoint name -> robot frame name, for the keypoints this hand has
            (at least the wrist and two fingertips).
        joints: The hand's driven joints (URDF names, no mimic joints), in a fixed order.
    """

    side: HandSide
    base_link: str
    R_base_hand: np.ndarray
    wrist: str
    scale: float
    keypoints: Mapping[str, str]
    joints: tuple[str, ...]

    @property
    def fingertips(self) -> dict[str, str]:
        """Human fingertip keypoint -> robot frame, thumb first."""
        return {k: v for k, v in self.keypoints.items() if k.endswith('_tip')}


@dataclasses.dataclass(frozen=True)
class OperatorSpec:
    """How the human's world frame maps onto a humanoid (wrist poses for the arms).

    A human wrist pose is taken relative to ``human_origin`` (a point between the shoulders,
    in the motion's world frame), rotated by ``R_robot_human``, scaled by ``scale`` and placed
    at ``robot_origin`` in the frame of ``robot_frame``.
    """

    robot_frame: str
    human_origin: tuple[float, float, float]
    robot_origin: tuple[float, float, float]
    R_robot_human: np.ndarray
    scale: float


DEFAULT_ACCELERATION_RAD_S2 = 100.0


@dataclasses.dataclass(frozen=True)
class MotionLimits:
    """How fast a robot folder's joints may move: the ``limits:`` section of ``robot.yaml``.

    Velocity limits come from the URDF (each joint's ``<limit velocity=...>``); a folder may
    replace them per joint. URDFs carry no acceleration limits: every joint gets
    ``acceleration_rad_s2`` unless named in ``joint_acceleration_rad_s2``. The retargeting
    solver, the retiming, the gate and the command safety all read these numbers (through
    :meth:`~handx_ros.retarget.robot.ChainKinematics` and the retargeters'
    ``joint_velocity_limits()`` / ``joint_acceleration_limits()``).

    Attributes:
        joint_velocity_rad_s: URDF joint name -> velocity limit replacing the URDF's.
        acceleration_rad_s2: Acceleration limit of every joint not named below. 100 rad/s^2:
            from rest to 6 rad/s in 60 ms (the command safety's default bound).
        joint_acceleration_rad_s2: URDF joint name -> acceleration limit.
    """

    joint_velocity_rad_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    acceleration_rad_s2: float = DEFAULT_ACCELERATION_RAD_S2
    joint_acceleration_rad_s2: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def velocity(self, joint: str, urdf_value: float) -> float:
        """The velocity limit of ``joint`` whose URDF says ``urdf_value``."""
        return float(self.joint_velocity_rad_s.get(joint, urdf_value))

    def acceleration(self, joint: str) -> float:
        """The acceleration limit of ``joint``."""
        return float(self.joint_acceleration_rad_s2.get(joint, self.acceleration_rad_s2))


@dataclasses.dataclass(frozen=True)
class RobotSpec:
    """A robot folder, read and checked (paths not yet resolved).

    Attributes:
        name: The folder name.
        kind: Hand, pair or humanoid.
        folder: The folder itself.
        description: One line for listings.
        urdf: The URDF (hands and humanoids; ``None`` for a pair).
        hands: Left first; one entry for a hand, two for a pair or humanoid (a pair's are the
            hand folders' specs, see :attr:`members`).
        members: For a pair, the left and right hand folder names.
        frames: Extra frames added to the URDF model.
        arm_joints: A humanoid's arm joints per side (left, right); empty otherwise.
        locked_joints: A humanoid's other joints with the value they are locked at.
        operator: A humanoid's operator mapping.
        controller_names: URDF joint name -> controller joint name (identity when absent).
        dex_retargeting: Link-name map for the dex-retargeting backend (its name -> ours).
        retarget: Retargeter settings overriding the defaults for this robot.
        limits: Velocity and acceleration limits (a pair's are its members').
    """

    name: str
    kind: RobotKind
    folder: Path
    description: str
    urdf: UrdfSource | None
    hands: tuple[HandSpec, ...]
    members: tuple[str, ...] = ()
    frames: tuple[ExtraFrame, ...] = ()
    arm_joints: tuple[tuple[str, ...], ...] = ()
    locked_joints: Mapping[str, float] = dataclasses.field(default_factory=dict)
    operator: OperatorSpec | None = None
    controller_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dex_retargeting: Mapping[str, str] = dataclasses.field(default_factory=dict)
    retarget: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    limits: MotionLimits = dataclasses.field(default_factory=MotionLimits)

    def hand(self, side: HandSide | str | int) -> HandSpec:
        """The hand driven by the human ``side``."""
        side = _side(side, f'{self.name}: hand side')
        for hand in self.hands:
            if hand.side == side:
                return hand
        raise RobotModelError(f'robot {self.name!r} has no {side.name.lower()} hand')


# ----------------------------------------------------------------------------- packages

def package_share_dirs() -> list[Path]:
    """Folders holding installed ``share/<package>`` trees: cmeel prefixes of the active
    environment, then the sourced ROS install (``AMENT_PREFIX_PATH``)."""
    import os

    roots: list[Path] = []
    candidates = [sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib'],
                  *site.getsitepackages(), *sys.path]
    for entry in candidates:
        if not entry:
            continue
        share = Path(entry) / 'cmeel.prefix' / 'share'
        if share.is_dir() and share not in roots:
            roots.append(share)
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        share = Path(prefix) / 'share'
        if prefix and share.is_dir() and share not in roots:
            roots.append(share)
    return roots


def resolve_package_share(name: str) -> Path:
    """The installed ``share/<name>`` folder of a data package.

    Raises:
        RobotModelError: No installed share folder has it (the message says where it looked
            and which pip package provides it, where known).
    """
    roots = package_share_dirs()
    for root in roots:
        if (root / name).is_dir():
            return root / name
    hint = _PIP_HINTS.get(name)
    install = f'; install it with `pip install {hint}`' if hint else ''
    raise RobotModelError(f'package {name!r} is not installed (looked in '
                          f'{", ".join(map(str, roots)) or "no share folders"}){install}')


def resolve_mesh_path(uri: str, urdf_path: Path) -> Path:
    """Absolute path of a URDF mesh reference: ``package://<name>/...`` (an installed share
    folder), ``file://...``, or a path relative to the URDF's folder.

    Raises:
        RobotModelError: The package is not installed, or the file does not exist.
    """
    if uri.startswith('package://'):
        package, _, rest = uri[len('package://'):].partition('/')
        path = resolve_package_share(package) / rest
    elif uri.startswith('file://'):
        path = Path(uri[len('file://'):])
    else:
        path = Path(uri)
    if not path.is_absolute():
        path = urdf_path.parent / path
    path = path.resolve()
    if not path.is_file():
        raise RobotModelError(f'mesh {uri!r} of {urdf_path} not found (looked for {path})')
    return path


def resolve_package_root(package: str) -> Path:
    """Root folder of ``share:<name>`` or ``python:<module>``."""
    kind, _, name = package.partition(':')
    if kind == 'share' and name:
        return resolve_package_share(name)
    if kind == 'python' and name:
        found = importlib.util.find_spec(name)
        if found is None or not found.submodule_search_locations:
            hint = _PIP_HINTS.get(name, name.replace('_', '-'))
            raise RobotModelError(f'Python package {name!r} is not installed; install it with '
                                  f'`pip install {hint}`')
        return Path(list(found.submodule_search_locations)[0])
    raise RobotModelError(f'bad package reference {package!r}: expected share:<name> or '
                          'python:<module>')


_PIP_HINTS = {
    'example-robot-data': 'example-robot-data',
    'fourier_robot_descriptions': 'fourier-robot-descriptions',
}


# ----------------------------------------------------------------------------- folders

def available_robots(root: Path | None = None) -> list[str]:
    """Names of the robot folders (those holding a ``robot.yaml``), sorted."""
    root = _models_root(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / SPEC_FILE).is_file())


def load_robot_spec(name: str, root: Path | None = None, *, _member: bool = False
                    ) -> RobotSpec:
    """Read and check ``robot_models/<name>/robot.yaml``.

    Args:
        name: Folder name, e.g. ``'allegro_right'``, ``'allegro'`` or ``'g1_hands'``; a name
            only, never a path (see :func:`load_robot_folder`).
        root: Folder of robot folders (default: the installed ``robot_models``).

    Raises:
        RobotModelError: Unknown robot or a path instead of a name (the message lists the
            known ones), or an invalid spec (the message names the file and the field).
    """
    from handx_gen.config import read_yaml

    root = _models_root(root)
    if (not isinstance(name, str) or name in ('', '.', '..') or name.startswith('.')
            or Path(name).name != name or '/' in name or '\\' in name
            or not (root / name / SPEC_FILE).is_file()):
        raise RobotModelError(unknown_choice('robot', name, available_robots(root)))
    path = root / name / SPEC_FILE
    values = read_yaml(path, 'robot spec', error=RobotModelError)
    try:
        return _parse(name, path.parent, values, root, member=_member)
    except (ConfigError, RobotModelError) as exc:
        raise RobotModelError(f'{path}: {exc}') from exc
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
            RecursionError) as exc:
        # a value of the wrong type (a number for a list, a list for a mapping, ...)
        reason = ' '.join(str(exc).split())[:200]
        raise RobotModelError(f'{path}: malformed robot spec ({type(exc).__name__}: '
                              f'{reason})') from exc


def load_robot_folder(folder: str | Path) -> RobotSpec:
    """Read and check the robot folder at ``folder`` (a path the user named explicitly);
    a pair's members are folders beside it.

    Raises:
        RobotModelError: No ``robot.yaml`` there, or an invalid spec.
    """
    folder = Path(folder).expanduser().resolve()
    if not (folder / SPEC_FILE).is_file():
        raise RobotModelError(f'{folder}: not a robot folder (no {SPEC_FILE})')
    return load_robot_spec(folder.name, folder.parent)


def _models_root(root: Path | None) -> Path:
    if root is not None:
        return Path(root)
    from handx_ros.paths import robot_models_dir

    return robot_models_dir()


_TOP_KEYS = {
    RobotKind.HAND: {'kind', 'description', 'urdf', 'frames', 'hand', 'controller_names',
                     'dex_retargeting', 'retarget', 'limits', 'provenance'},
    RobotKind.PAIR: {'kind', 'description', 'left', 'right', 'retarget', 'provenance'},
    RobotKind.HUMANOID: {'kind', 'description', 'urdf', 'frames', 'hands', 'arm_joints',
                         'locked_joints', 'operator', 'controller_names', 'retarget',
                         'limits', 'provenance'},
}
_HAND_KEYS = ('side', 'base_link', 'R_base_hand', 'wrist', 'scale', 'keypoints', 'joints')


def _parse(name: str, folder: Path, values: Any, root: Path, *, member: bool = False
           ) -> RobotSpec:
    if not isinstance(values, Mapping):
        raise ConfigError('robot spec must be a mapping')
    kind = _enum(RobotKind, values.get('kind'), 'kind')
    _check_keys(values, _TOP_KEYS[kind], 'robot spec')
    description = str(values.get('description', ''))
    retarget = values.get('retarget') or {}
    if not isinstance(retarget, Mapping):
        raise ConfigError(f'retarget must be a mapping of settings, got '
                          f'{type(retarget).__name__}')
    retarget = dict(retarget)
    if kind == RobotKind.PAIR:
        if member:  # a pair naming a pair (or itself) would recurse without end
            raise ConfigError('a pair member must be a hand folder, not a pair')
        left = load_robot_spec(str(values.get('left')), root, _member=True)
        right = load_robot_spec(str(values.get('right')), root, _member=True)
        for member, side in ((left, HandSide.LEFT), (right, HandSide.RIGHT)):
            if member.kind != RobotKind.HAND or member.hands[0].side != side:
                raise ConfigError(f'pair member {member.name!r} must be a {side.name.lower()} '
                                  'hand folder')
        return RobotSpec(name=name, kind=kind, folder=folder, description=description,
                         urdf=None, hands=(left.hands[0], right.hands[0]),
                         members=(left.name, right.name), retarget=retarget)
    urdf = _urdf(values.get('urdf'))
    frames = tuple(_frame(f) for f in values.get('frames') or ())
    controller = _str_map(values.get('controller_names'), 'controller_names')
    if kind == RobotKind.HAND:
        hands = (_hand(values.get('hand'), 'hand'),)
        return RobotSpec(name=name, kind=kind, folder=folder, description=description,
                         urdf=urdf, hands=hands, frames=frames, controller_names=controller,
                         dex_retargeting=_str_map(values.get('dex_retargeting'),
                                                  'dex_retargeting'),
                         retarget=retarget, limits=_limits(values.get('limits')))
    hands_values = values.get('hands')
    if not isinstance(hands_values, Mapping) or set(hands_values) != {'left', 'right'}:
        raise ConfigError('humanoid spec needs hands: {left: ..., right: ...}')
    hands = (_hand(hands_values['left'], 'hands.left'), _hand(hands_values['right'],
                                                               'hands.right'))
    arms = values.get('arm_joints')
    if not isinstance(arms, Mapping) or set(arms) != {'left', 'right'}:
        raise ConfigError('humanoid spec needs arm_joints: {left: [...], right: [...]}')
    arm_joints = tuple(tuple(str(j) for j in arms[s]) for s in ('left', 'right'))
    locked = {str(k): float(v) for k, v in (values.get('locked_joints') or {}).items()}
    return RobotSpec(name=name, kind=kind, folder=folder, description=description, urdf=urdf,
                     hands=hands, frames=frames, arm_joints=arm_joints, locked_joints=locked,
                     operator=_operator(values.get('operator')), controller_names=controller,
                     retarget=retarget, limits=_limits(values.get('limits')))


def _check_keys(values: Mapping[str, Any], valid: Sequence[str] | set[str], what: str) -> None:
    for key in values:
        if key not in valid:
            raise ConfigError(unknown_choice(f'{what} key', key, valid))


def _enum(cls: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise ConfigError(unknown_choice(what, value, [m.value for m in cls])) from None


def _side(value: Any, what: str) -> HandSide:
    if isinstance(value, HandSide):
        return value
    if isinstance(value, str) and value.upper() in HandSide.__members__:
        return HandSide[value.upper()]
    if isinstance(value, int) and value in (0, 1):
        return HandSide(value)
    raise ConfigError(unknown_choice(what, value, ['left', 'right']))


def _urdf(values: Any) -> UrdfSource:
    if not isinstance(values, Mapping):
        raise ConfigError('urdf must be a mapping {package: ..., path: ...}')
    _check_keys(values, ('package', 'path'), 'urdf')
    return UrdfSource(package=str(values.get('package')), path=str(values.get('path')))


def _vector(value: Any, what: str) -> tuple[float, float, float]:
    array = np.asarray(value, dtype=np.float64) if value is not None else None
    if array is None or array.shape != (3,) or not np.all(np.isfinite(array)):
        raise ConfigError(f'{what} must be three finite numbers, got {value!r}')
    return (float(array[0]), float(array[1]), float(array[2]))


def _rotation(value: Any, what: str) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.zeros(0)
    if matrix.shape != (3, 3) or not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-6) \
            or not math.isclose(float(np.linalg.det(matrix)), 1.0, abs_tol=1e-6):
        raise ConfigError(f'{what} must be a 3x3 rotation matrix (rows), got {value!r}')
    matrix.setflags(write=False)
    return matrix


def _frame(values: Any) -> ExtraFrame:
    if not isinstance(values, Mapping):
        raise ConfigError('each frames entry must be a mapping {name, parent, xyz}')
    _check_keys(values, ('name', 'parent', 'xyz'), 'frames entry')
    return ExtraFrame(name=str(values.get('name')), parent=str(values.get('parent')),
                      xyz=_vector(values.get('xyz'), f'frame {values.get("name")!r} xyz'))


def _limits(values: Any) -> MotionLimits:
    if values is None:
        return MotionLimits()
    if not isinstance(values, Mapping):
        raise ConfigError(f'limits must be a mapping, got {type(values).__name__}')
    _check_keys(values, ('joint_velocity_rad_s', 'acceleration_rad_s2',
                         'joint_acceleration_rad_s2'), 'limits')

    def positive(value: Any, what: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not (math.isfinite(value) and value > 0):
            raise ConfigError(f'limits: {what} must be a finite number > 0, got {value!r}')
        return float(value)

    def per_joint(key: str) -> dict[str, float]:
        entries = values.get(key) or {}
        if not isinstance(entries, Mapping):
            raise ConfigError(f'limits: {key} must map joint names to numbers')
        return {str(joint): positive(value, f'{key}[{joint!r}]')
                for joint, value in entries.items()}

    return MotionLimits(
        joint_velocity_rad_s=per_joint('joint_velocity_rad_s'),
        acceleration_rad_s2=positive(values.get('acceleration_rad_s2',
                                                DEFAULT_ACCELERATION_RAD_S2),
                                     'acceleration_rad_s2'),
        joint_acceleration_rad_s2=per_joint('joint_acceleration_rad_s2'))


def _str_map(values: Any, what: str) -> dict[str, str]:
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f'{what} must be a mapping of names')
    return {str(k): str(v) for k, v in values.items()}


def _hand(values: Any, what: str) -> HandSpec:
    if not isinstance(values, Mapping):
        raise ConfigError(f'{what} must be a mapping')
    _check_keys(values, _HAND_KEYS, what)
    missing = [k for k in _HAND_KEYS if k not in values]
    if missing:
        raise ConfigError(f'{what} lacks {", ".join(missing)}')
    keypoints = _str_map(values['keypoints'], f'{what}.keypoints')
    for key in keypoints:
        if key not in KEYPOINT_NAMES:
            raise ConfigError(unknown_choice(f'{what}.keypoints human keypoint', key,
                                             KEYPOINT_NAMES))
    if keypoints.get('wrist') != str(values['wrist']):
        raise ConfigError(f'{what}.keypoints must map wrist to the wrist frame '
                          f'{values["wrist"]!r}')
    if sum(k.endswith('_tip') for k in keypoints) < 2:
        raise ConfigError(f'{what}.keypoints must map at least two fingertips')
    scale = float(values['scale'])
    if not (math.isfinite(scale) and 0.1 <= scale <= 10.0):
        raise ConfigError(f'{what}.scale must be in [0.1, 10], got {values["scale"]!r}')
    joints = values['joints']
    if not isinstance(joints, Sequence) or isinstance(joints, str) or not joints:
        raise ConfigError(f'{what}.joints must be a non-empty list of URDF joint names')
    # Keep the human keypoint order, whatever order the file lists them in.
    ordered = {k: keypoints[k] for k in KEYPOINT_NAMES if k in keypoints}
    return HandSpec(side=_side(values['side'], f'{what}.side'),
                    base_link=str(values['base_link']),
                    R_base_hand=_rotation(values['R_base_hand'], f'{what}.R_base_hand'),
                    wrist=str(values['wrist']), scale=scale, keypoints=ordered,
                    joints=tuple(str(j) for j in joints))


def _operator(values: Any) -> OperatorSpec:
    if not isinstance(values, Mapping):
        raise ConfigError('humanoid spec needs an operator mapping')
    keys = ('robot_frame', 'human_origin', 'robot_origin', 'R_robot_human', 'scale')
    _check_keys(values, keys, 'operator')
    missing = [k for k in keys if k not in values]
    if missing:
        raise ConfigError(f'operator lacks {", ".join(missing)}')
    return OperatorSpec(robot_frame=str(values['robot_frame']),
                        human_origin=_vector(values['human_origin'], 'operator.human_origin'),
                        robot_origin=_vector(values['robot_origin'], 'operator.robot_origin'),
                        R_robot_human=_rotation(values['R_robot_human'],
                                                'operator.R_robot_human'),
                        scale=float(values['scale']))
