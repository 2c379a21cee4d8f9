"""Offscreen videos of a robot clip, beside a skeleton view of the human motion it came from.

:func:`render_video` plays joint positions through a MuJoCo model, renders every frame offscreen
and writes an MP4 (H.264 through the ffmpeg binary of ``imageio-ffmpeg``) or a GIF (Pillow).
Given the human :class:`~handx_gen.motion.BimanualMotion`, each frame shows the robot on the left
and both hands' 21-keypoint skeletons on the right, seen from the same direction, so a person
can check what the robot will do against what the human did.

OpenGL backend. MuJoCo picks the backend of :class:`mujoco.Renderer` from ``MUJOCO_GL`` once,
when ``mujoco`` is first imported, so setting the variable later (after any module imported
``mujoco``) has no effect there. This module therefore creates its GL context itself, from the
backend :func:`gl_backend` names at call time:

* ``MUJOCO_GL`` when set (``osmesa``, ``egl`` or ``glfw``);
* else ``PYOPENGL_PLATFORM`` when it names ``osmesa`` or ``egl``;
* else ``glfw`` when a display is available (``DISPLAY`` or ``WAYLAND_DISPLAY``);
* else ``osmesa``: software rendering, from Debian's ``libosmesa6`` (``make setup`` installs
  it where missing). MuJoCo's OSMesa module sets ``PYOPENGL_PLATFORM=osmesa`` when unset.

Nothing is set at import time and no subprocess is used. PyOpenGL binds one platform per
process, so a process that has already used EGL cannot switch to OSMesa (and vice versa).

Camera. By default a free camera looks at the centre of the bounding box of the visible geoms
over the whole clip, from ``RenderCamera`` angles (azimuth 90 degrees, elevation -30: from
behind and above a person facing +y, so the left hand appears on the left), at a distance that
fits the box. A named camera of the model can be used instead. The skeleton view uses the same
viewing direction, framed on the keypoints' own bounding box.

Speed: about 18 ms per 320x240 frame with OSMesa on one CPU core.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import os
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from handx_gen.config import config_kwargs
from handx_gen.errors import SimulationError, unknown_choice
from handx_gen.hand.topology import KEYPOINT_PARENTS, NUM_KEYPOINTS
from handx_gen.motion import BimanualMotion

__all__ = [
    'GLBackend',
    'RenderCamera',
    'VideoFormat',
    'gl_backend',
    'render_frames',
    'render_video',
]

PathLike = str | os.PathLike

_DISPLAY_VARS = ('DISPLAY', 'WAYLAND_DISPLAY')
_DISABLED_GL = ('disable', 'disabled', 'off', 'false', '0')
_DEFAULT_GL = ('enable', 'enabled', 'on', 'true', '1')

# Frames from which on a progress bar is shown (on a terminal).
_PROGRESS_MIN_FRAMES = 150
# Frames sampled to find the bounding box the free camera looks at.
_FRAMING_SAMPLES = 200
# Distance margin over the one at which the bounding box just fits the image.
_FRAMING_MARGIN = 1.1
_MIN_SIZE_PX = 16

_BACKGROUND = np.array([236, 236, 236], dtype=np.uint8)
_LABEL_COLOR = (90, 90, 90)
_HAND_COLORS = ((40, 110, 230), (230, 110, 30))  # left, right (RGB)
_BONE_WIDTH_PX = 2
_JOINT_RADIUS_PX = 2

# Scene options: the headlight of the (copied) model is brightened so dark robot meshes (the
# Allegro hand is near black) read well against the light background.
_HEADLIGHT_AMBIENT = 0.35
_HEADLIGHT_DIFFUSE = 0.65
_HEADLIGHT_SPECULAR = 0.15


class GLBackend(enum.Enum):
    """OpenGL backend of the offscreen renderer, named as in ``MUJOCO_GL``."""

    OSMESA = 'osmesa'
    EGL = 'egl'
    GLFW = 'glfw'


class VideoFormat(enum.Enum):
    """Container written, chosen by the output file's extension."""

    MP4 = '.mp4'
    GIF = '.gif'


