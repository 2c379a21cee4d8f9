"""Keypoints to MANO parameters: skeleton fitting and analytic inverse kinematics.

Both functions work in the canonical hand frame conventions of :mod:`handx_gen.hand.skeleton`
and the FK semantics of :mod:`handx_gen.hand.kinematics` (smplx MANO: the root rotates about
the rest wrist ``J[0]``, then ``transl`` is added). Numpy only, computed in float64.

The inverse kinematics is analytic. 21 keypoints fix the direction of every bone but not the
rotation of a phalanx about its own axis, so the solver needs a model of that rotation:

* **swing-only** (the thumb always, every finger with ``hinge_fingers=False``): each joint gets
  the minimal rotation that aligns its rest bone with the observed one; in the anatomical angles
  of :mod:`handx_gen.hand.limits` that is exactly zero twist. Exact for noiseless zero-twist
  poses, but noise is amplified at flexed joints: the axis of a large minimal rotation tilts
  with every sideways error of its bone, and the tilt rolls the child frame, so at a fist 2 mm
  of keypoint noise becomes tens of degrees of spurious PIP/DIP abduction.
* **hinge fingers** (index to little, the default): PIP and DIP are hinges. Per finger and
  frame, the flexion plane is estimated from the four observed keypoints (MCP, PIP, DIP, tip;
  least-squares normal), trusted in proportion to how bent the finger is (when it is nearly
  straight the plane is undefined and the swing-only solution's plane is used). The MCP gets
  a full rotation: the swing that takes its rest bone to the observed bone, then a twist about
  the bone, limited to the joint's twist range, that brings the rest flexion axis onto the
  plane's normal (a two-vector fit). PIP and DIP rotate about their flexion axes only, by the
  angle of their observed bones projected onto the plane: zero abduction and twist. Exact for
  noiseless poses whose PIP and DIP are pure flexion and whose MCP twist is within its range
  (for a nearly straight finger, whose plane is the swing-only one, with zero MCP twist).

Bone lengths are not changed: fit a skeleton to the data first (:func:`fit_skeleton`) so that
directions and lengths agree.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from handx_gen.errors import HandModelError, unknown_choice
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.limits import JOINT_RANGES, joint_frames
from handx_gen.hand.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    rotation_between_vectors,
)
from handx_gen.hand.skeleton import HandSkeleton, default_skeleton
from handx_gen.hand.topology import (
    FINGER_MANO_JOINTS,
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
    Finger,
    HandSide,
    bone_lengths,
    finger_keypoints,
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

# Trust in a finger's observed flexion plane, from the lateral spread of its four keypoints:
# sqrt(lambda_2 - lambda_3) of their covariance, i.e. the RMS distance from the finger's main
# line in the plane, less the spread out of it (which is noise). Below the first value the
# plane is not used, above the second it is used alone, with a smoothstep in between. For a
# default-sized index finger the spread is ~2 mm at 10/7 deg PIP/DIP flexion, ~6 mm at 30/20,
# ~9 mm at 45/30 and ~14 mm in a fist; a straight finger under 2 mm of keypoint noise per axis
# shows under 3.5 mm (99th percentile). Modelling choices, metres.
_PLANE_SPREAD_M = (0.003, 0.008)


class IKResult(NamedTuple):
    """MANO parameters recovered from keypoints, with the fit error.

    Attributes:
        global_orient: (..., 3) root rotation, axis-angle.
        hand_pose: (..., 15, 3) local rotations, axis-angle, MANO order.
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
    lengths = np.median(bone_lengths(kp), axis=0)  # (20,)
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


