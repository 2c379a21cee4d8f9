"""Tests for handx_ros.sim.render: offscreen videos of a robot clip beside the human skeleton.

Rendering needs an OpenGL backend; without a display that is OSMesa, which ``make setup``
installs (Debian's libosmesa6). These tests render for real and never skip.
"""

from __future__ import annotations

import imageio_ffmpeg
import mujoco
import numpy as np
import pytest
from PIL import Image, ImageSequence

from handx_gen.errors import SimulationError
from handx_gen.motion import BimanualMotion
from handx_ros.sim import render
from handx_ros.sim.mjcf import load_mujoco_model
from handx_ros.sim.render import GLBackend, RenderCamera, gl_backend, render_frames, render_video

NUM_FRAMES = 10
FPS = 30.0
WIDTH, HEIGHT = 320, 240
BACKGROUND = np.array([236, 236, 236])
LEFT_COLOR = np.array([40, 110, 230])
RIGHT_COLOR = np.array([230, 110, 30])


@pytest.fixture(scope='module')
def hand_model() -> mujoco.MjModel:
    return load_mujoco_model('allegro_right')


@pytest.fixture(scope='module')
def clip(hand_model: mujoco.MjModel) -> np.ndarray:
    """(10, nq) the hand closing: every joint from 5% to 85% of its range."""
    lower, upper = hand_model.jnt_range[:, 0], hand_model.jnt_range[:, 1]
    amount = np.linspace(0.05, 0.85, NUM_FRAMES)[:, None]  # (T, 1)
    return lower + (upper - lower) * amount


@pytest.fixture(scope='module')
def motion() -> BimanualMotion:
    """Half as many frames at half the rate: left hand at x = -0.1 m, right at +0.1 m."""
    rng = np.random.default_rng(5)
    frames = NUM_FRAMES // 2
    hand_pose = rng.normal(0.0, 0.2, (frames, 2, 15, 3))
    transl = np.tile([[-0.1, 0.0, 1.0], [0.1, 0.0, 1.0]], (frames, 1, 1))
    transl[:, :, 2] += np.linspace(0.0, 0.05, frames)[:, None]
    return BimanualMotion.from_mano(FPS / 2, np.zeros((frames, 2, 3)), hand_pose, transl)


