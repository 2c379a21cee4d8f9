"""The text-motion evaluator: contrastive motion and text encoders whose shared embedding
space the standard metrics (FID, R-precision, MM-Dist, Diversity, MultiModality) are computed
in.

* **Motion side** (:class:`MotionEncoder`): the normalised feature layout of a clip
  (:data:`~handx_gen.motion.features.FEATURE_LAYOUT`, both hands, 4 s at 30 fps) cut into
  patches of ``frames_per_token`` frames, a transformer encoder over them, mean-pooled and
  projected.
* **Text side** (:class:`TextHead`): the frozen text encoder's token features (MiniLM-L6 by
  default, the same encoder as the generators) through one transformer layer, mean-pooled
  over the real tokens together with the encoder's pooled vector, and projected.

Both embeddings are unit vectors; training (``training/train_evaluator.py``) pulls a clip
and its texts together and pushes the batch's other texts away (a symmetric InfoNCE loss with
a learned temperature; batch entries with the same text are all positives). It trains on a
corpus' train split only, never on generated motion.

:class:`Evaluator` loads a checkpoint (default the shipped ``evaluator_small.pt``) and embeds
clips (any :class:`~handx_gen.motion.container.BimanualMotion`, resampled to the evaluator's
frame rate and brought to its length as in training) and texts.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from handx_gen.config import config_kwargs, preset_values
from handx_gen.errors import ConfigError, ModelError
from handx_gen.models.checkpoints import Checkpointable, load_checkpoint
from handx_gen.models.text_encoder import TextFeatures
from handx_gen.motion.features import FEATURE_LAYOUT, Normalizer

__all__ = ['EVALUATOR_FORMAT', 'Evaluator', 'EvaluatorConfig', 'MotionEncoder', 'TextHead',
           'TextMotionModel', 'contrastive_loss', 'default_evaluator']

EVALUATOR_FORMAT = 'handx-evaluator/1'
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / 'weights'

_PRESETS: dict[str, dict[str, Any]] = {
    'tiny': {'d_model': 64, 'num_layers': 1, 'num_heads': 2, 'embed_dim': 64},
    'small': {'d_model': 192, 'num_layers': 2, 'num_heads': 4, 'embed_dim': 128},
    'base': {'d_model': 384, 'num_layers': 4, 'num_heads': 6, 'embed_dim': 512},
}


def default_evaluator() -> Path:
    """The shipped evaluator checkpoint."""
    return WEIGHTS_DIR / 'evaluator_small.pt'


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig:
    """Sizes of the evaluator. The defaults are the ``small`` preset."""

    feature_dim: int = FEATURE_LAYOUT.dim  # D of the motion features
    text_dim: int = 384  # width of the frozen text encoder's features
    max_frames: int = 120  # clip length, frames (4 s at 30 fps)
    frames_per_token: int = 4  # frames per motion patch
    d_model: int = 192
    num_layers: int = 2
    num_heads: int = 4
    embed_dim: int = 128  # width of the shared embedding
    dropout: float = 0.1
    init_temperature: float = 0.07

    def __post_init__(self) -> None:
        for name in ('feature_dim', 'text_dim', 'max_frames', 'frames_per_token', 'd_model',
                     'num_layers', 'num_heads', 'embed_dim'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f'evaluator {name} must be a positive integer, got {value!r}')
        if self.max_frames % self.frames_per_token:
            raise ConfigError(f'evaluator max_frames {self.max_frames} must be a multiple of '
                              f'frames_per_token {self.frames_per_token}')
        if self.d_model % self.num_heads:
            raise ConfigError(f'evaluator d_model {self.d_model} must be divisible by '
                              f'num_heads {self.num_heads}')
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f'evaluator dropout must be in [0, 1), got {self.dropout!r}')
        if not 0.0 < self.init_temperature <= 1.0:
            raise ConfigError(f'evaluator init_temperature must be in (0, 1], got '
                              f'{self.init_temperature!r}')

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EvaluatorConfig:
        """The named size (``tiny``, ``small``, ``base``) with ``overrides``."""
        return cls.from_dict(preset_values(_PRESETS, name, 'evaluator', overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> EvaluatorConfig:
        return cls(**config_kwargs(cls, values, 'evaluator'))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _encoder_layers(config: EvaluatorConfig, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(config.d_model, config.num_heads, 4 * config.d_model,
                                       config.dropout, batch_first=True, norm_first=True,
                                       activation='gelu')
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class MotionEncoder(nn.Module):
    """(B, T, D) normalised features -> (B, embed_dim) unit embeddings."""

    def __init__(self, config: EvaluatorConfig) -> None:
        super().__init__()
        self.config = config
        tokens = config.max_frames // config.frames_per_token
        self.patch = nn.Linear(config.feature_dim * config.frames_per_token, config.d_model)
        self.position = nn.Parameter(torch.randn(1, tokens, config.d_model) * 0.02)
        self.encoder = _encoder_layers(config, config.num_layers)
        self.norm = nn.LayerNorm(config.d_model)
        self.out = nn.Linear(config.d_model, config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.ndim != 3 or x.shape[1] != c.max_frames or x.shape[2] != c.feature_dim:
            raise ModelError(f'the motion encoder takes (B, {c.max_frames}, {c.feature_dim}) '
                             f'features, got {tuple(x.shape)}')
        b = x.shape[0]
        h = self.patch(x.reshape(b, -1, c.frames_per_token * c.feature_dim)) + self.position
        h = self.norm(self.encoder(h)).mean(1)
        return F.normalize(self.out(h), dim=-1)


class TextHead(nn.Module):
    """Frozen text features -> (B, embed_dim) unit embeddings."""

    def __init__(self, config: EvaluatorConfig) -> None:
        super().__init__()
        self.tokens_in = nn.Linear(config.text_dim, config.d_model)
        self.layer = _encoder_layers(config, 1)
        self.pooled_in = nn.Linear(config.text_dim, config.d_model)
        self.norm = nn.LayerNorm(2 * config.d_model)
        self.out = nn.Sequential(nn.Linear(2 * config.d_model, config.d_model), nn.GELU(),
                                 nn.Linear(config.d_model, config.embed_dim))

    def forward(self, text: TextFeatures) -> torch.Tensor:
        mask = text.attention_mask.bool()
        h = self.layer(self.tokens_in(text.tokens), src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).float()
        mean = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        h = torch.cat([mean, self.pooled_in(text.pooled)], dim=-1)
        return F.normalize(self.out(self.norm(h)), dim=-1)


class TextMotionModel(Checkpointable, nn.Module):
    """The two encoders and the learned temperature of the contrastive loss."""

    checkpoint_format = EVALUATOR_FORMAT
    checkpoint_what = 'evaluator'
    config_class = EvaluatorConfig

    def __init__(self, config: EvaluatorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or EvaluatorConfig()
        self.motion = MotionEncoder(config)
        self.text = TextHead(config)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))

    def forward(self, x: torch.Tensor, text: TextFeatures, same_text: torch.Tensor | None = None
                ) -> torch.Tensor:
        """The contrastive loss of a batch (row ``i`` of ``x`` goes with text ``i``)."""
        return contrastive_loss(self.motion(x), self.text(text), self.log_scale, same_text)


def contrastive_loss(motion: torch.Tensor, text: torch.Tensor, log_scale: torch.Tensor,
                     same_text: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit embeddings (B, E). ``same_text`` (B, B) bool
    marks pairs with identical texts: all of them are positives, with equal weight."""
    scale = log_scale.clamp(max=math.log(100.0)).exp()
    logits = scale * motion @ text.T  # (B, B)
    if same_text is None:
        same_text = torch.eye(len(motion), dtype=torch.bool, device=motion.device)
    target = same_text.float() / same_text.float().sum(1, keepdim=True)
    loss_m = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    loss_t = -(target.T * F.log_softmax(logits.T, 1)).sum(1).mean()
    return 0.5 * (loss_m + loss_t)


