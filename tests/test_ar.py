"""Tests for handx_gen.models.ar: the text-conditioned transformer over hand tokens."""

from __future__ import annotations

import pytest
import torch

from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.ar import (
    ARConfig,
    HandTokenGPT,
    condition_token_mask,
    deinterleave,
    interleave,
)
from handx_gen.models.masking import ConditionMask
from handx_gen.models.text_encoder import TextFeatures

TEXT_DIM = 384


def _text(batch: int, length: int = 6, seed: int = 0) -> TextFeatures:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, TEXT_DIM, generator=generator)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1:, length - 2:] = False  # shorter prompts are padded
    tokens = tokens * mask[..., None]
    pooled = torch.nn.functional.normalize(torch.randn(batch, TEXT_DIM, generator=generator),
                                           dim=-1)
    return TextFeatures(tokens, mask, pooled)


def _model(seed: int = 0, **overrides) -> HandTokenGPT:
    torch.manual_seed(seed)
    return HandTokenGPT(ARConfig.preset('tiny', dropout=0.0, **overrides)).eval()


def _tokens(batch: int, steps: int, seed: int = 0, high: int = 1000) -> torch.Tensor:
    return torch.randint(0, high, (batch, 2, steps), generator=torch.Generator().manual_seed(seed))


def test_interleave_round_trip():
    tokens = _tokens(2, 5)
    sequence = interleave(tokens)
    assert sequence.shape == (2, 10)
    assert torch.equal(sequence[:, 0::2], tokens[:, HandSide.LEFT])
    assert torch.equal(sequence[:, 1::2], tokens[:, HandSide.RIGHT])
    assert torch.equal(deinterleave(sequence), tokens)


def test_forward_shapes_and_pad_is_ignored():
    model = _model()
    tokens = _tokens(3, 4)
    out = model(tokens, _text(3))
    assert out.logits.shape == (3, 8, 1000) and out.loss.ndim == 0
    padded = tokens.clone()
    padded[:, :, 3] = model.config.pad_id
    loss = model(padded, _text(3)).loss
    assert torch.isfinite(loss)
    # Causal: logits before the padded step do not change.
    assert torch.allclose(model(padded, _text(3)).logits[:, :6], out.logits[:, :6], atol=1e-6)


def test_gpt_overfits_and_greedy_generation_reproduces():
    torch.manual_seed(0)
    model = HandTokenGPT(ARConfig.preset('tiny', dropout=0.0))
    text = _text(2)
    tokens = _tokens(2, 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model(tokens, text).loss.item()
    for _ in range(80):
        loss = model(tokens, text).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 10
    model.eval()
    generated = model.generate(text, 4, temperature=0.0, guidance=1.0)
    assert torch.equal(generated, tokens)


@pytest.mark.parametrize('guidance', [1.0, 2.5])
def test_kv_cache_gives_the_logits_of_full_recomputation(guidance):
    model = _model()
    text = _text(3)
    generator = torch.Generator().manual_seed(3)
    tokens, logits = model.generate(text, 5, guidance=guidance, generator=generator,
                                    return_logits=True)
    assert logits.shape == (3, 10, 1000)
    full = model.step_logits(text, tokens, guidance=guidance)
    assert torch.allclose(logits, full, atol=1e-4, rtol=1e-4)
    generator = torch.Generator().manual_seed(3)
    uncached = model.generate(text, 5, guidance=guidance, generator=generator, use_cache=False)
    assert torch.equal(uncached, tokens)


def test_same_seed_gives_same_tokens():
    model = _model()
    text = _text(2)

    def sample(seed: int) -> torch.Tensor:
        return model.generate(text, 6, top_k=50, top_p=0.9, temperature=1.0,
                              generator=torch.Generator().manual_seed(seed))

    first = sample(7)
    assert torch.equal(sample(7), first)
    assert not torch.equal(sample(8), first)


def test_top_k_one_is_greedy():
    model = _model()
    text = _text(2)
    greedy = model.generate(text, 4, temperature=0.0)
    top1 = model.generate(text, 4, top_k=1, generator=torch.Generator().manual_seed(0))
    tiny_p = model.generate(text, 4, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top1, greedy) and torch.equal(tiny_p, greedy)


@pytest.mark.parametrize('side', list(HandSide))
def test_reaction_keeps_the_given_hand_exactly(side):
    model = _model()
    steps = 6
    condition = ConditionMask.make('reaction', steps * 4, side=side)
    mask = condition_token_mask(condition)
    assert mask.shape == (2, steps)
    assert mask[int(side)].all() and not mask[int(side.other)].any()
    given = _tokens(2, steps, seed=5)
    out = model.generate(_text(2), steps, given=given, given_mask=mask,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, int(side)], given[:, int(side)])
    assert not torch.equal(out[:, int(side.other)], given[:, int(side.other)])


