"""Bringing a source's positions into the world frame: its axes, its frame, its placement.

The world (README, Conventions; :mod:`handx_gen.data.workspace`): right-handed, metres; x to
the person's right, y forward, z up; hands about 1 m up and 0.3 m in front of the body, left
hand first. A hand tracker writes neither: its keypoints are in its own axes (MediaPipe-like:
x right and y down in the image, z along the camera's view) and often relative to each
hand's wrist. Read as they are, such data sit at the origin with the fingers pointing
anywhere, and every later stage goes wrong without a word.
:func:`~handx_gen.data.sources.load_source` applies three steps, in this order:

1. **Axes** (:class:`AxesMap`): where each of the file's axes x, y, z points in the world,
   as words: right, left, forward, back, up, down. A tracker's axes are usually described just
   so: a camera facing the person writes image x right (the person's left), y down and depth
   away from the camera (into the person, backwards): ``left,down,back``; a head-mounted
   camera looking where the person looks, ``right,down,forward``. A position becomes
   ``R_world_source @ p``, a rotation about the file's origin (a MANO global orientation
   ``R_world_source @ R``). Left-handed file axes (x right, y down, z towards a facing
   camera: ``left,down,forward``) make the map a reflection; that is right for such a file,
   and turns each hand into its mirror image if the file's axes are not what was said. Only
   keypoint files can be read through a reflection, since a mirrored MANO hand is the other
   hand. The ``up_axis`` of body files is a shorthand: ``z`` is ``right,forward,up``, ``y``
   is ``right,up,back``.
2. **Frame** (:class:`~handx_gen.data.kinds.SourceFrame`): ``world``, the positions are world
   positions (the hands' places and their relation are data); ``wrist``, each hand is given
   relative to its own wrist, so where the hands are and how they stand to each other is
   unknown.
3. **Placement** (:class:`~handx_gen.data.kinds.Placement`, :func:`place_offsets`):
   ``canonical`` moves the hands to the corpus' usual spots
   (:data:`~handx_gen.data.workspace.CANONICAL_WRIST_M`, left (-0.17, 0.30, 1.04), right
   (0.17, 0.30, 1.04) m), by a translation only, so any wrist motion in the data is kept
   about the spot. Wrist-frame data move each hand on its own: its mean wrist position lands
   on its side's spot. World-frame data move both hands by one translation, so their relation
   is kept: the mean of the two hands' mean wrists lands on the mean of the two spots. A hand
   absent from every frame (all NaN) is left alone, and a hand present alone is placed
   alone, so one-hand recordings need nothing else. ``none`` leaves the positions where the
   file has them; it is the default for world data, ``canonical`` for wrist data.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from handx_gen.data.kinds import Direction, Placement, SourceFrame, UpAxis
from handx_gen.data.workspace import CANONICAL_WRIST_M
from handx_gen.errors import ConfigError, unknown_choice
from handx_gen.hand.topology import HandSide

if TYPE_CHECKING:
    from handx_gen.motion import BimanualMotion

__all__ = [
    'IDENTITY',
    'AxesMap',
    'FrameChange',
    'default_placement',
    'move_motion',
    'move_points',
    'place_offsets',
    'placement',
    'source_frame',
]

# Unit vector of each world direction (x right, y forward, z up).
_VECTORS: dict[Direction, tuple[float, float, float]] = {
    Direction.RIGHT: (1.0, 0.0, 0.0), Direction.LEFT: (-1.0, 0.0, 0.0),
    Direction.FORWARD: (0.0, 1.0, 0.0), Direction.BACK: (0.0, -1.0, 0.0),
    Direction.UP: (0.0, 0.0, 1.0), Direction.DOWN: (0.0, 0.0, -1.0),
}
_EXAMPLE = ("e.g. 'left,down,back' for a camera facing the person (image x right, y down, "
            'depth away from the camera)')


def _axes_error(text: object, why: str) -> ConfigError:
    return ConfigError(f"axes {text!r}: {why}; give where the file's x, y and z axes point "
                       f'in the world, three of {", ".join(d.value for d in Direction)}, one per '
                       f'world axis, '
                       f'{_EXAMPLE}')


@dataclasses.dataclass(frozen=True)
class AxesMap:
    """Where a file's axes point in the world (module doc, step 1).

    Attributes:
        directions: The world direction of the file's x, y and z axes, one per world axis,
            e.g. ``(Direction.LEFT, Direction.DOWN, Direction.BACK)``; given as words, they
            are turned into :class:`~handx_gen.data.kinds.Direction`.
    """

    directions: tuple[Direction, Direction, Direction]

    def __post_init__(self) -> None:
        words = tuple(d.value if isinstance(d, Direction) else str(d).strip().lower()
                      for d in self.directions)
        text = ','.join(words)
        if len(words) != 3:
            raise _axes_error(text, f'{len(words)} directions, not 3')
        valid = {d.value for d in Direction}
        for word in words:
            if word not in valid:
                raise _axes_error(text, f'{word!r} is not a direction')
        directions = tuple(Direction(word) for word in words)
        if len({np.argmax(np.abs(_VECTORS[d])) for d in directions}) != 3:
            raise _axes_error(text, 'two axes point along the same world axis')
        object.__setattr__(self, 'directions', directions)

    @classmethod
    def parse(cls, text: str | AxesMap) -> AxesMap:
        """An axes map from ``'left,down,back'`` (commas or spaces between the three)."""
        if isinstance(text, AxesMap):
            return text
        return cls(tuple(str(text).replace(',', ' ').split()))  # type: ignore[arg-type]

    @classmethod
    def from_up_axis(cls, up_axis: UpAxis | str) -> AxesMap:
        """The map of a file whose up axis is ``up_axis``: ``y`` is the Y-up SMPL body frame,
        ``right,up,back`` (``Y_UP_TO_Z_UP`` of :mod:`handx_gen.data.sources`); ``z`` the
        world's own axes."""
        up = up_axis if isinstance(up_axis, UpAxis) else _up_axis(up_axis)
        return cls((Direction.RIGHT, Direction.UP, Direction.BACK)) if up is UpAxis.Y else IDENTITY

    @property
    def R_world_source(self) -> np.ndarray:
        """(3, 3) the matrix taking the file's coordinates to the world's: its columns are the
        world directions of the file's axes."""
        return np.array([_VECTORS[d] for d in self.directions], dtype=np.float64).T

    @property
    def is_identity(self) -> bool:
        return self.directions == (Direction.RIGHT, Direction.FORWARD, Direction.UP)

    @property
    def is_reflection(self) -> bool:
        """Whether the file's axes are left-handed (the map's determinant is -1)."""
        return bool(np.linalg.det(self.R_world_source) < 0.0)

    def __str__(self) -> str:
        return ','.join(d.value for d in self.directions)


