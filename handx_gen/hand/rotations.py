"""Rotation conversions for numpy arrays and torch tensors.

Representations, all with arbitrary leading batch dimensions ``...``:

* axis-angle ``(..., 3)``: rotation axis times angle in radians (MANO's pose format);
* quaternion ``(..., 4)``: ``(w, x, y, z)``, scalar first; unit norm expected, though the
  conversions from quaternions normalise their input;
* rotation matrix ``(..., 3, 3)``: acts on column vectors, ``v_out = R @ v_in``;
* continuous 6D ``(..., 6)``: the first two columns of the matrix, column 0 then column 1
  (Zhou et al., "On the Continuity of Rotation Representations in Neural Networks", CVPR 2019),
  mapped back to a matrix by Gram-Schmidt.

Every function accepts a numpy array (or anything ``np.asarray`` takes) or a torch tensor and
returns the same kind: numpy results keep a floating input dtype (other dtypes become float64);
torch results keep dtype and device and are differentiable. One implementation serves both
backends through the small :class:`_Backend` shim below.

Numerical care:

* axis-angle near zero uses Taylor expansions in ``theta**2``, so values are exact to rounding
  and torch gradients are finite at exactly zero rotation;
* matrix -> quaternion uses Shepperd's method (pick the largest of ``4w^2, 4x^2, 4y^2, 4z^2``),
  accurate for every angle including pi; matrix -> axis-angle goes through it;
* quaternion -> axis-angle uses ``atan2`` (accurate near 0 and pi) and returns angles in
  ``[0, pi]``;
* :func:`rotation_between_vectors` uses the half-way vector and switches to a rotation by pi
  about a perpendicular axis when the vectors are (numerically) opposite.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from handx_gen.errors import HandModelError

__all__ = [
    'axis_angle_to_matrix',
    'axis_angle_to_quaternion',
    'axis_angle_to_rot6d',
    'is_torch',
    'matrix_to_axis_angle',
    'matrix_to_quaternion',
    'matrix_to_rot6d',
    'quaternion_multiply',
    'quaternion_slerp',
    'quaternion_to_axis_angle',
    'quaternion_to_matrix',
    'rot6d_to_axis_angle',
    'rot6d_to_matrix',
    'rotation_between_vectors',
]

Array = Any  # np.ndarray or torch.Tensor

# Below this squared angle (theta < 1e-2 rad) the Taylor series are used; their truncation
# error there is below 1e-16 relative.
_SMALL_ANGLE_SQ = 1e-4
# Below this squared sine of the half angle (sin(theta/2) < 1e-4) quaternion -> axis-angle
# uses its Taylor series.
_SMALL_HALF_SINE_SQ = 1e-8


def is_torch(x: object) -> bool:
    """True if ``x`` is a torch tensor (without importing torch when it is not loaded)."""
    torch = sys.modules.get('torch')
    return torch is not None and isinstance(x, torch.Tensor)


class _Backend:
    """The handful of array operations the conversions need, for numpy or torch."""

    def __init__(self, use_torch: bool) -> None:
        self.use_torch = use_torch
        if use_torch:
            import torch

            self._torch = torch

    def asarray(self, x: Array) -> Array:
        if self.use_torch:
            if not (x.is_floating_point()):
                x = x.to(self._torch.get_default_dtype())
            return x
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        return x

    def stack(self, xs: list[Array], axis: int) -> Array:
        if self.use_torch:
            return self._torch.stack(xs, dim=axis)
        return np.stack(xs, axis=axis)

    def concat(self, xs: list[Array], axis: int) -> Array:
        if self.use_torch:
            return self._torch.cat(xs, dim=axis)
        return np.concatenate(xs, axis=axis)

    def where(self, cond: Array, a: Array, b: Array) -> Array:
        if self.use_torch:
            return self._torch.where(cond, a, b)
        return np.where(cond, a, b)

    def sqrt(self, x: Array) -> Array:
        return self._torch.sqrt(x) if self.use_torch else np.sqrt(x)

    def sin(self, x: Array) -> Array:
        return self._torch.sin(x) if self.use_torch else np.sin(x)

    def cos(self, x: Array) -> Array:
        return self._torch.cos(x) if self.use_torch else np.cos(x)

    def atan2(self, y: Array, x: Array) -> Array:
        return self._torch.atan2(y, x) if self.use_torch else np.arctan2(y, x)

    def abs(self, x: Array) -> Array:
        return self._torch.abs(x) if self.use_torch else np.abs(x)

    def sum(self, x: Array, axis: int, keepdims: bool = False) -> Array:
        if self.use_torch:
            return self._torch.sum(x, dim=axis, keepdim=keepdims)
        return np.sum(x, axis=axis, keepdims=keepdims)

    def cross(self, a: Array, b: Array) -> Array:
        if self.use_torch:
            a, b = self._torch.broadcast_tensors(a, b)
            return self._torch.linalg.cross(a, b, dim=-1)
        return np.cross(a, b, axis=-1)

    def clip_min(self, x: Array, lo: float) -> Array:
        return self._torch.clamp(x, min=lo) if self.use_torch else np.maximum(x, lo)

    def argmax(self, x: Array, axis: int) -> Array:
        if self.use_torch:
            return self._torch.argmax(x, dim=axis)
        return np.argmax(x, axis=axis)

    def arange(self, n: int, like: Array) -> Array:
        if self.use_torch:
            return self._torch.arange(n, device=like.device)
        return np.arange(n)

    def eps(self, x: Array) -> float:
        if self.use_torch:
            return float(self._torch.finfo(x.dtype).eps)
        return float(np.finfo(x.dtype).eps)

    def any(self, x: Array) -> bool:
        return bool(x.any())


_NUMPY = _Backend(use_torch=False)
_TORCH: _Backend | None = None


def _backend(x: Array) -> _Backend:
    global _TORCH
    if is_torch(x):
        if _TORCH is None:
            _TORCH = _Backend(use_torch=True)
        return _TORCH
    return _NUMPY


def _prepare(x: Array, tail: tuple[int, ...], what: str, func: str) -> tuple[_Backend, Array]:
    """Pick the backend, convert to a floating array and check the trailing shape."""
    xp = _backend(x)
    x = xp.asarray(x)
    shape = tuple(x.shape)
    if len(shape) < len(tail) or shape[len(shape) - len(tail):] != tail:
        expected = '(..., ' + ', '.join(str(n) for n in tail) + ')'
        raise HandModelError(f'{func}: expected {what} of shape {expected}, got shape {shape}')
    return xp, x


def _safe_sqrt_of_positive(xp: _Backend, x_sq: Array, small: Array) -> Array:
    """sqrt(x_sq) where not ``small`` and 1 where ``small`` (keeps both where-branches finite)."""
    return xp.sqrt(xp.where(small, 1.0, x_sq))


def _half_angle_terms(xp: _Backend, theta_sq: Array) -> tuple[Array, Array]:
    """sin(t)/t and (1 - cos(t))/t**2 for t = sqrt(theta_sq), NaN-free near zero."""
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = _safe_sqrt_of_positive(xp, theta_sq, small)
    half_sinc = xp.sin(0.5 * theta) / theta  # sin(theta/2) / theta
    a_large = xp.sin(theta) / theta
    b_large = 2.0 * half_sinc * half_sinc  # (1 - cos t)/t^2 = 2 sin^2(t/2)/t^2, no cancellation
    t2 = theta_sq
    a_small = 1.0 - t2 / 6.0 + t2 * t2 / 120.0
    b_small = 0.5 - t2 / 24.0 + t2 * t2 / 720.0
    return xp.where(small, a_small, a_large), xp.where(small, b_small, b_large)


def axis_angle_to_matrix(axis_angle: Array) -> Array:
    """Rodrigues' formula.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    xp, aa = _prepare(axis_angle, (3,), 'axis-angle', 'axis_angle_to_matrix')
    x, y, z = aa[..., 0], aa[..., 1], aa[..., 2]
    theta_sq = x * x + y * y + z * z
    a, b = _half_angle_terms(xp, theta_sq)
    c = 1.0 - b * theta_sq  # cos(theta)
    # R = cos(t) I + (sin t / t) K + ((1 - cos t) / t^2) aa aa^T, K = skew(aa).
    rows = [
        xp.stack([c + b * x * x, b * x * y - a * z, b * x * z + a * y], -1),
        xp.stack([b * x * y + a * z, c + b * y * y, b * y * z - a * x], -1),
        xp.stack([b * x * z - a * y, b * y * z + a * x, c + b * z * z], -1),
    ]
    return xp.stack(rows, -2)  # (..., 3, 3)


