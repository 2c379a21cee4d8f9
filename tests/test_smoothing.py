"""Tests of handx_gen.models.smoothing, and of the smoothing in the generate path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handx_gen.errors import ConfigError, ModelError
from handx_gen.generate import Generator
from handx_gen.hand.topology import HandSide
from handx_gen.models.masking import ConditionMask
from handx_gen.models.smoothing import (
    Smoother,
    SmoothingConfig,
    penalty_weight,
    smooth_columns,
)
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup

FPS = 30.0
FRAMES = 120


def _jerk(x: np.ndarray) -> float:
    """Mean magnitude of the third difference of (T, C) values, per second cubed."""
    return float(np.abs(np.diff(x, n=3, axis=0)).mean() * FPS ** 3)


def _minimum_jerk(num_frames: int, start: float, end: float, first: int, last: int
                  ) -> np.ndarray:
    """(T,) a minimum-jerk move from ``start`` at frame ``first`` to ``end`` at ``last``."""
    tau = np.clip((np.arange(num_frames) - first) / (last - first), 0.0, 1.0)
    return start + (end - start) * (10 * tau ** 3 - 15 * tau ** 4 + 6 * tau ** 5)


def _features(seed: int) -> np.ndarray:
    """(T, D) smooth features with a period-2 zigzag and noise on top, as the models leave."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES)[:, None] / FPS
    smooth = rng.normal(0, 0.2, FEATURE_LAYOUT.dim) \
        + 0.1 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, FEATURE_LAYOUT.dim) * t
                       + rng.uniform(0, 6, FEATURE_LAYOUT.dim))
    zigzag = 0.004 * (-1.0) ** np.arange(FRAMES)[:, None]
    return smooth + zigzag + rng.normal(0, 0.002, smooth.shape)


def _dense_solution(x: np.ndarray, free: np.ndarray, jerk: np.ndarray, step: np.ndarray
                    ) -> np.ndarray:
    """The same least squares by its dense normal equations."""
    num_frames = x.shape[0]
    d3 = np.diff(np.eye(num_frames), n=3, axis=0)
    d1 = np.diff(np.eye(num_frames), axis=0)
    penalty = d3.T @ (d3 * jerk[:, None]) + d1.T @ (d1 * step[:, None])
    rows, fixed = np.flatnonzero(free), np.flatnonzero(~free)
    out = x.copy()
    out[rows] = np.linalg.solve(np.eye(rows.size) + penalty[np.ix_(rows, rows)],
                                x[rows] - penalty[np.ix_(rows, fixed)] @ x[fixed])
    return out


def test_banded_solve_matches_the_normal_equations() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        num_frames = int(rng.integers(4, 40))
        x = rng.normal(size=(num_frames, 3))
        free = rng.random(num_frames) < rng.uniform(0.2, 1.0)
        jerk = rng.uniform(0, 10, num_frames - 3)
        step = rng.uniform(0, 5, num_frames - 1) * (rng.random() < 0.5)
        np.testing.assert_allclose(smooth_columns(x, free, jerk, step),
                                   _dense_solution(x, free, jerk, step), atol=1e-9)


@pytest.mark.parametrize(('mode', 'options'), [
    ('text', {}), ('reaction', {'side': 'left'}), ('inbetween', {'k': 15}),
    ('keyframes', {'frames': [0, 31, 32, 90]}), ('trajectory', {'side': 'right'})])
def test_given_entries_are_kept_bit_exactly(mode: str, options: dict) -> None:
    x = _features(1)
    mask = ConditionMask.make(mode, FRAMES, **options).array
    smoother = Smoother(fps=FPS)
    out = smoother.smooth_features(x, mask).features
    np.testing.assert_array_equal(out[mask], x[mask])
    assert not np.allclose(out[~mask], x[~mask])  # the rest was smoothed
    # the same through the array interface, numpy float32 and torch alike
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(smoother.smooth(x32, mask)[mask], x32[mask])
    tensor = torch.from_numpy(x32)[None]
    smoothed = smoother.smooth(tensor, torch.from_numpy(mask))
    assert smoothed.dtype == torch.float32 and smoothed.shape == tensor.shape
    assert torch.equal(smoothed[0][torch.from_numpy(mask)], tensor[0][torch.from_numpy(mask)])


