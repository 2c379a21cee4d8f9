"""The condition modes of the generators, apart from :mod:`~handx_gen.models.masking` (which
loads torch) so that ``handx generate --help`` can list them without loading torch.
"""

from __future__ import annotations

import enum

from handx_gen.errors import ConfigError, unknown_choice

__all__ = ['MaskMode']


class MaskMode(str, enum.Enum):
    """What a condition gives; the value is the name used in configs and on the command line."""

    TEXT = 'text'  # nothing given
    REACTION = 'reaction'  # one hand given, the other generated
    INBETWEEN = 'inbetween'  # first and last k frames given
    KEYFRAMES = 'keyframes'  # sparse frames given
    TRAJECTORY = 'trajectory'  # wrist paths given

    @classmethod
    def parse(cls, mode: MaskMode | str) -> MaskMode:
        """The mode named by ``mode`` (a :class:`MaskMode` or its value, any case).

        Raises:
            ConfigError: Unknown mode (the message lists the valid ones).
        """
        if isinstance(mode, MaskMode):
            return mode
        if isinstance(mode, str):
            try:
                return cls(mode.strip().lower())
            except ValueError:
                pass
        raise ConfigError(unknown_choice('mask mode', mode, [m.value for m in cls]))