IDENTITY = AxesMap((Direction.RIGHT, Direction.FORWARD, Direction.UP))


def _up_axis(value: str) -> UpAxis:
    try:
        return UpAxis(str(value).lower())
    except ValueError:
        raise ConfigError(unknown_choice('up axis', value, [a.value for a in UpAxis])) \
            from None


def source_frame(value: SourceFrame | str) -> SourceFrame:
    """A :class:`SourceFrame` from itself or its value."""
    if isinstance(value, SourceFrame):
        return value
    try:
        return SourceFrame(str(value).lower())
    except ValueError:
        raise ConfigError(unknown_choice('source frame', value,
                                         [f.value for f in SourceFrame])) from None


def placement(value: Placement | str) -> Placement:
    """A :class:`Placement` from itself or its value."""
    if isinstance(value, Placement):
        return value
    try:
        return Placement(str(value).lower())
    except ValueError:
        raise ConfigError(unknown_choice('placement', value,
                                         [p.value for p in Placement])) from None


def default_placement(frame: SourceFrame) -> Placement:
    """``canonical`` for wrist-frame data (they have no place of their own), else ``none``."""
    return Placement.CANONICAL if frame is SourceFrame.WRIST else Placement.NONE


def place_offsets(wrists_m: np.ndarray, frame: SourceFrame, place: Placement) -> np.ndarray:
    """The translation per hand that places a clip (module doc, step 3).

    Args:
        wrists_m: (T, 2, 3) wrist positions in world axes, left first; not finite where a hand
            is absent.
        frame: What the positions are relative to.
        place: Where the hands go.

    Returns:
        (2, 3) offsets, metres, to add to each hand's positions; zero for an absent hand. For
        world-frame data both rows are the same (or one is zero when a hand is absent).
    """
    wrists_m = np.asarray(wrists_m, dtype=np.float64)
    offsets = np.zeros((2, 3))
    if place is Placement.NONE:
        return offsets
    present = np.isfinite(wrists_m).all(axis=-1)  # (T, 2)
    hands = [side for side in HandSide if present[:, side].any()]
    if not hands:
        return offsets
    mean = {side: wrists_m[present[:, side], side].mean(axis=0) for side in hands}  # (3,) each
    if frame is SourceFrame.WRIST:
        for side in hands:
            offsets[side] = CANONICAL_WRIST_M[side] - mean[side]
        return offsets
    common = np.mean([CANONICAL_WRIST_M[side] - mean[side] for side in hands], axis=0)
    offsets[hands] = common
    return offsets


