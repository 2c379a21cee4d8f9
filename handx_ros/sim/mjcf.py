"""MuJoCo models generated from the robot folders' URDFs, cached per user.

A robot folder names an installed URDF (see :mod:`handx_ros.retarget.spec`); this module turns
it into an MJCF with :class:`mujoco.MjSpec`:

* mesh paths (``package://<name>/...``, relative or ``file://``) are rewritten to the absolute
  paths of the installed files, which stay where they are (nothing is copied);
* every URDF link stays a body (``fusestatic`` off) and keeps its name, every joint keeps its
  URDF name, ``<mimic>`` tags become joint equality constraints, inertias that violate the
  triangle inequality are balanced (``balanceinertia``);
* visual meshes are kept as non-colliding geoms (group 1), collision geometry as colliding
  geoms (group 0); a URDF without collision elements (the Inspire hand) has visuals only;
* a site is added for each extra frame of the spec, each mapped keypoint frame and each
  hand's base link, named like the frame, so MuJoCo and Pinocchio positions compare by name.

The URDF's root link is fixed to the world (a hand folder's floating wrist is the
retargeter's business; a scene with both hands of a pair belongs to the simulation).

The XML is cached under ``$HANDX_CACHE_DIR/mjcf`` (default ``$XDG_CACHE_HOME/handx/mjcf``,
else ``~/.cache/handx/mjcf``), keyed by a hash of the URDF, the robot's ``robot.yaml``, this
generator's version and MuJoCo's version, and written atomically; a second call reuses it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

import mujoco

from handx_gen.errors import RobotModelError
from handx_ros.retarget.spec import (
    SPEC_FILE,
    RobotKind,
    RobotSpec,
    load_robot_spec,
    resolve_mesh_path,
)

__all__ = [
    'CACHE_ENV',
    'GENERATOR_VERSION',
    'build_model',
    'cache_dir',
    'generate_mjcf',
    'generate_robot_mjcfs',
    'load_mujoco_model',
    'site_frames',
]

# Bump when the generated XML changes for the same inputs; old cache entries then go unused.
GENERATOR_VERSION = 1
CACHE_ENV = 'HANDX_CACHE_DIR'

_SITE_SIZE_M = 0.004
_SITE_GROUP = 4
_SITE_RGBA = (1.0, 0.3, 0.1, 0.6)


def cache_dir() -> Path:
    """Folder of the cached MJCF files (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser() / 'mjcf'
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg).expanduser() if xdg else Path.home() / '.cache'
    return base / 'handx' / 'mjcf'


def generate_mjcf(robot: str | RobotSpec, root: Path | None = None, *,
                  force: bool = False) -> Path:
    """The cached MJCF of a hand or humanoid folder, generated when missing or stale.

    Args:
        robot: Folder name (``'allegro_right'``, ``'g1_hands'``) or a loaded spec.
        root: Folder of robot folders, when ``robot`` is a name (default: the installed one).
        force: Regenerate even when a cached file matches.

    Returns:
        Path of the MJCF file.

    Raises:
        RobotModelError: Unknown robot, a pair folder (use :func:`generate_robot_mjcfs`), a
            missing package, mesh, link or joint, or a URDF MuJoCo cannot compile.
    """
    spec = _spec(robot, root)
    if spec.kind == RobotKind.PAIR:
        raise RobotModelError(
            f'robot {spec.name!r} is a pair of hand folders {spec.members!r}: generate the '
            'MJCF of each member (generate_robot_mjcfs)')
    urdf_path = spec.urdf.resolve()
    urdf_bytes = urdf_path.read_bytes()
    spec_path = spec.folder / SPEC_FILE
    spec_bytes = spec_path.read_bytes() if spec_path.is_file() else b''
    digest = _digest(urdf_path, urdf_bytes, spec_bytes)
    path = cache_dir() / f'{spec.name}-{digest[:20]}.xml'
    if path.is_file() and not force:
        return path
    mjspec, model = build_model(spec, urdf_path=urdf_path, urdf_bytes=urdf_bytes)
    _write_atomically(path, _saved_xml(mjspec, model))
    return path


