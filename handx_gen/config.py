"""Reading component configs: one frozen dataclass per component, YAML through
``yaml.safe_load``, unknown keys rejected with the list of valid ones.

Each config class keeps its own ``from_dict`` (for conversions of its fields) and calls
:func:`config_kwargs` first; :func:`config_from_yaml` adds the file handling.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from handx_gen.errors import ConfigError, unknown_choice

__all__ = ['config_from_yaml', 'config_kwargs', 'preset_values']


class _FromDict(Protocol):
    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Any: ...


C = TypeVar('C', bound=_FromDict)


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
            raise ConfigError(unknown_choice(f'{what} config key', key, valid))
    return dict(values)


def config_from_yaml(cls: type[C], path: str | os.PathLike, what: str) -> C:
    """Read a config of ``cls`` from a YAML file holding a mapping of settings.

    Raises:
        ConfigError: Unreadable file, invalid YAML, unknown keys or bad values; the message
            names the file.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read {what} config ({exc.strerror})') from exc
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: invalid YAML ({exc})'.replace('\n', ' ')) from exc
    try:
        return cls.from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f'{path}: {exc}') from exc


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

