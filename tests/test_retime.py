"""Tests for handx_ros.retarget.retime: a clip too fast for its robot is played slower along the
same joint path, within the velocity and acceleration limits; a feasible clip is unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.hand.rotations import quaternion_slerp
from handx_ros.retarget.retime import (
    RETIME_INFO_KEY,
    JointMotionLimits,
    RetimeStatus,
    retime,
    robot_motion_limits,
)
from handx_ros.retarget.trajectory import RobotTrajectory

FPS = 30.0
NAMES = ('a', 'b', 'c')
LIMITS = JointMotionLimits(NAMES, np.array([2.0, 1.5, 3.0]), np.array([20.0, 15.0, 40.0]))
TOLERANCE = 1e-5


def _clip(speed: float = 1.0, frames: int = 90, base_poses: bool = False) -> RobotTrajectory:
    t = np.arange(frames) / FPS
    qpos = np.stack([0.8 * np.sin(2 * np.pi * speed * t), 0.5 * np.cos(np.pi * speed * t),
                     0.3 * t], axis=1)
    poses = None
    if base_poses:
        angle = 1.5 * np.sin(np.pi * speed * t)  # (T,) about z
        quat = np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], axis=1)
        xyz = np.stack([0.1 * t, 0.05 * np.sin(t), 0 * t], axis=1)
        pose = np.concatenate([xyz, quat], axis=1)  # (T, 7)
        poses = np.stack([pose, pose + np.array([0.3, 0, 0, 0, 0, 0, 0])], axis=1)
    return RobotTrajectory(robot='test', fps=FPS, joint_names=NAMES, qpos=qpos,
                           base_poses=poses, converged=np.ones(frames, dtype=bool),
                           info={'source_motion': 'x.npz'})


def _on_piecewise_path(q: np.ndarray, points: np.ndarray, source: np.ndarray) -> None:
    """Every point lies on the segment of its source frame, in order."""
    assert np.all(np.diff(source) >= 0.0)
    i = np.minimum(np.floor(source).astype(int), q.shape[0] - 2)
    w = (source - i)[:, None]
    np.testing.assert_allclose(points, (1 - w) * q[i] + w * q[i + 1], atol=1e-12)


def test_a_fast_clip_is_retimed_along_its_path_within_the_limits():
    clip = _clip(speed=1.0, base_poses=True)
    retimed, result = retime(clip, LIMITS)
    assert result.status is RetimeStatus.RETIMED and result.factor > 1.5
    assert retimed.fps == clip.fps and retimed.num_frames > clip.num_frames
    assert result.duration_after_s == pytest.approx(retimed.duration_s)
    assert result.describe().startswith(f'retimed: {clip.duration_s:.2f} s -> ')
    # Same path, same order, same ends.
    source = np.asarray(retimed.info[RETIME_INFO_KEY]['source_frames'])
    assert source.shape == (retimed.num_frames,)
    assert source[0] == 0.0 and source[-1] == clip.num_frames - 1
    np.testing.assert_array_equal(retimed.qpos[0], clip.qpos[0])
    np.testing.assert_array_equal(retimed.qpos[-1], clip.qpos[-1])
    _on_piecewise_path(clip.qpos, retimed.qpos, source)
    # Within the limits, as finite differences at the clip's rate.
    step = np.diff(retimed.qpos, axis=0)
    assert np.all(np.abs(step) * FPS <= LIMITS.max_velocity * (1 + TOLERANCE))
    assert np.all(np.abs(np.diff(step, axis=0)) * FPS**2
                  <= LIMITS.max_acceleration * (1 + TOLERANCE))
    # Never faster than the original: at most one source frame per frame.
    assert np.all(np.diff(source) <= 1.0 + 1e-9)
    # Wrist poses follow the same time map.
    _on_piecewise_path(clip.base_poses[..., :3].reshape(clip.num_frames, -1),
                       retimed.base_poses[..., :3].reshape(retimed.num_frames, -1), source)
    i = np.minimum(np.floor(source).astype(int), clip.num_frames - 2)
    w = (source - i)[:, None, None]
    expected = quaternion_slerp(clip.base_poses[i, :, 3:], clip.base_poses[i + 1, :, 3:], w)
    np.testing.assert_allclose(np.abs(np.sum(retimed.base_poses[..., 3:] * expected, axis=-1)),
                               1.0, atol=1e-9)
    assert retimed.converged.all() and retimed.info['source_motion'] == 'x.npz'
    # The record survives a save and load.
    info = retimed.info[RETIME_INFO_KEY]
    assert info['factor'] == pytest.approx(result.factor, abs=1e-5)
    assert info['duration_before_s'] == pytest.approx(clip.duration_s)


def test_a_clip_within_the_limits_is_unchanged():
    clip = _clip(speed=0.1)
    same, result = retime(clip, LIMITS)
    assert same is clip and result.status is RetimeStatus.UNCHANGED
    assert result.factor == 1.0
    np.testing.assert_array_equal(result.source_frames, np.arange(clip.num_frames))


def test_a_jump_in_the_path_is_left_to_the_gate():
    clip = _clip(speed=0.1)
    qpos = clip.qpos.copy()
    qpos[40:, 1] += 1.0  # one frame: 30 rad/s
    jumped = RobotTrajectory(robot='test', fps=FPS, joint_names=NAMES, qpos=qpos)
    same, result = retime(jumped, LIMITS)
    assert same is jumped and result.status is RetimeStatus.INFEASIBLE
    assert 'jumps' in result.reason and 'b moves 0.998 rad' in result.reason
    assert 'frames 39 and 40' in result.reason


def test_retiming_a_retimed_clip_composes_the_source_frames():
    clip = _clip(speed=1.0)
    once, _ = retime(clip, LIMITS)
    slower = JointMotionLimits(NAMES, LIMITS.max_velocity / 2, LIMITS.max_acceleration / 4)
    twice, result = retime(once, slower)
    assert result.retimed
    _on_piecewise_path(once.qpos, twice.qpos, result.source_frames)
    # The stored map goes back to the first clip's frames (to its corners' chords).
    source = np.asarray(twice.info[RETIME_INFO_KEY]['source_frames'])
    assert source[0] == 0.0 and source[-1] == clip.num_frames - 1
    assert np.all(np.diff(source) >= 0.0)
    i = np.minimum(np.floor(source).astype(int), clip.num_frames - 2)
    w = (source - i)[:, None]
    np.testing.assert_allclose(twice.qpos, (1 - w) * clip.qpos[i] + w * clip.qpos[i + 1],
                               atol=0.01)
    assert twice.info[RETIME_INFO_KEY]['duration_before_s'] == pytest.approx(clip.duration_s)


def test_robot_limits_come_from_the_model():
    inspire = robot_motion_limits('inspire')
    assert inspire.velocity_of('inspire_right/index') == pytest.approx(0.5)
    allegro = robot_motion_limits('allegro')
    assert allegro.velocity_of('allegro_right/index_abduction') == pytest.approx(7.0)


def test_human_contacts_are_placed_at_the_retimed_frames():
    from handx_gen.data.synthetic import SynthConfig, load_primitives, synthesize_clip
    from handx_ros.sim.evaluate import human_contact_intervals

    load_primitives()
    config = SynthConfig(clip_duration_s=(2.0, 3.0), primitives_per_clip=(1, 1))
    motion = synthesize_clip(config, 0, 0, motion_types=['clap']).motion
    frames = motion.num_frames
    plain = human_contact_intervals(motion, motion.fps, frames)
    assert plain
    # Played twice as slowly: frame k came from source frame k / 2.
    source = np.arange(2 * frames - 1) / 2.0
    slowed = human_contact_intervals(motion, motion.fps, source.shape[0], source_frames=source)
    assert [parts for _, parts in slowed] == [parts for _, parts in plain]
    for ((a, b), _), ((c, d), _) in zip(plain, slowed, strict=True):
        assert abs(c - 2 * a) <= 1 and abs(d - 2 * b) <= 2


def test_a_clip_only_a_crawl_would_fix_is_left_to_the_gate():
    """A path that turns over at every frame (a tracker's jitter) needs its every step slowed
    to a stop: beyond max_factor times slower it is not retimed."""
    clip = _clip(speed=1.0)
    zigzag = clip.qpos.copy()
    zigzag[1::2] += 0.06  # (T, 3) a 6 cm-sized turn-over at every frame
    jittery = RobotTrajectory(robot='test', fps=FPS, joint_names=NAMES, qpos=zigzag)
    retimed, result = retime(jittery, LIMITS, max_factor=2.0)
    assert result.status is RetimeStatus.INFEASIBLE and 'times slower (at most 2)' in result.reason
    assert retimed is jittery
    relaxed, result = retime(jittery, LIMITS, max_factor=1000.0)
    assert result.status is RetimeStatus.RETIMED and result.factor > 2.0