def generate_robot_mjcfs(robot: str | RobotSpec, root: Path | None = None) -> dict[str, Path]:
    """MJCF files of a folder: one for a hand or humanoid, one per member for a pair.

    Returns:
        Folder name -> MJCF path (a pair: left member first).
    """
    spec = _spec(robot, root)
    if spec.kind != RobotKind.PAIR:
        return {spec.name: generate_mjcf(spec)}
    member_root = spec.folder.parent
    return {member: generate_mjcf(member, member_root) for member in spec.members}


def load_mujoco_model(robot: str | RobotSpec, root: Path | None = None) -> mujoco.MjModel:
    """The compiled MuJoCo model of a hand or humanoid folder (through the cache).

    Raises:
        RobotModelError: As :func:`generate_mjcf`, or the cached file no longer loads.
    """
    path = generate_mjcf(robot, root)
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as exc:
        raise RobotModelError(f'cannot load the generated MJCF {path}: {exc}') from exc


def site_frames(spec: RobotSpec) -> list[str]:
    """Names of the frames that get a MuJoCo site: extra frames, then each hand's base link
    and mapped keypoint frames, without repeats."""
    names: list[str] = [frame.name for frame in spec.frames]
    for hand in spec.hands:
        names.append(hand.base_link)
        names.extend(hand.keypoints.values())
    return list(dict.fromkeys(names))


def build_model(spec: RobotSpec, *, urdf_path: Path | None = None,
                urdf_bytes: bytes | None = None) -> tuple[mujoco.MjSpec, mujoco.MjModel]:
    """Parse the folder's URDF into a checked :class:`mujoco.MjSpec` and compile it (no
    caching).

    Args:
        spec: A hand or humanoid folder.
        urdf_path: The resolved URDF, when the caller has it already.
        urdf_bytes: Its content, likewise.

    Returns:
        The spec (with the added sites) and its compiled model.

    Raises:
        RobotModelError: A missing mesh, link or joint, or a URDF MuJoCo cannot compile.
    """
    if spec.kind == RobotKind.PAIR or spec.urdf is None:
        raise RobotModelError(f'robot {spec.name!r} has no URDF of its own (a pair)')
    urdf_path = urdf_path or spec.urdf.resolve()
    urdf_bytes = urdf_path.read_bytes() if urdf_bytes is None else urdf_bytes
    text = _urdf_for_mujoco(urdf_path, urdf_bytes)
    try:
        mjspec = mujoco.MjSpec.from_string(text)
    except ValueError as exc:
        raise RobotModelError(f'MuJoCo cannot parse {urdf_path}: {exc}') from exc
    mjspec.compiler.fusestatic = False
    mjspec.compiler.balanceinertia = True
    mjspec.modelname = spec.name
    _check_names(spec, urdf_path, mjspec)
    extra = {frame.name: frame for frame in spec.frames}
    for name in site_frames(spec):
        if name in extra:
            body, pos = mjspec.body(extra[name].parent), list(extra[name].xyz)
        else:
            body, pos = mjspec.body(name), [0.0, 0.0, 0.0]
        body.add_site(name=name, pos=pos, size=[_SITE_SIZE_M, 0.0, 0.0], group=_SITE_GROUP,
                      rgba=list(_SITE_RGBA))
    try:
        model = mjspec.compile()
    except ValueError as exc:
        raise RobotModelError(f'MuJoCo cannot compile {urdf_path} for robot {spec.name!r}: '
                              f'{exc}') from exc
    return mjspec, model


# ----------------------------------------------------------------------------- internals

def _spec(robot: str | RobotSpec, root: Path | None) -> RobotSpec:
    if isinstance(robot, RobotSpec):
        return robot
    return load_robot_spec(robot, root)