@dataclasses.dataclass(frozen=True)
class RenderCamera:
    """A free camera; unset placement fits the clip's bounding box.

    Attributes:
        azimuth_deg: Direction of view about world Z, degrees (MuJoCo's convention: 90 looks
            along +y).
        elevation_deg: Angle of the view above the horizontal plane, degrees (negative looks
            down), in (-90, 90).
        distance_m: Distance from the look-at point, metres; ``None`` fits the bounding box.
        lookat: World point looked at, metres; ``None`` takes the bounding box centre.
    """

    azimuth_deg: float = 90.0
    elevation_deg: float = -30.0
    distance_m: float | None = None
    lookat: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.azimuth_deg):
            raise SimulationError(f'camera azimuth_deg must be finite, got {self.azimuth_deg}')
        if not (math.isfinite(self.elevation_deg) and -90.0 < self.elevation_deg < 90.0):
            raise SimulationError(
                f'camera elevation_deg must be in (-90, 90), got {self.elevation_deg}')
        if self.distance_m is not None and not (
                math.isfinite(self.distance_m) and self.distance_m > 0.0):
            raise SimulationError(f'camera distance_m must be > 0, got {self.distance_m}')
        if self.lookat is not None:
            lookat = np.asarray(self.lookat, dtype=np.float64)
            if lookat.shape != (3,) or not np.all(np.isfinite(lookat)):
                raise SimulationError(f'camera lookat must be 3 finite numbers, got '
                                      f'{self.lookat!r}')
            object.__setattr__(self, 'lookat', tuple(float(v) for v in lookat))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> RenderCamera:
        """Build from a mapping of settings (unknown keys are rejected)."""
        return cls(**config_kwargs(cls, values, 'render camera'))


def gl_backend() -> GLBackend:
    """The OpenGL backend rendering will use now (see the module docstring for the order).

    Raises:
        SimulationError: ``MUJOCO_GL`` disables rendering or names an unknown backend.
    """
    requested = os.environ.get('MUJOCO_GL', '').strip().lower()
    if requested in _DISABLED_GL:
        raise SimulationError(f'rendering is disabled by MUJOCO_GL={requested!r}; unset it or '
                              f'set it to osmesa, egl or glfw')
    if requested in _DEFAULT_GL:
        return GLBackend.GLFW
    if requested:
        try:
            return GLBackend(requested)
        except ValueError:
            raise SimulationError(unknown_choice(
                'MUJOCO_GL backend', requested, [b.value for b in GLBackend])) from None
    platform = os.environ.get('PYOPENGL_PLATFORM', '').strip().lower()
    if platform in (GLBackend.OSMESA.value, GLBackend.EGL.value):
        return GLBackend(platform)
    if any(os.environ.get(name) for name in _DISPLAY_VARS):
        return GLBackend.GLFW
    return GLBackend.OSMESA


