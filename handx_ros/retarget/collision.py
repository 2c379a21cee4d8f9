"""Collision distances of robot hands, and collision avoidance terms for the retargeter.

Geometry. :class:`HandCollisionModel` takes one hand's :class:`ChainKinematics` and keeps the
URDF collision geometries (Pinocchio ``buildGeomFromUrdf``, coal shapes) of the hand: the links
moved by its driven joints (mimic followers included) and the base link with the links fixed to
it. A humanoid's arm and body links are left out. Meshes are replaced by their convex hulls, an
outer approximation on which coal's GJK/EPA gives signed distances; boxes, spheres and the other
primitives are kept as they are. A URDF without collision geometry for the hand (the Inspire
hands) falls back to the convex hulls of its visual meshes, and :attr:`HandCollisionModel.source`
says which was used.

Self-collision pairs. Every pair of hand geometries except, as an SRDF's ``disable_collisions``
would list them: geometries of one rigid body (links joined by fixed joints are one body, e.g.
a fingertip sphere and its distal link), of adjacent bodies (parent and child in the kinematic
tree) and pairs already in contact at the neutral pose (permanent contacts). The excluded pairs
and why are kept in :attr:`HandCollisionModel.excluded_pairs`.

Distances are signed, in metres: positive is the gap, negative the penetration depth. For a
pair with witness points ``p1`` on the first geometry and ``p2`` on the second and coal's unit
normal ``n`` from the first to the second, ``d = n . (p2 - p1)``; with the witness points moving
with their links, ``dd/du = n . (J(p2) - J(p1))``, where ``J(p)`` is the Jacobian of the point
fixed to the link at ``p``: ``J_lin - [p]x J_ang`` from Pinocchio's ``WORLD`` joint Jacobians
over the joints that carry the link, times the map from driven to model joints (mimic joints).
Finite differences confirm it (``tests/test_collision.py``).

Avoidance. :meth:`HandCollisionModel.self_collision_residuals` and
:meth:`HandCollisionModel.inter_hand_residuals` return :data:`ExtraResiduals` for
:meth:`HandRetargeter.step`: for each pair closer than a margin, the residual
``sqrt(weight) * (margin - d)`` and its Jacobian ``-sqrt(weight) dd/du``; pairs outside the
margin add nothing, and a pair enters at a zero residual, so the cost never jumps. The other
hand is held fixed in an inter-hand term; a bimanual solver alternates (or uses the other
hand's previous frame). A bounding-sphere test skips the pairs that cannot be within the
margin before coal is called.

Metrics. :func:`collision_report` gives, per frame of a trajectory, the minimum self distance
of each hand and the minimum inter-hand distance, for ``metrics.collision_rate``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Sequence

import coal
import numpy as np
import pinocchio as pin

from handx_gen.errors import ConfigError, RetargetError, RobotModelError, unknown_choice
from handx_gen.hand.rotations import quaternion_to_matrix
from handx_gen.hand.topology import HandSide
from handx_ros.retarget.retargeter import ExtraResiduals
from handx_ros.retarget.robot import ChainKinematics, UrdfModel, hand_kinematics
from handx_ros.retarget.spec import RobotSpec, package_share_dirs

__all__ = [
    'CollisionReport',
    'GeometrySource',
    'HandCollisionModel',
    'PairExclusion',
    'collision_report',
    'stack_residuals',
]


class GeometrySource(enum.Enum):
    """Which URDF geometry a collision model is built from."""

    COLLISION = 'collision'
    VISUAL = 'visual'


class PairExclusion(enum.Enum):
    """Why a pair of a hand's geometries is not checked for self-collision."""

    SAME_BODY = 'same_body'
    ADJACENT = 'adjacent'
    SAME_FINGER = 'same_finger'  # links of one finger meet only at their joints
    PALM_PROXIMAL = 'palm_proximal'  # the palm and a finger's first two links
    NEUTRAL_CONTACT = 'neutral_contact'


