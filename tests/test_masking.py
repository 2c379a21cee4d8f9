"""Tests for handx_gen.models.masking: condition masks and their training sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from handx_gen.errors import ConfigError
from handx_gen.hand.topology import HandSide
from handx_gen.models.masking import (
    ConditionMask,
    MaskMode,
    MaskSamplerConfig,
    apply_condition,
    make_mask,
    sample_masks,
)
from handx_gen.motion import FEATURE_LAYOUT, FeatureGroup

T = 30
D = FEATURE_LAYOUT.dim


def _hand_dims(side: HandSide) -> np.ndarray:
    return FEATURE_LAYOUT.group_mask((side, g) for g in FeatureGroup)


def test_text_mask_gives_nothing():
    mask = make_mask('text', T)
    assert mask.shape == (T, D) and mask.dtype == bool
    assert not mask.any()


@pytest.mark.parametrize('side', list(HandSide))
def test_reaction_mask_gives_exactly_one_hand(side):
    mask = make_mask(MaskMode.REACTION, T, side=side.name.lower())
    assert np.all(mask[:, _hand_dims(side)])
    assert not mask[:, _hand_dims(side.other)].any()
    condition = ConditionMask.make('reaction', T, side=int(side))
    assert condition.hand_given(side) and not condition.hand_given(side.other)
    assert np.array_equal(condition.array, mask)


def test_inbetween_mask_gives_first_and_last_k_frames():
    k = 4
    mask = make_mask('inbetween', T, k=k)
    expected_frames = np.zeros(T, dtype=bool)
    expected_frames[:k] = expected_frames[T - k:] = True
    assert np.array_equal(mask.all(axis=1), expected_frames)
    assert np.array_equal(mask.any(axis=1), expected_frames)


def test_keyframes_mask_gives_listed_frames():
    frames = [0, 7, 7, 29]
    condition = ConditionMask.make('keyframes', T, frames=frames)
    assert condition.frames == (0, 7, 29)
    mask = condition.array
    assert np.array_equal(np.flatnonzero(mask.all(axis=1)), [0, 7, 29])
    assert np.array_equal(np.flatnonzero(mask.any(axis=1)), [0, 7, 29])


@pytest.mark.parametrize('side', [None, HandSide.LEFT, HandSide.RIGHT])
@pytest.mark.parametrize('include_orient', [False, True])
def test_trajectory_mask_gives_wrist_paths(side, include_orient):
    mask = make_mask('trajectory', T, side=side, include_orient=include_orient)
    sides = list(HandSide) if side is None else [side]
    groups = [FeatureGroup.TRANSL] + ([FeatureGroup.GLOBAL_ORIENT] if include_orient else [])
    expected = FEATURE_LAYOUT.group_mask((s, g) for s in sides for g in groups)
    assert np.array_equal(mask, np.broadcast_to(expected, (T, D)))
    for s in HandSide:
        assert not mask[:, FEATURE_LAYOUT.slice(s, FeatureGroup.HAND_POSE)].any()
        assert not mask[:, FEATURE_LAYOUT.slice(s, FeatureGroup.KEYPOINTS)].any()


def test_mask_as_tensor_and_helpers():
    tensor = make_mask('inbetween', T, k=2, as_tensor=True)
    assert tensor.dtype == torch.bool and tensor.shape == (T, D)
    condition = ConditionMask.make('inbetween', T, k=2)
    assert condition.given_fraction == pytest.approx(4 / T)
    assert condition.given_frames.sum() == 4 and condition.given_dims.all()
    assert condition.to_dict()['k'] == 2


def test_apply_condition_keeps_known_values_exactly():
    mask = make_mask('reaction', T, side='left')
    known = np.random.default_rng(0).normal(size=(T, D))
    generated = np.zeros((T, D))
    out = apply_condition(mask, known, generated)
    assert np.array_equal(out[mask], known[mask]) and not out[~mask].any()
    out_t = apply_condition(torch.from_numpy(mask), torch.from_numpy(known),
                            torch.zeros(2, T, D, dtype=torch.float64))
    assert out_t.shape == (2, T, D)
    assert torch.equal(out_t[1], torch.from_numpy(out))


@pytest.mark.parametrize('kwargs, words', [
    ({'mode': 'dance', 'num_frames': T}, ["'dance'", "'inbetween'", "'keyframes'", "'text'"]),
    ({'mode': 'reaction', 'num_frames': T}, ['needs side', "'left'"]),
    ({'mode': 'reaction', 'num_frames': T, 'side': 'middle'}, ["'middle'", "'right'"]),
    ({'mode': 'inbetween', 'num_frames': T}, ['needs k']),
    ({'mode': 'inbetween', 'num_frames': T, 'k': 0}, ['[1, 14]']),
    ({'mode': 'inbetween', 'num_frames': T, 'k': 15}, ['[1, 14]', '15']),
    ({'mode': 'inbetween', 'num_frames': 2, 'k': 1}, ['at least 3 frames']),
    ({'mode': 'keyframes', 'num_frames': T}, ['needs frames']),
    ({'mode': 'keyframes', 'num_frames': T, 'frames': []}, ['at least one']),
    ({'mode': 'keyframes', 'num_frames': T, 'frames': [3, T]}, ['30', 'out of range']),
    ({'mode': 'keyframes', 'num_frames': T, 'frames': [-1]}, ['-1', 'out of range']),
    ({'mode': 'keyframes', 'num_frames': T, 'frames': [1.5]}, ['integers']),
    ({'mode': 'text', 'num_frames': 0}, ['num_frames']),
    ({'mode': 'text', 'num_frames': T, 'side': 'left'}, ['takes no side']),
    ({'mode': 'keyframes', 'num_frames': T, 'frames': [1], 'k': 2}, ['takes no k']),
])
def test_bad_arguments_raise_clear_errors(kwargs, words):
    with pytest.raises(ConfigError) as info:
        make_mask(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_sampling_is_seeded_and_hits_every_mode():
    first = sample_masks(200, 60, torch.Generator().manual_seed(3))
    second = sample_masks(200, 60, torch.Generator().manual_seed(3))
    other = sample_masks(200, 60, torch.Generator().manual_seed(4))
    assert first.masks.shape == (200, 60, D) and first.masks.dtype == torch.bool
    assert torch.equal(first.masks, second.masks) and first.conditions == second.conditions
    assert not torch.equal(first.masks, other.masks)
    assert {c.mode for c in first.conditions} == set(MaskMode)
    for mask, condition in zip(first.masks, first.conditions, strict=True):
        assert np.array_equal(mask.numpy(), condition.array)


def test_sampling_follows_configured_probabilities():
    config = MaskSamplerConfig.from_dict(
        {'probabilities': {'reaction': 3, 'keyframes': 1}, 'keyframes_max_fraction': 0.1})
    assert config.probabilities[MaskMode.TEXT] == 0.0
    assert config.probabilities[MaskMode.REACTION] == pytest.approx(0.75)
    batch = sample_masks(400, 40, torch.Generator().manual_seed(0), config)
    modes = [c.mode for c in batch.conditions]
    assert set(modes) == {MaskMode.REACTION, MaskMode.KEYFRAMES}
    assert 0.65 < modes.count(MaskMode.REACTION) / 400 < 0.85
    assert all(len(c.frames) <= 4 for c in batch.conditions if c.frames is not None)
    assert MaskSamplerConfig.from_dict(config.to_dict()) == config


def test_sampling_skips_inbetween_for_short_clips():
    batch = sample_masks(50, 2, torch.Generator().manual_seed(0))
    assert MaskMode.INBETWEEN not in {c.mode for c in batch.conditions}
    with pytest.raises(ConfigError, match='3 frames'):
        sample_masks(4, 2, torch.Generator(), {'inbetween': 1.0})


@pytest.mark.parametrize('values, words', [
    ({'probabilities': {'dance': 1.0}}, ["'dance'"]),
    ({'probabilities': {'text': -1.0}}, ['non-negative']),
    ({'probabilities': {'text': 0.0}}, ['positive sum']),
    ({'inbetween_max_fraction': 0.0}, ['inbetween_max_fraction']),
    ({'trajectory_orient_probability': 2.0}, ['trajectory_orient_probability']),
    ({'speed': 1.0}, ["'speed'", "'probabilities'"]),
])
def test_bad_sampler_config_raises(values, words):
    with pytest.raises(ConfigError) as info:
        MaskSamplerConfig.from_dict(values)
    for word in words:
        assert word in str(info.value)


def test_sample_masks_bad_arguments():
    with pytest.raises(ConfigError, match='batch'):
        sample_masks(0, T, torch.Generator())
    with pytest.raises(ConfigError, match='generator'):
        sample_masks(2, T, np.random.default_rng(0))
