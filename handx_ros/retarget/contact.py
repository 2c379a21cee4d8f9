"""Contact between the two robot hands where the human hands touch, and only there.

A robot hand is not a human hand: larger, thicker, other finger widths. Put its wrist on the
human wrist and a human clap drives the robot palms centimetres into each other, while a
human hand resting a few millimetres from the other may leave the robot's hands further apart
or overlapping. What a clip means lies in those contacts, so the two hands' distance is
retargeted as well, after the fingers of each frame are solved:

* the **human** distance ``d_h`` is the smallest signed distance between the two hands'
  surface proxies (:func:`handx_gen.annotate.surface.inter_hand_distance`, the proxy whose
  ``touch_gap_m`` defines contact events in the annotations);
* the **robot** distance ``d_r`` is the smallest signed distance between the two hands'
  collision geometry (:class:`~handx_ros.retarget.collision.HandCollisionModel`, the convex
  hulls MuJoCo simulates), with the witness pair's normal ``n``;
* the **target** (:meth:`ContactTargets.target`): where the human hands touch
  (``d_h <= human_touch_m``) the robot hands are commanded ``preload_m`` (half a millimetre)
  into each other, so the simulated hands touch without pushing each other off their
  commands; where they do not, the target grows with ``d_h`` up to ``clearance_m``. The
  robot hands are pushed apart whenever ``d_r`` is below the target, and pulled together
  towards it with a weight that fades from 1 at a human touch to 0 at ``human_apart_m`` (the
  annotations' release distance), so hands well apart are never pulled;
* the **means**: the wrists (floating bases of a pair, wrist targets of a humanoid's arm IK,
  see :class:`~handx_ros.retarget.bimanual.HumanoidRetargeter`) are translated along ``n``,
  half the correction each, a few Gauss-Newton steps as the closest pair changes. For a
  convex pair under translation ``d(s) = d_r + n . (s_2 - s_1)``, so one step is exact while
  the closest pair stays the same. Orientations and fingers are left as solved; each wrist
  moves at most ``max_shift_m``;
* **palms meeting**: where the human *palms* touch (their palm-to-palm surface distance,
  :func:`human_palm_distance`), a robot hand's links that stand out of its palm face (the
  Dex3 and Inspire thumbs do) would meet the other hand first, hold the palms apart, and be
  dragged off their commands while the palms slide over each other. There every link the
  hand's joints move is kept ``finger_clearance_m`` from the other hand while the joints are
  solved (:meth:`ContactKeeper.finger_clearance`: a barrier on the distances between those
  links and the other hand's, the other hand where the last frame left it), so that the
  wrist shift brings the palms together palm to palm. Its weight fades in as the human palms
  approach (the pull's ramp, on the palm distance): it never switches on at full strength.

Cost: nothing when the hands' bounding spheres are further apart than the target (most frames
of most clips); otherwise forward kinematics of both hands once and a few coal queries on the
bounding-sphere-ordered pairs, each asked once per frame and shift (the steps ask some again).

With a hand absent from the clip there is no human contact to keep and no human distance to
measure: the retargeters (:mod:`handx_ros.retarget.bimanual`) do not call the keeper for such
a clip or frame, the robot hands stay where retargeting put them, and the clip's
``info['contact']`` is ``None``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import pinocchio as pin

from handx_gen.annotate.surface import (
    ContactConfig,
    hand_surface,
    inter_hand_distance,
    part_distance,
)
from handx_gen.errors import ConfigError, RetargetError
from handx_gen.hand.parts import HandPart
from handx_gen.hand.topology import HandSide
from handx_ros.retarget.collision import HandCollisionModel
from handx_ros.retarget.retargeter import ExtraResiduals

__all__ = [
    'ContactCorrection',
    'ContactKeeper',
    'ContactTargets',
    'human_hand_distance',
    'human_palm_distance',
]


@dataclasses.dataclass(frozen=True)
class ContactTargets:
    """How far apart the robot hands are kept for how far apart the human hands are.

    Attributes:
        preload_m: 0.0005 m: the commanded overlap of touching robot hands. The simulated
            hands then touch (MuJoCo's contact holds them within a fraction of a millimetre
            of each other; the touch threshold is 1 mm) without pressing: with 2 mm the G1's
            thumbs, pressed against each other, bent away from their commands by 15-25 mm
            at the tips (the gate's fingertip bound is 15 mm).
        human_touch_m: The human hands touch at this surface distance or less (default the
            annotations' ``ContactConfig.touch_gap_m``, 5 mm).
        human_apart_m: Beyond this human distance the robot hands are no longer pulled
            together (default the annotations' release distance ``apart_gap_m``, 15 mm).
        clearance_m: 0.015 m: the most the robot hands are kept apart, where the human hands
            are well apart (the simulation's contact release distance is 5 mm).
        max_shift_m: 0.04 m: the most each wrist is moved.
        iterations: Gauss-Newton steps per frame.
        tolerance_m: Stop when a step changes the shift by less than this.
        continuity: 0.02: weight of ``|s - decay * s_prev|^2`` against the squared
            shortfalls (unit normals): small enough that a pair short of its target is
            corrected to within a few percent in one frame, large enough that a shift
            nothing asks for does not move.
        decay: 0.8: the last frame's shift fades by this factor per frame when nothing asks
            for it (90 % gone in 10 frames, a third of a second at 30 fps).
        crossed_slack_m: 0.001 m: links still this much deeper than the target after the
            least squares are crossed; the hands are then moved apart along the line between
            their wrists (at most ``separation_steps`` distance queries).
        max_shift_speed_m_s: 0.6 m/s: the most the shift between the hands changes per
            second beyond how fast the human wrists approach or leave each other (each
            wrist gets half: 10 mm a frame at 30 fps), so that keeping contacts never makes
            a wrist jump (crossed links moved apart at once made jumps of 2 cm), while robot
            hands that meet earlier than the human's can stop as fast as those were moving;
            a frame that needs more catches up over the next ones.
        finger_clearance_m: 0.003 m: where the human palms touch, every link the hand's
            joints move is kept this far from the other hand (module docstring): clear of
            the other hand by more than the simulation's 1 mm touch threshold, so a thumb
            beside two sliding palms is not dragged.
        finger_clearance_weight: 100: that barrier's weight, squared metres of fingertip
            residual per squared metre of intrusion (as ``RetargetConfig``'s
            ``self_collision_weight``); 0 turns it off.
    """

    preload_m: float = 0.0005
    human_touch_m: float = ContactConfig().touch_gap_m
    human_apart_m: float = ContactConfig().apart_gap_m
    clearance_m: float = 0.015
    max_shift_m: float = 0.04
    iterations: int = 2
    tolerance_m: float = 0.0003
    continuity: float = 0.02
    decay: float = 0.8
    crossed_slack_m: float = 0.001
    separation_steps: int = 4
    max_shift_speed_m_s: float = 0.6
    finger_clearance_m: float = 0.003
    finger_clearance_weight: float = 100.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f'contact {field.name} must be a finite number >= 0, got '
                                  f'{value!r}')
        if self.human_apart_m <= self.human_touch_m:
            raise ConfigError(f'contact human_apart_m ({self.human_apart_m}) must exceed '
                              f'human_touch_m ({self.human_touch_m})')
        if self.decay > 1.0:
            raise ConfigError(f'contact decay must be <= 1, got {self.decay!r}')
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ConfigError(f'contact iterations must be an integer >= 1, got '
                              f'{self.iterations!r}')

    @property
    def human_within_m(self) -> float:
        """Human distances beyond this all give the largest target (``clearance_m``)."""
        return self.human_touch_m + self.preload_m + self.clearance_m

    def target(self, human_m: float) -> tuple[float, float]:
        """Target robot distance (m) and the weight of the pull towards it, for a human
        distance: ``-preload`` up to a human touch, then growing with the human distance up
        to ``clearance_m``; the pull weight falls from 1 at a touch to 0 at
        ``human_apart_m``."""
        target = min(-self.preload_m + max(human_m - self.human_touch_m, 0.0), self.clearance_m)
        pull = (self.human_apart_m - human_m) / (self.human_apart_m - self.human_touch_m)
        return target, float(np.clip(pull, 0.0, 1.0))

    def palm_weight(self, human_palm_m: float) -> float:
        """Weight of the finger clearance for a human palm-to-palm distance: the pull's
        ramp (1 at a touch, 0 from ``human_apart_m``) times ``finger_clearance_weight``."""
        ramp = (self.human_apart_m - human_palm_m) / (self.human_apart_m - self.human_touch_m)
        return float(np.clip(ramp, 0.0, 1.0)) * self.finger_clearance_weight


@dataclasses.dataclass(frozen=True)
class ContactCorrection:
    """What :meth:`ContactKeeper.correct` did to one frame.

    Attributes:
        shift_m: (2, 3) world translation added to each wrist (left first).
        human_m: The human hands' surface distance (``inf``: further than it matters).
        target_m: The robot distance aimed at.
        before_m: The robot hands' distance with the wrists on the human wrists (``inf``:
            further apart than the target, not computed).
        after_m: The robot hands' distance after the shift.
    """

    shift_m: np.ndarray
    human_m: float
    target_m: float
    before_m: float
    after_m: float


def human_hand_distance(keypoints: np.ndarray, *, within: float = math.inf) -> np.ndarray:
    """Smallest signed surface distance between the two human hands of (..., 2, 21, 3) world
    keypoints; ``inf`` where no part pair can be within ``within`` metres."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim < 3 or kp.shape[-3:] != (2, 21, 3):
        raise RetargetError(f'keypoints must have shape (..., 2, 21, 3), got {kp.shape}')
    shape = kp.shape[:-3]
    flat = kp.reshape(-1, 2, 21, 3)
    out = np.full(flat.shape[0], np.inf)
    # A sphere around each hand's keypoints, widened by what the proxy adds beyond them (the
    # palm slab's faces 13.5 mm off its mid plane, whose wrist corners lie 29 mm beside the
    # wrist keypoint, on a 0.185 m hand: under 26 mm for hands up to 0.25 m; 40 mm is
    # kept): hands whose spheres are further apart than ``within`` are skipped before their
    # surfaces are built.
    centre = flat.mean(axis=2)  # (F, 2, 3)
    radius = np.linalg.norm(flat - centre[:, :, None], axis=-1).max(axis=2) + 0.04  # (F, 2)
    gap = np.linalg.norm(centre[:, 0] - centre[:, 1], axis=-1) - radius.sum(axis=1)
    near = np.flatnonzero(gap <= within)
    if near.size:
        surfaces = [hand_surface(flat[near, side], side) for side in HandSide]
        out[near] = inter_hand_distance(*surfaces, within=within)
    return out.reshape(shape)


def human_palm_distance(keypoints: np.ndarray, *, within: float = math.inf) -> np.ndarray:
    """Signed surface distance between the two human palms (the palmar halves of the palm
    slabs, :attr:`HandPart.PALM`) of (..., 2, 21, 3) world keypoints; ``inf`` where the hands
    cannot be within ``within`` metres (:func:`human_hand_distance`)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    near = np.isfinite(human_hand_distance(kp, within=within))  # checks the shape
    out = np.full(near.shape, np.inf)
    if near.any():
        hands = kp[near]  # (k, 2, 21, 3)
        surfaces = [hand_surface(hands[:, side], side) for side in HandSide]
        out[near] = part_distance(surfaces[0], HandPart.PALM, surfaces[1],
                                  HandPart.PALM).distance
    return out


class ContactKeeper:
    """Retargets the distance between two robot hands (see the module docstring).

    Args:
        models: The collision models of the left and the right hand.
        targets: The distance targets.
        fps: The frame rate of the frames it corrects (for the shift's speed bound).
    """

    def __init__(self, models: Sequence[HandCollisionModel],
                 targets: ContactTargets | None = None, *, fps: float = 30.0) -> None:
        if len(models) != 2:
            raise RetargetError(f'contact keeping needs two hands, got {len(models)}')
        if not (math.isfinite(fps) and fps > 0):
            raise RetargetError(f'fps must be a finite number > 0, got {fps!r}')
        self.fps = float(fps)
        self.models = tuple(models)
        self.targets = targets or ContactTargets()
        self._reach = [model.reach_m() for model in self.models]
        self.reset()

    def human_distance(self, keypoints: np.ndarray) -> np.ndarray:
        """:func:`human_hand_distance` up to :attr:`ContactTargets.human_within_m`."""
        return human_hand_distance(keypoints, within=self.targets.human_within_m)

    def palm_distance(self, keypoints: np.ndarray, within: float | None = None
                      ) -> np.ndarray:
        """:func:`human_palm_distance` up to ``within`` (default ``human_apart_m``: beyond,
        the finger clearance is off)."""
        return human_palm_distance(keypoints, within=self.targets.human_apart_m
                                   if within is None else max(within,
                                                              self.targets.human_apart_m))

    def reset(self) -> None:
        """Forget the last frame's shift (a new clip or stream)."""
        self._relative = np.zeros(3)
        self._between: np.ndarray | None = None
        self._last: tuple[list[np.ndarray], list[pin.SE3]] | None = None
        self._crossed = False

    def finger_clearance(self, side: int, human_palm_m: float) -> ExtraResiduals | None:
        """The finger clearance of hand ``side`` (0 left, 1 right) for this frame, as extra
        residuals of its joint solve (:meth:`HandRetargeter.step`), or ``None``: the human
        palms are not near (:meth:`ContactTargets.palm_weight` is 0), or no frame was
        corrected yet.

        The other hand is held where the last :meth:`correct` left it (its joints, and its
        base link shifted): this frame's is not known before the hands are solved, and two
        hands pressed together move little between frames. Nor where the last frame's hands
        were left crossed (links deeper than ``crossed_slack_m`` past the target: a palm that
        cannot turn to face the other, fingers through the other hand): no finger moved
        aside lets such hands meet palm to palm, and pushing fingers only changes which
        links cross, from frame to frame."""
        weight = self.targets.palm_weight(float(human_palm_m))
        if weight <= 0.0 or self._last is None or self._crossed:
            return None
        qpos, T_world_base = self._last
        other = 1 - side
        return self.models[side].inter_hand_residuals(
            self.models[other], qpos[other], T_world_base[side].actInv(T_world_base[other]),
            self.targets.finger_clearance_m, weight, moving_only=True)

    def correct(self, qpos: Sequence[np.ndarray], T_world_base: Sequence[pin.SE3],
                human_m: float, human_wrists: np.ndarray | None = None) -> ContactCorrection:
        """The wrist shifts that bring the robot hands' distance to its target.

        Every pair of links closer than the target (and, when pulling, the closest pair) gives
        a linear model of its distance in the relative shift ``s`` of the right wrist from the
        left (``d + n . s``). The shift minimises the squared shortfalls below the target
        (hinged: a pair above it adds nothing), the weighted pull, and
        ``continuity |s - decay * s_prev|^2`` (the last frame's shift, fading: a shift never
        jumps, and dies away once it is no longer needed), by an active-set least squares;
        the distances are queried again from the shifted hands up to
        :attr:`ContactTargets.iterations` times. Pairs whose normals oppose each other (links
        crossed, which no translation separates) balance instead of pulling the wrists to and
        fro.

        Args:
            qpos: Each hand's driven joint angles, in its collision model's chain order.
            T_world_base: Each hand's base-link pose in the world.
            human_m: The human hands' distance this frame.
            human_wrists: (2, 3) the human wrists this frame: the shift may change by as much
                as the human wrists moved towards or away from each other since the last
                frame, on top of :attr:`ContactTargets.max_shift_speed_m_s` (robot hands
                that meet earlier than the human's stop as fast as the human's were moving).
        """
        targets = self.targets
        closing = 0.0  # how far the human wrists moved relative to each other
        if human_wrists is not None:
            between = np.asarray(human_wrists[1], dtype=np.float64) - human_wrists[0]
            if self._between is not None:
                closing = float(np.linalg.norm(between - self._between))
            self._between = between
        target, pull = targets.target(float(human_m))
        # Without a pull, hands further apart than the target need nothing.
        beyond = target + targets.tolerance_m if pull == 0.0 else math.inf
        free = targets.decay * self._relative
        gap = float(np.linalg.norm(T_world_base[1].translation - T_world_base[0].translation)
                    ) - self._reach[0] - self._reach[1] - float(np.linalg.norm(free))
        hands = None if gap > beyond else _Hands(
            [_Hand(model, u, T) for model, u, T in zip(self.models, qpos, T_world_base,
                                                       strict=True)])
        if hands is None or float(hands.gaps(free).min()) > beyond:  # no link near
            self._relative = free
            self._remember(qpos, T_world_base, free)
            self._crossed = False
            return ContactCorrection(np.stack([-0.5 * free, 0.5 * free]), float(human_m),
                                     target, math.inf, math.inf)
        relative = free  # the right wrist's shift from the left's
        before = closest = math.inf
        for step in range(targets.iterations + 1):
            # The pairs short of the target; only without any, the closest pair (to pull).
            d, n = _pairs_within(hands, relative, target)
            normal = None
            if d.size:
                closest = float(d.min())
            else:
                closest, normal = _closest(hands, relative, beyond)
            if step == 0:
                before = closest
            if step == targets.iterations:
                break
            pulls = normal is not None and pull > 0.0
            change = _shift(d - target, n, normal if pulls else None, closest - target, pull,
                            relative - free, targets.continuity)
            relative = _clamped(relative + change, 2.0 * targets.max_shift_m)
            if np.linalg.norm(change) <= targets.tolerance_m:
                break
        if closest < target - targets.crossed_slack_m:
            relative, closest = self._separate(hands, relative, target)
        change = relative - self._relative
        most = targets.max_shift_speed_m_s / self.fps + closing
        if np.linalg.norm(change) > most:  # the wrists' extra speed stays bounded
            relative = self._relative + _clamped(change, most)
            d, _ = _pairs_within(hands, relative, target)
            closest = float(d.min()) if d.size else max(closest, target)
        self._relative = relative
        self._remember(qpos, T_world_base, relative)
        self._crossed = closest < target - targets.crossed_slack_m
        shift = np.stack([-0.5 * relative, 0.5 * relative])
        return ContactCorrection(shift_m=shift, human_m=float(human_m), target_m=target,
                                 before_m=before, after_m=closest)

    def _remember(self, qpos: Sequence[np.ndarray], T_world_base: Sequence[pin.SE3],
                  relative: np.ndarray) -> None:
        """Keep a corrected frame's joints and shifted base links (for
        :meth:`finger_clearance`)."""
        self._last = ([np.array(u, dtype=np.float64) for u in qpos],
                      [pin.SE3(T.rotation, T.translation + sign * 0.5 * relative)
                       for T, sign in zip(T_world_base, (-1.0, 1.0), strict=True)])

    def _separate(self, hands: _Hands, relative: np.ndarray, target: float
                  ) -> tuple[np.ndarray, float]:
        """Links still crossed (fingers between fingers: their normals oppose, and no small
        shift undoes them): move the hands apart along the line between their base links
        until no pair is short of the target, by conservative steps (each pair's shortfall
        over its normal's component along the line, that component taken as at least 0.5:
        a pair whose normal opposes the line is passed within a couple of steps)."""
        left, right = hands.hands
        line = (right.t + 0.5 * relative) - (left.t - 0.5 * relative)
        line /= max(float(np.linalg.norm(line)), 1e-9)
        limit = 2.0 * self.targets.max_shift_m
        closest = -math.inf
        for step in range(self.targets.separation_steps + 1):
            d, n = _pairs_within(hands, relative, target)
            closest = float(d.min()) if d.size else target
            if not d.size or step == self.targets.separation_steps \
                    or np.linalg.norm(relative) >= limit:
                break
            advance = float(np.max((target - d) / np.maximum(n @ line, 0.5)))
            relative = _clamped(relative + advance * line, limit)
        return relative, closest


class _Hand:
    """One hand's geometry for a frame: poses and bounding spheres in its base-link frame,
    and the base link's pose; the world poses of a shifted hand are made on demand."""

    def __init__(self, model: HandCollisionModel, u: np.ndarray, T_world_base: pin.SE3
                 ) -> None:
        self.model = model
        self.H, centres, self.radius = model.local_spheres(u)
        self.R = np.asarray(T_world_base.rotation)
        self.t = np.asarray(T_world_base.translation)
        self.centres = centres @ self.R.T + self.t  # (g, 3) world, unshifted
        self._R_world = self.R @ self.H[:, :3, :3]  # (g, 3, 3) geometry rotations, world
        self._p_world = (self.R @ self.H[:, :3, 3:])[:, :, 0] + self.t  # (g, 3) unshifted

    def pose(self, k: int, shift: np.ndarray) -> pin.SE3:
        """World pose of geometry ``k`` with the hand shifted by ``shift``."""
        return pin.SE3(self._R_world[k], self._p_world[k] + shift)


def _clamped(vector: np.ndarray, most: float) -> np.ndarray:
    """``vector`` scaled down to length ``most`` when longer."""
    norm = float(np.linalg.norm(vector))
    return vector * (most / norm) if norm > most else vector


class _Hands:
    """Both hands of one frame and the distance queries made so far at each shift: the
    correction asks some again (the first step's at the unshifted hands, the closest pair
    after the pairs within the target, the crossed links' check), and coal's answer to the
    same query is the same."""

    def __init__(self, hands: Sequence[_Hand]) -> None:
        self.hands = tuple(hands)
        self._gaps: dict[bytes, np.ndarray] = {}
        self._pairs: dict[tuple[bytes, int, int], tuple[float, np.ndarray]] = {}
        self._poses: dict[tuple[bytes, int, int], pin.SE3] = {}

    def gaps(self, relative: np.ndarray) -> np.ndarray:
        """(g_left, g_right) lower bounds of the pair distances from the bounding spheres, the
        hands shifted by ``-relative / 2`` and ``+relative / 2``."""
        key = relative.tobytes()
        lower = self._gaps.get(key)
        if lower is None:
            left, right = self.hands
            diff = (right.centres + 0.5 * relative)[None] - (left.centres - 0.5 * relative)[
                :, None]
            # np.linalg.norm(diff, axis=-1), without its wrapper
            lower = np.sqrt(np.add.reduce(diff * diff, axis=-1)) - left.radius[:, None] \
                - right.radius[None]
            self._gaps[key] = lower
        return lower

    def pair(self, relative: np.ndarray, i: int, j: int) -> tuple[float, np.ndarray]:
        """Signed distance and normal (left to right) of the left hand's geometry ``i`` and
        the right hand's ``j``, the hands shifted as in :meth:`gaps`."""
        key = (relative.tobytes(), i, j)
        found = self._pairs.get(key)
        if found is None:
            left, right = self.hands
            found = self._pairs[key] = left.model.pair_distance(
                i, self._pose(0, i, relative), right.model, j, self._pose(1, j, relative))
        return found

    def _pose(self, side: int, k: int, relative: np.ndarray) -> pin.SE3:
        key = (relative.tobytes(), side, k)
        pose = self._poses.get(key)
        if pose is None:
            shift = -0.5 * relative if side == 0 else 0.5 * relative
            pose = self._poses[key] = self.hands[side].pose(k, shift)
        return pose


def _as_hands(hands: _Hands | Sequence[_Hand]) -> _Hands:
    return hands if isinstance(hands, _Hands) else _Hands(hands)


def _pairs_within(hands: _Hands | Sequence[_Hand], relative: np.ndarray, within: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Signed distances (k,) and normals (k, 3) (left to right) of every pair closer than
    ``within``; coal is called only where the bounding spheres are that close."""
    hands = _as_hands(hands)
    found = [hands.pair(relative, int(i), int(j))
             for i, j in zip(*np.nonzero(hands.gaps(relative) < within), strict=True)]
    found = [(d, n) for d, n in found if d < within]
    if not found:
        return np.zeros(0), np.zeros((0, 3))
    return np.array([d for d, _ in found]), np.array([n for _, n in found])


def _closest(hands: _Hands | Sequence[_Hand], relative: np.ndarray, beyond: float
             ) -> tuple[float, np.ndarray | None]:
    """The closest pair's distance and normal, checking pairs in the order of their sphere
    bounds; ``(inf, None)`` when no bound is below ``beyond``."""
    hands = _as_hands(hands)
    lower = hands.gaps(relative)
    flat = lower.ravel()
    best, normal = math.inf, None
    for k in np.argsort(flat):
        if flat[k] >= min(best, beyond):
            break
        i, j = divmod(int(k), lower.shape[1])
        distance, n = hands.pair(relative, i, j)
        if distance < best:
            best, normal = distance, n
    return best, normal


def _shift(excess: np.ndarray, normals: np.ndarray, pull_normal: np.ndarray | None,
           pull_excess: float, pull_weight: float, offset: np.ndarray, continuity: float
           ) -> np.ndarray:
    """The change ``x`` (3,) of the relative shift minimising ``sum min(0, e_k + n_k . x)^2 +
    w^2 (p + n_p . x)^2 + c |offset + x|^2``: hinged pairs with ``e_k`` their distance above
    the target (negative: short of it), the pull on the closest pair (``p`` its distance
    above the target, ``w`` the pull weight), and the continuity term (``offset``: the current
    shift's departure from where the last frame's would have faded to). Active-set
    iterations from the pairs short of the target."""
    A, b = normals, -excess  # (k, 3), (k,)
    hinged = np.ones(len(A), dtype=bool)
    if pull_normal is not None:
        A = np.concatenate([A, pull_weight * pull_normal[None]])
        b = np.append(b, -pull_weight * pull_excess)
        hinged = np.append(hinged, False)
    active = ~hinged | (b > 0.0)
    x = np.zeros(3)
    for _ in range(8):
        A_a, b_a = A[active], b[active]
        x = np.linalg.solve(A_a.T @ A_a + continuity * np.eye(3),
                            A_a.T @ b_a - continuity * offset)
        now = ~hinged | (A @ x < b - 1e-12)  # the hinged pairs still short of the target
        if np.array_equal(now, active):
            break
        active = now
    return x