def test_a_jittery_signal_loses_its_jitter_and_keeps_its_shape() -> None:
    rng = np.random.default_rng(2)
    clean = np.stack([_minimum_jerk(FRAMES, 0.0, 0.2, 10, 50),
                      _minimum_jerk(FRAMES, 1.0, 0.9, 40, 100)], axis=1)
    jittery = clean + 0.003 * (-1.0) ** np.arange(FRAMES)[:, None] \
        + rng.normal(0, 0.002, clean.shape)
    out = Smoother(fps=FPS).smooth(jittery)
    assert _jerk(out) < _jerk(jittery) / 50  # the zigzag is gone, slow noise is left
    rms = [float(np.sqrt(np.mean((v - clean) ** 2))) for v in (out, jittery)]
    assert rms[0] < rms[1] / 3 and rms[0] < 0.0015  # nearer the clean motion than before


def test_a_clean_minimum_jerk_move_is_nearly_unchanged() -> None:
    clean = np.stack([_minimum_jerk(FRAMES, 0.0, 0.15, 20, 80),  # 15 cm in 2 s
                      _minimum_jerk(FRAMES, 0.3, 0.2, 0, FRAMES - 1)], axis=1)
    out = Smoother(SmoothingConfig(max_wrist_step_m=None), fps=FPS).smooth(clean)
    assert np.abs(out - clean).max() < 5e-4  # half a millimetre
    assert _jerk(out) <= 1.05 * _jerk(clean)


def test_the_cutoff_halves_an_oscillation_at_that_frequency() -> None:
    frames = 600
    t = np.arange(frames) / FPS
    for cutoff in (3.0, 4.0, 6.0):
        smoother = Smoother(SmoothingConfig(cutoff_hz=cutoff), fps=FPS)
        wave = np.sin(2 * np.pi * cutoff * t + 0.3)[:, None]
        middle, original = smoother.smooth(wave)[200:400, 0], wave[200:400, 0]
        gain = middle @ original / (original @ original)  # no phase shift: a symmetric filter
        assert gain == pytest.approx(0.5, abs=0.01)
    # the finger joints have their own cutoff (fingers move faster than wrists)
    wave = np.sin(2 * np.pi * 6.0 * t + 0.3)[:, None] * np.ones(FEATURE_LAYOUT.dim)
    smoothed = Smoother(SmoothingConfig(cutoff_hz=4.0, finger_cutoff_hz=6.0),
                        fps=FPS).smooth_features(wave, np.zeros_like(wave, dtype=bool)).features
    fingers = FEATURE_LAYOUT.group_mask([(s, FeatureGroup.HAND_POSE) for s in HandSide])
    gains = smoothed[200:400].T @ wave[200:400, 0] / (wave[200:400, 0] @ wave[200:400, 0])
    np.testing.assert_allclose(gains[fingers], 0.5, atol=0.01)
    assert (gains[~fingers] < 0.3).all()
    zigzag = (-1.0) ** np.arange(frames)[:, None]
    weight = penalty_weight(4.0, FPS)
    assert np.abs(Smoother(fps=FPS).smooth(zigzag)[200:400]).max() == pytest.approx(
        1 / (1 + 64 * weight), rel=1e-3)


def _wrist_steps(features: np.ndarray, side: HandSide) -> np.ndarray:
    transl = features[:, FEATURE_LAYOUT.slice(side, FeatureGroup.TRANSL)]
    return np.linalg.norm(np.diff(transl, axis=0), axis=1)


def test_a_wrist_jump_is_spread_within_the_bound() -> None:
    x = _features(3)
    right = FEATURE_LAYOUT.slice(HandSide.RIGHT, FeatureGroup.TRANSL)
    x[:, right] = [0.2, 0.3, 1.0]
    x[60:, right] += [0.07, 0.0, 0.0]  # 7 cm in one frame
    x[70:, right] += [0.0, 0.0, 0.05]
    mask = np.zeros_like(x, dtype=bool)
    unbounded = Smoother(SmoothingConfig(max_wrist_step_m=None), fps=FPS)
    assert _wrist_steps(unbounded.smooth_features(x, mask).features, HandSide.RIGHT).max() \
        > 0.015
    result = Smoother(fps=FPS).smooth_features(x, mask)
    steps = _wrist_steps(result.features, HandSide.RIGHT)
    assert steps.max() <= 0.01 + 1e-9 and result.max_wrist_step_m == pytest.approx(
        max(steps.max(), _wrist_steps(result.features, HandSide.LEFT).max()))
    assert result.rounds >= 1
    end = result.features[-1, right]
    np.testing.assert_allclose(end, [0.27, 0.3, 1.05], atol=0.01)  # still gets there


