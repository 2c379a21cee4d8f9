"""Retargeting within the robot's velocity limits: no joint moves more than its limit x dt in
one frame (after a clip's first), on every shipped hand, both bimanual kinds, with collision
avoidance, the dex backend and the humanoid's arms; targets out of reach lag and are
reported."""

from __future__ import annotations

import numpy as np
import pytest

from handx_gen.hand.topology import HandSide
from handx_ros.retarget.bimanual import (
    HumanoidRetargeter,
    PairRetargeter,
    build_retargeter,
    lag_summary,
)
from handx_ros.retarget.dex_backend import dex_available
from handx_ros.retarget.retargeter import HandRetargeter, RetargetConfig, velocity_bounded
from handx_ros.retarget.spec import load_robot_spec

FPS = 30.0
HANDS = [('allegro_right', None), ('inspire_left', None), ('g1_hands', HandSide.LEFT),
         ('g1_hands', HandSide.RIGHT), ('gr1', HandSide.LEFT)]
SLACK = 1e-9  # rad: rounding of the box intersection


def _keypoints(hand: HandRetargeter, qpos: np.ndarray) -> np.ndarray:
    """(T, 21, 3) human wrist-frame keypoints that map exactly onto the robot's frames at the
    joint angles (T, n)."""
    return np.stack([hand.keypoints_from_robot(hand.robot_keypoints(u)) for u in qpos])


def _fast_fist(hand: HandRetargeter, rest: int = 4, closing: int = 4, hold: int = 20
               ) -> np.ndarray:
    """Joint angles (T, n): open, closing to a fist in ``closing`` frames (0.13 s at 30
    fps), held."""
    open_ = hand.chain.clip(np.zeros(hand.chain.nu))
    fist = hand.lower + 0.85 * (hand.upper - hand.lower)
    s = np.concatenate([np.zeros(rest), np.linspace(0.0, 1.0, closing + 1)[1:],
                        np.ones(hold)])
    return open_ + s[:, None] * (fist - open_)


def _assert_bounded(qpos: np.ndarray, max_step: np.ndarray, what: str) -> None:
    step = np.abs(np.diff(qpos, axis=0))  # (T - 1, n)
    excess = step - max_step
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert excess.max() <= SLACK, (
        f'{what}: frame {worst[0] + 1} joint {worst[1]} moved {step[worst]:.4f} rad, bound '
        f'{max_step[worst[1]]:.4f}')


@pytest.mark.parametrize(('name', 'side'), HANDS)
def test_fast_fist_stays_within_the_velocity_limit_and_lags_visibly(name, side):
    hand = HandRetargeter(load_robot_spec(name), side, fps=FPS)
    qpos = _fast_fist(hand)
    result = hand.retarget(_keypoints(hand, qpos))
    np.testing.assert_allclose(hand.max_step, hand.chain.max_velocity / FPS)
    _assert_bounded(result.qpos, hand.max_step, name)
    assert np.all(result.qpos >= hand.lower) and np.all(result.qpos <= hand.upper)
    # The closing asks for more than the robot can do in one frame: those frames lag.
    needed = np.abs(np.diff(qpos, axis=0)) > hand.max_step + 1e-6  # (T - 1, n)
    assert needed.any(), 'the clip is meant to be too fast for the robot'
    first_fast = int(np.flatnonzero(needed.any(axis=1))[0]) + 1
    assert result.velocity_limited[first_fast]
    assert not result.velocity_limited[0]  # nothing to bound the first frame against
    # Frames whose fingertips are off target while the robot slews are all reported.
    off = result.residual_m > 0.005
    assert not np.any(off[1:] & ~result.velocity_limited[1:] & ~result.converged[1:])


def test_a_lagging_fist_catches_up_once_the_target_holds():
    # Joint-space fist targets may press the thumb into the palm, which the self-collision
    # barrier refuses; this is about the velocity bound alone.
    hand = HandRetargeter(load_robot_spec('allegro_right'),
                          config=RetargetConfig(self_collision=False), fps=FPS)
    result = hand.retarget(_keypoints(hand, _fast_fist(hand, hold=30)))
    lagging = np.flatnonzero(result.velocity_limited)
    assert lagging.size and lagging.max() < result.num_frames - 5
    assert result.residual_m[-1] < 0.002
    assert result.residual_m[lagging].max() > 0.01  # the lag shows in the residual


