"""Tests for handx_gen.models.fsq: the FSQ quantiser and the per-hand motion tokenizer."""

from __future__ import annotations

import math

import pytest
import torch

from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.fsq import FSQ, FSQConfig, HandTokenizer, hand_slices
from handx_gen.motion import FEATURE_LAYOUT, FeatureGroup

D = FEATURE_LAYOUT.dim


def _smooth_features(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """(B, T, D) features: a few random sinusoids mixed into every feature."""
    generator = torch.Generator().manual_seed(seed)
    time = torch.linspace(0, 1, frames)
    freq = torch.rand(batch, 1, 3, generator=generator) * 3 + 0.5
    phase = torch.rand(batch, 1, 3, generator=generator) * 2 * math.pi
    basis = torch.sin(2 * math.pi * freq * time[None, :, None] + phase)  # (B, T, 3)
    return basis @ torch.randn(3, D, generator=generator) * 0.5


@pytest.mark.parametrize('levels', [(8, 5, 5, 5), (7, 5, 5, 5, 5), (2, 3)])
def test_indices_codes_round_trip_exactly(levels):
    fsq = FSQ(levels)
    assert fsq.codebook_size == math.prod(levels)
    indices = torch.arange(fsq.codebook_size)
    codes = fsq.indices_to_codes(indices)  # (N, C)
    assert codes.shape == (fsq.codebook_size, len(levels))
    assert codes.min() >= -1 and codes.max() <= 1
    assert torch.equal(fsq.codes_to_indices(codes), indices)
    assert torch.unique(codes, dim=0).shape[0] == fsq.codebook_size
    # Quantised latents are codes: through indices and back unchanged.
    z = torch.randn(500, len(levels), generator=torch.Generator().manual_seed(0)) * 2
    quantised = fsq(z)
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(quantised)), quantised)


def test_quantiser_uses_every_level_and_passes_gradients():
    fsq = FSQ((8, 5, 5, 5))
    z = (torch.randn(20000, 4, generator=torch.Generator().manual_seed(0)) * 3)
    codes = fsq(z)
    for channel, level in enumerate(fsq.levels):
        assert torch.unique(codes[:, channel]).numel() == level
    z = torch.randn(100, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
    fsq(z).sum().backward()
    assert z.grad is not None and (z.grad.abs() > 0).all()


def test_hand_slices_follow_the_layout():
    left, right = hand_slices()
    for side, piece in zip(HandSide, (left, right), strict=True):
        for group in FeatureGroup:
            inner = FEATURE_LAYOUT.slice(side, group)
            assert piece.start <= inner.start and inner.stop <= piece.stop
    assert left.stop - left.start == right.stop - right.start == FSQConfig().hand_dim


def test_tokenizer_shapes_and_hands_are_independent():
    torch.manual_seed(0)
    model = HandTokenizer(FSQConfig.preset('tiny')).eval()
    x = _smooth_features(2, 16)
    tokens = model.encode(x)
    assert tokens.shape == (2, 2, 4) and tokens.dtype == torch.int64
    assert tokens.min() >= 0 and tokens.max() < model.codebook_size
    assert model.decode(tokens).shape == x.shape
    # Changing the right hand's features leaves the left hand's tokens alone.
    changed = x.clone()
    changed[..., hand_slices()[HandSide.RIGHT]] += 1.0
    assert torch.equal(model.encode(changed)[:, HandSide.LEFT], tokens[:, HandSide.LEFT])
    # Decoding one hand's tokens changes only that hand's features.
    other = tokens.clone()
    other[:, HandSide.RIGHT] = (other[:, HandSide.RIGHT] + 1) % model.codebook_size
    left = hand_slices()[HandSide.LEFT]
    assert torch.allclose(model.decode(other)[..., left], model.decode(tokens)[..., left])


def test_bimanual_stage_starts_as_the_independent_decoding_and_couples_the_hands():
    torch.manual_seed(0)
    plain = HandTokenizer(FSQConfig.preset('tiny')).eval()
    joint = HandTokenizer(FSQConfig.preset('tiny', joint_depth=1)).eval()
    missing = joint.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith('joint.') for key in missing)
    x = _smooth_features(2, 16)
    tokens = plain.encode(x)
    assert torch.equal(joint.encode(x), tokens)  # the stage never touches the tokens
    with torch.no_grad():
        assert torch.equal(joint.decode(tokens), plain.decode(tokens))  # zero-initialised
        for param in joint.joint.parameters():
            param.normal_(0.0, 0.1)
        other = tokens.clone()
        other[:, HandSide.RIGHT] = (other[:, HandSide.RIGHT] + 1) % joint.codebook_size
        left = hand_slices()[HandSide.LEFT]
        # Now the right hand's tokens move the left hand's features too.
        assert not torch.allclose(joint.decode(other)[..., left],
                                  joint.decode(tokens)[..., left])
    with pytest.raises(ConfigError, match='joint_depth'):
        FSQConfig(joint_depth=-1)


def test_tokenizer_overfits_one_batch():
    torch.manual_seed(0)
    model = HandTokenizer(FSQConfig.preset('tiny'))
    x = _smooth_features(2, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model(x).reconstruction_loss.item()
    for _ in range(120):
        out = model(x)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.reconstruction_loss.item() < first / 20
    model.eval()
    with torch.no_grad():
        tokens = model.encode(x)
        decoded = model.decode(tokens)
        out = model(x)
    assert torch.equal(out.tokens, tokens)
    assert torch.allclose(out.reconstruction, decoded, atol=1e-5)
    assert ((decoded - x) ** 2).mean() < 0.05 * (x ** 2).mean()


def test_tokenizer_rejects_bad_inputs():
    model = HandTokenizer(FSQConfig.preset('tiny'))
    with pytest.raises(ModelError, match='multiple of 4'):
        model.encode(torch.zeros(1, 30, D))
    with pytest.raises(ModelError, match=r'\(B, T, 324\)'):
        model.encode(torch.zeros(1, 16, 100))
    with pytest.raises(ModelError, match='floating point'):
        model.encode(torch.zeros(1, 16, D, dtype=torch.long))
    with pytest.raises(ModelError, match=r'\[0, 1000\)'):
        model.decode(torch.full((1, 2, 4), 1000))
    with pytest.raises(ModelError, match=r'\(B, 2, S\)'):
        model.decode(torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ModelError, match='integers'):
        model.decode(torch.zeros(1, 2, 4))


def test_config_validation_and_round_trip():
    config = FSQConfig.from_dict({'levels': [7, 5, 5, 5, 5], 'channels': 64})
    assert config.codebook_size == 4375 and config.levels == (7, 5, 5, 5, 5)
    assert FSQConfig.from_dict(config.to_dict()) == config
    assert FSQConfig().codebook_size == 1000
    for name in ('tiny', 'small', 'base'):
        HandTokenizer(FSQConfig.preset(name))
    with pytest.raises(ConfigError, match='preset'):
        FSQConfig.preset('huge')
    with pytest.raises(ConfigError, match='valid options'):
        FSQConfig.from_dict({'level': [8, 5]})
    with pytest.raises(ConfigError, match='FSQ level'):
        FSQConfig(levels=(8, 1))
    with pytest.raises(ConfigError, match='power of two'):
        FSQConfig(downsample=3)
    with pytest.raises(ConfigError, match='hand_dim'):
        HandTokenizer(FSQConfig(hand_dim=100))