@dataclasses.dataclass(frozen=True)
class CollisionReport:
    """Per-frame minimum distances of a trajectory (metres, signed; ``+inf``: no pair).

    Attributes:
        self_min_m: (T, h) minimum self-collision distance of each of the h hands.
        inter_min_m: (T,) minimum distance between the two hands (``None`` when not computed:
            one hand, or no base poses).
    """

    self_min_m: np.ndarray
    inter_min_m: np.ndarray | None

    @property
    def min_m(self) -> np.ndarray:
        """(T,) minimum over every checked pair of each frame."""
        values = self.self_min_m.min(axis=1)
        if self.inter_min_m is not None:
            values = np.minimum(values, self.inter_min_m)
        return values


# ----------------------------------------------------------------------------- geometry cache

@dataclasses.dataclass
class _UrdfGeometry:
    model: pin.GeometryModel
    hulls: dict[int, coal.CollisionGeometry]


_CACHE: dict[tuple[str, int, str], _UrdfGeometry] = {}


def _urdf_geometry(urdf: UrdfModel, source: GeometrySource) -> _UrdfGeometry:
    """The URDF's geometry of ``source`` (cached per file; hulls are added on demand)."""
    path = urdf.path
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        mtime = -1
    key = (str(path), mtime, source.value)
    entry = _CACHE.get(key)
    if entry is None:
        kind = (pin.GeometryType.COLLISION if source == GeometrySource.COLLISION
                else pin.GeometryType.VISUAL)
        dirs = [str(d) for d in package_share_dirs()] + [str(path.parent)]
        try:
            model = pin.buildGeomFromUrdf(urdf.model, str(path), kind, package_dirs=dirs)
        except (RuntimeError, ValueError) as exc:
            raise RobotModelError(f'robot {urdf.spec.name!r}: cannot read the {source.value} '
                                  f'geometry of {path}: {exc}') from exc
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        entry = _CACHE[key] = _UrdfGeometry(model=model, hulls={})
    return entry


def _shape(entry: _UrdfGeometry, index: int, name: str) -> coal.CollisionGeometry:
    """Geometry ``index`` as a shape with signed distances: meshes become convex hulls."""
    geometry = entry.model.geometryObjects[index].geometry
    if not isinstance(geometry, coal.BVHModelBase):
        geometry.computeLocalAABB()
        return geometry
    hull = entry.hulls.get(index)
    if hull is None:
        try:
            geometry.buildConvexHull(True, 'Qt')
        except (RuntimeError, ValueError) as exc:
            raise RobotModelError(f'geometry {name!r}: cannot build the convex hull of its '
                                  f'mesh ({exc})') from exc
        hull = geometry.convex
        hull.computeLocalAABB()
        entry.hulls[index] = hull
    return hull


# ----------------------------------------------------------------------------- the model

