"""Where hands usually are: the canonical wrist spots and the workspace box, and a check that
a clip's wrists stay near them.

The world convention (README, Conventions): right-handed, metres; the person stands at the
origin, feet on z = 0, facing +y, their right towards +x; x right, y forward, z up; left hand
first (index 0).

Why a check at all: a clip can be valid in every other respect and still sit in the wrong
place, and nothing downstream can tell. Wrist-centred tracker data converted as world
positions puts both wrists at the origin, 1 m below the hands of every training clip: a
generation model asked for the other hand's reaction answers about 1 m away from the given
one, and a humanoid's wrist misses its target by more than half a metre. The check names such
a clip when it is read, and later stages can call :func:`check_workspace` themselves.

Where the numbers come from: the synthetic corpus (:mod:`handx_gen.data.synthetic`), which the
shipped generation models are trained on, so a clip placed like it shows those models familiar
positions. Its motion types put the hands "in front of the body at 0.95-1.3 m height and
0.2-0.5 m in front, each on its own side of the midline" (:mod:`handx_gen.data.synth_gestures`);
measured with ``docs/world_convention.py --clips 300`` (the first 300 clips of the default
corpus, seed 0, 83,393 frames), the wrists of both hands pooled, each left wrist mirrored onto
the right side (x -> -x), since the corpus is mostly right-handed (12 % of clips
left-dominant) and the left and right spots should be mirror images:

* median (0.169, 0.298, 1.044) m: :data:`CANONICAL_WRIST_M` is (+-0.17, 0.30, 1.04) m;
* 0.1 and 99.9 percentiles: lateral -0.067 .. 0.356, forward 0.148 .. 0.451, up
  0.912 .. 1.370 m (lateral is x for the right hand, -x for the left, negative across the
  midline); rounded outwards to 5 cm, :data:`CORPUS_RANGE_M`: lateral -0.10 .. 0.40, forward
  0.10 .. 0.50, up 0.90 .. 1.40 m.

The workspace box (:data:`WORKSPACE`) is that range widened by :data:`WORKSPACE_MARGIN_M`
(0.3 m) on every side: for the right wrist x -0.40 .. 0.70 (up to 0.4 m across the midline),
y -0.20 .. 0.80, z 0.60 .. 1.70 m; the left wrist's box is its mirror image. Real recordings
vary more than the corpus (hands at the waist, reaching forward or up), and the margin lets a
hand anywhere within easy reach in front of the chest pass. What falls outside are placements
no standing person makes: wrist-centred data left at the origin, a Y-up file read as Z-up
(hands 1 m forward at 0.3 m height), a clip in a motion-capture room's coordinates metres
away.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from handx_gen.errors import MotionError
from handx_gen.hand.topology import NUM_KEYPOINTS, HandSide

if TYPE_CHECKING:
    from handx_gen.motion import BimanualMotion

__all__ = [
    'CANONICAL_WRIST_M',
    'CORPUS_RANGE_M',
    'WORKSPACE',
    'WORKSPACE_MARGIN_M',
    'WorkspaceBox',
    'WorkspaceFinding',
    'check_workspace',
]

_MIRROR_X = np.array([-1.0, 1.0, 1.0])


def _per_hand(right: tuple[float, float, float]) -> np.ndarray:
    """(2, 3) left then right, the left the mirror image of ``right`` through x = 0."""
    out = np.array([np.multiply(right, _MIRROR_X), right], dtype=np.float64)
    out.setflags(write=False)
    return out


# (2, 3) wrist position per hand, metres, left first: the corpus' median, mirrored and rounded
# (module doc). Wrist-centred data are placed here (handx_gen.data.frames).
CANONICAL_WRIST_M: np.ndarray = _per_hand((0.17, 0.30, 1.04))

# (2, 2, 3) [hand, lower/upper, xyz]: the corpus' wrist range, 0.1-99.9 percentiles rounded
# outwards to 5 cm (module doc). For the left hand the lateral bounds are mirrored.
CORPUS_RANGE_M: np.ndarray = np.stack([
    np.stack([np.array([-0.40, 0.10, 0.90]), np.array([0.10, 0.50, 1.40])]),
    np.stack([np.array([-0.10, 0.10, 0.90]), np.array([0.40, 0.50, 1.40])]),
])
CORPUS_RANGE_M.setflags(write=False)

# How far beyond the corpus' range a wrist may go before a clip is flagged, metres.
WORKSPACE_MARGIN_M = 0.3


class WorkspaceBox(NamedTuple):
    """An axis-aligned box per hand that its wrist should stay in.

    Attributes:
        lower_m: (2, 3) lower corner per hand, left first, metres.
        upper_m: (2, 3) upper corner per hand.
    """

    lower_m: np.ndarray
    upper_m: np.ndarray

    def distance_m(self, wrists_m: np.ndarray) -> np.ndarray:
        """(..., 2) distance of each wrist (..., 2, 3) from its hand's box, 0 inside; NaN where
        the wrist is not finite."""
        wrists_m = np.asarray(wrists_m, dtype=np.float64)
        excess = np.maximum(np.maximum(self.lower_m - wrists_m, wrists_m - self.upper_m), 0.0)
        return np.linalg.norm(excess, axis=-1)


def _box(margin_m: float) -> WorkspaceBox:
    lower, upper = CORPUS_RANGE_M[:, 0] - margin_m, CORPUS_RANGE_M[:, 1] + margin_m
    lower.setflags(write=False)
    upper.setflags(write=False)
    return WorkspaceBox(lower, upper)


# The usual workspace: the corpus' range widened by WORKSPACE_MARGIN_M (module doc).
WORKSPACE: WorkspaceBox = _box(WORKSPACE_MARGIN_M)


@dataclasses.dataclass(frozen=True)
class WorkspaceFinding:
    """One hand whose wrist leaves the workspace in some frames.

    Attributes:
        side: The hand.
        outside: (T,) bool, the frames in which its wrist is outside its box.
        num_present: Frames in which the hand is present (finite wrist).
        max_distance_m: The largest distance from the box, metres.
        worst_frame: The frame of that distance.
        worst_wrist_m: The wrist position there, metres.
    """

    side: HandSide
    outside: np.ndarray
    num_present: int
    max_distance_m: float
    worst_frame: int
    worst_wrist_m: tuple[float, float, float]

    @property
    def num_outside(self) -> int:
        return int(np.count_nonzero(self.outside))

    def describe(self) -> str:
        """One line: the hand, the frames and the distance."""
        # Imported here: the readers import this module (through handx_gen.data.frames).
        from handx_gen.data.sources import format_frame_ranges

        x, y, z = self.worst_wrist_m
        return (f'the {self.side.name.lower()} wrist is outside the usual workspace in '
                f'{self.num_outside} of {self.num_present} frames '
                f'({format_frame_ranges(self.outside)}), up to {self.max_distance_m:.2f} m from '
                f'it (frame {self.worst_frame}: ({x:+.2f}, {y:+.2f}, {z:+.2f}) m)')


def check_workspace(motion: BimanualMotion | np.ndarray,
                    box: WorkspaceBox = WORKSPACE) -> list[WorkspaceFinding]:
    """The hands whose wrists leave ``box`` (default: :data:`WORKSPACE`, module doc).

    Args:
        motion: A motion, or its keypoints (T, 2, 21, 3) in the world frame, metres. Frames in
            which a hand's wrist is not finite count as the hand being absent and are skipped.
        box: The box per hand.

    Returns:
        One finding per hand outside its box in at least one frame, left first; empty when
        both stay inside.

    Raises:
        MotionError: Keypoints of another shape.
    """
    keypoints = motion if isinstance(motion, np.ndarray) else motion.keypoints
    keypoints = np.asarray(keypoints)
    if keypoints.ndim != 4 or keypoints.shape[1:] != (2, NUM_KEYPOINTS, 3):
        raise MotionError(f'check_workspace needs keypoints of shape (T, 2, 21, 3), got '
                          f'{keypoints.shape}')
    wrists = keypoints[:, :, 0].astype(np.float64)  # (T, 2, 3)
    distance = box.distance_m(wrists)  # (T, 2), NaN where absent
    findings = []
    for side in HandSide:
        present = np.isfinite(distance[:, side])
        outside = present & (distance[:, side] > 0.0)
        if not outside.any():
            continue
        worst = int(np.nanargmax(distance[:, side]))
        findings.append(WorkspaceFinding(
            side=side, outside=outside, num_present=int(present.sum()),
            max_distance_m=float(distance[worst, side]), worst_frame=worst,
            worst_wrist_m=tuple(float(v) for v in wrists[worst, side])))
    return findings