def test_the_first_frame_after_reset_is_not_bounded():
    hand = HandRetargeter(load_robot_spec('allegro_right'), fps=FPS)
    fist = hand.lower + 0.85 * (hand.upper - hand.lower)
    kp = _keypoints(hand, fist[None])[0]
    first = hand.step(kp)
    assert np.abs(first.qpos - hand.chain.neutral()).max() > 5 * hand.max_step.max()
    assert not first.velocity_limited
    hand.reset()
    lower, upper = hand.step_bounds()
    np.testing.assert_array_equal(lower, hand.lower)
    hand.step(kp)
    lower, upper = hand.step_bounds()
    assert np.all(upper - lower <= 2 * hand.max_step + SLACK)


def _random_clip(hand: HandRetargeter, rng: np.random.Generator, frames: int = 45
                 ) -> np.ndarray:
    """(T, 21, 3) keypoints: random joint targets every 2-6 frames (often faster than the
    robot), keypoint noise of a few mm and single-frame glitches of 2-5 cm."""
    qpos = np.empty((frames, hand.chain.nu))
    t = 0
    u = rng.uniform(hand.lower, hand.upper)
    while t < frames:
        hold = int(rng.integers(2, 7))
        qpos[t:t + hold] = u
        u = rng.uniform(hand.lower, hand.upper)
        t += hold
    kp = _keypoints(hand, qpos)
    kp = kp + rng.normal(0.0, 0.003, kp.shape)
    for t in rng.choice(frames, size=4, replace=False):
        direction = rng.normal(size=3)
        kp[t, rng.integers(1, 21)] += rng.uniform(0.02, 0.05) * direction / np.linalg.norm(
            direction)
    return kp


@pytest.mark.parametrize(('name', 'side'), HANDS)
def test_random_clips_never_exceed_the_velocity_limit(name, side):
    hand = HandRetargeter(load_robot_spec(name), side, fps=FPS)
    rng = np.random.default_rng(7)
    lagged = 0
    for _ in range(3):
        result = hand.retarget(_random_clip(hand, rng))
        _assert_bounded(result.qpos, hand.max_step, name)
        lagged += int(result.velocity_limited.sum())
    assert lagged > 0


def _world_frames(retargeter, kp_wrist: np.ndarray, rng: np.random.Generator):
    """World keypoints (T, 2, 21, 3) and wrist poses for wrist-frame keypoints (T, 2, 21, 3):
    each wrist at a fixed place, with a few sudden jumps of 10-30 cm."""
    T = kp_wrist.shape[0]
    R = np.broadcast_to(np.eye(3), (T, 2, 3, 3)).copy()
    p = np.zeros((T, 2, 3))
    p[:, 0] = [-0.15, 0.3, 0.2]  # left of the humanoid's torso, in front of it
    p[:, 1] = [0.15, 0.3, 0.2]
    for t in rng.choice(np.arange(5, T), size=3, replace=False):
        p[t:] += rng.uniform(0.1, 0.3) * np.array([0.0, 0.0, rng.choice([-1.0, 1.0])])
    if isinstance(retargeter, HumanoidRetargeter):
        op = retargeter.spec.operator
        p = p + np.asarray(op.human_origin)  # near where the operator mapping is centred
    return kp_wrist + p[:, :, None, :], R, p


def _bimanual_clip(retargeter, rng: np.random.Generator, frames: int = 30):
    kp = np.stack([_random_clip(hand, rng, frames) for hand in retargeter.hands], axis=1)
    kp = np.nan_to_num(kp)  # keypoints a hand does not map (the G1's ring and little)
    return _world_frames(retargeter, kp, rng)


