"""Masked-condition motion diffusion: a transformer denoiser over the model feature layout.

Self-contained in the manner of nanoGPT's ``model.py``: :class:`DiffusionConfig` (a frozen
dataclass with commented defaults and the ``tiny`` / ``small`` / ``base`` presets),
:class:`MotionDenoiser` (the network) and :class:`GaussianDiffusion` (schedule, training loss,
sampling, self-describing checkpoints). Everything works on *normalised* features (see
:class:`~handx_gen.motion.features.Normalizer`); un-normalising is the caller's business.

The denoiser predicts x0. Each frame's input is ``[x_t, known * mask, mask]`` (3 D values), so
the condition (:mod:`~handx_gen.models.masking`) is seen at every step; the diffusion step and
the pooled text are added to every frame, and the frames cross-attend to the text tokens.
Classifier-free guidance: during training the text of a sample is dropped with probability
``cond_drop_prob`` (its tokens replaced by one learned null embedding); sampling mixes the
conditional and unconditional x0 predictions, ``x0_u + guidance * (x0_c - x0_u)``.

Sampling is DDIM with eta = 0 on a cosine schedule. At every step the given parts of the x0
prediction are replaced by the known values (inpainting), so the generated parts are denoised
around them, and a final projection (:func:`~handx_gen.models.masking.apply_condition`) makes
the given parts of the output exact. The features describe each hand twice, by its rotations
and by its wrist-relative keypoints; with ``sample_fk_keypoints`` (default) and the feature
statistics (:meth:`GaussianDiffusion.set_normalizer`; the generator sets them), every step's x0
prediction gets the keypoints of its own rotations (forward kinematics) before the next step,
so the model denoises around a hand that both descriptions agree on, which is the hand the
rotations decode to.

Losses (all in normalised feature units; weights in the config):

    x0          mean squared error of the x0 prediction on the generated (not given) entries
    velocity    mean squared error of frame-to-frame differences of the x0 prediction, every
                feature (temporal smoothness and motion dynamics)
    keypoints   mean squared error on the keypoint groups of both hands (the layout stores the
                forward-kinematics keypoints directly, wrist-relative), generated entries only:
                an extra positional weight on top of the x0 loss

and, in squared centimetres, once :meth:`GaussianDiffusion.set_normalizer` has given the
feature statistics (the trainer does):

    fk          keypoints by differentiable forward kinematics of the predicted rotations (6D
                to matrices) and translations, against those of the clean clip, both with the
                default hand skeleton: rotation errors weighed by how far they move the hand
    contact     contact consistency: distances between the hands' keypoints (all 21 x 21
                pairs) and from each fingertip to the other keypoints of its hand (other
                fingers), predicted (forward kinematics) against the clean clip's (its own
                keypoints), weighted by exp(-d / contact_sigma_m) for pairs closer than
                contact_range_m in the clean clip: touching parts must stay touching, near
                parts near
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from handx_gen.config import config_kwargs, preset_values
from handx_gen.errors import ConfigError, ModelError
from handx_gen.models.checkpoints import Checkpointable
from handx_gen.models.geometry import KEYPOINT_DIMS, fk_keypoint_features, geometric_losses
from handx_gen.models.masking import apply_condition
from handx_gen.models.smoothing import Smoother
from handx_gen.models.text_encoder import TextFeatures
from handx_gen.motion.features import FEATURE_LAYOUT

__all__ = [
    'CHECKPOINT_FORMAT',
    'DiffusionConfig',
    'GaussianDiffusion',
    'MotionDenoiser',
    'cosine_alphas_cumprod',
]

CHECKPOINT_FORMAT = 'handx-diffusion/1'

TextInput = TextFeatures | Sequence[torch.Tensor] | None

_PRESETS: dict[str, dict[str, Any]] = {
    'tiny': {'d_model': 64, 'num_layers': 2, 'num_heads': 4, 'frames_per_token': 4},
    'small': {'d_model': 256, 'num_layers': 4, 'num_heads': 4, 'frames_per_token': 2},
    'base': {'d_model': 512, 'num_layers': 8, 'num_heads': 8, 'frames_per_token': 1},
}


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Settings of the motion diffusion model. The defaults are the ``small`` preset."""

    feature_dim: int = FEATURE_LAYOUT.dim  # D, features per frame (324: both hands)
    max_frames: int = 120  # longest clip, frames (4 s at 30 fps); size of the position table
    frames_per_token: int = 2  # consecutive frames the transformer sees as one token (patch)
    d_model: int = 256  # transformer width
    num_layers: int = 4  # transformer layers (self-attention, text cross-attention, MLP)
    num_heads: int = 4  # attention heads; must divide d_model
    ff_mult: int = 4  # MLP hidden size = ff_mult * d_model
    dropout: float = 0.1  # dropout in attention and MLP
    text_dim: int = 384  # width of the text features (MiniLM-L6: 384)
    diffusion_steps: int = 1000  # training diffusion steps of the cosine schedule
    cosine_s: float = 0.008  # offset of the cosine schedule (Nichol & Dhariwal 2021)
    sample_steps: int = 50  # DDIM steps when sampling (120 frames in < 2 s on 2 CPU cores)
    guidance: float = 2.5  # classifier-free guidance scale; 1 = conditional only
    sample_fk_keypoints: bool = True  # sampling: x0's keypoints from its rotations each step
    cond_drop_prob: float = 0.1  # chance a training sample's text is dropped (for CFG)
    loss_x0: float = 1.0  # weight of the x0 feature loss
    loss_velocity: float = 1.0  # weight of the frame-difference (velocity) loss
    loss_keypoints: float = 1.0  # extra weight of the keypoint-group loss
    loss_fk: float = 0.0  # weight of the forward-kinematics keypoint loss (cm^2; needs stats)
    loss_contact: float = 0.0  # weight of the contact-consistency loss (cm^2; needs stats)
    contact_sigma_m: float = 0.02  # contact loss weight exp(-d / sigma) of a keypoint pair...
    contact_range_m: float = 0.06  # ...at ground-truth distance d below this range

    def __post_init__(self) -> None:
        positive = ('feature_dim', 'max_frames', 'frames_per_token', 'd_model', 'num_layers',
                    'num_heads', 'ff_mult', 'text_dim', 'diffusion_steps', 'sample_steps')
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'diffusion {name} must be a positive integer, got {value!r}')
        if not isinstance(self.sample_fk_keypoints, bool):
            raise ConfigError(f'diffusion sample_fk_keypoints must be true or false, got '
                              f'{self.sample_fk_keypoints!r}')
        if self.d_model % self.num_heads:
            raise ConfigError(f'diffusion d_model ({self.d_model}) must be divisible by '
                              f'num_heads ({self.num_heads})')
        if self.sample_steps > self.diffusion_steps:
            raise ConfigError(f'diffusion sample_steps ({self.sample_steps}) must not exceed '
                              f'diffusion_steps ({self.diffusion_steps})')
        if self.feature_dim != FEATURE_LAYOUT.dim:
            raise ConfigError(f'diffusion feature_dim must be the feature layout size '
                              f'{FEATURE_LAYOUT.dim}, got {self.feature_dim}')
        for name, low, high in (('dropout', 0.0, 1.0), ('cond_drop_prob', 0.0, 1.0),
                                ('cosine_s', 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value < high:
                raise ConfigError(f'diffusion {name} must be in [{low}, {high}), got {value!r}')
        for name in ('guidance', 'loss_x0', 'loss_velocity', 'loss_keypoints', 'loss_fk',
                     'loss_contact', 'contact_sigma_m', 'contact_range_m'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f'diffusion {name} must be a non-negative number, '
                                  f'got {value!r}')

    @property
    def max_tokens(self) -> int:
        """Transformer positions: ``max_frames`` in patches of ``frames_per_token``."""
        return -(-self.max_frames // self.frames_per_token)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DiffusionConfig:
        """The named size (``tiny``, ``small`` or ``base``), with ``overrides`` applied.

        Raises:
            ConfigError: Unknown preset name or bad override.
        """
        key = name.strip().lower() if isinstance(name, str) else name
        return cls.from_dict(preset_values(_PRESETS, key, 'diffusion', overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> DiffusionConfig:
        """Build from a mapping (e.g. YAML).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or bad values.
        """
        return cls(**config_kwargs(cls, values, 'diffusion'))

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed settings, the inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> torch.Tensor:
    """Cumulative signal fractions ``alpha_bar_t`` of the cosine schedule, (steps,) float64.

    ``alpha_bar(t) = cos^2(((t / steps) + s) / (1 + s) * pi / 2)``, normalised to 1 at t = 0,
    with each step's beta clipped to 0.999.
    """
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    f = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
    f = f / f[0]
    betas = (1 - f[1:] / f[:-1]).clamp(0.0, 0.999)
    return torch.cumprod(1.0 - betas, dim=0)


# ============================================================================== network


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step, then a two-layer MLP."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.dim = config.d_model
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_model), nn.SiLU(),
                                 nn.Linear(config.d_model, config.d_model))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
        angles = t.float()[:, None] * freqs[None]  # (B, half)
        emb = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, 2 * half)
        if emb.shape[-1] < self.dim:
            emb = F.pad(emb, (0, self.dim - emb.shape[-1]))
        return self.mlp(emb)  # (B, d)


class MotionDenoiser(nn.Module):
    """Transformer over frames that predicts x0 from a noisy clip, its condition and text.

    Per frame, ``[x_t, known * mask, mask]`` (3 D values); ``frames_per_token`` consecutive
    frames (a patch, the last frame repeated to fill the last patch) are projected together to
    one ``d_model`` token, and each output token back to its frames. A learned position
    embedding, the step embedding and the projected pooled text are added. Each layer is
    pre-norm self-attention over frames, cross-attention to the text memory (the pooled vector
    followed by the token features) and an MLP. A dropped text (classifier-free guidance) is a
    memory of one learned null embedding.
    """

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        d, dim = config.d_model, config.feature_dim
        p = config.frames_per_token
        self.input_proj = nn.Linear(3 * dim * p, d)
        self.position = nn.Parameter(torch.zeros(config.max_tokens, d))
        nn.init.normal_(self.position, std=0.02)
        self.timestep = TimestepEmbedding(config)
        self.text_tokens = nn.Linear(config.text_dim, d)
        self.text_pooled = nn.Linear(config.text_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        nn.init.normal_(self.null_text, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(d, config.num_heads, config.ff_mult * d,
                                       config.dropout, activation='gelu', batch_first=True,
                                       norm_first=True)
            for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d)
        self.output = nn.Linear(d, dim * p)

    def text_memory(
        self,
        tokens: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        pooled: torch.Tensor | None,
        drop: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Project the text; samples with ``drop`` true get the null text.

        Args:
            tokens: (B, L, text_dim), or ``None`` for no text at all.
            attention_mask: (B, L) bool, true on real tokens.
            pooled: (B, text_dim).
            drop: (B,) bool.

        Returns:
            memory (B, 1 + L, d), memory_padding (B, 1 + L) bool (true = ignore), and the
            pooled conditioning vector (B, d).
        """
        batch = drop.shape[0]
        null = self.null_text.expand(batch, 1, -1)  # (B, 1, d)
        if tokens is None:
            memory = null
            padding = torch.zeros(batch, 1, dtype=torch.bool, device=drop.device)
            return memory, padding, self.null_text.expand(batch, -1)
        keep = ~drop
        token_memory = self.text_tokens(tokens) * keep[:, None, None]  # (B, L, d)
        pooled_memory = torch.where(keep[:, None], self.text_pooled(pooled),
                                    self.null_text.expand(batch, -1))  # (B, d)
        memory = torch.cat([pooled_memory[:, None], token_memory], dim=1)  # (B, 1 + L, d)
        valid = attention_mask.bool() & keep[:, None]  # (B, L)
        first = torch.ones(batch, 1, dtype=torch.bool, device=drop.device)
        padding = ~torch.cat([first, valid], dim=1)  # (B, 1 + L)
        return memory, padding, pooled_memory

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        known: torch.Tensor,
        mask: torch.Tensor,
        memory: torch.Tensor,
        memory_padding: torch.Tensor,
        pooled: torch.Tensor,
    ) -> torch.Tensor:
        """Predict x0.

        Args:
            x_t: (B, T, D) noisy features.
            t: (B,) integer diffusion steps.
            known: (B, T, D) given values, zero where not given.
            mask: (B, T, D) bool, true where given.
            memory, memory_padding, pooled: From :meth:`text_memory`.

        Returns:
            (B, T, D) the x0 prediction.
        """
        batch, num_frames, dim = x_t.shape
        p = self.config.frames_per_token
        frames = torch.cat([x_t, known, mask.to(x_t.dtype)], dim=-1)  # (B, T, 3D)
        pad = -num_frames % p
        if pad:
            frames = torch.cat([frames, frames[:, -1:].expand(-1, pad, -1)], dim=1)
        num_tokens = frames.shape[1] // p
        h = self.input_proj(frames.reshape(batch, num_tokens, p * 3 * dim))  # (B, N, d)
        cond = self.timestep(t) + pooled  # (B, d)
        h = h + self.position[:num_tokens][None] + cond[:, None]
        for layer in self.layers:
            h = layer(h, memory, memory_key_padding_mask=memory_padding)
        out = self.output(self.norm(h))  # (B, N, p D)
        return out.reshape(batch, num_tokens * p, dim)[:, :num_frames]  # (B, T, D)


# ============================================================================== diffusion


class GaussianDiffusion(Checkpointable, nn.Module):
    """Cosine-schedule diffusion around a :class:`MotionDenoiser`: loss, DDIM sampling, I/O.

    Attributes:
        config: The :class:`DiffusionConfig`.
        model: The :class:`MotionDenoiser`.
    """

    checkpoint_format = CHECKPOINT_FORMAT
    checkpoint_what = 'diffusion'
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        super().__init__()
        if config is None:
            config = DiffusionConfig()
        if not isinstance(config, DiffusionConfig):
            raise ConfigError(f'config must be a DiffusionConfig, got {type(config).__name__}')
        self.config = config
        self.model = MotionDenoiser(config)
        alphas_cumprod = cosine_alphas_cumprod(config.diffusion_steps, config.cosine_s)
        self.register_buffer('alphas_cumprod', alphas_cumprod.float(), persistent=False)
        self.register_buffer('keypoint_dims', KEYPOINT_DIMS.clone(), persistent=False)
        # Feature statistics for the geometric losses (set_normalizer); not in checkpoints,
        # which carry the normaliser themselves.
        self.register_buffer('feature_mean', torch.zeros(config.feature_dim), persistent=False)
        self.register_buffer('feature_std', torch.ones(config.feature_dim), persistent=False)
        self._has_stats = False

    def set_normalizer(self, normalizer: Any) -> None:
        """Give the feature statistics (a :class:`~handx_gen.motion.features.Normalizer`) the
        geometric losses need to turn normalised features into metres."""
        mean = torch.tensor(normalizer.mean, dtype=torch.float32)
        std = torch.tensor(normalizer.std, dtype=torch.float32)
        if mean.shape != (self.config.feature_dim,) or std.shape != mean.shape:
            raise ModelError(f'normalizer statistics must have shape ({self.config.feature_dim},),'
                             f' got {tuple(mean.shape)} and {tuple(std.shape)}')
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std)
        self._has_stats = True

    @property
    def device(self) -> torch.device:
        return self.model.position.device

    # ------------------------------------------------------------------ input checks

    def _check_frames(self, num_frames: Any) -> int:
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ModelError(f'num_frames must be a positive integer, got {num_frames!r}')
        if num_frames > self.config.max_frames:
            raise ModelError(f'{num_frames} frames exceed the model limit of '
                             f'{self.config.max_frames} (max_frames)')
        return num_frames

    def _check_features(self, name: str, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise ModelError(f'{name} must be a torch.Tensor, got {type(x).__name__}')
        dim = self.config.feature_dim
        if x.ndim != 3 or x.shape[-1] != dim:
            raise ModelError(f'{name}: expected shape (B, T, {dim}), got {tuple(x.shape)}')
        self._check_frames(x.shape[1])
        return x

    def _check_mask(self, mask: Any, shape: tuple[int, int, int]) -> torch.Tensor:
        """(B, T, D) bool from a (T, D) or (B, T, D) bool mask."""
        mask = torch.as_tensor(mask, device=self.device)
        if mask.dtype != torch.bool:
            raise ModelError(f'mask must be boolean, got dtype {mask.dtype}')
        if mask.ndim == 2:
            mask = mask[None]
        if mask.ndim != 3 or mask.shape[1:] != shape[1:] or mask.shape[0] not in (1, shape[0]):
            raise ModelError(f'mask: expected shape {shape[1:]} or {shape}, got '
                             f'{tuple(mask.shape)}')
        return mask.expand(shape)

    def _text(self, text: TextInput, batch: int | None) -> tuple[Any, Any, Any, int]:
        """Check text features; give (tokens, attention_mask, pooled, B)."""
        if text is None:
            if batch is None:
                batch = 1
            return None, None, None, batch
        if isinstance(text, TextFeatures):
            tokens, attention_mask, pooled = text.tokens, text.attention_mask, text.pooled
        elif isinstance(text, Sequence) and len(text) == 3:
            tokens, attention_mask, pooled = text
        else:
            raise ModelError(f'text must be TextFeatures, a (tokens, attention_mask, pooled) '
                             f'tuple or None, got {type(text).__name__}')
        if not all(isinstance(v, torch.Tensor) for v in (tokens, attention_mask, pooled)):
            raise ModelError('text tokens, attention_mask and pooled must be torch tensors')
        td = self.config.text_dim
        if tokens.ndim != 3 or tokens.shape[-1] != td or tokens.shape[1] < 1:
            raise ModelError(f'text tokens: expected shape (B, L, {td}) with L >= 1, got '
                             f'{tuple(tokens.shape)}')
        b, length = tokens.shape[:2]
        if tuple(attention_mask.shape) != (b, length):
            raise ModelError(f'text attention_mask: expected shape {(b, length)}, got '
                             f'{tuple(attention_mask.shape)}')
        if tuple(pooled.shape) != (b, td):
            raise ModelError(f'text pooled: expected shape {(b, td)}, got '
                             f'{tuple(pooled.shape)}')
        if batch is not None and batch != b:
            raise ModelError(f'text has batch size {b}, the motion has {batch}')
        device = self.device
        return (tokens.to(device, torch.float32), attention_mask.to(device).bool(),
                pooled.to(device, torch.float32), b)

    # ------------------------------------------------------------------ training

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Noise ``x0`` (B, T, D) to steps ``t`` (B,): ``sqrt(ab) x0 + sqrt(1 - ab) noise``."""
        ab = self.alphas_cumprod[t][:, None, None]  # (B, 1, 1)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def training_loss(
        self,
        x0: torch.Tensor,
        mask: torch.Tensor,
        text: TextInput,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one batch: random steps and noise, text dropped at ``cond_drop_prob``.

        Args:
            x0: (B, T, D) normalised clean features.
            mask: (B, T, D) or (T, D) bool, true where given (e.g. from
                :func:`~handx_gen.models.masking.sample_masks`).
            text: :class:`TextFeatures` (or a (tokens, attention_mask, pooled) tuple) of the
                B prompts, or ``None`` to train unconditionally.
            generator: CPU generator for steps, noise and text dropping.

        Returns:
            The weighted total and its parts (``x0``, ``velocity``, ``keypoints``), detached.

        Raises:
            ModelError: Shapes that do not fit the config or each other.
        """
        x0 = self._check_features('x0', x0).to(self.device, torch.float32)
        batch, num_frames, _ = x0.shape
        mask = self._check_mask(mask, tuple(x0.shape))
        tokens, attention_mask, pooled, _ = self._text(text, batch)
        cfg = self.config
        t = torch.randint(0, cfg.diffusion_steps, (batch,), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        drop = torch.rand((batch,), generator=generator) < cfg.cond_drop_prob
        t, noise, drop = t.to(self.device), noise.to(self.device), drop.to(self.device)
        x_t = self.q_sample(x0, t, noise)
        known = torch.where(mask, x0, torch.zeros_like(x0))
        memory, padding, pooled_vec = self.model.text_memory(tokens, attention_mask, pooled,
                                                             drop)
        pred = self.model(x_t, t, known, mask, memory, padding, pooled_vec)  # (B, T, D)

        generated = (~mask).float()
        err = (pred - x0) ** 2
        loss_x0 = (err * generated).sum() / generated.sum().clamp_min(1.0)
        kp = generated * self.keypoint_dims.float()
        loss_kp = (err * kp).sum() / kp.sum().clamp_min(1.0)
        if num_frames > 1:
            loss_vel = F.mse_loss(pred[:, 1:] - pred[:, :-1], x0[:, 1:] - x0[:, :-1])
        else:
            loss_vel = pred.new_zeros(())
        total = cfg.loss_x0 * loss_x0 + cfg.loss_velocity * loss_vel + cfg.loss_keypoints * loss_kp
        parts = {'x0': loss_x0.detach(), 'velocity': loss_vel.detach(),
                 'keypoints': loss_kp.detach()}
        if cfg.loss_fk > 0 or cfg.loss_contact > 0:
            loss_fk, loss_contact = self.geometric_losses(pred, x0)
            total = total + cfg.loss_fk * loss_fk + cfg.loss_contact * loss_contact
            parts['fk'] = loss_fk.detach()
            parts['contact'] = loss_contact.detach()
        return total, parts

    def geometric_losses(self, pred: torch.Tensor, x0: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward-kinematics keypoint loss and the contact-consistency loss (cm^2) of
        normalised predictions ``pred`` against clean ``x0``, both (B, T, D).

        Raises:
            ModelError: No feature statistics (:meth:`set_normalizer`).
        """
        if not self._has_stats:
            raise ModelError('the geometric losses (loss_fk, loss_contact) need the feature '
                             'statistics: call set_normalizer(normalizer) first')
        cfg = self.config
        return geometric_losses(pred * self.feature_std + self.feature_mean,
                                x0 * self.feature_std + self.feature_mean,
                                cfg.contact_sigma_m, cfg.contact_range_m)

    def fk_consistent(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised features ``x`` (..., D) whose keypoint groups are the forward kinematics
        of their own rotations and translations (default skeletons).

        Raises:
            ModelError: No feature statistics (:meth:`set_normalizer`).
        """
        if not self._has_stats:
            raise ModelError('fk_consistent needs the feature statistics: call '
                             'set_normalizer(normalizer) first')
        raw = fk_keypoint_features(x * self.feature_std + self.feature_mean)
        return (raw - self.feature_mean) / self.feature_std

    # ------------------------------------------------------------------ sampling

    def _timesteps(self, steps: int) -> list[int]:
        """Descending DDIM steps from ``diffusion_steps - 1`` to 0, ``steps`` of them."""
        last = self.config.diffusion_steps - 1
        values = torch.linspace(last, 0, steps, dtype=torch.float64).round().long().tolist()
        return list(dict.fromkeys(values))  # unique, order kept

    @torch.no_grad()
    def sample(
        self,
        text: TextInput,
        num_frames: int,
        mask: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        batch_size: int | None = None,
        x0_smoother: Smoother | None = None,
        x0_smoothing_steps: int | None = None,
    ) -> torch.Tensor:
        """Generate normalised features by DDIM (eta = 0) with classifier-free guidance.

        Args:
            text: :class:`TextFeatures` of B prompts (or a (tokens, attention_mask, pooled)
                tuple), or ``None`` for unconditional samples.
            num_frames: T, at most ``max_frames``.
            mask: (T, D) or (B, T, D) bool, true where given; ``None``: nothing given.
            known: (T, D) or (B, T, D) normalised given values; read only where ``mask`` is
                true (anything, even NaN, elsewhere). Required when ``mask`` gives anything.
            steps: DDIM steps; default ``config.sample_steps``.
            guidance: Guidance scale; default ``config.guidance``. 1 (or no text) runs the
                conditional model alone. (With ``config.sample_fk_keypoints`` and the feature
                statistics, each step's x0 gets the keypoints of its rotations: see the
                module notes.)
            generator: CPU generator for the initial noise; the same seed gives the same
                output.
            batch_size: B when ``text`` is ``None`` (default: from ``known``, else 1).
            x0_smoother: Smooths each step's x0 prediction over time (given parts kept
                exactly) before the next step, so the sampler denoises towards a smooth
                clip; ``None``: no smoothing.
            x0_smoothing_steps: With ``x0_smoother``, smooth in the last this many steps only
                (default: every step).

        Returns:
            (B, T, D) normalised features whose given parts equal ``known`` exactly.

        Raises:
            ModelError: Bad shapes, too many frames, a mask without known values or
                non-finite given values.
            ConfigError: Bad steps or guidance.
        """
        cfg = self.config
        num_frames = self._check_frames(num_frames)
        steps = cfg.sample_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, int) \
                or not 1 <= steps <= cfg.diffusion_steps:
            raise ConfigError(f'steps must be an integer in [1, {cfg.diffusion_steps}], '
                              f'got {steps!r}')
        guidance = cfg.guidance if guidance is None else guidance
        if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) \
                or not math.isfinite(guidance) or guidance < 0:
            raise ConfigError(f'guidance must be a non-negative number, got {guidance!r}')
        device, dim = self.device, cfg.feature_dim
        if text is None and batch_size is None and isinstance(known, torch.Tensor) \
                and known.ndim == 3:
            batch_size = known.shape[0]
        tokens, attention_mask, pooled, batch = self._text(text, batch_size if text is None
                                                           else None)
        shape = (batch, num_frames, dim)
        if mask is None:
            mask = torch.zeros(shape, dtype=torch.bool, device=device)
        else:
            mask = self._check_mask(mask, shape)
        if known is None:
            if mask.any():
                raise ModelError('mask gives values but known is None')
            known = torch.zeros(shape, device=device)
        else:
            if not isinstance(known, torch.Tensor):
                raise ModelError(f'known must be a torch.Tensor, got {type(known).__name__}')
            known = known.to(device, torch.float32)
            if known.ndim == 2:
                known = known[None]
            if known.ndim != 3 or known.shape[1:] != shape[1:] \
                    or known.shape[0] not in (1, batch):
                raise ModelError(f'known: expected shape {shape[1:]} or {shape}, got '
                                 f'{tuple(known.shape)}')
            known = known.expand(shape)
            if not torch.isfinite(known[mask]).all():
                raise ModelError('known has non-finite values where the mask gives them')
        known = torch.where(mask, known, torch.zeros_like(known))  # (B, T, D)

        guided = tokens is not None and guidance != 1.0
        consistent = cfg.sample_fk_keypoints and self._has_stats
        no_drop = torch.zeros(batch, dtype=torch.bool, device=device)
        memory, padding, pooled_vec = self.model.text_memory(tokens, attention_mask, pooled,
                                                             no_drop)
        if guided:
            null_mem, null_pad, null_pooled = self.model.text_memory(
                tokens, attention_mask, pooled, ~no_drop)
            memory = torch.cat([memory, null_mem])
            padding = torch.cat([padding, null_pad])
            pooled_vec = torch.cat([pooled_vec, null_pooled])
            known_in, mask_in = torch.cat([known, known]), torch.cat([mask, mask])
        else:
            known_in, mask_in = known, mask

        was_training = self.training
        self.eval()
        try:
            x = torch.randn(shape, generator=generator).to(device)
            timesteps = self._timesteps(steps)
            smooth_from = 0 if x0_smoothing_steps is None \
                else len(timesteps) - max(0, int(x0_smoothing_steps))
            for i, step in enumerate(timesteps):
                t = torch.full((batch,), step, dtype=torch.long, device=device)
                if guided:
                    pred = self.model(torch.cat([x, x]), torch.cat([t, t]), known_in, mask_in,
                                      memory, padding, pooled_vec)
                    cond, uncond = pred.chunk(2)
                    x0 = uncond + guidance * (cond - uncond)
                else:
                    x0 = self.model(x, t, known_in, mask_in, memory, padding, pooled_vec)
                if x0_smoother is not None and i >= smooth_from:
                    x0 = x0_smoother.smooth(apply_condition(mask, known, x0), mask)
                if consistent:
                    x0 = self.fk_consistent(x0)
                x0 = apply_condition(mask, known, x0)  # inpainting: given parts fixed
                if i == len(timesteps) - 1:
                    x = x0
                    break
                ab = self.alphas_cumprod[step]
                ab_prev = self.alphas_cumprod[timesteps[i + 1]]
                eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
                x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        finally:
            self.train(was_training)
        return apply_condition(mask, known, x)  # final projection: given parts exact
