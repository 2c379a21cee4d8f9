"""Exception hierarchy shared by every HandX component.

Every error raised on purpose by the project derives from :class:`HandxError`, so callers
(the CLI, the ROS nodes) can catch one type and report one clear line. Each domain has its
own subclass; messages name the bad value and, where there is a fixed set, the valid options.
"""

from __future__ import annotations

from collections.abc import Iterable


class HandxError(Exception):
    """Root of all errors raised deliberately by HandX."""


class ConfigError(HandxError, ValueError):
    """A configuration value or key is invalid."""


class HandModelError(HandxError, ValueError):
    """A hand model, skeleton or rotation input is invalid."""


class ManoModelError(HandxError):
    """A MANO model file is missing, unsafe, corrupt or of an unexpected layout."""


class MotionError(HandxError, ValueError):
    """Motion data is invalid (shapes, non-finite values, fps)."""


class MotionFormatError(MotionError):
    """A motion file cannot be read: missing, corrupt or of another format version."""


class DataSourceError(HandxError):
    """A data source file cannot be converted to the unified layout."""


class SynthesisError(HandxError):
    """A motion-type primitive produced invalid output, or a corpus cannot be built or read."""


class ModelError(HandxError, ValueError):
    """A generation model, its checkpoint or weights, or a model input (a prompt, a
    condition) is missing or invalid."""


class RobotModelError(HandxError, ValueError):
    """A robot folder, its spec or its URDF is missing, invalid or lacks a mapped link."""


class RetargetError(HandxError):
    """Retargeting cannot run on the given input (bad keypoints, wrong shapes, bad config)."""


class SimulationError(HandxError):
    """A simulation scene cannot be built, or a command or trajectory cannot be played in it
    (unknown joint names, wrong shapes, non-finite values)."""


class OutputError(HandxError, ValueError):
    """An output path that would replace one of the command's inputs (or another output)."""


class MessageError(HandxError, ValueError):
    """A ROS message that cannot be turned into the arrays it should carry (wrong frame id,
    sizes, names, non-finite or absurd values, oversized payloads)."""


def unknown_choice(kind: str, value: object, valid: Iterable[object]) -> str:
    """Build the standard message for a value outside a fixed set of options.

    Args:
        kind: What the value names, e.g. ``'robot'`` or ``'config key'``.
        value: The offending value.
        valid: Every valid option.

    Returns:
        A one-line message naming the value and listing the valid options.
    """
    options = ', '.join(repr(v) for v in sorted(valid, key=str))
    return f'unknown {kind} {value!r}; valid options: {options}'
