"""A humanoid's arm against its own body, as a barrier residual of the arm IK.

The arm IK (:class:`~handx_ros.retarget.bimanual.HumanoidRetargeter`) places the palm on the
human wrist pose; the arm has one joint more than the pose needs, and nothing else decides
where the elbow goes. On the Unitree G1 the upper arm hangs 9 mm from the torso at rest, so a
tenth of a radian of shoulder roll towards the body, which the IK takes freely, drives it into
the torso: in MuJoCo the servo stalls there, the shoulder roll trails its command by 0.1 rad
and the fingertips miss theirs by 20 mm. :class:`ArmBodyCollision` keeps the arm's links a
margin away from the body, as a barrier in the IK's Levenberg-Marquardt step.

Geometry. The shapes MuJoCo collides: the URDF collision geometry, meshes replaced by their
convex hulls (:mod:`handx_ros.retarget.collision` builds and caches them), with coal's GJK
for signed distances (3-6 us a pair). Not the capsule and box proxies of
:mod:`handx_ros.retarget.self_collision`: they are outer approximations sized for finger links,
and at the G1's rest pose a capsule around the upper arm comes within 0.8 mm of the torso's
hull, a box around the torso overlaps it; the barrier would push every arm outwards, always.

* The arm: the geometries on the links the arm's joints carry, shoulder to fingertips. The
  finger joints are the hand retargeter's: they stand where the chain's locked configuration
  puts them (:meth:`~handx_ros.retarget.robot.ChainKinematics.set_locked`), the humanoid
  solves each frame's hands before its arms (a hand's solve does not depend on its arm), and
  only the arm joints move them here. With the fingers left out, an elbow swung clear of the
  torso let the G1's thumb into it instead.
* The body: the geometries no arm joint moves (pelvis, legs, waist, torso, head). The legs and
  waist are locked (``locked_joints``) and the root is fixed, so the body does not move and its
  placements are computed once.
* Pairs: every arm-body pair except a link and the body one or two joints above it (the first
  shoulder links sit on the torso; the simulation scene excludes the same pairs,
  :mod:`handx_ros.sim.scene`), the body geometries further from the shoulder than the link can
  ever get (the joint offsets down the arm plus the link's bounding sphere: the feet) and the
  pairs touching at the neutral pose (built-in overlaps).
  The excluded pairs and why are kept in :attr:`ArmBodyCollision.excluded`.

Distances are signed, in metres (positive: the gap). With witness points ``p1`` on the arm link
and ``p2`` on the body and the unit normal ``n`` from the first to the second, ``d = n . (p2 -
p1)``; the body is fixed, so ``dd/du = -n . J(p1)``, with ``J(p) = J_lin - [p]x J_ang`` from
Pinocchio's ``WORLD`` joint Jacobians over the joints that carry the link (finite differences
confirm it, ``tests/test_body_collision.py``).

Barrier. :meth:`ArmBodyCollision.residuals` returns, for every pair closer than the margin,
``sqrt(weight) * (margin - d)`` and its Jacobian (an
:data:`~handx_ros.retarget.retargeter.ExtraResiduals`); a pair enters at zero, so the cost is
continuously differentiable. Against the IK's position residual (metres, weight 1) a weight of
100 with a 5 mm margin keeps a link clear even when the wrist target lies deep in the body: a
target ``D`` inside pulls the link at most ``(D + margin) / (1 + weight)`` into the margin.

Cost. Coal is called only on the pairs that may be within the margin: those whose bounding
spheres are, and whose last exact distance, less how far the arm link has moved since, does
not already keep them out (:meth:`ArmBodyCollision._candidates`). The IK evaluates the barrier
right after its own pose Jacobian, whose joint placements and Jacobians it reuses. On the G1
corpus clips the arms then take about 1 ms a frame instead of 0.4 ms; the barrier adds about
one Levenberg-Marquardt iteration per arm and frame where it engages (a step taken from outside
the margin cannot see it and lands inside, and is rejected).
"""