def test_inbetween_keeps_prefix_and_suffix_exactly():
    model = _model()
    steps = 8
    condition = ConditionMask.make('inbetween', steps * 4, k=8)
    mask = condition_token_mask(condition)
    assert mask[:, :2].all() and mask[:, -2:].all() and not mask[:, 2:-2].any()
    given = _tokens(2, steps, seed=6)
    out = model.generate(_text(2), steps, given=given, given_mask=mask, top_p=0.95,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :2], given[:, :, :2])
    assert torch.equal(out[:, :, -2:], given[:, :, -2:])
    # Per-sample masks work too.
    masks = torch.stack([mask, torch.zeros_like(mask)])
    out = model.generate(_text(2), steps, given=given, given_mask=masks,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0][mask], given[0][mask])


def test_condition_token_mask_modes():
    assert not condition_token_mask(ConditionMask.make('text', 16)).any()
    with pytest.raises(ModelError, match='multiple of 4'):
        condition_token_mask(ConditionMask.make('text', 30))
    with pytest.raises(ModelError, match='k >= 4'):
        condition_token_mask(ConditionMask.make('inbetween', 16, k=3))
    with pytest.raises(ModelError, match='diffusion'):
        condition_token_mask(ConditionMask.make('keyframes', 16, frames=[3]))


def test_generation_rejects_bad_inputs():
    model = _model()
    text = _text(2)
    with pytest.raises(ModelError, match='num_steps'):
        model.generate(text, 0)
    with pytest.raises(ModelError, match='num_steps'):
        model.generate(text, model.config.max_steps + 1)
    with pytest.raises(ModelError, match='TextFeatures'):
        model.generate('a prompt', 4)
    with pytest.raises(ModelError, match='384'):
        model.generate(TextFeatures(torch.zeros(2, 3, 10), torch.ones(2, 3, dtype=torch.bool),
                                    torch.zeros(2, 10)), 4)
    with pytest.raises(ModelError, match='top_k'):
        model.generate(text, 4, top_k=0)
    with pytest.raises(ModelError, match='top_p'):
        model.generate(text, 4, top_p=1.5)
    with pytest.raises(ModelError, match='temperature'):
        model.generate(text, 4, temperature=-1.0)
    with pytest.raises(ModelError, match='guidance'):
        model.generate(text, 4, guidance=float('nan'))
    with pytest.raises(ModelError, match=r'given: expected a tensor of shape \(2, 2, 4\)'):
        model.generate(text, 4, given=_tokens(2, 5))
    with pytest.raises(ModelError, match='outside the codebook'):
        model.generate(text, 4, given=torch.full((2, 2, 4), 1000))
    with pytest.raises(ModelError, match='bool'):
        model.generate(text, 4, given=_tokens(2, 4), given_mask=torch.ones(2, 4))
    with pytest.raises(ModelError, match='needs given'):
        model.generate(text, 4, given_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ModelError, match='3 prompts for a batch of 2'):
        model(_tokens(2, 4), _text(3))
    with pytest.raises(ModelError, match='integer token indices'):
        model(_tokens(2, 4).float(), text)


def test_config_validation_and_round_trip():
    config = ARConfig.preset('small')
    assert config.vocab_size == 1002 and config.bos_id == 1000 and config.pad_id == 1001
    assert ARConfig.from_dict(config.to_dict()) == config
    for name in ('tiny', 'small', 'base'):
        assert ARConfig.preset(name).d_model > 0
    with pytest.raises(ConfigError, match='preset'):
        ARConfig.preset('huge')
    with pytest.raises(ConfigError, match='valid options'):
        ARConfig.from_dict({'layers': 3})
    with pytest.raises(ConfigError, match='divide'):
        ARConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match='even'):
        ARConfig(max_tokens=11)
    with pytest.raises(ConfigError, match='guidance'):
        ARConfig(guidance=-1)
