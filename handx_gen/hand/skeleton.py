"""Hand skeleton: rest positions of the 16 MANO joints and 5 fingertips.

Canonical hand frame (SMPL-H T-pose frame, shared by MANO): for the right hand at rest the
fingers point along -x, the palm normal is -y (palm facing down) and the thumb lies towards +z
(the radial side). The left hand is the mirror image through the x = 0 plane (fingers along +x,
thumb still towards +z). Units are metres. The rest pose is the flat hand: ``hand_pose`` all
zeros.

The default skeleton needs no licensed model file. It is built from published hand
anthropometry, scaled by hand length (wrist joint to middle fingertip at rest):

* Segment lengths as fractions of hand length: Buchholz, Armstrong and Goldstein (1992),
  "Anthropometric data for describing the kinematics of the human hand", Ergonomics 35(3),
  261-273 (joint-centre to joint-centre lengths; the distal segment runs to the fingertip).
* Hand length: 50th-percentile adults are about 0.19 m (men) and 0.175 m (women) from the
  wrist crease to the middle fingertip (Greiner 1991, "Hand anthropometry of US Army
  personnel", USARIEM Technical Report TR-92/011). The default, 0.185 m, is between the two.
* Joint placement in the palm (the metacarpophalangeal arc, the spacing of the rays, the splay
  of the flat fingers and the thumb's rest direction) is a simple geometric model chosen to
  resemble a flat MANO hand; those numbers are commented below as modelling choices.

For subject-specific skeletons use a MANO model with shape parameters (``handx_gen.hand.mano``)
or fit bone lengths to keypoint data (``handx_gen.hand.ik.fit_skeleton``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from handx_gen.errors import HandModelError, unknown_choice
from handx_gen.hand.topology import (
    FINGER_MANO_JOINTS,
    NUM_MANO_JOINTS,
    TIP_KEYPOINTS,
    Finger,
    HandSide,
    bone_lengths,
    keypoints_from_mano_joints,
)

__all__ = [
    'DEFAULT_HAND_LENGTH_M',
    'HandSkeleton',
    'default_skeleton',
]

DEFAULT_HAND_LENGTH_M = 0.185  # between the US Army male (~0.19) and female (~0.175) medians

_MIDDLE_TIP_KEYPOINT = TIP_KEYPOINTS[Finger.MIDDLE]

# Buchholz et al. (1992), segment length / hand length. Fingers: metacarpal, proximal,
# middle and distal phalanx (distal to the fingertip). Thumb: metacarpal (CMC to MCP),
# proximal phalanx (MCP to IP), distal phalanx (IP to tip). Our finger chains start at the MCP
# joint, so the finger metacarpals only inform the MCP placement below.
_SEGMENT_RATIOS: dict[Finger, tuple[float, ...]] = {
    Finger.THUMB: (0.251, 0.196, 0.158),
    Finger.INDEX: (0.374, 0.265, 0.143, 0.097),
    Finger.MIDDLE: (0.373, 0.277, 0.170, 0.108),
    Finger.RING: (0.336, 0.259, 0.165, 0.107),
    Finger.LITTLE: (0.295, 0.206, 0.117, 0.093),
}

# Modelling choices, right hand, fractions of hand length. MCP joint centres in the palm
# plane (y = 0): axial position (-x, distal) and radial position (+z). The middle MCP is placed
# so that wrist -> middle tip is exactly one hand length along -x (0.445 = 1 - 0.277 - 0.170 -
# 0.108, i.e. the 0.373 metacarpal plus a 0.072 carpal offset). The others follow the MCP arc:
# index ~3 mm, ring ~5 mm and little ~14 mm proximal to the middle MCP at 0.185 m, spaced
# ~19-21 mm apart (a palm breadth of ~0.46 hand length across the knuckles).
_MCP_AXIAL = {Finger.INDEX: 0.428, Finger.MIDDLE: 0.445, Finger.RING: 0.418, Finger.LITTLE: 0.370}
_MCP_RADIAL = {Finger.INDEX: 0.115, Finger.MIDDLE: 0.0, Finger.RING: -0.100, Finger.LITTLE: -0.190}
# Splay of the flat fingers in the palm plane, degrees towards the thumb (radial).
_FINGER_SPLAY_DEG = {
    Finger.INDEX: 5.0, Finger.MIDDLE: 0.0, Finger.RING: -6.0, Finger.LITTLE: -12.0,
}
# Thumb CMC (trapeziometacarpal) joint: near the wrist on the radial side, slightly palmar.
_THUMB_CMC = (-0.140, -0.050, 0.110)  # (x, y, z) fractions of hand length
# Thumb rest direction: 40 deg from the finger direction towards +z, tilted 10 deg palmar (-y).
_THUMB_SPREAD_DEG = 40.0
_THUMB_PALMAR_TILT_DEG = 10.0


@dataclasses.dataclass(frozen=True, eq=False)
class HandSkeleton:
    """Rest joint and fingertip positions of one hand in the canonical hand frame.

    Arrays are copied on construction and made read-only; ``side`` may be given as its integer
    value (0 left, 1 right).

    Attributes:
        side: Which hand.
        joints_rest: (16, 3) float64 MANO joint positions (MANO order, ``J[0]`` the wrist),
            metres, canonical frame.
        tips_rest: (5, 3) float64 fingertip positions, thumb to little; each fingertip moves
            rigidly with its distal joint (``TIP_PARENT_MANO_JOINT``).
    """

    side: HandSide
    joints_rest: np.ndarray  # (16, 3)
    tips_rest: np.ndarray  # (5, 3)

    def __post_init__(self) -> None:
        object.__setattr__(self, 'side', _as_side(self.side))
        joints = _checked_points(self.joints_rest, NUM_MANO_JOINTS, 'joints_rest')
        tips = _checked_points(self.tips_rest, len(TIP_KEYPOINTS), 'tips_rest')
        object.__setattr__(self, 'joints_rest', joints)
        object.__setattr__(self, 'tips_rest', tips)

    def keypoints_rest(self) -> np.ndarray:
        """(21, 3) rest keypoints in keypoint order (wrist, thumb..little base to tip)."""
        return keypoints_from_mano_joints(self.joints_rest, self.tips_rest)

    @property
    def hand_length_m(self) -> float:
        """Distance from the wrist joint to the middle fingertip at rest, metres."""
        return float(np.linalg.norm(self.tips_rest[Finger.MIDDLE] - self.joints_rest[0]))

    def scaled(self, factor: float) -> HandSkeleton:
        """The skeleton scaled uniformly about the wrist joint by ``factor`` (> 0)."""
        factor = float(factor)
        if not math.isfinite(factor) or factor <= 0.0:
            raise HandModelError(f'scale factor must be finite and > 0, got {factor!r}')
        wrist = self.joints_rest[0]
        return HandSkeleton(
            side=self.side,
            joints_rest=wrist + factor * (self.joints_rest - wrist),
            tips_rest=wrist + factor * (self.tips_rest - wrist),
        )

    def mirrored(self) -> HandSkeleton:
        """The mirror image through the x = 0 plane, labelled as the other hand."""
        flip = np.array([-1.0, 1.0, 1.0])
        return HandSkeleton(
            side=self.side.other,
            joints_rest=self.joints_rest * flip + 0.0,  # + 0.0 turns -0.0 into 0.0
            tips_rest=self.tips_rest * flip + 0.0,
        )

    def bone_lengths(self) -> np.ndarray:
        """(20,) lengths of the keypoint bones; bone ``k`` joins keypoint ``k + 1`` to its
        parent ``KEYPOINT_PARENTS[k + 1]``."""
        return bone_lengths(self.keypoints_rest())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HandSkeleton):
            return NotImplemented
        return (self.side == other.side
                and np.array_equal(self.joints_rest, other.joints_rest)
                and np.array_equal(self.tips_rest, other.tips_rest))

    def __hash__(self) -> int:
        return hash((int(self.side), self.joints_rest.tobytes(), self.tips_rest.tobytes()))


def _as_side(side: object) -> HandSide:
    """A HandSide, also from its integer value (0 left, 1 right, the bimanual index)."""
    if isinstance(side, HandSide):
        return side
    if isinstance(side, (int, np.integer)) and not isinstance(side, bool):
        if int(side) in (0, 1):
            return HandSide(int(side))
    raise HandModelError(unknown_choice('hand side', side, list(HandSide)))


def _checked_points(points: object, count: int, name: str) -> np.ndarray:
    try:
        arr = np.array(points, dtype=np.float64)  # a copy
    except (TypeError, ValueError) as exc:
        raise HandModelError(f'{name} must be a ({count}, 3) float array: {exc}') from exc
    if arr.shape != (count, 3):
        raise HandModelError(f'{name} must have shape ({count}, 3), got shape {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise HandModelError(f'{name} contains non-finite values')
    arr.flags.writeable = False
    return arr


def default_skeleton(side: HandSide = HandSide.RIGHT,
                     hand_length_m: float = DEFAULT_HAND_LENGTH_M) -> HandSkeleton:
    """The anthropometric default skeleton, wrist joint at the origin.

    Args:
        side: Which hand (or its index, 0 left, 1 right); the left hand is the x-mirror of the
            right.
        hand_length_m: Wrist joint to middle fingertip at rest, metres (0.05 to 0.5).

    Returns:
        The skeleton, with ``hand_length_m`` equal to the requested length.
    """
    side = _as_side(side)
    length = float(hand_length_m)
    if not math.isfinite(length) or not 0.05 <= length <= 0.5:
        raise HandModelError(
            f'hand_length_m must be between 0.05 and 0.5 m, got {hand_length_m!r}')
    joints = np.zeros((NUM_MANO_JOINTS, 3))
    tips = np.zeros((len(TIP_KEYPOINTS), 3))

    for finger in (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE):
        splay = math.radians(_FINGER_SPLAY_DEG[finger])
        direction = np.array([-math.cos(splay), 0.0, math.sin(splay)])
        point = np.array([-_MCP_AXIAL[finger], 0.0, _MCP_RADIAL[finger]])
        _place_chain(joints, tips, finger, point, direction, _SEGMENT_RATIOS[finger][1:])

    spread = math.radians(_THUMB_SPREAD_DEG)
    tilt = math.radians(_THUMB_PALMAR_TILT_DEG)
    direction = np.array([
        -math.cos(tilt) * math.cos(spread), -math.sin(tilt), math.cos(tilt) * math.sin(spread),
    ])
    _place_chain(joints, tips, Finger.THUMB, np.array(_THUMB_CMC), direction,
                 _SEGMENT_RATIOS[Finger.THUMB])

    right = HandSkeleton(HandSide.RIGHT, joints * length, tips * length)
    return right if side == HandSide.RIGHT else right.mirrored()


def _place_chain(joints: np.ndarray, tips: np.ndarray, finger: Finger, base: np.ndarray,
                 direction: np.ndarray, segments: tuple[float, ...]) -> None:
    """Write a straight finger chain: three joints from ``base`` along ``direction``, then the
    tip (all in hand-length units)."""
    point = base
    for joint, seg in zip(FINGER_MANO_JOINTS[finger], segments, strict=True):
        joints[joint] = point
        point = point + seg * direction
    tips[finger] = point  # the last segment ends at the fingertip
