"""Generation models and what they share: condition masks and the frozen text encoder.

:mod:`~handx_gen.models.masking` defines which parts of a clip are given (per hand, per frame,
per feature group); :mod:`~handx_gen.models.text_encoder` turns prompts into token-level and
pooled features (``transformers`` is imported only when an encoder is loaded);
:mod:`~handx_gen.models.diffusion` is the masked-conditioning diffusion model;
:mod:`~handx_gen.models.fsq` the per-hand FSQ tokenizer and :mod:`~handx_gen.models.ar` the
autoregressive model over interleaved left/right tokens.
"""

from handx_gen.models.ar import ARConfig, AROutput, HandTokenGPT, condition_token_mask
from handx_gen.models.diffusion import DiffusionConfig, GaussianDiffusion, MotionDenoiser
from handx_gen.models.fsq import FSQ, FSQConfig, HandTokenizer
from handx_gen.models.masking import (
    ConditionMask,
    MaskBatch,
    MaskMode,
    MaskSamplerConfig,
    apply_condition,
    make_mask,
    sample_masks,
)
from handx_gen.models.text_encoder import (
    DEFAULT_MAX_CHARS,
    TextEncoder,
    TextEncoderConfig,
    TextEncoderKind,
    TextFeatures,
    bundled_minilm_path,
    validate_prompt,
)

__all__ = [
    'DEFAULT_MAX_CHARS',
    'FSQ',
    'ARConfig',
    'AROutput',
    'DiffusionConfig',
    'FSQConfig',
    'GaussianDiffusion',
    'HandTokenGPT',
    'HandTokenizer',
    'MotionDenoiser',
    'ConditionMask',
    'MaskBatch',
    'MaskMode',
    'MaskSamplerConfig',
    'TextEncoder',
    'TextEncoderConfig',
    'TextEncoderKind',
    'TextFeatures',
    'apply_condition',
    'condition_token_mask',
    'bundled_minilm_path',
    'make_mask',
    'sample_masks',
    'validate_prompt',
]
