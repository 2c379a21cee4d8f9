"""Self-collision inside one robot hand, as a barrier residual of the retargeting solver.

Proxies. Every collision geometry of the hand (the ones :class:`HandCollisionModel` keeps:
URDF collision geometry, or the hulls of the visual meshes) gets one convex proxy, fitted once
per robot and cached:

* the palm (the geometries on the base link's body) becomes an oriented box: the principal
  axes of the geometry's points (a box's own axes) and their extents;
* every other geometry (finger links, fingertip spheres) becomes a capsule: a segment along the
  longest principal axis and the smallest radius that encloses all of the geometry's points
  (an outer approximation; a box link's capsule reaches its corners, a sphere is a capsule of
  zero length).

Pairs. The self-collision pairs of :class:`HandCollisionModel` (not one body, not parent and
child, not two links of one finger, not the palm and a finger's first two links, not touching
at the neutral pose) that involve the palm or the thumb: a finger against the palm, the thumb
against the palm and every other finger. Two non-thumb fingers are left out: their outer
capsules (a box link's capsule reaches its corners) meet in ordinary curls, and a barrier
between them made the distal joints jump between the two sides of a neighbour (DIP commands
at 18-55 rad/s on the synthetic pinch, fist and OK clips). Also dropped are the pairs whose
proxies come within the margin at the neutral pose (an outer proxy may touch where the real
geometry does not; such a pair would push the hand at rest) or penetrate in every one of a few
random poses (always touching). The dropped pairs are listed in
:attr:`SelfCollision.excluded`.

Distances, signed, metres (positive: the gap). Capsule-capsule: the closest points ``c1, c2``
of the two segments (closed form, clamped), ``d = |c2 - c1| - r1 - r2``, normal ``n`` from
``c1`` to ``c2``. Capsule-box: the capsule segment is sampled at points at most a radius apart
and each sample sphere's signed distance to the box is taken (``d = sdf_box(p) - r``, ``n`` the
box SDF's gradient at ``p``; ``c1 = c2 = p``): the union of the sample spheres lies inside the
capsule and falls short of it by at most 13 % of the radius between samples. All pairs are
computed at once with numpy.

Jacobians. With the closest points moving with their links, ``dd/du = n . (J_2(c2) -
J_1(c1))``, where ``J_k(p) = J_lin - [p]x J_ang`` is the Jacobian of the point of link ``k`` at
``p`` (Pinocchio's ``WORLD`` joint Jacobian over the joints supporting the link, times the map
from driven to model joints). For a sample point against a box, ``c1 = c2 = p`` and the
formula is the derivative of the box SDF under the relative motion of the two links. Finite
differences confirm it (``tests/test_self_collision.py``).

Barrier. :meth:`SelfCollision.residuals` returns, for every pair item closer than the margin,
``sqrt(weight) * (margin - d)`` and its Jacobian ``-sqrt(weight) dd/du`` (the
:data:`~handx_ros.retarget.retargeter.ExtraResiduals` form): a pair enters at zero, so the cost
is continuously differentiable, and a weight of a few hundred (squared metres of objective per
squared metre of intrusion) makes the margin nearly hard against targets that pull a link into
another. :class:`~handx_ros.retarget.retargeter.HandRetargeter` adds it to every frame unless
``RetargetConfig.self_collision`` is off.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import coal
import numpy as np
import pinocchio as pin

from handx_gen.errors import ConfigError, RetargetError
from handx_ros.retarget.robot import ChainKinematics

__all__ = ['Proxies', 'SelfCollision', 'fit_proxies', 'segment_distances', 'self_collision_for']

_CAPSULE, _BOX = 0, 1
_RANDOM_POSES = 8  # poses checked for pairs that always touch
_RANDOM_SEED = 0


@dataclasses.dataclass(frozen=True)
class Proxies:
    """Convex proxies of one hand's geometries, in the frames of the joints that carry them.

    Attributes:
        names: (g,) geometry names.
        joints: (g,) Pinocchio joint of each geometry.
        is_box: (g,) whether the proxy is a box (else a capsule).
        a, b: (g, 3) capsule segment end points (a box's centre is ``a``).
        radius: (g,) capsule radius (0 for a box).
        box_axes: (g, 3, 3) box axes as columns (identity for a capsule).
        box_half: (g, 3) box half extents (0 for a capsule).
    """

    names: tuple[str, ...]
    joints: np.ndarray
    is_box: np.ndarray
    a: np.ndarray
    b: np.ndarray
    radius: np.ndarray
    box_axes: np.ndarray
    box_half: np.ndarray


def _shape_points(shape: coal.CollisionGeometry) -> tuple[np.ndarray, float]:
    """Points (k, 3) in the geometry frame whose convex hull, swept by the returned radius,
    covers the shape."""
    if isinstance(shape, coal.Box):
        h = np.asarray(shape.halfSide)
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
        return corners * h, 0.0
    if isinstance(shape, coal.Sphere):
        return np.zeros((1, 3)), float(shape.radius)
    if isinstance(shape, coal.Capsule):
        return np.array([[0, 0, -shape.halfLength], [0, 0, shape.halfLength]]), float(
            shape.radius)
    if isinstance(shape, coal.ConvexBase):
        return np.array(shape.points()), 0.0
    shape.computeLocalAABB()
    box = shape.aabb_local
    lo, hi = np.asarray(box.min_), np.asarray(box.max_)
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                     for z in (lo[2], hi[2])]), 0.0


def _principal(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (3,), axes (3, 3) as columns by decreasing extent, half extents (3,) of the
    principal-axes bounding box of ``points`` (k, 3)."""
    mean = points.mean(axis=0)
    if points.shape[0] < 2:
        return mean, np.eye(3), np.zeros(3)
    _, axes = np.linalg.eigh(np.cov((points - mean).T) + 1e-12 * np.eye(3))
    proj = (points - mean) @ axes  # (k, 3)
    lo, hi = proj.min(axis=0), proj.max(axis=0)
    centre = mean + axes @ (0.5 * (lo + hi))
    half = 0.5 * (hi - lo)
    order = np.argsort(-half)
    axes = axes[:, order]
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    return centre, axes, half[order]


def fit_proxies(collision_model) -> Proxies:
    """Fit one proxy per geometry of a :class:`HandCollisionModel` (see the module docstring).
    """
    model = collision_model.model
    geom_model = collision_model._geom_model
    base_joint = model.frames[model.getFrameId(collision_model.chain.reference_frame)].parentJoint
    g = len(geom_model.geometryObjects)
    joints = np.zeros(g, dtype=int)
    is_box = np.zeros(g, dtype=bool)
    a, b = np.zeros((g, 3)), np.zeros((g, 3))
    radius, box_half = np.zeros(g), np.zeros((g, 3))
    box_axes = np.broadcast_to(np.eye(3), (g, 3, 3)).copy()
    for k, obj in enumerate(geom_model.geometryObjects):
        joints[k] = obj.parentJoint
        points, swept = _shape_points(obj.geometry)
        M = obj.placement
        points = points @ np.asarray(M.rotation).T + np.asarray(M.translation)  # joint frame
        centre, axes, half = _principal(points)
        if obj.parentJoint == base_joint:
            is_box[k] = True
            a[k] = b[k] = centre
            box_axes[k], box_half[k] = axes, half + swept
            continue
        axis = axes[:, 0]
        rel = points - centre
        along = rel @ axis  # (k,)
        r = float(np.max(np.linalg.norm(rel - along[:, None] * axis, axis=1))) if len(
            points) > 1 else 0.0
        # The segment stops a radius short of the ends, but never past the centre.
        reach = max(float(half[0]) - r, 0.0)
        a[k], b[k] = centre - reach * axis, centre + reach * axis
        ends = np.linalg.norm(rel - np.clip(along, -reach, reach)[:, None] * axis, axis=1)
        radius[k] = float(ends.max()) + swept  # encloses every point
    return Proxies(names=tuple(collision_model.geometry_names), joints=joints, is_box=is_box,
                   a=a, b=b, radius=radius, box_axes=box_axes, box_half=box_half)


# ----------------------------------------------------------------------------- distances

def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross products (e, 3) (``np.cross`` costs more on small arrays)."""
    return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1],
                     a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


def segment_distances(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Closest points (e, 3), (e, 3) of segments ``p1 q1`` and ``p2 q2`` (each (e, 3))."""
    eps = 1e-12
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = np.einsum('ij,ij->i', d1, d1)
    e = np.einsum('ij,ij->i', d2, d2)
    f = np.einsum('ij,ij->i', d2, r)
    c = np.einsum('ij,ij->i', d1, r)
    bb = np.einsum('ij,ij->i', d1, d2)
    denom = a * e - bb * bb
    s = np.where(denom > eps * np.maximum(a * e, eps),
                 np.clip((bb * f - c * e) / np.maximum(denom, eps), 0.0, 1.0), 0.0)
    s = np.where(e > eps, s, np.clip(-c / np.maximum(a, eps), 0.0, 1.0))  # p2 q2 a point
    s = np.where(a > eps, s, 0.0)
    t = np.where(e > eps, (bb * s + f) / np.maximum(e, eps), 0.0)
    low, high = t < 0.0, t > 1.0
    t = np.clip(t, 0.0, 1.0)
    s = np.where(low, np.clip(-c / np.maximum(a, eps), 0.0, 1.0), s)
    s = np.where(high, np.clip((bb - c) / np.maximum(a, eps), 0.0, 1.0), s)
    s = np.where(a > eps, s, 0.0)
    return p1 + s[:, None] * d1, p2 + t[:, None] * d2


def _box_sdf(p: np.ndarray, centre: np.ndarray, axes: np.ndarray, half: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (e,) of points ``p`` (e, 3) to boxes (``centre`` (e, 3), ``axes``
    (e, 3, 3) as columns, ``half`` (e, 3)) and the SDF gradients (e, 3), in world axes."""
    local = np.einsum('eji,ej->ei', axes, p - centre)  # (e, 3)
    q = np.abs(local) - half
    outer = np.maximum(q, 0.0)
    out_norm = np.sqrt(np.einsum('ij,ij->i', outer, outer))
    inside = q.max(axis=1)
    sign = np.where(local < 0.0, -1.0, 1.0)
    grad = np.where((out_norm > 1e-12)[:, None], outer / np.maximum(out_norm, 1e-12)[:, None],
                    np.eye(3)[np.argmax(q, axis=1)]) * sign
    d = out_norm + np.minimum(inside, 0.0)
    return d, np.einsum('eij,ej->ei', axes, grad)


class SelfCollision:
    """Self-collision proxies, pairs, distances and barrier residuals of one hand.

    Args:
        chain: The hand's kinematic chain in its base-link frame (:func:`hand_kinematics`).
        margin_m: Pairs closer than this add a residual (> 0).
        weight: Barrier weight (> 0).
        thumb_tip: The thumb tip frame (the hand's ``thumb_tip`` keypoint): the links that
            carry it are checked against the other fingers (``None``: palm pairs only).

    Attributes:
        proxies: The fitted :class:`Proxies`.
        capsule_pairs: (p, 2) proxy indices of the capsule-capsule pairs checked.
        box_pairs: (q, 2) proxy indices (capsule, box) of the capsule-box pairs checked.
        excluded: ``(name, name) -> reason`` of the collision model's pairs dropped here.

    Raises:
        ConfigError: A margin or weight that is not a finite number > 0.
        RobotModelError: The hand has no collision geometry.
    """

    def __init__(self, chain: ChainKinematics, margin_m: float = 0.003,
                 weight: float = 100.0, thumb_tip: str | None = None) -> None:
        for name, value in (('margin_m', margin_m), ('weight', weight)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f'self-collision {name} must be a finite number > 0, got '
                                  f'{value!r}')
        from handx_ros.retarget.collision import HandCollisionModel

        self.chain = chain
        self.margin_m = float(margin_m)
        self._thumb_tip = thumb_tip
        self._scale = math.sqrt(weight)
        self.model = chain.model
        self._data = self.model.createData()
        collision = HandCollisionModel(chain)
        self.proxies = fit_proxies(collision)
        P = self.proxies
        supports = np.zeros((self.model.njoints, self.model.nv))
        for joint in range(1, self.model.njoints):
            for k in self.model.supports[joint][1:]:
                idx_v, nv = self.model.joints[k].idx_v, self.model.joints[k].nv
                supports[joint, idx_v:idx_v + nv] = 1.0
        self._support = supports[P.joints]  # (g, nv)
        self._nv_to_u = chain.M_v_u  # (nv, n)
        self._joint_ids = [int(j) for j in np.unique(P.joints)]
        self._slot = np.searchsorted(self._joint_ids, P.joints)  # (g,) -> unique joint slot
        # Capsule samples for the capsule-box pairs: spaced at most a radius apart.
        length = np.linalg.norm(P.b - P.a, axis=1)
        counts = np.where(P.is_box, 0, 1 + np.ceil(length / np.maximum(P.radius, 1e-4)))
        counts = counts.astype(int)
        self._sample_of = np.repeat(np.arange(len(P.names)), counts)  # (S,) capsule index
        self._sample_t = np.concatenate([np.linspace(0.0, 1.0, c) if c > 1 else np.zeros(c)
                                         for c in counts]) if counts.sum() else np.zeros(0)
        thumb = self._thumb_geometries()
        all_caps, all_boxes = [], []
        for i, j in collision.self_pairs:
            if P.is_box[i] and P.is_box[j]:
                continue
            if not (P.is_box[i] or P.is_box[j] or thumb[i] or thumb[j]):
                continue  # finger against finger: see the module docstring
            if P.is_box[i]:
                i, j = j, i
            (all_boxes if P.is_box[j] else all_caps).append((int(i), int(j)))
        self.capsule_pairs = np.array(all_caps, dtype=int).reshape(-1, 2)
        self.box_pairs = np.array(all_boxes, dtype=int).reshape(-1, 2)
        self._index_items()
        self.excluded: dict[tuple[str, str], str] = {}
        self._prune()

    def __init_shared__(self, chain: ChainKinematics, weight: float) -> None:
        """Rebind a copy to ``chain`` (same URDF and hand) with its own kinematics data."""
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight > 0):
            raise ConfigError(f'self-collision weight must be a finite number > 0, got '
                              f'{weight!r}')
        self.chain = chain
        self.model = chain.model
        self._data = self.model.createData()
        self._nv_to_u = chain.M_v_u
        self._scale = math.sqrt(weight)

    # ------------------------------------------------------------------------- set-up

    def _thumb_geometries(self) -> np.ndarray:
        """(g,) whether each geometry moves with the thumb (its joint carries the thumb tip
        frame, or lies below such a joint)."""
        tip = self._thumb_tip
        if tip is None:
            return np.zeros(len(self.proxies.names), dtype=bool)
        joint = self.model.frames[self.model.getFrameId(tip)].parentJoint
        thumb_joints = set(self.model.supports[joint]) - set(
            self.model.supports[self.model.frames[self.model.getFrameId(
                self.chain.reference_frame)].parentJoint])
        return np.array([int(j) in thumb_joints for j in self.proxies.joints])


    def _index_items(self) -> None:
        """Flatten the pairs into items: one per capsule pair, one per (sample, box)."""
        samples = [np.flatnonzero(self._sample_of == i) for i in range(len(self.proxies.names))]
        rows = [(s, j) for i, j in self.box_pairs for s in samples[i]]
        self._box_items = np.array(rows, dtype=int).reshape(-1, 2)  # (sample, box)
        self._box_item_pair = np.concatenate(
            [np.full(len(samples[i]), k) for k, (i, _) in enumerate(self.box_pairs)]
        ).astype(int) if len(self.box_pairs) else np.zeros(0, dtype=int)

    def _prune(self) -> None:
        """Drop the pairs within the margin at the neutral pose or touching in every random
        pose (see the module docstring)."""
        chain = self.chain
        rng = np.random.default_rng(_RANDOM_SEED)
        lower, upper = chain.lower, chain.upper
        poses = [chain.neutral()] + [rng.uniform(lower, upper) for _ in range(_RANDOM_POSES)]
        cap_d, box_d = [], []
        for u in poses:
            d = self._items(u)[0]
            nc = len(self.capsule_pairs)
            cap_d.append(d[:nc])
            box_min = np.full(len(self.box_pairs), np.inf)
            np.minimum.at(box_min, self._box_item_pair, d[nc:])
            box_d.append(box_min)
        cap_d, box_d = np.array(cap_d), np.array(box_d)  # (poses, p), (poses, q)
        names = self.proxies.names

        def keep(pairs: np.ndarray, d: np.ndarray) -> np.ndarray:
            at_rest = d[0] < self.margin_m
            always = np.all(d[1:] < 0.0, axis=0)
            for (i, j), rest, stuck in zip(pairs, at_rest, always, strict=True):
                if rest or stuck:
                    self.excluded[(names[i], names[j])] = ('proxy_neutral_contact' if rest
                                                           else 'proxy_always_contact')
            return pairs[~(at_rest | always)]

        self.capsule_pairs = keep(self.capsule_pairs, cap_d) if len(cap_d[0]) else \
            self.capsule_pairs
        self.box_pairs = keep(self.box_pairs, box_d) if len(box_d[0]) else self.box_pairs
        self._index_items()

    # ------------------------------------------------------------------------- distances

    def _poses(self, u: np.ndarray, jacobians: bool) -> tuple[np.ndarray, np.ndarray]:
        q = self.chain.full_q(u)
        if jacobians:
            pin.computeJointJacobians(self.model, self._data, q)
        else:
            pin.forwardKinematics(self.model, self._data, q)
        oMi = self._data.oMi
        H = np.array([oMi[j].homogeneous for j in self._joint_ids])[self._slot]  # (g, 4, 4)
        return H[:, :3, :3], H[:, :3, 3]

    def _items(self, u: np.ndarray, jacobians: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                          np.ndarray]:
        """Signed distances (e,), closest points on the first and second proxies (e, 3),
        normals (e, 3) and the proxies (e,), (e,) of every pair item, in the model's world."""
        P = self.proxies
        R, t = self._poses(u, jacobians)
        a = np.einsum('gij,gj->gi', R, P.a) + t  # (g, 3)
        b = np.einsum('gij,gj->gi', R, P.b) + t
        i, j = self.capsule_pairs[:, 0], self.capsule_pairs[:, 1]
        c1, c2 = segment_distances(a[i], b[i], a[j], b[j])
        diff = c2 - c1
        dist = np.sqrt(np.einsum('ij,ij->i', diff, diff))
        n_cap = np.where((dist > 1e-12)[:, None], diff / np.maximum(dist, 1e-12)[:, None],
                         np.array([1.0, 0.0, 0.0]))
        d_cap = dist - P.radius[i] - P.radius[j]
        s, k = self._box_items[:, 0], self._box_items[:, 1]
        cap = self._sample_of[s]
        tt = self._sample_t[s][:, None]
        p = (1.0 - tt) * a[cap] + tt * b[cap]  # (e, 3) sample centres
        d_box, n_box = _box_sdf(p, a[k], R[k] @ P.box_axes[k], P.box_half[k])
        # The SDF gradient points from the box (second) to the sample (first): negated, the
        # normal points from the first proxy to the second, as for the capsule pairs.
        return (np.concatenate([d_cap, d_box - P.radius[cap]]),
                np.concatenate([c1, p]), np.concatenate([c2, p]),
                np.concatenate([n_cap, -n_box]),
                np.concatenate([i, cap]), np.concatenate([j, k]))

    def _check_u(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.chain.nu,) or not np.all(np.isfinite(u)):
            raise RetargetError(f'self-collision: expected {self.chain.nu} finite joint '
                                f'angles, got shape {u.shape}')
        return u

    def distances(self, u: np.ndarray) -> np.ndarray:
        """Signed distances (p + q,) of the checked pairs at ``u``: the capsule pairs, then
        the capsule-box pairs (the minimum over each capsule's samples)."""
        d = self._items(self._check_u(u))[0]
        nc = len(self.capsule_pairs)
        box_min = np.full(len(self.box_pairs), np.inf)
        np.minimum.at(box_min, self._box_item_pair, d[nc:])
        return np.concatenate([d[:nc], box_min])

    @property
    def pair_names(self) -> list[tuple[str, str]]:
        """Proxy names of the checked pairs, in :meth:`distances` order."""
        names = self.proxies.names
        return [(names[i], names[j]) for i, j in (*self.capsule_pairs, *self.box_pairs)]

    def min_distance(self, u: np.ndarray) -> float:
        """The smallest signed distance of the checked pairs (``+inf`` if none)."""
        d = self.distances(u)
        return float(d.min()) if d.size else math.inf

    def distances_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distances (e,) of every pair item (capsule pairs, then capsule samples
        against boxes) and their Jacobian (e, n) with respect to ``u``."""
        d, c1, c2, n, first, second = self._items(self._check_u(u), jacobians=True)
        return d, self._gradient(c1, c2, n, first, second)

    def _gradient(self, c1: np.ndarray, c2: np.ndarray, n: np.ndarray, first: np.ndarray,
                  second: np.ndarray) -> np.ndarray:
        """``n . (J_second(c2) - J_first(c1))`` (e, n); the joint Jacobians must be current."""
        J = self._data.J  # (6, nv)
        w2 = np.concatenate([n, _cross(c2, n)], axis=1) @ J  # (e, nv)
        w1 = np.concatenate([n, _cross(c1, n)], axis=1) @ J
        g_v = w2 * self._support[second] - w1 * self._support[first]
        return g_v @ self._nv_to_u

    # ------------------------------------------------------------------------- barrier

    def residuals(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sqrt(weight) * (margin - d)`` (e,) of the items closer than the margin and their
        Jacobian (e, n): an :data:`~handx_ros.retarget.retargeter.ExtraResiduals`."""
        # The barrier is active on most frames (a thumb resting near the palm): the joint
        # Jacobians come with the forward kinematics.
        d, c1, c2, n, first, second = self._items(u, jacobians=True)
        active = d < self.margin_m
        if not active.any():
            return np.zeros(0), np.zeros((0, self.chain.nu))
        grad = self._gradient(c1[active], c2[active], n[active], first[active],
                              second[active])
        return self._scale * (self.margin_m - d[active]), -self._scale * grad

    def combined(self, extra: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
                 ) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """The barrier residuals followed by ``extra``'s (when given)."""
        if extra is None:
            return self.residuals

        def residuals(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r1, A1 = self.residuals(u)
            r2, A2 = extra(u)
            return np.concatenate([r1, r2]), np.concatenate([A1, A2], axis=0)

        return residuals


_CACHE: dict[tuple, SelfCollision] = {}


def self_collision_for(chain: ChainKinematics, margin_m: float, weight: float,
                       thumb_tip: str | None = None) -> SelfCollision:
    """A :class:`SelfCollision` for ``chain``; the proxies and pairs are fitted once per URDF
    file, hand and margin and shared (each call gets its own kinematics data)."""
    path = chain.urdf.path
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1
    key = (str(path), mtime, chain.reference_frame, tuple(chain.joint_names), chain.model.nq,
           float(margin_m), thumb_tip)
    template = _CACHE.get(key)
    if template is None:
        if len(_CACHE) >= 16:
            _CACHE.pop(next(iter(_CACHE)))
        template = _CACHE[key] = SelfCollision(chain, margin_m, weight, thumb_tip)
    instance = copy.copy(template)
    instance.__init_shared__(chain, weight)
    return instance
