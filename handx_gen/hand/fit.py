"""Faithful MANO fits of tracked keypoints: a skeleton per clip, a weighted fit per frame.

Why not the analytic inverse kinematics alone (:mod:`handx_gen.hand.ik`): it points every
bone where the observation points it and cannot trade one keypoint's error against another's,
so the errors of the bones add up along the finger. On tracker keypoints (3 mm jitter per
axis, depth errors along the camera's view axis: :mod:`handx_gen.data.tracker_noise`) it
leaves the fingertips 9 mm (median) and 20 mm (95th percentile) from the observations, pinches
under 2 cm 3-4 mm off (median; 9 mm at the 95th percentile), and its swing-only thumb turns
noise into up to 55 degrees of sideways bending at the thumb's tip joint, whose range is +-15
(``benchmarks/bench_fit.py``). The fingertips are what contacts and pinches are made of, so
this fit puts them first:

1. **Palm, per clip.** The six palm keypoints (wrist, thumb CMC, the four MCP joints) move
   rigidly with the root. Their shape for the clip is the generalised-Procrustes mean over the
   frames (each frame rotated and moved onto the current mean, the per-point median of the
   aligned frames, :data:`_PROCRUSTES_ROUNDS` rounds), turned into the canonical hand frame
   by the rotation that best aligns it with the default skeleton's palm. Palm proportions,
   the MCP arc and the thumb's base therefore come from the data.
2. **Root, per frame.** The least-squares rotation (Kabsch) and translation of that palm onto
   the observed one (centroids matched: the wrist need not be exact, the MCP joints, from
   which the fingers hang, are as close as the palm allows).
3. **Fingers, per frame.** Each finger's nine anatomical angles (flexion, abduction and twist
   of its three joints, :mod:`handx_gen.hand.limits`), from the analytic solution brought into
   the joint ranges, by damped Gauss-Newton (Levenberg-Marquardt with analytic Jacobians, all
   frames and fingers at once) on::

       sum_k w_k |p_k - o_k|^2                   fingertips w = tip_weight, the finger's
                                                 other keypoints joint_weight
       + (range_weight * excess over the range)^2    per angle (soft joint ranges)
       + (prior_weight * angle)^2                    twist and abduction of the joints
                                                     that have (nearly) none

   The ranges are soft on purpose: a pose the observations put far outside them (a finger
   bent backwards by a glitch) is fitted there, where a quality filter
   (:mod:`handx_gen.data.filters`) sees it and names it; noise is not worth the penalty.
4. **Bone lengths, per clip.** Given the fitted bone directions, the keypoints are linear in
   the bone lengths, so each finger's three lengths are the weighted least-squares ones over
   the frames (frames whose fingertip misses by more than :data:`_LENGTH_OUTLIER_M` after the
   previous round are left out). Steps 3 and 4 alternate ``rounds`` times, from the bones'
   median observed lengths.

Nothing is smoothed over time: each frame is fitted to its own observation, so jitter and
glitches stay in the fit (a filter judges them). Numpy only, float64; about 0.1 s per second
of a two-hand clip at 30 fps on one core.

What it cannot do: no rigid hand reproduces a tracker's depth errors. A finger pointing along
the view axis and reported 20 % short is fitted bent, to put its tip where it was seen (its
middle joints 1-3 cm off); one reported longer than the finger is left short at the tip (the
95th percentile of the fingertip error). A thumb reported much shorter than it is may be
fitted bent back at one joint and forward at the next, out of its ranges: the filter drops
such frames.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from handx_gen.errors import ConfigError, HandModelError
from handx_gen.hand.ik import PALM_MANO_JOINTS, _as_keypoints, _kabsch, inverse_kinematics
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.limits import (
    anatomical_bounds,
    anatomical_to_pose,
    joint_frames,
    pose_to_anatomical,
)
from handx_gen.hand.rotations import matrix_to_axis_angle
from handx_gen.hand.skeleton import HandSkeleton, _as_side, default_skeleton
from handx_gen.hand.topology import (
    FINGER_MANO_JOINTS,
    KEYPOINT_FROM_MANO_JOINT,
    KEYPOINT_NAMES,
    KEYPOINT_PARENTS,
    NUM_KEYPOINTS,
    TIP_KEYPOINTS,
    Finger,
    HandSide,
    bone_lengths,
    finger_keypoints,
)

__all__ = [
    'FitConfig',
    'HandFit',
    'fit_hand',
]

_PALM_KEYPOINTS = [KEYPOINT_FROM_MANO_JOINT[j] for j in PALM_MANO_JOINTS]
_PROCRUSTES_ROUNDS = 3
# A fingertip further than this from the fit is left out of the next bone-length estimate
# (a glitch or a lost joint, not the finger's length). Modelling choice, metres.
_LENGTH_OUTLIER_M = 0.015
_MIN_DAMPING = 1e-9

# Angles with a prior towards zero, per joint of a chain (base, middle, distal) and per angle
# (flexion, abduction, twist): the long fingers' MCP twist and their PIP and DIP abduction and
# twist (hinges), the thumb's MCP twist and its IP abduction and twist (a hinge whose axis is
# oblique to ours, Hollister et al. 1995, see limits.py). The thumb CMC's twist is the
# metacarpal's pronation in opposition, and is left free within its range.
_FINGER_PRIOR = np.array([[0, 0, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float64)
_THUMB_PRIOR = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Weights of :func:`fit_hand`. Defaults and where they come from:

    Attributes:
        tip_weight: 1.0, the weight of a fingertip's squared distance.
        joint_weight: 0.1, the weight of the other finger keypoints' (PIP, DIP; the thumb's
            MCP and IP): a tenth of a fingertip's, so a finger gives up 3 mm at a middle joint
            before 1 mm at its tip. Middle joints are what trackers place worst, and the
            fingertips carry contacts and pinches.
        range_weight_m_per_rad: 0.01: one radian outside a joint's range costs as much as a
            fingertip 1 cm off. Noise of a few millimetres is not worth 10-20 degrees outside a
            range; a finger bent backwards by 60 degrees at a glitch (the fingertip 4-5 cm
            away) is.
        prior_weight_m_per_rad: 0.003: ten degrees of twist or of sideways bending of a hinge
            costs as much as half a millimetre at the fingertip; it settles angles the
            keypoints hardly see (the twist of a straight finger) and keeps the rest at zero
            unless the keypoints want them.
        iterations: 25 damped Gauss-Newton steps per round (most frames converge in under 10).
        rounds: 2 alternations of the per-frame fit and the bone lengths.
    """

    tip_weight: float = 1.0
    joint_weight: float = 0.1
    range_weight_m_per_rad: float = 0.01
    prior_weight_m_per_rad: float = 0.003
    iterations: int = 25
    rounds: int = 2

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    math.isfinite(value) and value >= 0):
                raise ConfigError(f'fit config {field.name!r} must be a finite number >= 0, '
                                  f'got {value!r}')
        if self.tip_weight <= 0.0:
            raise ConfigError(f"fit config 'tip_weight' must be > 0, got {self.tip_weight!r}")
        for name in ('iterations', 'rounds'):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ConfigError(f'fit config {name!r} must be an integer >= 1, got '
                                  f'{getattr(self, name)!r}')
            object.__setattr__(self, name, int(getattr(self, name)))


