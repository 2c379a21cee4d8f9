"""Self-collision inside one robot hand, as a barrier residual of the retargeting solver.

Proxies. Every collision geometry of the hand (the ones :class:`HandCollisionModel` keeps:
URDF collision geometry, or the hulls of the visual meshes) gets convex proxies, fitted once
per robot and cached:

* the palm (the geometries on the base link's body) becomes an oriented box: the principal
  axes of the geometry's points (a box's own axes) and their extents;
* every other geometry (finger links, fingertip spheres) becomes a capsule: a segment along the
  longest principal axis and the smallest radius that encloses all of the geometry's points
  (an outer approximation; a box link's capsule reaches its corners, a sphere is a capsule of
  zero length);
* every geometry also gets its own box for the finger pairs below: a URDF box as it is, else
  the principal-axes box of its points, rounded by the shape's radius (a sphere is a point
  rounded by its radius).

Pairs. The self-collision pairs of :class:`HandCollisionModel` (not one body, not parent and
child, not two links of one finger, not the palm and a finger's first two links, not touching
at the neutral pose) that involve the palm or the thumb: a finger against the palm, the thumb
against the palm and every other finger. Also dropped are the pairs whose proxies come within
the margin at the neutral pose (an outer proxy may touch where the real geometry does not;
such a pair would push the hand at rest) or penetrate in every one of a few random poses
(always touching). The dropped pairs are listed in :attr:`SelfCollision.excluded`.

Finger pairs. Two non-thumb fingers are not capsule pairs: their outer capsules are far fatter
than the links (the Allegro's 19.6 x 27.5 x 54 mm finger boxes get radius 24 mm capsules, so
neighbours overlap at rest), and a barrier between them made the distal joints jump between
the two sides of a neighbour (DIP commands at 18-55 rad/s on the synthetic pinch, fist and OK
clips). Left out, neighbours met sideways in simulation: Allegro corpus clips whose hands
never touch failed joint tracking on the spread joints (p95 errors up to 0.33 rad, fingers'
links against their neighbours'). So the links of two different non-thumb fingers are
checked as boxes (the proxies' own boxes, accurate for box links), and only through the
fingers' spread joints: a finger's first joint below the palm, the one that moves it toward
its neighbours. The flexion joints get no push from these pairs. A pair is kept only where a
spread joint can move one finger toward the other: its axis at least 30 degrees off the line
between the two fingers (at the neutral pose). Hands whose first finger joints are flexion
joints (the Inspire's, the G1's: their axes run along the line of the fingers, and mimic
joints follow them) keep no finger pairs and are unchanged; on the Allegro the spread joints
are the index, middle and ring abduction joints (``joint_0.0``, ``4.0``, ``8.0``). Finger pairs
within the margin at the neutral pose or always touching are dropped as above.

Distances, signed, metres (positive: the gap). Capsule-capsule: the closest points ``c1, c2``
of the two segments (closed form, clamped), ``d = |c2 - c1| - r1 - r2``, normal ``n`` from
``c1`` to ``c2``. Capsule-box: the capsule segment is sampled at points at most a radius apart
and each sample sphere's signed distance to the box is taken (``d = sdf_box(p) - r``, ``n`` the
box SDF's gradient at ``p``; ``c1 = c2 = p``): the union of the sample spheres lies inside the
capsule and falls short of it by at most 13 % of the radius between samples. Box-box (finger
pairs): each box is sampled at its corners, edge midpoints and face centres (26 points) and
each sample's signed distance to the other box is taken, both ways (``c1 = c2 = p`` again, the
two roundings subtracted). The smallest is an upper bound of the distance, exact where a
corner, edge midpoint or face is nearest (side by side, or a corner against a face); on random
Allegro poses with a finger pair within 1 cm it exceeds coal's exact distance by 2 mm at the
99th percentile (4 mm at most, edges crossing). All pairs are computed at once with numpy; the
finger pairs go through a separating-axis test first (the gap between the two boxes'
projections on either box's axes or on the line between their centres bounds their distance
from below), which most of them do not pass.

Jacobians. With the closest points moving with their links, ``dd/du = n . (J_2(c2) -
J_1(c1))``, where ``J_k(p) = J_lin - [p]x J_ang`` is the Jacobian of the point of link ``k`` at
``p`` (Pinocchio's ``WORLD`` joint Jacobian over the joints supporting the link, times the map
from driven to model joints). For a sample point against a box, ``c1 = c2 = p`` and the
formula is the derivative of the box SDF under the relative motion of the two links. Finite
differences confirm it (``tests/test_self_collision.py``). A finger pair's barrier uses the
columns of ``J_k`` of the spread joints alone.

Barrier. :meth:`SelfCollision.residuals` returns, for every pair item closer than the margin,
``sqrt(weight) * (margin - d)`` and its Jacobian ``-sqrt(weight) dd/du`` (the
:data:`~handx_ros.retarget.retargeter.ExtraResiduals` form): a pair enters at zero, so the cost
is continuously differentiable, and a weight of a few hundred (squared metres of objective per
squared metre of intrusion) makes the margin nearly hard against targets that pull a link into
another. :class:`~handx_ros.retarget.retargeter.HandRetargeter` adds it to every frame unless
``RetargetConfig.self_collision`` is off.

Cost. The barrier is evaluated at every solver iteration, on arrays of a few dozen items, where
numpy's cost is per call rather than per item; so it does only what the items within the
margin need. A capsule pair is computed only where the bounding spheres of its two capsules
(about the segment midpoints, radius half the length plus the capsule's) come within the
margin: on the Allegro benchmark clips four evaluations in five have none. The box SDF's
gradient is taken for the samples within the margin alone, and a sample against a box
(``c1 = c2``) takes one point Jacobian. The rows at a configuration are kept (the last
few): a frame's solve starts where the last one ended, and its first evaluation is free.

Finger pairs in the solver. A finger pair's distance also moves with the flexion joints, which
its Jacobian leaves out, so where such a pair is active the solver's model of the cost
disagrees with the cost: with the box samples taken at every iteration, the synthetic benchmark
clips took 23 % more iterations, and the self-collision time nearly doubled. Inside a frame's
velocity bound the solver therefore takes the finger pairs linearised at the frame's start
(:meth:`SelfCollision.combined` with ``linear_fingers``): the items within the margin plus
5 mm there, ``d(u) = d0 + G (u - u0)`` with ``G`` through the spread joints, a model the solver
follows exactly. What the flexion joints do inside the frame reaches these pairs a frame later.
The spread joints may turn further in one frame than the 5 mm allow (0.23 rad on the Allegro,
centimetres at a fingertip): where the solve ends with an item penetrating that was not in the
model, the item is added, linearised at the frame's start like the others (inside a box the
nearest face may be the far one), and the frame is solved again (:meth:`SolveResiduals.refine`;
that check's answer is kept for the next frame, which starts where this one ended unless the
solver extrapolates). A clip's first frame, which may go anywhere, takes the finger pairs
exact at every iteration.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import coal
import numpy as np
import pinocchio as pin

from handx_gen.errors import ConfigError
from handx_ros.retarget.robot import ChainKinematics

__all__ = ['Proxies', 'SelfCollision', 'SolveResiduals', 'fit_proxies', 'segment_distances',
           'self_collision_for']

_CAPSULE, _BOX = 0, 1
_X_AXIS = np.array([1.0, 0.0, 0.0])  # the normal of two coincident closest points
_EYE = np.eye(3)
_RANDOM_POSES = 8  # poses checked for pairs that always touch
_RANDOM_SEED = 0
# Box surface samples of the finger-finger pairs, in half extents: corners, edge midpoints and
# face centres.
_BOX_SAMPLES = np.array([(x, y, z) for x in (-1, 0, 1) for y in (-1, 0, 1) for z in (-1, 0, 1)
                         if (x, y, z) != (0, 0, 0)], dtype=float)  # (26, 3)
_BOTH_WAYS = np.array([0, 1])  # a pair's two directions, 2p and 2p + 1
_LINEAR_SLACK_M = 0.005  # a solve linearises the finger items within the margin plus this
_SIDEWAYS = 0.5  # a spread joint moves a finger toward another: sin(axis, direction) above
_ROWS_KEPT = 4  # barrier rows kept by configuration (a solve's last points)
_SPHERE_SLACK_M = 1e-6  # the capsule pairs' sphere test errs on the near side by this


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
        link_centre: (g, 3) centre of the geometry's own box proxy (the finger-finger pairs
            use it): a URDF box exactly, else the principal-axes box of the shape's points.
        link_axes: (g, 3, 3) that box's axes as columns, by decreasing extent.
        link_half: (g, 3) its half extents.
        link_round: (g,) radius the box is rounded by (a sphere: a point rounded by its
            radius; 0 for a box or mesh).
    """

    names: tuple[str, ...]
    joints: np.ndarray
    is_box: np.ndarray
    a: np.ndarray
    b: np.ndarray
    radius: np.ndarray
    box_axes: np.ndarray
    box_half: np.ndarray
    link_centre: np.ndarray
    link_axes: np.ndarray
    link_half: np.ndarray
    link_round: np.ndarray


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
    link_centre, link_half, link_round = np.zeros((g, 3)), np.zeros((g, 3)), np.zeros(g)
    link_axes = box_axes.copy()
    for k, obj in enumerate(geom_model.geometryObjects):
        joints[k] = obj.parentJoint
        points, swept = _shape_points(obj.geometry)
        M = obj.placement
        points = points @ np.asarray(M.rotation).T + np.asarray(M.translation)  # joint frame
        centre, axes, half = _principal(points)
        link_centre[k], link_axes[k], link_half[k] = _link_box(obj.geometry, M, centre, axes,
                                                               half)
        link_round[k] = swept
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
                   a=a, b=b, radius=radius, box_axes=box_axes, box_half=box_half,
                   link_centre=link_centre, link_axes=link_axes, link_half=link_half,
                   link_round=link_round)