class HandCollisionModel:
    """Collision geometry of one robot hand, its self-collision pairs, distances and
    avoidance residuals (see the module docstring).

    Args:
        chain: The hand's kinematic chain (:func:`hand_kinematics`); its reference frame is
            the hand's base link.
        source: Geometry to use (default: collision geometry, or the visual meshes' hulls
            when the URDF has no collision geometry for the hand).
        contact_tolerance_m: Pairs closer than this at the neutral pose are treated as
            permanent contacts and not checked.

    Attributes:
        chain: ``chain``.
        source: The geometry used.
        geometry_names: (g,) names of the hand's geometries.
        link_names: (g,) the link each geometry belongs to.
        self_pairs: (p, 2) indices of the checked self-collision pairs.
        moving: (g,) bool, the geometries the hand's driven joints move.
        excluded_pairs: ``(name, name) -> PairExclusion`` for the pairs not checked.

    Raises:
        RobotModelError: The chain has no base link, or the URDF has no geometry for the hand.
    """

    def __init__(self, chain: ChainKinematics, *, source: GeometrySource | None = None,
                 contact_tolerance_m: float = 0.0) -> None:
        if chain.reference_frame is None:
            raise RobotModelError('a hand collision model needs a chain expressed in the '
                                  "hand's base link (see hand_kinematics)")
        if source is not None and not isinstance(source, GeometrySource):
            raise ConfigError(unknown_choice('geometry source', source,
                                             [s.value for s in GeometrySource]))
        if not (isinstance(contact_tolerance_m, (int, float))
                and math.isfinite(contact_tolerance_m)):
            raise ConfigError(f'contact_tolerance_m must be finite, got {contact_tolerance_m!r}')
        self.chain = chain
        self.model = chain.model
        self._data = self.model.createData()
        self._nv_to_u = chain.M_v_u  # (nv, n)
        moved = _moved_joints(chain, self._nv_to_u)
        base_frame = chain.model.getFrameId(chain.reference_frame)
        sources = [source] if source is not None else [GeometrySource.COLLISION,
                                                       GeometrySource.VISUAL]
        for candidate in sources:
            entry = _urdf_geometry(chain.urdf, candidate)
            indices = [i for i, obj in enumerate(entry.model.geometryObjects)
                       if _on_hand(self.model, obj, moved, base_frame)]
            if indices:
                break
        if not indices:
            raise RobotModelError(
                f'robot {chain.urdf.spec.name!r}: {chain.urdf.path.name} has no '
                f'{" or ".join(s.value for s in sources)} geometry on the hand of base link '
                f'{chain.reference_frame!r}')
        self.source = candidate
        geom_model = pin.GeometryModel()
        for index in indices:
            obj = entry.model.geometryObjects[index]
            geom_model.addGeometryObject(pin.GeometryObject(
                obj.name, obj.parentJoint, obj.parentFrame, obj.placement,
                _shape(entry, index, obj.name)))
        self._geom_model = geom_model
        objects = list(geom_model.geometryObjects)
        self.geometry_names = tuple(obj.name for obj in objects)
        self.link_names = tuple(self.model.frames[obj.parentFrame].name for obj in objects)
        self._shapes = [obj.geometry for obj in objects]
        self._joints = np.array([obj.parentJoint for obj in objects])  # (g,)
        self._sphere_centre = np.array([g.aabb_center for g in self._shapes])  # (g, 3) local
        self._sphere_radius = np.array([g.aabb_radius for g in self._shapes])  # (g,)
        self._centred = not np.any(self._sphere_centre)
        supports = np.zeros((self.model.njoints, self.model.nv))  # joint -> moving velocities
        for joint in range(1, self.model.njoints):
            for k in self.model.supports[joint][1:]:
                idx_v, nv = self.model.joints[k].idx_v, self.model.joints[k].nv
                supports[joint, idx_v:idx_v + nv] = 1.0
        self._support = supports[self._joints]  # (g, nv)
        # (g,) the geometries the hand's driven joints move (not those fixed to the base).
        self.moving = np.any(self._support @ np.abs(self._nv_to_u) > 0.0, axis=1)
        self._T_ref_world = chain.T_world_reference().inverse()
        self._request = _configure(coal.DistanceRequest())
        self._result = coal.DistanceResult()
        self._geom_data = pin.GeometryData(geom_model)
        self._select_self_pairs(float(contact_tolerance_m))
        self._geom_data = pin.GeometryData(geom_model)  # sized for the pairs
        for request in self._geom_data.distanceRequests:
            _configure(request)

    @classmethod
    def from_spec(cls, spec: RobotSpec, side: HandSide | str | int, **kwargs
                  ) -> HandCollisionModel:
        """The collision model of ``spec``'s hand on ``side`` (a hand or humanoid folder)."""
        chain, _ = hand_kinematics(spec, side)
        return cls(chain, **kwargs)

    def _select_self_pairs(self, tolerance: float) -> None:
        parents = self.model.parents
        g = len(self.geometry_names)
        world = self._world_transforms(self.chain.full_q(self.chain.neutral()))
        # Each joint's finger (the joint right below the palm that carries it; 0 on the palm)
        # and its depth below the palm, for the exclusions a hand needs: links of one finger
        # meet only at their joints, and a finger's first links sit on the palm.
        palm = int(self.model.frames[self.model.getFrameId(self.chain.reference_frame)]
                   .parentJoint)
        finger = np.zeros(self.model.njoints, dtype=int)
        depth = np.zeros(self.model.njoints, dtype=int)
        for joint in range(1, self.model.njoints):
            chain = list(self.model.supports[joint])
            if palm in chain and joint != palm:
                below = chain[chain.index(palm) + 1:]
                finger[joint], depth[joint] = below[0], len(below)
        pairs = []
        excluded: dict[tuple[str, str], PairExclusion] = {}
        for i in range(g):
            for j in range(i + 1, g):
                a, b = int(self._joints[i]), int(self._joints[j])
                names = (self.geometry_names[i], self.geometry_names[j])
                if a == b:
                    excluded[names] = PairExclusion.SAME_BODY
                elif parents[a] == b or parents[b] == a:
                    excluded[names] = PairExclusion.ADJACENT
                elif finger[a] == finger[b] and finger[a] > 0:
                    excluded[names] = PairExclusion.SAME_FINGER
                elif min(depth[a], depth[b]) == 0 and max(depth[a], depth[b]) <= 2:
                    excluded[names] = PairExclusion.PALM_PROXIMAL
                elif self._distance(i, world[i], j, world[j]) <= tolerance:
                    excluded[names] = PairExclusion.NEUTRAL_CONTACT
                else:
                    pairs.append((i, j))
                    self._geom_model.addCollisionPair(pin.CollisionPair(i, j))
        self.self_pairs = np.array(pairs, dtype=int).reshape(-1, 2)
        self.self_pairs.setflags(write=False)
        self.excluded_pairs = excluded

    # ------------------------------------------------------------------------- basics

    @property
    def num_geometries(self) -> int:
        return len(self.geometry_names)

    @property
    def self_pair_names(self) -> list[tuple[str, str]]:
        """Geometry names of the checked self-collision pairs, in :attr:`self_pairs` order."""
        return [(self.geometry_names[i], self.geometry_names[j]) for i, j in self.self_pairs]

    def _check_u(self, u: np.ndarray, what: str = 'u') -> np.ndarray:
        return self.chain.checked(u, what)

    def _update(self, u: np.ndarray) -> Sequence[pin.SE3]:
        """Forward kinematics for ``u``; the geometry poses in the model's world (valid until
        the next update)."""
        pin.forwardKinematics(self.model, self._data, self.chain.full_q(u))
        pin.updateGeometryPlacements(self.model, self._data, self._geom_model, self._geom_data)
        return self._geom_data.oMg.tolist()  # a list: indexing pinocchio's vector costs more

    def _world_transforms(self, q: np.ndarray) -> list[pin.SE3]:
        """Geometry poses in the model's world for configuration ``q`` (copies)."""
        pin.forwardKinematics(self.model, self._data, q)
        pin.updateGeometryPlacements(self.model, self._data, self._geom_model, self._geom_data)
        return [M.copy() for M in self._geom_data.oMg]

    def _distance(self, i: int, T_i: pin.SE3, j: int, T_j: pin.SE3,
                  other: HandCollisionModel | None = None) -> float:
        """Signed distance of geometry ``i`` (posed ``T_i``) and geometry ``j`` of ``other``
        (default this model); the witness points and normal stay in ``self._result``."""
        shape_j = (other or self)._shapes[j]
        self._result.clear()
        return coal.distance(self._shapes[i], T_i, shape_j, T_j, self._request, self._result)

    def placements(self, u: np.ndarray) -> np.ndarray:
        """(g, 4, 4) poses of the geometries in the hand's base-link frame."""
        return self.local_spheres(u)[0]

    def _centres(self, poses: Sequence[pin.SE3]) -> np.ndarray:
        """(g, 3) bounding-sphere centres of the geometries at ``poses``."""
        if self._centred:
            return np.array([M.translation for M in poses])
        return np.array([M.act(c) for M, c in zip(poses, self._sphere_centre, strict=True)])

    # ------------------------------------------------------------------------- distances

    def self_distances(self, u: np.ndarray) -> np.ndarray:
        """(p,) signed distances of the self-collision pairs (:attr:`self_pairs` order)."""
        u = self._check_u(u)
        geom_data = self._geom_data
        pin.computeDistances(self.model, self._data, self._geom_model, geom_data,
                             self.chain.full_q(u))
        return np.array([result.min_distance for result in geom_data.distanceResults])

    def min_self_distance(self, u: np.ndarray) -> float:
        """Smallest self-collision distance (``+inf`` when the hand has no pair)."""
        u = self._check_u(u)
        if not len(self.self_pairs):
            return math.inf
        index = pin.computeDistances(self.model, self._data, self._geom_model, self._geom_data,
                                     self.chain.full_q(u))
        return float(self._geom_data.distanceResults[index].min_distance)

    def _posed(self, u: np.ndarray, T_world_base: pin.SE3) -> list[pin.SE3]:
        """Geometry poses in a world where the base link sits at ``T_world_base``."""
        T_world_model = T_world_base * self._T_ref_world
        return [T_world_model * M for M in self._world_transforms(self.chain.full_q(u))]

    def inter_hand_distances(self, u: np.ndarray, T_world_base: np.ndarray | pin.SE3,
                             other: HandCollisionModel, u_other: np.ndarray,
                             T_world_base_other: np.ndarray | pin.SE3, *,
                             cutoff_m: float = math.inf) -> np.ndarray:
        """Signed distances (g * g_other,) of every geometry of this hand to every geometry of
        ``other`` (entry ``i * g_other + j``), both hands placed in one world.

        Args:
            u, u_other: Driven joint angles of the two hands.
            T_world_base, T_world_base_other: Poses of their base links (4x4 or ``pin.SE3``).
            cutoff_m: Pairs whose bounding spheres are further apart than this are not passed
                to coal and read ``+inf``.
        """
        u = self._check_u(u)
        u_other = other._check_u(u_other, 'u_other')
        mine = self._posed(u, _se3(T_world_base, 'T_world_base'))
        theirs = other._posed(u_other, _se3(T_world_base_other, 'T_world_base_other'))
        lower = _sphere_gaps(self, mine, other, theirs)  # (g, g_other)
        out = np.full(lower.shape, math.inf)
        for i, j in zip(*np.nonzero(lower <= cutoff_m), strict=True):
            out[i, j] = self._distance(i, mine[i], j, theirs[j], other)
        return out.ravel()

    def min_inter_hand_distance(self, u: np.ndarray, T_world_base: np.ndarray | pin.SE3,
                                other: HandCollisionModel, u_other: np.ndarray,
                                T_world_base_other: np.ndarray | pin.SE3) -> float:
        """The smallest of :meth:`inter_hand_distances`, exactly, calling coal only on the
        pairs whose bounding spheres could beat the best distance found so far."""
        u = self._check_u(u)
        u_other = other._check_u(u_other, 'u_other')
        mine = self._posed(u, _se3(T_world_base, 'T_world_base'))
        theirs = other._posed(u_other, _se3(T_world_base_other, 'T_world_base_other'))
        return self._min_between(mine, other, theirs)

    def _min_between(self, mine: list[pin.SE3], other: HandCollisionModel,
                     theirs: list[pin.SE3]) -> float:
        lower = _sphere_gaps(self, mine, other, theirs).ravel()
        g_other = len(theirs)
        best = math.inf
        for k in np.argsort(lower):
            if lower[k] >= best:
                break
            i, j = divmod(int(k), g_other)
            best = min(best, self._distance(i, mine[i], j, theirs[j], other))
        return best

    def local_spheres(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For joint angles ``u``: the geometry poses (g, 4, 4) in the hand's base-link frame,
        their bounding-sphere centres (g, 3) in that frame and radii (g,)."""
        oMg = self._update(self._check_u(u))
        H = self._T_ref_world.homogeneous @ np.array([M.homogeneous for M in oMg])  # (g, 4, 4)
        centres = np.einsum('gij,gj->gi', H[:, :3, :3], self._sphere_centre) + H[:, :3, 3]
        return H, centres, self._sphere_radius

    def pair_distance(self, i: int, T_i: pin.SE3, other: HandCollisionModel, j: int,
                      T_j: pin.SE3) -> tuple[float, np.ndarray]:
        """Signed distance and unit normal (from this hand's geometry ``i`` to ``other``'s
        geometry ``j``) of the two geometries posed at ``T_i`` and ``T_j``."""
        distance = self._distance(i, T_i, j, T_j, other)
        return distance, np.array(self._result.normal)

    def reach_m(self, samples: int = 64, seed: int = 0) -> float:
        """A radius around the base-link origin that holds every geometry's bounding sphere
        over the neutral pose, both ends of the joint ranges and ``samples`` random poses,
        plus 5 mm: hands whose origins are further apart than their radii plus a gap are
        (all but surely) at least that gap apart."""
        chain = self.chain
        rng = np.random.default_rng(seed)
        poses = [chain.neutral(), chain.lower.copy(), chain.upper.copy()]
        poses += list(rng.uniform(chain.lower, chain.upper, size=(samples, chain.nu)))
        reach = 0.0
        for u in poses:
            _, centres, radius = self.local_spheres(u)
            reach = max(reach, float(np.max(np.linalg.norm(centres, axis=1) + radius)))
        return reach + 0.005

    # ------------------------------------------------------------------------- avoidance

    def self_collision_residuals(self, margin_m: float, weight: float) -> ExtraResiduals:
        """Self-collision avoidance for :meth:`HandRetargeter.step` (``extra=``): one residual
        ``sqrt(weight) * (margin_m - d)`` per self pair closer than ``margin_m``."""
        scale = _check_avoidance(margin_m, weight)
        first, second = self.self_pairs[:, 0], self.self_pairs[:, 1]
        # Spheres further apart than this cannot hold a pair within the margin.
        reach_sq = (self._sphere_radius[first] + self._sphere_radius[second] + margin_m) ** 2
        geom_model, geom_data = self._geom_model, self._geom_data

        def residuals(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            oMg = self._update(u)
            centres = self._centres(oMg)  # (g, 3)
            gap = centres[first] - centres[second]  # (p, 3)
            active, found = [], []
            for k in np.flatnonzero(np.einsum('ij,ij->i', gap, gap) < reach_sq):
                result = pin.computeDistance(geom_model, geom_data, int(k))
                if result.min_distance < margin_m:
                    active.append(k)
                    found.append(_witness(result))
            if not active:
                return np.zeros(0), np.zeros((0, self.chain.nu))
            d, p1, p2, n = (np.array(x) for x in zip(*found, strict=True))
            grad = self._gradients(first[active], p1, n, sign=-1.0)
            grad += self._gradients(second[active], p2, n, sign=1.0)
            return scale * (margin_m - d), -scale * grad  # (e,), (e, n)

        return residuals

    def inter_hand_residuals(self, other: HandCollisionModel, u_other: np.ndarray,
                             T_base_other: np.ndarray | pin.SE3, margin_m: float,
                             weight: float, *, moving_only: bool = False) -> ExtraResiduals:
        """Avoidance of ``other`` (held fixed at ``u_other``, its base link at
        ``T_base_other`` in this hand's base-link frame) for :meth:`HandRetargeter.step`: one
        residual ``sqrt(weight) * (margin_m - d)`` per pair closer than ``margin_m``.
        ``moving_only``: only this hand's geometries that its joints move (:attr:`moving`)
        are kept clear; its palm may touch the other hand."""
        scale = _check_avoidance(margin_m, weight)
        u_other = other._check_u(u_other, 'u_other')
        T_world_other = self.chain.T_world_reference() * _se3(T_base_other, 'T_base_other')
        theirs = other._posed(u_other, T_world_other)  # in this chain's model world
        centres_other = other._centres(theirs)  # (g_o, 3)
        reach_sq = (self._sphere_radius[:, None] + other._sphere_radius[None]
                    + margin_m) ** 2  # (g, g_o)
        if moving_only:
            reach_sq[~self.moving] = -1.0  # never within reach

        def residuals(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            oMg = self._update(u)
            gap = self._centres(oMg)[:, None] - centres_other[None]  # (g, g_o, 3)
            active, found = [], []
            for i, j in zip(*np.nonzero(np.einsum('ijk,ijk->ij', gap, gap) < reach_sq),
                            strict=True):
                i = int(i)
                if self._distance(i, oMg[i], int(j), theirs[j], other) < margin_m:
                    active.append(i)
                    found.append(_witness(self._result))
            if not active:
                return np.zeros(0), np.zeros((0, self.chain.nu))
            d, p1, _, n = (np.array(x) for x in zip(*found, strict=True))
            grad = self._gradients(np.array(active), p1, n, sign=-1.0)
            return scale * (margin_m - d), -scale * grad  # (e,), (e, n)

        return residuals

    def _gradients(self, geometries: np.ndarray, p_world: np.ndarray, n: np.ndarray, *,
                   sign: float) -> np.ndarray:
        """``sign * n . J(p)`` (e, n) for points ``p_world`` (e, 3) fixed to the links of
        ``geometries`` (e,), normals ``n`` (e, 3); the forward kinematics must be current.

        Pinocchio's ``WORLD`` Jacobian gives the velocity of the point at the world origin,
        so a point ``p`` moves with ``J_lin - [p]x J_ang`` over the joints supporting its link,
        and ``n . (v + w x p) = n . v + (p x n) . w``."""
        pin.computeJointJacobians(self.model, self._data)
        J = self._data.J  # (6, nv)
        w = np.concatenate([n, np.cross(p_world, n)], axis=1)  # (e, 6)
        g_v = (w @ J) * self._support[geometries]  # (e, nv)
        return sign * (g_v @ self._nv_to_u)


def stack_residuals(*terms: ExtraResiduals | None) -> ExtraResiduals | None:
    """One :data:`ExtraResiduals` from several (``None`` entries skipped; ``None`` if all
    are)."""
    active = [t for t in terms if t is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]

    def residuals(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        parts = [t(u) for t in active]
        return (np.concatenate([r for r, _ in parts]),
                np.concatenate([A for _, A in parts], axis=0))

    return residuals


# ----------------------------------------------------------------------------- reports

def collision_report(models: Sequence[HandCollisionModel], qpos: Sequence[np.ndarray],
                     T_world_base: np.ndarray | None = None) -> CollisionReport:
    """Per-frame minimum self and inter-hand distances of a trajectory.

    Args:
        models: One or two hands (left first, as in a pair trajectory).
        qpos: Per hand, (T, n_i) driven joint angles in its chain's order.
        T_world_base: Base-link poses (T, h, 7) as xyz + quaternion wxyz (a trajectory's
            ``base_poses``) or (T, h, 4, 4); needed for the inter-hand distance. For a
            humanoid, the caller computes them from the whole robot's kinematics.

    Raises:
        RetargetError: Mismatched hands and joint arrays, wrong shapes or non-finite values.
    """
    models = list(models)
    if len(models) not in (1, 2) or len(qpos) != len(models):
        raise RetargetError(f'collision_report: expected one or two hands with one qpos array '
                            f'each, got {len(models)} models and {len(qpos)} arrays')
    arrays = []
    for h, (model, q) in enumerate(zip(models, qpos, strict=True)):
        q = np.asarray(q, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != model.chain.nu or not np.all(np.isfinite(q)):
            raise RetargetError(f'collision_report: qpos of hand {h} must be finite with shape '
                                f'(T, {model.chain.nu}), got {q.shape}')
        arrays.append(q)
    T = arrays[0].shape[0]
    if any(a.shape[0] != T for a in arrays) or T < 1:
        raise RetargetError(f'collision_report: hands have different or no frames: '
                            f'{[a.shape[0] for a in arrays]}')
    self_min = np.array([[m.min_self_distance(a[t]) for m, a in zip(models, arrays,
                                                                    strict=True)]
                         for t in range(T)])  # (T, h)
    inter = None
    if len(models) == 2 and T_world_base is not None:
        poses = _pose_matrices(T_world_base, T, 'T_world_base')  # (T, 2, 4, 4)
        a, b = models
        inter = np.array([
            a.min_inter_hand_distance(arrays[0][t], poses[t, 0], b, arrays[1][t], poses[t, 1])
            for t in range(T)])
    return CollisionReport(self_min_m=self_min, inter_min_m=inter)


# ----------------------------------------------------------------------------- helpers

def _moved_joints(chain: ChainKinematics, nv_to_u: np.ndarray) -> set[int]:
    """Joints that move with the driven joints: the driven and mimic joints and their
    descendants."""
    model = chain.model
    moving_v = set(np.flatnonzero(np.any(nv_to_u != 0, axis=1)).tolist())
    moved = set()
    for j in range(1, model.njoints):
        k = j
        while k > 0:
            if model.joints[k].idx_v in moving_v and model.joints[k].nv == 1:
                moved.add(j)
                break
            k = model.parents[k]
    return moved


def _on_hand(model: pin.Model, obj: pin.GeometryObject, moved: set[int],
             base_frame: int) -> bool:
    """Whether a geometry belongs to the hand: on a moved joint, or on the base link or a
    link fixed below it."""
    if obj.parentJoint in moved:
        return True
    base_joint = model.frames[base_frame].parentJoint
    frame = obj.parentFrame
    while model.frames[frame].parentJoint == base_joint:
        if frame == base_frame:
            return True
        parent = model.frames[frame].parentFrame
        if parent == frame:
            return False
        frame = parent
    return False


def _sphere_gaps(a: HandCollisionModel, poses_a: list[pin.SE3], b: HandCollisionModel,
                 poses_b: list[pin.SE3]) -> np.ndarray:
    """(g_a, g_b) lower bounds of the pair distances from bounding spheres."""
    centres_a = a._centres(poses_a)
    centres_b = b._centres(poses_b)
    return (np.linalg.norm(centres_a[:, None] - centres_b[None], axis=-1)
            - a._sphere_radius[:, None] - b._sphere_radius[None])


def _configure(request: coal.DistanceRequest) -> coal.DistanceRequest:
    """Signed distances, deterministic (no warm start from the previous call) and accurate
    to well below the finite-difference steps used to check the Jacobians."""
    request.enable_signed_distance = True
    request.gjk_initial_guess = coal.GJKInitialGuess.DefaultGuess
    request.gjk_tolerance = _TOLERANCE
    request.epa_tolerance = _TOLERANCE
    return request


_TOLERANCE = 1e-9  # metres


def _witness(result: coal.DistanceResult) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Distance, witness points on the first and second shape, normal from first to second
    (copies: the result's arrays are views that the next query overwrites)."""
    return (result.min_distance, np.array(result.getNearestPoint1()),
            np.array(result.getNearestPoint2()), np.array(result.normal))


def _check_avoidance(margin_m: float, weight: float) -> float:
    for name, value in (('margin_m', margin_m), ('weight', weight)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f'{name} must be a finite number > 0, got {value!r}')
    return math.sqrt(weight)


def _se3(T: np.ndarray | pin.SE3, what: str) -> pin.SE3:
    if isinstance(T, pin.SE3):
        return T
    H = np.asarray(T, dtype=np.float64)
    if H.shape != (4, 4) or not np.all(np.isfinite(H)):
        raise RetargetError(f'{what} must be a finite 4x4 transform or pin.SE3, got shape '
                            f'{H.shape}')
    R = H[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or not np.allclose(H[3], [0, 0, 0, 1]):
        raise RetargetError(f'{what} is not a rigid transform')
    return pin.SE3(R.copy(), H[:3, 3].copy())


def _pose_matrices(poses: np.ndarray, T: int, what: str) -> np.ndarray:
    """(T, 2, 4, 4) from (T, 2, 7) xyz + quaternion wxyz or (T, 2, 4, 4)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.shape == (T, 2, 4, 4):
        out = poses
    elif poses.shape == (T, 2, 7):
        out = np.zeros((T, 2, 4, 4))
        out[..., :3, :3] = quaternion_to_matrix(poses[..., 3:])
        out[..., :3, 3] = poses[..., :3]
        out[..., 3, 3] = 1.0
    else:
        raise RetargetError(f'{what} must have shape ({T}, 2, 7) or ({T}, 2, 4, 4), got '
                            f'{poses.shape}')
    if not np.all(np.isfinite(out)):
        raise RetargetError(f'{what} has non-finite values')
    return out

