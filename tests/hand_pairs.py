"""Two-hand clips made by hand for the tests of generation's post-processing steps."""

from __future__ import annotations

import math

import numpy as np

from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion

L, R = HandSide.LEFT, HandSide.RIGHT


def facing_hands(min_half_gap_m: float, num_frames: int = 40) -> BimanualMotion:
    """Flat hands back to back (fingers +y), the wrists coming to ``min_half_gap_m`` from the
    midline at the middle frame and going back (the backs touch at about 0.0135 m)."""
    t = np.linspace(-1.0, 1.0, num_frames)
    half_gap = min_half_gap_m + (0.15 - min_half_gap_m) * t ** 2  # (T,)
    transl = np.zeros((num_frames, 2, 3))
    transl[:, L, 0], transl[:, R, 0] = -half_gap, half_gap
    transl[:, :, 1], transl[:, :, 2] = 0.3, 1.0
    orient = np.zeros((num_frames, 2, 3))
    orient[:, L, 2], orient[:, R, 2] = -math.pi / 2, math.pi / 2
    return BimanualMotion.from_mano(30.0, orient, np.zeros((num_frames, 2, 15, 3)), transl)
