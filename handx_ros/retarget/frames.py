"""The one place where human wrist frames meet robot base frames.

Human side. A hand's wrist frame is the canonical MANO hand frame carried by the hand
(``handx_gen.hand.skeleton``): for the right hand at rest, fingers along -x, palm normal -y,
thumb towards +z; the left hand is its mirror image (fingers +x, palm -y, thumb +z). In a
``handx-motion/1`` clip the wrist frame's orientation in the world is the MANO global
orientation and its origin the wrist keypoint, so

    keypoints_wrist = R_world_wrist^T (keypoints_world - p_world_wrist).

Streams without MANO parameters (a tracker's 21 keypoints) get the wrist frame from the
keypoints: :func:`wrist_frames_from_keypoints` fits the rotation that best carries the rest
hand's palm points (wrist, the four finger MCPs) onto the observed ones (Kabsch), which is the
MANO orientation exactly when the palm is rigid.

Robot side. Each hand folder gives ``R_base_hand`` (human wrist-frame axes in the robot base
link frame), the robot frame that plays the wrist, and a scale. A human vector ``v`` in the
wrist frame becomes ``scale * R_base_hand @ v`` in the base frame, and the base link's pose in
the world, for hands with floating wrists, is

    R_world_base = R_world_wrist @ R_base_hand^T,
    p_world_base = p_world_wrist - R_world_base @ p_base_wrist,

so that the robot's wrist frame sits on the human wrist. Left and right differ only in their
folders' ``R_base_hand``; nothing here branches on the side except the rest palm template.
"""

from __future__ import annotations

import numpy as np

from handx_gen.errors import RetargetError
from handx_gen.hand.rotations import axis_angle_to_matrix, matrix_to_quaternion
from handx_gen.hand.skeleton import default_skeleton
from handx_gen.hand.topology import HandSide
from handx_gen.motion import BimanualMotion

__all__ = [
    'base_poses',
    'keypoints_in_wrist_frame',
    'wrist_frames_from_keypoints',
    'wrist_poses_from_motion',
]

_PALM_KEYPOINTS = (0, 5, 9, 13, 17)  # wrist and the four finger MCPs


def wrist_poses_from_motion(motion: BimanualMotion) -> tuple[np.ndarray, np.ndarray]:
    """Wrist frames of a clip: ``R_world_wrist`` (T, 2, 3, 3) and ``p_world_wrist`` (T, 2, 3),
    left hand first."""
    R = axis_angle_to_matrix(np.asarray(motion.global_orient, dtype=np.float64))
    p = np.asarray(motion.keypoints[:, :, 0], dtype=np.float64)
    return R, p


def keypoints_in_wrist_frame(keypoints: np.ndarray, R_world_wrist: np.ndarray,
                             p_world_wrist: np.ndarray) -> np.ndarray:
    """World keypoints (..., 21, 3) expressed in their wrist frames (..., 3, 3), (..., 3)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    return np.einsum('...ji,...kj->...ki', R_world_wrist, kp - p_world_wrist[..., None, :])


def wrist_frames_from_keypoints(keypoints: np.ndarray, side: HandSide | int
                                ) -> tuple[np.ndarray, np.ndarray]:
    """Wrist frames of keypoints alone (..., 21, 3) of one hand: ``R_world_wrist`` (..., 3, 3)
    by a Kabsch fit of the rest palm onto the observed one, ``p_world_wrist`` the wrist.

    Raises:
        RetargetError: Wrong shape or non-finite palm keypoints.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape[-2:] != (21, 3):
        raise RetargetError(f'keypoints must have shape (..., 21, 3), got {kp.shape}')
    palm = kp[..., _PALM_KEYPOINTS, :]  # (..., 5, 3)
    if not np.all(np.isfinite(palm)):
        raise RetargetError('non-finite wrist or MCP keypoints: cannot fit a wrist frame')
    rest = default_skeleton(HandSide(side)).keypoints_rest()[list(_PALM_KEYPOINTS)]  # (5, 3)
    rest_c = rest - rest.mean(axis=0)
    obs_c = palm - palm.mean(axis=-2, keepdims=True)
    cov = np.einsum('...ki,kj->...ij', obs_c, rest_c)  # (..., 3, 3) = sum obs rest^T
    U, _, Vt = np.linalg.svd(cov)
    det = np.linalg.det(U @ Vt)
    D = np.broadcast_to(np.eye(3), cov.shape).copy()
    D[..., 2, 2] = np.sign(det)
    R = U @ D @ Vt  # (..., 3, 3) with obs ~ R rest
    return R, kp[..., 0, :].copy()


def base_poses(R_world_wrist: np.ndarray, p_world_wrist: np.ndarray, R_base_hand: np.ndarray,
               p_base_wrist: np.ndarray) -> np.ndarray:
    """Poses (..., 7) of a floating robot hand's base link (xyz, quaternion wxyz) that put its
    wrist frame on the human wrist. ``R_base_hand`` (..., 3, 3) and ``p_base_wrist`` (..., 3)
    broadcast against the wrist frames (e.g. one per hand of a pair, in one call)."""
    R_world_base = R_world_wrist @ np.swapaxes(np.asarray(R_base_hand), -1, -2)  # (..., 3, 3)
    p_world_base = p_world_wrist - np.einsum('...ij,...j->...i', R_world_base,
                                             np.asarray(p_base_wrist))
    quat = matrix_to_quaternion(R_world_base)  # (..., 4) wxyz
    return np.concatenate([p_world_base, quat], axis=-1)