def _digest(urdf_path: Path, urdf_bytes: bytes, spec_bytes: bytes) -> str:
    hasher = hashlib.sha256()
    for part in (f'handx-mjcf/{GENERATOR_VERSION}', f'mujoco/{mujoco.__version__}',
                 str(urdf_path)):
        hasher.update(part.encode() + b'\0')
    for part in (urdf_bytes, spec_bytes):
        hasher.update(len(part).to_bytes(8, 'little') + part)
    return hasher.hexdigest()


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f'.{path.stem}-', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(handle, 'w', encoding='utf-8') as stream:
            stream.write(text)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _saved_xml(mjspec: mujoco.MjSpec, model: mujoco.MjModel) -> str:
    """The MJCF text of a compiled spec, as exact as the model.

    MuJoCo writes numbers with six significant digits: body placements and joint ranges are
    written again from the compiled model at full precision (otherwise frame positions drift
    by ~1e-6 m from Pinocchio's and joint limits by ~1e-6 rad), and ``balanceinertia`` stays
    on (an inertia balanced to equality can fail the triangle inequality once rounded).
    """
    root = ET.fromstring(mjspec.to_xml())
    compiler = root.find('compiler')
    if compiler is None:
        compiler = ET.Element('compiler')
        root.insert(0, compiler)
    compiler.set('balanceinertia', 'true')
    for element in root.iter('body'):
        name = element.get('name')
        if name:
            body = model.body(name)
            element.set('pos', _numbers(body.pos))
            element.set('quat', _numbers(body.quat))
    for element in root.iter('joint'):
        name = element.get('name')
        if name and 'range' in element.attrib:
            element.set('range', _numbers(model.joint(name).range))
    return ET.tostring(root, encoding='unicode')


def _numbers(values: Iterable[float]) -> str:
    return ' '.join(repr(float(v)) for v in values)


def _urdf_for_mujoco(urdf_path: Path, urdf_bytes: bytes) -> str:
    """The URDF text with absolute mesh paths and the compiler options MuJoCo reads."""
    try:
        robot = ET.fromstring(urdf_bytes)
    except ET.ParseError as exc:
        raise RobotModelError(f'{urdf_path} is not valid XML: {exc}') from exc
    if robot.tag != 'robot':
        raise RobotModelError(f'{urdf_path} is not a URDF (root element <{robot.tag}>)')
    for mesh in robot.iter('mesh'):
        mesh.set('filename', str(resolve_mesh_path(mesh.get('filename', ''), urdf_path)))
    for old in robot.findall('mujoco'):
        robot.remove(old)
    extension = ET.Element('mujoco')
    ET.SubElement(extension, 'compiler', strippath='false', fusestatic='false',
                  balanceinertia='true', discardvisual='false')
    robot.insert(0, extension)
    return ET.tostring(robot, encoding='unicode')


def _check_names(spec: RobotSpec, urdf_path: Path, mjspec: mujoco.MjSpec) -> None:
    """Every link and joint the spec names exists in the URDF."""
    links = {body.name for body in mjspec.bodies if body.name and body.name != 'world'}
    joints = {joint.name for joint in mjspec.joints}
    needed_links = [(f'frame {f.name!r} parent', f.parent) for f in spec.frames]
    extra = {f.name for f in spec.frames}
    for frame in spec.frames:
        if frame.name in links or sum(f.name == frame.name for f in spec.frames) > 1:
            raise RobotModelError(f'robot {spec.name!r}: extra frame {frame.name!r} is '
                                  f'defined twice or is already a link of {urdf_path.name}')
    for hand in spec.hands:
        side = hand.side.name.lower()
        needed_links.append((f'{side} hand base_link', hand.base_link))
        needed_links += [(f'{side} hand keypoint {k!r}', v) for k, v in hand.keypoints.items()
                         if v not in extra]
    if spec.operator is not None:
        needed_links.append(('operator robot_frame', spec.operator.robot_frame))
    needed_joints = [(f'{h.side.name.lower()} hand joint', j) for h in spec.hands
                     for j in h.joints]
    for side, arm in zip(('left', 'right'), spec.arm_joints, strict=False):  # none: a hand
        needed_joints += [(f'{side} arm joint', j) for j in arm]
    needed_joints += [('locked joint', j) for j in spec.locked_joints]
    needed_joints += [('controller_names entry', j) for j in spec.controller_names]
    _require(needed_links, links, 'link', spec, urdf_path)
    _require(needed_joints, joints, 'joint', spec, urdf_path)


def _require(needed: Iterable[tuple[str, str]], present: set[str], kind: str, spec: RobotSpec,
             urdf_path: Path) -> None:
    for what, name in needed:
        if name not in present:
            raise RobotModelError(
                f'robot {spec.name!r}: {what} {name!r} is not a {kind} of {urdf_path.name}; '
                f'its {kind}s: {", ".join(sorted(present))}')
