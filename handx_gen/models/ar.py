"""Decoder-only transformer over interleaved left/right hand tokens, conditioned on text.

The tokens of :class:`~handx_gen.models.fsq.HandTokenizer`, (B, 2, S), are read as one
sequence ``l0, r0, l1, r1, ...`` of length 2S, so each hand's next token sees both hands'
past. The sequence is preceded by a text prefix and a BOS token::

    [pooled text] [text token 1 .. L] [BOS] l0 r0 l1 r1 ... l(S-1) r(S-1)
    '---------- prefix (P = L + 1) --------'

The prefix holds the projected features of the frozen text encoder
(:class:`~handx_gen.models.text_encoder.TextFeatures`); padding text tokens are masked out of
attention. For classifier-free guidance the prefix of a prompt is replaced by the "null text":
one learned vector in the pooled slot and every text token masked. Attention is causal over
the whole sequence, so a prefix computed once serves every step through the key/value cache
(:class:`KVCache`).

:meth:`HandTokenGPT.generate` samples with temperature, top-k, top-p and guidance. Masked
conditioning fixes given tokens: at a fixed position the model's sample is replaced by the
given token, which then conditions everything after it.

- reaction: the given hand's whole token row is fixed; its token ``i`` comes before the other
  hand's token ``i`` (left) or right after it (right), and every earlier token of both hands is
  in context.
- in-betweening: the first and last tokens of both hands are fixed. The prefix conditions the
  whole generation; the suffix is forced at its positions when decoding reaches them. Causal
  decoding cannot look ahead, so the generated middle does not see the suffix; the tokenizer's
  decoder (receptive field of several tokens) blends the boundary, and the features of the
  given frames come out exactly where the caller pastes them back.

- continuation (:mod:`handx_gen.windows`): the tokens of a window's first frames, made by the
  window before, are fixed for both hands; the model continues them as it continues any
  prefix.

:func:`condition_token_mask` turns a :class:`~handx_gen.models.masking.ConditionMask` into
the (2, S) mask of fixed tokens; :func:`frame_token_mask` does it for any (T, D) frame mask.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handx_gen.config import config_kwargs, preset_values
from handx_gen.errors import ConfigError, ModelError
from handx_gen.hand.topology import HandSide
from handx_gen.models.checkpoints import Checkpointable
from handx_gen.models.masking import ConditionMask, MaskMode
from handx_gen.models.text_encoder import TextFeatures
from handx_gen.motion.features import FEATURE_LAYOUT, FeatureGroup

__all__ = [
    'CHECKPOINT_FORMAT',
    'ARConfig',
    'AROutput',
    'HandTokenGPT',
    'KVCache',
    'condition_token_mask',
    'deinterleave',
    'frame_token_mask',
    'interleave',
]

CHECKPOINT_FORMAT = 'handx-ar/1'

_TYPE_TEXT, _TYPE_BOS, _TYPE_LEFT, _TYPE_RIGHT = range(4)


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f'{name} must be an integer >= {low}, got {value!r}')


def _check_fraction(name: str, value: Any, *, closed_high: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0 \
        and (value <= 1 if closed_high else value < 1)
    if not ok:
        bound = ']' if closed_high else ')'
        raise ConfigError(f'{name} must be a number in [0, 1{bound}, got {value!r}')


@dataclasses.dataclass(frozen=True)
class ARConfig:
    """Settings of a :class:`HandTokenGPT`.

    Attributes:
        codebook_size: 1000: motion token values (the tokenizer's codebook, FSQ levels
            (8, 5, 5, 5)). The vocabulary adds two specials: BOS (= codebook_size) and PAD
            (= codebook_size + 1, ignored by the loss).
        d_model: 256: width of the transformer.
        num_layers: 4: transformer blocks.
        num_heads: 4: attention heads; divides d_model.
        mlp_ratio: 4: hidden width of the MLP over d_model.
        dropout: 0.1: dropout in attention, MLP and embeddings (training only).
        max_tokens: 256: longest motion sequence in interleaved tokens (2S), 128 steps per hand
            (17 s at 30 fps with 4 frames per token).
        text_dim: 384: width of the text features (MiniLM-L6).
        max_text_tokens: 64: longest text token sequence (the text encoder's max_length).
        guidance: 2.5: default classifier-free guidance scale; 1 means none.
        text_dropout: 0.1: probability of the null text per sample in training (for CFG).
    """

    codebook_size: int = 1000
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    max_tokens: int = 256
    text_dim: int = 384
    max_text_tokens: int = 64
    guidance: float = 2.5
    text_dropout: float = 0.1

    def __post_init__(self) -> None:
        for name, low in (('codebook_size', 2), ('d_model', 1), ('num_layers', 1),
                          ('num_heads', 1), ('mlp_ratio', 1), ('max_tokens', 2),
                          ('text_dim', 1), ('max_text_tokens', 1)):
            _check_int(name, getattr(self, name), low)
        if self.d_model % self.num_heads:
            raise ConfigError(f'num_heads ({self.num_heads}) must divide d_model '
                              f'({self.d_model})')
        if self.max_tokens % 2:
            raise ConfigError(f'max_tokens must be even (two hands per step), got '
                              f'{self.max_tokens}')
        _check_fraction('dropout', self.dropout, closed_high=False)
        _check_fraction('text_dropout', self.text_dropout, closed_high=True)
        if isinstance(self.guidance, bool) or not isinstance(self.guidance, (int, float)) \
                or not math.isfinite(self.guidance) or self.guidance < 0:
            raise ConfigError(f'guidance must be a finite number >= 0, got {self.guidance!r}')

    @property
    def bos_id(self) -> int:
        """Token id of BOS."""
        return self.codebook_size

    @property
    def pad_id(self) -> int:
        """Token id of PAD (inputs only; ignored by the loss)."""
        return self.codebook_size + 1

    @property
    def vocab_size(self) -> int:
        """Input vocabulary: motion tokens, BOS and PAD."""
        return self.codebook_size + 2

    @property
    def max_steps(self) -> int:
        """Longest sequence in tokens per hand."""
        return self.max_tokens // 2

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ARConfig:
        """A named size, 'tiny', 'small' or 'base', with optional field overrides.

        Raises:
            ConfigError: Unknown preset name or override.
        """
        return cls.from_dict(preset_values(_PRESETS, name, 'AR model', overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ARConfig:
        """Build from a mapping (e.g. YAML).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or bad values.
        """
        return cls(**config_kwargs(cls, values, 'AR model'))

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed settings, the inverse of :meth:`from_dict`."""
        return dataclasses.asdict(self)


_PRESETS: dict[str, dict[str, Any]] = {
    'tiny': {'d_model': 64, 'num_layers': 2, 'num_heads': 2},
    'small': {'d_model': 256, 'num_layers': 4, 'num_heads': 4},
    'base': {'d_model': 512, 'num_layers': 8, 'num_heads': 8},
}


def interleave(tokens: torch.Tensor) -> torch.Tensor:
    """(B, 2, S) per-hand tokens -> (B, 2S) sequence ``l0, r0, l1, r1, ...``."""
    return tokens.transpose(1, 2).flatten(1)


def deinterleave(sequence: torch.Tensor) -> torch.Tensor:
    """(B, 2S) sequence -> (B, 2, S) per-hand tokens; the inverse of :func:`interleave`."""
    return sequence.unflatten(1, (-1, len(HandSide))).transpose(1, 2)


def condition_token_mask(condition: ConditionMask, downsample: int = 4) -> torch.Tensor:
    """Which tokens a condition fixes, for clips of ``condition.num_frames`` frames.

    A token is fixed when every frame it covers is given for its hand: reaction fixes the given
    hand's row; in-betweening fixes the first and last ``k // downsample`` steps of both hands
    (at least one token must stay generated).

    Returns:
        (2, S) bool, S = num_frames / downsample.

    Raises:
        ModelError: T not a multiple of ``downsample``, a mode tokens cannot express
            (keyframes, trajectory: they give parts of a token's frames or features), or an
            in-betweening k shorter than one token.
    """
    frames = condition.num_frames
    if frames % downsample:
        raise ModelError(f'the clip has {frames} frames; token conditions need a multiple of '
                         f'{downsample}')
    steps = frames // downsample
    mask = torch.zeros(len(HandSide), steps, dtype=torch.bool)
    if condition.mode is MaskMode.TEXT:
        return mask
    if condition.mode is MaskMode.REACTION:
        mask[int(condition.side)] = True
        return mask
    if condition.mode is MaskMode.INBETWEEN:
        fixed = condition.k // downsample
        if fixed < 1:
            raise ModelError(f'inbetween with k={condition.k} frames gives less than one token '
                             f'({downsample} frames) at each end; use k >= {downsample}')
        mask[:, :fixed] = True
        mask[:, steps - fixed:] = True
        return mask
    raise ModelError(f'the token model cannot fix tokens for mask mode '
                     f'{condition.mode.value!r}; it supports text, reaction and inbetween '
                     f'(use the diffusion model for keyframes and trajectory)')


def frame_token_mask(mask: np.ndarray, downsample: int = 4) -> torch.Tensor:
    """Which tokens a (T, D) frame mask over the feature layout fixes: a hand's token when
    every feature of that hand is given in every frame the token covers.

    Returns:
        (2, S) bool, S = T / downsample.

    Raises:
        ModelError: A mask of the wrong shape, or T not a multiple of ``downsample``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or mask.shape[1] != FEATURE_LAYOUT.dim or mask.shape[0] % downsample:
        raise ModelError(f'frame mask: expected shape (T, {FEATURE_LAYOUT.dim}) with T a '
                         f'multiple of {downsample}, got {mask.shape}')
    out = torch.zeros(len(HandSide), mask.shape[0] // downsample, dtype=torch.bool)
    for side in HandSide:
        whole = mask[:, FEATURE_LAYOUT.group_mask((side, g) for g in FeatureGroup)].all(axis=1)
        out[int(side)] = torch.from_numpy(whole.reshape(-1, downsample).all(axis=1))
    return out


class KVCache:
    """Keys and values of every layer for incremental decoding, and the key mask.

    Attributes:
        keys, values: Per layer, (B, H, N, hd) or ``None`` before the first pass.
        key_mask: (B, N) bool, true on keys that may be attended to.
    """

    def __init__(self, num_layers: int) -> None:
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.key_mask: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """N, the cached positions."""
        return 0 if self.key_mask is None else self.key_mask.shape[1]


class _Attention(nn.Module):
    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None,
                layer: int) -> torch.Tensor:
        """x (B, n, d); mask (B, 1, n, N) bool over all keys (cached + new)."""
        batch, n, d = x.shape
        q, k, v = self.qkv(x).view(batch, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if cache is not None:  # (B, H, n, hd) each
            if cache.keys[layer] is not None:
                k = torch.cat([cache.keys[layer], k], dim=2)
                v = torch.cat([cache.values[layer], v], dim=2)
            cache.keys[layer], cache.values[layer] = k, v
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(batch, n, d))


class _Block(nn.Module):
    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = _Attention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        hidden = config.mlp_ratio * config.d_model
        self.mlp = nn.Sequential(nn.Linear(config.d_model, hidden), nn.GELU(),
                                 nn.Linear(hidden, config.d_model), nn.Dropout(config.dropout))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: KVCache | None,
                layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask, cache, layer)
        return x + self.mlp(self.ln2(x))


class AROutput(NamedTuple):
    """What :meth:`HandTokenGPT.forward` returns.

    Attributes:
        logits: (B, 2S, codebook_size), position ``i`` predicting interleaved token ``i``.
        loss: Scalar cross-entropy over non-PAD targets, or ``None`` without targets.
    """

    logits: torch.Tensor
    loss: torch.Tensor | None


class HandTokenGPT(Checkpointable, nn.Module):
    """Text-conditioned decoder-only transformer over interleaved hand tokens."""

    checkpoint_format = CHECKPOINT_FORMAT
    checkpoint_what = 'AR model'
    config_class = ARConfig

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.position_embedding = nn.Embedding(config.max_tokens + 1, d)  # BOS + motion
        self.type_embedding = nn.Embedding(4, d)  # text, BOS, left, right
        self.text_projection = nn.Linear(config.text_dim, d)
        self.pooled_projection = nn.Linear(config.text_dim, d)
        self.null_text = nn.Parameter(torch.zeros(d))
        self.text_position = nn.Parameter(torch.zeros(config.max_text_tokens + 1, d))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.codebook_size, bias=False)
        self.apply(self._init_weights)
        nn.init.normal_(self.null_text, std=0.02)
        nn.init.normal_(self.text_position, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    # ------------------------------------------------------------------ inputs

    def _check_text(self, text: Any, batch: int | None = None) -> None:
        if not isinstance(text, TextFeatures):
            raise ModelError(f'text must be TextFeatures, got {type(text).__name__}')
        tokens, mask, pooled = text.tokens, text.attention_mask, text.pooled
        dim, max_len = self.config.text_dim, self.config.max_text_tokens
        if tokens.ndim != 3 or tokens.shape[2] != dim or not 1 <= tokens.shape[1] <= max_len:
            raise ModelError(f'text tokens: expected shape (B, L, {dim}) with 1 <= L <= '
                             f'{max_len}, got {tuple(tokens.shape)}')
        if pooled.shape != (tokens.shape[0], dim):
            raise ModelError(f'text pooled: expected shape ({tokens.shape[0]}, {dim}), got '
                             f'{tuple(pooled.shape)}')
        if mask.shape != tokens.shape[:2]:
            raise ModelError(f'text attention_mask: expected shape {tuple(tokens.shape[:2])}, '
                             f'got {tuple(mask.shape)}')
        if batch is not None and tokens.shape[0] != batch:
            raise ModelError(f'text has {tokens.shape[0]} prompts for a batch of {batch}')

    def _check_tokens(self, tokens: Any, name: str, *, allow_pad: bool) -> None:
        if not isinstance(tokens, torch.Tensor):
            raise ModelError(f'{name} must be a torch.Tensor, got {type(tokens).__name__}')
        if tokens.ndim != 3 or tokens.shape[1] != len(HandSide) or tokens.shape[2] < 1:
            raise ModelError(f'{name}: expected shape (B, 2, S), got {tuple(tokens.shape)}')
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ModelError(f'{name} must be integer token indices, got dtype {tokens.dtype}')
        if tokens.shape[2] > self.config.max_steps:
            raise ModelError(f'{name} has {tokens.shape[2]} steps per hand; the model takes at '
                             f'most {self.config.max_steps} (max_tokens='
                             f'{self.config.max_tokens})')
        valid = (tokens >= 0) & (tokens < self.config.codebook_size)
        if allow_pad:
            valid |= tokens == self.config.pad_id
        if not bool(valid.all()):
            bad = tokens[~valid][0].item()
            pad = ' or PAD' if allow_pad else ''
            raise ModelError(f'{name} holds {bad}, outside the codebook [0, '
                             f'{self.config.codebook_size}){pad}')

    def _prefix(self, text: TextFeatures, null: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Text prefix (B, P, d) and its key mask (B, P); ``null`` (B,) bool picks null text."""
        text = text.to(self.device)
        tokens = self.text_projection(text.tokens)  # (B, L, d)
        pooled = self.pooled_projection(text.pooled).unsqueeze(1)  # (B, 1, d)
        mask = text.attention_mask.bool()
        if null is not None:
            null = null.to(self.device).bool()
            pooled = torch.where(null[:, None, None], self.null_text.expand_as(pooled), pooled)
            mask = mask & ~null[:, None]
        prefix = torch.cat([pooled, tokens], dim=1)  # (B, P, d)
        prefix = prefix + self.text_position[:prefix.shape[1]] \
            + self.type_embedding.weight[_TYPE_TEXT]
        key_mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], dim=1)  # (B, P)
        return prefix, key_mask

    def _embed(self, sequence: torch.Tensor, start: int) -> torch.Tensor:
        """Embed ids (B, n) at motion positions ``start..start+n-1`` (0 is BOS)."""
        positions = torch.arange(start, start + sequence.shape[1], device=self.device)
        types = torch.where(positions == 0, _TYPE_BOS,
                            torch.where(positions % 2 == 1, _TYPE_LEFT, _TYPE_RIGHT))
        return self.token_embedding(sequence) + self.position_embedding(positions) \
            + self.type_embedding(types)

    def _run(self, x: torch.Tensor, key_mask: torch.Tensor, cache: KVCache | None
             ) -> torch.Tensor:
        """Transformer over new positions x (B, n, d); key_mask (B, N) covers cached + new."""
        n, total = x.shape[1], key_mask.shape[1]
        query_pos = torch.arange(total - n, total, device=self.device)
        causal = torch.arange(total, device=self.device)[None, :] <= query_pos[:, None]
        mask = (causal[None] & key_mask[:, None, :]).unsqueeze(1)  # (B, 1, n, N)
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, mask, cache, layer)
        return self.ln_f(x)

    # ---------------------------------------------------------------- training

    def forward(self, tokens: torch.Tensor, text: TextFeatures, *,
                null_text: torch.Tensor | None = None) -> AROutput:
        """Next-token logits and loss for a batch of token sequences.

        Args:
            tokens: (B, 2, S) int64 token indices, left hand first; PAD marks steps past the
                end of shorter clips (ignored by the loss).
            text: B prompts' features.
            null_text: (B,) bool, true where the prompt is replaced by the null text (see
                :meth:`sample_null_text`); ``None`` keeps every prompt.

        Raises:
            ModelError: Bad shapes, dtypes or token values.
        """
        self._check_tokens(tokens, 'tokens', allow_pad=True)
        batch = tokens.shape[0]
        self._check_text(text, batch)
        if null_text is not None and tuple(null_text.shape) != (batch,):
            raise ModelError(f'null_text: expected shape ({batch},), got '
                             f'{tuple(null_text.shape)}')
        targets = interleave(tokens.to(self.device).long())  # (B, 2S)
        bos = targets.new_full((batch, 1), self.config.bos_id)
        inputs = torch.cat([bos, targets[:, :-1]], dim=1)
        prefix, key_mask = self._prefix(text, null_text)
        x = torch.cat([prefix, self._embed(inputs, 0)], dim=1)
        key_mask = torch.cat([key_mask, key_mask.new_ones(inputs.shape)], dim=1)
        hidden = self._run(x, key_mask, None)[:, prefix.shape[1]:]  # (B, 2S, d)
        logits = self.head(hidden)
        targets = targets.masked_fill(targets == self.config.pad_id, -100)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return AROutput(logits, loss)

    def sample_null_text(self, batch: int, generator: torch.Generator | None = None
                         ) -> torch.Tensor:
        """(B,) bool, each true with probability ``config.text_dropout`` (CFG training)."""
        return torch.rand(batch, generator=generator) < self.config.text_dropout

    # -------------------------------------------------------------- generation

    @torch.no_grad()
    def generate(
        self,
        text: TextFeatures,
        num_steps: int,
        *,
        given: torch.Tensor | None = None,
        given_mask: torch.Tensor | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float = 1.0,
        guidance: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        return_logits: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Sample token sequences for B prompts.

        Args:
            text: B prompts' features.
            num_steps: S, tokens per hand (frames / downsample).
            given: (B, 2, S) token indices of the given tokens (values where ``given_mask``
                is false are ignored).
            given_mask: (B, 2, S) or (2, S) bool, true where a token is fixed; defaults to all
                of ``given`` when ``given`` is set. See :func:`condition_token_mask`.
            top_k: Keep the k most likely tokens; ``None`` keeps all.
            top_p: Keep the smallest set of tokens with probability mass >= p; ``None`` keeps
                all.
            temperature: Softmax temperature; 0 means greedy (argmax).
            guidance: Classifier-free guidance scale, ``uncond + g * (cond - uncond)``;
                ``None`` uses ``config.guidance``; 1 skips the unconditional pass.
            generator: Source of randomness for sampling (the same seed gives the same
                tokens).
            use_cache: Reuse keys and values across steps (``False`` recomputes the whole
                sequence each step; same result, slower).
            return_logits: Also return the guided logits each step sampled from.

        Returns:
            (B, 2, S) int64 tokens, equal to ``given`` wherever ``given_mask`` is true; with
            ``return_logits``, also the (B, 2S, codebook_size) guided logits (before
            temperature and filtering), in interleaved order.

        Raises:
            ModelError: Bad shapes, token values or sampling settings.
        """
        config = self.config
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) \
                or not 1 <= num_steps <= config.max_steps:
            raise ModelError(f'num_steps must be an integer in [1, {config.max_steps}], got '
                             f'{num_steps!r}')
        self._check_text(text)
        batch = text.tokens.shape[0]
        guidance = config.guidance if guidance is None else guidance
        self._check_sampling(top_k, top_p, temperature, guidance)
        fixed, fixed_mask = self._check_given(given, given_mask, batch, num_steps)
        fixed, fixed_mask = interleave(fixed), interleave(fixed_mask)  # (B, 2S)
        if generator is not None and generator.device != torch.device('cpu'):
            raise ModelError('generator must be a CPU torch.Generator')

        use_cfg = guidance != 1.0
        if use_cfg:
            null = torch.cat([torch.zeros(batch, dtype=torch.bool),
                              torch.ones(batch, dtype=torch.bool)])
            text = TextFeatures(text.tokens.repeat(2, 1, 1), text.attention_mask.repeat(2, 1),
                                text.pooled.repeat(2, 1))
        else:
            null = None
        prefix, prefix_mask = self._prefix(text, null)
        sequence = torch.full((prefix.shape[0], 1), config.bos_id, dtype=torch.long,
                              device=self.device)
        cache = KVCache(config.num_layers) if use_cache else None
        out = torch.empty(batch, 2 * num_steps, dtype=torch.long, device=self.device)
        all_logits = []
        for i in range(2 * num_steps):
            if cache is None:
                x = torch.cat([prefix, self._embed(sequence, 0)], dim=1)
                key_mask = torch.cat([prefix_mask, prefix_mask.new_ones(sequence.shape)], 1)
            elif i == 0:
                x = torch.cat([prefix, self._embed(sequence, 0)], dim=1)
                key_mask = torch.cat([prefix_mask, prefix_mask.new_ones(sequence.shape)], 1)
                cache.key_mask = key_mask
            else:
                x = self._embed(sequence[:, -1:], i)
                key_mask = torch.cat([cache.key_mask, cache.key_mask.new_ones(batch * (
                    2 if use_cfg else 1), 1)], dim=1)
                cache.key_mask = key_mask
            logits = self.head(self._run(x, key_mask, cache)[:, -1]).float()  # (B', V)
            if use_cfg:
                cond, uncond = logits[:batch], logits[batch:]
                logits = uncond + guidance * (cond - uncond)
            if return_logits:
                all_logits.append(logits)
            token = self._sample(logits, top_k, top_p, temperature, generator)  # (B,)
            token = torch.where(fixed_mask[:, i], fixed[:, i], token)
            out[:, i] = token
            step = token.repeat(2) if use_cfg else token
            sequence = torch.cat([sequence, step[:, None]], dim=1)
        if return_logits:
            return deinterleave(out), torch.stack(all_logits, dim=1)
        return deinterleave(out)

    def step_logits(self, text: TextFeatures, tokens: torch.Tensor, *,
                    guidance: float | None = None) -> torch.Tensor:
        """Guided next-token logits at every position, by one full pass (no cache).

        Args:
            text: B prompts' features.
            tokens: (B, 2, S) tokens.
            guidance: As in :meth:`generate`.

        Returns:
            (B, 2S, codebook_size): position ``i`` is the distribution of interleaved token
            ``i`` given the earlier ones, as :meth:`generate` computes it.
        """
        guidance = self.config.guidance if guidance is None else guidance
        self._check_text(text, tokens.shape[0] if isinstance(tokens, torch.Tensor) else None)
        cond = self.forward(tokens, text).logits
        if guidance == 1.0:
            return cond
        null = torch.ones(tokens.shape[0], dtype=torch.bool)
        uncond = self.forward(tokens, text, null_text=null).logits
        return uncond + guidance * (cond - uncond)

    @staticmethod
    def _check_sampling(top_k: Any, top_p: Any, temperature: Any, guidance: Any) -> None:
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or top_k < 1):
            raise ModelError(f'top_k must be a positive integer or None, got {top_k!r}')
        if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                                  or not 0 < top_p <= 1):
            raise ModelError(f'top_p must be a number in (0, 1] or None, got {top_p!r}')
        for name, value in (('temperature', temperature), ('guidance', guidance)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ModelError(f'{name} must be a finite number >= 0, got {value!r}')

    def _check_given(self, given: Any, given_mask: Any, batch: int, steps: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (batch, len(HandSide), steps)
        if given is None:
            if given_mask is not None:
                raise ModelError('given_mask needs given, the tokens it fixes')
            zeros = torch.zeros(shape, dtype=torch.long, device=self.device)
            return zeros, zeros.bool()
        if isinstance(given_mask, torch.Tensor) and given_mask.dtype != torch.bool:
            raise ModelError(f'given_mask must be a bool tensor, got dtype {given_mask.dtype}')
        if given_mask is None:
            given_mask = torch.ones(shape, dtype=torch.bool)
        elif not isinstance(given_mask, torch.Tensor):
            raise ModelError(f'given_mask must be a bool tensor, got {type(given_mask).__name__}')
        elif given_mask.ndim == 2:
            given_mask = given_mask.expand(batch, -1, -1)
        if tuple(given_mask.shape) != shape:
            raise ModelError(f'given_mask: expected shape {shape} or {shape[1:]}, got '
                             f'{tuple(given_mask.shape)}')
        if not isinstance(given, torch.Tensor) or tuple(given.shape) != shape:
            got = tuple(given.shape) if isinstance(given, torch.Tensor) else type(given).__name__
            raise ModelError(f'given: expected a tensor of shape {shape} (B, 2, num_steps), '
                             f'got {got}')
        given = given.to(self.device).long()
        given_mask = given_mask.to(self.device)
        self._check_tokens(torch.where(given_mask, given, 0), 'given', allow_pad=False)
        return given, given_mask

    @staticmethod
    def _sample(logits: torch.Tensor, top_k: int | None, top_p: float | None,
                temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        """One token per row of ``logits`` (B, V)."""
        if temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits / temperature
        if top_k is not None and top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -math.inf)
        if top_p is not None and top_p < 1:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
            drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # keeps the first
            sorted_logits = sorted_logits.masked_fill(drop, -math.inf)
            logits = torch.full_like(logits, -math.inf).scatter(-1, order, sorted_logits)
        probs = logits.softmax(dim=-1).cpu()
        return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)
