"""The kinds of data-source file and their up axes, apart from :mod:`~handx_gen.data.sources`
(which loads numpy and the readers) so that the ``handx data`` parser lists them without
loading anything.
"""

from __future__ import annotations

import enum

__all__ = ['SourceKind', 'UpAxis']


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
