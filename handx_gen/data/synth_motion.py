"""Timing, posture and placement helpers shared by the synthetic motion primitives.

Timing (minimum-jerk keyframing):

* :func:`minimum_jerk` -- the profile ``10 s^3 - 15 s^4 + 6 s^5`` on ``[0, 1]`` (zero velocity
  and acceleration at both ends; Flash and Hogan 1985).
* :class:`Step` / :class:`Schedule` -- a keyframe sequence: from a start key, each step moves
  to the next key in ``move_s`` with a minimum-jerk profile and holds it for ``hold_s``.
  ``Schedule.track(keys)`` blends arrays (angles, positions), ``Schedule.rotation_track(keys)``
  rotation matrices (geodesic), ``Schedule.frames[i]`` gives each step's frame range
  (:class:`StepFrames`: ``start``, ``arrive``, ``stop``) for planning contacts and actions.
* :func:`jittered` -- a duration (or any positive value) with relative timing jitter;
  :func:`repeated_steps` -- a pattern of steps repeated ``count`` times with tempo and jitter.
* :func:`seconds_to_frames` -- a duration in frames (at least one).
* :func:`sway` -- smooth low-frequency drift (T, 3) (postural sway), to keep holds alive.

Postures (anatomical angles ``(15, 3)`` ``[flexion, abduction, twist]`` in MANO pose order, see
:mod:`handx_gen.hand.limits`; helpers take degrees for readability):

* :func:`set_finger` -- one finger's MCP/PIP/DIP flexion and MCP abduction; the DIP defaults
  to two thirds of the PIP (Rijpkema and Girard 1991).
* :func:`set_thumb` -- the thumb's CMC flexion/abduction/twist and MCP/IP flexion.
* :func:`couple_fingers` -- finger coupling on a whole track: DIP = 2/3 PIP, and ring and
  little each flexed at least a fraction of the other (they share tendon interconnections).
* :func:`clip_to_bounds` -- angles clipped into :func:`handx_gen.hand.limits.synthesis_bounds`.
* :func:`finger_flexion` -- (...) mean flexion of a finger's three joints.
* :func:`schedule_finger_actions` -- the plan's bend/extend/hold entries of every finger of
  both hands, read off a :class:`Schedule` and the angle track it produced.

Placement and conversion:

* :func:`wrist_rotation` -- ``R_world_wrist`` from where the fingers point and where the palm
  faces in the world (either hand).
* :func:`rotation_about` -- rotation matrices about an axis (Rodrigues).
* :func:`local_keypoints` -- keypoints of a posture in the wrist frame (wrist at the origin).
* :func:`place_keypoints` -- wrist-frame keypoints moved to a wrist pose: ``p + R @ local``.
* :func:`clip_keypoints` -- (T, 2, 21, 3) world keypoints of a primitive's targets.
* :func:`clip_to_motion` -- a :class:`~handx_gen.motion.BimanualMotion` from a primitive's
  targets (``anatomical_to_pose``; ``global_orient`` from ``R_world_wrist``; ``transl =
  p_world_wrist - skeleton.joints_rest[0]``).
* :func:`touching_intervals` -- the runs of frames where a distance is within a threshold
  (realised contacts for the plan).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from handx_gen.errors import ConfigError
from handx_gen.hand.kinematics import forward_kinematics
from handx_gen.hand.limits import anatomical_to_pose, synthesis_bounds
from handx_gen.hand.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from handx_gen.hand.skeleton import HandSkeleton
from handx_gen.hand.topology import FINGER_MANO_JOINTS, Finger, HandSide

if TYPE_CHECKING:
    from handx_gen.data.plan import PlannedFingerAction
    from handx_gen.data.synth_base import PrimitiveClip
    from handx_gen.motion import BimanualMotion

__all__ = [
    'ACTION_JOINT_STILL_RAD',
    'ACTION_MIN_TOTAL_RAD',
    'DIP_PIP_RATIO',
    'RING_LITTLE_COUPLING',
    'Schedule',
    'Step',
    'StepFrames',
    'clip_keypoints',
    'clip_to_bounds',
    'clip_to_motion',
    'couple_fingers',
    'finger_flexion',
    'jittered',
    'local_keypoints',
    'minimum_jerk',
    'place_keypoints',
    'repeated_steps',
    'rotation_about',
    'schedule_finger_actions',
    'seconds_to_frames',
    'set_finger',
    'set_thumb',
    'sway',
    'touching_intervals',
    'wrist_rotation',
]

DIP_PIP_RATIO = 2.0 / 3.0  # DIP flexion per PIP flexion in free motion (Rijpkema & Girard)
# Ring and little fingers: each flexes at least this fraction of the other's flexion (their
# extensor tendons are linked by the juncturae tendinum; an isolated little-finger curl drags
# the ring finger along).
RING_LITTLE_COUPLING = 0.35


# ----------------------------------------------------------------------------- timing


def minimum_jerk(s: np.ndarray | float) -> np.ndarray:
    """The minimum-jerk position profile on ``[0, 1]`` (input clipped to it)."""
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, 1.0)
    return s * s * s * (10.0 + s * (-15.0 + 6.0 * s))


def seconds_to_frames(seconds: float, fps: float) -> int:
    """A duration in frames, rounded, at least one."""
    return max(1, int(round(float(seconds) * float(fps))))


def jittered(value: float, rng: np.random.Generator, jitter: float = 0.1) -> float:
    """``value`` times a random factor in ``[1 - jitter, 1 + jitter]`` (uniform)."""
    return float(value) * float(rng.uniform(1.0 - jitter, 1.0 + jitter))


@dataclasses.dataclass(frozen=True)
class Step:
    """Move to the next key in ``move_s`` seconds (minimum jerk), then hold it ``hold_s``."""

    move_s: float
    hold_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class StepFrames:
    """Frames of one step in a :class:`Schedule`, half-open like plan intervals.

    Attributes:
        start: First frame of the move (the previous key was reached on ``start - 1``).
        arrive: First frame at the key (the move is ``[start, arrive)``).
        stop: End of the step: the key is held on ``[arrive, stop)`` (at least the arrival
            frame, so ``stop >= arrive + 1``); the next step starts at ``stop``.
    """

    start: int
    arrive: int
    stop: int


class Schedule:
    """A keyframe sequence: key 0 at frame 0, then one :class:`Step` per further key.

    Each step moves over ``seconds_to_frames(move_s)`` frames, the last of which is at the key,
    then holds for ``round(hold_s * fps)`` more frames. Frames: ``1 + sum(move + hold)``.

    Attributes:
        fps: Frame rate.
        frames: One :class:`StepFrames` per step.
        num_frames: Frames of the sequence.
        segment: (T,) int, the step each frame belongs to (-1 for frame 0).
        progress: (T,) float, minimum-jerk progress of the frame within its step's move (1
            during holds and at frame 0).
    """

    def __init__(self, steps: Sequence[Step], fps: float) -> None:
        if not steps:
            raise ConfigError('a schedule needs at least one step')
        self.fps = float(fps)
        segment = [-1]
        progress = [1.0]
        frames = []
        for index, step in enumerate(steps):
            if not (step.move_s > 0.0 and step.hold_s >= 0.0):
                raise ConfigError(f'step {index}: move_s must be > 0 and hold_s >= 0, got '
                                  f'{step}')
            move = seconds_to_frames(step.move_s, fps)
            hold = int(round(step.hold_s * fps))
            start = len(segment)
            segment += [index] * (move + hold)
            progress += list(minimum_jerk(np.arange(1, move + 1) / move)) + [1.0] * hold
            frames.append(StepFrames(start, start + move - 1, start + move + hold))
        self.frames: tuple[StepFrames, ...] = tuple(frames)
        self.segment = np.asarray(segment)
        self.progress = np.asarray(progress)
        self.num_frames = len(segment)

    def track(self, keys: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Blend keys: ``keys[0]`` is the start, ``keys[i + 1]`` the target of step ``i``.

        Args:
            keys: (len(steps) + 1, ...) values (angles, positions, scalars).

        Returns:
            (T, ...) the track.
        """
        keys = np.asarray(keys, dtype=np.float64)
        self._check_keys(keys)
        prev = keys[np.maximum(self.segment, 0)]  # (T, ...)
        nxt = keys[self.segment + 1]
        s = self.progress.reshape((-1,) + (1,) * (keys.ndim - 1))
        return np.where(s >= 1.0, nxt, prev + s * (nxt - prev))

    def rotation_track(self, keys: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Blend rotation matrices along the geodesic between consecutive keys.

        Args:
            keys: (len(steps) + 1, 3, 3) rotations.

        Returns:
            (T, 3, 3) rotations.
        """
        keys = np.asarray(keys, dtype=np.float64)
        self._check_keys(keys)
        prev = keys[np.maximum(self.segment, 0)]
        nxt = keys[self.segment + 1]
        relative = matrix_to_axis_angle(np.swapaxes(prev, -1, -2) @ nxt)  # (T, 3)
        return prev @ axis_angle_to_matrix(self.progress[:, None] * relative)

    def _check_keys(self, keys: np.ndarray) -> None:
        if keys.shape[0] != len(self.frames) + 1:
            raise ConfigError(f'schedule of {len(self.frames)} steps needs '
                              f'{len(self.frames) + 1} keys, got {keys.shape[0]}')


def repeated_steps(pattern: Sequence[Step], count: int, rng: np.random.Generator,
                   tempo: float = 1.0, jitter: float = 0.08) -> list[Step]:
    """``pattern`` repeated ``count`` times, durations divided by ``tempo`` and jittered.

    Args:
        pattern: The steps of one repetition.
        count: Repetitions, >= 1.
        rng: Random generator for the jitter.
        tempo: Speed factor (> 0); durations divide by it.
        jitter: Relative jitter of each duration.

    Returns:
        ``count * len(pattern)`` steps.
    """
    if count < 1 or not tempo > 0.0:
        raise ConfigError(f'count must be >= 1 and tempo > 0, got {count} and {tempo}')
    return [Step(jittered(step.move_s / tempo, rng, jitter),
                 jittered(step.hold_s / tempo, rng, jitter))
            for _ in range(count) for step in pattern]


def sway(num_frames: int, fps: float, rng: np.random.Generator, amplitude_m: float = 0.004,
         frequencies_hz: tuple[float, float] = (0.15, 0.6), components: int = 3) -> np.ndarray:
    """Smooth low-frequency drift: a sum of sinusoids with random frequencies and phases.

    Returns:
        (num_frames, 3) offsets with a standard deviation of about ``amplitude_m`` per axis.
    """
    t = np.arange(num_frames) / fps
    out = np.zeros((num_frames, 3))
    for _ in range(components):
        freq = rng.uniform(*frequencies_hz, size=3)
        phase = rng.uniform(0.0, 2.0 * math.pi, size=3)
        out += np.sin(2.0 * math.pi * freq * t[:, None] + phase)
    return out * (amplitude_m * math.sqrt(2.0 / components))


# ----------------------------------------------------------------------------- postures

_PIP_ROW = {f: FINGER_MANO_JOINTS[f][1] - 1 for f in Finger}
_MCP_ROW = {f: FINGER_MANO_JOINTS[f][0] - 1 for f in Finger}
_DIP_ROW = {f: FINGER_MANO_JOINTS[f][2] - 1 for f in Finger}
_LONG_FINGERS = (Finger.INDEX, Finger.MIDDLE, Finger.RING, Finger.LITTLE)


def set_finger(angles: np.ndarray, finger: Finger, mcp_deg: float, pip_deg: float,
               dip_deg: float | None = None, abduction_deg: float = 0.0) -> np.ndarray:
    """Set one long finger's flexion (and MCP abduction) in ``angles`` (..., 15, 3), in place.

    Args:
        angles: Anatomical angles to modify.
        finger: Index, middle, ring or little.
        mcp_deg: MCP flexion, degrees (negative: hyperextension).
        pip_deg: PIP flexion.
        dip_deg: DIP flexion; ``None``: :data:`DIP_PIP_RATIO` of the PIP.
        abduction_deg: MCP abduction away from the middle finger (spread).

    Returns:
        ``angles``.
    """
    if finger not in _LONG_FINGERS:
        raise ConfigError(f'set_finger takes index, middle, ring or little, got {finger!r}; '
                          'use set_thumb for the thumb')
    dip = DIP_PIP_RATIO * pip_deg if dip_deg is None else dip_deg
    angles[..., _MCP_ROW[finger], 0] = math.radians(mcp_deg)
    angles[..., _MCP_ROW[finger], 1] = math.radians(abduction_deg)
    angles[..., _PIP_ROW[finger], 0] = math.radians(pip_deg)
    angles[..., _DIP_ROW[finger], 0] = math.radians(dip)
    return angles


def set_thumb(angles: np.ndarray, cmc_flexion_deg: float = 0.0, cmc_abduction_deg: float = 0.0,
              cmc_twist_deg: float = 0.0, mcp_deg: float = 0.0, ip_deg: float = 0.0
              ) -> np.ndarray:
    """Set the thumb's angles in ``angles`` (..., 15, 3), in place.

    CMC flexion moves the thumb across the palm towards the little finger (negative: radial
    abduction), CMC abduction out of the palm (palmar abduction), negative CMC twist pronates it
    (opposition); MCP and IP flexion curl the tip (see :mod:`handx_gen.hand.limits`).

    Returns:
        ``angles``.
    """
    cmc, mcp, ip = (j - 1 for j in FINGER_MANO_JOINTS[Finger.THUMB])
    angles[..., cmc, :] = np.radians([cmc_flexion_deg, cmc_abduction_deg, cmc_twist_deg])
    angles[..., mcp, 0] = math.radians(mcp_deg)
    angles[..., ip, 0] = math.radians(ip_deg)
    return angles


def couple_fingers(angles: np.ndarray, dip_ratio: float | None = DIP_PIP_RATIO,
                   ring_little: float = RING_LITTLE_COUPLING) -> np.ndarray:
    """Finger coupling on anatomical angles (..., 15, 3); returns a new array.

    * DIP flexion = ``dip_ratio`` * PIP flexion for the four long fingers (``None`` keeps
      the DIPs);
    * ring and little: each joint's flexion is at least ``ring_little`` times the other
      finger's same joint (only positive flexion drags).
    """
    out = np.array(angles, dtype=np.float64)
    if dip_ratio is not None:
        for finger in _LONG_FINGERS:
            out[..., _DIP_ROW[finger], 0] = dip_ratio * out[..., _PIP_ROW[finger], 0]
    if ring_little > 0.0:
        for depth in range(3):
            ring = FINGER_MANO_JOINTS[Finger.RING][depth] - 1
            little = FINGER_MANO_JOINTS[Finger.LITTLE][depth] - 1
            r, li = out[..., ring, 0].copy(), out[..., little, 0].copy()
            out[..., ring, 0] = np.maximum(r, ring_little * li)
            out[..., little, 0] = np.maximum(li, ring_little * r)
    return out


def clip_to_bounds(angles: np.ndarray, margin_rad: float = 1e-3) -> np.ndarray:
    """Angles (..., 15, 3) clipped into the synthesis bounds
    (:func:`~handx_gen.hand.limits.synthesis_bounds`) shrunk by ``margin_rad``."""
    bounds = synthesis_bounds()
    return np.clip(angles, bounds.lower + margin_rad, bounds.upper - margin_rad)


def finger_flexion(angles: np.ndarray, finger: Finger) -> np.ndarray:
    """(...,) mean flexion (radians) of a finger's three joints from angles (..., 15, 3)."""
    rows = [j - 1 for j in FINGER_MANO_JOINTS[finger]]
    return angles[..., rows, 0].mean(axis=-1)


# A step whose finger flexion changes by at least this much in total (sum over the finger's
# three joints, all moving the same way) is a bend or an extension; one whose every joint
# changes by less than the second value is a hold. The builder's transitions use the same.
ACTION_MIN_TOTAL_RAD = math.radians(30.0)
ACTION_JOINT_STILL_RAD = math.radians(5.0)


def schedule_finger_actions(schedule: Schedule, angles: np.ndarray,
                            min_hold_s: float = 0.3) -> list[PlannedFingerAction]:
    """Bend, extend and hold entries for every finger of both hands, step by step.

    A step's move whose flexion change qualifies (see :data:`ACTION_MIN_TOTAL_RAD`) is a bend
    or extension over the move's frames ``[start, arrive + 1)``; steps (move and hold) during
    which the finger stays still are holds, merged across consecutive steps and kept when at
    least ``min_hold_s`` long. Moves in between (small or mixed changes) are left out.

    Args:
        schedule: The schedule that produced the track.
        angles: (T, 2, 15, 3) the angle track (``T == schedule.num_frames``).
        min_hold_s: Shortest hold recorded.

    Returns:
        The entries, by side and finger, in time order.
    """
    from handx_gen.data.plan import FingerAction, PlannedFingerAction

    min_hold = seconds_to_frames(min_hold_s, schedule.fps)
    out: list[PlannedFingerAction] = []
    for side in HandSide:
        for finger in Finger:
            rows = [j - 1 for j in FINGER_MANO_JOINTS[finger]]
            flex = angles[:, side, rows, 0]  # (T, 3)
            hold_start = None
            for frames in schedule.frames:
                before, after = flex[frames.start - 1], flex[frames.arrive]
                window = flex[frames.start - 1:frames.stop]
                change = after - before
                total = float(change.sum())
                still = bool(np.all(np.ptp(window, axis=0) < ACTION_JOINT_STILL_RAD))
                moving = abs(total) >= ACTION_MIN_TOTAL_RAD and bool(np.all(
                    (np.sign(change) == np.sign(total))
                    | (np.abs(change) < ACTION_JOINT_STILL_RAD)))
                if still:
                    hold_start = frames.start if hold_start is None else hold_start
                    continue
                if hold_start is not None and frames.start - hold_start >= min_hold:
                    out.append(PlannedFingerAction(side, finger, hold_start, frames.start,
                                                   FingerAction.HOLD))
                hold_start = None
                if moving:
                    action = FingerAction.BEND if total > 0 else FingerAction.EXTEND
                    out.append(PlannedFingerAction(side, finger, frames.start,
                                                   frames.arrive + 1, action))
            if hold_start is not None and schedule.num_frames - hold_start >= min_hold:
                out.append(PlannedFingerAction(side, finger, hold_start, schedule.num_frames,
                                               FingerAction.HOLD))
    return out


# ----------------------------------------------------------------------------- placement


def rotation_about(axis: Sequence[float] | np.ndarray, angle_rad: np.ndarray | float
                   ) -> np.ndarray:
    """Rotation matrices (..., 3, 3) by ``angle_rad`` (...) about a fixed ``axis`` (3,)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    angle = np.asarray(angle_rad, dtype=np.float64)
    return axis_angle_to_matrix(angle[..., None] * axis)


def wrist_rotation(fingers: np.ndarray, palm: np.ndarray, side: HandSide) -> np.ndarray:
    """``R_world_wrist`` that points the flat hand's fingers along ``fingers`` with the palm
    facing ``palm`` (made perpendicular to ``fingers``).

    In the canonical frame the right hand's fingers point -x and the left hand's +x, palms -y
    (see :mod:`handx_gen.hand.skeleton`); the thumb then lies along ``fingers x palm`` for the
    right hand and ``palm x fingers`` for the left.

    Args:
        fingers: (..., 3) world direction of the fingers (wrist to middle MCP).
        palm: (..., 3) world direction the palm faces.
        side: Which hand.

    Returns:
        (..., 3, 3) rotations.
    """
    f = np.asarray(fingers, dtype=np.float64)
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    n = np.asarray(palm, dtype=np.float64)
    n = n - np.sum(n * f, -1, keepdims=True) * f
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    if HandSide(side) == HandSide.RIGHT:
        # R @ (-x) = f, R @ (-y) = n, R @ z = f x n.
        return np.stack([-f, -n, np.cross(f, n)], axis=-1)
    # R @ x = f, R @ (-y) = n, R @ z = n x f.
    return np.stack([f, -n, np.cross(n, f)], axis=-1)


def local_keypoints(angles: np.ndarray, skeleton: HandSkeleton) -> np.ndarray:
    """Keypoints (..., 21, 3) of anatomical angles (..., 15, 3) in the wrist frame: identity
    wrist rotation, the wrist keypoint at the origin."""
    pose = anatomical_to_pose(np.asarray(angles, dtype=np.float64), skeleton)
    lead = pose.shape[:-2]
    kp = forward_kinematics(np.zeros(lead + (3,)), pose, np.zeros(lead + (3,)), skeleton)
    return kp - skeleton.joints_rest[0]


def place_keypoints(local: np.ndarray, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray
                    ) -> np.ndarray:
    """World keypoints ``p + R @ local`` (broadcast): local (..., 21, 3), R (..., 3, 3),
    p (..., 3)."""
    return p_world_wrist[..., None, :] + local @ np.swapaxes(R_world_wrist, -1, -2)


def clip_keypoints(angles: np.ndarray, R_world_wrist: np.ndarray, p_world_wrist: np.ndarray,
                   skeletons: Sequence[HandSkeleton]) -> np.ndarray:
    """(T, 2, 21, 3) world keypoints of a primitive's targets (angles (T, 2, 15, 3), R
    (T, 2, 3, 3), p (T, 2, 3)); ``skeletons`` is (left, right)."""
    return np.stack([place_keypoints(local_keypoints(angles[:, side], skeletons[side]),
                                     R_world_wrist[:, side], p_world_wrist[:, side])
                     for side in HandSide], axis=1)


def clip_to_motion(clip: PrimitiveClip, skeletons: Sequence[HandSkeleton], fps: float,
                   **kwargs) -> BimanualMotion:
    """A motion from a primitive's targets (extra keyword arguments go to ``from_mano``)."""
    from handx_gen.motion import BimanualMotion

    hand_pose = np.stack([anatomical_to_pose(clip.angles[:, side], skeletons[side])
                          for side in HandSide], axis=1)
    global_orient = matrix_to_axis_angle(clip.R_world_wrist)
    transl = clip.p_world_wrist - np.stack([s.joints_rest[0] for s in skeletons])
    return BimanualMotion.from_mano(fps, global_orient, hand_pose, transl,
                                    skeletons=tuple(skeletons), **kwargs)


def touching_intervals(distance: np.ndarray, threshold: float, min_frames: int = 1
                       ) -> list[tuple[int, int]]:
    """Maximal runs ``[start, stop)`` of frames with ``distance <= threshold``.

    Args:
        distance: (T,) distances.
        threshold: The contact threshold.
        min_frames: Shorter runs are left out.
    """
    inside = np.concatenate([[False], np.asarray(distance) <= threshold, [False]])
    edges = np.flatnonzero(np.diff(inside.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
            if b - a >= min_frames]
