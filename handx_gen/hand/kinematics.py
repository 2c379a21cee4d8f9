"""Forward kinematics of one hand with MANO semantics, and left/right mirroring.

Semantics (identical to smplx's MANO layer for joints): with rest joints ``J`` (16, 3) of a
:class:`~handx_gen.hand.skeleton.HandSkeleton` and local rotations ``R_0 = global_orient``,
``R_i = hand_pose[i - 1]`` (axis-angle, MANO joint order),

* the accumulated rotation is ``G_0 = R_0`` and ``G_i = G_parent(i) @ R_i``;
* the wrist is at ``p_0 = J[0] + transl`` (the root rotates about ``J[0]``, then ``transl`` is
  added), and ``p_i = p_parent(i) + G_parent(i) @ (J[i] - J[parent(i)])``;
* each fingertip moves rigidly with its distal joint ``d``: ``tip = p_d + G_d @ (tip_rest -
  J[d])``.

The result is in keypoint order (21, 3). Positions are in the canonical hand frame of the
skeleton (see :mod:`handx_gen.hand.skeleton`), metres.

Mirroring (left <-> right) is the reflection through the x = 0 plane: points ``(x, y, z) ->
(-x, y, z)``, axis-angle ``(a, b, c) -> (a, -b, -c)``. Mirroring the pose, the translation and
the skeleton of one hand gives the mirrored keypoints of the other hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handx_gen.errors import HandModelError
from handx_gen.hand.rotations import _Backend, _backend, axis_angle_to_matrix, is_torch
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import (
    MANO_PARENTS,
    NUM_MANO_JOINTS,
    NUM_POSE_JOINTS,
    TIP_PARENT_MANO_JOINT,
    keypoints_from_mano_joints,
)

__all__ = [
    'forward_kinematics',
    'joint_world_rotations',
    'forward_kinematics_matrices_torch',
    'forward_kinematics_torch',
    'mirror_axis_angle',
    'mirror_points',
]

Array = Any  # np.ndarray or torch.Tensor


def _depth_levels() -> list[list[int]]:
    """MANO joints grouped by depth in the tree (level 0 is the wrist)."""
    depth = [0] * NUM_MANO_JOINTS
    for joint in range(1, NUM_MANO_JOINTS):
        depth[joint] = depth[MANO_PARENTS[joint]] + 1
    return [[j for j in range(NUM_MANO_JOINTS) if depth[j] == d] for d in range(max(depth) + 1)]


_LEVELS = _depth_levels()
# Evaluation order (by level) and, per level, the parents' positions in that order.
_ORDER = [j for level in _LEVELS for j in level]
_PARENT_POSITIONS = [[_ORDER.index(MANO_PARENTS[j]) for j in level] for level in _LEVELS[1:]]
_FROM_ORDER = [_ORDER.index(j) for j in range(NUM_MANO_JOINTS)]  # MANO order from eval order


def forward_kinematics(global_orient: np.ndarray, hand_pose: np.ndarray, transl: np.ndarray,
                       skeleton: HandSkeleton) -> np.ndarray:
    """Keypoints of a posed hand (numpy, computed in float64).

    Leading dimensions of the three inputs broadcast against each other.

    Args:
        global_orient: (..., 3) root rotation, axis-angle about the wrist joint ``J[0]``.
        hand_pose: (..., 15, 3) local joint rotations, axis-angle, MANO joint order.
        transl: (..., 3) translation added after the root rotation, metres.
        skeleton: Rest joints and fingertips.

    Returns:
        (..., 21, 3) float64 keypoints in keypoint order.
    """
    for name, value in (('global_orient', global_orient), ('hand_pose', hand_pose),
                        ('transl', transl)):
        if is_torch(value):
            raise HandModelError(f'forward_kinematics: {name} is a torch tensor; use '
                                 'forward_kinematics_torch for tensors')
    go, hp, tr = (_as_float64(v, name) for v, name in (
        (global_orient, 'global_orient'), (hand_pose, 'hand_pose'), (transl, 'transl')))
    _check_skeleton(skeleton)
    batch = _batch_shape(go, hp, tr, 'forward_kinematics')
    return _forward(_backend(go), go, hp, tr, skeleton.joints_rest, skeleton.tips_rest, batch)


def forward_kinematics_torch(global_orient: Any, hand_pose: Any, transl: Any,
                             skeleton: HandSkeleton) -> Any:
    """Differentiable keypoints of a posed hand (torch).

    Same semantics and shapes as :func:`forward_kinematics`. The computation uses the floating
    dtype and device of the tensor inputs (promoted if they differ; non-tensor inputs are
    converted); the skeleton's rest positions are cast to match.

    Args:
        global_orient: (..., 3) tensor, root rotation, axis-angle.
        hand_pose: (..., 15, 3) tensor, local joint rotations, axis-angle, MANO order.
        transl: (..., 3) tensor, metres.
        skeleton: Rest joints and fingertips.

    Returns:
        (..., 21, 3) tensor of keypoints, differentiable in the three pose inputs.
    """
    import torch

    inputs = (global_orient, hand_pose, transl)
    tensors = [v for v in inputs if isinstance(v, torch.Tensor)]
    dtype = torch.get_default_dtype()
    floating = [t.dtype for t in tensors if t.is_floating_point()]
    if floating:
        dtype = floating[0]
        for other in floating[1:]:
            dtype = torch.promote_types(dtype, other)
    device = tensors[0].device if tensors else torch.device('cpu')
    go, hp, tr = (torch.as_tensor(v, dtype=dtype, device=device) for v in inputs)
    _check_skeleton(skeleton)
    batch = _batch_shape(go, hp, tr, 'forward_kinematics_torch')
    joints = torch.as_tensor(skeleton.joints_rest.copy(), dtype=dtype, device=device)
    tips = torch.as_tensor(skeleton.tips_rest.copy(), dtype=dtype, device=device)
    return _forward(_backend(go), go, hp, tr, joints, tips, batch)


def joint_world_rotations(global_orient: Array, hand_pose: Array) -> Array:
    """Accumulated (world) rotation of every MANO joint: ``G_0 = R_0``, ``G_i = G_parent @ R_i``.

    Args:
        global_orient: (..., 3) axis-angle of the wrist, numpy or torch.
        hand_pose: (..., 15, 3) axis-angle of the finger joints in MANO order.

    Returns:
        (..., 16, 3, 3) rotation matrices in MANO joint order, of the input's array type.
    """
    _, go = _prepare3(global_orient, 'global_orient', 'joint_world_rotations')
    xp, hp = _prepare3(hand_pose, 'hand_pose', 'joint_world_rotations')
    if tuple(hp.shape[-2:]) != (NUM_POSE_JOINTS, 3):
        raise HandModelError(
            f'joint_world_rotations: hand_pose must have shape (..., {NUM_POSE_JOINTS}, 3), '
            f'got {tuple(hp.shape)}')
    local = axis_angle_to_matrix(hp)  # (..., 15, 3, 3)
    world = [axis_angle_to_matrix(go)]  # parents precede children in MANO order
    for joint in range(1, NUM_MANO_JOINTS):
        world.append(world[MANO_PARENTS[joint]] @ local[..., joint - 1, :, :])
    if xp.use_torch:
        import torch

        return torch.stack(torch.broadcast_tensors(*world), dim=-3)
    return np.stack(np.broadcast_arrays(*world), axis=-3)


def mirror_axis_angle(axis_angle: Array) -> Array:
    """Mirror rotations through the x = 0 plane: ``(a, b, c) -> (a, -b, -c)``.

    Args:
        axis_angle: (..., 3) numpy array or torch tensor.

    Returns:
        (..., 3) of the same kind.
    """
    xp, aa = _prepare3(axis_angle, 'axis_angle', 'mirror_axis_angle')
    return xp.stack([aa[..., 0], -aa[..., 1], -aa[..., 2]], -1)


def mirror_points(points: Array) -> Array:
    """Mirror points through the x = 0 plane: ``(x, y, z) -> (-x, y, z)``.

    Args:
        points: (..., 3) numpy array or torch tensor.

    Returns:
        (..., 3) of the same kind.
    """
    xp, p = _prepare3(points, 'points', 'mirror_points')
    return xp.stack([-p[..., 0], p[..., 1], p[..., 2]], -1)


def _prepare3(x: Array, what: str, func: str) -> tuple[_Backend, Array]:
    xp = _backend(x)
    x = xp.asarray(x)
    if x.ndim < 1 or x.shape[-1] != 3:
        raise HandModelError(f'{func}: expected {what} of shape (..., 3), got shape '
                             f'{tuple(x.shape)}')
    return xp, x


def _as_float64(value: object, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise HandModelError(f'{name} must be a float array: {exc}') from exc


def _check_skeleton(skeleton: object) -> None:
    if not isinstance(skeleton, HandSkeleton):
        raise HandModelError(f'skeleton must be a HandSkeleton, got {type(skeleton).__name__}')


def _batch_shape(go: Array, hp: Array, tr: Array, func: str) -> tuple[int, ...]:
    """Check the trailing shapes and broadcast the leading ones."""
    if go.ndim < 1 or go.shape[-1] != 3:
        raise HandModelError(f'{func}: global_orient must have shape (..., 3), got shape '
                             f'{tuple(go.shape)}')
    if hp.ndim < 2 or tuple(hp.shape[-2:]) != (NUM_POSE_JOINTS, 3):
        hint = ''
        if hp.ndim >= 1 and hp.shape[-1] == 3 * NUM_POSE_JOINTS:
            hint = '; reshape flat poses with .reshape(*shape[:-1], 15, 3)'
        raise HandModelError(f'{func}: hand_pose must have shape (..., 15, 3), got shape '
                             f'{tuple(hp.shape)}{hint}')
    if tr.ndim < 1 or tr.shape[-1] != 3:
        raise HandModelError(f'{func}: transl must have shape (..., 3), got shape '
                             f'{tuple(tr.shape)}')
    shapes = (tuple(go.shape[:-1]), tuple(hp.shape[:-2]), tuple(tr.shape[:-1]))
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise HandModelError(
            f'{func}: leading dimensions do not broadcast: global_orient {tuple(go.shape)}, '
            f'hand_pose {tuple(hp.shape)}, transl {tuple(tr.shape)}') from None


def forward_kinematics_matrices_torch(rot_root: Any, rot_local: Any, transl: Any,
                                      skeleton: HandSkeleton) -> Any:
    """Differentiable keypoints from rotation matrices (torch): for models that predict
    rotations in a continuous form (6D) and need keypoints without an axis-angle detour.

    Args:
        rot_root: (..., 3, 3) root rotation about the wrist joint ``J[0]``.
        rot_local: (..., 15, 3, 3) local joint rotations, MANO joint order.
        transl: (..., 3) translation, metres.
        skeleton: Rest joints and fingertips.

    Returns:
        (..., 21, 3) keypoints, in the dtype and on the device of ``rot_root``.
    """
    import torch

    if not all(isinstance(v, torch.Tensor) for v in (rot_root, rot_local, transl)):
        raise HandModelError('forward_kinematics_matrices_torch takes torch tensors')
    if tuple(rot_root.shape[-2:]) != (3, 3) or tuple(rot_local.shape[-3:]) != (15, 3, 3) \
            or transl.shape[-1] != 3:
        raise HandModelError(f'forward_kinematics_matrices_torch: expected (..., 3, 3), '
                             f'(..., 15, 3, 3) and (..., 3), got {tuple(rot_root.shape)}, '
                             f'{tuple(rot_local.shape)}, {tuple(transl.shape)}')
    _check_skeleton(skeleton)
    batch = tuple(torch.broadcast_shapes(rot_root.shape[:-2], rot_local.shape[:-3],
                                         transl.shape[:-1]))
    dtype, device = rot_root.dtype, rot_root.device
    joints = torch.as_tensor(skeleton.joints_rest.copy(), dtype=dtype, device=device)
    tips = torch.as_tensor(skeleton.tips_rest.copy(), dtype=dtype, device=device)
    return _forward_matrices(_backend(rot_root), rot_root, rot_local.to(dtype), transl.to(dtype),
                             joints, tips, batch)


def _forward(xp: _Backend, go: Array, hp: Array, tr: Array, joints_rest: Array, tips_rest: Array,
             batch: tuple[int, ...]) -> Array:
    """Backend-generic FK; ``joints_rest`` (16, 3) and ``tips_rest`` (5, 3) match ``xp``."""
    return _forward_matrices(xp, axis_angle_to_matrix(go), axis_angle_to_matrix(hp), tr,
                             joints_rest, tips_rest, batch)


def _forward_matrices(xp: _Backend, rot_root: Array, rot_local: Array, tr: Array,
                      joints_rest: Array, tips_rest: Array, batch: tuple[int, ...]) -> Array:
    """FK from (..., 3, 3) root and (..., 15, 3, 3) local rotations (row i - 1 is MANO
    joint i)."""
    # Accumulated rotations and positions in evaluation order (by tree depth).
    g_all = rot_root[..., None, :, :]  # (..., 1, 3, 3)
    p_all = (joints_rest[0] + tr)[..., None, :]  # (..., 1, 3)
    # Broadcast everything to the full batch, so that the concatenations below line up.
    g_all = _broadcast(xp, g_all, batch + (1, 3, 3))
    p_all = _broadcast(xp, p_all, batch + (1, 3))
    for level, parent_pos in zip(_LEVELS[1:], _PARENT_POSITIONS, strict=True):
        parents = [MANO_PARENTS[j] for j in level]
        offsets = joints_rest[level] - joints_rest[parents]  # (n, 3)
        g_parent = g_all[..., parent_pos, :, :]  # (..., n, 3, 3)
        p_parent = p_all[..., parent_pos, :]  # (..., n, 3)
        pose_rows = [j - 1 for j in level]
        p_new = p_parent + (g_parent @ offsets[..., None])[..., 0]  # (..., n, 3)
        g_new = g_parent @ rot_local[..., pose_rows, :, :]  # (..., n, 3, 3)
        g_all = xp.concat([g_all, _broadcast(xp, g_new, batch + g_new.shape[-3:])], -3)
        p_all = xp.concat([p_all, _broadcast(xp, p_new, batch + p_new.shape[-2:])], -2)
    p_joints = p_all[..., _FROM_ORDER, :]  # (..., 16, 3) MANO order
    tip_parent = list(TIP_PARENT_MANO_JOINT)
    tip_parent_pos = [_FROM_ORDER[j] for j in tip_parent]
    tip_offsets = tips_rest - joints_rest[tip_parent]  # (5, 3)
    p_tips = p_all[..., tip_parent_pos, :] + (
        g_all[..., tip_parent_pos, :, :] @ tip_offsets[..., None])[..., 0]  # (..., 5, 3)
    return keypoints_from_mano_joints(p_joints, p_tips)  # (..., 21, 3)


def _broadcast(xp: _Backend, x: Array, shape: tuple[int, ...]) -> Array:
    if tuple(x.shape) == tuple(shape):
        return x
    if xp.use_torch:
        return x.expand(*shape)
    return np.broadcast_to(x, shape)
