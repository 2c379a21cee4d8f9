"""Tests for handx_gen.data.tracker_noise: a seeded model of a hand tracker's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from handx_gen.data.sources import load_source
from handx_gen.data.tracker_noise import (
    Implausible,
    TrackerNoiseConfig,
    inject_implausible,
    track,
)
from handx_gen.errors import ConfigError, DataSourceError
from handx_gen.hand.limits import anatomical_bounds, anatomical_to_pose
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide, bone_lengths, finger_keypoints
from handx_gen.motion import BimanualMotion

FPS = 30.0
NUM_FRAMES = 600  # 20 s
SKELETONS = (default_skeleton(HandSide.LEFT), default_skeleton(HandSide.RIGHT))
QUIET = dict(jitter_m=0.0, depth_scale_bias=0.0, depth_scale_drift=0.0, glitch_rate_hz=0.0,
             dropout_rate_hz=0.0, missing_rate_hz=0.0)


def _motion(num_frames: int = NUM_FRAMES) -> BimanualMotion:
    """Two hands in front of the body, fingers forward (+y), slowly flexing."""
    t = np.arange(num_frames)[:, None, None] / FPS
    lower, upper = anatomical_bounds()
    angles = (lower + upper) / 2 + 0.3 * (upper - lower) / 2 * np.sin(2 * np.pi * 0.3 * t)
    pose = np.stack([anatomical_to_pose(angles, SKELETONS[side]) for side in HandSide], axis=1)
    orient = np.zeros((num_frames, 2, 3))
    orient[:, 0, 2], orient[:, 1, 2] = np.pi / 2, -np.pi / 2  # fingers along +y
    transl = np.array([[-0.2, 0.3, 1.0], [0.2, 0.3, 1.0]]) + np.zeros((num_frames, 1, 1))
    return BimanualMotion.from_mano(FPS, orient, pose, transl, skeletons=SKELETONS)


def test_the_same_seed_gives_the_same_keypoints():
    motion = _motion()
    a, b = track(motion, seed=4), track(motion, seed=4)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.glitches, b.glitches)
    np.testing.assert_array_equal(a.lost, b.lost)
    assert not np.array_equal(track(motion, seed=5).lost, a.lost)
    clean = track(motion, TrackerNoiseConfig.clean(), seed=4)
    np.testing.assert_array_equal(clean.keypoints, motion.keypoints)
    assert not clean.glitches.any() and not clean.lost.any()


def test_jitter_is_gaussian_of_the_configured_size():
    motion = _motion()
    tracked = track(motion, TrackerNoiseConfig(**{**QUIET, 'jitter_m': 0.003}), seed=1)
    noise = tracked.keypoints - np.asarray(motion.keypoints)
    assert np.std(noise) == pytest.approx(0.003, rel=0.02)
    assert abs(np.mean(noise)) < 1e-4


def test_depth_errors_scale_offsets_along_the_view_axis_only():
    motion = _motion()
    config = TrackerNoiseConfig(**{**QUIET, 'depth_scale_bias': 0.2, 'depth_scale_drift': 0.08})
    tracked = track(motion, config, seed=2)
    clean = np.asarray(motion.keypoints, dtype=np.float64)
    offsets = clean - clean[:, :, :1]
    seen = tracked.keypoints - tracked.keypoints[:, :, :1]
    # Across the view axis (x, z) nothing changes; along it (y) offsets are scaled.
    np.testing.assert_allclose(seen[..., [0, 2]], offsets[..., [0, 2]], atol=1e-12)
    np.testing.assert_allclose(seen[..., 1], tracked.depth_scale[:, :, None] * offsets[..., 1],
                               atol=1e-12)
    assert 0.7 < tracked.depth_scale.min() and tracked.depth_scale.max() < 1.3
    assert np.ptp(tracked.depth_scale) > 0.1  # the scale drifts
    # The fingers point along the view axis: their bones vary by tens of percent.
    index = list(finger_keypoints(1))
    lengths = bone_lengths(tracked.keypoints)[..., index[1] - 1]  # (T, 2) proximal phalanx
    change = lengths / bone_lengths(clean)[..., index[1] - 1] - 1.0
    assert np.ptp(change) > 0.2


def test_glitches_last_one_frame():
    motion = _motion()
    config = TrackerNoiseConfig(**{**QUIET, 'glitch_rate_hz': 0.5})
    tracked = track(motion, config, seed=3)
    count = int(tracked.glitches.sum())
    assert 6 <= count <= 20  # 0.5 Hz per hand over 20 s: 20 expected
    jump = np.linalg.norm(tracked.keypoints - np.asarray(motion.keypoints), axis=-1).max(-1)
    assert np.all(jump[~tracked.glitches] < 1e-9)
    assert np.all((jump[tracked.glitches] > 0.019) & (jump[tracked.glitches] < 0.051))


def test_lost_hands_are_nan_for_dropouts_and_stretches():
    motion = _motion(3000)  # 100 s
    config = TrackerNoiseConfig(**{**QUIET, 'dropout_rate_hz': 0.1, 'missing_rate_hz': 0.03})
    tracked = track(motion, config, seed=4)
    assert np.all(np.isnan(tracked.keypoints[tracked.lost]))
    assert np.all(np.isfinite(tracked.keypoints[~tracked.lost]))
    runs = []
    for side in HandSide:
        lost = np.concatenate([[False], tracked.lost[:, side], [False]])
        edges = np.flatnonzero(np.diff(lost.astype(int)))
        runs += list(edges[1::2] - edges[::2])
    runs = np.array(runs)
    assert np.sum(runs <= 3) >= 10  # dropouts: ~20 expected over both hands
    assert np.sum(runs >= 9) >= 2  # stretches of 0.3-1 s: ~6 expected
    assert runs.max() <= 2 * 30 + 3


def test_wrist_centred_keypoints_are_read_back_with_the_wrist_frame(tmp_path: Path):
    motion = _motion(90)
    tracked = track(motion, TrackerNoiseConfig(wrist_centred=True, missing_rate_hz=0.0),
                    seed=5)
    seen = np.isfinite(tracked.keypoints).all(axis=(-2, -1))
    np.testing.assert_array_equal(tracked.keypoints[seen][:, 0], 0.0)
    path = tracked.save(tmp_path / 'tracked.npz')
    reading = load_source(path, fill_invalid=True, frame='wrist')
    assert reading.motion.num_frames == 90 and reading.motion.fps == FPS
    assert reading.num_invalid_frames == int((~seen).any(axis=1).sum())


@pytest.mark.parametrize('kind', list(Implausible))
def test_implausible_segments_change_only_their_frames(kind):
    keypoints = np.asarray(_motion(60).keypoints, dtype=np.float64)
    out = inject_implausible(keypoints, kind, HandSide.RIGHT, slice(20, 30))
    changed = np.abs(out - keypoints).max(axis=(-2, -1)) > 1e-9  # (T, 2)
    assert changed[20:30, 1].all()
    assert not changed[:, 0].any() and not changed[:20].any() and not changed[30:].any()
    assert inject_implausible(keypoints, kind.value, 1, slice(20, 30)).shape == keypoints.shape


def test_a_finger_bent_back_points_away_from_the_palm():
    keypoints = np.asarray(_motion(10).keypoints, dtype=np.float64)
    out = inject_implausible(keypoints, Implausible.BENT_BACK, HandSide.RIGHT, slice(0, 10))
    mcp, pip, dip, tip = finger_keypoints(1)
    proximal = out[:, 1, pip] - out[:, 1, mcp]
    middle = out[:, 1, dip] - out[:, 1, pip]
    np.testing.assert_allclose(np.sum(proximal * middle, axis=-1), 0.0, atol=1e-9)  # 90 deg
    # The right palm faces -x here (fingers +y, thumb up): bent back is towards +x.
    assert np.all(middle[:, 0] > 0.0)


def test_bad_configs_and_inputs_are_refused():
    with pytest.raises(ConfigError, match="unknown tracker noise config key 'jitter'"):
        TrackerNoiseConfig.from_dict({'jitter': 0.1})
    with pytest.raises(ConfigError, match='jitter_m'):
        TrackerNoiseConfig(jitter_m=-0.001)
    with pytest.raises(ConfigError, match='depth_scale_bias'):
        TrackerNoiseConfig(depth_scale_bias=1.0)
    with pytest.raises(ConfigError, match='view_axis'):
        TrackerNoiseConfig(view_axis=(0.0, 0.0, 0.0))
    with pytest.raises(ConfigError, match='dropout_frames'):
        TrackerNoiseConfig(dropout_frames=(0, 2))
    with pytest.raises(ConfigError, match='glitch_range_m'):
        TrackerNoiseConfig(glitch_range_m=(0.05, 0.02))
    motion = _motion(10)
    with pytest.raises(DataSourceError, match='keypoints must have shape'):
        track(motion, keypoints=np.zeros((9, 2, 21, 3)))
    keypoints = np.asarray(motion.keypoints)
    with pytest.raises(DataSourceError, match="unknown implausible segment 'wobble'"):
        inject_implausible(keypoints, 'wobble', HandSide.RIGHT, slice(0, 2))
    with pytest.raises(DataSourceError, match='holds no frame'):
        inject_implausible(keypoints, Implausible.TELEPORT, HandSide.RIGHT, slice(20, 30))