def axis_angle_to_quaternion(axis_angle: Array) -> Array:
    """Axis-angle to unit quaternion (w, x, y, z) with w >= 0 for angles up to pi.

    Args:
        axis_angle: (..., 3) rotation vectors, radians.

    Returns:
        (..., 4) quaternions.
    """
    xp, aa = _prepare(axis_angle, (3,), 'axis-angle', 'axis_angle_to_quaternion')
    theta_sq = xp.sum(aa * aa, -1)
    small = theta_sq < _SMALL_ANGLE_SQ
    theta = _safe_sqrt_of_positive(xp, theta_sq, small)
    t2 = theta_sq
    w = xp.where(small, 1.0 - t2 / 8.0 + t2 * t2 / 384.0, xp.cos(0.5 * theta))
    s = xp.where(small, 0.5 - t2 / 48.0 + t2 * t2 / 3840.0, xp.sin(0.5 * theta) / theta)
    return xp.concat([w[..., None], aa * s[..., None]], -1)


def quaternion_to_axis_angle(quaternion: Array) -> Array:
    """Quaternion (w, x, y, z) to axis-angle with angle in [0, pi].

    ``q`` and ``-q`` give the same result; the input need not be normalised.

    Args:
        quaternion: (..., 4) quaternions, scalar first.

    Returns:
        (..., 3) rotation vectors, radians.
    """
    xp, q = _prepare(quaternion, (4,), 'quaternion', 'quaternion_to_axis_angle')
    q = xp.where(q[..., :1] < 0, -q, q)
    w, v = q[..., 0], q[..., 1:]
    s_sq = xp.sum(v * v, -1)
    norm_sq = s_sq + w * w
    small = s_sq < _SMALL_HALF_SINE_SQ * norm_sq
    s = _safe_sqrt_of_positive(xp, s_sq, small)
    factor_large = 2.0 * xp.atan2(s, w) / s
    # 2 atan(s / w) / s = 2 / w - 2 s^2 / (3 w^3) + O(s^4); w > 0 on this branch.
    w_safe = xp.where(small, w, 1.0)
    factor_small = 2.0 / w_safe - 2.0 * s_sq / (3.0 * w_safe * w_safe * w_safe)
    factor = xp.where(small, factor_small, factor_large)
    return v * factor[..., None]


