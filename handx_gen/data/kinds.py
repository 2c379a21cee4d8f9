"""The kinds of data-source file, their up axes, frames and placements, apart from
:mod:`~handx_gen.data.sources` (which loads numpy and the readers) so that the ``handx data``
parser lists them without loading anything.
"""

from __future__ import annotations

import enum

__all__ = ['Direction', 'Placement', 'SourceFrame', 'SourceKind', 'UpAxis']


class SourceKind(enum.Enum):
    """Kinds of data-source file that :func:`load_source` reads."""

    MOTION = 'motion'
    AMASS_SMPLH = 'amass-smplh'
    MANO = 'mano'
    KEYPOINTS = 'keypoints'


class UpAxis(enum.Enum):
    """Which world axis points up in a body-model source file."""

    Y = 'y'  # SMPL body frame; rotated +90 deg about x into the Z-up world
    Z = 'z'  # already the project's convention; left unchanged


class SourceFrame(enum.Enum):
    """What a source file's positions are relative to (:mod:`handx_gen.data.frames`)."""

    WORLD = 'world'  # positions in one world frame: the hands' places and relation are data
    WRIST = 'wrist'  # each hand relative to its own wrist: where the hands are is unknown


class Placement(enum.Enum):
    """Where :func:`~handx_gen.data.frames.place_offsets` puts a clip's hands."""

    NONE = 'none'  # where the file has them
    CANONICAL = 'canonical'  # at the corpus' usual wrist spots (handx_gen.data.workspace)


class Direction(enum.Enum):
    """A world direction, to say where a file's axis points (x right, y forward, z up;
    :class:`~handx_gen.data.frames.AxesMap`)."""

    RIGHT = 'right'
    LEFT = 'left'
    FORWARD = 'forward'
    BACK = 'back'
    UP = 'up'
    DOWN = 'down'
