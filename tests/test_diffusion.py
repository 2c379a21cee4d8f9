"""Tests for handx_gen.models.diffusion: the masked-condition motion diffusion model."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.diffusion import (
    CHECKPOINT_FORMAT,
    DiffusionConfig,
    GaussianDiffusion,
    cosine_alphas_cumprod,
)
from handx_gen.models.masking import ConditionMask
from handx_gen.models.smoothing import Smoother
from handx_gen.models.text_encoder import TextFeatures
from handx_gen.motion import FEATURE_LAYOUT, BimanualMotion, FeatureGroup, Normalizer

D = FEATURE_LAYOUT.dim
T = 24
B = 2
TEXT_DIM = 384


def _smooth_motion(seed: int, num_frames: int = T) -> BimanualMotion:
    """Slowly varying random MANO parameters (a plausible, smooth clip)."""
    rng = np.random.default_rng(seed)
    phase = np.linspace(0.0, np.pi, num_frames)[:, None, None]  # (T, 1, 1)
    go_base = rng.uniform(-1.0, 1.0, size=(1, 2, 3))
    global_orient = go_base + 0.3 * np.sin(phase + rng.uniform(0, 3, size=(1, 2, 3)))
    hp_base = rng.uniform(-0.3, 0.3, size=(1, 2, 45))
    hand_pose = hp_base + 0.3 * np.sin(phase + rng.uniform(0, 3, size=(1, 2, 45)))
    transl = np.array([[-0.15, 0.0, 1.0], [0.15, 0.0, 1.0]])[None] \
        + 0.05 * np.sin(phase + rng.uniform(0, 3, size=(1, 2, 3)))
    return BimanualMotion.from_mano(30.0, global_orient, hand_pose.reshape(num_frames, 2, 15, 3),
                                    transl)


@pytest.fixture(scope='module')
def batch() -> tuple[torch.Tensor, Normalizer, torch.Tensor]:
    """Raw features (B, T, D), a normaliser fitted on them, and their normalised form."""
    raw = np.stack([FEATURE_LAYOUT.encode(_smooth_motion(seed)) for seed in range(B)])
    normalizer = Normalizer.fit([raw])
    normalised = torch.from_numpy(normalizer.normalize(raw)).float()
    return torch.from_numpy(raw), normalizer, normalised


def _text(batch_size: int = B, length: int = 7, seed: int = 0) -> TextFeatures:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch_size, length, TEXT_DIM, generator=g)
    attention_mask = torch.ones(batch_size, length, dtype=torch.bool)
    attention_mask[0, length - 2:] = False
    tokens[~attention_mask] = 0.0
    pooled = torch.nn.functional.normalize(torch.randn(batch_size, TEXT_DIM, generator=g), dim=-1)
    return TextFeatures(tokens, attention_mask, pooled)


def _tiny(**overrides) -> GaussianDiffusion:
    torch.manual_seed(0)
    return GaussianDiffusion(DiffusionConfig.preset('tiny', max_frames=32, **overrides))


@pytest.fixture(scope='module')
def model() -> GaussianDiffusion:
    return _tiny()


# ---------------------------------------------------------------------- config


def test_presets_and_round_trip():
    small = DiffusionConfig.preset('small')
    assert small == DiffusionConfig()
    assert small.feature_dim == D and small.text_dim == TEXT_DIM
    sizes = [DiffusionConfig.preset(n).d_model for n in ('tiny', 'small', 'base')]
    assert sizes == sorted(sizes)
    assert DiffusionConfig.from_dict(small.to_dict()) == small
    with pytest.raises(ConfigError, match='tiny'):
        DiffusionConfig.preset('huge')
    with pytest.raises(ConfigError, match='d_model'):
        DiffusionConfig.from_dict({'dmodel': 3})
    with pytest.raises(ConfigError, match='divisible'):
        DiffusionConfig(d_model=30, num_heads=4)
    with pytest.raises(ConfigError, match='sample_steps'):
        DiffusionConfig(sample_steps=2000)


def test_cosine_schedule_is_monotonic():
    ab = cosine_alphas_cumprod(1000)
    assert ab.shape == (1000,)
    assert torch.all(ab[1:] < ab[:-1])
    assert 0.99 < ab[0] <= 1.0 and ab[-1] < 1e-3


# ---------------------------------------------------------------------- training


def test_overfits_one_batch(batch):
    _, _, x0 = batch
    diffusion = _tiny(dropout=0.0, cond_drop_prob=0.0)
    text = _text()
    mask = torch.zeros(x0.shape, dtype=torch.bool)
    mask[:, :4] = True  # some given frames too

    def eval_loss() -> float:
        with torch.no_grad():
            losses = [diffusion.training_loss(x0, mask, text,
                                              torch.Generator().manual_seed(s))[0].item()
                      for s in range(8)]
        return float(np.mean(losses))

    before = eval_loss()
    optimizer = torch.optim.Adam(diffusion.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(150):
        loss, parts = diffusion.training_loss(x0, mask, text, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = eval_loss()
    assert set(parts) == {'x0', 'velocity', 'keypoints'}
    assert after < before / 10, (before, after)


def test_training_loss_is_deterministic_and_differentiable(model, batch):
    _, _, x0 = batch
    text = _text()
    mask = torch.zeros(T, D, dtype=torch.bool)
    model.eval()
    a, _ = model.training_loss(x0, mask, text, torch.Generator().manual_seed(3))
    b, _ = model.training_loss(x0, mask, text, torch.Generator().manual_seed(3))
    model.train()
    assert a.item() == b.item()
    a.backward()
    assert model.model.output.weight.grad is not None
    model.zero_grad()


def test_training_loss_accepts_tuple_and_no_text(model, batch):
    _, _, x0 = batch
    text = _text()
    mask = torch.zeros(x0.shape, dtype=torch.bool)
    loss, _ = model.training_loss(x0, mask, (text.tokens, text.attention_mask, text.pooled))
    assert torch.isfinite(loss)
    loss, _ = model.training_loss(x0, mask, None)
    assert torch.isfinite(loss)


# ---------------------------------------------------------------------- sampling


def _conditions(num_frames: int) -> list[ConditionMask]:
    return [
        ConditionMask.make('text', num_frames),
        ConditionMask.make('reaction', num_frames, side='left'),
        ConditionMask.make('reaction', num_frames, side='right'),
        ConditionMask.make('inbetween', num_frames, k=3),
        ConditionMask.make('keyframes', num_frames, frames=[0, 7, 15, num_frames - 1]),
        ConditionMask.make('trajectory', num_frames, include_orient=True),
    ]


@pytest.mark.parametrize('index', range(6), ids=lambda i: _conditions(T)[i].mode.value + str(i))
def test_given_parts_are_exact_under_every_mode(model, batch, index):
    raw, normalizer, x0 = batch
    condition = _conditions(T)[index]
    mask = condition.tensor()  # (T, D)
    known = x0.clone()
    known[:, ~mask] = float('nan')  # values outside the mask must not be read
    out = model.sample(_text(), T, mask=mask, known=known, steps=5,
                       generator=torch.Generator().manual_seed(0))
    assert out.shape == (B, T, D) and torch.isfinite(out).all()
    m = mask.expand(B, T, D)
    assert torch.equal(out[m], x0[m])
    # Un-normalised, the given keypoints match the input within 1 mm.
    metres = normalizer.denormalize(out.double()).numpy()
    for side in HandSide:
        kp = FEATURE_LAYOUT.slice(side, FeatureGroup.KEYPOINTS)
        given = m[..., kp].numpy()
        error = np.abs(metres[..., kp] - raw.numpy()[..., kp])[given]
        assert error.size == 0 or error.max() < 1e-3
    if condition.mode.value != 'text':
        assert m.any()
        assert not torch.equal(out[~m], x0[~m])  # the rest is generated


def test_x0_smoothing_keeps_the_given_parts_and_smooths_the_rest(model, batch):
    _, _, x0 = batch
    mask = ConditionMask.make('inbetween', T, k=3).tensor()
    known = x0.clone()
    known[:, ~mask] = float('nan')

    def sample(**options) -> torch.Tensor:
        return model.sample(_text(), T, mask=mask, known=known, steps=5,
                            generator=torch.Generator().manual_seed(0), **options)

    def jerk(x: torch.Tensor) -> float:
        return float(x.diff(n=3, dim=1).abs().mean())

    plain = sample()
    smoothed = sample(x0_smoother=Smoother(fps=30.0))
    m = mask.expand(B, T, D)
    assert torch.equal(smoothed[m], x0[m])
    assert jerk(smoothed) < jerk(plain) / 2
    last = sample(x0_smoother=Smoother(fps=30.0), x0_smoothing_steps=1)
    assert torch.equal(last[m], x0[m]) and jerk(last) < jerk(plain) / 2
    assert torch.equal(sample(x0_smoother=Smoother(fps=30.0), x0_smoothing_steps=0), plain)


def test_same_seed_same_sample(model):
    text = _text()
    mask = ConditionMask.make('inbetween', T, k=2).tensor()
    known = torch.randn(T, D)
    outs = [model.sample(text, T, mask=mask, known=known, steps=4,
                         generator=torch.Generator().manual_seed(seed)) for seed in (5, 5, 6)]
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_sample_shapes_and_guidance(model):
    g = torch.Generator().manual_seed(0)
    out = model.sample(_text(3), 10, steps=3, generator=g)
    assert out.shape == (3, 10, D)
    out = model.sample(None, 10, steps=2, generator=g, batch_size=2)
    assert out.shape == (2, 10, D)
    known = torch.randn(4, 10, D)
    mask = torch.zeros(4, 10, D, dtype=torch.bool)
    mask[:, 0] = True
    out = model.sample(None, 10, mask=mask, known=known, steps=2, generator=g)
    assert out.shape == (4, 10, D) and torch.equal(out[:, 0], known[:, 0])
    cond = model.sample(_text(), 10, steps=3, guidance=1.0,
                        generator=torch.Generator().manual_seed(1))
    guided = model.sample(_text(), 10, steps=3, guidance=4.0,
                          generator=torch.Generator().manual_seed(1))
    assert not torch.equal(cond, guided)
    assert model.training  # sampling restores the mode


# ---------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors(model, batch):
    _, _, x0 = batch
    text = _text()
    mask = torch.zeros(x0.shape, dtype=torch.bool)
    with pytest.raises(ModelError, match=r'\(B, T, 324\)'):
        model.training_loss(x0[..., :100], mask[..., :100], text)
    with pytest.raises(ModelError, match='exceed'):
        model.training_loss(torch.zeros(B, 40, D), torch.zeros(B, 40, D, dtype=torch.bool), text)
    with pytest.raises(ModelError, match='mask'):
        model.training_loss(x0, mask[:, :5], text)
    with pytest.raises(ModelError, match='boolean'):
        model.training_loss(x0, mask.float(), text)
    with pytest.raises(ModelError, match='batch size'):
        model.training_loss(x0, mask, _text(3))
    with pytest.raises(ModelError, match='384'):
        bad = TextFeatures(text.tokens[..., :10], text.attention_mask, text.pooled)
        model.training_loss(x0, mask, bad)
    with pytest.raises(ModelError, match='exceed'):
        model.sample(text, 33, steps=2)
    with pytest.raises(ModelError, match='mask'):
        model.sample(text, T, mask=torch.zeros(T, D - 1, dtype=torch.bool), steps=2)
    with pytest.raises(ModelError, match='known is None'):
        model.sample(text, T, mask=torch.ones(T, D, dtype=torch.bool), steps=2)
    with pytest.raises(ModelError, match='known'):
        model.sample(text, T, mask=torch.ones(T, D, dtype=torch.bool),
                     known=torch.zeros(T + 1, D), steps=2)
    with pytest.raises(ModelError, match='non-finite'):
        model.sample(text, T, mask=torch.ones(T, D, dtype=torch.bool),
                     known=torch.full((T, D), float('nan')), steps=2)
    with pytest.raises(ConfigError, match='steps'):
        model.sample(text, T, steps=0)
    with pytest.raises(ModelError, match='num_frames'):
        model.sample(text, 0)


# ---------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(model):
    normalizer = Normalizer(np.zeros(D), np.ones(D))
    state = model.checkpoint(step=7, normalizer=normalizer.state_dict(tensors=True))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    restored = GaussianDiffusion.from_checkpoint(loaded)
    assert restored.config == model.config and loaded['step'] == 7
    text, g = _text(), torch.Generator
    assert torch.equal(model.sample(text, 8, steps=2, generator=g().manual_seed(0)),
                       restored.sample(text, 8, steps=2, generator=g().manual_seed(0)))
    with pytest.raises(ModelError, match=CHECKPOINT_FORMAT):
        GaussianDiffusion.from_checkpoint({**loaded, 'format': 'handx-diffusion/0'})
    with pytest.raises(ModelError, match='do not fit'):
        weights = dict(loaded['model'])
        weights['model.output.weight'] = torch.zeros(3, 3)
        GaussianDiffusion.from_checkpoint({**loaded, 'model': weights})
    with pytest.raises(ModelError, match='reserved'):
        model.checkpoint(model={})


# ---------------------------------------------------------------------- geometry, patches


def test_geometric_losses_vanish_at_the_truth_and_grow_with_error(batch):
    raw, normalizer, x0 = batch
    diffusion = _tiny(loss_fk=0.01, loss_contact=0.1)
    with pytest.raises(ModelError, match='set_normalizer'):
        diffusion.training_loss(x0, torch.zeros(x0.shape, dtype=torch.bool), _text())
    diffusion.set_normalizer(normalizer)
    fk, contact = diffusion.geometric_losses(x0, x0)
    # the clip was made with default skeletons, so FK reproduces its own keypoints
    assert float(fk) == pytest.approx(0.0, abs=1e-6)
    assert float(contact) == pytest.approx(0.0, abs=1e-3)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=g)
    small = diffusion.geometric_losses(x0 + 0.05 * noise, x0)
    large = diffusion.geometric_losses(x0 + 0.3 * noise, x0)
    assert 0 < float(small[0]) < float(large[0])
    assert 0 < float(small[1]) < float(large[1])
    loss, parts = diffusion.training_loss(x0, torch.zeros(x0.shape, dtype=torch.bool), _text(),
                                          torch.Generator().manual_seed(1))
    assert {'fk', 'contact'} <= set(parts)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in diffusion.parameters()
               if p.grad is not None)


def test_sampling_projects_keypoints_onto_the_rotations(batch):
    raw, normalizer, x0 = batch
    from handx_gen.models.geometry import fk_keypoint_features

    keypoints = torch.from_numpy(FEATURE_LAYOUT.group_mask(
        (side, FeatureGroup.KEYPOINTS) for side in HandSide))
    diffusion = _tiny()
    with pytest.raises(ModelError, match='set_normalizer'):
        diffusion.fk_consistent(x0)
    diffusion.set_normalizer(normalizer)
    # the clips were made with default skeletons: their keypoints are already their FK
    assert torch.allclose(diffusion.fk_consistent(x0), x0, atol=1e-3)
    moved = x0.clone()
    moved[..., keypoints] += 0.5
    assert torch.allclose(diffusion.fk_consistent(moved), x0, atol=1e-3)  # put back

    condition = ConditionMask.make('reaction', T, side='left')  # left given, right generated
    mask = condition.tensor()
    generated = (~mask & keypoints).expand(B, T, D)
    outs = {}
    for project in (True, False):
        model = diffusion if project else _tiny(sample_fk_keypoints=False)
        model.set_normalizer(normalizer)
        out = model.sample(_text(), T, mask=mask, known=x0, steps=4,
                           generator=torch.Generator().manual_seed(3))
        assert torch.equal(out[mask.expand(B, T, D)], x0[mask.expand(B, T, D)])
        metres = torch.from_numpy(normalizer.denormalize(out.double().numpy()))
        outs[project] = (metres - fk_keypoint_features(metres))[generated].abs().max()
    assert outs[True] < 1e-4  # metres: the generated hand's keypoints are its rotations'
    assert outs[False] > 1e-3  # an untrained model's are not, unprojected
    with pytest.raises(ConfigError, match='sample_fk_keypoints'):
        DiffusionConfig(sample_fk_keypoints='yes')


def test_contact_distances_cover_hand_pairs_and_other_fingers():
    """441 left-right keypoint pairs, then each fingertip to the 16 keypoints of the other
    fingers of its hand (5 x 16 per hand)."""
    from handx_gen.models.geometry import contact_distances

    kp = torch.zeros(1, 1, 2, 21, 3)
    kp[..., 0, :, 0] = -0.3 + 0.01 * torch.arange(21.0)  # left hand along x
    kp[..., 1, :, 0] = 0.3 + 0.01 * torch.arange(21.0)  # right hand far away
    d = contact_distances(kp)
    assert d.shape == (1, 1, 441 + 160)
    assert float(d[..., :441].min()) > 0.3  # between the hands: all far
    # fingertips to other fingers' keypoints of the same hand (in a line: from 1 cm up)
    assert float(d[..., 441:].min()) == pytest.approx(0.01, abs=1e-6)


def test_patches_of_frames_handle_any_length(batch):
    _, _, x0 = batch
    diffusion = _tiny(frames_per_token=4)
    assert diffusion.config.max_tokens == 8
    odd = x0[:, :23]
    mask = torch.zeros(odd.shape, dtype=torch.bool)
    mask[:, :3] = True
    loss, _ = diffusion.training_loss(odd, mask, _text())
    assert torch.isfinite(loss)
    out = diffusion.sample(_text(), 23, mask=mask, known=odd, steps=3,
                           generator=torch.Generator().manual_seed(0))
    assert out.shape == odd.shape
    torch.testing.assert_close(out[mask], odd[mask], rtol=0, atol=0)
    with pytest.raises(ConfigError, match='frames_per_token'):
        DiffusionConfig(frames_per_token=0)