def quaternion_to_matrix(quaternion: Array) -> Array:
    """Quaternion (w, x, y, z) to rotation matrix; the input is normalised first.

    Args:
        quaternion: (..., 4) quaternions, scalar first, nonzero.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    xp, q = _prepare(quaternion, (4,), 'quaternion', 'quaternion_to_matrix')
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    two_s = 2.0 / xp.sum(q * q, -1)
    rows = [
        xp.stack([1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)],
                 -1),
        xp.stack([two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)],
                 -1),
        xp.stack([two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)],
                 -1),
    ]
    return xp.stack(rows, -2)


def matrix_to_quaternion(matrix: Array) -> Array:
    """Rotation matrix to unit quaternion (w, x, y, z) with w >= 0, by Shepperd's method.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 4) quaternions.
    """
    xp, m = _prepare(matrix, (3, 3), 'rotation matrix', 'matrix_to_quaternion')
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4w^2, 4x^2, 4y^2, 4z^2 for a rotation matrix; they sum to 4, so the largest is >= 1.
    four_sq = xp.stack([
        1.0 + m00 + m11 + m22,
        1.0 + m00 - m11 - m22,
        1.0 - m00 + m11 - m22,
        1.0 - m00 - m11 + m22,
    ], -1)  # (..., 4)
    # The clamps only affect candidates that are never chosen; they keep gradients finite.
    two_abs = xp.sqrt(xp.clip_min(four_sq, 1e-12))  # 2|w|, 2|x|, 2|y|, 2|z|
    # Row k is 4 * q * q_k, i.e. q scaled by 2 * (2 q_k).
    candidates = xp.stack([
        xp.stack([four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        xp.stack([m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20], -1),
        xp.stack([m02 - m20, m10 + m01, four_sq[..., 2], m21 + m12], -1),
        xp.stack([m10 - m01, m02 + m20, m21 + m12, four_sq[..., 3]], -1),
    ], -2)  # (..., 4, 4)
    candidates = candidates / (2.0 * xp.clip_min(two_abs, 0.1))[..., None]
    best = xp.argmax(four_sq, -1)  # (...,)
    chosen = best[..., None] == xp.arange(4, four_sq)  # (..., 4) one-hot
    q = xp.sum(xp.where(chosen[..., None], candidates, 0.0), -2)  # (..., 4)
    return xp.where(q[..., :1] < 0, -q, q)


def matrix_to_axis_angle(matrix: Array) -> Array:
    """Rotation matrix to axis-angle with angle in [0, pi].

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 3) rotation vectors, radians.
    """
    _prepare(matrix, (3, 3), 'rotation matrix', 'matrix_to_axis_angle')
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def matrix_to_rot6d(matrix: Array) -> Array:
    """Continuous 6D representation: column 0 then column 1 of the matrix.

    Args:
        matrix: (..., 3, 3) rotation matrices.

    Returns:
        (..., 6) ``[R[:, 0], R[:, 1]]``.
    """
    xp, m = _prepare(matrix, (3, 3), 'rotation matrix', 'matrix_to_rot6d')
    return xp.concat([m[..., :, 0], m[..., :, 1]], -1)


def rot6d_to_matrix(rot6d: Array) -> Array:
    """6D representation to rotation matrix by Gram-Schmidt.

    Column 0 is the normalised first 3-vector, column 1 the normalised part of the second
    3-vector orthogonal to it, column 2 their cross product, so any input whose two vectors are
    nonzero and not parallel gives a proper rotation (degenerate inputs give a degenerate matrix).

    Args:
        rot6d: (..., 6) two 3-vectors, not necessarily orthonormal.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    xp, r = _prepare(rot6d, (6,), '6D rotation', 'rot6d_to_matrix')
    tiny = xp.eps(r)
    a1, a2 = r[..., 0:3], r[..., 3:6]
    b1 = a1 / xp.clip_min(xp.sqrt(xp.sum(a1 * a1, -1, keepdims=True)), tiny)
    a2 = a2 - xp.sum(b1 * a2, -1, keepdims=True) * b1
    b2 = a2 / xp.clip_min(xp.sqrt(xp.sum(a2 * a2, -1, keepdims=True)), tiny)
    b3 = xp.cross(b1, b2)
    return xp.stack([b1, b2, b3], -1)  # columns