def render_video(
    model: mujoco.MjModel,
    qpos_frames: np.ndarray,
    path: PathLike,
    fps: float,
    *,
    motion: BimanualMotion | None = None,
    source_frames: np.ndarray | None = None,
    size: tuple[int, int] = (320, 240),
    camera: str | RenderCamera | None = None,
    progress: bool = True,
    focus_bodies: Sequence[int] | None = None,
) -> Path:
    """Render a clip offscreen and write it as an MP4 or GIF.

    Args:
        model: The MuJoCo model; not modified (rendering uses a copy).
        qpos_frames: (T, model.nq) full MuJoCo ``qpos`` per frame, T >= 1.
        path: Output file, ``.mp4`` or ``.gif``; its folder is created when missing. Written
            atomically (a temporary file beside it, then renamed).
        fps: Frame rate of ``qpos_frames`` and of the video, > 0.
        motion: The human motion of the clip; when given, each frame shows its skeletons to
            the right of the robot. Resampled to ``fps`` when its frame rate differs; its frame
            count (after resampling) must equal T, unless ``source_frames`` is given.
        source_frames: For a retimed clip (:mod:`handx_ros.retarget.retime`), (T,) the
            motion's frame (at ``fps``) each clip frame plays; its skeletons are placed there
            (:func:`handx_ros.sim.evaluate.retimed_source_frames` reads it from a trajectory).
        size: (width, height) of the robot view in pixels, each even and >= 16; with a motion
            the video is twice as wide.
        camera: Name of a camera of the model, a :class:`RenderCamera`, or ``None`` for the
            default free camera.
        progress: Show a progress bar on a terminal for long clips (tqdm, on stderr).
        focus_bodies: Body ids the free camera frames (default every drawn geom): a
            humanoid's hands (:meth:`SimScene.hand_body_ids`), so that the fingers are large
            enough to see which moves.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        SimulationError: A bad shape, value, camera name or extension, an unwritable path,
            rendering unavailable (the message says how to install it) or an encoder failure.
    """
    path = Path(path)
    video_format = _video_format(path)
    fps = _check_fps(fps)
    frames = _check_qpos(model, qpos_frames)
    keypoints = None if motion is None else _motion_keypoints(motion, fps, len(frames),
                                                              source_frames)
    # Checks every argument (the GL context opens at the first frame), before any file work.
    images = render_frames(model, frames, motion_keypoints=keypoints, size=size, camera=camera,
                           progress=progress, focus_bodies=focus_bodies)
    _prepare_folder(path)
    tmp_path = path.with_name(f'.{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp'
                              f'{video_format.value}')
    try:
        if video_format is VideoFormat.MP4:
            _write_mp4(tmp_path, images, fps)
        else:
            _write_gif(tmp_path, images, fps)
        os.replace(tmp_path, path)
    except OSError as exc:
        raise SimulationError(f'cannot write the video {path}: {exc}') from exc
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def render_frames(
    model: mujoco.MjModel,
    qpos_frames: np.ndarray,
    *,
    motion_keypoints: np.ndarray | None = None,
    size: tuple[int, int] = (320, 240),
    camera: str | RenderCamera | None = None,
    progress: bool = False,
    focus_bodies: Sequence[int] | None = None,
) -> Iterator[np.ndarray]:
    """Render frames one at a time (the generator behind :func:`render_video`).

    The GL context is created on the first ``next()`` and freed when the generator finishes
    or is closed.

    Args:
        model: The MuJoCo model; not modified.
        qpos_frames: (T, model.nq) ``qpos`` per frame.
        motion_keypoints: Optional (T, 2, 21, 3) human keypoints per frame, world frame,
            metres (non-finite keypoints are left out of the drawing).
        size: (width, height) of the robot view, each even and >= 16.
        camera: Camera name, :class:`RenderCamera` or ``None`` (default free camera).
        progress: Show a progress bar on a terminal for long clips.
        focus_bodies: Body ids the free camera frames (default every drawn geom).

    Yields:
        (height, width, 3) uint8 RGB frames, width doubled with keypoints.

    Raises:
        SimulationError: Bad shapes, sizes or camera, or rendering unavailable.
    """
    frames = _check_qpos(model, qpos_frames)
    width, height = _check_size(size)
    if motion_keypoints is not None:
        motion_keypoints = np.asarray(motion_keypoints, dtype=np.float64)
        expected = (len(frames), 2, NUM_KEYPOINTS, 3)
        if motion_keypoints.shape != expected:
            raise SimulationError(f'motion keypoints have shape {motion_keypoints.shape}, '
                                  f'expected {expected} (one frame per qpos frame)')
    render_model = _render_model(model, width, height)
    data = mujoco.MjData(render_model)
    view = _robot_view(render_model, data, frames, camera, width, height, focus_bodies)
    skeleton_view = None
    if motion_keypoints is not None:
        skeleton_view = _fit_view(view.rotation, view.fovy_deg, width / height,
                                  _keypoint_bounds(motion_keypoints))
    return _frames(render_model, data, frames, view, motion_keypoints, skeleton_view,
                   width, height, progress)


# ---------------------------------------------------------------------- rendering