def _link_box(shape: coal.CollisionGeometry, placement: pin.SE3, centre: np.ndarray,
              axes: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (3,), axes (3, 3) and half extents (3,) of a geometry's own box in its joint
    frame: a URDF box as it is (a box with two equal sides has no unique principal axes, and
    the principal box of a rotated square is larger), else the principal-axes box given."""
    if not isinstance(shape, coal.Box):
        return centre, axes, half
    h = np.asarray(shape.halfSide, dtype=float)
    order = np.argsort(-h, kind='stable')
    R = np.asarray(placement.rotation)[:, order]
    if np.linalg.det(R) < 0:
        R[:, 2] *= -1.0
    return np.asarray(placement.translation, dtype=float).copy(), R, h[order]


# ----------------------------------------------------------------------------- distances

_NEXT, _AFTER = np.array([1, 2, 0]), np.array([2, 0, 1])  # the axes after each axis


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross products (e, 3) (``np.cross`` costs more on small arrays)."""
    return (a.take(_NEXT, axis=1) * b.take(_AFTER, axis=1)
            - a.take(_AFTER, axis=1) * b.take(_NEXT, axis=1))


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
    a_safe = np.maximum(a, eps)
    e_long, a_long = e > eps, a > eps
    # _unit(x) is np.clip(x, 0, 1) without np.clip's wrapper, which costs more than the work
    on_p1 = _unit(-c / a_safe)  # p1 q1's point closest to p2
    s = np.where(denom > eps * np.maximum(a * e, eps),
                 _unit((bb * f - c * e) / np.maximum(denom, eps)), 0.0)
    s = np.where(e_long, s, on_p1)  # p2 q2 a point
    s = np.where(a_long, s, 0.0)
    t = np.where(e_long, (bb * s + f) / np.maximum(e, eps), 0.0)
    low, high = t < 0.0, t > 1.0
    t = _unit(t)
    s = np.where(low, on_p1, s)
    s = np.where(high, _unit((bb - c) / a_safe), s)
    s = np.where(a_long, s, 0.0)
    return p1 + s[:, None] * d1, p2 + t[:, None] * d2


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [0, 1]."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def _box_sdf_local(p: np.ndarray, centre: np.ndarray, axes: np.ndarray, half: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Points ``p`` (e, 3) in the frames of boxes (``centre`` (e, 3), ``axes`` (e, 3, 3) as
    columns, ``half`` (e, 3)), and their signed distances (e,) to the boxes; the gradients are
    :func:`_box_gradient_local` of those points, in the boxes' axes."""
    local = np.einsum('eji,ej->ei', axes, p - centre)  # (e, 3)
    q = np.abs(local) - half
    outer = np.maximum(q, 0.0)
    out_norm = np.sqrt(np.einsum('ij,ij->i', outer, outer))
    inside = np.maximum(np.maximum(q[:, 0], q[:, 1]), q[:, 2])  # q.max(axis=1), faster
    return local, out_norm + np.minimum(inside, 0.0)


