"""Generation models and what they share: condition masks and the frozen text encoder.

:mod:`~handx_gen.models.masking` defines which parts of a clip are given (per hand, per frame,
per feature group); :mod:`~handx_gen.models.text_encoder` turns prompts into token-level and
pooled features (MiniLM in plain torch, :mod:`~handx_gen.models.minilm`; ``transformers`` is
imported only for other encoders);
:mod:`~handx_gen.models.diffusion` is the masked-conditioning diffusion model;
:mod:`~handx_gen.models.fsq` the per-hand FSQ tokenizer and :mod:`~handx_gen.models.ar` the
autoregressive model over interleaved left/right tokens; :mod:`~handx_gen.models.smoothing`
smooths what either generates over time, the given parts kept exactly.
"""

from handx_gen.lazy import lazy_exports

# module -> the names re-exported from it, imported on first use (handx_gen.lazy)
_EXPORTS = {
    'handx_gen.models.ar': ('ARConfig', 'AROutput', 'HandTokenGPT', 'condition_token_mask',
                            'frame_token_mask'),
    'handx_gen.models.diffusion': ('DiffusionConfig', 'GaussianDiffusion', 'MotionDenoiser'),
    'handx_gen.models.fsq': ('FSQ', 'FSQConfig', 'HandTokenizer'),
    'handx_gen.models.mask_mode': ('MaskMode',),
    'handx_gen.models.masking': (
        'ConditionMask', 'MaskBatch', 'MaskSamplerConfig', 'apply_condition', 'make_mask',
        'sample_masks',
    ),
    'handx_gen.models.smoothing': (
        'Smoother', 'SmoothingConfig', 'SmoothingResult', 'penalty_weight', 'smooth_columns',
    ),
    'handx_gen.models.text_encoder': (
        'DEFAULT_MAX_CHARS', 'TextEncoder', 'TextEncoderConfig', 'TextEncoderKind', 'TextFeatures',
        'bundled_minilm_path', 'validate_prompt',
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
    'Smoother',
    'SmoothingConfig',
    'SmoothingResult',
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
    'frame_token_mask',
    'make_mask',
    'penalty_weight',
    'sample_masks',
    'smooth_columns',
    'validate_prompt',
]
