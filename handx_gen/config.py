"""Reading component configs: one frozen dataclass per component, YAML through
``yaml.safe_load``, unknown keys rejected with the list of valid ones.

Each config class keeps its own ``from_dict`` (for conversions of its fields) and calls
:func:`config_kwargs` first; :func:`config_from_yaml` adds the file handling.

A YAML file named on the command line is untrusted input: :func:`read_yaml` reads at most
:data:`MAX_YAML_BYTES`, and turns every way the file can be bad (not UTF-8, invalid YAML,
nesting deeper than the parser's recursion, an integer past Python's digit limit, a document
that is not a mapping) into one :class:`ConfigError` line naming the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from handx_gen.errors import ConfigError, unknown_choice

__all__ = ['MAX_YAML_BYTES', 'check_integers', 'check_positive', 'config_from_yaml',
           'config_kwargs', 'preset_values', 'read_yaml']

MAX_YAML_BYTES = 1 << 20  # 1 MiB: a config is a few hundred bytes


class _FromDict(Protocol):
    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Any: ...


C = TypeVar('C', bound=_FromDict)


def check_positive(config: Any, what: str, names: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless each field ``names`` of ``config`` is a finite
    number > 0 (not a bool); ``what`` names the config in the message."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ConfigError(f'{what} {name} must be a positive number, got {value!r}')


def check_integers(config: Any, what: str, lows: tuple[tuple[str, int], ...]) -> None:
    """Raise :class:`ConfigError` unless each field of ``config`` named in ``lows`` (name,
    least value) is an int (not a bool) of at least that value."""
    for name, low in lows:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f'{what} {name} must be an integer >= {low}, got {value!r}')


def config_kwargs(cls: type, values: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """Check ``values`` as settings of the dataclass ``cls``; return a copy as a dict.

    Args:
        cls: The config dataclass.
        values: A mapping of settings, or ``None`` (no settings: all defaults).
        what: What the config configures, for messages (e.g. ``'filter'``).

    Raises:
        ConfigError: ``values`` is not a mapping, or has a key that is not a field of ``cls``
            (the message lists the valid keys).
    """
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(f'{what} config must be a mapping of settings, got '
                          f'{type(values).__name__}')
    valid = [field.name for field in dataclasses.fields(cls)]
    for key in values:
        if key not in valid:
            # The keys most like the unknown one first: a long list is cut short on one line.
            close = difflib.get_close_matches(str(key), valid, n=3)
            options = close + sorted(name for name in valid if name not in close)
            raise ConfigError(f'unknown {what} config key {key!r}; valid options: '
                              f'{", ".join(repr(name) for name in options)}')
    return dict(values)


def read_yaml(path: str | os.PathLike, what: str, *, error: type[Exception] = ConfigError,
              max_bytes: int = MAX_YAML_BYTES) -> dict[str, Any]:
    """The mapping a YAML file holds, read with ``yaml.safe_load``.

    Args:
        path: The file.
        what: What it configures, for messages (e.g. ``'gate config'``).
        error: The exception class raised (a :class:`~handx_gen.errors.HandxError` taking
            one message).
        max_bytes: Largest file accepted.

    Raises:
        ConfigError: (or ``error``) Unreadable, oversized or non-UTF-8 file, invalid YAML,
            nesting too deep, an integer too long to convert, or a document that is not a
            mapping; one line naming the file.
    """
    import yaml

    path = Path(path)
    try:
        with path.open('rb') as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise error(f'{path}: cannot read {what} ({exc.strerror or exc})') from exc
    if len(data) > max_bytes:
        raise error(f'{path}: {what} is larger than {max_bytes} bytes')
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise error(f'{path}: {what} is not UTF-8 text (byte {exc.start})') from exc
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(_one_line(f'{path}: invalid YAML ({exc})')) from exc
    except RecursionError as exc:
        raise error(f'{path}: {what} is nested too deeply') from exc
    except (ValueError, TypeError, OverflowError) as exc:
        # e.g. an integer of more digits than int() converts (sys.get_int_max_str_digits)
        raise error(_one_line(f'{path}: {what} holds a value YAML cannot convert ({exc})')
                    ) from exc
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise error(f'{path}: {what} must be a mapping of settings, got '
                    f'{type(values).__name__}')
    return dict(values)


def config_from_yaml(cls: type[C], path: str | os.PathLike, what: str) -> C:
    """Read a config of ``cls`` from a YAML file holding a mapping of settings.

    Raises:
        ConfigError: Unreadable file, invalid YAML (see :func:`read_yaml`), unknown keys or
            bad values; one line naming the file.
    """
    values = read_yaml(path, f'{what} config')
    try:
        return cls.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(_one_line(f'{path}: {exc}')) from exc
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError,
            RecursionError) as exc:
        # a value of the wrong type that a from_dict converts without checking first
        raise ConfigError(_one_line(f'{path}: bad {what} config value ({type(exc).__name__}: '
                                    f'{exc})')) from exc


def _one_line(message: str, limit: int = 500) -> str:
    """``message`` on one line, at most ``limit`` characters."""
    line = ' '.join(message.split())
    return line if len(line) <= limit else line[:limit - 3] + '...'


def preset_values(presets: Mapping[str, Mapping[str, Any]], name: object, what: str,
                  overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of the named preset with ``overrides`` applied, for a config's
    ``from_dict``.

    Raises:
        ConfigError: ``name`` is not a preset (the message lists them).
    """
    if not isinstance(name, str) or name not in presets:
        raise ConfigError(unknown_choice(f'{what} preset', name, presets))
    return {**presets[name], **overrides}