@dataclasses.dataclass(frozen=True)
class _View:
    """A pinhole view: position, rotation rows (right, up, forward), vertical field of view,
    the point looked at and the MuJoCo camera that renders it (robot view only)."""

    eye: np.ndarray  # (3,) world
    rotation: np.ndarray  # (3, 3) rows: right, up, forward (world)
    fovy_deg: float
    lookat: np.ndarray  # (3,) world
    mjv_camera: mujoco.MjvCamera | None = None


def _frames(model: mujoco.MjModel, data: mujoco.MjData, frames: np.ndarray, view: _View,
            keypoints: np.ndarray | None, skeleton_view: _View | None, width: int, height: int,
            progress: bool) -> Iterator[np.ndarray]:
    from tqdm import tqdm

    show = progress and len(frames) >= _PROGRESS_MIN_FRAMES
    with _OffscreenRenderer(model, width, height) as renderer:
        for index in tqdm(range(len(frames)), desc='render', unit='frame', leave=False,
                          disable=None if show else True, dynamic_ncols=True):
            data.qpos[:] = frames[index]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            image = renderer.render(data, view.mjv_camera)
            if keypoints is not None:
                skeleton = _draw_skeletons(keypoints[index], skeleton_view, width, height)
                image = np.concatenate([image, skeleton], axis=1)
            yield image


