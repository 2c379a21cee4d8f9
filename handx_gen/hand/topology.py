"""Hand topology: the MANO 16-joint tree and the 21-keypoint order, and the one mapping
between them.

MANO joint order (as in the MANO model files and smplx)::

    0 wrist, 1-3 index, 4-6 middle, 7-9 little (MANO: pinky), 10-12 ring, 13-15 thumb

Keypoint order (MediaPipe / OpenPose / dex-retargeting)::

    0 wrist, 1-4 thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little (each base to tip)

For the thumb the four keypoints are CMC, MCP, IP, tip; for the other fingers MCP, PIP,
DIP, tip. Each MANO finger joint maps to exactly one keypoint; the five tips are not MANO
joints (MANO takes them from mesh vertices, see :data:`MANO_FINGERTIP_VERTEX_IDS`).

This module is the only place that converts between the two orders.
"""

from __future__ import annotations

import enum

import numpy as np

__all__ = [
    'Finger',
    'HandSide',
    'KEYPOINT_FROM_MANO_JOINT',
    'KEYPOINT_NAMES',
    'KEYPOINT_PARENTS',
    'MANO_FINGERTIP_VERTEX_IDS',
    'MANO_JOINT_NAMES',
    'MANO_PARENTS',
    'NUM_KEYPOINTS',
    'NUM_MANO_JOINTS',
    'NUM_POSE_JOINTS',
    'TIP_KEYPOINTS',
    'bone_lengths',
    'finger_keypoints',
    'keypoints_from_mano_joints',
]


class HandSide(enum.IntEnum):
    """Which hand. The value is the hand's index in bimanual arrays (left first)."""

    LEFT = 0
    RIGHT = 1

    @property
    def other(self) -> HandSide:
        return HandSide(1 - int(self))


class Finger(enum.IntEnum):
    """Fingers in keypoint order, thumb to little."""

    THUMB = 0
    INDEX = 1
    MIDDLE = 2
    RING = 3
    LITTLE = 4


NUM_MANO_JOINTS = 16
NUM_POSE_JOINTS = 15  # MANO joints without the wrist: the rows of ``hand_pose``
NUM_KEYPOINTS = 21

MANO_JOINT_NAMES: tuple[str, ...] = (
    'wrist',
    'index1', 'index2', 'index3',
    'middle1', 'middle2', 'middle3',
    'little1', 'little2', 'little3',
    'ring1', 'ring2', 'ring3',
    'thumb1', 'thumb2', 'thumb3',
)
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

KEYPOINT_NAMES: tuple[str, ...] = (
    'wrist',
    'thumb_cmc', 'thumb_mcp', 'thumb_ip', 'thumb_tip',
    'index_mcp', 'index_pip', 'index_dip', 'index_tip',
    'middle_mcp', 'middle_pip', 'middle_dip', 'middle_tip',
    'ring_mcp', 'ring_pip', 'ring_dip', 'ring_tip',
    'little_mcp', 'little_pip', 'little_dip', 'little_tip',
)
KEYPOINT_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19,
)

# Keypoint index of each MANO joint, in MANO order.
KEYPOINT_FROM_MANO_JOINT: tuple[int, ...] = (
    0, 5, 6, 7, 9, 10, 11, 17, 18, 19, 13, 14, 15, 1, 2, 3,
)
# Keypoint index of each fingertip, thumb to little.
TIP_KEYPOINTS: tuple[int, ...] = (4, 8, 12, 16, 20)
# MANO joint index of the distal joint that carries each fingertip, thumb to little.
TIP_PARENT_MANO_JOINT: tuple[int, ...] = (15, 3, 6, 12, 9)
# MANO joint indices of each finger, base to distal, thumb to little.
FINGER_MANO_JOINTS: tuple[tuple[int, int, int], ...] = (
    (13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9),
)

# Standard MANO mesh vertex ids used as fingertips (as in smplx's ``vertex_ids['mano']``
# and most MANO-based datasets), thumb to little.
MANO_FINGERTIP_VERTEX_IDS: tuple[int, ...] = (744, 320, 443, 554, 671)


def finger_keypoints(finger: Finger) -> tuple[int, int, int, int]:
    """Keypoint indices of one finger, base to tip."""
    start = 1 + 4 * int(finger)
    return (start, start + 1, start + 2, start + 3)


def bone_lengths(keypoints: np.ndarray) -> np.ndarray:
    """Lengths of the 20 keypoint bones; bone ``k`` joins keypoint ``k + 1`` to its parent.

    Args:
        keypoints: (..., 21, 3) keypoints (NaN propagates to the bones it touches).

    Returns:
        (..., 20) lengths.
    """
    return np.linalg.norm(keypoints[..., 1:, :] - keypoints[..., _BONE_PARENTS, :], axis=-1)


def keypoints_from_mano_joints(joints: np.ndarray, tips: np.ndarray) -> np.ndarray:
    """Arrange MANO joints and fingertips into the 21-keypoint order.

    Works on numpy arrays and torch tensors alike (only indexing and concatenation).

    Args:
        joints: (..., 16, 3) positions in MANO joint order.
        tips: (..., 5, 3) fingertip positions, thumb to little.

    Returns:
        (..., 21, 3) keypoints.
    """
    order = _KEYPOINT_GATHER
    if hasattr(joints, 'new_tensor'):  # torch
        import torch

        both = torch.cat([joints, tips], dim=-2)
        return both[..., order, :]
    both = np.concatenate([joints, tips], axis=-2)
    return both[..., order, :]


def _keypoint_gather() -> list[int]:
    """For each keypoint, its row in ``concat(mano_joints(16), tips(5))``."""
    gather = [-1] * NUM_KEYPOINTS
    for mano_index, kp in enumerate(KEYPOINT_FROM_MANO_JOINT):
        gather[kp] = mano_index
    for tip_index, kp in enumerate(TIP_KEYPOINTS):
        gather[kp] = NUM_MANO_JOINTS + tip_index
    assert -1 not in gather
    return gather


_KEYPOINT_GATHER = _keypoint_gather()
_BONE_PARENTS = np.asarray(KEYPOINT_PARENTS[1:])