class Evaluator:
    """A trained evaluator: embeds clips and texts into the shared space.

    Example::

        evaluator = Evaluator()  # the shipped checkpoint
        m = evaluator.embed_motions(clips)  # (N, 128) numpy, unit rows
        t = evaluator.embed_texts([c.texts[0] for c in clips])
    """

    def __init__(self, path: str | os.PathLike | None = None, device: str = 'cpu') -> None:
        """Load the checkpoint at ``path`` (default :func:`default_evaluator`).

        Raises:
            ModelError: Missing, corrupted or foreign checkpoint, or one without its
                normalisation statistics or text encoder.
        """
        self.path = Path(path) if path is not None else default_evaluator()
        checkpoint = load_checkpoint(self.path, EVALUATOR_FORMAT, 'evaluator')
        missing = [k for k in ('normalizer', 'text_encoder', 'fps') if k not in checkpoint]
        if missing:
            raise ModelError(f'{self.path}: evaluator checkpoint lacks {missing}')
        self.model = TextMotionModel.from_checkpoint(checkpoint).to(device).eval()
        self.config: EvaluatorConfig = self.model.config
        self.normalizer = Normalizer.from_state_dict(checkpoint['normalizer'])
        self.fps = float(checkpoint['fps'])
        self.text_encoder_info = dict(checkpoint['text_encoder'])
        self.data = checkpoint.get('data')
        self.step = checkpoint.get('step')
        self.device = torch.device(device)
        self._encoder: Any = None

    def describe(self) -> dict[str, Any]:
        return {'checkpoint': str(self.path), 'step': self.step, 'fps': self.fps,
                'config': self.config.to_dict(), 'text_encoder': self.text_encoder_info.get(
                    'name'), 'data': self.data}

    def motion_features(self, motions: Sequence[Any]) -> np.ndarray:
        """(N, T, D) normalised features of clips, at the evaluator's rate and length."""
        from handx_gen.models.dataset import pad_frames
        from handx_gen.motion.container import BimanualMotion

        out = np.empty((len(motions), self.config.max_frames, self.config.feature_dim),
                       np.float32)
        for i, motion in enumerate(motions):
            if not isinstance(motion, BimanualMotion):
                raise ModelError(f'clip {i}: expected a BimanualMotion, got '
                                 f'{type(motion).__name__}')
            if abs(motion.fps - self.fps) > 1e-6:
                motion = motion.resample(self.fps)
            raw = pad_frames(FEATURE_LAYOUT.encode(motion), self.config.max_frames)
            out[i] = self.normalizer.normalize(raw)
        if not np.isfinite(out).all():
            raise ModelError('a clip has NaN or infinite features')
        return out

    @torch.no_grad()
    def embed_features(self, features: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """(N, E) embeddings of normalised features (N, T, D)."""
        rows = [self.model.motion(torch.from_numpy(features[i:i + batch_size]).float()
                                  .to(self.device)).cpu().numpy()
                for i in range(0, len(features), batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, self.config.embed_dim))

    def embed_motions(self, motions: Sequence[Any], batch_size: int = 128) -> np.ndarray:
        """(N, E) unit embeddings of clips."""
        return self.embed_features(self.motion_features(motions), batch_size)

    def text_encoder(self) -> Any:
        """The frozen text encoder the evaluator was trained with (loaded once)."""
        if self._encoder is None:
            from handx_gen.models.text_encoder import encoder_from_description

            self._encoder = encoder_from_description(self.text_encoder_info, self.device,
                                                     self.path)
        return self._encoder

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(N, E) unit embeddings of texts."""
        from handx_gen.models.text_encoder import validate_prompt

        texts = [validate_prompt(t) for t in texts]
        encoder = self.text_encoder()
        rows = [self.model.text(encoder.encode(texts[i:i + batch_size])).cpu().numpy()
                for i in range(0, len(texts), batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, self.config.embed_dim))
