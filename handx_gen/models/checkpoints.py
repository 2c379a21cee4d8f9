"""Self-describing checkpoints: one writer, one reader, one rebuilder for every model.

A checkpoint is a plain dict that ``torch.load(..., weights_only=True)`` reads back: ``format``
(name and version, e.g. ``'handx-diffusion/1'``), ``config`` (the model config as plain
values), ``model`` (the state dict) and whatever the trainer adds (``step``, ``normalizer``,
``text_encoder``, ``data``, ...). Readers check the format before touching the weights, so a
file of another model or another version fails with a message naming both.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from handx_gen.errors import ConfigError, ModelError

__all__ = [
    'Checkpointable',
    'check_format',
    'half_precision',
    'load_checkpoint',
    'rebuild',
    'save_checkpoint',
]

M = TypeVar('M', bound=torch.nn.Module)

RESERVED_KEYS = frozenset({'format', 'config', 'model'})


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (a temporary file, then a rename), creating
    parent folders; an interrupted save never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        torch.save(dict(checkpoint), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_format(checkpoint: Any, expected: str | tuple[str, ...], what: str
                 ) -> Mapping[str, Any]:
    """``checkpoint`` as a mapping whose ``format`` is ``expected`` (or one of them).

    Raises:
        ModelError: Not a mapping, or another format (the message names both).
    """
    if not isinstance(checkpoint, Mapping):
        raise ModelError(f'a {what} checkpoint must be a mapping, got '
                         f'{type(checkpoint).__name__}')
    found = checkpoint.get('format')
    formats = (expected,) if isinstance(expected, str) else expected
    if found not in formats:
        reads = ' or '.join(repr(f) for f in formats)
        raise ModelError(f'checkpoint format is {found!r}; this code reads {reads} ({what})')
    return checkpoint


def load_checkpoint(path: str | os.PathLike, expected: str | tuple[str, ...], what: str,
                    map_location: str | torch.device = 'cpu') -> dict[str, Any]:
    """Read a checkpoint file with ``weights_only=True`` and check its format.

    Args:
        path: The ``.pt`` file.
        expected: The format it must have (or a tuple of those it may have).
        what: What the checkpoint holds, for messages (e.g. ``'diffusion model'``).
        map_location: Where tensors are loaded.

    Raises:
        ModelError: Missing file, unreadable or corrupted file (anything that is not a
            checkpoint: a text file, a crafted pickle), or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f'{path}: no {what} checkpoint there (file not found)')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError,
            struct.error, RecursionError, MemoryError, OverflowError) as exc:
        # a text file or a crafted pickle reaches the restricted unpickler's internals
        # (KeyError on a missing memo entry, IndexError on an empty stack, ...)
        text = str(exc).strip()
        reason = (f'{type(exc).__name__}: {text.splitlines()[0][:200]}' if text
                  else type(exc).__name__)
        raise ModelError(f'{path}: cannot read the {what} checkpoint; the file is corrupted, '
                         f'truncated or not a checkpoint ({reason})') from exc
    try:
        return dict(check_format(checkpoint, expected, what))
    except ModelError as exc:
        raise ModelError(f'{path}: {exc}') from None


def rebuild(checkpoint: Any, expected: str, what: str, config_from_dict: Callable[[Any], Any],
            factory: Callable[[Any], M]) -> M:
    """A model from a checkpoint: config first (``config_from_dict``), then
    ``factory(config)``, then the weights (any floating dtype; cast to the model's).

    Raises:
        ModelError: Another format, missing entries, a bad config or weights that do not fit.
    """
    checkpoint = check_format(checkpoint, expected, what)
    missing = [key for key in ('config', 'model') if key not in checkpoint]
    if missing:
        raise ModelError(f'{what} checkpoint lacks {missing}; has {sorted(checkpoint)}')
    try:
        config = config_from_dict(checkpoint['config'])
    except ConfigError as exc:
        raise ModelError(f'{what} checkpoint has a bad config: {exc}') from exc
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        raise ModelError(f'{what} checkpoint has a bad config ({type(exc).__name__}: '
                         f'{str(exc)[:200]})') from exc
    model = factory(config)
    try:
        model.load_state_dict(checkpoint['model'])
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ModelError(f'{what} checkpoint weights do not fit its config: '
                         f'{str(exc).splitlines()[0]}') from exc
    return model


class Checkpointable:
    """Mixin for an ``nn.Module`` with a ``config`` (a dataclass with ``to_dict`` and
    ``from_dict``) and a constructor taking it: :meth:`checkpoint` and :meth:`from_checkpoint`.

    Subclasses set ``checkpoint_format`` (e.g. ``'handx-ar/1'``), ``config_class`` and
    ``checkpoint_what`` (for messages).
    """

    checkpoint_format: str = ''
    checkpoint_what: str = 'model'
    config_class: Any = None

    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        """A self-describing checkpoint: format, config, weights and ``extra`` entries
        (``step``, ``normalizer``, ...). Loadable with ``torch.load(..., weights_only=True)``.

        Raises:
            ModelError: ``extra`` uses a reserved key.
        """
        reserved = RESERVED_KEYS & set(extra)
        if reserved:
            raise ModelError(f'checkpoint extras may not use reserved keys {sorted(reserved)}')
        return {'format': self.checkpoint_format, 'config': self.config.to_dict(),
                'model': self.state_dict(), **extra}

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> Any:
        """Rebuild from :meth:`checkpoint` (config from the checkpoint, then weights).

        Raises:
            ModelError: Another format version, missing entries or weights that do not fit.
        """
        return rebuild(checkpoint, cls.checkpoint_format, cls.checkpoint_what,
                       cls.config_class.from_dict, cls)


def half_precision(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """A copy whose floating-point weights (``model`` and nested checkpoints' ``model``) are
    float16, for shipping: half the size, and loading casts them back to float32."""
    out = dict(checkpoint)
    if isinstance(out.get('model'), Mapping):
        out['model'] = {key: value.half() if torch.is_tensor(value) and value.is_floating_point()
                        else value for key, value in out['model'].items()}
    for key, value in out.items():
        if isinstance(value, Mapping) and 'format' in value and 'model' in value:
            out[key] = half_precision(value)
    return out
