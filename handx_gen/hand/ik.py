"""Keypoints to MANO parameters: skeleton fitting and analytic inverse kinematics.

Both functions work in the canonical hand frame conventions of :mod:`handx_gen.hand.skeleton`
and the FK semantics of :mod:`handx_gen.hand.kinematics` (smplx MANO: the root rotates about
the rest wrist ``J[0]``, then ``transl`` is added). Numpy only, computed in float64.

The inverse kinematics is analytic and swing-only: 21 keypoints fix the direction of every bone
but not the rotation of a phalanx about its own axis, so each joint gets the minimal rotation
that aligns its rest bone with the observed one. In the anatomical angles of
:mod:`handx_gen.hand.limits` that is exactly zero twist. Bone lengths are not changed: fit a
skeleton to the data first (:func:`fit_skeleton`) so that directions and lengths agree.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from handx_gen.errors import HandModelError, unknown_choice
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.rotations import matrix_to_axis_angle, rotation_between_vectors
from handx_gen.hand.skeleton import HandSkeleton, default_skeleton
from handx_gen.hand.topology import (
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    NUM_KEYPOINTS,
    NUM_MANO_JOINTS,
    NUM_POSE_JOINTS,
    TIP_KEYPOINTS,
    TIP_PARENT_MANO_JOINT,
    HandSide,
)

__all__ = [
    'IKResult',
    'PALM_MANO_JOINTS',
    'fit_skeleton',
    'inverse_kinematics',
]

# Joints that move rigidly with the root: the wrist and the five finger bases (MANO order).
PALM_MANO_JOINTS: tuple[int, ...] = (0, 1, 4, 7, 10, 13)
_PALM_KEYPOINTS = [KEYPOINT_FROM_MANO_JOINT[j] for j in PALM_MANO_JOINTS]


def _child_keypoints() -> list[int]:
    """For each MANO joint 1..15, the keypoint at the end of its bone (next joint or tip)."""
    children = []
    for joint in range(1, NUM_MANO_JOINTS):
        if joint in TIP_PARENT_MANO_JOINT:
            children.append(TIP_KEYPOINTS[TIP_PARENT_MANO_JOINT.index(joint)])
        else:
            assert MANO_PARENTS[joint + 1] == joint
            children.append(KEYPOINT_FROM_MANO_JOINT[joint + 1])
    return children


_CHILD_KEYPOINTS = _child_keypoints()


class IKResult(NamedTuple):
    """MANO parameters recovered from keypoints, with the fit error.

    Attributes:
        global_orient: (..., 3) root rotation, axis-angle.
        hand_pose: (..., 15, 3) local rotations, axis-angle, MANO order (zero twist).
        transl: (..., 3) translation, metres (``wrist = J[0] + transl``).
        residual_m: (...,) mean distance between the FK keypoints of the result and the input
            keypoints, metres.
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    residual_m: np.ndarray


def fit_skeleton(keypoints: np.ndarray, side: HandSide) -> HandSkeleton:
    """A skeleton with the bone lengths of keypoint data and the default hand's shape.

    Each of the 20 keypoint bones gets the median of its length over the frames; the bones are
    laid out along the rest directions of :func:`~handx_gen.hand.skeleton.default_skeleton`
    (wrist at its rest position), so palm and finger proportions come from the data and the
    angles between bones from the default hand.

    Args:
        keypoints: (T, 21, 3) keypoints in keypoint order, metres, any frame (a single frame
            (21, 3) is accepted too).
        side: Which hand the keypoints belong to.

    Returns:
        The fitted skeleton.

    Raises:
        HandModelError: on a wrong shape, an empty sequence, non-finite values, an unknown side
            or a bone whose median length is zero.
    """
    if not isinstance(side, HandSide):
        raise HandModelError(unknown_choice('hand side', side, list(HandSide)))
    kp = _as_keypoints(keypoints, 'fit_skeleton')
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[0] == 0:
        raise HandModelError(f'fit_skeleton: keypoints must have shape (T, 21, 3) with T >= 1, '
                             f'got shape {kp.shape}')
    parents = np.asarray(KEYPOINT_PARENTS[1:])
    lengths = np.median(np.linalg.norm(kp[:, 1:] - kp[:, parents], axis=-1), axis=0)  # (20,)
    for bone, length in enumerate(lengths):
        if not length > 1e-6:
            child = KEYPOINT_NAMES[bone + 1]
            raise HandModelError(f'fit_skeleton: bone {KEYPOINT_NAMES[parents[bone]]} -> {child} '
                                 f'has median length {length:.3g} m; keypoints must be distinct')
    template = default_skeleton(side).keypoints_rest()  # (21, 3)
    directions = template[1:] - template[parents]
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    fitted = np.zeros_like(template)
    fitted[0] = template[0]
    for child in range(1, NUM_KEYPOINTS):  # parents come first in keypoint order
        bone = child - 1
        fitted[child] = fitted[KEYPOINT_PARENTS[child]] + lengths[bone] * directions[bone]
    return HandSkeleton(
        side=side,
        joints_rest=fitted[list(KEYPOINT_FROM_MANO_JOINT)],
        tips_rest=fitted[list(TIP_KEYPOINTS)],
    )