def _box_sdf(p: np.ndarray, centre: np.ndarray, axes: np.ndarray, half: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (e,) of points ``p`` (e, 3) to boxes (``centre`` (e, 3), ``axes``
    (e, 3, 3) as columns, ``half`` (e, 3)) and the SDF gradients (e, 3), in world axes."""
    local, d = _box_sdf_local(p, centre, axes, half)
    return d, np.einsum('eij,ej->ei', axes, _box_gradient_local(local, half))


def _box_distance_local(local: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Signed distances (...) of points given in their boxes' frames (..., 3) to boxes of half
    extents ``half`` (..., 3): :func:`_box_sdf_local` without the frames."""
    q = np.abs(local) - half
    o = np.maximum(q, 0.0)
    o *= o
    # Component by component: numpy reduces over a last axis of 3 several times slower.
    return (np.sqrt(o[..., 0] + o[..., 1] + o[..., 2])
            + np.minimum(np.maximum(np.maximum(q[..., 0], q[..., 1]), q[..., 2]), 0.0))


def _box_gradient_local(local: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Gradients (e, 3) of :func:`_box_distance_local` at points (e, 3), in the boxes' frames
    (outside: towards the point from its nearest box point; inside: the nearest face's
    normal)."""
    if not len(local):
        return np.zeros((0, 3))
    q = np.abs(local) - half
    outer = np.maximum(q, 0.0)
    out_norm = np.sqrt(np.einsum('ij,ij->i', outer, outer))
    sign = np.where(local < 0.0, -1.0, 1.0)
    return np.where((out_norm > 1e-12)[:, None], outer / np.maximum(out_norm, 1e-12)[:, None],
                    _EYE[np.argmax(q, axis=1)]) * sign


def _box_samples(half: np.ndarray) -> np.ndarray:
    """The distinct surface samples (s, 3) of a box of half extents ``half`` (3,) in its frame
    (26 for a solid box, fewer when it is flat, a segment or a point)."""
    return np.unique(np.round(_BOX_SAMPLES * half, 12), axis=0)


class SelfCollision:
    """Self-collision proxies, pairs, distances and barrier residuals of one hand.

    Args:
        chain: The hand's kinematic chain in its base-link frame (:func:`hand_kinematics`).
        margin_m: Pairs closer than this add a residual (> 0).
        weight: Barrier weight (> 0).
        thumb_tip: The thumb tip frame (the hand's ``thumb_tip`` keypoint): the links that
            carry it are checked against the other fingers (``None``: palm pairs only).
        fingers: Check the links of two non-thumb fingers against each other, through the
            fingers' spread joints (the finger pairs of the module docstring).

    Attributes:
        proxies: The fitted :class:`Proxies`.
        capsule_pairs: (p, 2) proxy indices of the capsule-capsule pairs checked.
        box_pairs: (q, 2) proxy indices (capsule, box) of the capsule-box pairs checked.
        finger_pairs: (f, 2) proxy indices of the finger pairs checked (box against box).
        spread_joints: Names of the model joints the finger pairs push.
        excluded: ``(name, name) -> reason`` of the collision model's pairs dropped here.

    Raises:
        ConfigError: A margin or weight that is not a finite number > 0.
        RobotModelError: The hand has no collision geometry.
    """

    def __init__(self, chain: ChainKinematics, margin_m: float = 0.003,
                 weight: float = 100.0, thumb_tip: str | None = None,
                 fingers: bool = True) -> None:
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
        self._ff_last = None  # the last linearisation's answer (_linear_rows)
        self._posed_at = None  # (q bytes, R, t) where self._data's joint Jacobians are
        self._rows: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # recent _pair_rows
        self._select_finger_pairs(collision.self_pairs if fingers else
                                  np.zeros((0, 2), dtype=int), thumb)

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
        self._ff_last = self._posed_at = None
        self._rows = {}

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
        # What :meth:`_items` gathers on every call, gathered once.
        P = self.proxies
        i, j = self.capsule_pairs[:, 0].copy(), self.capsule_pairs[:, 1].copy()
        sample, box = self._box_items[:, 0], self._box_items[:, 1].copy()
        cap = self._sample_of[sample]
        self._cap_i, self._cap_j, self._box_cap, self._box_k = i, j, cap, box
        self._cap_ri, self._cap_rj = P.radius[i], P.radius[j]
        self._box_t = self._sample_t[sample][:, None]
        self._box_1_t = 1.0 - self._box_t
        self._box_axes_k, self._box_half_k = P.box_axes[box], P.box_half[box]
        self._box_r = P.radius[cap]
        self._item_first = np.concatenate([i, cap])
        self._item_second = np.concatenate([j, box])
        # The capsule pairs' sphere test (:meth:`_items` with ``near``): each capsule lies in
        # the sphere about its segment's midpoint of radius half its length plus its radius.
        g = len(P.names)
        reach = 0.5 * np.linalg.norm(P.b - P.a, axis=1) + P.radius  # (g,)
        self._mid = 0.5 * (P.a + P.b)  # (g, 3) segment midpoints, joint frames
        self._cap_gap = np.zeros((len(i), g))  # (p, g): midpoint j minus midpoint i
        self._cap_gap[np.arange(len(i)), j] += 1.0
        self._cap_gap[np.arange(len(i)), i] -= 1.0
        self._cap_ends = np.stack([i, i + g, j, j + g], axis=1)  # (p, 4) rows of [a; b]
        self._cap_far_sq = (reach[i] + reach[j] + self.margin_m + _SPHERE_SLACK_M) ** 2

    def _check_poses(self) -> list[np.ndarray]:
        """The neutral pose, then the random poses the pruning checks."""
        chain = self.chain
        rng = np.random.default_rng(_RANDOM_SEED)
        return [chain.neutral()] + [rng.uniform(chain.lower, chain.upper)
                                    for _ in range(_RANDOM_POSES)]

    def _prune(self) -> None:
        """Drop the pairs within the margin at the neutral pose or touching in every random
        pose (see the module docstring)."""
        cap_d, box_d = [], []
        for u in self._check_poses():
            d = self._items(*self._poses(u, jacobians=False))[0]
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

    def _select_finger_pairs(self, self_pairs: np.ndarray, thumb: np.ndarray) -> None:
        """The finger-finger pairs, their spread joints and their sample items (see the
        module docstring)."""
        P, model = self.proxies, self.model
        g, nv = len(P.names), model.nv
        palm = int(self.model.frames[self.model.getFrameId(self.chain.reference_frame)]
                   .parentJoint)
        finger = np.zeros(g, dtype=int)  # the joint right below the palm carrying each proxy
        for k, joint in enumerate(P.joints):
            chain = [int(j) for j in model.supports[int(joint)]]
            if palm in chain and int(joint) != palm and not thumb[k] and not P.is_box[k]:
                finger[k] = chain[chain.index(palm) + 1]
        pairs = [(int(i), int(j)) for i, j in self_pairs
                 if finger[i] and finger[j] and finger[i] != finger[j]]
        # Which spread joints move their finger toward the other finger, at the neutral pose.
        R, t = self._poses(self.chain.neutral(), jacobians=True)
        centre = np.einsum('gij,gj->gi', R, P.link_centre) + t  # (g, 3)
        fingers = sorted({int(f) for f in finger if f})
        middle = {f: centre[finger == f].mean(axis=0) for f in fingers}
        spread = {}
        for f in fingers:
            mask = np.zeros(nv)
            mask[model.joints[f].idx_v:model.joints[f].idx_v + model.joints[f].nv] = 1.0
            spread[f] = mask
        J = self._data.J  # (6, nv)

        def sideways(f: int, other: int) -> bool:
            toward = middle[other] - middle[f]
            toward = toward / max(float(np.linalg.norm(toward)), 1e-12)
            for col in J[:, spread[f] > 0].T:  # (6,) each
                # A rotation moves points toward the other finger by at most sin(axis,
                # toward) per radian and metre from its axis; a translation by cos.
                axis, lin = col[3:], col[:3]
                if np.linalg.norm(axis) > 1e-9:
                    reach = np.linalg.norm(np.cross(axis / np.linalg.norm(axis), toward))
                else:
                    reach = abs(lin @ toward) / max(float(np.linalg.norm(lin)), 1e-12)
                if reach > _SIDEWAYS:
                    return True
            return False

        names = P.names
        kept, first_mask, second_mask = [], [], []
        for i, j in pairs:
            a, b = int(finger[i]), int(finger[j])
            ma = spread[a] if sideways(a, b) else np.zeros(nv)
            mb = spread[b] if sideways(b, a) else np.zeros(nv)
            if not (ma.any() or mb.any()):
                self.excluded[(names[i], names[j])] = 'no_spread_joint'
                continue
            kept.append((i, j))
            first_mask.append(ma)
            second_mask.append(mb)
        self.finger_pairs = np.array(kept, dtype=int).reshape(-1, 2)
        masks = (np.array(first_mask).reshape(-1, nv), np.array(second_mask).reshape(-1, nv))
        self._index_finger_items(*masks)
        if len(self.finger_pairs):
            self._prune_finger_pairs(*masks)
        used = self._ff_spread_first.any(axis=0)  # (nv,)
        self.spread_joints = tuple(model.names[f] for f in fingers
                                   if used[model.joints[f].idx_v])

    def _prune_finger_pairs(self, first_mask: np.ndarray, second_mask: np.ndarray) -> None:
        """Drop the finger pairs as :meth:`_prune` drops the others."""
        names = self.proxies.names
        # Pruned as the other pairs: within the margin at rest, or touching in every pose.
        d = np.array([self._finger_pair_distances(*self._poses(u, jacobians=False))
                      for u in self._check_poses()])  # (poses, f)
        at_rest, always = d[0] < self.margin_m, np.all(d[1:] < 0.0, axis=0)
        for (i, j), rest, stuck in zip(self.finger_pairs, at_rest, always, strict=True):
            if rest or stuck:
                self.excluded[(names[i], names[j])] = ('proxy_neutral_contact' if rest
                                                       else 'proxy_always_contact')
        keep = ~(at_rest | always)
        self.finger_pairs = self.finger_pairs[keep]
        self._index_finger_items(first_mask[keep], second_mask[keep])

    def _index_finger_items(self, first_mask: np.ndarray, second_mask: np.ndarray) -> None:
        """Flatten the finger pairs into two directions each (``2p``: the first proxy's box
        samples against the second's box, ``2p + 1``: the other way round), every direction
        with the same number of samples (padding samples are at ``+inf``)."""
        P = self.proxies
        g, pairs = len(P.names), self.finger_pairs
        samples = [P.link_centre[k] + _box_samples(P.link_half[k]) @ P.link_axes[k].T
                   for k in range(g)]  # joint frames
        width = max(len(x) for x in samples)
        self._ff_samples = np.zeros((g, width, 3))  # (g, s, 3)
        pad = np.full((g, width), np.inf)  # added to the distances
        for k, x in enumerate(samples):
            self._ff_samples[k] = np.concatenate([x, np.repeat(x[:1], width - len(x), axis=0)])
            pad[k, :len(x)] = 0.0
        # Each proxy's box centre and axes as columns, in its joint frame.
        self._ff_frame = np.concatenate([P.link_centre[:, :, None], P.link_axes], axis=2)
        self._ff_i, self._ff_j = pairs[:, 0], pairs[:, 1]
        self._ff_half_i = P.link_half[self._ff_i][:, :, None]  # (p, 3, 1)
        self._ff_half_j = P.link_half[self._ff_j][:, :, None]
        self._ff_pair_round = P.link_round[self._ff_i] + P.link_round[self._ff_j]
        first = pairs.reshape(-1)  # (2p,) the sampled proxy of each direction
        second = pairs[:, ::-1].reshape(-1)  # the box it is checked against
        self._ff_first, self._ff_second = first, second
        # Added to each sample's box distance: the two roundings off, padding at +inf.
        self._ff_shift = pad[first] - (P.link_round[first] + P.link_round[second])[:, None]
        self._ff_half = P.link_half[second][:, None, :]  # (2p, 1, 3)
        interleave = np.stack([first_mask, second_mask], axis=1).reshape(-1, self.model.nv)
        swapped = np.stack([second_mask, first_mask], axis=1).reshape(-1, self.model.nv)
        self._ff_spread_first, self._ff_spread_second = interleave, swapped  # (2p, nv)
        self._ff_spread_diff = swapped - interleave  # the box's side minus the sample's

    # ------------------------------------------------------------------------- distances

    def _finger_samples(self, R: np.ndarray, t: np.ndarray, within: float | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Signed distances (k, s) of the samples of the finger-pair directions ``k`` (k,)
        whose pairs may be closer than ``within`` (all when ``None``), the samples in their
        boxes' frames (k, s, 3), and the boxes' axes in the world (k, 3, 3).

        The pairs are first checked by :meth:`_finger_pair_bounds`: the gap between the two
        boxes' projections on any line is a lower bound of their distance (and the samples'
        distances are not below it), so a pair whose gap is at least ``within`` has no sample
        closer. Most pairs stop there.
        """
        X = R @ self._ff_frame  # (g, 3, 4): box centres and axes, world axes
        centre = X[:, :, 0] + t  # (g, 3)
        if within is None:
            k = np.arange(len(self._ff_first))
        else:
            near = np.flatnonzero(self._finger_pair_bounds(X, centre) < within)
            if not near.size:
                return (np.zeros((0, self._ff_samples.shape[1])), near,
                        np.zeros((0, self._ff_samples.shape[1], 3)), np.zeros((0, 3, 3)))
            k = (2 * near[:, None] + _BOTH_WAYS).reshape(-1)
        a, b = self._ff_first[k], self._ff_second[k]
        axes = X[b, :, 1:]  # (k, 3, 3)
        # The sampled proxy's joint frame into the box's frame.
        to_box = R[a].transpose(0, 2, 1) @ axes  # (k, 3, 3)
        offset = (t[a] - centre[b])[:, None, :] @ axes  # (k, 1, 3)
        local = self._ff_samples[a] @ to_box + offset  # (k, s, 3)
        d = _box_distance_local(local, self._ff_half[k]) + self._ff_shift[k]  # (k, s)
        return d, k, local, axes

    def _finger_pair_bounds(self, X: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """Lower bounds (p,) of the finger pairs' distances: the largest gap between the two
        boxes' projections on the line between their centres and on either box's axes (the
        separating-axis test of two boxes without its edge-edge axes)."""
        Ai = X[:, :, 1:].take(self._ff_i, axis=0)  # (p, 3, 3) unit axes as columns
        Bj = X[:, :, 1:].take(self._ff_j, axis=0)
        line = centre.take(self._ff_j, axis=0) - centre.take(self._ff_i, axis=0)  # (p, 3)
        la = np.abs(line[:, None, :] @ Ai)  # (p, 1, 3) the line on A's axes
        lb = np.abs(line[:, None, :] @ Bj)
        C = np.abs(Ai.transpose(0, 2, 1) @ Bj)  # (p, 3, 3) |cos| between the axes
        ha, hb = self._ff_half_i, self._ff_half_j  # (p, 3, 1)
        on_a = la[:, 0, :] - ha[:, :, 0] - (C @ hb)[:, :, 0]  # (p, 3) gaps on A's axes
        on_b = lb[:, 0, :] - hb[:, :, 0] - (C.transpose(0, 2, 1) @ ha)[:, :, 0]
        length = np.sqrt(np.einsum('ij,ij->i', line, line))
        reach = (la @ ha + lb @ hb)[:, 0, 0]  # both boxes' reach on the line, x length
        on_line = length - reach / np.maximum(length, 1e-12)
        gap = np.maximum(np.maximum(np.maximum(on_a[:, 0], on_a[:, 1]), on_a[:, 2]),
                         np.maximum(np.maximum(on_b[:, 0], on_b[:, 1]), on_b[:, 2]))
        return np.maximum(gap, on_line) - self._ff_pair_round

    def _finger_pair_distances(self, R: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Signed distances (p,) of the finger pairs: the minimum over both directions."""
        d = self._finger_samples(R, t)[0]
        return d.reshape(len(self.finger_pairs), -1).min(axis=1)

    def _finger_items(self, R: np.ndarray, t: np.ndarray, within: float | None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The finger-pair sample items closer than ``within`` (every sample when ``None``):
        distances (e,), sample points (e, 3) and normals (e, 3) from the sampled proxy to
        the box in the world, and the pair direction and sample (e,), (e,) of each."""
        d, k, local, axes = self._finger_samples(R, t, within)
        if not k.size:
            return np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)), k, k
        row, s = np.nonzero(d < (np.inf if within is None else within))
        k = k[row]
        grad = _box_gradient_local(local[row, s], self._ff_half[k, 0])  # (e, 3)
        normal = -(axes[row] @ grad[:, :, None])[:, :, 0]
        a = self._ff_first[k]
        points = (R[a] @ self._ff_samples[a, s][:, :, None])[:, :, 0] + t[a]
        return d[row, s], points, normal, k, s

    def _poses(self, u: np.ndarray, jacobians: bool, q: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Rotations (g, 3, 3) and translations (g, 3) of the proxies' joints at ``u``
        (model configuration ``q`` when given), with the joint Jacobians when asked."""
        q = self.chain.full_q(u) if q is None else q
        if jacobians:
            pin.computeJointJacobians(self.model, self._data, q)
        else:
            pin.forwardKinematics(self.model, self._data, q)
        oMi = self._data.oMi.tolist()  # a list: indexing pinocchio's vector costs far more
        H = np.array([oMi[j].homogeneous for j in self._joint_ids])[self._slot]  # (g, 4, 4)
        R, t = H[:, :3, :3], H[:, :3, 3]
        self._posed_at = (q.tobytes(), R, t) if jacobians else None
        return R, t

    def _posed(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_poses` at ``u`` with the joint Jacobians, computed again only when the
        last ones were at another configuration."""
        q = self.chain.full_q(u)
        if self._posed_at is None or self._posed_at[0] != q.tobytes():
            return self._poses(u, jacobians=True, q=q)
        return self._posed_at[1], self._posed_at[2]

    def _items(self, R: np.ndarray, t: np.ndarray, near: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                          np.ndarray]:
        """Signed distances (e,), closest points on the first and second proxies (e, 3),
        normals (e, 3) and the proxies (e,), (e,) of every capsule and capsule-box pair item,
        in the model's world, with the proxies posed by ``R`` (g, 3, 3) and ``t`` (g, 3).

        With ``near``, only the items closer than the margin (the barrier's), in the same
        order; a capsule pair is computed only where the bounding spheres of its capsules
        (about each segment's midpoint) come within the margin, which most do not.
        """
        P = self.proxies
        a = np.einsum('gij,gj->gi', R, P.a) + t  # (g, 3)
        b = np.einsum('gij,gj->gi', R, P.b) + t
        cap_items = np.arange(len(self.capsule_pairs))
        if near:
            mid = np.einsum('gij,gj->gi', R, self._mid) + t
            gap = self._cap_gap @ mid  # (p, 3)
            cap_items = np.flatnonzero(np.einsum('ij,ij->i', gap, gap) < self._cap_far_sq)
        if cap_items.size:  # with near, the rare solver evaluations with a capsule pair near
            ends = np.concatenate([a, b])[self._cap_ends[cap_items]]  # (p, 4, 3)
            c1, c2 = segment_distances(ends[:, 0], ends[:, 1], ends[:, 2], ends[:, 3])
            diff = c2 - c1
            dist = np.sqrt(np.einsum('ij,ij->i', diff, diff))
            n_cap = np.where((dist > 1e-12)[:, None],
                             diff / np.maximum(dist, 1e-12)[:, None], _X_AXIS)
            d_cap = dist - self._cap_ri[cap_items] - self._cap_rj[cap_items]
            if near:
                keep = d_cap < self.margin_m
                cap_items, c1, c2, n_cap, d_cap = (x[keep] for x in (cap_items, c1, c2, n_cap,
                                                                     d_cap))
        cap, k = self._box_cap, self._box_k
        p = self._box_1_t * a[cap] + self._box_t * b[cap]  # (e, 3) sample centres
        axes = R[k] @ self._box_axes_k  # (e, 3, 3)
        local, d_box = _box_sdf_local(p, a[k], axes, self._box_half_k)
        d_box = d_box - self._box_r
        box_items = slice(None)
        if near:
            box_items = np.flatnonzero(d_box < self.margin_m)
            p, axes, local, d_box = p[box_items], axes[box_items], local[box_items], \
                d_box[box_items]
        # The SDF gradient points from the box (second) to the sample (first): negated, the
        # normal points from the first proxy to the second, as for the capsule pairs.
        n_box = -np.einsum('eij,ej->ei', axes,
                           _box_gradient_local(local, self._box_half_k[box_items]))
        if not cap_items.size:
            return d_box, p, p, n_box, cap[box_items], k[box_items]
        return (np.concatenate([d_cap, d_box]), np.concatenate([c1, p]),
                np.concatenate([c2, p]), np.concatenate([n_cap, n_box]),
                np.concatenate([self._cap_i[cap_items], cap[box_items]]),
                np.concatenate([self._cap_j[cap_items], k[box_items]]))

    def _check_u(self, u: np.ndarray) -> np.ndarray:
        return self.chain.checked(u, 'self-collision')

    def distances(self, u: np.ndarray) -> np.ndarray:
        """Signed distances (p + q + f,) of the checked pairs at ``u``: the capsule pairs,
        the capsule-box pairs (the minimum over each capsule's samples), then the finger
        pairs (the minimum over both boxes' samples)."""
        R, t = self._poses(self._check_u(u), jacobians=False)
        d = self._items(R, t)[0]
        nc = len(self.capsule_pairs)
        box_min = np.full(len(self.box_pairs), np.inf)
        np.minimum.at(box_min, self._box_item_pair, d[nc:])
        finger = self._finger_pair_distances(R, t) if len(self.finger_pairs) else np.zeros(0)
        return np.concatenate([d[:nc], box_min, finger])

    @property
    def pair_names(self) -> list[tuple[str, str]]:
        """Proxy names of the checked pairs, in :meth:`distances` order."""
        names = self.proxies.names
        return [(names[i], names[j]) for i, j in (*self.capsule_pairs, *self.box_pairs,
                                                  *self.finger_pairs)]

    def min_distance(self, u: np.ndarray) -> float:
        """The smallest signed distance of the checked pairs (``+inf`` if none)."""
        d = self.distances(u)
        return float(d.min()) if d.size else math.inf

    def distances_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distances (e,) of every pair item (capsule pairs, capsule samples against
        boxes, then the finger pairs' box samples against boxes) and their Jacobian (e, n)
        with respect to ``u``: the whole derivative, also for the finger-pair items whose
        barrier pushes only through spread joints."""
        R, t = self._poses(self._check_u(u), jacobians=True)
        d, c1, c2, n, first, second = self._items(R, t)
        if len(self.finger_pairs):
            d_f, p_f, n_f, k, _ = self._finger_items(R, t, None)
            d, c1, c2, n = (np.concatenate(x) for x in ((d, d_f), (c1, p_f), (c2, p_f),
                                                         (n, n_f)))
            first = np.concatenate([first, self._ff_first[k]])
            second = np.concatenate([second, self._ff_second[k]])
        return d, self._gradient(c1, c2, n, self._support[first], self._support[second])

    def _gradient(self, c1: np.ndarray, c2: np.ndarray, n: np.ndarray, moves1: np.ndarray,
                  moves2: np.ndarray) -> np.ndarray:
        """``n . (J_2(c2) - J_1(c1))`` (e, n), ``J_k`` over the model joints marked in
        ``moves_k`` (e, nv) (those that support the proxy, or a subset of them); the joint
        Jacobians must be current."""
        J = self._data.J  # (6, nv)
        w2 = np.concatenate([n, _cross(c2, n)], axis=1) @ J  # (e, nv)
        w1 = np.concatenate([n, _cross(c1, n)], axis=1) @ J
        g_v = w2 * moves2 - w1 * moves1
        return g_v if self.chain.u_is_v else g_v @ self._nv_to_u

    def _sample_gradient(self, p: np.ndarray, n: np.ndarray, moves: np.ndarray) -> np.ndarray:
        """:meth:`_gradient` of items whose two points are one, ``c1 = c2 = p`` (a sample
        against a box): ``n . J(p)`` (e, n) over the joints marked in ``moves`` (e, nv), the
        second proxy's supporting joints less the first's."""
        g_v = (np.concatenate([n, _cross(p, n)], axis=1) @ self._data.J) * moves
        return g_v if self.chain.u_is_v else g_v @ self._nv_to_u

    # ------------------------------------------------------------------------- barrier

    def residuals(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``sqrt(weight) * (margin - d)`` (e,) of the items closer than the margin and their
        Jacobian (e, n): an :data:`~handx_ros.retarget.retargeter.ExtraResiduals`. The
        finger-pair items push the spread joints only (module docstring)."""
        return self._barrier(u, None)

    def _barrier(self, u: np.ndarray, linear: _FingerLinearisation | None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`residuals`, with the finger pairs from ``linear`` when given (set at its
        first call)."""
        q = self.chain.full_q(u)
        key = q.tobytes()
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = self._pair_rows(u, q)
            if len(self._rows) > _ROWS_KEPT:
                del self._rows[next(iter(self._rows))]
        r, A = rows
        if not len(self.finger_pairs):
            return r, A
        if linear is None:
            d_f, G_f, _ = self._finger_rows(*self._posed(u), self.margin_m)
        else:
            if linear.u0 is None:
                linear.u0 = u.copy()
                linear.d0, linear.G, linear.keys = self._linear_rows(u)
            if not linear.d0.size:
                return r, A
            d_f = linear.d0 + linear.G @ (u - linear.u0)
            near = d_f < self.margin_m
            d_f, G_f = d_f[near], linear.G[near]
        if not d_f.size:
            return r, A
        return (np.concatenate([r, self._scale * (self.margin_m - d_f)]),
                np.concatenate([A, -self._scale * G_f]))

    def _pair_rows(self, u: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The barrier's capsule and capsule-box rows at ``u`` (model configuration ``q``):
        residuals (e,) and Jacobian (e, n), read-only (they are kept for the next frame,
        which starts where this one ended)."""
        # The barrier is active on most frames (a thumb resting near the palm): the joint
        # Jacobians come with the forward kinematics.
        R, t = self._poses(u, jacobians=True, q=q)
        d, c1, c2, n, first, second = self._items(R, t, near=True)
        if d.size:
            # The capsule pairs' rows come first, then the samples against boxes (c1 = c2).
            k = len(d) - int(np.count_nonzero(self.proxies.is_box[second]))
            support = self._support
            grad = self._sample_gradient(c1[k:], n[k:], support[second[k:]] - support[first[k:]])
            if k:
                grad = np.concatenate([self._gradient(c1[:k], c2[:k], n[:k], support[first[:k]],
                                                      support[second[:k]]), grad])
            r, A = self._scale * (self.margin_m - d), -self._scale * grad
        else:
            r, A = np.zeros(0), np.zeros((0, self.chain.nu))
        r.setflags(write=False)
        A.setflags(write=False)
        return r, A

    def _finger_rows(self, R: np.ndarray, t: np.ndarray, within: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Distances (e,) of the finger-pair items closer than ``within``, their derivatives
        (e, n) through the spread joints alone (the other columns 0) and their keys (e,)
        (direction and sample)."""
        d, p, n, k, s = self._finger_items(R, t, within)
        if not d.size:
            return d, np.zeros((0, self.chain.nu)), k
        # c1 = c2 = p: n . (J_box(p) - J_sample(p)) over the spread joints each side moves.
        w = np.concatenate([n, _cross(p, n)], axis=1) @ self._data.J  # (e, nv)
        G = w * self._ff_spread_diff[k]
        return d, G if self.chain.u_is_v else G @ self._nv_to_u, k * _BOX_SAMPLES.shape[0] + s

    def _linear_rows(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_finger_rows` within the margin plus :data:`_LINEAR_SLACK_M` at ``u``. The
        last answer is kept: a frame's solve starts where the last one's check ended."""
        key = u.tobytes()
        if self._ff_last is not None and self._ff_last[0] == key:
            return self._ff_last[1]
        rows = self._finger_rows(*self._posed(u), self.margin_m + _LINEAR_SLACK_M)
        self._ff_last = (key, rows)
        return rows

    def _refine(self, linear: _FingerLinearisation, u: np.ndarray) -> bool:
        """After a solve over ``linear`` that ended at ``u``: add the finger items that
        penetrate at ``u`` and were not in the model, linearised at the solve's start like
        the others (where they are apart: inside a box the nearest face may be the far
        one), and say whether there were any."""
        if not len(self.finger_pairs) or linear.u0 is None:
            return False
        d, _, keys = self._linear_rows(u)
        inside = d < 0.0
        if not inside.any():  # most solves
            return False
        missed = keys[inside & ~np.isin(keys, linear.keys)]
        if not missed.size:
            return False
        d0, G, keys0 = self._finger_rows(*self._posed(linear.u0), np.inf)
        add = np.isin(keys0, missed)
        linear.d0 = np.concatenate([linear.d0, d0[add]])
        linear.G = np.concatenate([linear.G, G[add]])
        linear.keys = np.concatenate([linear.keys, keys0[add]])
        return True

    def combined(self, extra: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None,
                 linear_fingers: bool = False) -> SolveResiduals:
        """The barrier residuals followed by ``extra``'s (when given), for one solve.

        Args:
            extra: More residuals, or ``None``.
            linear_fingers: The solve stays near its start (a frame inside its velocity
                bound): the finger pairs are linearised at the first point evaluated, the
                solve's start (module docstring).
        """
        return SolveResiduals(self, extra, _FingerLinearisation() if linear_fingers else None)


@dataclasses.dataclass
class _FingerLinearisation:
    """The finger-pair items of one solve, linearised at its start ``u0`` (n,): distances
    ``d0`` (e,), their Jacobian ``G`` (e, n) through the spread joints and their keys
    (e,)."""

    u0: np.ndarray | None = None
    d0: np.ndarray | None = None
    G: np.ndarray | None = None
    keys: np.ndarray | None = None


class SolveResiduals:
    """The self-collision barrier and more residuals for one solve: an
    :data:`~handx_ros.retarget.retargeter.ExtraResiduals`, from
    :meth:`SelfCollision.combined`."""

    def __init__(self, owner: SelfCollision,
                 extra: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None,
                 linear: _FingerLinearisation | None) -> None:
        self._owner, self._extra, self._linear = owner, extra, linear

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r1, A1 = self._owner._barrier(u, self._linear)
        if self._extra is None:
            return r1, A1
        r2, A2 = self._extra(u)
        return np.concatenate([r1, r2]), np.concatenate([A1, A2], axis=0)

    def refine(self, u: np.ndarray) -> bool:
        """Whether the solve that ended at ``u`` ran into a finger pair from outside its
        linearisation (a step across more than the margin's slack): the pair is added, and
        the solve should run again from its start. Always ``False`` for exact finger pairs.
        """
        return self._linear is not None and self._owner._refine(self._linear, u)


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