@pytest.mark.parametrize(('robot', 'options'), [
    ('allegro', {}), ('allegro', {'avoid_collisions': True}), ('inspire', {}),
    ('g1_hands', {}), ('gr1', {}),
    pytest.param('allegro', {'backend': 'dex-vector'}, marks=pytest.mark.skipif(
        not dex_available(), reason='dex-retargeting is not installed')),
])
def test_bimanual_retargeters_never_exceed_the_velocity_limits(robot, options):
    retargeter = build_retargeter(robot, fps=FPS, **options)
    limits = retargeter.joint_velocity_limits()  # (nq,)
    assert np.all(np.isfinite(limits))
    rng = np.random.default_rng(11)
    kp, R, p = _bimanual_clip(retargeter, rng)
    retargeter.reset()
    frames = [retargeter.step(kp[t], R[t], p[t]) for t in range(kp.shape[0])]
    qpos = np.array([f.qpos for f in frames])  # (T, nq)
    _assert_bounded(qpos, limits / FPS, f'{robot} {options}')
    limited = np.array([f.velocity_limited for f in frames])  # (T, 2)
    assert limited.shape == (kp.shape[0], 2) and limited.any()
    assert not limited[0].any()


def test_humanoid_arms_follow_a_wrist_jump_at_their_velocity_limit():
    retargeter = build_retargeter('g1_hands', fps=FPS)
    assert isinstance(retargeter, HumanoidRetargeter)
    hand_kp = np.stack([_keypoints(hand, hand.chain.neutral()[None])[0]
                        for hand in retargeter.hands])  # (2, 21, 3)
    kp, R, p = _world_frames(retargeter, np.repeat(np.nan_to_num(hand_kp)[None], 20, 0),
                             np.random.default_rng(0))
    p[10:] += [0.0, 0.0, 0.4]  # both wrists jump 40 cm
    kp[10:] += [0.0, 0.0, 0.4]
    retargeter.reset()
    frames = [retargeter.step(kp[t], R[t], p[t]) for t in range(20)]
    qpos = np.array([f.qpos for f in frames])
    _assert_bounded(qpos, retargeter.joint_velocity_limits() / FPS, 'g1 arms')
    assert any(f.velocity_limited.all() for f in frames[10:])


def test_clip_info_reports_the_lag():
    from handx_gen.data.synthetic import SynthConfig, synthesize_clip

    motion = synthesize_clip(SynthConfig(), 0, 1000).motion  # fast fingers near its end
    retargeter = build_retargeter('allegro', fps=motion.fps)
    assert isinstance(retargeter, PairRetargeter)
    trajectory = retargeter.retarget_motion(motion)
    _assert_bounded(trajectory.qpos, retargeter.joint_velocity_limits() / motion.fps,
                    'synthetic clip 0')
    lag = trajectory.info['lag']
    limited = np.array(trajectory.info['velocity_limited_per_hand'])  # (T, 2)
    assert lag['frames'] == int(limited.any(axis=1).sum()) > 0
    assert 0.0 < lag['longest_s'] <= lag['frames'] / motion.fps
    assert lag['max_residual_m'] > 0.0


def test_lag_summary_finds_the_longest_run():
    lagging = np.array([0, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    residual = np.array([0.0, 0.01, 0.02, 0.5, 0.03, 0.04, 0.01, 0.9])
    lag = lag_summary(lagging, residual, np.zeros(8), 10.0)
    assert lag == {'frames': 5, 'longest_s': 0.3, 'longest_start_s': 0.4,
                   'max_residual_m': 0.04, 'max_wrist_error_m': 0.0}
    assert lag_summary(np.zeros(3, bool), np.ones(3), np.ones(3), 30.0)['frames'] == 0


def test_velocity_bounded_clips_a_solution_after_the_fact():
    lower, upper = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    step = np.array([0.1, 0.1])
    u, limited = velocity_bounded(np.array([0.5, 0.02]), np.zeros(2), step, lower, upper)
    np.testing.assert_allclose(u, [0.1, 0.02])
    assert limited
    u, limited = velocity_bounded(np.array([2.0, 0.0]), None, step, lower, upper)
    np.testing.assert_allclose(u, [1.0, 0.0])
    assert not limited


def test_demo_clap_clip_stays_within_the_allegro_velocity_limit():
    from handx_gen.generate import Generator

    motion = Generator().generate(
        'The hands move towards each other, then the palms strike together twice.',
        seed=0, seconds=4.0)
    retargeter = build_retargeter('allegro', fps=motion.fps)
    trajectory = retargeter.retarget_motion(motion)
    limits = retargeter.joint_velocity_limits()
    np.testing.assert_allclose(limits, 7.0)
    _assert_bounded(trajectory.qpos, limits / motion.fps, 'demo clap')