class _OffscreenRenderer:
    """A GL context of the chosen backend with a MuJoCo offscreen framebuffer."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        self._model = model
        self._gl = None
        self._context = None
        backends = _backend_candidates()
        for position, backend in enumerate(backends):
            try:
                self._gl = _create_gl_context(backend, width, height)
                break
            except SimulationError:
                if position == len(backends) - 1:
                    raise
        # No fallback past this point: once MuJoCo failed to load GL functions for one
        # backend, trying another in the same process is not safe.
        try:
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        except mujoco.FatalError as exc:
            self.close()
            raise SimulationError(_unavailable(backend, exc)) from exc
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 2 * model.ngeom))
        self._option = mujoco.MjvOption()
        self._option.geomgroup[:] = _visible_groups(model)
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), dtype=np.uint8)
        self._depth = np.empty((height, width), dtype=np.float32)

    def __enter__(self) -> _OffscreenRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def render(self, data: mujoco.MjData, camera: mujoco.MjvCamera) -> np.ndarray:
        """(height, width, 3) uint8 image of ``data``, background replaced by a light grey."""
        self._gl.make_current()
        mujoco.mjv_updateScene(self._model, data, self._option, None, camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._context)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, self._context)
        image = np.flipud(self._rgb).copy()
        background = np.flipud(self._depth) >= 1.0  # nothing drawn: the far plane's depth
        image[background] = _BACKGROUND
        return image

    def close(self) -> None:
        """Free the MuJoCo context and the GL context (idempotent)."""
        if self._context is not None:
            if self._gl is not None:
                with self._gl.as_current():
                    self._context.free()
            self._context = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None


def _backend_candidates() -> tuple[GLBackend, ...]:
    """Backends to try in order: GLFW chosen only for a display falls back to OSMesa (a stale
    ``DISPLAY``); a backend named in the environment is used alone."""
    backend = gl_backend()
    if backend is GLBackend.GLFW and not os.environ.get('MUJOCO_GL', '').strip():
        return (GLBackend.GLFW, GLBackend.OSMESA)
    return (backend,)


def _create_gl_context(backend: GLBackend, width: int, height: int) -> Any:
    """A current GL context of ``backend`` (MuJoCo's ``GLContext`` of that module).

    Raises:
        SimulationError: The backend's library is missing or cannot create a context.
    """
    context_class = _gl_context_class(backend)
    if backend is GLBackend.GLFW:
        import glfw

        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # GLFW warns before failing; the error says why
            if not glfw.init():
                raise SimulationError(_unavailable(backend, RuntimeError(
                    'GLFW cannot initialise: no usable display')))
    context = None
    # Backends fail in their own ways (GLFWError, RuntimeError, ctypes errors); each is
    # reported as one SimulationError with the cause chained.
    try:
        context = context_class(width, height)
        context.make_current()
    except Exception as exc:  # noqa: BLE001 (re-raised below with the cause)
        if context is not None:
            context.free()
        raise SimulationError(_unavailable(backend, exc)) from exc
    return context


def _gl_context_class(backend: GLBackend) -> type:
    """The ``GLContext`` class of MuJoCo's module for ``backend``."""
    try:
        if backend is GLBackend.OSMESA:
            from mujoco.osmesa import GLContext
        elif backend is GLBackend.EGL:
            from mujoco.egl import GLContext
        else:
            from mujoco.glfw import GLContext
    except (ImportError, OSError, AttributeError, RuntimeError) as exc:
        raise SimulationError(_unavailable(backend, exc)) from exc
    return GLContext


def _unavailable(backend: GLBackend, exc: BaseException) -> str:
    hint = {
        GLBackend.OSMESA: 'install the OSMesa library (Debian: apt-get install libosmesa6; '
                          '`make setup` does this where it can)',
        GLBackend.EGL: 'install an EGL driver (Debian: apt-get install libegl1 libgl1-mesa-dri) '
                       'or set MUJOCO_GL=osmesa',
        GLBackend.GLFW: 'check the display, or render headless with MUJOCO_GL=osmesa',
    }[backend]
    return (f'offscreen rendering with the {backend.value} OpenGL backend is unavailable '
            f'({type(exc).__name__}: {exc}); {hint}')


def _render_model(model: mujoco.MjModel, width: int, height: int) -> mujoco.MjModel:
    """A copy of ``model`` with an offscreen buffer of at least the size and a brighter light."""
    if not isinstance(model, mujoco.MjModel):
        raise SimulationError(f'model must be a mujoco.MjModel, got {type(model).__name__}')
    render_model = copy.deepcopy(model)
    render_model.vis.global_.offwidth = max(width, render_model.vis.global_.offwidth)
    render_model.vis.global_.offheight = max(height, render_model.vis.global_.offheight)
    headlight = render_model.vis.headlight
    headlight.active = 1
    headlight.ambient[:] = _HEADLIGHT_AMBIENT
    headlight.diffuse[:] = _HEADLIGHT_DIFFUSE
    headlight.specular[:] = _HEADLIGHT_SPECULAR
    return render_model


def _visible_groups(model: mujoco.MjModel) -> np.ndarray:
    """Geom groups to draw: those holding visual-only geoms when any, else groups 0-2."""
    groups = np.zeros(mujoco.mjNGROUP, dtype=np.uint8)
    visual = (model.geom_contype == 0) & (model.geom_conaffinity == 0)
    if np.any(visual):
        groups[np.unique(model.geom_group[visual])] = 1
    else:
        groups[:3] = 1
    return groups


def _robot_view(model: mujoco.MjModel, data: mujoco.MjData, frames: np.ndarray,
                camera: str | RenderCamera | None, width: int, height: int,
                focus_bodies: Sequence[int] | None = None) -> _View:
    """The camera of the robot view and its pinhole description."""
    if isinstance(camera, str):
        camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if camera_id < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise SimulationError(unknown_choice('camera', camera, names))
        data.qpos[:] = frames[0]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        mjv_camera = mujoco.MjvCamera()
        mjv_camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        mjv_camera.fixedcamid = camera_id
        R_world_cam = data.cam_xmat[camera_id].reshape(3, 3)  # camera looks along its -z
        rotation = np.stack([R_world_cam[:, 0], R_world_cam[:, 1], -R_world_cam[:, 2]])
        eye = data.cam_xpos[camera_id].copy()
        return _View(eye, rotation, float(model.cam_fovy[camera_id]), eye + rotation[2],
                     mjv_camera)
    if camera is None:
        camera = RenderCamera()
    if not isinstance(camera, RenderCamera):
        raise SimulationError(f'camera must be a camera name, a RenderCamera or None, got '
                              f'{type(camera).__name__}')
    rotation = _free_rotation(camera.azimuth_deg, camera.elevation_deg)
    fovy_deg = float(model.vis.global_.fovy)
    view = _fit_view(rotation, fovy_deg, width / height,
                     _geom_bounds(model, data, frames, focus_bodies),
                     lookat=camera.lookat, distance_m=camera.distance_m)
    mjv_camera = mujoco.MjvCamera()
    mjv_camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    mjv_camera.azimuth = camera.azimuth_deg
    mjv_camera.elevation = camera.elevation_deg
    mjv_camera.distance = float(np.linalg.norm(view.lookat - view.eye))
    mjv_camera.lookat[:] = view.lookat
    return dataclasses.replace(view, mjv_camera=mjv_camera)


def _fit_view(rotation: np.ndarray, fovy_deg: float, aspect: float, bounds: np.ndarray, *,
              lookat: tuple[float, float, float] | None = None,
              distance_m: float | None = None) -> _View:
    """Place a camera of the given rotation so that the box ``bounds`` (2, 3) fills the view.

    The distance is the smallest at which all eight corners of the box project inside the
    image (of width / height ``aspect``), with a small margin.
    """
    lower, upper = bounds  # (3,), (3,)
    centre = (lower + upper) / 2 if lookat is None else np.asarray(lookat, dtype=np.float64)
    if distance_m is None:
        corners = np.array([[x, y, z] for x in (lower[0], upper[0])
                            for y in (lower[1], upper[1]) for z in (lower[2], upper[2])])
        local = (corners - centre) @ rotation.T  # (8, 3): right, up, forward
        tan_y = math.tan(math.radians(fovy_deg) / 2)
        needed = np.maximum(np.abs(local[:, 0]) / (tan_y * aspect), np.abs(local[:, 1]) / tan_y)
        distance_m = max(_FRAMING_MARGIN * float(np.max(needed - local[:, 2])), 1e-2)
    return _View(centre - distance_m * rotation[2], rotation, fovy_deg, centre)


def _free_rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """(3, 3) rows right, up, forward of MuJoCo's free camera at these angles."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    forward = np.array([math.cos(elevation) * math.cos(azimuth),
                        math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    up = np.array([-math.sin(elevation) * math.cos(azimuth),
                   -math.sin(elevation) * math.sin(azimuth), math.cos(elevation)])
    right = np.cross(forward, up)
    return np.stack([right, up, forward])


def _geom_bounds(model: mujoco.MjModel, data: mujoco.MjData, frames: np.ndarray,
                 focus_bodies: Sequence[int] | None = None) -> np.ndarray:
    """(2, 3) lower and upper world corner of the drawn geoms (of ``focus_bodies`` when
    given) over (a sample of) the frames."""
    groups = _visible_groups(model)
    drawn = groups[model.geom_group.clip(0, mujoco.mjNGROUP - 1)].astype(bool)
    drawn &= model.geom_rgba[:, 3] > 0
    if focus_bodies is not None:
        focus = drawn & np.isin(model.geom_bodyid, np.asarray(list(focus_bodies), dtype=int))
        if np.any(focus):
            drawn = focus
    if not np.any(drawn):
        drawn = np.ones(model.ngeom, dtype=bool)
    aabb_centre = model.geom_aabb[drawn, :3]  # (g, 3) geom frame
    aabb_half = model.geom_aabb[drawn, 3:]  # (g, 3)
    lower = np.full(3, np.inf)
    upper = np.full(3, -np.inf)
    sample = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), _FRAMING_SAMPLES))
                       .round().astype(int))
    for index in sample:
        data.qpos[:] = frames[index]
        mujoco.mj_kinematics(model, data)
        R_world_geom = data.geom_xmat[drawn].reshape(-1, 3, 3)  # (g, 3, 3)
        centre = data.geom_xpos[drawn] + np.einsum('gij,gj->gi', R_world_geom, aabb_centre)
        half = np.einsum('gij,gj->gi', np.abs(R_world_geom), aabb_half)  # (g, 3) world box
        lower = np.minimum(lower, (centre - half).min(axis=0, initial=np.inf))
        upper = np.maximum(upper, (centre + half).max(axis=0, initial=-np.inf))
    if not np.all(np.isfinite(lower)):  # a model without geoms: frame the bodies
        lower, upper = data.xpos.min(axis=0) - 0.1, data.xpos.max(axis=0) + 0.1
    return np.stack([lower, upper])


def _keypoint_bounds(keypoints: np.ndarray) -> np.ndarray:
    """(2, 3) corners of the finite keypoints over all frames, padded a little."""
    points = keypoints.reshape(-1, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if len(points) == 0:
        return np.stack([np.full(3, -0.1), np.full(3, 0.1)])
    pad = 0.02  # metres: fingertip joints are points, not the finger's surface
    return np.stack([points.min(axis=0) - pad, points.max(axis=0) + pad])


# ---------------------------------------------------------------------- skeleton view


def _project(points: np.ndarray, view: _View, width: int,
             height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) of world points (N, 3), and which lie in front of the camera."""
    camera_points = (points - view.eye) @ view.rotation.T  # (N, 3): right, up, forward
    depth = camera_points[:, 2]
    visible = np.isfinite(depth) & (depth > 1e-6)
    focal_px = (height / 2) / math.tan(math.radians(view.fovy_deg) / 2)
    safe_depth = np.where(visible, depth, 1.0)
    u = width / 2 + focal_px * camera_points[:, 0] / safe_depth
    v = height / 2 - focal_px * camera_points[:, 1] / safe_depth
    return np.stack([u, v], axis=1), visible


def _draw_skeletons(keypoints: np.ndarray, view: _View, width: int,
                    height: int) -> np.ndarray:
    """(height, width, 3) uint8 drawing of both hands' skeletons; keypoints (2, 21, 3)."""
    from PIL import Image, ImageDraw

    image = Image.new('RGB', (width, height), tuple(int(c) for c in _BACKGROUND))
    draw = ImageDraw.Draw(image)
    # Draw the hand farther from the camera first, so the nearer one stays on top.
    depth = [float(np.nanmean((hand - view.eye) @ view.rotation[2]))
             if np.any(np.isfinite(hand)) else 0.0 for hand in keypoints]
    for side in sorted(range(2), key=lambda s: -depth[s]):
        pixels, visible = _project(keypoints[side], view, width, height)  # (21, 2), (21,)
        color = _HAND_COLORS[side]
        for child, parent in enumerate(KEYPOINT_PARENTS):
            if parent >= 0 and visible[child] and visible[parent]:
                draw.line([tuple(pixels[parent]), tuple(pixels[child])], fill=color,
                          width=_BONE_WIDTH_PX)
        for (u, v), shown in zip(pixels, visible, strict=True):
            if shown:
                draw.ellipse([u - _JOINT_RADIUS_PX, v - _JOINT_RADIUS_PX, u + _JOINT_RADIUS_PX,
                              v + _JOINT_RADIUS_PX], fill=color)
    draw.text((4, 2), 'human (left blue, right orange)', fill=_LABEL_COLOR)
    return np.asarray(image)


# ---------------------------------------------------------------------- checks and writers


def _video_format(path: Path) -> VideoFormat:
    try:
        return VideoFormat(path.suffix.lower())
    except ValueError:
        raise SimulationError(f'{path}: ' + unknown_choice(
            'video extension', path.suffix, [f.value for f in VideoFormat])) from None


def _check_fps(fps: float) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise SimulationError(f'fps must be a number, got {fps!r}') from None
    if not (math.isfinite(value) and value > 0):
        raise SimulationError(f'fps must be > 0 and finite, got {fps!r}')
    return value


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise SimulationError(f'size must be (width, height) in pixels, got {size!r}') from None
    if (width, height) != tuple(size) or min(width, height) < _MIN_SIZE_PX or width % 2 \
            or height % 2:
        raise SimulationError(f'size must be (width, height) of even integers >= '
                              f'{_MIN_SIZE_PX} (H.264 needs even sizes), got {size!r}')
    return width, height


def _check_qpos(model: mujoco.MjModel, qpos_frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(qpos_frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != model.nq or frames.shape[0] < 1:
        raise SimulationError(f'qpos_frames has shape {frames.shape}, expected (T, {model.nq}) '
                              f'with T >= 1 (model.nq = {model.nq})')
    bad = np.argwhere(~np.isfinite(frames))
    if len(bad):
        raise SimulationError(f'qpos_frames is not finite at frame {bad[0][0]}, '
                              f'column {bad[0][1]}')
    return frames


def _motion_keypoints(motion: BimanualMotion, fps: float, num_frames: int,
                      source_frames: np.ndarray | None = None) -> np.ndarray:
    """(T, 2, 21, 3) keypoints of ``motion`` at ``fps``, checked against the frame count, or
    placed at ``source_frames`` (T,) of a retimed clip (linear between frames); NaN for a hand
    absent from the motion (not drawn)."""
    if not isinstance(motion, BimanualMotion):
        raise SimulationError(f'motion must be a BimanualMotion, got {type(motion).__name__}')
    resampled = motion if math.isclose(motion.fps, fps, rel_tol=1e-9) else motion.resample(fps)
    if source_frames is not None:
        source = np.asarray(source_frames, dtype=np.float64)
        if source.shape != (num_frames,) or not np.all(np.isfinite(source)) \
                or source.min(initial=0.0) < 0.0 \
                or source.max(initial=0.0) > resampled.num_frames - 1:
            raise SimulationError(f'source_frames must be {num_frames} frame numbers of the '
                                  f'motion (0 to {resampled.num_frames - 1}): pass the motion '
                                  f'the clip was retargeted from')
        kp = np.asarray(resampled.keypoints, dtype=np.float64)  # (M, 2, 21, 3)
        i = np.minimum(np.floor(source).astype(int), max(kp.shape[0] - 2, 0))
        j = np.minimum(i + 1, kp.shape[0] - 1)
        w = (source - i)[:, None, None, None]
        placed = (1.0 - w) * kp[i] + w * kp[j]
        placed[:, ~motion.present] = np.nan
        return placed
    if resampled.num_frames != num_frames:
        detail = '' if resampled is motion else f' after resampling from {motion.fps:g} fps'
        raise SimulationError(f'the motion has {resampled.num_frames} frames at {fps:g} fps'
                              f'{detail}, the robot clip {num_frames}: pass the motion the '
                              f'clip was retargeted from')
    keypoints = np.array(resampled.keypoints, dtype=np.float64)
    keypoints[:, ~motion.present] = np.nan
    return keypoints


def _prepare_folder(path: Path) -> None:
    """Create the output folder and check that a file can be written there."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulationError(f'cannot create the folder of the video {path}: {exc}') from exc
    if path.is_dir():
        raise SimulationError(f'the video path {path} is a folder')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SimulationError(f'cannot write the video {path}: the folder {folder} is not '
                              f'writable')


def _write_mp4(path: Path, images: Iterator[np.ndarray], fps: float) -> None:
    import imageio_ffmpeg

    writer = None
    try:
        for image in images:
            if writer is None:
                height, width = image.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(path), (width, height), fps=fps, codec='libx264', quality=7,
                    pix_fmt_out='yuv420p', macro_block_size=2, ffmpeg_log_level='error')
                writer.send(None)
            writer.send(np.ascontiguousarray(image))
    except (RuntimeError, BrokenPipeError) as exc:
        raise SimulationError(f'the ffmpeg encoder failed writing {path}: {exc}') from exc
    finally:
        if writer is not None:
            writer.close()


def _write_gif(path: Path, images: Iterator[np.ndarray], fps: float) -> None:
    from PIL import Image

    # One palette per frame; Pillow keeps every frame until it writes the file.
    frames = [Image.fromarray(image).convert('P', palette=Image.Palette.ADAPTIVE)
              for image in images]
    frames[0].save(path, format='GIF', save_all=True, append_images=frames[1:], loop=0,
                   duration=max(10, round(1000 / fps)), optimize=False)