def test_steps_between_given_frames_are_not_bounded() -> None:
    x = _features(4)
    left = FEATURE_LAYOUT.slice(HandSide.LEFT, FeatureGroup.TRANSL)
    x[60:, left] += [0.05, 0.0, 0.0]  # a fast given move
    mask = ConditionMask.make('reaction', FRAMES, side='left').array
    result = Smoother(fps=FPS).smooth_features(x, mask)
    np.testing.assert_array_equal(result.features[mask], x[mask])
    assert result.max_wrist_step_m <= 0.01  # the generated hand's steps only


@pytest.mark.parametrize('frames', [2, 3, 5])
def test_clips_too_short_to_smooth_still_keep_the_wrist_bound(frames: int) -> None:
    x = _features(5)[:frames]
    right = FEATURE_LAYOUT.slice(HandSide.RIGHT, FeatureGroup.TRANSL)
    x[:, right] = [0.2, 0.3, 1.0]
    x[1:, right] += [0.03, 0.0, 0.0]
    result = Smoother(fps=FPS).smooth_features(x, np.zeros_like(x, dtype=bool))
    assert result.max_wrist_step_m <= 0.01
    assert np.isfinite(result.features).all()


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match='below half the frame rate'):
        Smoother(SmoothingConfig(cutoff_hz=15.0), fps=FPS)
    with pytest.raises(ConfigError, match='cutoff_hz'):
        SmoothingConfig(cutoff_hz=0.0)
    with pytest.raises(ConfigError, match='finger_cutoff_hz'):
        SmoothingConfig(finger_cutoff_hz=float('nan'))
    with pytest.raises(ConfigError, match='below half the frame rate'):
        Smoother(SmoothingConfig(finger_cutoff_hz=20.0), fps=FPS)
    with pytest.raises(ConfigError, match='max_wrist_step_m'):
        SmoothingConfig(max_wrist_step_m=-0.01)
    with pytest.raises(ConfigError, match='cutoff_hz'):  # the message lists the valid keys
        SmoothingConfig.from_dict({'cutof_hz': 3.0})
    assert SmoothingConfig.from_dict(SmoothingConfig(3.0).to_dict()) == SmoothingConfig(3.0)
    smoother = Smoother(fps=FPS)
    with pytest.raises(ModelError, match='boolean'):
        smoother.smooth(np.zeros((10, 3)), np.zeros((10, 3)))
    with pytest.raises(ModelError, match='does not fit'):
        smoother.smooth(np.zeros((10, 3)), np.zeros((9, 3), dtype=bool))
    with pytest.raises(ModelError, match='features'):
        smoother.smooth_features(np.zeros((10, 3)), np.zeros((10, 3), dtype=bool))
    # too short to have a third difference: returned as it is
    np.testing.assert_array_equal(smoother.smooth(np.ones((3, 2))), np.ones((3, 2)))


# ------------------------------------------------------------------ the generate path


@pytest.fixture(scope='module')
def shipped() -> Generator:
    return Generator()


@pytest.mark.parametrize('model', ['diffusion', 'ar'])
def test_generated_clips_keep_wrist_steps_within_a_centimetre(shipped: Generator,
                                                              model: str) -> None:
    prompt = 'The hands move towards each other, then the palms strike together twice.'
    clip = shipped.generate(prompt, model=model, seed=1)
    steps = np.linalg.norm(np.diff(clip.keypoints[:, :, 0], axis=0), axis=-1)  # (T - 1, 2)
    assert steps.max() <= 0.01 + 1e-6
    settings = clip.annotation['generated']['smoothing']
    assert settings['cutoff_hz'] == SmoothingConfig().cutoff_hz
    raw = shipped.generate(prompt, model=model, seed=1, smoothing=False)
    assert 'smoothing' not in raw.annotation['generated']
    jerk = [np.linalg.norm(np.diff(c.keypoints, n=3, axis=0), axis=-1).mean()
            for c in (clip, raw)]
    assert jerk[0] < jerk[1] / 2


def test_smoothing_option_is_checked(shipped: Generator) -> None:
    with pytest.raises(ConfigError, match='smoothing'):
        shipped.generate('The hands wave.', model='ar', smoothing='yes')