def read_mp4(path) -> np.ndarray:
    """(T, H, W, 3) uint8 frames of an MP4."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta['size']
    frames = [np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3) for frame in reader]
    return np.stack(frames)


def read_gif(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.stack([np.asarray(frame.convert('RGB')) for frame in ImageSequence.Iterator(
            image)])


def foreground(images: np.ndarray) -> np.ndarray:
    """(..., H, W) pixels that differ clearly from the background."""
    return np.abs(images.astype(int) - BACKGROUND).sum(axis=-1) > 60


def near_color(images: np.ndarray, color: np.ndarray) -> np.ndarray:
    return np.abs(images.astype(int) - color).sum(axis=-1) < 60


def check_hand_video(frames: np.ndarray, width: int = WIDTH) -> None:
    assert frames.shape == (NUM_FRAMES, HEIGHT, width, 3)
    robot = foreground(frames[:, :, :WIDTH])  # (T, H, W)
    fractions = robot.mean(axis=(1, 2))
    assert np.all(fractions > 0.03), fractions
    assert np.all(fractions < 0.8), fractions
    # The hand closes: its silhouette changes along the clip.
    changed = (robot[0] != robot[-1]).mean()
    assert changed > 0.01, changed
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 1.0


def test_mp4_frames_show_the_moving_hand(hand_model, clip, tmp_path):
    path = render_video(hand_model, clip, tmp_path / 'videos' / 'hand.mp4', FPS)
    assert path == tmp_path / 'videos' / 'hand.mp4'
    check_hand_video(read_mp4(path))
    assert [p.name for p in path.parent.iterdir()] == ['hand.mp4']  # no temporary left


def test_gif_frames_show_the_moving_hand(hand_model, clip, tmp_path):
    path = render_video(hand_model, clip, tmp_path / 'hand.gif', FPS)
    frames = read_gif(path)
    check_hand_video(frames)
    with Image.open(path) as image:
        assert image.info['duration'] == pytest.approx(1000 / FPS, abs=10)


def test_skeleton_view_beside_the_robot(hand_model, clip, motion, tmp_path):
    path = render_video(hand_model, clip, tmp_path / 'both.mp4', FPS, motion=motion)
    frames = read_mp4(path)
    check_hand_video(frames, width=2 * WIDTH)
    skeleton = frames[:, :, WIDTH:]  # (T, H, W, 3)
    left = near_color(skeleton, LEFT_COLOR)
    right = near_color(skeleton, RIGHT_COLOR)
    assert np.all(left.mean(axis=(1, 2)) > 0.002)
    assert np.all(right.mean(axis=(1, 2)) > 0.002)
    # Default view from behind the person: the left hand (x < 0) is drawn on the left.
    columns = np.arange(WIDTH)
    left_u = (left.sum(axis=(0, 1)) * columns).sum() / left.sum()
    right_u = (right.sum(axis=(0, 1)) * columns).sum() / right.sum()
    assert left_u < WIDTH / 2 < right_u
    # The motion was resampled from 15 to 30 fps and rises: the skeletons move.
    assert (left[0] != left[-1]).mean() > 0.001


def test_an_absent_hand_is_not_drawn(hand_model, clip, motion, tmp_path):
    one = BimanualMotion(motion.fps, motion.global_orient, motion.hand_pose, motion.transl,
                         motion.keypoints, present=[False, True])
    path = render_video(hand_model, clip, tmp_path / 'one.mp4', FPS, motion=one)
    skeleton = read_mp4(path)[:, :, WIDTH:]
    assert near_color(skeleton, LEFT_COLOR).mean() < 1e-4  # the left (absent) hand: nothing
    assert np.all(near_color(skeleton, RIGHT_COLOR).mean(axis=(1, 2)) > 0.002)


def test_frames_generator_matches_size_and_keeps_the_model(hand_model, clip):
    headlight = hand_model.vis.headlight.diffuse.copy()
    images = list(render_frames(hand_model, clip[:2], size=(64, 48)))
    assert [image.shape for image in images] == [(48, 64, 3)] * 2
    assert all(image.dtype == np.uint8 for image in images)
    assert foreground(np.stack(images)).mean() > 0.03
    np.testing.assert_array_equal(hand_model.vis.headlight.diffuse, headlight)


def test_named_camera_and_free_camera_settings(tmp_path):
    model = mujoco.MjModel.from_xml_string("""
    <mujoco>
      <worldbody>
        <camera name="front" pos="0 -1 0" xyaxes="1 0 0 0 0 1"/>
        <body name="box">
          <joint name="slide" type="slide" axis="1 0 0"/>
          <geom type="box" size="0.1 0.1 0.1" rgba="0.8 0.1 0.1 1"/>
        </body>
      </worldbody>
    </mujoco>""")
    qpos = np.array([[-0.2], [0.2]])  # the box slides to the right of the camera's view
    images = np.stack(list(render_frames(model, qpos, size=(64, 48), camera='front')))
    pixels = images.astype(int)
    box = pixels[..., 0] > pixels[..., 1] + 60  # red
    centres = [np.nonzero(b)[1].mean() for b in box]
    assert centres[0] < 32 < centres[1]
    close = np.stack(list(render_frames(model, qpos[:1], size=(64, 48), camera=RenderCamera(
        azimuth_deg=90.0, elevation_deg=0.0, distance_m=0.5, lookat=(0.0, 0.0, 0.0)))))
    far = np.stack(list(render_frames(model, qpos[:1], size=(64, 48), camera=RenderCamera(
        azimuth_deg=90.0, elevation_deg=0.0, distance_m=2.0, lookat=(0.0, 0.0, 0.0)))))
    assert foreground(close).mean() > 2 * foreground(far).mean()
    with pytest.raises(SimulationError, match="unknown camera 'side'.*'front'"):
        render_video(model, qpos, tmp_path / 'box.mp4', FPS, camera='side')


def test_skeleton_projection_matches_the_rendered_camera():
    """The skeleton view projects points exactly as MuJoCo renders them (same view maths)."""
    centres = np.array([[0.1, 0.3, 0.2], [-0.2, 0.0, -0.1], [0.15, -0.2, 0.05]])
    colors = np.eye(3)
    model = mujoco.MjModel.from_xml_string('<mujoco><worldbody>' + ''.join(
        f'<geom type="sphere" size="0.02" pos="{" ".join(map(str, c))}" '
        f'rgba="{" ".join(map(str, rgb))} 1"/>' for c, rgb in zip(centres, colors, strict=True))
        + '</worldbody></mujoco>')
    qpos = np.zeros((1, 0))
    for camera in (None, RenderCamera(azimuth_deg=30.0, elevation_deg=-50.0)):
        image = next(render_frames(model, qpos, camera=camera)).astype(int)
        render_model = render._render_model(model, WIDTH, HEIGHT)
        view = render._robot_view(render_model, mujoco.MjData(render_model), qpos, camera,
                                  WIDTH, HEIGHT)
        pixels, visible = render._project(centres, view, WIDTH, HEIGHT)
        assert visible.all()
        for channel, expected in enumerate(pixels):
            others = np.delete(image, channel, axis=-1)
            mask = (image[..., channel] > 100) & np.all(others < 80, axis=-1)
            rows, cols = np.nonzero(mask)
            assert len(rows) > 10
            np.testing.assert_allclose([cols.mean(), rows.mean()], expected, atol=1.5)


def test_stale_display_falls_back_to_osmesa(hand_model, clip, monkeypatch):
    for name in ('MUJOCO_GL', 'PYOPENGL_PLATFORM', 'WAYLAND_DISPLAY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('DISPLAY', ':987')  # no such X server
    assert gl_backend() is GLBackend.GLFW
    image = next(render_frames(hand_model, clip[:1]))
    assert foreground(image).mean() > 0.03


def test_bad_inputs_raise_clear_errors(hand_model, clip, motion, tmp_path):
    with pytest.raises(SimulationError, match=r'shape \(10, 17\), expected \(T, 16\)'):
        render_video(hand_model, np.zeros((10, hand_model.nq + 1)), tmp_path / 'a.mp4', FPS)
    bad = clip.copy()
    bad[3, 2] = np.nan
    with pytest.raises(SimulationError, match='not finite at frame 3, column 2'):
        render_video(hand_model, bad, tmp_path / 'a.mp4', FPS)
    with pytest.raises(SimulationError, match=r"unknown video extension '\.avi'.*'\.gif'"):
        render_video(hand_model, clip, tmp_path / 'a.avi', FPS)
    with pytest.raises(SimulationError, match='fps must be > 0'):
        render_video(hand_model, clip, tmp_path / 'a.mp4', 0.0)
    with pytest.raises(SimulationError, match='even integers'):
        render_video(hand_model, clip, tmp_path / 'a.mp4', FPS, size=(321, 240))
    with pytest.raises(SimulationError, match='motion has 10 frames at 30 fps after '
                                              'resampling from 15 fps, the robot clip 4'):
        render_video(hand_model, clip[:4], tmp_path / 'a.mp4', FPS, motion=motion)
    with pytest.raises(SimulationError, match='elevation_deg'):
        RenderCamera(elevation_deg=95.0)
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('x')
    with pytest.raises(SimulationError, match='cannot create the folder'):
        render_video(hand_model, clip, blocker / 'a.mp4', FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['not_a_folder']


def test_backend_choice_follows_the_environment(monkeypatch):
    for name in ('MUJOCO_GL', 'PYOPENGL_PLATFORM', 'DISPLAY', 'WAYLAND_DISPLAY'):
        monkeypatch.delenv(name, raising=False)
    assert gl_backend() is GLBackend.OSMESA
    monkeypatch.setenv('DISPLAY', ':0')
    assert gl_backend() is GLBackend.GLFW
    monkeypatch.setenv('PYOPENGL_PLATFORM', 'egl')
    assert gl_backend() is GLBackend.EGL
    monkeypatch.setenv('MUJOCO_GL', 'osmesa')
    assert gl_backend() is GLBackend.OSMESA
    monkeypatch.setenv('MUJOCO_GL', 'vulkan')
    with pytest.raises(SimulationError, match="unknown MUJOCO_GL backend 'vulkan'.*'osmesa'"):
        gl_backend()
    monkeypatch.setenv('MUJOCO_GL', 'disable')
    with pytest.raises(SimulationError, match='rendering is disabled'):
        gl_backend()


def test_unavailable_backend_says_how_to_install(hand_model, clip, monkeypatch, tmp_path):
    class BrokenContext:
        def __init__(self, width: int, height: int) -> None:
            raise RuntimeError('Failed to create OSMesa GL context.')

    monkeypatch.setenv('MUJOCO_GL', 'osmesa')
    monkeypatch.setattr(render, '_gl_context_class', lambda backend: BrokenContext)
    with pytest.raises(SimulationError, match='osmesa OpenGL backend is unavailable.*libosmesa6'):
        render_video(hand_model, clip, tmp_path / 'a.mp4', FPS)
    assert list(tmp_path.iterdir()) == []


def test_a_humanoid_video_frames_its_hands():
    """The G1's video is framed on its hands, not on the whole robot: the fingers must be
    large enough to see which one moves."""
    import mujoco

    from handx_ros.sim import build_scene
    from handx_ros.sim.render import _geom_bounds

    scene = build_scene('g1_hands')
    data = mujoco.MjData(scene.model)
    frames = np.array([scene.model.qpos0])
    whole = _geom_bounds(scene.model, data, frames)
    hands = _geom_bounds(scene.model, data, frames, scene.hand_body_ids)
    extent = lambda bounds: float(np.max(bounds[1] - bounds[0]))  # noqa: E731
    assert extent(hands) < 0.5 * extent(whole)
    assert np.all(hands[0] >= whole[0] - 1e-9) and np.all(hands[1] <= whole[1] + 1e-9)
    # Unknown bodies fall back to the whole robot rather than an empty frame.
    assert np.allclose(_geom_bounds(scene.model, data, frames, [10_000]), whole)