def axis_angle_to_rot6d(axis_angle: Array) -> Array:
    """Axis-angle (..., 3) to 6D (..., 6)."""
    _prepare(axis_angle, (3,), 'axis-angle', 'axis_angle_to_rot6d')
    return matrix_to_rot6d(axis_angle_to_matrix(axis_angle))


def rot6d_to_axis_angle(rot6d: Array) -> Array:
    """6D (..., 6) to axis-angle (..., 3), through Gram-Schmidt."""
    _prepare(rot6d, (6,), '6D rotation', 'rot6d_to_axis_angle')
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d))


def quaternion_multiply(q1: Array, q2: Array) -> Array:
    """Hamilton product ``q1 * q2`` (apply ``q2`` first, then ``q1``), broadcasting.

    Args:
        q1: (..., 4) quaternions (w, x, y, z).
        q2: (..., 4) quaternions (w, x, y, z), same kind as ``q1``.

    Returns:
        (..., 4) products (not renormalised).
    """
    xp, a = _prepare(q1, (4,), 'quaternion q1', 'quaternion_multiply')
    xp2, b = _prepare(q2, (4,), 'quaternion q2', 'quaternion_multiply')
    if xp is not xp2:
        raise HandModelError('quaternion_multiply: q1 and q2 must both be numpy arrays or both '
                             f'torch tensors, got {type(q1).__name__} and {type(q2).__name__}')
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return xp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def rotation_between_vectors(a: Array, b: Array) -> Array:
    """Minimal rotation taking the direction of ``a`` to the direction of ``b``.

    The inputs are normalised first. Uses the half-way vector ``h = a + b``
    (``q = (a . h, a x h) / |h|``); when ``a`` and ``b`` are opposite to within rounding, returns
    the rotation by pi about an axis perpendicular to ``a`` (any such axis is minimal).

    Args:
        a: (..., 3) nonzero vectors.
        b: (..., 3) nonzero vectors, same kind as ``a``; broadcasts with ``a``.

    Returns:
        (..., 3, 3) rotation matrices ``R`` with ``R @ a_hat == b_hat``.
    """
    xp, a = _prepare(a, (3,), 'vector a', 'rotation_between_vectors')
    xp2, b = _prepare(b, (3,), 'vector b', 'rotation_between_vectors')
    if xp is not xp2:
        raise HandModelError('rotation_between_vectors: a and b must both be numpy arrays or both '
                             f'torch tensors, got {type(a).__name__} and {type(b).__name__}')
    norm_a = xp.sqrt(xp.sum(a * a, -1, keepdims=True))
    norm_b = xp.sqrt(xp.sum(b * b, -1, keepdims=True))
    if xp.any(norm_a == 0) or xp.any(norm_b == 0):
        raise HandModelError('rotation_between_vectors: zero-length input vector')
    a = a / norm_a
    b = b / norm_b
    h = a + b
    h_sq = xp.sum(h * h, -1, keepdims=True)
    # |h| < sqrt(eps): the half-way vector is lost in rounding; the error of the pi rotation is
    # |h|, that of the half-way formula about eps / |h|, so this is where they cross.
    opposite = h_sq < xp.eps(h)
    h_hat = h / xp.sqrt(xp.where(opposite, 1.0, h_sq))
    q_half = xp.concat([xp.sum(a * h_hat, -1, keepdims=True), xp.cross(a, h_hat)], -1)
    # A perpendicular axis: a x e, with e the basis vector least aligned with a.
    ax, ay, az = xp.abs(a[..., 0:1]), xp.abs(a[..., 1:2]), xp.abs(a[..., 2:3])
    zero, one = 0.0 * ax, 1.0 + 0.0 * ax  # shaped like ax
    use_x = (ax <= ay) & (ax <= az)
    use_y = ~use_x & (ay <= az)
    e = xp.concat([
        xp.where(use_x, one, zero),
        xp.where(use_y, one, zero),
        xp.where(~use_x & ~use_y, one, zero),
    ], -1)
    perp = xp.cross(a, e)
    perp = perp / xp.sqrt(xp.sum(perp * perp, -1, keepdims=True))
    q_pi = xp.concat([zero, perp], -1)
    q = xp.where(opposite, q_pi, q_half)
    return quaternion_to_matrix(q)


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Shortest-path spherical linear interpolation of unit quaternions (w, x, y, z).

    Args:
        q0: (..., 4) start quaternions.
        q1: (..., 4) end quaternions (their sign is flipped where that is the shorter way).
        alpha: (..., 1) or broadcastable interpolation weights, 0 gives ``q0``, 1 gives ``q1``.

    Returns:
        (..., 4) unit quaternions; nearly equal ends fall back to normalised linear blending.
    """
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0.0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    w0 = np.where(small, 1.0 - alpha, np.sin((1.0 - alpha) * theta) / safe)
    w1 = np.where(small, alpha, np.sin(alpha * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
