"""The 52-joint SMPL-H layout and :class:`UnifiedMotion`, the form every data source is converted
to before it becomes a :class:`~handx_gen.motion.BimanualMotion`.

Layout (SMPL-H order)::

    0-21   body: pelvis, left_hip, right_hip, spine1, left_knee, right_knee, spine2,
           left_ankle, right_ankle, spine3, left_foot, right_foot, neck, left_collar,
           right_collar, head, left_shoulder, right_shoulder, left_elbow, right_elbow,
           left_wrist (20), right_wrist (21)
    22-36  left hand, MANO order: index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3
    37-51  right hand, same order

The 15 joints of each hand are exactly the 15 rows of MANO's ``hand_pose`` (flat-hand
relative axis-angle), so a hand's ``hand_pose`` is a plain slice of the 52-joint pose.

Frames. SMPL-H is defined in its T-pose frame (body Y up, facing +z, left arm along +x). MANO
and the project's canonical hand frame share it: at rest the right hand's fingers point -x,
its palm faces -y and its thumb points +z; the left hand is the mirror image through x = 0.
Therefore the global rotation of the SMPL-H wrist joint (the product of the local rotations
pelvis -> spine1 -> spine2 -> spine3 -> collar -> shoulder -> elbow -> wrist) *is* the MANO
``global_orient`` of that hand. :class:`UnifiedMotion` itself is stored in the project's world
frame (Z up); readers of Y-up sources rotate the root before building it.

Wrist positions come from forward kinematics of the body with :data:`SMPLH_REST_JOINTS_M`, an
*approximate* neutral rest skeleton (see there). It is used for nothing but placing the wrists:
the SMPL-H model itself is licensed and not shipped, so body shape (``betas``) is carried along
but does not change the skeleton. The hand's MANO ``transl`` is then chosen so that the hand's
own wrist keypoint lands on the body's wrist: ``transl = wrist_world - J_rest_wrist`` (MANO
rotates the hand about its rest wrist joint and then adds ``transl``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from handx_gen.errors import DataSourceError
from handx_gen.hand.topology import NUM_POSE_JOINTS, HandSide
from handx_gen.rates import check_fps

if TYPE_CHECKING:
    from handx_gen.hand.skeleton import HandSkeleton
    from handx_gen.motion import BimanualMotion

__all__ = [
    'BODY_CHAIN_TO_WRIST',
    'BodyPose',
    'HAND_SLICES',
    'LEFT_HAND_SLICE',
    'LEFT_WRIST',
    'NUM_BODY_JOINTS',
    'NUM_SMPLH_JOINTS',
    'PELVIS',
    'RIGHT_HAND_SLICE',
    'RIGHT_WRIST',
    'SMPLH_JOINT_NAMES',
    'SMPLH_PARENTS',
    'SMPLH_REST_JOINTS_M',
    'UnifiedMotion',
    'WRIST_JOINTS',
    'body_forward_kinematics',
    'from_bimanual',
    'to_bimanual',
    'wrist_global_rotations',
]

NUM_BODY_JOINTS = 22
NUM_SMPLH_JOINTS = NUM_BODY_JOINTS + 2 * NUM_POSE_JOINTS  # 52

_BODY_JOINT_NAMES: tuple[str, ...] = (
    'pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2',
    'left_ankle', 'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck', 'left_collar',
    'right_collar', 'head', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist',
)
_BODY_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
)
# MANO order of the 15 finger joints (SMPL-H calls the little finger 'pinky').
_HAND_JOINT_SUFFIXES: tuple[str, ...] = (
    'index1', 'index2', 'index3', 'middle1', 'middle2', 'middle3',
    'pinky1', 'pinky2', 'pinky3', 'ring1', 'ring2', 'ring3', 'thumb1', 'thumb2', 'thumb3',
)

PELVIS = 0
LEFT_WRIST = 20
RIGHT_WRIST = 21
WRIST_JOINTS: tuple[int, int] = (LEFT_WRIST, RIGHT_WRIST)  # indexed by HandSide
LEFT_HAND_SLICE = slice(NUM_BODY_JOINTS, NUM_BODY_JOINTS + NUM_POSE_JOINTS)  # 22:37
RIGHT_HAND_SLICE = slice(NUM_BODY_JOINTS + NUM_POSE_JOINTS, NUM_SMPLH_JOINTS)  # 37:52
HAND_SLICES: tuple[slice, slice] = (LEFT_HAND_SLICE, RIGHT_HAND_SLICE)  # indexed by HandSide


def _hand_parents(wrist: int, first: int) -> list[int]:
    parents = []
    for finger in range(5):
        base = first + 3 * finger
        parents += [wrist, base, base + 1]
    return parents


SMPLH_JOINT_NAMES: tuple[str, ...] = (
    _BODY_JOINT_NAMES
    + tuple(f'left_{name}' for name in _HAND_JOINT_SUFFIXES)
    + tuple(f'right_{name}' for name in _HAND_JOINT_SUFFIXES)
)
SMPLH_PARENTS: tuple[int, ...] = (
    _BODY_PARENTS
    + tuple(_hand_parents(LEFT_WRIST, LEFT_HAND_SLICE.start))
    + tuple(_hand_parents(RIGHT_WRIST, RIGHT_HAND_SLICE.start))
)

# Body joints from the pelvis to each wrist (indexed by HandSide): pelvis, spine1, spine2,
# spine3, collar, shoulder, elbow, wrist.
BODY_CHAIN_TO_WRIST: tuple[tuple[int, ...], tuple[int, ...]] = (
    (0, 3, 6, 9, 13, 16, 18, 20),
    (0, 3, 6, 9, 14, 17, 19, 21),
)

# Approximate rest (T-pose) locations of the 22 body joints of a neutral SMPL-family body, in
# the SMPL frame (Y up, facing +z, left arm along +x), metres. These are rounded values of the
# published neutral SMPL joint locations (joint regressor applied to the neutral template);
# SMPL-H shares SMPL's body. They are approximate and shape independent: used only to place
# the wrists, whose error is then on the order of a centimetre for average bodies and larger
# for bodies far from average.
SMPLH_REST_JOINTS_M: np.ndarray = np.array(
    [
        [-0.0018, -0.2233, 0.0282],   # pelvis
        [0.0695, -0.3147, 0.0214],    # left_hip
        [-0.0677, -0.3149, 0.0239],   # right_hip
        [-0.0025, -0.1088, 0.0031],   # spine1
        [0.1040, -0.6898, 0.0160],    # left_knee
        [-0.1055, -0.6944, 0.0118],   # right_knee
        [0.0055, 0.0247, 0.0031],     # spine2
        [0.0877, -1.1075, -0.0232],   # left_ankle
        [-0.0883, -1.1000, -0.0238],  # right_ankle
        [0.0017, 0.0820, 0.0316],     # spine3
        [0.1198, -1.1603, 0.1116],    # left_foot
        [-0.1163, -1.1670, 0.1170],   # right_foot
        [-0.0017, 0.2968, -0.0112],   # neck
        [0.0772, 0.2021, -0.0134],    # left_collar
        [-0.0760, 0.2008, -0.0195],   # right_collar
        [0.0071, 0.3713, 0.0373],     # head
        [0.1704, 0.2197, -0.0184],    # left_shoulder
        [-0.1719, 0.2186, -0.0213],   # right_shoulder
        [0.4280, 0.2018, -0.0342],    # left_elbow
        [-0.4308, 0.2061, -0.0322],   # right_elbow
        [0.6903, 0.2207, -0.0427],    # left_wrist
        [-0.6941, 0.2180, -0.0410],   # right_wrist
    ],
    dtype=np.float64,
)
SMPLH_REST_JOINTS_M.setflags(write=False)

assert len(SMPLH_JOINT_NAMES) == NUM_SMPLH_JOINTS
assert len(SMPLH_PARENTS) == NUM_SMPLH_JOINTS
assert SMPLH_REST_JOINTS_M.shape == (NUM_BODY_JOINTS, 3)


class BodyPose(NamedTuple):
    """World rotations and positions of the 22 body joints.

    Attributes:
        rotations: (T, 22, 3, 3) global rotation of each joint (world from joint).
        positions_m: (T, 22, 3) joint positions in the world frame.
    """

    rotations: np.ndarray
    positions_m: np.ndarray


def _as_poses(poses: np.ndarray, name: str = 'poses') -> np.ndarray:
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] not in ((NUM_SMPLH_JOINTS, 3), (NUM_BODY_JOINTS, 3)):
        raise DataSourceError(
            f'{name} must have shape (T, 52, 3) or (T, 22, 3) (axis-angle per joint), '
            f'got {poses.shape}'
        )
    return poses


def body_forward_kinematics(
    poses: np.ndarray,
    trans: np.ndarray,
    rest_joints_m: np.ndarray = SMPLH_REST_JOINTS_M,
) -> BodyPose:
    """Forward kinematics of the 22 body joints (SMPL semantics).

    The root rotates about its rest location and ``trans`` is added: ``pelvis_world =
    rest_joints_m[0] + trans``; each child is placed at its parent's world position plus the
    parent's global rotation applied to the rest offset.

    Args:
        poses: (T, 52, 3) or (T, 22, 3) local axis-angle rotations; only the body is used.
        trans: (T, 3) root translation, metres.
        rest_joints_m: (22, 3) rest joint locations; defaults to the approximate neutral
            skeleton :data:`SMPLH_REST_JOINTS_M`.

    Returns:
        :class:`BodyPose` with (T, 22, 3, 3) rotations and (T, 22, 3) positions.
    """
    from handx_gen.hand.rotations import axis_angle_to_matrix

    poses = _as_poses(poses)
    trans = np.asarray(trans, dtype=np.float64)
    if trans.shape != (poses.shape[0], 3):
        raise DataSourceError(f'trans must have shape ({poses.shape[0]}, 3), got {trans.shape}')
    rest = np.asarray(rest_joints_m, dtype=np.float64)
    if rest.shape != (NUM_BODY_JOINTS, 3):
        raise DataSourceError(f'rest_joints_m must have shape (22, 3), got {rest.shape}')
    local = axis_angle_to_matrix(poses[:, :NUM_BODY_JOINTS])  # (T, 22, 3, 3)
    rotations = np.empty_like(local)
    positions = np.empty(local.shape[:2] + (3,), dtype=np.float64)
    rotations[:, 0] = local[:, 0]
    positions[:, 0] = rest[0] + trans
    for joint in range(1, NUM_BODY_JOINTS):
        parent = _BODY_PARENTS[joint]
        rotations[:, joint] = rotations[:, parent] @ local[:, joint]
        offset = rest[joint] - rest[parent]  # (3,)
        positions[:, joint] = positions[:, parent] + rotations[:, parent] @ offset
    return BodyPose(rotations=rotations, positions_m=positions)


def wrist_global_rotations(poses: np.ndarray) -> np.ndarray:
    """Global rotation of both wrists: the product of the local rotations along
    :data:`BODY_CHAIN_TO_WRIST` (pelvis first).

    Args:
        poses: (T, 52, 3) or (T, 22, 3) local axis-angle rotations.

    Returns:
        (T, 2, 3, 3) world-from-wrist rotations, left hand first. In the canonical frame this
        is each hand's MANO ``global_orient`` as a matrix.
    """
    from handx_gen.hand.rotations import axis_angle_to_matrix

    poses = _as_poses(poses)
    out = np.empty((poses.shape[0], 2, 3, 3), dtype=np.float64)
    for side in HandSide:
        chain = BODY_CHAIN_TO_WRIST[side]
        local = axis_angle_to_matrix(poses[:, list(chain)])  # (T, 8, 3, 3)
        rotation = local[:, 0]
        for k in range(1, len(chain)):
            rotation = rotation @ local[:, k]
        out[:, side] = rotation
    return out


def _readonly_copy(array: np.ndarray | None) -> np.ndarray | None:
    if array is None:
        return None
    array = np.array(array, dtype=np.float64, copy=True)
    array.setflags(write=False)
    return array


@dataclasses.dataclass(frozen=True)
class UnifiedMotion:
    """A motion in the 52-joint SMPL-H layout, in the project's world frame (Z up, metres).

    Either a full body (``has_body=True``: the wrists are placed by body forward kinematics
    from ``poses`` and ``trans``), or hands only (``has_body=False``: body joints carry no
    rotation except the wrists, whose local rotation then equals their global rotation, and
    ``wrist_positions_m`` gives where the wrists are).

    Arrays are copied on construction and made read-only.

        fps: Frame rate, frames per second, in the accepted range (:mod:`handx_gen.rates`).
        poses: (T, 52, 3) local axis-angle rotations; hand joints are flat-hand relative.
        trans: (T, 3) root translation, metres (zeros for hands-only motion).
        betas: Optional body shape coefficients (B,), carried along only (see module doc).
        has_body: Whether the body joints are real data.
        source: Free-form name of where the motion came from.
        wrist_positions_m: (T, 2, 3) world wrist positions, left first; required exactly when
            ``has_body`` is False.
        hand_betas: Optional (2, 10) MANO shape coefficients, carried along only.
    """

    fps: float
    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray | None = None
    has_body: bool = True
    source: str = ''
    wrist_positions_m: np.ndarray | None = None
    hand_betas: np.ndarray | None = None

    def __post_init__(self) -> None:
        fps = check_fps(self.fps, error=DataSourceError)
        poses = np.asarray(self.poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[1:] != (NUM_SMPLH_JOINTS, 3) or poses.shape[0] < 1:
            raise DataSourceError(f'poses must have shape (T>=1, 52, 3), got {poses.shape}')
        num_frames = poses.shape[0]
        trans = np.asarray(self.trans, dtype=np.float64)
        if trans.shape != (num_frames, 3):
            raise DataSourceError(f'trans must have shape ({num_frames}, 3), got {trans.shape}')
        if self.betas is not None and np.asarray(self.betas).ndim != 1:
            raise DataSourceError(
                f'betas must have shape (B,), got {np.asarray(self.betas).shape}'
            )
        if self.hand_betas is not None and np.asarray(self.hand_betas).shape != (2, 10):
            raise DataSourceError(
                f'hand_betas must have shape (2, 10), got {np.asarray(self.hand_betas).shape}'
            )
        wrists = self.wrist_positions_m
        if self.has_body and wrists is not None:
            raise DataSourceError(
                'wrist_positions_m is only for hands-only motion (has_body=False); with a body '
                'the wrists come from body forward kinematics'
            )
        if not self.has_body:
            if wrists is None:
                raise DataSourceError('hands-only motion (has_body=False) needs wrist_positions_m')
            if np.asarray(wrists).shape != (num_frames, 2, 3):
                raise DataSourceError(
                    f'wrist_positions_m must have shape ({num_frames}, 2, 3), '
                    f'got {np.asarray(wrists).shape}'
                )
        for name, value in (('poses', poses), ('trans', trans), ('wrist_positions_m', wrists)):
            if value is not None and not np.all(np.isfinite(value)):
                finite = np.isfinite(np.asarray(value)).reshape(num_frames, -1).all(axis=1)
                bad = np.flatnonzero(~finite)
                raise DataSourceError(f'{name} has non-finite values in {bad.size} frame(s), '
                                      f'first {bad[:5].tolist()}')
        object.__setattr__(self, 'fps', fps)
        object.__setattr__(self, 'has_body', bool(self.has_body))
        object.__setattr__(self, 'source', str(self.source))
        for name in ('poses', 'trans', 'betas', 'wrist_positions_m', 'hand_betas'):
            object.__setattr__(self, name, _readonly_copy(getattr(self, name)))

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def hand_pose(self) -> np.ndarray:
        """(T, 2, 15, 3) flat-hand-relative MANO hand poses, left first."""
        return np.stack([self.poses[:, s] for s in HAND_SLICES], axis=1)

    def wrist_rotations(self) -> np.ndarray:
        """(T, 2, 3, 3) world-from-wrist rotations (each hand's MANO global orientation)."""
        return wrist_global_rotations(self.poses)

    def wrist_positions(self) -> np.ndarray:
        """(T, 2, 3) world wrist positions, metres, left first."""
        if not self.has_body:
            return np.array(self.wrist_positions_m)
        body = body_forward_kinematics(self.poses, self.trans)
        return body.positions_m[:, list(WRIST_JOINTS)]


def _resolve_skeletons(
    skeletons: Sequence[HandSkeleton] | None,
) -> tuple[HandSkeleton, HandSkeleton]:
    from handx_gen.hand.skeleton import default_skeleton

    if skeletons is None:
        return (default_skeleton(HandSide.LEFT), default_skeleton(HandSide.RIGHT))
    skeletons = tuple(skeletons)
    if len(skeletons) != 2:
        raise DataSourceError(f'skeletons must be (left, right), got {len(skeletons)} items')
    for side, skeleton in zip(HandSide, skeletons, strict=True):
        if skeleton.side != side:
            raise DataSourceError(
                f'skeletons[{int(side)}] must be a {side.name} hand, got {skeleton.side.name}'
            )
    return skeletons  # type: ignore[return-value]


def to_bimanual(
    unified: UnifiedMotion,
    *,
    skeletons: Sequence[HandSkeleton] | None = None,
) -> BimanualMotion:
    """Convert a unified motion to the bimanual MANO container.

    Each hand's ``global_orient`` is its wrist's global rotation, ``hand_pose`` is its slice of
    the 52-joint pose, and ``transl = wrist_world - skeleton.joints_rest[0]`` so that the hand's
    wrist keypoint lands on the wrist position (from body FK, or stored for hands-only motion).

    Args:
        unified: The motion.
        skeletons: (left, right) hand skeletons for the keypoints; default skeletons if None.

    Returns:
        A :class:`~handx_gen.motion.BimanualMotion` with keypoints computed by FK.
    """
    from handx_gen.hand.rotations import matrix_to_axis_angle
    from handx_gen.motion import BimanualMotion

    skeletons = _resolve_skeletons(skeletons)
    global_orient = matrix_to_axis_angle(unified.wrist_rotations())  # (T, 2, 3)
    wrists = unified.wrist_positions()  # (T, 2, 3)
    rest_wrists = np.stack([s.joints_rest[0] for s in skeletons])  # (2, 3)
    transl = wrists - rest_wrists
    return BimanualMotion.from_mano(
        unified.fps,
        global_orient,
        unified.hand_pose(),
        transl,
        betas=unified.hand_betas,
        skeletons=skeletons,
    )


def from_bimanual(
    motion: BimanualMotion,
    *,
    skeletons: Sequence[HandSkeleton] | None = None,
    source: str = 'handx-motion',
) -> UnifiedMotion:
    """Convert a bimanual motion to a hands-only unified motion (``has_body=False``).

    The wrists' global rotations are stored as their local rotations (the body chain carries
    none). The wrist positions are ``transl + skeleton.joints_rest[0]`` when the motion's
    skeletons are given (then ``to_bimanual(from_bimanual(m, skeletons=s), skeletons=s)``
    reproduces ``m`` exactly), else the motion's float32 wrist keypoints (exact up to float32
    precision when ``m`` was built with default skeletons).

    Args:
        motion: The bimanual motion.
        skeletons: (left, right) skeletons the motion was built with, if known.
        source: Name recorded as the unified motion's source.

    Returns:
        The hands-only :class:`UnifiedMotion`.
    """
    num_frames = motion.num_frames
    poses = np.zeros((num_frames, NUM_SMPLH_JOINTS, 3), dtype=np.float64)
    global_orient = np.asarray(motion.global_orient, dtype=np.float64)  # (T, 2, 3)
    hand_pose = np.asarray(motion.hand_pose, dtype=np.float64)  # (T, 2, 15, 3)
    for side in HandSide:
        poses[:, WRIST_JOINTS[side]] = global_orient[:, side]
        poses[:, HAND_SLICES[side]] = hand_pose[:, side]
    if skeletons is None:
        wrists = np.asarray(motion.keypoints, dtype=np.float64)[:, :, 0]  # (T, 2, 3)
    else:
        rest_wrists = np.stack([s.joints_rest[0] for s in _resolve_skeletons(skeletons)])
        wrists = np.asarray(motion.transl, dtype=np.float64) + rest_wrists  # (T, 2, 3)
    return UnifiedMotion(
        fps=motion.fps,
        poses=poses,
        trans=np.zeros((num_frames, 3)),
        betas=None,
        has_body=False,
        source=source,
        wrist_positions_m=wrists,
        hand_betas=motion.betas,
    )