from __future__ import annotations

import enum
import math

import coal
import numpy as np
import pinocchio as pin

from handx_gen.errors import ConfigError, RetargetError, RobotModelError
from handx_ros.retarget.collision import (
    GeometrySource,
    _configure,
    _shape,
    _urdf_geometry,
    _witness,
)
from handx_ros.retarget.robot import ChainKinematics
from handx_ros.retarget.self_collision import _cross

__all__ = ['ArmBodyCollision', 'BodyPairExclusion']

# A distance this large (metres) is coal giving up, not a distance between two robot links.
_FAILED_M = 1e3


class BodyPairExclusion(enum.Enum):
    """Why an arm-body pair of geometries is not checked."""

    MOUNT = 'mount'  # the body one or two joints above the arm link: where the arm is mounted
    OUT_OF_REACH = 'out_of_reach'  # further from the shoulder than the link can ever be
    NEUTRAL_CONTACT = 'neutral_contact'  # touching at the neutral pose


class ArmBodyCollision:
    """Collision distances and barrier residuals between one arm's links and the body.

    Args:
        chain: The arm's kinematic chain in the model's world (the IK's; its joints are the
            arm's, every other joint locked).
        arm_joints: Every arm joint of the robot (both arms): geometries that none of them
            moves are the body.
        margin_m: Pairs closer than this add a residual (> 0).
        weight: Barrier weight (> 0), squared metres of objective per squared metre of
            intrusion into the margin.

    Attributes:
        geometry_names: (g,) names of the arm's geometries, then the body's.
        pairs: (p, 2) geometry indices (arm, body) of the checked pairs.
        excluded: ``(arm name, body name) -> BodyPairExclusion`` for the pairs not checked.

    Raises:
        ConfigError: A margin or weight that is not a finite number > 0.
        RobotModelError: The chain is not in the model's world, or the URDF has no collision
            geometry on the arm or on the body.
    """

    def __init__(self, chain: ChainKinematics, arm_joints: tuple[str, ...] | list[str],
                 margin_m: float = 0.005, weight: float = 100.0) -> None:
        for name, value in (('margin_m', margin_m), ('weight', weight)):
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               and math.isfinite(value) and value > 0):
                raise ConfigError(f'arm-body collision {name} must be a finite number > 0, got '
                                  f'{value!r}')
        if chain.reference_frame is not None:
            raise RobotModelError('an arm-body collision model needs the arm chain in the '
                                  "model's world (the arm IK's chain)")
        self.chain = chain
        self.model = model = chain.model
        self.margin_m = float(margin_m)
        self._scale = math.sqrt(weight)
        self._data = model.createData()
        chain.urdf.check_joints(list(arm_joints), 'arm joints')
        arm_ids = {model.getJointId(name) for name in arm_joints}
        own = {model.getJointId(name) for name in chain.joint_names}
        entry = _urdf_geometry(chain.urdf, GeometrySource.COLLISION)
        arm, body = [], []
        for index, obj in enumerate(entry.model.geometryObjects):
            carriers = set(model.supports[obj.parentJoint])
            if own & carriers:
                arm.append(index)
            elif not arm_ids & carriers:
                body.append(index)
        name = chain.urdf.spec.name
        if not arm or not body:
            which = 'arm links' if not arm else 'body'
            raise RobotModelError(f'robot {name!r}: {chain.urdf.path.name} has no collision '
                                  f'geometry on the {which} (arm joints '
                                  f'{", ".join(chain.joint_names)})')
        objects = [entry.model.geometryObjects[i] for i in arm + body]
        self.geometry_names = tuple(obj.name for obj in objects)
        self._shapes = [_shape(entry, i, obj.name) for i, obj in zip(arm + body, objects,
                                                                     strict=True)]
        self._num_arm = len(arm)
        self._joints = np.array([obj.parentJoint for obj in objects[:len(arm)]])  # (a,)
        self._joint_ids = sorted(set(self._joints.tolist()))
        self._slot = np.searchsorted(self._joint_ids, self._joints)  # (a,) -> joint slot
        self._H_joint_geom = np.array([obj.placement.homogeneous
                                       for obj in objects[:len(arm)]])  # (a, 4, 4)
        centre_local = np.array([s.aabb_center for s in self._shapes])  # (g, 3)
        self._arm_centres_local = centre_local[:len(arm)]
        self._radius = np.array([s.aabb_radius for s in self._shapes])  # (g,)
        # The body is fixed: its geometries' world placements, once.
        pin.forwardKinematics(model, self._data, chain.full_q(chain.neutral()))
        self._body_poses = [self._data.oMi[obj.parentJoint] * obj.placement
                            for obj in objects[len(arm):]]
        self._body_centres = np.array([M.act(c) for M, c in zip(
            self._body_poses, centre_local[len(arm):], strict=True)])  # (b, 3)
        supports = np.zeros((model.njoints, model.nv))  # joint -> velocities that move it
        for joint in range(1, model.njoints):
            for k in model.supports[joint][1:]:
                idx_v, nv = model.joints[k].idx_v, model.joints[k].nv
                supports[joint, idx_v:idx_v + nv] = 1.0
        self._support = supports[self._joints]  # (a, nv)
        self._request = _configure(coal.DistanceRequest())
        self._coarse_request = _configure(coal.DistanceRequest())
        self._coarse_request.gjk_tolerance = self._coarse_request.epa_tolerance = 1e-6
        self._result = coal.DistanceResult()
        self._select_pairs(objects[len(arm):])

    def _select_pairs(self, body_objects: list[pin.GeometryObject]) -> None:
        model, parents = self.model, self.model.parents
        H = self._arm_poses(self.chain.neutral())
        # How far each arm geometry can get from the arm's first joint: the joint offsets down
        # the chain (rigid, whatever the angles) plus the geometry's own bounding sphere.
        first = min(model.getJointId(name) for name in self.chain.joint_names)
        origin = self._data.oMi[first].translation.copy()
        reach = []
        for i, joint in enumerate(self._joints.tolist()):
            total, k = 0.0, joint
            while k != first:
                total += float(np.linalg.norm(model.jointPlacements[k].translation))
                k = parents[k]
            centre = self._H_joint_geom[i, :3, :3] @ self._arm_centres_local[i] \
                + self._H_joint_geom[i, :3, 3]
            reach.append(total + float(np.linalg.norm(centre)) + self._radius[i])
        pairs = []
        self.excluded: dict[tuple[str, str], BodyPairExclusion] = {}
        for i, joint in enumerate(self._joints.tolist()):
            mount = {parents[joint], parents[parents[joint]]}
            for k, obj in enumerate(body_objects):
                j = self._num_arm + k
                names = (self.geometry_names[i], self.geometry_names[j])
                apart = float(np.linalg.norm(self._body_centres[k] - origin)) \
                    - self._radius[j] - reach[i]
                if obj.parentJoint in mount:
                    self.excluded[names] = BodyPairExclusion.MOUNT
                elif apart > self.margin_m:
                    self.excluded[names] = BodyPairExclusion.OUT_OF_REACH
                elif self._distance(i, H[i], j) <= 0.0:
                    self.excluded[names] = BodyPairExclusion.NEUTRAL_CONTACT
                else:
                    pairs.append((i, j))
        self.pairs = np.array(pairs, dtype=int).reshape(-1, 2)
        self.pairs.setflags(write=False)
        # Sphere centres further apart than this cannot hold a pair within the margin.
        reach_pair = (self._radius[self.pairs[:, 0]] + self._radius[self.pairs[:, 1]]
                      + self.margin_m)
        self._reach_sq = reach_pair * reach_pair  # (p,)
        self._pair_arm = self.pairs[:, 0]
        self._pair_body_centre = self._body_centres[self.pairs[:, 1] - self._num_arm]  # (p, 3)
        self._pair_radius = self._radius[self._pair_arm]  # (p,) the arm geometry's sphere
        # Each pair's last exact distance and the arm geometry's pose then (see _candidates).
        self._last_d = np.full(len(self.pairs), -np.inf)
        self._last_centre = np.zeros((len(self.pairs), 3))
        self._last_R = np.broadcast_to(np.eye(3), (len(self.pairs), 3, 3)).copy()

    # ------------------------------------------------------------------------- distances

    @property
    def pair_names(self) -> list[tuple[str, str]]:
        """Geometry names (arm, body) of the checked pairs, in :attr:`pairs` order."""
        return [(self.geometry_names[i], self.geometry_names[j]) for i, j in self.pairs]

    def _check_u(self, u: np.ndarray) -> np.ndarray:
        return self.chain.checked(u, 'arm-body collision')

    def _arm_poses(self, u: np.ndarray, data: pin.Data | None = None) -> np.ndarray:
        """(a, 4, 4) world poses of the arm's geometries at ``u``: from ``data`` when given
        (its placements current for ``u``), else by forward kinematics in ``_data``."""
        if data is None:
            data = self._data
            pin.forwardKinematics(self.model, data, self.chain.full_q(u))
        oMi = data.oMi.tolist()  # a list: indexing pinocchio's vector costs far more
        H = np.array([oMi[j].homogeneous for j in self._joint_ids])[self._slot]  # (a, 4, 4)
        return H @ self._H_joint_geom

    def _distance(self, i: int, H_i: np.ndarray, j: int) -> float:
        """Signed distance of arm geometry ``i`` posed at ``H_i`` (4, 4) and body geometry
        ``j``; the witness points and normal stay in ``self._result``.

        Coal's penetration depth (EPA) cannot reach the 1e-9 m tolerance on curved shapes: two
        of the GR1's cylinders 4 cm into each other come back as ``-DBL_MAX``. Such a pair is
        measured again to 1e-6 m.

        Raises:
            RetargetError: Coal found no distance at either tolerance.
        """
        T_i = coal.Transform3s(H_i[:3, :3], H_i[:3, 3])
        T_j = self._body_poses[j - self._num_arm]
        for request in (self._request, self._coarse_request):
            self._result.clear()
            d = coal.distance(self._shapes[i], T_i, self._shapes[j], T_j, request,
                              self._result)
            if abs(d) < _FAILED_M:
                return d
        raise RetargetError(f'arm-body collision: coal found no distance between '
                            f'{self.geometry_names[i]!r} and {self.geometry_names[j]!r} '
                            f'(got {d!r})')

    def _candidates(self, H: np.ndarray) -> np.ndarray:
        """Indices of the pairs that may be within the margin at arm geometry poses ``H``
        (a, 4, 4); the others provably are not.

        Two lower bounds rule a pair out: its bounding spheres, and its last exact distance
        less how far the arm geometry has moved since. A point of the geometry moves at most
        ``|c - c_last| + r |R - R_last|`` (its bounding sphere's centre ``c`` and radius ``r``;
        ``|R - R_last| = sqrt(3 - trace(R_last^T R))``, the spectral norm), and a distance
        changes no faster than the points move. Within a solve and from frame to frame the arm
        moves little, so coal is called on the pairs near the margin only."""
        R = H[:, :3, :3]  # (a, 3, 3)
        centres = (R @ self._arm_centres_local[:, :, None])[:, :, 0] + H[:, :3, 3]  # (a, 3)
        centre, R = centres[self._pair_arm], R[self._pair_arm]  # (p, 3), (p, 3, 3)
        gap = centre - self._pair_body_centre
        near = (gap * gap).sum(axis=1) < self._reach_sq
        shift = centre - self._last_centre
        turn = np.sqrt(np.maximum(3.0 - (self._last_R * R).sum(axis=(1, 2)), 0.0))
        moved = np.sqrt((shift * shift).sum(axis=1)) + self._pair_radius * turn
        return np.flatnonzero(near & (self._last_d - moved < self.margin_m))

    def _remember(self, k: int, d: float, H_i: np.ndarray, i: int) -> None:
        """Keep pair ``k``'s exact distance ``d`` with its arm geometry ``i``'s pose ``H_i``."""
        self._last_d[k] = d
        self._last_centre[k] = H_i[:3, :3] @ self._arm_centres_local[i] + H_i[:3, 3]
        self._last_R[k] = H_i[:3, :3]

    def distances(self, u: np.ndarray) -> np.ndarray:
        """(p,) signed distances of the checked pairs at ``u`` (:attr:`pairs` order)."""
        H = self._arm_poses(self._check_u(u))
        return np.array([self._distance(i, H[i], j) for i, j in self.pairs.tolist()])

    def min_distance(self, u: np.ndarray) -> float:
        """The smallest signed distance of the checked pairs (``+inf`` if none)."""
        d = self.distances(u)
        return float(d.min()) if d.size else math.inf

    def distances_and_jacobian(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Signed distances (p,) of every checked pair and their Jacobian (p, n) with respect
        to ``u``."""
        u = self._check_u(u)
        H = self._arm_poses(u)
        found = []
        for i, j in self.pairs.tolist():
            self._distance(i, H[i], j)
            found.append((i, *_witness(self._result)))
        arm, d, p1, _, n = (np.array(x) for x in zip(*found, strict=True))
        return d, self._gradient(u, arm, p1, n)

    def _gradient(self, u: np.ndarray, arm: np.ndarray, p1: np.ndarray, n: np.ndarray,
                  data: pin.Data | None = None) -> np.ndarray:
        """``dd/du = -n . J(p1)`` (e, n) for witness points ``p1`` (e, 3) on arm geometries
        ``arm`` (e,) and normals ``n`` (e, 3) from the arm to the body; the joint Jacobians
        from ``data`` when given (current for ``u``), else computed in ``_data``.

        Pinocchio's ``WORLD`` Jacobian gives the velocity of the point at the world origin,
        so a point ``p`` moves with ``J_lin - [p]x J_ang`` over the joints supporting its link,
        and ``n . (v + w x p) = n . v + (p x n) . w``."""
        if not arm.size:
            return np.zeros((0, self.chain.nu))
        if data is None:
            data = self._data
            pin.computeJointJacobians(self.model, data, self.chain.full_q(u))
        w = np.concatenate([n, _cross(p1, n)], axis=1)  # (e, 6)
        g_v = (w @ data.J) * self._support[arm]  # (e, nv)
        return -(g_v @ self.chain.M_v_u)

    # ------------------------------------------------------------------------- barrier

    def residuals(self, u: np.ndarray, data: pin.Data | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """``sqrt(weight) * (margin - d)`` (e,) of the pairs closer than the margin and their
        Jacobian (e, n): an :data:`~handx_ros.retarget.retargeter.ExtraResiduals`.

        Args:
            u: (n,) arm joints.
            data: Pinocchio data of the chain's model whose joint placements and Jacobians
                are current for ``u`` (``computeJointJacobians``), as the IK's own are after
                its pose Jacobian: the barrier then adds no kinematics of its own. Default:
                computed here.
        """
        H = self._arm_poses(u, data)
        found = []
        for k in self._candidates(H).tolist():
            i, j = self.pairs[k].tolist()
            d = self._distance(i, H[i], j)
            self._remember(k, d, H[i], i)
            if d < self.margin_m:
                found.append((i, *_witness(self._result)))
        if not found:
            return np.zeros(0), np.zeros((0, self.chain.nu))
        arm, d, p1, _, n = (np.array(x) for x in zip(*found, strict=True))
        return self._scale * (self.margin_m - d), \
            -self._scale * self._gradient(u, arm, p1, n, data)