def inverse_kinematics(keypoints: np.ndarray, skeleton: HandSkeleton, *,
                       hinge_fingers: bool = True) -> IKResult:
    """Analytic MANO parameters that reproduce keypoints.

    1. ``global_orient``: least-squares rotation (Kabsch) of the rest palm points (wrist and the
       five finger bases, :data:`PALM_MANO_JOINTS`) onto the observed ones;
    2. ``transl``: observed wrist minus the rest wrist ``J[0]``;
    3. the thumb's joints (and with ``hinge_fingers=False`` every finger joint), base to tip:
       the minimal rotation taking its rest bone (joint to child) onto the observed bone
       expressed in the parent's posed frame (swing-only, zero twist);
    4. with ``hinge_fingers`` (default), index to little: MCP swing plus a range-limited twist
       that aligns the finger's flexion axis with its observed flexion plane, then PIP and DIP
       as hinges about their flexion axes (see the module docstring).

    Keypoints produced by :func:`~handx_gen.hand.kinematics.forward_kinematics` with this
    skeleton and zero-twist joint rotations (see :mod:`handx_gen.hand.limits`) are recovered
    exactly (to rounding), with their pose: by either mode when the PIP and DIP joints have no
    abduction, by the swing-only mode also when they have. The hinge mode also recovers MCP
    twist within the joint's range on bent fingers. On noisy keypoints the hinge mode keeps
    PIP/DIP abduction and twist at zero and the MCP twist in range, where the swing-only mode
    turns noise at flexed fingers into large spurious abduction (limit violations); its
    residual is slightly larger, since a hinge finger cannot follow noise out of its plane.
    Vectorised over the leading dimensions.

    Args:
        keypoints: (..., 21, 3) keypoints in keypoint order, metres.
        skeleton: Rest joints and fingertips; its bone lengths should match the data.
        hinge_fingers: Solve index to little with hinge PIP/DIP joints and a flexion-plane fit
            (default); False gives every finger the swing-only solution of the thumb.

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
    for finger in Finger:  # every finger's chain hangs off the wrist
        if hinge_fingers and finger is not Finger.THUMB:
            _solve_hinge_finger(kp, skeleton, finger, rot_global, rot_local)
            continue
        for joint in FINGER_MANO_JOINTS[finger]:  # base to distal
            rot_parent = rot_global[:, MANO_PARENTS[joint]]  # (N, 3, 3)
            observed_local = np.einsum('nji,nj->ni', rot_parent, _observed_bone(kp, joint))
            local = rotation_between_vectors(_rest_bone(rest, joint), observed_local)  # (N, 3, 3)
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


def _observed_bone(kp: np.ndarray, joint: int) -> np.ndarray:
    """(N, 3) observed bone of MANO ``joint`` (joint to child keypoint), world frame."""
    start, end = KEYPOINT_FROM_MANO_JOINT[joint], _CHILD_KEYPOINTS[joint - 1]
    bone = kp[:, end] - kp[:, start]  # (N, 3)
    if np.any(np.linalg.norm(bone, axis=-1) <= 1e-9):
        raise HandModelError(f'inverse_kinematics: the bone of {MANO_JOINT_NAMES[joint]} '
                             f'({KEYPOINT_NAMES[start]} -> {KEYPOINT_NAMES[end]}) has zero '
                             'length in some frame')
    return bone


def _rest_bone(rest: np.ndarray, joint: int) -> np.ndarray:
    """(3,) rest bone of MANO ``joint`` from the (21, 3) rest keypoints."""
    return rest[_CHILD_KEYPOINTS[joint - 1]] - rest[KEYPOINT_FROM_MANO_JOINT[joint]]


def _solve_hinge_finger(kp: np.ndarray, skeleton: HandSkeleton, finger: Finger,
                        rot_global: np.ndarray, rot_local: np.ndarray) -> None:
    """Hinge-finger IK of one long finger, written into ``rot_global`` and ``rot_local``.

    Args:
        kp: (N, 21, 3) observed keypoints.
        skeleton: The rest skeleton.
        finger: Index to little.
        rot_global: (N, 16, 3, 3) accumulated rotations; the wrist's row is read, the finger's
            rows are written.
        rot_local: (N, 15, 3, 3) local rotations; the finger's rows are written.
    """
    rest = skeleton.keypoints_rest()  # (21, 3)
    frames = joint_frames(skeleton)  # (15, 3, 3) columns: flexion, abduction, twist axes
    side_sign = 1.0 if skeleton.side == HandSide.RIGHT else -1.0
    mcp, pip, dip = FINGER_MANO_JOINTS[finger]
    rot_palm = rot_global[:, MANO_PARENTS[mcp]]  # (N, 3, 3)

    # MCP swing: the rest bone onto the observed bone, in the palm frame.
    bone_rest = _rest_bone(rest, mcp)
    bone_rest = bone_rest / np.linalg.norm(bone_rest)  # (3,)
    bone_palm = np.einsum('nji,nj->ni', rot_palm, _observed_bone(kp, mcp))  # (N, 3)
    swing = rotation_between_vectors(bone_rest, bone_palm)  # (N, 3, 3)
    # The finger's flexion axis (the PIP's, which its hinge turns about) after the swing: the
    # swing-only solution's plane normal, in the palm frame.
    axis_rest = frames[pip - 1, :, 0]  # (3,)
    axis_swing = swing @ axis_rest  # (N, 3)
    normal = _flexion_plane_normals(kp[:, finger_keypoints(finger)],
                                    np.einsum('nij,nj->ni', rot_palm, axis_swing))  # (N, 3)
    normal_palm = np.einsum('nji,nj->ni', rot_palm, normal)  # (N, 3)
    # Twist about the observed bone taking the swung axis onto the normal (both projected off
    # the bone; a zero projection gives atan2(0, 0) = 0), limited to the MCP's twist range.
    # Turning by phi about the observed bone after the swing is the swing after turning by phi
    # about the rest bone, whose anatomical twist is side_sign * phi.
    bone_unit = bone_palm / np.linalg.norm(bone_palm, axis=-1, keepdims=True)  # (N, 3)
    sin_part = np.einsum('ni,ni->n', bone_unit, np.cross(axis_swing, normal_palm))
    cos_part = (np.einsum('ni,ni->n', axis_swing, normal_palm)
                - np.einsum('ni,ni->n', axis_swing, bone_unit)
                * np.einsum('ni,ni->n', normal_palm, bone_unit))
    twist_range = JOINT_RANGES[MANO_JOINT_NAMES[mcp]].twist
    turn = side_sign * np.clip(side_sign * np.arctan2(sin_part, cos_part), *twist_range)  # (N,)
    local = swing @ axis_angle_to_matrix(turn[:, None] * bone_rest)  # (N, 3, 3)
    rot_local[:, mcp - 1] = local
    rot_global[:, mcp] = rot_palm @ local

    # PIP and DIP: rotations about their own flexion axes by the angle of the observed bone
    # projected onto the plane that axis is normal to (in the parent's posed frame).
    for joint in (pip, dip):
        rot_parent = rot_global[:, MANO_PARENTS[joint]]  # (N, 3, 3)
        observed = np.einsum('nji,nj->ni', rot_parent, _observed_bone(kp, joint))  # (N, 3)
        bone = _rest_bone(rest, joint)
        bone = bone / np.linalg.norm(bone)  # (3,)
        axis = frames[joint - 1, :, 0]  # (3,) unit, perpendicular to the bone
        towards = np.cross(axis, bone)  # (3,) where a positive flexion moves the bone
        flexion = np.arctan2(observed @ towards, observed @ bone)  # (N,)
        local = axis_angle_to_matrix(flexion[:, None] * axis)  # (N, 3, 3)
        rot_local[:, joint - 1] = local
        rot_global[:, joint] = rot_parent @ local


def _flexion_plane_normals(points: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Unit normals of fingers' flexion planes, from their keypoints where they are bent.

    The observed normal is the least-squares one (the covariance's smallest eigenvector),
    signed to agree with ``fallback``; it is blended with ``fallback`` by a weight that grows
    from 0 to 1 with the fingers' lateral spread (:data:`_PLANE_SPREAD_M`).

    Args:
        points: (N, 4, 3) keypoints of one finger per frame, base to tip.
        fallback: (N, 3) unit normals to use where the finger is (nearly) straight.

    Returns:
        (N, 3) unit normals.
    """
    centred = points - points.mean(axis=1, keepdims=True)  # (N, 4, 3)
    cov = np.einsum('nki,nkj->nij', centred, centred) / points.shape[1]  # (N, 3, 3)
    eigval, eigvec = np.linalg.eigh(cov)  # ascending eigenvalues
    observed = eigvec[:, :, 0]  # (N, 3)
    observed = np.where(np.einsum('ni,ni->n', observed, fallback)[:, None] < 0.0, -observed,
                        observed)
    spread = np.sqrt(np.maximum(eigval[:, 1] - eigval[:, 0], 0.0))  # (N,)
    low, high = _PLANE_SPREAD_M
    x = np.clip((spread - low) / (high - low), 0.0, 1.0)
    weight = (x * x * (3.0 - 2.0 * x))[:, None]  # (N, 1) smoothstep
    normal = weight * observed + (1.0 - weight) * fallback
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


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
