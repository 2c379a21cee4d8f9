"""Finite scalar quantisation (FSQ) and the per-hand motion tokenizer.

:class:`FSQ` quantises a low-dimensional latent without a learned codebook (Mentzer et al.,
2023): each of its ``len(levels)`` channels is bounded with ``tanh`` to ``levels[i]`` values,
rounded with a straight-through gradient, and the tuple of rounded values is one code. With
the default levels ``(8, 5, 5, 5)`` there are 1,000 codes; codes and integer indices convert
both ways exactly (:meth:`FSQ.codes_to_indices`, :meth:`FSQ.indices_to_codes`).

:class:`HandTokenizer` turns (B, T, D) normalised features (the layout of
:data:`~handx_gen.motion.features.FEATURE_LAYOUT`) into (B, 2, T / 4) token indices, left hand
first, and back. Both hands share one 1D convolutional encoder and decoder; a learned hand
embedding tells them which hand they see. Each hand's features are its own slice of the
layout, so a token describes one hand only and the autoregressive model can fix one hand's
tokens while generating the other's. T must be a multiple of the temporal downsampling
(``4`` by default); :meth:`HandTokenizer.encode` raises otherwise rather than padding.

The decoder may end in a *bimanual stage* (``joint_depth`` residual blocks, off by default):
it sees both hands' decoder states together and adds a correction to each hand's features.
Tokens still describe one hand each (the encoder is per hand), but the decoder can place the
hands relative to each other better than two independent decodings of coarse codes: where
both hands' tokens say "palms approach", the palms meet. ``train_tokenizer.py --init`` trains
such a stage onto a trained tokenizer with its encoder frozen, so its tokens (and any model
trained on them) stay valid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from handx_gen.config import config_kwargs, preset_values
from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.checkpoints import Checkpointable
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureLayout

__all__ = [
    'CHECKPOINT_FORMAT',
    'FSQ',
    'FSQConfig',
    'HandTokenizer',
    'TokenizerOutput',
    'hand_slices',
]

CHECKPOINT_FORMAT = 'handx-fsq-tokenizer/1'

_EPS = 1e-3  # keeps tanh bounds just inside the outermost rounding boundary


def hand_slices(layout: FeatureLayout = FEATURE_LAYOUT) -> tuple[slice, slice]:
    """The (left, right) slices of the feature vector, each covering one hand's groups.

    Raises:
        ConfigError: A hand's groups are not contiguous in ``layout``.
    """
    slices = []
    for side in HandSide:
        entries = [e.slice for e in layout.entries if e.side is side]
        start, stop = min(s.start for s in entries), max(s.stop for s in entries)
        if sum(s.stop - s.start for s in entries) != stop - start:
            raise ConfigError(f'the {side.name.lower()} hand features are not contiguous in '
                              f'{layout!r}')
        slices.append(slice(start, stop))
    return slices[0], slices[1]


@dataclasses.dataclass(frozen=True)
class FSQConfig:
    """Settings of a :class:`HandTokenizer` and its :class:`FSQ`.

    Attributes:
        levels: (8, 5, 5, 5): values per latent channel; the codebook size is their product
            (1,000). Each level is an integer >= 2.
        downsample: 4: frames per token; a power of two (one stride-2 stage per factor 2).
        channels: 128: width of the convolutional encoder and decoder.
        depth: 2: residual blocks per stage.
        kernel_size: 3: temporal kernel of the residual blocks (odd).
        dilation_growth: 3: dilation factor between consecutive residual blocks of a stage.
        velocity_weight: 0.5: weight of the frame-to-frame velocity loss.
        hand_dim: 162: features per hand (one hand's slice of the feature layout).
        joint_depth: 0: residual blocks of the bimanual decoder stage (both hands' decoder
            states in, a correction of each hand's features out); 0 decodes the hands
            independently.
    """

    levels: tuple[int, ...] = (8, 5, 5, 5)
    downsample: int = 4
    channels: int = 128
    depth: int = 2
    kernel_size: int = 3
    dilation_growth: int = 3
    velocity_weight: float = 0.5
    hand_dim: int = 162
    joint_depth: int = 0

    def __post_init__(self) -> None:
        levels = self.levels
        if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
            raise ConfigError(f'levels must be a non-empty sequence of integers, got {levels!r}')
        for level in levels:
            if isinstance(level, bool) or not isinstance(level, int) or level < 2:
                raise ConfigError(f'every FSQ level must be an integer >= 2, got {levels!r}')
        object.__setattr__(self, 'levels', tuple(int(v) for v in levels))
        for name, low in (('downsample', 1), ('channels', 1), ('depth', 0),
                          ('kernel_size', 1), ('dilation_growth', 1), ('hand_dim', 1),
                          ('joint_depth', 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f'{name} must be an integer >= {low}, got {value!r}')
        if self.downsample & (self.downsample - 1):
            raise ConfigError(f'downsample must be a power of two, got {self.downsample}')
        if self.kernel_size % 2 == 0:
            raise ConfigError(f'kernel_size must be odd, got {self.kernel_size}')
        if isinstance(self.velocity_weight, bool) \
                or not isinstance(self.velocity_weight, (int, float)) \
                or not math.isfinite(self.velocity_weight) or self.velocity_weight < 0:
            raise ConfigError(
                f'velocity_weight must be a finite number >= 0, got {self.velocity_weight!r}')

    @property
    def codebook_size(self) -> int:
        """Number of codes: the product of the levels."""
        return math.prod(self.levels)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FSQConfig:
        """A named size, 'tiny', 'small' or 'base', with optional field overrides.

        Raises:
            ConfigError: Unknown preset name or override.
        """
        return cls.from_dict(preset_values(_PRESETS, name, 'tokenizer', overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> FSQConfig:
        """Build from a mapping (e.g. YAML).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or bad values.
        """
        kwargs = config_kwargs(cls, values, 'tokenizer')
        if 'levels' in kwargs and isinstance(kwargs['levels'], list):
            kwargs['levels'] = tuple(kwargs['levels'])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed settings, the inverse of :meth:`from_dict`."""
        values = dataclasses.asdict(self)
        values['levels'] = list(self.levels)
        return values


_PRESETS: dict[str, dict[str, Any]] = {
    'tiny': {'channels': 32, 'depth': 1},
    'small': {'channels': 128, 'depth': 2},
    'base': {'channels': 256, 'depth': 3},
}


class FSQ(nn.Module):
    """Finite scalar quantiser over ``len(levels)`` channels (no learned parameters).

    Codes are float vectors with entries in [-1, 1] (channel ``i`` takes ``levels[i]`` evenly
    spaced values); indices are integers in ``[0, prod(levels))``, channel 0 varying fastest.
    """

    def __init__(self, levels: Sequence[int]) -> None:
        super().__init__()
        levels = FSQConfig(levels=tuple(levels)).levels  # validates
        self.levels = levels
        level_t = torch.tensor(levels, dtype=torch.float32)
        basis = torch.cumprod(torch.tensor((1,) + levels[:-1], dtype=torch.int64), dim=0)
        self.register_buffer('_levels', level_t, persistent=False)  # (C,)
        self.register_buffer('_basis', basis, persistent=False)  # (C,)
        self.register_buffer('_half_width', torch.floor(level_t / 2), persistent=False)

    @property
    def dim(self) -> int:
        """Latent channels C."""
        return len(self.levels)

    @property
    def codebook_size(self) -> int:
        """Number of codes."""
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash ``z`` (..., C) so that rounding gives exactly ``levels[i]`` values."""
        half_l = (self._levels - 1) * (1 + _EPS) / 2
        offset = torch.where(self._levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Quantise ``z`` (..., C) to codes (..., C) in [-1, 1], straight-through gradient.

        Raises:
            ModelError: The last dimension is not C.
        """
        self._check_last(z, 'z')
        bounded = self.bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        return rounded / self._half_width

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (..., C) -> int64 indices (...)."""
        self._check_last(codes, 'codes')
        digits = torch.round(codes * self._half_width + self._half_width).to(torch.int64)
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """Int64 indices (...) -> codes (..., C).

        Raises:
            ModelError: Non-integer indices or indices outside ``[0, codebook_size)``.
        """
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise ModelError(f'token indices must be integers, got dtype {indices.dtype}')
        if indices.numel() and (int(indices.min()) < 0
                                or int(indices.max()) >= self.codebook_size):
            raise ModelError(
                f'token indices must lie in [0, {self.codebook_size}), got values in '
                f'[{int(indices.min())}, {int(indices.max())}]')
        digits = (indices.long().unsqueeze(-1) // self._basis) % self._levels.long()
        return (digits.to(torch.float32) - self._half_width) / self._half_width

    def _check_last(self, tensor: torch.Tensor, name: str) -> None:
        if tensor.ndim < 1 or tensor.shape[-1] != self.dim:
            raise ModelError(f'{name}: expected shape (..., {self.dim}), got '
                             f'{tuple(tensor.shape)}')


class _ResBlock(nn.Module):
    """Pre-activation residual block: act, dilated conv, act, 1x1 conv."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                               padding=dilation * (kernel_size - 1) // 2)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


def _stage_blocks(config: FSQConfig) -> list[nn.Module]:
    return [_ResBlock(config.channels, config.kernel_size, config.dilation_growth ** i)
            for i in range(config.depth)]


class TokenizerOutput(NamedTuple):
    """What :meth:`HandTokenizer.forward` returns.

    Attributes:
        reconstruction: (B, T, D) decoded features.
        tokens: (B, 2, T / downsample) int64 token indices, left hand first.
        loss: Scalar total loss: reconstruction + velocity_weight * velocity.
        reconstruction_loss: Scalar smooth-L1 between input and reconstruction.
        velocity_loss: Scalar smooth-L1 between their frame-to-frame differences.
    """

    reconstruction: torch.Tensor
    tokens: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    velocity_loss: torch.Tensor


class HandTokenizer(Checkpointable, nn.Module):
    """Convolutional FSQ autoencoder applied to each hand, weights shared across hands.

    Works on normalised features (see :class:`~handx_gen.motion.features.Normalizer`).
    """

    checkpoint_format = CHECKPOINT_FORMAT
    checkpoint_what = 'tokenizer'
    config_class = FSQConfig

    def __init__(self, config: FSQConfig, layout: FeatureLayout = FEATURE_LAYOUT) -> None:
        super().__init__()
        self.config = config
        self.layout = layout
        self.slices = hand_slices(layout)
        for side, piece in zip(HandSide, self.slices, strict=True):
            if piece.stop - piece.start != config.hand_dim:
                raise ConfigError(
                    f'hand_dim is {config.hand_dim} but the {side.name.lower()} hand has '
                    f'{piece.stop - piece.start} features in {layout!r}')
        c = config.channels
        self.quantizer = FSQ(config.levels)
        self.hand_embedding = nn.Embedding(len(HandSide), c)
        stages = int(math.log2(config.downsample))
        encoder: list[nn.Module] = [nn.Conv1d(config.hand_dim, c, 3, padding=1)]
        for _ in range(stages):
            encoder += [nn.Conv1d(c, c, 4, stride=2, padding=1), *_stage_blocks(config)]
        self.encoder = nn.Sequential(*encoder)
        self.to_latent = nn.Conv1d(c, self.quantizer.dim, 1)
        self.from_latent = nn.Conv1d(self.quantizer.dim, c, 3, padding=1)
        decoder: list[nn.Module] = []
        for _ in range(stages):
            decoder += [*_stage_blocks(config), nn.Upsample(scale_factor=2, mode='nearest'),
                        nn.Conv1d(c, c, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)
        self.to_features = nn.Conv1d(c, config.hand_dim, 3, padding=1)
        self.joint: nn.Module | None = None
        if config.joint_depth:
            out = nn.Conv1d(c, len(HandSide) * config.hand_dim, 3, padding=1)
            nn.init.zeros_(out.weight)  # starts as the independent decoding
            nn.init.zeros_(out.bias)
            self.joint = nn.Sequential(
                nn.Conv1d(len(HandSide) * c, c, 3, padding=1),
                *(_ResBlock(c, config.kernel_size, config.dilation_growth ** i)
                  for i in range(config.joint_depth)),
                nn.SiLU(), out)

    @property
    def codebook_size(self) -> int:
        """Number of token values."""
        return self.quantizer.codebook_size

    def _hand_bias(self, batch: int) -> torch.Tensor:
        sides = torch.arange(len(HandSide), device=self.hand_embedding.weight.device)
        return self.hand_embedding(sides).repeat(batch, 1).unsqueeze(-1)  # (2B, C, 1)

    def _check_features(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise ModelError(f'features must be a torch.Tensor, got {type(x).__name__}')
        dim = self.layout.dim
        if x.ndim != 3 or x.shape[2] != dim or x.shape[1] < 1:
            raise ModelError(f'features: expected shape (B, T, {dim}), got {tuple(x.shape)}')
        down = self.config.downsample
        if x.shape[1] % down:
            raise ModelError(
                f'features have T={x.shape[1]} frames; the tokenizer needs a multiple of '
                f'{down} (one token per {down} frames): trim or pad the clip to '
                f'{x.shape[1] // down * down} or {-(-x.shape[1] // down) * down} frames')
        if not x.dtype.is_floating_point:
            raise ModelError(f'features must be floating point, got dtype {x.dtype}')

    def _latent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> unquantised latents (B, 2, T / down, C)."""
        self._check_features(x)
        batch = x.shape[0]
        hands = torch.stack([x[..., s] for s in self.slices], dim=1)  # (B, 2, T, Dh)
        hands = hands.flatten(0, 1).transpose(1, 2)  # (2B, Dh, T)
        h = self.encoder[0](hands) + self._hand_bias(batch)  # (2B, C, T)
        h = self.encoder[1:](h)  # (2B, C, T / down)
        z = self.to_latent(F.silu(h))  # (2B, Cq, T / down)
        return z.transpose(1, 2).unflatten(0, (batch, len(HandSide)))

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, 2, S, C) -> features (B, S * down, D)."""
        batch = codes.shape[0]
        h = self.from_latent(codes.flatten(0, 1).transpose(1, 2))  # (2B, C, S)
        h = self.decoder(h + self._hand_bias(batch))  # (2B, C, T)
        hands = self.to_features(F.silu(h))  # (2B, Dh, T)
        if self.joint is not None:  # both hands' states -> a correction of each hand
            both = h.unflatten(0, (batch, len(HandSide))).flatten(1, 2)  # (B, 2C, T)
            hands = hands + self.joint(both).unflatten(1, (len(HandSide), -1)).flatten(0, 1)
        hands = hands.transpose(1, 2).unflatten(0, (batch, len(HandSide)))  # (B, 2, T, Dh)
        return torch.cat([hands[:, side] for side in HandSide], dim=-1)  # (B, T, D)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Token indices of features ``x`` (B, T, D), T a multiple of ``downsample``.

        Returns:
            (B, 2, T / downsample) int64, left hand first.

        Raises:
            ModelError: Wrong shape, dtype, or T not a multiple of ``downsample``.
        """
        return self.quantizer.codes_to_indices(self.quantizer(self._latent(x)))

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Features (B, S * downsample, D) of token indices ``tokens`` (B, 2, S).

        Raises:
            ModelError: Wrong shape or indices outside the codebook.
        """
        if not isinstance(tokens, torch.Tensor):
            raise ModelError(f'tokens must be a torch.Tensor, got {type(tokens).__name__}')
        if tokens.ndim != 3 or tokens.shape[1] != len(HandSide) or tokens.shape[2] < 1:
            raise ModelError(f'tokens: expected shape (B, 2, S), got {tuple(tokens.shape)}')
        codes = self.quantizer.indices_to_codes(tokens.to(self.hand_embedding.weight.device))
        return self._decode_codes(codes.to(self.hand_embedding.weight.dtype))

    def forward(self, x: torch.Tensor) -> TokenizerOutput:
        """Encode, quantise and decode ``x`` (B, T, D); the training losses."""
        codes = self.quantizer(self._latent(x))  # (B, 2, S, C)
        reconstruction = self._decode_codes(codes)
        reconstruction_loss = F.smooth_l1_loss(reconstruction, x)
        velocity_loss = F.smooth_l1_loss(reconstruction.diff(dim=1), x.diff(dim=1)) \
            if x.shape[1] > 1 else reconstruction.new_zeros(())
        loss = reconstruction_loss + self.config.velocity_weight * velocity_loss
        return TokenizerOutput(reconstruction, self.quantizer.codes_to_indices(codes.detach()),
                               loss, reconstruction_loss, velocity_loss)