def inverse_kinematics(keypoints: np.ndarray, skeleton: HandSkeleton) -> IKResult:
    """Analytic MANO parameters that reproduce keypoints (swing-only joint rotations).

    1. ``global_orient``: least-squares rotation (Kabsch) of the rest palm points (wrist and the
       five finger bases, :data:`PALM_MANO_JOINTS`) onto the observed ones;
    2. ``transl``: observed wrist minus the rest wrist ``J[0]``;
    3. each finger joint, base to tip: the minimal rotation taking its rest bone (joint to child)
       onto the observed bone expressed in the parent's posed frame.

    Keypoints produced by :func:`~handx_gen.hand.kinematics.forward_kinematics` with this
    skeleton and zero-twist joint rotations (see :mod:`handx_gen.hand.limits`) are recovered
    exactly (to rounding), with their pose. Vectorised over the leading dimensions.

    Args:
        keypoints: (..., 21, 3) keypoints in keypoint order, metres.
        skeleton: Rest joints and fingertips; its bone lengths should match the data.

    Returns:
        An :class:`IKResult` with leading dimensions ``...``.

    Raises:
        HandModelError: on a wrong shape, non-finite values or a zero-length observed bone.
    """
    if not isinstance(skeleton, HandSkeleton):
        raise HandModelError(f'skeleton must be a HandSkeleton, got {type(skeleton).__name__}')
    kp = _as_keypoints(keypoints, 'inverse_kinematics')
    batch = kp.shape[:-2]
    kp = kp.reshape(-1, NUM_KEYPOINTS, 3)  # (N, 21, 3)
    rest = skeleton.keypoints_rest()  # (21, 3)

    rot_root = _kabsch(rest[_PALM_KEYPOINTS], kp[:, _PALM_KEYPOINTS])  # (N, 3, 3)
    transl = kp[:, 0] - skeleton.joints_rest[0]  # (N, 3)

    rot_global = np.zeros((kp.shape[0], NUM_MANO_JOINTS, 3, 3))  # accumulated, MANO order
    rot_global[:, 0] = rot_root
    rot_local = np.zeros((kp.shape[0], NUM_POSE_JOINTS, 3, 3))
    for joint in range(1, NUM_MANO_JOINTS):  # parents precede children in MANO order
        start, end = KEYPOINT_FROM_MANO_JOINT[joint], _CHILD_KEYPOINTS[joint - 1]
        observed = kp[:, end] - kp[:, start]  # (N, 3), world frame
        if np.any(np.linalg.norm(observed, axis=-1) <= 1e-9):
            raise HandModelError(f'inverse_kinematics: the bone of {MANO_JOINT_NAMES[joint]} '
                                 f'({KEYPOINT_NAMES[start]} -> {KEYPOINT_NAMES[end]}) has zero '
                                 'length in some frame')
        rot_parent = rot_global[:, MANO_PARENTS[joint]]  # (N, 3, 3)
        observed_local = np.einsum('nji,nj->ni', rot_parent, observed)  # R_parent^T @ observed
        local = rotation_between_vectors(rest[end] - rest[start], observed_local)  # (N, 3, 3)
        rot_local[:, joint - 1] = local
        rot_global[:, joint] = rot_parent @ local

    global_orient = matrix_to_axis_angle(rot_root)  # (N, 3)
    hand_pose = matrix_to_axis_angle(rot_local)  # (N, 15, 3)
    fk = forward_kinematics(global_orient, hand_pose, transl, skeleton)  # (N, 21, 3)
    residual_m = np.linalg.norm(fk - kp, axis=-1).mean(axis=-1)  # (N,)
    return IKResult(
        global_orient=global_orient.reshape(batch + (3,)),
        hand_pose=hand_pose.reshape(batch + (NUM_POSE_JOINTS, 3)),
        transl=transl.reshape(batch + (3,)),
        residual_m=residual_m.reshape(batch),
    )


def _kabsch(points_rest: np.ndarray, points_obs: np.ndarray) -> np.ndarray:
    """Least-squares rotations ``R`` with ``R @ (rest - mean) ~ obs - mean``.

    Args:
        points_rest: (k, 3) rest points.
        points_obs: (N, k, 3) observed points.

    Returns:
        (N, 3, 3) proper rotation matrices.
    """
    rest_c = points_rest - points_rest.mean(axis=0)  # (k, 3)
    obs_c = points_obs - points_obs.mean(axis=1, keepdims=True)  # (N, k, 3)
    cov = np.einsum('ki,nkj->nij', rest_c, obs_c)  # (N, 3, 3) sum of rest obs^T
    u, _, vt = np.linalg.svd(cov)
    v = np.swapaxes(vt, -1, -2)
    ut = np.swapaxes(u, -1, -2)
    det = np.linalg.det(v @ ut)  # (N,) -1 where the best orthogonal map is a reflection
    fix = np.ones((points_obs.shape[0], 3))
    fix[:, 2] = np.where(det < 0, -1.0, 1.0)
    return (v * fix[:, None, :]) @ ut


def _as_keypoints(keypoints: object, func: str) -> np.ndarray:
    """Copy to float64, check the (..., 21, 3) shape and finiteness."""
    if hasattr(keypoints, 'detach'):  # torch tensor
        raise HandModelError(f'{func}: keypoints must be a numpy array, got a torch tensor; '
                             'convert with .detach().cpu().numpy()')
    try:
        kp = np.array(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HandModelError(f'{func}: keypoints must be a float array: {exc}') from exc
    if kp.ndim < 2 or kp.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise HandModelError(f'{func}: keypoints must have shape (..., {NUM_KEYPOINTS}, 3), got '
                             f'shape {kp.shape}')
    if not np.all(np.isfinite(kp)):
        bad = int(np.sum(~np.isfinite(kp)))
        raise HandModelError(f'{func}: keypoints contain {bad} non-finite values (shape '
                             f'{kp.shape}); drop or interpolate those frames first')
    return kp