class FrameChange(NamedTuple):
    """What was done to a source's positions (module doc).

    Attributes:
        axes: The axes map applied.
        frame: The file's frame.
        place: The placement applied.
        offsets_m: (2, 3) translation added to each hand after the axes, metres.
        present: (2,) whether each hand is in the file (an absent hand is placed nowhere).
    """

    axes: AxesMap
    frame: SourceFrame
    place: Placement
    offsets_m: np.ndarray
    present: tuple[bool, bool] = (True, True)

    @property
    def is_identity(self) -> bool:
        return self.axes.is_identity and not np.any(self.offsets_m)

    def describe(self) -> str:
        """Short, for a command's summary line: ``'axes left,down,back, wrist frame, placed at the
        canonical spots'``."""
        parts = [] if self.axes.is_identity else [f'axes {self.axes}']
        if self.frame is SourceFrame.WRIST:
            parts.append('wrist frame')
        if self.place is Placement.CANONICAL:
            moved = np.linalg.norm(self.offsets_m, axis=-1)
            parts.append('placed at the canonical spots (moved ' + ', '.join(
                f'{side.name.lower()} {moved[side]:.2f} m' for side in HandSide
                if self.present[side]) + ')')
        return ', '.join(parts)


def move_points(points: np.ndarray, R_world_source: np.ndarray,
                offsets_m: np.ndarray) -> np.ndarray:
    """``R_world_source @ p + offset`` of points (..., 2, K, 3), the offset per hand (2, 3);
    non-finite points stay non-finite."""
    points = np.asarray(points, dtype=np.float64)
    return points @ np.asarray(R_world_source).T + np.asarray(offsets_m)[:, None, :]


def move_motion(motion: BimanualMotion, R_world_source: np.ndarray,
                offsets_m: np.ndarray) -> BimanualMotion:
    """A motion rotated about the origin by ``R_world_source`` (a proper rotation), then each
    hand translated by its offset (2, 3).

    Global orientations become ``R @ R_wrist``; keypoints ``R @ p + offset``; ``transl`` so that
    the wrist keypoint, ``J_wrist_rest + transl``, follows (the rest wrist per hand is read
    off the motion itself). An absent hand stays absent (it holds the rest hand, which does
    not move). Hand poses, betas and texts are kept; the annotation too when the
    motion only moved as a whole (no rotation, one offset for both hands), since features
    read positions and the relation of the hands; else it is dropped.

    Raises:
        ConfigError: ``R_world_source`` is not a rotation (a reflection would turn each hand
            into the other one's mirror image).
    """
    from handx_gen.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle
    from handx_gen.motion import BimanualMotion

    R = np.asarray(R_world_source, dtype=np.float64)
    offsets_m = np.asarray(offsets_m, dtype=np.float64)
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-9) or np.linalg.det(R) < 0.0:
        raise ConfigError(f'a motion can only be turned by a rotation, got the matrix '
                          f'{R.round(6).tolist()} (determinant {np.linalg.det(R):+.3g})')
    rotated = not np.allclose(R, np.eye(3))
    keypoints = np.asarray(motion.keypoints, dtype=np.float64)  # (T, 2, 21, 3)
    transl = np.asarray(motion.transl)  # (T, 2, 3)
    wrist_rest = np.median(keypoints[:, :, 0] - transl, axis=0)  # (2, 3) J_wrist_rest per hand
    global_orient = np.asarray(motion.global_orient)
    if rotated:
        global_orient = matrix_to_axis_angle(R @ axis_angle_to_matrix(global_orient))
    same_offset = np.allclose(offsets_m[0], offsets_m[1])
    return BimanualMotion(
        motion.fps, global_orient, motion.hand_pose,
        (wrist_rest + transl) @ R.T + offsets_m - wrist_rest,
        move_points(keypoints, R, offsets_m),
        betas=motion.betas, texts=motion.texts,
        annotation=motion.annotation if same_offset and not rotated else None,
        present=motion.present)