class HandFit(NamedTuple):
    """One hand's fit of a clip.

    Attributes:
        skeleton: The clip's skeleton (palm shape and bone lengths from the data).
        global_orient: (T, 3) root rotation, axis-angle.
        hand_pose: (T, 15, 3) local rotations, axis-angle, MANO order.
        transl: (T, 3) translation, metres (the fitted wrist is ``J[0] + transl``).
        keypoints: (T, 21, 3) forward kinematics of the fit.
        residual_m: (T, 21) distance of each fitted keypoint from the observed one, metres.
    """

    skeleton: HandSkeleton
    global_orient: np.ndarray
    hand_pose: np.ndarray
    transl: np.ndarray
    keypoints: np.ndarray
    residual_m: np.ndarray


def fit_hand(keypoints: np.ndarray, side: HandSide, *, valid: np.ndarray | None = None,
             config: FitConfig | None = None) -> HandFit:
    """Fit one hand's skeleton and MANO parameters to a clip of keypoints.

    See the module docstring for the method. Keypoints produced by forward kinematics of a
    skeleton of the default shape (any size), with zero-twist poses inside the joint ranges, are
    reproduced to a fraction of a millimetre.

    Args:
        keypoints: (T, 21, 3) keypoints in keypoint order, metres, finite in every frame (fill
            frames without observations from a neighbour and leave them out with ``valid``).
        side: Which hand.
        valid: (T,) bool, the frames with real observations, from which the skeleton is
            fitted; every frame if None. Every frame gets a pose.
        config: Weights; defaults if None.

    Returns:
        The :class:`HandFit`.

    Raises:
        HandModelError: on a wrong shape, non-finite keypoints, an unknown side, no valid
            frame or a bone of zero length in every valid frame.
    """
    side = _as_side(side)
    config = FitConfig() if config is None else config
    kp = _as_keypoints(keypoints, 'fit_hand')
    if kp.ndim != 3 or kp.shape[0] == 0:
        raise HandModelError(f'fit_hand: keypoints must have shape (T, 21, 3) with T >= 1, got '
                             f'shape {kp.shape}')
    num_frames = kp.shape[0]
    if valid is None:
        valid = np.ones(num_frames, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != (num_frames,):
        raise HandModelError(f'fit_hand: valid must have shape ({num_frames},), got '
                             f'{valid.shape}')
    if not valid.any():
        raise HandModelError('fit_hand: no valid frame to fit a skeleton to')

    template = default_skeleton(side)
    palm_rest = _palm_shape(kp[valid][:, _PALM_KEYPOINTS], template)  # (6, 3)
    lengths = np.median(bone_lengths(kp[valid]), axis=0)  # (20,)
    short = np.flatnonzero(~(lengths > 1e-6))
    if short.size:
        bone = int(short[0])
        raise HandModelError(f'fit_hand: the bone {KEYPOINT_NAMES[KEYPOINT_PARENTS[bone + 1]]} '
                             f'-> {KEYPOINT_NAMES[bone + 1]} has median length '
                             f'{lengths[bone]:.3g} m; keypoints must be distinct')
    skeleton = _skeleton(template, palm_rest, lengths)

    angles = None
    for round_ in range(config.rounds):
        rot_root, transl = _fit_root(kp, skeleton)
        if angles is None:
            angles = _initial_angles(kp, skeleton)
        angles = _fit_fingers(kp, skeleton, rot_root, transl, angles, config)
        if round_ + 1 < config.rounds:
            lengths = _refit_lengths(kp, valid, skeleton, rot_root, transl, angles, lengths,
                                     config)
            skeleton = _skeleton(template, palm_rest, lengths)

    global_orient = matrix_to_axis_angle(rot_root)
    hand_pose = np.asarray(anatomical_to_pose(angles, skeleton))
    fitted = forward_kinematics(global_orient, hand_pose, transl, skeleton)  # (T, 21, 3)
    return HandFit(
        skeleton=skeleton,
        global_orient=global_orient,
        hand_pose=hand_pose,
        transl=transl,
        keypoints=fitted,
        residual_m=np.linalg.norm(fitted - kp, axis=-1),
    )


# ---------------------------------------------------------------------------- skeleton


def _palm_shape(palm: np.ndarray, template: HandSkeleton) -> np.ndarray:
    """(6, 3) the clip's rigid palm in the canonical hand frame, centred like the template's.

    Args:
        palm: (n, 6, 3) observed palm keypoints.
        template: The default skeleton whose palm fixes the orientation.
    """
    rest = template.keypoints_rest()[_PALM_KEYPOINTS]  # (6, 3)
    rest_centre = rest.mean(axis=0)
    centred = palm - palm.mean(axis=1, keepdims=True)  # (n, 6, 3)
    shape = np.median(centred, axis=0)  # a first guess; the rounds below fix it
    if not np.linalg.norm(shape) > 1e-6:
        shape = rest - rest_centre
    for _ in range(_PROCRUSTES_ROUNDS):
        rot = _kabsch(shape, centred)  # (n, 3, 3): rot @ shape ~ centred
        aligned = np.einsum('nji,nkj->nki', rot, centred)  # rot^T @ centred
        shape = np.median(aligned, axis=0)
        shape -= shape.mean(axis=0)
    rot = _kabsch(shape, (rest - rest_centre)[None])[0]
    return shape @ rot.T + rest_centre


def _skeleton(template: HandSkeleton, palm_rest: np.ndarray, lengths: np.ndarray
              ) -> HandSkeleton:
    """The palm joints at ``palm_rest``, each finger bone along the template's rest direction
    with its length from ``lengths`` (20,)."""
    rest = template.keypoints_rest()  # (21, 3)
    parents = np.asarray(KEYPOINT_PARENTS[1:])
    directions = rest[1:] - rest[parents]
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    out = np.zeros_like(rest)
    out[_PALM_KEYPOINTS] = palm_rest
    for child in range(1, NUM_KEYPOINTS):  # parents come first in keypoint order
        if child not in _PALM_KEYPOINTS:
            out[child] = out[KEYPOINT_PARENTS[child]] + lengths[child - 1] * directions[child - 1]
    return HandSkeleton(side=template.side, joints_rest=out[list(KEYPOINT_FROM_MANO_JOINT)],
                        tips_rest=out[list(TIP_KEYPOINTS)])


def _fit_root(kp: np.ndarray, skeleton: HandSkeleton) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 3) root rotations and (T, 3) translations placing the rest palm on the observed
    one (centroids matched)."""
    rest_palm = skeleton.keypoints_rest()[_PALM_KEYPOINTS]  # (6, 3)
    obs_palm = kp[:, _PALM_KEYPOINTS]  # (T, 6, 3)
    rot = _kabsch(rest_palm, obs_palm)
    wrist_rest = skeleton.joints_rest[0]
    # p = R (J - J0) + J0 + transl, with the palm's centroid on the observed centroid.
    transl = (obs_palm.mean(axis=1) - np.einsum('tij,j->ti', rot, rest_palm.mean(axis=0)
                                                - wrist_rest) - wrist_rest)
    return rot, transl


def _initial_angles(kp: np.ndarray, skeleton: HandSkeleton) -> np.ndarray:
    """(T, 15, 3) anatomical angles of the analytic IK (hinge fingers), clipped into the joint
    ranges (a start from inside the ranges ends inside them unless the keypoints insist)."""
    pose = inverse_kinematics(kp, skeleton, hinge_fingers=True).hand_pose
    angles = np.asarray(pose_to_anatomical(pose, skeleton))
    bounds = anatomical_bounds()
    return np.clip(angles, bounds.lower, bounds.upper)


# ---------------------------------------------------------------------------- finger fit


class _Chains(NamedTuple):
    """The five finger chains of a skeleton, stacked (finger in keypoint order thumb..little).

    Attributes:
        rows: (5, 3) rows of ``hand_pose`` of each chain's joints, base to distal.
        base: (5, 3) rest position of each chain's base joint.
        offsets: (5, 3, 3) rest vectors from each joint to its child (next joint or tip).
        frames: (5, 3, 3, 3) anatomical frames of the joints (columns flexion, abduction,
            twist axes).
        lower, upper: (5, 3, 3) joint ranges.
        prior: (5, 3, 3) 1 where an angle has a prior towards zero.
        targets: (5, 3) keypoints each chain's joints move: the two middle ones and the tip.
    """

    rows: np.ndarray
    base: np.ndarray
    offsets: np.ndarray
    frames: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    prior: np.ndarray
    targets: np.ndarray


def _chains(skeleton: HandSkeleton) -> _Chains:
    joints, tips = skeleton.joints_rest, skeleton.tips_rest
    frames = joint_frames(skeleton)  # (15, 3, 3)
    bounds = anatomical_bounds()
    rows, base, offsets, targets = [], [], [], []
    for finger in Finger:
        chain = FINGER_MANO_JOINTS[finger]
        points = [joints[j] for j in chain] + [tips[finger]]
        rows.append([j - 1 for j in chain])
        base.append(points[0])
        offsets.append([points[k + 1] - points[k] for k in range(3)])
        targets.append(list(finger_keypoints(finger)[1:]))
    rows = np.asarray(rows)
    prior = np.stack([_THUMB_PRIOR if f is Finger.THUMB else _FINGER_PRIOR for f in Finger])
    return _Chains(rows=rows, base=np.asarray(base), offsets=np.asarray(offsets),
                   frames=frames[rows], lower=bounds.lower[rows], upper=bounds.upper[rows],
                   prior=prior, targets=np.asarray(targets))


def _rodrigues(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices of rotation vectors (..., 3)."""
    theta_sq = np.sum(v * v, axis=-1)[..., None, None]
    theta = np.sqrt(theta_sq)
    small = theta_sq < 1e-12
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta_sq / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta_sq / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    k = np.zeros(v.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return np.eye(3) + a * k + b * (k @ k)


def _left_jacobian(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) left Jacobian of the exponential map of SO(3) at rotation vectors (..., 3):
    ``d exp(v) = [J(v) dv]x exp(v)``."""
    theta_sq = np.sum(v * v, axis=-1)[..., None, None]
    theta = np.sqrt(theta_sq)
    small = theta_sq < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 0.5 - theta_sq / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    b = np.where(small, 1.0 / 6.0 - theta_sq / 120.0, (safe - np.sin(safe)) / (safe ** 3))
    k = np.zeros(v.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return np.eye(3) + a * k + b * (k @ k)


class _ChainPose(NamedTuple):
    """Forward kinematics of a batch of three-joint chains.

    Attributes:
        points: (B, 3, 3) world positions of the chain's two middle joints and its tip.
        rots: (B, 3, 3, 3) world rotations of the three joints.
        axes: (B, 3, 3, 3) per joint and angle (flexion, abduction, twist), the world axis
            about which a unit change of that angle turns everything beyond the joint.
    """

    points: np.ndarray
    rots: np.ndarray
    axes: np.ndarray


def _chain_pose(angles: np.ndarray, rot_base: np.ndarray, p_base: np.ndarray,
                frames: np.ndarray, offsets: np.ndarray) -> _ChainPose:
    """Forward kinematics of chains of three joints, with the axes of their angles.

    A joint's local rotation is ``S T``, the swing ``S = exp(flexion f + abduction a)`` after
    the twist ``T = exp(twist k)`` (:mod:`handx_gen.hand.limits`). With ``G`` the parent's
    world rotation, a change of the twist turns the rest of the chain about ``G S k``, and a
    change ``ds`` of the swing vector about ``G J(s) ds`` (``J`` the left Jacobian of the
    exponential map).

    Args:
        angles: (B, 3, 3) anatomical angles per joint.
        rot_base: (B, 3, 3) world rotation of the chain's parent (the root).
        p_base: (B, 3) world position of the chain's base joint.
        frames: (B, 3, 3, 3) anatomical frames.
        offsets: (B, 3, 3) rest offsets from each joint to its child.
    """
    swing_vec = angles[..., 0:1] * frames[..., 0] + angles[..., 1:2] * frames[..., 1]
    swing = _rodrigues(swing_vec)  # (B, 3, 3, 3)
    local = swing @ _rodrigues(angles[..., 2:3] * frames[..., 2])
    swing_axes = _left_jacobian(swing_vec) @ frames[..., :2]  # (B, 3, 3, 2) columns
    rot, point = rot_base, p_base
    points, rots, axes = [], [], []
    for joint in range(3):
        twist_axis = swing[:, joint] @ frames[:, joint, :, 2:3]  # (B, 3, 1)
        axes.append(np.swapaxes(rot @ np.concatenate([swing_axes[:, joint], twist_axis],
                                                     axis=-1), -1, -2))  # (B, 3 angles, 3)
        rot = rot @ local[:, joint]
        point = point + np.einsum('bij,bj->bi', rot, offsets[:, joint])
        points.append(point)
        rots.append(rot)
    return _ChainPose(np.stack(points, axis=1), np.stack(rots, axis=1), np.stack(axes, axis=1))


class _ChainProblem(NamedTuple):
    """The least-squares problem of a batch of chains (see :func:`_fit_fingers`)."""

    rot_base: np.ndarray  # (B, 3, 3)
    p_base: np.ndarray  # (B, 3)
    frames: np.ndarray  # (B, 3, 3, 3)
    offsets: np.ndarray  # (B, 3, 3)
    lower: np.ndarray  # (B, 3, 3)
    upper: np.ndarray  # (B, 3, 3)
    prior: np.ndarray  # (B, 3, 3) prior weights, m/rad
    observed: np.ndarray  # (B, 3, 3)
    point_weight: np.ndarray  # (B, 3) square roots of the targets' weights
    range_weight: float

    def take(self, index: np.ndarray) -> _ChainProblem:
        """The problem of the chains ``index``."""
        return self._replace(**{name: getattr(self, name)[index] for name in (
            'rot_base', 'p_base', 'frames', 'offsets', 'lower', 'upper', 'prior', 'observed',
            'point_weight')})

    def residuals(self, x: np.ndarray, jacobian: bool = False
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, 27) residuals at angles ``x`` (B, 9): weighted point errors, range excess and
        priors; with ``jacobian``, also (B, 27, 9) their derivatives."""
        batch = x.shape[0]
        a = x.reshape(batch, 3, 3)
        pose = _chain_pose(a, self.rot_base, self.p_base, self.frames, self.offsets)
        below, above = self.lower - a, a - self.upper
        excess = np.maximum(below, 0.0) + np.maximum(above, 0.0)
        w = self.point_weight[:, :, None]
        r = np.concatenate([
            ((pose.points - self.observed) * w).reshape(batch, 9),
            self.range_weight * excess.reshape(batch, 9),
            (self.prior * a).reshape(batch, 9),
        ], axis=1)
        if not jacobian:
            return r, None
        jac = np.zeros((batch, 27, 9))
        starts = np.concatenate([self.p_base[:, None], pose.points[:, :2]], axis=1)  # joints
        for k in range(3):  # target point k moves with joints 0..k
            for joint in range(k + 1):
                lever = pose.points[:, k] - starts[:, joint]  # (B, 3)
                d = np.cross(pose.axes[:, joint], lever[:, None])  # (B, 3 angles, 3)
                jac[:, 3 * k:3 * k + 3, 3 * joint:3 * joint + 3] = (
                    self.point_weight[:, k, None, None] * np.swapaxes(d, -1, -2))
        slope = np.where(below > 0.0, -1.0, np.where(above > 0.0, 1.0, 0.0))
        idx = np.arange(9)
        jac[:, 9 + idx, idx] = self.range_weight * slope.reshape(batch, 9)
        jac[:, 18 + idx, idx] = self.prior.reshape(batch, 9)
        return r, jac


def _target_weights(config: FitConfig) -> np.ndarray:
    """(5, 3) weights of each finger's three targets (middle joints, tip)."""
    return np.tile([config.joint_weight, config.joint_weight, config.tip_weight],
                   (len(Finger), 1))


def _problem(kp: np.ndarray, skeleton: HandSkeleton, rot_root: np.ndarray,
             transl: np.ndarray, config: FitConfig) -> tuple[_ChainProblem, _Chains]:
    """The chain problem of every frame and finger (batch b = frame * 5 + finger)."""
    num_frames = kp.shape[0]
    chains = _chains(skeleton)
    wrist_rest = skeleton.joints_rest[0]
    p_base = (np.einsum('tij,fj->tfi', rot_root, chains.base - wrist_rest)
              + (wrist_rest + transl)[:, None]).reshape(-1, 3)  # (B, 3)
    problem = _ChainProblem(
        rot_base=np.repeat(rot_root, len(Finger), axis=0),
        p_base=p_base,
        frames=np.tile(chains.frames, (num_frames, 1, 1, 1)),
        offsets=np.tile(chains.offsets, (num_frames, 1, 1)),
        lower=np.tile(chains.lower, (num_frames, 1, 1)),
        upper=np.tile(chains.upper, (num_frames, 1, 1)),
        prior=np.tile(chains.prior, (num_frames, 1, 1)) * config.prior_weight_m_per_rad,
        observed=kp[:, chains.targets].reshape(-1, 3, 3),
        point_weight=np.tile(np.sqrt(_target_weights(config)), (num_frames, 1)),
        range_weight=config.range_weight_m_per_rad,
    )
    return problem, chains


def _fit_fingers(kp: np.ndarray, skeleton: HandSkeleton, rot_root: np.ndarray,
                 transl: np.ndarray, angles: np.ndarray, config: FitConfig) -> np.ndarray:
    """(T, 15, 3) anatomical angles of every finger fitted to the keypoints (Levenberg-
    Marquardt on all frames and fingers at once), starting from ``angles``."""
    problem, chains = _problem(kp, skeleton, rot_root, transl, config)
    x = angles[:, chains.rows].reshape(-1, 9)  # (B, 9)
    r, jac = problem.residuals(x, jacobian=True)
    cost = np.sum(r * r, axis=1)
    damping = np.full(x.shape[0], 1e-6)
    active = np.arange(x.shape[0])  # chains still improving
    eye = np.eye(9)
    for _ in range(config.iterations):
        sub = problem.take(active)
        j, res = jac[active], r[active]
        jt = np.swapaxes(j, -1, -2)
        normal = jt @ j  # (n, 9, 9)
        # Damping in proportion to the system's scale, so that keypoints in any unit (or
        # absurdly far away) still give a solvable system.
        scale = np.trace(normal, axis1=-2, axis2=-1)[:, None, None] / 9.0 + 1e-30
        delta = -np.linalg.solve(normal + (damping[active, None, None] + _MIN_DAMPING) * scale
                                 * eye, jt @ res[..., None])[..., 0]
        candidate = x[active] + delta
        r_new, jac_new = sub.residuals(candidate, jacobian=True)
        cost_new = np.sum(r_new * r_new, axis=1)
        better = cost_new < cost[active]
        gain = np.where(better, cost[active] - cost_new, 0.0)
        moved = active[better]
        x[moved], r[moved], jac[moved] = candidate[better], r_new[better], jac_new[better]
        cost[moved] = cost_new[better]
        damping[active] = np.where(better, np.maximum(damping[active] * 0.3, 1e-9),
                                   damping[active] * 10.0)
        # A chain is done when an accepted step gains under a millionth of its cost, or when
        # no step short enough to be accepted is left.
        done = (better & (gain <= 1e-6 * cost[active] + 1e-16)) | (damping[active] > 1e6)
        active = active[~done]
        if active.size == 0:
            break
    out = angles.copy()
    out[:, chains.rows] = x.reshape(kp.shape[0], len(Finger), 3, 3)
    return out


# ---------------------------------------------------------------------------- bone lengths


def _refit_lengths(kp: np.ndarray, valid: np.ndarray, skeleton: HandSkeleton,
                   rot_root: np.ndarray, transl: np.ndarray, angles: np.ndarray,
                   lengths: np.ndarray, config: FitConfig) -> np.ndarray:
    """(20,) keypoint bone lengths: the palm's as they are, each finger's three by weighted
    least squares given the fitted bone directions (valid frames whose fingertip is within
    :data:`_LENGTH_OUTLIER_M`)."""
    chains = _chains(skeleton)
    num_frames = kp.shape[0]
    nf = len(Finger)
    wrist_rest = skeleton.joints_rest[0]
    p_base = (np.einsum('tij,fj->tfi', rot_root, chains.base - wrist_rest)
              + (wrist_rest + transl)[:, None])  # (T, 5, 3)
    a = angles[:, chains.rows].reshape(-1, 3, 3)
    pose = _chain_pose(a, np.repeat(rot_root, nf, axis=0), p_base.reshape(-1, 3),
                       np.tile(chains.frames, (num_frames, 1, 1, 1)),
                       np.tile(chains.offsets, (num_frames, 1, 1)))
    points, rots = pose.points.reshape(num_frames, nf, 3, 3), pose.rots
    rest_length = np.linalg.norm(chains.offsets, axis=-1)  # (5, 3)
    unit = chains.offsets / rest_length[..., None]  # (5, 3, 3)
    directions = np.einsum('tfjik,fjk->tfji', rots.reshape(num_frames, nf, 3, 3, 3),
                           unit)  # (T, 5, 3 bones, 3)
    observed = kp[:, chains.targets]  # (T, 5, 3, 3)
    tip_miss = np.linalg.norm(points[:, :, 2] - observed[:, :, 2], axis=-1)  # (T, 5)
    weights = _target_weights(config)  # (5, 3)
    out = lengths.copy()
    for finger in Finger:
        weight = weights[finger]
        use = valid & (tip_miss[:, finger] < _LENGTH_OUTLIER_M)
        if use.sum() < 3:
            continue
        u = directions[use, finger]  # (n, 3 bones, 3)
        target = observed[use, finger] - p_base[use, finger][:, None]  # (n, 3 points, 3)
        # Point k = sum over bones b <= k of L_b u_b.
        lhs = np.zeros((3, 3))
        rhs = np.zeros(3)
        for k in range(3):
            uk = u[:, :k + 1]  # (n, k+1, 3)
            lhs[:k + 1, :k + 1] += weight[k] * np.einsum('nbi,nci->bc', uk, uk)
            rhs[:k + 1] += weight[k] * np.einsum('nbi,ni->b', uk, target[:, k])
        solved = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        if np.all(np.isfinite(solved)) and np.all(solved > 0.25 * rest_length[finger]):
            bones = [t - 1 for t in chains.targets[finger]]  # bone k ends at keypoint k + 1
            out[bones] = solved
    return out

